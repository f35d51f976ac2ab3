// Copyright 2026 The Flotilla Authors. All rights reserved.

package target_test

import (
	"os/exec"
	"syscall"
)

// dieWithTest makes the kernel kill cmd's process if the test's process
// dies first (a panic on timeout runs no cleanup), so that no server
// outlives the test.
func dieWithTest(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
