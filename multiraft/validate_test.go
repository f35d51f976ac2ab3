// Copyright 2026 The Flotilla Authors. All rights reserved.

package multiraft

import (
	"encoding/binary"
	"math"
	"testing"

	pb "go.etcd.io/raft/v3/raftpb"
)

func ents(first, term uint64, n int) []*pb.Entry {
	var es []*pb.Entry
	for i := range n {
		es = append(es, &pb.Entry{Index: new(first + uint64(i)), Term: new(term), Type: pb.EntryNormal.Enum()})
	}
	return es
}

func readCtx(pos uint64) []byte { return binary.LittleEndian.AppendUint64(nil, pos) }

// TestValidatePeerMessage: the checks a worker makes before raft steps a
// peer's message, each against the message every correct peer sends in its
// place. The replica has 20 entries and, as leader in term 3, sent read
// contexts up to 5.
func TestValidatePeerMessage(t *testing.T) {
	view := stepView{lastIndex: 20, readCtxTerm: 3, readCtxMax: 5}
	msg := func(typ pb.MessageType, term uint64, mod func(m *pb.Message)) *pb.Message {
		m := &pb.Message{Type: typ.Enum(), From: new(uint64(MakeReplicaID(2, 1))), To: new(uint64(MakeReplicaID(1, 1))),
			Term: new(term)}
		if mod != nil {
			mod(m)
		}
		return m
	}
	app := func(term, index, logTerm, commit uint64, es []*pb.Entry) *pb.Message {
		return msg(pb.MsgApp, term, func(m *pb.Message) {
			m.Index, m.LogTerm, m.Commit, m.Entries = new(index), new(logTerm), new(commit), es
		})
	}
	for _, tc := range []struct {
		name string
		m    *pb.Message
		want dropReason
	}{
		// Heartbeats.
		{"beat", msg(pb.MsgHeartbeat, 3, func(m *pb.Message) { m.Commit = new(uint64(20)) }), dropNone},
		{"beat with read context", msg(pb.MsgHeartbeat, 3, func(m *pb.Message) { m.Context = readCtx(9) }), dropNone},
		{"beat committing past the log", msg(pb.MsgHeartbeat, 3, func(m *pb.Message) { m.Commit = new(uint64(1 << 40)) }), dropCommitBeyondLog},
		{"beat committing one past the log", msg(pb.MsgHeartbeat, 3, func(m *pb.Message) { m.Commit = new(uint64(21)) }), dropCommitBeyondLog},
		{"beat of term 0", msg(pb.MsgHeartbeat, 0, nil), dropBadTerm},
		{"beat of a huge term", msg(pb.MsgHeartbeat, math.MaxUint64, nil), dropBadTerm},
		{"beat with a short context", msg(pb.MsgHeartbeat, 3, func(m *pb.Message) { m.Context = []byte{1} }), dropBadContext},
		// Heartbeat responses.
		{"beat response", msg(pb.MsgHeartbeatResp, 3, nil), dropNone},
		{"beat response acking a read", msg(pb.MsgHeartbeatResp, 3, func(m *pb.Message) { m.Context = readCtx(5) }), dropNone},
		{"beat response acking a read never sent", msg(pb.MsgHeartbeatResp, 3, func(m *pb.Message) { m.Context = readCtx(6) }), dropBadContext},
		{"beat response acking a read of another term", msg(pb.MsgHeartbeatResp, 4, func(m *pb.Message) { m.Context = readCtx(1) }), dropBadContext},
		{"beat response with a short context", msg(pb.MsgHeartbeatResp, 3, func(m *pb.Message) { m.Context = []byte{0} }), dropBadContext},
		// Appends.
		{"append", app(3, 20, 2, 22, ents(21, 3, 2)), dropNone},
		{"probe committing beyond its entries", app(3, 12, 2, 1<<40, ents(13, 2, 1)), dropNone},
		{"empty append", app(3, 20, 3, 20, nil), dropNone},
		{"append below the committed index (raft answers it)", app(6, 10, 5, 20, ents(11, 6, 5)), dropNone},
		{"append before the log's start", app(3, 0, 0, 5, ents(1, 3, 5)), dropBadEntries},
		{"entries not contiguous", app(3, 20, 2, 20, append(ents(21, 3, 1), ents(23, 3, 1)...)), dropBadEntries},
		{"entries overlapping the previous index", app(3, 20, 2, 20, ents(15, 3, 3)), dropBadEntries},
		{"entry past the message's term", app(3, 20, 2, 20, ents(21, 4, 1)), dropBadEntries},
		{"entry terms going down", app(3, 20, 2, 20, append(ents(21, 3, 1), ents(22, 2, 1)...)), dropBadEntries},
		{"entry term below the previous entry's", app(3, 20, 3, 20, ents(21, 2, 1)), dropBadEntries},
		{"previous term past the message's", app(3, 20, 4, 20, nil), dropBadEntries},
		{"index overflow", app(3, math.MaxUint64, 3, 0, ents(0, 3, 1)), dropBadEntries},
		{"entry of an unknown type", app(3, 20, 3, 20, []*pb.Entry{{Index: new(uint64(21)), Term: new(uint64(3)), Type: pb.EntryType(7).Enum()}}), dropBadEntries},
		{"append of term 0", app(0, 20, 0, 20, nil), dropBadTerm},
		// Append responses.
		{"append response", msg(pb.MsgAppResp, 3, func(m *pb.Message) { m.Index = new(uint64(20)) }), dropNone},
		{"append response past the log", msg(pb.MsgAppResp, 3, func(m *pb.Message) { m.Index = new(uint64(1 << 40)) }), dropIndexBeyondLog},
		{"rejection past the log", msg(pb.MsgAppResp, 3, func(m *pb.Message) { m.Index, m.Reject = new(uint64(99)), new(true) }), dropIndexBeyondLog},
		// Votes.
		{"vote", msg(pb.MsgVote, 4, func(m *pb.Message) { m.Index, m.LogTerm = new(uint64(30)), new(uint64(3)) }), dropNone},
		{"vote of term 0", msg(pb.MsgVote, 0, nil), dropBadTerm},
		{"pre-vote of term 0", msg(pb.MsgPreVote, 0, nil), dropBadTerm},
		{"vote for a log newer than the term", msg(pb.MsgVote, 4, func(m *pb.Message) { m.LogTerm = new(uint64(5)) }), dropBadTerm},
		{"vote of a term near overflow", msg(pb.MsgVote, math.MaxUint64, nil), dropBadTerm},
		{"vote response", msg(pb.MsgVoteResp, 4, nil), dropNone},
		// Reads and transfers.
		{"read request", msg(pb.MsgReadIndex, 0, func(m *pb.Message) { m.Entries = []*pb.Entry{{Data: []byte("ctx")}} }), dropNone},
		{"read request with a term", msg(pb.MsgReadIndex, 3, func(m *pb.Message) { m.Entries = []*pb.Entry{{Data: []byte("ctx")}} }), dropBadTerm},
		{"read request without context", msg(pb.MsgReadIndex, 0, nil), dropBadReadIndex},
		{"read response", msg(pb.MsgReadIndexResp, 3, func(m *pb.Message) { m.Entries = []*pb.Entry{{Data: []byte("ctx")}} }), dropNone},
		{"read response without context", msg(pb.MsgReadIndexResp, 3, nil), dropBadReadIndex},
		{"forwarded transfer", msg(pb.MsgTransferLeader, 3, nil), dropNone},
		{"timeout now", msg(pb.MsgTimeoutNow, 3, nil), dropNone},
	} {
		v := view
		if got := validatePeerMessage(&v, tc.m); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
		if v != view {
			t.Errorf("%s: validating changed the view", tc.name)
		}
	}
}

// TestStepViewTracksTheLog: the view's last index follows Ready's appends
// (a truncation brings its entries), snapshots, and is lowered by appends
// stepped in a pass; read contexts start over with each term.
func TestStepViewTracksTheLog(t *testing.T) {
	var v stepView
	v.noteAppend(&pb.Message{Entries: ents(11, 6, 5)})
	if v.lastIndex != 15 {
		t.Fatalf("after appending 11..15: %d", v.lastIndex)
	}
	v.noteAppend(&pb.Message{Entries: ents(13, 7, 1)}) // truncated at 13
	if v.lastIndex != 13 {
		t.Fatalf("after truncating to 13: %d", v.lastIndex)
	}
	v.noteAppend(&pb.Message{}) // a HardState alone
	if v.lastIndex != 13 {
		t.Fatalf("after a HardState: %d", v.lastIndex)
	}
	v.noteAppend(&pb.Message{Snapshot: &pb.Snapshot{Metadata: &pb.SnapshotMetadata{Index: new(uint64(40))}}})
	if v.lastIndex != 40 {
		t.Fatalf("after a snapshot at 40: %d", v.lastIndex)
	}
	// Appends stepped in a pass: one of an older term than raft's, or
	// without entries, truncates nothing; one of the leader's term may
	// have truncated the log to its end, and a heartbeat's commit past
	// that end is lowered to it (never past lastIndex: dropped).
	v.afterStep(&pb.Message{Type: pb.MsgApp.Enum(), Term: new(uint64(6)), Index: new(uint64(20)), Entries: ents(21, 6, 2)}, 7)
	v.afterStep(&pb.Message{Type: pb.MsgApp.Enum(), Term: new(uint64(7)), Index: new(uint64(20))}, 7)
	if v.truncatedTo != 0 || v.clampCommit(40) != 40 {
		t.Fatalf("an append raft ignores, or one without entries, lowered the view: %+v", v)
	}
	v.afterStep(&pb.Message{Type: pb.MsgApp.Enum(), Term: new(uint64(7)), Index: new(uint64(30)), Entries: ents(31, 7, 2)}, 7)
	if v.lastIndex != 40 || v.truncatedTo != 32 {
		t.Fatalf("after stepping an append ending at 32: %+v", v)
	}
	if got := v.clampCommit(35); got != 32 {
		t.Fatalf("commit 35 after an append ending at 32: clamped to %d", got)
	}
	if got := v.clampCommit(31); got != 31 {
		t.Fatalf("commit 31 after an append ending at 32: %d", got)
	}
	v.afterStep(&pb.Message{Type: pb.MsgHeartbeat.Enum(), Term: new(uint64(7)), Commit: new(uint64(1))}, 7)
	if v.truncatedTo != 32 {
		t.Fatalf("a heartbeat moved the view: %+v", v)
	}

	beat := func(term, pos uint64) *pb.Message {
		return &pb.Message{Type: pb.MsgHeartbeat.Enum(), Term: new(term), Context: readCtx(pos)}
	}
	v.noteSentBeat(beat(3, 4))
	v.noteSentBeat(beat(3, 2))
	if v.readCtxTerm != 3 || v.readCtxMax != 4 {
		t.Fatalf("read contexts of term 3: %d@%d", v.readCtxMax, v.readCtxTerm)
	}
	v.noteSentBeat(beat(5, 1))
	v.noteSentBeat(beat(3, 9)) // late, from an older leadership
	if v.readCtxTerm != 5 || v.readCtxMax != 1 {
		t.Fatalf("read contexts after a new term: %d@%d", v.readCtxMax, v.readCtxTerm)
	}
}
