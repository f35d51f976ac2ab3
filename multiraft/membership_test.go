// Copyright 2026 The Flotilla Authors. All rights reserved.

package multiraft_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/flotilladb/flotilla/engine"
	"github.com/flotilladb/flotilla/internal/testcluster"
	"github.com/flotilladb/flotilla/internal/testutil"
	"github.com/flotilladb/flotilla/multiraft"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

func leadFrom(t testing.TB, c *testcluster.Cluster, g multiraft.GroupID, node multiraft.NodeID) {
	t.Helper()
	testutil.SucceedsSoon(t, func() error {
		if l, err := c.Leader(g); err != nil || l != node {
			_ = c.Node(node).Host().Campaign(g)
			return fmt.Errorf("group %d led by %d (%v)", g, l, err)
		}
		return nil
	})
}

// groupTest starts a cluster with group 1 on members, led by the first,
// and returns it with a proposer and a context bounding the test.
func groupTest(t *testing.T, opts testcluster.Options, members ...multiraft.NodeID) (*testcluster.Cluster, *proposer, context.Context) {
	t.Helper()
	opts.Seed = newSeed(t)
	c := testcluster.New(t, opts)
	c.Bootstrap(1, members...)
	leadFrom(t, c, 1, members[0])
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c, newProposer(c), ctx
}

// confChange proposes a membership change at the group's leader until it
// is applied.
func confChange(t *testing.T, ctx context.Context, c *testcluster.Cluster, g multiraft.GroupID, cc *pb.ConfChangeV2) {
	t.Helper()
	testutil.SucceedsSoon(t, func() error {
		l, err := c.Leader(g)
		if err != nil {
			return err
		}
		_, err = c.Node(l).Host().ProposeConfChange(g, cc).Wait(ctx)
		return err
	})
}

// TestLearnerAddPromoteRemove: a learner is added on a fourth host, catches
// up by snapshot, is promoted, and then the old leader is removed; nothing
// acknowledged is lost, and the removed replica is gone for good.
func TestLearnerAddPromoteRemove(t *testing.T) {
	const g = 1
	c, p, ctx := groupTest(t, testcluster.Options{Nodes: 4}, 1, 2, 3)
	if err := p.proposeUntilAcked(ctx, g, 20); err != nil {
		t.Fatal(err)
	}
	learner := testcluster.ReplicaOn(4)
	confChange(t, ctx, c, g, multiraft.AddLearner(learner))
	// The learner appears on host 4 (created by the leader's messages) and
	// catches up by snapshot.
	testutil.SucceedsSoon(t, func() error {
		st, ok := c.Node(4).Host().Status(g)
		lst, _ := c.Node(1).Host().Status(g)
		if !ok || st.Applied < lst.Commit {
			return fmt.Errorf("learner applied %d, leader committed %d", st.Applied, lst.Commit)
		}
		return nil
	})
	if c.Net.Snapshots() == 0 {
		t.Fatal("the learner caught up without a snapshot")
	}
	if err := p.proposeUntilAcked(ctx, g, 5); err != nil {
		t.Fatal(err)
	}
	confChange(t, ctx, c, g, multiraft.AddVoter(learner))
	// Remove the leader (node 1): it steps down and destroys its replica.
	confChange(t, ctx, c, g, multiraft.RemoveReplica(testcluster.ReplicaOn(1)))
	testutil.SucceedsSoon(t, func() error {
		if _, ok := c.Node(1).Host().Status(g); ok {
			return errors.New("removed replica still on node 1")
		}
		return nil
	})
	if err := p.proposeUntilAcked(ctx, g, 5); err != nil {
		t.Fatal(err)
	}
	p.checkConverged(t, []multiraft.GroupID{g})
	if l, _ := c.Leader(g); l == 1 {
		t.Fatal("removed replica still leads")
	}
	// Its data is gone, and stale messages to it do not bring it back.
	if got, err := testcluster.ReadApplied(c.Node(1).Engine(), g); err != nil || len(got) != 0 {
		t.Fatalf("removed replica's data: %d commands, %v", len(got), err)
	}
	c.Node(1).Host().HandleBatch(&multiraft.MessageBatch{From: 2, To: 1, Messages: []multiraft.GroupMessage{{
		Group:   g,
		Message: &pb.Message{Type: pb.MsgApp.Enum(), From: new(uint64(testcluster.ReplicaOn(2))), To: new(uint64(testcluster.ReplicaOn(1))), Term: new(uint64(100))},
	}}})
	c.Stop(1)
	c.Restart(1)
	if _, ok := c.Node(1).Host().Status(g); ok {
		t.Fatal("a stale message revived the removed replica")
	}
}

// TestCatchUpBySnapshot: a host down while its group truncates its log
// catches up through a snapshot when it returns.
func TestCatchUpBySnapshot(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{Nodes: 3, Seed: newSeed(t), Configure: func(cfg *multiraft.Config) {
		cfg.RaftLogTruncationThreshold, cfg.RaftLogMaxEntries = 20, 100
	}})
	groups := groupRange(3)
	for _, g := range groups {
		c.Bootstrap(g, 1, 2, 3)
		leadFrom(t, c, g, 1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p := newProposer(c)
	c.Stop(3)
	for _, g := range groups {
		truncatePast(t, ctx, c, p, g)
	}
	before := c.Net.Snapshots()
	c.Restart(3)
	for _, g := range groups {
		if err := p.proposeUntilAcked(ctx, g, 1); err != nil {
			t.Fatal(err)
		}
	}
	p.checkConverged(t, groups)
	if c.Net.Snapshots() <= before {
		t.Fatal("node 3 caught up without a snapshot")
	}
}

// truncatePast proposes to g (led by node 1) until its log starts past
// index 30, beyond what a stopped node holds.
func truncatePast(t *testing.T, ctx context.Context, c *testcluster.Cluster, p *proposer, g multiraft.GroupID) {
	t.Helper()
	if err := p.proposeUntilAcked(ctx, g, 60); err != nil {
		t.Fatal(err)
	}
	testutil.SucceedsSoon(t, func() error {
		// Keep the group busy so its leader gets to truncate.
		if err := p.proposeUntilAcked(ctx, g, 1); err != nil {
			return err
		}
		if first, err := firstIndex(c, 1, g); err != nil || first < 30 {
			return fmt.Errorf("group %d: log starts at %d (%v)", g, first, err)
		}
		return nil
	})
}

func firstIndex(c *testcluster.Cluster, node multiraft.NodeID, g multiraft.GroupID) (uint64, error) {
	v, err := c.Node(node).Engine().Get(engine.RaftTruncatedStateKey(g))
	if err != nil {
		return 0, err
	}
	return uint64(v[0])<<56 | uint64(v[1])<<48 | uint64(v[2])<<40 | uint64(v[3])<<32 |
		uint64(v[4])<<24 | uint64(v[5])<<16 | uint64(v[6])<<8 | uint64(v[7]) + 1, nil
}

// TestUninitializedReplica: a message for an unknown group from a
// candidate or leader (not a heartbeat) creates an uninitialized replica
// that votes but never campaigns.
func TestUninitializedReplica(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{Nodes: 2, Seed: newSeed(t)})
	const g = 9
	h := c.Node(2).Host()
	self, candidate := testcluster.ReplicaOn(2), testcluster.ReplicaOn(1)
	// A heartbeat does not create it.
	h.HandleBatch(&multiraft.MessageBatch{From: 1, To: 2, Heartbeats: []multiraft.Heartbeat{
		{Group: g, From: candidate, To: self, Term: 1},
	}})
	if _, ok := h.Status(g); ok {
		t.Fatal("a heartbeat created a replica")
	}
	// A pre-vote request node 2 has never heard of creates it (and changes
	// no term).
	h.HandleBatch(&multiraft.MessageBatch{From: 1, To: 2, Messages: []multiraft.GroupMessage{{Group: g, Message: &pb.Message{
		Type: pb.MsgPreVote.Enum(), From: new(uint64(candidate)), To: new(uint64(self)), Term: new(uint64(1)),
		Index: new(uint64(10)), LogTerm: new(uint64(1)),
	}}}})
	testutil.SucceedsSoon(t, func() error {
		if _, ok := h.Status(g); !ok {
			return errors.New("not created")
		}
		return nil
	})
	waitTicks(t, c, 2, 3*10*2) // three times the longest election timeout
	st, _ := h.Status(g)
	if st.State != raft.StateFollower || st.Term > 1 {
		t.Fatalf("uninitialized replica campaigned: %+v", st)
	}
	// It votes.
	h.HandleBatch(&multiraft.MessageBatch{From: 1, To: 2, Messages: []multiraft.GroupMessage{{Group: g, Message: &pb.Message{
		Type: pb.MsgVote.Enum(), From: new(uint64(candidate)), To: new(uint64(self)), Term: new(uint64(5)),
		Index: new(uint64(10)), LogTerm: new(uint64(5)),
	}}}})
	testutil.SucceedsSoon(t, func() error {
		v, err := c.Node(2).Engine().Get(engine.RaftHardStateKey(g))
		if err != nil {
			return err
		}
		var hs pb.HardState
		if err := proto.Unmarshal(v, &hs); err != nil {
			return err
		}
		if hs.GetVote() != uint64(candidate) || hs.GetTerm() != 5 {
			return fmt.Errorf("HardState %v", &hs)
		}
		return nil
	})
	// A message for a replica ID not on this node creates nothing.
	h.HandleBatch(&multiraft.MessageBatch{From: 1, To: 2, Messages: []multiraft.GroupMessage{{Group: 10, Message: &pb.Message{
		Type: pb.MsgApp.Enum(), From: new(uint64(candidate)), To: new(uint64(multiraft.MakeReplicaID(3, 1))),
	}}}})
	if _, ok := h.Status(10); ok {
		t.Fatal("replica created for another node")
	}
}

// ingestCrash takes a crash image of node the first time a snapshot's data
// is ingested there while armed (the testing knob runs between the ingest
// and the write of the snapshot's raft state), so a test can restart the
// node from that moment.
type ingestCrash struct {
	node  multiraft.NodeID
	c     *testcluster.Cluster
	armed atomic.Bool
	mu    sync.Mutex
	image vfs.FS
}

// configure installs the knob on ic.node's host (use in Options.Configure).
func (ic *ingestCrash) configure(cfg *multiraft.Config) {
	if cfg.NodeID != ic.node {
		return
	}
	cfg.Testing = &multiraft.TestingKnobs{AfterSnapshotIngest: func(multiraft.GroupID) {
		if !ic.armed.Load() {
			return
		}
		ic.mu.Lock()
		defer ic.mu.Unlock()
		if ic.image == nil {
			// A crash stops the node: nothing it does after the image may
			// reach its peers, or they would count acknowledgements of
			// entries the image lacks (and, after the restart, send it a
			// commit index beyond its log). Cutting it off is enough; the
			// restart heals the network.
			var others []multiraft.NodeID
			for _, id := range ic.c.NodeIDs() {
				if id != ic.node {
					others = append(others, id)
				}
			}
			ic.c.Net.Partition([]multiraft.NodeID{ic.node}, others)
			ic.image = ic.c.CrashImage(ic.node)
		}
	}}
}

// restartFromImage waits for the image and restarts the node from it.
func (ic *ingestCrash) restartFromImage(t *testing.T) {
	t.Helper()
	var image vfs.FS
	testutil.SucceedsSoon(t, func() error {
		ic.mu.Lock()
		defer ic.mu.Unlock()
		if image = ic.image; image == nil {
			return errors.New("no snapshot ingested yet")
		}
		return nil
	})
	ic.c.RestartFrom(ic.node, image)
	ic.c.Net.Heal()
}

// TestSnapshotCrashAfterIngest: a host crashes after a snapshot's data was
// ingested but before its raft state was written; on restart the replica is
// consistent and catches up.
func TestSnapshotCrashAfterIngest(t *testing.T) {
	ic := &ingestCrash{node: 3}
	ic.armed.Store(true)
	c, p, ctx := groupTest(t, testcluster.Options{Nodes: 3, Storage: testcluster.Crashable,
		Configure: func(cfg *multiraft.Config) {
			cfg.RaftLogTruncationThreshold, cfg.RaftLogMaxEntries = 20, 100
			ic.configure(cfg)
		}}, 1, 2, 3)
	ic.c = c
	const g = 1
	c.Stop(3)
	truncatePast(t, ctx, c, p, g)
	c.Restart(3)
	ic.restartFromImage(t)
	if err := p.proposeUntilAcked(ctx, g, 5); err != nil {
		t.Fatal(err)
	}
	p.checkConverged(t, []multiraft.GroupID{g})
}

// TestTransferLeadership moves leadership on request.
func TestTransferLeadership(t *testing.T) {
	const g = 1
	c, p, ctx := groupTest(t, testcluster.Options{Nodes: 3}, 1, 2, 3)
	if err := p.proposeUntilAcked(ctx, g, 3); err != nil {
		t.Fatal(err)
	}
	testutil.SucceedsSoon(t, func() error {
		if l, _ := c.Leader(g); l == 3 {
			return nil
		}
		if l, _ := c.Leader(g); l != 0 {
			_ = c.Node(l).Host().TransferLeadership(g, testcluster.ReplicaOn(3))
		}
		return errors.New("leadership not on node 3 yet")
	})
	if err := p.proposeUntilAcked(ctx, g, 3); err != nil {
		t.Fatal(err)
	}
	p.checkConverged(t, []multiraft.GroupID{g})
}

// TestJointConfChange swaps a voter in one change (joint consensus: raft
// enters the joint configuration and leaves it automatically).
func TestJointConfChange(t *testing.T) {
	const g = 1
	c, p, ctx := groupTest(t, testcluster.Options{Nodes: 4}, 1, 2, 3)
	if err := p.proposeUntilAcked(ctx, g, 10); err != nil {
		t.Fatal(err)
	}
	// Catch the newcomer up as a learner first, then swap it in for node 3.
	confChange(t, ctx, c, g, multiraft.AddLearner(testcluster.ReplicaOn(4)))
	swap := &pb.ConfChangeV2{Changes: []*pb.ConfChangeSingle{
		{Type: pb.ConfChangeAddNode.Enum(), NodeId: new(uint64(testcluster.ReplicaOn(4)))},
		{Type: pb.ConfChangeRemoveNode.Enum(), NodeId: new(uint64(testcluster.ReplicaOn(3)))},
	}}
	confChange(t, ctx, c, g, swap)
	testutil.SucceedsSoon(t, func() error {
		if _, ok := c.Node(3).Host().Status(g); ok {
			return errors.New("node 3 still holds a replica")
		}
		return nil
	})
	if err := p.proposeUntilAcked(ctx, g, 10); err != nil {
		t.Fatal(err)
	}
	p.checkConverged(t, []multiraft.GroupID{g})
	// The group works without node 3 and with node 4 voting: stop node 2
	// and it still commits with 1 and 4.
	c.Stop(2)
	if err := p.proposeUntilAcked(ctx, g, 3); err != nil {
		t.Fatal(err)
	}
}

// TestTruncationWaitsForLiveFollower: a live follower that lags (the leader's
// messages to it are lost, its own still arrive) keeps the log from being
// truncated past what it needs; once the link heals it catches up through
// the log, with no snapshot.
func TestTruncationWaitsForLiveFollower(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{Nodes: 3, Seed: newSeed(t), Configure: func(cfg *multiraft.Config) {
		cfg.RaftLogTruncationThreshold, cfg.RaftLogMaxEntries = 20, 10000
	}})
	const g = 1
	c.Bootstrap(g, 1, 2, 3)
	leadFrom(t, c, g, 1)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p := newProposer(c)
	if err := p.proposeUntilAcked(ctx, g, 5); err != nil {
		t.Fatal(err)
	}
	st3, _ := c.Node(3).Host().Status(g)
	c.Net.Cut(1, 3)
	if err := p.proposeUntilAcked(ctx, g, 100); err != nil {
		t.Fatal(err)
	}
	waitTicks(t, c, 1, 20) // quiet ticks: the leader considers truncating
	first, err := firstIndex(c, 1, g)
	if err != nil {
		t.Fatal(err)
	}
	if first > st3.Applied+1 {
		t.Fatalf("log truncated to %d past the live follower's %d", first, st3.Applied)
	}
	before := c.Net.Snapshots()
	c.Net.Heal()
	if err := p.proposeUntilAcked(ctx, g, 1); err != nil {
		t.Fatal(err)
	}
	p.checkConverged(t, []multiraft.GroupID{g})
	if c.Net.Snapshots() != before {
		t.Fatal("the live follower needed a snapshot")
	}
	// With the follower caught up, the log is truncated.
	testutil.SucceedsSoon(t, func() error {
		if err := p.proposeUntilAcked(ctx, g, 1); err != nil {
			return err
		}
		if first, err := firstIndex(c, 1, g); err != nil || first < 50 {
			return fmt.Errorf("log starts at %d (%v)", first, err)
		}
		return nil
	})
}
