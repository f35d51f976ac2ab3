// Copyright 2026 The Flotilla Authors. All rights reserved.

package router

import (
	"bytes"
	"sync"
	"time"

	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"github.com/google/btree"
	"google.golang.org/protobuf/proto"
)

// entry is one cached range. Its fields are never modified once the entry
// is in the cache: an update replaces the entry, so a reader that copied
// the pointers under the lock may use them after releasing it.
type entry struct {
	desc *flotillapb.RangeDescriptor
	// leader is nil when unknown. It need not be in desc's replicas (the
	// descriptor may be older than the hint).
	leader *flotillapb.ReplicaDescriptor
	// expires is when the entry stops being fresh.
	expires time.Time
}

func (e *entry) info() RangeInfo { return RangeInfo{Desc: e.desc, Leader: e.leader} }

func entryLess(a, b *entry) bool {
	return bytes.Compare(a.desc.GetStartKey(), b.desc.GetStartKey()) < 0
}

// cache maps keys to the ranges that hold them: a B-tree of entries by
// start key, and an index by range ID.
type cache struct {
	mu struct {
		sync.RWMutex
		// tree holds non-overlapping entries ordered by start key.
		tree *btree.BTreeG[*entry]
		// byID indexes the entries of tree by range ID; it holds exactly the
		// entries of tree (so a range ID has at most one entry).
		byID map[flotillapb.RangeID]*entry
	}
}

func newCache() *cache {
	c := &cache{}
	c.mu.tree = btree.NewG(32, entryLess)
	c.mu.byID = make(map[flotillapb.RangeID]*entry)
	return c
}

// pivot is a search key for the tree.
func pivot(key []byte) *entry {
	return &entry{desc: &flotillapb.RangeDescriptor{StartKey: key}}
}

// holds is desc.ContainsKey(key), or with before desc.ContainsKeyBefore(key).
func holds(desc *flotillapb.RangeDescriptor, key []byte, before bool) bool {
	if before {
		return desc.ContainsKeyBefore(key)
	}
	return desc.ContainsKey(key)
}

// get returns the entry whose range holds key.
func (c *cache) get(key []byte) (*entry, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.getLocked(key)
}

// lookup is get, or with before getBefore.
func (c *cache) lookup(key []byte, before bool) (*entry, bool) {
	if before {
		return c.getBefore(key)
	}
	return c.get(key)
}

// getBefore returns the entry whose range holds the keys just below key
// (see containsBefore): the entry with the greatest start key < key, or
// the last entry if key is empty.
func (c *cache) getBefore(key []byte) (*entry, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	var found *entry
	if len(key) == 0 {
		found, _ = c.mu.tree.Max()
	} else {
		c.mu.tree.DescendLessOrEqual(pivot(key), func(e *entry) bool {
			if bytes.Equal(e.desc.GetStartKey(), key) {
				return true // starts at key: holds none of the keys below it
			}
			found = e
			return false
		})
	}
	if found == nil || !found.desc.ContainsKeyBefore(key) {
		return nil, false
	}
	return found, true
}

func (c *cache) getLocked(key []byte) (*entry, bool) {
	var found *entry
	c.mu.tree.DescendLessOrEqual(pivot(key), func(e *entry) bool {
		found = e
		return false
	})
	if found == nil || !found.desc.ContainsKey(key) {
		return nil, false
	}
	return found, true
}

// insert caches desc, with leader if known, until expires, evicting the
// entries it overlaps and the older entry of the same range. If the cache
// already holds a newer descriptor of the range, it keeps it and inserts
// nothing. It returns the entry the cache now holds for the range. desc and
// leader are copied.
//
// Without a leader, the leader of the range's previous entry is kept if it
// is still one of its replicas.
func (c *cache) insert(desc *flotillapb.RangeDescriptor, leader *flotillapb.ReplicaDescriptor, expires time.Time) *entry {
	c.mu.Lock()
	defer c.mu.Unlock()
	id := flotillapb.RangeID(desc.GetRangeId())
	old := c.mu.byID[id]
	if old != nil && old.desc.GetEpoch().Dominates(desc.GetEpoch()) {
		return old
	}
	e := &entry{desc: desc.Clone(), leader: leader.Clone(), expires: expires}
	if e.leader == nil && old != nil && old.leader != nil && desc.ReplicaOnStore(flotillapb.StoreID(old.leader.GetStoreId())) != nil {
		e.leader = old.leader
	}
	if old != nil {
		c.removeLocked(old)
	}
	for _, o := range c.overlappingLocked(desc) {
		c.removeLocked(o)
	}
	c.mu.tree.ReplaceOrInsert(e)
	c.mu.byID[id] = e
	return e
}

// overlappingLocked returns the entries whose spans intersect desc's.
func (c *cache) overlappingLocked(desc *flotillapb.RangeDescriptor) []*entry {
	var out []*entry
	// The entry starting at or before desc's start may reach into it.
	c.mu.tree.DescendLessOrEqual(pivot(desc.GetStartKey()), func(e *entry) bool {
		if e.desc.Overlaps(desc) {
			out = append(out, e)
		}
		return false
	})
	// Entries starting inside desc's span overlap it.
	c.mu.tree.AscendGreaterOrEqual(pivot(desc.GetStartKey()), func(e *entry) bool {
		if !e.desc.Overlaps(desc) {
			return false
		}
		if len(out) == 0 || out[0] != e {
			out = append(out, e)
		}
		return true
	})
	return out
}

func (c *cache) removeLocked(e *entry) {
	if got, ok := c.mu.tree.Get(e); ok && got == e {
		c.mu.tree.Delete(e)
	}
	if c.mu.byID[flotillapb.RangeID(e.desc.GetRangeId())] == e {
		delete(c.mu.byID, flotillapb.RangeID(e.desc.GetRangeId()))
	}
}

// invalidate drops the entry of desc's range unless the cache holds a newer
// descriptor of it than desc.
func (c *cache) invalidate(desc *flotillapb.RangeDescriptor) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.mu.byID[flotillapb.RangeID(desc.GetRangeId())]
	if e == nil || e.desc.GetEpoch().Dominates(desc.GetEpoch()) {
		return
	}
	c.removeLocked(e)
}

// setLeader records the leader of a cached range (nil: unknown). If
// ifStore is non-zero, it changes the leader only if the cached one is on
// that store: a failed replica clears only its own leadership.
func (c *cache) setLeader(id flotillapb.RangeID, leader *flotillapb.ReplicaDescriptor, ifStore uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.mu.byID[id]
	if e == nil {
		return
	}
	if ifStore != 0 && e.leader.GetStoreId() != ifStore {
		return
	}
	if proto.Equal(e.leader, leader) {
		return
	}
	ne := &entry{desc: e.desc, leader: leader.Clone(), expires: e.expires}
	c.mu.tree.ReplaceOrInsert(ne)
	c.mu.byID[id] = ne
}

// len returns the number of cached ranges.
func (c *cache) len() int {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.mu.tree.Len()
}

// check verifies the cache's invariants, returning a description of
// the first one broken (tests call it).
func (c *cache) check() string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.mu.tree.Len() != len(c.mu.byID) {
		return "tree and byID differ in size"
	}
	var prev *entry
	bad := ""
	c.mu.tree.Ascend(func(e *entry) bool {
		if c.mu.byID[flotillapb.RangeID(e.desc.GetRangeId())] != e {
			bad = "entry missing from byID"
			return false
		}
		if prev != nil && prev.desc.Overlaps(e.desc) {
			bad = "overlapping entries"
			return false
		}
		prev = e
		return true
	})
	return bad
}
