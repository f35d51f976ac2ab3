// Copyright 2026 The Flotilla Authors. All rights reserved.

package engine

import (
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// ErrBatchDone is returned by operations on a batch that was committed or
// closed.
var ErrBatchDone = errors.New("engine: batch already committed or closed")

// Batch collects writes that commit atomically: after a crash either all of
// them are there or none. A Batch is not safe for concurrent use. Raft log
// writes of many ranges (RaftStorage.Append and friends) may share one batch
// so that they share one fsync.
type Batch struct {
	e *Engine
	b *pebble.Batch // nil once closed
	// bufs is recycled scratch space; nil once closed.
	bufs *batchBufs
	done bool // committed, failed to commit, or closed
	// syncPending is set by CommitPipelined until SyncWait.
	syncPending bool
	// err, once set, is why the batch may not commit: a write staged by a
	// RaftStorage failed half-way, so the batch may hold part of it.
	err error
}

// batchBufs is the part of a Batch worth recycling.
type batchBufs struct {
	// storages are the raft storages with writes staged in the batch, in the
	// order they first staged one. Commit tells each of them when the writes
	// become durable; Close tells them when the writes are abandoned.
	storages []*RaftStorage
	// scratch is reused to build keys.
	scratch []byte
}

// maxPooledStorages keeps buffers that served very many ranges out of the
// pool, so one burst does not pin a large slice.
const maxPooledStorages = 4096

// NewBatch returns an empty batch. The caller must Close it, committed or
// not.
func (e *Engine) NewBatch() *Batch {
	bufs, _ := e.batchPool.Get().(*batchBufs)
	if bufs == nil {
		bufs = &batchBufs{}
	}
	return &Batch{e: e, b: e.db.NewBatch(), bufs: bufs}
}

func checkKey(key []byte) error {
	if len(key) == 0 {
		return fmt.Errorf("%w: engine key", ErrEmptyKey)
	}
	if len(key) > maxEngineKeyLen(key) {
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

// Empty reports whether the batch holds no writes (true once closed).
func (b *Batch) Empty() bool { return b.b == nil || b.b.Empty() }

// Count is the number of writes in the batch (0 once closed).
func (b *Batch) Count() uint32 {
	if b.b == nil {
		return 0
	}
	return b.b.Count()
}

// Len is the size of the batch's encoding in bytes (0 once closed).
func (b *Batch) Len() int {
	if b.b == nil {
		return 0
	}
	return b.b.Len()
}

// fail records that a write staged in the batch failed part-way and returns
// err. The batch can no longer commit.
func (b *Batch) fail(err error) error {
	if b.err == nil {
		b.err = err
	}
	return err
}

// Commit applies the batch atomically. With sync it returns only after the
// batch is durable (unless Options.DisableSync). It writes nothing if a raft
// storage with writes in the batch was closed or has failed, or if a staged
// write failed. The batch cannot be written to afterwards; Close it.
func (b *Batch) Commit(sync bool) error {
	return b.commit(sync, false)
}

// CommitPipelined commits the batch durably, as Commit(true) does, but
// returns once its writes are visible (in the memtable and queued for the
// WAL), before the WAL's fsync; SyncWait waits for that fsync. This lets the
// caller stage and commit the next batch while the disk syncs this one:
// Pebble's WAL then syncs every batch queued meanwhile at once, and a later
// batch is never durable before an earlier one. Writes are visible before
// they are durable (as with Commit(true), for a shorter time); a caller must
// not act on them as durable before SyncWait returns. Close waits for the
// fsync if SyncWait was not called. A failed fsync is reported by SyncWait
// only: the raft storages with writes in the batch do not learn of it, so
// the caller must stop using them (multiraft's host fails).
func (b *Batch) CommitPipelined() error {
	return b.commit(true, true)
}

// SyncWait waits until a batch committed with CommitPipelined is durable.
// It returns nil at once for any other batch, and with Options.DisableSync.
func (b *Batch) SyncWait() error {
	if !b.syncPending {
		return nil
	}
	b.syncPending = false
	err := b.b.SyncWait()
	if err != nil {
		b.e.fail(err)
	}
	return err
}

func (b *Batch) commit(sync, pipelined bool) error {
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
	storages := b.bufs.storages
	if b.err != nil {
		b.abortStorages()
		return fmt.Errorf("engine: batch not committed, a staged write failed: %w", b.err)
	}
	if err := b.e.Err(); err != nil {
		b.abortStorages()
		return err
	}
	for i, s := range storages {
		if err := s.prepareCommit(b); err != nil {
			for _, prepared := range storages[:i] {
				prepared.cancelCommit(b)
			}
			b.abortStorages()
			return err
		}
	}
	for _, s := range storages {
		s.preCommit(b)
	}
	opts := pebble.NoSync
	if sync && !b.e.opts.DisableSync {
		opts = pebble.Sync
	}
	var err error
	switch {
	case opts == pebble.Sync:
		// A synced commit waits for the WAL's fsync itself: Pebble's own
		// Commit(Sync) treats a failed fsync as fatal to the process, and
		// a node with a full disk must stop cleanly instead (fail).
		err = b.e.db.ApplyNoSyncWait(b.b, opts)
		if err == nil {
			if pipelined {
				b.syncPending = true
			} else {
				err = b.b.SyncWait()
			}
		}
	default:
		err = b.b.Commit(opts)
	}
	if err != nil {
		b.e.fail(err)
	}
	for _, s := range storages {
		s.postCommit(b, err)
	}
	clear(b.bufs.storages)
	b.bufs.storages = b.bufs.storages[:0]
	return err
}

// abortStorages tells every storage with writes in b that they are dropped.
func (b *Batch) abortStorages() {
	for _, s := range b.bufs.storages {
		s.abort(b)
	}
	clear(b.bufs.storages)
	b.bufs.storages = b.bufs.storages[:0]
}

// Close releases the batch. Uncommitted writes are discarded. It is
// idempotent.
func (b *Batch) Close() {
	if b.b == nil {
		return
	}
	// Pebble must not reuse a batch whose fsync is outstanding.
	_ = b.SyncWait()
	b.abortStorages()
	b.done = true
	_ = b.b.Close()
	b.b = nil
	if cap(b.bufs.storages) <= maxPooledStorages {
		b.e.batchPool.Put(b.bufs)
	}
	b.bufs = nil
}

// register notes that s staged writes in b.
func (b *Batch) register(s *RaftStorage) {
	b.bufs.storages = append(b.bufs.storages, s)
}
