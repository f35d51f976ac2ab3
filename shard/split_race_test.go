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

// TestSplitSnapshotDuringApplyWindow: the left range's Apply
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
		var err error
		want, err = k.appliedAlike(rhs, 1, 2, 3)
		return err
	})
	t.Logf("snapshots %d", k.Net.Snapshots())
	for _, n := range []multiraft.NodeID{1, 2, 3} {
		ver, found, err := engine.MVCCGet(k.Node(n).Engine(), []byte("key030"), 0)
		if err != nil || !found || ver.Deleted {
			t.Fatalf("node %d: %v, found %v", n, err, found)
		}
		if v := ver.Value; string(v) != "new" {
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

// TestSplitDestroyedLeftRacesRightSnapshot: a left-hand replica
// that missed a split and was then removed from its range (a zombie still
// holding the whole unsplit span) is destroyed on its store. The store's
// overlap check (Store.overlapping) stops counting it as soon as the host
// forgets the group, but its data is deleted later by the log writer,
// which performs the destroys of a batch after that batch's appends. If
// the right-hand range's snapshot is accepted meanwhile and lands in the
// same log-writer batch as the destroy, the destroy's DeleteRange over the
// zombie's wide span wipes the freshly ingested right-hand data: node 3's
// right-hand replica reports the others' applied index with keys missing.
func TestSplitDestroyedLeftRacesRightSnapshot(t *testing.T) {
	const rid, rhs, other = 3, 7, 9
	var (
		mu      sync.Mutex
		armed   bool
		blocked = make(chan struct{}, 1)
		release = make(chan struct{})
	)
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	k := newKVCluster(t, clusterOptions{Options: testcluster.Options{
		Nodes: 3,
		Configure: func(c *multiraft.Config) {
			if c.NodeID != 3 {
				return
			}
			c.Testing = &multiraft.TestingKnobs{AfterSnapshotIngest: func(g multiraft.GroupID) {
				mu.Lock()
				a := armed && g == other
				if a {
					armed = false
				}
				mu.Unlock()
				if !a {
					return
				}
				// Hold node 3's log writer inside a batch, so that what
				// is queued meanwhile lands in the next batch together.
				blocked <- struct{}{}
				select {
				case <-release:
				case <-time.After(20 * time.Second):
				}
			}}
		},
	}})
	t.Cleanup(unblock)
	desc := k.bootstrapRange(rid, "", "m", 1, 2, 3)
	k.bootstrapRange(other, "m", "", 1, 2)
	ctx := testCtx(t)
	putAll(t, k, ctx, rid, 0, 40)
	k.waitConverged(rid, 1, 2, 3)
	k.makeLeader(rid, 1)

	k.Net.Partition([]multiraft.NodeID{3}, []multiraft.NodeID{1, 2})
	split(t, k, ctx, rid, 1, splitCmd(desc, "key020", rhs, 2))
	// Node 3's replica of the left range is removed while it is cut off:
	// it stays a zombie over the whole unsplit span.
	confChange(t, k, ctx, rid, multiraft.RemoveReplica(testcluster.ReplicaOn(3)))
	if _, err := do(k, ctx, rhs, func(ctx context.Context, s *shard.Store) (*flotillapb.PutResponse, error) {
		return s.Put(ctx, &flotillapb.PutRequest{Header: hdr(rhs), Key: []byte("key030"), Value: []byte("new")})
	}); err != nil {
		t.Fatal(err)
	}
	k.Net.Heal()
	// The right-hand range reaches node 3 (an uninitialized replica whose
	// snapshots the zombie's span refuses).
	testutil.SucceedsWithin(t, 20*time.Second, func() error {
		if _, ok := k.Node(3).Host().Status(rhs); !ok {
			return fmt.Errorf("no replica of %d on node 3 yet", rhs)
		}
		return nil
	})

	// Block node 3's log writer inside a snapshot ingest of another range.
	mu.Lock()
	armed = true
	mu.Unlock()
	confChange(t, k, ctx, other, multiraft.AddLearner(multiraft.MakeReplicaID(3, 1)))
	select {
	case <-blocked:
	case <-time.After(20 * time.Second):
		t.Fatal("node 3's log writer did not take the other range's snapshot")
	}
	// The zombie is destroyed (as collectRemovedReplicas does once the
	// driver's descriptor shows it removed); its data deletion queues.
	if err := k.Node(3).Host().DestroyRemovedReplica(rid, testcluster.ReplicaOn(3)); err != nil {
		t.Fatal(err)
	}
	testutil.SucceedsWithin(t, 10*time.Second, func() error {
		if _, ok := k.Node(3).Host().Status(rid); ok {
			return fmt.Errorf("range %d still on node 3", rid)
		}
		return nil
	})
	// The right-hand range's next snapshot attempt now passes the overlap
	// check and queues behind the destroy.
	time.Sleep(time.Second)
	unblock()

	var want uint64
	testutil.SucceedsWithin(t, 20*time.Second, func() error {
		if h := k.Node(3).Host(); h != nil && h.Err() != nil {
			// With -tags invariants, Restored's stats check catches it.
			t.Fatalf("node 3 failed: %v", h.Err())
		}
		var err error
		want, err = k.appliedAlike(rhs, 1, 2, 3)
		return err
	})
	for _, key := range []string{"key030", "key025"} {
		for _, n := range []multiraft.NodeID{1, 2, 3} {
			if v, found, err := engine.MVCCGet(k.Node(n).Engine(), []byte(key), 0); err != nil || !found || v.Deleted {
				t.Errorf("node %d: range %d at applied index %d: %s: %v, found %v", n, rhs, want, key, err, found)
			}
		}
	}
}

// appliedAlike returns the applied index of range id if its initialized
// replicas on nodes all report the same one.
func (k *kvCluster) appliedAlike(id multiraft.GroupID, nodes ...multiraft.NodeID) (uint64, error) {
	var first uint64
	for i, n := range nodes {
		r, ok := k.Store(n).Replica(id)
		if !ok || r.Descriptor() == nil {
			return 0, fmt.Errorf("no initialized replica of %d on node %d", id, n)
		}
		idx, _, err := r.Hash()
		if err != nil {
			return 0, err
		}
		if i == 0 {
			first = idx
		} else if idx != first {
			return 0, fmt.Errorf("range %d: node %d applied %d, node %d %d", id, n, idx, nodes[0], first)
		}
	}
	return first, nil
}
