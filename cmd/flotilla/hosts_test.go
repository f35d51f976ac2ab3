// Copyright 2026 The Flotilla Authors. All rights reserved.

package main

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/flotilladb/flotilla/internal/testutil"
	"github.com/flotilladb/flotilla/server"
)

// TestHostLists: the kv and cluster commands take a list of nodes in
// --host, use the first that answers, and when none can be reached fail
// within --dial-timeout naming each node's cause.
func TestHostLists(t *testing.T) {
	n, err := server.Open(context.Background(), server.Config{
		Dir: t.TempDir(), ListenAddr: "127.0.0.1:0", HTTPAddr: "off", Bootstrap: true,
		TickInterval: 20 * time.Millisecond, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := n.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	down1, down2 := freeAddr(t), freeAddr(t)
	both := down1 + "," + n.Addr()

	testutil.SucceedsSoon(t, func() error {
		_, err := run(t, "kv", "put", "--host", both, "k", "v")
		return err
	})
	if out, err := run(t, "kv", "get", "--host", both, "k"); err != nil || out != "v\n" {
		t.Errorf("kv get --host %s = %q, %v", both, out, err)
	}
	testutil.SucceedsSoon(t, func() error {
		out, err := run(t, "cluster", "status", "--host", both, "--format", "json")
		if err == nil && !strings.Contains(out, `"store_id": 1`) {
			t.Fatalf("cluster status --host %s printed %q", both, out)
		}
		return err
	})
	if out, err := run(t, "cluster", "ranges", "--host", " "+n.Addr()+" , ", "--format", "json"); err != nil || !strings.Contains(out, `"range_id"`) {
		t.Errorf("cluster ranges with spaces and a trailing comma in --host: %q, %v", out, err)
	}

	for _, args := range [][]string{
		{"cluster", "status"},
		{"kv", "get", "k"},
	} {
		args = append(args, "--host", down1+","+down2, "--dial-timeout", "200ms", "--timeout", "1m")
		start := time.Now()
		_, err := run(t, args...)
		if err == nil {
			t.Fatalf("flotilla %s: no error", strings.Join(args, " "))
		}
		msg := err.Error()
		if !strings.Contains(msg, down1) || !strings.Contains(msg, down2) || strings.Count(msg, "connection refused") < 2 {
			t.Errorf("flotilla %s: %q does not give each node's cause", strings.Join(args, " "), msg)
		}
		if took := time.Since(start); took > 20*time.Second {
			t.Errorf("flotilla %s took %v: the dial timeout did not end it", strings.Join(args, " "), took)
		}
	}
	for _, host := range []string{"nonsense", "", ",", "a:1,b"} {
		for _, cmd := range [][]string{{"cluster", "status"}, {"kv", "get", "k"}} {
			args := append(cmd, "--host", host)
			if _, err := run(t, args...); err == nil || !strings.Contains(err.Error(), "--host") {
				t.Errorf("flotilla %s: %v, want an error about --host", strings.Join(args, " "), err)
			}
		}
	}
}
