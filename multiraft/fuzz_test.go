// Copyright 2026 The Flotilla Authors. All rights reserved.

package multiraft

import (
	"context"
	"math"
	"testing"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
)

// hostileSeeds are encoded batches to node 1, a follower of group 2 (voters
// on nodes 1, 2, 3; log at the initial position) and the only voter of
// group 1: the attacks of TESTING.md #25, each of which panicked a host or
// created a replica before peers' messages were checked.
func hostileSeeds() []*MessageBatch {
	r := func(n NodeID) ReplicaID { return MakeReplicaID(n, 1) }
	msg := func(group GroupID, typ pb.MessageType, term uint64, mod func(m *pb.Message)) *MessageBatch {
		m := &pb.Message{Type: typ.Enum(), From: new(uint64(r(2))), To: new(uint64(r(1))), Term: new(term)}
		if mod != nil {
			mod(m)
		}
		return &MessageBatch{From: 2, To: 1, Messages: []GroupMessage{{Group: group, Message: m}}}
	}
	entry := func(index, term uint64) *pb.Entry {
		return &pb.Entry{Index: new(index), Term: new(term), Data: []byte("x")}
	}
	return []*MessageBatch{
		// The huge-commit heartbeat, coalesced and as a raft message.
		{From: 2, To: 1, Heartbeats: []Heartbeat{{Group: 2, From: r(2), To: r(1), Term: 6, Commit: 1 << 40}}},
		msg(2, pb.MsgHeartbeat, 6, func(m *pb.Message) { m.Commit = new(uint64(1 << 40)) }),
		// A beat for a made-up group.
		{From: 2, To: 1, Heartbeats: []Heartbeat{{Group: 99, From: r(2), To: r(1), Term: 6, Commit: 1 << 40}}},
		// Votes and appends for made-up groups.
		msg(100, pb.MsgVote, 6, func(m *pb.Message) { m.Index, m.LogTerm = new(uint64(10)), new(uint64(5)) }),
		msg(101, pb.MsgApp, 6, func(m *pb.Message) { m.Index, m.LogTerm = new(uint64(10)), new(uint64(5)) }),
		// An append to a made-up group from index 0 (no leader sends one).
		msg(102, pb.MsgApp, 6, func(m *pb.Message) {
			m.Index, m.LogTerm, m.Commit, m.Entries = new(uint64(0)), new(uint64(0)), new(uint64(2)), []*pb.Entry{entry(1, 6), entry(2, 6)}
		}),
		// An append overlapping the log, and one skipping an index.
		msg(2, pb.MsgApp, 6, func(m *pb.Message) {
			m.Index, m.LogTerm, m.Commit, m.Entries = new(uint64(10)), new(uint64(5)), new(uint64(11)), []*pb.Entry{entry(11, 6)}
		}),
		msg(2, pb.MsgApp, 6, func(m *pb.Message) {
			m.Index, m.LogTerm, m.Commit, m.Entries = new(uint64(11)), new(uint64(6)), new(uint64(11)), []*pb.Entry{entry(9, 6), entry(10, 6)}
		}),
		msg(2, pb.MsgApp, 6, func(m *pb.Message) {
			m.Index, m.LogTerm, m.Entries = new(uint64(10)), new(uint64(5)), []*pb.Entry{entry(11, 6), entry(13, 6)}
		}),
		// Terms: 0, near overflow, entries past the message's.
		msg(2, pb.MsgVote, 0, nil),
		msg(2, pb.MsgApp, math.MaxUint64, func(m *pb.Message) { m.Index, m.LogTerm = new(uint64(10)), new(uint64(5)) }),
		msg(2, pb.MsgApp, 6, func(m *pb.Message) {
			m.Index, m.LogTerm, m.Entries = new(uint64(10)), new(uint64(5)), []*pb.Entry{entry(11, 9)}
		}),
		// A read request with a term (a follower forwards it), one without
		// context; a read response without context.
		msg(2, pb.MsgReadIndex, 6, func(m *pb.Message) { m.Entries = []*pb.Entry{{Data: []byte("r")}} }),
		msg(2, pb.MsgReadIndex, 0, nil),
		msg(1, pb.MsgReadIndex, 0, nil),
		msg(2, pb.MsgReadIndexResp, 6, nil),
		// Heartbeat responses acking reads never asked for, to the leader
		// of group 1.
		{From: 2, To: 1, HeartbeatResps: []Heartbeat{{Group: 1, From: r(2), To: r(1), Term: 6, Context: []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}}}},
		{From: 2, To: 1, HeartbeatResps: []Heartbeat{{Group: 1, From: r(2), To: r(1), Term: 6, Context: []byte{1}}}},
		// An append response past the log; a transfer request with a term.
		msg(1, pb.MsgAppResp, 6, func(m *pb.Message) { m.Index = new(uint64(1 << 40)) }),
		msg(2, pb.MsgTransferLeader, 6, nil),
		// A batch claiming to come from node 1 itself, and a local message.
		{From: 1, To: 1, Messages: []GroupMessage{{Group: 1, Message: &pb.Message{
			Type: pb.MsgAppResp.Enum(), From: new(uint64(r(1))), To: new(uint64(r(1))), Term: new(uint64(6)), Index: new(uint64(1 << 40)),
		}}}},
		msg(2, pb.MsgStorageAppendResp, 6, func(m *pb.Message) { m.Index = new(uint64(1 << 40)) }),
	}
}

// FuzzHandleBatch decodes arbitrary bytes as a batch (UnmarshalBatch, as
// the transport does) and hands it to a host whose group 2 is a follower
// and group 1 a leader, then processes every group: no input may panic the
// host or make it fail, and group 1 still commits. The seeds are the
// attacks of TESTING.md #25 (hostileSeeds; testdata/fuzz/FuzzHandleBatch).
func FuzzHandleBatch(f *testing.F) {
	for _, b := range hostileSeeds() {
		data, err := b.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	_, cfg := testHostConfig(f)
	cfg.MaxUninitializedReplicas = 4
	h, err := NewHost(cfg)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(h.Stop)
	r := func(n NodeID) Replica { return Replica{ID: MakeReplicaID(n, 1)} }
	if err := h.Bootstrap(1, []Replica{r(1)}); err != nil {
		f.Fatal(err)
	}
	if err := h.Bootstrap(2, []Replica{r(1), r(2), r(3)}); err != nil {
		f.Fatal(err)
	}
	// commits proposes to group 1 until it commits, ticking so that it
	// elects again if a message of a later term deposed it.
	commits := func() error {
		deadline := time.Now().Add(20 * time.Second)
		for {
			h.Tick()
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			_, err := h.ProposeAndWait(ctx, 1, []byte("after"))
			cancel()
			if err == nil || time.Now().After(deadline) {
				return err
			}
		}
	}
	if err := commits(); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		batch, err := UnmarshalBatch(data)
		if err != nil {
			return
		}
		h.HandleBatch(batch)
		// Step what it queued here, on this goroutine (procMu keeps the
		// workers out meanwhile), so that a panic names this input.
		for _, id := range h.Groups() {
			if g := h.group(id); g != nil {
				h.processGroup(g)
			}
		}
		if err := h.Err(); err != nil {
			t.Fatalf("host failed: %v", err)
		}
		if err := commits(); err != nil {
			t.Fatalf("group 1 no longer commits: %v", err)
		}
	})
}
