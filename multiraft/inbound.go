// Copyright 2026 The Flotilla Authors. All rights reserved.

package multiraft

import (
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
// any goroutine. It steps only what a peer may send (fromPeer; beats from a
// replica on the sending node): raft's local messages, which could fake
// durability, and snapshots, which have their own stream, are dropped. A
// message from a leader or candidate for a group not on this host creates
// an uninitialized replica (groupFor); other messages for groups not here,
// or for another replica than this host's, are dropped. Every batch counts
// as hearing from its sender (liveness).
func (h *Host) HandleBatch(batch *MessageBatch) {
	if h.stopper.Stopping() {
		return
	}
	h.liveness.heard(batch.From, time.Now())
	h.metrics.batchesReceived.Inc()
	var touched []*group
	h.groupsMu.RLock()
	var unknown []GroupMessage // for groups not here yet
	lookup := func(group GroupID, to ReplicaID) *group {
		g := h.groups[group]
		if g == nil || to != g.replicaID {
			return nil
		}
		touched = append(touched, g)
		return g
	}
	for _, gm := range batch.Messages {
		h.metrics.countReceived(gm.Message.GetType())
		if !fromPeer(batch.From, gm.Message) {
			h.metrics.messagesDropped.Inc()
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
			h.metrics.messagesDropped.Inc()
			continue
		}
		g := lookup(hb.Group, hb.To)
		m := hb.message(pb.MsgHeartbeat)
		if g == nil {
			unknown = append(unknown, GroupMessage{Group: hb.Group, Message: m})
			continue
		}
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
			h.metrics.messagesDropped.Inc()
			continue
		}
		if g := lookup(hb.Group, hb.To); g != nil {
			g.inboxMu.Lock()
			g.inbox.quietMsgs = append(g.inbox.quietMsgs, hb.message(pb.MsgHeartbeatResp))
			g.inboxMu.Unlock()
		} else {
			h.metrics.messagesDropped.Inc()
		}
	}
	h.groupsMu.RUnlock()
	for _, gm := range unknown {
		if !createsReplica(gm.Message.GetType()) {
			h.metrics.messagesDropped.Inc()
			continue
		}
		g, err := h.groupFor(gm.Group, ReplicaID(gm.Message.GetTo()))
		if err != nil {
			h.metrics.messagesDropped.Inc()
			continue
		}
		g.addMessages(gm.Message)
		touched = append(touched, g)
	}
	h.sched.enqueueAll(touched)
}

// fromPeer reports whether m may come from node over the network: a raft
// message between replicas (not one of raft's local messages, not a
// snapshot, which has its own stream), from a valid replica on node.
func fromPeer(node NodeID, m *pb.Message) bool {
	switch m.GetType() {
	case pb.MsgApp, pb.MsgAppResp, pb.MsgVote, pb.MsgVoteResp, pb.MsgPreVote, pb.MsgPreVoteResp,
		pb.MsgHeartbeat, pb.MsgHeartbeatResp, pb.MsgTransferLeader, pb.MsgTimeoutNow,
		pb.MsgReadIndex, pb.MsgReadIndexResp:
	default:
		return false
	}
	from, to := ReplicaID(m.GetFrom()), ReplicaID(m.GetTo())
	return from.Valid() && to.Valid() && from.Node() == node
}
