// Copyright 2026 The Flotilla Authors. All rights reserved.

// Command flotilla is Flotilla's one binary: start a node (start), create a
// cluster (init), run a 3-node cluster in one process (demo), read and write
// keys (kv), inspect and administer the cluster through its placement
// driver (cluster status, ranges, operators, split, transfer-leader,
// add-replica, remove-replica, decommission, recommission), run and compare
// benchmarks (bench), print its version (version), and inspect a stopped
// store (debug keys). `flotilla help` lists them; docs/OPERATIONS.md
// describes them.
//
// It owns the command line only: flags, output formats and exit statuses.
// A node is package server's (start and demo run server.Open with a
// server.Config built from the flags); kv talks to a cluster through the
// Go client (flotilla.New); cluster and init call the Placement and
// Node gRPC services; bench is a thin layer over packages bench and
// bench/target. A failed command prints its error on stderr and exits
// with a non-zero status.
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
