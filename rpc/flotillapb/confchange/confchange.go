// Copyright 2026 The Flotilla Authors. All rights reserved.

// Package confchange builds and applies the raft membership changes of a
// range from its descriptor: the placement driver's operator steps propose
// them (WithConfVer), and every replica applies them to its descriptor
// (ChangeReplicas), deterministically, from the raft log.
//
// It is a leaf beside rpc/flotillapb rather than inside it because it needs
// etcd raft's raftpb: a client imports flotillapb, and must link no raft.
//
// Invariant: a change that carries a configuration version (WithConfVer)
// applies only to a descriptor at exactly that version, and bumps it by one;
// so a step computed against an outdated descriptor, or proposed twice,
// changes nothing.
package confchange

import (
	"encoding/binary"
	"fmt"

	"github.com/flotilladb/flotilla/rpc/flotillapb"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// A membership change proposed by an operator step carries, in its
// Context, the configuration version its range must be at when it
// applies (8 bytes, big-endian).

// WithConfVer returns cc with the expected configuration version set.
func WithConfVer(cc *pb.ConfChangeV2, confVer uint64) *pb.ConfChangeV2 {
	cc = proto.Clone(cc).(*pb.ConfChangeV2)
	cc.Context = binary.BigEndian.AppendUint64(nil, confVer)
	return cc
}

// ExpectedConfVer returns the configuration version cc expects, if it
// carries one.
func ExpectedConfVer(cc *pb.ConfChangeV2) (uint64, bool) {
	if len(cc.GetContext()) != 8 {
		return 0, false
	}
	return binary.BigEndian.Uint64(cc.GetContext()), true
}

// ChangeReplicas returns the descriptor after membership change cc (a new
// value; desc is not modified): AddNode makes a voter (or promotes a
// learner), AddLearnerNode a learner (or demotes a voter), RemoveNode
// removes, and conf_ver goes up by one. Leaving a joint configuration (no
// changes) returns desc itself. It fails, and the change must be rejected,
// if cc expects another conf_ver, names an invalid replica ID, or would
// leave two replicas on one store or no voter.
func ChangeReplicas(desc *flotillapb.RangeDescriptor, cc *pb.ConfChangeV2) (*flotillapb.RangeDescriptor, error) {
	if len(cc.GetChanges()) == 0 {
		return desc, nil
	}
	if want, ok := ExpectedConfVer(cc); ok && want != desc.GetEpoch().GetConfVer() {
		return nil, fmt.Errorf("the change expects conf_ver %d, range %d is at %d", want, desc.GetRangeId(), desc.GetEpoch().GetConfVer())
	}
	next := desc.Clone()
	find := func(id flotillapb.ReplicaID) int {
		for i, rd := range next.Replicas {
			if rd.GetReplicaId() == uint64(id) {
				return i
			}
		}
		return -1
	}
	upsert := func(id flotillapb.ReplicaID, typ flotillapb.ReplicaType) {
		if i := find(id); i >= 0 {
			next.Replicas[i].Type = typ
			return
		}
		next.Replicas = append(next.Replicas, &flotillapb.ReplicaDescriptor{StoreId: uint64(id.Node()), ReplicaId: uint64(id), Type: typ})
	}
	for _, ch := range cc.GetChanges() {
		id := flotillapb.ReplicaID(ch.GetNodeId())
		if !id.Valid() {
			return nil, fmt.Errorf("invalid replica ID %d", ch.GetNodeId())
		}
		switch ch.GetType() {
		case pb.ConfChangeAddNode:
			upsert(id, flotillapb.ReplicaType_VOTER)
		case pb.ConfChangeAddLearnerNode:
			upsert(id, flotillapb.ReplicaType_LEARNER)
		case pb.ConfChangeRemoveNode:
			if i := find(id); i >= 0 {
				next.Replicas = append(next.Replicas[:i], next.Replicas[i+1:]...)
			}
		case pb.ConfChangeUpdateNode:
		default:
			return nil, fmt.Errorf("unknown change type %v", ch.GetType())
		}
	}
	voters := 0
	stores := map[uint64]bool{}
	for _, rd := range next.Replicas {
		if stores[rd.GetStoreId()] {
			return nil, fmt.Errorf("two replicas of range %d on store %d", desc.GetRangeId(), rd.GetStoreId())
		}
		stores[rd.GetStoreId()] = true
		if rd.GetType() == flotillapb.ReplicaType_VOTER {
			voters++
		}
	}
	if voters == 0 {
		return nil, fmt.Errorf("range %d would have no voter", desc.GetRangeId())
	}
	if next.Epoch == nil {
		next.Epoch = &flotillapb.RangeEpoch{}
	}
	next.Epoch.ConfVer++
	return next, nil
}
