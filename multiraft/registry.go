// Copyright 2026 The Flotilla Authors. All rights reserved.

package multiraft

import (
	"errors"
	"fmt"

	"github.com/flotilladb/flotilla/engine"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
)

// The registry of a host's groups (Host.groups). A replica enters it when
// NewHost loads it, when Bootstrap creates it, when a message creates it
// uninitialized (groupFor, membership.go) or when a split creates it
// (finishSplit, split.go); it leaves when it is destroyed (destroyGroup),
// replaced by a split, or released by Stop (closeGroups).

// Initial log position of a bootstrapped group, as in CockroachDB: the log
// starts empty after a synthetic snapshot at this index and term, so that a
// replica created later by a snapshot can never be confused with one that
// was bootstrapped, and a replica created empty (uninitialized) cannot be
// caught up through the log: it needs a snapshot.
const (
	initialLogIndex = 10
	initialLogTerm  = 5
)

// loadGroup builds a group from its state in the engine, completing a
// snapshot a crash interrupted. The caller makes it visible (insertGroup).
func (h *Host) loadGroup(id GroupID, replicaID ReplicaID) (*group, error) {
	applied, err := loadAppliedState(h.eng, id)
	if err != nil {
		return nil, err
	}
	st, err := h.eng.OpenRaftStorage(id)
	if err != nil {
		return nil, err
	}
	if err := completeSnapshot(h.eng, st, applied); err != nil {
		st.Close()
		return nil, fmt.Errorf("completing an interrupted snapshot: %w", err)
	}
	g := &group{
		id:             id,
		replicaID:      replicaID,
		applied:        applied,
		proposing:      make(map[uint64]*proposal),
		pendingByIndex: make(map[uint64]*proposal),
		readBatches:    make(map[string]*readBatch),
		stagedSnaps:    make(map[uint64]*pendingSnapshot),
	}
	g.storage = &groupStorage{RaftStorage: st, g: g}
	if g.sm, err = h.cfg.NewStateMachine(id); err != nil {
		st.Close()
		return nil, err
	}
	// PreVote and CheckQuorum keep a replica that was cut off from
	// disrupting its group when it returns, and let a leader that lost its
	// quorum step down; proposals are not forwarded: they go to the leader,
	// and the error a follower returns names it.
	g.rn, err = raft.NewRawNode(&raft.Config{
		ID:                        uint64(replicaID),
		ElectionTick:              h.cfg.ElectionTicks,
		HeartbeatTick:             h.cfg.HeartbeatTicks,
		Storage:                   g.storage,
		Applied:                   applied.index,
		AsyncStorageWrites:        true,
		MaxSizePerMsg:             h.cfg.MaxSizePerMsg,
		MaxCommittedSizePerReady:  h.cfg.MaxCommittedSizePerReady,
		MaxInflightMsgs:           h.cfg.MaxInflightMsgs,
		CheckQuorum:               h.cfg.Testing == nil || !h.cfg.Testing.DisableCheckQuorum,
		PreVote:                   true,
		StepDownOnRemoval:         true,
		DisableProposalForwarding: true,
		Logger:                    raftLogger{h.logger},
	})
	if err != nil {
		st.Close()
		return nil, err
	}
	last, err := st.LastIndex()
	if err != nil {
		st.Close()
		return nil, err
	}
	g.view.lastIndex = last
	g.publishStatus()
	return g, nil
}

// Bootstrap creates a group on this host with an initial membership. Every
// member of a new group must be bootstrapped with the same replicas (on its
// own host); the group then elects a leader. replicas must include one on
// this host.
func (h *Host) Bootstrap(id GroupID, replicas []Replica) error {
	return h.BootstrapWith(id, replicas, nil)
}

// BootstrapWith is Bootstrap, with the state machine's initial state written
// by init into the batch that creates the group (so a crash leaves both or
// neither). Everything init writes must lie in the group's replicated state
// or the state machine's spans, so that snapshots carry it to new replicas.
func (h *Host) BootstrapWith(id GroupID, replicas []Replica, init func(b *engine.Batch) error) error {
	if h.stopper.Stopping() {
		return ErrStopped
	}
	if id == 0 {
		return errors.New("multiraft: group ID 0 is invalid")
	}
	var self ReplicaID
	cs := &pb.ConfState{}
	seen := map[ReplicaID]bool{}
	for _, r := range replicas {
		if !r.ID.Valid() || seen[r.ID] {
			return fmt.Errorf("multiraft: group %d: invalid or duplicate replica %v", id, r.ID)
		}
		seen[r.ID] = true
		if r.ID.Node() == h.cfg.NodeID {
			if self != 0 {
				return fmt.Errorf("multiraft: group %d: two replicas on node %d", id, h.cfg.NodeID)
			}
			self = r.ID
		}
		if r.Learner {
			cs.Learners = append(cs.Learners, uint64(r.ID))
		} else {
			cs.Voters = append(cs.Voters, uint64(r.ID))
		}
	}
	if self == 0 {
		return fmt.Errorf("multiraft: group %d: no replica on node %d", id, h.cfg.NodeID)
	}
	if len(cs.Voters) == 0 {
		return fmt.Errorf("multiraft: group %d: no voters", id)
	}
	cs = pb.EnsureConfState(cs)

	h.createMu.Lock()
	defer h.createMu.Unlock()
	if h.group(id) != nil {
		return fmt.Errorf("%w: %d", ErrGroupExists, id)
	}
	if _, err := loadReplicaID(h.eng, id); err == nil {
		return fmt.Errorf("%w: %d (on disk)", ErrGroupExists, id)
	}
	st, err := h.eng.OpenRaftStorage(id)
	if err != nil {
		return err
	}
	// A collected uninitialized replica left its term and vote (collect.go):
	// bootstrapping over them would let this node vote twice in a term.
	if hs, _, err := st.InitialState(); err != nil {
		st.Close()
		return err
	} else if hs.GetTerm() != 0 || hs.GetVote() != 0 {
		st.Close()
		return fmt.Errorf("%w: %d (a raft state at term %d is on disk)", ErrGroupExists, id, hs.GetTerm())
	}
	b := h.eng.NewBatch()
	defer b.Close()
	applied := appliedState{index: initialLogIndex, term: initialLogTerm, confState: cs}
	snap := &pb.Snapshot{Metadata: &pb.SnapshotMetadata{
		Index: new(uint64(initialLogIndex)), Term: new(uint64(initialLogTerm)), ConfState: cs,
	}}
	err = errors.Join(
		st.ApplySnapshot(b, snap),
		st.SetHardState(b, &pb.HardState{Term: new(uint64(initialLogTerm)), Commit: new(uint64(initialLogIndex))}),
		writeAppliedState(b, id, applied),
		writeReplicaID(b, id, self),
	)
	if err == nil && init != nil {
		err = init(b)
	}
	if err == nil {
		err = b.Commit(true)
	}
	st.Close()
	if err != nil {
		return fmt.Errorf("multiraft: bootstrapping group %d: %w", id, err)
	}
	g, err := h.loadGroup(id, self)
	if err != nil {
		return err
	}
	return h.insertGroup(g)
}

// insertGroup makes a new group visible and ticking, unless the host has
// released its groups (Stop), in which case the group is closed.
func (h *Host) insertGroup(g *group) error {
	h.groupsMu.Lock()
	if h.groupsClosed {
		h.groupsMu.Unlock()
		g.storage.Close()
		return ErrStopped
	}
	h.groups[g.id] = g
	h.groupsMu.Unlock()
	h.activeMu.Lock()
	h.active[g.id] = g
	h.activeMu.Unlock()
	return nil
}

// group returns the group's replica on this host, or nil.
func (h *Host) group(id GroupID) *group {
	h.groupsMu.RLock()
	defer h.groupsMu.RUnlock()
	return h.groups[id]
}

// Groups returns the IDs of the groups on this host.
func (h *Host) Groups() []GroupID {
	h.groupsMu.RLock()
	defer h.groupsMu.RUnlock()
	ids := make([]GroupID, 0, len(h.groups))
	for id := range h.groups {
		ids = append(ids, id)
	}
	return ids
}
