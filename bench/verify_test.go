// Copyright 2026 The Flotilla Authors. All rights reserved.

package bench

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// loadAndRunVerified loads and runs cfg's workload against f with Verify
// on and returns the runner.
func loadAndRunVerified(t *testing.T, cfg Config, f Target) *Runner {
	t.Helper()
	cfg.Verify = true
	r := newRunner(t, cfg)
	ctx := context.Background()
	if _, err := r.Load(ctx, f); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Run(ctx, f); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestVerifyCatchesCorruption(t *testing.T) {
	cfg := smallConfig(t, "a", 200)
	cfg.MaxOps, cfg.Duration = 2000, 0
	f := newFakeTarget()
	r := loadAndRunVerified(t, cfg, f)
	ctx := context.Background()
	if n, err := r.Verify(ctx, f); err != nil || n != 200 {
		t.Fatalf("Verify of an intact store = %d, %v", n, err)
	}

	key := func(n int64) []byte { return appendKey(nil, n, cfg.Workload.KeySize) }
	// A flipped byte in one value.
	corrupted := key(7)
	v, _ := f.get(corrupted)
	v = bytes.Clone(v)
	v[len(v)-1] ^= 0x20
	f.set(corrupted, v)
	// A lost record.
	lost := key(8)
	f.remove(lost)
	// Another key's value.
	swapped := key(9)
	other, _ := f.get(key(10))
	f.set(swapped, other)
	// A well-formed value no write made (a write lost and replaced).
	stale := key(11)
	f.set(stale, appendValue(nil, stale, 1<<62, cfg.Workload.ValueSize))

	n, err := r.Verify(ctx, f)
	var verr *VerifyError
	if !errors.As(err, &verr) {
		t.Fatalf("Verify of a corrupted store = %d, %v; want a *VerifyError", n, err)
	}
	t.Logf("%v", err)
	if n != 200 || verr.Checked != 200 || verr.Total != 4 || len(verr.Mismatches) != 4 {
		t.Fatalf("checked %d, %d mismatches listed of %d; want 200 checked, 4 mismatches", verr.Checked, len(verr.Mismatches), verr.Total)
	}
	want := map[string]string{
		string(corrupted): "malformed value",
		string(lost):      "absent",
		string(swapped):   "malformed value",
		string(stale):     "write 0x4000000000000000",
	}
	for _, m := range verr.Mismatches {
		if !strings.HasPrefix(m.Got, want[m.Key]) || !strings.HasPrefix(m.Want, "write 0x") {
			t.Errorf("mismatch %v, want got %q", m, want[m.Key])
		}
	}
}

// TestVerifyAcceptsConcurrentWrites hammers 5 records from 16 clients, with
// some writes failing before being applied and some after (outcome
// unknown), and some reads and writes timing out: every value left must be
// accepted.
func TestVerifyAcceptsConcurrentWrites(t *testing.T) {
	cfg := smallConfig(t, "write", 5)
	cfg.Clients, cfg.MaxOps, cfg.Duration, cfg.OpTimeout = 16, 20_000, 0, 20*time.Millisecond
	f := newFakeTarget()
	var calls, waits, failed, unknown, timedOut atomic.Int64
	f.fail = func(op string, key []byte) (error, bool) {
		switch calls.Add(1) % 50 {
		case 0:
			failed.Add(1)
			return errNotApplied, false
		case 1:
			unknown.Add(1)
			return errInjected, true
		}
		return nil, false
	}
	f.latency = func(string, []byte) time.Duration {
		if waits.Add(1)%997 == 0 {
			timedOut.Add(1)
			return time.Second
		}
		return 0
	}
	r := loadAndRunVerified(t, cfg, fakeClassifyingTarget{f})
	t.Logf("%d failed, %d applied but failed, %d timed out", failed.Load(), unknown.Load(), timedOut.Load())
	if failed.Load() == 0 || unknown.Load() == 0 || timedOut.Load() == 0 {
		t.Error("the failures were not all injected")
	}
	if n, err := r.Verify(context.Background(), f); err != nil || n != 5 {
		t.Fatalf("Verify = %d, %v", n, err)
	}
}

func TestVerifyCatchesCorruptReads(t *testing.T) {
	cfg := smallConfig(t, "c", 50)
	cfg.MaxOps, cfg.Duration = 5000, 0
	f := newFakeTarget()
	bad := appendKey(nil, 3, cfg.Workload.KeySize)
	f.corruptRead = func(key, value []byte) []byte {
		if bytes.Equal(key, bad) {
			value[len(value)/2]++
		}
		return value
	}
	cfg.Verify = true
	r := newRunner(t, cfg)
	ctx := context.Background()
	if _, err := r.Load(ctx, f); err != nil {
		t.Fatal(err)
	}
	rep, err := r.Run(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	corrupt := rep.ErrorsByClass[ClassCorrupt]
	if corrupt == 0 || corrupt != rep.Errors {
		t.Fatalf("errors by class %v: want only corrupt reads", rep.ErrorsByClass)
	}
	_, err = r.Verify(ctx, f)
	var verr *VerifyError
	if !errors.As(err, &verr) || verr.Total != int(corrupt)+1 {
		t.Fatalf("Verify = %v; want %d mismatches, the corrupt reads and the re-read", err, corrupt+1)
	}
	for _, m := range verr.Mismatches {
		if m.Key != string(bad) {
			t.Errorf("mismatch on an intact key: %v", m)
		}
	}
}

func TestVerifyDisabled(t *testing.T) {
	r := newRunner(t, smallConfig(t, "a", 10))
	if _, err := r.Verify(context.Background(), newFakeTarget()); !errors.Is(err, ErrVerifyDisabled) {
		t.Errorf("Verify without Config.Verify = %v, want ErrVerifyDisabled", err)
	}
}

// TestKeyHistory checks which values a key may hold after writes with
// given ticks, as in a linearizable store.
func TestKeyHistory(t *testing.T) {
	type write struct {
		seq, start, end uint64
		class           string
	}
	for _, tc := range []struct {
		name   string
		writes []write // in the order they are recorded
		accept []uint64
		absent bool
	}{
		{name: "none", absent: true},
		{name: "one", writes: []write{{1, 1, 2, ""}}, accept: []uint64{1}},
		{name: "sequential", writes: []write{{1, 1, 2, ""}, {2, 3, 4, ""}}, accept: []uint64{2}},
		{name: "recorded out of order", writes: []write{{2, 3, 4, ""}, {1, 1, 2, ""}}, accept: []uint64{2}},
		{name: "overlapping", writes: []write{{1, 1, 4, ""}, {2, 2, 3, ""}}, accept: []uint64{1, 2}},
		{name: "overlap then later", writes: []write{{1, 1, 4, ""}, {2, 2, 3, ""}, {3, 5, 6, ""}}, accept: []uint64{3}},
		{name: "failed may apply any time", writes: []write{{1, 1, 2, "timeout"}, {2, 3, 4, ""}}, accept: []uint64{1, 2}},
		{name: "only failed", writes: []write{{1, 1, 2, "timeout"}}, accept: []uint64{1}, absent: true},
		{name: "not applied", writes: []write{{1, 1, 2, ""}, {2, 3, 4, ClassNotApplied}}, accept: []uint64{1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, _ := StandardWorkload("a", 0)
			v := newVerifier(&w)
			for _, x := range tc.writes {
				v.tick.Store(x.end - 1)
				v.end(0, x.seq, x.start, x.class)
			}
			key := appendKey(nil, 0, w.KeySize)
			h := v.shard(0).mu.records[0]
			if h == nil {
				h = &keyHistory{}
			}
			for seq := uint64(1); seq <= 3; seq++ {
				got, _ := v.check(h, key, appendValue(nil, key, seq, w.ValueSize), true, nil)
				want := ""
				if !containsSeq(tc.accept, seq) {
					want = "write"
				}
				if (got == "") != (want == "") {
					t.Errorf("write %d: check = %q (may hold: %s)", seq, got, h.describe())
				}
			}
			if got, _ := v.check(h, key, nil, false, nil); (got == "") != tc.absent {
				t.Errorf("absent: check = %q (may hold: %s)", got, h.describe())
			}
		})
	}
}

func containsSeq(s []uint64, x uint64) bool {
	for _, y := range s {
		if y == x {
			return true
		}
	}
	return false
}
