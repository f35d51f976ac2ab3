// Copyright 2026 The Flotilla Authors. All rights reserved.

// Package multiraft will run many go.etcd.io/raft/v3 RawNodes on one store
// without a goroutine per group: a scheduler of groups with pending work and
// a fixed worker pool; a log writer that commits many groups' appends and
// hard states in one engine batch with one fsync; one store-wide ticker;
// coalesced heartbeats between node pairs; quiescence of idle groups;
// ReadIndex reads; membership changes and leader transfer; snapshots; and the
// Transport interface its peers talk through.
//
// It will drive replicated state machines through a small interface and
// must not know about key-value semantics (it does not import shard).
//
// Not built yet: see the multiraft issue.
package multiraft
