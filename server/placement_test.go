// Copyright 2026 The Flotilla Authors. All rights reserved.

package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flotilladb/flotilla"
	"github.com/flotilladb/flotilla/internal/testutil"
	"github.com/flotilladb/flotilla/rpc"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"github.com/flotilladb/flotilla/server"
)

// placementTimings make the placement driver act in seconds, not minutes.
func placementConfig(dir string, join ...string) server.Config {
	return server.Config{Dir: dir, Join: join, HeartbeatInterval: 100 * time.Millisecond,
		LivenessWindow: time.Second, StoreDownTimeout: 3 * time.Second}
}

func placementClient(t testing.TB, n *server.Node) flotillapb.PlacementClient {
	t.Helper()
	pool := rpc.NewPool(rpc.PoolConfig{})
	t.Cleanup(func() { _ = pool.Close() })
	conn, err := pool.Conn(n.Addr())
	if err != nil {
		t.Fatal(err)
	}
	return flotillapb.NewPlacementClient(conn)
}

// rangeStores returns the stores of a range's voters and learners, sorted.
func rangeStores(ctx context.Context, pc flotillapb.PlacementClient, rangeID uint64) (voters, learners []uint64, leader uint64, err error) {
	resp, err := pc.ListRanges(ctx, &flotillapb.ListRangesRequest{})
	if err != nil {
		return nil, nil, 0, err
	}
	for _, r := range resp.GetRanges() {
		if r.GetDescriptor_().GetRangeId() != rangeID {
			continue
		}
		for _, rep := range r.GetDescriptor_().GetReplicas() {
			if rep.GetType() == flotillapb.ReplicaType_LEARNER {
				learners = append(learners, rep.GetStoreId())
			} else {
				voters = append(voters, rep.GetStoreId())
			}
		}
		slices.Sort(voters)
		slices.Sort(learners)
		return voters, learners, r.GetLeader().GetStoreId(), nil
	}
	return nil, nil, 0, fmt.Errorf("range %d not listed", rangeID)
}

// placementGroupStores returns the stores holding a replica of the
// placement group, from the nodes' own status.
func placementGroupStores(nodes []*server.Node) []uint64 {
	var out []uint64
	for _, n := range nodes {
		if n == nil {
			continue
		}
		for _, r := range n.Status(false).GetReplicas() {
			if r.GetGroupId() == 1 {
				out = append(out, n.NodeID())
			}
		}
	}
	slices.Sort(out)
	return out
}

// TestPlacementOperators runs the placement driver in process: the first
// range and the placement group up-replicate to three with no command;
// admin operators move the leadership and replicas; a decommissioned node
// sheds everything; a node down past the store-down timeout is replaced,
// and when it comes back it drops the replicas removed meanwhile.
func TestPlacementOperators(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	n1 := openNode(t, placementConfig(t.TempDir()))
	if _, err := n1.Init(ctx); err != nil {
		t.Fatal(err)
	}
	nodes := []*server.Node{n1}
	for range 4 {
		nodes = append(nodes, openNode(t, placementConfig(t.TempDir(), n1.Addr())))
	}
	for _, n := range nodes {
		if err := n.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
	}
	pc := placementClient(t, n1)
	const r = 2
	testutil.SucceedsWithin(t, time.Minute, func() error {
		v, l, leader, err := rangeStores(ctx, pc, r)
		if err != nil {
			return err
		}
		if len(v) != 3 || len(l) != 0 || leader == 0 {
			return fmt.Errorf("range %d: voters %v learners %v leader %d", r, v, l, leader)
		}
		if pg := placementGroupStores(nodes); len(pg) != 3 {
			return fmt.Errorf("placement group on %v", pg)
		}
		return nil
	})
	if err := n1.Put(ctx, []byte("a"), []byte("1")); err != nil {
		t.Fatal(err)
	}

	// Admin: move the leadership to another voter.
	v, _, leader, _ := rangeStores(ctx, pc, r)
	target := v[0]
	if target == leader {
		target = v[1]
	}
	if _, err := pc.TransferLeader(ctx, &flotillapb.TransferLeaderRequest{RangeId: r, StoreId: target}); err != nil {
		t.Fatal(err)
	}
	testutil.SucceedsWithin(t, 30*time.Second, func() error {
		if _, _, l, err := rangeStores(ctx, pc, r); err != nil || l != target {
			return fmt.Errorf("leader %d, want %d (%v)", l, target, err)
		}
		return nil
	})
	// Admin: a replica on a store without one, then the checker trims the
	// extra voter.
	var spare uint64
	for _, n := range nodes {
		if !slices.Contains(v, n.NodeID()) {
			spare = n.NodeID()
		}
	}
	if _, err := pc.AddReplica(ctx, &flotillapb.AddReplicaRequest{RangeId: r, StoreId: spare}); err != nil {
		t.Fatal(err)
	}
	testutil.SucceedsWithin(t, 30*time.Second, func() error {
		v, l, _, err := rangeStores(ctx, pc, r)
		if err != nil || !slices.Contains(v, spare) || len(v) != 3 || len(l) != 0 {
			return fmt.Errorf("voters %v learners %v, want 3 voters including %d (%v)", v, l, spare, err)
		}
		return nil
	})
	// Bad admin requests change nothing.
	for _, bad := range []error{
		func() error {
			_, err := pc.TransferLeader(ctx, &flotillapb.TransferLeaderRequest{RangeId: r, StoreId: 99})
			return err
		}(),
		func() error {
			_, err := pc.AddReplica(ctx, &flotillapb.AddReplicaRequest{RangeId: 77, StoreId: 1})
			return err
		}(),
		func() error {
			_, err := pc.SetStoreState(ctx, &flotillapb.SetStoreStateRequest{StoreId: 1, State: flotillapb.StoreState_STORE_DECOMMISSIONED})
			return err
		}(),
	} {
		if fe := rpc.ErrorFromStatus(bad, false); fe.GetInvalidArgument() == nil {
			t.Errorf("bad admin request: %v, want InvalidArgument", bad)
		}
	}

	// Decommission the leader's node: everything moves off it.
	_, _, leader, _ = rangeStores(ctx, pc, r)
	if _, err := pc.SetStoreState(ctx, &flotillapb.SetStoreStateRequest{StoreId: leader, State: flotillapb.StoreState_STORE_DECOMMISSIONING}); err != nil {
		t.Fatal(err)
	}
	testutil.SucceedsWithin(t, time.Minute, func() error {
		resp, err := pc.SetStoreState(ctx, &flotillapb.SetStoreStateRequest{StoreId: leader, State: flotillapb.StoreState_STORE_DECOMMISSIONING})
		if err != nil {
			return err
		}
		if resp.GetStore().GetNode().GetState() != flotillapb.StoreState_STORE_DECOMMISSIONED {
			return fmt.Errorf("store %d: %v with %d replicas", leader, resp.GetStore().GetNode().GetState(), resp.GetReplicas())
		}
		return nil
	})
	v, _, _, _ = rangeStores(ctx, pc, r)
	if slices.Contains(v, leader) || len(v) != 3 || slices.Contains(placementGroupStores(nodes), leader) {
		t.Fatalf("after decommissioning store %d: range on %v, placement group on %v", leader, v, placementGroupStores(nodes))
	}
	if got, err := nodes[0].Get(ctx, []byte("a")); err != nil || string(got) != "1" {
		t.Fatalf("get after moves: %q %v", got, err)
	}

	// A node down past the store-down timeout: its replicas are rebuilt on
	// the others. Then the placement group's leader goes down too:
	// another takes over and scheduling goes on.
	live := slices.DeleteFunc(slices.Clone(nodes), func(n *server.Node) bool { return n.NodeID() == leader })
	stopNode := func(id uint64) {
		for i, n := range live {
			if n.NodeID() == id {
				if err := n.Close(); err != nil {
					t.Fatal(err)
				}
				live = slices.Delete(live, i, i+1)
				return
			}
		}
		t.Fatalf("node %d is not running", id)
	}
	pgLeader := func() uint64 {
		for _, n := range live {
			for _, rs := range n.Status(false).GetReplicas() {
				if rs.GetGroupId() == 1 && rs.GetLeaderReplicaId() == rs.GetReplicaId() {
					return n.NodeID()
				}
			}
		}
		return 0
	}
	// The driver's leader shows its view in /status and /metrics.
	testutil.SucceedsWithin(t, 10*time.Second, func() error {
		for _, n := range live {
			pv := n.Status(false).GetPlacement()
			if pv == nil {
				continue
			}
			if len(pv.GetStores()) != 5 || pv.GetOperators().GetCounts()["finished"] == 0 || pv.GetStores()[0].GetSecondsSinceHeartbeat() < 0 {
				return fmt.Errorf("placement view: %v", pv)
			}
			resp, err := http.Get("http://" + n.HTTPAddr() + "/metrics")
			if err != nil {
				return err
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				return err
			}
			for _, want := range []string{`flotilla_placement_operators{state="finished"}`, `flotilla_placement_replica_balance`,
				`flotilla_placement_store_heartbeat_age_seconds{store="1"}`} {
				if !strings.Contains(string(body), want) {
					return fmt.Errorf("/metrics lacks %s", want)
				}
			}
			return nil
		}
		return fmt.Errorf("no node shows the placement view")
	})
	v, _, _, _ = rangeStores(ctx, pc, r)
	var victim uint64
	for _, id := range v {
		if id != pgLeader() {
			victim = id
		}
	}
	stopNode(victim)
	pc = placementClient(t, live[0])
	healed := func(gone ...uint64) func() error {
		return func() error {
			v, l, leader, err := rangeStores(ctx, pc, r)
			if err != nil {
				return err
			}
			if len(v) != 3 || len(l) != 0 || leader == 0 || slices.ContainsFunc(v, func(s uint64) bool { return slices.Contains(gone, s) }) {
				return fmt.Errorf("range %d: voters %v learners %v leader %d; stores %v are gone", r, v, l, leader, gone)
			}
			return nil
		}
	}
	testutil.SucceedsWithin(t, time.Minute, healed(victim))
	before := pgLeader()
	if before == 0 {
		t.Fatal("no placement group leader")
	}
	stopNode(before)
	pc = placementClient(t, live[0])
	testutil.SucceedsWithin(t, time.Minute, func() error {
		if l := pgLeader(); l == 0 || l == before {
			return fmt.Errorf("placement group leader %d", l)
		}
		return nil
	})
	// Only 2 stores are left up: the range keeps the 2 voters it can,
	// and serves. Recommissioning the decommissioned store gives it a
	// third again.
	if _, err := pc.SetStoreState(ctx, &flotillapb.SetStoreStateRequest{StoreId: leader, State: flotillapb.StoreState_STORE_UP}); err != nil {
		t.Fatal(err)
	}
	testutil.SucceedsWithin(t, time.Minute, healed(victim, before))
	if got, err := live[0].Get(ctx, []byte("a")); err != nil || string(got) != "1" {
		t.Fatalf("get after failures: %q %v", got, err)
	}

	// The first node stopped comes back: its replicas were removed while
	// it was down, so no configuration change reaches them. It destroys
	// them (they would campaign forever) and serves placement requests.
	var victimDir string
	for _, n := range nodes {
		if n.NodeID() == victim {
			victimDir = n.Dir()
		}
	}
	back := openNode(t, placementConfig(victimDir))
	if err := back.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	bpc := placementClient(t, back)
	testutil.SucceedsWithin(t, time.Minute, func() error {
		for _, rs := range back.Status(false).GetReplicas() {
			if rs.GetLeaderReplicaId() == 0 {
				return fmt.Errorf("node %d holds replica %d of group %d with no leader", victim, rs.GetReplicaId(), rs.GetGroupId())
			}
		}
		if _, err := bpc.ListStores(ctx, &flotillapb.ListStoresRequest{}); err != nil {
			return fmt.Errorf("placement request through the node that came back: %v", err)
		}
		return nil
	})
	if got, err := back.Get(ctx, []byte("a")); err != nil || string(got) != "1" {
		t.Fatalf("get through the node that came back: %q %v", got, err)
	}
	resp, err := pc.ListOperators(ctx, &flotillapb.ListOperatorsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("operators: %v", resp.GetCounts())
}

// tooManySplitKeys returns one key more than an init takes (20000).
func tooManySplitKeys() [][]byte {
	keys := make([][]byte, 20001)
	for i := range keys {
		keys[i] = fmt.Appendf(nil, "k%06d", i)
	}
	return keys
}

// TestInitSplitKeys: bad split keys are refused with InvalidArgument and
// leave the node uninitialized; good ones start the cluster with a range
// ending at each key, and keys in each range are served.
func TestInitSplitKeys(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n := openNode(t, server.Config{Dir: t.TempDir()})
	for name, keys := range map[string][][]byte{
		"empty key": {[]byte("a"), {}},
		"twice":     {[]byte("b"), []byte("a"), []byte("b")},
		"too long":  {make([]byte, 5000)},
		"too many":  tooManySplitKeys(),
	} {
		if _, err := n.Init(ctx, keys...); !errors.Is(err, flotilla.ErrInvalidArgument) {
			t.Errorf("%s: %v, want InvalidArgument", name, err)
		}
	}
	if n.ClusterID() != "" {
		t.Fatal("a refused init initialized the node")
	}
	if _, err := n.Init(ctx, []byte("m"), []byte("f")); err != nil {
		t.Fatal(err)
	}
	var bounds []string
	for _, r := range n.Status(false).GetReplicas() {
		if d := r.GetDescriptor_(); r.GetKind() == "range" {
			bounds = append(bounds, string(d.GetStartKey())+"-"+string(d.GetEndKey()))
		}
	}
	slices.Sort(bounds)
	if fmt.Sprint(bounds) != "[-f f-m m-]" {
		t.Fatalf("ranges %v, want [-f f-m m-]", bounds)
	}
	for _, k := range []string{"a", "f", "g", "z"} {
		if err := n.Put(ctx, []byte(k), []byte(k)); err != nil {
			t.Fatalf("put %s: %v", k, err)
		}
		if v, err := n.Get(ctx, []byte(k)); err != nil || string(v) != k {
			t.Fatalf("get %s: %q %v", k, v, err)
		}
	}
}
