// Copyright 2026 The Flotilla Authors. All rights reserved.

// Package shard holds the key-value replicas of one store: each Replica is one
// replica of one key range, the multiraft.StateMachine of that range's raft
// group, and the Store is every such replica on a node plus the request path
// that serves them.
//
// It owns:
//   - the KV commands (put, delete, delete-range, compare-and-swap and atomic
//     batches of these) and their proposal through multiraft;
//   - the checks a request goes through before it is proposed and again when
//     it is applied: the range it names, the range's epoch version, and that
//     every key lies inside the range;
//   - applying committed commands into the engine, with a per-apply overlay so
//     that later commands of one apply see the writes of earlier ones (the
//     batch multiraft passes is write-only);
//   - linearizable reads (Get, Scan) through multiraft's ReadIndex;
//   - each range's descriptor and replicated statistics, kept in the range's
//     replicated local state so that snapshots carry them, and its in-memory
//     read and write rates;
//   - the range's data hash at an applied index, for convergence checks;
//   - what a replica without data (created by a raft message) accepts as a
//     snapshot, and reloading itself after one.
//
// It does not own raft, the transport, routing or placement: multiraft drives
// the replicas, rpc serves the requests, router sends requests to the right
// replica and placement decides where replicas live. Errors returned to
// callers are always *flotillapb.Error values, which say whether a write was
// not applied or has an unknown outcome; mapping them to gRPC statuses is
// rpc's job.
//
// Not built yet: splits, merges, leases and the range heartbeats to the
// placement driver.
package shard
