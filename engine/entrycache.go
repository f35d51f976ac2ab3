// Copyright 2026 The Flotilla Authors. All rights reserved.

package engine

import (
	"container/list"
	"sync"
	"sync/atomic"

	"github.com/flotilladb/flotilla/internal/invariants"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// entryCache holds recently appended raft log entries of every range on the
// store, bounded in bytes store-wide. Each range has one partition: a
// contiguous run of entries, normally the tail of its log. When the cache is
// over its bound it drops whole partitions, least recently used first, and
// then trims the front of the last one standing.
//
// The cache never decides what is in the log: RaftStorage asks it only for
// indexes inside the log's visible window and falls back to Pebble for
// anything it does not hold.
type entryCache struct {
	maxBytes int64 // <= 0: disabled

	hits, misses atomic.Uint64 // entries served from the cache / not

	mu struct {
		sync.Mutex
		bytes int64
		parts map[RangeID]*cachePartition
		// lru orders partitions, most recently used at the front.
		lru list.List
	}
}

type cachePartition struct {
	rangeID RangeID
	// ents are contiguous: ents[i].Index == ents[0].Index+i.
	ents  []*pb.Entry
	sizes []int // sizes[i] == proto.Size(ents[i])
	bytes int64
	elem  *list.Element
}

func (p *cachePartition) first() uint64 { return p.ents[0].GetIndex() }
func (p *cachePartition) last() uint64  { return p.first() + uint64(len(p.ents)) - 1 }

func newEntryCache(maxBytes int64) *entryCache {
	c := &entryCache{maxBytes: maxBytes}
	c.mu.parts = make(map[RangeID]*cachePartition)
	c.mu.lru.Init()
	return c
}

func (c *entryCache) enabled() bool { return c.maxBytes > 0 }

// add caches ents, which are contiguous and were just made durable as the
// newest entries of rangeID's log. Cached entries at or after ents[0] are
// replaced.
func (c *entryCache) add(rangeID RangeID, ents []*pb.Entry) {
	if !c.enabled() || len(ents) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.mu.parts[rangeID]
	if p == nil {
		p = &cachePartition{rangeID: rangeID}
		p.elem = c.mu.lru.PushFront(p)
		c.mu.parts[rangeID] = p
	} else {
		c.mu.lru.MoveToFront(p.elem)
	}
	c.truncateFromLocked(p, ents[0].GetIndex())
	if len(p.ents) > 0 && p.last()+1 != ents[0].GetIndex() {
		c.truncateFromLocked(p, 0) // not contiguous: start over
	}
	for _, e := range ents {
		size := proto.Size(e)
		p.ents = append(p.ents, e)
		p.sizes = append(p.sizes, size)
		p.bytes += int64(size)
		c.mu.bytes += int64(size)
	}
	c.evictLocked()
	if invariants.Enabled {
		c.checkLocked()
	}
}

// evictLocked drops data until the cache is within its bound.
func (c *entryCache) evictLocked() {
	for c.mu.bytes > c.maxBytes {
		back := c.mu.lru.Back().Value.(*cachePartition)
		if back.elem != c.mu.lru.Front() {
			c.removeLocked(back)
			continue
		}
		// One partition left and it alone is too big: trim its front.
		n, over := 0, c.mu.bytes-c.maxBytes
		for ; over > 0 && n < len(back.ents); n++ {
			over -= int64(back.sizes[n])
		}
		c.dropFrontLocked(back, n)
		if len(back.ents) == 0 {
			c.removeLocked(back)
		}
	}
}

func (c *entryCache) removeLocked(p *cachePartition) {
	c.mu.bytes -= p.bytes
	c.mu.lru.Remove(p.elem)
	delete(c.mu.parts, p.rangeID)
}

// truncateFromLocked drops p's entries with index >= index.
func (c *entryCache) truncateFromLocked(p *cachePartition, index uint64) {
	if len(p.ents) == 0 || index > p.last() {
		return
	}
	keep := 0
	if index > p.first() {
		keep = int(index - p.first())
	}
	for i := keep; i < len(p.ents); i++ {
		p.bytes -= int64(p.sizes[i])
		c.mu.bytes -= int64(p.sizes[i])
		p.ents[i] = nil
	}
	p.ents, p.sizes = p.ents[:keep], p.sizes[:keep]
}

// truncateFrom drops rangeID's cached entries with index >= index.
func (c *entryCache) truncateFrom(rangeID RangeID, index uint64) {
	if !c.enabled() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.mu.parts[rangeID]; p != nil {
		c.truncateFromLocked(p, index)
		if len(p.ents) == 0 {
			c.removeLocked(p)
		}
	}
}

// truncateTo drops rangeID's cached entries with index <= index.
func (c *entryCache) truncateTo(rangeID RangeID, index uint64) {
	if !c.enabled() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.mu.parts[rangeID]
	if p == nil || index < p.first() {
		return
	}
	if index >= p.last() {
		c.removeLocked(p)
		return
	}
	c.dropFrontLocked(p, int(index-p.first()+1))
}

// dropFrontLocked drops p's first n entries.
func (c *entryCache) dropFrontLocked(p *cachePartition, n int) {
	for i := 0; i < n; i++ {
		p.bytes -= int64(p.sizes[i])
		c.mu.bytes -= int64(p.sizes[i])
		p.ents[i] = nil
	}
	p.ents, p.sizes = p.ents[n:], p.sizes[n:]
}

// drop forgets every cached entry of rangeID.
func (c *entryCache) drop(rangeID RangeID) {
	if !c.enabled() {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if p := c.mu.parts[rangeID]; p != nil {
		c.removeLocked(p)
	}
}

// firstCached returns the index of the first cached entry of rangeID in
// [lo, hi), or hi if there is none.
func (c *entryCache) firstCached(rangeID RangeID, lo, hi uint64) uint64 {
	if !c.enabled() {
		return hi
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.mu.parts[rangeID]
	if p == nil || len(p.ents) == 0 || p.first() >= hi || p.last() < lo {
		return hi
	}
	return max(lo, p.first())
}

// appendEntries appends to dst the cached entries of rangeID from lo while
// they are cached and below hi, under the size limit of raft's Storage.Entries
// (a run always holds at least one entry; *size carries the running total).
// It returns dst, the index after the last entry appended, and whether it
// stopped because of maxSize.
func (c *entryCache) appendEntries(
	dst []*pb.Entry, rangeID RangeID, lo, hi uint64, size *uint64, maxSize uint64,
) (_ []*pb.Entry, next uint64, limited bool) {
	next = lo
	if !c.enabled() {
		return dst, next, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.mu.parts[rangeID]
	if p == nil || len(p.ents) == 0 || lo < p.first() || lo > p.last() {
		return dst, next, false
	}
	c.mu.lru.MoveToFront(p.elem)
	for i := int(lo - p.first()); i < len(p.ents) && next < hi; i++ {
		s := uint64(p.sizes[i])
		if len(dst) > 0 && *size+s > maxSize {
			limited = true
			break
		}
		*size += s
		dst = append(dst, p.ents[i])
		next++
	}
	c.hits.Add(next - lo)
	return dst, next, limited
}

// term returns the term of rangeID's entry at index if it is cached.
func (c *entryCache) term(rangeID RangeID, index uint64) (uint64, bool) {
	if !c.enabled() {
		return 0, false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.mu.parts[rangeID]
	if p == nil || len(p.ents) == 0 || index < p.first() || index > p.last() {
		return 0, false
	}
	return p.ents[index-p.first()].GetTerm(), true
}

// stats returns the bytes and partitions held.
func (c *entryCache) stats() (bytes int64, partitions int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.bytes, len(c.mu.parts)
}

// checkLocked verifies the cache's invariants; it runs under the invariants
// build tag.
func (c *entryCache) checkLocked() {
	var total int64
	for id, p := range c.mu.parts {
		if p.rangeID != id {
			panic("entry cache: partition under the wrong range")
		}
		var b int64
		for i, e := range p.ents {
			if e.GetIndex() != p.first()+uint64(i) {
				panic("entry cache: partition not contiguous")
			}
			b += int64(p.sizes[i])
		}
		if b != p.bytes {
			panic("entry cache: partition byte count drifted")
		}
		total += b
	}
	if total != c.mu.bytes {
		panic("entry cache: byte count drifted")
	}
	if c.mu.bytes > c.maxBytes {
		panic("entry cache: over its bound")
	}
}
