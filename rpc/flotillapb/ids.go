// Copyright 2026 The Flotilla Authors. All rights reserved.

package flotillapb

import "fmt"

// The identifiers every layer shares. They are plain uint64s on the wire
// (the messages' range_id, store_id, node_id, replica_id fields); these
// types name them in Go signatures. engine, multiraft and the rest alias
// them, so that one value flows through every layer without conversions.

// RangeID identifies a range, and the raft group that replicates it (the
// placement group has a RangeID too). Never reused.
type RangeID uint64

// NodeID identifies a node, at most MaxNodeID. Never reused.
type NodeID uint64

// StoreID identifies a store. A node has exactly one store, so a store's
// ID is its node's.
type StoreID = NodeID

// MaxNodeID is the largest NodeID: a node ID fills the high 32 bits of a
// ReplicaID, and raft reserves the largest IDs.
const MaxNodeID = 1<<32 - 2

// ReplicaID is a replica's ID inside its range's group, raft's node ID. It
// encodes the node the replica lives on in its high 32 bits and a sequence
// number, unique within the group, in its low 32 bits, so that a message
// to a replica can be routed without a directory. Replica IDs are never
// reused in a group.
type ReplicaID uint64

// MakeReplicaID returns the ID of the seq'th replica of a group placed on
// node. seq must not be 0.
func MakeReplicaID(node NodeID, seq uint32) ReplicaID {
	return ReplicaID(uint64(node)<<32 | uint64(seq))
}

// Node returns the node the replica lives on.
func (r ReplicaID) Node() NodeID { return NodeID(r >> 32) }

// Valid reports whether r names a replica: a node in [1, MaxNodeID] and a
// non-zero sequence number.
func (r ReplicaID) Valid() bool {
	return r.Node() >= 1 && r.Node() <= MaxNodeID && uint32(r) != 0
}

func (r ReplicaID) String() string { return fmt.Sprintf("%d/%d", r.Node(), uint32(r)) }
