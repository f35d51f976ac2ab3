// Copyright 2026 The Flotilla Authors. All rights reserved.

package bench

import "math"

// fnvHash64 is YCSB's Utils.fnvhash64: FNV-1a over the 8 little-endian
// bytes of n, made non-negative as Java's Math.abs does (which leaves
// math.MinInt64 as it is; we return its magnitude, 2^63, instead).
func fnvHash64(n int64) uint64 {
	const (
		offsetBasis = 0xCBF29CE484222325
		prime       = 1099511628211
	)
	h := uint64(offsetBasis)
	v := uint64(n)
	for range 8 {
		h ^= v & 0xff
		h *= prime
		v >>= 8
	}
	if s := int64(h); s < 0 {
		return uint64(-s) // -MinInt64 wraps to MinInt64, whose uint64 is 2^63
	}
	return h
}

// scrambledZipfianItems is the item count of YCSB's ScrambledZipfianGenerator:
// ranks are drawn over this many items and hashed onto the records, so that
// the popularity of records does not depend on how many there are.
const scrambledZipfianItems = 10_000_000_000

// zipfian draws ranks 0, 1, … with Zipfian probabilities (rank r weighted
// 1/(r+1)^theta), by Gray et al.'s method ("Quickly generating
// billion-record synthetic databases", SIGMOD 1994) as YCSB's
// ZipfianGenerator does. It is not safe for concurrent use (grow mutates
// it); next is, if grow is never called.
type zipfian struct {
	items int64 // ranks are in [0, items)
	theta float64
	alpha float64 // 1/(1-theta)
	zeta2 float64 // zeta(2, theta)
	zetan float64 // zeta(items, theta)
	eta   float64
}

func newZipfian(items int64, theta float64) zipfian {
	z := zipfian{theta: theta, alpha: 1 / (1 - theta), zeta2: zetaSum(1, 2, theta)}
	z.items = items
	z.zetan = zetaSum(1, items, theta)
	z.setEta()
	return z
}

func (z *zipfian) setEta() {
	z.eta = (1 - math.Pow(2/float64(z.items), 1-z.theta)) / (1 - z.zeta2/z.zetan)
}

// grow extends the ranks to [0, items), updating zeta incrementally, as
// YCSB's ZipfianGenerator.nextLong(itemcount) does. Shrinking is ignored.
func (z *zipfian) grow(items int64) {
	if items <= z.items {
		return
	}
	z.zetan += zetaSum(z.items+1, items, z.theta)
	z.items = items
	z.setEta()
}

// next maps u, uniform in [0, 1), to a rank in [0, items).
func (z *zipfian) next(u float64) int64 {
	uz := u * z.zetan
	if uz < 1 {
		return 0
	}
	if uz < 1+math.Pow(0.5, z.theta) {
		return min(1, z.items-1)
	}
	r := int64(float64(z.items) * math.Pow(z.eta*u-z.eta+1, z.alpha))
	return max(0, min(r, z.items-1)) // guard against rounding at the ends
}

// zetaSum returns the sum of i^-theta for i in [lo, hi] (lo >= 1, theta in
// (0, 1)). Terms below 10,000, and short ranges, are summed one by one; the
// rest by the Euler–Maclaurin formula, whose next term is below 1e-15 there,
// so that zeta over YCSB's 10^10 items costs microseconds instead of
// minutes.
func zetaSum(lo, hi int64, theta float64) float64 {
	const direct = 10_000
	f := func(i int64) float64 { return math.Pow(float64(i), -theta) }
	sum := 0.0
	for lo <= hi && (lo < direct || hi-lo < direct) {
		sum += f(lo)
		lo++
	}
	if lo > hi {
		return sum
	}
	a, b := float64(lo), float64(hi)
	df := func(x float64) float64 { return -theta * math.Pow(x, -theta-1) }
	integral := (math.Pow(b, 1-theta) - math.Pow(a, 1-theta)) / (1 - theta)
	return sum + integral + (f(lo)+f(hi))/2 + (df(b)-df(a))/12
}
