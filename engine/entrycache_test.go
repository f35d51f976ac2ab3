// Copyright 2026 The Flotilla Authors. All rights reserved.

package engine

import (
	"math"
	"testing"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

func cacheEntries(lo, hi, term uint64, size int) []*pb.Entry {
	var ents []*pb.Entry
	for i := lo; i < hi; i++ {
		ents = append(ents, entry(i, term, make([]byte, size)))
	}
	return ents
}

// cached returns the indexes of rangeID's cached entries from lo on.
func cached(c *entryCache, rangeID RangeID, lo uint64) []uint64 {
	var size uint64
	ents, _, _ := c.appendEntries(nil, rangeID, lo, math.MaxUint64, &size, math.MaxUint64)
	var out []uint64
	for _, e := range ents {
		out = append(out, e.GetIndex())
	}
	return out
}

func TestEntryCacheBoundAndLRU(t *testing.T) {
	one := proto.Size(entry(1, 1, make([]byte, 100)))
	c := newEntryCache(int64(one * 25))
	c.add(1, cacheEntries(1, 11, 1, 100))
	c.add(2, cacheEntries(1, 11, 1, 100))
	// Touch range 1 so that range 2 is the least recently used.
	if got := cached(c, 1, 1); len(got) != 10 {
		t.Fatalf("range 1 cached %v", got)
	}
	c.add(3, cacheEntries(1, 11, 1, 100))
	if bytes, parts := c.stats(); bytes > int64(one*25) || parts != 2 {
		t.Fatalf("cache holds %d bytes in %d partitions; bound %d", bytes, parts, one*25)
	}
	if got := cached(c, 2, 1); got != nil {
		t.Fatalf("least recently used range 2 not evicted: %v", got)
	}
	// One range alone over the bound keeps its newest entries.
	c.add(4, cacheEntries(1, 41, 1, 100))
	got := cached(c, 4, 16)
	if len(got) != 25 || got[0] != 16 || got[24] != 40 {
		t.Fatalf("oversized range cached %v", got)
	}
	if _, parts := c.stats(); parts != 1 {
		t.Fatalf("%d partitions left", parts)
	}
	c.checkLocked()
}

func TestEntryCacheTruncation(t *testing.T) {
	c := newEntryCache(1 << 20)
	c.add(1, cacheEntries(1, 11, 1, 10))
	c.add(1, cacheEntries(6, 8, 2, 10)) // overwrite a suffix
	if got := cached(c, 1, 1); len(got) != 7 || got[6] != 7 {
		t.Fatalf("after overwrite: %v", got)
	}
	if term, ok := c.term(1, 7); !ok || term != 2 {
		t.Fatalf("term(7) = %d, %v", term, ok)
	}
	c.truncateTo(1, 3)
	if got := cached(c, 1, 4); len(got) != 4 || got[0] != 4 {
		t.Fatalf("after truncateTo(3): %v", got)
	}
	if _, ok := c.term(1, 3); ok {
		t.Fatal("truncated entry still cached")
	}
	c.truncateFrom(1, 6)
	if got := cached(c, 1, 4); len(got) != 2 {
		t.Fatalf("after truncateFrom(6): %v", got)
	}
	c.add(1, cacheEntries(9, 10, 3, 10)) // not contiguous: starts over
	if got := cached(c, 1, 4); got != nil {
		t.Fatalf("non-contiguous add kept old entries: %v", got)
	}
	if got := cached(c, 1, 9); len(got) != 1 {
		t.Fatalf("non-contiguous add: %v", got)
	}
	c.drop(1)
	if bytes, parts := c.stats(); bytes != 0 || parts != 0 {
		t.Fatalf("after drop: %d bytes, %d partitions", bytes, parts)
	}
	c.checkLocked()

	off := newEntryCache(-1)
	off.add(1, cacheEntries(1, 3, 1, 10))
	if got := cached(off, 1, 1); got != nil {
		t.Fatalf("disabled cache returned %v", got)
	}
}
