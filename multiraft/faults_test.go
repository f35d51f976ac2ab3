// Copyright 2026 The Flotilla Authors. All rights reserved.

package multiraft_test

import (
	"context"
	"errors"
	"fmt"
	"github.com/VictoriaMetrics/metrics"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flotilladb/flotilla/internal/testcluster"
	"github.com/flotilladb/flotilla/internal/testutil"
	"github.com/flotilladb/flotilla/multiraft"
)

// proposer proposes numbered commands to groups and remembers which were
// acknowledged and which ended with an unknown outcome, so tests can check
// that no acknowledged command is lost or applied twice, no command of
// unknown outcome is applied twice, and nothing else is applied.
type proposer struct {
	c     *testcluster.Cluster
	mu    sync.Mutex
	acked map[multiraft.GroupID][]string
	maybe map[multiraft.GroupID][]string
	seq   atomic.Int64
}

func newProposer(c *testcluster.Cluster) *proposer {
	return &proposer{c: c, acked: map[multiraft.GroupID][]string{}, maybe: map[multiraft.GroupID][]string{}}
}

// propose proposes one new command and records its outcome.
func (p *proposer) propose(ctx context.Context, g multiraft.GroupID) error {
	cmd := fmt.Sprintf("g%d-%d", g, p.seq.Add(1))
	_, err := p.c.Propose(ctx, g, []byte(cmd))
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case err == nil:
		p.acked[g] = append(p.acked[g], cmd)
	case !multiraft.IsNotApplied(err):
		p.maybe[g] = append(p.maybe[g], cmd)
	}
	return err
}

// proposeUntilAcked proposes new commands to g until n more are
// acknowledged (commands with unknown outcomes do not count).
func (p *proposer) proposeUntilAcked(ctx context.Context, g multiraft.GroupID, n int) error {
	for acked := 0; acked < n; {
		err := p.propose(ctx, g)
		switch {
		case err == nil:
			acked++
		case ctx.Err() != nil:
			return fmt.Errorf("group %d: %d of %d acknowledged: %w", g, acked, n, err)
		}
	}
	return nil
}

func (p *proposer) outcomes(g multiraft.GroupID) (acked, maybe []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.acked[g]...), append([]string(nil), p.maybe[g]...)
}

func (p *proposer) ackedFor(g multiraft.GroupID) []string {
	acked, _ := p.outcomes(g)
	return acked
}

// checkConverged waits until every running replica of every group applied
// the same sequence, then checks it against what was proposed.
func (p *proposer) checkConverged(t *testing.T, groups []multiraft.GroupID) {
	t.Helper()
	for _, g := range groups {
		acked, maybe := p.outcomes(g)
		checkSameSequence(t, p.c, g, acked, maybe)
	}
}

// smallLogs truncates logs often, so that followers that fall behind (down,
// partitioned) catch up through snapshots.
func smallLogs(cfg *multiraft.Config) {
	cfg.RaftLogTruncationThreshold, cfg.RaftLogMaxEntries = 16, 64
}

func leaderCounts(c *testcluster.Cluster, groups []multiraft.GroupID) map[multiraft.NodeID]int {
	counts := map[multiraft.NodeID]int{}
	for _, g := range groups {
		if l, err := c.Leader(g); err == nil {
			counts[l]++
		}
	}
	return counts
}

func groupRange(n int) []multiraft.GroupID {
	var gs []multiraft.GroupID
	for g := 1; g <= n; g++ {
		gs = append(gs, multiraft.GroupID(g))
	}
	return gs
}

// TestLeaderHostRestart stops the host that leads most groups: the others
// re-elect and keep committing; restarted, it catches up through the log.
func TestLeaderHostRestart(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{Nodes: 3, Seed: newSeed(t)})
	groups := groupRange(20)
	for _, g := range groups {
		c.Bootstrap(g, 1, 2, 3)
	}
	p := newProposer(c)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, g := range groups {
		if err := p.proposeUntilAcked(ctx, g, 1); err != nil {
			t.Fatal(err)
		}
	}
	var victim multiraft.NodeID
	most := -1
	for n, count := range leaderCounts(c, groups) {
		if count > most {
			victim, most = n, count
		}
	}
	t.Logf("stopping node %d, leader of %d groups", victim, most)
	c.Stop(victim)
	for _, g := range groups {
		if err := p.proposeUntilAcked(ctx, g, 3); err != nil {
			t.Fatal(err)
		}
		if l, _ := c.Leader(g); l == victim {
			t.Fatalf("group %d still led by the stopped node", g)
		}
	}
	c.Restart(victim)
	for _, g := range groups {
		if err := p.proposeUntilAcked(ctx, g, 1); err != nil {
			t.Fatal(err)
		}
	}
	p.checkConverged(t, groups)
}

// TestPartitionMinority: the majority commits, the minority cannot; after
// healing no term moves needlessly (PreVote).
func TestPartitionMinority(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{Nodes: 3, Seed: newSeed(t)})
	groups := groupRange(10)
	for _, g := range groups {
		c.Bootstrap(g, 1, 2, 3)
		// Lead every group from node 1, in the majority.
		testutil.SucceedsSoon(t, func() error {
			if l, err := c.Leader(g); err != nil || l != 1 {
				_ = c.Node(1).Host().Campaign(g)
				return fmt.Errorf("group %d led by %d (%v)", g, l, err)
			}
			return nil
		})
	}
	p := newProposer(c)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for _, g := range groups {
		if err := p.proposeUntilAcked(ctx, g, 1); err != nil {
			t.Fatal(err)
		}
	}
	terms := map[multiraft.GroupID]uint64{}
	for _, g := range groups {
		st, _ := c.Node(1).Host().Status(g)
		terms[g] = st.Term
	}
	c.Net.Partition([]multiraft.NodeID{3}, []multiraft.NodeID{1, 2})
	for _, g := range groups {
		if err := p.proposeUntilAcked(ctx, g, 1); err != nil {
			t.Fatal(err)
		}
		// The minority cannot commit: its replica is not leader.
		_, err := c.Node(3).Host().ProposeAndWait(ctx, g, []byte("minority"))
		if !errors.Is(err, multiraft.ErrNotLeader) || !multiraft.IsNotApplied(err) {
			t.Fatalf("proposal on the minority: %v", err)
		}
		if hint := multiraft.LeaderHint(err); hint != 0 && hint.Node() == 3 {
			t.Fatalf("minority names itself leader")
		}
	}
	// Let the minority's election timers run out many times over.
	minorityTicksBefore := time.Now()
	testutil.SucceedsSoon(t, func() error {
		if time.Since(minorityTicksBefore) < 50*c.Node(1).Host().TickInterval() {
			return errors.New("waiting for the partitioned node to time out repeatedly")
		}
		return nil
	})
	c.Net.Heal()
	for _, g := range groups {
		if err := p.proposeUntilAcked(ctx, g, 1); err != nil {
			t.Fatal(err)
		}
	}
	p.checkConverged(t, groups)
	for _, g := range groups {
		st, _ := c.Node(1).Host().Status(g)
		if st.Term != terms[g] {
			t.Errorf("group %d: term went from %d to %d across a minority partition", g, terms[g], st.Term)
		}
		if l, _ := c.Leader(g); l != 1 {
			t.Errorf("group %d: leadership moved to %d", g, l)
		}
	}
}

// TestCrashAll crashes every host at once, while proposals are in flight,
// keeping only what was synced: afterwards every acknowledged proposal is
// applied, and none twice.
func TestCrashAll(t *testing.T) {
	seed := newSeed(t)
	c := testcluster.New(t, testcluster.Options{Nodes: 3, Seed: seed, Storage: testcluster.Crashable,
		Configure: smallLogs})
	groups := groupRange(10)
	for _, g := range groups {
		c.Bootstrap(g, 1, 2, 3)
	}
	p := newProposer(c)
	rng := newRand(seed)
	for round := range 3 {
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for _, g := range groups {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for ctx.Err() == nil {
					_ = p.propose(ctx, g)
				}
			}()
		}
		// Crash once a random number of proposals were acknowledged.
		target := len(p.ackedFor(1)) + 1 + rng.IntN(10)
		testutil.SucceedsSoon(t, func() error {
			if n := len(p.ackedFor(1)); n < target {
				return fmt.Errorf("round %d: %d of %d proposals acknowledged", round, n, target)
			}
			return nil
		})
		for _, id := range c.NodeIDs() {
			c.Crash(id)
		}
		cancel()
		wg.Wait()
		p.checkConverged(t, groups)
	}
}

// TestRandomized runs random proposals, partitions, message loss, delays,
// reordering and restarts across 3 to 5 hosts and many groups. Afterwards
// every replica of a group applied the same sequence, holding every
// acknowledged proposal exactly once.
func TestRandomized(t *testing.T) {
	seed := newSeed(t)
	rng := newRand(seed)
	nodes := 3 + rng.IntN(3)
	sets := map[multiraft.NodeID]*metrics.Set{}
	for id := range nodes {
		sets[multiraft.NodeID(id+1)] = metrics.NewSet()
	}
	c := testcluster.New(t, testcluster.Options{Nodes: nodes, Seed: seed, Configure: func(cfg *multiraft.Config) {
		smallLogs(cfg)
		cfg.Metrics = sets[cfg.NodeID] // kept across restarts
	}})
	groups := groupRange(30)
	for _, g := range groups {
		members := rng.Perm(nodes)[:3]
		var ids []multiraft.NodeID
		for _, m := range members {
			ids = append(ids, multiraft.NodeID(m+1))
		}
		c.Bootstrap(g, ids...)
	}
	p := newProposer(c)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := newRand(seed + uint64(w) + 1)
			for ctx.Err() == nil {
				pctx, pcancel := context.WithTimeout(ctx, 300*time.Millisecond)
				_ = p.propose(pctx, groups[r.IntN(len(groups))])
				pcancel()
			}
		}()
	}
	steps := 12
	if testing.Short() {
		steps = 5
	}
	for step := range steps {
		switch rng.IntN(5) {
		case 0:
			a := multiraft.NodeID(1 + rng.IntN(nodes))
			var rest []multiraft.NodeID
			for _, id := range c.NodeIDs() {
				if id != a {
					rest = append(rest, id)
				}
			}
			t.Logf("step %d: partition node %d", step, a)
			c.Net.Partition([]multiraft.NodeID{a}, rest)
		case 1:
			t.Logf("step %d: drop 20%%, delay up to 5ms, reorder", step)
			c.Net.SetDropRate(0.2)
			c.Net.SetDelay(0, 5*time.Millisecond)
			c.Net.SetReorder(0.2)
		case 2:
			id := multiraft.NodeID(1 + rng.IntN(nodes))
			t.Logf("step %d: restart node %d", step, id)
			c.Stop(id)
			c.Restart(id)
		default:
			t.Logf("step %d: heal", step)
			c.Net.Heal()
			c.Net.SetDropRate(0)
			c.Net.SetDelay(0, 0)
			c.Net.SetReorder(0)
		}
		// Let the load run under this fault for a while.
		before := p.seq.Load()
		testutil.SucceedsSoon(t, func() error {
			if p.seq.Load() < before+30 {
				return errors.New("waiting for proposals under the fault")
			}
			return nil
		})
	}
	c.Net.Heal()
	c.Net.SetDropRate(0)
	c.Net.SetDelay(0, 0)
	c.Net.SetReorder(0)
	cancel()
	wg.Wait()
	// Every group makes progress once healed.
	ctx2, cancel2 := context.WithTimeout(context.Background(), time.Minute)
	defer cancel2()
	for _, g := range groups {
		if err := p.proposeUntilAcked(ctx2, g, 1); err != nil {
			t.Fatal(err)
		}
	}
	p.checkConverged(t, groups)
	t.Logf("%d proposals, %d snapshots", p.seq.Load(), c.Net.Snapshots())
	// Partitions, drops, reordering, restarts, snapshots and truncation
	// never make a correct peer's message fail the hostile-input checks.
	for id, set := range sets {
		for _, reason := range []string{"bad_term", "commit_beyond_log", "bad_entries", "index_beyond_log", "bad_context", "bad_read_index", "not_from_peer"} {
			if n := set.GetOrCreateCounter(fmt.Sprintf(`flotilla_raft_messages_dropped_total{reason=%q}`, reason)).Get(); n != 0 {
				t.Errorf("node %d dropped %d messages of correct peers as %s", id, n, reason)
			}
		}
	}
}
