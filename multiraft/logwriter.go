// Copyright 2026 The Flotilla Authors. All rights reserved.

package multiraft

import (
	"fmt"
	"sync"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
)

// logWriter makes the raft log appends and HardStates of every group
// durable. Workers queue MsgStorageAppend messages; the writer drains all
// that are queued into one engine batch, commits it with one fsync, and then
// delivers each message's responses: to the group itself (stepped by its
// worker) or to peers (sent). While one batch is being synced the next one
// fills, so the number of fsyncs per append falls as load rises.
//
// Invariants: messages of one group are written in the order raft emitted
// them (one queue, one writer), and no response is delivered before the
// batch holding its write is durable.
type logWriter struct {
	h *Host

	mu struct {
		sync.Mutex
		queue []appendReq
	}
	wake chan struct{}
	done chan struct{}
	// spare is the previous queue, reused to avoid allocating.
	spare []appendReq
}

type appendReq struct {
	g *group
	m *pb.Message
}

func newLogWriter(h *Host) *logWriter {
	return &logWriter{h: h, wake: make(chan struct{}, 1), done: make(chan struct{})}
}

func (w *logWriter) start() { go w.run() }

// stop waits for the writer to exit. Queued writes that were not yet
// committed are dropped: they were never acknowledged.
func (w *logWriter) stop() { <-w.done }

func (w *logWriter) enqueue(g *group, m *pb.Message) {
	w.mu.Lock()
	w.mu.queue = append(w.mu.queue, appendReq{g: g, m: m})
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
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
			w.h.fail(fmt.Errorf("log writer: %w", err))
			return
		}
		w.deliver(reqs)
		clear(reqs)
		w.spare = reqs
	}
}

// write stages every request in one batch and commits it durably.
func (w *logWriter) write(reqs []appendReq) error {
	start := time.Now()
	b := w.h.eng.NewBatch()
	defer b.Close()
	for _, r := range reqs {
		st := r.g.storage.RaftStorage
		m := r.m
		if snap := m.GetSnapshot(); snap != nil && snap.GetMetadata().GetIndex() != 0 {
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
	if err := b.Commit(true); err != nil {
		return err
	}
	w.h.metrics.observeLogWrite(len(reqs), time.Since(start))
	return nil
}

// deliver hands out the responses of durable requests.
func (w *logWriter) deliver(reqs []appendReq) {
	touched := make([]*group, 0, len(reqs))
	for _, r := range reqs {
		r.g.appendsInFlight.Add(-1)
		local := false
		for _, resp := range r.m.GetResponses() {
			if ReplicaID(resp.GetTo()) == r.g.replicaID {
				r.g.addMessages(resp)
				local = true
			} else {
				w.h.send(r.g, resp)
			}
		}
		if local {
			touched = append(touched, r.g)
		}
	}
	w.h.sched.enqueueAll(touched)
}
