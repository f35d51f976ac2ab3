// Copyright 2026 The Flotilla Authors. All rights reserved.

// Package server runs a Flotilla node: Open starts one in this process over
// a store directory, and the flotilla binary's `start` runs the same thing.
//
// A node owns, and this package assembles:
//   - its store: one Pebble engine (package engine), the raft groups of its
//     replicas (multiraft.Host), the key-value replicas (shard.Store), and
//     its replica of the placement group when it holds one;
//   - its gRPC server: the raft transport (rpc/raftrpc), and the KV, Node
//     and Placement services (rpc's handler interfaces, implemented here);
//   - the gateway (gateway.go): any request for any key may be sent to any
//     node, which serves it from a local replica or routes it through its
//     router, the same request driver the Go client uses;
//   - membership (node.go, service.go, membership.go): init, join, the node
//     directory, and the collection of replicas removed while the node was
//     away;
//   - heartbeats to the placement driver and the operator steps it answers
//     with (heartbeat.go), and, on the placement group's leader, the
//     driver's services (placement_service.go, placement_admin.go);
//   - the revision oracle (oracle.go): the node's client, which batches
//     every revision its callers ask for (Node.Revision), and, on the
//     placement group's leader, the rounds that hand revisions out
//     (AllocateRevisions) over placement.RevisionOracle;
//   - the admin HTTP server: /metrics, /health, /status, /debug/pprof;
//   - its watch on its disk (disk.go): the NOSPACE alarm below the disk
//     reserve, and stopping the node when its store fails (Failed).
//
// It does not own the logic of those parts (placement decides, shard
// applies, router routes, multiraft replicates), only their wiring and the
// node's life. A Node is a flotilla.KV: requests made through it enter its
// gateway directly, without gRPC.
//
// # Life of a node
//
// Open returns once the node listens. A store that is part of a cluster
// rejoins it at once; a new one waits for Init (or `flotilla init`), joins
// the cluster named by Config.Join, or founds one with Config.Bootstrap.
// The node's state goes waiting → running → stopped and never back; every
// request checks it. Close stops serving, stops the raft groups (in-flight
// proposals fail), waits for every request and goroutine, then closes the
// store. A node whose store fails (a write to its disk failed) closes
// itself and closes Failed; FailErr says why.
//
// # Invariants
//
//   - Every long-lived goroutine of the node is started by its Stopper and
//     has returned when Close returns.
//   - No request runs on a closed store: requests hold the node's gate
//     (Node.enter) shared; Close takes it exclusively after the host has
//     stopped, so proposals fail fast rather than wait out Close.
//   - A write's error says whether it was certainly not applied or its
//     outcome is unknown; the gateway never retries a write after an
//     unknown outcome.
//   - Only the placement group's leader answers placement requests from its
//     driver; other nodes forward them there once (a forwarded request is
//     never forwarded again).
//   - The node's locks are taken in the order written on Node (memberMu,
//     the gate, allocMu, mu); mu is never held across I/O or a proposal.
package server
