// Copyright 2026 The Flotilla Authors. All rights reserved.

package multiraft_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/flotilladb/flotilla/engine"
	"github.com/flotilladb/flotilla/internal/testcluster"
	"github.com/flotilladb/flotilla/internal/testutil"
	"github.com/flotilladb/flotilla/multiraft"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Forged messages fed straight to a host (TESTING.md #25): each is dropped
// and counted by reason, nothing panics, and the group still commits.

// hostile is a three-node cluster with group 1 led by node 1, each host on
// its own metrics set.
type hostile struct {
	c    *testcluster.Cluster
	p    *proposer
	ctx  context.Context
	sets map[multiraft.NodeID]*metrics.Set
}

func newHostile(t *testing.T, configure func(*multiraft.Config)) *hostile {
	t.Helper()
	sets := map[multiraft.NodeID]*metrics.Set{1: metrics.NewSet(), 2: metrics.NewSet(), 3: metrics.NewSet()}
	c, p, ctx := groupTest(t, testcluster.Options{Nodes: 3, Configure: func(cfg *multiraft.Config) {
		cfg.Metrics = sets[cfg.NodeID]
		if configure != nil {
			configure(cfg)
		}
	}}, 1, 2, 3)
	if err := p.proposeUntilAcked(ctx, 1, 5); err != nil {
		t.Fatal(err)
	}
	return &hostile{c: c, p: p, ctx: ctx, sets: sets}
}

// dropped returns how many messages node dropped for reason.
func (x *hostile) dropped(node multiraft.NodeID, reason string) uint64 {
	return x.sets[node].GetOrCreateCounter(fmt.Sprintf(`flotilla_raft_messages_dropped_total{reason=%q}`, reason)).Get()
}

func (x *hostile) counter(node multiraft.NodeID, name string) uint64 {
	return x.sets[node].GetOrCreateCounter(name).Get()
}

// waitDropped waits until node dropped more than before for reason.
func (x *hostile) waitDropped(t *testing.T, node multiraft.NodeID, reason string, before uint64) {
	t.Helper()
	testutil.SucceedsSoon(t, func() error {
		if got := x.dropped(node, reason); got <= before {
			return fmt.Errorf("node %d dropped %d for %s, want more than %d", node, got, reason, before)
		}
		return nil
	})
}

// healthy checks that no host failed and that group 1 still commits, and
// that every acknowledged command is applied once everywhere.
func (x *hostile) healthy(t *testing.T) {
	t.Helper()
	if err := x.p.proposeUntilAcked(x.ctx, 1, 3); err != nil {
		t.Fatal(err)
	}
	for _, id := range x.c.NodeIDs() {
		if err := x.c.Node(id).Host().Err(); err != nil {
			t.Fatalf("node %d failed: %v", id, err)
		}
	}
	x.p.checkConverged(t, []multiraft.GroupID{1})
}

// leaderTerm returns group 1's leader node and term.
func (x *hostile) leaderTerm(t *testing.T) (multiraft.NodeID, uint64) {
	t.Helper()
	l := x.c.WaitLeader(1)
	st, _ := x.c.Node(l).Host().Status(1)
	return l, st.Term
}

// TestHostileHugeCommitHeartbeat: a heartbeat from the leader's replica, in
// the current term, committing index 2^40, used to make raft panic
// ("tocommit(1099511627776) is out of range"); coalesced or as a raft
// message, it is dropped.
func TestHostileHugeCommitHeartbeat(t *testing.T) {
	x := newHostile(t, nil)
	leader, term := x.leaderTerm(t)
	follower := multiraft.NodeID(2)
	if leader == follower {
		follower = 3
	}
	before := x.dropped(follower, "commit_beyond_log")
	h := x.c.Node(follower).Host()
	h.HandleBatch(&multiraft.MessageBatch{From: leader, To: follower, Heartbeats: []multiraft.Heartbeat{{
		Group: 1, From: testcluster.ReplicaOn(leader), To: testcluster.ReplicaOn(follower), Term: term, Commit: 1 << 40,
	}}})
	h.HandleBatch(&multiraft.MessageBatch{From: leader, To: follower, Messages: []multiraft.GroupMessage{{Group: 1, Message: &pb.Message{
		Type: pb.MsgHeartbeat.Enum(), From: new(uint64(testcluster.ReplicaOn(leader))), To: new(uint64(testcluster.ReplicaOn(follower))),
		Term: new(term), Commit: new(uint64(1 << 40)),
	}}}})
	testutil.SucceedsSoon(t, func() error {
		if got := x.dropped(follower, "commit_beyond_log"); got < before+2 {
			return fmt.Errorf("dropped %d beats, want %d", got-before, 2)
		}
		return nil
	})
	x.healthy(t)
}

// TestHostileBeatForUnknownGroup: a heartbeat for a group the node never
// had creates no replica and writes nothing, even with a huge commit; it
// is counted as for an unknown group.
func TestHostileBeatForUnknownGroup(t *testing.T) {
	x := newHostile(t, nil)
	const made = 4242
	h, eng := x.c.Node(2).Host(), x.c.Node(2).Engine()
	created := x.counter(2, "flotilla_raft_replicas_created_total")
	before := x.dropped(2, "unknown_group")
	for _, commit := range []uint64{0, 1 << 40} {
		h.HandleBatch(&multiraft.MessageBatch{From: 1, To: 2, Heartbeats: []multiraft.Heartbeat{{
			Group: made, From: testcluster.ReplicaOn(1), To: testcluster.ReplicaOn(2), Term: 7, Commit: commit,
		}}})
	}
	x.waitDropped(t, 2, "unknown_group", before+1)
	if _, ok := h.Status(made); ok {
		t.Fatal("a heartbeat created a replica")
	}
	if got := x.counter(2, "flotilla_raft_replicas_created_total"); got != created {
		t.Fatalf("replicas created: %d, was %d", got, created)
	}
	for _, key := range [][]byte{engine.RaftReplicaIDKey(made), engine.RaftHardStateKey(made)} {
		if _, err := eng.Get(key); !errors.Is(err, engine.ErrNotFound) {
			t.Fatalf("a heartbeat wrote %q: %v", key, err)
		}
	}
	x.healthy(t)
}

// TestHostileReplicaFlood: votes and appends for a flood of made-up groups
// create at most MaxUninitializedReplicas replicas; the rest are dropped
// (uninit_limit); the idle ones are collected, keeping their vote, and a
// later message re-creates one with it.
func TestHostileReplicaFlood(t *testing.T) {
	const bound = 8
	x := newHostile(t, func(cfg *multiraft.Config) {
		cfg.MaxUninitializedReplicas = bound
		cfg.UninitializedReplicaTimeout = time.Second
	})
	h, eng := x.c.Node(2).Host(), x.c.Node(2).Engine()
	candidate, self := testcluster.ReplicaOn(1), testcluster.ReplicaOn(2)
	const first, n = 1000, 100
	for i := range n {
		typ := pb.MsgVote
		if i%2 == 1 {
			typ = pb.MsgApp
		}
		h.HandleBatch(&multiraft.MessageBatch{From: 1, To: 2, Messages: []multiraft.GroupMessage{{Group: multiraft.GroupID(first + i), Message: &pb.Message{
			Type: typ.Enum(), From: new(uint64(candidate)), To: new(uint64(self)), Term: new(uint64(6)),
			Index: new(uint64(10)), LogTerm: new(uint64(5)),
		}}}})
		if got := h.UninitializedReplicas(); got > bound {
			t.Fatalf("%d uninitialized replicas after %d messages, bound %d", got, i+1, bound)
		}
	}
	if got := x.counter(2, "flotilla_raft_replicas_created_total"); got > bound {
		t.Fatalf("%d replicas created, bound %d", got, bound)
	}
	if got := x.dropped(2, "uninit_limit"); got < n-bound {
		t.Fatalf("%d messages dropped at the bound, want at least %d", got, n-bound)
	}
	// The first one voted for the candidate in term 6.
	voted := func(g multiraft.GroupID) error {
		v, err := eng.Get(engine.RaftHardStateKey(g))
		if err != nil {
			return err
		}
		var hs pb.HardState
		if err := proto.Unmarshal(v, &hs); err != nil {
			return err
		}
		if hs.GetTerm() != 6 || hs.GetVote() != uint64(candidate) {
			return fmt.Errorf("group %d: HardState %v, want a vote for %v in term 6", g, &hs, candidate)
		}
		return nil
	}
	testutil.SucceedsSoon(t, func() error { return voted(first) })
	// Idle, they are collected; their votes stay, their replica IDs go.
	testutil.SucceedsSoon(t, func() error {
		if got := h.UninitializedReplicas(); got != 0 {
			return fmt.Errorf("%d uninitialized replicas left", got)
		}
		return nil
	})
	if got := x.counter(2, "flotilla_raft_replicas_collected_total"); got == 0 {
		t.Fatal("nothing counted as collected")
	}
	if _, err := eng.Get(engine.RaftReplicaIDKey(first)); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("a collected replica's ID is still recorded: %v", err)
	}
	if err := voted(first); err != nil {
		t.Fatalf("a collected replica lost its vote: %v", err)
	}
	// Bootstrapping over it would forget the vote: refused.
	err := h.Bootstrap(first, []multiraft.Replica{{ID: candidate}, {ID: self}, {ID: testcluster.ReplicaOn(3)}})
	if !errors.Is(err, multiraft.ErrGroupExists) {
		t.Fatalf("Bootstrap over a collected replica's vote: %v, want ErrGroupExists", err)
	}
	if err := voted(first); err != nil {
		t.Fatalf("Bootstrap lost the vote: %v", err)
	}
	// Another candidate of the same term is refused: the re-created replica
	// remembers its vote.
	other := testcluster.ReplicaOn(3)
	h.HandleBatch(&multiraft.MessageBatch{From: 3, To: 2, Messages: []multiraft.GroupMessage{{Group: first, Message: &pb.Message{
		Type: pb.MsgVote.Enum(), From: new(uint64(other)), To: new(uint64(self)), Term: new(uint64(6)),
		Index: new(uint64(10)), LogTerm: new(uint64(5)),
	}}}})
	testutil.SucceedsSoon(t, func() error {
		if st, ok := h.Status(first); !ok || st.Term != 6 {
			return fmt.Errorf("group %d not re-created at term 6: %+v", first, st)
		}
		return nil
	})
	waitTicks(t, x.c, 2, 5)
	if err := voted(first); err != nil {
		t.Fatalf("the re-created replica voted twice: %v", err)
	}
	x.healthy(t)
}

// TestHostileAppendConflictingWithCommitted: appends from the leader's
// replica, in its term, rewriting committed entries: contiguous ones raft
// answers with its commit index (no entry is touched); non-contiguous ones,
// which used to make raft panic ("entry … conflict with committed entry"),
// are dropped. The committed log stays as it was.
func TestHostileAppendConflictingWithCommitted(t *testing.T) {
	x := newHostile(t, nil)
	leader, term := x.leaderTerm(t)
	follower := multiraft.NodeID(2)
	if leader == follower {
		follower = 3
	}
	h := x.c.Node(follower).Host()
	// The follower's log, settled: its last entry is committed, and its
	// term is known (an append must match it to reach raft's checks).
	var st multiraft.GroupStatus
	var lastTerm uint64
	testutil.SucceedsSoon(t, func() error {
		st, _ = h.Status(1)
		if st.Commit <= 12 || st.LastIndex != st.Commit {
			return fmt.Errorf("follower: commit %d, last index %d", st.Commit, st.LastIndex)
		}
		v, err := x.c.Node(follower).Engine().Get(engine.RaftLogKey(1, st.Commit))
		if err != nil {
			return err
		}
		var e pb.Entry
		if err := proto.Unmarshal(v, &e); err != nil {
			return err
		}
		lastTerm = e.GetTerm()
		return nil
	})
	garbage := func(first uint64, n int) []*pb.Entry {
		var es []*pb.Entry
		for i := range n {
			es = append(es, &pb.Entry{Index: new(first + uint64(i)), Term: new(term), Data: []byte("forged")})
		}
		return es
	}
	send := func(index, logTerm uint64, es []*pb.Entry) {
		h.HandleBatch(&multiraft.MessageBatch{From: leader, To: follower, Messages: []multiraft.GroupMessage{{Group: 1, Message: &pb.Message{
			Type: pb.MsgApp.Enum(), From: new(uint64(testcluster.ReplicaOn(leader))), To: new(uint64(testcluster.ReplicaOn(follower))),
			Term: new(term), Index: new(index), LogTerm: new(logTerm), Commit: new(st.Commit), Entries: es,
		}}}})
	}
	before := x.dropped(follower, "bad_entries")
	// Contiguous from the log's start, over the committed entries.
	send(10, 5, garbage(11, int(st.Commit-10)))
	// Matching the last (committed) entry, but overlapping the committed
	// entries before it.
	send(st.Commit, lastTerm, garbage(st.Commit-2, 4))
	// Skipping an index.
	send(st.Commit, lastTerm, append(garbage(st.Commit+1, 1), garbage(st.Commit+3, 1)...))
	testutil.SucceedsSoon(t, func() error {
		if got := x.dropped(follower, "bad_entries"); got < before+2 {
			return fmt.Errorf("dropped %d bad appends, want 2", got-before)
		}
		return nil
	})
	x.healthy(t)
}

// TestHostileMalformedMessages: messages raft would panic on or that no
// peer sends: a vote of term 0, a read request with a term (a follower
// forwarding it panicked) or without context, heartbeat responses acking a
// read never asked for (a quorum of them panicked the leader), an append
// response past the log, a batch claiming to come from the receiving node,
// a local message. Each is dropped and counted.
func TestHostileMalformedMessages(t *testing.T) {
	x := newHostile(t, nil)
	leader, term := x.leaderTerm(t)
	follower := multiraft.NodeID(2)
	if leader == follower {
		follower = 3
	}
	other := multiraft.NodeID(6) - leader - follower // the third node
	from, to := new(uint64(testcluster.ReplicaOn(follower))), new(uint64(testcluster.ReplicaOn(leader)))
	// A heartbeat response acking a read position never handed out: with a
	// quorum of them, raft sliced its pending reads out of range.
	ackAll := func(node multiraft.NodeID) *multiraft.MessageBatch {
		return &multiraft.MessageBatch{From: node, To: leader, HeartbeatResps: []multiraft.Heartbeat{{
			Group: 1, From: testcluster.ReplicaOn(node), To: testcluster.ReplicaOn(leader), Term: term,
			Context: []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f},
		}}}
	}
	for _, tc := range []struct {
		reason string
		node   multiraft.NodeID
		batch  *multiraft.MessageBatch
	}{
		// A follower forwards a read request to its leader: raft panicked
		// sending one with a term.
		{"bad_term", follower, &multiraft.MessageBatch{From: other, To: follower, Messages: []multiraft.GroupMessage{{Group: 1, Message: &pb.Message{
			Type: pb.MsgReadIndex.Enum(), From: new(uint64(testcluster.ReplicaOn(other))), To: from, Term: new(term),
			Entries: []*pb.Entry{{Data: []byte("r")}},
		}}}}},
		{"bad_term", leader, &multiraft.MessageBatch{From: follower, To: leader, Messages: []multiraft.GroupMessage{{Group: 1, Message: &pb.Message{
			Type: pb.MsgVote.Enum(), From: from, To: to, Term: new(uint64(0)), Index: new(uint64(1 << 30)), LogTerm: new(uint64(0)),
		}}}}},
		{"bad_read_index", leader, &multiraft.MessageBatch{From: follower, To: leader, Messages: []multiraft.GroupMessage{{Group: 1, Message: &pb.Message{
			Type: pb.MsgReadIndex.Enum(), From: from, To: to,
		}}}}},
		{"bad_context", leader, ackAll(follower)},
		{"bad_context", leader, ackAll(other)},
		{"index_beyond_log", leader, &multiraft.MessageBatch{From: follower, To: leader, Messages: []multiraft.GroupMessage{{Group: 1, Message: &pb.Message{
			Type: pb.MsgAppResp.Enum(), From: from, To: to, Term: new(term), Index: new(uint64(1 << 40)),
		}}}}},
		{"not_from_peer", leader, &multiraft.MessageBatch{From: leader, To: leader, Messages: []multiraft.GroupMessage{{Group: 1, Message: &pb.Message{
			Type: pb.MsgAppResp.Enum(), From: to, To: to, Term: new(term), Index: new(uint64(1 << 40)),
		}}}}},
		{"not_from_peer", leader, &multiraft.MessageBatch{From: follower, To: leader, Messages: []multiraft.GroupMessage{{Group: 1, Message: &pb.Message{
			Type: pb.MsgStorageAppendResp.Enum(), From: from, To: to, Term: new(term), Index: new(uint64(1 << 40)),
		}}}}},
	} {
		before := x.dropped(tc.node, tc.reason)
		x.c.Node(tc.node).Host().HandleBatch(tc.batch)
		x.waitDropped(t, tc.node, tc.reason, before)
	}
	x.healthy(t)
}

// TestNewReplicaCreatedAfterLostAppend: a replica added while its node
// hears nothing from the leader (so the append that would create it is
// lost) is created and caught up once the path heals: the leader's
// heartbeats get an answer from the node (heartbeats do not create
// replicas), and the probe's next append does.
func TestNewReplicaCreatedAfterLostAppend(t *testing.T) {
	const g = 1
	c, p, ctx := groupTest(t, testcluster.Options{Nodes: 3}, 1, 2)
	if err := p.proposeUntilAcked(ctx, g, 5); err != nil {
		t.Fatal(err)
	}
	c.Net.Cut(1, 3)
	confChange(t, ctx, c, g, multiraft.AddLearner(testcluster.ReplicaOn(3)))
	waitTicks(t, c, 1, 10)
	if _, ok := c.Node(3).Host().Status(g); ok {
		t.Fatal("replica created through a cut link")
	}
	c.Net.Heal()
	testutil.SucceedsSoon(t, func() error {
		st, ok := c.Node(3).Host().Status(g)
		lst, _ := c.Node(1).Host().Status(g)
		if !ok || st.Applied < lst.Commit {
			return fmt.Errorf("new replica applied %d, leader committed %d", st.Applied, lst.Commit)
		}
		return nil
	})
	if err := p.proposeUntilAcked(ctx, g, 3); err != nil {
		t.Fatal(err)
	}
}
