// Copyright 2026 The Flotilla Authors. All rights reserved.

package multiraft

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/flotilladb/flotilla/engine"
	"github.com/flotilladb/flotilla/internal/stopper"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
)

// logWriter makes the raft log appends and HardStates of every group
// durable. Workers queue MsgStorageAppend messages; the writer drains all
// that are queued into one engine batch, commits it, and, once it is
// durable, delivers each message's responses: to the group itself (stepped
// by its worker) or to peers (sent).
//
// Commits are pipelined: the writer commits a batch without waiting for its
// fsync (engine.Batch.CommitPipelined) and hands it to the syncer goroutine,
// which waits for the fsync and delivers; meanwhile the writer stages and
// commits the next batch, and Pebble's WAL syncs every batch queued during
// one fsync with the next. So the disk is never idle while appends wait,
// the cost of staging a batch overlaps the fsync, and the number of fsyncs
// per append falls as load rises. At most maxPipelinedBatches batches wait
// in the pipe (two more may be committed and not yet synced: the one the
// syncer holds and the one the writer is handing over).
//
// It also performs, in queue order, the other writes to a group's raft
// state: log truncations (after the applied state that allows them) and the
// deletion of destroyed replicas (after their last writes). A batch that
// ingests a snapshot or destroys a replica is not pipelined: the writer
// waits for the batches before it to be delivered, then commits, syncs and
// delivers it itself.
//
// The engine's RaftStorage of a group is written only here; raft reads it
// from the group's worker concurrently (docs/ENGINE.md says why such reads
// are safe during commits).
//
// Invariants: requests of one group are written in the order they were
// queued (one queue, one writer); batches are delivered in commit order, and
// no response is delivered before the batch holding its write is durable (a
// later batch is never durable before an earlier one); after a batch failed
// to sync nothing queued after it is delivered, not even a response to a
// write of nothing (see waitDelivered); nothing is written for a destroyed
// group after its destruction was decided.
type logWriter struct {
	h *Host

	mu struct {
		sync.Mutex
		queue []logReq
	}
	wake chan struct{}
	// spare is the previous queue, reused to avoid allocating when its
	// batch was not pipelined.
	spare []logReq

	// pipe carries committed batches to the syncer, which returns when
	// pipe is closed and drained. inflight counts the batches sent on pipe
	// and not yet delivered.
	pipe     chan *pipelinedBatch
	inflight sync.WaitGroup

	// stopper owns the writer and the syncer. The writer stops on the
	// host's stop signal, not on this Stopper's: the host stops it last
	// (Host.shutdown) to wait for both.
	stopper *stopper.Stopper
}

// maxPipelinedBatches bounds the committed batches waiting for their fsync.
const maxPipelinedBatches = 4

// pipelinedBatch is a committed batch waiting for its fsync.
type pipelinedBatch struct {
	b       *engine.Batch
	reqs    []logReq
	appends int
	start   time.Time
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
	return &logWriter{h: h, wake: make(chan struct{}, 1),
		pipe: make(chan *pipelinedBatch, maxPipelinedBatches), stopper: stopper.New()}
}

func (w *logWriter) start() {
	if !w.stopper.RunWorker(w.runSyncer) {
		return // stopped before it started
	}
	if !w.stopper.RunWorker(w.run) {
		close(w.pipe) // the syncer returns
	}
}

// stop waits for the writer and the syncer to exit; the writer exits on the
// host's stop signal. Queued writes that were not yet committed are
// dropped: they were never acknowledged.
func (w *logWriter) stop() {
	w.stopper.Stop()
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
	defer close(w.pipe) // the syncer delivers what is in it, then returns
	for {
		select {
		case <-w.h.stopper.ShouldStop():
			return
		case <-w.wake:
		}
		if w.h.Err() != nil {
			return // the syncer failed
		}
		if err := w.h.eng.Err(); err != nil {
			// The store failed elsewhere (a flush, say): nothing more may be
			// written, and the node must learn it now.
			w.h.fail(fmt.Errorf("multiraft: the store failed: %w", err))
			return
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
		pipelined, err := w.write(reqs)
		if err != nil {
			w.abortSnapshots(reqs, err)
			w.h.fail(fmt.Errorf("log writer: %w", err))
			return
		}
		if !pipelined {
			w.deliver(reqs)
			clear(reqs)
			w.spare = reqs
		}
	}
}

// runSyncer waits for the fsync of each pipelined batch, in commit order,
// and delivers its responses.
func (w *logWriter) runSyncer() {
	failed := false
	for pb := range w.pipe {
		if !failed {
			if err := pb.b.SyncWait(); err != nil {
				failed = true
				w.h.fail(fmt.Errorf("log writer: syncing: %w", err))
			} else {
				w.h.metrics.observeLogWrite(pb.appends, time.Since(pb.start))
			}
		}
		pb.b.Close()
		if !failed {
			w.deliver(pb.reqs)
		}
		w.inflight.Done()
	}
}

// waitDelivered waits until every pipelined batch was delivered. It returns
// the host's error if one of them could not be made durable (or the host
// failed otherwise): then nothing queued after it may be written or
// delivered. Raft takes the responses of a MsgStorageAppend, even of one
// that writes nothing (a duplicate MsgApp's MsgAppResp), as proof that every
// append queued before it is durable.
func (w *logWriter) waitDelivered() error {
	w.inflight.Wait()
	if err := w.h.Err(); err != nil {
		return err
	}
	if err := w.h.eng.Err(); err != nil {
		w.h.fail(fmt.Errorf("multiraft: the store failed: %w", err))
		return err
	}
	return nil
}

func (w *logWriter) abortSnapshots(reqs []logReq, err error) {
	for i := range reqs {
		if r := &reqs[i]; r.snap != nil && !r.skipped {
			r.snap.ing.Abort()
			r.snap.done <- err
		}
	}
}

// write stages every request in one batch and commits it. A batch of plain
// appends and truncations is pipelined: write returns true once it is
// committed and handed to the syncer. Otherwise (a snapshot to ingest, a
// replica to destroy) write waits for the pipelined batches to be
// delivered, commits durably, destroys the replicas whose destruction was
// queued and returns false; the caller delivers.
func (w *logWriter) write(reqs []logReq) (pipelined bool, _ error) {
	start := time.Now()
	sequential := false
	for i := range reqs {
		if r := &reqs[i]; r.kind == reqDestroy || (r.kind == reqAppend && r.snap != nil) {
			sequential = true
			break
		}
	}
	if sequential {
		if err := w.waitDelivered(); err != nil {
			return false, err
		}
	}
	b := w.h.eng.NewBatch()
	defer func() {
		if !pipelined {
			b.Close()
		}
	}()
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
				return false, fmt.Errorf("group %d: ingesting snapshot: %w", r.g.id, err)
			}
			if k := w.h.cfg.Testing; k != nil && k.AfterSnapshotIngest != nil {
				k.AfterSnapshotIngest(r.g.id)
			}
			if err := st.ApplySnapshot(b, snap); err != nil {
				return false, fmt.Errorf("group %d: applying snapshot: %w", r.g.id, err)
			}
		}
		if len(m.GetEntries()) > 0 {
			if err := st.Append(b, m.GetEntries()); err != nil {
				return false, fmt.Errorf("group %d: appending: %w", r.g.id, err)
			}
		}
		if m.Term != nil || m.Vote != nil || m.Commit != nil {
			hs := &pb.HardState{Term: new(m.GetTerm()), Vote: new(m.GetVote()), Commit: new(m.GetCommit())}
			if err := st.SetHardState(b, hs); err != nil {
				return false, fmt.Errorf("group %d: saving HardState: %w", r.g.id, err)
			}
		}
	}
	if !sequential && !b.Empty() {
		if err := b.CommitPipelined(); err != nil {
			return false, err
		}
		w.inflight.Add(1)
		w.pipe <- &pipelinedBatch{b: b, reqs: reqs, appends: appends, start: start}
		return true, nil
	}
	if !sequential {
		// Nothing to write (skipped requests, or responses alone): the
		// batches before this one must still be delivered first.
		return false, w.waitDelivered()
	}
	if !b.Empty() {
		if err := b.Commit(true); err != nil {
			return false, err
		}
		w.h.metrics.observeLogWrite(appends, time.Since(start))
	}
	for i := range reqs {
		if r := &reqs[i]; r.kind == reqDestroy {
			if err := writeDestroy(w.h.eng, r.g.id, r.g.replicaID, r.spans); err != nil {
				return false, fmt.Errorf("group %d: destroying replica: %w", r.g.id, err)
			}
			r.g.storage.Close()
			if o, ok := r.g.sm.(DestroyObserver); ok {
				o.Destroyed()
			}
		}
	}
	return false, nil
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
