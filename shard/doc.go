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
//     batch multiraft passes is write-only), and applying membership changes
//     to the range's descriptor (confchange.ChangeReplicas);
//   - linearizable reads (Get, Scan) through multiraft's ReadIndex;
//   - each range's descriptor and replicated statistics, kept in the range's
//     replicated local state so that snapshots carry them, and its in-memory
//     read and write rates;
//   - splits (split.go, apply.go): Store.Split proposes a split command on
//     the range's leader; applying it narrows the range's descriptor and
//     creates the right-hand range's group, state and statistics in the same
//     batch (multiraft.NewGroup), with no data moved. The split keys a leader
//     proposes come from here too: by size (SizeSplitKey) and by load
//     (LoadSplitKey, the median of a sample of the keys recent requests
//     touched);
//   - the range's data hash at an applied index, for convergence checks;
//   - what a replica without data (created by a raft message) accepts as a
//     snapshot, and reloading itself after one.
//
// It does not own raft, the transport, routing or placement: multiraft
// drives the replicas (through RaftHost); a node's gateway (package server)
// serves requests from the Store, whose request methods have the shape of
// rpc.KVHandler; router sends requests to the right replica; placement
// decides where replicas live and when a range splits, and allocates the
// new range's IDs. It imports none of them but multiraft, and starts no
// goroutines. Errors returned to callers are always *flotillapb.Error
// values, which say whether a write was not applied or has an unknown
// outcome; mapping them to gRPC statuses is rpc's job.
//
// Invariants:
//   - A command that fails its checks at apply (another range, another
//     epoch version, a key outside the range) writes nothing, so a request
//     routed by a stale descriptor never changes another range's data.
//   - A split applies only at the version and conf_ver it was planned at,
//     and only with one new replica ID per replica of the descriptor, each
//     on that replica's store.
//   - The spans of the initialized replicas a Store serves never overlap;
//     while a split applies, the right-hand span is reserved so that no
//     snapshot takes it before the new range starts.
//
// Not built yet: merges and leader leases (every read takes a ReadIndex
// round).
package shard
