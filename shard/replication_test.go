// Copyright 2026 The Flotilla Authors. All rights reserved.

package shard_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/flotilladb/flotilla/internal/testcluster"
	"github.com/flotilladb/flotilla/internal/testutil"
	"github.com/flotilladb/flotilla/multiraft"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"github.com/flotilladb/flotilla/rpc/flotillapb/confchange"
	"github.com/flotilladb/flotilla/shard"
	pb "go.etcd.io/raft/v3/raftpb"
)

// putAll writes key%03d = value%d for i in [from, to) through the leader.
func putAll(t *testing.T, k *kvCluster, ctx context.Context, rid multiraft.GroupID, from, to int) {
	t.Helper()
	for i := from; i < to; i++ {
		if _, err := do(k, ctx, rid, func(ctx context.Context, s *shard.Store) (*flotillapb.PutResponse, error) {
			return s.Put(ctx, &flotillapb.PutRequest{Key: fmt.Appendf(nil, "key%03d", i), Value: fmt.Appendf(nil, "value%d", i)})
		}); err != nil {
			t.Fatal(err)
		}
	}
}

func confChange(t *testing.T, k *kvCluster, ctx context.Context, rid multiraft.GroupID, cc *pb.ConfChangeV2) {
	t.Helper()
	testutil.SucceedsSoon(t, func() error {
		l, err := k.Leader(rid)
		if err != nil {
			return err
		}
		res, err := k.Node(l).Host().ProposeConfChange(rid, cc).Wait(ctx)
		if err == nil && res.Err != nil {
			t.Fatalf("membership change rejected: %v", res.Err)
		}
		return err
	})
}

// TestLearnerCatchesUpBySnapshot: a learner added after the log was
// truncated starts uninitialized, gets the range by snapshot (its bounds,
// descriptor, stats and data), ends with the same hash and descriptor as
// the others, serves reads, and once removed serves nothing.
func TestLearnerCatchesUpBySnapshot(t *testing.T) {
	k := newKVCluster(t, clusterOptions{Options: testcluster.Options{
		Nodes:     4,
		Configure: func(c *multiraft.Config) { c.RaftLogTruncationThreshold = 8 },
	}})
	const rid = 3
	k.bootstrapRange(rid, "key", "kez", 1, 2, 3)
	ctx := testCtx(t)
	putAll(t, k, ctx, rid, 0, 40)
	if _, ok := k.Store(4).Replica(rid); ok {
		t.Fatal("node 4 has a replica before it was added")
	}
	learner := testcluster.ReplicaOn(4)
	confChange(t, k, ctx, rid, multiraft.AddLearner(learner))
	_, sum, stats, desc := k.waitConverged(rid, 1, 2, 3, 4)
	if k.Net.Snapshots() == 0 {
		t.Fatal("the learner caught up without a snapshot")
	}
	if stats.Keys != 40 {
		t.Fatalf("stats %+v after 40 puts", stats)
	}
	if desc.GetEpoch().GetConfVer() != 1 || len(desc.GetReplicas()) != 4 {
		t.Fatalf("descriptor after adding a learner: %v", desc)
	}
	for _, rd := range desc.GetReplicas() {
		if rd.GetReplicaId() == uint64(learner) && (rd.GetType() != flotillapb.ReplicaType_LEARNER || rd.GetStoreId() != 4) {
			t.Fatalf("learner's descriptor %v", rd)
		}
	}
	s4 := k.Store(4)
	if r, ok := s4.LookupKey([]byte("key017")); !ok || r.RangeID() != rid {
		t.Fatal("the learner's store does not find the range by key")
	}
	if rs := s4.Replicas(); len(rs) != 1 || rs[0].RangeID() != rid {
		t.Fatalf("learner's store lists %d replicas", len(rs))
	}
	// A learner serves no reads (only the leader does); its data is
	// checked by the hashes above.
	if _, err := s4.Get(ctx, &flotillapb.GetRequest{Key: []byte("key017")}); pbError(t, err).GetNotLeader() == nil {
		t.Fatalf("read at the learner: %v", err)
	}
	_, err := s4.Put(ctx, &flotillapb.PutRequest{Key: []byte("key017")})
	if pe := pbError(t, err); pe.GetNotLeader() == nil {
		t.Fatalf("write at the learner: %v", pe)
	}
	// It keeps up through the log from there.
	putAll(t, k, ctx, rid, 40, 50)
	_, sum2, _, _ := k.waitConverged(rid, 1, 2, 3, 4)
	if sum2 == sum {
		t.Fatal("hash unchanged by writes")
	}

	// Removed, the learner's store forgets the range.
	confChange(t, k, ctx, rid, multiraft.RemoveReplica(learner))
	testutil.SucceedsSoon(t, func() error {
		if _, ok := s4.Replica(rid); ok {
			return errors.New("removed replica still listed")
		}
		return nil
	})
	if _, ok := s4.LookupKey([]byte("key017")); ok || len(s4.Replicas()) != 0 {
		t.Fatal("removed replica still found by key")
	}
	_, err = s4.Get(ctx, &flotillapb.GetRequest{Key: []byte("key017")})
	if pe := pbError(t, err); pe.GetRangeNotFound() == nil {
		t.Fatalf("read at a removed replica: %v", pe)
	}
	_, _, _, desc = k.waitConverged(rid, 1, 2, 3)
	if desc.GetEpoch().GetConfVer() != 2 || len(desc.GetReplicas()) != 3 {
		t.Fatalf("descriptor after removing the learner: %v", desc)
	}
}

// TestCrashAllNodes: writes acknowledged before every node crashes at once
// (keeping only what was synced) survive the restart; the replicas
// converge, and their statistics match their data.
func TestCrashAllNodes(t *testing.T) {
	k := newKVCluster(t, clusterOptions{Options: testcluster.Options{Nodes: 3, Storage: testcluster.Crashable}})
	const rid = 1
	k.bootstrapRange(rid, "", "", 1, 2, 3)
	ctx := testCtx(t)
	putAll(t, k, ctx, rid, 0, 10)

	// Writers keep writing while the crash images are taken.
	var (
		mu    sync.Mutex
		acked = map[string]string{}
		stop  = make(chan struct{})
		wg    sync.WaitGroup
	)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				key, value := fmt.Sprintf("w%d/%04d", w, i), fmt.Sprintf("v%d", i)
				l, err := k.Leader(rid)
				if err != nil {
					select {
					case <-stop:
						return
					case <-time.After(time.Millisecond): // no leader yet: back off
					}
					continue
				}
				attempt, cancel := context.WithTimeout(ctx, 2*time.Second)
				_, err = k.Store(l).Put(attempt, &flotillapb.PutRequest{Key: []byte(key), Value: []byte(value)})
				cancel()
				if err == nil {
					mu.Lock()
					acked[key] = value
					mu.Unlock()
				}
			}
		}()
	}
	testutil.SucceedsSoon(t, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(acked) < 40 {
			return fmt.Errorf("%d writes acknowledged", len(acked))
		}
		return nil
	})
	mu.Lock()
	mustSurvive := map[string]string{}
	for key, v := range acked {
		mustSurvive[key] = v
	}
	mu.Unlock()
	// Every node crashes at once: first all are cut off (a crashed node
	// sends nothing more, so acknowledges nothing its image lacks), then
	// their disks are imaged, then they restart over the images.
	for _, n := range k.NodeIDs() {
		k.Net.Detach(n)
	}
	images := map[multiraft.NodeID]vfs.FS{}
	for _, n := range k.NodeIDs() {
		images[n] = k.CrashImage(n)
	}
	close(stop)
	wg.Wait()
	for _, n := range k.NodeIDs() {
		k.RestartFrom(n, images[n])
		k.attach(n)
	}

	for key, want := range mustSurvive {
		g, err := do(k, ctx, rid, func(ctx context.Context, s *shard.Store) (*flotillapb.GetResponse, error) {
			return s.Get(ctx, &flotillapb.GetRequest{Key: []byte(key)})
		})
		if err != nil || !g.GetFound() || string(g.GetValue()) != want {
			t.Fatalf("acknowledged write %s=%s after the crash: %v, %v", key, want, g, err)
		}
	}
	_, _, stats, _ := k.waitConverged(rid, 1, 2, 3)
	resp, err := do(k, ctx, rid, func(ctx context.Context, s *shard.Store) (*flotillapb.ScanResponse, error) {
		return s.Scan(ctx, &flotillapb.ScanRequest{})
	})
	if err != nil || resp.GetMore() {
		t.Fatal(err)
	}
	var keys, keyBytes, valueBytes int64
	for _, kv := range resp.GetKvs() {
		keys, keyBytes, valueBytes = keys+1, keyBytes+int64(len(kv.GetKey())), valueBytes+int64(len(kv.GetValue()))
	}
	if stats.Keys != keys || stats.KeyBytes != keyBytes || stats.ValueBytes != valueBytes {
		t.Fatalf("stats %+v; the data has %d keys, %d key bytes, %d value bytes", stats, keys, keyBytes, valueBytes)
	}
	t.Logf("%d writes acknowledged before the crash, %d keys after", len(mustSurvive), keys)
}

// TestConfChangeExpectsConfVer: a membership change carrying the conf_ver
// it was computed at (confchange.WithConfVer) is refused by the range at any
// other conf_ver, through raft, and changes nothing; at the right one it
// applies. This is what makes an operator step apply at most once.
func TestConfChangeExpectsConfVer(t *testing.T) {
	k := newKVCluster(t, clusterOptions{Options: testcluster.Options{Nodes: 4}})
	const rid = 3
	k.bootstrapRange(rid, "key", "kez", 1, 2, 3)
	ctx := testCtx(t)
	learner := testcluster.ReplicaOn(4)
	propose := func(cc *pb.ConfChangeV2) (multiraft.Result, error) {
		var res multiraft.Result
		var err error
		testutil.SucceedsSoon(t, func() error {
			l, lerr := k.Leader(rid)
			if lerr != nil {
				return lerr
			}
			res, err = k.Node(l).Host().ProposeConfChange(rid, cc).Wait(ctx)
			var na *multiraft.NotAppliedError
			if errors.As(err, &na) {
				return err // not the leader any more: again
			}
			return nil
		})
		return res, err
	}
	res, err := propose(confchange.WithConfVer(multiraft.AddLearner(learner), 7))
	if err != nil || res.Err == nil {
		t.Fatalf("a change expecting conf_ver 7 at conf_ver 0: result %v, err %v; want it refused", res.Err, err)
	}
	_, _, _, desc := k.waitConverged(rid, 1, 2, 3)
	if desc.GetEpoch().GetConfVer() != 0 || len(desc.GetReplicas()) != 3 {
		t.Fatalf("descriptor after a refused change: %v", desc)
	}
	res, err = propose(confchange.WithConfVer(multiraft.AddLearner(learner), 0))
	if err != nil || res.Err != nil {
		t.Fatalf("a change at the right conf_ver: result %v, err %v", res.Err, err)
	}
	_, _, _, desc = k.waitConverged(rid, 1, 2, 3, 4)
	if desc.GetEpoch().GetConfVer() != 1 || len(desc.GetReplicas()) != 4 {
		t.Fatalf("descriptor after the change: %v", desc)
	}
}
