// Copyright 2026 The Flotilla Authors. All rights reserved.

package placement

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/flotilladb/flotilla/rpc/flotillapb"
)

type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time          { return c.now }
func (c *fakeClock) Advance(d time.Duration) { c.now = c.now.Add(d) }

func TestDriver(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1000, 0)}
	d := NewDriver(DriverConfig{LivenessWindow: 5 * time.Second, StoreDownTimeout: 30 * time.Second, Clock: clock.Now})
	meta := &flotillapb.ClusterMeta{
		Nodes: []*flotillapb.NodeDescriptor{{NodeId: 2, Address: "b:1", JoinToken: "secret"}, {NodeId: 1, Address: "a:1"}},
		Ranges: []*flotillapb.RangeDescriptor{
			{RangeId: 2, EndKey: []byte("m"), Epoch: &flotillapb.RangeEpoch{Version: 2, ConfVer: 1}},
			{RangeId: 3, StartKey: []byte("m"), Epoch: &flotillapb.RangeEpoch{Version: 2, ConfVer: 1}},
		},
	}
	st := d.Stores(meta)
	if len(st) != 2 || st[0].GetNode().GetNodeId() != 1 || st[0].GetLive() || st[0].GetSecondsSinceHeartbeat() != -1 || st[1].GetNode().GetJoinToken() != "" {
		t.Fatalf("stores before heartbeats: %v", st)
	}
	d.ObserveStore(&flotillapb.StoreHeartbeatRequest{NodeId: 1, Stats: &flotillapb.StoreStats{RangeCount: 2}})
	clock.Advance(3 * time.Second)
	st = d.Stores(meta)
	if !st[0].GetLive() || st[0].GetSecondsSinceHeartbeat() != 3 || st[0].GetStats().GetRangeCount() != 2 || st[1].GetLive() {
		t.Fatalf("stores after a heartbeat: %v", st)
	}
	clock.Advance(3 * time.Second)
	if d.Stores(meta)[0].GetLive() {
		t.Fatal("a store silent past the liveness window is live")
	}
	d.mu.Lock()
	_, down1, _ := d.storeLivenessLocked(1, clock.now)
	_, down2, _ := d.storeLivenessLocked(2, clock.now)
	d.mu.Unlock()
	if down1 || down2 {
		t.Fatal("down before the timeout")
	}
	clock.Advance(30 * time.Second)
	d.mu.Lock()
	_, down1, _ = d.storeLivenessLocked(1, clock.now)
	_, down2, _ = d.storeLivenessLocked(2, clock.now)
	d.mu.Unlock()
	if !down1 || !down2 {
		t.Fatal("not down after the timeout (also a store never heard from)")
	}

	// Range heartbeats: the leader's report, newer descriptors win, stale
	// and deposed reports are ignored.
	hb := func(id, version, confVer, term, leader uint64) *flotillapb.RangeHeartbeatRequest {
		start, end := []byte(nil), []byte("m")
		if id == 3 {
			start, end = []byte("m"), nil
		}
		return &flotillapb.RangeHeartbeatRequest{Term: term, LeaderReplicaId: leader,
			Stats: &flotillapb.RangeStats{Keys: int64(term)},
			Descriptor_: &flotillapb.RangeDescriptor{RangeId: id, StartKey: start, EndKey: end, Epoch: &flotillapb.RangeEpoch{Version: version, ConfVer: confVer},
				Replicas: []*flotillapb.ReplicaDescriptor{{StoreId: 1, ReplicaId: 11}, {StoreId: 2, ReplicaId: 22}}}}
	}
	d.ObserveRange(hb(3, 2, 2, 5, 22))
	d.ObserveRange(hb(3, 2, 2, 4, 11)) // a deposed leader's late report
	d.ObserveRange(hb(3, 2, 1, 9, 11)) // an older configuration
	rs := d.Ranges(meta)
	if len(rs) != 2 || rs[0].GetDescriptor_().GetRangeId() != 2 || rs[0].GetSecondsSinceHeartbeat() != -1 {
		t.Fatalf("ranges: %v", rs)
	}
	if r := rs[1]; r.GetLeader().GetStoreId() != 2 || r.GetDescriptor_().GetEpoch().GetConfVer() != 2 || r.GetStats().GetKeys() != 5 {
		t.Fatalf("range 3: %v", r)
	}
	if r, ok := d.Lookup(meta, []byte("z"), false); !ok || r.GetDescriptor_().GetRangeId() != 3 {
		t.Fatalf("lookup z: %v %v", r, ok)
	}
	if r, ok := d.Lookup(meta, []byte("a"), false); !ok || r.GetDescriptor_().GetRangeId() != 2 {
		t.Fatalf("lookup a: %v %v", r, ok)
	}
	// Before: the range holding the keys just below the key.
	for key, want := range map[string]uint64{"m": 2, "n": 3, "": 3, "b": 2} {
		if r, ok := d.Lookup(meta, []byte(key), true); !ok || r.GetDescriptor_().GetRangeId() != want {
			t.Fatalf("lookup before %q: %v %v, want range %d", key, r, ok, want)
		}
	}
	if r, ok := d.Lookup(meta, nil, false); !ok || r.GetDescriptor_().GetRangeId() != 2 {
		t.Fatalf("lookup of the empty key: %v %v", r, ok)
	}
	if _, ok := d.Lookup(&flotillapb.ClusterMeta{}, []byte("a"), false); ok {
		t.Fatal("lookup in an empty cluster")
	}
	d.Reset()
	if rs := d.Ranges(meta); rs[1].GetLeader() != nil || rs[1].GetDescriptor_().GetEpoch().GetConfVer() != 1 {
		t.Fatalf("after reset: %v", rs[1])
	}
}

// TestDeadStoreCheck: a fresh driver view is warming (it has not heard
// from every store); then a store is live while it heartbeats, and a group
// with a voter on a dead store and no majority elsewhere is named.
func TestDeadStoreCheck(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1000, 0)}
	d := NewDriver(DriverConfig{LivenessWindow: 5 * time.Second, StoreDownTimeout: 30 * time.Second, Clock: clock.Now})
	voters := func(id uint64, stores ...uint64) *flotillapb.RangeDescriptor {
		r := &flotillapb.RangeDescriptor{RangeId: id, StartKey: fmt.Appendf(nil, "r%d", id), EndKey: fmt.Appendf(nil, "r%d~", id),
			Epoch: &flotillapb.RangeEpoch{Version: 1, ConfVer: 1}}
		for i, s := range stores {
			r.Replicas = append(r.Replicas, &flotillapb.ReplicaDescriptor{StoreId: s, ReplicaId: uint64(flotillapb.MakeReplicaID(flotillapb.StoreID(s), uint32(10*id)+uint32(i)+1))})
		}
		return r
	}
	meta := &flotillapb.ClusterMeta{
		Nodes:          []*flotillapb.NodeDescriptor{{NodeId: 1}, {NodeId: 2}, {NodeId: 3}, {NodeId: 4}},
		PlacementGroup: voters(1, 1, 2, 3),
		Ranges:         []*flotillapb.RangeDescriptor{voters(2, 1, 2, 3), voters(3, 2, 3, 4)},
	}
	if warming, _, _ := d.DeadStoreCheck(meta, 3); !warming {
		t.Fatal("a view younger than the liveness window is not warming")
	}
	clock.Advance(5 * time.Second)
	for _, s := range []uint64{1, 2, 3} {
		d.ObserveStore(&flotillapb.StoreHeartbeatRequest{NodeId: s})
	}
	if warming, live, _ := d.DeadStoreCheck(meta, 3); warming || !live {
		t.Fatalf("store 3, heartbeating: warming %v live %v; want live", warming, live)
	}
	// Store 3 falls silent; store 4 never spoke.
	clock.Advance(4 * time.Second)
	for _, s := range []uint64{1, 2} {
		d.ObserveStore(&flotillapb.StoreHeartbeatRequest{NodeId: s})
	}
	clock.Advance(2 * time.Second)
	warming, live, lost := d.DeadStoreCheck(meta, 3)
	if warming || live || !slices.Equal(lost, []uint64{3}) {
		t.Fatalf("store 3, silent: warming %v live %v lost %v; want range 3 (voters 2, 3, 4) named", warming, live, lost)
	}
}
