// Copyright 2026 The Flotilla Authors. All rights reserved.

package shard

import (
	"fmt"
	"testing"
)

// TestVersionCacheBudget: replicas share the budget. A cache that filled
// it and went idle does not keep a busy one from caching; the caches
// together stay within twice the budget however many get busy; a reset (a
// snapshot, a split, a destroyed replica) returns a cache's bytes.
func TestVersionCacheBudget(t *testing.T) {
	const entries = 100
	entry := int64(len("key-0000") + cacheEntryOverhead)
	b := &cacheBudget{limit: entries * entry}
	cold, hot := &versionCache{budget: b}, &versionCache{budget: b}
	for i := range entries {
		cold.put(fmt.Appendf(nil, "key-%04d", i), cachedVersion{version: 1})
	}
	if got := b.used.Load(); got != b.limit || b.caches.Load() != 1 {
		t.Fatalf("after filling: %d bytes used of %d, %d caches", got, b.limit, b.caches.Load())
	}
	for i := range 10 * entries {
		k := fmt.Appendf(nil, "hot-%04d", i)
		hot.put(k, cachedVersion{version: int64(i)})
		if v, ok := hot.get(k); !ok || v.version != int64(i) {
			t.Fatalf("the busy cache dropped the entry it just added: %v, %v", v, ok)
		}
	}
	if n := len(hot.m); n < entries/4 {
		t.Fatalf("the busy cache holds %d entries beside an idle full one; want about half the budget's %d", n, entries)
	}
	// A third busy cache, then a fourth...: together they never pass twice
	// the budget.
	for c := range 8 {
		busy := &versionCache{budget: b}
		for i := range 2 * entries {
			busy.put(fmt.Appendf(nil, "b%d-%04d", c, i), cachedVersion{})
			if used := b.used.Load(); used > 2*b.limit {
				t.Fatalf("busy cache %d: %d bytes used of a budget of %d", c, used, b.limit)
			}
		}
		if c == 0 && len(busy.m) == 0 {
			t.Fatal("a third busy cache cached nothing while the budget was under twice full")
		}
		// (Later ones may get nothing: the idle caches keep their
		// entries, and a cache evicts only its own.)
		defer busy.reset()
	}
	if used := b.used.Load(); used > 2*b.limit || used < cold.bytes.Load()+hot.bytes.Load() {
		t.Fatalf("%d bytes used (cold %d, hot %d) of a budget of %d", used, cold.bytes.Load(), hot.bytes.Load(), b.limit)
	}
	b2 := &cacheBudget{limit: entries * entry}
	x, y := &versionCache{budget: b2}, &versionCache{budget: b2}
	for i := range 3 * entries {
		x.put(fmt.Appendf(nil, "x-%05d", i), cachedVersion{})
		y.put(fmt.Appendf(nil, "y-%05d", i), cachedVersion{})
	}
	x.reset()
	y.reset()
	if b2.used.Load() != 0 || b2.caches.Load() != 0 || x.m != nil {
		t.Fatalf("after resets: %d bytes used, %d caches", b2.used.Load(), b2.caches.Load())
	}
	off := &versionCache{budget: &cacheBudget{limit: -1}}
	off.put([]byte("k"), cachedVersion{})
	if _, ok := off.get([]byte("k")); ok {
		t.Fatal("a cache with no budget cached")
	}
}
