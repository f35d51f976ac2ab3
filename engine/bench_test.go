// Copyright 2026 The Flotilla Authors. All rights reserved.

package engine

import (
	"context"
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

// mvccBenchKeys is the number of user keys the MVCC benchmarks read.
const mvccBenchKeys = 10000

func mvccBenchKey(i int) []byte { return []byte(fmt.Sprintf("user-key-%08d", i)) }

// openBenchEngine is an in-memory engine with a block cache large enough
// to hold the benchmarks' data: they measure the read path, not the disk.
func openBenchEngine(b *testing.B) *Engine {
	return openMem(b, nil, func(o *Options) { o.CacheSize = 256 << 20; o.MemTableSize = 64 << 20 })
}

// settle flushes e's memtables and compacts everything into the bottom
// level, so that reads come from SSTs in a steady shape (not from a pile of
// overlapping L0 files left by the load).
func settle(b *testing.B, e *Engine) {
	if err := e.Flush(); err != nil {
		b.Fatal(err)
	}
	if err := e.db.Compact(context.Background(), []byte{localPrefixByte}, []byte{versionedPrefixByte + 1}, true); err != nil {
		b.Fatal(err)
	}
}

// loadVersions writes versions versions (of 100 B) of each of mvccBenchKeys
// keys, the revisions of a key interleaved with the others', and settles
// them into SSTs.
func loadVersions(b *testing.B, e *Engine, versions int) {
	value := make([]byte, 100)
	batch := e.NewBatch()
	for v := 1; v <= versions; v++ {
		for i := range mvccBenchKeys {
			rev := int64((v-1)*mvccBenchKeys + i + 1)
			if err := MVCCPut(batch, mvccBenchKey(i), Version{Value: value, ModRevision: rev, CreateRevision: int64(i + 1), Version: int64(v)}); err != nil {
				b.Fatal(err)
			}
		}
		mustCommit(b, batch, false)
		batch = e.NewBatch()
	}
	batch.Close()
	settle(b, e)
}

// BenchmarkMVCCGetLatest reads the newest version of a key with 1, 10 or
// 100 versions (one bloom-filtered SeekPrefixGE), from SSTs. plain is
// Engine.Get of a plain user key of the same size, for comparison.
func BenchmarkMVCCGetLatest(b *testing.B) {
	b.Run("plain", func(b *testing.B) {
		e := openBenchEngine(b)
		value := make([]byte, 100)
		batch := e.NewBatch()
		for i := range mvccBenchKeys {
			if err := batch.Set(userKey(b, string(mvccBenchKey(i))), value); err != nil {
				b.Fatal(err)
			}
		}
		mustCommit(b, batch, false)
		settle(b, e)
		keys := make([][]byte, mvccBenchKeys)
		for i := range keys {
			keys[i] = userKey(b, string(mvccBenchKey(i)))
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			if _, err := e.Get(keys[(i*7919)%mvccBenchKeys]); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, versions := range []int{1, 10, 100} {
		b.Run(fmt.Sprintf("versions=%d", versions), func(b *testing.B) {
			e := openBenchEngine(b)
			loadVersions(b, e, versions)
			keys := make([][]byte, mvccBenchKeys)
			for i := range keys {
				keys[i] = mvccBenchKey(i)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				v, found, err := MVCCGet(e, keys[(i*7919)%mvccBenchKeys], 0)
				if err != nil || !found || v.Version != int64(versions) {
					b.Fatalf("MVCCGet: %+v, %v, %v", v, found, err)
				}
			}
		})
	}
}

// BenchmarkMVCCPut stages one put of 100 B per op, committing (without
// sync) every 100; plain does the same with Batch.Set of a plain key.
func BenchmarkMVCCPut(b *testing.B) {
	value := make([]byte, 100)
	for _, mode := range []string{"plain", "mvcc"} {
		b.Run(mode, func(b *testing.B) {
			e := openBenchEngine(b)
			keys := make([][]byte, mvccBenchKeys)
			for i := range keys {
				keys[i] = mvccBenchKey(i)
				if mode == "plain" {
					keys[i] = userKey(b, string(keys[i]))
				}
			}
			batch := e.NewBatch()
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				var err error
				key := keys[i%mvccBenchKeys]
				if mode == "plain" {
					err = batch.Set(key, value)
				} else {
					err = MVCCPut(batch, key, Version{Value: value, ModRevision: int64(i + 1), CreateRevision: 1, Version: int64(i/mvccBenchKeys + 1)})
				}
				if err != nil {
					b.Fatal(err)
				}
				if i%100 == 99 {
					mustCommit(b, batch, false)
					batch = e.NewBatch()
				}
			}
			mustCommit(b, batch, false)
		})
	}
}

// BenchmarkMVCCScan scans 100 consecutive keys of 10 versions each, at the
// newest revision and at one where every key's visible version is its
// fifth (so the scan skips five newer ones per key), forwards and in
// reverse; plain scans 100 plain keys.
func BenchmarkMVCCScan(b *testing.B) {
	const versions, n = 10, 100
	b.Run("plain", func(b *testing.B) {
		e := openBenchEngine(b)
		value := make([]byte, 100)
		batch := e.NewBatch()
		for i := range mvccBenchKeys {
			if err := batch.Set(userKey(b, string(mvccBenchKey(i))), value); err != nil {
				b.Fatal(err)
			}
		}
		mustCommit(b, batch, false)
		settle(b, e)
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			start := (i * 7919) % (mvccBenchKeys - n)
			span, _ := UserSpan(mvccBenchKey(start), mvccBenchKey(start+n))
			count := 0
			if err := Scan(e, span, ScanOptions{}, func(_, _ []byte) error { count++; return nil }); err != nil || count != n {
				b.Fatalf("Scan: %d keys, %v", count, err)
			}
		}
	})
	e := openBenchEngine(b)
	loadVersions(b, e, versions)
	for _, tc := range []struct {
		name    string
		rev     int64
		reverse bool
	}{
		{"latest", 0, false},
		{"latest/reverse", 0, true},
		{"old", 5 * mvccBenchKeys, false},
		{"old/reverse", 5 * mvccBenchKeys, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				start := (i * 7919) % (mvccBenchKeys - n)
				count := 0
				err := MVCCScan(e, mvccBenchKey(start), mvccBenchKey(start+n), tc.rev, MVCCScanOptions{Reverse: tc.reverse},
					func(_ []byte, _ Version) error { count++; return nil })
				if err != nil || count != n {
					b.Fatalf("MVCCScan: %d keys, %v", count, err)
				}
			}
		})
	}
}
