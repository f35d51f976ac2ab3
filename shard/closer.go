// Copyright 2026 The Flotilla Authors. All rights reserved.

package shard

import (
	"context"
	"sync"
	"time"

	"github.com/flotilladb/flotilla/multiraft"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"google.golang.org/protobuf/proto"
)

// Closed revisions on demand (docs/REVISIONS.md, "Closed revisions"): a
// range proposes "closed at C" only when somebody needs a read at or below
// C served without a leader round (a watch across ranges, a follower
// read), never periodically, so a quiesced range with no watchers does no
// work. Requests are batched per range: those that arrive while a range's
// round runs wait for its next one, which proposes one close for all of
// them; ranges run their rounds independently, so a range waiting for a
// slow write holds back no other.

// closeRoundTimeout bounds one round of a range: its wait for the writes
// in flight and its proposal.
const closeRoundTimeout = 10 * time.Second

// closer batches the store's close requests into rounds per range.
type closer struct {
	mu     sync.Mutex
	ranges map[multiraft.GroupID]*rangeCloser
	// joined, rounds and proposals count requests, rounds run and close
	// proposals made (tests read them).
	joined, rounds, proposals int64
}

// rangeCloser is one range's requests: pending is the highest revision
// asked since its current round began, next the round that will serve
// them; running says a goroutine runs its rounds.
type rangeCloser struct {
	pending int64
	next    *closeRound
	running bool
}

// closeRound is one round's outcome, set before done is closed: the
// range's closed revision after it, or the error it failed with.
type closeRound struct {
	done   chan struct{}
	closed int64
	err    error
}

// EnsureClosed returns once this store's replica of range id, which must
// lead it, has applied "closed at C" for some C >= rev, and returns C:
// from then on no write at or below rev can apply in the range, and every
// replica that applied the close serves reads at or below C without a
// leader round. rev must have been handed out by the oracle (a later one
// fails with FutureRevision). The leader waits for its writes in flight at
// or below rev to apply or give up first. Concurrent requests for a range
// share rounds and proposals.
func (s *Store) EnsureClosed(ctx context.Context, id multiraft.GroupID, rev int64) (int64, error) {
	if rev < 0 {
		return 0, invalidArgument(readOutcome, "revision", "negative revision %d", rev)
	}
	r, ok := s.Replica(id)
	if !ok || !r.initialized() {
		return 0, rangeNotFound(readOutcome, id, "range %d has no replica on this store", id)
	}
	if closed := r.revisions().closed; closed >= rev {
		return closed, nil
	}
	if rev > s.cfg.Revisions.Seen() {
		// Each caller's own check, so that one asking for a revision in
		// the future fails alone.
		current, err := s.cfg.Revisions.Revision(ctx)
		if err != nil {
			return 0, oracleError(readOutcome, id, err)
		}
		if rev > current {
			return 0, futureRevision(readOutcome, rev, current)
		}
	}
	round := s.closer.join(s, id, rev)
	select {
	case <-round.done:
	case <-ctx.Done():
		return 0, unavailable(readOutcome, "range %d: waiting to close at revision %d: %v", id, rev, ctx.Err())
	}
	if round.err != nil {
		return 0, round.err
	}
	if round.closed < rev {
		return 0, unavailable(readOutcome, "range %d: closed at %d, below revision %d; retry", id, round.closed, rev)
	}
	return round.closed, nil
}

// join adds a request to its range's next round, starting the range's
// rounds if they do not run, and returns that round.
func (c *closer) join(s *Store, id multiraft.GroupID, rev int64) *closeRound {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ranges == nil {
		c.ranges = make(map[multiraft.GroupID]*rangeCloser)
	}
	rc := c.ranges[id]
	if rc == nil {
		rc = &rangeCloser{}
		c.ranges[id] = rc
	}
	if rc.next == nil {
		rc.next = &closeRound{done: make(chan struct{})}
	}
	rc.pending = max(rc.pending, rev)
	c.joined++
	round := rc.next
	if !rc.running {
		rc.running = true
		go c.run(s, id, rc)
	}
	return round
}

// run serves range id's rounds until no request is pending.
func (c *closer) run(s *Store, id multiraft.GroupID, rc *rangeCloser) {
	for {
		c.mu.Lock()
		round, rev := rc.next, rc.pending
		if round == nil {
			rc.running = false
			delete(c.ranges, id)
			c.mu.Unlock()
			return
		}
		rc.next, rc.pending = nil, 0
		c.rounds++
		c.mu.Unlock()

		ctx, cancel := context.WithTimeout(context.Background(), closeRoundTimeout)
		round.closed, round.err = s.closeAt(ctx, id, rev)
		cancel()
		close(round.done)
	}
}

// closeAt closes range id at rev or above, as its leader (rev was handed
// out), and returns its closed revision then.
func (s *Store) closeAt(ctx context.Context, id multiraft.GroupID, rev int64) (int64, error) {
	host := s.raftHost()
	if host == nil {
		return 0, unavailable(readOutcome, "the store is not running yet")
	}
	r, ok := s.Replica(id)
	if !ok || !r.initialized() {
		return 0, rangeNotFound(readOutcome, id, "range %d has no replica on this store", id)
	}
	if closed := r.revisions().closed; closed >= rev {
		return closed, nil
	}
	st, ok := host.Leadership(id)
	if !ok {
		return 0, rangeNotFound(readOutcome, id, "range %d has no replica on this store", id)
	}
	if !st.Leading() {
		return 0, notLeader(readOutcome, id, st.Leader)
	}
	term := st.Term
	// rev was handed out before the round began: every write registered
	// from now on asks the oracle later and gets a higher revision. Wait
	// for those registered before that may get (or got) one at or below
	// it.
	if e := waitForWrites(ctx, r, r.tracker.before(term, readKeys{}), rev, leadsIn(host, id, term)); e != nil {
		return 0, e
	}
	return s.proposeClose(ctx, host, r, term)
}

// proposeClose proposes, as the range's leader in term, "closed at C" for
// the highest C it may close at (closable), and returns the range's closed
// revision once it applied (unchanged if C was not above it).
func (s *Store) proposeClose(ctx context.Context, host RaftHost, r *Replica, term uint64) (int64, error) {
	c := r.tracker.closable(term, s.cfg.Revisions.Seen())
	if c <= r.revisions().closed {
		return r.revisions().closed, nil
	}
	desc := r.descriptor()
	data, err := proto.Marshal(&flotillapb.KVCommand{RangeId: uint64(r.id), Version: desc.GetEpoch().GetVersion(), Close: c})
	if err != nil {
		return 0, invalidArgument(writeOutcome, "close", "%v", err)
	}
	s.closer.mu.Lock()
	s.closer.proposals++
	s.closer.mu.Unlock()
	if _, _, e := proposeCommand(ctx, host, r.id, data); e != nil {
		return 0, e
	}
	return r.revisions().closed, nil
}

// CloseStats returns how many requests the store's closer took, how many
// rounds it ran and how many close proposals they made.
func (s *Store) CloseStats() (requests, rounds, proposals int64) {
	s.closer.mu.Lock()
	defer s.closer.mu.Unlock()
	return s.closer.joined, s.closer.rounds, s.closer.proposals
}
