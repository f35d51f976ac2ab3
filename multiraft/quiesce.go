// Copyright 2026 The Flotilla Authors. All rights reserved.

package multiraft

import (
	"sync"
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
)

// Quiescence. An idle group stops ticking and heartbeating, so that the cost
// of idle groups is nothing and the cost of the host is O(active groups).
//
// A leader quiesces, when it processes a tick and nothing else, if: no
// proposal or append of its own is in flight, it applied everything it
// committed and committed its whole log, every follower has the whole log
// (Match == last index, replicating), no leadership transfer is under way,
// and no follower's node is known to be down. It then sends each follower a
// heartbeat flagged Quiesce. A follower quiesces on such a beat if it agrees:
// same term and leader, same commit index, everything applied, nothing in
// flight. A follower that does not agree keeps ticking; if it then campaigns,
// its (pre-)vote request wakes the leader.
//
// Anything but heartbeats wakes a group: a proposal, a read, a campaign
// request, a raft message other than a heartbeat response or quiesce beat,
// and a non-quiesce heartbeat from its leader. When a peer node is detected
// down (nothing heard from it for an election timeout), the groups with a
// replica there are woken, so that followers of a dead leader elect a new
// one. A woken leader serves reads through ReadIndex, which needs a quorum,
// so waking never lets a deposed leader serve a stale read.

// leaderQuiescable reports whether a leader may quiesce, with its commit
// index and followers.
func (h *Host) leaderQuiescable(g *group) (term, commit uint64, followers []ReplicaID, ok bool) {
	if g.busy() {
		return 0, 0, nil, false
	}
	st := g.rn.BasicStatus()
	if st.RaftState != raft.StateLeader || st.LeadTransferee != 0 {
		return 0, 0, nil, false
	}
	commit = st.GetCommit()
	if st.Applied != commit {
		return 0, 0, nil, false
	}
	if last, err := g.storage.LastIndex(); err != nil || last != commit {
		return 0, 0, nil, false
	}
	ok = true
	g.rn.WithProgress(func(id uint64, _ raft.ProgressType, pr tracker.Progress) {
		if ReplicaID(id) == g.replicaID {
			return
		}
		if pr.Match != commit || pr.State != tracker.StateReplicate || h.liveness.isDown(ReplicaID(id).Node()) {
			ok = false
		}
		followers = append(followers, ReplicaID(id))
	})
	return st.GetTerm(), commit, followers, ok
}

// maybeQuiesceLeader quiesces a leader that may, telling its followers.
func (h *Host) maybeQuiesceLeader(g *group) {
	term, commit, followers, ok := h.leaderQuiescable(g)
	if !ok {
		return
	}
	h.quiesce(g)
	for _, f := range followers {
		h.sendBeat(g, Heartbeat{Group: g.id, From: g.replicaID, To: f, Term: term, Commit: commit, Quiesce: true}, false)
	}
}

// maybeQuiesceFollower quiesces a follower that received a quiesce beat, if
// it agrees with the leader and the leader's node is not down, and reports
// whether it did. A follower whose commit index the beat just advanced has a
// HardState write in flight; it keeps the beat and tries again when that
// lands.
func (h *Host) maybeQuiesceFollower(g *group, beat *pb.Message) bool {
	if g.busy() {
		return false
	}
	st := g.rn.BasicStatus()
	if st.RaftState != raft.StateFollower || st.Lead != beat.GetFrom() || st.GetTerm() != beat.GetTerm() ||
		st.GetCommit() != beat.GetCommit() || st.Applied != st.GetCommit() {
		return false
	}
	// Never go quiet under a leader whose node is down: nothing would wake
	// the group again (a node is reported down once), and it must elect.
	if h.liveness.isDown(ReplicaID(st.Lead).Node()) {
		return false
	}
	if last, err := g.storage.LastIndex(); err != nil || last != st.GetCommit() {
		return false
	}
	h.quiesce(g)
	return true
}

// busy reports whether the group has work of its own in flight: proposals,
// reads, appends, or a Ready not yet handled.
func (g *group) busy() bool {
	return len(g.proposing) > 0 || len(g.pendingByIndex) > 0 || len(g.readBatches) > 0 ||
		len(g.readQueue) > 0 || len(g.readWaiters) > 0 || g.appendsInFlight.Load() != 0 || g.rn.HasReady()
}

func (h *Host) quiesce(g *group) {
	if g.quiesced {
		return
	}
	g.quiesced = true
	h.activeMu.Lock()
	delete(h.active, g.id)
	h.activeMu.Unlock()
}

func (h *Host) unquiesce(g *group) {
	if !g.quiesced {
		return
	}
	g.quiesced = false
	h.activeMu.Lock()
	h.active[g.id] = g
	h.activeMu.Unlock()
}

// hasReplicaOn reports whether the group has a replica on one of nodes.
func (g *group) hasReplicaOn(nodes []NodeID) bool {
	for _, n := range nodes {
		cs := g.applied.confState
		for _, ids := range [][]uint64{cs.GetVoters(), cs.GetLearners(), cs.GetVotersOutgoing(), cs.GetLearnersNext()} {
			for _, id := range ids {
				if ReplicaID(id).Node() == n {
					return true
				}
			}
		}
	}
	return false
}

// liveness tracks when this host last heard from each peer node. A node
// silent for longer than the election timeout is down. Every host pings its
// peers each heartbeat interval (an empty batch if nothing else is due), so
// silence means the node or the path to it is gone, even when every group is
// quiescent.
type liveness struct {
	timeout time.Duration
	mu      struct {
		sync.Mutex
		lastHeard map[NodeID]time.Time
		down      map[NodeID]bool
	}
}

func newLiveness(timeout time.Duration) *liveness {
	l := &liveness{timeout: timeout}
	l.mu.lastHeard = make(map[NodeID]time.Time)
	l.mu.down = make(map[NodeID]bool)
	return l
}

func (l *liveness) heard(n NodeID, now time.Time) {
	l.mu.Lock()
	l.mu.lastHeard[n] = now
	delete(l.mu.down, n)
	l.mu.Unlock()
}

func (l *liveness) isDown(n NodeID) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.mu.down[n]
}

// check marks nodes silent for too long as down and returns the ones that
// just went down.
func (l *liveness) check(now time.Time) []NodeID {
	l.mu.Lock()
	defer l.mu.Unlock()
	var newlyDown []NodeID
	for n, t := range l.mu.lastHeard {
		if !l.mu.down[n] && now.Sub(t) > l.timeout {
			l.mu.down[n] = true
			newlyDown = append(newlyDown, n)
		}
	}
	return newlyDown
}

// wakeGroupsOn tells every quiescent group that nodes went down; those with
// a replica there wake up.
func (h *Host) wakeGroupsOn(nodes []NodeID) {
	h.groupsMu.RLock()
	gs := make([]*group, 0, len(h.groups))
	for _, g := range h.groups {
		g.inboxMu.Lock()
		g.inbox.downNodes = append(g.inbox.downNodes, nodes...)
		g.inboxMu.Unlock()
		gs = append(gs, g)
	}
	h.groupsMu.RUnlock()
	h.sched.enqueueAll(gs)
}

// heardWithin reports whether this host heard from node n within the
// liveness timeout.
func (l *liveness) heardWithin(n NodeID, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	t, ok := l.mu.lastHeard[n]
	return ok && now.Sub(t) <= l.timeout
}

// NodeActive reports whether this host heard from node n within the
// election timeout (always true for itself): what a leader checks before
// a membership change that needs n's vote.
func (h *Host) NodeActive(n NodeID) bool {
	return n == h.cfg.NodeID || h.liveness.heardWithin(n, time.Now())
}

func (h *Host) disableQuiescence() bool {
	return h.cfg.Testing != nil && h.cfg.Testing.DisableQuiescence
}
