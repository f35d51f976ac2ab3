// Copyright 2026 The Flotilla Authors. All rights reserved.

package confchange_test

import (
	"testing"

	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"github.com/flotilladb/flotilla/rpc/flotillapb/confchange"
	pb "go.etcd.io/raft/v3/raftpb"
)

func TestChangeReplicas(t *testing.T) {
	r1, r2, r3 := flotillapb.MakeReplicaID(1, 1), flotillapb.MakeReplicaID(2, 2), flotillapb.MakeReplicaID(3, 3)
	base := &flotillapb.RangeDescriptor{RangeId: 4, Epoch: &flotillapb.RangeEpoch{ConfVer: 5, Version: 1},
		Replicas: []*flotillapb.ReplicaDescriptor{{StoreId: 1, ReplicaId: uint64(r1)}, {StoreId: 2, ReplicaId: uint64(r2)}}}
	cc := func(typ pb.ConfChangeType, id flotillapb.ReplicaID) *pb.ConfChangeV2 {
		return &pb.ConfChangeV2{Changes: []*pb.ConfChangeSingle{{Type: typ.Enum(), NodeId: new(uint64(id))}}}
	}
	for _, tc := range []struct {
		name    string
		cc      *pb.ConfChangeV2
		wantErr bool
		check   func(*flotillapb.RangeDescriptor) bool
	}{
		{"add learner", confchange.WithConfVer(cc(pb.ConfChangeAddLearnerNode, r3), 5), false, func(d *flotillapb.RangeDescriptor) bool {
			r := d.Replica(r3)
			return r != nil && r.GetType() == flotillapb.ReplicaType_LEARNER && r.GetStoreId() == 3
		}},
		{"promote", cc(pb.ConfChangeAddNode, r2), false, func(d *flotillapb.RangeDescriptor) bool {
			return d.Replica(r2).GetType() == flotillapb.ReplicaType_VOTER
		}},
		{"remove", cc(pb.ConfChangeRemoveNode, r2), false, func(d *flotillapb.RangeDescriptor) bool {
			return d.Replica(r2) == nil && len(d.GetReplicas()) == 1
		}},
		{"stale conf_ver", confchange.WithConfVer(cc(pb.ConfChangeAddLearnerNode, r3), 4), true, nil},
		{"invalid id", cc(pb.ConfChangeAddNode, 7), true, nil},
		{"second replica on a store", cc(pb.ConfChangeAddNode, flotillapb.MakeReplicaID(2, 9)), true, nil},
		{"no voter left", &pb.ConfChangeV2{Changes: append(cc(pb.ConfChangeRemoveNode, r1).Changes, cc(pb.ConfChangeRemoveNode, r2).Changes...)}, true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next, err := confchange.ChangeReplicas(base, tc.cc)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if next.GetEpoch().GetConfVer() != 6 || !tc.check(next) {
				t.Errorf("after the change: %v", next)
			}
			if base.GetEpoch().GetConfVer() != 5 || len(base.GetReplicas()) != 2 || base.Replica(r2).GetType() != flotillapb.ReplicaType_VOTER {
				t.Errorf("the change modified its input: %v", base)
			}
		})
	}
	if d, err := confchange.ChangeReplicas(base, &pb.ConfChangeV2{}); err != nil || d != base {
		t.Errorf("leaving a joint configuration changed the descriptor: %v, %v", d, err)
	}
	if v, ok := confchange.ExpectedConfVer(confchange.WithConfVer(cc(pb.ConfChangeAddNode, r3), 42)); !ok || v != 42 {
		t.Errorf("ExpectedConfVer = %d, %v", v, ok)
	}
	if _, ok := confchange.ExpectedConfVer(cc(pb.ConfChangeAddNode, r3)); ok {
		t.Error("a change without a conf_ver expects one")
	}
}
