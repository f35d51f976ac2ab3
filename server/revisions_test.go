// Copyright 2026 The Flotilla Authors. All rights reserved.

package server_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flotilladb/flotilla/internal/testutil"
	"github.com/flotilladb/flotilla/rpc"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"github.com/flotilladb/flotilla/server"
	"google.golang.org/protobuf/proto"
)

// kvClient returns a gRPC KV client of node n, closed when the test ends.
func kvClient(t testing.TB, ctx context.Context, n *server.Node) flotillapb.KVClient {
	t.Helper()
	pool := rpc.NewPool(rpc.PoolConfig{})
	t.Cleanup(func() { _ = pool.Close() })
	conn, err := pool.Ready(ctx, n.Addr(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return flotillapb.NewKVClient(conn)
}

// pbErr returns a gRPC error as the node's *flotillapb.Error (nil for nil).
func pbErr(err error, write bool) *flotillapb.Error { return rpc.ErrorFromStatus(err, write) }

// dump is everything the cluster holds at the latest revision: every key
// with its value, mod and create revisions and version.
func dump(t *testing.T, ctx context.Context, kv flotillapb.KVClient) string {
	t.Helper()
	resp, err := kv.Scan(ctx, &flotillapb.ScanRequest{})
	if err != nil {
		t.Fatal(err)
	}
	var parts []string
	for _, p := range resp.GetKvs() {
		parts = append(parts, fmt.Sprintf("%s=%s@%d/%d/%d", p.GetKey(), p.GetValue(), p.GetModRevision(), p.GetCreateRevision(), p.GetVersion()))
	}
	return strings.Join(parts, " ")
}

func putOp(k, v string) *flotillapb.TxnOp {
	return &flotillapb.TxnOp{Op: &flotillapb.TxnOp_Put{Put: &flotillapb.PutOp{Key: []byte(k), Value: []byte(v)}}}
}

func getOp(k string) *flotillapb.TxnOp {
	return &flotillapb.TxnOp{Op: &flotillapb.TxnOp_Get{Get: &flotillapb.GetOp{Key: []byte(k)}}}
}

func valueIs(k, v string) *flotillapb.Compare {
	return &flotillapb.Compare{Key: []byte(k), Target: flotillapb.Compare_VALUE, Result: flotillapb.Compare_EQUAL,
		TargetUnion: &flotillapb.Compare_Value{Value: []byte(v)}}
}

// startTwoRangeCluster starts three nodes whose keyspace is pre-split at
// "m", waits until both ranges are served, and returns the nodes and the
// IDs of the ranges of "a" and "n".
func startTwoRangeCluster(t *testing.T, ctx context.Context) (nodes []*server.Node, left, right uint64) {
	t.Helper()
	n1 := openNode(t, placementConfig(t.TempDir()))
	nodes = []*server.Node{n1}
	for range 2 {
		nodes = append(nodes, openNode(t, placementConfig(t.TempDir(), n1.Addr())))
	}
	if _, err := n1.Init(ctx, []byte("m")); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if err := n.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
	}
	pc := placementClient(t, n1)
	testutil.SucceedsWithin(t, time.Minute, func() error {
		a, err := pc.LookupRange(ctx, &flotillapb.LookupRangeRequest{Key: []byte("a")})
		if err != nil {
			return err
		}
		b, err := pc.LookupRange(ctx, &flotillapb.LookupRangeRequest{Key: []byte("n")})
		if err != nil {
			return err
		}
		left, right = a.GetDescriptor_().GetRangeId(), b.GetDescriptor_().GetRangeId()
		if left == right || a.GetLeader() == nil || b.GetLeader() == nil {
			return fmt.Errorf("ranges %v and %v", a, b)
		}
		return nil
	})
	return nodes, left, right
}

// TestTxnAcrossRanges, on three nodes whose keyspace is split at "m": a
// txn whose compares or writes lie in both ranges fails with CrossRange
// naming both, not applied, and writes nothing (every key's value and
// revisions unchanged); a txn whose compares and writes lie in one range
// but whose reads span both succeeds, and its reads are the state at its
// revision. Every node's gateway serves them alike.
func TestTxnAcrossRanges(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	nodes, left, right := startTwoRangeCluster(t, ctx)
	var kvs []flotillapb.KVClient
	for _, n := range nodes {
		kvs = append(kvs, kvClient(t, ctx, n))
	}
	for _, key := range []string{"a", "b", "n", "o"} {
		if _, err := kvs[0].Put(ctx, &flotillapb.PutRequest{Key: []byte(key), Value: []byte("1")}); err != nil {
			t.Fatal(err)
		}
	}
	before := dump(t, ctx, kvs[0])
	delRange := func(s, e string) *flotillapb.TxnOp {
		return &flotillapb.TxnOp{Op: &flotillapb.TxnOp_DeleteRange{DeleteRange: &flotillapb.DeleteRangeOp{StartKey: []byte(s), EndKey: []byte(e)}}}
	}
	for name, tc := range map[string]struct {
		req      *flotillapb.TxnRequest
		bothIDs  bool // the error names both ranges
		anyRange bool // it names at least the first
	}{
		"compare left, write right": {req: &flotillapb.TxnRequest{Compares: []*flotillapb.Compare{valueIs("a", "1")},
			Success: []*flotillapb.TxnOp{putOp("n", "2")}}, bothIDs: true},
		"writes in both": {req: &flotillapb.TxnRequest{Success: []*flotillapb.TxnOp{putOp("a", "2"), putOp("n", "2")}}, bothIDs: true},
		"compares in both": {req: &flotillapb.TxnRequest{Compares: []*flotillapb.Compare{valueIs("a", "1"), valueIs("n", "1")},
			Success: []*flotillapb.TxnOp{putOp("a", "2")}}, bothIDs: true},
		"failure branch in the other range": {req: &flotillapb.TxnRequest{Compares: []*flotillapb.Compare{valueIs("n", "1")},
			Success: []*flotillapb.TxnOp{putOp("o", "2")}, Failure: []*flotillapb.TxnOp{putOp("b", "2")}}, bothIDs: true},
		"right then left, reads too": {req: &flotillapb.TxnRequest{Success: []*flotillapb.TxnOp{getOp("a"), putOp("o", "2"), putOp("b", "2")}}, bothIDs: true},
		// A delete-range across the split: its span reaches past the
		// first range.
		"delete-range across": {req: &flotillapb.TxnRequest{Success: []*flotillapb.TxnOp{delRange("a", "z")}}, anyRange: true},
	} {
		for i, kv := range kvs {
			_, err := kv.Txn(ctx, tc.req)
			fe := pbErr(err, true)
			cr := fe.GetCrossRange()
			if cr == nil || fe.GetOutcome() != flotillapb.Outcome_NOT_APPLIED {
				t.Fatalf("%s through node %d: %v; want CrossRange, not applied", name, i+1, err)
			}
			ids := cr.GetRangeIds()
			if tc.bothIDs && (!slices.Contains(ids, left) || !slices.Contains(ids, right) || !strings.Contains(fe.GetMessage(), fmt.Sprint(left)) ||
				!strings.Contains(fe.GetMessage(), fmt.Sprint(right))) {
				t.Fatalf("%s through node %d: %v (ids %v); want ranges %d and %d named", name, i+1, fe, ids, left, right)
			}
			if tc.anyRange && !slices.Contains(ids, left) {
				t.Fatalf("%s through node %d: %v (ids %v); want range %d named", name, i+1, fe, ids, left)
			}
			if !tc.bothIDs && !(slices.Contains(ids, left) && slices.Contains(ids, right)) {
				t.Logf("%s: the error names ranges %v only (%q)", name, ids, fe.GetMessage())
			}
		}
		if after := dump(t, ctx, kvs[0]); after != before {
			t.Fatalf("%s changed the data:\nbefore %s\nafter  %s", name, before, after)
		}
	}

	// Writes in the left range, reads in both: it applies, and its reads
	// are the state at its revision, its own writes included.
	if _, err := kvs[1].Put(ctx, &flotillapb.PutRequest{Key: []byte("n"), Value: []byte("2")}); err != nil {
		t.Fatal(err)
	}
	scanAll := &flotillapb.TxnOp{Op: &flotillapb.TxnOp_Scan{Scan: &flotillapb.ScanOp{StartKey: []byte("a"), EndKey: []byte("z")}}}
	for i, kv := range kvs {
		value := fmt.Sprintf("via%d", i+1)
		resp, err := kv.Txn(ctx, &flotillapb.TxnRequest{
			Compares: []*flotillapb.Compare{{Key: []byte("a"), Target: flotillapb.Compare_CREATE, Result: flotillapb.Compare_GREATER,
				TargetUnion: &flotillapb.Compare_CreateRevision{CreateRevision: 0}}},
			Success: []*flotillapb.TxnOp{putOp("a", value), getOp("n"), putOp("b", value), scanAll},
			Failure: []*flotillapb.TxnOp{getOp("o")},
		})
		if err != nil || !resp.GetSucceeded() || len(resp.GetResults()) != 4 {
			t.Fatalf("txn through node %d: %v, %v", i+1, resp, err)
		}
		rev := resp.GetHeader().GetRevision()
		if g := resp.GetResults()[1].GetGet(); string(g.GetValue()) != "2" || g.GetHeader().GetRevision() != rev {
			t.Fatalf("txn through node %d: get n = %v, want 2 read at the txn's revision %d", i+1, g, rev)
		}
		sc := resp.GetResults()[3].GetScan()
		if sc.GetHeader().GetRevision() != rev {
			t.Fatalf("txn through node %d: scan read at %d, the txn is at %d", i+1, sc.GetHeader().GetRevision(), rev)
		}
		got := map[string]*flotillapb.KeyValue{}
		for _, p := range sc.GetKvs() {
			got[string(p.GetKey())] = p
		}
		if string(got["a"].GetValue()) != value || got["a"].GetModRevision() != rev || got["b"].GetModRevision() != rev ||
			string(got["n"].GetValue()) != "2" || len(got) != 4 {
			t.Fatalf("txn through node %d at %d: scan %v", i+1, rev, sc.GetKvs())
		}
		// The same scan at the txn's revision, later, after a write to the
		// other range: the same answer.
		if _, err := kv.Put(ctx, &flotillapb.PutRequest{Key: []byte("n"), Value: []byte(fmt.Sprint("later", i))}); err != nil {
			t.Fatal(err)
		}
		again, err := kv.Scan(ctx, &flotillapb.ScanRequest{StartKey: []byte("a"), EndKey: []byte("z"), Revision: rev})
		if err != nil {
			t.Fatal(err)
		}
		if !samePairs(sc.GetKvs(), again.GetKvs()) {
			t.Fatalf("txn through node %d at %d: scanned %v, again at its revision %v", i+1, rev, sc.GetKvs(), again.GetKvs())
		}
		if _, err := kv.Put(ctx, &flotillapb.PutRequest{Key: []byte("n"), Value: []byte("2")}); err != nil {
			t.Fatal(err)
		}
	}
}

func samePairs(a, b []*flotillapb.KeyValue) bool {
	return slices.EqualFunc(a, b, func(x, y *flotillapb.KeyValue) bool { return proto.Equal(x, y) })
}

// TestRevisionBadInput: reads at a negative revision or one in the
// future, txns with unknown compare targets, too many ops or none,
// compactions at 0, below it or above the current revision: each gets a
// clear error (InvalidArgument naming the field; FutureRevision with the
// current revision) and changes nothing: the data and its revisions are
// the same, and nothing was compacted.
func TestRevisionBadInput(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n := openNode(t, server.Config{Dir: t.TempDir(), Bootstrap: true, HTTPAddr: "off", MaxTxnOps: 4,
		AutoCompactionMode: server.CompactionOff, Testing: &server.TestingKnobs{DisableSync: true}})
	if err := n.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	kv := kvClient(t, ctx, n)
	var first int64
	testutil.SucceedsSoon(t, func() error {
		resp, err := kv.Put(ctx, &flotillapb.PutRequest{Key: []byte("a"), Value: []byte("1")})
		first = resp.GetHeader().GetRevision()
		return err
	})
	for _, key := range []string{"a", "b", "c"} {
		if _, err := kv.Put(ctx, &flotillapb.PutRequest{Key: []byte(key), Value: []byte("2")}); err != nil {
			t.Fatal(err)
		}
	}
	before := dump(t, ctx, kv)
	latest := func() int64 {
		g, err := kv.Get(ctx, &flotillapb.GetRequest{Key: []byte("a")})
		if err != nil {
			t.Fatal(err)
		}
		return g.GetHeader().GetRevision()
	}
	future := latest() + 1000

	invalid := func(what string, err error, write bool, field string) {
		t.Helper()
		fe := pbErr(err, write)
		want := flotillapb.Outcome_OUTCOME_UNSPECIFIED
		if write {
			want = flotillapb.Outcome_NOT_APPLIED
		}
		if fe.GetInvalidArgument() == nil || !strings.Contains(fe.GetInvalidArgument().GetField(), field) || fe.GetMessage() == "" || fe.GetOutcome() != want {
			t.Errorf("%s: %v (field %q, outcome %v); want InvalidArgument on %q, outcome %v", what, err,
				fe.GetInvalidArgument().GetField(), fe.GetOutcome(), field, want)
		}
	}
	futureRev := func(what string, err error, write bool) {
		t.Helper()
		fe := pbErr(err, write)
		fr := fe.GetFutureRevision()
		if fr == nil || fr.GetCurrentRevision() < first || fr.GetCurrentRevision() >= future || fe.GetMessage() == "" {
			t.Errorf("%s: %v; want FutureRevision with the current revision (below %d)", what, err, future)
		}
		if write && fe.GetOutcome() != flotillapb.Outcome_NOT_APPLIED {
			t.Errorf("%s: outcome %v, want not applied", what, fe.GetOutcome())
		}
	}

	_, err := kv.Get(ctx, &flotillapb.GetRequest{Key: []byte("a"), Revision: -1})
	invalid("get at -1", err, false, "revision")
	_, err = kv.Get(ctx, &flotillapb.GetRequest{Key: []byte("a"), Revision: -1 << 63})
	invalid("get at the most negative revision", err, false, "revision")
	_, err = kv.Scan(ctx, &flotillapb.ScanRequest{Revision: -1})
	invalid("scan at -1", err, false, "revision")
	_, err = kv.Get(ctx, &flotillapb.GetRequest{Key: []byte("a"), Revision: future})
	futureRev("get in the future", err, false)
	_, err = kv.Scan(ctx, &flotillapb.ScanRequest{Revision: future})
	futureRev("scan in the future", err, false)
	_, err = kv.Get(ctx, &flotillapb.GetRequest{Key: []byte("a"), Revision: 1<<63 - 1})
	futureRev("get at the largest revision", err, false)

	ops := func(n int) []*flotillapb.TxnOp {
		var out []*flotillapb.TxnOp
		for i := range n {
			out = append(out, putOp(fmt.Sprint("t", i), "x"))
		}
		return out
	}
	for name, tc := range map[string]struct {
		req   *flotillapb.TxnRequest
		field string
	}{
		"unknown compare target": {&flotillapb.TxnRequest{Compares: []*flotillapb.Compare{{Key: []byte("a"), Target: 9}}, Success: ops(1)}, "target"},
		"unknown compare result": {&flotillapb.TxnRequest{Compares: []*flotillapb.Compare{{Key: []byte("a"), Result: 7,
			TargetUnion: &flotillapb.Compare_Version{Version: 1}}}, Success: ops(1)}, "result"},
		"compare of the wrong kind": {&flotillapb.TxnRequest{Compares: []*flotillapb.Compare{{Key: []byte("a"), Target: flotillapb.Compare_MOD,
			TargetUnion: &flotillapb.Compare_Value{Value: []byte("1")}}}, Success: ops(1)}, "target_union"},
		"compare without a key": {&flotillapb.TxnRequest{Compares: []*flotillapb.Compare{{Target: flotillapb.Compare_VERSION}}, Success: ops(1)}, "key"},
		"too many ops":          {&flotillapb.TxnRequest{Success: ops(3), Failure: ops(2)}, "success"},
		"too many compares": {&flotillapb.TxnRequest{Compares: slices.Repeat([]*flotillapb.Compare{valueIs("a", "1")}, 5),
			Success: ops(1)}, "success"},
		"empty":               {&flotillapb.TxnRequest{}, "success"},
		"an op with nothing":  {&flotillapb.TxnRequest{Success: []*flotillapb.TxnOp{putOp("a", "3"), {}}}, "success[1].op"},
		"a get without a key": {&flotillapb.TxnRequest{Success: []*flotillapb.TxnOp{putOp("a", "3"), getOp("")}}, "get.key"},
		"a negative scan limit": {&flotillapb.TxnRequest{Success: []*flotillapb.TxnOp{putOp("a", "3"),
			{Op: &flotillapb.TxnOp_Scan{Scan: &flotillapb.ScanOp{Limit: -1}}}}}, "scan.limit"},
	} {
		_, err := kv.Txn(ctx, tc.req)
		invalid("txn: "+name, err, true, tc.field)
	}

	for _, rev := range []int64{0, -1, -1 << 63} {
		_, err := kv.Compact(ctx, &flotillapb.CompactRequest{Revision: rev})
		invalid(fmt.Sprintf("compact at %d", rev), err, true, "revision")
	}
	_, err = kv.Compact(ctx, &flotillapb.CompactRequest{Revision: future})
	futureRev("compact in the future", err, true)
	_, err = kv.Compact(ctx, &flotillapb.CompactRequest{Revision: 1<<63 - 1})
	futureRev("compact at the largest revision", err, true)

	if after := dump(t, ctx, kv); after != before {
		t.Fatalf("bad input changed the data:\nbefore %s\nafter  %s", before, after)
	}
	// Nothing was compacted: the first write is still readable at its
	// revision.
	if g, err := kv.Get(ctx, &flotillapb.GetRequest{Key: []byte("a"), Revision: first}); err != nil || string(g.GetValue()) != "1" {
		t.Fatalf("get at the first revision %d after the refused compactions: %v, %v", first, g, err)
	}
}
