// Copyright 2026 The Flotilla Authors. All rights reserved.

package server_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/flotilladb/flotilla/internal/testutil"
	"github.com/flotilladb/flotilla/rpc"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"github.com/flotilladb/flotilla/server"
)

// TestLinearizableUnderSplits runs the random workload of
// TestLinearizableUnderFaults while the keyspace is split under it, range
// leaderships move, and nodes restart: the history must be linearizable
// (TESTING.md scenario 15, "and splits").
func TestLinearizableUnderSplits(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a cluster under splits for several seconds")
	}
	seed := lzTestSeed(t)
	const (
		workloadDuration = 8 * time.Second
		maxOps           = 20000
		clients          = 4
	)
	keys := []string{"k0", "k1", "k2", "k3", "k4", "k5"}
	splitKeys := []string{"k1", "k2", "k3", "k4", "k5", "k2x", "k4x"}

	c := startLZCluster(t, nil, func(cfg *server.Config) {
		cfg.HeartbeatInterval = 100 * time.Millisecond
		cfg.LivenessWindow = time.Second
		cfg.SplitQPS = -1
	})
	pool := rpc.NewPool(rpc.PoolConfig{})
	defer pool.Close()
	// placementVia returns a Placement client of a running node.
	placementVia := func(rng *rand.Rand) flotillapb.PlacementClient {
		for _, i := range rng.Perm(lzNodes) {
			if c.node(i) == nil {
				continue
			}
			if conn, err := pool.Conn(c.addrs[i]); err == nil {
				return flotillapb.NewPlacementClient(conn)
			}
		}
		return nil
	}

	h := newLZHistory()
	var (
		stop       = make(chan struct{})
		opsStarted atomic.Int64
		splits     atomic.Int64
		transfers  atomic.Int64
		restarts   atomic.Int64
		wg         sync.WaitGroup
	)
	for ci := range clients {
		kv := c.connect(ci%lzNodes, (ci+1)%lzNodes, (ci+2)%lzNodes)
		wg.Add(1)
		go func() {
			defer wg.Done()
			runLZClient(ci, seed, kv, keys, h, stop, &opsStarted, maxOps)
		}()
	}

	// The nemesis: split at the next key, move a random range's
	// leadership to another voter, or restart a random node.
	nemesisDone := make(chan struct{})
	go func() {
		defer close(nemesisDone)
		rng := rand.New(rand.NewPCG(seed, 0))
		rng.Shuffle(len(splitKeys), func(i, j int) { splitKeys[i], splitKeys[j] = splitKeys[j], splitKeys[i] })
		pause := func(d time.Duration) bool {
			tm := time.NewTimer(d)
			defer tm.Stop()
			select {
			case <-stop:
				return false
			case <-tm.C:
				return true
			}
		}
		for round := 0; pause(time.Duration(150+rng.IntN(300)) * time.Millisecond); round++ {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			action := rng.IntN(4)
			if round < 3 {
				action = round // one of each first
			}
			pc := placementVia(rng)
			switch {
			case action <= 1 && len(splitKeys) > 0 && pc != nil:
				key := splitKeys[0]
				if _, err := pc.SplitRange(ctx, &flotillapb.SplitRangeRequest{Key: []byte(key)}); err == nil {
					splitKeys = splitKeys[1:]
					splits.Add(1)
					t.Logf("nemesis: split at %q", key)
				}
			case action == 2 && pc != nil:
				resp, err := pc.ListRanges(ctx, &flotillapb.ListRangesRequest{})
				if err != nil || len(resp.GetRanges()) == 0 {
					break
				}
				r := resp.GetRanges()[rng.IntN(len(resp.GetRanges()))]
				for _, rep := range r.GetDescriptor_().GetReplicas() {
					if rep.GetStoreId() != r.GetLeader().GetStoreId() && rep.GetType() == flotillapb.ReplicaType_VOTER {
						if _, err := pc.TransferLeader(ctx, &flotillapb.TransferLeaderRequest{RangeId: r.GetDescriptor_().GetRangeId(), StoreId: rep.GetStoreId()}); err == nil {
							transfers.Add(1)
							t.Logf("nemesis: range %d's leadership to store %d", r.GetDescriptor_().GetRangeId(), rep.GetStoreId())
						}
						break
					}
				}
			default:
				victim := rng.IntN(lzNodes)
				t.Logf("nemesis: restarting node %d", victim+1)
				if err := c.stop(victim); err != nil {
					t.Error(err)
				}
				restarts.Add(1)
				pause(time.Duration(100+rng.IntN(300)) * time.Millisecond)
				if err := c.open(victim); err != nil {
					t.Error(err)
					cancel()
					return
				}
			}
			cancel()
		}
	}()

	tm := time.NewTimer(workloadDuration)
	clientsDone := make(chan struct{})
	go func() { wg.Wait(); close(clientsDone) }()
	select {
	case <-tm.C:
	case <-clientsDone:
		tm.Stop()
	}
	close(stop)
	<-nemesisDone
	<-clientsDone
	t.Logf("workload: %s; %d splits, %d leader transfers, %d restarts", h, splits.Load(), transfers.Load(), restarts.Load())

	final := &lzClient{id: clients, kv: c.connect(0, 1, 2), h: h}
	for _, k := range keys {
		testutil.SucceedsWithin(t, 20*time.Second, func() error {
			_, err := final.get(k)
			return err
		})
	}
	if splits.Load() < 2 || restarts.Load() == 0 {
		t.Errorf("the nemesis made %d splits and %d restarts, want at least 2 and 1", splits.Load(), restarts.Load())
	}
	const minOK = 50
	if h.okReads.Load() < minOK || h.okWrites.Load() < minOK {
		t.Errorf("only %d reads and %d writes succeeded, want at least %d of each", h.okReads.Load(), h.okWrites.Load(), minOK)
	}
	// The splits took effect: the keys span several ranges.
	testutil.SucceedsWithin(t, 20*time.Second, func() error {
		pc := placementVia(rand.New(rand.NewPCG(seed, 9)))
		if pc == nil {
			return fmt.Errorf("no node runs")
		}
		resp, err := pc.ListRanges(context.Background(), &flotillapb.ListRangesRequest{})
		if err != nil {
			return err
		}
		if n := len(resp.GetRanges()); n < 3 {
			return fmt.Errorf("%d ranges", n)
		}
		return nil
	})
	checkLinearizable(t, h, porcupine.Ok)
}
