// Copyright 2026 The Flotilla Authors. All rights reserved.

package multiraft

import (
	"fmt"

	"github.com/flotilladb/flotilla/engine"
)

// GroupID identifies a raft group: a range, or the placement group. It is
// the engine's RangeID: a group's raft state lives under that range's keys.
type GroupID = engine.RangeID

// NodeID identifies a host (one store). It is at most MaxNodeID.
type NodeID uint64

// MaxNodeID is the largest NodeID: a node ID fills the high 32 bits of a
// replica ID, and raft reserves the largest IDs.
const MaxNodeID = 1<<32 - 2

// ReplicaID is a replica's ID inside its group, raft's node ID. It encodes
// the node the replica lives on in its high 32 bits and a sequence number,
// unique within the group, in its low 32 bits, so that a message to a replica
// can be routed without a directory. Replica IDs are never reused in a group.
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

// Replica describes a member of a group.
type Replica struct {
	ID      ReplicaID
	Learner bool
}
