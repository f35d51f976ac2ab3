// Copyright 2026 The Flotilla Authors. All rights reserved.

package flotilla_test

import (
	"bytes"
	"context"
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/flotilladb/flotilla"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/proto"
)

// fakeKV is an rpc.KVHandler that answers each method with its function
// (if nil: an Unavailable error) and records the requests it got. The
// end-to-end tests in cmd/flotilla run the same API against a real
// cluster; these check the conversions and the client-side checks.
type fakeKV struct {
	mu       sync.Mutex
	requests []proto.Message

	get     func(*flotillapb.GetRequest) (*flotillapb.GetResponse, error)
	put     func(*flotillapb.PutRequest) (*flotillapb.PutResponse, error)
	del     func(*flotillapb.DeleteRequest) (*flotillapb.DeleteResponse, error)
	scan    func(*flotillapb.ScanRequest) (*flotillapb.ScanResponse, error)
	txn     func(*flotillapb.TxnRequest) (*flotillapb.TxnResponse, error)
	compact func(*flotillapb.CompactRequest) (*flotillapb.CompactResponse, error)
}

func answer[Req proto.Message, Resp any](f *fakeKV, req Req, fn func(Req) (Resp, error)) (Resp, error) {
	f.mu.Lock()
	f.requests = append(f.requests, proto.Clone(req))
	f.mu.Unlock()
	if fn == nil {
		var zero Resp
		return zero, &flotillapb.Error{Message: "fake: not served", Detail: &flotillapb.Error_Unavailable{Unavailable: &flotillapb.Unavailable{}}}
	}
	return fn(req)
}

func (f *fakeKV) sent() []proto.Message {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]proto.Message(nil), f.requests...)
}

func (f *fakeKV) Get(_ context.Context, r *flotillapb.GetRequest) (*flotillapb.GetResponse, error) {
	return answer(f, r, f.get)
}
func (f *fakeKV) Put(_ context.Context, r *flotillapb.PutRequest) (*flotillapb.PutResponse, error) {
	return answer(f, r, f.put)
}
func (f *fakeKV) Delete(_ context.Context, r *flotillapb.DeleteRequest) (*flotillapb.DeleteResponse, error) {
	return answer(f, r, f.del)
}
func (f *fakeKV) DeleteRange(_ context.Context, r *flotillapb.DeleteRangeRequest) (*flotillapb.DeleteRangeResponse, error) {
	return answer[*flotillapb.DeleteRangeRequest, *flotillapb.DeleteRangeResponse](f, r, nil)
}
func (f *fakeKV) Scan(_ context.Context, r *flotillapb.ScanRequest) (*flotillapb.ScanResponse, error) {
	return answer(f, r, f.scan)
}
func (f *fakeKV) CompareAndSwap(_ context.Context, r *flotillapb.CompareAndSwapRequest) (*flotillapb.CompareAndSwapResponse, error) {
	return answer[*flotillapb.CompareAndSwapRequest, *flotillapb.CompareAndSwapResponse](f, r, nil)
}
func (f *fakeKV) Batch(_ context.Context, r *flotillapb.BatchRequest) (*flotillapb.BatchResponse, error) {
	return answer[*flotillapb.BatchRequest, *flotillapb.BatchResponse](f, r, nil)
}
func (f *fakeKV) Txn(_ context.Context, r *flotillapb.TxnRequest) (*flotillapb.TxnResponse, error) {
	return answer(f, r, f.txn)
}
func (f *fakeKV) Compact(_ context.Context, r *flotillapb.CompactRequest) (*flotillapb.CompactResponse, error) {
	return answer(f, r, f.compact)
}

func hdr(rev int64) *flotillapb.ResponseHeader {
	return &flotillapb.ResponseHeader{RangeId: 1, Revision: rev}
}

func newFakeKV(f *fakeKV) flotilla.KV { return flotilla.NewKV(f, func() error { return nil }) }

// TestGetAtPutRevDeleteRev: the revisions and the key's metadata come
// through; a missing key is Found false (GetAt) or ErrKeyNotFound (Get);
// a negative revision is refused before anything is sent.
func TestGetAtPutRevDeleteRev(t *testing.T) {
	ctx := context.Background()
	f := &fakeKV{
		get: func(r *flotillapb.GetRequest) (*flotillapb.GetResponse, error) {
			if string(r.GetKey()) == "missing" {
				return &flotillapb.GetResponse{Header: hdr(12)}, nil
			}
			rev := r.GetRevision()
			if rev == 0 {
				rev = 12
			}
			return &flotillapb.GetResponse{Header: hdr(rev), Found: true, Value: []byte("v"),
				CreateRevision: 3, ModRevision: 9, Version: 4}, nil
		},
		put: func(*flotillapb.PutRequest) (*flotillapb.PutResponse, error) {
			return &flotillapb.PutResponse{Header: hdr(13)}, nil
		},
		del: func(*flotillapb.DeleteRequest) (*flotillapb.DeleteResponse, error) {
			return &flotillapb.DeleteResponse{Header: hdr(14), Found: true}, nil
		},
	}
	kv := newFakeKV(f)
	key := []byte("k")
	got, err := kv.GetAt(ctx, key, 10)
	key[0] = 'x' // the caller may reuse its key
	want := flotilla.GetResult{Found: true, Revision: 10, KV: flotilla.KeyValue{
		Key: []byte("k"), Value: []byte("v"), CreateRevision: 3, ModRevision: 9, Version: 4}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("GetAt(k, 10) = %+v, %v; want %+v", got, err, want)
	}
	if got, err := kv.GetAt(ctx, []byte("missing"), 0); err != nil || got.Found || got.Revision != 12 {
		t.Errorf("GetAt(missing, 0) = %+v, %v; want not found at 12", got, err)
	}
	if _, err := kv.Get(ctx, []byte("missing")); !errors.Is(err, flotilla.ErrKeyNotFound) {
		t.Errorf("Get(missing) = %v", err)
	}
	if rev, err := kv.PutRev(ctx, []byte("k"), []byte("v")); err != nil || rev != 13 {
		t.Errorf("PutRev = %d, %v; want 13", rev, err)
	}
	if existed, rev, err := kv.DeleteRev(ctx, []byte("k")); err != nil || !existed || rev != 14 {
		t.Errorf("DeleteRev = %v, %d, %v; want true, 14", existed, rev, err)
	}
	n := len(f.sent())
	if _, err := kv.GetAt(ctx, []byte("k"), -1); !errors.Is(err, flotilla.ErrInvalidArgument) || !strings.Contains(err.Error(), "negative revision") {
		t.Errorf("GetAt(-1) = %v", err)
	}
	if _, err := kv.ScanAt(ctx, nil, nil, flotilla.ScanOptions{Revision: -2}); !errors.Is(err, flotilla.ErrInvalidArgument) {
		t.Errorf("ScanAt(-2) = %v", err)
	}
	if len(f.sent()) != n {
		t.Errorf("a negative revision was sent: %v", f.sent()[n:])
	}
	if req := f.sent()[0].(*flotillapb.GetRequest); req.GetRevision() != 10 {
		t.Errorf("GetAt(k, 10) sent %v", req)
	}
}

// TestScanPinsRevision: a Scan at revision 0 reads its later pages at the
// first page's revision, so the whole scan is one snapshot; ScanAt says
// the revision; a Scan at a given revision sends it on every page.
func TestScanPinsRevision(t *testing.T) {
	ctx := context.Background()
	keys := []string{"a", "b", "c", "d", "e"}
	f := &fakeKV{scan: func(r *flotillapb.ScanRequest) (*flotillapb.ScanResponse, error) {
		rev := r.GetRevision()
		if rev == 0 {
			rev = 40
		}
		resp := &flotillapb.ScanResponse{Header: hdr(rev)}
		page := 2 // the server's page bound
		if l := int(r.GetLimit()); l > 0 && l < page {
			page = l
		}
		for _, k := range keys {
			if k < string(r.GetStartKey()) {
				continue
			}
			if len(resp.Kvs) == page {
				resp.More, resp.ResumeKey = true, []byte(k)
				break
			}
			resp.Kvs = append(resp.Kvs, &flotillapb.KeyValue{Key: []byte(k), Value: []byte("v" + k), CreateRevision: 2, ModRevision: rev - 1, Version: 1})
		}
		return resp, nil
	}}
	kv := newFakeKV(f)
	kvs, err := kv.Scan(ctx, []byte("a"), nil, flotilla.ScanOptions{})
	if err != nil || len(kvs) != 5 {
		t.Fatalf("Scan = %v, %v", kvs, err)
	}
	if kvs[4].ModRevision != 39 || kvs[4].CreateRevision != 2 || kvs[4].Version != 1 || string(kvs[4].Value) != "ve" {
		t.Errorf("Scan's last pair %+v lacks its metadata", kvs[4])
	}
	for i, m := range f.sent() {
		r := m.(*flotillapb.ScanRequest)
		if want := map[bool]int64{true: 0, false: 40}[i == 0]; r.GetRevision() != want {
			t.Errorf("page %d was read at revision %d, want %d", i, r.GetRevision(), want)
		}
	}
	res, err := kv.ScanAt(ctx, []byte("a"), nil, flotilla.ScanOptions{})
	if err != nil || res.Revision != 40 || string(res.Resume) != "c" || len(res.KVs) != 2 {
		t.Errorf("ScanAt = %+v, %v; want 2 pairs at 40, resume c", res, err)
	}
	f.requests = nil
	if kvs, err := kv.Scan(ctx, []byte("a"), nil, flotilla.ScanOptions{Revision: 30, Limit: 3}); err != nil || len(kvs) != 3 || kvs[0].ModRevision != 29 {
		t.Errorf("Scan at 30, limit 3 = %v, %v", kvs, err)
	}
	for i, m := range f.sent() {
		if r := m.(*flotillapb.ScanRequest); r.GetRevision() != 30 {
			t.Errorf("page %d of a scan at 30 was read at %d", i, r.GetRevision())
		}
	}
	// ScanPage still works, without the revision.
	if kvs, resume, err := kv.ScanPage(ctx, []byte("d"), nil, flotilla.ScanOptions{}); err != nil || len(kvs) != 2 || resume != nil {
		t.Errorf("ScanPage(d) = %v, %q, %v", kvs, resume, err)
	}
}

// TestTxnRequestAndResult: the builder sends every compare kind and result
// and every op kind, in order, and converts the results of the branch that
// ran.
func TestTxnRequestAndResult(t *testing.T) {
	ctx := context.Background()
	for _, succeeded := range []bool{true, false} {
		f := &fakeKV{txn: func(r *flotillapb.TxnRequest) (*flotillapb.TxnResponse, error) {
			resp := &flotillapb.TxnResponse{Header: hdr(50), Succeeded: succeeded}
			ops := r.GetSuccess()
			if !succeeded {
				ops = r.GetFailure()
			}
			for _, op := range ops {
				var res flotillapb.TxnOpResult
				switch o := op.GetOp().(type) {
				case *flotillapb.TxnOp_Put:
					res.Result = &flotillapb.TxnOpResult_Write{Write: &flotillapb.OpResult{}}
				case *flotillapb.TxnOp_Delete:
					res.Result = &flotillapb.TxnOpResult_Write{Write: &flotillapb.OpResult{Found: true}}
				case *flotillapb.TxnOp_DeleteRange:
					res.Result = &flotillapb.TxnOpResult_Write{Write: &flotillapb.OpResult{Deleted: 3}}
				case *flotillapb.TxnOp_Get:
					res.Result = &flotillapb.TxnOpResult_Get{Get: &flotillapb.GetResponse{Found: true, Value: []byte("g"), CreateRevision: 5, ModRevision: 50, Version: 2}}
				case *flotillapb.TxnOp_Scan:
					res.Result = &flotillapb.TxnOpResult_Scan{Scan: &flotillapb.ScanResponse{
						Kvs: []*flotillapb.KeyValue{{Key: o.Scan.GetStartKey(), Value: []byte("s"), ModRevision: 50}}}}
				}
				resp.Results = append(resp.Results, &res)
			}
			return resp, nil
		}}
		kv := newFakeKV(f)
		res, err := kv.Txn().
			If(flotilla.Compare(flotilla.Value([]byte("k")), "=", "v"),
				flotilla.Compare(flotilla.Value([]byte("k")), "!=", []byte("w")),
				flotilla.Compare(flotilla.Version([]byte("k")), "<", 3),
				flotilla.Compare(flotilla.CreateRevision([]byte("k")), ">", int64(0)),
				flotilla.Compare(flotilla.ModRevision([]byte("k")), "=", 7)).
			Then(flotilla.PutOp([]byte("k"), []byte("x")), flotilla.GetOp([]byte("k"))).
			Else(flotilla.DeleteOp([]byte("k")), flotilla.DeleteRangeOp([]byte("k"), []byte("l")),
				flotilla.ScanOp([]byte("a"), []byte("z"), flotilla.ScanOptions{Limit: 2, Reverse: true})).
			Commit(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := &flotillapb.TxnRequest{
			Compares: []*flotillapb.Compare{
				{Key: []byte("k"), Target: flotillapb.Compare_VALUE, Result: flotillapb.Compare_EQUAL, TargetUnion: &flotillapb.Compare_Value{Value: []byte("v")}},
				{Key: []byte("k"), Target: flotillapb.Compare_VALUE, Result: flotillapb.Compare_NOT_EQUAL, TargetUnion: &flotillapb.Compare_Value{Value: []byte("w")}},
				{Key: []byte("k"), Target: flotillapb.Compare_VERSION, Result: flotillapb.Compare_LESS, TargetUnion: &flotillapb.Compare_Version{Version: 3}},
				{Key: []byte("k"), Target: flotillapb.Compare_CREATE, Result: flotillapb.Compare_GREATER, TargetUnion: &flotillapb.Compare_CreateRevision{CreateRevision: 0}},
				{Key: []byte("k"), Target: flotillapb.Compare_MOD, Result: flotillapb.Compare_EQUAL, TargetUnion: &flotillapb.Compare_ModRevision{ModRevision: 7}},
			},
			Success: []*flotillapb.TxnOp{
				{Op: &flotillapb.TxnOp_Put{Put: &flotillapb.PutOp{Key: []byte("k"), Value: []byte("x")}}},
				{Op: &flotillapb.TxnOp_Get{Get: &flotillapb.GetOp{Key: []byte("k")}}},
			},
			Failure: []*flotillapb.TxnOp{
				{Op: &flotillapb.TxnOp_Delete{Delete: &flotillapb.DeleteOp{Key: []byte("k")}}},
				{Op: &flotillapb.TxnOp_DeleteRange{DeleteRange: &flotillapb.DeleteRangeOp{StartKey: []byte("k"), EndKey: []byte("l")}}},
				{Op: &flotillapb.TxnOp_Scan{Scan: &flotillapb.ScanOp{StartKey: []byte("a"), EndKey: []byte("z"), Limit: 2, Reverse: true}}},
			},
		}
		if got := f.sent()[0]; !proto.Equal(want, got) {
			t.Errorf("the txn request is\n%v\nwant\n%v", prototext.Format(got), prototext.Format(want))
		}
		if res.Succeeded != succeeded || res.Revision != 50 {
			t.Errorf("txn = %+v, want succeeded %v at 50", res, succeeded)
		}
		if succeeded {
			if len(res.Results) != 2 || res.Results[0].Write == nil || res.Results[1].Get == nil ||
				!reflect.DeepEqual(*res.Results[1].Get, flotilla.GetResult{Found: true, Revision: 50, KV: flotilla.KeyValue{
					Key: []byte("k"), Value: []byte("g"), CreateRevision: 5, ModRevision: 50, Version: 2}}) {
				t.Errorf("success results: %+v", res.Results)
			}
			continue
		}
		if len(res.Results) != 3 || res.Results[0].Write == nil || !res.Results[0].Write.Found ||
			res.Results[1].Write == nil || res.Results[1].Write.Deleted != 3 || res.Results[2].Scan == nil ||
			res.Results[2].Scan.Revision != 50 || len(res.Results[2].Scan.KVs) != 1 || !bytes.Equal(res.Results[2].Scan.KVs[0].Key, []byte("a")) {
			t.Errorf("failure results: %+v", res.Results)
		}
	}
}

// TestTxnBadInput: malformed compares and ops are refused before anything
// is sent, as invalid arguments that were not applied, naming the part.
func TestTxnBadInput(t *testing.T) {
	ctx := context.Background()
	f := &fakeKV{}
	kv := newFakeKV(f)
	for _, tc := range []struct {
		name string
		txn  *flotilla.Txn
		want string
	}{
		{"unknown result", kv.Txn().If(flotilla.Compare(flotilla.Value([]byte("k")), "==", "v")), `compares[0]: unknown compare result "=="`},
		{"value with an int", kv.Txn().If(flotilla.Compare(flotilla.Value([]byte("k")), "=", 3)), "compares[0]: a value compare takes a string or []byte, not int"},
		{"version with a string", kv.Txn().If(flotilla.Compare(flotilla.Version([]byte("k")), "=", "3")), "compares[0]: a version compare takes an int or int64"},
		{"no target", kv.Txn().If(flotilla.Compare(flotilla.Cmp{}, "=", 1)), "compares[0]: a compare without a target"},
		{"zero cmp", kv.Txn().If(flotilla.Compare(flotilla.ModRevision([]byte("k")), "<", 2), flotilla.Cmp{}), "compares[1]: the zero Cmp"},
		{"cas in a txn", kv.Txn().Then(flotilla.CompareAndSwapOp([]byte("k"), flotilla.ExpectAbsent(), []byte("v"))), "success[0]: a compare-and-swap is only valid in a Batch"},
		{"zero op", kv.Txn().Then(flotilla.PutOp([]byte("k"), nil)).Else(flotilla.Op{}), "failure[0]: no operation set"},
		{"scan with a revision", kv.Txn().Then(flotilla.ScanOp([]byte("a"), nil, flotilla.ScanOptions{Revision: 3})), "success[0]: a scan with a revision"},
	} {
		_, err := tc.txn.Commit(ctx)
		if !errors.Is(err, flotilla.ErrInvalidArgument) || !errors.Is(err, flotilla.ErrNotApplied) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an invalid argument containing %q", tc.name, err, tc.want)
		}
	}
	if _, err := kv.Batch(ctx, flotilla.PutOp([]byte("k"), nil), flotilla.GetOp([]byte("k"))); !errors.Is(err, flotilla.ErrInvalidArgument) ||
		!strings.Contains(err.Error(), "ops[1]: a get or scan is only valid in a Txn") {
		t.Errorf("a get in a batch: %v", err)
	}
	if err := kv.Compact(ctx, 0); !errors.Is(err, flotilla.ErrInvalidArgument) || !errors.Is(err, flotilla.ErrNotApplied) {
		t.Errorf("Compact(0): %v", err)
	}
	if sent := f.sent(); len(sent) != 0 {
		t.Errorf("bad input was sent: %v", sent)
	}
}

// TestRevisionErrors: the server's Compacted, FutureRevision and
// CrossRange details match their sentinels (and not ErrUnavailable), with
// the revisions they carry.
func TestRevisionErrors(t *testing.T) {
	ctx := context.Background()
	f := &fakeKV{
		get: func(*flotillapb.GetRequest) (*flotillapb.GetResponse, error) {
			return nil, &flotillapb.Error{Message: "compacted", Detail: &flotillapb.Error_Compacted{Compacted: &flotillapb.Compacted{CompactRevision: 20}}}
		},
		compact: func(r *flotillapb.CompactRequest) (*flotillapb.CompactResponse, error) {
			if r.GetRevision() == 7 {
				return &flotillapb.CompactResponse{Header: hdr(7)}, nil
			}
			return nil, &flotillapb.Error{Message: "future", Outcome: flotillapb.Outcome_NOT_APPLIED,
				Detail: &flotillapb.Error_FutureRevision{FutureRevision: &flotillapb.FutureRevision{CurrentRevision: 30}}}
		},
		txn: func(*flotillapb.TxnRequest) (*flotillapb.TxnResponse, error) {
			return nil, &flotillapb.Error{Message: "cross", Outcome: flotillapb.Outcome_NOT_APPLIED,
				Detail: &flotillapb.Error_CrossRange{CrossRange: &flotillapb.CrossRange{RangeIds: []uint64{1, 2}}}}
		},
	}
	kv := newFakeKV(f)
	_, err := kv.GetAt(ctx, []byte("k"), 3)
	var fe *flotilla.Error
	if !errors.Is(err, flotilla.ErrCompacted) || errors.Is(err, flotilla.ErrUnavailable) || !errors.As(err, &fe) || fe.CompactRevision() != 20 {
		t.Errorf("a read below the compacted revision: %v", err)
	}
	if err := kv.Compact(ctx, 7); err != nil {
		t.Errorf("Compact(7): %v", err)
	}
	err = kv.Compact(ctx, 99)
	if !errors.Is(err, flotilla.ErrFutureRevision) || !errors.Is(err, flotilla.ErrNotApplied) || errors.Is(err, flotilla.ErrUnavailable) ||
		!errors.As(err, &fe) || fe.CurrentRevision() != 30 {
		t.Errorf("Compact(99): %v", err)
	}
	_, err = kv.Txn().Then(flotilla.PutOp([]byte("a"), nil), flotilla.PutOp([]byte("z"), nil)).Commit(ctx)
	if !errors.Is(err, flotilla.ErrCrossRange) || !errors.Is(err, flotilla.ErrNotApplied) || errors.Is(err, flotilla.ErrUnavailable) {
		t.Errorf("a cross-range txn: %v", err)
	}
	// A txn of reads only fails as a read: no write outcome.
	_, err = kv.Txn().Then(flotilla.GetOp([]byte("a"))).Commit(ctx)
	checkOutcomeOnce(t, "read-only txn", err, false)
}
