// Copyright 2026 The Flotilla Authors. All rights reserved.

package shard_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flotilladb/flotilla/internal/testcluster"
	"github.com/flotilladb/flotilla/internal/testutil"
	"github.com/flotilladb/flotilla/multiraft"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"github.com/flotilladb/flotilla/shard"
)

func putOp(k, v string) *flotillapb.Op {
	return &flotillapb.Op{Op: &flotillapb.Op_Put{Put: &flotillapb.PutOp{Key: []byte(k), Value: []byte(v)}}}
}

func casOp(k, expected string, absent bool, v string) *flotillapb.Op {
	return &flotillapb.Op{Op: &flotillapb.Op_Cas{Cas: &flotillapb.CompareAndSwapOp{Key: []byte(k), Expected: []byte(expected), ExpectAbsent: absent, Value: []byte(v)}}}
}

func delOp(k string) *flotillapb.Op {
	return &flotillapb.Op{Op: &flotillapb.Op_Delete{Delete: &flotillapb.DeleteOp{Key: []byte(k)}}}
}

func delRangeOp(start, end string) *flotillapb.Op {
	return &flotillapb.Op{Op: &flotillapb.Op_DeleteRange{DeleteRange: &flotillapb.DeleteRangeOp{StartKey: []byte(start), EndKey: []byte(end)}}}
}

func kvString(kvs []*flotillapb.KeyValue) string {
	var parts []string
	for _, kv := range kvs {
		parts = append(parts, string(kv.GetKey())+"="+string(kv.GetValue()))
	}
	return strings.Join(parts, ",")
}

// TestOps runs every request type through the stores of a 3-node cluster.
func TestOps(t *testing.T) {
	k := newKVCluster(t, clusterOptions{Options: testcluster.Options{Nodes: 3}})
	const rid = 1
	k.bootstrapRange(rid, "", "", 1, 2, 3)
	ctx := testCtx(t)
	_, leader := k.leaderStore(rid)
	follower := k.Store(leader%3 + 1)

	for _, kv := range [][2]string{{"a", "1"}, {"b", "2"}, {"c", "3"}, {"d", "4"}, {"e", "5"}} {
		resp, err := do(k, ctx, rid, func(ctx context.Context, s *shard.Store) (*flotillapb.PutResponse, error) {
			return s.Put(ctx, &flotillapb.PutRequest{Key: []byte(kv[0]), Value: []byte(kv[1])})
		})
		if err != nil {
			t.Fatal(err)
		}
		if resp.GetHeader().GetRangeId() != rid || resp.GetHeader().GetAppliedIndex() == 0 {
			t.Fatalf("put header %v", resp.GetHeader())
		}
	}
	s, _ := k.leaderStore(rid)
	// Get from the leader; a follower does not serve reads (it cannot
	// know the writes its leader is about to propose).
	if _, err := follower.Get(ctx, &flotillapb.GetRequest{Key: []byte("c")}); pbError(t, err).GetNotLeader() == nil {
		t.Fatalf("get at a follower: %v", err)
	}
	for _, st := range []*shard.Store{s} {
		g, err := st.Get(ctx, &flotillapb.GetRequest{Key: []byte("c")})
		if err != nil || !g.GetFound() || string(g.GetValue()) != "3" || g.GetHeader().GetAppliedIndex() == 0 {
			t.Fatalf("get c = %v, %v", g, err)
		}
		g, err = st.Get(ctx, &flotillapb.GetRequest{Header: hdr(rid), Key: []byte("zz")})
		if err != nil || g.GetFound() {
			t.Fatalf("get zz = %v, %v", g, err)
		}
	}
	scan := func(start, end string, limit int64, reverse bool) (string, bool) {
		t.Helper()
		resp, err := s.Scan(ctx, &flotillapb.ScanRequest{StartKey: []byte(start), EndKey: []byte(end), Limit: limit, Reverse: reverse})
		if err != nil {
			t.Fatal(err)
		}
		return kvString(resp.GetKvs()), resp.GetMore()
	}
	for _, tc := range []struct {
		start, end string
		limit      int64
		reverse    bool
		want       string
		more       bool
	}{
		{"", "", 0, false, "a=1,b=2,c=3,d=4,e=5", false},
		{"b", "d", 0, false, "b=2,c=3", false},
		{"", "", 2, false, "a=1,b=2", true},
		{"", "", 5, false, "a=1,b=2,c=3,d=4,e=5", false},
		{"", "", 2, true, "e=5,d=4", true},
		{"b", "e", 0, true, "d=4,c=3,b=2", false},
		{"c", "c", 0, false, "", false},
		{"f", "", 0, false, "", false},
	} {
		if got, more := scan(tc.start, tc.end, tc.limit, tc.reverse); got != tc.want || more != tc.more {
			t.Errorf("scan [%q, %q) limit %d reverse %v = %q, more %v; want %q, %v", tc.start, tc.end, tc.limit, tc.reverse, got, more, tc.want, tc.more)
		}
	}

	// Delete reports whether the key existed.
	d, err := s.Delete(ctx, &flotillapb.DeleteRequest{Key: []byte("e")})
	if err != nil || !d.GetFound() {
		t.Fatalf("delete e = %v, %v", d, err)
	}
	d, err = s.Delete(ctx, &flotillapb.DeleteRequest{Key: []byte("e")})
	if err != nil || d.GetFound() {
		t.Fatalf("delete e again = %v, %v", d, err)
	}
	// Compare-and-swap: a match, a mismatch, expect-absent both ways.
	c, err := s.CompareAndSwap(ctx, &flotillapb.CompareAndSwapRequest{Key: []byte("a"), Expected: []byte("1"), Value: []byte("one")})
	if err != nil || !c.GetSwapped() {
		t.Fatalf("cas a = %v, %v", c, err)
	}
	c, err = s.CompareAndSwap(ctx, &flotillapb.CompareAndSwapRequest{Key: []byte("a"), Expected: []byte("1"), Value: []byte("uno")})
	if err != nil || c.GetSwapped() || !c.GetFound() || string(c.GetCurrent()) != "one" {
		t.Fatalf("mismatched cas a = %v, %v", c, err)
	}
	c, err = s.CompareAndSwap(ctx, &flotillapb.CompareAndSwapRequest{Key: []byte("a"), ExpectAbsent: true, Value: []byte("x")})
	if err != nil || c.GetSwapped() || !c.GetFound() || string(c.GetCurrent()) != "one" {
		t.Fatalf("expect-absent cas on a present key = %v, %v", c, err)
	}
	c, err = s.CompareAndSwap(ctx, &flotillapb.CompareAndSwapRequest{Key: []byte("e"), ExpectAbsent: true, Value: []byte("five")})
	if err != nil || !c.GetSwapped() {
		t.Fatalf("expect-absent cas on e = %v, %v", c, err)
	}
	c, err = s.CompareAndSwap(ctx, &flotillapb.CompareAndSwapRequest{Key: []byte("zz"), Expected: []byte(""), Value: []byte("x")})
	if err != nil || c.GetSwapped() || c.GetFound() {
		t.Fatalf("cas expecting an empty value on an absent key = %v, %v", c, err)
	}
	// Delete-range counts what it removed; an empty span does nothing.
	dr, err := s.DeleteRange(ctx, &flotillapb.DeleteRangeRequest{StartKey: []byte("b"), EndKey: []byte("d")})
	if err != nil || dr.GetDeleted() != 2 {
		t.Fatalf("delete-range [b, d) = %v, %v", dr, err)
	}
	dr, err = s.DeleteRange(ctx, &flotillapb.DeleteRangeRequest{StartKey: []byte("a"), EndKey: []byte("a")})
	if err != nil || dr.GetDeleted() != 0 {
		t.Fatalf("empty delete-range = %v, %v", dr, err)
	}
	if got, _ := scan("", "", 0, false); got != "a=one,d=4,e=five" {
		t.Fatalf("after deletes: %q", got)
	}

	// A batch applies in order: the later CAS sees the earlier put, a
	// failed CAS does not stop the batch.
	b, err := s.Batch(ctx, &flotillapb.BatchRequest{Ops: []*flotillapb.Op{
		putOp("k", "v1"),
		casOp("k", "v1", false, "v2"),
		casOp("k", "v1", false, "v3"),
		delOp("a"),
		delRangeOp("d", "e"),
		casOp("a", "", true, "again"),
	}})
	if err != nil {
		t.Fatal(err)
	}
	r := b.GetResults()
	if len(r) != 6 || !r[1].GetSwapped() || r[2].GetSwapped() || string(r[2].GetCurrent()) != "v2" ||
		!r[3].GetFound() || r[4].GetDeleted() != 1 || !r[5].GetSwapped() {
		t.Fatalf("batch results %v", r)
	}
	if got, _ := scan("", "", 0, false); got != "a=again,e=five,k=v2" {
		t.Fatalf("after batch: %q", got)
	}
	// A batch with one bad key applies nothing.
	_, err = s.Batch(ctx, &flotillapb.BatchRequest{Ops: []*flotillapb.Op{putOp("x", "1"), putOp("", "2")}})
	if pe := pbError(t, err); pe.GetInvalidArgument().GetField() != "ops[1].put.key" || pe.GetOutcome() != flotillapb.Outcome_NOT_APPLIED {
		t.Fatalf("bad batch: %v", pe)
	}
	if got, _ := scan("", "", 0, false); got != "a=again,e=five,k=v2" {
		t.Fatalf("after bad batch: %q", got)
	}
	k.waitConverged(rid, 1, 2, 3)
}

// TestScanByteLimit: a scan stops once MaxScanBytes are gathered, with More,
// and always returns at least one pair.
func TestScanByteLimit(t *testing.T) {
	k := newKVCluster(t, clusterOptions{
		Options:        testcluster.Options{Nodes: 1},
		configureStore: func(_ multiraft.NodeID, c *shard.Config) { c.MaxScanBytes = 25 },
	})
	const rid = 1
	k.bootstrapRange(rid, "", "", 1)
	ctx := testCtx(t)
	for i := range 5 {
		if _, err := do(k, ctx, rid, func(ctx context.Context, s *shard.Store) (*flotillapb.PutResponse, error) {
			return s.Put(ctx, &flotillapb.PutRequest{Key: fmt.Appendf(nil, "k%d", i), Value: bytes.Repeat([]byte{'v'}, 8)})
		}); err != nil {
			t.Fatal(err)
		}
	}
	s := k.Store(1)
	resp, err := s.Scan(ctx, &flotillapb.ScanRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// 10 bytes a pair: the third reaches 30 >= 25.
	if len(resp.GetKvs()) != 3 || !resp.GetMore() {
		t.Fatalf("scan returned %d pairs, more %v", len(resp.GetKvs()), resp.GetMore())
	}
	if _, err := s.Put(ctx, &flotillapb.PutRequest{Key: []byte("big"), Value: bytes.Repeat([]byte{'v'}, 100)}); err != nil {
		t.Fatal(err)
	}
	resp, err = s.Scan(ctx, &flotillapb.ScanRequest{StartKey: []byte("big"), EndKey: []byte("k0")})
	if err != nil || len(resp.GetKvs()) != 1 || resp.GetMore() {
		t.Fatalf("scan of one large pair: %v, %v", resp, err)
	}
}

// TestManyCommandsPerApply: concurrent compare-and-swap chains on shared
// counters. Their commands are applied many per Apply call, so a CAS must
// see the writes of earlier commands in the same call: if it did not, two
// increments from the same value would both swap and the counter would
// trail the number of successful swaps.
func TestManyCommandsPerApply(t *testing.T) {
	var maxPerApply atomic.Int64
	k := newKVCluster(t, clusterOptions{Options: testcluster.Options{Nodes: 3}, onApply: func(n int) {
		for {
			m := maxPerApply.Load()
			if int64(n) <= m || maxPerApply.CompareAndSwap(m, int64(n)) {
				return
			}
		}
	}})
	const rid = 1
	k.bootstrapRange(rid, "", "", 1, 2, 3)
	k.makeLeader(rid, 1)
	ctx := testCtx(t)
	s := k.Store(1)
	const workers, perWorker, counters = 16, 15, 2
	var swaps [counters]atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			key := fmt.Appendf(nil, "counter%d", w%counters)
			cur, found := 0, false
			for done := 0; done < perWorker; {
				req := &flotillapb.CompareAndSwapRequest{Key: key, Value: fmt.Append(nil, cur+1)}
				if found {
					req.Expected = fmt.Append(nil, cur)
				} else {
					req.ExpectAbsent = true
				}
				resp, err := s.CompareAndSwap(ctx, req)
				if err != nil {
					errs <- err
					return
				}
				if resp.GetSwapped() {
					swaps[w%counters].Add(1)
					cur, found = cur+1, true
					done++
					continue
				}
				found = resp.GetFound()
				if _, err := fmt.Sscan(string(resp.GetCurrent()), &cur); err != nil && found {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for c := range counters {
		g, err := s.Get(ctx, &flotillapb.GetRequest{Key: fmt.Appendf(nil, "counter%d", c)})
		if err != nil {
			t.Fatal(err)
		}
		want := swaps[c].Load()
		if string(g.GetValue()) != fmt.Sprint(want) || want != workers/counters*perWorker {
			t.Fatalf("counter%d = %q after %d swaps (want %d)", c, g.GetValue(), want, workers/counters*perWorker)
		}
	}
	k.waitConverged(rid, 1, 2, 3)
	t.Logf("up to %d commands per Apply call", maxPerApply.Load())
	if maxPerApply.Load() < 2 {
		t.Fatal("every Apply call carried one command: the test proves nothing")
	}
}

// TestValidation: every malformed request gets InvalidArgument naming the
// field, with the right outcome, and changes nothing.
func TestValidation(t *testing.T) {
	k := newKVCluster(t, clusterOptions{
		Options:        testcluster.Options{Nodes: 3},
		configureStore: func(_ multiraft.NodeID, c *shard.Config) { c.MaxValueSize = 100 },
	})
	const rid = 1
	k.bootstrapRange(rid, "", "", 1, 2, 3)
	k.makeLeader(rid, 1)
	ctx := testCtx(t)
	s := k.Store(1)
	if _, err := s.Put(ctx, &flotillapb.PutRequest{Key: []byte("a"), Value: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	index, sum, stats, _ := k.waitConverged(rid, 1, 2, 3)
	st, _ := k.Node(1).Host().Status(rid)

	bigKey := make([]byte, flotillapb.MaxKeySize+1)
	bigValue := make([]byte, 101)
	const (
		read  = flotillapb.Outcome_OUTCOME_UNSPECIFIED
		write = flotillapb.Outcome_NOT_APPLIED
	)
	for _, tc := range []struct {
		name    string
		call    func() error
		field   string
		outcome flotillapb.Outcome
	}{
		{"nil get", func() error { _, err := s.Get(ctx, nil); return err }, "request", read},
		{"nil put", func() error { _, err := s.Put(ctx, nil); return err }, "request", write},
		{"nil delete", func() error { _, err := s.Delete(ctx, nil); return err }, "request", write},
		{"nil delete-range", func() error { _, err := s.DeleteRange(ctx, nil); return err }, "request", write},
		{"nil scan", func() error { _, err := s.Scan(ctx, nil); return err }, "request", read},
		{"nil cas", func() error { _, err := s.CompareAndSwap(ctx, nil); return err }, "request", write},
		{"nil batch", func() error { _, err := s.Batch(ctx, nil); return err }, "request", write},
		{"get empty key", func() error { _, err := s.Get(ctx, &flotillapb.GetRequest{}); return err }, "key", read},
		{"get big key", func() error { _, err := s.Get(ctx, &flotillapb.GetRequest{Key: bigKey}); return err }, "key", read},
		{"put empty key", func() error { _, err := s.Put(ctx, &flotillapb.PutRequest{Value: []byte("v")}); return err }, "key", write},
		{"put big key", func() error { _, err := s.Put(ctx, &flotillapb.PutRequest{Key: bigKey}); return err }, "key", write},
		{"put big value", func() error {
			_, err := s.Put(ctx, &flotillapb.PutRequest{Key: []byte("a"), Value: bigValue})
			return err
		}, "value", write},
		{"delete empty key", func() error { _, err := s.Delete(ctx, &flotillapb.DeleteRequest{}); return err }, "key", write},
		{"delete-range inverted", func() error {
			_, err := s.DeleteRange(ctx, &flotillapb.DeleteRangeRequest{StartKey: []byte("b"), EndKey: []byte("a")})
			return err
		}, "end_key", write},
		{"delete-range big start", func() error {
			_, err := s.DeleteRange(ctx, &flotillapb.DeleteRangeRequest{StartKey: bigKey})
			return err
		}, "start_key", write},
		{"scan inverted", func() error {
			_, err := s.Scan(ctx, &flotillapb.ScanRequest{StartKey: []byte("b"), EndKey: []byte("a")})
			return err
		}, "end_key", read},
		{"scan big end", func() error { _, err := s.Scan(ctx, &flotillapb.ScanRequest{EndKey: bigKey}); return err }, "end_key", read},
		{"scan negative limit", func() error { _, err := s.Scan(ctx, &flotillapb.ScanRequest{Limit: -1}); return err }, "limit", read},
		{"cas empty key", func() error {
			_, err := s.CompareAndSwap(ctx, &flotillapb.CompareAndSwapRequest{ExpectAbsent: true})
			return err
		}, "key", write},
		{"cas big value", func() error {
			_, err := s.CompareAndSwap(ctx, &flotillapb.CompareAndSwapRequest{Key: []byte("a"), Value: bigValue})
			return err
		}, "value", write},
		{"cas big expected", func() error {
			_, err := s.CompareAndSwap(ctx, &flotillapb.CompareAndSwapRequest{Key: []byte("a"), Expected: bigValue})
			return err
		}, "expected", write},
		{"empty batch", func() error { _, err := s.Batch(ctx, &flotillapb.BatchRequest{}); return err }, "ops", write},
		{"batch op unset", func() error {
			_, err := s.Batch(ctx, &flotillapb.BatchRequest{Ops: []*flotillapb.Op{putOp("a", "2"), {}}})
			return err
		}, "ops[1].op", write},
		{"batch nil op", func() error {
			_, err := s.Batch(ctx, &flotillapb.BatchRequest{Ops: []*flotillapb.Op{nil}})
			return err
		}, "ops[0].op", write},
		{"batch big value", func() error {
			_, err := s.Batch(ctx, &flotillapb.BatchRequest{Ops: []*flotillapb.Op{putOp("a", "2"), putOp("b", string(bigValue))}})
			return err
		}, "ops[1].put.value", write},
		{"batch bad delete-range", func() error {
			_, err := s.Batch(ctx, &flotillapb.BatchRequest{Ops: []*flotillapb.Op{delRangeOp("z", "a")}})
			return err
		}, "ops[0].delete_range.end_key", write},
		{"batch cas empty key", func() error {
			_, err := s.Batch(ctx, &flotillapb.BatchRequest{Ops: []*flotillapb.Op{casOp("", "", true, "x")}})
			return err
		}, "ops[0].cas.key", write},
	} {
		err := tc.call()
		if err == nil {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		pe := pbError(t, err)
		if pe.GetInvalidArgument().GetField() != tc.field || pe.GetOutcome() != tc.outcome || pe.GetMessage() == "" {
			t.Errorf("%s: %v (field %q, outcome %v); want field %q, outcome %v", tc.name, pe,
				pe.GetInvalidArgument().GetField(), pe.GetOutcome(), tc.field, tc.outcome)
		}
	}
	// Nothing was proposed: the log did not grow, the data did not change.
	st2, _ := k.Node(1).Host().Status(rid)
	if st2.LastIndex != st.LastIndex {
		t.Fatalf("log grew from %d to %d", st.LastIndex, st2.LastIndex)
	}
	index2, sum2, stats2, _ := k.waitConverged(rid, 1, 2, 3)
	if index2 != index || sum2 != sum || stats2 != stats {
		t.Fatalf("state changed: index %d→%d, stats %+v→%+v", index, index2, stats, stats2)
	}
}

// TestRangeErrors: requests for unknown ranges, outdated epochs and keys
// outside the range fail with the error the router needs, before proposing;
// commands that reach apply with a stale epoch or range are rejected there.
func TestRangeErrors(t *testing.T) {
	k := newKVCluster(t, clusterOptions{Options: testcluster.Options{Nodes: 3}})
	const rid = 2
	desc := k.bootstrapRange(rid, "b", "m", 1, 2, 3)
	k.makeLeader(rid, 1)
	ctx := testCtx(t)
	s := k.Store(1)
	if _, err := s.Put(ctx, &flotillapb.PutRequest{Key: []byte("c"), Value: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	index, sum, _, _ := k.waitConverged(rid, 1, 2, 3)
	v1 := &flotillapb.RequestHeader{RangeId: rid, Version: 1}
	stale := &flotillapb.RequestHeader{RangeId: rid, Version: 7}
	for _, tc := range []struct {
		name  string
		call  func() error
		check func(*flotillapb.Error) bool
	}{
		{"unknown range", func() error {
			_, err := s.Put(ctx, &flotillapb.PutRequest{Header: hdr(99), Key: []byte("c")})
			return err
		}, func(e *flotillapb.Error) bool { return e.GetRangeNotFound().GetRangeId() == 99 }},
		{"get from unknown range", func() error {
			_, err := s.Get(ctx, &flotillapb.GetRequest{Header: hdr(99), Key: []byte("c")})
			return err
		}, func(e *flotillapb.Error) bool { return e.GetRangeNotFound().GetRangeId() == 99 }},
		{"no local range holds the key", func() error {
			_, err := s.Put(ctx, &flotillapb.PutRequest{Key: []byte("z")})
			return err
		}, func(e *flotillapb.Error) bool { return e.GetRangeNotFound() != nil }},
		{"stale version", func() error {
			_, err := s.Put(ctx, &flotillapb.PutRequest{Header: stale, Key: []byte("c")})
			return err
		}, func(e *flotillapb.Error) bool {
			c := e.GetEpochNotMatch().GetCurrent()
			return len(c) == 1 && c[0].GetRangeId() == rid && c[0].GetEpoch().GetVersion() == 1
		}},
		{"stale version read", func() error {
			_, err := s.Scan(ctx, &flotillapb.ScanRequest{Header: stale, StartKey: []byte("c")})
			return err
		}, func(e *flotillapb.Error) bool { return e.GetEpochNotMatch() != nil }},
		{"key after the range", func() error {
			_, err := s.Put(ctx, &flotillapb.PutRequest{Header: v1, Key: []byte("m")})
			return err
		}, func(e *flotillapb.Error) bool {
			return string(e.GetKeyNotInRange().GetKey()) == "m" && e.GetKeyNotInRange().GetRange().GetRangeId() == rid
		}},
		{"key before the range", func() error {
			_, err := s.Get(ctx, &flotillapb.GetRequest{Header: v1, Key: []byte("a")})
			return err
		}, func(e *flotillapb.Error) bool { return string(e.GetKeyNotInRange().GetKey()) == "a" }},
		{"delete-range past the end", func() error {
			_, err := s.DeleteRange(ctx, &flotillapb.DeleteRangeRequest{StartKey: []byte("c"), EndKey: []byte("z")})
			return err
		}, func(e *flotillapb.Error) bool { return string(e.GetKeyNotInRange().GetKey()) == "m" }},
		{"delete-range to the end of the keyspace", func() error {
			_, err := s.DeleteRange(ctx, &flotillapb.DeleteRangeRequest{Header: hdr(rid), StartKey: []byte("c")})
			return err
		}, func(e *flotillapb.Error) bool { return e.GetKeyNotInRange() != nil }},
		{"scan before the start", func() error {
			_, err := s.Scan(ctx, &flotillapb.ScanRequest{Header: hdr(rid), StartKey: []byte("a"), EndKey: []byte("c")})
			return err
		}, func(e *flotillapb.Error) bool { return string(e.GetKeyNotInRange().GetKey()) == "a" }},
		{"batch with one key outside", func() error {
			_, err := s.Batch(ctx, &flotillapb.BatchRequest{Header: hdr(rid), Ops: []*flotillapb.Op{putOp("c", "2"), putOp("x", "2")}})
			return err
		}, func(e *flotillapb.Error) bool { return string(e.GetKeyNotInRange().GetKey()) == "x" }},
	} {
		err := tc.call()
		if err == nil {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		if pe := pbError(t, err); !tc.check(pe) {
			t.Errorf("%s: %v", tc.name, pe)
		}
	}
	if got, sum2 := func() (uint64, [32]byte) { i, s, _, _ := k.waitConverged(rid, 1, 2, 3); return i, s }(); got != index || sum2 != sum {
		t.Fatalf("state changed: index %d→%d", index, got)
	}

	// The same checks at apply: commands proposed straight to raft.
	h := k.Node(1).Host()
	for _, tc := range []struct {
		name  string
		cmd   *flotillapb.KVCommand
		check func(*flotillapb.Error) bool
	}{
		{"stale version", &flotillapb.KVCommand{RangeId: rid, Version: 0, Ops: []*flotillapb.Op{putOp("c", "x")}},
			func(e *flotillapb.Error) bool { return isOnly(e.GetEpochNotMatch().GetCurrent(), desc) }},
		{"other range", &flotillapb.KVCommand{RangeId: 3, Version: 1, Ops: []*flotillapb.Op{putOp("c", "x")}},
			func(e *flotillapb.Error) bool { return e.GetRangeNotFound().GetRangeId() == 3 }},
		{"key outside", &flotillapb.KVCommand{RangeId: rid, Version: 1, Ops: []*flotillapb.Op{putOp("c", "x"), putOp("a", "x")}},
			func(e *flotillapb.Error) bool { return string(e.GetKeyNotInRange().GetKey()) == "a" }},
	} {
		data, err := marshal(tc.cmd)
		if err != nil {
			t.Fatal(err)
		}
		res, err := h.Propose(rid, data).Wait(ctx)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		pe := pbError(t, res.Err)
		if !tc.check(pe) || pe.GetOutcome() != flotillapb.Outcome_NOT_APPLIED {
			t.Errorf("%s: %v", tc.name, pe)
		}
	}
	res, err := h.Propose(rid, []byte("not a command")).Wait(ctx)
	if err != nil || pbError(t, res.Err).GetInvalidArgument() == nil {
		t.Fatalf("malformed command: %v, %v", res, err)
	}
	_, sum2, _, _ := k.waitConverged(rid, 1, 2, 3)
	if sum2 != sum {
		t.Fatal("rejected commands changed the data")
	}
}

// TestNotLeader: a write or read at a follower fails (not applied) naming
// the leader.
func TestNotLeader(t *testing.T) {
	k := newKVCluster(t, clusterOptions{Options: testcluster.Options{Nodes: 3}})
	const rid = 1
	k.bootstrapRange(rid, "", "", 1, 2, 3)
	k.makeLeader(rid, 2)
	ctx := testCtx(t)
	// Followers learn the leader from its first messages.
	testutil.SucceedsSoon(t, func() error {
		if st, _ := k.Node(3).Host().Status(rid); st.Leader != testcluster.ReplicaOn(2) {
			return fmt.Errorf("node 3 sees leader %v", st.Leader)
		}
		return nil
	})
	_, err := k.Store(3).Put(ctx, &flotillapb.PutRequest{Key: []byte("a"), Value: []byte("1")})
	pe := pbError(t, err)
	nl := pe.GetNotLeader()
	if nl == nil || pe.GetOutcome() != flotillapb.Outcome_NOT_APPLIED || nl.GetRangeId() != rid ||
		nl.GetLeader().GetStoreId() != 2 || nl.GetLeader().GetReplicaId() != uint64(testcluster.ReplicaOn(2)) {
		t.Fatalf("write at a follower: %v", pe)
	}
	if _, err := k.Store(2).Put(ctx, &flotillapb.PutRequest{Key: []byte("a"), Value: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	_, err = k.Store(3).Get(ctx, &flotillapb.GetRequest{Key: []byte("a")})
	if nl := pbError(t, err).GetNotLeader(); nl.GetLeader().GetStoreId() != 2 {
		t.Fatalf("read at a follower: %v", err)
	}
	g, err := k.Store(2).Get(ctx, &flotillapb.GetRequest{Key: []byte("a")})
	if err != nil || string(g.GetValue()) != "1" {
		t.Fatalf("read at the leader: %v, %v", g, err)
	}
	// Before SetHost, a store serves nothing.
	early, err := shard.NewStore(shard.Config{Engine: k.Node(1).Engine(), Revisions: k.revs})
	if err != nil {
		t.Fatal(err)
	}
	_, err = early.Put(ctx, &flotillapb.PutRequest{Key: []byte("a")})
	if pe := pbError(t, err); pe.GetUnavailable() == nil || pe.GetOutcome() != flotillapb.Outcome_NOT_APPLIED {
		t.Fatalf("write before SetHost: %v", pe)
	}
	_, err = early.Get(ctx, &flotillapb.GetRequest{Key: []byte("a")})
	if pe := pbError(t, err); pe.GetUnavailable() == nil {
		t.Fatalf("read before SetHost: %v", pe)
	}
}

// TestReadsNeedReadIndex: a replica cut off from its leader does not serve
// a read (it cannot confirm it is current), unless UnsafeFollowerReads is
// set, and then it serves a stale value: the knob really breaks
// linearizability, as the checker that uses it expects.
func TestReadsNeedReadIndex(t *testing.T) {
	k := newKVCluster(t, clusterOptions{
		Options: testcluster.Options{Nodes: 3},
		configureStore: func(n multiraft.NodeID, c *shard.Config) {
			if n == 3 {
				c.Testing = &shard.TestingKnobs{UnsafeFollowerReads: true}
			}
		},
	})
	const rid = 1
	k.bootstrapRange(rid, "", "", 1, 2, 3)
	k.makeLeader(rid, 1)
	ctx := testCtx(t)
	put := func(v string) {
		t.Helper()
		if _, err := do(k, ctx, rid, func(ctx context.Context, s *shard.Store) (*flotillapb.PutResponse, error) {
			return s.Put(ctx, &flotillapb.PutRequest{Key: []byte("a"), Value: []byte(v)})
		}); err != nil {
			t.Fatal(err)
		}
	}
	put("1")
	k.waitConverged(rid, 1, 2, 3)

	// Node 2 reads through ReadIndex: cut off, it fails.
	k.Net.Partition([]multiraft.NodeID{2}, []multiraft.NodeID{1, 3})
	put("2")
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	g, err := k.Store(2).Get(short, &flotillapb.GetRequest{Key: []byte("a")})
	cancel()
	if err == nil {
		t.Fatalf("a partitioned replica served a read: %q", g.GetValue())
	}
	if pe := pbError(t, err); pe.GetOutcome() != flotillapb.Outcome_OUTCOME_UNSPECIFIED ||
		pe.GetUnavailable() == nil && pe.GetNotLeader() == nil {
		t.Fatalf("read at a partitioned replica: %v", pe)
	}
	k.Net.Heal()
	k.waitConverged(rid, 1, 2, 3)

	// Node 3 reads its own replica: cut off, it serves the old value.
	k.Net.Partition([]multiraft.NodeID{3}, []multiraft.NodeID{1, 2})
	put("3")
	g, err = k.Store(3).Get(ctx, &flotillapb.GetRequest{Key: []byte("a")})
	if err != nil || string(g.GetValue()) != "2" {
		t.Fatalf("unsafe follower read: %v, %v; want the stale value 2", g, err)
	}
	k.Net.Heal()
}

// TestOutcomeUnknownOnTimeout: a write proposed by a leader that cannot
// reach a quorum, whose caller stops waiting, has an unknown outcome.
func TestOutcomeUnknownOnTimeout(t *testing.T) {
	k := newKVCluster(t, clusterOptions{Options: testcluster.Options{Nodes: 3}})
	const rid = 1
	k.bootstrapRange(rid, "", "", 1, 2, 3)
	k.makeLeader(rid, 1)
	ctx := testCtx(t)
	if _, err := k.Store(1).Put(ctx, &flotillapb.PutRequest{Key: []byte("a"), Value: []byte("1")}); err != nil {
		t.Fatal(err)
	}
	k.Net.Partition([]multiraft.NodeID{1}, []multiraft.NodeID{2, 3})
	defer k.Net.Heal()
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	_, err := k.Store(1).Put(short, &flotillapb.PutRequest{Key: []byte("a"), Value: []byte("2")})
	pe := pbError(t, err)
	switch {
	case pe.GetOutcome() == flotillapb.Outcome_UNKNOWN && pe.GetUnavailable() != nil:
	case pe.GetOutcome() == flotillapb.Outcome_NOT_APPLIED && pe.GetNotLeader() != nil:
		t.Log("the leader stepped down before proposing") // possible on a slow machine
	default:
		t.Fatalf("write at a cut-off leader: %v", pe)
	}
}

// TestFollowerReads: a replica that does not lead serves a read that
// allows it once the leader closed the read's revision (CloseAtLeader)
// and its own log reached the close, with the latest value; if the
// leader's answer is not borne out by its own closed revision (here a
// CloseAtLeader that lies), it refuses rather than serve what it has.
func TestFollowerReads(t *testing.T) {
	var k *kvCluster
	k = newKVCluster(t, clusterOptions{
		Options: testcluster.Options{Nodes: 3},
		configureStore: func(n multiraft.NodeID, c *shard.Config) {
			c.CloseAtLeader = func(ctx context.Context, leader multiraft.NodeID, id multiraft.GroupID, rev int64) (int64, error) {
				if n == 3 {
					return rev, nil // lies: nothing was closed
				}
				return k.Store(leader).EnsureClosed(ctx, id, rev)
			}
		},
	})
	const rid = 1
	k.bootstrapRange(rid, "", "", 1, 2, 3)
	k.makeLeader(rid, 1)
	ctx := testCtx(t)
	put := func(v string) {
		t.Helper()
		if _, err := do(k, ctx, rid, func(ctx context.Context, s *shard.Store) (*flotillapb.PutResponse, error) {
			return s.Put(ctx, &flotillapb.PutRequest{Key: []byte("a"), Value: []byte(v)})
		}); err != nil {
			t.Fatal(err)
		}
	}
	follower := &flotillapb.RequestHeader{ReadFrom: flotillapb.ReadFrom_READ_FROM_FOLLOWER}
	for i := range 5 {
		v := fmt.Sprint(i)
		put(v)
		g, err := k.Store(2).Get(ctx, &flotillapb.GetRequest{Header: follower, Key: []byte("a")})
		if err != nil || string(g.GetValue()) != v {
			t.Fatalf("follower read after put %s: %v, %v", v, g, err)
		}
	}
	if n := k.Store(2).FollowerReads(); n != 5 {
		t.Fatalf("store 2 counted %d follower reads, want 5", n)
	}
	// Without read_from the follower refuses, naming the leader.
	if _, err := k.Store(2).Get(ctx, &flotillapb.GetRequest{Key: []byte("a")}); pbError(t, err).GetNotLeader() == nil {
		t.Fatalf("a leader read at a follower: %v", err)
	}
	// Store 3 is told the range closed when it did not: it refuses.
	put("new")
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	g, err := k.Store(3).Get(short, &flotillapb.GetRequest{Header: follower, Key: []byte("a")})
	cancel()
	if err == nil {
		t.Fatalf("a follower served %q at a revision nobody closed", g.GetValue())
	}
	if pe := pbError(t, err); pe.GetUnavailable() == nil {
		t.Fatalf("follower read without a close: %v; want Unavailable", pe)
	}
	// A read at a revision the follower has closed needs nobody.
	rev, err := k.Store(1).EnsureClosed(ctx, rid, k.revs.Seen())
	if err != nil {
		t.Fatal(err)
	}
	k.waitConverged(rid, 1, 2, 3)
	k.Net.Partition([]multiraft.NodeID{3}, []multiraft.NodeID{1, 2})
	g, err = k.Store(3).Get(ctx, &flotillapb.GetRequest{Header: follower, Key: []byte("a"), Revision: rev})
	k.Net.Heal()
	if err != nil || string(g.GetValue()) != "new" {
		t.Fatalf("read at closed revision %d on a cut-off follower: %v, %v", rev, g, err)
	}
}
