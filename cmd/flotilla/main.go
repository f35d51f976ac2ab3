// Copyright 2026 The Flotilla Authors. All rights reserved.

// Command flotilla is Flotilla's one binary. Today it has the commands that
// the storage engine alone supports: `version` and `debug keys`. Later issues
// add start, init, demo, kv, cluster and bench.
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
