// Copyright 2026 The Flotilla Authors. All rights reserved.

package placement

import (
	"fmt"
	"testing"
	"time"

	"github.com/flotilladb/flotilla/multiraft"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
)

func span(id uint64, start, end string, version, confVer uint64) *flotillapb.RangeDescriptor {
	d := &flotillapb.RangeDescriptor{RangeId: id, Epoch: &flotillapb.RangeEpoch{Version: version, ConfVer: confVer}}
	if start != "" {
		d.StartKey = []byte(start)
	}
	if end != "" {
		d.EndKey = []byte(end)
	}
	for n := uint64(1); n <= 3; n++ {
		d.Replicas = append(d.Replicas, &flotillapb.ReplicaDescriptor{StoreId: n, ReplicaId: uint64(multiraft.MakeReplicaID(multiraft.NodeID(n), uint32(id)))})
	}
	return d
}

func describe(ds []*flotillapb.RangeDescriptor) string {
	var out []string
	for _, d := range ds {
		out = append(out, fmt.Sprintf("%d[%s,%s)v%d", d.GetRangeId(), d.GetStartKey(), d.GetEndKey(), d.GetEpoch().GetVersion()))
	}
	return fmt.Sprint(out)
}

// TestUpdateRangeAfterSplit: the halves of a split may be reported in any
// order, and late reports of the unsplit range are stale: the recorded
// ranges never overlap.
func TestUpdateRangeAfterSplit(t *testing.T) {
	st := &flotillapb.ClusterMeta{ClusterId: "c", Ranges: []*flotillapb.RangeDescriptor{span(2, "", "", 1, 1)}}
	update := func(d *flotillapb.RangeDescriptor) {
		t.Helper()
		next, _, err := applyMeta(st, &flotillapb.MetaCommand{Command: &flotillapb.MetaCommand_UpdateRange{UpdateRange: &flotillapb.UpdateRange{Descriptor_: d}}})
		if err != nil {
			t.Fatal(err)
		}
		st = next
	}
	update(span(5, "m", "", 2, 1)) // the right half first: the unsplit range goes
	if got := describe(st.GetRanges()); got != "[5[m,)v2]" {
		t.Fatalf("after the right half: %s", got)
	}
	update(span(2, "", "", 1, 2)) // a late report of the unsplit range: stale
	if got := describe(st.GetRanges()); got != "[5[m,)v2]" {
		t.Fatalf("after a stale report: %s", got)
	}
	update(span(2, "", "m", 2, 1))
	update(span(6, "f", "m", 3, 1)) // the left half split again
	update(span(2, "", "f", 3, 1))
	if got := describe(st.GetRanges()); got != "[2[,f)v3 5[m,)v2 6[f,m)v3]" {
		t.Fatalf("after two splits: %s", got)
	}
	if got := describe(DropOverlapped([]*flotillapb.RangeDescriptor{
		span(2, "", "", 1, 1), span(6, "f", "m", 3, 1), span(5, "m", "", 2, 1), span(2, "", "f", 3, 1),
	})); got != "[2[,f)v3 6[f,m)v3 5[m,)v2]" {
		t.Fatalf("DropOverlapped: %s", got)
	}
}

// TestSplitOperator: a leader's proposed split becomes a split step with a
// new range ID and one new replica per replica; a report at another
// version gets no step; the operator finishes once the range reports the
// split, and a stale report of the unsplit range then changes nothing.
func TestSplitOperator(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1000, 0)}
	d := NewDriver(DriverConfig{LivenessWindow: time.Second, Clock: clock.Now})
	meta := &flotillapb.ClusterMeta{ClusterId: "c", Ranges: []*flotillapb.RangeDescriptor{span(2, "", "", 1, 1)}}
	for n := uint64(1); n <= 3; n++ {
		meta.Nodes = append(meta.Nodes, &flotillapb.NodeDescriptor{NodeId: n, Address: "x"})
	}
	beat := func(desc *flotillapb.RangeDescriptor, split string) *flotillapb.OperatorStep {
		t.Helper()
		for n := uint64(1); n <= 3; n++ {
			d.ObserveStore(&flotillapb.StoreHeartbeatRequest{NodeId: n})
		}
		hb := &flotillapb.RangeHeartbeatRequest{Descriptor_: desc, LeaderReplicaId: desc.GetReplicas()[0].GetReplicaId(), Term: 6}
		if split != "" {
			hb.SplitKey, hb.SplitReason = []byte(split), "size"
		}
		d.ObserveRange(hb)
		return d.Schedule(meta, multiraft.GroupID(desc.GetRangeId()))
	}
	clock.Advance(2 * time.Second)
	if s := beat(span(2, "", "", 1, 1), "k"); s != nil {
		t.Fatalf("a split without IDs: %v", s)
	}
	d.AddReplicaSeqs(100, 64)
	d.AddRangeIDs(40, 32)
	if s := beat(span(2, "", "", 1, 1), ""); s != nil {
		t.Fatalf("no split proposed, step %v", s)
	}
	s := beat(span(2, "", "", 1, 1), "k")
	if s.GetKind() != flotillapb.OperatorStepKind_SPLIT || string(s.GetSplitKey()) != "k" || s.GetNewRangeId() != 40 ||
		len(s.GetNewReplicaIds()) != 3 || s.GetVersion() != 1 || s.GetConfVer() != 1 {
		t.Fatalf("split step %v", s)
	}
	for i, id := range s.GetNewReplicaIds() {
		if r := multiraft.ReplicaID(id); !r.Valid() || uint64(r.Node()) != uint64(i+1) {
			t.Fatalf("new replica %d: %v", i, r)
		}
	}
	if again := beat(span(2, "", "", 1, 1), "k"); again.GetNewRangeId() != 40 || again.GetOperatorId() != s.GetOperatorId() {
		t.Fatalf("the same report again: %v", again)
	}
	// The split applied: the operator finishes.
	if s := beat(span(2, "", "k", 2, 1), ""); s != nil {
		t.Fatalf("after the split: %v", s)
	}
	beat(span(40, "k", "", 2, 1), "")
	if ops := d.Operators(meta); ops.GetCounts()[OpFinished] != 1 || ops.GetCounts()[OpRunning] != 0 {
		t.Fatalf("operators %v", ops.GetCounts())
	}
	if s := beat(span(2, "", "", 1, 1), "k"); s != nil {
		t.Fatalf("a stale report of the unsplit range got %v", s)
	}
	if got := len(d.Ranges(meta)); got != 2 {
		t.Fatalf("%d ranges, want 2", got)
	}
	// Admin splits: at a range's start key, refused; elsewhere, a step.
	if _, err := d.AdminSplit(meta, []byte("k")); err == nil {
		t.Fatal("admin split at a range start accepted")
	}
	if _, err := d.AdminSplit(meta, []byte("p")); err != nil {
		t.Fatal(err)
	}
	if s := beat(span(40, "k", "", 2, 1), ""); s.GetKind() != flotillapb.OperatorStepKind_SPLIT || string(s.GetSplitKey()) != "p" {
		t.Fatalf("admin split step %v", s)
	}
}

// TestSplitAtRuleBoundary: a range that a placement rule's boundary
// crosses is split there, so each side takes its own rule.
func TestSplitAtRuleBoundary(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1000, 0)}
	d := NewDriver(DriverConfig{LivenessWindow: time.Second, Clock: clock.Now})
	meta := &flotillapb.ClusterMeta{ClusterId: "c", Ranges: []*flotillapb.RangeDescriptor{span(2, "", "", 1, 1)},
		Rules: []*flotillapb.PlacementRule{{StartKey: []byte("f"), EndKey: []byte("m"), Voters: 3}}}
	for n := uint64(1); n <= 3; n++ {
		meta.Nodes = append(meta.Nodes, &flotillapb.NodeDescriptor{NodeId: n, Address: "x"})
	}
	d.AddReplicaSeqs(100, 64)
	d.AddRangeIDs(40, 32)
	clock.Advance(2 * time.Second)
	beat := func(desc *flotillapb.RangeDescriptor) *flotillapb.OperatorStep {
		t.Helper()
		for n := uint64(1); n <= 3; n++ {
			d.ObserveStore(&flotillapb.StoreHeartbeatRequest{NodeId: n})
		}
		d.ObserveRange(&flotillapb.RangeHeartbeatRequest{Descriptor_: desc, LeaderReplicaId: desc.GetReplicas()[0].GetReplicaId(), Term: 6})
		return d.Schedule(meta, multiraft.GroupID(desc.GetRangeId()))
	}
	if s := beat(span(2, "", "", 1, 1)); s.GetKind() != flotillapb.OperatorStepKind_SPLIT || string(s.GetSplitKey()) != "f" {
		t.Fatalf("step %v; want a split at the rule's start", s)
	}
	if s := beat(span(2, "", "f", 2, 1)); s != nil {
		t.Fatalf("left of the rule: step %v", s)
	}
	if s := beat(span(40, "f", "", 2, 1)); s.GetKind() != flotillapb.OperatorStepKind_SPLIT || string(s.GetSplitKey()) != "m" {
		t.Fatalf("step %v; want a split at the rule's end", s)
	}
	if s := beat(span(40, "f", "m", 3, 1)); s != nil {
		t.Fatalf("the rule's span: step %v", s)
	}
}

// TestScheduleLedBy: a node's batched report gets the steps of the other
// ranges it leads that have a running operator and, when it asks for all,
// of new operators from the checker; a scan of all that finds the same
// view as the last one is not repeated.
func TestScheduleLedBy(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1000, 0)}
	d := NewDriver(DriverConfig{LivenessWindow: time.Second, Clock: clock.Now})
	meta := &flotillapb.ClusterMeta{ClusterId: "c"}
	for n := uint64(1); n <= 4; n++ {
		meta.Nodes = append(meta.Nodes, &flotillapb.NodeDescriptor{NodeId: n, Address: "x"})
	}
	d.AddReplicaSeqs(100, 64)
	d.AddRangeIDs(40, 32)
	clock.Advance(2 * time.Second)
	for n := uint64(1); n <= 4; n++ {
		d.ObserveStore(&flotillapb.StoreHeartbeatRequest{NodeId: n})
	}
	// Range 2 is led from store 1 and complete; range 3, led from store
	// 2, lacks a voter (two replicas).
	r2, r3 := span(2, "", "m", 1, 1), span(3, "m", "", 1, 1)
	r3.Replicas = r3.Replicas[:2]
	d.ObserveRange(&flotillapb.RangeHeartbeatRequest{Descriptor_: r2, LeaderReplicaId: r2.GetReplicas()[0].GetReplicaId(), Term: 5})
	d.ObserveRange(&flotillapb.RangeHeartbeatRequest{Descriptor_: r3, LeaderReplicaId: r3.GetReplicas()[1].GetReplicaId(), Term: 5})
	meta.Ranges = []*flotillapb.RangeDescriptor{r2, r3}
	if steps := d.ScheduleLedBy(meta, 1, nil, true); len(steps) != 0 {
		t.Fatalf("store 1's complete range got %v", steps)
	}
	if steps := d.ScheduleLedBy(meta, 2, nil, false); len(steps) != 0 {
		t.Fatalf("without all, a range with no operator got %v", steps)
	}
	steps := d.ScheduleLedBy(meta, 2, nil, true)
	if s := steps[3]; len(steps) != 1 || s.GetKind() != flotillapb.OperatorStepKind_ADD_LEARNER {
		t.Fatalf("store 2's range missing a voter got %v", steps)
	}
	// The operator runs: its step comes with or without all, not to the
	// range's reporter in the same batch (skip), nor to another node.
	opID := steps[3].GetOperatorId()
	if steps := d.ScheduleLedBy(meta, 2, nil, false); steps[3] == nil || steps[3].GetOperatorId() != opID {
		t.Fatalf("the running operator's step: %v, want operator %d's", steps, opID)
	}
	if steps := d.ScheduleLedBy(meta, 2, map[multiraft.GroupID]bool{3: true}, true); len(steps) != 0 {
		t.Fatalf("a range reported in the batch got a second step: %v", steps)
	}
	if steps := d.ScheduleLedBy(meta, 1, nil, true); len(steps) != 0 {
		t.Fatalf("store 1 got store 2's step: %v", steps)
	}
}
