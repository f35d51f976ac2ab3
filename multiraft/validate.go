// Copyright 2026 The Flotilla Authors. All rights reserved.

package multiraft

import (
	"encoding/binary"
	"math"

	pb "go.etcd.io/raft/v3/raftpb"
)

// Checking peers' messages before raft sees them. etcd raft trusts its
// peers: a message no correct peer would send can make it panic (a
// heartbeat committing past the end of the log: "tocommit(…) is out of
// range"; an append whose entries are not contiguous: "entry … conflict
// with committed entry"; a vote request of term 0, whose response raft
// refuses to send; a read request or transfer with a term, which a
// follower forwards and raft refuses to send; a heartbeat response whose
// read context is not an index raft handed out). A host must survive any
// input, so a worker checks each peer message (validatePeerMessage) right
// before stepping it, against what it knows of the replica (stepView), and
// drops, counting it, what raft could not take. The checks hold every
// message a correct peer sends; they are O(1) per message, plus O(entries)
// for an append (a comparison per entry, no allocation).
//
// What raft already handles safely is left to raft: messages of an older
// term, appends that start below the commit index (raft answers with its
// commit index before looking at the entries, so once entries are
// contiguous an append can never conflict with a committed entry), an
// append's commit index beyond its last entry (raft commits up to the
// lesser of the two, and a leader sends its commit index with appends that
// stop short of it: probes, size-limited appends).

// dropReason says why a message from a peer was dropped; it labels
// flotilla_raft_messages_dropped_total.
type dropReason uint8

const (
	dropNone dropReason = iota
	// dropNotFromPeer: a type peers do not send (raft's local messages,
	// snapshots outside their stream), a sender that is not a valid replica
	// on the batch's node, or a batch claiming to come from this node.
	dropNotFromPeer
	// dropUnknownGroup: for a group not on this host, of a type that does
	// not create a replica (heartbeats, responses).
	dropUnknownGroup
	// dropUninitLimit: it would create an uninitialized replica beyond
	// Config.MaxUninitializedReplicas.
	dropUninitLimit
	// dropTombstone: for a replica removed from this node.
	dropTombstone
	// dropWrongReplica: for another replica of the group than this node's,
	// or for a replica on another node.
	dropWrongReplica
	// dropHostStopping: the host is stopping.
	dropHostStopping
	// dropCreateFailed: creating the replica failed (storage).
	dropCreateFailed
	// dropBadTerm: a term no correct peer sends (0 where raft needs one, a
	// term on a read request, or beyond maxPlausibleTerm).
	dropBadTerm
	// dropCommitBeyondLog: a heartbeat committing past the replica's log.
	dropCommitBeyondLog
	// dropBadEntries: an append before the log's start, whose entries are
	// not contiguous from its index, or whose terms go down or beyond the
	// message's term.
	dropBadEntries
	// dropIndexBeyondLog: an append response acknowledging or rejecting
	// an index past the leader's log.
	dropIndexBeyondLog
	// dropBadContext: a heartbeat (response) whose read context is not one
	// this replica handed out in the response's term.
	dropBadContext
	// dropBadReadIndex: a read request or response without exactly one
	// entry (its context).
	dropBadReadIndex
	// dropOutboxFull: an outgoing message beyond Config.MaxOutboxMessages.
	dropOutboxFull
	// dropSendFailed: an outgoing batch the transport refused.
	dropSendFailed
	numDropReasons
)

var dropReasonNames = [numDropReasons]string{
	dropNone:            "none",
	dropNotFromPeer:     "not_from_peer",
	dropUnknownGroup:    "unknown_group",
	dropUninitLimit:     "uninit_limit",
	dropTombstone:       "tombstone",
	dropWrongReplica:    "wrong_replica",
	dropHostStopping:    "host_stopping",
	dropCreateFailed:    "create_failed",
	dropBadTerm:         "bad_term",
	dropCommitBeyondLog: "commit_beyond_log",
	dropBadEntries:      "bad_entries",
	dropIndexBeyondLog:  "index_beyond_log",
	dropBadContext:      "bad_context",
	dropBadReadIndex:    "bad_read_index",
	dropOutboxFull:      "outbox_full",
	dropSendFailed:      "send_failed",
}

func (r dropReason) String() string {
	if r < numDropReasons {
		return dropReasonNames[r]
	}
	return "unknown"
}

// maxPlausibleTerm bounds the terms accepted from peers. Terms grow by one
// per election, so no group comes near it (an election every millisecond
// would take 8,900 years); a forged term near 2^64 would make raft's term
// wrap to 0 at the next campaign, and raft panics sending a vote of term 0.
const maxPlausibleTerm = 1 << 48

// stepView is what a worker knows of its replica when it steps a peer's
// message: enough to tell what raft could not take, kept up to date without
// asking raft (RawNode.Status allocates).
type stepView struct {
	// lastIndex is the replica's raft last index (unstable entries
	// included) as of the last Ready (group.noteReady). Within a pass it
	// stays: appends stepped in the pass may truncate the log
	// (truncatedTo), but no commit a leader sends exceeds what it knew of
	// this log before.
	lastIndex uint64
	// truncatedTo, if not 0, is the lowest end of an append stepped in
	// this pass from the replica's current leader that raft may have
	// truncated the log to (findConflict truncates at the first entry that
	// differs, then appends: the log then ends with the append's last
	// entry). Raft may have kept a longer log, if nothing differed.
	truncatedTo uint64
	// readCtxTerm and readCtxMax: the largest read context (raft's
	// ReadIndex position, 8 bytes little-endian) this replica sent in a
	// heartbeat, as leader in term readCtxTerm. Raft's positions start over
	// with each leadership and grow while it lasts, and a replica leads at
	// most once per term, so a response of that term acking at most
	// readCtxMax acks a position raft handed out; any other would make it
	// slice its pending reads out of range.
	readCtxTerm, readCtxMax uint64
}

// validatePeerMessage reports why raft must not see m, a message from a
// peer for the replica v describes, or dropNone. It does not change v.
func validatePeerMessage(v *stepView, m *pb.Message) dropReason {
	term := m.GetTerm()
	if term > maxPlausibleTerm {
		return dropBadTerm
	}
	switch m.GetType() {
	case pb.MsgReadIndex:
		// Raft sends read requests without a term and forwards them as they
		// are: one with a term would make a follower panic forwarding it.
		if term != 0 {
			return dropBadTerm
		}
		if len(m.GetEntries()) != 1 {
			return dropBadReadIndex
		}
		return dropNone
	case pb.MsgTransferLeader:
		// A follower forwards it to its leader (raft sets the term): the
		// caller steps it without a term, as the local request it stands
		// for (stepMessage).
		return dropNone
	}
	// Every other message of a peer carries its term: raft takes a message
	// without one for a local message, skipping its term checks.
	if term == 0 {
		return dropBadTerm
	}
	switch m.GetType() {
	case pb.MsgApp:
		return validateAppend(v, m)
	case pb.MsgAppResp:
		// A follower acknowledges, or rejects, an index the leader sent it:
		// never past the leader's log.
		if m.GetIndex() > v.lastIndex {
			return dropIndexBeyondLog
		}
	case pb.MsgHeartbeat:
		// A leader sends min(the follower's match, its commit): never past
		// the follower's log. (Past an append stepped in the same pass,
		// stepPeer lowers it: see clampCommit.)
		if m.GetCommit() > v.lastIndex {
			return dropCommitBeyondLog
		}
		if n := len(m.GetContext()); n != 0 && n != 8 {
			return dropBadContext
		}
	case pb.MsgHeartbeatResp:
		ctx := m.GetContext()
		switch {
		case len(ctx) == 0:
		case len(ctx) != 8 || term != v.readCtxTerm || binary.LittleEndian.Uint64(ctx) > v.readCtxMax:
			return dropBadContext
		}
	case pb.MsgVote, pb.MsgPreVote:
		// A candidate's last entry is of its term or older.
		if m.GetLogTerm() > term {
			return dropBadTerm
		}
	case pb.MsgReadIndexResp:
		if len(m.GetEntries()) != 1 {
			return dropBadReadIndex
		}
	}
	return dropNone
}

// validateAppend checks a MsgApp of a non-zero, plausible term: it starts
// at or after the log's initial position (every log starts after
// initialLogIndex, so no leader sends anything before it), its entries are
// contiguous from m.Index+1, of known types, with terms that never go down
// from the previous entry's (m.LogTerm) nor exceed the message's term.
func validateAppend(v *stepView, m *pb.Message) dropReason {
	prevIndex, prevTerm, term := m.GetIndex(), m.GetLogTerm(), m.GetTerm()
	ents := m.GetEntries()
	if prevIndex < initialLogIndex || prevTerm > term || prevIndex > math.MaxUint64-uint64(len(ents)) {
		return dropBadEntries
	}
	prevTerm = max(prevTerm, 1)
	for i, e := range ents {
		if e.GetIndex() != prevIndex+1+uint64(i) || e.GetTerm() < prevTerm || e.GetTerm() > term {
			return dropBadEntries
		}
		switch e.GetType() {
		case pb.EntryNormal, pb.EntryConfChange, pb.EntryConfChangeV2:
		default:
			return dropBadEntries
		}
		prevTerm = e.GetTerm()
	}
	return dropNone
}

// afterStep updates v for a peer message raft just took, raft's term now
// being term: an append with entries from the leader of that term may have
// truncated the log back to its last entry (one of an older term raft
// ignored, one without entries truncates nothing). The next Ready says
// where the log ends.
func (v *stepView) afterStep(m *pb.Message, term uint64) {
	if m.GetType() == pb.MsgApp && len(m.GetEntries()) > 0 && m.GetTerm() == term {
		end := m.GetIndex() + uint64(len(m.GetEntries()))
		if v.truncatedTo == 0 || end < v.truncatedTo {
			v.truncatedTo = end
		}
	}
}

// clampCommit returns the commit index a valid heartbeat may be stepped
// with: its own, or, past the end of an append stepped earlier in the pass
// that may have truncated the log, that end. A leader's heartbeat commits
// at most the follower's match, entries that agree with its log, and an
// append of its own in its term leaves the log agreeing with it up to the
// append's end: committing less of it is always safe, and dropping the
// beat instead would lose its election-timer reset and read acknowledgement.
func (v *stepView) clampCommit(commit uint64) uint64 {
	if v.truncatedTo != 0 && commit > v.truncatedTo {
		return v.truncatedTo
	}
	return commit
}

// noteSentBeat records the read context of a heartbeat the replica sends
// (as leader, in the message's term).
func (v *stepView) noteSentBeat(m *pb.Message) {
	ctx := m.GetContext()
	if len(ctx) != 8 {
		return
	}
	pos := binary.LittleEndian.Uint64(ctx)
	switch term := m.GetTerm(); {
	case term > v.readCtxTerm:
		v.readCtxTerm, v.readCtxMax = term, pos
	case term == v.readCtxTerm:
		v.readCtxMax = max(v.readCtxMax, pos)
	}
}

// noteAppend records the raft last index after a Ready's MsgStorageAppend:
// the last of its entries, which end raft's unstable log (a truncation
// brings the entries after it with it), or the snapshot's index.
func (v *stepView) noteAppend(m *pb.Message) {
	if ents := m.GetEntries(); len(ents) > 0 {
		v.lastIndex = ents[len(ents)-1].GetIndex()
	} else if snap := m.GetSnapshot(); snap != nil {
		v.lastIndex = snap.GetMetadata().GetIndex()
	}
}
