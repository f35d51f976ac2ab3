// Copyright 2026 The Flotilla Authors. All rights reserved.

package multiraft

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/flotilladb/flotilla/engine"
	pb "go.etcd.io/raft/v3/raftpb"
)

// Replica lifecycle.
//
//   - Bootstrap creates a group's first replicas.
//   - A message for a group this host does not have, addressed to a replica
//     on this host, creates an uninitialized replica: no log, no
//     configuration. It may vote; it never campaigns (raft does not let a
//     replica outside its configuration campaign); it gains data only by a
//     snapshot. Bootstrapped logs start at index 10, so a leader can never
//     catch such a replica up through the log.
//   - A replica that applies a configuration without itself is destroyed:
//     its raft state, applied state and state machine data are deleted and a
//     tombstone records the next replica ID this node may hold in the group,
//     so stale messages to the old replica are dropped and cannot revive it.

// ErrReplicaTombstoned: the message is for a replica removed from this node.
var ErrReplicaTombstoned = errors.New("multiraft: replica was removed")

// ErrReplicaMismatch: the message is for another replica ID than the one
// this node holds in the group.
var ErrReplicaMismatch = errors.New("multiraft: message for another replica of the group")

// createsReplica reports whether a message of type t may create an
// uninitialized replica: those a leader or candidate sends to a replica it
// believes exists, but heartbeats. A heartbeat never creates one (it is
// answered instead: answerUnknownBeat): a leader sends every follower an
// append before its heartbeats matter, and resends it when the follower
// answers a heartbeat, while forged heartbeats are cheap to send in bulk.
func createsReplica(t pb.MessageType) bool {
	switch t {
	case pb.MsgApp, pb.MsgVote, pb.MsgPreVote, pb.MsgSnap, pb.MsgTimeoutNow:
		return true
	}
	return false
}

// groupFor returns the group's replica on this host, creating an
// uninitialized one for replica to if the host has none and no tombstone
// forbids it. With bounded (a raft message, not a snapshot stream), it
// creates none beyond Config.MaxUninitializedReplicas (collect.go).
func (h *Host) groupFor(id GroupID, to ReplicaID, bounded bool) (*group, error) {
	h.groupsMu.RLock()
	g := h.groups[id]
	h.groupsMu.RUnlock()
	if g != nil {
		if g.replicaID != to {
			return nil, fmt.Errorf("%w: group %d holds %v, message for %v", ErrReplicaMismatch, id, g.replicaID, to)
		}
		return g, nil
	}
	if id == 0 || !to.Valid() || to.Node() != h.cfg.NodeID {
		return nil, fmt.Errorf("%w: replica %v of group %d, node %d", errNotHere, to, id, h.cfg.NodeID)
	}
	// Creation does I/O and calls the state machine factory: it is
	// serialized by createMu, not groupsMu, so other groups' traffic flows.
	h.createMu.Lock()
	defer h.createMu.Unlock()
	if h.stopper.Stopping() {
		return nil, ErrStopped
	}
	if g := h.group(id); g != nil { // created meanwhile
		if g.replicaID != to {
			return nil, fmt.Errorf("%w: group %d holds %v, message for %v", ErrReplicaMismatch, id, g.replicaID, to)
		}
		return g, nil
	}
	next, err := loadTombstone(h.eng, id)
	if err != nil {
		return nil, err
	}
	if to < next {
		return nil, fmt.Errorf("%w: group %d replica %v (next allowed %v)", ErrReplicaTombstoned, id, to, next)
	}
	if bounded && !h.uninitRoom() {
		return nil, fmt.Errorf("%w: group %d", errUninitLimit, id)
	}
	b := h.eng.NewBatch()
	defer b.Close()
	if err := writeReplicaID(b, id, to); err != nil {
		return nil, err
	}
	if err := b.Commit(true); err != nil {
		return nil, err
	}
	g, err = h.loadGroup(id, to)
	if err != nil {
		return nil, err
	}
	// Before the group is visible: a worker may then read g.applied.
	h.noteIfUninitialized(g)
	if err := h.insertGroup(g); err != nil {
		h.uninit.Lock()
		delete(h.uninit.groups, g.id)
		h.uninit.Unlock()
		return nil, err
	}
	h.metrics.replicasCreated.Inc()
	return g, nil
}

// loadTombstone returns the smallest replica ID this node may hold in the
// group (0 without a tombstone).
func loadTombstone(r engine.Reader, id GroupID) (ReplicaID, error) {
	v, err := r.Get(engine.RangeTombstoneKey(id))
	if errors.Is(err, engine.ErrNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("multiraft: group %d: malformed tombstone", id)
	}
	return ReplicaID(binary.BigEndian.Uint64(v)), nil
}

// inConfig reports whether r is a member (voter or learner, incoming or
// outgoing) of cs.
func inConfig(cs *pb.ConfState, r ReplicaID) bool {
	for _, ids := range [][]uint64{cs.GetVoters(), cs.GetLearners(), cs.GetVotersOutgoing(), cs.GetLearnersNext()} {
		for _, id := range ids {
			if ReplicaID(id) == r {
				return true
			}
		}
	}
	return false
}

// destroyGroup removes a replica that left its group (worker): the group
// disappears from the host at once, its pending work fails, and the log
// writer deletes its data and writes its tombstone after any writes already
// queued for it.
func (h *Host) destroyGroup(g *group) {
	g.destroyed.Store(true)
	h.groupsMu.Lock()
	delete(h.groups, g.id)
	h.groupsMu.Unlock()
	h.activeMu.Lock()
	delete(h.active, g.id)
	h.activeMu.Unlock()
	removed := fmt.Errorf("%w: replica removed", ErrGroupNotFound)
	g.closeInbox(removed)
	g.failPending(ambiguous(removed))
	g.failReads(removed)
	g.dropUnacceptedSnapshots()
	h.logWriter.enqueueDestroy(g, g.sm.Spans())
	h.metrics.replicasDestroyed.Inc()
	h.logger.Info("replica removed from its group", "group", g.id, "replica", g.replicaID)
}

// failPending resolves every proposal the group handed to raft with err
// (closeInbox handles the queued ones).
func (g *group) failPending(err error) {
	for id, p := range g.proposing {
		p.resolve(Result{}, err)
		delete(g.proposing, id)
	}
	for idx, p := range g.pendingByIndex {
		p.resolve(Result{}, err)
		delete(g.pendingByIndex, idx)
	}
}

// writeDestroy deletes a destroyed replica's data and writes its tombstone
// (log writer, or load).
func writeDestroy(eng *engine.Engine, id GroupID, replica ReplicaID, spans []engine.Span) error {
	b := eng.NewBatch()
	defer b.Close()
	if err := b.DeleteRange(engine.RangeSpan(id)); err != nil {
		return err
	}
	for _, s := range spans {
		if err := b.DeleteRange(s); err != nil {
			return err
		}
	}
	next := binary.BigEndian.AppendUint64(nil, uint64(replica)+1)
	if err := b.Set(engine.RangeTombstoneKey(id), next); err != nil {
		return err
	}
	return b.Commit(true)
}

// destroyIfRemoved destroys, when a group is loaded, a replica whose applied
// configuration no longer holds it: the host stopped after the removal was
// applied and before the log writer deleted the replica. It reports whether
// it did.
func (h *Host) destroyIfRemoved(id GroupID, replica ReplicaID) (bool, error) {
	a, err := loadAppliedState(h.eng, id)
	if err != nil {
		return false, err
	}
	cs := a.confState
	if len(cs.GetVoters())+len(cs.GetLearners())+len(cs.GetVotersOutgoing()) == 0 || inConfig(cs, replica) {
		return false, nil // uninitialized, or a member
	}
	sm, err := h.cfg.NewStateMachine(id)
	if err != nil {
		return false, err
	}
	h.logger.Info("destroying a replica removed before the host stopped", "group", id, "replica", replica)
	if err := writeDestroy(h.eng, id, replica, sm.Spans()); err != nil {
		return true, err
	}
	if o, ok := sm.(DestroyObserver); ok {
		o.Destroyed()
	}
	return true, nil
}

// DestroyObserver is implemented by state machines that must know when a
// destroyed replica's data is gone: a destroyed replica leaves the host at
// once, but its data is deleted later, by the log writer, and until then
// its spans must not be given to another replica (a snapshot ingested
// there first would be deleted with it). Destroyed is called once the data
// is deleted, from the log writer or while the host loads.
type DestroyObserver interface {
	Destroyed()
}

// DestroyRemovedReplica destroys this host's replica of group id if it is
// replica. The caller learned from a newer descriptor of the group that the
// replica was removed while this host could not hear of it (it was down or
// cut off), so no configuration change will ever reach it. Its data is
// deleted, and a tombstone keeps messages to it from recreating it.
// Destroying a replica that is still a member loses a copy of the data:
// the caller must be sure.
func (h *Host) DestroyRemovedReplica(id GroupID, replica ReplicaID) error {
	return h.toInbox(id, func(g *group) { g.inbox.destroy = replica })
}

// TransferLeadership asks the group's leader, on this host, to hand
// leadership to replica to.
func (h *Host) TransferLeadership(id GroupID, to ReplicaID) error {
	return h.toInbox(id, func(g *group) { g.inbox.transferTo = to })
}

// Campaign makes the local replica of the group campaign to become leader
// (tests and leader placement use it).
func (h *Host) Campaign(id GroupID) error {
	return h.toInbox(id, func(g *group) { g.inbox.campaign = true })
}

// AddLearner, AddVoter and RemoveReplica build the usual one-step changes
// for ProposeConfChange.
func AddLearner(r ReplicaID) *pb.ConfChangeV2 {
	return &pb.ConfChangeV2{Changes: []*pb.ConfChangeSingle{{Type: pb.ConfChangeAddLearnerNode.Enum(), NodeId: new(uint64(r))}}}
}

// AddVoter adds a voter, or promotes a learner.
func AddVoter(r ReplicaID) *pb.ConfChangeV2 {
	return &pb.ConfChangeV2{Changes: []*pb.ConfChangeSingle{{Type: pb.ConfChangeAddNode.Enum(), NodeId: new(uint64(r))}}}
}

// RemoveReplica removes a voter or learner.
func RemoveReplica(r ReplicaID) *pb.ConfChangeV2 {
	return &pb.ConfChangeV2{Changes: []*pb.ConfChangeSingle{{Type: pb.ConfChangeRemoveNode.Enum(), NodeId: new(uint64(r))}}}
}
