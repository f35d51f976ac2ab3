// Copyright 2026 The Flotilla Authors. All rights reserved.

// Package flotillapb is the vocabulary every layer of Flotilla shares:
// its .proto files and the code generated from them (`make proto`; the
// generated code is committed, and regenerating it must change nothing),
// and hand-written helpers beside them:
//   - ids.go: RangeID, NodeID, StoreID and ReplicaID, the types that name
//     the wire's uint64 IDs in Go signatures (engine, multiraft and the rest
//     alias them), and MakeReplicaID: a replica ID carries its node in its
//     high 32 bits;
//   - descriptor.go: what a range descriptor holds (ContainsKey,
//     ContainsKeyBefore, ContainsSpan, ContainsOps, Overlaps, Replica,
//     ReplicaOnStore), deep copies (Clone), and the order of range epochs
//     (RangeEpoch.Newer, Dominates);
//   - keys.go: the limits on keys, values and scan responses (MaxKeySize,
//     DefaultMaxValueSize, DefaultMaxScanBytes) and the checks of request
//     input against them (CheckKey, CheckValue, CheckSpan, CheckOp), so
//     that the client, the router and the replicas refuse the same input
//     with the same messages;
//   - errors.go and ops.go: *Error as a Go error, so that servers return it
//     as is, and the key an op is routed by (Op.RouteKey).
//
// It is a leaf: it imports no other Flotilla package, no raft and no
// storage engine, so anyone may import it, a client included. What needs
// etcd raft's raftpb (building and applying conf changes from descriptors)
// lives in rpc/flotillapb/confchange. The helpers never modify their
// arguments (Replica and ReplicaOnStore return the descriptor's own
// replicas: callers must not modify them either).
package flotillapb
