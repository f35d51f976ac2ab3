// Copyright 2026 The Flotilla Authors. All rights reserved.

package bench

import (
	"bytes"
	"math"
	"strings"
	"testing"
	"time"
)

func TestCompare(t *testing.T) {
	// The same seed: the same operations, at twice the latency.
	seed := testSeed(t)
	a := sampleReport(t, "a", 0, time.Millisecond, seed)
	b := sampleReport(t, "a", 0, 2*time.Millisecond, seed)
	c := Compare(a, b)
	get := func(metric string) ComparisonRow {
		for _, r := range c.Rows {
			if r.Metric == metric {
				return r
			}
		}
		t.Fatalf("no row %q in %+v", metric, c.Rows)
		return ComparisonRow{}
	}
	// Twice the latency in a closed loop: half the throughput.
	near := func(x, want float64) bool { return math.Abs(x-want) < 0.01*want }
	if r := get("throughput (ops/s)"); !near(r.Ratio, 0.5) || !r.HigherIsBetter {
		t.Errorf("throughput row %+v, want ratio 0.5", r)
	}
	for _, m := range []string{"read p50 (µs)", "read p99 (µs)", "update p50 (µs)", "update p99 (µs)"} {
		if r := get(m); !near(r.Ratio, 2) || r.HigherIsBetter {
			t.Errorf("%s row %+v, want ratio 2", m, r)
		}
	}
	if r := get("server CPU (µs/op)"); !near(r.Ratio, 1) {
		t.Errorf("server CPU row %+v, want ratio 1", r)
	}
	get("client CPU (µs/op)")

	// An operation only one side has.
	e := sampleReport(t, "e", 0, time.Millisecond, 0)
	c = Compare(a, e)
	if r := get("scan p99 (µs)"); !math.IsNaN(r.A) || !math.IsNaN(r.Ratio) {
		t.Errorf("scan row %+v: want NaN for A and the ratio", r)
	}
	var out bytes.Buffer
	if err := c.WriteComparison(&out); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", out.String())
	for _, want := range []string{"A: a run on fake @abc1234", "B: e run on fake @abc1234", "metric", "B/A", "throughput (ops/s)", "scan p99 (µs)", " - "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the comparison lacks %q", want)
		}
	}
}
