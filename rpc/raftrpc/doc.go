// Copyright 2026 The Flotilla Authors. All rights reserved.

// Package raftrpc is the node side of Flotilla's wire: the gRPC raft
// transport between nodes (Transport, which implements multiraft's
// Transport) and the snapshot streams.
//
// It owns one bidi RaftStream per (peer node, class), fed from a bounded
// queue by one sender goroutine: a system class for heartbeats and the
// placement group, a default class for the rest, so that bulk traffic never
// delays the beats that keep leaders in office. A full queue drops the
// batch and reports the peer unreachable to raft, which retries. Large
// batches and snapshot chunks are s2-compressed; snapshot data is
// rate-limited across all snapshots. Inbound traffic is checked (peer
// header, cluster, sender and receiver IDs) and handed to a Handler, the
// node's multiraft.Host, which checks the messages themselves. A header's
// address is never taken: peers' addresses change only through SetAddress,
// from the cluster's membership records.
//
// It does not own connections (rpc.Pool does), nor the meaning of the
// messages (multiraft), nor anything a client needs: a client program never
// imports it. It never imports shard, placement or router.
//
// Invariants: a batch from node A is delivered to this node's Handler only
// from a stream whose peer header says A and this node's ID and cluster;
// messages of one (peer, class) leave in the order Send was called; once
// Close returns no goroutine of the transport runs.
package raftrpc
