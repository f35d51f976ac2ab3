// Copyright 2026 The Flotilla Authors. All rights reserved.

package multiraft

import (
	"errors"
	"fmt"
	"time"

	"github.com/flotilladb/flotilla/engine"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
)

// Splits. A state machine splits its group by returning, from Apply, a
// Result with NewGroup set: the host then writes the new group's initial
// raft state into the same batch as the apply (so a crash leaves both or
// neither), and once the batch is committed starts the new group. Every
// replica of the splitting group applies the same command and so creates
// the same new group, with the same members, log position (index 10, term
// 5, as Bootstrap) and state machine state: the new group needs no
// snapshot. Where the splitting replica leads its group, the new group
// campaigns at once.
//
// An uninitialized replica of the new group that was created here and
// collected since (collect.go) left only its HardState: its term and vote
// are kept the same way.
//
// The new group's replica here may already exist, uninitialized: created
// by a message from a replica on another host that applied the split first
// (a vote request, say). Such a replica has no log and no data (it cannot
// have accepted a snapshot: its span still belongs to the splitting group
// here), but it may have voted, so its term and vote are kept: the
// initialized replica takes its place in the same batch. Its messages carry
// over.
//
// The new group is not created here, and NewGroup.Discard clears its data
// instead, if this host's replica of it was already removed (a tombstone
// says so). If the group exists here initialized, which the span checks on
// snapshots rule out, neither is called.

// NewGroup describes a group a state machine creates by splitting.
type NewGroup struct {
	ID GroupID
	// Replicas are the new group's members.
	Replicas []Replica
	// Init writes the new group's state machine state into the apply batch:
	// everything it writes must lie in the new group's replicated state or
	// spans.
	Init func(b *engine.Batch) error
	// Discard, called instead of Init when the host does not create the
	// group, deletes its data from the apply batch.
	Discard func(b *engine.Batch) error
	// Done, if set, is called once the apply batch is committed (and the
	// new group started, if it was created here) or failed.
	Done func()
}

// preparedSplit is a new group whose initial state is staged in an apply
// batch; finishSplit starts it once the batch is committed.
type preparedSplit struct {
	id      GroupID
	replica ReplicaID
	st      *engine.RaftStorage
	// old is the uninitialized replica it replaces, locked (procMu).
	old      *group
	campaign bool
}

// appendWaitPoll is how often prepareSplit checks that an uninitialized
// replica's appends have landed.
const appendWaitPoll = 100 * time.Microsecond

// prepareSplit stages a new group's initial state in b (the parent's apply
// batch, on the parent's worker). The caller holds createMu until
// finishSplit. It returns nil if the group is not created here.
func (h *Host) prepareSplit(parent *group, b *engine.Batch, ng *NewGroup) (*preparedSplit, error) {
	if ng.ID == 0 || ng.ID == parent.id {
		return nil, fmt.Errorf("split into invalid group %d", ng.ID)
	}
	var self ReplicaID
	cs := &pb.ConfState{}
	for _, r := range ng.Replicas {
		if !r.ID.Valid() {
			return nil, fmt.Errorf("split into group %d: invalid replica %v", ng.ID, r.ID)
		}
		if r.ID.Node() == h.cfg.NodeID {
			self = r.ID
		}
		if r.Learner {
			cs.Learners = append(cs.Learners, uint64(r.ID))
		} else {
			cs.Voters = append(cs.Voters, uint64(r.ID))
		}
	}
	cs = pb.EnsureConfState(cs)
	discard := func(why string) (*preparedSplit, error) {
		h.logger.Info("split: not creating the new group here", "group", parent.id, "new", ng.ID, "why", why)
		if ng.Discard == nil {
			return nil, nil
		}
		return nil, ng.Discard(b)
	}
	if self == 0 {
		return discard("no replica on this node")
	}
	next, err := loadTombstone(h.eng, ng.ID)
	if err != nil {
		return nil, err
	}
	if self < next {
		return discard(fmt.Sprintf("replica %v was removed (tombstone %v)", self, next))
	}
	hs := &pb.HardState{Term: new(uint64(initialLogTerm)), Commit: new(uint64(initialLogIndex))}
	// The state machine keeps the new group's span from snapshots until
	// Done, so an existing replica of it is uninitialized: it takes no
	// other lock than its procMu while processed. An initialized one would
	// be a broken invariant; it must not be waited for (it could be
	// applying a split of its own, waiting for createMu).
	old := h.group(ng.ID)
	initialized := func(g *group) bool { return g.status.applied.Load() != 0 }
	if old != nil {
		for !old.procMu.TryLock() {
			if initialized(old) {
				return nil, fmt.Errorf("split into group %d: the group exists here initialized", ng.ID)
			}
			if h.stopper.Stopping() {
				return nil, ErrStopped
			}
			time.Sleep(appendWaitPoll)
		}
		if old.destroyed.Load() {
			old.procMu.Unlock()
			old = nil
		}
	}
	if old != nil {
		// The uninitialized replica's appends (a vote, say) must land
		// before its state is read: it is not processed meanwhile.
		for old.appendsInFlight.Load() > 0 {
			if h.stopper.Stopping() {
				old.procMu.Unlock()
				return nil, ErrStopped
			}
			time.Sleep(appendWaitPoll)
		}
		switch a, err := loadAppliedState(h.eng, ng.ID); {
		case err != nil:
			old.procMu.Unlock()
			return nil, err
		case a.index != 0 || initialized(old):
			old.procMu.Unlock()
			return nil, fmt.Errorf("split into group %d: the group exists here initialized (applied %d)", ng.ID, a.index)
		case old.replicaID > self:
			old.procMu.Unlock()
			return discard(fmt.Sprintf("this node holds newer replica %v", old.replicaID))
		}
		if old.replicaID == self {
			prev, _, err := old.storage.InitialState()
			if err != nil {
				old.procMu.Unlock()
				return nil, err
			}
			// A vote in a later term than the initial one stands (nobody
			// campaigns in the initial term).
			if prev.GetTerm() > initialLogTerm {
				hs.Term, hs.Vote = new(prev.GetTerm()), new(prev.GetVote())
			}
		}
		old.destroyed.Store(true)
		old.storage.Close()
	}
	st, err := h.eng.OpenRaftStorage(ng.ID)
	if err != nil {
		if old != nil {
			old.procMu.Unlock()
		}
		if old == nil && errors.Is(err, engine.ErrStorageOpen) {
			// A replica of the group was destroyed and the log writer has
			// not deleted it yet: it was removed from the group.
			return discard("a removed replica is being destroyed")
		}
		return nil, err
	}
	if old == nil {
		// An uninitialized replica of the group that was collected
		// (collect.go) left its HardState: its vote stands too.
		prev, _, err := st.InitialState()
		if err != nil {
			st.Close()
			return nil, err
		}
		if prev.GetTerm() > initialLogTerm {
			hs.Term, hs.Vote = new(prev.GetTerm()), new(prev.GetVote())
		}
	}
	snap := &pb.Snapshot{Metadata: &pb.SnapshotMetadata{
		Index: new(uint64(initialLogIndex)), Term: new(uint64(initialLogTerm)), ConfState: cs,
	}}
	err = errors.Join(
		st.ApplySnapshot(b, snap),
		st.SetHardState(b, hs),
		writeAppliedState(b, ng.ID, appliedState{index: initialLogIndex, term: initialLogTerm, confState: cs}),
		writeReplicaID(b, ng.ID, self),
	)
	if err == nil && ng.Init != nil {
		err = ng.Init(b)
	}
	if err != nil {
		st.Close()
		if old != nil {
			old.procMu.Unlock()
		}
		return nil, fmt.Errorf("split into group %d: %w", ng.ID, err)
	}
	return &preparedSplit{
		id: ng.ID, replica: self, st: st, old: old,
		campaign: parent.rn.BasicStatus().RaftState == raft.StateLeader,
	}, nil
}

// finishSplit starts a new group whose initial state was committed, or, if
// the commit failed (committed false), releases what prepareSplit took.
func (h *Host) finishSplit(ps *preparedSplit, committed bool) error {
	ps.st.Close()
	var moved []*pb.Message
	if old := ps.old; old != nil {
		defer old.procMu.Unlock()
		h.groupsMu.Lock()
		if h.groups[old.id] == old {
			delete(h.groups, old.id)
		}
		h.groupsMu.Unlock()
		h.activeMu.Lock()
		if h.active[old.id] == old {
			delete(h.active, old.id)
		}
		h.activeMu.Unlock()
		old.inboxMu.Lock()
		moved = append(moved, old.inbox.quietMsgs...)
		moved = append(moved, old.inbox.msgs...)
		old.inbox.msgs, old.inbox.quietMsgs = nil, nil
		old.inboxMu.Unlock()
		old.closeInbox(fmt.Errorf("%w: replaced by the split that initialized it", ErrGroupNotFound))
		old.dropUnacceptedSnapshots()
	}
	if !committed {
		return nil
	}
	g, err := h.loadGroup(ps.id, ps.replica)
	if err != nil {
		return fmt.Errorf("loading group %d made by a split: %w", ps.id, err)
	}
	if err := h.insertGroup(g); err != nil {
		return err
	}
	h.metrics.replicasCreated.Inc()
	g.inboxMu.Lock()
	for _, m := range moved {
		if m.GetType() == pb.MsgStorageAppendResp || m.GetType() == pb.MsgStorageApplyResp {
			continue // the replaced replica's own bookkeeping
		}
		g.inbox.msgs = append(g.inbox.msgs, m)
	}
	g.inbox.campaign = ps.campaign
	g.inboxMu.Unlock()
	h.sched.enqueue(g)
	h.logger.Debug("split: new group started", "group", ps.id, "replica", ps.replica, "campaign", ps.campaign)
	return nil
}
