// Copyright 2026 The Flotilla Authors. All rights reserved.

package target_test

import (
	"context"
	"testing"
	"time"

	"github.com/flotilladb/flotilla/bench"
	"github.com/flotilladb/flotilla/bench/target"
	"github.com/flotilladb/flotilla/server"
)

// TestEmbedded opens a node in this process, runs the Target operations
// through it, and reopens it over the same directory.
func TestEmbedded(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	opts := target.EmbeddedOptions{Node: server.Config{TickInterval: 20 * time.Millisecond, Logger: quietLogger()}}
	e, err := target.NewEmbedded(ctx, dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if _, ok := bench.Target(e).(bench.ServerCPU); ok {
		t.Error("Embedded implements bench.ServerCPU: its server's CPU is the client's too")
	}
	if e.Node().HTTPAddr() != "" {
		t.Errorf("HTTP is on at %s; want it off by default", e.Node().HTTPAddr())
	}
	roundTrip(t, ctx, e, "k")
	desc := e.Describe(ctx)
	if desc["kind"] != "flotilla-embedded" || desc["nodes"] != 1 || desc["fsync"] != true ||
		desc["version"] != server.Version || desc["dir"] != dir {
		t.Errorf("Describe: %v", desc)
	}
	if r, ok := desc["ranges"].(int); !ok || r < 1 {
		t.Errorf("Describe: ranges %v; want at least 1", desc["ranges"])
	}
	closeTwice(t, e)
	if _, _, err := e.Get(ctx, []byte("k01")); err == nil {
		t.Error("get after close succeeded")
	}

	// The store keeps its data across a reopen.
	e, err = target.NewEmbedded(ctx, dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if v, found, err := e.Get(ctx, []byte("k03")); err != nil || !found || string(v) != "v3" {
		t.Fatalf("get after reopening: %q %v %v", v, found, err)
	}
	closeTwice(t, e)
}

func TestEmbeddedOptions(t *testing.T) {
	ctx := context.Background()
	if _, err := target.NewEmbedded(ctx, "", target.EmbeddedOptions{}); err == nil {
		t.Error("no directory: want an error")
	}
	if _, err := target.NewEmbedded(ctx, t.TempDir(), target.EmbeddedOptions{RequestTimeout: -1}); err == nil {
		t.Error("negative RequestTimeout: want an error")
	}
	if _, err := target.NewEmbedded(ctx, t.TempDir(), target.EmbeddedOptions{Node: server.Config{ListenAddr: "nonsense"}}); err == nil {
		t.Error("bad ListenAddr: want an error")
	}
}
