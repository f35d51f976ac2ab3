// Copyright 2026 The Flotilla Authors. All rights reserved.

package router

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/flotilladb/flotilla/internal/badinput"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"google.golang.org/protobuf/proto"
)

// FuzzTxn runs the bytes of a txn request through Txn across the six
// ranges of spanTestKV (TESTING.md scenario 17). Nothing may panic. A
// good txn (badinput.Txn; the gateway refuses the others before Txn)
// whose compares and writes lie in more than one range fails with
// CrossRange, not applied, and nothing is sent; otherwise its compares and
// writes, without its reads, go to their one range exactly once (none if
// it has none), and its reads are served by the reader at the txn's
// revision, one result per op of the branch that ran, in order.
func FuzzTxn(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		req := &flotillapb.TxnRequest{}
		if proto.Unmarshal(data, req) != nil {
			return
		}
		kv, r := fuzzSetup(t)
		const txnRev = 77
		var (
			mu    sync.Mutex
			sent  []*flotillapb.TxnRequest
			reads []int64 // the revisions reads were asked at
		)
		send := func(_ context.Context, tg Target, part *flotillapb.TxnRequest) (*flotillapb.TxnResponse, error) {
			mu.Lock()
			defer mu.Unlock()
			sent = append(sent, part)
			d := kv.ranges[tg.Header.GetRangeId()]
			for _, c := range part.GetCompares() {
				if !inSpan(d, c.GetKey(), append(slices.Clone(c.GetKey()), 0)) {
					t.Fatalf("Txn(%v): compare on %q sent to range %v", req, c.GetKey(), d)
				}
			}
			var results []*flotillapb.TxnOpResult
			for _, op := range part.GetSuccess() {
				if op.IsRead() {
					t.Fatalf("Txn(%v): a read sent with the writes: %v", req, op)
				}
				if s, e := op.Span(); !inSpan(d, s, e) {
					t.Fatalf("Txn(%v): op %v sent to range %v", req, op, d)
				}
				results = append(results, &flotillapb.TxnOpResult{Result: &flotillapb.TxnOpResult_Write{Write: &flotillapb.OpResult{}}})
			}
			for _, op := range part.GetFailure() {
				if s, e := op.Span(); op.IsRead() || !inSpan(d, s, e) {
					t.Fatalf("Txn(%v): failure op %v sent to range %v", req, op, d)
				}
			}
			return &flotillapb.TxnResponse{Header: &flotillapb.ResponseHeader{RangeId: tg.Header.GetRangeId(), Revision: txnRev},
				Succeeded: true, Results: results}, nil
		}
		rd := fuzzReader{read: func(rev int64) int64 {
			mu.Lock()
			defer mu.Unlock()
			reads = append(reads, rev)
			if rev == 0 {
				return 99 // the latest
			}
			return rev
		}}
		ctx, cancel := context.WithTimeout(context.Background(), fuzzTimeout)
		defer cancel()
		resp, err := Txn(ctx, r, req, send, rd)
		if badinput.Txn(req, fuzzMaxValue, flotillapb.DefaultMaxTxnOps) {
			return // only: no panic
		}
		// The ranges of the compares and the writes, by the model.
		ranges := map[uint64]bool{}
		across := false
		writes := false
		note := func(start, end []byte) {
			for id, d := range kv.ranges {
				if inSpan(d, start, end) {
					ranges[id] = true
					return
				}
			}
			across = true // no one range holds the span
		}
		for _, c := range req.GetCompares() {
			note(c.GetKey(), append(slices.Clone(c.GetKey()), 0))
		}
		for _, op := range slices.Concat(req.GetSuccess(), req.GetFailure()) {
			if !op.IsRead() {
				writes = true
				note(op.Span())
			}
		}
		if across || len(ranges) > 1 {
			fe := asError(err, true)
			if err == nil || fe.GetCrossRange() == nil || fe.GetOutcome() != flotillapb.Outcome_NOT_APPLIED || len(sent) != 0 {
				t.Fatalf("Txn(%v) across ranges %v = %v, %v after %d sends; want CrossRange, nothing sent", req, ranges, resp, err, len(sent))
			}
			return
		}
		if err != nil {
			t.Fatalf("Txn(%v) = %v", req, err)
		}
		if want := min(len(ranges), 1); len(sent) != want {
			t.Fatalf("Txn(%v): sent %d times, want %d", req, len(sent), want)
		}
		if len(resp.GetResults()) != len(req.GetSuccess()) {
			t.Fatalf("Txn(%v): %d results for %d ops", req, len(resp.GetResults()), len(req.GetSuccess()))
		}
		rev := resp.GetHeader().GetRevision()
		if len(req.GetCompares()) > 0 || writes {
			if rev != txnRev {
				t.Fatalf("Txn(%v): revision %d, the range answered %d", req, rev, txnRev)
			}
			for _, got := range reads {
				if got != txnRev {
					t.Fatalf("Txn(%v): a read at %d, the txn is at %d", req, got, txnRev)
				}
			}
		} else {
			// Reads only: the first at the latest, the others at its
			// revision.
			for i, got := range reads {
				if i == 0 && got != 0 || i > 0 && got != 99 {
					t.Fatalf("Txn(%v) of reads only: reads at %v", req, reads)
				}
			}
		}
		for i, op := range req.GetSuccess() {
			if res := resp.GetResults()[i]; op.IsRead() != (res.GetWrite() == nil) {
				t.Fatalf("Txn(%v): result %d %v for op %v", req, i, res, op)
			}
		}
	})
}

// inSpan reports whether [start, end) (an empty end: the end of the
// keyspace) lies in d's range, computed here from its bounds.
func inSpan(d *flotillapb.RangeDescriptor, start, end []byte) bool {
	ds, de := string(d.GetStartKey()), string(d.GetEndKey())
	s, e := string(start), string(end)
	if s < ds {
		return false
	}
	if de == "" {
		return true
	}
	return s < de && e != "" && e <= de
}

// fuzzReader serves a txn's reads with empty answers at the revision read
// returns for the revision asked.
type fuzzReader struct{ read func(rev int64) int64 }

func (f fuzzReader) Get(_ context.Context, req *flotillapb.GetRequest) (*flotillapb.GetResponse, error) {
	return &flotillapb.GetResponse{Header: &flotillapb.ResponseHeader{Revision: f.read(req.GetRevision())}}, nil
}

func (f fuzzReader) Scan(_ context.Context, req *flotillapb.ScanRequest) (*flotillapb.ScanResponse, error) {
	return &flotillapb.ScanResponse{Header: &flotillapb.ResponseHeader{Revision: f.read(req.GetRevision())}}, nil
}
