// Copyright 2026 The Flotilla Authors. All rights reserved.

package server_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flotilladb/flotilla"
	"github.com/flotilladb/flotilla/internal/testutil"
	"github.com/flotilladb/flotilla/placement"
	"github.com/flotilladb/flotilla/server"
)

// benchCluster starts three nodes on disk (fsync on) in this process, with
// real gRPC on loopback, and waits until the first range has three voters.
func benchCluster(b *testing.B) []*server.Node {
	b.Helper()
	ctx := context.Background()
	n1 := openNode(b, server.Config{Dir: b.TempDir(), Bootstrap: true, HTTPAddr: "off", TickInterval: 100 * time.Millisecond})
	nodes := []*server.Node{n1}
	for range 2 {
		nodes = append(nodes, openNode(b, server.Config{Dir: b.TempDir(), Join: []string{n1.Addr()}, HTTPAddr: "off", TickInterval: 100 * time.Millisecond}))
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
	benchPuts(b, benchCluster(b), func(n uint64) []byte { return fmt.Appendf(nil, "bench/%012d", n) })
}

// benchPuts measures puts of 256-byte values to the keys key(1), key(2), …
// through a client of nodes, by 64 × GOMAXPROCS concurrent callers.
func benchPuts(b *testing.B, nodes []*server.Node, key func(n uint64) []byte) {
	c, err := flotilla.Connect(context.Background(), nodes[0].Addr(), nodes[1].Addr(), nodes[2].Addr())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	value := make([]byte, 256)
	var seq atomic.Uint64
	b.SetParallelism(64)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := context.Background()
		for pb.Next() {
			if err := c.Put(ctx, key(seq.Add(1)), value); err != nil {
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

// BenchmarkClientPutRanges measures durable 3-replica puts of 256-byte
// values spread uniformly over 1, 16 and 64 ranges on 3 in-process nodes
// (the multi-raft gain: more groups, more leaders on more nodes, one log
// writer per node). The cluster starts pre-split and waits until every
// range has three voters and the leaders are balanced.
func BenchmarkClientPutRanges(b *testing.B) {
	for _, ranges := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("ranges=%d", ranges), func(b *testing.B) {
			// A multiplicative hash spreads consecutive numbers over the
			// whole key space.
			benchPuts(b, benchSplitCluster(b, ranges), func(n uint64) []byte {
				return fmt.Appendf(nil, "k%08x", uint32(n*2654435761))
			})
		})
	}
}

// benchSplitCluster starts three nodes on disk whose keyspace ("k" + 8 hex
// digits) is pre-split into ranges equal parts, and waits until every range
// has three voters and every node leads about a third of them.
func benchSplitCluster(b *testing.B, ranges int) []*server.Node {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cfg := func(join ...string) server.Config {
		return server.Config{Dir: b.TempDir(), Join: join, HTTPAddr: "off", TickInterval: 100 * time.Millisecond,
			HeartbeatInterval: 200 * time.Millisecond, LivenessWindow: time.Second, StoreDownTimeout: 10 * time.Second,
			SplitSize: -1, SplitQPS: -1}
	}
	n1 := openNode(b, cfg())
	var splits [][]byte
	for i := 1; i < ranges; i++ {
		splits = append(splits, fmt.Appendf(nil, "k%08x", uint32(uint64(i)<<32/uint64(ranges))))
	}
	if _, err := n1.Init(ctx, splits...); err != nil {
		b.Fatal(err)
	}
	nodes := []*server.Node{n1, openNode(b, cfg(n1.Addr())), openNode(b, cfg(n1.Addr()))}
	for _, n := range nodes {
		if err := n.WaitReady(ctx); err != nil {
			b.Fatal(err)
		}
	}
	pc := placementClient(b, n1)
	testutil.SucceedsWithin(b, 3*time.Minute, func() error {
		rs, err := listRanges(ctx, pc)
		if err != nil {
			return err
		}
		leaders := map[uint64]int{}
		for _, r := range rs {
			if len(r.GetDescriptor_().GetReplicas()) != 3 || r.GetLeader() == nil {
				return fmt.Errorf("range %d not replicated", r.GetDescriptor_().GetRangeId())
			}
			leaders[r.GetLeader().GetStoreId()]++
		}
		if len(rs) != ranges {
			return fmt.Errorf("%d ranges", len(rs))
		}
		for _, n := range nodes {
			if want := ranges / 3; leaders[n.NodeID()] < want {
				return fmt.Errorf("leaders per store %v", leaders)
			}
		}
		return nil
	})
	return nodes
}

// BenchmarkOracle measures revisions handed out to one node by its revision
// oracle client (Node.Revision, one revision per call) under 64 ×
// GOMAXPROCS concurrent callers: on a single-node cluster, and on three
// nodes (on disk, fsync on) through the placement group's leader (in
// process) or a follower (each batch forwarded over gRPC). Every batch
// costs the leader one ReadIndex round on the placement group.
func BenchmarkOracle(b *testing.B) {
	b.Run("nodes=1", func(b *testing.B) {
		n := openNode(b, server.Config{Dir: b.TempDir(), Bootstrap: true, HTTPAddr: "off", TickInterval: 100 * time.Millisecond})
		benchRevisions(b, n)
	})
	for _, on := range []string{"leader", "follower"} {
		b.Run("nodes=3/on="+on, func(b *testing.B) {
			nodes := benchCluster(b)
			testutil.SucceedsWithin(b, time.Minute, func() error {
				if got := placementGroupStores(nodes); len(got) != 3 {
					return fmt.Errorf("placement group on %v", got)
				}
				return nil
			})
			leader := -1
			testutil.SucceedsWithin(b, time.Minute, func() error {
				for i, n := range nodes {
					for _, r := range n.Status(false).GetReplicas() {
						if r.GetGroupId() == uint64(placement.GroupID) && r.GetReplicaId() != 0 && r.GetLeaderReplicaId() == r.GetReplicaId() {
							leader = i
							return nil
						}
					}
				}
				return errors.New("no placement leader")
			})
			n := nodes[leader]
			if on == "follower" {
				n = nodes[(leader+1)%3]
			}
			benchRevisions(b, n)
		})
	}
}

func benchRevisions(b *testing.B, n *server.Node) {
	ctx := context.Background()
	testutil.SucceedsWithin(b, time.Minute, func() error {
		_, err := n.Revision(ctx)
		return err
	})
	// A batch takes the callers that arrived while the previous one was in
	// flight, so throughput grows with the callers until the leader's
	// rounds saturate a core.
	for _, callers := range []int{128, 256, 512} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			batches0 := n.CounterForTest("flotilla_oracle_batches_total")
			revs0 := n.CounterForTest("flotilla_oracle_revisions_total")
			b.SetParallelism(max(1, callers/runtime.GOMAXPROCS(0)))
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := n.Revision(ctx); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "revisions/s")
			// Batches of this node's client during this run.
			if batches := n.CounterForTest("flotilla_oracle_batches_total") - batches0; batches > 0 {
				b.ReportMetric(float64(n.CounterForTest("flotilla_oracle_revisions_total")-revs0)/float64(batches), "revisions/batch")
			}
		})
	}
}
