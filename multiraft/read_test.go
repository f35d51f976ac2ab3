// Copyright 2026 The Flotilla Authors. All rights reserved.

package multiraft_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"regexp"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/flotilladb/flotilla/internal/testcluster"
	"github.com/flotilladb/flotilla/internal/testutil"
	"github.com/flotilladb/flotilla/multiraft"
)

// appliedHas reports whether node applied cmd in group.
func appliedHas(t *testing.T, c *testcluster.Cluster, node multiraft.NodeID, group multiraft.GroupID, cmd string) bool {
	t.Helper()
	got, err := testcluster.ReadApplied(c.Node(node).Engine(), group)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range got {
		if a.Data == cmd {
			return true
		}
	}
	return false
}

// TestReadIndex: a read after an acknowledged write returns an index at
// least the write's, on the leader and on followers, and by then the
// replica applied the write.
func TestReadIndex(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{Nodes: 3, Seed: newSeed(t)})
	c.Bootstrap(1, 1, 2, 3)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range 20 {
		cmd := fmt.Sprintf("w%d", i)
		res, err := c.Propose(ctx, 1, []byte(cmd))
		if err != nil {
			t.Fatal(err)
		}
		writeIndex := binary.BigEndian.Uint64(res.Value)
		for _, node := range c.NodeIDs() {
			var idx uint64
			testutil.SucceedsSoon(t, func() error {
				var err error
				idx, err = c.Node(node).Host().ReadIndex(ctx, 1)
				return err
			})
			if idx < writeIndex {
				t.Fatalf("node %d: read index %d below acknowledged write %d", node, idx, writeIndex)
			}
			if !appliedHas(t, c, node, 1, cmd) {
				t.Fatalf("node %d: read returned before the write at %d was applied", node, writeIndex)
			}
		}
	}
}

func counterValue(t testing.TB, set *metrics.Set, name string) float64 {
	t.Helper()
	var buf bytes.Buffer
	set.WritePrometheus(&buf)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindSubmatch(buf.Bytes())
	if m == nil {
		t.Fatalf("metric %s missing", name)
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

// TestReadIndexBatching: concurrent reads of a group share rounds.
func TestReadIndexBatching(t *testing.T) {
	c, sets := metricsCluster(t, testcluster.Options{Nodes: 3, Seed: newSeed(t)})
	c.Bootstrap(1, 1, 2, 3)
	leader := c.WaitLeader(1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.Propose(ctx, 1, []byte("w")); err != nil {
		t.Fatal(err)
	}
	h := c.Node(leader).Host()
	before := counterValue(t, sets[leader], "flotilla_raft_read_index_rounds_total")
	const reads = 100
	var wg sync.WaitGroup
	errs := make(chan error, reads)
	for range reads {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := h.ReadIndex(ctx, 1); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	rounds := counterValue(t, sets[leader], "flotilla_raft_read_index_rounds_total") - before
	t.Logf("%d concurrent reads took %.0f rounds", reads, rounds)
	if rounds >= reads/2 {
		t.Fatalf("%d reads took %.0f rounds: not batched", reads, rounds)
	}
}

// TestStaleLeaderRead: a leader cut off from the others (quiescent at the
// time, then woken by the read) never serves a read while a new leader
// commits writes it has not seen.
func TestStaleLeaderRead(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{Nodes: 3, Seed: newSeed(t)})
	c.Bootstrap(1, 1, 2, 3)
	testutil.SucceedsSoon(t, func() error {
		if l, err := c.Leader(1); err != nil || l != 1 {
			_ = c.Node(1).Host().Campaign(1)
			return fmt.Errorf("leader %d, %v", l, err)
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.Propose(ctx, 1, []byte("before")); err != nil {
		t.Fatal(err)
	}
	testutil.SucceedsSoon(t, func() error {
		if n := c.Node(1).Host().Unquiesced(); n != 0 {
			return fmt.Errorf("leader not quiescent")
		}
		return nil
	})
	c.Net.Partition([]multiraft.NodeID{1}, []multiraft.NodeID{2, 3})
	// The majority elects a new leader and commits a write.
	testutil.SucceedsSoon(t, func() error {
		for _, n := range []multiraft.NodeID{2, 3} {
			if st, _ := c.Node(n).Host().Status(1); st.State.String() == "StateLeader" {
				return nil
			}
		}
		_ = c.Node(2).Host().Campaign(1)
		return fmt.Errorf("no leader in the majority")
	})
	var newLeader multiraft.NodeID
	for _, n := range []multiraft.NodeID{2, 3} {
		if st, _ := c.Node(n).Host().Status(1); st.State.String() == "StateLeader" {
			newLeader = n
		}
	}
	if _, err := c.Node(newLeader).Host().ProposeAndWait(ctx, 1, []byte("after")); err != nil {
		t.Fatal(err)
	}
	// The old leader must not serve a read: it cannot know of "after".
	for range 5 {
		rctx, rcancel := context.WithTimeout(ctx, 20*c.Node(1).Host().TickInterval())
		idx, err := c.Node(1).Host().ReadIndex(rctx, 1)
		rcancel()
		if err == nil {
			t.Fatalf("stale leader served a read at index %d", idx)
		}
	}
	c.Net.Heal()
	testutil.SucceedsSoon(t, func() error {
		if _, err := c.Node(1).Host().ReadIndex(ctx, 1); err != nil {
			return err
		}
		if !appliedHas(t, c, 1, 1, "after") {
			return fmt.Errorf("old leader read before applying the new write")
		}
		return nil
	})
}

// TestReadRounds: a group allowed two ReadIndex rounds at once
// (Config.ReadRounds) starts a second round for a read that arrives while
// the first cannot complete (the leader cut off), instead of queueing it;
// once the partition heals every read is served.
func TestReadRounds(t *testing.T) {
	c, sets := metricsCluster(t, testcluster.Options{
		Nodes: 3, Seed: newSeed(t),
		// Slow ticks: a round the partition blocks does not expire
		// (after ElectionTicks) while the test looks at it.
		TickInterval: 500 * time.Millisecond,
		Configure: func(cfg *multiraft.Config) {
			cfg.ReadRounds = func(multiraft.GroupID) int { return 2 }
		},
	})
	c.Bootstrap(1, 1, 2, 3)
	leader := c.WaitLeader(1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := c.Propose(ctx, 1, []byte("w")); err != nil {
		t.Fatal(err)
	}
	h := c.Node(leader).Host()
	var others []multiraft.NodeID
	for _, n := range []multiraft.NodeID{1, 2, 3} {
		if n != leader {
			others = append(others, n)
		}
	}
	c.Net.Partition([]multiraft.NodeID{leader}, others)
	before := counterValue(t, sets[leader], "flotilla_raft_read_index_rounds_total")
	errs := make(chan error, 3)
	read := func() {
		_, err := h.ReadIndex(ctx, 1)
		errs <- err
	}
	waitRounds := func(want float64) {
		t.Helper()
		testutil.SucceedsSoon(t, func() error {
			if got := counterValue(t, sets[leader], "flotilla_raft_read_index_rounds_total") - before; got != want {
				return fmt.Errorf("%.0f rounds started, want %.0f", got, want)
			}
			return nil
		})
	}
	go read()
	waitRounds(1)
	go read() // the first round is stuck: a second starts at once
	waitRounds(2)
	c.Net.Heal()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}
