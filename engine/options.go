// Copyright 2026 The Flotilla Authors. All rights reserved.

package engine

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/VictoriaMetrics/metrics"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Defaults for Options. See each field for its meaning.
const (
	DefaultCacheSize          = 512 << 20
	DefaultMemTableSize       = 64 << 20
	DefaultRaftEntryCacheSize = 32 << 20
	DefaultSnapshotChunkSize  = 1 << 20
	DefaultIngestFileSize     = 64 << 20
)

// Options configure an Engine. The zero value, with Dir set, is a usable
// on-disk configuration; call EnsureDefaults to see the values that will be
// used and Validate to check them. Open does both.
type Options struct {
	// Dir is the directory holding the store's data. Required, also for an
	// in-memory FS, where it names the directory inside that FS.
	Dir string

	// FS is the filesystem the engine runs on. Default: the operating system's
	// (vfs.Default). Tests pass vfs.NewMem() for an in-memory store, or
	// vfs.NewCrashableMem() to simulate crashes.
	FS vfs.FS

	// CacheSize is the size in bytes of Pebble's block cache. Default 512
	// MiB. Pebble reserves the memtables' memory from it (the mutable one
	// and any waiting to be flushed, MemTableSize each), so it must be
	// several times MemTableSize: with 128 MiB and 64 MiB memtables the
	// blocks got no room at all, and every read went to the files.
	CacheSize int64

	// MemTableSize is the size in bytes of one Pebble memtable. Default
	// 64 MiB.
	MemTableSize uint64

	// RaftEntryCacheSize bounds, in bytes, the in-memory cache of recent raft
	// log entries shared by all ranges of the store. Default 32 MiB. A
	// negative value disables the cache.
	RaftEntryCacheSize int64

	// SnapshotChunkSize is the target size in bytes of one chunk of an
	// exported snapshot stream. Default 1 MiB.
	SnapshotChunkSize int

	// IngestFileSize is the target size in bytes of one SST written while
	// ingesting a snapshot; larger snapshots become several SSTs, ingested
	// together. Default 64 MiB.
	IngestFileSize int64

	// DisableSync makes Batch.Commit(true) not wait for an fsync. Syncs are
	// on by default, and must stay on for any data that matters: with this
	// set, acknowledged writes are lost on a machine crash or power loss. It
	// exists for benchmarks that measure everything but the disk.
	DisableSync bool

	// ReadOnly opens the engine for reading only: writes fail, nothing on
	// disk changes (for tools such as `flotilla debug keys`). Default false.
	ReadOnly bool

	// ErrorIfNotExists makes Open fail if Dir holds no engine instead of
	// creating one. Default false.
	ErrorIfNotExists bool

	// Metrics, if set, receives the engine's metrics (see metrics.go). The
	// engine registers them when it opens; nothing is registered globally.
	Metrics *metrics.Set

	// Logger receives Pebble's log lines and the engine's own. Default:
	// slog.Default().
	Logger *slog.Logger
}

// EnsureDefaults fills unset fields with their defaults.
func (o *Options) EnsureDefaults() {
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.CacheSize == 0 {
		o.CacheSize = DefaultCacheSize
	}
	if o.MemTableSize == 0 {
		o.MemTableSize = DefaultMemTableSize
	}
	if o.RaftEntryCacheSize == 0 {
		o.RaftEntryCacheSize = DefaultRaftEntryCacheSize
	}
	if o.SnapshotChunkSize == 0 {
		o.SnapshotChunkSize = DefaultSnapshotChunkSize
	}
	if o.IngestFileSize == 0 {
		o.IngestFileSize = DefaultIngestFileSize
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
}

// Validate reports every problem with the options at once. It expects
// EnsureDefaults to have run.
func (o *Options) Validate() error {
	var errs []error
	if o.Dir == "" {
		errs = append(errs, errors.New("no Dir given: the data directory is required"))
	}
	if o.FS == nil {
		errs = append(errs, errors.New("FS is nil (call EnsureDefaults)"))
	}
	if o.CacheSize < 0 {
		errs = append(errs, fmt.Errorf("CacheSize is %d; it must not be negative", o.CacheSize))
	}
	const minMemTable, maxMemTable = 1 << 20, 4 << 30
	if o.MemTableSize < minMemTable || o.MemTableSize >= maxMemTable {
		errs = append(errs, fmt.Errorf("MemTableSize is %d; it must be in [1 MiB, 4 GiB)", o.MemTableSize))
	}
	if o.SnapshotChunkSize < 1<<10 || o.SnapshotChunkSize > 64<<20 {
		errs = append(errs, fmt.Errorf("SnapshotChunkSize is %d; it must be in [1 KiB, 64 MiB]", o.SnapshotChunkSize))
	}
	if o.IngestFileSize < 1<<10 {
		errs = append(errs, fmt.Errorf("IngestFileSize is %d; it must be at least 1 KiB", o.IngestFileSize))
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("engine: invalid options: %w", errors.Join(errs...))
}
