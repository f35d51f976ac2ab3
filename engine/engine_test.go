// Copyright 2026 The Flotilla Authors. All rights reserved.

package engine

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// openMem opens an engine on fs (a fresh in-memory FS if nil) and closes it
// when the test ends.
func openMem(t testing.TB, fs vfs.FS, mutate ...func(*Options)) *Engine {
	t.Helper()
	if fs == nil {
		fs = vfs.NewMem()
	}
	opts := Options{Dir: "store", FS: fs, CacheSize: 8 << 20, MemTableSize: 4 << 20, Logger: quietLogger}
	for _, m := range mutate {
		m(&opts)
	}
	e, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	return e
}

func userKey(t testing.TB, k string) []byte {
	t.Helper()
	ek, err := UserKey([]byte(k))
	if err != nil {
		t.Fatal(err)
	}
	return ek
}

func mustCommit(t testing.TB, b *Batch, sync bool) {
	t.Helper()
	if err := b.Commit(sync); err != nil {
		t.Fatal(err)
	}
	b.Close()
}

func TestOptionsValidate(t *testing.T) {
	var o Options
	o.EnsureDefaults()
	if o.CacheSize != DefaultCacheSize || o.RaftEntryCacheSize != DefaultRaftEntryCacheSize || o.FS == nil || o.DisableSync {
		t.Fatalf("defaults not applied: %+v", o)
	}
	o.CacheSize, o.MemTableSize, o.SnapshotChunkSize = -1, 1, 1
	err := o.Validate()
	if err == nil {
		t.Fatal("invalid options accepted")
	}
	// Every problem is reported at once.
	for _, want := range []string{"no Dir given", "CacheSize", "MemTableSize", "SnapshotChunkSize"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if _, err := Open(Options{FS: vfs.NewMem()}); err == nil {
		t.Fatal("Open without Dir succeeded")
	}
}

func TestBatchAndReads(t *testing.T) {
	e := openMem(t, nil)
	b := e.NewBatch()
	for i := range 10 {
		if err := b.Set(userKey(t, fmt.Sprintf("k%02d", i)), []byte(fmt.Sprintf("v%d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if b.Count() != 10 || b.Empty() {
		t.Fatalf("batch count %d", b.Count())
	}
	// Nothing is visible before the commit.
	if _, err := e.Get(userKey(t, "k00")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("uncommitted write visible: %v", err)
	}
	mustCommit(t, b, true)

	v, err := e.Get(userKey(t, "k03"))
	if err != nil || string(v) != "v3" {
		t.Fatalf("Get = %q, %v", v, err)
	}

	b = e.NewBatch()
	if err := b.Delete(userKey(t, "k00")); err != nil {
		t.Fatal(err)
	}
	span, _ := UserSpan([]byte("k05"), []byte("k08"))
	if err := b.DeleteRange(span); err != nil {
		t.Fatal(err)
	}
	mustCommit(t, b, false)

	all, _ := UserSpan(nil, nil)
	var got []string
	collect := func(k, v []byte) error {
		uk, err := DecodeUserKey(k)
		got = append(got, string(uk)+"="+string(v))
		return err
	}
	if err := Scan(e, all, ScanOptions{}, collect); err != nil {
		t.Fatal(err)
	}
	want := "k01=v1 k02=v2 k03=v3 k04=v4 k08=v8 k09=v9"
	if strings.Join(got, " ") != want {
		t.Fatalf("scan = %v, want %v", got, want)
	}
	got = nil
	if err := Scan(e, all, ScanOptions{Limit: 3, Reverse: true}, collect); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, " ") != "k09=v9 k08=v8 k04=v4" {
		t.Fatalf("reverse scan with limit = %v", got)
	}
	// A scan that fails stops and reports the failure.
	stop := errors.New("stop")
	n := 0
	if err := Scan(e, all, ScanOptions{}, func(k, v []byte) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Fatalf("scan error = %v after %d calls", err, n)
	}
	// Bounded iteration never leaves its span.
	inner, _ := UserSpan([]byte("k02"), []byte("k04"))
	got = nil
	if err := Scan(e, inner, ScanOptions{}, collect); err != nil {
		t.Fatal(err)
	}
	if strings.Join(got, " ") != "k02=v2 k03=v3" {
		t.Fatalf("bounded scan = %v", got)
	}
}

func TestBatchBadInput(t *testing.T) {
	e := openMem(t, nil)
	b := e.NewBatch()
	defer b.Close()
	if err := b.Set(nil, []byte("v")); !errors.Is(err, ErrEmptyKey) {
		t.Fatalf("empty key: %v", err)
	}
	if err := b.Set(make([]byte, MaxUserKeySize+2), nil); !errors.Is(err, ErrKeyTooLarge) {
		t.Fatalf("oversized key: %v", err)
	}
	if err := b.Delete(make([]byte, MaxUserKeySize+2)); !errors.Is(err, ErrKeyTooLarge) {
		t.Fatalf("oversized key delete: %v", err)
	}
	tooLong := append([]byte{versionedPrefixByte}, make([]byte, MaxUserKeySize+versionedKeyOverhead)...)
	if err := b.Set(tooLong, nil); !errors.Is(err, ErrKeyTooLarge) {
		t.Fatalf("oversized versioned key: %v", err)
	}
	if _, err := e.NewIter([]byte("b"), []byte("a")); err == nil {
		t.Fatal("inverted iterator bounds accepted")
	}
	if !b.Empty() {
		t.Fatal("rejected writes reached the batch")
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(true); !errors.Is(err, ErrBatchDone) {
		t.Fatalf("second commit: %v", err)
	}
	if err := b.Set([]byte("k"), nil); !errors.Is(err, ErrBatchDone) {
		t.Fatalf("write after commit: %v", err)
	}
}

func TestClosedEngine(t *testing.T) {
	e := openMem(t, nil)
	b := e.NewBatch()
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := b.Commit(true); !errors.Is(err, ErrClosed) {
		t.Fatalf("commit after close: %v", err)
	}
	if _, err := e.Get([]byte("k")); !errors.Is(err, ErrClosed) {
		t.Fatalf("get after close: %v", err)
	}
	if _, err := e.OpenRaftStorage(1); !errors.Is(err, ErrClosed) {
		t.Fatalf("OpenRaftStorage after close: %v", err)
	}
}

// TestReopen writes through a real directory, closes, reopens and finds
// everything that was synced.
func TestReopen(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Dir: dir, CacheSize: 8 << 20, MemTableSize: 4 << 20, Logger: quietLogger}
	e, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 100 {
		b := e.NewBatch()
		if err := b.Set(userKey(t, fmt.Sprintf("key-%03d", i)), bytes.Repeat([]byte{byte(i)}, 100)); err != nil {
			t.Fatal(err)
		}
		mustCommit(t, b, true)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e, err = Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	for i := range 100 {
		v, err := e.Get(userKey(t, fmt.Sprintf("key-%03d", i)))
		if err != nil || !bytes.Equal(v, bytes.Repeat([]byte{byte(i)}, 100)) {
			t.Fatalf("key %d after reopen: %q, %v", i, v, err)
		}
	}
}

// TestCrashBatchAtomicity writes synced batches, then an unsynced one, then
// simulates a crash that keeps a random part of the unsynced data. Every
// synced batch must survive; the unsynced one may be lost but is never
// partially applied.
func TestCrashBatchAtomicity(t *testing.T) {
	rng := newRand(t)
	const syncedBatches, keysPerBatch = 5, 50
	for iter := range 30 {
		fs := vfs.NewCrashableMem()
		e, err := Open(Options{Dir: "store", FS: fs, CacheSize: 1 << 20, MemTableSize: 1 << 20, Logger: quietLogger})
		if err != nil {
			t.Fatal(err)
		}
		val := func(batch, key int) []byte {
			return []byte(fmt.Sprintf("b%d-k%d-%s", batch, key, strings.Repeat("x", rng.IntN(200))))
		}
		want := map[string][]byte{}
		for bi := range syncedBatches {
			b := e.NewBatch()
			for ki := range keysPerBatch {
				k, v := userKey(t, fmt.Sprintf("s%d-%03d", bi, ki)), val(bi, ki)
				_ = b.Set(k, v)
				want[string(k)] = v
			}
			mustCommit(t, b, true)
		}
		// The unsynced batch also overwrites some synced keys: after the
		// crash they must hold either all old or all new values.
		b := e.NewBatch()
		unsynced := map[string][]byte{}
		for ki := range keysPerBatch {
			k, v := userKey(t, fmt.Sprintf("u-%03d", ki)), val(99, ki)
			_ = b.Set(k, v)
			unsynced[string(k)] = v
		}
		for ki := range 10 {
			k, v := userKey(t, fmt.Sprintf("s0-%03d", ki)), val(98, ki)
			_ = b.Set(k, v)
			unsynced[string(k)] = v
		}
		mustCommit(t, b, false)

		crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: rng.IntN(101), RNG: rng})
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
		e2, err := Open(Options{Dir: "store", FS: crashed, CacheSize: 1 << 20, MemTableSize: 1 << 20, Logger: quietLogger})
		if err != nil {
			t.Fatalf("iteration %d: reopening after crash: %v", iter, err)
		}
		present := 0
		for k, v := range unsynced {
			got, err := e2.Get([]byte(k))
			if err == nil && bytes.Equal(got, v) {
				present++
			}
		}
		if present != 0 && present != len(unsynced) {
			t.Fatalf("iteration %d: unsynced batch partially applied: %d of %d writes", iter, present, len(unsynced))
		}
		for k, v := range want {
			if present > 0 {
				if nv, ok := unsynced[k]; ok {
					v = nv
				}
			}
			got, err := e2.Get([]byte(k))
			if err != nil || !bytes.Equal(got, v) {
				t.Fatalf("iteration %d: synced key %s lost or wrong after crash: %q, %v", iter, PrettyKey([]byte(k)), got, err)
			}
		}
		if err := e2.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestReadOnlyAndMustExist(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(Options{Dir: dir + "/none", ErrorIfNotExists: true, Logger: quietLogger}); err == nil {
		t.Fatal("ErrorIfNotExists opened a missing store")
	}
	e, err := Open(Options{Dir: dir, Logger: quietLogger})
	if err != nil {
		t.Fatal(err)
	}
	putUser(t, e, "k", "v")
	_ = e.Close()
	ro, err := Open(Options{Dir: dir, ReadOnly: true, ErrorIfNotExists: true, Logger: quietLogger})
	if err != nil {
		t.Fatal(err)
	}
	defer ro.Close()
	if v, err := ro.Get(userKey(t, "k")); err != nil || string(v) != "v" {
		t.Fatalf("read-only Get = %q, %v", v, err)
	}
	b := ro.NewBatch()
	defer b.Close()
	_ = b.Set(userKey(t, "k2"), nil)
	if err := b.Commit(true); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("read-only commit: %v", err)
	}
	span, _ := UserSpan(nil, nil)
	if _, err := ro.NewIngester([]Span{span}); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("read-only ingest: %v", err)
	}
}

// TestBatchCloseTwice: closing a batch again, after its buffers went back to
// the pool, does not disturb the batch that reuses them.
func TestBatchCloseTwice(t *testing.T) {
	e := openMem(t, nil)
	b1 := e.NewBatch()
	b1.Close()
	b2 := e.NewBatch()
	if err := b2.Set(userKey(t, "k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	b1.Close()
	if b1.Count() != 0 || !b1.Empty() || b1.Len() != 0 {
		t.Fatal("closed batch reports writes")
	}
	mustCommit(t, b2, true)
	if v, err := e.Get(userKey(t, "k")); err != nil || string(v) != "v" {
		t.Fatalf("write of the second batch lost: %q, %v", v, err)
	}
}

func TestSnapshotClosed(t *testing.T) {
	e := openMem(t, nil)
	snap, err := e.NewSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	_ = snap.Close()
	_ = snap.Close()
	if _, err := snap.Get([]byte("k")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Get on a closed snapshot: %v", err)
	}
	if _, err := snap.NewIter(nil, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("NewIter on a closed snapshot: %v", err)
	}
}

func TestRangeIDs(t *testing.T) {
	e := openMem(t, nil)
	if ids, err := e.RangeIDs(); err != nil || len(ids) != 0 {
		t.Fatalf("empty engine: %v, %v", ids, err)
	}
	b := e.NewBatch()
	for _, id := range []RangeID{3, 1, 256, 1 << 40} {
		_ = b.Set(RaftHardStateKey(id), []byte("x"))
		for i := uint64(1); i <= 100; i++ {
			_ = b.Set(RaftLogKey(id, i), []byte("e"))
		}
	}
	_ = b.Set(RangeDescriptorKey(7), []byte("d"))
	_ = b.Set(StoreIdentKey(), []byte("s"))
	_ = b.Set(userKey(t, "k"), []byte("v"))
	mustCommit(t, b, true)
	ids, err := e.RangeIDs()
	if err != nil || fmt.Sprint(ids) != "[1 3 7 256 1099511627776]" {
		t.Fatalf("RangeIDs = %v, %v", ids, err)
	}
}

// TestCommitPipelinedCrash commits batches with CommitPipelined, waits for
// the fsync of only some of them, and simulates a crash keeping a random
// part of the unsynced data. Every batch whose SyncWait returned must
// survive, the batches that survive must be a prefix of the commit order
// (a later batch is never durable without the earlier ones), and none is
// partially applied.
func TestCommitPipelinedCrash(t *testing.T) {
	rng := newRand(t)
	const batches, keysPerBatch = 12, 20
	for iter := range 20 {
		fs := vfs.NewCrashableMem()
		opts := Options{Dir: "store", FS: fs, CacheSize: 1 << 20, MemTableSize: 1 << 20, Logger: quietLogger}
		e, err := Open(opts)
		if err != nil {
			t.Fatal(err)
		}
		key := func(bi, ki int) []byte { return userKey(t, fmt.Sprintf("b%02d-%03d", bi, ki)) }
		synced := rng.IntN(batches + 1) // batches [0, synced) waited for
		var pending []*Batch
		for bi := range batches {
			b := e.NewBatch()
			for ki := range keysPerBatch {
				if err := b.Set(key(bi, ki), []byte(fmt.Sprintf("v%d-%d", bi, ki))); err != nil {
					t.Fatal(err)
				}
			}
			if err := b.CommitPipelined(); err != nil {
				t.Fatal(err)
			}
			// Visible at once, before the fsync.
			if v, err := e.Get(key(bi, 0)); err != nil || string(v) != fmt.Sprintf("v%d-0", bi) {
				t.Fatalf("batch %d not visible after CommitPipelined: %q, %v", bi, v, err)
			}
			pending = append(pending, b)
		}
		for _, b := range pending[:synced] {
			if err := b.SyncWait(); err != nil {
				t.Fatal(err)
			}
			if err := b.SyncWait(); err != nil { // a second call is a no-op
				t.Fatal(err)
			}
		}
		crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: rng.IntN(101), RNG: rng})
		for _, b := range pending {
			b.Close() // waits for the fsync of those not waited for
		}
		if err := e.Close(); err != nil {
			t.Fatal(err)
		}
		e2, err := Open(Options{Dir: "store", FS: crashed, CacheSize: 1 << 20, MemTableSize: 1 << 20, Logger: quietLogger})
		if err != nil {
			t.Fatalf("iteration %d: reopening after crash: %v", iter, err)
		}
		lost := false
		for bi := range batches {
			present := 0
			for ki := range keysPerBatch {
				if v, err := e2.Get(key(bi, ki)); err == nil && string(v) == fmt.Sprintf("v%d-%d", bi, ki) {
					present++
				}
			}
			switch {
			case present != 0 && present != keysPerBatch:
				t.Fatalf("iteration %d: batch %d partially applied: %d of %d keys", iter, bi, present, keysPerBatch)
			case present == 0 && bi < synced:
				t.Fatalf("iteration %d: batch %d lost though its SyncWait returned (%d synced)", iter, bi, synced)
			case present == 0:
				lost = true
			case lost:
				t.Fatalf("iteration %d: batch %d survived but an earlier one was lost", iter, bi)
			}
		}
		if err := e2.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestBloomFilters checks that point reads of absent keys are answered by
// the files' bloom filters rather than by their blocks.
func TestBloomFilters(t *testing.T) {
	e, err := Open(Options{Dir: t.TempDir(), Logger: quietLogger})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	b := e.NewBatch()
	for i := range 1000 {
		if err := b.Set(userKey(t, fmt.Sprintf("key-%04d", 2*i)), []byte("v")); err != nil {
			t.Fatal(err)
		}
	}
	mustCommit(t, b, false)
	b.Close()
	if err := e.Flush(); err != nil {
		t.Fatal(err)
	}
	for i := range 1000 {
		if _, err := e.Get(userKey(t, fmt.Sprintf("key-%04d", 2*i+1))); !errors.Is(err, ErrNotFound) {
			t.Fatalf("absent key %d: %v", 2*i+1, err)
		}
	}
	if hits := e.db.Metrics().Filter.Hits; hits < 900 {
		t.Fatalf("bloom filter hits = %d for 1000 reads of absent keys; want most of them", hits)
	}
}

// TestPebbleLogsAtDebug: Pebble's informational lines (opening a store,
// replaying its WAL) go out at debug level, so a program embedding a node
// logs nothing from Pebble at info level.
func TestPebbleLogsAtDebug(t *testing.T) {
	run := func(level slog.Level) string {
		var buf bytes.Buffer
		logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: level}))
		fs := vfs.NewMem()
		for range 2 { // the second open replays the first one's WAL
			e := openMem(t, fs, func(o *Options) { o.Logger = logger })
			b := e.NewBatch()
			if err := b.Set(userKey(t, "k"), []byte("v")); err != nil {
				t.Fatal(err)
			}
			mustCommit(t, b, true)
			if err := e.Close(); err != nil {
				t.Fatal(err)
			}
		}
		return buf.String()
	}
	if out := run(slog.LevelInfo); strings.Contains(out, "component=pebble") {
		t.Errorf("Pebble logged at info level:\n%s", out)
	}
	if out := run(slog.LevelDebug); !strings.Contains(out, "level=DEBUG") || !strings.Contains(out, "component=pebble") {
		t.Errorf("Pebble logged nothing at debug level (the check above proves nothing):\n%s", out)
	}
}
