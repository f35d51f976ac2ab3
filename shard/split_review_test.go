// Copyright 2026 The Flotilla Authors. All rights reserved.

package shard_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/flotilladb/flotilla/engine"
	"github.com/flotilladb/flotilla/internal/testcluster"
	"github.com/flotilladb/flotilla/internal/testutil"
	"github.com/flotilladb/flotilla/multiraft"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"github.com/flotilladb/flotilla/shard"
	"google.golang.org/protobuf/proto"
)

// TestSplitSnapshotDuringApplyWindow (review): the left range's Apply
// publishes its narrowed descriptor before the host commits the apply
// batch and before prepareSplit locks the right-hand range's uninitialized
// replica. In that window CheckSnapshotSpans of the uninitialized replica
// sees no overlap and accepts a snapshot of the right-hand range; the
// replica is initialized at the snapshot's index. prepareSplit then finds
// it initialized and leaves it, and the parent's batch, committed after the
// ingest, still holds the writes of the entries applied with the split: a
// write to the right-hand span at an index before the split overwrites the
// snapshot's newer value. Node 3's right-hand replica then holds a value
// that the range overwrote (an acknowledged write is lost on it) while it
// reports the same applied index as the others.
func TestSplitSnapshotDuringApplyWindow(t *testing.T) {
	const rid, rhs = 3, 7
	var (
		mu    sync.Mutex
		armed bool
		k     *kvCluster
		held  = make(chan []multiraft.Command, 1)
		done  = make(chan struct{})
	)
	k = newKVCluster(t, clusterOptions{
		Options: testcluster.Options{Nodes: 3},
		afterApply: func(node multiraft.NodeID, group multiraft.GroupID, cmds []multiraft.Command) {
			if node != 3 || group != rid {
				return
			}
			split := false
			for _, c := range cmds {
				var kc flotillapb.KVCommand
				if c.Kind == multiraft.CommandNormal && proto.Unmarshal(c.Data, &kc) == nil && kc.GetSplit() != nil {
					split = true
				}
			}
			mu.Lock()
			a := armed && split
			if a {
				armed = false
			}
			mu.Unlock()
			if !a {
				return
			}
			held <- cmds
			defer close(done)
			// Hold the parent's worker between Apply (descriptor narrowed
			// in memory) and the host's prepareSplit/commit until the
			// right-hand replica here took a snapshot, or a while.
			deadline := time.Now().Add(10 * time.Second)
			for time.Now().Before(deadline) {
				if r, ok := k.Store(3).Replica(rhs); ok && r.Descriptor() != nil {
					time.Sleep(50 * time.Millisecond)
					ek, _ := engine.UserKey([]byte("key030"))
					v, err := k.Node(3).Engine().Get(ek)
					idx, _, _ := r.Hash()
					t.Logf("hook: right-hand replica initialized on node 3 at %d; key030=%q (%v); snapshots %d", idx, v, err, k.Net.Snapshots())
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
		},
	})
	desc := k.bootstrapRange(rid, "", "", 1, 2, 3)
	ctx := testCtx(t)
	putAll(t, k, ctx, rid, 0, 40)
	k.waitConverged(rid, 1, 2, 3)
	k.makeLeader(rid, 1)

	put := func(id multiraft.GroupID, key, value string) {
		t.Helper()
		if _, err := do(k, ctx, id, func(ctx context.Context, s *shard.Store) (*flotillapb.PutResponse, error) {
			return s.Put(ctx, &flotillapb.PutRequest{Header: hdr(id), Key: []byte(key), Value: []byte(value)})
		}); err != nil {
			t.Fatal(err)
		}
	}
	k.Net.Partition([]multiraft.NodeID{3}, []multiraft.NodeID{1, 2})
	// Applied by node 3 in the same batch as the split, after it heals.
	put(rid, "key030", "old")
	split(t, k, ctx, rid, 1, splitCmd(desc, "key020", rhs, 2))
	// Acknowledged after the split, by the right-hand range.
	put(rhs, "key030", "new")
	mu.Lock()
	armed = true
	mu.Unlock()
	k.Net.Heal()

	var cmds []multiraft.Command
	select {
	case cmds = <-held:
	case <-time.After(20 * time.Second):
		t.Fatal("node 3 did not apply the split")
	}
	t.Logf("held batch: %d commands, first index %d, last %d", len(cmds), cmds[0].Index, cmds[len(cmds)-1].Index)
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the hook did not return")
	}
	// Node 3's parent committed the batch that holds the split.
	testutil.SucceedsWithin(t, 20*time.Second, func() error {
		r, ok := k.Store(3).Replica(rid)
		if !ok {
			return fmt.Errorf("no replica of %d on node 3", rid)
		}
		if i, _, err := r.Hash(); err != nil || i < cmds[len(cmds)-1].Index {
			return fmt.Errorf("node 3 applied %d of range %d (%v)", i, rid, err)
		}
		return nil
	})
	if len(cmds) < 2 {
		t.Logf("note: node 3 applied the split alone in its batch (%d commands); the overwrite needs the put in the same batch", len(cmds))
	}

	// Node 3's right-hand replica catches up to the others' applied index.
	var want uint64
	testutil.SucceedsWithin(t, 20*time.Second, func() error {
		var idx [4]uint64
		for _, n := range []multiraft.NodeID{1, 2, 3} {
			r, ok := k.Store(n).Replica(rhs)
			if !ok || r.Descriptor() == nil {
				return fmt.Errorf("no initialized replica of %d on node %d", rhs, n)
			}
			i, _, err := r.Hash()
			if err != nil {
				return err
			}
			idx[n] = i
		}
		if idx[1] != idx[2] || idx[2] != idx[3] {
			return fmt.Errorf("applied indexes %v", idx[1:])
		}
		want = idx[1]
		return nil
	})
	t.Logf("snapshots %d", k.Net.Snapshots())
	ek, err := engine.UserKey([]byte("key030"))
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []multiraft.NodeID{1, 2, 3} {
		v, err := k.Node(n).Engine().Get(ek)
		if err != nil {
			t.Fatalf("node %d: %v", n, err)
		}
		if string(v) != "new" {
			t.Errorf("node %d: range %d at applied index %d holds key030=%q, the acknowledged write was %q", n, rhs, want, v, "new")
		}
	}
	// Client-visible: with node 3 leading the right-hand range, a
	// linearizable read returns the overwritten value.
	k.makeLeader(rhs, 3)
	if v := get(t, k, ctx, rhs, "key030"); v != "new" {
		t.Errorf("read of key030 from range %d led by node 3: %q, want %q", rhs, v, "new")
	}
}
