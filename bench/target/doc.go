// Copyright 2026 The Flotilla Authors. All rights reserved.

// Package target holds the stores `flotilla bench` runs workloads against,
// each a bench.Target:
//
//   - Flotilla: a Flotilla cluster reached through flotilla.Connect.
//   - Embedded: one Flotilla node opened in this process (server.Open),
//     reached through its own gateway, with no network hop to the client.
//   - Etcd: an etcd cluster reached through etcd's Go client (v3.6), for
//     side-by-side figures. The etcd server itself is not a dependency of
//     this module: bench/peers/etcd builds it as a separate module.
//
// Each also implements, where it can, bench.ErrorClassifier (the classes
// are the Class* constants), bench.ServerCPU (the servers' CPU seconds, read
// from the process_cpu_seconds_total counter each server publishes on its
// Prometheus /metrics page) and bench.Describer.
//
// The same conventions hold for all three, so that their figures compare:
//   - An operation whose context has no deadline is bounded by the
//     options' RequestTimeout (10 s by default), and an operation that
//     fails because its deadline passed is classed ClassTimeout, whatever
//     else its error says.
//   - Get is a linearizable read; Put is acknowledged once it is durable on
//     a quorum (as durable as the servers are configured to make it: see
//     "fsync" in Describe).
//   - Scan reads up to limit pairs from start to the end of the keyspace,
//     in key order; a limit of 0 reads nothing and a negative one is an
//     error (ClassInvalid), never an unbounded scan.
//
// The package owns the connections and, for Embedded, the node it opens;
// Close releases them. It does not start or stop external servers: tests
// start their own, and a benchmark is pointed at servers already running.
package target
