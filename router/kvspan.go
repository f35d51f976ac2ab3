// Copyright 2026 The Flotilla Authors. All rights reserved.

package router

import (
	"bytes"
	"context"
	"fmt"
	"slices"

	"github.com/flotilladb/flotilla/internal/invariants"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
)

// The KV requests that may cover many ranges, split per range. Each
// function takes the request as the caller received it (checked for bad
// input by the caller: these check only what they need to split it) and a
// send that makes one attempt of a part: it sends the part, whose header is
// set (t.Header), to t.Store, and may keep it.

// Scan runs a scan over the span of req range by range, in key order
// (descending with req.Reverse), and merges the parts' pairs into one
// response in that order:
//
//   - req.Limit (if positive) bounds the pairs across ranges: each part asks
//     for what is left of it.
//   - maxBytes (if positive) bounds the response's keys and values: no part
//     is sent once the pairs gathered reach it (so a response may exceed it
//     by one part's worth, which the server bounds in turn).
//   - A range with no pair in the span adds nothing and the scan goes on.
//
// The scan stops at the first part that says More (it reached the limit or
// its server's size bound: the response takes its ResumeKey), or when the
// limit or maxBytes is reached at the end of a part that did not cover the
// rest of the span: then More is set and ResumeKey is where that part ended
// (forward) or began (reverse), though no pair may remain beyond it. So a
// response with More says where to go on: at [ResumeKey, end) forward,
// [start, ResumeKey) in reverse; one without More covered the whole span.
// Every part is read at one revision — the request's, or else the one the
// first part was served at (a linearizable read's, from the oracle) — so
// the scan is one consistent snapshot across ranges, and a resumed scan
// at that revision continues it.
//
// The response's header is the part's if a single range served the scan,
// else one that carries only the revision.
func Scan(ctx context.Context, r *Router, req *flotillapb.ScanRequest, maxBytes int,
	send func(ctx context.Context, t Target, part *flotillapb.ScanRequest) (*flotillapb.ScanResponse, error),
) (*flotillapb.ScanResponse, error) {
	limit := req.GetLimit()
	if limit < 0 {
		return nil, &flotillapb.Error{
			Message: fmt.Sprintf("negative limit %d", limit),
			Detail:  &flotillapb.Error_InvalidArgument{InvalidArgument: &flotillapb.InvalidArgument{Field: "limit"}},
		}
	}
	reverse := req.GetReverse()
	out := &flotillapb.ScanResponse{}
	size, parts := 0, 0
	// Every part is read at one revision, so that the scan is one
	// snapshot: the request's, or the one the first part was served at
	// (taken from the oracle after the scan began).
	rev := req.GetRevision()
	var bad *flotillapb.Error
	err := DoSpan(ctx, r, SpanRequest{Span: Span{Start: req.GetStartKey(), End: req.GetEndKey()}, Reverse: reverse,
		ReadFrom: req.GetHeader().GetReadFrom(), Zone: req.GetHeader().GetZone()},
		func(ctx context.Context, t Target, part Span) (*flotillapb.ScanResponse, error) {
			preq := &flotillapb.ScanRequest{Header: t.Header, StartKey: part.Start, EndKey: part.End, Reverse: reverse, Revision: rev}
			if limit > 0 {
				preq.Limit = limit - int64(len(out.Kvs))
			}
			return send(ctx, t, preq)
		},
		func(part Span, done bool, resp *flotillapb.ScanResponse) bool {
			parts++
			// A scan of many ranges has no one range; its header says
			// the revision they were all read at.
			out.Header = &flotillapb.ResponseHeader{Revision: rev}
			if parts == 1 {
				out.Header = resp.GetHeader()
				if rev == 0 {
					rev = resp.GetHeader().GetRevision()
				}
			}
			if invariants.Enabled {
				checkScanPart(out.Kvs, resp.GetKvs(), part, reverse)
			}
			for _, kv := range resp.GetKvs() {
				size += len(kv.GetKey()) + len(kv.GetValue())
			}
			out.Kvs = append(out.Kvs, resp.GetKvs()...)
			if resp.GetMore() {
				out.More, out.ResumeKey = true, resp.GetResumeKey()
				if len(out.ResumeKey) == 0 {
					bad = &flotillapb.Error{
						Message: fmt.Sprintf("router: range %d said its scan of %v has more, without a resume key",
							resp.GetHeader().GetRangeId(), part),
						Detail: &flotillapb.Error_Unavailable{Unavailable: &flotillapb.Unavailable{}},
					}
				}
				return false
			}
			if done {
				return false
			}
			if (limit > 0 && int64(len(out.Kvs)) >= limit) || (maxBytes > 0 && size >= maxBytes) {
				out.More, out.ResumeKey = true, part.End
				if reverse {
					out.ResumeKey = part.Start
				}
				return false
			}
			return true
		})
	if err != nil {
		return nil, err
	}
	if bad != nil {
		return nil, bad
	}
	return out, nil
}

// checkScanPart panics unless the pairs of a part lie in it and continue
// the pairs gathered so far in strictly ascending (descending) key order.
func checkScanPart(sofar, kvs []*flotillapb.KeyValue, part Span, reverse bool) {
	var prev []byte
	if len(sofar) > 0 {
		prev = sofar[len(sofar)-1].GetKey()
	}
	for i, kv := range kvs {
		k := kv.GetKey()
		if bytes.Compare(k, part.Start) < 0 || (len(part.End) > 0 && bytes.Compare(k, part.End) >= 0) {
			panic(fmt.Sprintf("router: scan part %v returned key %q outside it", part, k))
		}
		if (len(sofar) > 0 || i > 0) && (!reverse && bytes.Compare(prev, k) >= 0 || reverse && bytes.Compare(prev, k) <= 0) {
			panic(fmt.Sprintf("router: scan (reverse %v) returned key %q after %q", reverse, k, prev))
		}
		prev = k
	}
}

// DeleteRange deletes the span of req range by range, in key order, and
// returns the keys deleted summed over the ranges. A delete across ranges
// is not atomic: each range applies its part at its own time. If a part
// fails after others were applied, the error's outcome is UNKNOWN; if none
// was, the failed part's (NOT_APPLIED, or UNKNOWN if an attempt of it may
// have been applied).
//
// A part whose outcome is unknown is not sent again, as no write is: it
// may have been applied, and a write of another client acknowledged (and
// read) since; sent again, it would delete that write after the fact,
// which no single point of the delete-range in time explains (issue 15).
// The delete-range then fails with outcome UNKNOWN.
//
// The response's header is the part's if a single range served it, else
// nil.
func DeleteRange(ctx context.Context, r *Router, req *flotillapb.DeleteRangeRequest,
	send func(ctx context.Context, t Target, part *flotillapb.DeleteRangeRequest) (*flotillapb.DeleteRangeResponse, error),
) (*flotillapb.DeleteRangeResponse, error) {
	out := &flotillapb.DeleteRangeResponse{}
	parts := 0
	err := DoSpan(ctx, r, SpanRequest{Span: Span{Start: req.GetStartKey(), End: req.GetEndKey()}, Write: true},
		func(ctx context.Context, t Target, part Span) (*flotillapb.DeleteRangeResponse, error) {
			return send(ctx, t, &flotillapb.DeleteRangeRequest{Header: t.Header, StartKey: part.Start, EndKey: part.End})
		},
		func(_ Span, _ bool, resp *flotillapb.DeleteRangeResponse) bool {
			parts++
			out.Header = nil
			if parts == 1 {
				out.Header = resp.GetHeader()
			}
			out.Deleted += resp.GetDeleted()
			return true
		})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// batchOp is an op of a batch being split by range, and what of it is
// left to apply.
type batchOp struct {
	op *flotillapb.Op
	// key is the key of a point op (put, delete, compare-and-swap, or a
	// delete-range of an empty span, sent to the range holding its start).
	key []byte
	// span is set for a delete-range of a non-empty span, whose parts go
	// to the ranges they overlap.
	span bool
	// rest are, for a span, its parts not yet applied, in key order and
	// disjoint; empty once all are.
	rest []Span
	// done says a point op was applied.
	done bool
}

func (b *batchOp) pending() bool {
	if b.span {
		return len(b.rest) > 0
	}
	return !b.done
}

// routeKey is a key of what is left of a pending op.
func (b *batchOp) routeKey() []byte {
	if b.span {
		return b.rest[0].Start
	}
	return b.key
}

// sentOp maps an op of a part back to the batch's op.
type sentOp struct {
	index int
	// piece is the span of a delete-range's part; unset for a point op.
	piece Span
}

// Batch applies a batch whose ops may lie in many ranges as one batch per
// range. The ops of each range keep their order and apply atomically
// together; a delete-range over many ranges becomes one op per range, whose
// deleted counts are summed. The batch as a whole is not atomic: each
// range applies its part at its own time, and a failure leaves the parts
// applied before it in place. The results are returned at the ops'
// indexes.
//
// The parts are sent one at a time, routed each by a key of the first op
// left, except the first part: the one holding the op with the largest
// value, so that a value over the cluster's limit, which only the servers
// know, fails the batch before any part was applied. Each attempt's part
// is the ops left that its Target.Range holds, computed again for every
// attempt. A batch whose ops all lie in one range is sent as one request.
//
// If a part fails after others were applied, the error's outcome is
// UNKNOWN; if none was, the failed part's. A part whose outcome is
// unknown is not sent again, as no write is (Do).
func Batch(ctx context.Context, r *Router, req *flotillapb.BatchRequest,
	send func(ctx context.Context, t Target, part *flotillapb.BatchRequest) (*flotillapb.BatchResponse, error),
) (*flotillapb.BatchResponse, error) {
	ops := make([]batchOp, len(req.GetOps()))
	first, largest := 0, -1
	for i, op := range req.GetOps() {
		b := batchOp{op: op}
		if dr := op.GetDeleteRange(); dr != nil {
			s := Span{Start: dr.GetStartKey(), End: dr.GetEndKey()}
			if !s.valid() {
				return nil, invalidSpan(s, true)
			}
			if s.Empty() {
				b.key = s.Start
			} else {
				b.span, b.rest = true, []Span{s}
			}
		} else if b.key = op.RouteKey(); b.key == nil {
			return nil, &flotillapb.Error{
				Message: fmt.Sprintf("op %d has no operation set", i),
				Outcome: flotillapb.Outcome_NOT_APPLIED,
				Detail:  &flotillapb.Error_InvalidArgument{InvalidArgument: &flotillapb.InvalidArgument{Field: fmt.Sprintf("ops[%d].op", i)}},
			}
		}
		if n := valueSize(op); n > largest {
			first, largest = i, n
		}
		ops[i] = b
	}
	if len(ops) == 0 {
		return nil, &flotillapb.Error{
			Message: "no operations",
			Outcome: flotillapb.Outcome_NOT_APPLIED,
			Detail:  &flotillapb.Error_InvalidArgument{InvalidArgument: &flotillapb.InvalidArgument{Field: "ops"}},
		}
	}
	r.metrics.spanRequests.Inc()
	ctx, cancel := withDefaultTimeout(ctx, r.cfg.DefaultTimeout)
	defer cancel()
	results := make([]*flotillapb.OpResult, len(ops))
	out := &flotillapb.BatchResponse{Results: results}
	routeKey := ops[first].routeKey()
	for parts := 0; ; parts++ {
		var (
			sent  []sentOp
			sentR *flotillapb.RangeDescriptor
		)
		resp, err := Do(ctx, r, Request{Key: routeKey, Write: true}, func(ctx context.Context, t Target) (*flotillapb.BatchResponse, error) {
			var pops []*flotillapb.Op
			pops, sent = batchPart(ops, t.Range)
			sentR = t.Range
			if len(pops) == 0 {
				var zero *flotillapb.BatchResponse
				return zero, brokenPart(t.Range, Span{Start: routeKey}, "holds no op of the batch", true)
			}
			return send(ctx, t, &flotillapb.BatchRequest{Header: t.Header, Ops: pops})
		})
		if err == nil && len(resp.GetResults()) != len(sent) {
			err = &flotillapb.Error{
				Message: fmt.Sprintf("router: range %d answered %d results for a batch of %d ops",
					sentR.GetRangeId(), len(resp.GetResults()), len(sent)),
				Outcome: flotillapb.Outcome_UNKNOWN,
				Detail:  &flotillapb.Error_Unavailable{Unavailable: &flotillapb.Unavailable{}},
			}
		}
		if err != nil {
			return nil, partFailed(err, true, parts)
		}
		r.metrics.spanParts.Inc()
		if parts == 1 {
			r.metrics.spanMultiRange.Inc()
		}
		out.Header = nil
		if parts == 0 {
			out.Header = resp.GetHeader()
		}
		applyBatchPart(ops, results, sent, resp.GetResults(), sentR)
		// The next part: the range of the first op left. (A route key may
		// be empty: the start of the keyspace.)
		left := slices.IndexFunc(ops, func(b batchOp) bool { return b.pending() })
		if left < 0 {
			return out, nil
		}
		routeKey = ops[left].routeKey()
	}
}

// batchPart returns the ops left that desc's range holds, in the batch's
// order, a delete-range's clipped to the range, and what each of them is.
func batchPart(ops []batchOp, desc *flotillapb.RangeDescriptor) ([]*flotillapb.Op, []sentOp) {
	var (
		pops []*flotillapb.Op
		sent []sentOp
	)
	for i := range ops {
		b := &ops[i]
		if !b.span {
			if !b.done && desc.ContainsKey(b.key) {
				pops = append(pops, b.op)
				sent = append(sent, sentOp{index: i})
			}
			continue
		}
		for _, s := range b.rest {
			piece := s.Clip(desc)
			if piece.Empty() {
				continue
			}
			pops = append(pops, &flotillapb.Op{Op: &flotillapb.Op_DeleteRange{DeleteRange: &flotillapb.DeleteRangeOp{
				StartKey: piece.Start, EndKey: piece.End}}})
			sent = append(sent, sentOp{index: i, piece: piece})
		}
	}
	return pops, sent
}

// applyBatchPart records the results of a part sent to desc's range.
func applyBatchPart(ops []batchOp, results []*flotillapb.OpResult, sent []sentOp, res []*flotillapb.OpResult, desc *flotillapb.RangeDescriptor) {
	for j, s := range sent {
		b := &ops[s.index]
		if !b.span {
			results[s.index] = res[j]
			b.done = true
			continue
		}
		if results[s.index] == nil {
			results[s.index] = &flotillapb.OpResult{}
		}
		results[s.index].Deleted += res[j].GetDeleted()
	}
	for i := range ops {
		if b := &ops[i]; b.span {
			b.rest = subtractRange(b.rest, desc)
		}
	}
}

// subtractRange returns the parts of spans that desc's range does not hold.
func subtractRange(spans []Span, desc *flotillapb.RangeDescriptor) []Span {
	var out []Span
	for _, s := range spans {
		in := s.Clip(desc)
		if in.Empty() {
			out = append(out, s)
			continue
		}
		if bytes.Compare(in.Start, s.Start) > 0 {
			out = append(out, Span{Start: s.Start, End: in.Start})
		}
		if len(in.End) > 0 {
			if right := (Span{Start: in.End, End: s.End}); !right.Empty() {
				out = append(out, right)
			}
		}
	}
	return out
}

// valueSize is the size of the largest value an op carries (a put's or
// compare-and-swap's value, a compare-and-swap's expected value).
func valueSize(op *flotillapb.Op) int {
	switch o := op.GetOp().(type) {
	case *flotillapb.Op_Put:
		return len(o.Put.GetValue())
	case *flotillapb.Op_Cas:
		return max(len(o.Cas.GetValue()), len(o.Cas.GetExpected()))
	}
	return 0
}
