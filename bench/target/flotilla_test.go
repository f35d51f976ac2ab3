// Copyright 2026 The Flotilla Authors. All rights reserved.

package target_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flotilladb/flotilla/bench/target"
	"github.com/flotilladb/flotilla/server"
)

// TestFlotillaCluster runs the Target operations against a 3-node cluster
// in this process, reads its nodes' CPU, and describes it.
func TestFlotillaCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	nodes := startCluster(t, ctx, 3)
	var addrs, httpAddrs []string
	for _, n := range nodes {
		addrs = append(addrs, n.Addr())
		httpAddrs = append(httpAddrs, n.HTTPAddr())
	}
	f, err := target.NewFlotilla(ctx, addrs, target.FlotillaOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	roundTrip(t, ctx, f, "k")

	// The cluster lists a node once it has joined: wait for all three.
	desc := pollDescribe(t, ctx, f, time.Minute, func(d map[string]any) error {
		if d["nodes"] != 3 {
			return fmt.Errorf("nodes %v, want 3", d["nodes"])
		}
		if r, ok := d["ranges"].(int); !ok || r < 1 {
			return fmt.Errorf("ranges %v, want at least 1", d["ranges"])
		}
		return nil
	})
	if desc["kind"] != "flotilla" || desc["fsync"] != true || desc["version"] != server.Version || desc["describe_error"] != nil {
		t.Errorf("Describe: %v", desc)
	}
	// The three nodes share this process: each reports all of its CPU.
	cpuGrows(t, ctx, f, 30*time.Second)

	// With the HTTP addresses given, and one of them wrong.
	withAddrs, err := target.NewFlotilla(ctx, addrs[:1], target.FlotillaOptions{HTTPAddrs: httpAddrs, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer withAddrs.Close()
	if desc := withAddrs.Describe(ctx); desc["fsync"] != false {
		t.Errorf("Describe with NoSync: %v", desc)
	}
	cpuGrows(t, ctx, withAddrs, 30*time.Second)
	closeTwice(t, withAddrs)
	dead := freeAddr(t)
	wrong, err := target.NewFlotilla(ctx, addrs, target.FlotillaOptions{HTTPAddrs: append(httpAddrs[:2:2], dead)})
	if err != nil {
		t.Fatal(err)
	}
	defer wrong.Close()
	if v, err := wrong.ServerCPUSeconds(ctx); err == nil || !strings.Contains(err.Error(), dead) {
		t.Errorf("CPU with a node's page unreadable: %v, %v; want an error naming %s", v, err, dead)
	}
	closeTwice(t, wrong)
	closeTwice(t, f)
}

// TestFlotillaRefuses checks that NewFlotilla fails without endpoints, with
// bad options, and when no endpoint answers.
func TestFlotillaRefuses(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := target.NewFlotilla(ctx, nil, target.FlotillaOptions{}); err == nil {
		t.Error("no endpoints: want an error")
	}
	if _, err := target.NewFlotilla(ctx, []string{"127.0.0.1:1"}, target.FlotillaOptions{HTTPAddrs: []string{"nonsense"}, RequestTimeout: -1}); err == nil ||
		!strings.Contains(err.Error(), "nonsense") || !strings.Contains(err.Error(), "RequestTimeout") {
		t.Errorf("bad options: %v; want both problems reported", err)
	}
	dctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	dead := freeAddr(t)
	if _, err := target.NewFlotilla(dctx, []string{dead}, target.FlotillaOptions{}); err == nil || !strings.Contains(err.Error(), dead) {
		t.Errorf("nothing listening: %v; want an error naming %s", err, dead)
	}
}
