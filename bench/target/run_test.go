// Copyright 2026 The Flotilla Authors. All rights reserved.

package target_test

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/flotilladb/flotilla"
	"github.com/flotilladb/flotilla/bench"
	"github.com/flotilladb/flotilla/bench/target"
	"github.com/flotilladb/flotilla/server"
)

// runAndCheck loads and runs a short workload a through tgt, round-trips
// the run's report through JSON and checks that its counts add up.
func runAndCheck(t *testing.T, ctx context.Context, tgt bench.Target, verify bool) (*bench.Runner, *bench.Report) {
	t.Helper()
	w, err := bench.StandardWorkload("a", 0)
	if err != nil {
		t.Fatal(err)
	}
	w.RecordCount, w.ValueSize = 300, 100
	r, err := bench.NewRunner(bench.Config{Workload: w, Clients: 8, MaxOps: 2000, Duration: 20 * time.Second, Verify: verify})
	if err != nil {
		t.Fatal(err)
	}
	load, err := r.Load(ctx, tgt)
	if err != nil {
		t.Fatal(err)
	}
	if load.Ops != 300 || load.Errors != 0 {
		t.Fatalf("load: %d ops, %d errors; want 300 and 0", load.Ops, load.Errors)
	}
	run, err := r.Run(ctx, tgt)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := run.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	rep, err := bench.ReadReport(&buf)
	if err != nil {
		t.Fatal(err)
	}
	var ops, errs, classed int64
	for _, o := range rep.Operations {
		ops += o.Count
		errs += o.Errors
		if o.Count > 0 && o.Errors < o.Count && !(o.P50Micros > 0 && o.P50Micros <= o.P99Micros && o.P99Micros <= o.MaxMicros) {
			t.Errorf("%s: percentiles p50 %v p99 %v max %v", o.Op, o.P50Micros, o.P99Micros, o.MaxMicros)
		}
	}
	for _, n := range rep.ErrorsByClass {
		classed += n
	}
	if rep.Ops != 2000 || ops != rep.Ops || errs != rep.Errors || classed != rep.Errors {
		t.Fatalf("report counts: ops %d (by op %d), errors %d (by op %d, by class %d)", rep.Ops, ops, rep.Errors, errs, classed)
	}
	if rep.Throughput <= 0 || len(rep.Timeline) == 0 || rep.Target["kind"] == nil {
		t.Fatalf("report: throughput %v, %d samples, target %v", rep.Throughput, len(rep.Timeline), rep.Target)
	}
	return r, rep
}

// TestRunEmbedded: a short load and run against the embedded target give a
// report whose counts add up; --verify passes, and catches a value
// corrupted behind the benchmark's back.
func TestRunEmbedded(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	e, err := target.NewEmbedded(ctx, t.TempDir(), target.EmbeddedOptions{Node: server.Config{TickInterval: 20 * time.Millisecond, Logger: quietLogger()}})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	r, _ := runAndCheck(t, ctx, e, true)
	if n, err := r.Verify(ctx, e); err != nil || n != 300 {
		t.Fatalf("verify: %d keys, %v", n, err)
	}
	// Corrupt one record: its key is the first one a scan finds.
	kvs, err := e.Node().Scan(ctx, []byte(bench.KeyPrefix), nil, flotilla.ScanOptions{Limit: 1})
	if err != nil || len(kvs) != 1 {
		t.Fatalf("scan: %v, %v", kvs, err)
	}
	if err := e.Node().Put(ctx, kvs[0].Key, []byte("corrupted")); err != nil {
		t.Fatal(err)
	}
	_, err = r.Verify(ctx, e)
	var ve *bench.VerifyError
	if !errors.As(err, &ve) || len(ve.Mismatches) != 1 || ve.Mismatches[0].Key != string(kvs[0].Key) {
		t.Fatalf("verify after corrupting %q: %v", kvs[0].Key, err)
	}
}

// TestRunCluster: the same against a three-node in-process cluster through
// the cluster target, with the servers' CPU in the report; --verify passes,
// and catches a value corrupted through another node.
func TestRunCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	nodes := startCluster(t, ctx, 3)
	var eps, https []string
	for _, n := range nodes {
		eps = append(eps, n.Addr())
		https = append(https, n.HTTPAddr())
	}
	f, err := target.NewFlotilla(ctx, eps, target.FlotillaOptions{HTTPAddrs: https})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r, rep := runAndCheck(t, ctx, f, true)
	if rep.ServerCPU == nil || rep.ServerCPU.MicrosPerOp <= 0 || rep.ClientCPU == nil {
		t.Fatalf("CPU cost: server %+v (%s), client %+v", rep.ServerCPU, rep.ServerCPUError, rep.ClientCPU)
	}
	if n, err := r.Verify(ctx, f); err != nil || n != 300 {
		t.Fatalf("verify: %d keys, %v", n, err)
	}
	// Corrupt one record through another node than the leader may be.
	kvs, err := nodes[1].Scan(ctx, []byte(bench.KeyPrefix), nil, flotilla.ScanOptions{Limit: 1})
	if err != nil || len(kvs) != 1 {
		t.Fatalf("scan: %v, %v", kvs, err)
	}
	if err := nodes[1].Put(ctx, kvs[0].Key, []byte("corrupted")); err != nil {
		t.Fatal(err)
	}
	_, err = r.Verify(ctx, f)
	var ve *bench.VerifyError
	if !errors.As(err, &ve) || len(ve.Mismatches) != 1 || ve.Mismatches[0].Key != string(kvs[0].Key) {
		t.Fatalf("verify after corrupting %q: %v", kvs[0].Key, err)
	}
}
