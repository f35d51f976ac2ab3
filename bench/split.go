// Copyright 2026 The Flotilla Authors. All rights reserved.

package bench

import (
	"errors"
	"fmt"
	"math/bits"
	"slices"
)

// splitSampleSize bounds how many records SplitKeys sorts: above it, an
// evenly spaced sample of the records stands for all of them, and sorting
// it takes a fraction of a second. The hashes of evenly spaced record
// numbers are as scattered as any, so a part's record count is off by
// about sqrt(ranges/sample) of its size: under 1 % up to 100 ranges.
const splitSampleSize = 1 << 20

// splitSamplePerRange is the least sample per range (the sample grows past
// splitSampleSize for more than 1024 ranges): each part is off by about
// 1/sqrt(1024) = 3 % of its size at worst.
const splitSamplePerRange = 1024

// SplitKeys returns the ranges-1 keys that split the keys of records
// 0..recordCount-1 (as a workload of keySize-byte keys generates them)
// into ranges parts of equal record counts: the quantiles of the sorted
// keys. Part i holds the keys from key i-1 (the first part from the start
// of the keyspace) up to, not including, key i (the last part to the end).
// The keys are strictly increasing and printable ASCII, so they can be
// given to `flotilla init --split-at` to pre-split a cluster for a
// benchmark of recordCount records.
//
// Up to 2^20 records the parts differ by at most one record. Above it the
// keys are the quantiles of an evenly spaced sample of the records (of
// 2^20, or 1024 per range if more), and a part's record count is off by
// about sqrt(ranges/2^20) of its size (0.7 % for 48 ranges).
func SplitKeys(recordCount int64, keySize, ranges int) ([][]byte, error) {
	return splitKeys(recordCount, keySize, ranges, splitSampleSize)
}

// splitKeys is SplitKeys with the sample size as a parameter, for tests.
func splitKeys(recordCount int64, keySize, ranges int, sampleSize int64) ([][]byte, error) {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("bench: SplitKeys: "+format, args...))
	}
	if recordCount < 1 {
		bad("record count is %d; it must be at least 1", recordCount)
	}
	if keySize < MinKeySize || keySize > MaxKeySize {
		bad("key size is %d; it must be in [%d, %d]", keySize, MinKeySize, MaxKeySize)
	}
	if ranges < 1 {
		bad("ranges is %d; it must be at least 1", ranges)
	} else if recordCount >= 1 && int64(ranges) > recordCount {
		bad("ranges is %d; it must not exceed the record count, %d", ranges, recordCount)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}

	// Keys of one size order as their records' hashes (appendHashKey), so
	// sorting hashes sorts keys without building them.
	n := recordCount // the sample's size
	if int64(ranges) <= recordCount/splitSamplePerRange {
		n = min(recordCount, max(sampleSize, splitSamplePerRange*int64(ranges)))
	}
	hashes := make([]uint64, n)
	for i := range n {
		hashes[i] = fnvHash64(mulDiv(i, recordCount, n))
	}
	slices.Sort(hashes)

	keys := make([][]byte, 0, ranges-1)
	for i := 1; i < ranges; i++ {
		h := hashes[mulDiv(int64(i), n, int64(ranges))]
		if i > 1 && h == hashes[mulDiv(int64(i-1), n, int64(ranges))] {
			// Two records hash alike, at a split: never seen (fnvHash64
			// is nearly a bijection), but the keys would not be
			// strictly increasing.
			return nil, fmt.Errorf("bench: SplitKeys: split keys %d and %d are equal: two of the %d records hash alike", i-1, i, recordCount)
		}
		keys = append(keys, appendHashKey(make([]byte, 0, keySize), h, keySize))
	}
	return keys, nil
}

// mulDiv returns a*b/c for 0 <= a < c and b >= 0, in 128 bits: the product
// may not fit in 64, the quotient (below b) does.
func mulDiv(a, b, c int64) int64 {
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	q, _ := bits.Div64(hi, lo, uint64(c))
	return int64(q)
}
