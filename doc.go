// Copyright 2026 The Flotilla Authors. All rights reserved.

// Package flotilla is the public Go API of Flotilla and the assembly of its
// parts.
//
//   - Open runs a node inside the caller's process: its store, raft groups,
//     gRPC server (peers, clients) and HTTP admin server.
//   - Connect returns a client of a cluster, talking gRPC to its nodes.
//
// Both satisfy one KV interface: context-first methods with typed errors
// tested with errors.Is (ErrKeyNotFound, ErrInvalidArgument, ErrUnavailable,
// ErrNotApplied, ErrOutcomeUnknown) and errors.As (*Error).
//
// Every node is a gateway: it accepts a request for any key and routes it to
// the replica that can serve it. Reads are linearizable (ReadIndex); a
// write's error says whether it was certainly not applied (ErrNotApplied,
// safe to retry) or its outcome is unknown (ErrOutcomeUnknown).
package flotilla
