// Copyright 2026 The Flotilla Authors. All rights reserved.

package shard

import (
	"sync/atomic"

	"github.com/flotilladb/flotilla/engine"
)

// versionCache remembers, on one replica, what apply learned of keys' newest
// versions: create revision, mod revision, version, lease and value length,
// or that a key is absent. A put continues its key's create revision and
// version, and a delete needs to know the key exists, so without it every
// write op would seek the engine, through the memtables and every level
// that holds the key (etcd keeps every key's in memory, in its tree index;
// this keeps the recently written ones). It is exact, never a hint: apply
// writes through it, and whatever changes a range's data outside apply (a
// snapshot, a split, a compaction) resets it.
//
// It is the apply worker's: Apply and Restored only (and Destroyed, after
// the worker is done with the replica). Its size counts against a budget
// shared by the store's replicas (Config.VersionCacheBytes). A replica can
// only evict its own entries, so the budget is shared fairly: once it is
// full, a replica holding more than its share (the budget over the number
// of non-empty caches) evicts a few random entries of its own before it
// adds one, and a replica holding less adds anyway, as long as the caches
// together hold less than twice the budget (replicas that went idle keep
// their entries until then); past that, it evicts its own or adds
// nothing.
type versionCache struct {
	m map[string]cachedVersion
	// bytes is what m counts against the budget; budget is shared.
	bytes  atomic.Int64
	budget *cacheBudget
}

// cachedVersion is a key's newest version without its value.
type cachedVersion struct {
	createRev, modRev, version, lease int64
	valueLen                          int
	// absent: the key has no version or its newest is a tombstone.
	absent bool
}

// cacheBudget is the store's bound on its replicas' versionCaches.
type cacheBudget struct {
	limit int64
	used  atomic.Int64
	// caches counts the non-empty caches.
	caches atomic.Int64
}

// cacheEntryOverhead estimates an entry's bytes besides its key: the
// string header, the value and the map's share.
const cacheEntryOverhead = 96

// cacheEvictBatch is how many entries an insert over the budget evicts at
// once, so that a full cache evicts once per that many inserts.
const cacheEvictBatch = 16

func cachedOf(v engine.Version, found bool) cachedVersion {
	if !found || v.Deleted {
		return cachedVersion{absent: true}
	}
	return cachedVersion{createRev: v.CreateRevision, modRev: v.ModRevision, version: v.Version, lease: v.Lease, valueLen: len(v.Value)}
}

func (c *versionCache) get(key []byte) (cachedVersion, bool) {
	v, ok := c.m[string(key)]
	return v, ok
}

// put records key's newest version.
func (c *versionCache) put(key []byte, v cachedVersion) {
	if c.budget == nil || c.budget.limit <= 0 {
		return
	}
	if _, ok := c.m[string(key)]; ok {
		c.m[string(key)] = v
		return
	}
	size := int64(len(key) + cacheEntryOverhead)
	b := c.budget
	if used := b.used.Load() + size; used > b.limit &&
		(c.bytes.Load()+size > b.limit/max(1, b.caches.Load()) || used > 2*b.limit) {
		// Over its share, or the caches together at twice the budget.
		// Go's map iteration starts at a random place: evict a few
		// random entries (at most half, so that a small share is not
		// emptied on every put).
		n, evict := 0, min(cacheEvictBatch, (len(c.m)+1)/2)
		for k := range c.m {
			if n == evict {
				break
			}
			delete(c.m, k)
			c.release(int64(len(k) + cacheEntryOverhead))
			n++
		}
		if b.used.Load()+size > 2*b.limit {
			return // a miss costs a seek; the bound holds
		}
	}
	if len(c.m) == 0 {
		if c.m == nil {
			c.m = make(map[string]cachedVersion)
		}
		c.budget.caches.Add(1)
	}
	c.m[string(key)] = v
	c.bytes.Add(size)
	c.budget.used.Add(size)
}

// release returns an evicted entry's bytes to the budget.
func (c *versionCache) release(size int64) {
	c.bytes.Add(-size)
	c.budget.used.Add(-size)
	if len(c.m) == 0 {
		c.budget.caches.Add(-1)
	}
}

// reset forgets everything and returns its bytes to the budget: the
// range's data changed outside apply, or the replica was destroyed.
func (c *versionCache) reset() {
	if len(c.m) > 0 {
		c.budget.caches.Add(-1)
	}
	c.m = nil
	if n := c.bytes.Swap(0); n != 0 {
		c.budget.used.Add(-n)
	}
}
