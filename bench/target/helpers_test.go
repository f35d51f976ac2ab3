// Copyright 2026 The Flotilla Authors. All rights reserved.

package target_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/flotilladb/flotilla/bench"
	"github.com/flotilladb/flotilla/bench/target"
	"github.com/flotilladb/flotilla/internal/testutil"
	"github.com/flotilladb/flotilla/server"
)

// quietLogger discards the nodes' logs unless FLOTILLA_TEST_LOG is set.
func quietLogger() *slog.Logger {
	if os.Getenv("FLOTILLA_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// testNodeConfig is a node's configuration for tests: loopback, free
// ports, a fast tick.
func testNodeConfig(dir string) server.Config {
	return server.Config{Dir: dir, ListenAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0",
		TickInterval: 20 * time.Millisecond, Logger: quietLogger()}
}

// startCluster starts n nodes in this process: the first bootstraps a
// cluster, the others join it. It returns once all are running members.
// The nodes stop when the test ends.
func startCluster(t *testing.T, ctx context.Context, n int) []*server.Node {
	t.Helper()
	var nodes []*server.Node
	for i := range n {
		cfg := testNodeConfig(t.TempDir())
		if i == 0 {
			cfg.Bootstrap = true
		} else {
			cfg.Join = []string{nodes[0].Addr()}
		}
		node, err := server.Open(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = node.Close() })
		nodes = append(nodes, node)
	}
	for _, node := range nodes {
		if err := node.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
	}
	return nodes
}

// roundTrip runs Put, Get and Scan through tgt on keys under prefix and
// checks what they return, and that bad input is classed invalid.
func roundTrip(t *testing.T, ctx context.Context, tgt bench.Target, prefix string) {
	t.Helper()
	const n = 10
	for i := range n {
		if err := tgt.Put(ctx, fmt.Appendf(nil, "%s%02d", prefix, i), fmt.Appendf(nil, "v%d", i)); err != nil {
			t.Fatalf("put %d: %v", i, err)
		}
	}
	if v, found, err := tgt.Get(ctx, []byte(prefix+"05")); err != nil || !found || string(v) != "v5" {
		t.Fatalf("get: %q %v %v", v, found, err)
	}
	if v, found, err := tgt.Get(ctx, []byte(prefix+"missing")); err != nil || found || v != nil {
		t.Fatalf("get of a missing key: %q %v %v", v, found, err)
	}
	if err := tgt.Put(ctx, []byte(prefix+"empty"), nil); err != nil {
		t.Fatal(err)
	}
	if v, found, err := tgt.Get(ctx, []byte(prefix+"empty")); err != nil || !found || v == nil || len(v) != 0 {
		t.Fatalf("get of an empty value: %q %v %v", v, found, err)
	}
	for _, tc := range []struct {
		start      string
		limit, out int
	}{
		{prefix, 5, 5},
		{prefix + "07", 3, 3}, // 07, 08, 09
		{prefix, 0, 0},
		{prefix, 2 * n, n + 1}, // and "empty"
	} {
		if got, err := tgt.Scan(ctx, []byte(tc.start), tc.limit); err != nil || got != tc.out {
			t.Errorf("scan from %q, limit %d: %d, %v; want %d", tc.start, tc.limit, got, err, tc.out)
		}
	}
	classifier, ok := tgt.(bench.ErrorClassifier)
	if !ok {
		t.Fatalf("%T is not a bench.ErrorClassifier", tgt)
	}
	if _, err := tgt.Scan(ctx, []byte(prefix), -1); classifier.ClassifyError(err) != target.ClassInvalid {
		t.Errorf("scan with a negative limit: %v, class %q", err, classifier.ClassifyError(err))
	}
	if err := tgt.Put(ctx, nil, []byte("v")); classifier.ClassifyError(err) != target.ClassInvalid {
		t.Errorf("put of an empty key: %v, class %q", err, classifier.ClassifyError(err))
	}
	// An operation past its deadline is a timeout, one canceled is
	// canceled, whatever else the store says.
	past, cancel := context.WithDeadline(ctx, time.Now().Add(-time.Second))
	defer cancel()
	if _, _, err := tgt.Get(past, []byte(prefix+"01")); classifier.ClassifyError(err) != target.ClassTimeout {
		t.Errorf("get past its deadline: %v, class %q", err, classifier.ClassifyError(err))
	}
	if err := tgt.Put(past, []byte(prefix+"01"), []byte("x")); classifier.ClassifyError(err) != target.ClassTimeout {
		t.Errorf("put past its deadline: %v, class %q", err, classifier.ClassifyError(err))
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, _, err := tgt.Get(canceled, []byte(prefix+"01")); classifier.ClassifyError(err) != target.ClassCanceled {
		t.Errorf("canceled get: %v, class %q", err, classifier.ClassifyError(err))
	}
}

// cpuGrows checks that ServerCPUSeconds is positive and grows while the
// target works, within d.
func cpuGrows(t *testing.T, ctx context.Context, tgt bench.Target, d time.Duration) {
	t.Helper()
	cpu, ok := tgt.(bench.ServerCPU)
	if !ok {
		t.Fatalf("%T is not a bench.ServerCPU", tgt)
	}
	before, err := cpu.ServerCPUSeconds(ctx)
	if err != nil || before <= 0 {
		t.Fatalf("ServerCPUSeconds: %v, %v; want > 0", before, err)
	}
	// The counter moves in clock ticks (10 ms): work until it does.
	deadline := time.Now().Add(d)
	for i := 0; ; i++ {
		for j := range 50 {
			if err := tgt.Put(ctx, fmt.Appendf(nil, "cpu%d-%d", i, j), make([]byte, 1024)); err != nil {
				t.Fatal(err)
			}
		}
		after, err := cpu.ServerCPUSeconds(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if after > before {
			t.Logf("server CPU: %.2f s, then %.2f s", before, after)
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("server CPU stayed at %v s for %v of work", before, d)
		}
	}
}

// closeTwice closes tgt twice: both must succeed.
func closeTwice(t *testing.T, tgt bench.Target) {
	t.Helper()
	if err := tgt.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	if err := tgt.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
}

// pollDescribe polls Describe until check accepts it, for up to d, and
// returns what it accepted.
func pollDescribe(t *testing.T, ctx context.Context, tgt bench.Describer, d time.Duration, check func(map[string]any) error) map[string]any {
	t.Helper()
	var desc map[string]any
	testutil.SucceedsWithin(t, d, func() error {
		desc = tgt.Describe(ctx)
		if err := check(desc); err != nil {
			return fmt.Errorf("Describe: %v: %w", desc, err)
		}
		return nil
	})
	return desc
}
