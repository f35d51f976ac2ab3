// Copyright 2026 The Flotilla Authors. All rights reserved.

package shard

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/flotilladb/flotilla/engine"
	"github.com/flotilladb/flotilla/internal/invariants"
	"github.com/flotilladb/flotilla/multiraft"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
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
	rd, err := s.startRead(ctx, req.GetHeader(), req.GetKey(), func(desc *flotillapb.RangeDescriptor) *flotillapb.Error {
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
	ek, kerr := engine.UserKey(req.GetKey())
	if kerr != nil {
		return nil, invalidArgument(readOutcome, "key", "%v", kerr)
	}
	v, gerr := rd.snap.Get(ek)
	switch {
	case errors.Is(gerr, engine.ErrNotFound):
	case gerr != nil:
		return nil, storageError(readOutcome, rd.r.id, gerr)
	default:
		resp.Found, resp.Value = true, v
	}
	return resp, nil
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
	rd, err := s.startRead(ctx, req.GetHeader(), span.start, func(desc *flotillapb.RangeDescriptor) *flotillapb.Error {
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
	if span.empty() {
		return resp, nil
	}
	es, serr := engine.UserSpan(span.start, span.end)
	if serr != nil {
		return nil, invalidArgument(readOutcome, "end_key", "%v", serr)
	}
	errStop := errors.New("stop")
	size := 0
	serr = engine.Scan(rd.snap, es, engine.ScanOptions{Reverse: req.GetReverse()}, func(k, v []byte) error {
		if req.GetLimit() > 0 && int64(len(resp.Kvs)) >= req.GetLimit() || size >= s.cfg.MaxScanBytes {
			resp.More = true
			return errStop
		}
		uk, err := engine.DecodeUserKey(k)
		if err != nil {
			return err
		}
		resp.Kvs = append(resp.Kvs, &flotillapb.KeyValue{Key: bytes.Clone(uk), Value: bytes.Clone(v)})
		size += len(uk) + len(v)
		return nil
	})
	if serr != nil && !errors.Is(serr, errStop) {
		return nil, storageError(readOutcome, rd.r.id, serr)
	}
	if resp.More && len(resp.Kvs) > 0 {
		last := resp.Kvs[len(resp.Kvs)-1].Key
		if req.GetReverse() {
			resp.ResumeKey = bytes.Clone(last) // the exclusive end of the rest
		} else {
			resp.ResumeKey = append(bytes.Clone(last), 0) // the next key after it
		}
	}
	return resp, nil
}

// read is a read in progress: the replica, an engine snapshot taken after
// ReadIndex, and the applied index the snapshot reflects.
type read struct {
	r       *Replica
	snap    *engine.Snapshot
	applied uint64
}

func (rd *read) header() *flotillapb.ResponseHeader {
	return &flotillapb.ResponseHeader{RangeId: uint64(rd.r.id), AppliedIndex: rd.applied}
}

func (rd *read) close() { _ = rd.snap.Close() }

// startRead resolves the replica, checks the request against its
// descriptor, waits until the replica may serve a linearizable read, and
// takes the engine snapshot to read from. check reports a key outside the
// range.
func (s *Store) startRead(ctx context.Context, h *flotillapb.RequestHeader, routeKey []byte,
	check func(*flotillapb.RangeDescriptor) *flotillapb.Error,
) (*read, error) {
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
	if s.cfg.Testing == nil || !s.cfg.Testing.UnsafeFollowerReads {
		idx, err := host.ReadIndex(ctx, r.id)
		if err != nil {
			return nil, readIndexError(r.id, err)
		}
		readIndex = idx
	}
	snap, err := s.eng.NewSnapshot()
	if err != nil {
		return nil, storageError(readOutcome, r.id, err)
	}
	rd := &read{r: r, snap: snap}
	// Check again, now that the snapshot is taken: the range may have
	// changed while we waited, and the replica may have been removed (its
	// data is deleted after the host forgets it, so a replica the host
	// still has holds its data in the snapshot). The in-memory descriptor
	// is published before the engine commits, so it is at least as new as
	// the snapshot's.
	if !s.live(r.id) {
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
	if rd.applied, err = multiraft.ReadAppliedIndex(snap, r.id); err != nil {
		rd.close()
		return nil, storageError(readOutcome, r.id, err)
	}
	if invariants.Enabled && rd.applied < readIndex {
		panic(fmt.Sprintf("shard: range %d: read at applied index %d after ReadIndex returned %d", r.id, rd.applied, readIndex))
	}
	now := time.Now()
	r.reads.add(now, 1)
	r.load.sample(now, routeKey)
	return rd, nil
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
	host := s.raftHost()
	if host == nil {
		return nil, nil, unavailable(writeOutcome, "the store is not running yet")
	}
	r, desc, e := s.resolve(h, ops[0].RouteKey(), writeOutcome)
	if e != nil {
		return nil, nil, e
	}
	if e := opsInRange(ops, desc, writeOutcome); e != nil {
		return nil, nil, e
	}
	st, ok := host.Status(r.id)
	if !ok {
		return nil, nil, rangeNotFound(writeOutcome, r.id, "range %d has no replica on this store", r.id)
	}
	if st.Leader != st.Replica {
		return nil, nil, notLeader(writeOutcome, r.id, st.Leader)
	}
	if admit := s.cfg.AdmitWrite; admit != nil {
		if e := admit(); e != nil {
			return nil, nil, e
		}
	}
	r.load.sample(time.Now(), ops[0].RouteKey())
	cmd, err := proto.Marshal(&flotillapb.KVCommand{RangeId: uint64(r.id), Version: desc.GetEpoch().GetVersion(), Ops: ops})
	if err != nil {
		return nil, nil, invalidArgument(writeOutcome, "ops", "%v", err)
	}
	if len(cmd) > s.cfg.MaxCommandSize {
		return nil, nil, invalidArgument(writeOutcome, "ops", "the write is %d bytes, over the limit of %d", len(cmd), s.cfg.MaxCommandSize)
	}
	kv, index, e := proposeCommand(ctx, host, r.id, cmd)
	if e != nil {
		return nil, nil, e
	}
	if len(kv.GetResults()) != len(ops) {
		// It was applied, but we cannot tell what it did.
		return nil, nil, unavailable(flotillapb.Outcome_UNKNOWN, "range %d: undecodable command result (%d results for %d ops)",
			r.id, len(kv.GetResults()), len(ops))
	}
	return &flotillapb.ResponseHeader{RangeId: uint64(r.id), AppliedIndex: index}, kv.GetResults(), nil
}

// proposeCommand proposes an encoded KVCommand to range id through host
// and returns its decoded result and applied index, or the error it
// failed with (a result that does not decode has an unknown outcome).
func proposeCommand(ctx context.Context, host RaftHost, id multiraft.GroupID, cmd []byte) (*flotillapb.KVCommandResult, uint64, *flotillapb.Error) {
	res, err := host.Propose(id, cmd).Wait(ctx)
	if err != nil {
		return nil, 0, proposalError(id, err)
	}
	if res.Err != nil {
		var pe *flotillapb.Error
		if errors.As(res.Err, &pe) {
			return nil, 0, pe
		}
		return nil, 0, unavailable(writeOutcome, "range %d: %v", id, res.Err)
	}
	kv, index, err := decodeResult(res.Value)
	if err != nil {
		// It was applied, but we cannot tell what it did.
		return nil, 0, unavailable(flotillapb.Outcome_UNKNOWN, "range %d: undecodable command result (%v)", id, err)
	}
	if kv.GetError() != nil {
		return nil, 0, kv.GetError()
	}
	return kv, index, nil
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
