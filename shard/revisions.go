// Copyright 2026 The Flotilla Authors. All rights reserved.

package shard

import (
	"context"
	"fmt"
	"sync"
	"time"

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
type writeTracker struct {
	mu sync.Mutex
	// writes are the tracked writes.
	writes map[*trackedWrite]struct{}
	// seq numbers the writes in registration order.
	seq uint64
	// pruneAt is the number of tracked writes at which register prunes
	// those resolved since (whose callers left) or of older terms.
	pruneAt int
	// changed is closed and replaced whenever a tracked write gets its
	// revision, proposes, or gives up.
	changed chan struct{}
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
	// rev is its revision, 0 until the oracle answered.
	rev int64
	// proposed: it was handed to raft (or gave up); later writes no
	// longer wait for it.
	proposed bool
	// done, set when proposed, is closed when it resolves (its proposal's
	// Done, or a closed channel when it gave up).
	done <-chan struct{}
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

func (t *writeTracker) init() {
	t.writes = make(map[*trackedWrite]struct{})
	t.changed = make(chan struct{})
	t.pruneAt = minPruneAt
}

// minPruneAt is the least number of tracked writes at which register
// prunes.
const minPruneAt = 256

// notifyLocked wakes everyone waiting for a change.
func (t *writeTracker) notifyLocked() {
	close(t.changed)
	t.changed = make(chan struct{})
}

// register starts tracking a write of term; seen is the highest revision
// the node has received.
func (t *writeTracker) register(term uint64, seen int64) *trackedWrite {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.writes) >= t.pruneAt {
		t.pruneLocked(term)
		t.pruneAt = max(minPruneAt, 2*len(t.writes))
	}
	t.seq++
	w := &trackedWrite{term: term, seq: t.seq, seen: seen}
	t.writes[w] = struct{}{}
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

// setRevision records the revision w got.
func (t *writeTracker) setRevision(w *trackedWrite, rev int64) {
	t.mu.Lock()
	w.rev, w.revSeq = rev, t.seq
	t.notifyLocked()
	t.mu.Unlock()
}

// giveUp resolves w without proposing it: it will never be.
func (t *writeTracker) giveUp(w *trackedWrite) {
	t.mu.Lock()
	w.proposed, w.done = true, closedChan
	delete(t.writes, w)
	t.notifyLocked()
	t.mu.Unlock()
}

// proposed records that w was handed to raft; done is closed when it
// resolves.
func (t *writeTracker) proposed(w *trackedWrite, done <-chan struct{}) {
	t.mu.Lock()
	w.proposed, w.done = true, done
	t.notifyLocked()
	t.mu.Unlock()
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
// still unproposed: w may propose. ctx ending returns its error.
func (t *writeTracker) waitTurn(ctx context.Context, w *trackedWrite) error {
	for {
		t.mu.Lock()
		blocked := false
		for o := range t.writes {
			if o != w && o.term == w.term && !o.proposed && o.seq <= w.revSeq && (o.rev == 0 || o.rev < w.rev) {
				blocked = true
				break
			}
		}
		changed := t.changed
		t.mu.Unlock()
		if !blocked {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// before returns the writes of term registered so far (a read's arrival),
// pruning those resolved or of older terms.
func (t *writeTracker) before(term uint64) []*trackedWrite {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []*trackedWrite
	for w := range t.writes {
		switch {
		case w.term < term, w.done != nil && isClosed(w.done):
			delete(t.writes, w)
		case w.term == term:
			out = append(out, w)
		}
	}
	return out
}

// waitResolved returns once every write of ws with a revision at or below
// rev has resolved (those that get a revision above it are skipped).
// stillLeader is asked between waits; a false answer fails the wait (the
// term changed: a write the read waits for may yet apply).
func (t *writeTracker) waitResolved(ctx context.Context, ws []*trackedWrite, rev int64, stillLeader func() bool) error {
	for _, w := range ws {
		for {
			t.mu.Lock()
			r, done, changed := w.rev, w.done, t.changed
			t.mu.Unlock()
			if r > rev {
				break
			}
			if done != nil && isClosed(done) {
				break
			}
			wait := changed
			if done != nil {
				wait = nil
			}
			if !stillLeader() {
				return errLostLeadership
			}
			if err := waitOne(ctx, wait, done); err != nil {
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

func waitOne(ctx context.Context, a, b <-chan struct{}) error {
	t := time.NewTimer(leaderCheckInterval)
	defer t.Stop()
	select {
	case <-a:
	case <-b:
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
