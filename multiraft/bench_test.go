// Copyright 2026 The Flotilla Authors. All rights reserved.

package multiraft_test

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/flotilladb/flotilla/internal/testcluster"
	"github.com/flotilladb/flotilla/internal/testutil"
	"github.com/flotilladb/flotilla/multiraft"
)

// metricsCluster starts a cluster whose hosts each report to their own
// metrics set (kept across restarts).
func metricsCluster(t testing.TB, opts testcluster.Options) (*testcluster.Cluster, map[multiraft.NodeID]*metrics.Set) {
	sets := map[multiraft.NodeID]*metrics.Set{}
	var mu sync.Mutex
	configure := opts.Configure
	opts.Configure = func(cfg *multiraft.Config) {
		if configure != nil {
			configure(cfg)
		}
		mu.Lock()
		defer mu.Unlock()
		if sets[cfg.NodeID] == nil {
			sets[cfg.NodeID] = metrics.NewSet()
		}
		cfg.Metrics = sets[cfg.NodeID]
	}
	return testcluster.New(t, opts), sets
}

// benchCluster starts 3 hosts with a metrics set each.
func benchCluster(b *testing.B, storage testcluster.Storage) (*testcluster.Cluster, map[multiraft.NodeID]*metrics.Set) {
	return metricsCluster(b, testcluster.Options{Nodes: 3, Seed: 1, Storage: storage, TickInterval: multiraft.DefaultTickInterval})
}

func sumCounter(b *testing.B, sets map[multiraft.NodeID]*metrics.Set, name string) float64 {
	var total float64
	for _, s := range sets {
		total += counterValue(b, s, name)
	}
	return total
}

// BenchmarkPropose: 3 hosts in one process on real directories (durable:
// every log write fsyncs), a transport that marshals every batch, 256
// concurrent proposers of 256 B commands spread over the groups, whose
// leaders are spread over the hosts. One op is one applied proposal.
func BenchmarkPropose(b *testing.B) {
	for _, groups := range []int{1, 16, 128} {
		b.Run(fmt.Sprintf("groups=%d", groups), func(b *testing.B) {
			c, sets := benchCluster(b, testcluster.Disk)
			gs := groupRange(groups)
			leaders := make([]*multiraft.Host, len(gs))
			for i, g := range gs {
				c.Bootstrap(g, 1, 2, 3)
				node := multiraft.NodeID(i%3 + 1)
				leadFrom(b, c, g, node)
				leaders[i] = c.Node(node).Host()
			}
			const proposers = 256
			cmd := make([]byte, 256)
			var next atomic.Int64
			fsyncsBefore := sumCounter(b, sets, "flotilla_raft_log_writes_total")
			b.ReportAllocs()
			b.ResetTimer()
			var wg sync.WaitGroup
			var failed atomic.Int64
			for w := range proposers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ctx := context.Background()
					for i := next.Add(1); i <= int64(b.N); i = next.Add(1) {
						k := (int(i) + w) % len(gs)
						if _, err := leaders[k].ProposeAndWait(ctx, gs[k], cmd); err != nil {
							failed.Add(1)
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			if n := failed.Load(); n > int64(b.N)/100 {
				b.Fatalf("%d of %d proposals failed", n, b.N)
			}
			fsyncs := sumCounter(b, sets, "flotilla_raft_log_writes_total") - fsyncsBefore
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "proposals/s")
			b.ReportMetric(fsyncs/float64(b.N)*1000, "fsyncs/1000proposals")
			b.ReportMetric(fsyncs/3/float64(b.N)*1000, "fsyncs/host/1000proposals")
		})
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// BenchmarkIdleGroups: 10,000 groups on 3 hosts (in memory), all
// quiescent. Reports the CPU the idle cluster burns per wall second and its
// heap per group (all three replicas of a group together). One op is 100 ms
// of idling.
func BenchmarkIdleGroups(b *testing.B) {
	const groups = 10000
	heapBefore := heapInUse()
	c, _ := benchCluster(b, testcluster.InMemory)
	for _, g := range groupRange(groups) {
		c.Bootstrap(g, 1, 2, 3)
	}
	testutil.SucceedsWithin(b, 5*time.Minute, func() error {
		for _, id := range c.NodeIDs() {
			if n := c.Node(id).Host().Unquiesced(); n != 0 {
				return fmt.Errorf("node %d: %d groups not quiescent", id, n)
			}
		}
		return nil
	})
	heap := heapInUse() - heapBefore
	cpuBefore, wallBefore := cpuTime(), time.Now()
	b.ResetTimer()
	for range b.N {
		time.Sleep(100 * time.Millisecond) // idling is what is measured
	}
	b.StopTimer()
	cpu, wall := cpuTime()-cpuBefore, time.Since(wallBefore)
	b.ReportMetric(cpu.Seconds()/wall.Seconds(), "cpu-s/s")
	b.ReportMetric(float64(heap)/groups, "heap-B/group")
	for _, id := range c.NodeIDs() {
		if n := c.Node(id).Host().Unquiesced(); n != 0 {
			b.Fatalf("node %d: %d groups woke up while idle", id, n)
		}
	}
}
