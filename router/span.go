// Copyright 2026 The Flotilla Authors. All rights reserved.

package router

import (
	"bytes"
	"context"
	"fmt"
	"time"

	"github.com/flotilladb/flotilla/internal/invariants"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"google.golang.org/protobuf/proto"
)

// Span is the keys [Start, End). An empty Start is the beginning of the
// keyspace, an empty End its end.
type Span struct {
	Start, End []byte
}

// Empty reports whether s holds no key (End is set and not after Start).
func (s Span) Empty() bool {
	return len(s.End) > 0 && bytes.Compare(s.Start, s.End) >= 0
}

// valid reports whether s does not end before it starts.
func (s Span) valid() bool {
	return len(s.End) == 0 || bytes.Compare(s.Start, s.End) <= 0
}

// Clip returns the part of s that desc's range holds; it is Empty if they
// do not overlap. It shares its keys with s and desc.
func (s Span) Clip(desc *flotillapb.RangeDescriptor) Span {
	out := s
	if rs := desc.GetStartKey(); bytes.Compare(rs, out.Start) > 0 {
		out.Start = rs
	}
	if re := desc.GetEndKey(); len(re) > 0 && (len(out.End) == 0 || bytes.Compare(re, out.End) < 0) {
		out.End = re
	}
	if len(out.End) > 0 && bytes.Compare(out.Start, out.End) > 0 {
		out.End = out.Start // keep it Empty, never reversed
	}
	return out
}

func (s Span) String() string { return fmt.Sprintf("[%q, %q)", s.Start, s.End) }

// SpanRequest is what DoSpan needs to know of a request over a span.
type SpanRequest struct {
	// Span is the keys the request covers.
	Span Span
	// Reverse walks the ranges in descending key order: the part at the
	// end of the span first.
	Reverse bool
	// Write is Request's, for each part.
	Write bool
	// ReadFrom and Zone are Request's, for each part.
	ReadFrom flotillapb.ReadFrom
	Zone     string
}

// DoSpan runs a request over req.Span one range at a time, in key order
// (descending with req.Reverse). Each part is sent with Do, routed by the
// first key of what remains of the span (or, in reverse, by the keys just
// below its end: Request.Before); each attempt's part is the remaining span
// clipped to the attempt's Target.Range, computed again for every attempt,
// because an EpochNotMatch retry may have narrowed the range (a split). Once
// an attempt succeeds, served gets the part it covered, whether that part
// completes the span, and the response; DoSpan continues with the rest of
// the span beyond the part (below it in reverse) while served returns true
// and the span is not covered. An empty span sends nothing.
//
// send makes one attempt, as Do's send, with the part to cover; it is
// called on the caller's goroutine, one attempt at a time, and so is
// served, after each part.
//
// A span request has one deadline, ctx's or Config.DefaultTimeout, for all
// its parts. DoSpan returns the error of the first part that failed, as a
// *flotillapb.Error; for a write, its outcome is UNKNOWN if an earlier part
// was served (the request was partly applied), else that part's outcome. A
// span that ends before it starts fails with InvalidArgument at once.
func DoSpan[Resp any](ctx context.Context, r *Router, req SpanRequest,
	send func(ctx context.Context, t Target, part Span) (Resp, error),
	served func(part Span, done bool, resp Resp) bool) error {
	if !req.Span.valid() {
		return invalidSpan(req.Span, req.Write)
	}
	r.metrics.spanRequests.Inc()
	if req.Span.Empty() {
		return nil
	}
	ctx, cancel := withDefaultTimeout(ctx, r.cfg.DefaultTimeout)
	defer cancel()
	rest := req.Span
	for parts := 0; ; parts++ {
		dreq := Request{Key: rest.Start, Write: req.Write, ReadFrom: req.ReadFrom, Zone: req.Zone}
		if req.Reverse {
			dreq.Key, dreq.Before = rest.End, true
		}
		var part Span
		resp, err := Do(ctx, r, dreq, func(ctx context.Context, t Target) (Resp, error) {
			part = rest.Clip(t.Range)
			if bad := checkPart(rest, part, req.Reverse); bad != "" {
				var zero Resp
				return zero, brokenPart(t.Range, rest, bad, req.Write)
			}
			return send(ctx, t, part)
		})
		if err != nil {
			return partFailed(err, req.Write, parts)
		}
		r.metrics.spanParts.Inc()
		if parts == 1 {
			r.metrics.spanMultiRange.Inc()
		}
		var done bool
		if req.Reverse {
			done = bytes.Equal(part.Start, rest.Start)
			rest.End = part.Start
		} else {
			done = bytes.Equal(part.End, rest.End)
			rest.Start = part.End
		}
		if !served(part, done, resp) || done {
			return nil
		}
	}
}

// checkPart checks that part, rest clipped to an attempt's range, is the
// non-empty beginning of rest (its end, in reverse): Do routes each attempt
// to a range that holds the key it was given, so it always is. It returns
// what is wrong, or "".
func checkPart(rest, part Span, reverse bool) string {
	switch {
	case part.Empty():
		return "holds none of it"
	case !reverse && !bytes.Equal(part.Start, rest.Start):
		return "does not hold its first key"
	case reverse && !bytes.Equal(part.End, rest.End):
		return "does not hold the keys below its end"
	}
	return ""
}

// brokenPart is the error of an attempt routed to a range that does not
// hold the part it should serve. It cannot happen (Do routes by a key the
// range holds): a broken invariant under the invariants build tag, else an
// attempt that fails, not applied, so that Do looks the range up again.
func brokenPart(desc *flotillapb.RangeDescriptor, rest Span, problem string, write bool) *flotillapb.Error {
	msg := fmt.Sprintf("router: range %d [%q, %q), routed to for the span %v, %s", desc.GetRangeId(),
		desc.GetStartKey(), desc.GetEndKey(), rest, problem)
	if invariants.Enabled {
		panic(msg)
	}
	fe := &flotillapb.Error{Message: msg, Detail: &flotillapb.Error_Unavailable{Unavailable: &flotillapb.Unavailable{}}}
	if write {
		fe.Outcome = flotillapb.Outcome_NOT_APPLIED
	}
	return fe
}

// partFailed is the error of a span request whose part failed after
// applied parts were served: a write's outcome becomes UNKNOWN once any
// part was applied, since the request as a whole then was partly applied.
func partFailed(err error, write bool, applied int) error {
	if !write || applied == 0 {
		return err
	}
	fe := proto.Clone(asError(err, write)).(*flotillapb.Error)
	fe.Outcome = flotillapb.Outcome_UNKNOWN
	fe.Message = fmt.Sprintf("%s (after %d of the request's ranges applied their part)", fe.GetMessage(), applied)
	return fe
}

func invalidSpan(s Span, write bool) *flotillapb.Error {
	fe := &flotillapb.Error{
		Message: fmt.Sprintf("end key %q before start key %q", s.End, s.Start),
		Detail:  &flotillapb.Error_InvalidArgument{InvalidArgument: &flotillapb.InvalidArgument{Field: "end_key"}},
	}
	if write {
		fe.Outcome = flotillapb.Outcome_NOT_APPLIED
	}
	return fe
}

// withDefaultTimeout bounds ctx by d unless it has a deadline.
func withDefaultTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, d)
}
