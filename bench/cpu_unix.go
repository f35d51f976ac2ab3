// Copyright 2026 The Flotilla Authors. All rights reserved.

//go:build unix

package bench

import "syscall"

// processCPUSeconds returns the user and system CPU time this process has
// used, in seconds.
func processCPUSeconds() (float64, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	seconds := func(tv syscall.Timeval) float64 { return float64(tv.Sec) + float64(tv.Usec)/1e6 }
	return seconds(ru.Utime) + seconds(ru.Stime), true
}
