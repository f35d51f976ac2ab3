// Copyright 2026 The Flotilla Authors. All rights reserved.

package multiraft

import (
	"maps"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/tracker"
)

// A group's status is published by its worker (publishStatus, at the end of
// every pass) into atomics on the group, so that Status, metrics and other
// goroutines read it without taking the group from its worker. A status is
// consistent field by field only: it may mix two passes.

// GroupStatus is a group's replica as seen at some recent instant.
type GroupStatus struct {
	Group   GroupID
	Replica ReplicaID
	Leader  ReplicaID
	Term    uint64
	Commit  uint64
	Applied uint64
	// AppliedTerm is the term of the entry at Applied: a leader whose
	// AppliedTerm is its Term has applied an entry of its own term.
	AppliedTerm uint64
	LastIndex   uint64
	State       raft.StateType
	// Voters and Learners are the applied configuration (the incoming one
	// while Joint).
	Voters, Learners []ReplicaID
	Joint            bool
	// LearnerMatch is each learner's matched log index, known on the leader
	// only.
	LearnerMatch map[ReplicaID]uint64
}

// Status returns the status of the local replica of a group.
func (h *Host) Status(id GroupID) (GroupStatus, bool) {
	g := h.group(id)
	if g == nil {
		return GroupStatus{}, false
	}
	// Leader and Term are one consistent pair (the design of revisions
	// relies on it: a write's request term is the term its replica led
	// in).
	var leader, term uint64
	if lt := g.status.lead.Load(); lt != nil {
		leader, term = lt.leader, lt.term
	}
	st := GroupStatus{
		Group:       id,
		Replica:     g.replicaID,
		Leader:      ReplicaID(leader),
		Term:        term,
		Commit:      g.status.commit.Load(),
		Applied:     g.status.applied.Load(),
		AppliedTerm: g.status.appliedTerm.Load(),
		LastIndex:   g.status.lastIndex.Load(),
		State:       raft.StateType(g.status.raftState.Load()),
	}
	if cs := g.status.confState.Load(); cs != nil {
		for _, id := range cs.GetVoters() {
			st.Voters = append(st.Voters, ReplicaID(id))
		}
		for _, id := range cs.GetLearners() {
			st.Learners = append(st.Learners, ReplicaID(id))
		}
		st.Joint = len(cs.GetVotersOutgoing()) > 0
	}
	if m := g.status.learnerMatch.Load(); m != nil {
		st.LearnerMatch = maps.Clone(*m)
	}
	return st, true
}

// publishStatus makes the replica's state readable by other goroutines.
func (g *group) publishStatus() {
	st := g.rn.BasicStatus()
	if lt := g.status.lead.Load(); lt == nil || lt.leader != st.Lead || lt.term != st.GetTerm() {
		g.status.lead.Store(&leadTerm{leader: st.Lead, term: st.GetTerm()})
	}
	g.status.commit.Store(st.GetCommit())
	g.status.applied.Store(g.applied.index)
	g.status.appliedTerm.Store(g.applied.term)
	g.status.raftState.Store(int32(st.RaftState))
	if last, err := g.storage.LastIndex(); err == nil {
		g.status.lastIndex.Store(last)
	}
	if g.status.confState.Load() != g.applied.confState {
		g.status.confState.Store(g.applied.confState)
	}
	// Learners are rare and short-lived (a replica catching up before its
	// promotion), so the map is built only while there are some.
	if st.RaftState == raft.StateLeader && len(g.applied.confState.GetLearners()) > 0 {
		m := make(map[ReplicaID]uint64, len(g.applied.confState.GetLearners()))
		g.rn.WithProgress(func(id uint64, typ raft.ProgressType, pr tracker.Progress) {
			if pr.IsLearner {
				m[ReplicaID(id)] = pr.Match
			}
		})
		g.status.learnerMatch.Store(&m)
	} else if g.status.learnerMatch.Load() != nil {
		g.status.learnerMatch.Store(nil)
	}
}

// Leadership is the part of a replica's status that says whether it leads
// its group: cheap to read (no allocation), for every request's checks.
type Leadership struct {
	Replica, Leader ReplicaID
	// Term is the term Leader leads in, AppliedTerm the term of the
	// replica's last applied entry.
	Term, AppliedTerm uint64
}

// Leading reports whether the replica leads its group.
func (l Leadership) Leading() bool { return l.Leader != 0 && l.Leader == l.Replica }

// Leadership returns the leadership part of the local replica's status.
func (h *Host) Leadership(id GroupID) (Leadership, bool) {
	g := h.group(id)
	if g == nil {
		return Leadership{}, false
	}
	l := Leadership{Replica: g.replicaID, AppliedTerm: g.status.appliedTerm.Load()}
	if lt := g.status.lead.Load(); lt != nil {
		l.Leader, l.Term = ReplicaID(lt.leader), lt.term
	}
	return l, true
}
