// Copyright 2026 The Flotilla Authors. All rights reserved.

// Package diskfault is a Pebble filesystem for tests of a full disk: it
// wraps another filesystem, reports the free space a test sets, and fails
// writes with ENOSPC while a test says the disk is full. It owns no
// goroutines and is safe for concurrent use. Production code never uses it.
package diskfault

import (
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// FS wraps a vfs.FS (see the package documentation).
type FS struct {
	vfs.FS

	mu struct {
		sync.Mutex
		// usage, when set, is what GetDiskUsage reports.
		usage *vfs.DiskUsage
	}
	// full: writes of files whose names match fullMatch fail with ENOSPC.
	full      atomic.Bool
	fullMatch atomic.Pointer[func(name string) bool]
	// failures counts the writes that failed with ENOSPC.
	failures atomic.Int64
}

// New wraps inner: it behaves as inner until told otherwise.
func New(inner vfs.FS) *FS {
	return &FS{FS: inner}
}

// SetAvailable makes GetDiskUsage report avail bytes free of total.
func (f *FS) SetAvailable(avail, total uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mu.usage = &vfs.DiskUsage{AvailBytes: avail, TotalBytes: total, UsedBytes: total - min(avail, total)}
}

// SetFull makes every write (Write, WriteAt, Sync, Preallocate, creating a
// file) fail with ENOSPC, or, with full false, succeed again.
func (f *FS) SetFull(full bool) { f.SetFullMatching(full, nil) }

// SetFullMatching is SetFull for the files whose name match says: for
// instance the WAL's (WAL) alone. A nil match means every file.
func (f *FS) SetFullMatching(full bool, match func(name string) bool) {
	if match == nil {
		match = func(string) bool { return true }
	}
	f.fullMatch.Store(&match)
	f.full.Store(full)
}

// WAL matches Pebble's write-ahead log files.
func WAL(name string) bool { return strings.HasSuffix(name, ".log") }

// Failures returns how many writes failed with ENOSPC so far.
func (f *FS) Failures() int64 { return f.failures.Load() }

func (f *FS) check(op, name string) error {
	if !f.full.Load() {
		return nil
	}
	if m := f.fullMatch.Load(); m != nil && !(*m)(name) {
		return nil
	}
	f.failures.Add(1)
	return &os.PathError{Op: op, Path: name, Err: syscall.ENOSPC}
}

// GetDiskUsage reports what SetAvailable set, else what the inner
// filesystem reports.
func (f *FS) GetDiskUsage(path string) (vfs.DiskUsage, error) {
	f.mu.Lock()
	u := f.mu.usage
	f.mu.Unlock()
	if u != nil {
		return *u, nil
	}
	return f.FS.GetDiskUsage(path)
}

// Unwrap returns the inner filesystem.
func (f *FS) Unwrap() vfs.FS { return f.FS }

func (f *FS) wrap(name string, file vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return &faultFile{File: file, fs: f, name: name}, nil
}

// Create fails with ENOSPC while the disk is full.
func (f *FS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	if err := f.check("create", name); err != nil {
		return nil, err
	}
	file, err := f.FS.Create(name, category)
	return f.wrap(name, file, err)
}

// Open opens name for reading.
func (f *FS) Open(name string, opts ...vfs.OpenOption) (vfs.File, error) {
	file, err := f.FS.Open(name, opts...)
	return f.wrap(name, file, err)
}

// OpenReadWrite opens name for reading and writing.
func (f *FS) OpenReadWrite(name string, category vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	file, err := f.FS.OpenReadWrite(name, category, opts...)
	return f.wrap(name, file, err)
}

// OpenDir opens a directory (to sync it).
func (f *FS) OpenDir(name string) (vfs.File, error) {
	file, err := f.FS.OpenDir(name)
	return f.wrap(name, file, err)
}

// ReuseForWrite renames oldname to newname and opens it for writing.
func (f *FS) ReuseForWrite(oldname, newname string, category vfs.DiskWriteCategory) (vfs.File, error) {
	file, err := f.FS.ReuseForWrite(oldname, newname, category)
	return f.wrap(newname, file, err)
}

// faultFile fails its writes while its FS says the disk is full.
type faultFile struct {
	vfs.File
	fs   *FS
	name string
}

func (f *faultFile) Write(p []byte) (int, error) {
	if err := f.fs.check("write", f.name); err != nil {
		return 0, err
	}
	return f.File.Write(p)
}

func (f *faultFile) WriteAt(p []byte, off int64) (int, error) {
	if err := f.fs.check("write", f.name); err != nil {
		return 0, err
	}
	return f.File.WriteAt(p, off)
}

func (f *faultFile) Preallocate(off, n int64) error {
	if err := f.fs.check("fallocate", f.name); err != nil {
		return err
	}
	return f.File.Preallocate(off, n)
}

func (f *faultFile) Sync() error {
	if err := f.fs.check("sync", f.name); err != nil {
		return err
	}
	return f.File.Sync()
}

func (f *faultFile) SyncData() error {
	if err := f.fs.check("sync", f.name); err != nil {
		return err
	}
	return f.File.SyncData()
}

func (f *faultFile) SyncTo(length int64) (bool, error) {
	if err := f.fs.check("sync", f.name); err != nil {
		return false, err
	}
	return f.File.SyncTo(length)
}
