// Copyright 2026 The Flotilla Authors. All rights reserved.

package router

import (
	"context"
	"slices"
	"testing"

	"github.com/flotilladb/flotilla/rpc"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
)

// lostAckHandler is a node whose store is f: it serves the delete-range
// parts sent to it through PartSender, and on the first part sent to
// range lose it applies the part, lets another client write (between),
// and then answers with an unknown outcome, as when a leader applies a
// command and loses its leadership (or its connection) before it answers.
type lostAckHandler struct {
	rpc.KVHandler // the methods the test does not use: nil, they panic
	f             *fakeKV
	lose          uint64
	lost          bool
	between       func()
}

func (h *lostAckHandler) DeleteRange(ctx context.Context, req *flotillapb.DeleteRangeRequest) (*flotillapb.DeleteRangeResponse, error) {
	resp, err := h.f.deleteRange(ctx, Target{Header: req.GetHeader()}, req)
	if err != nil || h.lost || req.GetHeader().GetRangeId() != h.lose {
		return resp, err
	}
	h.lost = true
	h.between()
	return nil, unavailable(flotillapb.Outcome_UNKNOWN)
}

// oneNode is a Nodes whose every store is served by one handler.
type oneNode struct{ h rpc.KVHandler }

func (n oneNode) Handler(context.Context, flotillapb.NodeID, bool) (rpc.KVHandler, error) {
	return n.h, nil
}

// TestDeleteRangePartNotResentAfterUnknownOutcome (issue 15): a
// delete-range part whose outcome is unknown must not be sent again. Its
// first attempt deleted c; another client then put c=new, was
// acknowledged, and read c=new back. Were the part sent again, it would
// delete c=new, a write acknowledged and read after the delete-range had
// taken effect: no linearization of one delete-range explains a later
// read of c as absent. The delete-range must instead fail with an unknown
// outcome, and c=new must stay.
func TestDeleteRangePartNotResentAfterUnknownOutcome(t *testing.T) {
	f := spanTestKV(t)
	r, _, _ := testRouter(t, newFakeResolver(f.infos()...))
	h := &lostAckHandler{f: f, lose: 2}
	h.between = func() {
		// The delete-range's first attempt took c (range 2 is [b, d)).
		if _, ok := f.data["c"]; ok {
			t.Fatal("the part's first attempt did not delete c")
		}
		// Another client's put of c, acknowledged, and read back.
		if _, err := f.batch(context.Background(), Target{Header: &flotillapb.RequestHeader{RangeId: 2, Version: 1}},
			&flotillapb.BatchRequest{Ops: []*flotillapb.Op{putOp("c", "new")}}); err != nil {
			t.Fatal(err)
		}
		if v, ok := f.data["c"]; !ok || v != "new" {
			t.Fatalf("c = %q (%v) after the put, want new", v, ok)
		}
	}
	send := PartSender(oneNode{h}, true, rpc.KVHandler.DeleteRange)
	resp, err := DeleteRange(context.Background(), r, &flotillapb.DeleteRangeRequest{StartKey: []byte("a"), EndKey: []byte("z")}, send)
	if v, ok := f.data["c"]; !ok || v != "new" {
		t.Fatalf("c = %q (present %v) after the delete-range returned (%v, %v): the acknowledged and read put c=new was "+
			"deleted by a delete-range part sent again after its unknown outcome", v, ok, resp, err)
	}
	if err == nil {
		t.Fatalf("DeleteRange = %v, want an error with an unknown outcome", resp)
	}
	if fe := asFE(t, err); fe.GetOutcome() != flotillapb.Outcome_UNKNOWN || fe.GetUnavailable() == nil {
		t.Fatalf("DeleteRange error %v, want Unavailable with an unknown outcome", err)
	}
	// Range 1's part was applied, range 2's sent once; nothing after it.
	if got := f.logged(); !slices.Equal(got, []string{"delete 1 [a,b)", "delete 2 [b,d)", "batch 2: Put c"}) {
		t.Fatalf("parts served %q, want range 1's and range 2's once", got)
	}
	if _, ok := f.data["f"]; !ok {
		t.Fatal("range 4's part was applied after range 2's outcome was unknown")
	}
}

// TestDeleteRangeSingleRangeUnknownOutcome: a delete-range that lies in
// one range, whose only part's outcome is unknown, fails with an unknown
// outcome after one attempt.
func TestDeleteRangeSingleRangeUnknownOutcome(t *testing.T) {
	f := spanTestKV(t)
	r, _, _ := testRouter(t, newFakeResolver(f.infos()...))
	h := &lostAckHandler{f: f, lose: 2, between: func() {}}
	_, err := DeleteRange(context.Background(), r, &flotillapb.DeleteRangeRequest{StartKey: []byte("b"), EndKey: []byte("c")},
		PartSender(oneNode{h}, true, rpc.KVHandler.DeleteRange))
	if fe := asFE(t, err); fe.GetOutcome() != flotillapb.Outcome_UNKNOWN {
		t.Fatalf("DeleteRange = %v, want an unknown outcome", err)
	}
	if got := f.logged(); !slices.Equal(got, []string{"delete 2 [b,c)"}) {
		t.Fatalf("parts served %q, want one", got)
	}
}
