// Copyright 2026 The Flotilla Authors. All rights reserved.

package multiraft

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/flotilladb/flotilla/engine"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/confchange"
	pb "go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Snapshots. When raft on a leader needs to send one (a follower is behind
// the truncated log, or is new), the host takes a Pebble snapshot on the
// group's worker, so that it matches the applied state exactly, and streams
// the group's replicated range-local state and its state machine's spans to
// the follower's host, outside the worker. The receiver stages the stream
// into SSTs, then steps the MsgSnap into raft; only if raft accepts it does
// the log writer ingest the SSTs (atomically) and, in its next batch, record
// the snapshot in the raft log state. A crash between the two is completed
// when the group is loaded (see completeSnapshot).

// SnapshotHeader describes a snapshot stream.
type SnapshotHeader struct {
	Group GroupID
	// Message is raft's MsgSnap: From, To, Term and the snapshot's metadata
	// (index, term, configuration). Its Data is empty.
	Message *pb.Message
	// Spans are the engine spans the stream covers, sorted: the group's
	// replicated range-local state, then the state machine's data.
	Spans []engine.Span
}

// ErrBadSnapshot is returned (wrapped) for a snapshot stream that does not
// decode or does not describe a snapshot this host may apply.
var ErrBadSnapshot = errors.New("multiraft: bad snapshot")

// Marshal encodes the header for the wire: 1: group, 2: MsgSnap (bytes),
// 3: repeated span { 1: start, 2: end }.
func (h *SnapshotHeader) Marshal() ([]byte, error) {
	msg, err := proto.Marshal(h.Message)
	if err != nil {
		return nil, err
	}
	buf := protowire.AppendTag(nil, 1, protowire.VarintType)
	buf = protowire.AppendVarint(buf, uint64(h.Group))
	buf = protowire.AppendTag(buf, 2, protowire.BytesType)
	buf = protowire.AppendBytes(buf, msg)
	for _, s := range h.Spans {
		var inner []byte
		inner = protowire.AppendTag(inner, 1, protowire.BytesType)
		inner = protowire.AppendBytes(inner, s.Start)
		inner = protowire.AppendTag(inner, 2, protowire.BytesType)
		inner = protowire.AppendBytes(inner, s.End)
		buf = protowire.AppendTag(buf, 3, protowire.BytesType)
		buf = protowire.AppendBytes(buf, inner)
	}
	return buf, nil
}

// UnmarshalSnapshotHeader decodes a header encoded by Marshal.
func UnmarshalSnapshotHeader(data []byte) (*SnapshotHeader, error) {
	h := &SnapshotHeader{}
	err := forEachField(data, func(num protowire.Number, typ protowire.Type, v uint64, b []byte) error {
		switch {
		case num == 1 && typ == protowire.VarintType:
			h.Group = GroupID(v)
		case num == 2 && typ == protowire.BytesType:
			h.Message = &pb.Message{}
			if err := proto.Unmarshal(b, h.Message); err != nil {
				return fmt.Errorf("%w: %v", ErrBadSnapshot, err)
			}
		case num == 3 && typ == protowire.BytesType:
			var s engine.Span
			if err := forEachField(b, func(num protowire.Number, typ protowire.Type, _ uint64, b []byte) error {
				switch {
				case num == 1 && typ == protowire.BytesType:
					s.Start = bytes.Clone(b)
				case num == 2 && typ == protowire.BytesType:
					s.End = bytes.Clone(b)
				}
				return nil
			}); err != nil {
				return err
			}
			h.Spans = append(h.Spans, s)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return h, nil
}

// validate checks a received header: a MsgSnap from a replica to a replica
// on this node, a configuration raft can restore that holds the recipient,
// and spans that start with the group's replicated state and otherwise stay
// in the user keyspace (a snapshot must never overwrite another group's raft
// state; the worker then checks them against the state machine).
func (h *SnapshotHeader) validate(self NodeID) error {
	m := h.Message
	switch {
	case h.Group == 0 || m == nil:
		return fmt.Errorf("%w: no group or message", ErrBadSnapshot)
	case m.GetType() != pb.MsgSnap || m.GetSnapshot().GetMetadata().GetIndex() == 0:
		return fmt.Errorf("%w: not a MsgSnap with an index", ErrBadSnapshot)
	case ReplicaID(m.GetTo()).Node() != self || !ReplicaID(m.GetTo()).Valid() || !ReplicaID(m.GetFrom()).Valid():
		return fmt.Errorf("%w: from %v to %v, not to node %d", ErrBadSnapshot, ReplicaID(m.GetFrom()), ReplicaID(m.GetTo()), self)
	case m.GetTerm() == 0 || m.GetTerm() > maxPlausibleTerm:
		// Raft takes a MsgSnap without a term for a local message (a
		// candidate would fall back to term 0 and forget its vote), and a
		// term near 2^64 wraps at the next campaign: both panic or break
		// raft's promises (validatePeerMessage's term rules).
		return fmt.Errorf("%w: term %d", ErrBadSnapshot, m.GetTerm())
	case m.GetSnapshot().GetMetadata().GetTerm() == 0 || m.GetSnapshot().GetMetadata().GetTerm() > m.GetTerm():
		return fmt.Errorf("%w: snapshot term %d with message term %d", ErrBadSnapshot, m.GetSnapshot().GetMetadata().GetTerm(), m.GetTerm())
	case len(h.Spans) == 0:
		return fmt.Errorf("%w: no spans", ErrBadSnapshot)
	}
	meta := m.GetSnapshot().GetMetadata()
	cs := pb.EnsureConfState(proto.Clone(meta.GetConfState()).(*pb.ConfState))
	chg := confchange.Changer{Tracker: tracker.MakeProgressTracker(1, 0), LastIndex: meta.GetIndex()}
	if _, _, err := confchange.Restore(chg, cs); err != nil {
		return fmt.Errorf("%w: configuration %v: %v", ErrBadSnapshot, cs, err)
	}
	if !inConfig(cs, ReplicaID(m.GetTo())) {
		return fmt.Errorf("%w: recipient %v not in its configuration", ErrBadSnapshot, ReplicaID(m.GetTo()))
	}
	repl := engine.RangeReplicatedSpan(h.Group)
	if !bytes.Equal(h.Spans[0].Start, repl.Start) || !bytes.Equal(h.Spans[0].End, repl.End) {
		return fmt.Errorf("%w: first span %s is not the group's replicated state", ErrBadSnapshot, h.Spans[0])
	}
	data := engine.UserDataSpan()
	for _, s := range h.Spans[1:] {
		if engine.CompareKeys(s.Start, data.Start) < 0 || engine.CompareKeys(s.End, data.End) > 0 {
			return fmt.Errorf("%w: span %s is outside the user keyspace", ErrBadSnapshot, s)
		}
	}
	return nil
}

// startSnapshot intercepts raft's MsgSnap on the leader's worker: it fixes
// the snapshot at the applied state, with a Pebble snapshot taken now, and
// streams it in the background, reporting the outcome to raft.
func (h *Host) startSnapshot(g *group, m *pb.Message) {
	to := ReplicaID(m.GetTo())
	snap, err := h.eng.NewSnapshot()
	if err != nil {
		g.rn.ReportSnapshot(uint64(to), raft.SnapshotFailure)
		return
	}
	a := g.applied
	msg := proto.Clone(m).(*pb.Message)
	msg.Snapshot = &pb.Snapshot{Metadata: &pb.SnapshotMetadata{
		Index: new(a.index), Term: new(a.term), ConfState: proto.Clone(a.confState).(*pb.ConfState),
	}}
	spans := append([]engine.Span{engine.RangeReplicatedSpan(g.id)}, g.sm.Spans()...)
	slices.SortFunc(spans[1:], func(x, y engine.Span) int { return engine.CompareKeys(x.Start, y.Start) })
	header := &SnapshotHeader{Group: g.id, Message: msg, Spans: spans}
	h.metrics.snapshotsSent.Inc()
	started := h.snapStopper.RunWorker(func() {
		defer snap.Close()
		status := raft.SnapshotFinish
		if err := h.sendSnapshot(to.Node(), header, snap); err != nil {
			h.logger.Warn("sending snapshot failed", "group", g.id, "to", to, "index", a.index, "err", err)
			h.metrics.snapshotsFailed.Inc()
			status = raft.SnapshotFailure
		}
		g.inboxMu.Lock()
		g.inbox.snapStatus = append(g.inbox.snapStatus, snapStatus{to: to, status: status})
		g.inboxMu.Unlock()
		h.sched.enqueue(g)
	})
	if !started {
		// The host is shutting down (snapshot senders stop after the
		// workers, so this does not happen while workers run): fail the
		// snapshot as a failed send would.
		snap.Close()
		h.metrics.snapshotsFailed.Inc()
		g.rn.ReportSnapshot(uint64(to), raft.SnapshotFailure)
	}
}

func (h *Host) sendSnapshot(node NodeID, header *SnapshotHeader, snap *engine.Snapshot) error {
	select {
	case h.snapSem <- struct{}{}:
		defer func() { <-h.snapSem }()
	case <-h.stopper.ShouldStop():
		return ErrStopped
	}
	// The stream ends early when the host stops. The goroutine that cancels
	// it is this sender's: it returns before the sender does.
	ctx, cancel := context.WithCancel(context.Background())
	watcherDone := make(chan struct{})
	go func() {
		defer close(watcherDone)
		select {
		case <-h.stopper.ShouldStop():
			cancel()
		case <-ctx.Done():
		}
	}()
	defer func() {
		cancel()
		<-watcherDone
	}()
	return h.cfg.Transport.SendSnapshot(ctx, node, header, func(emit func([]byte) error) error {
		return snap.Export(ctx, header.Spans, emit)
	})
}

type snapStatus struct {
	to     ReplicaID
	status raft.SnapshotStatus
}

// pendingSnapshot is a received snapshot staged for its group's worker.
type pendingSnapshot struct {
	msg   *pb.Message
	spans []engine.Span
	ing   *engine.Ingester
	done  chan error // receives the outcome once
}

var errSnapshotRejected = errors.New("multiraft: raft did not accept the snapshot")

// HandleSnapshot receives a snapshot stream: next returns chunks and io.EOF
// at the end. It returns once the snapshot is applied, or with why not.
// Transports call it from any goroutine.
func (h *Host) HandleSnapshot(ctx context.Context, header *SnapshotHeader, next func() ([]byte, error)) error {
	if h.stopper.Stopping() {
		return ErrStopped
	}
	if err := header.validate(h.cfg.NodeID); err != nil {
		return err
	}
	m := header.Message
	g, err := h.groupFor(header.Group, ReplicaID(m.GetTo()), false)
	if err != nil {
		return err
	}
	// The replica is not collected while its snapshot arrives.
	g.snapsIncoming.Add(1)
	defer g.snapsIncoming.Add(-1)
	if g.status.applied.Load() == 0 {
		defer g.lastHeard.Store(time.Now().UnixNano())
	}
	if idx := m.GetSnapshot().GetMetadata().GetIndex(); idx <= g.status.applied.Load() {
		// The replica is past the snapshot already (it was initialized by
		// a split, say, while the leader prepared it): nothing to ingest.
		// Reported as delivered, the leader resumes appending after the
		// snapshot's index; reported as failed, it would probe from the
		// replica's last acknowledged index, behind its log's start, and
		// send the same snapshot again.
		h.logger.Debug("snapshot not needed: the replica applied past it", "group", header.Group, "index", idx,
			"applied", g.status.applied.Load())
		// Read the stream to its end: a transport that sees the receiver
		// stop early reports the snapshot failed.
		for {
			if _, err := next(); err != nil {
				if errors.Is(err, io.EOF) {
					return nil
				}
				return fmt.Errorf("draining an unneeded snapshot of group %d: %w", header.Group, err)
			}
		}
	}
	if pc, ok := g.sm.(SnapshotPrechecker); ok {
		// Refuse before the data streams in what the worker would refuse.
		if err := pc.PrecheckSnapshotSpans(header.Spans[1:]); err != nil {
			h.metrics.snapshotsRefusedEarly.Inc()
			return err
		}
	}
	ing, err := h.eng.NewIngester(header.Spans)
	if err != nil {
		return err
	}
	for {
		chunk, err := next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err == nil {
			err = ing.Add(chunk)
		}
		if err != nil {
			ing.Abort()
			return fmt.Errorf("receiving snapshot of group %d: %w", header.Group, err)
		}
	}
	ps := &pendingSnapshot{msg: m, spans: header.Spans, ing: ing, done: make(chan error, 1)}
	if err := h.toInbox(header.Group, func(g *group) { g.inbox.snapshots = append(g.inbox.snapshots, ps) }); err != nil {
		ing.Abort()
		return err
	}
	select {
	case err := <-ps.done:
		return err
	case <-ctx.Done():
		return ctx.Err() // the worker still finishes or aborts it
	case <-h.stopper.ShouldStop():
		return ErrStopped
	}
}

// offerSnapshot steps a received snapshot into raft on the worker, once its
// spans are checked against the state machine. If raft accepts it, the
// MsgStorageAppend that follows carries it and the log writer ingests the
// staged data (see handleReady); snapshots raft did not take are dropped
// at the end of the pass (dropUnacceptedSnapshots).
func (h *Host) offerSnapshot(g *group, ps *pendingSnapshot) {
	if err := g.checkSnapshotSpans(ps.spans); err != nil {
		ps.ing.Abort()
		ps.done <- err
		return
	}
	idx := ps.msg.GetSnapshot().GetMetadata().GetIndex()
	if old := g.stagedSnaps[idx]; old != nil {
		old.ing.Abort()
		old.done <- errors.New("multiraft: superseded by another snapshot at the same index")
	}
	g.stagedSnaps[idx] = ps
	_ = g.rn.Step(ps.msg)
}

// checkSnapshotSpans checks that a snapshot covers exactly the group's
// replicated state and its state machine's spans (or what a
// SnapshotSpanChecker state machine accepts), so that it can neither clear
// data the group does not own nor leave stale data of its own behind.
func (g *group) checkSnapshotSpans(spans []engine.Span) error {
	if c, ok := g.sm.(SnapshotSpanChecker); ok {
		return c.CheckSnapshotSpans(spans[1:])
	}
	want := append([]engine.Span(nil), g.sm.Spans()...)
	slices.SortFunc(want, func(x, y engine.Span) int { return engine.CompareKeys(x.Start, y.Start) })
	if len(want) != len(spans)-1 {
		return fmt.Errorf("%w: %d data spans, the state machine has %d", ErrBadSnapshot, len(spans)-1, len(want))
	}
	for i, w := range want {
		if s := spans[i+1]; !bytes.Equal(s.Start, w.Start) || !bytes.Equal(s.End, w.End) {
			return fmt.Errorf("%w: span %s, the state machine's is %s", ErrBadSnapshot, s, w)
		}
	}
	return nil
}

// SnapshotPrechecker is implemented by state machines that can tell from
// a snapshot's header, on the receiving goroutine, that they would refuse
// it: the stream is then refused before its data is read. It must not
// change the state machine (CheckSnapshotSpans still decides on the
// worker).
type SnapshotPrechecker interface {
	PrecheckSnapshotSpans(spans []engine.Span) error
}

// SnapshotSpanChecker is implemented by state machines whose spans a
// snapshot may change (a range learns its bounds from the snapshot): it
// decides whether a snapshot's data spans are acceptable, on the worker.
type SnapshotSpanChecker interface {
	CheckSnapshotSpans(spans []engine.Span) error
}

// dropUnacceptedSnapshots drops the staged snapshots raft did not take.
func (g *group) dropUnacceptedSnapshots() {
	for idx, ps := range g.stagedSnaps {
		ps.ing.Abort()
		ps.done <- errSnapshotRejected
		delete(g.stagedSnaps, idx)
	}
}

// snapshotApplied updates the replica once the log writer made a snapshot
// durable (worker): the applied state is the snapshot's, the state machine
// reloads, and this host's proposals at or before its index have an unknown
// outcome.
func (h *Host) snapshotApplied(g *group, snap *pb.Snapshot) error {
	meta := snap.GetMetadata()
	if meta.GetIndex() <= g.applied.index {
		return nil
	}
	g.applied = appliedState{index: meta.GetIndex(), term: meta.GetTerm(), confState: pb.EnsureConfState(proto.Clone(meta.GetConfState()).(*pb.ConfState))}
	if r, ok := g.sm.(SnapshotRestorer); ok {
		if err := r.Restored(); err != nil {
			return fmt.Errorf("state machine after snapshot: %w", err)
		}
	}
	for idx, p := range g.pendingByIndex {
		if idx <= meta.GetIndex() {
			p.resolve(Result{}, ambiguous(errors.New("multiraft: replaced by a snapshot")))
			delete(g.pendingByIndex, idx)
		}
	}
	h.metrics.snapshotsApplied.Inc()
	g.releaseReads()
	return nil
}

// SnapshotIngestObserver is implemented by state machines that must know
// when their data in the engine may change under the state they cache:
// SnapshotIngesting is called on the worker once raft accepted a received
// snapshot and before the log writer ingests its data; Restored (of
// SnapshotRestorer) follows once the snapshot is durable. Between the two,
// an engine snapshot may hold the received data while the cached state is
// still the old one. Raft may accept another snapshot before the first is
// restored (each call is followed by at most one Restored); none follows
// if the group is destroyed or the host fails first.
type SnapshotIngestObserver interface {
	SnapshotIngesting()
}

// SnapshotRestorer is implemented by state machines that cache state: after
// a snapshot replaced their data in the engine, Restored is called on the
// worker so they can reload it.
type SnapshotRestorer interface {
	Restored() error
}

// completeSnapshot finishes, when a group is loaded, a snapshot whose data
// was ingested but whose raft log state was not yet written when the host
// stopped: the applied state (ingested with the data) then names an entry
// the log does not hold — beyond its end, or at an index where the log has
// another term (the log of a deposed leader, say). It writes what the log
// writer would have: the log restarts after the snapshot.
func completeSnapshot(eng *engine.Engine, st *engine.RaftStorage, a appliedState) error {
	last, err := st.LastIndex()
	if err != nil {
		return err
	}
	if a.index <= last {
		term, err := st.Term(a.index)
		if errors.Is(err, raft.ErrCompacted) || err == nil && term == a.term {
			return nil // the log holds the applied entry (or truncated past it)
		}
	}
	hs, _, err := st.InitialState()
	if err != nil {
		return err
	}
	newHS := &pb.HardState{Term: new(hs.GetTerm()), Vote: new(hs.GetVote()), Commit: new(a.index)}
	if hs.GetTerm() < a.term {
		newHS.Term, newHS.Vote = new(a.term), new(uint64(0))
	}
	b := eng.NewBatch()
	defer b.Close()
	snap := &pb.Snapshot{Metadata: &pb.SnapshotMetadata{Index: new(a.index), Term: new(a.term), ConfState: a.confState}}
	if err := errors.Join(st.ApplySnapshot(b, snap), st.SetHardState(b, newHS)); err != nil {
		return err
	}
	return b.Commit(true)
}
