// Copyright 2026 The Flotilla Authors. All rights reserved.

// Command etcd is etcd's server, built from the Go module proxy at the
// version pinned in this directory's go.mod, for side-by-side benchmarks
// (`flotilla bench` against etcd). It is its own module so that Flotilla's
// module does not depend on etcd's server, only on its client. See
// README.md for how to build it and start a local cluster.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
