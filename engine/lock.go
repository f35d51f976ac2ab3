// Copyright 2026 The Flotilla Authors. All rights reserved.

package engine

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// ErrStoreInUse is returned by Open when another engine, in this process or
// another, has the store open. The error names the holder's pid when it can
// be found.
var ErrStoreInUse = errors.New("store in use")

// lockName is Pebble's lock file in the store's directory
// (pebble.LockDirectory).
const lockName = "LOCK"

// lockStore takes the store's directory lock, Pebble's own (a POSIX
// record lock on LOCK, held until Close), before Pebble opens the store, so
// that a store already open fails with ErrStoreInUse and the pid of its
// holder rather than with Pebble's "resource temporarily unavailable".
func lockStore(opts Options) (*pebble.Lock, error) {
	lock, err := pebble.LockDirectory(opts.Dir, opts.FS)
	if err == nil {
		return lock, nil
	}
	if pe := (*fs.PathError)(nil); errors.As(err, &pe) {
		// The lock file could not be created: a missing or read-only
		// directory, not a lock held.
		return nil, fmt.Errorf("engine: locking %s: %w", opts.Dir, err)
	}
	if !isLockConflict(err) {
		// Pebble's own bookkeeping refused it: this process holds the
		// lock. (So does every lock of Pebble's in-memory filesystem.)
		return nil, fmt.Errorf("engine: %s: %w by this process (pid %d): it is open already", opts.Dir, ErrStoreInUse, os.Getpid())
	}
	// Another process holds it, so this one holds no lock on the file and
	// may open and close it to ask who does (closing a file drops the
	// POSIX locks its process holds on it).
	if pid := lockHolder(opts.FS, opts.FS.PathJoin(opts.Dir, lockName)); pid > 0 {
		return nil, fmt.Errorf("engine: %s: %w by another process (pid %d)", opts.Dir, ErrStoreInUse, pid)
	}
	return nil, fmt.Errorf("engine: %s: %w by another process (%v)", opts.Dir, ErrStoreInUse, err)
}

// lockHolder returns the pid of the process holding a POSIX lock on path,
// or 0 if it cannot tell (the filesystem is not the operating system's, no
// lock is held any more, or the query failed). It must not be called for a
// file this process may hold a lock on.
func lockHolder(fsys vfs.FS, path string) int {
	for fsys != nil && fsys != vfs.Default {
		fsys = fsys.Unwrap()
	}
	if fsys == nil {
		return 0
	}
	return osLockHolder(path)
}
