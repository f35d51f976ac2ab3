// Copyright 2026 The Flotilla Authors. All rights reserved.

package engine

import (
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// maxEngineKeySize bounds any key written through a Batch: the longest is a
// user key with its one-byte prefix.
const maxEngineKeySize = MaxUserKeySize + 1

// ErrBatchDone is returned by operations on a batch that was committed or
// closed.
var ErrBatchDone = errors.New("engine: batch already committed or closed")

// Batch collects writes that commit atomically: after a crash either all of
// them are there or none. A Batch is not safe for concurrent use. Raft log
// writes of many ranges (RaftStorage.Append and friends) may share one batch
// so that they share one fsync.
type Batch struct {
	e *Engine
	b *pebble.Batch
	// storages are the raft storages with writes staged in this batch, in
	// the order they first staged one. Commit tells each of them when the
	// writes become durable; Close tells them when the writes are abandoned.
	storages []*RaftStorage
	done     bool
	// scratch is reused to build keys.
	scratch []byte
}

// NewBatch returns an empty batch. The caller must Close it, committed or
// not, and must not use it after Close: batches are recycled.
func (e *Engine) NewBatch() *Batch {
	b, _ := e.batchPool.Get().(*Batch)
	if b == nil {
		b = &Batch{e: e}
	}
	b.b = e.db.NewBatch()
	b.done = false
	return b
}

func checkKey(key []byte) error {
	if len(key) == 0 {
		return fmt.Errorf("%w: engine key", ErrEmptyKey)
	}
	if len(key) > maxEngineKeySize {
		return fmt.Errorf("%w: engine key of %d bytes", ErrKeyTooLarge, len(key))
	}
	return nil
}

// Set stores value at key. The batch copies both.
func (b *Batch) Set(key, value []byte) error {
	if b.done {
		return ErrBatchDone
	}
	if err := checkKey(key); err != nil {
		return err
	}
	return b.b.Set(key, value, nil)
}

// Delete removes key.
func (b *Batch) Delete(key []byte) error {
	if b.done {
		return ErrBatchDone
	}
	if err := checkKey(key); err != nil {
		return err
	}
	return b.b.Delete(key, nil)
}

// DeleteRange removes every key in span. An empty span is a no-op.
func (b *Batch) DeleteRange(span Span) error {
	if b.done {
		return ErrBatchDone
	}
	if !span.Valid() {
		return nil
	}
	return b.b.DeleteRange(span.Start, span.End, nil)
}

// Empty reports whether the batch holds no writes.
func (b *Batch) Empty() bool { return b.b.Empty() }

// Count is the number of writes in the batch.
func (b *Batch) Count() uint32 { return b.b.Count() }

// Len is the size of the batch's encoding in bytes.
func (b *Batch) Len() int { return b.b.Len() }

// Commit applies the batch atomically. With sync it returns only after the
// batch is durable (unless Options.DisableSync). The batch cannot be written
// to afterwards; Close it.
func (b *Batch) Commit(sync bool) error {
	if b.done {
		return ErrBatchDone
	}
	if err := b.e.checkOpen(); err != nil {
		return err
	}
	if b.e.opts.ReadOnly {
		return ErrReadOnly
	}
	b.done = true
	for _, s := range b.storages {
		s.preCommit(b)
	}
	opts := pebble.NoSync
	if sync && !b.e.opts.DisableSync {
		opts = pebble.Sync
	}
	err := b.b.Commit(opts)
	for _, s := range b.storages {
		s.postCommit(b, err)
	}
	clear(b.storages)
	b.storages = b.storages[:0]
	return err
}

// Close releases the batch. Uncommitted writes are discarded. It is
// idempotent.
func (b *Batch) Close() {
	if b.b == nil {
		return
	}
	for _, s := range b.storages {
		s.abort(b)
	}
	clear(b.storages)
	b.storages = b.storages[:0]
	b.done = true
	_ = b.b.Close()
	b.b = nil
	if cap(b.storages) <= maxPooledStorages {
		b.e.batchPool.Put(b)
	}
}

// maxPooledStorages keeps batches that touched very many ranges out of the
// pool, so one burst does not pin a large slice.
const maxPooledStorages = 4096

// register notes that s staged writes in b.
func (b *Batch) register(s *RaftStorage) {
	b.storages = append(b.storages, s)
}
