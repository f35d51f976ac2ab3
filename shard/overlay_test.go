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

func mustUserKey(t testing.TB, k string) []byte {
	t.Helper()
	ek, err := engine.UserKey([]byte(k))
	if err != nil {
		t.Fatal(err)
	}
	return ek
}

// userData reads every user pair of eng.
func userData(t testing.TB, eng *engine.Engine) map[string]string {
	t.Helper()
	span, err := engine.UserSpan(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	err = engine.Scan(eng, span, engine.ScanOptions{}, func(k, v []byte) error {
		uk, err := engine.DecodeUserKey(k)
		out[string(uk)] = string(v)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestOverlaySequence walks through the cases one at a time: reads fall
// through to the engine, point writes shadow it, a delete-range hides
// engine keys and earlier point writes, and a write after the delete-range
// shows again.
func TestOverlaySequence(t *testing.T) {
	eng := openTestEngine(t)
	b := eng.NewBatch()
	for _, k := range []string{"a", "c", "e", "g"} {
		if err := b.Set(mustUserKey(t, k), []byte("engine-"+k)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	b.Close()

	ov := newOverlay(eng)
	expect := func(k, want string, wantFound bool) {
		t.Helper()
		v, found, err := ov.get([]byte(k))
		if err != nil || found != wantFound || string(v) != want {
			t.Fatalf("get(%q) = %q, %v, %v; want %q, %v", k, v, found, err, want, wantFound)
		}
	}
	expect("a", "engine-a", true)
	expect("b", "", false)
	ov.set([]byte("b"), []byte("ov-b"))
	ov.set([]byte("c"), []byte("ov-c"))
	ov.delete([]byte("e"))
	expect("b", "ov-b", true)
	expect("c", "ov-c", true)
	expect("e", "", false)

	// [b, f) holds b (overlay), c (overlay over engine), e (deleted):
	// two keys, counted once each, with the overlay's values.
	keys, kb, vb, err := ov.deleteRange(userSpan{start: []byte("b"), end: []byte("f")})
	if err != nil || keys != 2 || kb != 2 || vb != int64(len("ov-b")+len("ov-c")) {
		t.Fatalf("deleteRange = %d keys, %d key bytes, %d value bytes, %v", keys, kb, vb, err)
	}
	expect("a", "engine-a", true)
	expect("b", "", false)
	expect("c", "", false)
	expect("g", "engine-g", true)
	ov.set([]byte("c"), []byte("again"))
	expect("c", "again", true)
	// Deleting an overlapping span again counts only what is left: c
	// (written after the first delete-range) and g.
	keys, _, _, err = ov.deleteRange(userSpan{start: []byte("a1")})
	if err != nil || keys != 2 {
		t.Fatalf("second deleteRange = %d keys, %v; want 2", keys, err)
	}
	expect("c", "", false)
	expect("g", "", false)
	expect("a", "engine-a", true)
	// An empty span is a no-op.
	if keys, _, _, err := ov.deleteRange(userSpan{start: []byte("a"), end: []byte("a")}); err != nil || keys != 0 {
		t.Fatalf("empty deleteRange = %d, %v", keys, err)
	}
	expect("a", "engine-a", true)
}

// TestOverlayRandomized drives the overlay and a batch with the same random
// writes and checks every read and delete-range count against a model map,
// and that the committed batch leaves the engine equal to the model.
func TestOverlayRandomized(t *testing.T) {
	rng, _ := newRand(t)
	key := func() string { return string(rune('a'+rng.IntN(12))) + string(rune('a'+rng.IntN(3))) }
	for round := range 20 {
		eng := openTestEngine(t)
		model := map[string]string{}
		b := eng.NewBatch()
		for range rng.IntN(20) {
			k, v := key(), fmt.Sprintf("e%d", rng.IntN(1000))
			model[k] = v
			if err := b.Set(mustUserKey(t, k), []byte(v)); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Commit(false); err != nil {
			t.Fatal(err)
		}
		b.Close()

		ov := newOverlay(eng)
		b = eng.NewBatch()
		for step := range 60 {
			switch rng.IntN(4) {
			case 0:
				k, v := key(), fmt.Sprintf("v%d", rng.IntN(1000))
				ov.set([]byte(k), []byte(v))
				model[k] = v
				if err := b.Set(mustUserKey(t, k), []byte(v)); err != nil {
					t.Fatal(err)
				}
			case 1:
				k := key()
				ov.delete([]byte(k))
				delete(model, k)
				if err := b.Delete(mustUserKey(t, k)); err != nil {
					t.Fatal(err)
				}
			case 2:
				lo, hi := key(), key()
				if lo > hi {
					lo, hi = hi, lo
				}
				if rng.IntN(5) == 0 {
					hi = ""
				}
				span := userSpan{start: []byte(lo), end: []byte(hi)}
				var wantKeys, wantKB, wantVB int64
				for k, v := range model {
					if span.contains([]byte(k)) {
						wantKeys, wantKB, wantVB = wantKeys+1, wantKB+int64(len(k)), wantVB+int64(len(v))
						delete(model, k)
					}
				}
				keys, kb, vb, err := ov.deleteRange(span)
				if err != nil || keys != wantKeys || kb != wantKB || vb != wantVB {
					t.Fatalf("round %d step %d: deleteRange [%q, %q) = %d/%d/%d, %v; want %d/%d/%d",
						round, step, lo, hi, keys, kb, vb, err, wantKeys, wantKB, wantVB)
				}
				if !span.empty() {
					es, err := engine.UserSpan(span.start, span.end)
					if err != nil {
						t.Fatal(err)
					}
					if err := b.DeleteRange(es); err != nil {
						t.Fatal(err)
					}
				}
			case 3:
				k := key()
				v, found, err := ov.get([]byte(k))
				want, wantFound := model[k]
				if err != nil || found != wantFound || string(v) != want {
					t.Fatalf("round %d step %d: get(%q) = %q, %v, %v; want %q, %v", round, step, k, v, found, err, want, wantFound)
				}
			}
		}
		if err := b.Commit(false); err != nil {
			t.Fatal(err)
		}
		b.Close()
		if got := userData(t, eng); !maps.Equal(got, model) {
			t.Fatalf("round %d: engine after the batch\n%v\nmodel\n%v", round, sortedPairs(got), sortedPairs(model))
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
		{engine.Span{Start: []byte{2, 'b'}, End: []byte{2, 'a'}}, false},
		{engine.Span{Start: []byte{2}, End: []byte{4}}, false},
		{engine.Span{}, false},
	} {
		us, ok := decodeUserSpan(tc.span)
		if ok != tc.ok {
			t.Errorf("decodeUserSpan(%s) = %q, %v", tc.span, us, ok)
		}
		if ok {
			back, err := engine.UserSpan(us.start, us.end)
			if err != nil || !bytes.Equal(back.Start, tc.span.Start) || !bytes.Equal(back.End, tc.span.End) {
				t.Errorf("decodeUserSpan(%s) = %q, which encodes as %s", tc.span, us, back)
			}
		}
	}
}

func mustSpan(t testing.TB, start, end string) engine.Span {
	t.Helper()
	s, err := engine.UserSpan([]byte(start), []byte(end))
	if err != nil {
		t.Fatal(err)
	}
	return s
}
