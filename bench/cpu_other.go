// Copyright 2026 The Flotilla Authors. All rights reserved.

//go:build !unix

package bench

// processCPUSeconds is unsupported here: reports leave the client's CPU
// out.
func processCPUSeconds() (float64, bool) { return 0, false }
