// Copyright 2026 The Flotilla Authors. All rights reserved.

package multiraft

import (
	"sync"

	pb "go.etcd.io/raft/v3/raftpb"
)

// outbox queues messages to one peer node; its sender goroutine drains it
// into one batch at a time. Heartbeats and their responses wait for the next
// tick (unless they carry a read's context), so that every group's beats to
// a node travel in one batch per tick.
type outbox struct {
	to        NodeID
	mu        sync.Mutex
	msgs      []GroupMessage
	beats     []Heartbeat
	beatResps []Heartbeat
	ping      bool // a liveness ping is due
	wake      chan struct{}
}

func (ob *outbox) queuedLocked() int { return len(ob.msgs) + len(ob.beats) + len(ob.beatResps) }

func (ob *outbox) signal() {
	select {
	case ob.wake <- struct{}{}:
	default:
	}
}

// sendBeat queues a coalesced heartbeat (or response, if resp); urgent
// beats (a read waits on them) go out at once, the others with the next
// tick.
func (h *Host) sendBeat(g *group, hb Heartbeat, resp bool) {
	ob := h.outbox(hb.To.Node())
	ob.mu.Lock()
	full := ob.queuedLocked() >= h.cfg.MaxOutboxMessages
	if !full {
		if resp {
			ob.beatResps = append(ob.beatResps, hb)
		} else {
			ob.beats = append(ob.beats, hb)
		}
	}
	ob.mu.Unlock()
	if full {
		h.metrics.messagesDropped.Inc()
		h.reportUnreachable(g, hb.To)
		return
	}
	if len(hb.Context) > 0 {
		ob.signal()
	}
}

// send queues a raft message for its replica's node.
func (h *Host) send(g *group, m *pb.Message) {
	to := ReplicaID(m.GetTo())
	switch m.GetType() {
	case pb.MsgHeartbeat, pb.MsgHeartbeatResp:
		if to.Node() != h.cfg.NodeID && to.Node() != 0 {
			h.metrics.countSent(m.GetType())
			h.sendBeat(g, heartbeatOf(g.id, m), m.GetType() == pb.MsgHeartbeatResp)
			return
		}
	}
	if m.GetType() == pb.MsgSnap {
		h.startSnapshot(g, m) // only raft, on the worker, sends MsgSnap
		return
	}
	node := to.Node()
	if node == h.cfg.NodeID || node == 0 {
		h.logger.Error("raft message to a replica on this node", "group", g.id, "to", to)
		return
	}
	ob := h.outbox(node)
	ob.mu.Lock()
	full := ob.queuedLocked() >= h.cfg.MaxOutboxMessages
	if !full {
		ob.msgs = append(ob.msgs, GroupMessage{Group: g.id, Message: m})
	}
	ob.mu.Unlock()
	if full {
		h.metrics.messagesDropped.Inc()
		h.reportUnreachable(g, to)
		return
	}
	h.metrics.countSent(m.GetType())
	ob.signal()
}

// flushOutboxes sends every outbox's queued heartbeats; with ping, an empty
// batch goes to peers with nothing queued, so they hear from this node.
func (h *Host) flushOutboxes(ping bool) {
	h.outboxMu.Lock()
	obs := make([]*outbox, 0, len(h.outboxes))
	for _, ob := range h.outboxes {
		obs = append(obs, ob)
	}
	h.outboxMu.Unlock()
	for _, ob := range obs {
		ob.mu.Lock()
		if ping {
			ob.ping = true
		}
		due := ob.ping || len(ob.beats) > 0 || len(ob.beatResps) > 0
		ob.mu.Unlock()
		if due {
			ob.signal()
		}
	}
}

// reportBatchUnreachable tells the groups of a batch the transport refused
// that their peers are unreachable.
func (h *Host) reportBatchUnreachable(b *MessageBatch) {
	for _, gm := range b.Messages {
		if g := h.group(gm.Group); g != nil {
			h.reportUnreachable(g, ReplicaID(gm.Message.GetTo()))
		}
	}
	for _, beats := range [][]Heartbeat{b.Heartbeats, b.HeartbeatResps} {
		for _, hb := range beats {
			if g := h.group(hb.Group); g != nil {
				h.reportUnreachable(g, hb.To)
			}
		}
	}
}

func (h *Host) reportUnreachable(g *group, to ReplicaID) {
	g.inboxMu.Lock()
	g.inbox.unreachable = append(g.inbox.unreachable, to)
	g.inboxMu.Unlock()
	h.sched.enqueue(g)
}

func (h *Host) outbox(node NodeID) *outbox {
	h.outboxMu.Lock()
	defer h.outboxMu.Unlock()
	ob := h.outboxes[node]
	if ob == nil {
		ob = &outbox{to: node, wake: make(chan struct{}, 1)}
		h.outboxes[node] = ob
		// Refused once the host is stopping: the outbox then only collects
		// what will never be sent, as every outbox does once its sender
		// stopped.
		h.stopper.RunWorker(func() { h.runSender(ob) })
	}
	return ob
}

func (h *Host) runSender(ob *outbox) {
	for {
		select {
		case <-h.stopper.ShouldStop():
			return
		case <-ob.wake:
		}
		ob.mu.Lock()
		batch := &MessageBatch{From: h.cfg.NodeID, To: ob.to, Messages: ob.msgs,
			Heartbeats: ob.beats, HeartbeatResps: ob.beatResps}
		ping := ob.ping
		ob.msgs, ob.beats, ob.beatResps, ob.ping = nil, nil, nil, false
		ob.mu.Unlock()
		if len(batch.Messages) == 0 && len(batch.Heartbeats) == 0 && len(batch.HeartbeatResps) == 0 && !ping {
			continue
		}
		h.metrics.batchesSent.Inc()
		h.metrics.heartbeatsCoalesced.Add(len(batch.Heartbeats) + len(batch.HeartbeatResps))
		if err := h.cfg.Transport.Send(batch); err != nil {
			h.metrics.messagesDropped.Add(batch.count())
			h.reportBatchUnreachable(batch)
		}
	}
}
