// Copyright 2026 The Flotilla Authors. All rights reserved.

//go:build darwin || dragonfly || freebsd || linux || netbsd || openbsd || solaris

package engine

import (
	"errors"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// isLockConflict reports whether err is the kernel's refusal of a lock
// another process holds (F_SETLK fails with EAGAIN or EACCES).
func isLockConflict(err error) bool {
	return errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES)
}

// osLockHolder asks the kernel which process holds a write lock on path
// (F_GETLK), as lockHolder documents.
func osLockHolder(path string) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	spec := unix.Flock_t{Type: unix.F_WRLCK, Whence: io.SeekStart}
	if err := unix.FcntlFlock(f.Fd(), unix.F_GETLK, &spec); err != nil || spec.Type == unix.F_UNLCK {
		return 0
	}
	return int(spec.Pid)
}
