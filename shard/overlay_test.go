// Copyright 2026 The Flotilla Authors. All rights reserved.

package shard

import (
	"bytes"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/flotilladb/flotilla/engine"
)

var quietLogger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))

func openTestEngine(t testing.TB) *engine.Engine {
	t.Helper()
	eng, err := engine.Open(engine.Options{Dir: "store", FS: vfs.NewMem(), CacheSize: 1 << 20, MemTableSize: 1 << 20, Logger: quietLogger})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = eng.Close() })
	return eng
}

// mustUserKey returns the engine key of k's version at revision 1 (a key
// inside k's span of versions).
func mustUserKey(t testing.TB, k string) []byte {
	t.Helper()
	ek, err := engine.MVCCKey([]byte(k), 1)
	if err != nil {
		t.Fatal(err)
	}
	return ek
}

// userData reads the newest value of every live user key of eng.
func userData(t testing.TB, eng *engine.Engine) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := engine.MVCCScan(eng, nil, nil, 0, engine.MVCCScanOptions{}, func(k []byte, v engine.Version) error {
		out[string(k)] = string(v.Value)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// modelVersion is a key's newest version in TestOverlayRandomized's model.
type modelVersion struct {
	value                string
	create, mod, version int64
}

// TestOverlayRandomized drives the overlay with random puts, deletes and
// delete-ranges (each at a new revision) over random engine contents and
// checks every read, every version's metadata and every live-key listing
// against a model, and that the committed batch leaves the engine equal to
// the model.
func TestOverlayRandomized(t *testing.T) {
	rng, _ := newRand(t)
	key := func() string { return string(rune('a'+rng.IntN(12))) + string(rune('a'+rng.IntN(3))) }
	for range 20 {
		eng := openTestEngine(t)
		model := map[string]modelVersion{}
		rev := int64(0)
		b := eng.NewBatch()
		for range rng.IntN(20) {
			k, v := key(), fmt.Sprintf("e%d", rng.IntN(1000))
			rev++
			mv, ok := model[k]
			if !ok {
				mv = modelVersion{create: rev}
			}
			mv.value, mv.mod, mv.version = v, rev, mv.version+1
			model[k] = mv
			ev := engine.Version{Value: []byte(v), CreateRevision: mv.create, ModRevision: rev, Version: mv.version}
			if err := engine.MVCCPut(b, []byte(k), ev); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Commit(false); err != nil {
			t.Fatal(err)
		}
		b.Close()

		// Several apply calls share one version cache, with no budget, a
		// tiny one (evicting) or a large one.
		budget := &cacheBudget{limit: []int64{0, 3 * (2 + cacheEntryOverhead), 1 << 20}[rng.IntN(3)]}
		cache := &versionCache{budget: budget}
		b = eng.NewBatch()
		ov := newOverlay(eng, b, cache)
		for step := range 60 {
			if step > 0 && rng.IntN(10) == 0 {
				// The next apply call.
				if err := b.Commit(false); err != nil {
					t.Fatal(err)
				}
				b.Close()
				b = eng.NewBatch()
				ov = newOverlay(eng, b, cache)
			}
			if used := budget.used.Load(); used > max(budget.limit, 0) || used != cache.bytes.Load() {
				t.Fatalf("step %d: the cache uses %d bytes (%d counted) of a budget of %d", step, cache.bytes.Load(), used, budget.limit)
			}
			rev++
			switch rng.IntN(4) {
			case 0:
				k, v := key(), fmt.Sprintf("v%d", rng.IntN(1000))
				old, existed, err := ov.put([]byte(k), []byte(v), rev)
				mv, ok := model[k]
				if err != nil || existed != ok || ok && old != len(mv.value) {
					t.Fatalf("step %d: put %q = %v, %v, %v; model %v, %v", step, k, old, existed, err, mv, ok)
				}
				if !ok {
					mv = modelVersion{create: rev}
				}
				mv.value, mv.mod, mv.version = v, rev, mv.version+1
				model[k] = mv
			case 1:
				k := key()
				old, existed, err := ov.delete([]byte(k), rev)
				mv, ok := model[k]
				if err != nil || existed != ok || ok && old != len(mv.value) {
					t.Fatalf("step %d: delete %q = %v, %v; model %v", step, k, existed, err, ok)
				}
				delete(model, k)
			case 2:
				span := userSpan{start: []byte(key())}
				if rng.IntN(2) == 0 {
					span.end = []byte(key())
				}
				kvs, err := ov.live(span)
				if err != nil {
					t.Fatal(err)
				}
				var want []string
				for _, k := range slices.Sorted(maps.Keys(model)) {
					if span.contains([]byte(k)) && !span.empty() {
						want = append(want, k)
					}
				}
				var got []string
				for _, kv := range kvs {
					got = append(got, string(kv.key))
				}
				if !slices.Equal(got, want) {
					t.Fatalf("step %d: live %q = %q, want %q", step, span, got, want)
				}
			default:
				k := key()
				v, found, err := ov.get([]byte(k))
				mv, ok := model[k]
				if err != nil || found != ok || ok && (string(v.Value) != mv.value || v.CreateRevision != mv.create ||
					v.ModRevision != mv.mod || v.Version != mv.version) {
					t.Fatalf("step %d: get %q = %+v, %v, %v; model %+v, %v", step, k, v, found, err, mv, ok)
				}
			}
		}
		if err := b.Commit(false); err != nil {
			t.Fatal(err)
		}
		b.Close()
		want := map[string]string{}
		for k, mv := range model {
			want[k] = mv.value
		}
		if got := userData(t, eng); !maps.Equal(got, want) {
			t.Fatalf("engine %v, model %v", sortedPairs(got), sortedPairs(want))
		}
	}
}

func sortedPairs(m map[string]string) []string {
	var out []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		out = append(out, k+"="+m[k])
	}
	return out
}

func TestUserSpanHelpers(t *testing.T) {
	for _, tc := range []struct {
		a, b    userSpan
		overlap bool
	}{
		{userSpan{[]byte("a"), []byte("c")}, userSpan{[]byte("b"), []byte("d")}, true},
		{userSpan{[]byte("a"), []byte("c")}, userSpan{[]byte("c"), []byte("d")}, false},
		{userSpan{[]byte("a"), nil}, userSpan{[]byte("z"), nil}, true},
		{userSpan{nil, []byte("b")}, userSpan{[]byte("b"), nil}, false},
		{userSpan{nil, nil}, userSpan{[]byte("q"), []byte("r")}, true},
	} {
		if got := spansOverlap(tc.a, tc.b); got != tc.overlap {
			t.Errorf("overlap(%q, %q) = %v", tc.a, tc.b, got)
		}
		if got := spansOverlap(tc.b, tc.a); got != tc.overlap {
			t.Errorf("overlap(%q, %q) = %v", tc.b, tc.a, got)
		}
	}
	for _, tc := range []struct {
		outer, s userSpan
		ok       bool
		bad      string
	}{
		{userSpan{[]byte("b"), []byte("m")}, userSpan{[]byte("b"), []byte("m")}, true, ""},
		{userSpan{[]byte("b"), []byte("m")}, userSpan{[]byte("a"), []byte("c")}, false, "a"},
		{userSpan{[]byte("b"), []byte("m")}, userSpan{[]byte("c"), nil}, false, "m"},
		{userSpan{[]byte("b"), []byte("m")}, userSpan{[]byte("c"), []byte("n")}, false, "m"},
		{userSpan{[]byte("b"), []byte("m")}, userSpan{[]byte("m"), []byte("m")}, true, ""},
		{userSpan{[]byte("b"), []byte("m")}, userSpan{[]byte("x"), []byte("x")}, false, "m"},
		{userSpan{[]byte("b"), nil}, userSpan{[]byte("c"), nil}, true, ""},
	} {
		bad, ok := spanWithin(tc.outer, tc.s)
		if ok != tc.ok || string(bad) != tc.bad {
			t.Errorf("spanWithin(%q, %q) = %q, %v", tc.outer, tc.s, bad, ok)
		}
	}
	for _, tc := range []struct {
		span engine.Span
		ok   bool
	}{
		{mustSpan(t, "a", "b"), true},
		{mustSpan(t, "", ""), true},
		{mustSpan(t, "x", ""), true},
		{engine.RangeReplicatedSpan(3), false},
		{engine.Span{Start: []byte{3, 'b', 0}, End: []byte{3, 'a', 0}}, false},
		{engine.Span{Start: []byte{3}, End: []byte{5}}, false},
		{engine.Span{Start: []byte{2, 'a'}, End: []byte{2, 'b'}}, false},
		{engine.Span{}, false},
	} {
		us, ok := decodeUserSpan(tc.span)
		if ok != tc.ok {
			t.Errorf("decodeUserSpan(%s) = %q, %v", tc.span, us, ok)
		}
		if ok {
			back, err := engine.MVCCSpan(us.start, us.end)
			if err != nil || !bytes.Equal(back.Start, tc.span.Start) || !bytes.Equal(back.End, tc.span.End) {
				t.Errorf("decodeUserSpan(%s) = %q, which encodes as %s", tc.span, us, back)
			}
		}
	}
}

func mustSpan(t testing.TB, start, end string) engine.Span {
	t.Helper()
	s, err := engine.MVCCSpan([]byte(start), []byte(end))
	if err != nil {
		t.Fatal(err)
	}
	return s
}
