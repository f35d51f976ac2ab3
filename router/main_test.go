// Copyright 2026 The Flotilla Authors. All rights reserved.

package router

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"go.uber.org/goleak"
)

var seedFlag = flag.Uint64("seed", 0, "seed for randomized tests (0: pick one and print it)")

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newSeed returns the seed of a randomized test, printed so a failure can be
// rerun with -seed.
func newSeed(t testing.TB) uint64 {
	t.Helper()
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -run '^%s$' -seed %d)", seed, t.Name(), seed)
	return seed
}

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed^0x5bd1e995)) }

// replicaID is the ID tests give the replica of a range on a store.
func replicaID(store uint64) uint64 { return store<<32 | 1 }

// desc builds a descriptor whose replicas are voters on stores.
func desc(id uint64, start, end string, version, confVer uint64, stores ...uint64) *flotillapb.RangeDescriptor {
	d := &flotillapb.RangeDescriptor{
		RangeId: id,
		Epoch:   &flotillapb.RangeEpoch{Version: version, ConfVer: confVer},
	}
	if start != "" {
		d.StartKey = []byte(start)
	}
	if end != "" {
		d.EndKey = []byte(end)
	}
	for _, s := range stores {
		d.Replicas = append(d.Replicas, &flotillapb.ReplicaDescriptor{StoreId: s, ReplicaId: replicaID(s)})
	}
	return d
}

func leaderOn(store uint64) *flotillapb.ReplicaDescriptor {
	return &flotillapb.ReplicaDescriptor{StoreId: store, ReplicaId: replicaID(store)}
}

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// fakeResolver answers lookups from a list of descriptors and leaders that
// tests change as they go.
type fakeResolver struct {
	mu      sync.Mutex
	ranges  []RangeInfo
	err     error
	calls   int
	keys    []string
	block   chan struct{} // if not nil, lookups wait for it to close
	started chan struct{} // if not nil, receives a value as each lookup starts
}

func newFakeResolver(ranges ...RangeInfo) *fakeResolver { return &fakeResolver{ranges: ranges} }

func (f *fakeResolver) set(ranges ...RangeInfo) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ranges = ranges
}

func (f *fakeResolver) setErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err = err
}

func (f *fakeResolver) numCalls() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

func (f *fakeResolver) LookupRange(ctx context.Context, key []byte, before bool) (RangeInfo, error) {
	f.mu.Lock()
	f.calls++
	f.keys = append(f.keys, string(key))
	block, started, err := f.block, f.started, f.err
	ranges := f.ranges
	f.mu.Unlock()
	if started != nil {
		started <- struct{}{}
	}
	if block != nil {
		select {
		case <-block:
		case <-ctx.Done():
			return RangeInfo{}, ctx.Err()
		}
	}
	if err != nil {
		return RangeInfo{}, err
	}
	for _, ri := range ranges {
		if holds(ri.Desc, key, before) {
			return RangeInfo{Desc: ri.Desc.Clone(), Leader: ri.Leader.Clone()}, nil
		}
	}
	return RangeInfo{}, fmt.Errorf("fake resolver: no range holds %q", key)
}

// sleepRecorder stands in for the backoff's sleep: it records each
// duration and returns at once.
type sleepRecorder struct {
	mu     sync.Mutex
	slept  []time.Duration
	onCall func() // if set, runs on each sleep (say, to cancel a context)
}

func (s *sleepRecorder) Sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.slept = append(s.slept, d)
	on := s.onCall
	s.mu.Unlock()
	if on != nil {
		on()
	}
	return ctx.Err()
}

func (s *sleepRecorder) durations() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]time.Duration(nil), s.slept...)
}

// testRouter returns a router over res with a fake clock, recorded sleeps
// and no jitter (each backoff sleeps its full length).
func testRouter(t *testing.T, res Resolver) (*Router, *fakeClock, *sleepRecorder) {
	t.Helper()
	clock, sleeps := newFakeClock(), &sleepRecorder{}
	r, err := New(Config{
		Resolver: res,
		Testing: &TestingKnobs{
			Clock:  clock.Now,
			Sleep:  sleeps.Sleep,
			Jitter: func(d time.Duration) time.Duration { return d },
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return r, clock, sleeps
}

func checkCache(t *testing.T, r *Router) {
	t.Helper()
	if bad := r.cache.check(); bad != "" {
		t.Fatalf("cache invariant broken: %s", bad)
	}
}
