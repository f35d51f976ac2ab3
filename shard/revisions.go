// Copyright 2026 The Flotilla Authors. All rights reserved.

package shard

import (
	"bytes"
	"container/heap"
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/flotilladb/flotilla/multiraft"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"google.golang.org/protobuf/proto"
)

// Revisions is the node's client of the cluster's revision oracle
// (docs/REVISIONS.md, "The oracle"). Its methods may be called from any
// goroutine.
type Revisions interface {
	// Revision returns a revision handed out after the call began: above
	// every revision handed out (to anyone) before that, and unique.
	Revision(ctx context.Context) (int64, error)
	// Seen returns the highest revision this node has received from the
	// oracle, 0 if none.
	Seen() int64
}

// revState is a range's replicated revision state (flotillapb.RangeRevisions).
type revState struct {
	// last is the highest revision the range applied a write at; closed
	// the revision at or below which apply refuses writes; compacted the
	// revision below which versions may be gone.
	last, closed, compacted int64
}

func (s revState) proto() *flotillapb.RangeRevisions {
	return &flotillapb.RangeRevisions{Last: s.last, Closed: s.closed, Compacted: s.compacted}
}

func revStateOf(p *flotillapb.RangeRevisions) revState {
	return revState{last: p.GetLast(), closed: p.GetClosed(), compacted: p.GetCompacted()}
}

func (s revState) marshal() ([]byte, error) {
	return proto.MarshalOptions{Deterministic: true}.Marshal(s.proto())
}

// writeTracker follows, on a range's leader, every write from the moment
// it asks the oracle for a revision until it is resolved: applied, refused
// at apply, or given up without being proposed. It serves two purposes
// (docs/REVISIONS.md, "The write path" and "Reads at a revision"):
//
//   - ordering: a write proposes only once no other write of the range
//     that may get (or got) a smaller revision in the same term is still
//     unproposed, so that the range proposes in revision order;
//   - reads: a read at R waits for every write registered before it
//     arrived, in its term, whose revision is at or below R.
//
// Writes register and deregister themselves; one whose caller left
// before its proposal resolved is pruned once it has.
//
// Turns cost O(log n) per write, not a scan: per term, the writes without a
// revision are kept in registration order and those with one that have not
// proposed in a heap by revision, and only the heap's head is ever woken.
type writeTracker struct {
	mu sync.Mutex
	// writes are the tracked writes.
	writes map[*trackedWrite]struct{}
	// seq numbers the writes in registration order.
	seq uint64
	// pruneAt is the number of tracked writes at which register prunes
	// those resolved since (whose callers left) or of older terms.
	pruneAt int
	// queues holds, per raft term, the term's writes that have not
	// proposed or given up.
	queues map[uint64]*turnQueue
}

// turnQueue orders the unproposed writes of one term.
type turnQueue struct {
	// first and last delimit the writes without a revision, in
	// registration (seq) order, linked by prev and next.
	first, last *trackedWrite
	// ready holds the writes with a revision, a min-heap by revision.
	ready readyHeap
}

// trackedWrite is one write on its way. Fields are guarded by the
// tracker's mu.
type trackedWrite struct {
	// term is the raft term its proposer led in when it registered.
	term uint64
	// seq is its registration's number; revSeq the tracker's seq when it
	// got its revision: writes registered after that get higher
	// revisions (they ask the oracle later), so it never waits for them.
	seq, revSeq uint64
	// seen is the highest revision the node had received when it
	// registered: its own revision is above it.
	seen int64
	// keys are the keys it may change (immutable).
	keys writeKeys
	// rev is its revision, 0 until the oracle answered.
	rev int64
	// proposed: it was handed to raft (or gave up); later writes no
	// longer wait for it.
	proposed bool
	// done, set when proposed, is closed when it resolves (its proposal's
	// Done, or a closed channel when it gave up).
	done <-chan struct{}
	// prev and next link it among its queue's writes without a revision.
	prev, next *trackedWrite
	// heapIndex is its index in its queue's ready heap, -1 when not there.
	heapIndex int
	// granted: it may propose; turn, made by a waiter, is closed then.
	granted bool
	turn    chan struct{}
	// propose, if set, proposes it; whoever grants it its turn calls it
	// then, under the tracker's mu, and keeps the proposal (so that a
	// batch of writes proposes at once, in order, not one goroutine
	// wake-up after another). Unset, its own goroutine proposes once
	// granted, and calls proposed.
	propose  func() *multiraft.Proposal
	proposal *multiraft.Proposal
	// changed, made by a read waiting for it, is closed (and cleared)
	// when it gets its revision, proposes or gives up.
	changed chan struct{}
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (t *writeTracker) init() {
	t.writes = make(map[*trackedWrite]struct{})
	t.queues = make(map[uint64]*turnQueue)
	t.pruneAt = minPruneAt
}

// minPruneAt is the least number of tracked writes at which register
// prunes.
const minPruneAt = 256

// register starts tracking a write of term; seen is the highest revision
// the node has received.
func (t *writeTracker) register(term uint64, seen int64, keys writeKeys) *trackedWrite {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.writes) >= t.pruneAt {
		t.pruneLocked(term)
		t.pruneAt = max(minPruneAt, 2*len(t.writes))
	}
	t.seq++
	w := &trackedWrite{term: term, seq: t.seq, seen: seen, keys: keys, heapIndex: -1}
	t.writes[w] = struct{}{}
	q := t.queues[term]
	if q == nil {
		q = &turnQueue{}
		t.queues[term] = q
	}
	q.pushUnrevised(w)
	return w
}

// pruneLocked drops the writes that resolved (their callers left before)
// and those of terms before term.
func (t *writeTracker) pruneLocked(term uint64) {
	for w := range t.writes {
		if w.term < term || w.done != nil && isClosed(w.done) {
			delete(t.writes, w)
		}
	}
}

// setRevision records the revision w got and how to propose it (nil: its
// own goroutine proposes it after waitTurn).
func (t *writeTracker) setRevision(w *trackedWrite, rev int64, propose func() *multiraft.Proposal) {
	t.mu.Lock()
	defer t.mu.Unlock()
	w.rev, w.revSeq, w.propose = rev, t.seq, propose
	q := t.queues[w.term]
	q.removeUnrevised(w)
	heap.Push(&q.ready, w)
	w.notifyLocked()
	t.grantLocked(w.term, q)
}

// giveUp resolves w without proposing it: it will never be.
func (t *writeTracker) giveUp(w *trackedWrite) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.giveUpLocked(w)
}

func (t *writeTracker) giveUpLocked(w *trackedWrite) {
	t.leaveQueueLocked(w)
	w.proposed, w.done = true, closedChan
	delete(t.writes, w)
	w.notifyLocked()
}

// proposed records that w was handed to raft; done is closed when it
// resolves.
func (t *writeTracker) proposed(w *trackedWrite, done <-chan struct{}) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.leaveQueueLocked(w)
	w.proposed, w.done = true, done
	w.notifyLocked()
}

// leaveQueueLocked takes w, proposing or giving up, out of its term's
// queue and lets the next write there have its turn.
func (t *writeTracker) leaveQueueLocked(w *trackedWrite) {
	if w.proposed {
		return
	}
	q := t.queues[w.term]
	if w.heapIndex >= 0 {
		heap.Remove(&q.ready, w.heapIndex)
	} else {
		q.removeUnrevised(w)
	}
	t.grantLocked(w.term, q)
}

// notifyLocked wakes the reads waiting for w to change.
func (w *trackedWrite) notifyLocked() {
	if w.changed != nil {
		close(w.changed)
		w.changed = nil
	}
}

// finish stops tracking w once it resolved (its proposal's outcome is
// known, or its caller left: then it stays until pruned).
func (t *writeTracker) finish(w *trackedWrite) {
	t.mu.Lock()
	if w.done != nil && isClosed(w.done) {
		delete(t.writes, w)
	}
	t.mu.Unlock()
}

func isClosed(c <-chan struct{}) bool {
	select {
	case <-c:
		return true
	default:
		return false
	}
}

// waitTurn returns once no other write of w's term that got a smaller
// revision, or has none yet and registered before w got its revision, is
// still unproposed: w may propose, or, if it was set up so, was proposed
// (its proposal is returned). ctx ending first gives w up and returns
// ctx's error.
func (t *writeTracker) waitTurn(ctx context.Context, w *trackedWrite) (*multiraft.Proposal, error) {
	t.mu.Lock()
	if w.granted {
		p := w.proposal
		t.mu.Unlock()
		return p, nil
	}
	if w.turn == nil {
		w.turn = make(chan struct{})
	}
	turn := w.turn
	t.mu.Unlock()
	select {
	case <-turn:
	case <-ctx.Done():
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if !w.granted {
		t.giveUpLocked(w)
		return nil, ctx.Err()
	}
	return w.proposal, nil
}

// grantLocked gives the turn to the write with the smallest revision once
// no write without a revision registered before it got its own: none of
// those can get a smaller one any more, and every other write with a
// revision has a larger one. (A write registered after w got its revision
// asks the oracle later and gets a larger one, so it never holds w back.)
// A write that can propose itself here does, and leaves the queue, and the
// next one is considered; one whose goroutine proposes it holds its turn
// until it calls proposed. An empty queue is dropped.
func (t *writeTracker) grantLocked(term uint64, q *turnQueue) {
	for len(q.ready) > 0 {
		head := q.ready[0]
		if head.granted || q.first != nil && q.first.seq <= head.revSeq {
			return
		}
		head.granted = true
		if head.propose != nil {
			heap.Pop(&q.ready)
			head.proposal = head.propose()
			head.proposed, head.done = true, head.proposal.Done()
			head.notifyLocked()
		}
		if head.turn != nil {
			close(head.turn)
		}
		if head.propose == nil {
			return
		}
	}
	if q.first == nil {
		delete(t.queues, term)
	}
}

func (q *turnQueue) pushUnrevised(w *trackedWrite) {
	w.prev, w.next = q.last, nil
	if q.last != nil {
		q.last.next = w
	} else {
		q.first = w
	}
	q.last = w
}

func (q *turnQueue) removeUnrevised(w *trackedWrite) {
	if w.prev != nil {
		w.prev.next = w.next
	} else if q.first == w {
		q.first = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else if q.last == w {
		q.last = w.prev
	}
	w.prev, w.next = nil, nil
}

// readyHeap is a turnQueue's writes with a revision, a container/heap by
// revision that keeps each write's heapIndex.
type readyHeap []*trackedWrite

func (h readyHeap) Len() int           { return len(h) }
func (h readyHeap) Less(i, j int) bool { return h[i].rev < h[j].rev }
func (h readyHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIndex, h[j].heapIndex = i, j
}
func (h *readyHeap) Push(x any) {
	w := x.(*trackedWrite)
	w.heapIndex = len(*h)
	*h = append(*h, w)
}
func (h *readyHeap) Pop() any {
	old := *h
	n := len(old) - 1
	w := old[n]
	old[n] = nil
	*h = old[:n]
	w.heapIndex = -1
	return w
}

// before returns the writes of term registered so far (a read's arrival)
// that may change a key of keys, pruning those resolved or of older terms.
func (t *writeTracker) before(term uint64, keys readKeys) []*trackedWrite {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []*trackedWrite
	for w := range t.writes {
		switch {
		case w.term < term, w.done != nil && isClosed(w.done):
			delete(t.writes, w)
		case w.term == term && keys.touchedBy(w.keys):
			out = append(out, w)
		}
	}
	return out
}

// writeKeys are the keys a write may change: those of its ops, of both
// branches for a txn. A write with no ops may change any key (the zero
// value: keys not known).
type writeKeys struct {
	ops, failure []*flotillapb.Op
}

// readKeys are the keys a read reads: one key (point), or the span
// [start, end) (an empty end: to the end of the keyspace). The zero value
// is every key.
type readKeys struct {
	start, end []byte
	point      bool
}

// touchedBy reports whether a write of wk may change a key of rk.
func (rk readKeys) touchedBy(wk writeKeys) bool {
	if len(wk.ops) == 0 && len(wk.failure) == 0 {
		return true
	}
	return rk.touchedByOps(wk.ops) || rk.touchedByOps(wk.failure)
}

func (rk readKeys) touchedByOps(ops []*flotillapb.Op) bool {
	for _, op := range ops {
		switch o := op.GetOp().(type) {
		case *flotillapb.Op_Put:
			if rk.holds(o.Put.GetKey()) {
				return true
			}
		case *flotillapb.Op_Delete:
			if rk.holds(o.Delete.GetKey()) {
				return true
			}
		case *flotillapb.Op_Cas:
			if rk.holds(o.Cas.GetKey()) {
				return true
			}
		case *flotillapb.Op_DeleteRange:
			if rk.overlaps(userSpan{start: o.DeleteRange.GetStartKey(), end: o.DeleteRange.GetEndKey()}) {
				return true
			}
		default:
			return true // an op this does not know may change anything
		}
	}
	return false
}

// holds reports whether key is one of rk's.
func (rk readKeys) holds(key []byte) bool {
	if rk.point {
		return bytes.Equal(key, rk.start)
	}
	return userSpan{start: rk.start, end: rk.end}.contains(key)
}

// overlaps reports whether span holds a key of rk.
func (rk readKeys) overlaps(span userSpan) bool {
	if rk.point {
		return span.contains(rk.start)
	}
	return (len(span.end) == 0 || bytes.Compare(rk.start, span.end) < 0) &&
		(len(rk.end) == 0 || bytes.Compare(span.start, rk.end) < 0)
}

// waitResolved returns once every write of ws with a revision at or below
// rev has resolved (those that get a revision above it are skipped).
// stillLeader is asked between waits; a false answer fails the wait (the
// term changed: a write the read waits for may yet apply).
func (t *writeTracker) waitResolved(ctx context.Context, ws []*trackedWrite, rev int64, stillLeader func() bool) error {
	for _, w := range ws {
		for {
			t.mu.Lock()
			if w.rev > rev || w.done != nil && isClosed(w.done) {
				t.mu.Unlock()
				break
			}
			wait := w.done
			if wait == nil {
				// No revision yet (it may get one at or below rev), or
				// not proposed yet.
				if w.changed == nil {
					w.changed = make(chan struct{})
				}
				wait = w.changed
			}
			t.mu.Unlock()
			if !stillLeader() {
				return errLostLeadership
			}
			if err := waitOne(ctx, wait); err != nil {
				return err
			}
		}
	}
	return nil
}

var errLostLeadership = fmt.Errorf("shard: lost leadership while a read waited for writes")

// leaderCheckInterval bounds how long a read waiting for a write goes
// without checking that its replica still leads.
const leaderCheckInterval = 20 * time.Millisecond

func waitOne(ctx context.Context, c <-chan struct{}) error {
	t := time.NewTimer(leaderCheckInterval)
	defer t.Stop()
	select {
	case <-c:
	case <-t.C:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// closable returns the highest revision the range's leader may close at
// in term: at most the highest revision this node received (a write in
// flight to it gets a higher one), and below every write of the term that
// got its revision and has not resolved (docs/REVISIONS.md, "Closed
// revisions").
func (t *writeTracker) closable(term uint64, seen int64) int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := seen
	for w := range t.writes {
		if w.term != term || w.done != nil && isClosed(w.done) {
			continue
		}
		if w.rev != 0 {
			c = min(c, w.rev-1)
		} else {
			// Its revision may be handed out already, above what the
			// node had seen when it registered.
			c = min(c, w.seen)
		}
	}
	return c
}
