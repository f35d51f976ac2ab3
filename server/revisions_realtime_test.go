// Copyright 2026 The Flotilla Authors. All rights reserved.

package server_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flotilladb/flotilla/internal/revcheck"
	"github.com/flotilladb/flotilla/internal/testutil"
	"github.com/flotilladb/flotilla/server"
)

// TestRevisionRealTimeOrderAcrossRanges checks the revisions of writes end
// to end (TESTING.md scenario 19; the oracle alone is TestOracleUnderFaults):
// writers put to keys in four ranges through every node while the
// placement group's leader, which holds the oracle, is stopped and
// restarted, and then cut off from the others with CheckQuorum off (a
// deposed leader that goes on running, and is asked, until the partition
// heals). Every write's call, return and revision is recorded with the
// latest reads between them, and revcheck.CheckRealTime must find no
// revision twice and none out of real-time order, across ranges.
func TestRevisionRealTimeOrderAcrossRanges(t *testing.T) {
	seed := revTestSeed(t)
	keys := []string{"a0", "a1", "b0", "b1", "c0", "c1", "d0", "d1"}
	c := startRVCluster(t, &server.TestingKnobs{RevisionWindow: 256, DisableCheckQuorum: true}, []string{"b", "c", "d"})
	rec := revcheck.NewRecorder()

	// Two writers per node, each through its node only; one op in ten is
	// a latest read.
	const perNode = 2
	var (
		stop = make(chan struct{})
		wg   sync.WaitGroup
		okBy [lzNodes]atomic.Int64
	)
	const maxOps = 50000 // per writer
	for i := range lzNodes {
		for k := range perNode {
			cl := c.client(rec, i*perNode+k, i)
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(seed, uint64(cl.id)+1))
				for seq := range maxOps {
					select {
					case <-stop:
						return
					default:
					}
					key := keys[rng.IntN(len(keys))]
					var err error
					if rng.IntN(10) == 0 {
						_, err = cl.get(key, 0)
					} else if _, err = cl.put(key, fmt.Sprintf("c%d-%d", cl.id, seq)); err == nil {
						okBy[i].Add(1)
					}
					if err != nil {
						// Pacing, not waiting for a condition: a node that is
						// down may fail at once.
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
	stopWriters := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopWriters()

	// waitServed waits until each of nodes acknowledged more writes.
	waitServed := func(nodes ...int) {
		t.Helper()
		var before [lzNodes]int64
		for _, i := range nodes {
			before[i] = okBy[i].Load()
		}
		testutil.SucceedsSoon(t, func() error {
			for _, i := range nodes {
				if n := okBy[i].Load() - before[i]; n < 10 {
					return fmt.Errorf("node %d acknowledged %d writes since", i+1, n)
				}
			}
			return nil
		})
	}
	all := []int{0, 1, 2}
	others := func(l int) []int { return slices.DeleteFunc(slices.Clone(all), func(i int) bool { return i == l }) }
	waitServed(all...)

	// One round, or as many as -lz.soak allows.
	deadline := time.Now().Add(*lzSoak)
	for round := 0; round == 0 || time.Now().Before(deadline); round++ {
		// Stop the placement leader; the others go on; bring it back.
		waitPlacementVoters(t, c.lzCluster)
		l := placementLeader(c.lzCluster)
		t.Logf("round %d: stopping node %d, the placement leader", round, l+1)
		if err := c.stop(l); err != nil {
			t.Fatal(err)
		}
		waitServed(others(l)...)
		if err := c.open(l); err != nil {
			t.Fatal(err)
		}
		waitServed(all...)

		// Cut the placement leader off; it believes it still leads, and
		// its node's writers still ask it.
		waitPlacementVoters(t, c.lzCluster)
		l = placementLeader(c.lzCluster)
		t.Logf("round %d: isolating node %d, the placement leader", round, l+1)
		c.isolate(l)
		waitServed(others(l)...)
		// Writes through the deposed leader's node that begin now, after
		// its successor answered, must fail or be above the successor's.
		deposed := c.client(rec, lzNodes*perNode+round, l)
		deposed.timeout = 500 * time.Millisecond
		for i := range 3 {
			_, _ = deposed.put(keys[i], fmt.Sprintf("deposed-%d-%d", round, i))
		}
		c.heal()
		waitServed(all...)
	}
	stopWriters()

	h := rec.History()
	n := countOps(h)
	t.Logf("%s; %s", rec, n)
	if err := revcheck.CheckRealTime(h); err != nil {
		t.Fatalf("write revisions out of real-time order: %v", err)
	}
	if n.writes < 100 {
		t.Fatalf("only %d writes completed, want at least 100", n.writes)
	}
}
