// Copyright 2026 The Flotilla Authors. All rights reserved.

//go:build !(darwin || dragonfly || freebsd || linux || netbsd || openbsd || solaris)

package engine

// isLockConflict takes any failure to lock for a lock held elsewhere: this
// system's errors are not told apart.
func isLockConflict(error) bool { return true }

// osLockHolder cannot tell the lock's holder on this system.
func osLockHolder(string) int { return 0 }
