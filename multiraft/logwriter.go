// Copyright 2026 The Flotilla Authors. All rights reserved.

package multiraft

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/flotilladb/flotilla/engine"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
)

// logWriter makes the raft log appends and HardStates of every group
// durable. Workers queue MsgStorageAppend messages; the writer drains all
// that are queued into one engine batch, commits it with one fsync, and then
// delivers each message's responses: to the group itself (stepped by its
// worker) or to peers (sent). While one batch is being synced the next one
// fills, so the number of fsyncs per append falls as load rises.
//
// It also performs, in queue order, the other writes to a group's raft
// state: log truncations (after the applied state that allows them) and the
// deletion of destroyed replicas (after their last writes).
//
// Invariants: requests of one group are written in the order they were
// queued (one queue, one writer); no response is delivered before the batch
// holding its write is durable; nothing is written for a destroyed group
// after its destruction was decided.
type logWriter struct {
	h *Host

	mu struct {
		sync.Mutex
		queue []logReq
	}
	wake chan struct{}
	done chan struct{}
	// spare is the previous queue, reused to avoid allocating.
	spare []logReq
}

type logReqKind uint8

const (
	reqAppend logReqKind = iota
	reqCompact
	reqDestroy
)

type logReq struct {
	kind logReqKind
	g    *group
	// reqAppend: raft's MsgStorageAppend, and the staged data of the
	// snapshot it carries, if any.
	m    *pb.Message
	snap *pendingSnapshot
	// reqCompact: truncate the log up to index.
	index uint64
	// reqDestroy: the state machine's spans to delete.
	spans []engine.Span
	// skipped: not written (the group was destroyed); deliver nothing.
	skipped bool
}

func newLogWriter(h *Host) *logWriter {
	return &logWriter{h: h, wake: make(chan struct{}, 1), done: make(chan struct{})}
}

func (w *logWriter) start() { go w.run() }

// stop waits for the writer to exit. Queued writes that were not yet
// committed are dropped: they were never acknowledged.
func (w *logWriter) stop() {
	<-w.done
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, r := range w.mu.queue {
		if r.snap != nil {
			r.snap.ing.Abort()
			r.snap.done <- ErrStopped
		}
	}
	w.mu.queue = nil
}

func (w *logWriter) push(r logReq) {
	w.mu.Lock()
	w.mu.queue = append(w.mu.queue, r)
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *logWriter) enqueue(g *group, m *pb.Message, snap *pendingSnapshot) {
	w.push(logReq{kind: reqAppend, g: g, m: m, snap: snap})
}

func (w *logWriter) enqueueCompact(g *group, index uint64) {
	w.push(logReq{kind: reqCompact, g: g, index: index})
}

func (w *logWriter) enqueueDestroy(g *group, spans []engine.Span) {
	w.push(logReq{kind: reqDestroy, g: g, spans: spans})
}

func (w *logWriter) run() {
	defer close(w.done)
	for {
		select {
		case <-w.h.stopper:
			return
		case <-w.wake:
		}
		// Swap the queue with the spare slice; the two never share an array.
		w.mu.Lock()
		reqs := w.mu.queue
		w.mu.queue, w.spare = w.spare[:0], nil
		w.mu.Unlock()
		if len(reqs) == 0 {
			w.spare = reqs
			continue
		}
		if err := w.write(reqs); err != nil {
			for i := range reqs {
				if r := &reqs[i]; r.snap != nil && !r.skipped {
					r.snap.ing.Abort()
					r.snap.done <- err
				}
			}
			w.h.fail(fmt.Errorf("log writer: %w", err))
			return
		}
		w.deliver(reqs)
		clear(reqs)
		w.spare = reqs
	}
}

// write stages every request in one batch and commits it durably, then
// destroys the replicas whose destruction was queued.
func (w *logWriter) write(reqs []logReq) error {
	start := time.Now()
	b := w.h.eng.NewBatch()
	defer b.Close()
	appends := 0
	for i := range reqs {
		r := &reqs[i]
		if r.kind == reqDestroy {
			continue
		}
		if r.g.destroyed.Load() {
			r.skipped = true
			if r.snap != nil {
				r.snap.ing.Abort()
				r.snap.done <- fmt.Errorf("%w: replica removed", ErrGroupNotFound)
			}
			continue
		}
		st := r.g.storage.RaftStorage
		if r.kind == reqCompact {
			if err := st.Compact(b, r.index); err != nil && !errors.Is(err, raft.ErrCompacted) {
				w.h.logger.Warn("log truncation skipped", "group", r.g.id, "index", r.index, "err", err)
			}
			continue
		}
		appends++
		m := r.m
		if snap := m.GetSnapshot(); snap != nil {
			// The data first: the ingest is atomic on its own, and a crash
			// before this batch commits is completed at load.
			if _, err := r.snap.ing.Finish(context.Background()); err != nil {
				return fmt.Errorf("group %d: ingesting snapshot: %w", r.g.id, err)
			}
			if k := w.h.cfg.Testing; k != nil && k.AfterSnapshotIngest != nil {
				k.AfterSnapshotIngest(r.g.id)
			}
			if err := st.ApplySnapshot(b, snap); err != nil {
				return fmt.Errorf("group %d: applying snapshot: %w", r.g.id, err)
			}
		}
		if len(m.GetEntries()) > 0 {
			if err := st.Append(b, m.GetEntries()); err != nil {
				return fmt.Errorf("group %d: appending: %w", r.g.id, err)
			}
		}
		if m.Term != nil || m.Vote != nil || m.Commit != nil {
			hs := &pb.HardState{Term: new(m.GetTerm()), Vote: new(m.GetVote()), Commit: new(m.GetCommit())}
			if err := st.SetHardState(b, hs); err != nil {
				return fmt.Errorf("group %d: saving HardState: %w", r.g.id, err)
			}
		}
	}
	if !b.Empty() {
		if err := b.Commit(true); err != nil {
			return err
		}
		w.h.metrics.observeLogWrite(appends, time.Since(start))
	}
	for i := range reqs {
		if r := &reqs[i]; r.kind == reqDestroy {
			if err := writeDestroy(w.h.eng, r.g.id, r.g.replicaID, r.spans); err != nil {
				return fmt.Errorf("group %d: destroying replica: %w", r.g.id, err)
			}
			r.g.storage.Close()
			if o, ok := r.g.sm.(DestroyObserver); ok {
				o.Destroyed()
			}
		}
	}
	return nil
}

// deliver hands out the responses of durable requests.
func (w *logWriter) deliver(reqs []logReq) {
	touched := make([]*group, 0, len(reqs))
	for i := range reqs {
		r := &reqs[i]
		if r.kind != reqAppend {
			continue
		}
		inFlight := r.g.appendsInFlight.Add(-1)
		if r.skipped {
			continue
		}
		if r.snap != nil {
			r.snap.done <- nil
		}
		local := false
		for _, resp := range r.m.GetResponses() {
			if ReplicaID(resp.GetTo()) == r.g.replicaID {
				// Raft's own bookkeeping: it does not wake a quiescent group.
				r.g.addQuiet(resp)
				local = true
			} else {
				w.h.send(r.g, resp)
			}
		}
		// Raft expects no answer to an append of the HardState alone, but the
		// group's worker may be waiting for its last append to land (a
		// follower holding a quiesce beat): let it run.
		if local || inFlight == 0 {
			touched = append(touched, r.g)
		}
	}
	w.h.sched.enqueueAll(touched)
}
