// Copyright 2026 The Flotilla Authors. All rights reserved.

// Package rpc will be the wire: the gRPC raft transport (one bidi stream per
// peer node and class, implementing multiraft's Transport), the snapshot
// stream, the KV and admin services over small interfaces that shard,
// placement and router implement, connection management, and the mapping of
// Flotilla's errors to gRPC status codes. It never imports shard, placement
// or router.
//
// Not built yet: see the cluster issue.
package rpc
