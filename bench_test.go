// Copyright 2026 The Flotilla Authors. All rights reserved.

package flotilla_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flotilladb/flotilla"
	"github.com/flotilladb/flotilla/internal/testutil"
	"github.com/flotilladb/flotilla/placement"
)

// benchCluster starts three nodes on disk (fsync on) in this process, with
// real gRPC on loopback, and waits until the first range has three voters.
func benchCluster(b *testing.B) []*flotilla.Node {
	b.Helper()
	ctx := context.Background()
	n1 := openNode(b, flotilla.Config{Dir: b.TempDir(), Bootstrap: true, HTTPAddr: "off", TickInterval: 100 * time.Millisecond})
	nodes := []*flotilla.Node{n1}
	for range 2 {
		nodes = append(nodes, openNode(b, flotilla.Config{Dir: b.TempDir(), Join: []string{n1.Addr()}, HTTPAddr: "off", TickInterval: 100 * time.Millisecond}))
	}
	for _, n := range nodes {
		if err := n.WaitReady(ctx); err != nil {
			b.Fatal(err)
		}
	}
	testutil.SucceedsWithin(b, time.Minute, func() error {
		for _, n := range nodes {
			ok := false
			for _, r := range n.Status(false).GetReplicas() {
				if r.GetGroupId() == uint64(placement.FirstRangeID) && len(r.GetDescriptor_().GetReplicas()) == 3 && r.GetAppliedIndex() == r.GetCommitIndex() {
					ok = true
				}
			}
			if !ok {
				return fmt.Errorf("node %d not replicated yet", n.NodeID())
			}
		}
		return nil
	})
	return nodes
}

// BenchmarkClientPut measures durable 3-replica puts of 256-byte values
// through the Go client (gRPC) with many concurrent callers
// (-cpu sets GOMAXPROCS; callers = 64 × GOMAXPROCS via SetParallelism).
func BenchmarkClientPut(b *testing.B) {
	nodes := benchCluster(b)
	addrs := []string{nodes[0].Addr(), nodes[1].Addr(), nodes[2].Addr()}
	c, err := flotilla.Connect(context.Background(), addrs...)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	value := make([]byte, 256)
	var seq atomic.Int64
	b.SetParallelism(64)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			key := fmt.Appendf(nil, "bench/%012d", seq.Add(1))
			if err := c.Put(ctx, key, value); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "puts/s")
}

// BenchmarkClientGet measures linearizable reads (ReadIndex) through the Go
// client.
func BenchmarkClientGet(b *testing.B) {
	nodes := benchCluster(b)
	c, err := flotilla.Connect(context.Background(), nodes[0].Addr(), nodes[1].Addr(), nodes[2].Addr())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	for i := range 1000 {
		if err := c.Put(ctx, fmt.Appendf(nil, "bench/%04d", i), make([]byte, 256)); err != nil {
			b.Fatal(err)
		}
	}
	var seq atomic.Int64
	b.SetParallelism(64)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Get(ctx, fmt.Appendf(nil, "bench/%04d", seq.Add(1)%1000)); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "gets/s")
}
