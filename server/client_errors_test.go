// Copyright 2026 The Flotilla Authors. All rights reserved.

package server_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/flotilladb/flotilla"
	"github.com/flotilladb/flotilla/internal/testutil"
	"github.com/flotilladb/flotilla/server"
)

// checkErr fails unless err came from the caller's context ending the
// request (errors.Is(err, ctxErr)), names a write's outcome once and a
// read's never.
func checkErr(t *testing.T, what string, err, ctxErr error, write bool) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error", what)
	}
	if !errors.Is(err, ctxErr) {
		t.Errorf("%s: %v does not match %v", what, err, ctxErr)
	}
	msg := err.Error()
	n := strings.Count(msg, "not applied") + strings.Count(msg, "outcome unknown")
	if write && (n != 1 || !(errors.Is(err, flotilla.ErrNotApplied) || errors.Is(err, flotilla.ErrOutcomeUnknown))) {
		t.Errorf("%s: a write's error must tell its outcome once: %q", what, msg)
	}
	if !write && (n != 0 || errors.Is(err, flotilla.ErrNotApplied) || errors.Is(err, flotilla.ErrOutcomeUnknown)) {
		t.Errorf("%s: a read's error has a write outcome: %q", what, msg)
	}
}

// TestRequestErrorsWithoutQuorum: with two of three nodes down, requests
// through a client and through the surviving embedded node end with the
// caller's context. Their errors match the context's error with errors.Is,
// tell a write's outcome once (unknown: the write was proposed and may yet
// commit) and a read's never.
func TestRequestErrorsWithoutQuorum(t *testing.T) {
	c := startLZCluster(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl := c.connect(0, 1, 2)
	if err := cl.Put(ctx, []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	survivor := c.leader(0, 1, 2)
	if survivor < 0 {
		survivor = 0
	}
	for i := range lzNodes {
		if i != survivor {
			if err := c.stop(i); err != nil {
				t.Fatal(err)
			}
		}
	}
	kvs := map[string]flotilla.KV{"client": cl, "embedded node": c.node(survivor)}
	for name, kv := range kvs {
		dctx, dcancel := context.WithTimeout(ctx, time.Second)
		err := kv.Put(dctx, []byte("k"), []byte("v2"))
		dcancel()
		checkErr(t, name+" put past its deadline", err, context.DeadlineExceeded, true)
		t.Logf("%s put: %v", name, err)

		dctx, dcancel = context.WithTimeout(ctx, time.Second)
		_, err = kv.Get(dctx, []byte("k"))
		dcancel()
		checkErr(t, name+" get past its deadline", err, context.DeadlineExceeded, false)
		t.Logf("%s get: %v", name, err)

		cctx, ccancel := context.WithCancel(ctx)
		time.AfterFunc(300*time.Millisecond, ccancel)
		_, err = kv.CompareAndSwap(cctx, []byte("k"), flotilla.ExpectValue([]byte("v")), []byte("v3"))
		checkErr(t, name+" cas canceled", err, context.Canceled, true)
		ccancel()

		cctx, ccancel = context.WithCancel(ctx)
		time.AfterFunc(300*time.Millisecond, ccancel)
		_, err = kv.Scan(cctx, nil, nil, flotilla.ScanOptions{})
		checkErr(t, name+" scan canceled", err, context.Canceled, false)
		ccancel()
	}
}

// clientOfClosedNode opens a single-node cluster with cfg, makes a client
// with dialTimeout write k=v through it (so that the client knows where k
// lives), closes the node and returns the client (closed with the test).
func clientOfClosedNode(t *testing.T, ctx context.Context, cfg server.Config, dialTimeout time.Duration) *flotilla.Client {
	t.Helper()
	n := openNode(t, cfg)
	if err := n.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	cl, err := flotilla.New(flotilla.Config{Endpoints: []string{n.Addr()}, DialTimeout: dialTimeout})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	testutil.SucceedsSoon(t, func() error { return cl.Put(ctx, []byte("k"), []byte("v")) })
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	return cl
}

// TestDialTimeoutAfterRouting: a client that knows where a key lives, whose
// every node then goes away, fails its next request within its dial
// timeout (with the dial errors), not at the request's deadline.
func TestDialTimeoutAfterRouting(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl := clientOfClosedNode(t, ctx, server.Config{Dir: t.TempDir(), Bootstrap: true}, 300*time.Millisecond)
	// A request right after the close may still find the client's
	// connection looking ready: gRPC then fails the attempt without
	// sending it but cannot say so (a write's outcome is unknown), and a
	// read retries, finds the node unreachable and gives up within the
	// dial timeout, which this read checks; after it the client knows.
	start := time.Now()
	if _, err := cl.Get(ctx, []byte("k")); !errors.Is(err, flotilla.ErrUnavailable) {
		t.Fatalf("first get after the node closed: %v, want unavailable", err)
	}
	if took := time.Since(start); took > 8*time.Second {
		t.Errorf("first get after the node closed took %v with a dial timeout of 300ms", took)
	}
	for _, op := range []struct {
		name  string
		write bool
		do    func() error
	}{
		{"put", true, func() error { return cl.Put(ctx, []byte("k"), []byte("v2")) }},
		{"get", false, func() error { _, err := cl.Get(ctx, []byte("k")); return err }},
		{"scan", false, func() error { _, err := cl.Scan(ctx, nil, nil, flotilla.ScanOptions{}); return err }},
	} {
		start := time.Now()
		err := op.do()
		took := time.Since(start)
		if !errors.Is(err, flotilla.ErrUnavailable) || !strings.Contains(err.Error(), "connection refused") || !strings.Contains(err.Error(), "dial timeout") {
			t.Errorf("%s after the node closed: %v, want unavailable with the dial error", op.name, err)
		}
		if op.write && !errors.Is(err, flotilla.ErrNotApplied) {
			t.Errorf("%s: %v: never sent, so certainly not applied", op.name, err)
		}
		// The deadline is a minute away, the default request timeout 10 s.
		if took > 8*time.Second {
			t.Errorf("%s took %v with a dial timeout of 300ms", op.name, took)
		}
	}
}

// TestDialTimeoutNodeBack: a request that starts while its only node is
// down, which comes back within the dial timeout, succeeds: the client
// notices the node is back (its own dial succeeds) without waiting out
// gRPC's reconnection backoff, and does not give up on a stale failure.
func TestDialTimeoutNodeBack(t *testing.T) {
	dir := t.TempDir()
	cfg := server.Config{Dir: dir, Bootstrap: true, ListenAddr: testutil.FreeAddr(t)}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl := clientOfClosedNode(t, ctx, cfg, 2*time.Second)
	// Fail a few requests so that gRPC backs off from the node.
	for range 3 {
		fctx, fcancel := context.WithTimeout(ctx, 100*time.Millisecond)
		_, _ = cl.Get(fctx, []byte("k"))
		fcancel()
	}
	back := make(chan *server.Node, 1)
	time.AfterFunc(time.Second, func() {
		n, err := server.Open(context.Background(), server.Config{Dir: dir, ListenAddr: cfg.ListenAddr, HTTPAddr: "off",
			TickInterval: 20 * time.Millisecond, Logger: quietLogger()})
		if err != nil {
			t.Error(err)
		}
		back <- n
	})
	defer func() {
		if n := <-back; n != nil {
			_ = n.Close()
		}
	}()
	v, err := cl.Get(ctx, []byte("k"))
	if err != nil || string(v) != "v" {
		t.Fatalf("get while the node comes back: %q, %v", v, err)
	}
}
