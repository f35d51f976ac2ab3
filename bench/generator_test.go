// Copyright 2026 The Flotilla Authors. All rights reserved.

package bench

import (
	"bytes"
	"encoding/binary"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func TestZetaSum(t *testing.T) {
	// YCSB's ScrambledZipfianGenerator.ZETAN: zeta(10^10, 0.99), computed
	// by YCSB term by term.
	const ycsbZetan = 26.46902820178302
	if got := zetaSum(1, scrambledZipfianItems, 0.99); math.Abs(got-ycsbZetan) > 1e-9*ycsbZetan {
		t.Errorf("zeta(1e10, 0.99) = %.15g, want YCSB's %.15g", got, ycsbZetan)
	}
	// The Euler–Maclaurin tail against the sum term by term.
	for _, theta := range []float64{0.2, 0.5, 0.99} {
		for _, r := range [][2]int64{{1, 60_000}, {3, 45_678}, {20_000, 90_000}} {
			direct := 0.0
			for i := r[0]; i <= r[1]; i++ {
				direct += math.Pow(float64(i), -theta)
			}
			if got := zetaSum(r[0], r[1], theta); math.Abs(got-direct) > 1e-11*direct {
				t.Errorf("zetaSum(%d, %d, %v) = %.15g, term by term %.15g", r[0], r[1], theta, got, direct)
			}
		}
	}
	// Growing a zipfian incrementally equals building it at the size.
	z := newZipfian(10, 0.99)
	for _, n := range []int64{11, 500, 30_000, 123_456} {
		z.grow(n)
		fresh := newZipfian(n, 0.99)
		if math.Abs(z.zetan-fresh.zetan) > 1e-9 || math.Abs(z.eta-fresh.eta) > 1e-9 {
			t.Errorf("grown to %d: zetan %v eta %v, fresh %v %v", n, z.zetan, z.eta, fresh.zetan, fresh.eta)
		}
	}
}

func TestFNVHash64(t *testing.T) {
	// YCSB's fnvhash64 is FNV-1a over the 8 little-endian bytes, made
	// non-negative.
	for _, n := range []int64{0, 1, 2, 255, 256, 1 << 40, math.MaxInt64, 123456789} {
		h := fnv.New64a()
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], uint64(n))
		h.Write(b[:])
		want := int64(h.Sum64())
		if want < 0 {
			want = -want
		}
		if got := fnvHash64(n); got != uint64(want) {
			t.Errorf("fnvHash64(%d) = %d, want %d", n, got, want)
		}
	}
}

func TestKeys(t *testing.T) {
	const n = 200_000
	seen := make(map[string]int64, n)
	for _, size := range []int{MinKeySize, 40} {
		clear(seen)
		for i := int64(0); i < n; i++ {
			k := appendKey(nil, i, size)
			if len(k) != size || !bytes.HasPrefix(k, []byte(KeyPrefix)) || strings.Trim(string(k[len(KeyPrefix):]), "0123456789") != "" {
				t.Fatalf("key of record %d: %q", i, k)
			}
			if j, dup := seen[string(k)]; dup {
				t.Fatalf("records %d and %d share key %q", j, i, k)
			}
			seen[string(k)] = i
		}
	}
	if got, want := string(appendKey(nil, 0, 30)), "user0000000"; !strings.HasPrefix(got, want) {
		t.Errorf("key of record 0 = %q, want zero padding after the prefix", got)
	}
}

func TestValues(t *testing.T) {
	key := appendKey(nil, 42, MinKeySize)
	for _, size := range []int{valueHeaderSize(len(key)), 100, 1000, 4097} {
		v := appendValue(nil, key, 0xabc, size)
		if len(v) != size {
			t.Fatalf("value of %d bytes has %d", size, len(v))
		}
		if seq, ok, _ := parseValue(key, v, size, nil); !ok || seq != 0xabc {
			t.Errorf("size %d: parseValue = %#x, %v", size, seq, ok)
		}
		for i := range v {
			bad := bytes.Clone(v)
			bad[i] ^= 1
			// Without filler, a changed sequence digit makes another
			// write's well-formed value, which Verify tells apart by
			// its sequence number.
			if seq, ok, _ := parseValue(key, bad, size, nil); ok && seq == 0xabc {
				t.Fatalf("size %d: flipping byte %d went unnoticed", size, i)
			}
		}
		other := appendKey(nil, 43, MinKeySize)
		if _, ok, _ := parseValue(other, v, size, nil); ok {
			t.Errorf("size %d: a value of %q passed as %q's", size, key, other)
		}
	}
	if v := appendValue(nil, key, 1, 8); len(v) != 8 {
		t.Errorf("a value smaller than its header has %d bytes, want 8", len(v))
	}
	a, b := appendValue(nil, key, 1, 200), appendValue(nil, key, 2, 200)
	if bytes.Equal(a[valueHeaderSize(len(key)):], b[valueHeaderSize(len(key)):]) {
		t.Error("two writes' values have the same filler")
	}
}

// drawMany runs a generator for n operations and returns how often each
// operation and each record came up.
func drawMany(w *Workload, keys *keySpace, seed uint64, n int) (ops [numOps]int, records map[int64]int, scanLengths []int) {
	var scrambled *zipfian
	if w.RequestDistribution == Zipfian {
		z := newZipfian(scrambledZipfianItems, w.ZipfianConstant)
		scrambled = &z
	}
	g := newGenerator(w, keys, scrambled, seed, 0)
	records = make(map[int64]int)
	for range n {
		o := g.next()
		ops[o.op]++
		if o.op == OpInsert {
			keys.acknowledge(o.record)
			continue
		}
		records[o.record]++
		if o.op == OpScan {
			scanLengths = append(scanLengths, o.scanLength)
		}
	}
	return ops, records, scanLengths
}

func TestGeneratorOperationMix(t *testing.T) {
	seed := testSeed(t)
	const n = 200_000
	names := append(slices.Clone(StandardWorkloads), "kv")
	for i, name := range names {
		readFraction := 0.8
		if i == len(names)-1 {
			readFraction = 0.3
		}
		w, err := StandardWorkload(name, readFraction)
		if err != nil {
			t.Fatal(err)
		}
		w.RecordCount = 10_000
		keys := newKeySpace(w.RecordCount)
		ops, records, scans := drawMany(&w, keys, seed, n)
		// 5 standard deviations of a binomial share at p = 0.5 is 0.0056.
		for op, p := range w.proportions() {
			if got := float64(ops[op]) / n; math.Abs(got-p) > 0.006 {
				t.Errorf("%s (read fraction %v): %v share %.4f, want %.4f", name, readFraction, Op(op), got, p)
			}
		}
		for r := range records {
			if r < 0 || r >= keys.acked.Load() {
				t.Fatalf("%s: chose record %d, not among the %d written", name, r, keys.acked.Load())
			}
		}
		if w.InsertProportion > 0 && keys.next.Load() != w.RecordCount+int64(ops[OpInsert]) {
			t.Errorf("%s: %d inserts took the numbers up to %d", name, ops[OpInsert], keys.next.Load())
		}
		if name == "e" {
			sum := 0
			for _, l := range scans {
				if l < 1 || l > 100 {
					t.Fatalf("scan length %d outside 1..100", l)
				}
				sum += l
			}
			if mean := float64(sum) / float64(len(scans)); math.Abs(mean-50.5) > 0.5 {
				t.Errorf("mean scan length %.2f, want 50.5 (uniform in 1..100)", mean)
			}
		}
	}
}

func TestUniformDistribution(t *testing.T) {
	seed := testSeed(t)
	w, _ := StandardWorkload("kv", 1)
	w.RecordCount = 100
	const n = 200_000
	_, records, _ := drawMany(&w, newKeySpace(w.RecordCount), seed, n)
	expected := float64(n) / float64(w.RecordCount)
	chi2 := 0.0
	for r := range w.RecordCount {
		d := float64(records[r]) - expected
		chi2 += d * d / expected
	}
	// 99 degrees of freedom: mean 99, standard deviation 14; 180 is
	// beyond 5 standard deviations.
	t.Logf("chi-square %.1f over 99 degrees of freedom", chi2)
	if chi2 > 180 || len(records) != 100 {
		t.Errorf("chi-square %.1f over 99 degrees of freedom (%d records seen): not uniform", chi2, len(records))
	}
}

// grayTopShare is the probability that Gray et al.'s Zipfian generator
// (as YCSB's and ours) draws a rank below k (k >= 2) of n: from its
// inverse, rank < k iff u < 1 - (1 - (k/n)^(1-theta))/eta. It differs from
// Zipf's law by a few percent for the top ranks (Zipf's law gives 0.383
// for the top 10 of 1000 at 0.99, the method 0.398): the method's
// approximation, which YCSB shares.
func grayTopShare(k, n int64, theta float64) float64 {
	z := newZipfian(n, theta)
	return 1 - (1-math.Pow(float64(k)/float64(n), 1-theta))/z.eta
}

func TestZipfianDistribution(t *testing.T) {
	seed := testSeed(t)
	rng := rand.New(rand.NewPCG(seed, 1))
	const n = 1_000_000

	// Ranks over 1000 items: the top ranks' shares against zeta.
	z := newZipfian(1000, 0.99)
	var counts [1000]int
	for range n {
		counts[z.next(rng.Float64())]++
	}
	top10 := 0
	for r := range 10 {
		top10 += counts[r]
	}
	got := float64(top10) / n
	gray := grayTopShare(10, 1000, 0.99)
	zipf := zetaSum(1, 10, 0.99) / zetaSum(1, 1000, 0.99)
	t.Logf("top 10 of 1000 ranks drew %.4f: Gray's method says %.4f, Zipf %.4f", got, gray, zipf)
	if math.Abs(got-gray) > 0.01*gray || math.Abs(got-zipf) > 0.06*zipf {
		t.Errorf("top 10 of 1000 ranks drew %.4f: Gray's method says %.4f, Zipf %.4f", got, gray, zipf)
	}
	if got, want := float64(counts[0])/n, 1/z.zetan; math.Abs(got-want) > 0.02*want {
		t.Errorf("rank 0 drew %.4f, Zipf says %.4f", got, want)
	}

	// Scrambled over 10^10 ranks onto 1000 records: the records of the 10
	// top ranks take those ranks' share plus their share of the rest.
	w, _ := StandardWorkload("c", 0)
	w.RecordCount = 1000
	_, records, _ := drawMany(&w, newKeySpace(w.RecordCount), seed, n)
	hot := map[int64]bool{}
	for r := range int64(10) {
		hot[int64(fnvHash64(r)%uint64(w.RecordCount))] = true
	}
	hotDraws := 0
	for r := range hot {
		hotDraws += records[r]
	}
	topShare := grayTopShare(10, scrambledZipfianItems, 0.99)
	theory := topShare + (1-topShare)*float64(len(hot))/float64(w.RecordCount)
	got = float64(hotDraws) / n
	t.Logf("records of the top 10 ranks drew %.4f (theory %.4f)", got, theory)
	if math.Abs(got-theory) > 0.05*theory {
		t.Errorf("records of the top 10 ranks drew %.4f, theory %.4f", got, theory)
	}
	// They are the most drawn records.
	byCount := slices.Collect(func(yield func(int64) bool) {
		for r := range records {
			if !yield(r) {
				return
			}
		}
	})
	slices.SortFunc(byCount, func(a, b int64) int { return records[b] - records[a] })
	for _, r := range byCount[:len(hot)] {
		if !hot[r] {
			t.Errorf("record %d (%d draws) is among the most drawn but not a top rank's", r, records[r])
		}
	}
}

func TestLatestDistribution(t *testing.T) {
	seed := testSeed(t)
	w, _ := StandardWorkload("d", 0)
	w.RecordCount = 1000
	w.InsertProportion = 0 // reads only, over a fixed set: compare with theory
	keys := newKeySpace(w.RecordCount)
	const n = 500_000
	_, records, _ := drawMany(&w, keys, seed, n)
	newest := w.RecordCount - 1
	if got, want := float64(records[newest])/n, 1/zetaSum(1, 1000, 0.99); math.Abs(got-want) > 0.02*want {
		t.Errorf("the newest record drew %.4f, Zipf says %.4f", got, want)
	}
	recent := 0
	for r := newest - 9; r <= newest; r++ {
		recent += records[r]
	}
	if got, want := float64(recent)/n, grayTopShare(10, 1000, 0.99); math.Abs(got-want) > 0.01*want {
		t.Errorf("the 10 newest records drew %.4f, Gray's method says %.4f", got, want)
	}
	old := 0
	for r := range int64(10) {
		old += records[r]
	}
	if old*20 > recent {
		t.Errorf("the 10 oldest records drew %d, the 10 newest %d: recent ones should dominate", old, recent)
	}

	// With inserts, reads follow the newest acknowledged record.
	w.InsertProportion = 0.05
	keys = newKeySpace(w.RecordCount)
	g := newGenerator(&w, keys, nil, seed, 0)
	var pending []int64
	newestReads := 0
	reads := 0
	for i := range 100_000 {
		o := g.next()
		switch o.op {
		case OpInsert:
			pending = append(pending, o.record)
		case OpRead:
			reads++
			if o.record >= keys.acked.Load() {
				t.Fatalf("read record %d, not yet acknowledged (%d)", o.record, keys.acked.Load())
			}
			if o.record == keys.acked.Load()-1 {
				newestReads++
			}
		}
		if i%7 == 0 && len(pending) > 0 { // acknowledge out of order, late
			j := len(pending) / 2
			keys.acknowledge(pending[j])
			pending = slices.Delete(pending, j, j+1)
		}
	}
	if keys.acked.Load() <= w.RecordCount+1000 {
		t.Errorf("acknowledged only up to %d", keys.acked.Load())
	}
	if share := float64(newestReads) / float64(reads); share < 0.05 {
		t.Errorf("the newest record took %.3f of reads", share)
	}
}

func TestKeySpaceAcknowledge(t *testing.T) {
	k := newKeySpace(10)
	for range 5 {
		k.claim()
	}
	for _, tc := range []struct{ ack, want int64 }{{11, 10}, {13, 10}, {10, 12}, {12, 14}, {14, 15}} {
		k.acknowledge(tc.ack)
		if got := k.acked.Load(); got != tc.want {
			t.Fatalf("after acknowledging %d: acked %d, want %d", tc.ack, got, tc.want)
		}
	}
	if len(k.mu.pending) != 0 {
		t.Errorf("pending left: %v", k.mu.pending)
	}
}

func TestGeneratorDeterministic(t *testing.T) {
	seed := testSeed(t)
	w, _ := StandardWorkload("e", 0)
	w.RecordCount = 1000
	z := newZipfian(scrambledZipfianItems, w.ZipfianConstant)
	run := func(stream uint64) []operation {
		g := newGenerator(&w, newKeySpace(w.RecordCount), &z, seed, stream)
		var ops []operation
		for range 1000 {
			ops = append(ops, g.next())
		}
		return ops
	}
	if a, b := run(3), run(3); !slices.Equal(a, b) {
		t.Error("the same seed and stream chose different operations")
	}
	if a, b := run(3), run(4); slices.Equal(a, b) {
		t.Error("different streams chose the same operations")
	}
}
