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
	// readFrom is the replica reads use unless they say (never
	// ReplicaDefault); zone the client's zone, for Nearest.
	readFrom Replica
	zone     string
}

var _ KV = kvAPI{}

// NewKV returns the KV API over h, a handler of the KV service's requests
// in this process; close is what KV.Close runs. It is what a Client is made
// of (over its router) and what an embedded node (server.Node) is made of
// (over its gateway). h's errors are *flotillapb.Error or context errors.
func NewKV(h rpc.KVHandler, close func() error) KV {
	return kvAPI{h: h, close: close, readFrom: Leader}
}

// NewKVInZone is NewKV for a caller in zone (a node's "zone" label), which
// reads with Replica Nearest prefer.
func NewKVInZone(h rpc.KVHandler, close func() error, zone string) KV {
	return kvAPI{h: h, close: close, readFrom: Leader, zone: zone}
}

// readHeader returns the header of a read served by replica (0: the
// client's default), nil for the leader.
func (a kvAPI) readHeader(replica Replica) (*flotillapb.RequestHeader, error) {
	if replica == ReplicaDefault {
		replica = a.readFrom
	}
	var rf flotillapb.ReadFrom
	switch replica {
	case Leader, ReplicaDefault:
		return nil, nil
	case Follower:
		rf = flotillapb.ReadFrom_READ_FROM_FOLLOWER
	case Nearest:
		rf = flotillapb.ReadFrom_READ_FROM_NEAREST
	default:
		return nil, &flotillapb.Error{Message: fmt.Sprintf("unknown replica choice %v", replica),
			Detail: &flotillapb.Error_InvalidArgument{InvalidArgument: &flotillapb.InvalidArgument{Field: "replica"}}}
	}
	return &flotillapb.RequestHeader{ReadFrom: rf, Zone: a.zone}, nil
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
	r, err := a.GetAt(ctx, key, 0)
	if err != nil {
		return nil, err
	}
	if !r.Found {
		return nil, ErrKeyNotFound
	}
	return r.KV.Value, nil
}

func (a kvAPI) GetAt(ctx context.Context, key []byte, rev int64) (GetResult, error) {
	return a.GetWith(ctx, key, ReadOptions{Revision: rev})
}

func (a kvAPI) GetWith(ctx context.Context, key []byte, opts ReadOptions) (GetResult, error) {
	rev := opts.Revision
	if rev < 0 {
		return GetResult{}, wrapErr(ctx, "get", false, negativeRevision(rev))
	}
	h, err := a.readHeader(opts.Replica)
	if err != nil {
		return GetResult{}, wrapErr(ctx, "get", false, err)
	}
	resp, err := request(ctx, a.h, "get", false, &flotillapb.GetRequest{Header: h, Key: key, Revision: rev}, rpc.KVHandler.Get)
	if err != nil {
		return GetResult{}, err
	}
	return getResult(key, resp, resp.GetHeader().GetRevision()), nil
}

// getResult converts a get's response; rev is the revision it was read at.
func getResult(key []byte, resp *flotillapb.GetResponse, rev int64) GetResult {
	r := GetResult{Found: resp.GetFound(), Revision: rev}
	if r.Found {
		r.KV = KeyValue{
			Key: bytes.Clone(key), Value: nonNil(resp.GetValue()),
			CreateRevision: resp.GetCreateRevision(), ModRevision: resp.GetModRevision(),
			Version: resp.GetVersion(), Lease: resp.GetLease(),
		}
	}
	return r
}

// keyValue converts a scanned pair.
func keyValue(kv *flotillapb.KeyValue) KeyValue {
	return KeyValue{
		Key: kv.GetKey(), Value: nonNil(kv.GetValue()),
		CreateRevision: kv.GetCreateRevision(), ModRevision: kv.GetModRevision(),
		Version: kv.GetVersion(), Lease: kv.GetLease(),
	}
}

func nonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

func (a kvAPI) Put(ctx context.Context, key, value []byte) error {
	_, err := a.PutRev(ctx, key, value)
	return err
}

func (a kvAPI) PutRev(ctx context.Context, key, value []byte) (int64, error) {
	resp, err := request(ctx, a.h, "put", true, &flotillapb.PutRequest{Key: key, Value: value}, rpc.KVHandler.Put)
	if err != nil {
		return 0, err
	}
	return resp.GetHeader().GetRevision(), nil
}

func (a kvAPI) Delete(ctx context.Context, key []byte) (bool, error) {
	existed, _, err := a.DeleteRev(ctx, key)
	return existed, err
}

func (a kvAPI) DeleteRev(ctx context.Context, key []byte) (bool, int64, error) {
	resp, err := request(ctx, a.h, "delete", true, &flotillapb.DeleteRequest{Key: key}, rpc.KVHandler.Delete)
	if err != nil {
		return false, 0, err
	}
	return resp.GetFound(), resp.GetHeader().GetRevision(), nil
}

func (a kvAPI) DeleteRange(ctx context.Context, start, end []byte) (int64, error) {
	resp, err := request(ctx, a.h, "delete-range", true, &flotillapb.DeleteRangeRequest{StartKey: start, EndKey: end}, rpc.KVHandler.DeleteRange)
	if err != nil {
		return 0, err
	}
	return resp.GetDeleted(), nil
}

// Scan pages through the span with ScanAt until it is covered or the
// limit is reached, every page at the first page's revision.
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
		res, err := a.ScanAt(ctx, start, end, page)
		if err != nil {
			return nil, err
		}
		out = append(out, res.KVs...)
		if res.Resume == nil || (opts.Limit > 0 && len(out) >= opts.Limit) {
			return out, nil
		}
		if opts.Revision == 0 {
			// The later pages are read at the first's revision: the
			// whole scan is one snapshot.
			opts.Revision = res.Revision
		}
		if opts.Reverse {
			end = res.Resume
		} else {
			start = res.Resume
		}
	}
}

func (a kvAPI) ScanPage(ctx context.Context, start, end []byte, opts ScanOptions) ([]KeyValue, []byte, error) {
	res, err := a.ScanAt(ctx, start, end, opts)
	return res.KVs, res.Resume, err
}

// ScanAt is one scan request: the gateway or client merges the ranges'
// parts, read at one revision, and says where the rest of the span begins.
func (a kvAPI) ScanAt(ctx context.Context, start, end []byte, opts ScanOptions) (ScanResult, error) {
	if opts.Limit < 0 {
		return ScanResult{}, wrapErr(ctx, "scan", false, negativeLimit(opts.Limit))
	}
	if opts.Revision < 0 {
		return ScanResult{}, wrapErr(ctx, "scan", false, negativeRevision(opts.Revision))
	}
	h, err := a.readHeader(opts.Replica)
	if err != nil {
		return ScanResult{}, wrapErr(ctx, "scan", false, err)
	}
	resp, err := request(ctx, a.h, "scan", false,
		&flotillapb.ScanRequest{Header: h, StartKey: start, EndKey: end, Limit: int64(opts.Limit), Reverse: opts.Reverse, Revision: opts.Revision},
		rpc.KVHandler.Scan)
	if err != nil {
		return ScanResult{}, err
	}
	res, err := scanResult(start, end, opts.Reverse, resp, resp.GetHeader().GetRevision())
	if err != nil {
		return ScanResult{}, wrapErr(ctx, "scan", false, err)
	}
	return res, nil
}

// scanResult converts a scan's response; rev is the revision it was read
// at. It fails if the response says there is more but its resume key does
// not advance the scan of [start, end).
func scanResult(start, end []byte, reverse bool, resp *flotillapb.ScanResponse, rev int64) (ScanResult, error) {
	res := ScanResult{KVs: make([]KeyValue, len(resp.GetKvs())), Revision: rev}
	for i, kv := range resp.GetKvs() {
		res.KVs[i] = keyValue(kv)
	}
	if !resp.GetMore() {
		return res, nil
	}
	resume := resp.GetResumeKey()
	// The rest of the span must be smaller than the span: a resume key
	// that does not move would page forever.
	if len(resume) == 0 || !reverse && bytes.Compare(resume, start) <= 0 ||
		reverse && len(end) > 0 && bytes.Compare(resume, end) >= 0 {
		return ScanResult{}, fmt.Errorf(
			"the scan of [%q, %q) said it has more, with resume key %q, which does not advance it", start, end, resume)
	}
	res.Resume = resume
	return res, nil
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
		if op.read != nil {
			return nil, wrapErr(ctx, "batch", true, invalidOp(fmt.Sprintf("ops[%d]", i), "a get or scan is only valid in a Txn"))
		}
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

func (a kvAPI) Txn() *Txn { return &Txn{h: a.h} }

func (a kvAPI) Compact(ctx context.Context, rev int64) error {
	if rev <= 0 {
		return wrapErr(ctx, "compact", true, &flotillapb.Error{
			Message: fmt.Sprintf("compacting at revision %d: it must be positive", rev),
			Outcome: flotillapb.Outcome_NOT_APPLIED,
			Detail:  &flotillapb.Error_InvalidArgument{InvalidArgument: &flotillapb.InvalidArgument{Field: "revision"}},
		})
	}
	_, err := request(ctx, a.h, "compact", true, &flotillapb.CompactRequest{Revision: rev}, rpc.KVHandler.Compact)
	return err
}

func (a kvAPI) Close() error { return a.close() }

// negativeRevision is the error of a read at a negative revision, as a
// server would refuse it.
func negativeRevision(rev int64) *flotillapb.Error {
	return &flotillapb.Error{
		Message: fmt.Sprintf("negative revision %d", rev),
		Detail:  &flotillapb.Error_InvalidArgument{InvalidArgument: &flotillapb.InvalidArgument{Field: "revision"}},
	}
}

// invalidOp is the error of a write request refused before it was sent:
// field names the bad part.
func invalidOp(field, problem string) *flotillapb.Error {
	return &flotillapb.Error{
		Message: field + ": " + problem,
		Outcome: flotillapb.Outcome_NOT_APPLIED,
		Detail:  &flotillapb.Error_InvalidArgument{InvalidArgument: &flotillapb.InvalidArgument{Field: field}},
	}
}

// negativeLimit is the error of a scan with a negative limit, as a server
// would refuse it.
func negativeLimit(limit int) *flotillapb.Error {
	return &flotillapb.Error{
		Message: fmt.Sprintf("negative limit %d", limit),
		Detail:  &flotillapb.Error_InvalidArgument{InvalidArgument: &flotillapb.InvalidArgument{Field: "limit"}},
	}
}
