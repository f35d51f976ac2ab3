// Copyright 2026 The Flotilla Authors. All rights reserved.

// Package rpc is the wire: the gRPC raft transport (one bidi stream per peer
// node and class, implementing multiraft's Transport), the snapshot stream,
// the connection pool with per-address dial overrides, the KV and Node
// services over small interfaces (KVHandler, NodeHandler) that the node
// assembly implements, and the mapping of Flotilla's errors to gRPC status
// codes and back (StatusError, ErrorFromStatus).
//
// It never imports shard, placement or router. rpc/flotillapb, the .proto
// files and their generated code, is a leaf anyone may import.
package rpc
