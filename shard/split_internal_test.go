// Copyright 2026 The Flotilla Authors. All rights reserved.

package shard

import (
	"bytes"
	"fmt"
	"testing"
	"time"
)

// TestKeySamplerReset: a sample reset by a split starts over, and keys()
// keeps the previous window and the current one only.
func TestKeySamplerReset(t *testing.T) {
	var ks keySampler
	now := time.Unix(1000, 0)
	for i := range 1000 {
		ks.sample(now, fmt.Appendf(nil, "k%04d", i))
	}
	if n := len(ks.keys(now)); n != loadSampleSize {
		t.Fatalf("%d samples, want %d", n, loadSampleSize)
	}
	ks.reset()
	if n := len(ks.keys(now)); n != 0 {
		t.Fatalf("%d samples after reset", n)
	}
	ks.sample(now, []byte("a"))
	if n := len(ks.keys(now.Add(3 * loadSampleWindow))); n != 0 {
		t.Fatalf("%d samples two windows later", n)
	}
}

// TestLoadSplitKeyInSpan: samples outside the range (from before a split)
// do not pull the split key: it is the median of the samples inside.
func TestLoadSplitKeyInSpan(t *testing.T) {
	var ks keySampler
	now := time.Now()
	// The range is [a, m): 100 samples inside, 300 beyond its end.
	for i := range 100 {
		ks.sample(now, fmt.Appendf(nil, "c%03d", i))
	}
	for i := range 300 {
		ks.sample(now, fmt.Appendf(nil, "x%03d", i))
	}
	span := userSpan{start: []byte("a"), end: []byte("m")}
	var in [][]byte
	for _, k := range ks.keys(now) {
		if span.contains(k) {
			in = append(in, k)
		}
	}
	if len(in) == 0 {
		t.Skip("the reservoir kept no in-span key")
	}
	// Exercise the selection as LoadSplitKey does.
	key := medianKey(in, span)
	if key == nil || !span.contains(key) || bytes.Compare(key, []byte("c020")) < 0 || bytes.Compare(key, []byte("c080")) > 0 {
		t.Fatalf("split key %q, want one near the middle of c000..c099", key)
	}
}
