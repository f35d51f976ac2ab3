// Copyright 2026 The Flotilla Authors. All rights reserved.

package bench

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// sampleReport runs workload name for 3 s of a synctest bubble against a
// fake taking latency per read or scan and twice that per write, with
// server CPU, and returns the report. seed 0 is testSeed's.
func sampleReport(t *testing.T, name string, rate float64, latency time.Duration, seed uint64) *Report {
	t.Helper()
	var rep *Report
	synctest.Test(t, func(t *testing.T) {
		cfg := smallConfig(t, name, 100)
		if seed != 0 {
			cfg.Seed = seed
		}
		cfg.Rate, cfg.Duration = rate, 3*time.Second
		f := newFakeTarget()
		f.cpuPerOp = 10 * time.Microsecond
		f.latency = func(op string, _ []byte) time.Duration {
			if op == "put" {
				return 2 * latency
			}
			return latency
		}
		loadAll(t, f, cfg)
		var err error
		if rep, err = newRunner(t, cfg).Run(context.Background(), fakeCPUTarget{f}); err != nil {
			t.Fatal(err)
		}
		rep.Commit = "abc1234"
	})
	return rep
}

func TestReportJSONRoundTrip(t *testing.T) {
	rep := sampleReport(t, "a", 500, time.Millisecond, 0)
	var first bytes.Buffer
	if err := rep.WriteJSON(&first); err != nil {
		t.Fatal(err)
	}
	back, err := ReadReport(bytes.NewReader(first.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	var second bytes.Buffer
	if err := back.WriteJSON(&second); err != nil {
		t.Fatal(err)
	}
	if first.String() != second.String() {
		t.Errorf("JSON changed in a round trip:\n%s\n---\n%s", first.String(), second.String())
	}
	// Every figure is in the JSON.
	for _, want := range []string{`"phase": "run"`, `"commit": "abc1234"`, `"go_version"`, `"seed"`, `"workload"`,
		`"read_proportion": 0.5`, `"request_distribution": "zipfian"`, `"rate": 500`, `"duration_ns": 3000000000`,
		`"kind": "fake"`, `"fsync": false`, `"throughput"`, `"open_loop"`, `"achieved_rate"`, `"late_ops"`,
		`"p50_us"`, `"p95_us"`, `"p99_us"`, `"p999_us"`, `"max_us"`, `"timeline"`, `"ops_per_sec"`,
		`"client_cpu"`, `"server_cpu"`, `"us_per_op"`} {
		if !strings.Contains(first.String(), want) {
			t.Errorf("the JSON lacks %s", want)
		}
	}
	if back.Config.Seed != rep.Config.Seed || back.Config.Workload != rep.Config.Workload || !back.Start.Equal(rep.Start) ||
		back.Op("update").P99Micros != rep.Op("update").P99Micros || len(back.Timeline) != 3 {
		t.Errorf("the report read back differs: %+v", back)
	}
	if _, err := ReadReport(strings.NewReader("{")); err == nil {
		t.Error("ReadReport accepted truncated JSON")
	}
}

func TestWriteSummary(t *testing.T) {
	rep := sampleReport(t, "a", 500, time.Millisecond, 0)
	rep.ErrorsByClass = map[string]int64{"timeout": 2, "not-found": 1}
	var b bytes.Buffer
	if err := rep.WriteSummary(&b); err != nil {
		t.Fatal(err)
	}
	s := b.String()
	t.Logf("\n%s", s)
	for _, want := range []string{
		"run phase, workload a: read 0.5 update 0.5; zipfian 0.99; 100 records",
		"target: fsync=false kind=fake nodes=1",
		"commit abc1234, go1.",
		"open loop at 500 ops/s with up to 4 in flight, 3s",
		"(not-found 1, timeout 2)",
		"achieved 500.",
		"p99.9",
		"read ", "update ", "1.00ms", "2.00ms",
		"client CPU", "server CPU 0.01s, 10.0 µs/op",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("the summary lacks %q", want)
		}
	}
}
