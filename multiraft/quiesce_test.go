// Copyright 2026 The Flotilla Authors. All rights reserved.

package multiraft_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/flotilladb/flotilla/internal/testcluster"
	"github.com/flotilladb/flotilla/internal/testutil"
	"github.com/flotilladb/flotilla/multiraft"
)

// waitTicks waits until node's ticker fired n more times.
func waitTicks(t *testing.T, c *testcluster.Cluster, node multiraft.NodeID, n uint64) {
	t.Helper()
	h := c.Node(node).Host()
	target := h.Ticks() + n
	testutil.SucceedsSoon(t, func() error {
		if got := h.Ticks(); got < target {
			return fmt.Errorf("ticks %d of %d", got, target)
		}
		return nil
	})
}

// beatBatchesPerTick measures the batches carrying heartbeats from node 1 to
// node 2, per tick, over 20 ticks, with every group active.
func beatBatchesPerTick(t *testing.T, groups int) (batchesPerTick, beatsPerTick float64) {
	c := testcluster.New(t, testcluster.Options{
		Nodes: 2, Seed: newSeed(t), TickInterval: 50 * time.Millisecond,
		Configure: func(cfg *multiraft.Config) {
			cfg.Testing = &multiraft.TestingKnobs{DisableQuiescence: true}
		},
	})
	for _, g := range groupRange(groups) {
		c.Bootstrap(g, 1, 2)
	}
	testutil.SucceedsSoon(t, func() error {
		for _, g := range groupRange(groups) {
			if _, err := c.Leader(g); err != nil {
				return err
			}
		}
		return nil
	})
	waitTicks(t, c, 1, 4) // settle
	before := c.Net.Counts(1, 2)
	ticksBefore := c.Node(1).Host().Ticks()
	waitTicks(t, c, 1, 20)
	after := c.Net.Counts(1, 2)
	ticks := float64(c.Node(1).Host().Ticks() - ticksBefore)
	return float64(after.BeatBatches-before.BeatBatches) / ticks, float64(after.Beats-before.Beats) / ticks
}

// TestCoalescedHeartbeats: with every group active, the heartbeat messages
// between two hosts per tick do not grow with the number of groups.
func TestCoalescedHeartbeats(t *testing.T) {
	small, smallBeats := beatBatchesPerTick(t, 10)
	large, largeBeats := beatBatchesPerTick(t, 1000)
	t.Logf("10 groups: %.2f batches/tick carrying %.1f beats; 1000 groups: %.2f batches/tick carrying %.1f beats",
		small, smallBeats, large, largeBeats)
	if largeBeats < 50*smallBeats {
		t.Fatalf("1000 groups sent only %.1f beats per tick (10 groups: %.1f): groups not heartbeating", largeBeats, smallBeats)
	}
	// One flush per tick, plus the odd batch that leaves with other
	// messages: bounded by a small constant, not by the group count.
	if large > 2 || large > small+1 {
		t.Fatalf("heartbeat batches per tick grew with groups: %.2f (10 groups) -> %.2f (1000 groups)", small, large)
	}
}

// TestQuiescence: idle groups go quiet (no raft messages, no ticks), a
// proposal on a quiet group commits, and a host stopped while its groups are
// quiet leads to new leaders.
func TestQuiescence(t *testing.T) {
	groups := 1000
	if testing.Short() {
		groups = 200
	}
	c := testcluster.New(t, testcluster.Options{Nodes: 3, Seed: newSeed(t), TickInterval: 100 * time.Millisecond})
	all := groupRange(groups)
	for _, g := range all {
		c.Bootstrap(g, 1, 2, 3)
	}
	testutil.SucceedsSoon(t, func() error {
		for _, id := range c.NodeIDs() {
			if n := c.Node(id).Host().Unquiesced(); n != 0 {
				return fmt.Errorf("node %d: %d groups not quiescent", id, n)
			}
		}
		return nil
	})
	// Followers answer the leader's quiesce beat; let the answers go out.
	waitTicks(t, c, 1, 3)
	// Over 2 s: only liveness pings between hosts, and no ticks at all.
	counts := map[[2]multiraft.NodeID]testcluster.LinkCounts{}
	ticks := map[multiraft.NodeID]uint64{}
	for _, a := range c.NodeIDs() {
		ticks[a] = c.Node(a).Host().GroupTicks()
		for _, b := range c.NodeIDs() {
			counts[[2]multiraft.NodeID{a, b}] = c.Net.Counts(a, b)
		}
	}
	time.Sleep(2 * time.Second) // the measurement window the requirement names
	for _, a := range c.NodeIDs() {
		if got := c.Node(a).Host().GroupTicks(); got != ticks[a] {
			t.Errorf("node %d: %d ticks delivered to quiescent groups", a, got-ticks[a])
		}
		for _, b := range c.NodeIDs() {
			before, after := counts[[2]multiraft.NodeID{a, b}], c.Net.Counts(a, b)
			if after.Messages != before.Messages || after.Beats != before.Beats {
				t.Errorf("%d -> %d: %d raft messages and %d beats while quiescent", a, b,
					after.Messages-before.Messages, after.Beats-before.Beats)
			}
			if a != b && after.Batches == before.Batches {
				t.Errorf("%d -> %d: no liveness pings", a, b)
			}
		}
	}

	// A proposal on a quiescent group commits.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	p := newProposer(c)
	if err := p.proposeUntilAcked(ctx, 7, 1); err != nil {
		t.Fatal(err)
	}
	p.checkConverged(t, []multiraft.GroupID{7})

	// Stop the host leading most groups while they are quiet: its groups
	// elect new leaders among the others.
	testutil.SucceedsSoon(t, func() error {
		if n := c.Node(1).Host().Unquiesced() + c.Node(2).Host().Unquiesced() + c.Node(3).Host().Unquiesced(); n != 0 {
			return fmt.Errorf("%d groups awake", n)
		}
		return nil
	})
	var victim multiraft.NodeID
	most := -1
	led := leaderCounts(c, all)
	for n, count := range led {
		if count > most {
			victim, most = n, count
		}
	}
	t.Logf("stopping node %d, leader of %d quiet groups", victim, most)
	c.Stop(victim)
	testutil.SucceedsSoon(t, func() error {
		for _, g := range all {
			l, err := c.Leader(g)
			if err != nil {
				var sts []string
				for _, id := range c.NodeIDs() {
					if h := c.Node(id).Host(); h != nil {
						st, _ := h.Status(g)
						sts = append(sts, fmt.Sprintf("%+v quiet=%d", st, h.Unquiesced()))
					}
				}
				return fmt.Errorf("%w: %v", err, sts)
			}
			if l == victim {
				return fmt.Errorf("group %d still led by stopped node %d", g, victim)
			}
			_ = l
		}
		return nil
	})
	for _, g := range all[:20] {
		if err := p.proposeUntilAcked(ctx, g, 1); err != nil {
			t.Fatal(err)
		}
	}
	p.checkConverged(t, all[:20])
}
