// Copyright 2026 The Flotilla Authors. All rights reserved.

package server_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/flotilladb/flotilla"
	"github.com/flotilladb/flotilla/internal/testutil"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"github.com/flotilladb/flotilla/server"
)

// startSplitCluster starts 3 in-process nodes with fast placement timings,
// adjusted by configure, and waits for the first range to have 3 voters.
func startSplitCluster(t *testing.T, ctx context.Context, configure func(*server.Config)) []*server.Node {
	t.Helper()
	cfg := placementConfig(t.TempDir())
	configure(&cfg)
	n1 := openNode(t, cfg)
	if _, err := n1.Init(ctx); err != nil {
		t.Fatal(err)
	}
	nodes := []*server.Node{n1}
	for range 2 {
		cfg := placementConfig(t.TempDir(), n1.Addr())
		configure(&cfg)
		nodes = append(nodes, openNode(t, cfg))
	}
	for _, n := range nodes {
		if err := n.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
	}
	pc := placementClient(t, n1)
	testutil.SucceedsWithin(t, time.Minute, func() error {
		v, _, leader, err := rangeStores(ctx, pc, 2)
		if err != nil {
			return err
		}
		if len(v) != 3 || leader == 0 {
			return fmt.Errorf("range 2: voters %v leader %d", v, leader)
		}
		return nil
	})
	return nodes
}

// listRanges returns the placement driver's ranges.
func listRanges(ctx context.Context, pc flotillapb.PlacementClient) ([]*flotillapb.RangeStatus, error) {
	resp, err := pc.ListRanges(ctx, &flotillapb.ListRangesRequest{})
	if err != nil {
		return nil, err
	}
	return resp.GetRanges(), nil
}

// checkRangesCover fails unless ranges tile the keyspace in order.
func checkRangesCover(ranges []*flotillapb.RangeStatus) error {
	var end []byte
	for i, r := range ranges {
		d := r.GetDescriptor_()
		if !bytes.Equal(d.GetStartKey(), end) {
			return fmt.Errorf("range %d starts at %q, the previous ends at %q", d.GetRangeId(), d.GetStartKey(), end)
		}
		end = d.GetEndKey()
		if len(end) == 0 && i != len(ranges)-1 {
			return fmt.Errorf("range %d ends the keyspace but is not last", d.GetRangeId())
		}
	}
	if len(end) != 0 {
		return fmt.Errorf("the last range ends at %q", end)
	}
	return nil
}

// replicasAgree checks every node's ranges: no two overlap on a node, and
// all replicas of a range at the same applied index report the same data
// hash. It returns an error while replicas differ in applied index.
func replicasAgree(nodes []*server.Node) error {
	type seen struct {
		index uint64
		hash  string
		node  uint64
	}
	byRange := map[uint64][]seen{}
	for _, n := range nodes {
		var descs []*flotillapb.RangeDescriptor
		for _, r := range n.Status(true).GetReplicas() {
			if r.GetKind() != "range" || r.GetDescriptor_() == nil {
				continue
			}
			descs = append(descs, r.GetDescriptor_())
			byRange[r.GetGroupId()] = append(byRange[r.GetGroupId()], seen{r.GetHashAppliedIndex(), r.GetDataHash(), n.NodeID()})
		}
		slices.SortFunc(descs, func(a, b *flotillapb.RangeDescriptor) int { return bytes.Compare(a.GetStartKey(), b.GetStartKey()) })
		for i := 1; i < len(descs); i++ {
			if a := descs[i-1]; len(a.GetEndKey()) == 0 || bytes.Compare(a.GetEndKey(), descs[i].GetStartKey()) > 0 {
				return fmt.Errorf("node %d holds overlapping ranges %v and %v", n.NodeID(), a, descs[i])
			}
		}
	}
	for id, ss := range byRange {
		for _, s := range ss[1:] {
			if s.index != ss[0].index {
				return fmt.Errorf("range %d: node %d at %d, node %d at %d", id, s.node, s.index, ss[0].node, ss[0].index)
			}
			if s.hash != ss[0].hash {
				return fmt.Errorf("range %d at index %d: node %d and node %d hash differently", id, s.index, s.node, ss[0].node)
			}
		}
	}
	return nil
}

// TestSplitsInProcess: an admin split, then automatic splits by size under
// writes, on 3 in-process nodes: the ranges tile the keyspace, every
// acknowledged write reads back, and each range's replicas agree.
func TestSplitsInProcess(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	nodes := startSplitCluster(t, ctx, func(c *server.Config) {
		c.SplitSize = 16 << 10
		c.SplitQPS = -1
	})
	pc := placementClient(t, nodes[0])

	// An admin split; asking again for the same key is refused.
	if _, err := pc.SplitRange(ctx, &flotillapb.SplitRangeRequest{Key: []byte("m")}); err != nil {
		t.Fatal(err)
	}
	testutil.SucceedsWithin(t, 30*time.Second, func() error {
		rs, err := listRanges(ctx, pc)
		if err != nil {
			return err
		}
		if len(rs) != 2 || string(rs[1].GetDescriptor_().GetStartKey()) != "m" || rs[1].GetLeader() == nil {
			return fmt.Errorf("%d ranges after an admin split", len(rs))
		}
		return checkRangesCover(rs)
	})
	if _, err := pc.SplitRange(ctx, &flotillapb.SplitRangeRequest{Key: []byte("m")}); err == nil {
		t.Fatal("a split at a range's start key was accepted")
	}
	if _, err := pc.SplitRange(ctx, &flotillapb.SplitRangeRequest{}); err == nil {
		t.Fatal("a split without a key was accepted")
	}

	// Writes through a client grow the ranges past the split size.
	c, err := flotilla.Connect(ctx, nodes[0].Addr(), nodes[1].Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	value := bytes.Repeat([]byte("v"), 100)
	written := map[string]bool{}
	for i := range 1500 {
		key := fmt.Sprintf("%c%05d", 'a'+i%26, i)
		if err := c.Put(ctx, []byte(key), value); err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
		written[key] = true
	}
	testutil.SucceedsWithin(t, time.Minute, func() error {
		rs, err := listRanges(ctx, pc)
		if err != nil {
			return err
		}
		if len(rs) < 8 {
			return fmt.Errorf("%d ranges", len(rs))
		}
		for _, r := range rs {
			if size := r.GetStats().GetKeyBytes() + r.GetStats().GetValueBytes(); size > 2*(16<<10) {
				return fmt.Errorf("range %d holds %d bytes", r.GetDescriptor_().GetRangeId(), size)
			}
		}
		return checkRangesCover(rs)
	})
	for key := range written {
		v, err := c.Get(ctx, []byte(key))
		if err != nil || !bytes.Equal(v, value) {
			t.Fatalf("get %s after splits: %q, %v", key, v, err)
		}
	}
	testutil.SucceedsWithin(t, time.Minute, func() error { return replicasAgree(nodes) })
	// The placement driver's leader lists every range on /status, with
	// sizes and leaders.
	testutil.SucceedsWithin(t, 30*time.Second, func() error {
		rs, err := listRanges(ctx, pc)
		if err != nil {
			return err
		}
		for _, n := range nodes {
			pv := n.Status(false).GetPlacement()
			if pv == nil {
				continue
			}
			if len(pv.GetRanges()) != len(rs) {
				return fmt.Errorf("/status lists %d ranges, ListRanges %d", len(pv.GetRanges()), len(rs))
			}
			for _, r := range pv.GetRanges() {
				if r.GetLeader() == nil || r.GetStats() == nil {
					return fmt.Errorf("/status: range %d without a leader or statistics", r.GetDescriptor_().GetRangeId())
				}
			}
			return nil
		}
		return fmt.Errorf("no node publishes the placement view")
	})
}

// TestBalanceManyRanges: 5 nodes and 200 ranges (the cluster starts
// pre-split on one node; four more join): once the cluster settles, every
// store's replica and leader counts are within 10% of the mean.
func TestBalanceManyRanges(t *testing.T) {
	if testing.Short() {
		t.Skip("moves hundreds of replicas")
	}
	const nodes, ranges = 5, 200
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	configure := func(c *server.Config) {
		c.HeartbeatInterval = 200 * time.Millisecond
		c.TickInterval = 50 * time.Millisecond
	}
	cfg := placementConfig(t.TempDir())
	configure(&cfg)
	n1 := openNode(t, cfg)
	var splits [][]byte
	for i := 1; i < ranges; i++ {
		splits = append(splits, fmt.Appendf(nil, "key%04d", i*10))
	}
	if _, err := n1.Init(ctx, splits...); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for range nodes - 1 {
		cfg := placementConfig(t.TempDir(), n1.Addr())
		configure(&cfg)
		n := openNode(t, cfg)
		if err := n.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
	}
	pc := placementClient(t, n1)
	within := func(what string, counts []int, total int) error {
		mean := float64(total) / float64(len(counts))
		for _, c := range counts {
			if float64(c) < 0.9*mean || float64(c) > 1.1*mean {
				return fmt.Errorf("%s per store %v: not within 10%% of the mean %.1f", what, counts, mean)
			}
		}
		return nil
	}
	var last string
	testutil.SucceedsWithin(t, 3*time.Minute, func() error {
		resp, err := pc.ListStores(ctx, &flotillapb.ListStoresRequest{})
		if err != nil {
			return err
		}
		var reps, leads []int
		for _, s := range resp.GetStores() {
			reps = append(reps, int(s.GetReplicas()))
			leads = append(leads, int(s.GetLeaders()))
		}
		last = fmt.Sprintf("replicas %v, leaders %v", reps, leads)
		if len(reps) != nodes {
			return fmt.Errorf("%d stores", len(reps))
		}
		if err := within("replicas", reps, 3*ranges); err != nil {
			return err
		}
		if err := within("leaders", leads, ranges); err != nil {
			return err
		}
		// Settled: no replica in flight.
		rs, err := listRanges(ctx, pc)
		if err != nil {
			return err
		}
		for _, r := range rs {
			if n := len(r.GetDescriptor_().GetReplicas()); n != 3 {
				return fmt.Errorf("range %d has %d replicas", r.GetDescriptor_().GetRangeId(), n)
			}
		}
		return nil
	})
	t.Logf("settled after %v: %s", time.Since(start).Round(time.Second), last)
	rs, err := listRanges(ctx, pc)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != ranges {
		t.Fatalf("%d ranges, want %d", len(rs), ranges)
	}
	for _, r := range rs {
		if n := len(r.GetDescriptor_().GetReplicas()); n != 3 {
			t.Fatalf("range %d has %d replicas", r.GetDescriptor_().GetRangeId(), n)
		}
	}
}

// TestLoadSplit: a hot key span under load is split by load, at a key
// inside the span, and the halves' leaders end up on different stores.
func TestLoadSplit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	nodes := startSplitCluster(t, ctx, func(c *server.Config) {
		c.SplitSize = -1
		c.SplitQPS = 100
	})
	pc := placementClient(t, nodes[0])
	c, err := flotilla.Connect(ctx, nodes[0].Addr(), nodes[1].Addr(), nodes[2].Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Cold data around the hot span.
	for _, k := range []string{"a", "b", "y", "z"} {
		if err := c.Put(ctx, []byte(k), []byte("cold")); err != nil {
			t.Fatal(err)
		}
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key := fmt.Appendf(nil, "hot/%03d", (i*31+w*7)%200)
				var err error
				if i%2 == 0 {
					err = c.Put(ctx, key, []byte("v"))
				} else {
					_, err = c.Get(ctx, key)
				}
				if err != nil && ctx.Err() != nil {
					return
				}
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()
	testutil.SucceedsWithin(t, 2*time.Minute, func() error {
		rs, err := listRanges(ctx, pc)
		if err != nil {
			return err
		}
		// The ranges holding hot keys, and their leaders' stores.
		leaders := map[uint64]bool{}
		hot := 0
		for _, r := range rs {
			d := r.GetDescriptor_()
			if bytes.Compare(d.GetStartKey(), []byte("hot/~")) < 0 && (len(d.GetEndKey()) == 0 || bytes.Compare(d.GetEndKey(), []byte("hot/")) > 0) {
				hot++
				leaders[r.GetLeader().GetStoreId()] = true
			}
		}
		if hot < 2 || len(leaders) < 2 {
			return fmt.Errorf("%d ranges hold the hot keys, led from %d stores", hot, len(leaders))
		}
		// The split keys lie inside the hot span.
		for _, r := range rs[1:] {
			if k := r.GetDescriptor_().GetStartKey(); !bytes.HasPrefix(k, []byte("hot/")) {
				return fmt.Errorf("a range starts at %q, outside the hot span", k)
			}
		}
		return nil
	})
}
