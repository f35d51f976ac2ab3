// Copyright 2026 The Flotilla Authors. All rights reserved.

package server_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flotilladb/flotilla/internal/testutil"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"github.com/flotilladb/flotilla/server"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestRemoveStore: remove-store (SetStoreState decommissioning, dead) is
// refused for a live store, and for a dead one rebuilds its replicas of
// the ranges and of the placement group on the other stores at once: the
// store-down timeout here is ten minutes, so nothing else would.
func TestRemoveStore(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cfg := func(join ...string) server.Config {
		c := placementConfig(t.TempDir(), join...)
		c.StoreDownTimeout = 10 * time.Minute
		return c
	}
	n1 := openNode(t, cfg())
	if _, err := n1.Init(ctx); err != nil {
		t.Fatal(err)
	}
	nodes := []*server.Node{n1}
	for range 3 {
		nodes = append(nodes, openNode(t, cfg(n1.Addr())))
	}
	for _, n := range nodes {
		if err := n.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
	}
	const r = 2
	pc := placementClient(t, n1)
	var victim uint64
	testutil.SucceedsWithin(t, time.Minute, func() error {
		v, l, leader, err := rangeStores(ctx, pc, r)
		if err != nil {
			return err
		}
		pg := placementGroupStores(nodes)
		if len(v) != 3 || len(l) != 0 || leader == 0 || len(pg) != 3 {
			return fmt.Errorf("range %d: voters %v learners %v leader %d; placement group on %v", r, v, l, leader, pg)
		}
		// The victim holds a voter of the range, and of the placement
		// group if it can, and is neither node 1 (the test's client) nor
		// the placement group's leader.
		victim = 0
		for _, s := range v {
			if s != 1 && s != placementLeaderOf(nodes) && (victim == 0 || slices.Contains(pg, s)) {
				victim = s
			}
		}
		if victim == 0 {
			return fmt.Errorf("no victim among voters %v (leader %d), placement group %v led by %d", v, leader, pg, placementLeaderOf(nodes))
		}
		return nil
	})
	for i := range 20 {
		if err := n1.Put(ctx, fmt.Appendf(nil, "k%02d", i), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	removeStore := func(id uint64) (*flotillapb.SetStoreStateResponse, error) {
		return pc.SetStoreState(ctx, &flotillapb.SetStoreStateRequest{StoreId: id, State: flotillapb.StoreState_STORE_DECOMMISSIONING, Dead: true})
	}
	testutil.SucceedsWithin(t, 30*time.Second, func() error {
		_, err := removeStore(victim)
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "is live") {
			// (Unavailable while the driver's view is new.)
			return fmt.Errorf("remove-store of live store %d: %v; want refused as live", victim, err)
		}
		return nil
	})
	if _, err := removeStore(99); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "not a member") {
		t.Fatalf("remove-store of an unknown store: %v", err)
	}
	if _, err := pc.SetStoreState(ctx, &flotillapb.SetStoreStateRequest{StoreId: victim, State: flotillapb.StoreState_STORE_UP, Dead: true}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("a dead store set up: %v; want refused", err)
	}
	assertState := func(want flotillapb.StoreState) {
		t.Helper()
		resp, err := pc.ListStores(ctx, &flotillapb.ListStoresRequest{})
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, s := range resp.GetStores() {
			if s.GetNode().GetNodeId() == victim {
				found = true
				if s.GetNode().GetState() != want {
					t.Fatalf("store %d is %v; want %v (refusals change nothing)", victim, s.GetNode().GetState(), want)
				}
			}
		}
		if !found {
			t.Fatalf("store %d is not listed", victim)
		}
	}
	assertState(flotillapb.StoreState_STORE_UP)

	for i, n := range nodes {
		if n.NodeID() == victim {
			if err := n.Close(); err != nil {
				t.Fatal(err)
			}
			nodes[i] = nil
		}
	}
	// Once the driver no longer counts it live, the removal is taken.
	testutil.SucceedsWithin(t, 30*time.Second, func() error {
		_, err := removeStore(victim)
		return err
	})
	testutil.SucceedsWithin(t, 2*time.Minute, func() error {
		resp, err := removeStore(victim) // asking again only reads the state
		if err != nil {
			return err
		}
		if st := resp.GetStore().GetNode().GetState(); st != flotillapb.StoreState_STORE_DECOMMISSIONED || resp.GetReplicas() != 0 {
			return fmt.Errorf("store %d: %v, %d replicas left", victim, st, resp.GetReplicas())
		}
		v, l, _, err := rangeStores(ctx, pc, r)
		if err != nil {
			return err
		}
		if len(v) != 3 || len(l) != 0 || slices.Contains(v, victim) {
			return fmt.Errorf("range %d: voters %v learners %v", r, v, l)
		}
		lr, err := pc.ListRanges(ctx, &flotillapb.ListRangesRequest{})
		if err != nil {
			return err
		}
		pg := lr.GetPlacementGroup()
		if len(pg.GetReplicas()) != 3 || pg.ReplicaOnStore(flotillapb.StoreID(victim)) != nil {
			return fmt.Errorf("placement group: %v", pg.GetReplicas())
		}
		return nil
	})
	for i := range 20 {
		if v, err := n1.Get(ctx, fmt.Appendf(nil, "k%02d", i)); err != nil || string(v) != "v" {
			t.Fatalf("k%02d after the removal: %q, %v", i, v, err)
		}
	}
}

// placementLeaderOf returns the node that leads the placement group by its
// own status, 0 if none does.
func placementLeaderOf(nodes []*server.Node) uint64 {
	for _, n := range nodes {
		if n == nil {
			continue
		}
		for _, r := range n.Status(false).GetReplicas() {
			if r.GetGroupId() == 1 && r.GetReplicaId() != 0 && r.GetLeaderReplicaId() == r.GetReplicaId() {
				return n.NodeID()
			}
		}
	}
	return 0
}
