// Copyright 2026 The Flotilla Authors. All rights reserved.

package shard

import (
	"context"
	"fmt"

	"github.com/flotilladb/flotilla/engine"
	"github.com/flotilladb/flotilla/multiraft"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"google.golang.org/protobuf/proto"
)

// Txn runs an etcd-style transaction in one range: if every compare holds,
// the success ops run, else the failure ops, atomically at one revision.
// Every key it names — compares, writes and reads — must lie in the range
// (the gateway serves reads beyond it itself, at the txn's revision). A txn
// that writes in neither branch is a read: its compares and reads are
// served at one revision from the oracle, and no revision is spent.
func (s *Store) Txn(ctx context.Context, req *flotillapb.TxnRequest) (*flotillapb.TxnResponse, error) {
	if req == nil {
		return nil, invalidArgument(writeOutcome, "request", "nil request")
	}
	if e := ValidateTxn(req, s.cfg.MaxValueSize, s.cfg.MaxTxnOps, writeOutcome); e != nil {
		return nil, e
	}
	routeKey := req.RouteKey()
	check := func(desc *flotillapb.RangeDescriptor) *flotillapb.Error { return txnInRange(req, desc) }
	if !TxnWrites(req) {
		rd, err := s.startRead(ctx, req.GetHeader(), routeKey, readKeys{}, 0, check)
		if err != nil {
			// A txn is a write to its callers, but this one writes
			// nothing: whatever failed, nothing was applied.
			e := proto.Clone(asError(err)).(*flotillapb.Error)
			e.Outcome = writeOutcome
			return nil, e
		}
		defer rd.close()
		succeeded := true
		for _, c := range req.GetCompares() {
			v, found, err := engine.MVCCGet(rd.snap, c.GetKey(), rd.rev)
			if err != nil {
				return nil, storageError(writeOutcome, rd.r.id, err)
			}
			if !found || v.Deleted {
				// A deleted key is absent: its revisions are 0.
				v, found = engine.Version{}, false
			}
			if !compareVersion(c, v, found) {
				succeeded = false
				break
			}
		}
		resp := &flotillapb.TxnResponse{Header: rd.header(), Succeeded: succeeded}
		for _, op := range txnBranch(req, succeeded) {
			res, err := s.readOpAt(rd.snap, op, rd.rev)
			if err != nil {
				return nil, storageError(writeOutcome, rd.r.id, err)
			}
			resp.Results = append(resp.Results, res)
		}
		return resp, nil
	}
	cmd := &flotillapb.KVCommand{Compares: req.GetCompares(), Txn: true}
	for _, op := range req.GetSuccess() {
		if w := op.WriteOp(); w != nil {
			cmd.Ops = append(cmd.Ops, w)
		}
	}
	for _, op := range req.GetFailure() {
		if w := op.WriteOp(); w != nil {
			cmd.Failure = append(cmd.Failure, w)
		}
	}
	hdr, kv, err := s.writeCommand(ctx, req.GetHeader(), routeKey, cmd, check)
	if err != nil {
		return nil, err
	}
	branch := txnBranch(req, kv.GetSucceeded())
	resp := &flotillapb.TxnResponse{Header: hdr, Succeeded: kv.GetSucceeded()}
	var rd *read
	writes := kv.GetResults()
	for _, op := range branch {
		if !op.IsRead() {
			if len(writes) == 0 {
				return nil, unavailable(flotillapb.Outcome_UNKNOWN, "range %d: the txn's result has too few write results", hdr.GetRangeId())
			}
			resp.Results = append(resp.Results, &flotillapb.TxnOpResult{Result: &flotillapb.TxnOpResult_Write{Write: writes[0]}})
			writes = writes[1:]
			continue
		}
		if rd == nil {
			// The reads see the txn's writes: read at its revision.
			h := &flotillapb.RequestHeader{RangeId: hdr.GetRangeId()}
			if rd, err = s.startRead(ctx, h, routeKey, readKeys{}, hdr.GetRevision(), check); err != nil {
				// The writes applied: say so, with the read's error.
				return nil, readAfterWriteError(err, hdr.GetRevision())
			}
			defer rd.close()
		}
		res, err := s.readOpAt(rd.snap, op, rd.rev)
		if err != nil {
			return nil, readAfterWriteError(storageError(readOutcome, rd.r.id, err), hdr.GetRevision())
		}
		resp.Results = append(resp.Results, res)
	}
	return resp, nil
}

// readAfterWriteError is the error of a txn whose writes applied at rev but
// whose reads failed: the write's outcome is known (applied), but the
// request failed, so the caller must not retry it blindly.
func readAfterWriteError(err error, rev int64) *flotillapb.Error {
	e := asError(err)
	return &flotillapb.Error{
		Message: fmt.Sprintf("the txn applied at revision %d, but reading its results failed: %s", rev, e.GetMessage()),
		Outcome: flotillapb.Outcome_UNKNOWN,
		Detail:  &flotillapb.Error_Unavailable{Unavailable: &flotillapb.Unavailable{}},
	}
}

func asError(err error) *flotillapb.Error {
	if fe, ok := err.(*flotillapb.Error); ok {
		return fe
	}
	return &flotillapb.Error{Message: err.Error()}
}

// readOpAt serves a txn's get or scan at rev from r.
func (s *Store) readOpAt(r engine.Reader, op *flotillapb.TxnOp, rev int64) (*flotillapb.TxnOpResult, error) {
	switch o := op.GetOp().(type) {
	case *flotillapb.TxnOp_Get:
		resp := &flotillapb.GetResponse{}
		if err := getAt(r, o.Get.GetKey(), rev, resp); err != nil {
			return nil, err
		}
		return &flotillapb.TxnOpResult{Result: &flotillapb.TxnOpResult_Get{Get: resp}}, nil
	case *flotillapb.TxnOp_Scan:
		resp := &flotillapb.ScanResponse{}
		sc := o.Scan
		if err := scanAt(r, sc.GetStartKey(), sc.GetEndKey(), sc.GetLimit(), sc.GetReverse(), rev, s.cfg.MaxScanBytes, resp); err != nil {
			return nil, err
		}
		return &flotillapb.TxnOpResult{Result: &flotillapb.TxnOpResult_Scan{Scan: resp}}, nil
	}
	return nil, fmt.Errorf("shard: %T is not a read", op.GetOp())
}

func txnBranch(req *flotillapb.TxnRequest, succeeded bool) []*flotillapb.TxnOp {
	if succeeded {
		return req.GetSuccess()
	}
	return req.GetFailure()
}

// TxnWrites reports whether either branch of a txn writes.
func TxnWrites(req *flotillapb.TxnRequest) bool {
	for _, ops := range [][]*flotillapb.TxnOp{req.GetSuccess(), req.GetFailure()} {
		for _, op := range ops {
			if !op.IsRead() {
				return true
			}
		}
	}
	return false
}

// ValidateTxn checks a txn for malformed input: nothing to do, more than
// maxOps ops (both branches together), bad compares or ops.
func ValidateTxn(req *flotillapb.TxnRequest, maxValue, maxOps int, outcome flotillapb.Outcome) *flotillapb.Error {
	if field, p := flotillapb.CheckTxn(req, maxValue, maxOps); p != "" {
		return invalidArgument(outcome, field, "%s", p)
	}
	return nil
}

// txnInRange checks that every key a txn names lies in desc's range.
func txnInRange(req *flotillapb.TxnRequest, desc *flotillapb.RangeDescriptor) *flotillapb.Error {
	rs := spanOf(desc)
	for _, c := range req.GetCompares() {
		if !rs.contains(c.GetKey()) {
			return keyNotInRange(writeOutcome, c.GetKey(), desc)
		}
	}
	for _, ops := range [][]*flotillapb.TxnOp{req.GetSuccess(), req.GetFailure()} {
		for _, op := range ops {
			start, end := op.Span()
			if bad, ok := spanWithin(rs, userSpan{start: start, end: end}); !ok {
				return keyNotInRange(writeOutcome, bad, desc)
			}
		}
	}
	return nil
}

// Compact raises the range's compacted revision to the request's: reads
// below it fail with Compacted afterwards, and the versions they would
// need are removed. The revision must not be above the oracle's current
// one.
func (s *Store) Compact(ctx context.Context, req *flotillapb.CompactRequest) (*flotillapb.CompactResponse, error) {
	if req == nil {
		return nil, invalidArgument(writeOutcome, "request", "nil request")
	}
	rev := req.GetRevision()
	if rev <= 0 {
		return nil, invalidArgument(writeOutcome, "revision", "compacting at revision %d: it must be positive", rev)
	}
	if rev > s.cfg.Revisions.Seen() {
		current, err := s.cfg.Revisions.Revision(ctx)
		if err != nil {
			return nil, oracleError(writeOutcome, 0, err)
		}
		if rev > current {
			return nil, futureRevision(writeOutcome, rev, current)
		}
	}
	host := s.raftHost()
	if host == nil {
		return nil, unavailable(writeOutcome, "the store is not running yet")
	}
	r, desc, e := s.resolve(req.GetHeader(), nil, writeOutcome)
	if e != nil {
		return nil, e
	}
	cmd := &flotillapb.KVCommand{RangeId: uint64(r.id), Version: desc.GetEpoch().GetVersion(), Compact: rev}
	data, err := proto.Marshal(cmd)
	if err != nil {
		return nil, invalidArgument(writeOutcome, "revision", "%v", err)
	}
	kv, index, e := proposeCommand(ctx, host, r.id, data)
	if e != nil {
		return nil, e
	}
	return &flotillapb.CompactResponse{Header: &flotillapb.ResponseHeader{RangeId: uint64(r.id), AppliedIndex: index, Revision: kv.GetRevision()}}, nil
}

// CloseRevision proposes, on the range's leader, "closed at C" for the
// highest C it may close at (closable): afterwards apply refuses writes at
// or below C, and every replica that applied it serves reads at or below C
// without a leader round. It returns the range's closed revision after
// the proposal applied (unchanged if C was not above it).
func (s *Store) CloseRevision(ctx context.Context, id multiraft.GroupID) (int64, error) {
	host := s.raftHost()
	if host == nil {
		return 0, unavailable(writeOutcome, "the store is not running yet")
	}
	r, ok := s.Replica(id)
	if !ok || !r.initialized() {
		return 0, rangeNotFound(writeOutcome, id, "range %d has no replica on this store", id)
	}
	st, ok := host.Status(id)
	if !ok {
		return 0, rangeNotFound(writeOutcome, id, "range %d has no replica on this store", id)
	}
	if st.Leader != st.Replica {
		return 0, notLeader(writeOutcome, id, st.Leader)
	}
	return s.proposeClose(ctx, host, r, st.Term)
}
