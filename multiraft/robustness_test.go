// Copyright 2026 The Flotilla Authors. All rights reserved.

package multiraft_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/flotilladb/flotilla/engine"
	"github.com/flotilladb/flotilla/internal/testcluster"
	"github.com/flotilladb/flotilla/internal/testutil"
	"github.com/flotilladb/flotilla/multiraft"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Regression tests for what a review of multiraft found: each failed (a
// panic, a failed host, a replica that never converged) before its fix.

// stillUp checks that a host did not fail and its group still commits.
func stillUp(t *testing.T, ctx context.Context, c *testcluster.Cluster, p *proposer, node multiraft.NodeID, g multiraft.GroupID) {
	t.Helper()
	waitTicks(t, c, node, 5)
	if err := c.Node(node).Host().Err(); err != nil {
		t.Fatalf("node %d failed: %v", node, err)
	}
	if err := p.proposeUntilAcked(ctx, g, 2); err != nil {
		t.Fatal(err)
	}
	p.checkConverged(t, []multiraft.GroupID{g})
}

// TestSnapshotCrashDivergentTail: a deposed leader holding a long
// uncommitted tail takes a snapshot whose index lies inside that tail and
// crashes after the ingest: on restart the log is rebuilt from the snapshot
// (its tail disagrees with it), and the replica converges.
func TestSnapshotCrashDivergentTail(t *testing.T) {
	ic := &ingestCrash{node: 1}
	c, p, ctx := groupTest(t, testcluster.Options{Nodes: 3, Storage: testcluster.Crashable,
		Configure: func(cfg *multiraft.Config) {
			cfg.RaftLogTruncationThreshold, cfg.RaftLogMaxEntries = 20, 100
			ic.configure(cfg)
		}}, 1, 2, 3)
	ic.c = c
	const g = 1
	if err := p.proposeUntilAcked(ctx, g, 5); err != nil {
		t.Fatal(err)
	}
	// Cut node 1 off while it leads, and let it append a tail no one else
	// will ever have.
	c.Net.Partition([]multiraft.NodeID{1}, []multiraft.NodeID{2, 3})
	h1 := c.Node(1).Host()
	for i := range 300 {
		h1.Propose(g, []byte(fmt.Sprintf("tail-%d", i)))
	}
	testutil.SucceedsSoon(t, func() error {
		if st, _ := h1.Status(g); st.LastIndex < 300 {
			return fmt.Errorf("node 1's tail reaches %d", st.LastIndex)
		}
		return nil
	})
	// The majority elects a leader, commits and truncates past node 1.
	testutil.SucceedsSoon(t, func() error {
		if l, err := c.Leader(g); err != nil || l == 1 {
			return fmt.Errorf("leader %d", l)
		}
		return nil
	})
	if err := p.proposeUntilAcked(ctx, g, 60); err != nil {
		t.Fatal(err)
	}
	testutil.SucceedsSoon(t, func() error {
		l, err := c.Leader(g)
		if err != nil {
			return err
		}
		if err := p.proposeUntilAcked(ctx, g, 1); err != nil {
			return err
		}
		if first, err := firstIndex(c, l, g); err != nil || first < 40 {
			return fmt.Errorf("log starts at %d (%v)", first, err)
		}
		return nil
	})
	ic.armed.Store(true)
	c.Net.Heal()
	ic.restartFromImage(t)
	if err := p.proposeUntilAcked(ctx, g, 5); err != nil {
		t.Fatal(err)
	}
	p.checkConverged(t, []multiraft.GroupID{g})
}

// rejectingSM rejects membership changes whose context ends in "reject".
type rejectingSM struct{ multiraft.StateMachine }

func (s rejectingSM) Apply(b *engine.Batch, cmds []multiraft.Command) ([]multiraft.Result, error) {
	res, err := s.StateMachine.Apply(b, cmds)
	for i, c := range cmds {
		if c.Kind == multiraft.CommandConfChange && bytes.HasSuffix(c.ConfChange.GetContext(), []byte("reject")) {
			res[i].Err = errors.New("rejected by the state machine")
		}
	}
	return res, err
}

// TestRejectedConfChange: a membership change the state machine rejects is
// applied by raft as no change (it used to panic raft), on every replica.
func TestRejectedConfChange(t *testing.T) {
	c, p, ctx := groupTest(t, testcluster.Options{Nodes: 3, Configure: func(cfg *multiraft.Config) {
		inner := cfg.NewStateMachine
		cfg.NewStateMachine = func(g multiraft.GroupID) (multiraft.StateMachine, error) {
			sm, err := inner(g)
			return rejectingSM{sm}, err
		}
	}}, 1, 2, 3)
	const g = 1
	for _, cc := range []*pb.ConfChangeV2{
		multiraft.AddLearner(multiraft.MakeReplicaID(3, 2)), // simple
		{Changes: []*pb.ConfChangeSingle{ // joint
			{Type: pb.ConfChangeAddLearnerNode.Enum(), NodeId: new(uint64(multiraft.MakeReplicaID(3, 3)))},
			{Type: pb.ConfChangeRemoveNode.Enum(), NodeId: new(uint64(testcluster.ReplicaOn(2)))},
		}},
	} {
		cc.Context = []byte("reject")
		res, err := c.Node(1).Host().ProposeConfChange(g, cc).Wait(ctx)
		if err != nil || res.Err == nil {
			t.Fatalf("rejected change: result %v, error %v", res, err)
		}
	}
	stillUp(t, ctx, c, p, 1, g)
	// Node 2 is still a voter: with node 3 stopped, 1 and 2 commit.
	c.Stop(3)
	if err := p.proposeUntilAcked(ctx, g, 1); err != nil {
		t.Fatal(err)
	}
}

// TestRefusedConfChange: raft refuses a second change while one is pending;
// the proposer learns it was not applied.
func TestRefusedConfChange(t *testing.T) {
	c, _, ctx := groupTest(t, testcluster.Options{Nodes: 3}, 1, 2, 3)
	h := c.Node(1).Host()
	// Entering a joint configuration without leaving it automatically keeps
	// a change pending until an explicit leave.
	joint := &pb.ConfChangeV2{
		Transition: pb.ConfChangeTransitionJointExplicit.Enum(),
		Changes:    []*pb.ConfChangeSingle{{Type: pb.ConfChangeAddLearnerNode.Enum(), NodeId: new(uint64(multiraft.MakeReplicaID(3, 2)))}},
	}
	if _, err := h.ProposeConfChange(1, joint).Wait(ctx); err != nil {
		t.Fatal(err)
	}
	_, err := h.ProposeConfChange(1, multiraft.AddLearner(multiraft.MakeReplicaID(2, 2))).Wait(ctx)
	if !multiraft.IsNotApplied(err) {
		t.Fatalf("a change refused by raft: %v, want not applied", err)
	}
	if _, err := h.ProposeConfChange(1, &pb.ConfChangeV2{}).Wait(ctx); err != nil { // leave joint
		t.Fatal(err)
	}
}

// TestHostRefusesBadMessages: messages a peer may not send are dropped, not
// stepped: a MsgSnap outside the snapshot stream, raft's local messages, a
// message claiming to come from another node, an out-of-range type.
func TestHostRefusesBadMessages(t *testing.T) {
	c, p, ctx := groupTest(t, testcluster.Options{Nodes: 3}, 1, 2, 3)
	const g = 1
	st, _ := c.Node(1).Host().Status(g)
	r1, r2 := uint64(testcluster.ReplicaOn(1)), uint64(testcluster.ReplicaOn(2))
	cs := &pb.ConfState{Voters: []uint64{r1, r2, uint64(testcluster.ReplicaOn(3))}}
	h2 := c.Node(2).Host()
	h2.HandleBatch(&multiraft.MessageBatch{From: 1, To: 2, Messages: []multiraft.GroupMessage{
		{Group: g, Message: &pb.Message{Type: pb.MsgSnap.Enum(), From: new(r1), To: new(r2), Term: new(st.Term),
			Snapshot: &pb.Snapshot{Metadata: &pb.SnapshotMetadata{Index: new(uint64(1000)), Term: new(st.Term), ConfState: cs}}}},
		{Group: g, Message: &pb.Message{Type: pb.MsgStorageAppendResp.Enum(), From: new(uint64(1<<64 - 1)), To: new(r2),
			Index: new(uint64(1000)), LogTerm: new(st.Term)}},
		{Group: g, Message: &pb.Message{Type: pb.MsgApp.Enum(), From: new(uint64(testcluster.ReplicaOn(3))), To: new(r2), Term: new(st.Term + 5)}},
		{Group: g, Message: &pb.Message{Type: pb.MessageType(-1).Enum(), From: new(r1), To: new(r2)}},
	}})
	// A raw batch with a negative type straight off the wire.
	msg := protowire.AppendTag(nil, 1, protowire.VarintType)
	msg = protowire.AppendVarint(msg, 1<<64-1)
	inner := protowire.AppendTag(nil, 1, protowire.VarintType)
	inner = protowire.AppendVarint(inner, g)
	inner = protowire.AppendTag(inner, 2, protowire.BytesType)
	inner = protowire.AppendBytes(inner, msg)
	raw := protowire.AppendBytes(protowire.AppendTag(nil, 3, protowire.BytesType), inner)
	if b, err := multiraft.UnmarshalBatch(raw); err == nil {
		h2.HandleBatch(b)
	}
	stillUp(t, ctx, c, p, 2, g)
	if st2, _ := h2.Status(g); st2.Term > st.Term+1 {
		t.Fatalf("a spoofed message moved node 2's term to %d", st2.Term)
	}
}

// snapshotHeader builds a header for a fake snapshot of group g to node 2.
// Each header owns its messages, as one read off the wire does (raft
// fills in defaults in what it is given).
func snapshotHeader(c *testcluster.Cluster, g multiraft.GroupID, index, term uint64, cs *pb.ConfState, spans []engine.Span) *multiraft.SnapshotHeader {
	cs = proto.Clone(cs).(*pb.ConfState)
	return &multiraft.SnapshotHeader{Group: g, Message: &pb.Message{
		Type: pb.MsgSnap.Enum(), From: new(uint64(testcluster.ReplicaOn(1))), To: new(uint64(testcluster.ReplicaOn(2))), Term: new(term),
		Snapshot: &pb.Snapshot{Metadata: &pb.SnapshotMetadata{Index: new(index), Term: new(term), ConfState: cs}},
	}, Spans: spans}
}

func noChunks() ([]byte, error) { return nil, io.EOF }

// TestBadSnapshotHeaders: snapshot headers whose configuration raft cannot
// restore, or whose spans are not the group's, are refused.
func TestBadSnapshotHeaders(t *testing.T) {
	c, p, ctx := groupTest(t, testcluster.Options{Nodes: 3}, 1, 2, 3)
	const g = 1
	st, _ := c.Node(1).Host().Status(g)
	r2 := uint64(testcluster.ReplicaOn(2))
	good := &pb.ConfState{Voters: []uint64{uint64(testcluster.ReplicaOn(1)), r2, uint64(testcluster.ReplicaOn(3))}}
	smSpans := testcluster.NewLogStateMachine(c.Node(2).Engine(), g).Spans()
	repl := engine.RangeReplicatedSpan(g)
	otherGroup := testcluster.NewLogStateMachine(c.Node(2).Engine(), g+1).Spans()
	for name, hdr := range map[string]*multiraft.SnapshotHeader{
		"voter and learner":    snapshotHeader(c, g, 1000, st.Term, &pb.ConfState{Voters: []uint64{r2}, Learners: []uint64{r2}}, append([]engine.Span{repl}, smSpans...)),
		"recipient not member": snapshotHeader(c, g, 1000, st.Term, &pb.ConfState{Voters: []uint64{uint64(testcluster.ReplicaOn(1))}}, append([]engine.Span{repl}, smSpans...)),
		"data span missing":    snapshotHeader(c, g, 1000, st.Term, good, []engine.Span{repl}),
		"another group's data": snapshotHeader(c, g, 1000, st.Term, good, append([]engine.Span{repl}, otherGroup...)),
		"raft state span":      snapshotHeader(c, g, 1000, st.Term, good, []engine.Span{repl, engine.RangeUnreplicatedSpan(g)}),
		// A term of 0 makes raft take the snapshot for a local message (a
		// candidate would forget its vote); a huge one wraps at the next
		// campaign and panics raft.
		"term 0":    snapshotHeader(c, g, 1000, 0, good, append([]engine.Span{repl}, smSpans...)),
		"huge term": snapshotHeader(c, g, 1000, 1<<64-1, good, append([]engine.Span{repl}, smSpans...)),
		"snapshot term above message term": func() *multiraft.SnapshotHeader {
			h := snapshotHeader(c, g, 1000, st.Term, good, append([]engine.Span{repl}, smSpans...))
			h.Message.Snapshot.Metadata.Term = new(st.Term + 1)
			return h
		}(),
	} {
		err := c.Node(2).Host().HandleSnapshot(ctx, hdr, noChunks)
		if !errors.Is(err, multiraft.ErrBadSnapshot) {
			t.Errorf("%s: HandleSnapshot = %v, want ErrBadSnapshot", name, err)
		}
	}
	stillUp(t, ctx, c, p, 2, g)
	if st2, _ := c.Node(2).Host().Status(g); st2.Term > st.Term+1 {
		t.Fatalf("forged snapshot headers moved node 2's term from %d to %d", st.Term, st2.Term)
	}
}

// TestTwoSnapshotsOnePass: snapshots at two indexes reaching a group in one
// processing pass, raft taking one, do not fail the host.
func TestTwoSnapshotsOnePass(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{Nodes: 3, Seed: newSeed(t)})
	groups := groupRange(40)
	for _, g := range groups {
		c.Bootstrap(g, 1, 2, 3)
		leadFrom(t, c, g, 1)
	}
	h2 := c.Node(2).Host()
	c.Net.Partition([]multiraft.NodeID{2}, []multiraft.NodeID{1, 3})
	r2 := uint64(testcluster.ReplicaOn(2))
	cs := &pb.ConfState{Voters: []uint64{uint64(testcluster.ReplicaOn(1)), r2, uint64(testcluster.ReplicaOn(3))}}
	var wg sync.WaitGroup
	for _, g := range groups {
		st, _ := c.Node(1).Host().Status(g)
		spans := append([]engine.Span{engine.RangeReplicatedSpan(g)}, testcluster.NewLogStateMachine(c.Node(2).Engine(), g).Spans()...)
		for _, idx := range []uint64{1000, 900} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = h2.HandleSnapshot(ctx, snapshotHeader(c, g, idx, st.Term, cs, spans), noChunks)
			}()
		}
	}
	wg.Wait()
	waitTicks(t, c, 2, 5)
	if err := h2.Err(); err != nil {
		t.Fatalf("host failed: %v", err)
	}
}
