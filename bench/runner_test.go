// Copyright 2026 The Flotilla Authors. All rights reserved.

package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

// smallConfig is a quick configuration of workload name over records
// records.
func smallConfig(t *testing.T, name string, records int64) Config {
	t.Helper()
	w, err := StandardWorkload(name, 0.5)
	if err != nil {
		t.Fatal(err)
	}
	w.RecordCount = records
	w.ValueSize = 100
	return Config{Workload: w, Clients: 4, Seed: testSeed(t)}
}

func newRunner(t *testing.T, cfg Config) *Runner {
	t.Helper()
	r, err := NewRunner(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestLoadThenRun(t *testing.T) {
	cfg := smallConfig(t, "a", 1000)
	cfg.MaxOps = 5000
	cfg.Duration = 0
	r := newRunner(t, cfg)
	f := newFakeTarget()
	ctx := context.Background()

	load, err := r.Load(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	if f.len() != 1000 {
		t.Fatalf("load left %d records, want 1000", f.len())
	}
	if load.Phase != "load" || load.Ops != 1000 || load.Errors != 0 || len(load.Operations) != 1 || load.Operations[0].Op != "insert" {
		t.Errorf("load report: %+v", load)
	}

	run, err := r.Run(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	if run.Ops != 5000 || run.Errors != 0 {
		t.Errorf("run did %d ops with %d errors, want 5000 and 0 (MaxOps)", run.Ops, run.Errors)
	}
	reads, updates := run.Op("read"), run.Op("update")
	if reads == nil || updates == nil || reads.Count+updates.Count != 5000 {
		t.Fatalf("run operations: %+v", run.Operations)
	}
	if share := float64(reads.Count) / 5000; math.Abs(share-0.5) > 0.05 {
		t.Errorf("read share %.3f, want 0.5", share)
	}
	if f.len() != 1000 {
		t.Errorf("workload a created records: %d", f.len())
	}
	if run.Throughput <= 0 || run.ElapsedSeconds <= 0 || reads.P50Micros > reads.MaxMicros || run.Target["kind"] != "fake" {
		t.Errorf("run report: %+v", run)
	}
	if run.Config.Seed != cfg.Seed || run.Config.Workload.Name != "a" || run.GoVersion == "" || run.Start.IsZero() {
		t.Errorf("run report's configuration: %+v", run.Config)
	}
	if run.ClientCPU == nil || run.ServerCPU != nil {
		t.Errorf("client CPU %v, server CPU %v: want client only", run.ClientCPU, run.ServerCPU)
	}
}

// TestEveryStandardWorkload runs each standard workload briefly with Verify
// on: scans, inserts and read-modify-writes work and leave consistent data.
func TestEveryStandardWorkload(t *testing.T) {
	for _, name := range StandardWorkloads {
		t.Run(name, func(t *testing.T) {
			cfg := smallConfig(t, name, 300)
			cfg.MaxOps, cfg.Duration, cfg.Verify = 3000, 0, true
			r := newRunner(t, cfg)
			f := newFakeTarget()
			ctx := context.Background()
			if _, err := r.Load(ctx, f); err != nil {
				t.Fatal(err)
			}
			rep, err := r.Run(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Ops != 3000 || rep.Errors != 0 {
				t.Errorf("%d ops, %d errors (%v)", rep.Ops, rep.Errors, rep.ErrorsByClass)
			}
			w := r.Config().Workload
			for op, p := range w.proportions() {
				if s := rep.Op(Op(op).String()); (p > 0) != (s != nil && s.Count > 0) {
					t.Errorf("proportion of %v is %v but the report has %+v", Op(op), p, s)
				}
			}
			if inserts := rep.Op("insert"); inserts != nil && f.len() != 300+int(inserts.Count) {
				t.Errorf("%d inserts, %d records", inserts.Count, f.len())
			}
			checked, err := r.Verify(ctx, f)
			if err != nil {
				t.Fatal(err)
			}
			if checked != f.len() {
				t.Errorf("verified %d keys of %d", checked, f.len())
			}
		})
	}
}

func TestOpenLoopHoldsRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := smallConfig(t, "b", 1000)
		cfg.Rate, cfg.Duration, cfg.Clients = 2000, 2*time.Second, 8
		f := newFakeTarget()
		f.latency = func(string, []byte) time.Duration { return time.Millisecond }
		loadAll(t, f, cfg)
		rep, err := newRunner(t, cfg).Run(context.Background(), f)
		if err != nil {
			t.Fatal(err)
		}
		o := rep.OpenLoop
		if o == nil {
			t.Fatal("no open-loop figures")
		}
		t.Logf("requested %v/s, achieved %.1f/s, %d ops, %d late, %d dropped", o.RequestedRate, o.AchievedRate, rep.Ops, o.LateOps, o.DroppedOps)
		if math.Abs(o.AchievedRate-2000) > 200 || math.Abs(float64(rep.Ops)-4000) > 400 {
			t.Errorf("achieved %.1f ops/s (%d ops), want 2000/s ± 10%%", o.AchievedRate, rep.Ops)
		}
		if o.LateOps != 0 || o.DroppedOps != 0 {
			t.Errorf("%d late, %d dropped: 8 clients at 1 ms each keep up with 2000/s", o.LateOps, o.DroppedOps)
		}
		for _, s := range rep.Operations {
			if s.P50Micros < 1000 || s.MaxMicros > 1100 {
				t.Errorf("%s: p50 %v µs, max %v µs; the fake takes 1 ms", s.Op, s.P50Micros, s.MaxMicros)
			}
		}
		// Two seconds, and the last operation's return just after.
		if n := len(rep.Timeline); n != 2 && n != 3 {
			t.Fatalf("timeline %+v, want 2 samples and perhaps a short one", rep.Timeline)
		}
		for _, s := range rep.Timeline[:2] {
			if math.Abs(s.OpsPerSec-2000) > 200 {
				t.Errorf("sample %+v: not 2000 ops/s", s)
			}
		}
	})
}

// loadAll writes every record of cfg's workload to f directly.
func loadAll(t *testing.T, f *fakeTarget, cfg Config) {
	t.Helper()
	cfg.EnsureDefaults()
	for n := range cfg.Workload.RecordCount {
		k := appendKey(nil, n, cfg.Workload.KeySize)
		f.set(k, appendValue(nil, k, 0, cfg.Workload.ValueSize))
	}
}

// stallTarget makes every operation in [from, to) of the bubble's clock
// wait until to: a pause of the whole store, like a leader election.
func stallTarget(f *fakeTarget, from, to time.Time) {
	f.latency = func(string, []byte) time.Duration {
		now := time.Now()
		if !now.Before(from) && now.Before(to) {
			return to.Sub(now) + time.Millisecond
		}
		return time.Millisecond
	}
}

// TestOpenLoopCountsStalls shows the open loop avoids coordinated
// omission: a 200 ms stall of the store delays every operation scheduled
// during it, and the latencies say so; the closed loop measures only the
// few operations in flight when the stall began.
func TestOpenLoopCountsStalls(t *testing.T) {
	run := func(t *testing.T, rate float64) *Report {
		var rep *Report
		synctest.Test(t, func(t *testing.T) {
			cfg := smallConfig(t, "c", 100)
			cfg.Rate, cfg.Duration, cfg.Clients = rate, time.Second, 4
			f := newFakeTarget()
			start := time.Now()
			stallTarget(f, start.Add(300*time.Millisecond), start.Add(500*time.Millisecond))
			loadAll(t, f, cfg)
			var err error
			if rep, err = newRunner(t, cfg).Run(context.Background(), f); err != nil {
				t.Fatal(err)
			}
		})
		return rep
	}

	open := run(t, 1000)
	reads := open.Op("read")
	t.Logf("open loop: %d reads, p50 %v p95 %v p99 %v max %v µs; %d late", reads.Count, reads.P50Micros, reads.P95Micros, reads.P99Micros, reads.MaxMicros, open.OpenLoop.LateOps)
	// The reads scheduled in [300, 500) ms (a fifth of the second) waited
	// for the stall's end: their latencies run from 200 ms down, so the
	// slowest 5 % are above 150 ms. After the stall the 4 clients work
	// off the backlog at 4 a millisecond while 1 more is due each: the
	// ~67 ms that takes makes those reads late too.
	if reads.Count != 1000 || reads.P95Micros < 150_000 || reads.MaxMicros < 199_000 || reads.MaxMicros > 202_000 {
		t.Errorf("open loop: %d reads, p95 %v µs, max %v µs: the stall is not in the latencies", reads.Count, reads.P95Micros, reads.MaxMicros)
	}
	if late := open.OpenLoop.LateOps; late < 250 || late > 275 {
		t.Errorf("%d operations started late, want those due in the stall and its backlog (~265)", late)
	}

	closed := run(t, 0)
	creads := closed.Op("read")
	t.Logf("closed loop: %d reads, p50 %v p95 %v p99 %v max %v µs", creads.Count, creads.P50Micros, creads.P95Micros, creads.P99Micros, creads.MaxMicros)
	if creads.P99Micros > 2000 || creads.MaxMicros < 199_000 {
		t.Errorf("closed loop: p99 %v µs, max %v µs: expected the stall hidden from all but the max", creads.P99Micros, creads.MaxMicros)
	}
}

// TestOpenLoopLatencyFromIntendedStart checks the schedule exactly: one
// client, operations due every 1 ms, each taking 5 ms. Operation i is due
// at i ms, ends at 5(i+1) ms, so its latency is 4i+5 ms, and every
// operation but the first starts late.
func TestOpenLoopLatencyFromIntendedStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := smallConfig(t, "c", 100)
		cfg.Rate, cfg.MaxOps, cfg.Duration, cfg.Clients = 1000, 100, 0, 1
		f := newFakeTarget()
		f.latency = func(string, []byte) time.Duration { return 5 * time.Millisecond }
		loadAll(t, f, cfg)
		rep, err := newRunner(t, cfg).Run(context.Background(), f)
		if err != nil {
			t.Fatal(err)
		}
		reads := rep.Op("read")
		near := func(got, want float64) bool { return math.Abs(got-want) <= want/500 } // 3 significant digits
		if reads.Count != 100 || !near(reads.MaxMicros, 401_000) || !near(reads.P50Micros, 201_000) {
			t.Errorf("%d reads, p50 %v µs, max %v µs; want 100, 201 ms, 401 ms", reads.Count, reads.P50Micros, reads.MaxMicros)
		}
		if o := rep.OpenLoop; o.LateOps != 99 || o.MaxLateMicros != 396_000 {
			t.Errorf("%d late by up to %v µs; want 99 by up to 396 ms", o.LateOps, o.MaxLateMicros)
		}
		if math.Abs(rep.ElapsedSeconds-0.5) > 1e-9 {
			t.Errorf("elapsed %v s, want 0.5 (100 operations of 5 ms)", rep.ElapsedSeconds)
		}
	})
}

// scaledClock runs factor times faster than the time package's clock.
type scaledClock struct {
	base   time.Time
	factor float64
}

func (c scaledClock) Now() time.Time {
	return c.base.Add(time.Duration(float64(time.Since(c.base)) * c.factor))
}

func (c scaledClock) Sleep(ctx context.Context, d time.Duration) error {
	return realClock{}.Sleep(ctx, time.Duration(float64(d)/c.factor))
}

// TestOpenLoopInjectedClock runs 2 s of a clock 10 times faster than the
// bubble's at 2000 ops/s against a fake taking 1 ms of the bubble's time,
// which is 10 ms of the injected clock's.
func TestOpenLoopInjectedClock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := smallConfig(t, "b", 1000)
		cfg.Rate, cfg.Duration, cfg.Clients = 2000, 2*time.Second, 32
		cfg.Testing = &TestingKnobs{Clock: scaledClock{base: time.Now(), factor: 10}}
		f := newFakeTarget()
		f.latency = func(string, []byte) time.Duration { return time.Millisecond }
		loadAll(t, f, cfg)
		start := time.Now()
		rep, err := newRunner(t, cfg).Run(context.Background(), f)
		if err != nil {
			t.Fatal(err)
		}
		// The last operation is due at 1.9995 s of the injected clock,
		// 199.95 ms of the bubble's, and returns 1 ms later.
		if took := time.Since(start); took != 200950*time.Microsecond {
			t.Errorf("2 s of a 10× clock took %v, want 200.95 ms", took)
		}
		o := rep.OpenLoop
		if math.Abs(o.AchievedRate-2000) > 20 || rep.Ops != 4000 || o.DroppedOps != 0 || o.LateOps != 0 {
			t.Errorf("achieved %.1f ops/s (%d ops, %d late, %d dropped), want 2000/s", o.AchievedRate, rep.Ops, o.LateOps, o.DroppedOps)
		}
		if math.Abs(rep.ElapsedSeconds-2.0095) > 1e-9 {
			t.Errorf("elapsed %v s of the injected clock, want 2.0095", rep.ElapsedSeconds)
		}
		for _, s := range rep.Operations {
			if s.P50Micros != 10_000 && s.P50Micros != 10_007 { // 3 significant digits
				t.Errorf("%s: p50 %v µs, want 10 ms of the injected clock", s.Op, s.P50Micros)
			}
		}
	})
}

func TestClosedLoopDurationAndWarmup(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := smallConfig(t, "c", 100)
		cfg.Duration, cfg.Warmup, cfg.Clients = 2*time.Second, time.Second, 2
		var progress bytes.Buffer
		cfg.Progress = &progress
		f := newFakeTarget()
		// 7 ms, so that no read returns on a second, where it could fall
		// on either side of the sample.
		f.latency = func(string, []byte) time.Duration { return 7 * time.Millisecond }
		loadAll(t, f, cfg)
		start := time.Now()
		rep, err := newRunner(t, cfg).Run(context.Background(), f)
		if err != nil {
			t.Fatal(err)
		}
		// Each client reads at 0, 7, …, 994 ms in the warmup, then from
		// 1001 ms on while before 3000 ms: 286 measured reads, the last
		// returning at 3003 ms.
		if took := time.Since(start); took != 3003*time.Millisecond {
			t.Errorf("the run took %v, want 3.003 s (1 s warmup, 2 s measured, the last read)", took)
		}
		if rep.Ops != 572 || math.Abs(rep.ElapsedSeconds-2.003) > 1e-9 || math.Abs(rep.Throughput-572/2.003) > 1e-6 {
			t.Errorf("%d ops in %v s (%v/s), want 572 in 2.003", rep.Ops, rep.ElapsedSeconds, rep.Throughput)
		}
		if f.ops.Load() != 858 {
			t.Errorf("the fake served %d ops, want 858 with the warmup", f.ops.Load())
		}
		lines := strings.Split(strings.TrimSpace(progress.String()), "\n")
		if len(lines) != 2 {
			t.Fatalf("progress:\n%s\nwant 2 lines", progress.String())
		}
		// Histograms keep 3 significant digits: 7 ms reads as 7.003 ms.
		for i, l := range lines {
			want := fmt.Sprintf("run %6.1fs %10.0f ops/s  p99    7.00ms  errors 0", float64(i+1), []float64{284, 286}[i])
			if l != want {
				t.Errorf("progress line %q, want %q", l, want)
			}
		}
		// The second sample takes in the read returning at 3003 ms.
		want := []Sample{
			{Seconds: 1, Ops: 284, OpsPerSec: 284, P50Micros: 7003, P99Micros: 7003},
			{Seconds: 2.003, Ops: 288, OpsPerSec: 288 / 1.003, P50Micros: 7003, P99Micros: 7003},
		}
		if len(rep.Timeline) != 2 {
			t.Fatalf("timeline %+v, want %+v", rep.Timeline, want)
		}
		for i, s := range rep.Timeline {
			if s.Seconds != want[i].Seconds || s.Ops != want[i].Ops || math.Abs(s.OpsPerSec-want[i].OpsPerSec) > 1e-6 || s.P99Micros != want[i].P99Micros {
				t.Errorf("timeline %+v, want %+v", rep.Timeline, want)
			}
		}
	})
}

func TestErrorClasses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := smallConfig(t, "a", 100)
		cfg.MaxOps, cfg.Duration, cfg.OpTimeout = 400, 0, 50*time.Millisecond
		// Remove some records (not-found), time some out, fail others.
		newFake := func() *fakeTarget {
			f := newFakeTarget()
			loadAll(t, f, cfg)
			for n := int64(1); n < 100; n += 4 {
				f.remove(appendKey(nil, n, cfg.Workload.KeySize))
			}
			f.latency = func(_ string, key []byte) time.Duration {
				if key[len(key)-1]%5 == 0 {
					return time.Second // past OpTimeout
				}
				return time.Millisecond
			}
			f.fail = func(op string, key []byte) (error, bool) {
				if key[len(key)-1]%5 == 1 {
					return errInjected, false
				}
				return nil, false
			}
			return f
		}
		for _, tc := range []struct {
			target Target
			class  string // the injected failures'
		}{{newFake(), ClassOther}, {fakeClassifyingTarget{newFake()}, "unavailable"}} {
			rep, err := newRunner(t, cfg).Run(context.Background(), tc.target)
			if err != nil {
				t.Fatal(err)
			}
			c := rep.ErrorsByClass
			t.Logf("errors by class: %v", c)
			if c[ClassTimeout] == 0 || c[tc.class] == 0 || c[ClassNotFound] == 0 || len(c) != 3 {
				t.Errorf("errors by class %v: want timeout, %s and not-found", c, tc.class)
			}
			sum := int64(0)
			for _, n := range c {
				sum += n
			}
			if sum != rep.Errors || rep.Ops != 400 || rep.Op("read").Errors+rep.Op("update").Errors != rep.Errors {
				t.Errorf("%d errors by class, %d in all, %d ops", sum, rep.Errors, rep.Ops)
			}
		}
	})
}

func TestCPUCost(t *testing.T) {
	cfg := smallConfig(t, "kv", 100)
	cfg.MaxOps, cfg.Duration = 1000, 0
	f := newFakeTarget()
	f.cpuPerOp = 20 * time.Microsecond
	loadAll(t, f, cfg)
	rep, err := newRunner(t, cfg).Run(context.Background(), fakeCPUTarget{f})
	if err != nil {
		t.Fatal(err)
	}
	if s := rep.ServerCPU; s == nil || math.Abs(s.Seconds-0.02) > 1e-9 || math.Abs(s.MicrosPerOp-20) > 1e-6 {
		t.Errorf("server CPU %+v, want 0.02 s, 20 µs/op (error %q)", s, rep.ServerCPUError)
	}
	if c := rep.ClientCPU; c == nil || c.Seconds < 0 || c.MicrosPerOp < 0 {
		t.Errorf("client CPU %+v", c)
	}
}

func TestRunInterrupted(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := smallConfig(t, "c", 100)
		cfg.Duration = time.Hour
		f := newFakeTarget()
		loadAll(t, f, cfg)
		f.latency = func(string, []byte) time.Duration { return time.Millisecond }
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		time.AfterFunc(1500*time.Millisecond, cancel)
		rep, err := newRunner(t, cfg).Run(ctx, f)
		if !errors.Is(err, context.Canceled) || rep == nil || !rep.Interrupted {
			t.Fatalf("Run = %v, %v; want the report so far and context.Canceled", rep, err)
		}
		if rep.ElapsedSeconds < 1.4 || rep.ElapsedSeconds > 1.6 || rep.Ops < 5000 {
			t.Errorf("interrupted after %v s with %d ops", rep.ElapsedSeconds, rep.Ops)
		}
	})
}

func TestOpenLoopDropsWhenOverloaded(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		cfg := smallConfig(t, "c", 100)
		cfg.Rate, cfg.Duration, cfg.Clients, cfg.OpTimeout = 1000, time.Second, 2, 200*time.Millisecond
		f := newFakeTarget()
		f.latency = func(string, []byte) time.Duration { return 10 * time.Millisecond } // 200/s at most
		loadAll(t, f, cfg)
		start := time.Now()
		rep, err := newRunner(t, cfg).Run(context.Background(), f)
		if err != nil {
			t.Fatal(err)
		}
		o := rep.OpenLoop
		t.Logf("took %v: %d ops, achieved %.1f/s, %d late, %d dropped", time.Since(start), rep.Ops, o.AchievedRate, o.LateOps, o.DroppedOps)
		if took := time.Since(start); took > 1300*time.Millisecond {
			t.Errorf("an overloaded run took %v; it should stop sending OpTimeout after its end", took)
		}
		if rep.Ops+o.DroppedOps != 1000 || o.DroppedOps < 700 || o.AchievedRate > 200 {
			t.Errorf("%d ops + %d dropped, achieved %.1f/s: want 1000 scheduled, most dropped", rep.Ops, o.DroppedOps, o.AchievedRate)
		}
	})
}

func TestConfigValidateReportsEveryProblem(t *testing.T) {
	w, _ := StandardWorkload("a", 0)
	w.ValueSize = 10
	cfg := Config{Workload: w, Clients: -1, Rate: -1, Duration: -1, MaxOps: -1, Warmup: -1, OpTimeout: -1, Verify: true}
	err := cfg.Validate()
	if err == nil {
		t.Fatal("Validate accepted a bad config")
	}
	for _, want := range []string{"Clients", "Rate", "Duration", "MaxOps", "Warmup", "OpTimeout", "Verify needs values"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate's error does not mention %s:\n%v", want, err)
		}
	}
	if _, err := NewRunner(cfg); err == nil {
		t.Error("NewRunner accepted a bad config")
	}

	var empty Config
	empty.Workload = w
	empty.Workload.ValueSize = 0
	empty.EnsureDefaults()
	if err := empty.Validate(); err != nil {
		t.Errorf("defaults are invalid: %v", err)
	}
	if empty.Duration != DefaultDuration || empty.Clients != DefaultClients || empty.OpTimeout != DefaultOpTimeout {
		t.Errorf("defaults not applied: %+v", empty)
	}
}
