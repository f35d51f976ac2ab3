// Copyright 2026 The Flotilla Authors. All rights reserved.

package router

import (
	"bytes"
	"sync"
	"time"

	"github.com/flotilladb/flotilla/multiraft"
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
		byID map[multiraft.GroupID]*entry
	}
}

func newCache() *cache {
	c := &cache{}
	c.mu.tree = btree.NewG(32, entryLess)
	c.mu.byID = make(map[multiraft.GroupID]*entry)
	return c
}

// pivot is a search key for the tree.
func pivot(key []byte) *entry {
	return &entry{desc: &flotillapb.RangeDescriptor{StartKey: key}}
}

// containsKey reports whether key is in [start, end) of desc (an empty end
// is +∞).
func containsKey(desc *flotillapb.RangeDescriptor, key []byte) bool {
	if bytes.Compare(key, desc.GetStartKey()) < 0 {
		return false
	}
	end := desc.GetEndKey()
	return len(end) == 0 || bytes.Compare(key, end) < 0
}

// containsBefore reports whether desc holds the keys just below key (key
// exclusive): start < key <= end, with an empty end +∞; an empty key stands
// for +∞, so only the last range holds the keys below it.
func containsBefore(desc *flotillapb.RangeDescriptor, key []byte) bool {
	end := desc.GetEndKey()
	if len(key) == 0 {
		return len(end) == 0
	}
	if bytes.Compare(desc.GetStartKey(), key) >= 0 {
		return false
	}
	return len(end) == 0 || bytes.Compare(key, end) <= 0
}

// holds is containsKey, or with before containsBefore.
func holds(desc *flotillapb.RangeDescriptor, key []byte, before bool) bool {
	if before {
		return containsBefore(desc, key)
	}
	return containsKey(desc, key)
}

// overlaps reports whether the spans of a and b intersect.
func overlaps(a, b *flotillapb.RangeDescriptor) bool {
	// a starts before b ends, and b starts before a ends.
	aEnd, bEnd := a.GetEndKey(), b.GetEndKey()
	return (len(bEnd) == 0 || bytes.Compare(a.GetStartKey(), bEnd) < 0) &&
		(len(aEnd) == 0 || bytes.Compare(b.GetStartKey(), aEnd) < 0)
}

// dominates reports whether epoch a is strictly newer than b: no older in
// either component and newer in one. Each change of a range bumps one
// component, so two epochs of one range are always ordered this way.
func dominates(a, b *flotillapb.RangeEpoch) bool {
	if a.GetVersion() < b.GetVersion() || a.GetConfVer() < b.GetConfVer() {
		return false
	}
	return a.GetVersion() > b.GetVersion() || a.GetConfVer() > b.GetConfVer()
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
	if found == nil || !containsBefore(found.desc, key) {
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
	if found == nil || !containsKey(found.desc, key) {
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
	id := multiraft.GroupID(desc.GetRangeId())
	old := c.mu.byID[id]
	if old != nil && dominates(old.desc.GetEpoch(), desc.GetEpoch()) {
		return old
	}
	e := &entry{desc: cloneDesc(desc), leader: cloneReplica(leader), expires: expires}
	if e.leader == nil && old != nil && old.leader != nil && hasStore(desc, old.leader.GetStoreId()) {
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
		if overlaps(e.desc, desc) {
			out = append(out, e)
		}
		return false
	})
	// Entries starting inside desc's span overlap it.
	c.mu.tree.AscendGreaterOrEqual(pivot(desc.GetStartKey()), func(e *entry) bool {
		if !overlaps(e.desc, desc) {
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
	if c.mu.byID[multiraft.GroupID(e.desc.GetRangeId())] == e {
		delete(c.mu.byID, multiraft.GroupID(e.desc.GetRangeId()))
	}
}

// invalidate drops the entry of desc's range unless the cache holds a newer
// descriptor of it than desc.
func (c *cache) invalidate(desc *flotillapb.RangeDescriptor) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.mu.byID[multiraft.GroupID(desc.GetRangeId())]
	if e == nil || dominates(e.desc.GetEpoch(), desc.GetEpoch()) {
		return
	}
	c.removeLocked(e)
}

// setLeader records the leader of a cached range (nil: unknown). If
// ifStore is non-zero, it changes the leader only if the cached one is on
// that store: a failed replica clears only its own leadership.
func (c *cache) setLeader(id multiraft.GroupID, leader *flotillapb.ReplicaDescriptor, ifStore uint64) {
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
	ne := &entry{desc: e.desc, leader: cloneReplica(leader), expires: e.expires}
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
		if c.mu.byID[multiraft.GroupID(e.desc.GetRangeId())] != e {
			bad = "entry missing from byID"
			return false
		}
		if prev != nil && overlaps(prev.desc, e.desc) {
			bad = "overlapping entries"
			return false
		}
		prev = e
		return true
	})
	return bad
}

func hasStore(desc *flotillapb.RangeDescriptor, store uint64) bool {
	for _, r := range desc.GetReplicas() {
		if r.GetStoreId() == store {
			return true
		}
	}
	return false
}

func cloneDesc(d *flotillapb.RangeDescriptor) *flotillapb.RangeDescriptor {
	if d == nil {
		return nil
	}
	return proto.Clone(d).(*flotillapb.RangeDescriptor)
}

func cloneReplica(r *flotillapb.ReplicaDescriptor) *flotillapb.ReplicaDescriptor {
	if r == nil {
		return nil
	}
	return proto.Clone(r).(*flotillapb.ReplicaDescriptor)
}
