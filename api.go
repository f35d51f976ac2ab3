// Copyright 2026 The Flotilla Authors. All rights reserved.

package flotilla

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/flotilladb/flotilla/rpc"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
)

// kvAPI implements KV over a handler of the KV service's requests: a remote
// cluster's (Client) or this process's gateway (Node). It converts between
// the public types and the wire's, pages scans, and turns failures into
// *Error.
type kvAPI struct {
	h     rpc.KVHandler
	close func() error
}

var _ KV = kvAPI{}

func wrapErr(op string, err error) error {
	if err == nil {
		return nil
	}
	var fe *flotillapb.Error
	if errors.As(err, &fe) {
		return &Error{Op: op, Detail: fe}
	}
	if errors.Is(err, ErrClosed) {
		return err
	}
	// Context errors and the like: classify as unavailable with the cause.
	return &Error{Op: op, Detail: &flotillapb.Error{
		Message: err.Error(),
		Detail:  &flotillapb.Error_Unavailable{Unavailable: &flotillapb.Unavailable{}},
	}}
}

// wrapWriteErr is wrapErr for writes: an error with no outcome (a context
// error before the request was answered) is an unknown outcome.
func wrapWriteErr(op string, err error) error {
	err = wrapErr(op, err)
	var e *Error
	if errors.As(err, &e) && e.Detail.GetOutcome() == flotillapb.Outcome_OUTCOME_UNSPECIFIED {
		e.Detail.Outcome = flotillapb.Outcome_UNKNOWN
	}
	return err
}

func (a kvAPI) Get(ctx context.Context, key []byte) ([]byte, error) {
	resp, err := a.h.Get(ctx, &flotillapb.GetRequest{Key: key})
	if err != nil {
		return nil, wrapErr("get", err)
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
	_, err := a.h.Put(ctx, &flotillapb.PutRequest{Key: key, Value: value})
	return wrapWriteErr("put", err)
}

func (a kvAPI) Delete(ctx context.Context, key []byte) (bool, error) {
	resp, err := a.h.Delete(ctx, &flotillapb.DeleteRequest{Key: key})
	if err != nil {
		return false, wrapWriteErr("delete", err)
	}
	return resp.GetFound(), nil
}

func (a kvAPI) DeleteRange(ctx context.Context, start, end []byte) (int64, error) {
	resp, err := a.h.DeleteRange(ctx, &flotillapb.DeleteRangeRequest{StartKey: start, EndKey: end})
	if err != nil {
		return 0, wrapWriteErr("delete-range", err)
	}
	return resp.GetDeleted(), nil
}

// Scan pages through the span with ScanPage until it is covered or the
// limit is reached.
func (a kvAPI) Scan(ctx context.Context, start, end []byte, opts ScanOptions) ([]KeyValue, error) {
	if opts.Limit < 0 {
		return nil, wrapErr("scan", invalidRead("limit", fmt.Sprintf("negative limit %d", opts.Limit)))
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
		return nil, nil, wrapErr("scan", invalidRead("limit", fmt.Sprintf("negative limit %d", opts.Limit)))
	}
	resp, err := a.h.Scan(ctx, &flotillapb.ScanRequest{StartKey: start, EndKey: end, Limit: int64(opts.Limit), Reverse: opts.Reverse})
	if err != nil {
		return nil, nil, wrapErr("scan", err)
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
		return nil, nil, wrapErr("scan", unavailable(fmt.Sprintf(
			"the scan of [%q, %q) said it has more, with resume key %q, which does not advance it", start, end, resume)))
	}
	return kvs, resume, nil
}

func (a kvAPI) CompareAndSwap(ctx context.Context, key []byte, cond Condition, value []byte) (CASResult, error) {
	resp, err := a.h.CompareAndSwap(ctx, &flotillapb.CompareAndSwapRequest{
		Key: key, Expected: cond.expected, ExpectAbsent: cond.absent, Value: value,
	})
	if err != nil {
		return CASResult{}, wrapWriteErr("cas", err)
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
	resp, err := a.h.Batch(ctx, req)
	if err != nil {
		return nil, wrapWriteErr("batch", err)
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

func invalidArgument(field, msg string) *flotillapb.Error {
	return &flotillapb.Error{
		Message: msg,
		Outcome: flotillapb.Outcome_NOT_APPLIED,
		Detail:  &flotillapb.Error_InvalidArgument{InvalidArgument: &flotillapb.InvalidArgument{Field: field}},
	}
}
