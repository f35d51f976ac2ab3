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
	"google.golang.org/protobuf/proto"
)

// TestPlacementRules: five stores in three zones, two of them observers
// (role=observer). Bad rules are refused and change nothing. Under the
// rule "3 voters spread over zones off the observers + 2 non-voters on the
// observers" every range's replicas converge to it; the observers get no
// vote (with two of the three voters down, writes stop although both
// observers live, and resume when one voter returns); a learner the rule
// does not want cannot be pinned by hand; and a rule change moves the
// replicas.
func TestPlacementRules(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	labels := []map[string]string{
		{"zone": "a"}, {"zone": "b"}, {"zone": "c"},
		{"zone": "a", "role": "observer"}, {"zone": "c", "role": "observer"},
	}
	dirs := make([]string, len(labels))
	addrs := make([]string, len(labels))
	cfg := func(i int, join ...string) server.Config {
		c := placementConfig(dirs[i], join...)
		c.Labels = labels[i]
		// The placement group on all five stores, so that it (and the
		// revision oracle) keeps a quorum when two voter stores stop.
		c.PlacementReplicationFactor = 5
		c.ListenAddr, c.HTTPAddr = addrs[i], "off"
		return c
	}
	nodes := make([]*server.Node, len(labels))
	for i := range labels {
		dirs[i], addrs[i] = t.TempDir(), testutil.FreeAddr(t)
		var join []string
		if i > 0 {
			join = []string{addrs[0]}
		}
		nodes[i] = openNode(t, cfg(i, join...))
		if i == 0 {
			if _, err := nodes[0].Init(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if err := nodes[i].WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
		if got := nodes[i].NodeID(); got != uint64(i+1) {
			t.Fatalf("node %d got ID %d", i+1, got)
		}
	}
	pc := placementClient(t, nodes[0])
	if _, err := pc.SplitRange(ctx, &flotillapb.SplitRangeRequest{Key: []byte("m")}); err != nil {
		t.Fatal(err)
	}

	observerRule := &flotillapb.PlacementRule{Voters: 3, VoterConstraints: []string{"role!=observer"}, SpreadOver: "zone",
		NonVoters: 2, NonVoterConstraints: []string{"role=observer"}}
	// Bad rules: refused, nothing set.
	for _, tc := range []struct {
		rules []*flotillapb.PlacementRule
		want  string
	}{
		{[]*flotillapb.PlacementRule{{Voters: 3, VoterConstraints: []string{"rack=r1"}}}, `names label "rack", which no store has`},
		{[]*flotillapb.PlacementRule{{Voters: 4, VoterConstraints: []string{"role!=observer"}}}, "only 3 store(s) up match"},
		{[]*flotillapb.PlacementRule{{Voters: 3, VoterConstraints: []string{"zone"}}}, "is not key=value or key!=value"},
		{[]*flotillapb.PlacementRule{{Voters: 3, EndKey: []byte("q")}, {StartKey: []byte("p"), Voters: 3}}, "overlap"},
		{[]*flotillapb.PlacementRule{{Voters: 0}}, "voters is 0"},
	} {
		_, err := pc.SetRules(ctx, &flotillapb.SetRulesRequest{Rules: tc.rules})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("SetRules(%v): %v; want InvalidArgument containing %q", tc.rules, err, tc.want)
		}
	}
	if resp, err := pc.SetRules(ctx, &flotillapb.SetRulesRequest{Rules: []*flotillapb.PlacementRule{observerRule}, DryRun: true}); err != nil || len(resp.GetRules()) != 1 {
		t.Fatalf("dry run: %v, %v", resp, err)
	}
	if resp, err := pc.GetRules(ctx, &flotillapb.GetRulesRequest{}); err != nil || len(resp.GetRules()) != 0 || resp.GetDefaultVoters() != 3 {
		t.Fatalf("rules after refusals and a dry run: %v, %v; want none", resp, err)
	}

	if _, err := pc.SetRules(ctx, &flotillapb.SetRulesRequest{Rules: []*flotillapb.PlacementRule{observerRule}}); err != nil {
		t.Fatal(err)
	}
	if resp, err := pc.GetRules(ctx, &flotillapb.GetRulesRequest{}); err != nil || len(resp.GetRules()) != 1 || !proto.Equal(resp.GetRules()[0], observerRule) {
		t.Fatalf("rules: %v, %v", resp, err)
	}
	// converge waits until every range's voters and learners are on the
	// stores ok accepts.
	converge := func(what string, ok func(voters, learners []uint64) bool) {
		t.Helper()
		testutil.SucceedsWithin(t, 2*time.Minute, func() error {
			resp, err := pc.ListRanges(ctx, &flotillapb.ListRangesRequest{})
			if err != nil {
				return err
			}
			if len(resp.GetRanges()) < 2 {
				return fmt.Errorf("%d ranges listed", len(resp.GetRanges()))
			}
			for _, r := range resp.GetRanges() {
				v, l, _, err := rangeStores(ctx, pc, r.GetDescriptor_().GetRangeId())
				if err != nil {
					return err
				}
				if !ok(v, l) {
					return fmt.Errorf("%s: range %d has voters on %v, learners on %v", what, r.GetDescriptor_().GetRangeId(), v, l)
				}
			}
			return nil
		})
	}
	converge("observer rule", func(v, l []uint64) bool { return slices.Equal(v, []uint64{1, 2, 3}) && slices.Equal(l, []uint64{4, 5}) })
	// Rules are for ranges: the placement group reaches and keeps its five
	// voters, observer stores included.
	testutil.SucceedsWithin(t, time.Minute, func() error {
		if pg := placementGroupStores(nodes); !slices.Equal(pg, []uint64{1, 2, 3, 4, 5}) {
			return fmt.Errorf("the placement group is on stores %v", pg)
		}
		for _, n := range nodes {
			for _, r := range n.Status(false).GetReplicas() {
				if r.GetGroupId() != 1 {
					continue
				}
				for _, rd := range r.GetDescriptor_().GetReplicas() {
					if rd.GetType() != flotillapb.ReplicaType_VOTER {
						return fmt.Errorf("node %d: the placement group has a learner %v", n.NodeID(), rd)
					}
				}
			}
		}
		return nil
	})
	converge("observer rule, placement group done", func(v, l []uint64) bool {
		return slices.Equal(v, []uint64{1, 2, 3}) && slices.Equal(l, []uint64{4, 5})
	})
	for _, k := range []string{"a", "z"} {
		if err := nodes[0].Put(ctx, []byte(k), []byte("1")); err != nil {
			t.Fatal(err)
		}
	}

	// A learner the rule does not want is refused, with the reason.
	var rangeID uint64
	if resp, err := pc.LookupRange(ctx, &flotillapb.LookupRangeRequest{Key: []byte("a")}); err != nil {
		t.Fatal(err)
	} else {
		rangeID = resp.GetDescriptor_().GetRangeId()
	}
	if _, err := pc.AddReplica(ctx, &flotillapb.AddReplicaRequest{RangeId: rangeID, StoreId: 4, Learner: true}); err == nil ||
		!strings.Contains(err.Error(), "already has") {
		t.Errorf("add-replica --learner on an observer store that holds one: %v; want refused", err)
	}

	// The observers get no vote: with stores 2 and 3 stopped, a range's
	// only live voter is on store 1, and writes stop.
	for _, i := range []int{1, 2} {
		if err := nodes[i].Close(); err != nil {
			t.Fatal(err)
		}
		nodes[i] = nil
	}
	wctx, wcancel := context.WithTimeout(ctx, 3*time.Second)
	err := nodes[0].Put(wctx, []byte("a"), []byte("2"))
	wcancel()
	if err == nil {
		t.Fatal("a write succeeded with two of three voters down: an observer voted")
	}
	t.Logf("write with two voters down: %v", err)
	for _, i := range []int{3, 4} {
		for _, r := range nodes[i].Status(false).GetReplicas() {
			if r.GetGroupId() != 1 && r.GetLeaderReplicaId() == r.GetReplicaId() {
				t.Errorf("observer store %d leads range %d", i+1, r.GetGroupId())
			}
		}
	}
	// One voter back: a quorum of voters again, and writes resume.
	nodes[1] = openNode(t, cfg(1))
	testutil.SucceedsWithin(t, time.Minute, func() error {
		wctx, wcancel := context.WithTimeout(ctx, 3*time.Second)
		defer wcancel()
		return nodes[0].Put(wctx, []byte("a"), []byte("3"))
	})
	nodes[2] = openNode(t, cfg(2))
	converge("voters back", func(v, l []uint64) bool { return slices.Equal(v, []uint64{1, 2, 3}) && slices.Equal(l, []uint64{4, 5}) })

	// A rule change moves the replicas: voters off zone c (stores 1, 2
	// and 4), one non-voter in it (store 3 or 5).
	if _, err := pc.SetRules(ctx, &flotillapb.SetRulesRequest{Rules: []*flotillapb.PlacementRule{{Voters: 3, VoterConstraints: []string{"zone!=c"},
		SpreadOver: "zone", NonVoters: 1, NonVoterConstraints: []string{"zone=c"}}}}); err != nil {
		t.Fatal(err)
	}
	converge("rule change", func(v, l []uint64) bool {
		return slices.Equal(v, []uint64{1, 2, 4}) && len(l) == 1 && (l[0] == 3 || l[0] == 5)
	})
	got, err := nodes[0].Get(ctx, []byte("a"))
	if err != nil || string(got) != "3" {
		t.Fatalf("after the moves: a = %q, %v; want 3", got, err)
	}
}
