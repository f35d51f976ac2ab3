// Copyright 2026 The Flotilla Authors. All rights reserved.

package shard

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/flotilladb/flotilla/engine"
	"github.com/flotilladb/flotilla/internal/invariants"
	"github.com/flotilladb/flotilla/multiraft"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// The request path. Every request names its range in its header, or leaves
// range_id 0 to be served by the local replica whose range holds its (first)
// key. It is checked, in this order, for: well-formed input
// (InvalidArgument); a host (Unavailable); a local initialized replica of
// the range (RangeNotFound); the header's epoch version, when set
// (EpochNotMatch); every key inside the range (KeyNotInRange). Writes are
// then proposed to the range's raft group on this node, which must lead it
// (NotLeader), and checked again when applied; reads wait for ReadIndex and
// check the range again before reading. Every error is a *flotillapb.Error:
// NOT_APPLIED or UNKNOWN for writes, OUTCOME_UNSPECIFIED for reads.

const (
	readOutcome  = flotillapb.Outcome_OUTCOME_UNSPECIFIED
	writeOutcome = flotillapb.Outcome_NOT_APPLIED
)

// Get returns the value of a key.
func (s *Store) Get(ctx context.Context, req *flotillapb.GetRequest) (*flotillapb.GetResponse, error) {
	if req == nil {
		return nil, invalidArgument(readOutcome, "request", "nil request")
	}
	if p := flotillapb.CheckKey(req.GetKey()); p != "" {
		return nil, invalidArgument(readOutcome, "key", "%s", p)
	}
	rd, err := s.startRead(ctx, req.GetHeader(), req.GetKey(), readKeys{start: req.GetKey(), point: true}, req.GetRevision(), func(desc *flotillapb.RangeDescriptor) *flotillapb.Error {
		if !spanOf(desc).contains(req.GetKey()) {
			return keyNotInRange(readOutcome, req.GetKey(), desc)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	defer rd.close()
	resp := &flotillapb.GetResponse{Header: rd.header()}
	if err := getAt(rd.snap, req.GetKey(), rd.rev, resp); err != nil {
		return nil, storageError(readOutcome, rd.r.id, err)
	}
	return resp, nil
}

// getAt fills resp with key's version at rev read from r.
func getAt(r engine.Reader, key []byte, rev int64, resp *flotillapb.GetResponse) error {
	v, found, err := engine.MVCCGet(r, key, rev)
	if err != nil || !found || v.Deleted {
		return err
	}
	resp.Found, resp.Value = true, v.Value
	resp.CreateRevision, resp.ModRevision, resp.Version, resp.Lease = v.CreateRevision, v.ModRevision, v.Version, v.Lease
	return nil
}

// scanAt fills resp with the pairs of [start, end) at rev read from r, at
// most limit of them (0: no limit) and about maxBytes of keys and values,
// setting More and ResumeKey when it stops early.
func scanAt(r engine.Reader, start, end []byte, limit int64, reverse bool, rev int64, maxBytes int, resp *flotillapb.ScanResponse) error {
	if (userSpan{start: start, end: end}).empty() {
		return nil
	}
	errStop := errors.New("stop")
	size := 0
	err := engine.MVCCScan(r, start, end, rev, engine.MVCCScanOptions{Reverse: reverse}, func(uk []byte, v engine.Version) error {
		if limit > 0 && int64(len(resp.Kvs)) >= limit || size >= maxBytes {
			resp.More = true
			return errStop
		}
		resp.Kvs = append(resp.Kvs, &flotillapb.KeyValue{
			Key: bytes.Clone(uk), Value: bytes.Clone(v.Value),
			CreateRevision: v.CreateRevision, ModRevision: v.ModRevision, Version: v.Version, Lease: v.Lease,
		})
		size += len(uk) + len(v.Value)
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return err
	}
	if resp.More && len(resp.Kvs) > 0 {
		last := resp.Kvs[len(resp.Kvs)-1].Key
		if reverse {
			resp.ResumeKey = bytes.Clone(last) // the exclusive end of the rest
		} else {
			resp.ResumeKey = append(bytes.Clone(last), 0) // the next key after it
		}
	}
	return nil
}

// Scan returns the pairs in [start_key, end_key), in key order or reverse
// order, at most limit of them (0: no limit) and, whatever the limit, stops
// after about Config.MaxScanBytes of keys and values; More says it stopped
// before the end of the span, and ResumeKey where the rest begins.
func (s *Store) Scan(ctx context.Context, req *flotillapb.ScanRequest) (*flotillapb.ScanResponse, error) {
	if req == nil {
		return nil, invalidArgument(readOutcome, "request", "nil request")
	}
	span := userSpan{start: req.GetStartKey(), end: req.GetEndKey()}
	if field, p := flotillapb.CheckSpan("", span.start, span.end); p != "" {
		return nil, invalidArgument(readOutcome, field, "%s", p)
	}
	if req.GetLimit() < 0 {
		return nil, invalidArgument(readOutcome, "limit", "negative limit %d", req.GetLimit())
	}
	rd, err := s.startRead(ctx, req.GetHeader(), span.start, readKeys{start: span.start, end: span.end}, req.GetRevision(), func(desc *flotillapb.RangeDescriptor) *flotillapb.Error {
		if bad, ok := spanWithin(spanOf(desc), span); !ok {
			return keyNotInRange(readOutcome, bad, desc)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	defer rd.close()
	resp := &flotillapb.ScanResponse{Header: rd.header()}
	if err := scanAt(rd.snap, span.start, span.end, req.GetLimit(), req.GetReverse(), rd.rev, s.cfg.MaxScanBytes, resp); err != nil {
		return nil, storageError(readOutcome, rd.r.id, err)
	}
	return resp, nil
}

// read is a read in progress: the replica, an engine snapshot taken after
// ReadIndex, and an applied index the snapshot includes (a leader's read:
// its read index; the snapshot may be newer).
type read struct {
	r       *Replica
	snap    *engine.Snapshot
	applied uint64
	// rev is the revision the read is served at.
	rev int64
}

func (rd *read) header() *flotillapb.ResponseHeader {
	return &flotillapb.ResponseHeader{RangeId: uint64(rd.r.id), AppliedIndex: rd.applied, Revision: rd.rev}
}

func (rd *read) close() { _ = rd.snap.Close() }

// startRead resolves the replica, checks the request against its
// descriptor, waits until the replica may serve a linearizable read of keys,
// and takes the engine snapshot to read from. check reports a key outside
// the range.
func (s *Store) startRead(ctx context.Context, h *flotillapb.RequestHeader, routeKey []byte, keys readKeys, rev int64,
	check func(*flotillapb.RangeDescriptor) *flotillapb.Error,
) (*read, error) {
	if rev < 0 {
		return nil, invalidArgument(readOutcome, "revision", "negative revision %d", rev)
	}
	host := s.raftHost()
	if host == nil {
		return nil, unavailable(readOutcome, "the store is not running yet")
	}
	r, desc, e := s.resolve(h, routeKey, readOutcome)
	if e != nil {
		return nil, e
	}
	if e := check(desc); e != nil {
		return nil, e
	}
	var readIndex uint64
	// A read at or below the range's closed revision needs no round, on
	// any replica: nothing at or below it can apply any more.
	closedRead := rev > 0 && rev <= r.revisions().closed
	switch {
	case closedRead:
	case s.cfg.Testing != nil && s.cfg.Testing.UnsafeFollowerReads:
		if rev == 0 {
			rev = r.revisions().last
		}
	case h.GetReadFrom() != flotillapb.ReadFrom_READ_FROM_LEADER && !leads(host, r.id):
		if s.cfg.Testing != nil && s.cfg.Testing.UnsafeFollowerReadsSkipClose {
			if rev == 0 {
				rev = r.revisions().last
			}
			break
		}
		var e *flotillapb.Error
		if rev, readIndex, e = s.awaitClosed(ctx, host, r, rev); e != nil {
			return nil, e
		}
		// Served like a read at a closed revision: from here on the
		// checks are the same.
		closedRead = true
		s.followerReads.Add(1)
		if f := s.cfg.OnFollowerRead; f != nil {
			f()
		}
	default:
		var e *flotillapb.Error
		if rev, readIndex, e = s.awaitRevision(ctx, host, r, keys, rev); e != nil {
			return nil, e
		}
	}
	snap, err := s.eng.NewSnapshot()
	if err != nil {
		return nil, storageError(readOutcome, r.id, err)
	}
	rd := &read{r: r, snap: snap, rev: rev}
	// Check again, now that the snapshot is taken: the range may have
	// changed while we waited, and the replica may have been removed (its
	// data is deleted after the host forgets it, so a replica the host
	// still has holds its data in the snapshot; a replica made since for
	// the same range is another one, whose state r does not have). The
	// in-memory descriptor is published before the engine commits, so it
	// is at least as new as the snapshot's.
	if cur, ok := s.Replica(r.id); !ok || cur != r {
		rd.close()
		return nil, rangeNotFound(readOutcome, r.id, "range %d was removed from this store", r.id)
	}
	desc = r.descriptor()
	if v := h.GetVersion(); v != 0 && v != desc.GetEpoch().GetVersion() {
		rd.close()
		return nil, r.epochNotMatch(readOutcome, desc, v)
	}
	if e := check(desc); e != nil {
		rd.close()
		return nil, e
	}
	// A leader's read reports its read index: the snapshot holds at least
	// that much of the log. Reading the applied state from the snapshot
	// would cost a seek through every level of a quiet range (a closed
	// read, which has no read index, pays it).
	rd.applied = readIndex
	if readIndex == 0 || invariants.Enabled {
		applied, err := multiraft.ReadAppliedIndex(snap, r.id)
		if err != nil {
			rd.close()
			return nil, storageError(readOutcome, r.id, err)
		}
		if invariants.Enabled && applied < readIndex {
			panic(fmt.Sprintf("shard: range %d: read at applied index %d after ReadIndex returned %d", r.id, applied, readIndex))
		}
		if readIndex == 0 {
			rd.applied = applied
		}
	}
	revs, cached := r.revisionsForRead()
	if !cached || closedRead || invariants.Enabled {
		stored, err := loadRevisions(snap, r.id)
		if err != nil {
			rd.close()
			return nil, storageError(readOutcome, r.id, err)
		}
		if invariants.Enabled && cached && stored.compacted > revs.compacted {
			panic(fmt.Sprintf("shard: range %d: cached compacted revision %d below the snapshot's %d", r.id, revs.compacted, stored.compacted))
		}
		if !cached || closedRead {
			revs = stored
		}
	}
	if rev < revs.compacted {
		rd.close()
		return nil, compacted(r.id, rev, revs.compacted)
	}
	if closedRead && rev > revs.closed {
		// The closed revision was published before the engine committed
		// it; the snapshot predates it.
		rd.close()
		return nil, unavailable(readOutcome, "range %d: revision %d is not closed on this replica yet; retry", r.id, rev)
	}
	now := time.Now()
	r.reads.add(now, 1)
	r.load.sample(now, routeKey)
	return rd, nil
}

// leads reports whether this store's replica of range id leads it.
func leads(host RaftHost, id multiraft.GroupID) bool {
	st, ok := host.Leadership(id)
	return ok && st.Leading()
}

// awaitClosed waits, on a replica that does not lead the range (a
// follower or an observer), until it may serve a read at rev (0: the
// latest, taken from the oracle after the request arrived, so at or above
// every write that completed before) from its own data: once it has
// applied "closed at C" for some C >= rev, no write at or below rev can
// apply any more, and its state at rev is final (docs/REVISIONS.md,
// "Follower reads"). If it has not, it asks the leader to close at rev
// (CloseAtLeader), then waits through a ReadIndex round for its log to
// reach the leader's commit index, which includes the close. It returns
// the revision and the read index (0 when no round was needed).
func (s *Store) awaitClosed(ctx context.Context, host RaftHost, r *Replica, rev int64) (int64, uint64, *flotillapb.Error) {
	if rev == 0 || rev > s.cfg.Revisions.Seen() {
		current, err := s.cfg.Revisions.Revision(ctx)
		if err != nil {
			return 0, 0, oracleError(readOutcome, r.id, err)
		}
		if rev > current {
			return 0, 0, futureRevision(readOutcome, rev, current)
		}
		if rev == 0 {
			rev = current
		}
	}
	if rev <= r.revisions().closed {
		return rev, 0, nil
	}
	st, ok := host.Leadership(r.id)
	if !ok {
		return 0, 0, rangeNotFound(readOutcome, r.id, "range %d has no replica on this store", r.id)
	}
	if st.Leader == 0 || s.cfg.CloseAtLeader == nil {
		return 0, 0, notLeader(readOutcome, r.id, st.Leader)
	}
	if _, err := s.cfg.CloseAtLeader(ctx, st.Leader.Node(), r.id, rev); err != nil {
		if fe, ok := err.(*flotillapb.Error); ok {
			switch fe.GetDetail().(type) {
			case *flotillapb.Error_FutureRevision, *flotillapb.Error_InvalidArgument:
				// The leader refuses the revision itself: so would any
				// replica.
				return 0, 0, fe
			case *flotillapb.Error_NotLeader:
				// A deposed leader names the new one, for the caller's
				// next attempt.
				if l := fe.GetNotLeader().GetLeader(); l.GetStoreId() != uint64(st.Replica.Node()) {
					return 0, 0, fe
				}
			}
		}
		// Anything else is about the leader, not this replica, which
		// cannot serve the read now.
		return 0, 0, unavailable(readOutcome, "range %d: asking leader %v to close at revision %d: %v", r.id, st.Leader, rev, err)
	}
	index, err := host.ReadIndex(ctx, r.id)
	if err != nil {
		return 0, 0, readIndexError(r.id, err)
	}
	if closed := r.revisions().closed; closed < rev {
		return 0, 0, unavailable(readOutcome, "range %d: closed at %d on this replica after the leader closed it at %d or above; retry", r.id, closed, rev)
	}
	return rev, index, nil
}

// FollowerReads returns how many reads this store's replicas served
// without leading their range (follower and observer reads).
func (s *Store) FollowerReads() int64 { return s.followerReads.Load() }

// awaitRevision waits, on the range's leader, until a read of keys at rev
// (0: the latest, which it takes from the oracle) may be served: conditions
// 1 to 3 of docs/REVISIONS.md, "Reads at a revision". It returns the
// revision and the read index.
func (s *Store) awaitRevision(ctx context.Context, host RaftHost, r *Replica, keys readKeys, rev int64) (int64, uint64, *flotillapb.Error) {
	st, ok := host.Leadership(r.id)
	if !ok {
		return 0, 0, rangeNotFound(readOutcome, r.id, "range %d has no replica on this store", r.id)
	}
	if !st.Leading() {
		// Only the leader knows the writes it is about to propose.
		return 0, 0, notLeader(readOutcome, r.id, st.Leader)
	}
	term := st.Term
	stillLeader := leadsIn(host, r.id, term)
	// The read "arrives" once a revision at or above rev is known to have
	// been handed out (condition 3): every write that registers later
	// asks the oracle later and gets a higher revision, and the writes
	// registered by then are those it may have to wait for (condition 2).
	switch {
	case rev == 0:
		got, err := s.cfg.Revisions.Revision(ctx)
		if err != nil {
			return 0, 0, oracleError(readOutcome, r.id, err)
		}
		rev = got
	case rev <= r.revisions().last || rev <= s.cfg.Revisions.Seen():
	default:
		current, err := s.cfg.Revisions.Revision(ctx)
		if err != nil {
			return 0, 0, oracleError(readOutcome, r.id, err)
		}
		if rev > current {
			return 0, 0, futureRevision(readOutcome, rev, current)
		}
	}
	if !stillLeader() {
		return 0, 0, notLeader(readOutcome, r.id, 0)
	}
	pending := r.tracker.before(term, keys)
	// Condition 1: a leadership check begun after the read arrived, its
	// index applied. ReadIndex on a follower is forwarded, so the term and
	// role are checked on both sides of it.
	idx, err := host.ReadIndex(ctx, r.id)
	if err != nil {
		return 0, 0, readIndexError(r.id, err)
	}
	if !stillLeader() {
		return 0, 0, notLeader(readOutcome, r.id, 0)
	}
	// etcd raft answers a single voter's ReadIndex at once, before the
	// leader has committed an entry of its term: entries of earlier terms
	// may still be unapplied (and a write among them may be at or below
	// rev). Wait until an entry of this term has applied.
	if err := awaitOwnTermApplied(ctx, host, r.id, term); err != nil {
		return 0, 0, err
	}
	// Condition 2.
	if s.testingKnob(func(k *TestingKnobs) bool { return k.UnsafeSkipReadWait }) {
		pending = nil
	}
	if e := waitForWrites(ctx, r, pending, rev, stillLeader); e != nil {
		return 0, 0, e
	}
	return rev, idx, nil
}

// leadsIn returns whether this store's replica of range id still leads it
// in term.
func leadsIn(host RaftHost, id multiraft.GroupID, term uint64) func() bool {
	return func() bool {
		st, ok := host.Leadership(id)
		return ok && st.Term == term && st.Leading()
	}
}

// waitForWrites waits, on r's leader, until every write of pending with a
// revision at or below rev has resolved (writeTracker.waitResolved), as a
// read at rev or a close at rev must; losing the lead fails it with
// NotLeader.
func waitForWrites(ctx context.Context, r *Replica, pending []*trackedWrite, rev int64, stillLeader func() bool) *flotillapb.Error {
	if err := r.tracker.waitResolved(ctx, pending, rev, stillLeader); err != nil {
		if errors.Is(err, errLostLeadership) {
			return notLeader(readOutcome, r.id, 0)
		}
		return unavailable(readOutcome, "range %d: waiting for writes at or below revision %d: %v", r.id, rev, err)
	}
	return nil
}

// awaitOwnTermApplied waits until the replica of range id has applied an
// entry of term while leading it (normally at once: a ReadIndex answered
// on a group of several voters implies it).
func awaitOwnTermApplied(ctx context.Context, host RaftHost, id multiraft.GroupID, term uint64) *flotillapb.Error {
	delay := 100 * time.Microsecond
	for {
		st, ok := host.Leadership(id)
		switch {
		case !ok:
			return rangeNotFound(readOutcome, id, "range %d has no replica on this store", id)
		case st.Term != term || !st.Leading():
			return notLeader(readOutcome, id, st.Leader)
		case st.AppliedTerm == term:
			return nil
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return unavailable(readOutcome, "range %d: waiting to apply an entry of term %d: %v", id, term, ctx.Err())
		case <-t.C:
		}
		delay = min(2*delay, 10*time.Millisecond)
	}
}

// resolve finds the replica a request is for and checks its epoch version.
func (s *Store) resolve(h *flotillapb.RequestHeader, routeKey []byte, outcome flotillapb.Outcome) (*Replica, *flotillapb.RangeDescriptor, *flotillapb.Error) {
	var r *Replica
	if id := multiraft.GroupID(h.GetRangeId()); id != 0 {
		var ok bool
		if r, ok = s.Replica(id); !ok || !r.initialized() {
			return nil, nil, rangeNotFound(outcome, id, "range %d has no replica on this store", id)
		}
	} else {
		var ok bool
		if r, ok = s.LookupKey(routeKey); !ok {
			return nil, nil, rangeNotFound(outcome, 0, "no replica on this store holds key %q", routeKey)
		}
	}
	desc := r.descriptor()
	if desc == nil {
		return nil, nil, rangeNotFound(outcome, r.id, "range %d has no replica on this store", r.id)
	}
	if v := h.GetVersion(); v != 0 && v != desc.GetEpoch().GetVersion() {
		return nil, nil, r.epochNotMatch(outcome, desc, v)
	}
	return r, desc, nil
}

// Put writes a key.
func (s *Store) Put(ctx context.Context, req *flotillapb.PutRequest) (*flotillapb.PutResponse, error) {
	if req == nil {
		return nil, invalidArgument(writeOutcome, "request", "nil request")
	}
	op := &flotillapb.Op{Op: &flotillapb.Op_Put{Put: &flotillapb.PutOp{Key: req.GetKey(), Value: req.GetValue()}}}
	h, _, err := s.write(ctx, req.GetHeader(), []*flotillapb.Op{op}, "")
	if err != nil {
		return nil, err
	}
	return &flotillapb.PutResponse{Header: h}, nil
}

// Delete removes a key.
func (s *Store) Delete(ctx context.Context, req *flotillapb.DeleteRequest) (*flotillapb.DeleteResponse, error) {
	if req == nil {
		return nil, invalidArgument(writeOutcome, "request", "nil request")
	}
	op := &flotillapb.Op{Op: &flotillapb.Op_Delete{Delete: &flotillapb.DeleteOp{Key: req.GetKey()}}}
	h, res, err := s.write(ctx, req.GetHeader(), []*flotillapb.Op{op}, "")
	if err != nil {
		return nil, err
	}
	return &flotillapb.DeleteResponse{Header: h, Found: res[0].GetFound()}, nil
}

// DeleteRange removes every key in [start_key, end_key).
func (s *Store) DeleteRange(ctx context.Context, req *flotillapb.DeleteRangeRequest) (*flotillapb.DeleteRangeResponse, error) {
	if req == nil {
		return nil, invalidArgument(writeOutcome, "request", "nil request")
	}
	op := &flotillapb.Op{Op: &flotillapb.Op_DeleteRange{DeleteRange: &flotillapb.DeleteRangeOp{StartKey: req.GetStartKey(), EndKey: req.GetEndKey()}}}
	h, res, err := s.write(ctx, req.GetHeader(), []*flotillapb.Op{op}, "")
	if err != nil {
		return nil, err
	}
	return &flotillapb.DeleteRangeResponse{Header: h, Deleted: res[0].GetDeleted()}, nil
}

// CompareAndSwap writes value if the key holds expected (or, with
// expect_absent, does not exist); otherwise it reports what the key holds.
func (s *Store) CompareAndSwap(ctx context.Context, req *flotillapb.CompareAndSwapRequest) (*flotillapb.CompareAndSwapResponse, error) {
	if req == nil {
		return nil, invalidArgument(writeOutcome, "request", "nil request")
	}
	op := &flotillapb.Op{Op: &flotillapb.Op_Cas{Cas: &flotillapb.CompareAndSwapOp{
		Key: req.GetKey(), Expected: req.GetExpected(), ExpectAbsent: req.GetExpectAbsent(), Value: req.GetValue(),
	}}}
	h, res, err := s.write(ctx, req.GetHeader(), []*flotillapb.Op{op}, "")
	if err != nil {
		return nil, err
	}
	r := res[0]
	return &flotillapb.CompareAndSwapResponse{Header: h, Swapped: r.GetSwapped(), Found: r.GetFound(), Current: r.GetCurrent()}, nil
}

// Batch applies ops atomically and in order; all their keys must lie in one
// range. A compare-and-swap that does not match does not fail the batch.
func (s *Store) Batch(ctx context.Context, req *flotillapb.BatchRequest) (*flotillapb.BatchResponse, error) {
	if req == nil {
		return nil, invalidArgument(writeOutcome, "request", "nil request")
	}
	h, res, err := s.write(ctx, req.GetHeader(), req.GetOps(), "ops")
	if err != nil {
		return nil, err
	}
	return &flotillapb.BatchResponse{Header: h, Results: res}, nil
}

// write validates ops, proposes them as one command and returns the
// outcome. field names the ops in errors: "ops" for a batch, "" for the
// single op of a request (whose fields are then named as the request's).
func (s *Store) write(ctx context.Context, h *flotillapb.RequestHeader, ops []*flotillapb.Op, field string) (*flotillapb.ResponseHeader, []*flotillapb.OpResult, error) {
	if e := validateOps(ops, field, s.cfg.MaxValueSize, writeOutcome); e != nil {
		return nil, nil, e
	}
	hdr, kv, err := s.writeCommand(ctx, h, ops[0].RouteKey(), &flotillapb.KVCommand{Ops: ops}, func(desc *flotillapb.RangeDescriptor) *flotillapb.Error {
		return opsInRange(ops, desc, writeOutcome)
	})
	if err != nil {
		return nil, nil, err
	}
	if len(kv.GetResults()) != len(ops) {
		// It was applied, but we cannot tell what it did.
		return nil, nil, unavailable(flotillapb.Outcome_UNKNOWN, "range %d: undecodable command result (%d results for %d ops)",
			hdr.GetRangeId(), len(kv.GetResults()), len(ops))
	}
	return hdr, kv.GetResults(), nil
}

// writeCommand proposes a validated write command (its range and version
// are filled in here) at a new revision, through the range that holds
// routeKey or the header's range; check reports keys outside the range.
func (s *Store) writeCommand(ctx context.Context, h *flotillapb.RequestHeader, routeKey []byte, cmd *flotillapb.KVCommand,
	check func(*flotillapb.RangeDescriptor) *flotillapb.Error,
) (*flotillapb.ResponseHeader, *flotillapb.KVCommandResult, error) {
	host := s.raftHost()
	if host == nil {
		return nil, nil, unavailable(writeOutcome, "the store is not running yet")
	}
	r, desc, e := s.resolve(h, routeKey, writeOutcome)
	if e != nil {
		return nil, nil, e
	}
	if e := check(desc); e != nil {
		return nil, nil, e
	}
	if st, ok := host.Leadership(r.id); !ok {
		return nil, nil, rangeNotFound(writeOutcome, r.id, "range %d has no replica on this store", r.id)
	} else if !st.Leading() {
		return nil, nil, notLeader(writeOutcome, r.id, st.Leader)
	}
	if admit := s.cfg.AdmitWrite; admit != nil {
		if e := admit(); e != nil {
			return nil, nil, e
		}
	}
	r.load.sample(time.Now(), routeKey)
	cmd.RangeId, cmd.Version = uint64(r.id), desc.GetEpoch().GetVersion()
	data, err := proto.Marshal(cmd)
	if err != nil {
		return nil, nil, invalidArgument(writeOutcome, "ops", "%v", err)
	}
	if len(data)+revisionFieldsSize > s.cfg.MaxCommandSize {
		return nil, nil, invalidArgument(writeOutcome, "ops", "the write is %d bytes, over the limit of %d", len(data), s.cfg.MaxCommandSize)
	}
	for attempt := 1; ; attempt++ {
		kv, index, refused, e := s.proposeWrite(ctx, host, r, data, writeKeys{ops: cmd.GetOps(), failure: cmd.GetFailure()})
		if refused && attempt < maxRevisionAttempts && ctx.Err() == nil {
			// Refused at apply for its revision (a leadership change
			// meanwhile, or another write overtook it): nothing was
			// applied; try again with a new revision.
			continue
		}
		if e != nil {
			return nil, nil, e
		}
		return &flotillapb.ResponseHeader{RangeId: uint64(r.id), AppliedIndex: index, Revision: kv.GetRevision()}, kv, nil
	}
}

// maxRevisionAttempts bounds how often a write refused at apply for its
// revision is retried with a new one.
const maxRevisionAttempts = 3

// revisionFieldsSize bounds the bytes appendRevision adds to a command.
const revisionFieldsSize = 2 * (1 + binary.MaxVarintLen64)

// appendRevision appends a KVCommand's revision and request_term fields to
// its encoding (a protobuf message's fields may be appended: the decoder
// merges them), so that a command is marshalled once whatever revision it
// gets.
func appendRevision(cmd []byte, rev int64, term uint64) []byte {
	out := make([]byte, 0, len(cmd)+revisionFieldsSize)
	out = append(out, cmd...)
	out = protowire.AppendTag(out, 5, protowire.VarintType)
	out = protowire.AppendVarint(out, uint64(rev))
	out = protowire.AppendTag(out, 6, protowire.VarintType)
	return protowire.AppendVarint(out, term)
}

// proposeWrite runs the write path of docs/REVISIONS.md for an encoded
// command without its revision: as the range's leader in term T, it
// registers the write with the range's tracker, asks the oracle for a
// revision, waits until every write of the range that may get a smaller
// revision in T has proposed, and proposes the command with (revision,
// T). refused reports that apply refused it for its revision (nothing was
// applied; a retry with a new revision may succeed).
func (s *Store) proposeWrite(ctx context.Context, host RaftHost, r *Replica, cmd []byte, keys writeKeys) (_ *flotillapb.KVCommandResult, index uint64, refused bool, _ *flotillapb.Error) {
	st, ok := host.Leadership(r.id)
	if !ok {
		return nil, 0, false, rangeNotFound(writeOutcome, r.id, "range %d has no replica on this store", r.id)
	}
	if !st.Leading() {
		return nil, 0, false, notLeader(writeOutcome, r.id, st.Leader)
	}
	w := r.tracker.register(st.Term, s.cfg.Revisions.Seen(), keys)
	rev, err := s.cfg.Revisions.Revision(ctx)
	if err != nil {
		r.tracker.giveUp(w)
		return nil, 0, false, oracleError(writeOutcome, r.id, err)
	}
	data := appendRevision(cmd, rev, st.Term)
	before := s.cfg.Testing != nil && s.cfg.Testing.BeforePropose != nil
	var propose func() *multiraft.Proposal
	if !before {
		// Whoever gives the write its turn proposes it: the writes of one
		// oracle batch propose together, in order.
		propose = func() *multiraft.Proposal { return host.Propose(r.id, data) }
	}
	r.tracker.setRevision(w, rev, propose)
	p, err := r.tracker.waitTurn(ctx, w)
	if err != nil {
		return nil, 0, false, unavailable(writeOutcome, "range %d: waiting for earlier writes to propose: %v", r.id, err)
	}
	if p == nil {
		// The knob runs on the write's own goroutine, and may block.
		s.cfg.Testing.BeforePropose(r.id, rev)
		p = host.Propose(r.id, data)
		r.tracker.proposed(w, p.Done())
	}
	defer r.tracker.finish(w)
	return proposeResult(ctx, p, r.id)
}

// proposeCommand proposes an encoded KVCommand to range id through host
// and returns its decoded result and applied index, or the error it
// failed with (a result that does not decode has an unknown outcome).
func proposeCommand(ctx context.Context, host RaftHost, id multiraft.GroupID, cmd []byte) (*flotillapb.KVCommandResult, uint64, *flotillapb.Error) {
	kv, index, _, e := proposeResult(ctx, host.Propose(id, cmd), id)
	return kv, index, e
}

// proposeResult waits for a proposal's outcome: its decoded result and
// applied index, or the error it failed with (a result that does not
// decode has an unknown outcome). refused reports a command apply refused
// for its revision.
func proposeResult(ctx context.Context, p *multiraft.Proposal, id multiraft.GroupID) (_ *flotillapb.KVCommandResult, index uint64, refused bool, _ *flotillapb.Error) {
	res, err := p.Wait(ctx)
	if err != nil {
		return nil, 0, false, proposalError(id, err)
	}
	if res.Err != nil {
		if kv, _, derr := decodeResult(res.Value); derr == nil && kv.GetRevisionRefused() {
			return nil, 0, true, kv.GetError()
		}
		var pe *flotillapb.Error
		if errors.As(res.Err, &pe) {
			return nil, 0, false, pe
		}
		return nil, 0, false, unavailable(writeOutcome, "range %d: %v", id, res.Err)
	}
	kv, index, err := decodeResult(res.Value)
	if err != nil {
		// It was applied, but we cannot tell what it did.
		return nil, 0, false, unavailable(flotillapb.Outcome_UNKNOWN, "range %d: undecodable command result (%v)", id, err)
	}
	if kv.GetError() != nil {
		return nil, 0, kv.GetRevisionRefused(), kv.GetError()
	}
	return kv, index, false, nil
}

// validateOps checks ops for malformed input: no op, an op with nothing
// set, bad keys, values longer than maxValue (unless negative), inverted
// spans. field is the request field holding ops ("" when the request is a
// single op, whose fields are named as the request's).
func validateOps(ops []*flotillapb.Op, field string, maxValue int, outcome flotillapb.Outcome) *flotillapb.Error {
	if len(ops) == 0 {
		return invalidArgument(outcome, orDefault(field, "ops"), "no operations")
	}
	for i, op := range ops {
		prefix := ""
		if field != "" {
			prefix = fmt.Sprintf("%s[%d].", field, i)
		}
		bad, p := flotillapb.CheckOp(op, prefix, maxValue)
		if p != "" {
			return invalidArgument(outcome, bad, "%s", p)
		}
	}
	return nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// spanWithin reports whether span s lies inside outer; if not, it returns a
// key s covers (or starts at) that outer does not hold.
func spanWithin(outer, s userSpan) (bad []byte, ok bool) {
	if bytes.Compare(s.start, outer.start) < 0 {
		return s.start, false
	}
	if len(outer.end) == 0 {
		return nil, true
	}
	if len(s.end) == 0 || bytes.Compare(s.end, outer.end) > 0 {
		return outer.end, false
	}
	if bytes.Compare(s.start, outer.end) > 0 {
		return s.start, false // an empty span beyond the range
	}
	return nil, true
}

// opsInRange checks that every key of ops lies in desc's range.
func opsInRange(ops []*flotillapb.Op, desc *flotillapb.RangeDescriptor, outcome flotillapb.Outcome) *flotillapb.Error {
	rs := spanOf(desc)
	for _, op := range ops {
		if o, ok := op.GetOp().(*flotillapb.Op_DeleteRange); ok {
			if bad, ok := spanWithin(rs, userSpan{start: o.DeleteRange.GetStartKey(), end: o.DeleteRange.GetEndKey()}); !ok {
				return keyNotInRange(outcome, bad, desc)
			}
			continue
		}
		if k := op.RouteKey(); !rs.contains(k) {
			return keyNotInRange(outcome, k, desc)
		}
	}
	return nil
}
