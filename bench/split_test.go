// Copyright 2026 The Flotilla Authors. All rights reserved.

package bench

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// TestSplitKeys: the split keys are strictly increasing, as long as the
// workload's keys, and the generated keys of the records fall into the
// parts in equal numbers: within one record when every record is sorted,
// within a small fraction when a sample stands for them.
func TestSplitKeys(t *testing.T) {
	for _, tc := range []struct {
		records    int64
		keySize    int
		ranges     int
		sampleSize int64
		// tolerance is the largest allowed difference between a part's
		// record count and records/ranges, as a fraction of the latter
		// (at least one record).
		tolerance float64
	}{
		{records: 1, keySize: MinKeySize, ranges: 1, sampleSize: splitSampleSize},
		{records: 10, keySize: MinKeySize, ranges: 10, sampleSize: splitSampleSize},
		{records: 2000, keySize: MinKeySize, ranges: 4, sampleSize: splitSampleSize},
		{records: 100_000, keySize: MinKeySize, ranges: 16, sampleSize: splitSampleSize},
		{records: 100_000, keySize: 40, ranges: 48, sampleSize: splitSampleSize},
		{records: 99_991, keySize: MinKeySize, ranges: 7, sampleSize: splitSampleSize},
		// Sampled: 10,000 of 300,000 records stand for them.
		{records: 300_000, keySize: MinKeySize, ranges: 16, sampleSize: 10_000, tolerance: 0.10},
		// More ranges than the sample holds: the sample grows to
		// splitSamplePerRange per range (each part ±3 % for one standard
		// deviation; the sample is fixed, so the outcome is too).
		{records: 300_000, keySize: MinKeySize, ranges: 100, sampleSize: 100, tolerance: 0.15},
	} {
		t.Run(fmt.Sprintf("records=%d,key=%d,ranges=%d,sample=%d", tc.records, tc.keySize, tc.ranges, tc.sampleSize), func(t *testing.T) {
			keys, err := splitKeys(tc.records, tc.keySize, tc.ranges, tc.sampleSize)
			if err != nil {
				t.Fatal(err)
			}
			if len(keys) != tc.ranges-1 {
				t.Fatalf("%d keys, want %d", len(keys), tc.ranges-1)
			}
			for i, k := range keys {
				if len(k) != tc.keySize || !strings.HasPrefix(string(k), KeyPrefix) {
					t.Fatalf("key %d is %q: not a workload key of %d bytes", i, k, tc.keySize)
				}
				if i > 0 && bytes.Compare(keys[i-1], k) >= 0 {
					t.Fatalf("keys %d and %d are not increasing: %q, %q", i-1, i, keys[i-1], k)
				}
			}
			counts := make([]int64, tc.ranges)
			var key []byte
			for n := range tc.records {
				key = appendKey(key[:0], n, tc.keySize)
				// The part holding key: the number of split keys at or
				// below it.
				part, found := slices.BinarySearchFunc(keys, key, bytes.Compare)
				if found {
					part++
				}
				counts[part]++
			}
			want := float64(tc.records) / float64(tc.ranges)
			allowed := max(1, tc.tolerance*want)
			for i, c := range counts {
				if d := float64(c) - want; d > allowed || d < -allowed {
					t.Fatalf("part %d holds %d records, want %.1f ± %.1f (all: %v)", i, c, want, allowed, counts)
				}
			}
		})
	}
}

// TestSplitKeysLarge: above the sample size, a million records and more
// are split quickly and evenly.
func TestSplitKeysLarge(t *testing.T) {
	if testing.Short() {
		t.Skip("counts 3 million keys")
	}
	const records, ranges = 3_000_000, 48
	keys, err := SplitKeys(records, MinKeySize, ranges)
	if err != nil {
		t.Fatal(err)
	}
	counts := make([]int64, ranges)
	var key []byte
	for n := range int64(records) {
		key = appendKey(key[:0], n, MinKeySize)
		part, found := slices.BinarySearchFunc(keys, key, bytes.Compare)
		if found {
			part++
		}
		counts[part]++
	}
	const want = records / ranges
	for i, c := range counts {
		// A sample of 2^20 puts a part of 1/48 of the records off by
		// about sqrt(48/2^20) = 0.7 % of its size (one standard
		// deviation); the sample is fixed, so the outcome is too.
		if d := c - want; d > want*3/100 || d < -want*3/100 {
			t.Fatalf("part %d holds %d records, want %d ± 3 %% (all: %v)", i, c, want, counts)
		}
	}
}

func TestSplitKeysErrors(t *testing.T) {
	for _, tc := range []struct {
		records int64
		keySize int
		ranges  int
		want    []string
	}{
		{records: 100, keySize: MinKeySize, ranges: 0, want: []string{"ranges is 0"}},
		{records: 100, keySize: MinKeySize, ranges: 101, want: []string{"must not exceed the record count, 100"}},
		{records: 0, keySize: MinKeySize, ranges: 1, want: []string{"record count is 0"}},
		{records: 100, keySize: MinKeySize - 1, ranges: 4, want: []string{"key size is 22"}},
		{records: 100, keySize: MaxKeySize + 1, ranges: 4, want: []string{"key size is 4097"}},
		// Every problem at once.
		{records: -1, keySize: 0, ranges: -2, want: []string{"record count is -1", "key size is 0", "ranges is -2"}},
	} {
		_, err := SplitKeys(tc.records, tc.keySize, tc.ranges)
		if err == nil {
			t.Errorf("SplitKeys(%d, %d, %d) succeeded", tc.records, tc.keySize, tc.ranges)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("SplitKeys(%d, %d, %d): %v; want it to say %q", tc.records, tc.keySize, tc.ranges, err, w)
			}
		}
	}
}
