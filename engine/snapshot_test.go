// Copyright 2026 The Flotilla Authors. All rights reserved.

package engine

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/raft/v3/raftpb"
)

// dump returns every pair of r, as "key=value" with pretty keys, in order.
func dump(t testing.TB, r Reader) []string {
	t.Helper()
	var out []string
	err := Scan(r, Span{Start: []byte{0}, End: []byte{0xff}}, ScanOptions{}, func(k, v []byte) error {
		out = append(out, PrettyKey(k)+"="+string(v))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func dumpSpan(t testing.TB, r Reader, span Span) []string {
	t.Helper()
	var out []string
	if err := Scan(r, span, ScanOptions{}, func(k, v []byte) error {
		out = append(out, PrettyKey(k)+"="+string(v))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func putUser(t testing.TB, e *Engine, kv ...string) {
	t.Helper()
	b := e.NewBatch()
	for i := 0; i < len(kv); i += 2 {
		if err := b.Set(userKey(t, kv[i]), []byte(kv[i+1])); err != nil {
			t.Fatal(err)
		}
	}
	mustCommit(t, b, true)
}

// exportAll exports spans of e into chunks (copies).
func exportAll(t testing.TB, e *Engine, spans []Span) [][]byte {
	t.Helper()
	snap, err := e.NewSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	var chunks [][]byte
	if err := snap.Export(context.Background(), spans, func(c []byte) error {
		chunks = append(chunks, bytes.Clone(c))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return chunks
}

// ingestAll ingests chunks into e and returns how many SSTs that took.
func ingestAll(t testing.TB, e *Engine, spans []Span, chunks [][]byte) (files int) {
	t.Helper()
	ing, err := e.NewIngester(spans)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range chunks {
		if err := ing.Add(c); err != nil {
			ing.Abort()
			t.Fatal(err)
		}
	}
	files = len(ing.files)
	if _, err := ing.Finish(context.Background()); err != nil {
		t.Fatal(err)
	}
	return files
}

// TestExportIngest exports a range (user data and replicated state) from one
// engine and ingests it into another holding different data there and
// neighbours around it.
func TestExportIngest(t *testing.T) {
	for _, small := range []bool{false, true} {
		t.Run(fmt.Sprintf("smallFiles=%v", small), func(t *testing.T) {
			tiny := func(o *Options) {
				if small { // many chunks and many SSTs
					o.SnapshotChunkSize, o.IngestFileSize = 1<<10, 1<<10
				}
			}
			src := openMem(t, nil, tiny)
			dst := openMem(t, nil, tiny)

			var kv []string
			for i := range 500 {
				kv = append(kv, fmt.Sprintf("m%04d", i), fmt.Sprintf("src-%d-%s", i, bytes.Repeat([]byte("v"), i%50)))
			}
			putUser(t, src, kv...)
			putUser(t, src, "a", "src-outside", "z", "src-outside")
			b := src.NewBatch()
			_ = b.Set(RangeDescriptorKey(5), []byte("src-descriptor"))
			_ = b.Set(RangeAppliedStateKey(5), []byte("src-applied"))
			mustCommit(t, b, true)

			// The target: stale data inside the span (some flushed, some in
			// the memtable), neighbours outside, another range's state, and
			// range 5's raft log, which a snapshot must not touch.
			putUser(t, dst, "m0000", "stale", "m0250x", "stale-only-in-dst", "m9999", "stale")
			if err := dst.Flush(); err != nil {
				t.Fatal(err)
			}
			putUser(t, dst, "m0001", "stale-in-memtable", "l", "neighbour", "n", "neighbour")
			b = dst.NewBatch()
			_ = b.Set(RangeDescriptorKey(5), []byte("dst-descriptor"))
			_ = b.Set(RangeLeaseKey(5), []byte("dst-lease-only"))
			_ = b.Set(RangeDescriptorKey(6), []byte("other-range"))
			mustCommit(t, b, true)
			rs := openStorage(t, dst, 5)
			b = dst.NewBatch()
			_ = rs.Append(b, []*pb.Entry{entry(1, 1, []byte("log"))})
			mustCommit(t, b, true)
			rs.Close()

			userSpan, _ := UserSpan([]byte("m"), []byte("n"))
			spans := []Span{RangeReplicatedSpan(5), userSpan}
			before := dump(t, dst)
			chunks := exportAll(t, src, spans)
			if small && len(chunks) < 10 {
				t.Fatalf("only %d chunks with a 1 KiB chunk size", len(chunks))
			}
			if files := ingestAll(t, dst, spans, chunks); small && files < 5 {
				t.Fatalf("only %d SSTs with a 1 KiB file size", files)
			}

			for _, span := range spans {
				want, got := dumpSpan(t, src, span), dumpSpan(t, dst, span)
				if fmt.Sprint(want) != fmt.Sprint(got) {
					t.Fatalf("span %s differs after ingest:\n got %d pairs %.300v\nwant %d pairs %.300v",
						span, len(got), got, len(want), want)
				}
			}
			// Everything outside the spans is as it was.
			outside := func(pairs []string) []string {
				var out []string
				for _, p := range pairs {
					if !bytes.HasPrefix([]byte(p), []byte("/User/\"m")) && !bytes.HasPrefix([]byte(p), []byte("/Range/5/Replicated")) {
						out = append(out, p)
					}
				}
				return out
			}
			if fmt.Sprint(outside(before)) != fmt.Sprint(outside(dump(t, dst))) {
				t.Fatalf("ingest changed data outside its spans:\nbefore %v\nafter  %v", outside(before), outside(dump(t, dst)))
			}
			rs = openStorage(t, dst, 5)
			defer rs.Close()
			if last, _ := rs.LastIndex(); last != 1 {
				t.Fatalf("raft log of range 5 changed: last index %d", last)
			}
		})
	}
}

// TestIngestEmptyClearsSpan: a snapshot of an empty span empties the target
// span.
func TestIngestEmptyClearsSpan(t *testing.T) {
	src, dst := openMem(t, nil), openMem(t, nil)
	putUser(t, dst, "b1", "x", "b2", "y", "c", "keep")
	span, _ := UserSpan([]byte("b"), []byte("c"))
	chunks := exportAll(t, src, []Span{span})
	if len(chunks) != 0 {
		t.Fatalf("empty export produced %d chunks", len(chunks))
	}
	ingestAll(t, dst, []Span{span}, chunks)
	if got := dump(t, dst); fmt.Sprint(got) != `[/User/"c"=keep]` {
		t.Fatalf("after ingest: %v", got)
	}
}

func TestIngestBadInput(t *testing.T) {
	src, dst := openMem(t, nil), openMem(t, nil)
	putUser(t, src, "b1", "x", "b2", "y")
	putUser(t, dst, "b0", "keep", "b9", "keep")
	span, _ := UserSpan([]byte("b"), []byte("c"))
	good := exportAll(t, src, []Span{span})[0]

	corrupt := bytes.Clone(good)
	corrupt[3] ^= 0xff
	outside, _ := UserSpan([]byte("x"), []byte("y"))
	var c chunkBuilder
	c.reset()
	k1, k2 := userKey(t, "b5"), userKey(t, "b4")
	c.add(k1, nil)
	c.add(k2, nil) // out of order
	unordered := bytes.Clone(c.finish())
	c.reset()
	c.add(nil, []byte("v")) // the empty key
	emptyKey := bytes.Clone(c.finish())
	c.reset()
	c.add(append([]byte{0x02}, make([]byte, MaxUserKeySize+1)...), nil)
	hugeKey := bytes.Clone(c.finish())
	everything := Span{Start: []byte{0x00}, End: []byte{0xff}}

	for _, tc := range []struct {
		name  string
		spans []Span
		chunk []byte
	}{
		{"checksum", []Span{span}, corrupt},
		{"truncated", []Span{span}, good[:len(good)/2]},
		{"too short", []Span{span}, []byte{1, 2}},
		{"outside the spans", []Span{outside}, good},
		{"keys out of order", []Span{span}, unordered},
		{"empty key", []Span{everything}, emptyKey},
		{"oversized key", []Span{everything}, hugeKey},
	} {
		ing, err := dst.NewIngester(tc.spans)
		if err != nil {
			t.Fatal(err)
		}
		err = ing.Add(tc.chunk)
		if !errors.Is(err, ErrBadChunk) {
			t.Errorf("%s: Add = %v, want ErrBadChunk", tc.name, err)
		}
		if _, err := ing.Finish(context.Background()); err == nil {
			t.Errorf("%s: Finish after a bad chunk succeeded", tc.name)
		}
		ing.Abort()
	}
	for _, spans := range [][]Span{nil, {{Start: []byte("b"), End: []byte("a")}}, {span, span},
		{{Start: nil, End: []byte{0xff}}}} {
		if _, err := dst.NewIngester(spans); err == nil {
			t.Errorf("NewIngester(%v) accepted bad spans", spans)
		}
	}
	if got := dump(t, dst); fmt.Sprint(got) != `[/User/"b0"=keep /User/"b9"=keep]` {
		t.Fatalf("bad input changed the engine: %v", got)
	}
	// No temporary files are left behind.
	if names, _ := dst.opts.FS.List(dst.opts.FS.PathJoin(dst.opts.Dir, ingestDir)); len(names) != 0 {
		t.Fatalf("leftover ingest files: %v", names)
	}
}

// TestIngestCrash crashes before and after Finish: before, the target is as
// it was; after, the snapshot is there in full.
func TestIngestCrash(t *testing.T) {
	rng := newRand(t)
	for _, afterFinish := range []bool{false, true} {
		src := openMem(t, nil, func(o *Options) { o.IngestFileSize = 1 << 10 })
		var kv []string
		for i := range 200 {
			kv = append(kv, fmt.Sprintf("k%03d", i), fmt.Sprintf("new-%d", i))
		}
		putUser(t, src, kv...)
		span, _ := UserSpan([]byte("k"), []byte("l"))
		chunks := exportAll(t, src, []Span{span})

		fs := vfs.NewCrashableMem()
		opts := Options{Dir: "store", FS: fs, CacheSize: 1 << 20, MemTableSize: 1 << 20, IngestFileSize: 1 << 10, Logger: quietLogger}
		dst, err := Open(opts)
		if err != nil {
			t.Fatal(err)
		}
		putUser(t, dst, "k000", "old", "k500", "old-only", "m", "neighbour")
		before := dump(t, dst)
		ing, err := dst.NewIngester([]Span{span})
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range chunks {
			if err := ing.Add(c); err != nil {
				t.Fatal(err)
			}
		}
		if afterFinish {
			if _, err := ing.Finish(context.Background()); err != nil {
				t.Fatal(err)
			}
		}
		crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: rng.IntN(101), RNG: rng})
		ing.Abort()
		_ = dst.Close()
		opts.FS = crashed
		dst, err = Open(opts)
		if err != nil {
			t.Fatal(err)
		}
		got := dump(t, dst)
		if afterFinish {
			if want := dumpSpan(t, src, span); fmt.Sprint(dumpSpan(t, dst, span)) != fmt.Sprint(want) {
				t.Fatalf("ingested snapshot lost in a crash after Finish")
			}
		} else if fmt.Sprint(got) != fmt.Sprint(before) {
			t.Fatalf("crash before Finish changed the engine:\nbefore %v\nafter  %v", before, got)
		}
		if names, _ := crashed.List(crashed.PathJoin("store", ingestDir)); len(names) != 0 {
			t.Fatalf("leftover ingest files after reopen: %v", names)
		}
		_ = dst.Close()
	}
}

// FuzzIngestChunk feeds arbitrary bytes to an Ingester as a chunk: it must
// return an error or ingest, never panic, and never touch keys outside its
// span.
func FuzzIngestChunk(f *testing.F) {
	var c chunkBuilder
	c.reset()
	c.add(append([]byte{0x02}, "b1"...), []byte("v"))
	c.add(append([]byte{0x02}, "b2"...), nil)
	f.Add(bytes.Clone(c.finish()))
	c.reset()
	c.add(nil, nil)
	f.Add(bytes.Clone(c.finish()))
	f.Add([]byte{1, 0, 0, 0, 0})
	span, _ := UserSpan([]byte("b"), []byte("c"))
	everything := Span{Start: []byte{0x00}, End: []byte{0xff}}
	f.Fuzz(func(t *testing.T, chunk []byte) {
		e := openMem(t, nil)
		putUser(t, e, "a", "keep", "d", "keep")
		for _, spans := range [][]Span{{span}, {everything}} {
			ing, err := e.NewIngester(spans)
			if err != nil {
				t.Fatal(err)
			}
			if err := ing.Add(chunk); err == nil {
				if _, err := ing.Finish(context.Background()); err != nil {
					t.Fatalf("Finish after a valid chunk: %v", err)
				}
			}
			ing.Abort()
			if len(spans) == 1 && spans[0].Start[0] == 0x02 {
				for _, k := range []string{"a", "d"} {
					if v, err := e.Get(userKey(t, k)); err != nil || string(v) != "keep" {
						t.Fatalf("ingest into %s changed %q: %q, %v", spans[0], k, v, err)
					}
				}
			}
		}
	})
}
