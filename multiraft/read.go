// Copyright 2026 The Flotilla Authors. All rights reserved.

package multiraft

import (
	"context"
	"encoding/binary"
	"errors"

	"go.etcd.io/raft/v3"
)

// ErrReadFailed: a ReadIndex request was lost or overtaken by a leadership
// change; retry it.
var ErrReadFailed = errors.New("multiraft: read index request failed")

// readReq is one caller waiting to read.
type readReq struct {
	done  chan struct{}
	index uint64
	err   error
}

func (r *readReq) resolve(index uint64, err error) {
	r.index, r.err = index, err
	close(r.done)
}

// readBatch is the reads of a group that share one raft ReadIndex request.
type readBatch struct {
	reads []*readReq
	// term and leader when the request was issued, and ticks since: the
	// batch fails if either changes or it is not answered in an election
	// timeout (the request or its answer was lost).
	term, leader uint64
	ticks        int
}

// ReadIndex returns once a linearizable read of the group's state machine
// may be served from this replica: the group's leader confirmed, through a
// quorum, that it was still leader at a commit index, and this replica
// applied that index. It returns the index. Concurrent reads of a group
// share rounds. On a follower or learner the request is forwarded to the
// leader. Errors: *NotAppliedError with ErrNotLeader when the replica knows
// no leader, ErrReadFailed when the request is lost (retry), ErrStopped, or
// ctx's error.
func (h *Host) ReadIndex(ctx context.Context, id GroupID) (uint64, error) {
	if h.stopper.Stopping() {
		return 0, ErrStopped
	}
	r := &readReq{done: make(chan struct{})}
	if err := h.toInbox(id, func(g *group) { g.inbox.reads = append(g.inbox.reads, r) }); err != nil {
		return 0, err
	}
	select {
	case <-r.done:
		return r.index, r.err
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-h.stopper.ShouldStop():
		return 0, ErrStopped
	}
}

// maybeIssueReads starts a ReadIndex round for the queued reads unless
// the group has Config.ReadRounds in flight (worker). It reports whether it
// started one.
func (h *Host) maybeIssueReads(g *group) bool {
	if len(g.readQueue) == 0 || len(g.readBatches) >= max(h.cfg.ReadRounds(g.id), 1) {
		return false
	}
	reads := g.readQueue
	g.readQueue = nil
	return h.issueReads(g, reads)
}

// issueReads starts one ReadIndex round for reads (worker).
func (h *Host) issueReads(g *group, reads []*readReq) bool {
	st := g.rn.BasicStatus()
	if st.Lead == 0 {
		for _, r := range reads {
			r.resolve(0, &NotAppliedError{Err: ErrNotLeader})
		}
		return false
	}
	ctx := binary.BigEndian.AppendUint64(nil, h.rng.nonZero())
	g.readBatches[string(ctx)] = &readBatch{reads: reads, term: st.GetTerm(), leader: st.Lead}
	h.metrics.readRounds.Inc()
	g.rn.ReadIndex(ctx)
	return true
}

// handleReadStates matches raft's answers to read batches (worker).
func (h *Host) handleReadStates(g *group, states []raft.ReadState) {
	for _, rs := range states {
		b := g.readBatches[string(rs.RequestCtx)]
		if b == nil {
			continue
		}
		delete(g.readBatches, string(rs.RequestCtx))
		for _, r := range b.reads {
			r.index = rs.Index
			if g.applied.index >= rs.Index {
				r.resolve(rs.Index, nil)
			} else {
				g.readWaiters = append(g.readWaiters, r)
			}
		}
	}
}

// releaseReads lets reads whose index is now applied proceed (worker).
func (g *group) releaseReads() {
	if len(g.readWaiters) == 0 {
		return
	}
	kept := g.readWaiters[:0]
	for _, r := range g.readWaiters {
		if r.index <= g.applied.index {
			r.resolve(r.index, nil)
		} else {
			kept = append(kept, r)
		}
	}
	clear(g.readWaiters[len(kept):])
	g.readWaiters = kept
}

// expireReads fails read batches whose round cannot complete: leadership
// changed, or no answer within an election timeout (worker).
func (h *Host) expireReads(g *group, ticks int) {
	if len(g.readBatches) == 0 {
		return
	}
	st := g.rn.BasicStatus()
	for ctx, b := range g.readBatches {
		b.ticks += ticks
		if b.term == st.GetTerm() && b.leader == st.Lead && b.ticks < h.cfg.ElectionTicks {
			continue
		}
		delete(g.readBatches, ctx)
		for _, r := range b.reads {
			r.resolve(0, ErrReadFailed)
		}
	}
}

// failReads fails every read of the group (worker or after the workers
// stopped).
func (g *group) failReads(err error) {
	for ctx, b := range g.readBatches {
		for _, r := range b.reads {
			r.resolve(0, err)
		}
		delete(g.readBatches, ctx)
	}
	for _, rs := range [][]*readReq{g.readWaiters, g.readQueue} {
		for _, r := range rs {
			r.resolve(0, err)
		}
	}
	g.readWaiters, g.readQueue = nil, nil
}
