// Copyright 2026 The Flotilla Authors. All rights reserved.

package router

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"google.golang.org/protobuf/proto"
)

// Reader serves the reads of a txn that reach beyond its range: routed
// gets and scans at a revision (a gateway or client's own Get and Scan).
type Reader interface {
	Get(context.Context, *flotillapb.GetRequest) (*flotillapb.GetResponse, error)
	Scan(context.Context, *flotillapb.ScanRequest) (*flotillapb.ScanResponse, error)
}

// Txn serves a txn whose keys do not all lie in one range. Its compares
// and writes must: if they lie in more than one range it fails with
// CrossRange, nothing applied. Otherwise the txn goes to that range
// without its reads (send), and the reads of the branch that ran are then
// served through rd at the txn's revision, so that they see exactly its
// writes and every earlier one. A txn with no compares and no writes is
// only reads: the first is served at the latest revision and the others at
// that one.
func Txn(ctx context.Context, r *Router, req *flotillapb.TxnRequest,
	send func(ctx context.Context, t Target, part *flotillapb.TxnRequest) (*flotillapb.TxnResponse, error),
	rd Reader,
) (*flotillapb.TxnResponse, error) {
	r.metrics.spanRequests.Inc()
	ctx, cancel := withDefaultTimeout(ctx, r.cfg.DefaultTimeout)
	defer cancel()
	type keyed struct{ start, end []byte }
	var keys []keyed
	for _, c := range req.GetCompares() {
		keys = append(keys, keyed{start: c.GetKey(), end: append(slices.Clone(c.GetKey()), 0)})
	}
	stripped := &flotillapb.TxnRequest{Header: req.GetHeader(), Compares: req.GetCompares()}
	for _, branch := range []struct {
		ops []*flotillapb.TxnOp
		out *[]*flotillapb.TxnOp
	}{{req.GetSuccess(), &stripped.Success}, {req.GetFailure(), &stripped.Failure}} {
		for _, op := range branch.ops {
			if op.IsRead() {
				continue
			}
			start, end := op.Span()
			keys = append(keys, keyed{start: start, end: end})
			*branch.out = append(*branch.out, op)
		}
	}
	var resp *flotillapb.TxnResponse
	var rev int64
	succeeded := true
	// Where the compares and writes lie, by the cache (a stale entry shows
	// a range wider than it is now, never narrower: the range then
	// refuses what is not its own, KeyNotInRange, and the cache, updated
	// by that refusal, is asked again).
	for attempt := 0; len(keys) > 0; attempt++ {
		var ids []uint64
		for _, k := range keys {
			info, err := r.Lookup(ctx, k.start)
			if err != nil {
				return nil, err
			}
			if !info.Desc.ContainsSpan(k.start, k.end) {
				return nil, crossRange(append(ids, info.Desc.GetRangeId(), 0))
			}
			if id := info.Desc.GetRangeId(); !slices.Contains(ids, id) {
				ids = append(ids, id)
			}
		}
		if len(ids) > 1 {
			return nil, crossRange(ids)
		}
		var err error
		resp, err = Do(ctx, r, Request{Key: keys[0].start, Write: true}, func(ctx context.Context, t Target) (*flotillapb.TxnResponse, error) {
			part := proto.Clone(stripped).(*flotillapb.TxnRequest)
			part.Header = t.Header
			return send(ctx, t, part)
		})
		if err != nil {
			if attempt < 3 && NeedsSplit(err, keys[0].start) && ctx.Err() == nil {
				continue // the range split since the cache learned it
			}
			return nil, err
		}
		rev, succeeded = resp.GetHeader().GetRevision(), resp.GetSucceeded()
		break
	}
	branch := req.GetSuccess()
	if !succeeded {
		branch = req.GetFailure()
	}
	out := &flotillapb.TxnResponse{Header: resp.GetHeader(), Succeeded: succeeded}
	writes := resp.GetResults()
	for _, op := range branch {
		if !op.IsRead() {
			if len(writes) == 0 {
				return nil, &flotillapb.Error{
					Message: fmt.Sprintf("router: range %d answered too few results for the txn's writes", resp.GetHeader().GetRangeId()),
					Outcome: flotillapb.Outcome_UNKNOWN,
					Detail:  &flotillapb.Error_Unavailable{Unavailable: &flotillapb.Unavailable{}},
				}
			}
			out.Results = append(out.Results, writes[0])
			writes = writes[1:]
			continue
		}
		res, err := txnRead(ctx, rd, op, rev)
		if err != nil {
			if resp != nil && len(stripped.Success)+len(stripped.Failure) > 0 {
				// The writes applied; only the reads failed.
				return nil, &flotillapb.Error{
					Message: fmt.Sprintf("the txn applied at revision %d, but reading its results failed: %v", rev, err),
					Outcome: flotillapb.Outcome_UNKNOWN,
					Detail:  &flotillapb.Error_Unavailable{Unavailable: &flotillapb.Unavailable{}},
				}
			}
			return nil, err
		}
		if rev == 0 {
			// A txn of reads only: the others are read at the first's
			// revision.
			switch x := res.GetResult().(type) {
			case *flotillapb.TxnOpResult_Get:
				rev = x.Get.GetHeader().GetRevision()
			case *flotillapb.TxnOpResult_Scan:
				rev = x.Scan.GetHeader().GetRevision()
			}
			out.Header = &flotillapb.ResponseHeader{Revision: rev}
		}
		out.Results = append(out.Results, res)
	}
	if out.Header == nil {
		out.Header = &flotillapb.ResponseHeader{Revision: rev}
	}
	return out, nil
}

// txnRead serves a txn's get or scan through rd at rev (0: the latest).
func txnRead(ctx context.Context, rd Reader, op *flotillapb.TxnOp, rev int64) (*flotillapb.TxnOpResult, error) {
	switch o := op.GetOp().(type) {
	case *flotillapb.TxnOp_Get:
		resp, err := rd.Get(ctx, &flotillapb.GetRequest{Key: o.Get.GetKey(), Revision: rev})
		if err != nil {
			return nil, err
		}
		return &flotillapb.TxnOpResult{Result: &flotillapb.TxnOpResult_Get{Get: resp}}, nil
	case *flotillapb.TxnOp_Scan:
		sc := o.Scan
		resp, err := rd.Scan(ctx, &flotillapb.ScanRequest{StartKey: sc.GetStartKey(), EndKey: sc.GetEndKey(), Limit: sc.GetLimit(), Reverse: sc.GetReverse(), Revision: rev})
		if err != nil {
			return nil, err
		}
		return &flotillapb.TxnOpResult{Result: &flotillapb.TxnOpResult_Scan{Scan: resp}}, nil
	}
	return nil, fmt.Errorf("router: %T is not a read", op.GetOp())
}

// crossRange is the error of a txn whose compares and writes lie in more
// than one range (an ID of 0: a span that reaches past the range before
// it).
func crossRange(ids []uint64) *flotillapb.Error {
	var names []string
	for _, id := range ids {
		if id != 0 {
			names = append(names, fmt.Sprint(id))
		}
	}
	msg := "a txn's compares and writes must lie in one range; they lie in ranges " + strings.Join(names, ", ")
	if len(names) == 1 {
		msg = "a txn's compares and writes must lie in one range; a span reaches past range " + names[0]
	}
	return &flotillapb.Error{
		Message: msg,
		Outcome: flotillapb.Outcome_NOT_APPLIED,
		Detail:  &flotillapb.Error_CrossRange{CrossRange: &flotillapb.CrossRange{RangeIds: ids}},
	}
}

// Compact compacts every range at req's revision, one range after another
// (send, for each). It returns the first error.
func Compact(ctx context.Context, r *Router, req *flotillapb.CompactRequest,
	send func(ctx context.Context, t Target, part *flotillapb.CompactRequest) (*flotillapb.CompactResponse, error),
) (*flotillapb.CompactResponse, error) {
	out := &flotillapb.CompactResponse{Header: &flotillapb.ResponseHeader{Revision: req.GetRevision()}}
	err := DoSpan(ctx, r, SpanRequest{Span: Span{}, Write: true},
		func(ctx context.Context, t Target, _ Span) (*flotillapb.CompactResponse, error) {
			return send(ctx, t, &flotillapb.CompactRequest{Header: t.Header, Revision: req.GetRevision()})
		},
		func(Span, bool, *flotillapb.CompactResponse) bool { return true })
	if err != nil {
		return nil, err
	}
	return out, nil
}

// TxnFits reports whether every key a txn names — compares, writes and
// reads — lies in desc's range.
func TxnFits(req *flotillapb.TxnRequest, desc *flotillapb.RangeDescriptor) bool {
	for _, c := range req.GetCompares() {
		if !desc.ContainsSpan(c.GetKey(), append(slices.Clone(c.GetKey()), 0)) {
			return false
		}
	}
	for _, ops := range [][]*flotillapb.TxnOp{req.GetSuccess(), req.GetFailure()} {
		for _, op := range ops {
			if start, end := op.Span(); !desc.ContainsSpan(start, end) {
				return false
			}
		}
	}
	return true
}
