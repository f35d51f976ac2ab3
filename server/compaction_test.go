// Copyright 2026 The Flotilla Authors. All rights reserved.

package server_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flotilladb/flotilla/internal/testutil"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"github.com/flotilladb/flotilla/server"
)

// compactionNode starts a single-node cluster with automatic compaction
// configured by configure, checked every interval.
func compactionNode(t *testing.T, ctx context.Context, interval time.Duration, configure func(*server.Config)) (*server.Node, flotillapb.KVClient) {
	t.Helper()
	cfg := server.Config{Dir: t.TempDir(), Bootstrap: true, HTTPAddr: "off",
		Testing: &server.TestingKnobs{DisableSync: true, CompactionInterval: interval}}
	configure(&cfg)
	n := openNode(t, cfg)
	if err := n.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	return n, kvClient(t, ctx, n)
}

// putRevisions puts key count times and returns the writes' revisions.
func putRevisions(t *testing.T, ctx context.Context, kv flotillapb.KVClient, key string, count int) []int64 {
	t.Helper()
	var revs []int64
	for i := range count {
		var resp *flotillapb.PutResponse
		testutil.SucceedsSoon(t, func() error {
			var err error
			resp, err = kv.Put(ctx, &flotillapb.PutRequest{Key: []byte(key), Value: fmt.Appendf(nil, "v%d", i)})
			return err
		})
		revs = append(revs, resp.GetHeader().GetRevision())
	}
	return revs
}

// readAt reads key at rev: its value, or the compacted revision if the
// read was refused as compacted, or an error.
func readAt(ctx context.Context, kv flotillapb.KVClient, key string, rev int64) (value string, compacted int64, err error) {
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	g, err := kv.Get(rctx, &flotillapb.GetRequest{Key: []byte(key), Revision: rev})
	if err == nil {
		return string(g.GetValue()), 0, nil
	}
	if c := pbErr(err, false).GetCompacted(); c != nil {
		return "", c.GetCompactRevision(), nil
	}
	return "", 0, err
}

// awaitCompacted polls until a read at rev is refused as compacted and
// returns the compacted revision then.
func awaitCompacted(t *testing.T, ctx context.Context, kv flotillapb.KVClient, key string, rev int64) int64 {
	t.Helper()
	var compacted int64
	testutil.SucceedsWithin(t, 30*time.Second, func() error {
		_, c, err := readAt(ctx, kv, key, rev)
		if err != nil {
			t.Fatalf("read at %d: %v", rev, err)
		}
		if c == 0 {
			return fmt.Errorf("revision %d is not compacted yet", rev)
		}
		compacted = c
		return nil
	})
	return compacted
}

func currentRevision(t *testing.T, ctx context.Context, kv flotillapb.KVClient) int64 {
	t.Helper()
	g, err := kv.Get(ctx, &flotillapb.GetRequest{Key: []byte("any")})
	if err != nil {
		t.Fatal(err)
	}
	return g.GetHeader().GetRevision()
}

// TestAutoCompactionRevision: in revision mode the placement leader
// compacts every range at the current revision minus the revisions kept:
// reads below it fail with Compacted (naming a revision at most current −
// kept), reads at the current revision and above the compaction serve.
func TestAutoCompactionRevision(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const kept = 30
	n, kv := compactionNode(t, ctx, 20*time.Millisecond, func(c *server.Config) {
		c.AutoCompactionMode, c.AutoCompactionRevisions = server.CompactionRevision, kept
	})
	revs := putRevisions(t, ctx, kv, "k", 2*kept)
	compacted := awaitCompacted(t, ctx, kv, "k", revs[0])
	cur := currentRevision(t, ctx, kv)
	if compacted > cur-kept {
		t.Fatalf("compacted at %d, the current revision is %d: more than the last %d revisions are gone", compacted, cur, kept)
	}
	if v, c, err := readAt(ctx, kv, "k", cur); err != nil || c != 0 || v != fmt.Sprintf("v%d", len(revs)-1) {
		t.Fatalf("read at the current revision %d: %q, compacted %d, %v", cur, v, c, err)
	}
	// Compaction goes on (each interval's own oracle call is a revision):
	// a read at the compacted revision serves, or finds it compacted
	// further; below it, it never serves again.
	if v, c, err := readAt(ctx, kv, "k", compacted); err != nil || c == 0 && v == "" || c != 0 && c <= compacted {
		t.Fatalf("read at the compacted revision %d: %q, compacted %d, %v", compacted, v, c, err)
	}
	if v, c, err := readAt(ctx, kv, "k", compacted-1); err != nil || c < compacted {
		t.Fatalf("read just below the compacted revision %d: %q, compacted %d, %v", compacted, v, c, err)
	}
	if n.CounterForTest("flotilla_compactions_total") == 0 {
		t.Fatal("no compaction counted")
	}
}

// TestAutoCompactionPeriodic: in periodic mode the placement leader
// compacts at the revision of at least the retention ago: old revisions
// become unreadable, a write read back at once at its revision never is.
func TestAutoCompactionPeriodic(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const retention = 300 * time.Millisecond
	_, kv := compactionNode(t, ctx, 20*time.Millisecond, func(c *server.Config) {
		c.AutoCompactionMode, c.AutoCompactionRetention = server.CompactionPeriodic, retention
	})
	revs := putRevisions(t, ctx, kv, "k", 10)
	// Until the first revision is compacted, and for some rounds after,
	// every fresh write is readable at its revision: compaction keeps the
	// retention's history.
	first := int64(0)
	deadline := time.Now().Add(30 * time.Second)
	for round := 0; ; round++ {
		if time.Now().After(deadline) {
			t.Fatalf("revision %d not compacted within 30s (retention %v)", revs[0], retention)
		}
		w := putRevisions(t, ctx, kv, "w", 1)[0]
		if v, c, err := readAt(ctx, kv, "w", w); err != nil || c != 0 || v != "v0" {
			t.Fatalf("read of a fresh write at its revision %d: %q, compacted %d, %v", w, v, c, err)
		}
		_, c, err := readAt(ctx, kv, "k", revs[0])
		if err != nil {
			t.Fatal(err)
		}
		if c != 0 && first == 0 {
			first = c
			t.Logf("revision %d compacted (at %d) after %d rounds", revs[0], c, round)
		}
		if first != 0 && round >= 20 {
			break
		}
	}
}

// TestAutoCompactionOff: with automatic compaction off, nothing is
// compacted however many intervals pass.
func TestAutoCompactionOff(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const interval = 10 * time.Millisecond
	n, kv := compactionNode(t, ctx, interval, func(c *server.Config) {
		c.AutoCompactionMode, c.AutoCompactionRevisions, c.AutoCompactionRetention = server.CompactionOff, 1, time.Millisecond
	})
	revs := putRevisions(t, ctx, kv, "k", 20)
	// Fifty intervals, reading the oldest revision throughout: a
	// compaction would refuse it.
	end := time.Now().Add(50 * interval)
	for reads := 0; time.Now().Before(end) || reads < 10; reads++ {
		if v, c, err := readAt(ctx, kv, "k", revs[0]); err != nil || c != 0 || v != "v0" {
			t.Fatalf("read at the first revision %d with compaction off: %q, compacted %d, %v", revs[0], v, c, err)
		}
	}
	if got := n.CounterForTest("flotilla_compactions_total"); got != 0 {
		t.Fatalf("%d compactions with compaction off", got)
	}
}

// TestAutoCompactionConfig: a bad mode and negative retention or
// revisions are refused together, by Validate and by Open.
func TestAutoCompactionConfig(t *testing.T) {
	cfg := server.Config{Dir: t.TempDir(), AutoCompactionMode: "weekly", AutoCompactionRetention: -time.Second,
		AutoCompactionRevisions: -1, MaxTxnOps: -1}
	cfg.EnsureDefaults()
	err := cfg.Validate()
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{`AutoCompactionMode "weekly"`, "AutoCompactionRetention -1s", "AutoCompactionRevisions -1", "MaxTxnOps -1"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	if _, err := server.Open(context.Background(), server.Config{Dir: t.TempDir(), AutoCompactionMode: "Revision"}); err == nil ||
		!strings.Contains(err.Error(), "AutoCompactionMode") {
		t.Fatalf("Open with a bad mode: %v", err)
	}
	// Unset: periodic, keeping an hour (10000 revisions in revision mode).
	cfg = server.Config{Dir: t.TempDir()}
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil || cfg.AutoCompactionMode != server.CompactionPeriodic ||
		cfg.AutoCompactionRetention != time.Hour || cfg.AutoCompactionRevisions != 10000 {
		t.Fatalf("defaults: mode %q retention %v revisions %d, %v", cfg.AutoCompactionMode, cfg.AutoCompactionRetention,
			cfg.AutoCompactionRevisions, err)
	}
}
