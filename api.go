// Copyright 2026 The Flotilla Authors. All rights reserved.

package flotilla

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/flotilladb/flotilla/rpc"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"google.golang.org/protobuf/proto"
)

// kvAPI implements KV over a handler of the KV service's requests: a remote
// cluster's (Client) or, in a node's process, its gateway (server.Node). It
// converts between the public types and the wire's, bounds each request by
// DefaultRequestTimeout unless its context has a deadline, pages scans, and
// turns failures into *Error.
type kvAPI struct {
	h     rpc.KVHandler
	close func() error
}

var _ KV = kvAPI{}

// NewKV returns the KV API over h, a handler of the KV service's requests
// in this process; close is what KV.Close runs. It is what a Client is made
// of (over its router) and what an embedded node (server.Node) is made of
// (over its gateway). h's errors are *flotillapb.Error or context errors.
func NewKV(h rpc.KVHandler, close func() error) KV {
	return kvAPI{h: h, close: close}
}

// ended returns the error of a request whose context ended before it was
// sent (nothing was sent: a write was not applied), or nil. A request
// made with a context that has ended fails so, as a gRPC call would,
// whatever the store could have answered at once.
func ended(ctx context.Context) error {
	if ctx.Err() == nil && !pastDeadline(ctx) {
		return nil
	}
	return &flotillapb.Error{
		Message: "the request's context ended before it was sent",
		Outcome: flotillapb.Outcome_NOT_APPLIED,
		Detail:  &flotillapb.Error_Unavailable{Unavailable: &flotillapb.Unavailable{}},
	}
}

// pastDeadline reports whether ctx's deadline has passed.
func pastDeadline(ctx context.Context) bool {
	dl, ok := ctx.Deadline()
	return ok && !time.Now().Before(dl)
}

// bound returns ctx bounded by DefaultRequestTimeout unless it has a
// deadline already.
func bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, DefaultRequestTimeout)
}

// wrapErr turns a failed request's error into the *Error KV returns (or
// ErrClosed). ctx is the request's, bounded: when it ended, its error is
// the Cause. A read's error carries no outcome (reads change nothing); a
// write's without one (an error that never reached a server's verdict) has
// an unknown outcome.
func wrapErr(ctx context.Context, op string, write bool, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, ErrClosed) {
		return ErrClosed
	}
	var fe *flotillapb.Error
	if errors.As(err, &fe) && fe != nil {
		// The handler may share it (a server's cached error): copy it
		// before adjusting its outcome.
		fe = proto.Clone(fe).(*flotillapb.Error)
	} else {
		fe = &flotillapb.Error{
			Message: err.Error(),
			Detail:  &flotillapb.Error_Unavailable{Unavailable: &flotillapb.Unavailable{}},
		}
	}
	switch {
	case !write:
		fe.Outcome = flotillapb.Outcome_OUTCOME_UNSPECIFIED
	case fe.GetOutcome() == flotillapb.Outcome_OUTCOME_UNSPECIFIED:
		fe.Outcome = flotillapb.Outcome_UNKNOWN
	}
	e := &Error{Op: op, Detail: fe}
	switch cerr := ctx.Err(); {
	case cerr != nil:
		e.Cause = cerr
	case pastDeadline(ctx):
		// The deadline passed, but its timer has not run yet: a server's
		// answer that its time ran out can arrive first.
		e.Cause = context.DeadlineExceeded
	}
	return e
}

// request sends one request through h with method m: bounded by
// DefaultRequestTimeout, refused if its context has ended already, its
// error made the *Error KV returns (wrapErr).
func request[Req, Resp any](ctx context.Context, h rpc.KVHandler, op string, write bool, req Req,
	m func(rpc.KVHandler, context.Context, Req) (Resp, error)) (Resp, error) {
	ctx, cancel := bound(ctx)
	defer cancel()
	var zero Resp
	if err := ended(ctx); err != nil {
		return zero, wrapErr(ctx, op, write, err)
	}
	resp, err := m(h, ctx, req)
	if err != nil {
		return zero, wrapErr(ctx, op, write, err)
	}
	return resp, nil
}

func (a kvAPI) Get(ctx context.Context, key []byte) ([]byte, error) {
	resp, err := request(ctx, a.h, "get", false, &flotillapb.GetRequest{Key: key}, rpc.KVHandler.Get)
	if err != nil {
		return nil, err
	}
	if !resp.GetFound() {
		return nil, ErrKeyNotFound
	}
	return nonNil(resp.GetValue()), nil
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func (a kvAPI) Put(ctx context.Context, key, value []byte) error {
	_, err := request(ctx, a.h, "put", true, &flotillapb.PutRequest{Key: key, Value: value}, rpc.KVHandler.Put)
	return err
}

func (a kvAPI) Delete(ctx context.Context, key []byte) (bool, error) {
	resp, err := request(ctx, a.h, "delete", true, &flotillapb.DeleteRequest{Key: key}, rpc.KVHandler.Delete)
	if err != nil {
		return false, err
	}
	return resp.GetFound(), nil
}

func (a kvAPI) DeleteRange(ctx context.Context, start, end []byte) (int64, error) {
	resp, err := request(ctx, a.h, "delete-range", true, &flotillapb.DeleteRangeRequest{StartKey: start, EndKey: end}, rpc.KVHandler.DeleteRange)
	if err != nil {
		return 0, err
	}
	return resp.GetDeleted(), nil
}

// Scan pages through the span with ScanPage until it is covered or the
// limit is reached.
func (a kvAPI) Scan(ctx context.Context, start, end []byte, opts ScanOptions) ([]KeyValue, error) {
	if opts.Limit < 0 {
		return nil, wrapErr(ctx, "scan", false, negativeLimit(opts.Limit))
	}
	var out []KeyValue
	for {
		page := opts
		if opts.Limit > 0 {
			page.Limit = opts.Limit - len(out)
		}
		kvs, resume, err := a.ScanPage(ctx, start, end, page)
		if err != nil {
			return nil, err
		}
		out = append(out, kvs...)
		if resume == nil || (opts.Limit > 0 && len(out) >= opts.Limit) {
			return out, nil
		}
		if opts.Reverse {
			end = resume
		} else {
			start = resume
		}
	}
}

// ScanPage is one scan request: the gateway or client merges the ranges'
// parts and says where the rest of the span begins.
func (a kvAPI) ScanPage(ctx context.Context, start, end []byte, opts ScanOptions) ([]KeyValue, []byte, error) {
	if opts.Limit < 0 {
		return nil, nil, wrapErr(ctx, "scan", false, negativeLimit(opts.Limit))
	}
	resp, err := request(ctx, a.h, "scan", false,
		&flotillapb.ScanRequest{StartKey: start, EndKey: end, Limit: int64(opts.Limit), Reverse: opts.Reverse}, rpc.KVHandler.Scan)
	if err != nil {
		return nil, nil, err
	}
	kvs := make([]KeyValue, len(resp.GetKvs()))
	for i, kv := range resp.GetKvs() {
		kvs[i] = KeyValue{Key: kv.GetKey(), Value: nonNil(kv.GetValue())}
	}
	if !resp.GetMore() {
		return kvs, nil, nil
	}
	resume := resp.GetResumeKey()
	// The rest of the span must be smaller than the span: a resume key
	// that does not move would page forever.
	if len(resume) == 0 || !opts.Reverse && bytes.Compare(resume, start) <= 0 ||
		opts.Reverse && len(end) > 0 && bytes.Compare(resume, end) >= 0 {
		return nil, nil, wrapErr(ctx, "scan", false, fmt.Errorf(
			"the scan of [%q, %q) said it has more, with resume key %q, which does not advance it", start, end, resume))
	}
	return kvs, resume, nil
}

func (a kvAPI) CompareAndSwap(ctx context.Context, key []byte, cond Condition, value []byte) (CASResult, error) {
	resp, err := request(ctx, a.h, "cas", true, &flotillapb.CompareAndSwapRequest{
		Key: key, Expected: cond.expected, ExpectAbsent: cond.absent, Value: value,
	}, rpc.KVHandler.CompareAndSwap)
	if err != nil {
		return CASResult{}, err
	}
	r := CASResult{Swapped: resp.GetSwapped(), Found: resp.GetFound()}
	if r.Found {
		r.Current = nonNil(resp.GetCurrent())
	}
	return r, nil
}

func (a kvAPI) Batch(ctx context.Context, ops ...Op) ([]OpResult, error) {
	req := &flotillapb.BatchRequest{Ops: make([]*flotillapb.Op, len(ops))}
	for i, op := range ops {
		req.Ops[i] = op.pb
	}
	resp, err := request(ctx, a.h, "batch", true, req, rpc.KVHandler.Batch)
	if err != nil {
		return nil, err
	}
	out := make([]OpResult, len(resp.GetResults()))
	for i, r := range resp.GetResults() {
		out[i] = OpResult{Found: r.GetFound(), Swapped: r.GetSwapped(), Deleted: r.GetDeleted()}
		if r.GetFound() && !r.GetSwapped() {
			out[i].Current = nonNil(r.GetCurrent())
		}
	}
	return out, nil
}

func (a kvAPI) Close() error { return a.close() }

// negativeLimit is the error of a scan with a negative limit, as a server
// would refuse it.
func negativeLimit(limit int) *flotillapb.Error {
	return &flotillapb.Error{
		Message: fmt.Sprintf("negative limit %d", limit),
		Detail:  &flotillapb.Error_InvalidArgument{InvalidArgument: &flotillapb.InvalidArgument{Field: "limit"}},
	}
}
