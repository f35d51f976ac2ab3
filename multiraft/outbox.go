// Copyright 2026 The Flotilla Authors. All rights reserved.

package multiraft

import (
	"sync"

	pb "go.etcd.io/raft/v3/raftpb"
)

// Outgoing messages. Every group's messages to one peer node go through
// that node's outbox, drained by one sender goroutine into one
// MessageBatch at a time, so the transport sees few large batches rather
// than many messages.
//
// Raft's heartbeats and their responses do not travel as raft messages:
// each becomes a compact Heartbeat, queued until the ticker flushes the
// outboxes, once per tick. So a node pair exchanges one batch of heartbeats
// per tick whatever the number of groups (idle groups, quiescent, send
// none). A beat carrying a ReadIndex context goes at once: a read waits for
// it. The receiver steps each beat into its group as the heartbeat it was,
// so a lost batch is, for every group in it, exactly a lost heartbeat.

// outbox queues messages to one peer node; its sender goroutine drains it
// into one batch at a time.
type outbox struct {
	to NodeID
	mu sync.Mutex
	// msgs, beats and beatResps hold at most Config.MaxOutboxMessages in
	// all: beyond, a message is dropped and raft told its replica is
	// unreachable, so that a slow or dead peer costs bounded memory.
	msgs      []GroupMessage
	beats     []Heartbeat
	beatResps []Heartbeat
	ping      bool // a liveness ping is due: send a batch even if empty
	// wake (capacity 1) tells the sender there is something to send; a
	// signal while one is pending is dropped, since the sender takes
	// everything queued.
	wake chan struct{}
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
	if !h.queueBeat(hb, resp) {
		h.reportUnreachable(g, hb.To)
	}
}

// queueBeat queues a coalesced heartbeat (or response) and reports whether
// it could (the outbox is not full).
func (h *Host) queueBeat(hb Heartbeat, resp bool) bool {
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
		h.metrics.drop(dropOutboxFull, 1)
		return false
	}
	if len(hb.Context) > 0 {
		ob.signal()
	}
	return true
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
		h.metrics.drop(dropOutboxFull, 1)
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

// reportUnreachable tells the group's raft, through its inbox, that a
// message to replica to was lost: raft then probes it instead of streaming
// appends into the void.
func (h *Host) reportUnreachable(g *group, to ReplicaID) {
	g.inboxMu.Lock()
	g.inbox.unreachable = append(g.inbox.unreachable, to)
	g.inboxMu.Unlock()
	h.sched.enqueue(g)
}

// outbox returns node's outbox, making it and starting its sender on the
// first message to node.
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

// runSender hands ob's queued messages to the transport, one batch per
// wake, until the host stops (a goroutine of h.stopper).
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
			h.metrics.drop(dropSendFailed, batch.count())
			h.reportBatchUnreachable(batch)
		}
	}
}
