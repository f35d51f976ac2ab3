// Copyright 2026 The Flotilla Authors. All rights reserved.

package server_test

// The revision oracle (docs/REVISIONS.md, "The oracle"), on an in-process
// three-node cluster whose peer links run through cuttable proxies (the
// linearizability tests' lzCluster). Every test records each Revisions
// call's call and return instants (monotonic) and checks the history
// (revHistory.violations): no revision handed out twice, and a call that
// returned before another began got smaller revisions (real-time order).
// TestOracleCatchesSkippedLeadershipCheck breaks the leader on purpose
// (TestingKnobs.UnsafeOracleSkipLeadershipCheck) and the check must
// report it.

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flotilladb/flotilla/internal/testutil"
	"github.com/flotilladb/flotilla/placement"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"github.com/flotilladb/flotilla/server"
)

// revOp is one successful Revisions call: it began at call, returned at
// ret (nanoseconds on the history's monotonic clock) with [lo, hi].
type revOp struct {
	node      int
	call, ret int64
	lo, hi    int64
}

// revHistory records Revisions calls from many goroutines.
type revHistory struct {
	base time.Time
	mu   struct {
		sync.Mutex
		ops []revOp
	}
	failed atomic.Int64
	// okBy counts the successful calls made through each node.
	okBy [lzNodes]atomic.Int64
}

func newRevHistory() *revHistory { return &revHistory{base: time.Now()} }

// now reads the monotonic clock (time.Since uses its monotonic reading).
func (h *revHistory) now() int64 { return time.Since(h.base).Nanoseconds() }

// do asks node i (n) for count revisions and records the outcome.
func (h *revHistory) do(i int, n *server.Node, count int, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	call := h.now()
	first, err := server.RevisionsForTest(ctx, n, count)
	ret := h.now()
	if err != nil {
		h.failed.Add(1)
		return err
	}
	h.okBy[i].Add(1)
	h.mu.Lock()
	h.mu.ops = append(h.mu.ops, revOp{node: i, call: call, ret: ret, lo: first, hi: first + int64(count) - 1})
	h.mu.Unlock()
	return nil
}

func (h *revHistory) ops() []revOp {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.mu.ops)
}

// maxRevision returns the highest revision recorded, 0 if none.
func (h *revHistory) maxRevision() int64 {
	var m int64
	for _, op := range h.ops() {
		m = max(m, op.hi)
	}
	return m
}

// violations checks the history: every revision handed out once, and for
// any two calls a and b where a returned before b began, a's revisions are
// below b's. It describes at most a few violations.
func (h *revHistory) violations() []string {
	ops := h.ops()
	var out []string
	report := func(s string) {
		if len(out) < 5 {
			out = append(out, s)
		}
	}
	byLo := slices.Clone(ops)
	slices.SortFunc(byLo, func(a, b revOp) int { return int(a.lo - b.lo) })
	for i := 1; i < len(byLo); i++ {
		if byLo[i].lo <= byLo[i-1].hi {
			report(fmt.Sprintf("revisions handed out twice: %+v and %+v", byLo[i-1], byLo[i]))
		}
	}
	// Sweep the calls in order of their start; before each, take in every
	// call that returned before it began and keep the highest revision.
	byCall := slices.Clone(ops)
	slices.SortFunc(byCall, func(a, b revOp) int { return int(a.call - b.call) })
	byRet := slices.Clone(ops)
	slices.SortFunc(byRet, func(a, b revOp) int { return int(a.ret - b.ret) })
	j, highest := 0, revOp{}
	for _, b := range byCall {
		for ; j < len(byRet) && byRet[j].ret < b.call; j++ {
			if byRet[j].hi > highest.hi {
				highest = byRet[j]
			}
		}
		if highest.hi != 0 && b.lo <= highest.hi {
			report(fmt.Sprintf("real-time order: %+v returned before %+v began, with a revision as high", highest, b))
		}
	}
	return out
}

// revTestSeed returns -lz.seed, or one from the clock, and logs how to
// rerun the test with it.
func revTestSeed(t *testing.T) uint64 {
	seed := *lzSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -run '^%s$' -lz.seed=%d)", seed, t.Name(), seed)
	return seed
}

// runRevisionCallers starts perNode goroutines per node, each asking its
// node for 1 to 3 revisions at a time until stop closes; a caller whose
// node is down or failed backs off a little. The returned function waits
// for them.
func runRevisionCallers(c *lzCluster, h *revHistory, seed uint64, perNode int, stop <-chan struct{}) (wait func()) {
	var wg sync.WaitGroup
	for i := range lzNodes {
		for k := range perNode {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(seed, uint64(i*perNode+k)))
				for {
					select {
					case <-stop:
						return
					default:
					}
					var err error
					if n := c.node(i); n != nil {
						err = h.do(i, n, 1+rng.IntN(3), lzOpTimeout)
					} else {
						err = errors.New("down")
					}
					if err != nil {
						// Pacing, not waiting for a condition: a node that
						// is down fails at once.
						select {
						case <-stop:
							return
						case <-time.After(5 * time.Millisecond):
						}
					}
				}
			}()
		}
	}
	return wg.Wait
}

// placementLeader returns the running node that reports itself leader of
// the placement group at the highest term, or -1.
func placementLeader(c *lzCluster) int {
	best, bestTerm := -1, uint64(0)
	for i := range lzNodes {
		n := c.node(i)
		if n == nil {
			continue
		}
		for _, r := range n.Status(false).GetReplicas() {
			if r.GetGroupId() == uint64(placement.GroupID) && r.GetReplicaId() != 0 &&
				r.GetLeaderReplicaId() == r.GetReplicaId() && r.GetTerm() >= bestTerm {
				best, bestTerm = i, r.GetTerm()
			}
		}
	}
	return best
}

// waitPlacementVoters waits until the placement group's leader lists a
// voter on every node, so that any one node may fail.
func waitPlacementVoters(t *testing.T, c *lzCluster) {
	t.Helper()
	testutil.SucceedsSoon(t, func() error {
		l := placementLeader(c)
		if l < 0 {
			return errors.New("no placement leader")
		}
		for _, r := range c.node(l).Status(false).GetReplicas() {
			if r.GetGroupId() != uint64(placement.GroupID) {
				continue
			}
			voters := 0
			for _, rd := range r.GetDescriptor_().GetReplicas() {
				if rd.GetType() == flotillapb.ReplicaType_VOTER {
					voters++
				}
			}
			if voters != lzNodes {
				return fmt.Errorf("placement group %v", r.GetDescriptor_())
			}
			return nil
		}
		return errors.New("the leader lists no placement replica")
	})
}

// waitServed waits until each of nodes has answered more calls than it
// had when waitServed began.
func waitServed(t *testing.T, h *revHistory, nodes ...int) {
	t.Helper()
	var before [lzNodes]int64
	for _, i := range nodes {
		before[i] = h.okBy[i].Load()
	}
	testutil.SucceedsSoon(t, func() error {
		for _, i := range nodes {
			if h.okBy[i].Load() < before[i]+20 {
				return fmt.Errorf("node %d served %d calls since", i+1, h.okBy[i].Load()-before[i])
			}
		}
		return nil
	})
}

func checkRevisions(t *testing.T, h *revHistory, minOK int) {
	t.Helper()
	ops := h.ops()
	t.Logf("%d calls answered, %d failed, highest revision %d", len(ops), h.failed.Load(), h.maxRevision())
	if v := h.violations(); len(v) > 0 {
		t.Fatalf("oracle history violates uniqueness or real-time order:\n%v", v)
	}
	if len(ops) < minOK {
		t.Fatalf("only %d calls answered, want at least %d", len(ops), minOK)
	}
}

// TestRevisionHistoryCheck: the checker itself, on hand-made histories.
func TestRevisionHistoryCheck(t *testing.T) {
	for _, tc := range []struct {
		name string
		ops  []revOp
		bad  bool
	}{
		{name: "sequential", ops: []revOp{{call: 0, ret: 1, lo: 1, hi: 1}, {call: 2, ret: 3, lo: 2, hi: 4}}},
		{name: "concurrent, any order", ops: []revOp{{call: 0, ret: 5, lo: 9, hi: 9}, {call: 1, ret: 3, lo: 2, hi: 2}}},
		{name: "duplicate", ops: []revOp{{call: 0, ret: 5, lo: 1, hi: 3}, {call: 1, ret: 6, lo: 3, hi: 3}}, bad: true},
		{name: "regression", ops: []revOp{{call: 0, ret: 1, lo: 5, hi: 5}, {call: 2, ret: 3, lo: 4, hi: 4}}, bad: true},
		{name: "regression past a concurrent call", ops: []revOp{
			{call: 0, ret: 1, lo: 8, hi: 8}, {call: 0, ret: 9, lo: 1, hi: 1}, {call: 5, ret: 6, lo: 7, hi: 7}}, bad: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newRevHistory()
			h.mu.ops = tc.ops
			if got := len(h.violations()) > 0; got != tc.bad {
				t.Fatalf("violations %v, want some: %v", h.violations(), tc.bad)
			}
		})
	}
}

// TestOracleConcurrent: callers on three nodes get unique revisions in
// real-time order, across many high-water mark raises (a small window),
// and the single calls' API rejects bad counts.
func TestOracleConcurrent(t *testing.T) {
	seed := revTestSeed(t)
	c := startLZCluster(t, &server.TestingKnobs{RevisionWindow: 64})
	if _, err := server.RevisionsForTest(context.Background(), c.node(0), 0); err == nil {
		t.Fatal("a call for 0 revisions succeeded")
	}
	h := newRevHistory()
	stop := make(chan struct{})
	wait := runRevisionCallers(c, h, seed, 8, stop)
	testutil.SucceedsSoon(t, func() error {
		for i := range lzNodes {
			if n := h.okBy[i].Load(); n < 200 {
				return fmt.Errorf("node %d answered %d calls", i+1, n)
			}
		}
		return nil
	})
	close(stop)
	wait()
	checkRevisions(t, h, 600)
	l := placementLeader(c)
	if raises := c.node(l).CounterForTest("flotilla_oracle_hwm_raises_total"); raises < 2 {
		t.Errorf("the leader raised the high-water mark %d times; want several with a window of 64", raises)
	}
	var batches, revs uint64
	for i := range lzNodes {
		batches += c.node(i).CounterForTest("flotilla_oracle_batches_total")
		revs += c.node(i).CounterForTest("flotilla_oracle_revisions_total")
	}
	t.Logf("%d batches, %d revisions (%.1f per batch)", batches, revs, float64(revs)/float64(batches))
}

// TestOracleUnderFaults: callers on every node while the placement
// group's leader is killed and restarted, then cut off from the others
// (CheckQuorum off, so that it goes on believing it leads, and is asked,
// until the partition heals): no revision twice, none out of real-time
// order.
func TestOracleUnderFaults(t *testing.T) {
	seed := revTestSeed(t)
	c := startLZCluster(t, &server.TestingKnobs{RevisionWindow: 256, DisableCheckQuorum: true})
	waitPlacementVoters(t, c)
	h := newRevHistory()
	stop := make(chan struct{})
	wait := runRevisionCallers(c, h, seed, 4, stop)
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
			wait()
		}
	}()
	all := []int{0, 1, 2}
	others := func(l int) []int { return slices.DeleteFunc(slices.Clone(all), func(i int) bool { return i == l }) }
	waitServed(t, h, all...)

	// Kill the placement leader; the others go on; bring it back.
	l := placementLeader(c)
	t.Logf("stopping node %d, the placement leader", l+1)
	if err := c.stop(l); err != nil {
		t.Fatal(err)
	}
	waitServed(t, h, others(l)...)
	if err := c.open(l); err != nil {
		t.Fatal(err)
	}
	waitServed(t, h, all...)

	// Cut the placement leader off. It still believes it leads and its
	// node's callers still ask it; the others elect a successor.
	waitPlacementVoters(t, c)
	l = placementLeader(c)
	t.Logf("isolating node %d, the placement leader", l+1)
	c.isolate(l)
	waitServed(t, h, others(l)...)
	// Calls through the deposed leader that begin now, after its successor
	// answered, must fail or be above the successor's.
	for range 3 {
		_ = h.do(l, c.node(l), 1, 500*time.Millisecond)
	}
	c.heal()
	waitServed(t, h, all...)
	close(stop)
	wait()
	checkRevisions(t, h, 100)
}

// TestOracleCatchesSkippedLeadershipCheck: without its leadership check, a
// deposed placement leader that does not know it yet answers from its own
// window, below its successor's, and the history check of
// TestOracleUnderFaults reports it.
func TestOracleCatchesSkippedLeadershipCheck(t *testing.T) {
	c := startLZCluster(t, &server.TestingKnobs{UnsafeOracleSkipLeadershipCheck: true, DisableCheckQuorum: true})
	waitPlacementVoters(t, c)
	h := newRevHistory()
	l := placementLeader(c)
	if err := h.do(l, c.node(l), 1, lzOpTimeout); err != nil { // the leader starts its term
		t.Fatal(err)
	}
	c.isolate(l)
	defer c.heal()
	other := (l + 1) % lzNodes
	testutil.SucceedsSoon(t, func() error { return h.do(other, c.node(other), 1, lzOpTimeout) })
	for range 3 {
		if err := h.do(l, c.node(l), 1, lzOpTimeout); err != nil {
			t.Fatalf("the deposed leader, without its check, failed: %v", err)
		}
	}
	v := h.violations()
	if len(v) == 0 {
		t.Fatalf("no violation reported for the history %+v", h.ops())
	}
	t.Logf("caught: %v", v[0])
}

// TestOracleAfterClusterRestart: after every node restarts, revisions are
// above every one handed out before.
func TestOracleAfterClusterRestart(t *testing.T) {
	c := startLZCluster(t, &server.TestingKnobs{RevisionWindow: 16})
	h := newRevHistory()
	for round := range 20 {
		i := round % lzNodes
		testutil.SucceedsSoon(t, func() error { return h.do(i, c.node(i), 1+round%3, lzOpTimeout) })
	}
	before := h.maxRevision()
	for i := range lzNodes {
		if err := c.stop(i); err != nil {
			t.Fatal(err)
		}
	}
	for i := range lzNodes {
		if err := c.open(i); err != nil {
			t.Fatal(err)
		}
	}
	for i := range lzNodes {
		testutil.SucceedsSoon(t, func() error { return h.do(i, c.node(i), 1, lzOpTimeout) })
	}
	checkRevisions(t, h, 23)
	for _, op := range h.ops()[20:] {
		if op.lo <= before {
			t.Fatalf("after the restart node %d got %d, at or below %d from before", op.node+1, op.lo, before)
		}
	}
}
