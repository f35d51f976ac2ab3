// Copyright 2026 The Flotilla Authors. All rights reserved.

// Package flotilla is the Go client of Flotilla, a multi-raft sharded
// key-value store: the KV interface, its operations and errors, and Client,
// which talks gRPC to a cluster's nodes (Connect, New).
//
// KV's methods take a context first and return typed errors, tested with
// errors.Is (ErrKeyNotFound, ErrInvalidArgument, ErrUnavailable,
// ErrNotApplied, ErrOutcomeUnknown, ErrClosed, and context.Canceled or
// context.DeadlineExceeded when the caller's context ended the request) and
// errors.As (*Error). Reads are linearizable (ReadIndex); a write's error
// says whether it was certainly not applied (ErrNotApplied, safe to retry)
// or its outcome is unknown (ErrOutcomeUnknown).
//
// A node run inside the caller's process (package server: server.Open)
// satisfies the same KV interface. This package does not run nodes: a
// program that imports only it links no storage engine (Pebble), no raft,
// and none of Flotilla's node packages (engine, multiraft, shard,
// placement, server). A test over `go list -deps` keeps it so.
package flotilla
