// Copyright 2026 The Flotilla Authors. All rights reserved.

// Command flotilla is Flotilla's one binary: start a node (start), create a
// cluster (init), run a 3-node cluster in one process (demo), read and write
// keys (kv), inspect the cluster (cluster status), and inspect a stopped
// store (debug keys). `flotilla help` lists them.
package main

import (
	"fmt"
	"os"
)

func main() {
	if err := newRootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
}
