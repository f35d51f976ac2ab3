// Copyright 2026 The Flotilla Authors. All rights reserved.

package multiraft

import (
	"github.com/flotilladb/flotilla/engine"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
)

// The identifiers are the ones every layer shares (rpc/flotillapb), named
// here as multiraft's API has always named them.

// GroupID identifies a raft group: a range, or the placement group. It is
// the engine's RangeID: a group's raft state lives under that range's keys.
type GroupID = engine.RangeID

// NodeID identifies a host (one store). It is at most MaxNodeID.
type NodeID = flotillapb.NodeID

// MaxNodeID is the largest NodeID: a node ID fills the high 32 bits of a
// replica ID, and raft reserves the largest IDs.
const MaxNodeID = flotillapb.MaxNodeID

// ReplicaID is a replica's ID inside its group, raft's node ID: its node in
// the high 32 bits, a sequence number unique within the group in the low 32
// (flotillapb.ReplicaID).
type ReplicaID = flotillapb.ReplicaID

// MakeReplicaID returns the ID of the seq'th replica of a group placed on
// node. seq must not be 0.
func MakeReplicaID(node NodeID, seq uint32) ReplicaID { return flotillapb.MakeReplicaID(node, seq) }

// Replica describes a member of a group.
type Replica struct {
	ID      ReplicaID
	Learner bool
}
