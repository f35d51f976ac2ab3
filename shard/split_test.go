// Copyright 2026 The Flotilla Authors. All rights reserved.

package shard_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/flotilladb/flotilla/engine"
	"github.com/flotilladb/flotilla/internal/testcluster"
	"github.com/flotilladb/flotilla/internal/testutil"
	"github.com/flotilladb/flotilla/multiraft"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"github.com/flotilladb/flotilla/shard"
	"google.golang.org/protobuf/proto"
)

// splitCmd splits desc at key into range newID, with replica IDs of
// sequence seq on the same stores.
func splitCmd(desc *flotillapb.RangeDescriptor, key string, newID multiraft.GroupID, seq uint32) *flotillapb.SplitCommand {
	sc := &flotillapb.SplitCommand{SplitKey: []byte(key), NewRangeId: uint64(newID), ConfVer: desc.GetEpoch().GetConfVer()}
	for _, rd := range desc.GetReplicas() {
		sc.NewReplicaIds = append(sc.NewReplicaIds, uint64(multiraft.MakeReplicaID(multiraft.NodeID(rd.GetStoreId()), seq)))
	}
	return sc
}

// split runs a split through range id's leader and returns the left and
// right descriptors.
func split(t *testing.T, k *kvCluster, ctx context.Context, id multiraft.GroupID, version uint64, sc *flotillapb.SplitCommand) (left, right *flotillapb.RangeDescriptor) {
	t.Helper()
	descs, err := do(k, ctx, id, func(ctx context.Context, s *shard.Store) ([]*flotillapb.RangeDescriptor, error) {
		return s.Split(ctx, id, version, sc)
	})
	if err != nil {
		t.Fatalf("split of range %d at %q: %v", id, sc.GetSplitKey(), err)
	}
	if len(descs) != 2 {
		t.Fatalf("split returned %d descriptors", len(descs))
	}
	return descs[0], descs[1]
}

// checkNoOverlap fails if a store holds overlapping ranges.
func checkNoOverlap(t *testing.T, k *kvCluster, nodes ...multiraft.NodeID) {
	t.Helper()
	for _, n := range nodes {
		rs := k.Store(n).Replicas()
		for i := 1; i < len(rs); i++ {
			a, b := rs[i-1].Descriptor(), rs[i].Descriptor()
			if len(a.GetEndKey()) == 0 || bytes.Compare(a.GetEndKey(), b.GetStartKey()) > 0 {
				t.Fatalf("node %d holds overlapping ranges %v and %v", n, a, b)
			}
		}
	}
}

func get(t *testing.T, k *kvCluster, ctx context.Context, id multiraft.GroupID, key string) string {
	t.Helper()
	resp, err := do(k, ctx, id, func(ctx context.Context, s *shard.Store) (*flotillapb.GetResponse, error) {
		return s.Get(ctx, &flotillapb.GetRequest{Header: hdr(id), Key: []byte(key)})
	})
	if err != nil {
		t.Fatalf("get %q from range %d: %v", key, id, err)
	}
	return string(resp.GetValue())
}

// TestSplit: a split narrows the range and creates the right-hand one on
// every replica, with the data's statistics divided and the same data;
// the right-hand range is led at once by the left's leader; both serve;
// a request routed at the old version gets EpochNotMatch with both new
// descriptors; and both survive a restart of every node.
func TestSplit(t *testing.T) {
	k := newKVCluster(t, clusterOptions{Options: testcluster.Options{Nodes: 3}})
	const rid, rhs = 3, 7
	desc := k.bootstrapRange(rid, "", "", 1, 2, 3)
	ctx := testCtx(t)
	putAll(t, k, ctx, rid, 0, 100)
	_, _, before, _ := k.waitConverged(rid, 1, 2, 3)
	k.makeLeader(rid, 2)

	left, right := split(t, k, ctx, rid, 1, splitCmd(desc, "key050", rhs, 2))
	if string(left.GetEndKey()) != "key050" || string(right.GetStartKey()) != "key050" || len(right.GetEndKey()) != 0 ||
		left.GetEpoch().GetVersion() != 2 || right.GetEpoch().GetVersion() != 2 || right.GetRangeId() != rhs {
		t.Fatalf("after split: left %v, right %v", left, right)
	}
	if l := k.WaitLeader(rhs); l != 2 {
		t.Fatalf("the right-hand range is led by node %d, the left's leader is 2", l)
	}
	_, _, ls, ld := k.waitConverged(rid, 1, 2, 3)
	_, _, rs, rd := k.waitConverged(rhs, 1, 2, 3)
	if !proto.Equal(ld, left) || !proto.Equal(rd, right) {
		t.Fatalf("replicas hold %v and %v", ld, rd)
	}
	if ls.Keys != 50 || rs.Keys != 50 || ls.Keys+rs.Keys != before.Keys ||
		ls.KeyBytes+rs.KeyBytes != before.KeyBytes || ls.ValueBytes+rs.ValueBytes != before.ValueBytes {
		t.Fatalf("stats before %+v, after left %+v right %+v", before, ls, rs)
	}
	checkNoOverlap(t, k, 1, 2, 3)
	for _, n := range []multiraft.NodeID{1, 2, 3} {
		if r, ok := k.Store(n).LookupKey([]byte("key077")); !ok || r.RangeID() != rhs {
			t.Fatalf("node %d does not find key077 in range %d", n, rhs)
		}
	}

	if v := get(t, k, ctx, rhs, "key077"); v != "value77" {
		t.Fatalf("key077 = %q in the right-hand range", v)
	}
	if v := get(t, k, ctx, rid, "key017"); v != "value17" {
		t.Fatalf("key017 = %q in the left-hand range", v)
	}
	// Writes on both sides.
	for _, w := range []struct {
		id  multiraft.GroupID
		key string
	}{{rid, "key010"}, {rhs, "key090"}, {rhs, "zzz"}} {
		if _, err := do(k, ctx, w.id, func(ctx context.Context, s *shard.Store) (*flotillapb.PutResponse, error) {
			return s.Put(ctx, &flotillapb.PutRequest{Header: hdr(w.id), Key: []byte(w.key), Value: []byte("new")})
		}); err != nil {
			t.Fatalf("put %q in range %d: %v", w.key, w.id, err)
		}
	}
	// The left range refuses the right's keys; a request at the old
	// version learns both halves.
	_, err := do(k, ctx, rid, func(ctx context.Context, s *shard.Store) (*flotillapb.PutResponse, error) {
		return s.Put(ctx, &flotillapb.PutRequest{Header: hdr(rid), Key: []byte("key090"), Value: []byte("x")})
	})
	if pe := pbError(t, err); pe.GetKeyNotInRange() == nil {
		t.Fatalf("put of a right-hand key in the left range: %v", pe)
	}
	_, err = do(k, ctx, rid, func(ctx context.Context, s *shard.Store) (*flotillapb.GetResponse, error) {
		return s.Get(ctx, &flotillapb.GetRequest{Header: &flotillapb.RequestHeader{RangeId: rid, Version: 1}, Key: []byte("key010")})
	})
	pe := pbError(t, err)
	if cur := pe.GetEpochNotMatch().GetCurrent(); len(cur) != 2 || cur[0].GetRangeId() != rid || cur[1].GetRangeId() != rhs {
		t.Fatalf("request at the old version: %v", pe)
	}
	// A second split of the same command is refused (the version moved).
	_, err = do(k, ctx, rid, func(ctx context.Context, s *shard.Store) ([]*flotillapb.RangeDescriptor, error) {
		return s.Split(ctx, rid, 1, splitCmd(desc, "key020", 8, 3))
	})
	if pe := pbError(t, err); pe.GetEpochNotMatch() == nil {
		t.Fatalf("split at an old version: %v", pe)
	}

	_, lsum, _, _ := k.waitConverged(rid, 1, 2, 3)
	_, rsum, _, _ := k.waitConverged(rhs, 1, 2, 3)
	for _, n := range []multiraft.NodeID{1, 2, 3} {
		k.Stop(n)
	}
	for _, n := range []multiraft.NodeID{1, 2, 3} {
		k.restart(n)
	}
	if _, s, _, d := k.waitConverged(rid, 1, 2, 3); s != lsum || !proto.Equal(d.GetEpoch(), left.GetEpoch()) {
		t.Fatal("the left range changed across a restart")
	}
	if _, s, _, _ := k.waitConverged(rhs, 1, 2, 3); s != rsum {
		t.Fatal("the right range changed across a restart")
	}
	checkNoOverlap(t, k, 1, 2, 3)
}

// TestSplitRejected: a split that does not fit the range changes nothing.
func TestSplitRejected(t *testing.T) {
	k := newKVCluster(t, clusterOptions{Options: testcluster.Options{Nodes: 3}})
	const rid = 3
	desc := k.bootstrapRange(rid, "b", "m", 1, 2, 3)
	ctx := testCtx(t)
	putAll(t, k, ctx, rid, 0, 3) // "key..." lies in [b, m)
	_, sum, _, _ := k.waitConverged(rid, 1, 2, 3)
	bad := map[string]*flotillapb.SplitCommand{
		"at the start":   splitCmd(desc, "b", 7, 2),
		"outside":        splitCmd(desc, "z", 7, 2),
		"empty key":      splitCmd(desc, "", 7, 2),
		"own ID":         splitCmd(desc, "f", rid, 2),
		"placement ID":   splitCmd(desc, "f", 1, 2),
		"wrong conf_ver": func() *flotillapb.SplitCommand { sc := splitCmd(desc, "f", 7, 2); sc.ConfVer = 9; return sc }(),
		"too few IDs": func() *flotillapb.SplitCommand {
			sc := splitCmd(desc, "f", 7, 2)
			sc.NewReplicaIds = sc.NewReplicaIds[:2]
			return sc
		}(),
		"ID on wrong store": func() *flotillapb.SplitCommand {
			sc := splitCmd(desc, "f", 7, 2)
			sc.NewReplicaIds[0] = sc.NewReplicaIds[1]
			return sc
		}(),
	}
	for name, sc := range bad {
		_, err := do(k, ctx, rid, func(ctx context.Context, s *shard.Store) ([]*flotillapb.RangeDescriptor, error) {
			return s.Split(ctx, rid, 1, sc)
		})
		pe := pbError(t, err)
		if pe.GetOutcome() != flotillapb.Outcome_NOT_APPLIED || pe.GetInvalidArgument() == nil && pe.GetKeyNotInRange() == nil {
			t.Errorf("%s: %v", name, pe)
		}
	}
	if _, s, _, d := k.waitConverged(rid, 1, 2, 3); s != sum || !proto.Equal(d, desc) {
		t.Fatalf("rejected splits changed the range: %v", d)
	}
	for _, n := range []multiraft.NodeID{1, 2, 3} {
		if _, ok := k.Store(n).Replica(7); ok {
			t.Fatalf("node %d has a replica of a range no split made", n)
		}
	}
}

// TestSplitBeforeLocalApply: the right-hand range's messages (appends, a
// vote in a new election) reach a replica whose store has not applied the
// split yet. They create an uninitialized replica there, which holds no
// data and no bounds (its span still belongs to the left range); when the
// split applies, it takes that replica's place, keeping its vote, and the
// ranges converge with no overlap.
func TestSplitBeforeLocalApply(t *testing.T) {
	const rid, rhs = 3, 7
	var (
		mu      sync.Mutex
		hold    = make(chan struct{})
		holding = make(chan struct{}, 1)
		armed   bool
	)
	k := newKVCluster(t, clusterOptions{
		Options: testcluster.Options{Nodes: 3},
		beforeApply: func(node multiraft.NodeID, group multiraft.GroupID, cmds []multiraft.Command) {
			if node != 3 || group != rid {
				return
			}
			for _, c := range cmds {
				var kc flotillapb.KVCommand
				if c.Kind == multiraft.CommandNormal && proto.Unmarshal(c.Data, &kc) == nil && kc.GetSplit() != nil {
					mu.Lock()
					a := armed
					armed = false
					mu.Unlock()
					if a {
						holding <- struct{}{}
						<-hold
					}
				}
			}
		},
	})
	var release sync.Once
	unblock := func() { release.Do(func() { close(hold) }) }
	t.Cleanup(unblock) // before the cluster's cleanup, which needs the worker
	desc := k.bootstrapRange(rid, "", "", 1, 2, 3)
	ctx := testCtx(t)
	putAll(t, k, ctx, rid, 0, 40)
	k.makeLeader(rid, 1)
	mu.Lock()
	armed = true
	mu.Unlock()
	split(t, k, ctx, rid, 1, splitCmd(desc, "key020", rhs, 2))
	<-holding // node 3's worker is inside the split's apply
	// The right-hand range runs on nodes 1 and 2, and reaches node 3.
	putRHS := func(key string) {
		if _, err := do(k, ctx, rhs, func(ctx context.Context, s *shard.Store) (*flotillapb.PutResponse, error) {
			return s.Put(ctx, &flotillapb.PutRequest{Header: hdr(rhs), Key: []byte(key), Value: []byte("v")})
		}); err != nil {
			t.Fatal(err)
		}
	}
	putRHS("key100")
	testutil.SucceedsSoon(t, func() error {
		if _, ok := k.Node(3).Host().Status(rhs); !ok {
			return fmt.Errorf("no uninitialized replica of range %d on node 3 yet", rhs)
		}
		return nil
	})
	if r, ok := k.Store(3).Replica(rhs); ok && r.Descriptor() != nil {
		t.Fatal("the right-hand replica on node 3 is initialized before the split applied there")
	}
	// A new election: node 3's uninitialized replica may vote in it.
	k.makeLeader(rhs, 2)
	putRHS("key101")
	checkNoOverlap(t, k, 3)
	unblock()

	k.waitConverged(rid, 1, 2, 3)
	_, _, st, _ := k.waitConverged(rhs, 1, 2, 3)
	if st.Keys != 22 {
		t.Fatalf("right-hand range stats %+v, want 22 keys", st)
	}
	checkNoOverlap(t, k, 1, 2, 3)
	putRHS("key102")
	k.waitConverged(rhs, 1, 2, 3)
}

// TestSplitMissedByPartitionedReplica: a replica cut off during a split,
// and during enough writes that the log is truncated past the split, gets
// a snapshot of the left range after it: narrower than its own. It keeps
// the left part, drops the rest, and gets the right-hand range by a
// snapshot of its own once its span is free; everything converges with no
// overlap, and the dropped data is gone from its engine.
func TestSplitMissedByPartitionedReplica(t *testing.T) {
	const rid, rhs = 3, 7
	k := newKVCluster(t, clusterOptions{Options: testcluster.Options{
		Nodes:     3,
		Configure: func(c *multiraft.Config) { c.RaftLogTruncationThreshold = 8 },
	}})
	desc := k.bootstrapRange(rid, "", "", 1, 2, 3)
	ctx := testCtx(t)
	putAll(t, k, ctx, rid, 0, 40)
	k.waitConverged(rid, 1, 2, 3)
	k.makeLeader(rid, 1)
	k.Net.Partition([]multiraft.NodeID{3}, []multiraft.NodeID{1, 2})
	split(t, k, ctx, rid, 1, splitCmd(desc, "key020", rhs, 2))
	splitIndex := func() uint64 {
		st, _ := k.Node(1).Host().Status(rid)
		return st.Applied
	}()
	// Writes on both sides, enough to truncate both logs.
	for i := range 30 {
		for _, w := range []struct {
			id  multiraft.GroupID
			key string
		}{{rid, fmt.Sprintf("key01%d", i%10)}, {rhs, fmt.Sprintf("key0%d", 50+i)}} {
			if _, err := do(k, ctx, w.id, func(ctx context.Context, s *shard.Store) (*flotillapb.PutResponse, error) {
				return s.Put(ctx, &flotillapb.PutRequest{Header: hdr(w.id), Key: []byte(w.key), Value: fmt.Appendf(nil, "v%d", i)})
			}); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A key only the cut-off replica still holds in its left range's old
	// span: deleted on the others after the split, so gone once it heals.
	if _, err := do(k, ctx, rhs, func(ctx context.Context, s *shard.Store) (*flotillapb.DeleteResponse, error) {
		return s.Delete(ctx, &flotillapb.DeleteRequest{Header: hdr(rhs), Key: []byte("key039")})
	}); err != nil {
		t.Fatal(err)
	}
	// The leader truncates its log past the split (asynchronously, on a
	// tick when idle; a quiescent range does not tick, so keep writing):
	// only then must the cut-off replica catch up by snapshot.
	// On a loaded machine the truncation may not come (a snapshot in
	// flight to the cut-off replica pins it): the replica then catches up
	// through the log, the other way to miss a split.
	truncated := testutil.SucceedsWithinErr(15*time.Second, func() error {
		if _, err := do(k, ctx, rid, func(ctx context.Context, s *shard.Store) (*flotillapb.PutResponse, error) {
			return s.Put(ctx, &flotillapb.PutRequest{Header: hdr(rid), Key: []byte("key010"), Value: []byte("again")})
		}); err != nil {
			return err
		}
		v, err := k.Node(1).Engine().Get(engine.RaftTruncatedStateKey(rid))
		if err != nil || len(v) != 16 {
			return fmt.Errorf("no truncated state (%v)", err)
		}
		if idx := binary.BigEndian.Uint64(v); idx <= splitIndex {
			return fmt.Errorf("log truncated at %d, the split is at %d", idx, splitIndex)
		}
		return nil
	})
	snaps := k.Net.Snapshots()
	k.Net.Heal()
	_, _, _, ld := k.waitConverged(rid, 1, 2, 3)
	_, _, rs, _ := k.waitConverged(rhs, 1, 2, 3)
	if string(ld.GetEndKey()) != "key020" || rs.Keys != 49 {
		t.Fatalf("left %v, right stats %+v", ld, rs)
	}
	switch {
	case truncated != nil:
		t.Logf("the log was not truncated past the split (%v): the cut-off replica caught up through the log", truncated)
	case k.Net.Snapshots() == snaps:
		t.Fatal("the cut-off replica caught up without a snapshot")
	}
	checkNoOverlap(t, k, 1, 2, 3)
	ek, err := engine.UserKey([]byte("key039"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := k.Node(3).Engine().Get(ek); err == nil {
		t.Fatal("key039, deleted after the split, is still in node 3's engine")
	}
}

// TestSplitCrash: every node crashes (keeping only synced writes) right
// after a split and writes to both halves; after the restart both ranges
// hold every acknowledged write and converge.
func TestSplitCrash(t *testing.T) {
	const rid, rhs = 3, 7
	k := newKVCluster(t, clusterOptions{Options: testcluster.Options{Nodes: 3, Storage: testcluster.Crashable}})
	desc := k.bootstrapRange(rid, "", "", 1, 2, 3)
	ctx := testCtx(t)
	putAll(t, k, ctx, rid, 0, 20)
	split(t, k, ctx, rid, 1, splitCmd(desc, "key010", rhs, 2))
	for _, w := range []struct {
		id  multiraft.GroupID
		key string
	}{{rid, "key001"}, {rhs, "key015"}} {
		if _, err := do(k, ctx, w.id, func(ctx context.Context, s *shard.Store) (*flotillapb.PutResponse, error) {
			return s.Put(ctx, &flotillapb.PutRequest{Header: hdr(w.id), Key: []byte(w.key), Value: []byte("after")})
		}); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []multiraft.NodeID{1, 2, 3} {
		k.Crash(n)
		k.attach(n)
	}
	_, _, ls, ld := k.waitConverged(rid, 1, 2, 3)
	_, _, rs, _ := k.waitConverged(rhs, 1, 2, 3)
	if string(ld.GetEndKey()) != "key010" || ls.Keys != 10 || rs.Keys != 10 {
		t.Fatalf("after the crash: left %v %+v, right %+v", ld, ls, rs)
	}
	if v := get(t, k, ctx, rid, "key001"); v != "after" {
		t.Fatalf("key001 = %q", v)
	}
	if v := get(t, k, ctx, rhs, "key015"); v != "after" {
		t.Fatalf("key015 = %q", v)
	}
	checkNoOverlap(t, k, 1, 2, 3)
}
