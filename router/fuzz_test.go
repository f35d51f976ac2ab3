// Copyright 2026 The Flotilla Authors. All rights reserved.

package router

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"github.com/flotilladb/flotilla/internal/badinput"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"google.golang.org/protobuf/proto"
)

// Fuzzing the span requests' decoding, checks and splitting (TESTING.md
// scenario 17): each target takes the bytes of a request message as a
// node's gateway (or a client) receives them, decodes them, runs the check
// the gateway runs before it splits the request (CheckScan,
// CheckDeleteRange, CheckBatch), and, if the request passes, runs it
// across the six ranges of spanTestKV. Nothing may panic; a request is
// refused if and only if it breaks a limit (checked here independently of
// flotillapb's checks), with an InvalidArgument naming the field; one that
// passes returns what a single map would.
//
// Seeds live in testdata/fuzz/<target>; go test runs them. Write them again
// with: go test ./router -run '^TestFuzzSeeds$' -write-fuzz-seeds

var writeFuzzSeeds = flag.Bool("write-fuzz-seeds", false, "write the fuzz targets' seed corpora to testdata/fuzz")

// fuzzMaxValue is the value limit of the batch target: small, so that a
// seed can break it.
const fuzzMaxValue = 64

// fuzzTimeout bounds a request, which the fake ranges serve at once: one
// that takes longer retries in a loop (the router's backoffs do not sleep
// in these tests).
const fuzzTimeout = 2 * time.Second

// checkRefusal checks the error of a request refused for bad input.
func checkRefusal(t *testing.T, fe *flotillapb.Error, write bool) {
	t.Helper()
	want := flotillapb.Outcome_OUTCOME_UNSPECIFIED
	if write {
		want = flotillapb.Outcome_NOT_APPLIED
	}
	if fe.GetInvalidArgument().GetField() == "" || fe.GetMessage() == "" || fe.GetOutcome() != want {
		t.Fatalf("refused with %v (field %q, outcome %v): want InvalidArgument naming a field, with a message, outcome %v",
			fe, fe.GetInvalidArgument().GetField(), fe.GetOutcome(), want)
	}
}

// fuzzSetup is a router over spanTestKV's ranges.
func fuzzSetup(t *testing.T) (*fakeKV, *Router) {
	f := spanTestKV(t)
	r, _, _ := testRouter(t, newFakeResolver(f.infos()...))
	return f, r
}

func FuzzScan(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		req := &flotillapb.ScanRequest{}
		if proto.Unmarshal(data, req) != nil {
			return // the gRPC server refuses it before any handler runs
		}
		fe := CheckScan(req)
		bad := badinput.Span(req.GetStartKey(), req.GetEndKey()) || req.GetLimit() < 0 || badinput.Revision(req.GetRevision())
		if bad != (fe != nil) {
			t.Fatalf("CheckScan(%v) = %v, want refused %v", req, fe, bad)
		}
		if fe != nil {
			checkRefusal(t, fe, false)
			return
		}
		kv, r := fuzzSetup(t)
		ctx, cancel := context.WithTimeout(context.Background(), fuzzTimeout)
		defer cancel()
		resp, err := Scan(ctx, r, req, 0, kv.scan)
		if err != nil {
			t.Fatalf("Scan(%v): %v", req, err)
		}
		s := Span{req.GetStartKey(), req.GetEndKey()}
		want := modelScan(kv.data, s, req.GetReverse(), int(min(req.GetLimit(), 1000)))
		if got := keysOf(resp.GetKvs()); !slices.Equal(got, want) {
			t.Fatalf("Scan(%v) = %q, want %q", req, got, want)
		}
		all := modelScan(kv.data, s, req.GetReverse(), 0)
		switch {
		case !resp.GetMore() && len(want) != len(all):
			t.Fatalf("Scan(%v) returned %d of %d pairs without more", req, len(want), len(all))
		case resp.GetMore() && (req.GetLimit() == 0 || int64(len(want)) != req.GetLimit()):
			t.Fatalf("Scan(%v) says more after %d pairs, not at its limit", req, len(want))
		case resp.GetMore():
			// The rest of the span is past the resume key.
			rk := string(resp.GetResumeKey())
			for _, k := range all[len(want):] {
				if !req.GetReverse() && k < rk || req.GetReverse() && k >= rk {
					t.Fatalf("Scan(%v) resumes at %q, past %q", req, rk, k)
				}
			}
		}
	})
}

func FuzzDeleteRange(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		req := &flotillapb.DeleteRangeRequest{}
		if proto.Unmarshal(data, req) != nil {
			return
		}
		fe := CheckDeleteRange(req)
		if bad := badinput.Span(req.GetStartKey(), req.GetEndKey()); bad != (fe != nil) {
			t.Fatalf("CheckDeleteRange(%v) = %v, want refused %v", req, fe, bad)
		}
		if fe != nil {
			checkRefusal(t, fe, true)
			return
		}
		kv, r := fuzzSetup(t)
		model := maps.Clone(kv.data)
		want := applyOp(model, &flotillapb.Op{Op: &flotillapb.Op_DeleteRange{DeleteRange: &flotillapb.DeleteRangeOp{
			StartKey: req.GetStartKey(), EndKey: req.GetEndKey()}}}).GetDeleted()
		ctx, cancel := context.WithTimeout(context.Background(), fuzzTimeout)
		defer cancel()
		resp, err := DeleteRange(ctx, r, req, kv.deleteRange)
		if err != nil || resp.GetDeleted() != want {
			t.Fatalf("DeleteRange(%v) = %v, %v; want %d deleted", req, resp, err, want)
		}
		if !maps.Equal(kv.data, model) {
			t.Fatalf("DeleteRange(%v) left %v, want %v", req, kv.data, model)
		}
	})
}

func FuzzBatch(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		req := &flotillapb.BatchRequest{}
		if proto.Unmarshal(data, req) != nil {
			return
		}
		fe := CheckBatch(req, fuzzMaxValue)
		bad := len(req.GetOps()) == 0 || slices.ContainsFunc(req.GetOps(), func(op *flotillapb.Op) bool { return badinput.Op(op, fuzzMaxValue) })
		if bad != (fe != nil) {
			t.Fatalf("CheckBatch(%v) = %v, want refused %v", req, fe, bad)
		}
		if fe != nil {
			checkRefusal(t, fe, true)
			return
		}
		kv, r := fuzzSetup(t)
		// Ranges apply their parts one after another, each in the ops'
		// order; ops of different ranges touch different keys, so the
		// result is the ops' applied in order.
		model := maps.Clone(kv.data)
		var want []*flotillapb.OpResult
		for _, op := range req.GetOps() {
			want = append(want, applyOp(model, op))
		}
		ctx, cancel := context.WithTimeout(context.Background(), fuzzTimeout)
		defer cancel()
		resp, err := Batch(ctx, r, req, kv.batch)
		if err != nil || len(resp.GetResults()) != len(want) {
			t.Fatalf("Batch(%v) = %v, %v; want %d results", req, resp, err, len(want))
		}
		for i, g := range resp.GetResults() {
			w := want[i]
			if g.GetFound() != w.GetFound() || g.GetSwapped() != w.GetSwapped() || g.GetDeleted() != w.GetDeleted() ||
				!bytes.Equal(g.GetCurrent(), w.GetCurrent()) {
				t.Fatalf("Batch(%v): result %d = %v, want %v", req, i, g, w)
			}
		}
		if !maps.Equal(kv.data, model) {
			t.Fatalf("Batch(%v) left %v, want %v", req, kv.data, model)
		}
	})
}

// fuzzSeeds are the seeds of the targets above, by target and name: empty
// and oversize keys and values, spans that end before they start or are
// open, ops with nothing set, huge and negative limits, and requests across
// every range.
func fuzzSeeds() map[string]map[string]proto.Message {
	big := bytes.Repeat([]byte("k"), flotillapb.MaxKeySize+1)
	largest := bytes.Repeat([]byte("k"), flotillapb.MaxKeySize)
	bigValue := bytes.Repeat([]byte("v"), fuzzMaxValue+1)
	b := func(s string) []byte { return []byte(s) }
	op := func(o any) *flotillapb.Op {
		switch o := o.(type) {
		case *flotillapb.PutOp:
			return &flotillapb.Op{Op: &flotillapb.Op_Put{Put: o}}
		case *flotillapb.DeleteOp:
			return &flotillapb.Op{Op: &flotillapb.Op_Delete{Delete: o}}
		case *flotillapb.DeleteRangeOp:
			return &flotillapb.Op{Op: &flotillapb.Op_DeleteRange{DeleteRange: o}}
		case *flotillapb.CompareAndSwapOp:
			return &flotillapb.Op{Op: &flotillapb.Op_Cas{Cas: o}}
		}
		return &flotillapb.Op{} // nothing set
	}
	routed := &flotillapb.RequestHeader{RangeId: 3, Version: 7, Forwarded: true}
	return map[string]map[string]proto.Message{
		"FuzzScan": {
			"everything":         &flotillapb.ScanRequest{},
			"span":               &flotillapb.ScanRequest{StartKey: b("a1"), EndKey: b("j1"), Limit: 3},
			"reverse":            &flotillapb.ScanRequest{StartKey: b("b"), EndKey: b("h"), Reverse: true, Limit: 2},
			"open end":           &flotillapb.ScanRequest{StartKey: b("c")},
			"empty span":         &flotillapb.ScanRequest{StartKey: b("g"), EndKey: b("g")},
			"end before start":   &flotillapb.ScanRequest{StartKey: b("z"), EndKey: b("a")},
			"oversize start":     &flotillapb.ScanRequest{StartKey: big},
			"oversize end":       &flotillapb.ScanRequest{EndKey: big},
			"largest keys":       &flotillapb.ScanRequest{StartKey: largest, EndKey: append(slices.Clone(largest[:len(largest)-1]), 'l')},
			"negative limit":     &flotillapb.ScanRequest{Limit: -1},
			"huge limit":         &flotillapb.ScanRequest{Limit: 1<<63 - 1, Reverse: true},
			"most negative":      &flotillapb.ScanRequest{Limit: -1 << 63},
			"routed header":      &flotillapb.ScanRequest{Header: routed, StartKey: b("a")},
			"zero bytes in keys": &flotillapb.ScanRequest{StartKey: b("\x00"), EndKey: b("b\x00")},
			"at a revision":      &flotillapb.ScanRequest{StartKey: b("b"), Revision: 3},
			"negative revision":  &flotillapb.ScanRequest{Revision: -1},
			"most negative rev":  &flotillapb.ScanRequest{Revision: -1 << 63, Limit: 2},
		},
		"FuzzTxn": {
			"one range":           &flotillapb.TxnRequest{Compares: []*flotillapb.Compare{txnValueIs("a1", "1")}, Success: []*flotillapb.TxnOp{txnPut("a2", "2"), txnGet("z")}, Failure: []*flotillapb.TxnOp{txnPut("a1", "3")}},
			"writes across":       &flotillapb.TxnRequest{Success: []*flotillapb.TxnOp{txnPut("a", "1"), txnPut("k", "1")}},
			"compares across":     &flotillapb.TxnRequest{Compares: []*flotillapb.Compare{txnValueIs("a", "1"), txnValueIs("k", "1")}, Success: []*flotillapb.TxnOp{txnPut("a", "2")}},
			"failure across":      &flotillapb.TxnRequest{Compares: []*flotillapb.Compare{txnValueIs("a", "1")}, Failure: []*flotillapb.TxnOp{txnPut("k", "2")}},
			"delete-range past":   &flotillapb.TxnRequest{Success: []*flotillapb.TxnOp{{Op: &flotillapb.TxnOp_DeleteRange{DeleteRange: &flotillapb.DeleteRangeOp{StartKey: b("a"), EndKey: b("z")}}}}},
			"delete-range inside": &flotillapb.TxnRequest{Success: []*flotillapb.TxnOp{{Op: &flotillapb.TxnOp_DeleteRange{DeleteRange: &flotillapb.DeleteRangeOp{StartKey: b("a1"), EndKey: b("a2")}}}}},
			"reads only":          &flotillapb.TxnRequest{Success: []*flotillapb.TxnOp{txnGet("a"), {Op: &flotillapb.TxnOp_Scan{Scan: &flotillapb.ScanOp{Limit: 5}}}, txnGet("z")}},
			"compares only":       &flotillapb.TxnRequest{Compares: []*flotillapb.Compare{{Key: b("c"), Target: flotillapb.Compare_MOD}}},
			"empty":               &flotillapb.TxnRequest{},
			"nil op":              &flotillapb.TxnRequest{Success: []*flotillapb.TxnOp{txnPut("a", "1"), {}}},
			"unknown target":      &flotillapb.TxnRequest{Compares: []*flotillapb.Compare{{Key: b("a"), Target: 9}}, Success: []*flotillapb.TxnOp{txnPut("a", "1")}},
			"oversize value":      &flotillapb.TxnRequest{Success: []*flotillapb.TxnOp{txnPut("a", string(bigValue))}},
			"routed header":       &flotillapb.TxnRequest{Header: routed, Success: []*flotillapb.TxnOp{txnPut("a", "1")}},
		},
		"FuzzDeleteRange": {
			"everything":       &flotillapb.DeleteRangeRequest{},
			"span":             &flotillapb.DeleteRangeRequest{StartKey: b("a2"), EndKey: b("g")},
			"one range":        &flotillapb.DeleteRangeRequest{StartKey: b("b"), EndKey: b("c")},
			"open end":         &flotillapb.DeleteRangeRequest{StartKey: b("f1")},
			"empty span":       &flotillapb.DeleteRangeRequest{StartKey: b("d"), EndKey: b("d")},
			"end before start": &flotillapb.DeleteRangeRequest{StartKey: b("z"), EndKey: b("a")},
			"oversize start":   &flotillapb.DeleteRangeRequest{StartKey: big, EndKey: b("z")},
			"oversize end":     &flotillapb.DeleteRangeRequest{EndKey: big},
			"routed header":    &flotillapb.DeleteRangeRequest{Header: routed, StartKey: b("a"), EndKey: b("c")},
		},
		"FuzzBatch": {
			"no ops":         &flotillapb.BatchRequest{},
			"nil op":         &flotillapb.BatchRequest{Ops: []*flotillapb.Op{op(&flotillapb.PutOp{Key: b("a"), Value: b("1")}), op(nil)}},
			"across ranges":  &flotillapb.BatchRequest{Ops: []*flotillapb.Op{op(&flotillapb.PutOp{Key: b("k"), Value: b("1")}), op(&flotillapb.DeleteOp{Key: b("a1")}), op(&flotillapb.DeleteRangeOp{StartKey: b("a2"), EndKey: b("g")}), op(&flotillapb.CompareAndSwapOp{Key: b("c"), Expected: b("vc"), Value: b("big")}), op(&flotillapb.PutOp{Key: b("a1"), Value: b("2")})}},
			"cas absent":     &flotillapb.BatchRequest{Ops: []*flotillapb.Op{op(&flotillapb.CompareAndSwapOp{Key: b("e"), ExpectAbsent: true, Value: b("1")}), op(&flotillapb.CompareAndSwapOp{Key: b("e"), ExpectAbsent: true, Value: b("2")})}},
			"empty key":      &flotillapb.BatchRequest{Ops: []*flotillapb.Op{op(&flotillapb.PutOp{Value: b("1")})}},
			"empty delete":   &flotillapb.BatchRequest{Ops: []*flotillapb.Op{op(&flotillapb.DeleteOp{})}},
			"oversize key":   &flotillapb.BatchRequest{Ops: []*flotillapb.Op{op(&flotillapb.DeleteOp{Key: big})}},
			"oversize value": &flotillapb.BatchRequest{Ops: []*flotillapb.Op{op(&flotillapb.PutOp{Key: b("a"), Value: bigValue})}},
			"oversize cas":   &flotillapb.BatchRequest{Ops: []*flotillapb.Op{op(&flotillapb.CompareAndSwapOp{Key: b("a"), Expected: bigValue})}},
			"reversed span":  &flotillapb.BatchRequest{Ops: []*flotillapb.Op{op(&flotillapb.DeleteRangeOp{StartKey: b("z"), EndKey: b("a")})}},
			"empty span":     &flotillapb.BatchRequest{Ops: []*flotillapb.Op{op(&flotillapb.DeleteRangeOp{StartKey: b("c"), EndKey: b("c")}), op(&flotillapb.DeleteRangeOp{})}},
			"routed header":  &flotillapb.BatchRequest{Header: routed, Ops: []*flotillapb.Op{op(&flotillapb.PutOp{Key: b("a"), Value: b("1")})}},
		},
	}
}

func txnPut(k, v string) *flotillapb.TxnOp {
	return &flotillapb.TxnOp{Op: &flotillapb.TxnOp_Put{Put: &flotillapb.PutOp{Key: []byte(k), Value: []byte(v)}}}
}

func txnGet(k string) *flotillapb.TxnOp {
	return &flotillapb.TxnOp{Op: &flotillapb.TxnOp_Get{Get: &flotillapb.GetOp{Key: []byte(k)}}}
}

func txnValueIs(k, v string) *flotillapb.Compare {
	return &flotillapb.Compare{Key: []byte(k), Target: flotillapb.Compare_VALUE, TargetUnion: &flotillapb.Compare_Value{Value: []byte(v)}}
}

// TestFuzzSeeds checks that the seed corpora in testdata/fuzz are the
// seeds of fuzzSeeds, or writes them with -write-fuzz-seeds.
func TestFuzzSeeds(t *testing.T) {
	for target, seeds := range fuzzSeeds() {
		for name, msg := range seeds {
			data, err := proto.MarshalOptions{Deterministic: true}.Marshal(msg)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", "fuzz", target, strings.ReplaceAll(name, " ", "-"))
			want := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", data)
			if *writeFuzzSeeds {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if got, err := os.ReadFile(path); err != nil || string(got) != want {
				t.Errorf("seed %s is missing or out of date (%v): run go test ./router -run '^TestFuzzSeeds$' -write-fuzz-seeds", path, err)
			}
		}
	}
}
