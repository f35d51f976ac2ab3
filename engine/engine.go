// Copyright 2026 The Flotilla Authors. All rights reserved.

package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// ErrNotFound is returned by Get when the key does not exist.
var ErrNotFound = errors.New("engine: key not found")

// ErrClosed is returned by operations on a closed Engine.
var ErrClosed = errors.New("engine: closed")

// ErrNoStore is returned by Open with ErrorIfNotExists when the directory
// holds no engine.
var ErrNoStore = errors.New("engine: no store")

// ErrReadOnly is returned by writes to an engine opened with ReadOnly.
var ErrReadOnly = errors.New("engine: opened read-only")

// ErrIncompatibleStore is returned (wrapped) by Open for a store written in
// another on-disk key format than this build's (KeyFormat): Pebble's
// comparer, which orders the keys, is part of the format, and a store can be
// read only with the comparer it was written with. Such a store must be
// recreated (its data moved with a build that reads it); nothing converts it.
var ErrIncompatibleStore = errors.New("engine: store written in another key format")

// ErrFailed is matched by the error of every commit after one failed to
// write or sync (Engine.Err): once a write to the WAL fails, Pebble cannot
// tell what reached the disk, and its commit pipeline is broken.
var ErrFailed = errors.New("engine: the store failed")

// ingestDir is where snapshot SSTs are written before ingestion, relative to
// Options.Dir. Pebble ignores subdirectories of its data directory.
const ingestDir = "auxiliary/ingest"

// Engine is one store's Pebble instance: raft logs, raft state and user data
// of every range on the store. It is safe for concurrent use. Close it only
// after every user has stopped.
type Engine struct {
	opts       Options
	pebbleOpts *pebble.Options
	db         *pebble.DB
	// lock is the store directory's lock, held from before Pebble opens
	// until after it closes (lockStore).
	lock       *pebble.Lock
	entryCache *entryCache

	// failed is the first error a commit or sync returned (or a fatal
	// error Pebble reported): set once, then every commit fails with it
	// without reaching Pebble, whose next commit after a failed WAL write
	// would be fatal to the process (Options.Logger's Fatalf).
	failed atomic.Pointer[error]

	// ingestSeq numbers the temporary SST files of snapshot ingestion.
	ingestSeq atomic.Uint64
	closed    atomic.Bool

	// batchPool recycles Batch structs with their scratch space.
	batchPool sync.Pool

	// storagesMu guards storages, the open RaftStorage of each range. No
	// other lock is taken while it is held.
	storagesMu sync.Mutex
	storages   map[RangeID]*RaftStorage
}

// Open opens (creating if needed) the engine described by opts. It applies
// opts.EnsureDefaults and reports invalid options as an error.
func Open(opts Options) (*Engine, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	e := &Engine{opts: opts}
	cache := pebble.NewCache(opts.CacheSize)
	defer cache.Unref() // the DB holds its own reference
	po := &pebble.Options{
		FS:                 opts.FS,
		Comparer:           keyComparer,
		Cache:              cache,
		MemTableSize:       opts.MemTableSize,
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             pebbleLogger{l: opts.Logger, e: e},
		ReadOnly:           opts.ReadOnly,
		ErrorIfNotExists:   opts.ErrorIfNotExists,
	}
	// Bloom filters (10 bits per key, ~1 % false positives) on every level
	// let a point read skip the files that do not hold its key. They hold
	// the comparer's prefixes: whole keys, but for a versioned key its user
	// key's prefix, so that a read of a key's newest version (SeekPrefixGE)
	// is filtered too. Every write
	// applied reads the key's old value (for the range's statistics), so
	// without them each write probed every level's index and data blocks.
	po.Levels[0].FilterPolicy = bloom.FilterPolicy(10)
	po.EventListener = &pebble.EventListener{FlushEnd: e.flushEnded}
	po.EnsureDefaults()

	if opts.ErrorIfNotExists {
		// Pebble would take its LOCK file before noticing; Peek writes
		// nothing.
		desc, err := pebble.Peek(opts.Dir, opts.FS)
		if err != nil {
			return nil, fmt.Errorf("engine: %s: %w", opts.Dir, err)
		}
		if !desc.Exists {
			return nil, fmt.Errorf("%w in %s", ErrNoStore, opts.Dir)
		}
	}
	e.pebbleOpts = po
	e.entryCache = newEntryCache(opts.RaftEntryCacheSize)
	if !opts.ReadOnly && !opts.ErrorIfNotExists {
		if err := opts.FS.MkdirAll(opts.Dir, 0o755); err != nil {
			return nil, fmt.Errorf("engine: creating %s: %w", opts.Dir, err)
		}
	}
	if opts.FS == vfs.Default {
		// Pebble's guard against a second open in this process is keyed
		// by the path as given, and POSIX locks are per process: open by
		// one canonical path, so that "s" and "/abs/s" are the same store.
		if abs, err := filepath.Abs(opts.Dir); err == nil {
			if real, err := filepath.EvalSymlinks(abs); err == nil {
				opts.Dir = real
			}
		}
	}
	lock, err := lockStore(opts)
	if err != nil {
		return nil, err
	}
	if err := checkKeyFormat(opts, po); err != nil {
		_ = lock.Close()
		return nil, err
	}
	po.Lock = lock
	db, err := pebble.Open(opts.Dir, po)
	if err != nil {
		_ = lock.Close()
		return nil, fmt.Errorf("engine: opening %s: %w", opts.Dir, err)
	}
	e.db, e.lock = db, lock
	// Leftovers of an ingestion interrupted by a crash are garbage: the
	// ingestion either reached Pebble's manifest (and Pebble holds its own
	// links to the files) or did not happen.
	if opts.ReadOnly {
		// Nothing to clean, nothing to write.
	} else if err := opts.FS.RemoveAll(opts.FS.PathJoin(opts.Dir, ingestDir)); err != nil {
		_ = db.Close()
		_ = lock.Close()
		return nil, fmt.Errorf("engine: clearing %s: %w", ingestDir, err)
	}
	if opts.Metrics != nil {
		registerMetrics(opts.Metrics, e)
	}
	return e, nil
}

// checkKeyFormat fails with ErrIncompatibleStore if the store in opts.Dir
// was written with another comparer than po's (another KeyFormat). Pebble
// would refuse it too, with an error that does not say what to do. A missing
// or unreadable store is left to Pebble to report.
func checkKeyFormat(opts Options, po *pebble.Options) error {
	desc, err := pebble.Peek(opts.Dir, opts.FS)
	if err != nil || !desc.Exists || desc.OptionsFilename == "" {
		return nil
	}
	f, err := opts.FS.Open(desc.OptionsFilename)
	if err != nil {
		return nil
	}
	text, err := io.ReadAll(f)
	_ = f.Close()
	if err != nil {
		return nil
	}
	if err := po.CheckCompatibility(opts.Dir, string(text)); err != nil {
		return fmt.Errorf("%w: %s was written in key format %q and this build reads format %q only; "+
			"recreate the store (%v)", ErrIncompatibleStore, opts.Dir, optionsComparer(string(text)), KeyFormat, err)
	}
	return nil
}

// optionsComparer returns the comparer named in the text of a Pebble OPTIONS
// file ("comparer=NAME" in its [Options] section), for error messages.
func optionsComparer(text string) string {
	for line := range strings.Lines(text) {
		if name, ok := strings.CutPrefix(strings.TrimSpace(line), "comparer="); ok {
			return name
		}
	}
	return "unknown"
}

// Close closes the engine. It is idempotent. Raft storages and iterators
// must not be used afterwards.
func (e *Engine) Close() error {
	if !e.closed.CompareAndSwap(false, true) {
		return nil
	}
	return errors.Join(e.db.Close(), e.lock.Close())
}

// Err returns the error that made the engine fail, matching ErrFailed, or
// nil: after a commit or sync failed, every later commit fails with it.
// Reads still work (what they read was written before the failure, or is
// in memory).
func (e *Engine) Err() error {
	if p := e.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// fail records err as the engine's failure, if it is the first.
func (e *Engine) fail(err error) {
	wrapped := fmt.Errorf("%w: %w", ErrFailed, err)
	if e.failed.CompareAndSwap(nil, &wrapped) {
		e.opts.Logger.Error("store failed: no more writes are possible", "dir", e.opts.Dir, "err", err.Error())
	}
}

// flushEnded is Pebble's FlushEnd event. A memtable flush that failed for
// want of space fails the engine: Pebble would retry it, but until it
// succeeds no memtable is freed, and once they are all full every commit
// stalls, so the node would hang rather than stop. (The data is safe in
// the WAL.) Other flush errors are left to Pebble's retries.
func (e *Engine) flushEnded(info pebble.FlushInfo) {
	if info.Err != nil && errors.Is(info.Err, syscall.ENOSPC) {
		e.fail(fmt.Errorf("flushing a memtable: %w", info.Err))
	}
}

// DiskUsage returns the free and total space of the filesystem holding the
// store, as Options.FS reports it (statfs on the operating system's). An
// FS that cannot tell returns an error matching vfs.ErrUnsupported.
func (e *Engine) DiskUsage() (vfs.DiskUsage, error) {
	return e.opts.FS.GetDiskUsage(e.opts.Dir)
}

func (e *Engine) checkOpen() error {
	if e.closed.Load() {
		return ErrClosed
	}
	return nil
}

// Options returns the options the engine runs with, defaults filled in.
func (e *Engine) Options() Options { return e.opts }

// Get returns a copy of the value stored at key, or ErrNotFound.
func (e *Engine) Get(key []byte) ([]byte, error) {
	if err := e.checkOpen(); err != nil {
		return nil, err
	}
	return getCopy(e.db, key)
}

// NewIter returns an iterator over the keys in [lower, upper). A nil bound
// is unbounded. The caller must Close it.
func (e *Engine) NewIter(lower, upper []byte) (*Iterator, error) {
	if err := e.checkOpen(); err != nil {
		return nil, err
	}
	return newIter(e.db, lower, upper)
}

// RangeIDs returns, in order, the IDs of the ranges with any local state in
// the engine. It costs one seek per range, however long their logs.
func (e *Engine) RangeIDs() ([]RangeID, error) {
	it, err := e.NewIter(allRangesSpan.Start, allRangesSpan.End)
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var ids []RangeID
	for valid := it.First(); valid; {
		d, err := DecodeKey(it.Key())
		if err != nil {
			return nil, err
		}
		ids = append(ids, d.RangeID)
		if d.RangeID == math.MaxUint64 {
			break
		}
		valid = it.SeekGE(RangePrefix(d.RangeID + 1))
	}
	return ids, it.Error()
}

// Flush flushes the memtables to SSTs. Tests and tools use it; the engine
// needs no help to flush.
func (e *Engine) Flush() error {
	if err := e.checkOpen(); err != nil {
		return err
	}
	return e.db.Flush()
}

// CompactAll compacts the whole LSM (Pebble's manual compaction), so that
// deleted and overwritten data stops taking space. Benchmarks and tools
// use it; the engine compacts on its own in the background.
func (e *Engine) CompactAll() error {
	if err := e.checkOpen(); err != nil {
		return err
	}
	return e.db.Compact(context.Background(), []byte{0}, []byte{0xff, 0xff}, true)
}

// NewSnapshot returns a consistent, point-in-time view of the engine. The
// caller must Close it; an open snapshot pins old data in the LSM.
func (e *Engine) NewSnapshot() (*Snapshot, error) {
	if err := e.checkOpen(); err != nil {
		return nil, err
	}
	return &Snapshot{e: e, snap: e.db.NewSnapshot()}, nil
}

// Reader is what Engine and Snapshot have in common.
type Reader interface {
	Get(key []byte) ([]byte, error)
	NewIter(lower, upper []byte) (*Iterator, error)
}

var (
	_ Reader = (*Engine)(nil)
	_ Reader = (*Snapshot)(nil)
)

// Snapshot is a consistent view of the engine at one instant.
type Snapshot struct {
	e    *Engine
	snap *pebble.Snapshot
}

// Get returns a copy of the value stored at key in the snapshot, or
// ErrNotFound.
func (s *Snapshot) Get(key []byte) ([]byte, error) {
	if s.snap == nil {
		return nil, ErrClosed
	}
	return getCopy(s.snap, key)
}

// NewIter returns an iterator over the snapshot's keys in [lower, upper).
func (s *Snapshot) NewIter(lower, upper []byte) (*Iterator, error) {
	if s.snap == nil {
		return nil, ErrClosed
	}
	return newIter(s.snap, lower, upper)
}

// Close releases the snapshot. It is idempotent.
func (s *Snapshot) Close() error {
	if s.snap == nil {
		return nil
	}
	err := s.snap.Close()
	s.snap = nil
	return err
}

type pebbleReader interface {
	Get(key []byte) ([]byte, io.Closer, error)
	NewIter(o *pebble.IterOptions) (*pebble.Iterator, error)
}

func getCopy(r pebbleReader, key []byte) ([]byte, error) {
	v, closer, err := r.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	out := bytes.Clone(v)
	if out == nil {
		out = []byte{}
	}
	return out, closer.Close()
}

func newIter(r pebbleReader, lower, upper []byte) (*Iterator, error) {
	if lower != nil && upper != nil && CompareKeys(lower, upper) > 0 {
		return nil, fmt.Errorf("engine: iterator bounds inverted: %s > %s", PrettyKey(lower), PrettyKey(upper))
	}
	var opts *pebble.IterOptions // nil for an unbounded iterator (MVCCGet's): one allocation less
	if lower != nil || upper != nil {
		opts = &pebble.IterOptions{LowerBound: lower, UpperBound: upper}
	}
	it, err := r.NewIter(opts)
	if err != nil {
		return nil, err
	}
	return &Iterator{it: it}, nil
}

// Iterator walks keys in order within its bounds. Key and Value return
// slices valid only until the iterator moves; copy them to keep them.
type Iterator struct {
	it *pebble.Iterator
}

// First moves to the first key and reports whether it is valid.
func (i *Iterator) First() bool { return i.it.First() }

// Last moves to the last key and reports whether it is valid.
func (i *Iterator) Last() bool { return i.it.Last() }

// SeekGE moves to the first key >= key.
func (i *Iterator) SeekGE(key []byte) bool { return i.it.SeekGE(key) }

// SeekPrefixGE moves to the first key >= key with key's comparer prefix (for
// a versioned key, its user key's prefix; for other keys, the whole key), and
// puts the iterator in prefix mode: Next stays within the prefix, Prev is
// not allowed, until the next SeekGE, SeekLT, First or Last. Bloom filters
// skip the files without the prefix.
func (i *Iterator) SeekPrefixGE(key []byte) bool { return i.it.SeekPrefixGE(key) }

// NextPrefix moves forward to the first key with another comparer prefix:
// past the remaining versions of the current versioned key at the cost of
// about one step. Not in prefix mode (it exhausts the iterator) nor
// after a backward move.
func (i *Iterator) NextPrefix() bool { return i.it.NextPrefix() }

// SeekLT moves to the last key < key.
func (i *Iterator) SeekLT(key []byte) bool { return i.it.SeekLT(key) }

// Next moves forward.
func (i *Iterator) Next() bool { return i.it.Next() }

// Prev moves backward.
func (i *Iterator) Prev() bool { return i.it.Prev() }

// Valid reports whether the iterator is at a key.
func (i *Iterator) Valid() bool { return i.it.Valid() }

// Key returns the current key.
func (i *Iterator) Key() []byte { return i.it.Key() }

// Value returns the current value.
func (i *Iterator) Value() ([]byte, error) { return i.it.ValueAndErr() }

// Error returns the error, if any, that stopped the iteration.
func (i *Iterator) Error() error { return i.it.Error() }

// Close releases the iterator and returns its error, if any.
func (i *Iterator) Close() error { return i.it.Close() }

// ScanOptions tune Scan.
type ScanOptions struct {
	// Limit stops the scan after this many pairs; 0 means no limit.
	Limit int
	// Reverse scans from the end of the span towards its start.
	Reverse bool
}

// Scan calls fn for each pair in span, in key order (or reverse order). The
// key and value passed to fn are valid only during the call. fn returning an
// error stops the scan and Scan returns that error.
func Scan(r Reader, span Span, opts ScanOptions, fn func(key, value []byte) error) error {
	if !span.Valid() {
		return nil
	}
	it, err := r.NewIter(span.Start, span.End)
	if err != nil {
		return err
	}
	n := 0
	valid, step := it.First, it.Next
	if opts.Reverse {
		valid, step = it.Last, it.Prev
	}
	for ok := valid(); ok && (opts.Limit <= 0 || n < opts.Limit); ok = step() {
		v, err := it.Value()
		if err != nil {
			_ = it.Close()
			return err
		}
		if err := fn(it.Key(), v); err != nil {
			_ = it.Close()
			return err
		}
		n++
	}
	return it.Close()
}

// pebbleLogger sends Pebble's log lines to slog. Its informational lines
// (opening, WAL recovery, compactions) go out at debug level: a program
// that embeds a node stays quiet unless it asks for them. e is the engine
// whose Pebble logs through it.
type pebbleLogger struct {
	l *slog.Logger
	e *Engine
}

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug(fmt.Sprintf(format, args...), "component", "pebble")
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...), "component", "pebble")
}

// Fatalf is called by Pebble on unrecoverable errors (such as a commit
// whose WAL write or fsync failed) and must not return: the process ends
// with a panic. The engine fails first (Engine.Err) so that no later
// commit reaches Pebble, and commits check it before they start, so that
// a failed WAL write normally ends in an error (Batch.SyncWait), not here.
func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.e.fail(errors.New(msg))
	p.l.Error("pebble failed; the process must stop: "+msg, "component", "pebble", "fatal", true, "dir", p.e.opts.Dir)
	panic("pebble: " + msg)
}
