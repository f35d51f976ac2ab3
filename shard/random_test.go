// Copyright 2026 The Flotilla Authors. All rights reserved.

package shard_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/flotilladb/flotilla/internal/testcluster"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"github.com/flotilladb/flotilla/shard"
	"google.golang.org/protobuf/proto"
)

// model is the expected content of a range.
type model map[string]string

func (m model) stats() (keys, keyBytes, valueBytes int64) {
	for k, v := range m {
		keys, keyBytes, valueBytes = keys+1, keyBytes+int64(len(k)), valueBytes+int64(len(v))
	}
	return keys, keyBytes, valueBytes
}

// apply applies op to the model and returns the result the store must
// report.
func (m model) apply(op *flotillapb.Op) *flotillapb.OpResult {
	switch o := op.GetOp().(type) {
	case *flotillapb.Op_Put:
		m[string(o.Put.GetKey())] = string(o.Put.GetValue())
		return &flotillapb.OpResult{}
	case *flotillapb.Op_Delete:
		_, found := m[string(o.Delete.GetKey())]
		delete(m, string(o.Delete.GetKey()))
		return &flotillapb.OpResult{Found: found}
	case *flotillapb.Op_DeleteRange:
		var n int64
		for k := range m {
			if k >= string(o.DeleteRange.GetStartKey()) && (len(o.DeleteRange.GetEndKey()) == 0 || k < string(o.DeleteRange.GetEndKey())) {
				delete(m, k)
				n++
			}
		}
		return &flotillapb.OpResult{Deleted: n}
	case *flotillapb.Op_Cas:
		cur, found := m[string(o.Cas.GetKey())]
		if o.Cas.GetExpectAbsent() && !found || !o.Cas.GetExpectAbsent() && found && cur == string(o.Cas.GetExpected()) {
			m[string(o.Cas.GetKey())] = string(o.Cas.GetValue())
			return &flotillapb.OpResult{Swapped: true}
		}
		r := &flotillapb.OpResult{Found: found}
		if found {
			r.Current = []byte(cur)
		}
		return r
	}
	panic("unknown op")
}

// scan returns the model's pairs in [start, end), in order or reverse, and
// whether more follow the limit.
func (m model) scan(start, end string, limit int, reverse bool) (string, bool) {
	var keys []string
	for k := range m {
		if k >= start && (end == "" || k < end) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	if reverse {
		slices.Reverse(keys)
	}
	more := false
	if limit > 0 && len(keys) > limit {
		keys, more = keys[:limit], true
	}
	var parts []string
	for _, k := range keys {
		parts = append(parts, k+"="+m[k])
	}
	return strings.Join(parts, ","), more
}

func opResultString(r *flotillapb.OpResult) string {
	return fmt.Sprintf("{found %v swapped %v current %q deleted %d}", r.GetFound(), r.GetSwapped(), r.GetCurrent(), r.GetDeleted())
}

// randomOp returns a random write op over a small keyspace inside [b, m).
func randomOp(rng *rand.Rand, m model) *flotillapb.Op {
	key := func() string { return string(rune('b'+rng.IntN(11))) + string(rune('a'+rng.IntN(4))) }
	value := func() string { return strings.Repeat(string(rune('A'+rng.IntN(26))), rng.IntN(6)) }
	switch rng.IntN(10) {
	case 0, 1, 2, 3:
		return putOp(key(), value())
	case 4, 5:
		return delOp(key())
	case 6:
		lo, hi := key(), key()
		if lo > hi {
			lo, hi = hi, lo
		}
		if rng.IntN(4) == 0 {
			hi = "m"
		}
		return delRangeOp(lo, hi)
	default:
		k := key()
		cur, found := m[k]
		switch rng.IntN(3) {
		case 0:
			return casOp(k, "", true, value())
		case 1:
			if found {
				return casOp(k, cur, false, value())
			}
		}
		return casOp(k, value(), false, value())
	}
}

// TestRandomizedDifferential runs random reads and writes, single and
// batched, against a range [b, m) of a 3-node cluster and a model map: every
// response must match the model, and at the end the replicas converge to
// the model's statistics and to one hash, which the next write changes.
func TestRandomizedDifferential(t *testing.T) {
	rng, seed := shard.NewRand(t)
	k := newKVCluster(t, clusterOptions{Options: testcluster.Options{Nodes: 3, Seed: seed}})
	const rid = 5
	k.bootstrapRange(rid, "b", "m", 1, 2, 3)
	ctx := testCtx(t)
	m := model{}
	header := func() *flotillapb.RequestHeader {
		if rng.IntN(2) == 0 {
			return nil
		}
		return &flotillapb.RequestHeader{RangeId: rid, Version: uint64(rng.IntN(2))}
	}
	const steps = 300
	for step := range steps {
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("step %d: %s", step, fmt.Sprintf(format, args...))
		}
		switch rng.IntN(10) {
		case 0, 1: // a read, at the leader (only the leader serves reads)
			s, _ := k.leaderStore(rid)
			if rng.IntN(2) == 0 {
				key := string(rune('b'+rng.IntN(11))) + string(rune('a'+rng.IntN(4)))
				h := header()
				g, err := retry(ctx, func(ctx context.Context) (*flotillapb.GetResponse, error) {
					return s.Get(ctx, &flotillapb.GetRequest{Header: h, Key: []byte(key)})
				})
				want, found := m[key]
				if err != nil || g.GetFound() != found || string(g.GetValue()) != want {
					fail("get %q = %v, %v; want %q, %v", key, g, err, want, found)
				}
				continue
			}
			start := string(rune('b' + rng.IntN(11)))
			end := ""
			if rng.IntN(3) > 0 {
				end = string(rune(start[0] + byte(rng.IntN(5))))
			}
			if end == "" || end > "m" {
				end = "m"
			}
			limit, reverse := rng.IntN(6), rng.IntN(2) == 0
			h := header()
			resp, err := retry(ctx, func(ctx context.Context) (*flotillapb.ScanResponse, error) {
				return s.Scan(ctx, &flotillapb.ScanRequest{Header: h, StartKey: []byte(start), EndKey: []byte(end), Limit: int64(limit), Reverse: reverse})
			})
			want, more := m.scan(start, end, limit, reverse)
			if err != nil || kvString(resp.GetKvs()) != want || resp.GetMore() != more {
				fail("scan [%q, %q) limit %d reverse %v = %q more %v (%v); want %q more %v",
					start, end, limit, reverse, kvString(resp.GetKvs()), resp.GetMore(), err, want, more)
			}
		case 2, 3: // a batch
			ops := make([]*flotillapb.Op, 1+rng.IntN(5))
			for i := range ops {
				ops[i] = randomOp(rng, m)
			}
			h := header()
			resp, err := do(k, ctx, rid, func(ctx context.Context, s *shard.Store) (*flotillapb.BatchResponse, error) {
				return s.Batch(ctx, &flotillapb.BatchRequest{Header: h, Ops: ops})
			})
			if err != nil {
				fail("batch: %v", err)
			}
			for i, op := range ops {
				want := m.apply(op)
				if got := resp.GetResults()[i]; opResultString(got) != opResultString(want) {
					fail("batch op %d (%v) = %s, want %s", i, op, opResultString(got), opResultString(want))
				}
			}
		default: // a single write, through its own request type
			op := randomOp(rng, m)
			h := header()
			got, err := do(k, ctx, rid, func(ctx context.Context, s *shard.Store) (*flotillapb.OpResult, error) {
				switch o := op.GetOp().(type) {
				case *flotillapb.Op_Put:
					_, err := s.Put(ctx, &flotillapb.PutRequest{Header: h, Key: o.Put.GetKey(), Value: o.Put.GetValue()})
					return &flotillapb.OpResult{}, err
				case *flotillapb.Op_Delete:
					r, err := s.Delete(ctx, &flotillapb.DeleteRequest{Header: h, Key: o.Delete.GetKey()})
					return &flotillapb.OpResult{Found: r.GetFound()}, err
				case *flotillapb.Op_DeleteRange:
					r, err := s.DeleteRange(ctx, &flotillapb.DeleteRangeRequest{Header: h, StartKey: o.DeleteRange.GetStartKey(), EndKey: o.DeleteRange.GetEndKey()})
					return &flotillapb.OpResult{Deleted: r.GetDeleted()}, err
				default:
					c := op.GetCas()
					r, err := s.CompareAndSwap(ctx, &flotillapb.CompareAndSwapRequest{Header: h, Key: c.GetKey(), Expected: c.GetExpected(), ExpectAbsent: c.GetExpectAbsent(), Value: c.GetValue()})
					return &flotillapb.OpResult{Swapped: r.GetSwapped(), Found: r.GetFound(), Current: r.GetCurrent()}, err
				}
			})
			if err != nil {
				fail("%v: %v", op, err)
			}
			if want := m.apply(op); opResultString(got) != opResultString(want) {
				fail("%v = %s, want %s", op, opResultString(got), opResultString(want))
			}
		}
	}

	index, sum, stats, _ := k.waitConverged(rid, 1, 2, 3)
	keys, keyBytes, valueBytes := m.stats()
	if stats.Keys != keys || stats.KeyBytes != keyBytes || stats.ValueBytes != valueBytes {
		t.Fatalf("stats %+v, the model has %d keys, %d key bytes, %d value bytes", stats, keys, keyBytes, valueBytes)
	}
	// The stores read back exactly the model.
	leader, _ := k.leaderStore(rid)
	resp, err := leader.Scan(ctx, &flotillapb.ScanRequest{Header: hdr(rid), StartKey: []byte("b"), EndKey: []byte("m")})
	if want, _ := m.scan("b", "m", 0, false); err != nil || kvString(resp.GetKvs()) != want {
		t.Fatalf("final scan %q (%v), model %q", kvString(resp.GetKvs()), err, want)
	}
	// Rates: every replica applied the writes; reads were counted where
	// served.
	for _, n := range k.NodeIDs() {
		r, _ := k.Store(n).Replica(rid)
		if st := r.Stats(); st.WritesPerSecond <= 0 {
			t.Errorf("node %d reports %v writes per second", n, st.WritesPerSecond)
		}
	}
	// A write changes the hash, the same way everywhere.
	var key string
	for c := 'b'; ; c++ {
		if _, ok := m[string(c)]; !ok {
			key = string(c)
			break
		}
	}
	if _, err := do(k, ctx, rid, func(ctx context.Context, s *shard.Store) (*flotillapb.PutResponse, error) {
		return s.Put(ctx, &flotillapb.PutRequest{Key: []byte(key), Value: []byte("new")})
	}); err != nil {
		t.Fatal(err)
	}
	index2, sum2, stats2, desc := k.waitConverged(rid, 1, 2, 3)
	if index2 <= index || sum2 == sum || stats2.Keys != keys+1 {
		t.Fatalf("after a write: index %d→%d, hash changed %v, keys %d→%d", index, index2, sum2 != sum, keys, stats2.Keys)
	}
	// A restarted node reloads the same replica.
	k.Stop(3)
	k.restart(3)
	if r, ok := k.Store(3).Replica(rid); !ok || !proto.Equal(r.Descriptor(), desc) {
		t.Fatal("restarted node lost its replica")
	}
	if _, sum3, stats3, _ := k.waitConverged(rid, 1, 2, 3); sum3 != sum2 || stats3 != stats2 {
		t.Fatalf("after a restart: stats %+v, was %+v", stats3, stats2)
	}
}
