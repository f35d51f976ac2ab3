// Copyright 2026 The Flotilla Authors. All rights reserved.

package router

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/flotilladb/flotilla/rpc/flotillapb"
)

// clusterModel is a fake cluster whose ranges split, merge, move and change
// leaders at random while requests are routed to it. It plays both the
// replicas (serve) and a placement driver that lags behind them
// (LookupRange).
type clusterModel struct {
	mu  sync.Mutex
	rng *rand.Rand
	// ranges is the truth: the range of each ID and its leader's store (0:
	// none).
	ranges map[uint64]*modelRange
	// pd is the placement driver's view: a copy of ranges taken at some
	// earlier time.
	pd     map[uint64]*modelRange
	nextID uint64
	stores uint64
	events map[string]int
}

type modelRange struct {
	desc   *flotillapb.RangeDescriptor
	leader uint64
}

func newClusterModel(rng *rand.Rand) *clusterModel {
	m := &clusterModel{rng: rng, ranges: map[uint64]*modelRange{}, nextID: 2, stores: 6, events: map[string]int{}}
	m.ranges[1] = &modelRange{desc: desc(1, "", "", 1, 1, 1, 2, 3), leader: 1}
	m.syncPDLocked()
	return m
}

func (m *clusterModel) syncPDLocked() {
	m.pd = make(map[uint64]*modelRange, len(m.ranges))
	for id, r := range m.ranges {
		m.pd[id] = &modelRange{desc: r.desc.Clone(), leader: r.leader}
	}
}

// sortedIDs lists range IDs in order, so a seed replays the same choices.
func sortedIDs(ranges map[uint64]*modelRange) []uint64 {
	ids := make([]uint64, 0, len(ranges))
	for id := range ranges {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

func (m *clusterModel) pickLocked() *modelRange {
	ids := sortedIDs(m.ranges)
	return m.ranges[ids[m.rng.IntN(len(ids))]]
}

func (m *clusterModel) randomVoter(d *flotillapb.RangeDescriptor) uint64 {
	return d.GetReplicas()[m.rng.IntN(len(d.GetReplicas()))].GetStoreId()
}

// mutateLocked makes one random change to the cluster.
func (m *clusterModel) mutateLocked() {
	r := m.pickLocked()
	switch p := m.rng.Float64(); {
	case p < 0.3: // leader change (or loss)
		m.events["leader change"]++
		if m.rng.Float64() < 0.3 {
			r.leader = 0
		} else {
			r.leader = m.randomVoter(r.desc)
		}
	case p < 0.6: // split
		key := []byte(fmt.Sprintf("k%03d", m.rng.IntN(1000)))
		for _, id := range sortedIDs(m.ranges) {
			if (m.ranges[id].desc).ContainsKey(key) {
				r = m.ranges[id]
			}
		}
		if string(key) == string(r.desc.GetStartKey()) {
			return
		}
		m.events["split"]++
		right := r.desc.Clone()
		right.RangeId, right.StartKey, right.Epoch = m.nextID, key, &flotillapb.RangeEpoch{Version: 1, ConfVer: 1}
		m.nextID++
		left := r.desc.Clone()
		left.EndKey = key
		left.Epoch.Version++
		r.desc = left
		m.ranges[right.RangeId] = &modelRange{desc: right, leader: r.leader}
	case p < 0.68: // merge with the right neighbour
		if len(r.desc.GetEndKey()) == 0 {
			return
		}
		for _, id := range sortedIDs(m.ranges) {
			b := m.ranges[id]
			if string(b.desc.GetStartKey()) != string(r.desc.GetEndKey()) {
				continue
			}
			m.events["merge"]++
			merged := r.desc.Clone()
			merged.EndKey = b.desc.GetEndKey()
			merged.Epoch.Version = max(r.desc.GetEpoch().GetVersion(), b.desc.GetEpoch().GetVersion()) + 1
			r.desc = merged
			delete(m.ranges, id)
			return
		}
	case p < 0.95: // move a replica to a store without one
		var free []uint64
		for s := uint64(1); s <= m.stores; s++ {
			if r.desc.ReplicaOnStore(flotillapb.StoreID(s)) == nil {
				free = append(free, s)
			}
		}
		m.events["move"]++
		moved := r.desc.Clone()
		i := m.rng.IntN(len(moved.Replicas))
		from, to := moved.Replicas[i].GetStoreId(), free[m.rng.IntN(len(free))]
		moved.Replicas[i] = &flotillapb.ReplicaDescriptor{StoreId: to, ReplicaId: replicaID(to)}
		moved.Epoch.ConfVer++
		r.desc = moved
		if r.leader == from {
			r.leader = 0
		}
	}
}

// LookupRange answers from the placement driver's view, which catches up
// with the truth on some lookups only; a few lookups fail.
func (m *clusterModel) LookupRange(_ context.Context, key []byte, before bool) (RangeInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.rng.Float64() < 0.05 {
		m.events["lookup failed"]++
		return RangeInfo{}, fmt.Errorf("placement driver unreachable")
	}
	if m.rng.Float64() < 0.6 {
		m.syncPDLocked()
	}
	for _, id := range sortedIDs(m.pd) {
		r := m.pd[id]
		if holds(r.desc, key, before) {
			info := RangeInfo{Desc: r.desc.Clone()}
			if r.leader != 0 && m.rng.Float64() < 0.7 {
				info.Leader = leaderOn(r.leader)
			}
			return info, nil
		}
	}
	panic("the model's ranges do not cover the keyspace")
}

// serve is a replica on tg.Store answering an attempt: the checks of
// shard's Store, faults, and a chance of a change to the cluster first.
// It reports whether the outcome of a write is unknown.
func (m *clusterModel) serve(tg Target, key []byte, write bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.rng.Float64() < 0.15 {
		m.mutateLocked()
	}
	store := uint64(tg.Store)
	switch p := m.rng.Float64(); {
	case p < 0.03:
		m.events["busy"]++
		return serverBusy()
	case p < 0.06:
		m.events["unavailable"]++
		if write {
			return unavailable(flotillapb.Outcome_NOT_APPLIED)
		}
		return unavailable(flotillapb.Outcome_OUTCOME_UNSPECIFIED)
	}
	r := m.ranges[tg.Header.GetRangeId()]
	if r == nil || r.desc.ReplicaOnStore(flotillapb.StoreID(store)) == nil {
		m.events["range not found"]++
		return rangeNotFound(tg.Header.GetRangeId())
	}
	if r.leader == 0 && m.rng.Float64() < 0.3 {
		r.leader = m.randomVoter(r.desc)
	}
	if tg.Header.GetVersion() != r.desc.GetEpoch().GetVersion() {
		m.events["epoch not match"]++
		return epochNotMatch(r.desc.Clone())
	}
	if !r.desc.ContainsKey(key) {
		m.events["key not in range"]++
		return keyNotInRange(string(key), r.desc.Clone())
	}
	if !write {
		if r.leader == 0 {
			m.events["unavailable"]++
			return unavailable(flotillapb.Outcome_OUTCOME_UNSPECIFIED)
		}
		return nil // any replica reads through ReadIndex
	}
	if r.leader != store {
		m.events["not leader"]++
		hint := r.leader
		if hint != 0 && m.rng.Float64() < 0.2 {
			hint = m.randomVoter(r.desc) // a stale hint
		}
		return notLeader(hint)
	}
	if m.rng.Float64() < 0.04 {
		m.events["unknown outcome"]++
		return unavailable(flotillapb.Outcome_UNKNOWN)
	}
	return nil
}

// runRandomRequests runs n requests for random keys against the model and
// checks each: it succeeds within its deadline, or is a write that failed
// with an unknown outcome after an attempt said so, and such a write is
// never sent again.
func runRandomRequests(t *testing.T, r *Router, m *clusterModel, rng func() *rand.Rand, n int, stats map[string]int, statsMu *sync.Mutex) {
	for i := range n {
		var req Request
		func() {
			rg := rng()
			req = Request{Key: []byte(fmt.Sprintf("k%03d", rg.IntN(1000)))}
			req.Write = rg.IntN(2) == 0
		}()
		unknownSeen, attempts := false, 0
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		start := time.Now()
		_, err := Do(ctx, r, req, func(_ context.Context, tg Target) (struct{}, error) {
			attempts++
			if unknownSeen {
				t.Errorf("request %d (%+v): sent again after an unknown outcome", i, req)
			}
			if !tg.Range.ContainsKey(req.Key) || tg.Header.GetRangeId() != tg.Range.GetRangeId() ||
				tg.Header.GetVersion() != tg.Range.GetEpoch().GetVersion() {
				t.Errorf("request %d for %q routed by %v with header %v", i, req.Key, tg.Range, tg.Header)
			}
			err := m.serve(tg, req.Key, req.Write)
			if err != nil && req.Write && err.(*flotillapb.Error).GetOutcome() == flotillapb.Outcome_UNKNOWN {
				unknownSeen = true
			}
			return struct{}{}, err
		})
		elapsed := time.Since(start)
		cancel()
		statsMu.Lock()
		stats["requests"]++
		stats["attempts"] += attempts
		stats["max virtual ms"] = max(stats["max virtual ms"], int(elapsed.Milliseconds()))
		switch {
		case err == nil:
			stats["succeeded"]++
		case req.Write && unknownSeen && outcomeOf(err) == flotillapb.Outcome_UNKNOWN:
			stats["unknown outcome returned"]++
		default:
			t.Errorf("request %d (%+v) failed after %d attempts in %v: %v", i, req, attempts, elapsed, err)
		}
		statsMu.Unlock()
		if bad := r.cache.check(); bad != "" {
			t.Errorf("after request %d: cache invariant broken: %s", i, bad)
		}
		if t.Failed() {
			return // the goroutine may not be the test's: no FailNow
		}
	}
}

func newModelRouter(t *testing.T, m *clusterModel, jitter func(time.Duration) time.Duration) *Router {
	cfg := Config{Resolver: m, TTL: 300 * time.Millisecond}
	if jitter != nil {
		cfg.Testing = &TestingKnobs{Jitter: jitter}
	}
	r, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestRandomizedCluster routes requests one at a time (so that a seed
// replays exactly) while the model's ranges change under them. Time is
// virtual: backoffs and deadlines cost nothing.
func TestRandomizedCluster(t *testing.T) {
	seed := newSeed(t)
	synctest.Test(t, func(t *testing.T) {
		rng := newRand(seed)
		m := newClusterModel(newRand(seed + 1))
		r := newModelRouter(t, m, func(d time.Duration) time.Duration { return time.Duration(rng.Int64N(int64(d) + 1)) })
		stats := map[string]int{}
		var mu sync.Mutex
		n := 3000
		if testing.Short() {
			n = 500
		}
		runRandomRequests(t, r, m, func() *rand.Rand { return rng }, n, stats, &mu)
		t.Logf("requests %v; cluster events %v; %d ranges at the end", stats, m.events, len(m.ranges))
	})
}

// TestRandomizedClusterConcurrent is the same with requests from many
// goroutines at once (for the race detector; a seed does not replay it
// exactly).
func TestRandomizedClusterConcurrent(t *testing.T) {
	seed := newSeed(t)
	synctest.Test(t, func(t *testing.T) {
		m := newClusterModel(newRand(seed))
		r := newModelRouter(t, m, nil)
		stats := map[string]int{}
		var mu sync.Mutex
		var wg sync.WaitGroup
		for g := range 8 {
			rng := newRand(seed + uint64(g) + 1)
			wg.Go(func() {
				runRandomRequests(t, r, m, func() *rand.Rand { return rng }, 150, stats, &mu)
			})
		}
		wg.Wait()
		t.Logf("requests %v; cluster events %v; %d ranges at the end", stats, m.events, len(m.ranges))
	})
}

func outcomeOf(err error) flotillapb.Outcome {
	if fe, ok := err.(*flotillapb.Error); ok {
		return fe.GetOutcome()
	}
	return -1
}
