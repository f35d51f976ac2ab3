// Copyright 2026 The Flotilla Authors. All rights reserved.

package engine

import (
	"fmt"
	"testing"

	pb "go.etcd.io/raft/v3/raftpb"
)

// benchmarkLogAppend appends one entry of 256 B to each of numRanges ranges
// per batch and commits every batch with an fsync, on a real directory. One
// op is one batch; entries/s is the figure to compare.
func benchmarkLogAppend(b *testing.B, numRanges int) {
	e, err := Open(Options{Dir: b.TempDir(), Logger: quietLogger})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	storages := make([]*RaftStorage, numRanges)
	for i := range storages {
		if storages[i], err = e.OpenRaftStorage(RangeID(i + 1)); err != nil {
			b.Fatal(err)
		}
		defer storages[i].Close()
	}
	payload := make([]byte, 256)
	term := uint64(1)
	ents := make([]*pb.Entry, numRanges)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		index := uint64(i + 1)
		batch := e.NewBatch()
		for r, s := range storages {
			ents[r] = &pb.Entry{Index: &index, Term: &term, Data: payload}
			if err := s.Append(batch, ents[r:r+1]); err != nil {
				b.Fatal(err)
			}
		}
		if err := batch.Commit(true); err != nil {
			b.Fatal(err)
		}
		batch.Close()
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N*numRanges)/b.Elapsed().Seconds(), "entries/s")
	b.ReportMetric(b.Elapsed().Seconds()*1e6/float64(b.N), "µs/fsync")
}

// BenchmarkLogAppend: 64 ranges × 1 entry of 256 B per synced batch.
func BenchmarkLogAppend(b *testing.B) { benchmarkLogAppend(b, 64) }

// BenchmarkLogAppendSingle: 1 range, 1 entry per synced batch, for contrast.
func BenchmarkLogAppendSingle(b *testing.B) { benchmarkLogAppend(b, 1) }

// BenchmarkEntries reads a window of 64 entries of 256 B, from the entry
// cache and, with the cache disabled, from Pebble.
func BenchmarkEntries(b *testing.B) {
	for _, cacheSize := range []int64{DefaultRaftEntryCacheSize, -1} {
		b.Run(fmt.Sprintf("cache=%v", cacheSize > 0), func(b *testing.B) {
			e := openMem(b, nil, func(o *Options) { o.RaftEntryCacheSize = cacheSize })
			s := openStorage(b, e, 1)
			defer s.Close()
			batch := e.NewBatch()
			var ents []*pb.Entry
			for i := uint64(1); i <= 1024; i++ {
				ents = append(ents, entry(i, 1, make([]byte, 256)))
			}
			_ = s.Append(batch, ents)
			mustCommit(b, batch, false)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				lo := uint64(i%900) + 1
				if _, err := s.Entries(lo, lo+64, 1<<20); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
