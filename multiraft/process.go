// Copyright 2026 The Flotilla Authors. All rights reserved.

package multiraft

import (
	"errors"
	"fmt"
	"time"

	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// A worker's pass over a group. The scheduler runs a group on one worker at
// a time, so everything here owns the group's RawNode and worker-owned
// state without locks; procMu, held for the whole pass, only keeps a split
// from replacing the group meanwhile (split.go).
//
// A pass takes the whole inbox at once, then feeds raft in this order:
// ticks, messages (quiet ones first), snapshot outcomes, received
// snapshots, a leadership transfer, unreachable peers, a campaign,
// proposals, reads; then it handles every Ready (sending, handing appends
// to the log writer, applying) and finally decides on quiescence, with
// everything the pass did known.

// processGroup runs on a worker: it feeds the group's inbox to raft and
// handles what raft produces. A pass once the host is stopping, or on a
// destroyed replica, does nothing.
func (h *Host) processGroup(g *group) {
	g.procMu.Lock()
	defer g.procMu.Unlock()
	if h.stopper.Stopping() || g.destroyed.Load() {
		return
	}
	start := time.Now()
	g.inboxMu.Lock()
	in := g.inbox
	g.inbox.msgs, g.inbox.quietMsgs, g.inbox.quiesceBeat, g.inbox.proposals, g.inbox.reads = nil, nil, nil, nil, nil
	g.inbox.ticks, g.inbox.unreachable, g.inbox.campaign, g.inbox.downNodes = 0, nil, false, nil
	g.inbox.snapshots, g.inbox.snapStatus, g.inbox.transferTo = nil, nil, 0
	g.inbox.destroy, g.inbox.collect = 0, false
	g.inboxMu.Unlock()
	if in.destroy != 0 && in.destroy == g.replicaID {
		h.logger.Info("destroying a replica removed from its group while it could not hear of it", "group", g.id, "replica", g.replicaID)
		h.destroyGroup(g)
		return
	}
	msgs, props, ticks, unreachable, campaign := in.msgs, in.proposals, in.ticks, in.unreachable, in.campaign

	busy := len(msgs) > 0 || len(props) > 0 || len(in.reads) > 0 || len(unreachable) > 0 || campaign ||
		len(in.snapshots) > 0 || len(in.snapStatus) > 0 || in.transferTo != 0
	if in.collect && h.collectable(g, busy || len(in.quietMsgs) > 0) {
		if collected, err := h.collectGroup(g); collected || err != nil {
			if err != nil {
				h.fail(fmt.Errorf("group %d: %w", g.id, err))
			}
			return
		}
	}
	peerDown := len(in.downNodes) > 0 && g.hasReplicaOn(in.downNodes)
	if g.quiesced && (busy || peerDown) {
		h.unquiesce(g)
	}
	switch {
	case peerDown:
		// A replica's node died: forget any quiesce beat, from it or not;
		// the group must run until it is settled again.
		g.quiesceBeat = nil
	case in.quiesceBeat != nil:
		g.quiesceBeat = in.quiesceBeat
	case busy:
		g.quiesceBeat = nil
	}
	for range ticks {
		g.rn.Tick()
	}
	// Peers' messages are checked against the replica as of the last
	// Ready, as the appends stepped before them may have changed it (view).
	view := g.view
	for _, batch := range [][]*pb.Message{in.quietMsgs, msgs} {
		for _, m := range batch {
			if h.isPeerMessage(m) {
				h.stepPeer(g, &view, m)
				continue
			}
			if err := h.step(g, m); err != nil {
				h.fail(fmt.Errorf("group %d: %w", g.id, err))
				return
			}
		}
	}
	for _, s := range in.snapStatus {
		g.rn.ReportSnapshot(uint64(s.to), s.status)
	}
	for _, ps := range in.snapshots {
		h.offerSnapshot(g, ps)
	}
	if in.transferTo != 0 {
		g.rn.TransferLeader(uint64(in.transferTo))
	}
	for _, r := range unreachable {
		g.rn.ReportUnreachable(uint64(r))
	}
	if campaign {
		_ = g.rn.Campaign()
	}
	for _, p := range props {
		h.propose(g, p)
	}
	g.readQueue = append(g.readQueue, in.reads...)
	h.maybeIssueReads(g)
	if ticks > 0 && !busy {
		h.maybeTruncateLog(g)
	}
	if err := h.handleReady(g); err != nil {
		h.fail(fmt.Errorf("group %d: %w", g.id, err))
		return
	}
	if g.destroyed.Load() {
		return
	}
	g.dropUnacceptedSnapshots()
	h.expireReads(g, ticks)
	if h.maybeIssueReads(g) {
		// The new round's messages.
		if err := h.handleReady(g); err != nil {
			h.fail(fmt.Errorf("group %d: %w", g.id, err))
			return
		}
	}
	switch {
	case g.quiesced:
		// Quiet messages alone may still have given a quiescent leader work
		// (a follower turned out to lag): then it must wake.
		if _, _, _, ok := h.leaderQuiescable(g); !ok && g.rn.BasicStatus().RaftState == raft.StateLeader {
			h.unquiesce(g)
		}
	case g.quiesceBeat != nil && !busy:
		if h.maybeQuiesceFollower(g, g.quiesceBeat) {
			g.quiesceBeat = nil
		}
	case ticks > 0 && !busy && !h.disableQuiescence():
		h.maybeQuiesceLeader(g)
	}
	g.publishStatus()
	h.metrics.observeProcessing(time.Since(start))
}

// step feeds one message to raft (worker). Errors from raft are for
// messages it ignores (stale, from unknown peers); the error returned is a
// failure to take in a snapshot the log writer made durable.
func (h *Host) step(g *group, m *pb.Message) error {
	_ = g.rn.Step(m)
	if m.GetType() == pb.MsgStorageAppendResp && m.GetSnapshot() != nil {
		return h.snapshotApplied(g, m.GetSnapshot())
	}
	return nil
}

// isPeerMessage reports whether m, from a group's inbox, came from a peer
// (HandleBatch) rather than from this host (the log writer's and the
// apply's responses, from this host's replica or raft's local threads):
// HandleBatch takes no batch from this node, and its messages come from a
// replica on the sending node.
func (h *Host) isPeerMessage(m *pb.Message) bool {
	return isPeerType(m.GetType()) && ReplicaID(m.GetFrom()).Node() != h.cfg.NodeID
}

// stepPeer checks a peer's message against view and steps it into raft, or
// drops it (validate.go). A leadership transfer request is stepped as the
// local request it stands for, without the term a forwarding follower set
// (raft would panic forwarding it again with a term): a transfer is advice,
// which raft checks against its own state.
func (h *Host) stepPeer(g *group, view *stepView, m *pb.Message) {
	if reason := validatePeerMessage(view, m); reason != dropNone {
		h.dropped(reason, g.id, m)
		return
	}
	switch {
	case m.GetType() == pb.MsgTransferLeader && m.GetTerm() != 0:
		m = &pb.Message{Type: m.Type, From: m.From, To: m.To}
	case m.GetType() == pb.MsgHeartbeat:
		if c := view.clampCommit(m.GetCommit()); c != m.GetCommit() {
			m = proto.Clone(m).(*pb.Message) // the inbox may hold it (quiesceBeat)
			m.Commit = &c
		}
	}
	_ = g.rn.Step(m)
	if m.GetType() == pb.MsgApp && len(m.GetEntries()) > 0 {
		bs := g.rn.BasicStatus()
		view.afterStep(m, bs.GetTerm())
	}
}

// dropped counts a dropped message and logs it, rarely.
func (h *Host) dropped(reason dropReason, id GroupID, m *pb.Message) {
	h.metrics.drop(reason, 1)
	h.dropLog.Do(func() {
		h.logger.Warn("dropped a raft message from a peer (logged at most every 10s)", "reason", reason.String(),
			"group", id, "type", m.GetType().String(), "from", ReplicaID(m.GetFrom()), "to", ReplicaID(m.GetTo()),
			"term", m.GetTerm(), "index", m.GetIndex(), "commit", m.GetCommit(), "entries", len(m.GetEntries()))
	})
}

// propose hands p to raft, or resolves it if it cannot be proposed.
func (h *Host) propose(g *group, p *proposal) {
	if !p.state.CompareAndSwap(propQueued, propProposed) {
		return // the caller gave up
	}
	p.proposed = time.Now()
	h.metrics.proposalWait.Update(p.proposed.Sub(p.submitted).Seconds())
	st := g.rn.BasicStatus()
	if st.RaftState != raft.StateLeader {
		p.resolve(Result{}, &NotAppliedError{Err: ErrNotLeader, Leader: ReplicaID(st.Lead)})
		return
	}
	var err error
	if p.cc != nil {
		cc := proto.Clone(p.cc).(*pb.ConfChangeV2)
		cc.Context = encodeEntry(p.id, p.cc.GetContext())
		err = g.rn.ProposeConfChange(cc)
	} else {
		err = g.rn.Propose(encodeEntry(p.id, p.data))
	}
	if err != nil {
		p.resolve(Result{}, notApplied(fmt.Errorf("%w: %v", ErrProposalDropped, err)))
		return
	}
	g.proposing[p.id] = p
}

// handleReady processes every Ready the group has: appends (with the
// snapshot data staged for them) go to the log writer, committed entries
// are applied at once, in Ready order, and the other messages are sent.
// Proposals raft took and no Ready carried are resolved at the end.
func (h *Host) handleReady(g *group) error {
	for g.rn.HasReady() {
		rd := g.rn.Ready()
		for _, m := range rd.Messages {
			switch m.GetTo() {
			case raft.LocalAppendThread:
				g.notePendingIndexes(m.GetEntries())
				g.view.noteAppend(m)
				var ps *pendingSnapshot
				if snap := m.GetSnapshot(); snap != nil {
					idx := snap.GetMetadata().GetIndex()
					if ps = g.stagedSnaps[idx]; ps == nil {
						return fmt.Errorf("raft accepted a snapshot at %d with no data staged for it", idx)
					}
					delete(g.stagedSnaps, idx)
					if o, ok := g.sm.(SnapshotIngestObserver); ok {
						o.SnapshotIngesting()
					}
				}
				g.appendsInFlight.Add(1)
				h.logWriter.enqueue(g, m, ps)
			case raft.LocalApplyThread:
				destroyed, err := h.apply(g, m.GetEntries())
				if err != nil {
					return err
				}
				if destroyed {
					return nil
				}
				for _, resp := range m.GetResponses() {
					_ = g.rn.Step(resp)
				}
			default:
				if m.GetType() == pb.MsgHeartbeat {
					g.view.noteSentBeat(m)
				}
				h.send(g, m)
			}
		}
		if len(rd.ReadStates) > 0 {
			h.handleReadStates(g, rd.ReadStates)
		}
	}
	if len(g.proposing) > 0 {
		// Every proposal raft accepted is in the unstable log and so in a
		// MsgStorageAppend of the Ready that followed it, carrying its ID;
		// raft refuses a membership change while another is pending by
		// appending an empty entry instead, so a change not seen was
		// refused and will never be applied.
		for id, p := range g.proposing {
			if p.cc != nil {
				p.resolve(Result{}, notApplied(fmt.Errorf("%w: another membership change is pending", ErrProposalDropped)))
			} else {
				p.resolve(Result{}, ambiguous(errors.New("multiraft: proposal's entry not seen in the log")))
			}
			delete(g.proposing, id)
		}
	}
	return nil
}

// notePendingIndexes records the log positions of this host's proposals as
// raft appends their entries.
func (g *group) notePendingIndexes(ents []*pb.Entry) {
	if len(g.proposing) == 0 {
		return
	}
	for _, e := range ents {
		id := entryProposalID(e)
		p := g.proposing[id]
		if p == nil {
			continue
		}
		delete(g.proposing, id)
		p.index, p.term = e.GetIndex(), e.GetTerm()
		if old := g.pendingByIndex[p.index]; old != nil && old != p {
			old.resolve(Result{}, notApplied(fmt.Errorf("%w: entry overwritten", ErrProposalDropped)))
		}
		g.pendingByIndex[p.index] = p
	}
}
