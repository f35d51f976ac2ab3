// Copyright 2026 The Flotilla Authors. All rights reserved.

package server_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/flotilladb/flotilla/router"
	"github.com/flotilladb/flotilla/rpc"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
)

// lostAckNodes is the router.Nodes of a test client whose first
// delete-range part is applied by the cluster but answered with an unknown
// outcome, as when a leader applies a command and loses its connection
// before it answers. Between the two, it runs between: other clients' work
// while the outcome is in doubt.
type lostAckNodes struct {
	pool     *rpc.Pool
	resolver *router.PlacementResolver
	between  func()

	mu   sync.Mutex
	lost bool
}

func (n *lostAckNodes) Handler(ctx context.Context, node flotillapb.NodeID, _ bool) (rpc.KVHandler, error) {
	addr, ok := n.resolver.Address(node)
	if !ok {
		return nil, &flotillapb.Error{Message: fmt.Sprintf("no address of node %d", node), Outcome: flotillapb.Outcome_NOT_APPLIED,
			Detail: &flotillapb.Error_Unavailable{Unavailable: &flotillapb.Unavailable{}}}
	}
	kv, err := n.pool.ReadyKV(ctx, addr, time.Second)
	if err != nil {
		return nil, &flotillapb.Error{Message: err.Error(), Outcome: flotillapb.Outcome_NOT_APPLIED,
			Detail: &flotillapb.Error_Unavailable{Unavailable: &flotillapb.Unavailable{}}}
	}
	return lostAckKV{KVHandler: kv, n: n}, nil
}

type lostAckKV struct {
	rpc.KVHandler
	n *lostAckNodes
}

func (k lostAckKV) DeleteRange(ctx context.Context, req *flotillapb.DeleteRangeRequest) (*flotillapb.DeleteRangeResponse, error) {
	resp, err := k.KVHandler.DeleteRange(ctx, req)
	k.n.mu.Lock()
	lose := err == nil && !k.n.lost
	k.n.lost = k.n.lost || lose
	k.n.mu.Unlock()
	if !lose {
		return resp, err
	}
	k.n.between()
	return nil, &flotillapb.Error{Message: "injected: the delete-range part was applied, its answer lost",
		Outcome: flotillapb.Outcome_UNKNOWN, Detail: &flotillapb.Error_Unavailable{Unavailable: &flotillapb.Unavailable{}}}
}

// resendUnknown is the delete-range part sender of the router before issue
// 15 was fixed: a part whose outcome is unknown is sent again.
func resendUnknown(send func(context.Context, router.Target, *flotillapb.DeleteRangeRequest) (*flotillapb.DeleteRangeResponse, error),
) func(context.Context, router.Target, *flotillapb.DeleteRangeRequest) (*flotillapb.DeleteRangeResponse, error) {
	return func(ctx context.Context, t router.Target, part *flotillapb.DeleteRangeRequest) (*flotillapb.DeleteRangeResponse, error) {
		resp, err := send(ctx, t, part)
		var fe *flotillapb.Error
		if errors.As(err, &fe) && fe.GetOutcome() == flotillapb.Outcome_UNKNOWN {
			return send(ctx, t, part)
		}
		return resp, err
	}
}

// TestLinearizabilityCheckerCatchesResentDeleteRange (issue 15): a
// delete-range of [a, c) whose part's outcome is unknown after it was
// applied; meanwhile one client reads b as absent (the delete-range took
// effect), another puts b=v1, and a third reads b=v1. The router as it is
// returns the unknown outcome, and the history is linearizable. The old
// router, which sent the part again, deletes b=v1 after it was read: the
// final read of b finds it absent, and the checker must reject the history.
func TestLinearizabilityCheckerCatchesResentDeleteRange(t *testing.T) {
	c := startLZCluster(t, nil)
	pool := rpc.NewPool(rpc.PoolConfig{})
	defer pool.Close()

	for _, tc := range []struct {
		name   string
		resend bool
		want   porcupine.CheckResult
	}{
		{"router", false, porcupine.Ok},
		{"resending part (the old router)", true, porcupine.Illegal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newLZHistory()
			const key = "b"
			writer := &lzClient{id: 0, kv: c.connect(0), h: h}
			reader := &lzClient{id: 1, kv: c.connect(1), h: h}
			if err := writer.put(key, "v0"); err != nil {
				t.Fatal(err)
			}

			resolver := router.NewPlacementResolver(func(ctx context.Context, req *flotillapb.LookupRangeRequest) (*flotillapb.LookupRangeResponse, error) {
				conn, err := pool.Conn(c.addrs[0])
				if err != nil {
					return nil, err
				}
				resp, err := flotillapb.NewPlacementClient(conn).LookupRange(ctx, req)
				if err != nil {
					return nil, rpc.ErrorFromStatus(err, false)
				}
				return resp, nil
			})
			r, err := router.New(router.Config{Resolver: resolver})
			if err != nil {
				t.Fatal(err)
			}
			nodes := &lostAckNodes{pool: pool, resolver: resolver}
			nodes.between = func() {
				out, err := reader.get(key)
				if err != nil || out.found {
					t.Errorf("get %s after the delete-range's part applied = %+v, %v; want absent", key, out, err)
				}
				if err := writer.put(key, "v1"); err != nil {
					t.Errorf("put %s=v1: %v", key, err)
				}
				if out, err := reader.get(key); err != nil || out.value != "v1" {
					t.Errorf("get %s after the put = %+v, %v; want v1", key, out, err)
				}
			}
			send := router.PartSender(nodes, true, rpc.KVHandler.DeleteRange)
			if tc.resend {
				send = resendUnknown(send)
			}

			in := lzInput{kind: lzDeleteRange, key: "a", end: "c"}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			call := h.now()
			resp, err := router.DeleteRange(ctx, r, &flotillapb.DeleteRangeRequest{StartKey: []byte(in.key), EndKey: []byte(in.end)}, send)
			ret := h.now()
			h.record(2, in, call, ret, lzOutput{deleted: resp.GetDeleted()}, err)
			var fe *flotillapb.Error
			switch {
			case !nodes.lost:
				t.Fatal("no delete-range part was applied with its answer lost")
			case tc.resend && err != nil:
				t.Fatalf("the resent delete-range failed: %v", err)
			case !tc.resend && (!errors.As(err, &fe) || fe.GetOutcome() != flotillapb.Outcome_UNKNOWN):
				t.Fatalf("DeleteRange = %v, %v; want an error with an unknown outcome", resp, err)
			}

			out, err := reader.get(key)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: after the delete-range, get %s = %+v", tc.name, key, out)
			checkLinearizable(t, h, tc.want)
		})
	}
}

// TestLZModelDeleteRange checks the model's delete-range on histories
// built by hand: each key's deletion is linearized on its own (a
// delete-range across ranges is not atomic), an unknown one may or may not
// have happened, and one observed twice, before and after another write of
// its key, is not linearizable.
func TestLZModelDeleteRange(t *testing.T) {
	type op struct {
		client    int
		in        lzInput
		call, ret int64
		out       lzOutput
	}
	put := func(k, v string) lzInput { return lzInput{kind: lzPut, key: k, value: v} }
	get := func(k string) lzInput { return lzInput{kind: lzGet, key: k} }
	delRange := func(start, end string) lzInput { return lzInput{kind: lzDeleteRange, key: start, end: end} }
	found := func(v string) lzOutput { return lzOutput{found: true, value: v} }
	absent, unknown, done := lzOutput{}, lzOutput{unknown: true}, lzOutput{}
	for _, tc := range []struct {
		name string
		ops  []op
		want porcupine.CheckResult
	}{{
		name: "deleted keys read absent",
		ops: []op{
			{0, put("a", "1"), 0, 1, done}, {0, put("b", "1"), 2, 3, done},
			{1, delRange("a", ""), 4, 5, done},
			{0, get("a"), 6, 7, absent}, {0, get("b"), 8, 9, absent},
		},
		want: porcupine.Ok,
	}, {
		name: "a key outside the span stays",
		ops: []op{
			{0, put("a", "1"), 0, 1, done}, {0, put("c", "1"), 2, 3, done},
			{1, delRange("a", "c"), 4, 5, done},
			{0, get("c"), 6, 7, found("1")},
		},
		want: porcupine.Ok,
	}, {
		name: "a key outside the span deleted",
		ops: []op{
			{0, put("c", "1"), 0, 1, done},
			{1, delRange("a", "c"), 4, 5, done},
			{0, get("c"), 6, 7, absent},
		},
		want: porcupine.Illegal,
	}, {
		name: "a done delete-range missed a key",
		ops: []op{
			{0, put("a", "1"), 0, 1, done},
			{1, delRange("a", "b"), 4, 5, done},
			{0, get("a"), 6, 7, found("1")},
		},
		want: porcupine.Illegal,
	}, {
		name: "not atomic across keys",
		// Reader 0 sees a deleted before b: the parts applied apart.
		ops: []op{
			{0, put("a", "1"), 0, 1, done}, {0, put("b", "1"), 2, 3, done},
			{1, delRange("a", ""), 4, 20, done},
			{0, get("b"), 5, 6, found("1")}, {0, get("a"), 7, 8, absent},
			{2, get("a"), 9, 10, absent}, {2, get("b"), 11, 12, found("1")},
		},
		want: porcupine.Ok,
	}, {
		name: "unknown, not applied",
		ops: []op{
			{0, put("a", "1"), 0, 1, done},
			{1, delRange("a", "b"), 2, 100, unknown},
			{0, get("a"), 6, 7, found("1")},
		},
		want: porcupine.Ok,
	}, {
		name: "unknown, applied",
		ops: []op{
			{0, put("a", "1"), 0, 1, done},
			{1, delRange("a", "b"), 2, 100, unknown},
			{0, get("a"), 6, 7, absent},
		},
		want: porcupine.Ok,
	}, {
		name: "applied twice around a later put",
		// The resent part of issue 15: a is seen deleted, then put and
		// read, then deleted again by the same delete-range.
		ops: []op{
			{0, put("a", "0"), 0, 1, done},
			{1, delRange("a", "b"), 2, 20, done},
			{0, get("a"), 3, 4, absent},
			{2, put("a", "1"), 5, 6, done},
			{0, get("a"), 7, 8, found("1")},
			{0, get("a"), 21, 22, absent},
		},
		want: porcupine.Illegal,
	}} {
		t.Run(tc.name, func(t *testing.T) {
			var ops []porcupine.Operation
			for _, o := range tc.ops {
				ops = append(ops, porcupine.Operation{ClientId: o.client, Input: o.in, Call: o.call, Output: o.out, Return: o.ret})
			}
			if got := porcupine.CheckOperations(lzModel, ops); (got && tc.want != porcupine.Ok) || (!got && tc.want != porcupine.Illegal) {
				t.Errorf("CheckOperations = %v, want %v", got, tc.want)
			}
			// The same history as events, through PartitionEvent.
			var evs []porcupine.Event
			type at struct {
				t  int64
				ev porcupine.Event
			}
			var all []at
			for i, o := range ops {
				all = append(all, at{o.Call, porcupine.Event{ClientId: o.ClientId, Kind: porcupine.CallEvent, Value: o.Input, Id: i}},
					at{o.Return, porcupine.Event{ClientId: o.ClientId, Kind: porcupine.ReturnEvent, Value: o.Output, Id: i}})
			}
			slices.SortStableFunc(all, func(a, b at) int { return cmp.Compare(a.t, b.t) })
			for _, a := range all {
				evs = append(evs, a.ev)
			}
			if got := porcupine.CheckEvents(lzModel, evs); (got && tc.want != porcupine.Ok) || (!got && tc.want != porcupine.Illegal) {
				t.Errorf("CheckEvents = %v, want %v", got, tc.want)
			}
		})
	}
}
