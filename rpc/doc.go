// Copyright 2026 The Flotilla Authors. All rights reserved.

// Package rpc is the client side of Flotilla's wire: what a program that
// talks to a cluster needs, and nothing that a node alone needs.
//
// It owns:
//   - the connection pool (Pool): one gRPC client connection per advertised
//     address, shared by everyone in the process, with per-address dial
//     overrides for tests, and the dial and server options every connection
//     uses (message size bounds, keepalive, reconnection backoff);
//   - the readiness check a request makes before it is sent (Pool.Ready,
//     EnsureReady): a request that never left is certainly not applied,
//     and Ready's error carries the dial error of an unreachable node;
//   - the mapping of Flotilla's errors to gRPC statuses and back
//     (StatusError, ErrorFromStatus), the only place where it happens;
//   - the service interfaces a node implements (KVHandler, NodeHandler,
//     PlacementHandler), their registration on a gRPC server, and the KV
//     service's gRPC client as a KVHandler (NewKVClient).
//
// It does not own the raft transport or snapshot streams (rpc/raftrpc, the
// node side), nor any logic: it never imports shard, placement, router,
// multiraft or engine, only rpc/flotillapb and gRPC, so that a client links
// none of them (a test over `go list -deps` keeps it so).
//
// Invariant: every error a handler returns crosses the wire as a gRPC
// status whose detail, if the handler returned a *flotillapb.Error, is that
// error, outcome included; ErrorFromStatus recovers it unchanged, and for a
// failure without one (a broken connection, a deadline) says a write's
// outcome is unknown unless the code proves the server never ran it.
package rpc
