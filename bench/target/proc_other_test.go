// Copyright 2026 The Flotilla Authors. All rights reserved.

//go:build !linux

package target_test

import "os/exec"

// dieWithTest does nothing here: only Linux kills a child with its parent.
// The test's cleanup kills the server.
func dieWithTest(*exec.Cmd) {}
