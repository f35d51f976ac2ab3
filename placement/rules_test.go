// Copyright 2026 The Flotilla Authors. All rights reserved.

package placement

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flotilladb/flotilla/multiraft"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
)

func TestCompileRules(t *testing.T) {
	r := func(start, end string, voters, nonVoters uint32) *flotillapb.PlacementRule {
		return &flotillapb.PlacementRule{StartKey: []byte(start), EndKey: []byte(end), Voters: voters, NonVoters: nonVoters}
	}
	withC := func(pr *flotillapb.PlacementRule, f func(*flotillapb.PlacementRule)) *flotillapb.PlacementRule {
		f(pr)
		return pr
	}
	for _, tc := range []struct {
		name  string
		rules []*flotillapb.PlacementRule
		err   string
	}{
		{"none", nil, ""},
		{"whole keyspace", []*flotillapb.PlacementRule{r("", "", 3, 1)}, ""},
		{"adjacent spans", []*flotillapb.PlacementRule{r("m", "", 3, 0), r("", "m", 5, 0)}, ""},
		{"overlap", []*flotillapb.PlacementRule{r("", "n", 3, 0), r("m", "", 3, 0)}, "rule #1 [\"\", \"n\") and rule #2 [\"m\", end) overlap"},
		{"two whole", []*flotillapb.PlacementRule{r("", "", 3, 0), r("", "", 3, 0)}, "overlap"},
		{"open end overlaps", []*flotillapb.PlacementRule{r("a", "", 3, 0), r("b", "c", 3, 0)}, "overlap"},
		{"empty span", []*flotillapb.PlacementRule{r("b", "b", 3, 0)}, "rule #1: start_key \"b\" is not below end_key \"b\""},
		{"no voters", []*flotillapb.PlacementRule{r("", "", 0, 0)}, "rule #1: voters is 0; it must be 1 to 7"},
		{"too many voters", []*flotillapb.PlacementRule{r("", "", 9, 0)}, "voters is 9"},
		{"too many non-voters", []*flotillapb.PlacementRule{r("", "", 3, 99)}, "non_voters is 99"},
		{"bad constraint", []*flotillapb.PlacementRule{withC(r("", "", 3, 0), func(p *flotillapb.PlacementRule) { p.VoterConstraints = []string{"zone"} })},
			"voter_constraints: constraint \"zone\" is not key=value or key!=value"},
		{"bad constraint value", []*flotillapb.PlacementRule{withC(r("", "", 3, 1), func(p *flotillapb.PlacementRule) { p.NonVoterConstraints = []string{"zone=a,b"} })},
			"non_voter_constraints: constraint \"zone=a,b\""},
		{"empty value", []*flotillapb.PlacementRule{withC(r("", "", 3, 0), func(p *flotillapb.PlacementRule) { p.LeaderConstraints = []string{"zone!="} })},
			"leader_constraints: constraint \"zone!=\": empty label value"},
		{"non-voter constraints alone", []*flotillapb.PlacementRule{withC(r("", "", 3, 0), func(p *flotillapb.PlacementRule) { p.NonVoterConstraints = []string{"a=b"} })},
			"non_voter_constraints without non_voters"},
		{"bad spread", []*flotillapb.PlacementRule{withC(r("", "", 3, 0), func(p *flotillapb.PlacementRule) { p.SpreadOver = "zone=a" })},
			"spread_over \"zone=a\" is not a label key"},
		{"huge key", []*flotillapb.PlacementRule{r(strings.Repeat("k", 5000), "", 3, 0)}, "longer than 4096 bytes"},
		{"too many constraints", []*flotillapb.PlacementRule{withC(r("", "", 3, 0), func(p *flotillapb.PlacementRule) {
			for i := range 17 {
				p.VoterConstraints = append(p.VoterConstraints, fmt.Sprintf("k%d=v", i))
			}
		})}, "17 constraints, more than 16"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rules, err := CompileRules(tc.rules)
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("error %v, want one containing %q", err, tc.err)
			case err == nil && len(rules) != len(tc.rules):
				t.Fatalf("%d rules compiled from %d", len(rules), len(tc.rules))
			}
			if err == nil {
				// Set through the placement group: the same verdict, and
				// the rules come back sorted.
				next, _, aerr := applyMeta(&flotillapb.ClusterMeta{ClusterId: "c"}, &flotillapb.MetaCommand{Command: &flotillapb.MetaCommand_SetRules{
					SetRules: &flotillapb.SetRules{Rules: tc.rules}}})
				if aerr != nil {
					t.Fatal(aerr)
				}
				if !slices.IsSortedFunc(next.GetRules(), func(a, b *flotillapb.PlacementRule) int {
					return strings.Compare(string(a.StartKey), string(b.StartKey))
				}) {
					t.Fatalf("rules not sorted: %v", next.GetRules())
				}
			} else {
				_, _, aerr := applyMeta(&flotillapb.ClusterMeta{ClusterId: "c"}, &flotillapb.MetaCommand{Command: &flotillapb.MetaCommand_SetRules{
					SetRules: &flotillapb.SetRules{Rules: tc.rules}}})
				if aerr == nil {
					t.Fatal("the placement group applied rules CompileRules refuses")
				}
			}
		})
	}
}

// zoneNodes are five stores in three zones, two of them observers.
func zoneNodes() []*flotillapb.NodeDescriptor {
	lab := func(kv ...string) []*flotillapb.StoreLabel {
		var out []*flotillapb.StoreLabel
		for i := 0; i < len(kv); i += 2 {
			out = append(out, &flotillapb.StoreLabel{Key: kv[i], Value: kv[i+1]})
		}
		return out
	}
	return []*flotillapb.NodeDescriptor{
		{NodeId: 1, Address: "x", Labels: lab("zone", "a")},
		{NodeId: 2, Address: "x", Labels: lab("zone", "b")},
		{NodeId: 3, Address: "x", Labels: lab("zone", "c")},
		{NodeId: 4, Address: "x", Labels: lab("role", "observer", "zone", "a")},
		{NodeId: 5, Address: "x", Labels: lab("role", "observer", "zone", "c")},
	}
}

// observerRule is the rule: 3 voters spread over zones off the
// observers, 2 non-voters on them.
func observerRule() *flotillapb.PlacementRule {
	return &flotillapb.PlacementRule{Voters: 3, VoterConstraints: []string{"role!=observer"}, SpreadOver: "zone",
		NonVoters: 2, NonVoterConstraints: []string{"role=observer"}}
}

func TestCheckRulesFit(t *testing.T) {
	for _, tc := range []struct {
		name string
		rule *flotillapb.PlacementRule
		err  string
	}{
		{"observer rule", observerRule(), ""},
		{"unknown label", &flotillapb.PlacementRule{Voters: 3, VoterConstraints: []string{"rack=r1"}},
			"constraint rack=r1 names label \"rack\", which no store has (stores have role, zone)"},
		{"unknown spread", &flotillapb.PlacementRule{Voters: 3, SpreadOver: "region"}, "spread_over names label \"region\""},
		{"too few voters", &flotillapb.PlacementRule{Voters: 4, VoterConstraints: []string{"role!=observer"}},
			"asks for 4 voters, but only 3 store(s) up match its voter constraints [role!=observer]"},
		{"too few non-voters", &flotillapb.PlacementRule{Voters: 1, NonVoters: 3, NonVoterConstraints: []string{"role=observer"}},
			"asks for 3 non-voters, but only 2 store(s) up"},
		{"too few stores", &flotillapb.PlacementRule{Voters: 3, NonVoters: 3}, "asks for 3 voters and 3 non-voters on distinct stores, but only 5"},
		{"leader nowhere", &flotillapb.PlacementRule{Voters: 3, VoterConstraints: []string{"role!=observer"}, LeaderConstraints: []string{"role=observer"}},
			"no store up matches both its voter constraints [role!=observer] and its leader constraints [role=observer]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rules, err := CompileRules([]*flotillapb.PlacementRule{tc.rule})
			if err != nil {
				t.Fatal(err)
			}
			err = CheckRulesFit(rules, zoneNodes())
			if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("error %v, want %q", err, tc.err)
			}
		})
	}
	// A decommissioning store's labels are known, but it does not count.
	nodes := zoneNodes()
	nodes[2].State = flotillapb.StoreState_STORE_DECOMMISSIONING
	rules, _ := CompileRules([]*flotillapb.PlacementRule{observerRule()})
	if err := CheckRulesFit(rules, nodes); err == nil || !strings.Contains(err.Error(), "only 2 store(s) up") {
		t.Fatalf("with store 3 leaving: %v", err)
	}
}

func TestRuleForAndBoundaries(t *testing.T) {
	rules, err := CompileRules([]*flotillapb.PlacementRule{
		{StartKey: []byte("m"), EndKey: []byte("t"), Voters: 5},
		{StartKey: []byte("b"), EndKey: []byte("d"), Voters: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	cv := &ClusterView{ReplicationFactor: 3, Rules: rules}
	span := func(s, e string) *flotillapb.RangeDescriptor {
		return &flotillapb.RangeDescriptor{StartKey: []byte(s), EndKey: []byte(e)}
	}
	for _, tc := range []struct {
		start, end string
		voters     int
		boundary   string
	}{
		{"", "", 3, "b"}, {"a", "c", 3, "b"}, {"b", "d", 1, ""}, {"c", "z", 1, "d"}, {"d", "m", 3, ""},
		{"m", "", 5, "t"}, {"s", "t", 5, ""}, {"t", "", 3, ""}, {"zz", "", 3, ""},
	} {
		if got := cv.RuleFor(span(tc.start, tc.end)).Voters; got != tc.voters {
			t.Errorf("[%q, %q): %d voters, want %d", tc.start, tc.end, got, tc.voters)
		}
		if got := string(cv.RuleBoundaryIn(span(tc.start, tc.end))); got != tc.boundary {
			t.Errorf("[%q, %q): boundary %q, want %q", tc.start, tc.end, got, tc.boundary)
		}
	}
}

// ruleView is a view of the five zone stores under rules.
func ruleView(t *testing.T, rules ...*flotillapb.PlacementRule) *ClusterView {
	t.Helper()
	compiled, err := CompileRules(rules)
	if err != nil {
		t.Fatal(err)
	}
	cv := &ClusterView{Stores: map[multiraft.NodeID]*StoreView{}, ReplicationFactor: 3, Rules: compiled}
	for _, n := range zoneNodes() {
		cv.Stores[multiraft.NodeID(n.GetNodeId())] = &StoreView{ID: multiraft.NodeID(n.GetNodeId()), Live: true, Labels: flotillapb.LabelsMap(n.GetLabels())}
	}
	return cv
}

func TestCheckReplicasRules(t *testing.T) {
	next := uint32(100)
	alloc := seqAlloc(&next)
	cv := ruleView(t, observerRule())
	v1, v2, v3, o4, o5 := rid(1, 1), rid(2, 1), rid(3, 1), rid(4, 1), rid(5, 1)
	check := func(r *RangeView, want string) {
		t.Helper()
		op := cv.CheckReplicas(r, alloc)
		got := "<nil>"
		if op != nil {
			got = fmt.Sprintf("%v (%s)", op.Steps, op.Reason)
		}
		if !strings.Contains(got, want) {
			t.Errorf("checker: %s, want %q", got, want)
		}
	}
	// In place: nothing to do; the observers are kept.
	check(&RangeView{Desc: desc(1, 5, []multiraft.ReplicaID{v1, v2, v3}, o4, o5), Leader: v1}, "<nil>")
	// A lagging observer does not hold up the rest.
	check(&RangeView{Desc: desc(1, 5, []multiraft.ReplicaID{v1, v2, v3}, o4), Leader: v1, Pending: []multiraft.ReplicaID{o4}},
		"missing non-voter: 1 of 2")
	// A voter on an observer store moves to the zone without one.
	check(&RangeView{Desc: desc(1, 5, []multiraft.ReplicaID{v1, v2, o4}, o5), Leader: v1},
		"move the voter off store 4")
	// Two voters in zone a (stores 1 and 4 are both in a, but 4 may not
	// vote): with voters 1, 2 and a third store allowed in zone a... use
	// a rule without the observer constraint to see the spread.
	spread := ruleView(t, &flotillapb.PlacementRule{Voters: 3, SpreadOver: "zone"})
	op := spread.CheckReplicas(&RangeView{Desc: desc(1, 5, []multiraft.ReplicaID{v1, o4, v2}), Leader: v1}, alloc)
	if op == nil || !strings.Contains(op.Reason, "spread voters over zone: 2 in \"a\", 0 in \"c\"") || op.Steps[0].Replica.Node() != 3 {
		t.Errorf("spread: %v", op)
	} else if slices.ContainsFunc(op.Steps, func(s Step) bool { return s.Kind == StepRemove && s.Replica == v1 }) {
		t.Errorf("spread moves the leader's replica when another in its zone could go: %v", op)
	}
	// A learner the rule does not keep goes, one change at a time: here
	// store 3's caught-up learner, while the voters are complete (the
	// misplaced voter on store 5 moves next).
	check(&RangeView{Desc: desc(1, 5, []multiraft.ReplicaID{v1, v2, o5}, o4, rid(3, 9)), Leader: v1}, "remove 3/9] (extra learner)")
	check(&RangeView{Desc: desc(1, 5, []multiraft.ReplicaID{v1, v2, o5}, o4), Leader: v1}, "move the voter off store 5")
	// Missing voter, no store to add it: the only voter-capable stores
	// without a replica are none, so nothing; with an observer that may
	// vote (default constraints), the non-voter is promoted.
	loose := ruleView(t, &flotillapb.PlacementRule{Voters: 3, NonVoters: 2})
	r := &RangeView{Desc: desc(1, 5, []multiraft.ReplicaID{v1, v2}, o4, o5, v3), Leader: v1}
	r.Desc.Replicas = r.Desc.Replicas[:4] // voters 1, 2; learners 4, 5
	loose.Stores[3].Live, loose.Stores[3].Down = false, true
	op = loose.CheckReplicas(r, alloc)
	if op == nil || op.Steps[0].Kind != StepPromote || !strings.Contains(op.Reason, "promote a non-voter") {
		t.Errorf("missing voter with no free store: %v", op)
	}
	// Leader preference.
	lead := ruleView(t, &flotillapb.PlacementRule{Voters: 3, VoterConstraints: []string{"role!=observer"}, LeaderConstraints: []string{"zone=b"}})
	op = lead.CheckReplicas(&RangeView{Desc: desc(1, 5, []multiraft.ReplicaID{v1, v2, v3}), Leader: v1}, alloc)
	if op == nil || op.Steps[0].Kind != StepTransferLeader || op.Steps[0].Replica != v2 {
		t.Errorf("leader preference: %v", op)
	}
	// No voter may lead: a voter that does not lead moves to a store that
	// may (store 1 is the only one in zone a off the observers).
	zoneB := ruleView(t, &flotillapb.PlacementRule{Voters: 2, VoterConstraints: []string{"role!=observer"}, LeaderConstraints: []string{"zone=a"}})
	op = zoneB.CheckReplicas(&RangeView{Desc: desc(1, 5, []multiraft.ReplicaID{v2, v3}), Leader: v2}, alloc)
	if op == nil || !strings.Contains(op.Reason, "no voter may lead") || op.Steps[0].Replica.Node() != 1 ||
		!slices.ContainsFunc(op.Steps, func(s Step) bool { return s.Kind == StepRemove && s.Replica == v3 }) {
		t.Errorf("no voter may lead: %v", op)
	}

	// An observer on a store that stopped heartbeating (not yet down) is
	// kept, and so is one lagging for long; one on a down store goes.
	blip := ruleView(t, observerRule())
	blip.Stores[4].Live = false
	r = &RangeView{Desc: desc(1, 5, []multiraft.ReplicaID{v1, v2, v3}, o4, o5), Leader: v1,
		Pending: []multiraft.ReplicaID{o5}, Stuck: []multiraft.ReplicaID{o5}}
	if op := blip.CheckReplicas(r, alloc); op != nil {
		t.Errorf("observers on a silent store and lagging: %v; want them kept", op)
	}
	blip.Stores[4].Down = true
	if op := blip.CheckReplicas(r, alloc); op == nil || op.Steps[0].Kind != StepRemove || op.Steps[0].Replica != o4 {
		t.Errorf("observer on a down store: %v; want it removed", op)
	}
	// A lagging observer does not keep its range from being balanced.
	healthy := ruleView(t, observerRule())
	if !healthy.healthy(&RangeView{Desc: desc(1, 5, []multiraft.ReplicaID{v1, v2, v3}, o4, o5), Leader: v1, Pending: []multiraft.ReplicaID{o4}}) {
		t.Error("a range with a lagging observer is not healthy")
	}

	// A voter on a down store with no other store to take it: a
	// caught-up non-voter that may vote replaces it in one joint change.
	swap := ruleView(t, &flotillapb.PlacementRule{Voters: 3, NonVoters: 2})
	swap.Stores[3].Live, swap.Stores[3].Down = false, true
	op = swap.CheckReplicas(&RangeView{Desc: desc(1, 5, []multiraft.ReplicaID{v1, v2, v3}, o4, o5), Leader: v1}, alloc)
	if op == nil || op.Steps[0].Kind != StepPromote || op.Steps[0].Demote != v3 || op.Steps[0].Replica.Node() == 3 ||
		len(op.Steps) != 2 || op.Steps[1].Kind != StepRemove || op.Steps[1].Replica != v3 {
		t.Errorf("dead voter, observers that may vote: %v", op)
	}
}

// TestBalanceKeepsLeaderConstraint: the replica balancer does not move
// away the only voter a range's leader constraints allow, nor the leader
// to a store they exclude.
func TestBalanceKeepsLeaderConstraint(t *testing.T) {
	next := uint32(100)
	alloc := seqAlloc(&next)
	// Stores 1 to 3 hold a voter of every range, led from store 2, the
	// only store in zone b; stores 4 and 5 hold none.
	cv := ruleView(t, &flotillapb.PlacementRule{Voters: 3, LeaderConstraints: []string{"zone=b"}})
	for i := range 10 {
		cv.Ranges = append(cv.Ranges, &RangeView{Desc: desc(uint64(10+i), 5, []multiraft.ReplicaID{rid(1, 1), rid(2, 1), rid(3, 1)}), Leader: rid(2, 1)})
	}
	cv.Stores[1].Ranges, cv.Stores[2].Ranges, cv.Stores[3].Ranges = 10, 12, 10 // store 2 first
	for range 5 {
		op := cv.BalanceReplicas(alloc)
		if op == nil {
			t.Fatal("nothing balanced")
		}
		for _, s := range op.Steps {
			if s.Kind == StepRemove && s.Replica.Node() == 2 {
				t.Fatalf("the balancer moves the only voter that may lead: %v", op)
			}
		}
		cv.Ranges = cv.Ranges[1:] // its range is busy now
	}
}

// TestRulesConvergeUnderFaults: eight stores in three zones, one of them an
// observer store, under the rule "3 voters spread over the zones off the
// observer store, led from zone a, plus 1 non-voter on the observer
// store". Stores die and come back, heartbeats are stale and duplicated,
// steps delayed, the driver restarts (losing its operators); no step may
// leave a range without a quorum of live voters (dsim checks), and once
// the faults stop every range has one voter in each zone, its leader in
// zone a, and its non-voter on the observer store, and nothing more runs.
func TestRulesConvergeUnderFaults(t *testing.T) {
	for run := range 3 {
		t.Run(fmt.Sprint(run), func(t *testing.T) {
			seed := newSeed(t)
			rng := rand.New(rand.NewPCG(seed, seed^0xfa17))
			s := &dsim{t: t, rng: rng, now: time.Unix(1_000_000, 0), live: map[multiraft.NodeID]bool{},
				ranges: map[multiraft.GroupID]*simRange{}, nextID: 1000}
			newDriver := func() *Driver {
				return NewDriver(DriverConfig{LivenessWindow: time.Second, StoreDownTimeout: 3 * time.Second,
					OperatorTimeout: 20 * time.Second, MaxBalanceOperators: 4, Clock: func() time.Time { return s.now }})
			}
			s.d = newDriver()
			zones := []string{"a", "a", "a", "b", "b", "c", "c", "b"}
			for i, z := range zones {
				labels := []*flotillapb.StoreLabel{{Key: "zone", Value: z}}
				if i == 7 {
					labels = []*flotillapb.StoreLabel{{Key: "role", Value: "observer"}, {Key: "zone", Value: z}}
				}
				s.meta = &flotillapb.ClusterMeta{ClusterId: "sim", Nodes: append(s.meta.GetNodes(),
					&flotillapb.NodeDescriptor{NodeId: uint64(i + 1), Address: "x", Labels: labels})}
				s.live[multiraft.NodeID(i+1)] = true
			}
			for i := range 16 {
				id := multiraft.GroupID(10 + i)
				d := &flotillapb.RangeDescriptor{RangeId: uint64(id), StartKey: fmt.Appendf(nil, "k%03d", i),
					EndKey: fmt.Appendf(nil, "k%03d", i+1), Epoch: &flotillapb.RangeEpoch{ConfVer: 1, Version: 1}}
				for _, st := range rng.Perm(7)[:3] {
					d.Replicas = append(d.Replicas, &flotillapb.ReplicaDescriptor{StoreId: uint64(st + 1), ReplicaId: uint64(rid(multiraft.NodeID(st+1), 1))})
				}
				s.ranges[id] = &simRange{desc: d, catchUp: map[multiraft.ReplicaID]int{}}
			}
			next, _, err := applyMeta(s.meta, &flotillapb.MetaCommand{Command: &flotillapb.MetaCommand_SetRules{SetRules: &flotillapb.SetRules{
				Rules: []*flotillapb.PlacementRule{{Voters: 3, VoterConstraints: []string{"role!=observer"}, SpreadOver: "zone",
					LeaderConstraints: []string{"zone=a"}, NonVoters: 1, NonVoterConstraints: []string{"role=observer"}}}}}})
			if err != nil {
				t.Fatal(err)
			}
			s.meta = next
			for i := range 400 {
				// One voter store at a time dies for a while (never the
				// observer store: its non-voters have nowhere else to go).
				if i%40 == 0 {
					for id := range s.live {
						s.live[id] = true
					}
					s.live[multiraft.NodeID(1+rng.IntN(7))] = false
				}
				if rng.IntN(100) == 0 {
					s.d = newDriver() // a new driver leader: operators lost
				}
				s.round(false)
			}
			for id := range s.live {
				s.live[id] = true
			}
			quiet := 0
			for i := 0; i < 3000 && quiet < 20; i++ {
				s.round(false)
				if s.d.Operators(s.meta).GetCounts()[OpRunning] == 0 {
					quiet++
				} else {
					quiet = 0
				}
			}
			if quiet < 20 {
				t.Fatalf("operators still running after the faults: %v", s.d.Operators(s.meta).GetOperators())
			}
			for id, r := range s.ranges {
				voters, learners := membersOf(r.desc)
				inZone := map[string]int{}
				for _, v := range voters {
					inZone[zones[v.GetStoreId()-1]]++
				}
				if len(voters) != 3 || inZone["a"] != 1 || inZone["b"] != 1 || inZone["c"] != 1 || slices.ContainsFunc(voters, func(v *flotillapb.ReplicaDescriptor) bool { return v.GetStoreId() == 8 }) {
					t.Errorf("range %d: voters %v", id, voters)
				}
				if len(learners) != 1 || learners[0].GetStoreId() != 8 {
					t.Errorf("range %d: learners %v; want one on store 8", id, learners)
				}
				if r.leader == 0 || zones[r.leader.Node()-1] != "a" {
					t.Errorf("range %d: leader %v, not in zone a", id, r.leader)
				}
			}
		})
	}
}

func TestCheckAddReplica(t *testing.T) {
	v1, v2, v3, o4 := rid(1, 1), rid(2, 1), rid(3, 1), rid(4, 1)
	def := ruleView(t)
	r := &RangeView{Desc: desc(1, 5, []multiraft.ReplicaID{v1, v2, v3}), Leader: v1}
	if err := def.CheckAddReplica(r, 4, true); err == nil || !strings.Contains(err.Error(), "asks for no non-voters") {
		t.Errorf("learner under the default rule: %v", err)
	}
	if err := def.CheckAddReplica(r, 4, false); err != nil {
		t.Errorf("voter under the default rule: %v", err)
	}
	cv := ruleView(t, observerRule())
	if err := cv.CheckAddReplica(r, 4, true); err != nil {
		t.Errorf("an observer the rule wants: %v", err)
	}
	if err := cv.CheckAddReplica(r, 4, false); err == nil || !strings.Contains(err.Error(), "does not allow a voter on store 4") {
		t.Errorf("a voter on an observer store: %v", err)
	}
	r2 := &RangeView{Desc: desc(1, 5, []multiraft.ReplicaID{v1, v2}, o4), Leader: v1}
	if err := cv.CheckAddReplica(r2, 3, true); err == nil || !strings.Contains(err.Error(), "does not allow a non-voter on store 3") {
		t.Errorf("a non-voter off the observer stores: %v", err)
	}
	one := ruleView(t, &flotillapb.PlacementRule{Voters: 3, VoterConstraints: []string{"role!=observer"}, NonVoters: 1, NonVoterConstraints: []string{"role=observer"}})
	if err := one.CheckAddReplica(r2, 5, true); err == nil || !strings.Contains(err.Error(), "already has the 1 non-voter(s)") {
		t.Errorf("a non-voter beyond the rule's count: %v", err)
	}
}

// TestRulesConverge runs the driver over a simulated cluster of five
// stores in three zones (stale and duplicated heartbeats, delayed and
// reordered steps): the replicas converge to the rule "3 voters spread
// over zones off the observers + 2 non-voters on role=observer"; they
// stay put, and every range keeps a quorum, while a zone's store is down
// (nothing else may take its voters); and a rule change moves them.
func TestRulesConverge(t *testing.T) {
	seed := newSeed(t)
	rng := rand.New(rand.NewPCG(seed, seed^0x7e1e))
	s := &dsim{t: t, rng: rng, now: time.Unix(1_000_000, 0), live: map[multiraft.NodeID]bool{},
		ranges: map[multiraft.GroupID]*simRange{}, nextID: 1000}
	s.d = NewDriver(DriverConfig{LivenessWindow: time.Second, StoreDownTimeout: 3 * time.Second,
		OperatorTimeout: 20 * time.Second, MaxBalanceOperators: 4, Clock: func() time.Time { return s.now }})
	s.meta = &flotillapb.ClusterMeta{ClusterId: "sim", Nodes: zoneNodes()}
	for _, n := range s.meta.Nodes {
		s.live[multiraft.NodeID(n.GetNodeId())] = true
	}
	for i := range 12 {
		id := multiraft.GroupID(10 + i)
		d := &flotillapb.RangeDescriptor{RangeId: uint64(id), StartKey: fmt.Appendf(nil, "k%03d", i),
			EndKey: fmt.Appendf(nil, "k%03d", i+1), Epoch: &flotillapb.RangeEpoch{ConfVer: 1, Version: 1}}
		for _, st := range rng.Perm(5)[:3] { // anywhere, observers included
			d.Replicas = append(d.Replicas, &flotillapb.ReplicaDescriptor{StoreId: uint64(st + 1), ReplicaId: uint64(rid(multiraft.NodeID(st+1), 1))})
		}
		s.ranges[id] = &simRange{desc: d, catchUp: map[multiraft.ReplicaID]int{}}
	}
	setRules := func(rules ...*flotillapb.PlacementRule) {
		next, _, err := applyMeta(s.meta, &flotillapb.MetaCommand{Command: &flotillapb.MetaCommand_SetRules{SetRules: &flotillapb.SetRules{Rules: rules}}})
		if err != nil {
			t.Fatal(err)
		}
		s.meta = next
	}
	settle := func(what string) {
		t.Helper()
		quiet := 0
		for i := 0; i < 3000 && quiet < 20; i++ {
			s.round(false)
			if s.d.Operators(s.meta).GetCounts()[OpRunning] == 0 {
				quiet++
			} else {
				quiet = 0
			}
		}
		if quiet < 20 {
			t.Fatalf("%s: operators still running: %v", what, s.d.Operators(s.meta).GetOperators())
		}
	}
	// placed checks every range's voters and learners by store.
	placed := func(what string, ok func(voters, learners []uint64) bool) {
		t.Helper()
		for id, r := range s.ranges {
			voters, learners := membersOf(r.desc)
			var vs, ls []uint64
			for _, v := range voters {
				vs = append(vs, v.GetStoreId())
			}
			for _, l := range learners {
				ls = append(ls, l.GetStoreId())
			}
			slices.Sort(vs)
			slices.Sort(ls)
			if !ok(vs, ls) {
				t.Errorf("%s: range %d has voters on %v, learners on %v", what, id, vs, ls)
			}
		}
	}

	setRules(observerRule())
	settle("observer rule")
	placed("observer rule", func(v, l []uint64) bool { return slices.Equal(v, []uint64{1, 2, 3}) && slices.Equal(l, []uint64{4, 5}) })

	// Zone c's voter store dies: no other store may take its voters, so
	// the ranges keep two live voters of three and their observers.
	s.live[3] = false
	for range 40 {
		s.round(false)
	}
	placed("store 3 down", func(v, l []uint64) bool { return slices.Equal(v, []uint64{1, 2, 3}) && slices.Equal(l, []uint64{4, 5}) })
	for id, r := range s.ranges {
		if !s.quorumOK(r.desc) {
			t.Errorf("range %d lost its quorum", id)
		}
	}
	s.live[3] = true

	// A new rule: voters out of zone c (stores 1, 2, 4), one non-voter in
	// it (store 3 or 5).
	setRules(&flotillapb.PlacementRule{Voters: 3, VoterConstraints: []string{"zone!=c"}, SpreadOver: "zone",
		NonVoters: 1, NonVoterConstraints: []string{"zone=c"}})
	settle("rule change")
	placed("rule change", func(v, l []uint64) bool {
		return slices.Equal(v, []uint64{1, 2, 4}) && len(l) == 1 && (l[0] == 3 || l[0] == 5)
	})
	// The observers of zone c share the ranges.
	on3 := 0
	for _, r := range s.ranges {
		if r.desc.ReplicaOnStore(3) != nil {
			on3++
		}
	}
	if on3 < 5 || on3 > 7 {
		t.Errorf("store 3 holds %d of the 12 non-voters, store 5 the rest: not balanced", on3)
	}

	// Deleting the rules brings back the default: 3 voters, no learners.
	setRules()
	settle("default rule")
	placed("default rule", func(v, l []uint64) bool { return len(v) == 3 && len(l) == 0 })
}
