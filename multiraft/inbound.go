// Copyright 2026 The Flotilla Authors. All rights reserved.

package multiraft

import (
	"errors"
	"fmt"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
)

// How work reaches a group. Local callers (proposals, reads, campaign and
// transfer requests) put it in the group's inbox through toInbox; peers'
// batches come through HandleBatch, which checks every message before its
// group sees it. Either way the group is then queued for a worker.

// toInbox runs add on the group's inbox, under its lock, and schedules the
// group. It fails if the group is not on this host or its inbox is closed
// (the replica was destroyed or the host stopped).
func (h *Host) toInbox(id GroupID, add func(g *group)) error {
	g := h.group(id)
	if g == nil {
		return fmt.Errorf("%w: %d", ErrGroupNotFound, id)
	}
	g.inboxMu.Lock()
	if g.inbox.closed {
		err := g.inbox.closeErr
		g.inboxMu.Unlock()
		return err
	}
	add(g)
	g.inboxMu.Unlock()
	h.sched.enqueue(g)
	return nil
}

// HandleBatch delivers a batch received from a peer. Transports call it from
// any goroutine. It takes nothing from a batch claiming to come from this
// node, and steps only what a peer may send (fromPeer; beats from a replica
// on the sending node): raft's local messages, which could fake durability,
// and snapshots, which have their own stream, are dropped. A message from a
// leader or candidate (not a heartbeat) for a group not on this host creates
// an uninitialized replica (groupFor), up to
// Config.MaxUninitializedReplicas; other messages for groups not here, or
// for another replica than this host's, are dropped. Every message that
// reaches a group is checked again, against the replica's state, by its
// worker (validate.go). Every drop is counted by reason. Every batch from a
// peer counts as hearing from it (liveness).
func (h *Host) HandleBatch(batch *MessageBatch) {
	if h.stopper.Stopping() {
		h.metrics.drop(dropHostStopping, batch.count())
		return
	}
	if batch.From == h.cfg.NodeID || batch.From == 0 || batch.From > MaxNodeID {
		h.metrics.drop(dropNotFromPeer, batch.count())
		h.dropLog.Do(func() {
			h.logger.Warn("dropped a batch that claims to come from this node or an invalid one (logged at most every 10s)",
				"from", batch.From)
		})
		return
	}
	now := time.Now()
	h.liveness.heard(batch.From, now)
	h.metrics.batchesReceived.Inc()
	var touched []*group
	h.groupsMu.RLock()
	var unknown []GroupMessage // for groups not here yet
	var unknownBeats []Heartbeat
	lookup := func(group GroupID, to ReplicaID) *group {
		g := h.groups[group]
		if g == nil || to != g.replicaID {
			return nil
		}
		if g.status.applied.Load() == 0 {
			g.lastHeard.Store(now.UnixNano())
		}
		touched = append(touched, g)
		return g
	}
	for _, gm := range batch.Messages {
		h.metrics.countReceived(gm.Message.GetType())
		if !fromPeer(batch.From, gm.Message) {
			h.dropped(dropNotFromPeer, gm.Group, gm.Message)
			continue
		}
		if g := lookup(gm.Group, ReplicaID(gm.Message.GetTo())); g != nil {
			g.addMessages(gm.Message)
		} else {
			unknown = append(unknown, gm)
		}
	}
	for i := range batch.Heartbeats {
		hb := &batch.Heartbeats[i]
		h.metrics.countReceived(pb.MsgHeartbeat)
		if hb.From.Node() != batch.From || !hb.From.Valid() || !hb.To.Valid() {
			h.dropped(dropNotFromPeer, hb.Group, hb.message(pb.MsgHeartbeat))
			continue
		}
		g := lookup(hb.Group, hb.To)
		if g == nil {
			if h.groups[hb.Group] == nil {
				unknownBeats = append(unknownBeats, *hb)
			} else {
				h.metrics.drop(dropWrongReplica, 1)
			}
			continue
		}
		m := hb.message(pb.MsgHeartbeat)
		g.inboxMu.Lock()
		if hb.Quiesce {
			g.inbox.quietMsgs = append(g.inbox.quietMsgs, m)
			g.inbox.quiesceBeat = m
		} else {
			// A plain heartbeat means the leader is awake: so is the group.
			g.inbox.msgs = append(g.inbox.msgs, m)
			g.inbox.quiesceBeat = nil
		}
		g.inboxMu.Unlock()
	}
	for i := range batch.HeartbeatResps {
		hb := &batch.HeartbeatResps[i]
		h.metrics.countReceived(pb.MsgHeartbeatResp)
		if hb.From.Node() != batch.From || !hb.From.Valid() || !hb.To.Valid() {
			h.dropped(dropNotFromPeer, hb.Group, hb.message(pb.MsgHeartbeatResp))
			continue
		}
		if g := lookup(hb.Group, hb.To); g != nil {
			g.inboxMu.Lock()
			g.inbox.quietMsgs = append(g.inbox.quietMsgs, hb.message(pb.MsgHeartbeatResp))
			g.inboxMu.Unlock()
		} else {
			h.metrics.drop(dropUnknownGroup, 1)
		}
	}
	h.groupsMu.RUnlock()
	for i := range unknownBeats {
		h.answerUnknownBeat(&unknownBeats[i])
	}
	for _, gm := range unknown {
		if !createsReplica(gm.Message.GetType()) {
			h.dropped(dropUnknownGroup, gm.Group, gm.Message)
			continue
		}
		g, err := h.groupFor(gm.Group, ReplicaID(gm.Message.GetTo()), true)
		if err != nil {
			h.dropped(createDropReason(err), gm.Group, gm.Message)
			continue
		}
		g.addMessages(gm.Message)
		touched = append(touched, g)
	}
	h.sched.enqueueAll(touched)
}

// answerUnknownBeat answers a heartbeat for a group this host has no
// replica of. Heartbeats never create replicas (a forged one would cost a
// replica and an fsync each), but a leader probing a new follower whose
// first append was lost sends it the next append only when it hears a
// heartbeat response (raft's probe state pauses until then): so a beat
// addressed to a valid replica on this node, of a plausible term, gets a
// response from that replica, and the leader's next append creates it.
// The response is safe from a replica that does not exist: it carries no
// read context (it acknowledges no ReadIndex round, so it cannot help a
// deposed leader serve a read), and only tells the leader that the node is
// reachable. A quiesce beat gets none: a leader quiesces only with every
// follower caught up; nor does any while the host holds its most
// uninitialized replicas. The beat itself is dropped (unknown_group).
func (h *Host) answerUnknownBeat(hb *Heartbeat) {
	h.metrics.drop(dropUnknownGroup, 1)
	if hb.Quiesce || hb.Group == 0 || hb.To.Node() != h.cfg.NodeID || hb.Term == 0 || hb.Term > maxPlausibleTerm {
		return
	}
	if !h.uninitRoom() {
		// The append the answer draws could not create the replica: do not
		// make the leader send it every heartbeat.
		return
	}
	h.queueBeat(Heartbeat{Group: hb.Group, From: hb.To, To: hb.From, Term: hb.Term}, true)
}

// createDropReason is the drop reason for groupFor's error.
func createDropReason(err error) dropReason {
	switch {
	case errors.Is(err, errUninitLimit):
		return dropUninitLimit
	case errors.Is(err, ErrReplicaTombstoned):
		return dropTombstone
	case errors.Is(err, ErrReplicaMismatch), errors.Is(err, errNotHere):
		return dropWrongReplica
	case errors.Is(err, ErrStopped):
		return dropHostStopping
	}
	return dropCreateFailed
}

// isPeerType reports whether peers send messages of type t over the
// network: raft messages between replicas, not raft's local messages nor
// snapshots, which have their own stream.
func isPeerType(t pb.MessageType) bool {
	switch t {
	case pb.MsgApp, pb.MsgAppResp, pb.MsgVote, pb.MsgVoteResp, pb.MsgPreVote, pb.MsgPreVoteResp,
		pb.MsgHeartbeat, pb.MsgHeartbeatResp, pb.MsgTransferLeader, pb.MsgTimeoutNow,
		pb.MsgReadIndex, pb.MsgReadIndexResp:
		return true
	}
	return false
}

// fromPeer reports whether m may come from node over the network: a raft
// message between replicas (isPeerType), from a valid replica on node to a
// valid replica.
func fromPeer(node NodeID, m *pb.Message) bool {
	if !isPeerType(m.GetType()) {
		return false
	}
	from, to := ReplicaID(m.GetFrom()), ReplicaID(m.GetTo())
	return from.Valid() && to.Valid() && from.Node() == node
}
