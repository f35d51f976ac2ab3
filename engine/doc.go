// Copyright 2026 The Flotilla Authors. All rights reserved.

// Package engine is a store's one Pebble instance and everything Flotilla
// keeps in it.
//
// It owns:
//   - the key layout (keys.go): store-local keys (the store's ident, join
//     token and node directory), each range's replicated and unreplicated
//     state (the placement group's state among them), raft log entries and
//     user data, and their encoding: no other package builds or parses an
//     engine key by hand;
//   - Open/Close of the Pebble engine with documented Options;
//   - atomic write batches (Batch) with optional fsync, point reads, bounded
//     scans and range deletion;
//   - multi-version user data (mvcc.go): versions of user keys at
//     revisions, their value encoding, reads at a revision, compaction of
//     old versions and statistics, over the store's comparer (keys.go) that
//     keeps bloom filters per user key;
//   - each range's raft log and raft state as a go.etcd.io/raft/v3 Storage
//     (RaftStorage), whose writes for many ranges share one batch and so one
//     fsync, and a store-wide, bounded cache of recent entries;
//   - snapshot building blocks: export of key spans from a Pebble snapshot as
//     a stream of checksummed chunks, and atomic ingestion of such a stream
//     as SSTs that replace whatever the target held in those spans;
//   - Pebble's metrics that matter, registered on an injected metrics.Set.
//
// It does not know about raft groups' lifecycles, proposals or key-value
// commands: multiraft drives RaftStorage, shard writes user data and range
// state, placement the placement group's state, and server the store-local
// keys. Of Flotilla's packages it imports only rpc/flotillapb (the IDs and
// key limits) and internal/invariants.
package engine
