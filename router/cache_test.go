// Copyright 2026 The Flotilla Authors. All rights reserved.

package router

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
)

func TestConfigValidate(t *testing.T) {
	c := Config{TTL: -1, MinBackoff: time.Second, MaxBackoff: time.Millisecond, ReadAttemptTimeout: -1}
	c.EnsureDefaults()
	err := c.Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"Resolver", "TTL", "MaxBackoff", "ReadAttemptTimeout"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	if _, err := New(Config{}); err == nil {
		t.Fatal("New accepted a config without a Resolver")
	}
	c = Config{Resolver: newFakeResolver()}
	c.EnsureDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.TTL != DefaultTTL || c.MaxBackoff != DefaultMaxBackoff || c.DefaultTimeout != DefaultTimeout {
		t.Fatalf("defaults not applied: %+v", c)
	}
}

// cacheIDs lists the cached ranges as "id[start,end)v" in key order.
func cacheIDs(c *cache) []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var out []string
	c.mu.tree.Ascend(func(e *entry) bool {
		out = append(out, fmt.Sprintf("%d[%s,%s)v%d", e.desc.GetRangeId(), e.desc.GetStartKey(),
			e.desc.GetEndKey(), e.desc.GetEpoch().GetVersion()))
		return true
	})
	return out
}

func TestCacheLookupBoundaries(t *testing.T) {
	full := []*flotillapb.RangeDescriptor{
		desc(1, "", "b", 1, 1, 1), desc(2, "b", "d", 1, 1, 1), desc(3, "d", "", 1, 1, 1),
	}
	gappy := []*flotillapb.RangeDescriptor{desc(2, "b", "d", 1, 1, 1), desc(4, "f", "g", 1, 1, 1)}
	for _, tc := range []struct {
		name   string
		ranges []*flotillapb.RangeDescriptor
		key    string
		want   uint64 // 0: miss
	}{
		{"empty key in first range", full, "", 1},
		{"inside first range", full, "a", 1},
		{"last key before end", full, "a\xff\xff", 1},
		{"exact start", full, "b", 2},
		{"last key before middle end", full, "c\xff", 2},
		{"exact start of last range", full, "d", 3},
		{"far into unbounded range", full, "\xff\xff\xff", 3},
		{"before first cached", gappy, "a", 0},
		{"empty key before first cached", gappy, "", 0},
		{"exact end is outside", gappy, "d", 0},
		{"in gap", gappy, "e", 0},
		{"exact start after gap", gappy, "f", 4},
		{"past last end", gappy, "g", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCache()
			for _, d := range tc.ranges {
				c.insert(d, nil, time.Time{})
			}
			e, ok := c.get([]byte(tc.key))
			switch {
			case tc.want == 0 && ok:
				t.Fatalf("key %q: got range %d, want a miss", tc.key, e.desc.GetRangeId())
			case tc.want != 0 && !ok:
				t.Fatalf("key %q: miss, want range %d", tc.key, tc.want)
			case ok && e.desc.GetRangeId() != tc.want:
				t.Fatalf("key %q: got range %d, want %d", tc.key, e.desc.GetRangeId(), tc.want)
			}
		})
	}
}

func TestCacheInsertEvictsOverlaps(t *testing.T) {
	for _, tc := range []struct {
		name   string
		before []*flotillapb.RangeDescriptor
		insert *flotillapb.RangeDescriptor
		want   []string
	}{{
		name:   "split: right half replaces the wide range",
		before: []*flotillapb.RangeDescriptor{desc(1, "a", "z", 1, 1, 1)},
		insert: desc(2, "m", "z", 2, 1, 1),
		want:   []string{"2[m,z)v2"},
	}, {
		name:   "split: left half replaces its older self",
		before: []*flotillapb.RangeDescriptor{desc(1, "a", "z", 1, 1, 1), desc(3, "z", "", 1, 1, 1)},
		insert: desc(1, "a", "m", 2, 1, 1),
		want:   []string{"1[a,m)v2", "3[z,)v1"},
	}, {
		name:   "merge: the wide range replaces both halves",
		before: []*flotillapb.RangeDescriptor{desc(1, "a", "m", 2, 1, 1), desc(2, "m", "z", 2, 1, 1), desc(3, "z", "", 1, 1, 1)},
		insert: desc(1, "a", "z", 3, 1, 1),
		want:   []string{"1[a,z)v3", "3[z,)v1"},
	}, {
		name:   "adjacent ranges are kept",
		before: []*flotillapb.RangeDescriptor{desc(1, "", "c", 1, 1, 1), desc(3, "f", "", 1, 1, 1)},
		insert: desc(2, "c", "f", 1, 1, 1),
		want:   []string{"1[,c)v1", "2[c,f)v1", "3[f,)v1"},
	}, {
		name:   "partial overlaps at both edges",
		before: []*flotillapb.RangeDescriptor{desc(1, "", "d", 1, 1, 1), desc(2, "d", "h", 1, 1, 1), desc(3, "h", "", 1, 1, 1)},
		insert: desc(4, "c", "i", 1, 1, 1),
		want:   []string{"4[c,i)v1"},
	}, {
		name:   "unbounded insert evicts everything after its start",
		before: []*flotillapb.RangeDescriptor{desc(1, "", "d", 1, 1, 1), desc(2, "d", "h", 1, 1, 1), desc(3, "h", "", 1, 1, 1)},
		insert: desc(5, "d", "", 1, 1, 1),
		want:   []string{"1[,d)v1", "5[d,)v1"},
	}, {
		name:   "same start, different range",
		before: []*flotillapb.RangeDescriptor{desc(1, "a", "c", 1, 1, 1)},
		insert: desc(2, "a", "b", 1, 1, 1),
		want:   []string{"2[a,b)v1"},
	}, {
		name:   "an older descriptor of a cached range is ignored",
		before: []*flotillapb.RangeDescriptor{desc(1, "a", "m", 2, 1, 1), desc(2, "m", "z", 1, 1, 1)},
		insert: desc(1, "a", "z", 1, 1, 1),
		want:   []string{"1[a,m)v2", "2[m,z)v1"},
	}, {
		name:   "a newer descriptor replaces its range even where it no longer overlaps",
		before: []*flotillapb.RangeDescriptor{desc(1, "a", "c", 1, 1, 1), desc(9, "x", "y", 1, 1, 1)},
		insert: desc(9, "c", "d", 2, 1, 1),
		want:   []string{"1[a,c)v1", "9[c,d)v2"},
	}, {
		name:   "same epoch refreshes",
		before: []*flotillapb.RangeDescriptor{desc(1, "a", "c", 1, 1, 1)},
		insert: desc(1, "a", "c", 1, 1, 2),
		want:   []string{"1[a,c)v1"},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCache()
			for _, d := range tc.before {
				c.insert(d, nil, time.Time{})
			}
			c.insert(tc.insert, nil, time.Time{})
			if got := cacheIDs(c); !slices.Equal(got, tc.want) {
				t.Fatalf("cache holds %v, want %v", got, tc.want)
			}
			if bad := c.check(); bad != "" {
				t.Fatal(bad)
			}
		})
	}
}

func TestCacheKeepsLeaderAcrossDescriptorUpdates(t *testing.T) {
	c := newCache()
	c.insert(desc(1, "a", "z", 1, 1, 1, 2, 3), leaderOn(2), time.Time{})
	// A split keeps the leader's store: the leader is kept.
	c.insert(desc(1, "a", "m", 2, 1, 1, 2, 3), nil, time.Time{})
	if e, _ := c.get([]byte("b")); e.leader.GetStoreId() != 2 {
		t.Fatalf("leader %v, want store 2", e.leader)
	}
	// A move off the leader's store forgets it.
	c.insert(desc(1, "a", "m", 2, 2, 1, 3, 4), nil, time.Time{})
	if e, _ := c.get([]byte("b")); e.leader != nil {
		t.Fatalf("leader %v, want none", e.leader)
	}
	// Clearing a leader only clears the named store's leadership.
	c.setLeader(1, leaderOn(3), 0)
	c.setLeader(1, nil, 4)
	if e, _ := c.get([]byte("b")); e.leader.GetStoreId() != 3 {
		t.Fatalf("leader %v, want store 3", e.leader)
	}
	c.setLeader(1, nil, 3)
	if e, _ := c.get([]byte("b")); e.leader != nil {
		t.Fatalf("leader %v, want none", e.leader)
	}
}

func TestInvalidate(t *testing.T) {
	res := newFakeResolver()
	r, _, _ := testRouter(t, res)
	old, cur := desc(1, "a", "z", 1, 1, 1), desc(1, "a", "z", 2, 1, 1)
	r.Update(RangeInfo{Desc: cur})
	r.Invalidate(old) // routed by an older descriptor: the newer one stays
	if got := cacheIDs(r.cache); !slices.Equal(got, []string{"1[a,z)v2"}) {
		t.Fatalf("cache holds %v after invalidating an older descriptor", got)
	}
	r.Invalidate(cur)
	if n := r.cache.len(); n != 0 {
		t.Fatalf("cache holds %v after invalidating the entry", cacheIDs(r.cache))
	}
	r.Invalidate(nil) // ignored
	if r.Update(RangeInfo{Desc: desc(0, "a", "b", 1, 1, 1)}) || r.Update(RangeInfo{Desc: desc(2, "b", "a", 1, 1, 1)}) {
		t.Fatal("Update cached an invalid descriptor")
	}
}

func TestLookupTTL(t *testing.T) {
	res := newFakeResolver(RangeInfo{Desc: desc(1, "", "", 1, 1, 1, 2, 3), Leader: leaderOn(1)})
	r, clock, _ := testRouter(t, res)
	ctx := context.Background()
	lookup := func(key string) RangeInfo {
		t.Helper()
		info, err := r.Lookup(ctx, []byte(key))
		if err != nil {
			t.Fatal(err)
		}
		return info
	}
	if info := lookup("k"); info.Desc.GetRangeId() != 1 || info.Leader.GetStoreId() != 1 {
		t.Fatalf("lookup returned %v", info)
	}
	clock.Advance(DefaultTTL - time.Nanosecond)
	lookup("other")
	if n := res.numCalls(); n != 1 {
		t.Fatalf("resolver called %d times before the TTL passed, want 1", n)
	}
	clock.Advance(time.Nanosecond)
	res.set(RangeInfo{Desc: desc(1, "", "", 1, 2, 1, 2, 4), Leader: leaderOn(4)})
	if info := lookup("k"); info.Leader.GetStoreId() != 4 || len(info.Desc.GetReplicas()) != 3 ||
		info.Desc.GetReplicas()[2].GetStoreId() != 4 {
		t.Fatalf("expired entry not refreshed: %v", info)
	}
	if n := res.numCalls(); n != 2 {
		t.Fatalf("resolver called %d times, want 2", n)
	}
	lookup("k")
	if n := res.numCalls(); n != 2 {
		t.Fatalf("resolver called %d times after the refresh, want 2", n)
	}
}

func TestLookupResolverError(t *testing.T) {
	res := newFakeResolver(RangeInfo{Desc: desc(1, "a", "m", 1, 1, 1)})
	r, clock, _ := testRouter(t, res)
	ctx := context.Background()
	boom := errors.New("placement driver unreachable")

	// No entry: the error is surfaced.
	res.setErr(boom)
	if _, err := r.Lookup(ctx, []byte("b")); !errors.Is(err, boom) {
		t.Fatalf("Lookup error %v, want %v", err, boom)
	}
	res.setErr(nil)
	if _, err := r.Lookup(ctx, []byte("b")); err != nil {
		t.Fatal(err)
	}
	// An expired entry is used when the refresh fails.
	clock.Advance(2 * DefaultTTL)
	res.setErr(boom)
	info, err := r.Lookup(ctx, []byte("c"))
	if err != nil || info.Desc.GetRangeId() != 1 {
		t.Fatalf("Lookup with a stale entry and a failing resolver = %v, %v; want the stale entry", info, err)
	}
	// A key outside every entry still fails.
	if _, err := r.Lookup(ctx, []byte("x")); !errors.Is(err, boom) {
		t.Fatalf("Lookup error %v, want %v", err, boom)
	}
	// A resolver answer that does not hold the key is an error, not cached.
	res.setErr(nil)
	if _, err := r.Lookup(ctx, []byte("x")); err == nil {
		t.Fatal("Lookup accepted a resolver answer without the key")
	}
	if got := cacheIDs(r.cache); !slices.Equal(got, []string{"1[a,m)v1"}) {
		t.Fatalf("cache holds %v", got)
	}
}

func TestLookupSingleFlight(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const n = 16
		res := newFakeResolver(RangeInfo{Desc: desc(1, "a", "m", 1, 1, 1)}, RangeInfo{Desc: desc(2, "m", "", 1, 1, 1)})
		res.block = make(chan struct{})
		r, clock, _ := testRouter(t, res)
		lookupAll := func(keys func(i int) string) {
			var wg sync.WaitGroup
			for i := range n {
				wg.Go(func() {
					if _, err := r.Lookup(t.Context(), []byte(keys(i))); err != nil {
						t.Error(err)
					}
				})
			}
			synctest.Wait() // every lookup waits for the one resolver call
			close(res.block)
			wg.Wait()
		}
		// N misses of one key: one call.
		lookupAll(func(int) string { return "b" })
		if c := res.numCalls(); c != 1 {
			t.Fatalf("%d concurrent misses made %d resolver calls, want 1", n, c)
		}
		// N refreshes of one expired entry, by different keys: one call.
		clock.Advance(2 * DefaultTTL)
		res.block = make(chan struct{})
		lookupAll(func(i int) string { return fmt.Sprintf("c%02d", i) })
		if c := res.numCalls(); c != 2 {
			t.Fatalf("%d concurrent refreshes made %d resolver calls, want 2", n, c-1)
		}
	})
}

func TestLookupFlightContexts(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		res := newFakeResolver(RangeInfo{Desc: desc(1, "", "", 1, 1, 1)})
		res.block = make(chan struct{})
		r, _, _ := testRouter(t, res)

		// The request that starts the flight gives up; a waiter with a
		// live context starts another flight and gets the range.
		ownerCtx, cancelOwner := context.WithCancel(t.Context())
		ownerDone := make(chan error, 1)
		go func() {
			_, err := r.Lookup(ownerCtx, []byte("k"))
			ownerDone <- err
		}()
		synctest.Wait()
		waiterCtx, cancelWaiter := context.WithCancel(t.Context())
		defer cancelWaiter()
		waiterDone := make(chan error, 1)
		go func() {
			_, err := r.Lookup(waiterCtx, []byte("k"))
			waiterDone <- err
		}()
		synctest.Wait()
		cancelOwner()
		if err := <-ownerDone; !errors.Is(err, context.Canceled) {
			t.Fatalf("owner's Lookup returned %v, want context.Canceled", err)
		}
		synctest.Wait() // the waiter has started a new flight, which blocks
		if c := res.numCalls(); c != 2 {
			t.Fatalf("resolver called %d times, want 2", c)
		}
		close(res.block)
		if err := <-waiterDone; err != nil {
			t.Fatalf("waiter's Lookup failed: %v", err)
		}

		// A waiter whose own context ends stops waiting at once.
		res.block = make(chan struct{})
		r.Invalidate(desc(1, "", "", 1, 1, 1))
		go func() {
			_, err := r.Lookup(t.Context(), []byte("k"))
			ownerDone <- err
		}()
		synctest.Wait()
		shortCtx, cancelShort := context.WithTimeout(t.Context(), time.Second)
		defer cancelShort()
		if _, err := r.Lookup(shortCtx, []byte("k")); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Lookup returned %v, want its own deadline", err)
		}
		close(res.block)
		if err := <-ownerDone; err != nil {
			t.Fatal(err)
		}
	})
}

func TestMetrics(t *testing.T) {
	set := metrics.NewSet()
	res := newFakeResolver(RangeInfo{Desc: desc(1, "", "", 1, 1, 1, 2), Leader: leaderOn(1)})
	r, err := New(Config{Resolver: res, Metrics: set, Testing: &TestingKnobs{Sleep: (&sleepRecorder{}).Sleep}})
	if err != nil {
		t.Fatal(err)
	}
	calls := 0
	_, err = Do(context.Background(), r, Request{Key: []byte("k")}, func(_ context.Context, tg Target) (string, error) {
		calls++
		if calls == 1 {
			return "", notLeader(2)
		}
		return "ok", nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	set.WritePrometheus(&sb)
	for _, want := range []string{
		"flotilla_router_requests_total 1",
		"flotilla_router_lookups_total 2",
		"flotilla_router_cache_hits_total 1",
		"flotilla_router_cache_misses_total 1",
		"flotilla_router_resolver_calls_total 1",
		`flotilla_router_retries_total{reason="not_leader"} 1`,
		"flotilla_router_request_errors_total 0",
	} {
		if !strings.Contains(sb.String(), want+"\n") {
			t.Errorf("metrics lack %q:\n%s", want, sb.String())
		}
	}
}

// TestLookupBefore: the range holding the keys just below a key, from the
// cache and from the resolver.
func TestLookupBefore(t *testing.T) {
	ranges := []RangeInfo{{Desc: desc(1, "", "b", 1, 1, 1)}, {Desc: desc(2, "b", "d", 1, 1, 1)}, {Desc: desc(3, "d", "", 1, 1, 1)}}
	for _, tc := range []struct {
		key  string
		want uint64
	}{
		{"", 3}, {"z", 3}, {"e", 3}, {"d", 2}, {"c", 2}, {"b\x00", 2}, {"b", 1}, {"a", 1}, {"\x00", 1},
	} {
		res := newFakeResolver(ranges...)
		r, _, _ := testRouter(t, res)
		// Cold: from the resolver; warm: from the cache.
		for _, round := range []string{"resolver", "cache"} {
			info, err := r.LookupBefore(context.Background(), []byte(tc.key))
			if err != nil || info.Desc.GetRangeId() != tc.want {
				t.Errorf("LookupBefore(%q) from the %s = range %d, %v; want range %d", tc.key, round, info.Desc.GetRangeId(), err, tc.want)
			}
		}
		// Every range cached: each lookup is a hit.
		for _, ri := range ranges {
			r.Update(ri)
		}
		calls := res.numCalls()
		if info, _ := r.LookupBefore(context.Background(), []byte(tc.key)); info.Desc.GetRangeId() != tc.want || res.numCalls() != calls {
			t.Errorf("LookupBefore(%q) with all cached = range %d after %d resolver calls", tc.key, info.Desc.GetRangeId(), res.numCalls()-calls)
		}
		checkCache(t, r)
	}
	// The first range holds nothing below its start.
	r, _, _ := testRouter(t, newFakeResolver(ranges...))
	if _, err := r.LookupBefore(context.Background(), []byte("\x00")); err != nil {
		t.Fatal(err)
	}
	if e, ok := r.cache.getBefore(nil); ok {
		t.Fatalf("getBefore(\"\") found %v with only the first range cached", e.desc)
	}
}
