// Copyright 2026 The Flotilla Authors. All rights reserved.

package multiraft

import (
	"encoding/binary"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/tracker"
)

// Log truncation is a replicated command: the leader proposes "truncate the
// log up to index i" and every replica, when it applies the command, hands
// the deletion to the log writer. The applied state that covers i was
// committed before (WAL order), so a crash can never leave a log truncated
// past what the durable applied state needs.
//
// The leader proposes a truncation, on a tick with nothing else to do, once
// the log holds more than RaftLogTruncationThreshold entries, up to the
// smallest of: its applied index, each live follower's match index, and the
// index of each snapshot in flight. If the log holds more than
// RaftLogMaxEntries, live followers that lag are no longer waited for (they
// will need a snapshot), but snapshots in flight still are.

// Internal commands are normal entries with their own header; they never
// reach the state machine.
const (
	internalVersion  = 2
	internalTruncate = 1
)

func encodeTruncate(index uint64) []byte {
	buf := []byte{internalVersion, internalTruncate}
	return binary.BigEndian.AppendUint64(buf, index)
}

// decodeInternal returns the truncation index of an internal command.
func decodeInternal(data []byte) (truncateTo uint64, ok bool) {
	if len(data) != 10 || data[0] != internalVersion || data[1] != internalTruncate {
		return 0, false
	}
	return binary.BigEndian.Uint64(data[2:]), true
}

// maybeTruncateLog proposes a truncation if the leader's log is long enough
// (worker, on ticks).
func (h *Host) maybeTruncateLog(g *group) {
	st := g.rn.BasicStatus()
	if g.truncationPending && g.truncationTerm != st.GetTerm() {
		// Proposed in another term: its entry may have been overwritten.
		g.truncationPending = false
	}
	if g.truncationPending || st.RaftState != raft.StateLeader {
		return
	}
	first, err := g.storage.FirstIndex()
	if err != nil {
		return
	}
	applied := g.applied.index
	if applied < first || applied-first+1 < h.cfg.RaftLogTruncationThreshold {
		return
	}
	oversized := applied-first+1 > h.cfg.RaftLogMaxEntries
	index := applied
	g.rn.WithProgress(func(id uint64, _ raft.ProgressType, pr tracker.Progress) {
		if ReplicaID(id) == g.replicaID {
			return
		}
		switch {
		case pr.State == tracker.StateSnapshot:
			index = min(index, pr.PendingSnapshot)
		case oversized || h.liveness.isDown(ReplicaID(id).Node()):
			// A lagging follower beyond the size bound, or a dead one, gets a
			// snapshot instead.
		default:
			index = min(index, pr.Match)
		}
	})
	// Truncate only a worthwhile stretch: half the threshold at least.
	if index < first || index-first+1 < h.cfg.RaftLogTruncationThreshold/2 {
		return
	}
	if err := g.rn.Propose(encodeTruncate(index)); err == nil {
		g.truncationPending, g.truncationTerm = true, st.GetTerm()
		h.metrics.truncationsProposed.Inc()
	}
}
