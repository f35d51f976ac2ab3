// Copyright 2026 The Flotilla Authors. All rights reserved.

package router

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"
	"testing/synctest"
	"time"

	"github.com/flotilladb/flotilla/rpc/flotillapb"
)

// spanServer serves span requests' parts on a clusterModel, whose ranges
// split, merge, move and change leaders under them, over one map: the
// replicas' data.
type spanServer struct {
	t    *testing.T
	m    *clusterModel
	rng  *rand.Rand
	data map[string]string
	// maxScanBytes is the servers' bound on a scan response, small so that
	// parts stop early.
	maxScanBytes int
	parts        int
}

// admit is the replica's answer to an attempt (the model's checks and
// faults); it also checks that the part lies in the attempt's range. An
// attempt whose outcome the model makes unknown is applied half of the
// time.
func (s *spanServer) admit(tg Target, write bool, spans ...Span) (apply bool, err error) {
	for _, sp := range spans {
		if in := sp.Clip(tg.Range); !bytes.Equal(in.Start, sp.Start) || !bytes.Equal(in.End, sp.End) {
			s.t.Errorf("part %v sent to range %v", sp, tg.Range)
		}
	}
	if err := s.m.serve(tg, spans[0].Start, write); err != nil {
		if write && outcomeOf(err) == flotillapb.Outcome_UNKNOWN {
			return s.rng.IntN(2) == 0, err
		}
		return false, err
	}
	s.parts++
	return true, nil
}

func (s *spanServer) scan(_ context.Context, tg Target, req *flotillapb.ScanRequest) (*flotillapb.ScanResponse, error) {
	if _, err := s.admit(tg, false, Span{req.GetStartKey(), req.GetEndKey()}); err != nil {
		return nil, err
	}
	keys := modelScan(s.data, Span{req.GetStartKey(), req.GetEndKey()}, req.GetReverse(), 0)
	resp := &flotillapb.ScanResponse{}
	size := 0
	for _, k := range keys {
		if req.GetLimit() > 0 && int64(len(resp.Kvs)) >= req.GetLimit() || size >= s.maxScanBytes {
			resp.More = true
			last := resp.Kvs[len(resp.Kvs)-1].GetKey()
			resp.ResumeKey = append(bytes.Clone(last), 0)
			if req.GetReverse() {
				resp.ResumeKey = bytes.Clone(last)
			}
			break
		}
		resp.Kvs = append(resp.Kvs, &flotillapb.KeyValue{Key: []byte(k), Value: []byte(s.data[k])})
		size += len(k) + len(s.data[k])
	}
	return resp, nil
}

func (s *spanServer) deleteRange(_ context.Context, tg Target, req *flotillapb.DeleteRangeRequest) (*flotillapb.DeleteRangeResponse, error) {
	sp := Span{req.GetStartKey(), req.GetEndKey()}
	apply, err := s.admit(tg, true, sp)
	var n int64
	if apply {
		n = applyOp(s.data, deleteRangeOp(string(sp.Start), string(sp.End))).GetDeleted()
	}
	if err != nil {
		return nil, err
	}
	return &flotillapb.DeleteRangeResponse{Deleted: n}, nil
}

func (s *spanServer) batch(_ context.Context, tg Target, req *flotillapb.BatchRequest) (*flotillapb.BatchResponse, error) {
	var spans []Span
	for _, op := range req.GetOps() {
		if dr := op.GetDeleteRange(); dr != nil {
			spans = append(spans, Span{dr.GetStartKey(), dr.GetEndKey()})
		} else {
			spans = append(spans, Span{op.RouteKey(), append(bytes.Clone(op.RouteKey()), 0)})
		}
	}
	apply, err := s.admit(tg, true, spans...)
	resp := &flotillapb.BatchResponse{}
	if apply {
		for _, op := range req.GetOps() {
			resp.Results = append(resp.Results, applyOp(s.data, op))
		}
	}
	if err != nil {
		return nil, err
	}
	return resp, nil
}

// applyOp applies an op to data as a replica does.
func applyOp(data map[string]string, op *flotillapb.Op) *flotillapb.OpResult {
	r := &flotillapb.OpResult{}
	switch o := op.GetOp().(type) {
	case *flotillapb.Op_Put:
		data[string(o.Put.GetKey())] = string(o.Put.GetValue())
	case *flotillapb.Op_Delete:
		_, r.Found = data[string(o.Delete.GetKey())]
		delete(data, string(o.Delete.GetKey()))
	case *flotillapb.Op_DeleteRange:
		for _, k := range modelScan(data, Span{o.DeleteRange.GetStartKey(), o.DeleteRange.GetEndKey()}, false, 0) {
			delete(data, k)
			r.Deleted++
		}
	case *flotillapb.Op_Cas:
		cur, ok := data[string(o.Cas.GetKey())]
		if ok == o.Cas.GetExpectAbsent() || ok && cur != string(o.Cas.GetExpected()) {
			r.Found, r.Current = ok, []byte(cur)
			if !ok {
				r.Current = nil
			}
		} else {
			data[string(o.Cas.GetKey())] = string(o.Cas.GetValue())
			r.Swapped = true
		}
	}
	return r
}

func randomKey(rng *rand.Rand) string { return fmt.Sprintf("k%03d", rng.IntN(1000)) }

// randomSpan returns a span of model keys, mostly a short one; either end
// may be open.
func randomSpan(rng *rand.Rand) Span {
	a := rng.IntN(1000)
	b := min(a+rng.IntN(150), 999)
	if rng.IntN(4) == 0 {
		b = a + rng.IntN(1000-a)
	}
	s := Span{Start: fmt.Appendf(nil, "k%03d", a), End: fmt.Appendf(nil, "k%03d", b)}
	if rng.IntN(8) == 0 {
		s.Start = nil
	}
	if rng.IntN(8) == 0 {
		s.End = nil
	}
	return s
}

func randomOp(rng *rand.Rand) *flotillapb.Op {
	k := randomKey(rng)
	switch rng.IntN(5) {
	case 0:
		return deleteOp(k)
	case 1:
		s := randomSpan(rng)
		return deleteRangeOp(string(s.Start), string(s.End))
	case 2:
		return casOp(k, "v"+k, fmt.Sprintf("c%d", rng.IntN(100)))
	}
	return putOp(k, fmt.Sprintf("p%d", rng.IntN(100)))
}

// TestRandomizedSpans runs scans (paged, forward and reverse, with limits
// and size bounds), delete-ranges and batches against a model map, one at
// a time, while the model cluster's ranges split, merge, move and change
// leaders between attempts and the placement driver lags. Every scan
// returns the model's keys exactly once, in order; every write that
// succeeds leaves the replicas' data equal to the model and returns the
// model's results. Time is virtual.
func TestRandomizedSpans(t *testing.T) {
	seed := newSeed(t)
	synctest.Test(t, func(t *testing.T) {
		rng := newRand(seed)
		m := newClusterModel(newRand(seed + 1))
		r := newModelRouter(t, m, func(d time.Duration) time.Duration { return time.Duration(rng.Int64N(int64(d) + 1)) })
		s := &spanServer{t: t, m: m, rng: newRand(seed + 2), data: map[string]string{}, maxScanBytes: 60}
		for range 300 {
			k := randomKey(rng)
			s.data[k] = "v" + k
		}
		model := maps.Clone(s.data)
		stats := map[string]int{}
		n := 300
		if testing.Short() {
			n = 100
		}
		for i := range n {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			switch p := rng.IntN(10); {
			case p < 5:
				stats["scan"]++
				checkRandomScan(ctx, t, r, s, model, rng, i)
			case p < 7:
				stats["delete-range"]++
				sp := randomSpan(rng)
				before := maps.Clone(model)
				want := applyOp(model, deleteRangeOp(string(sp.Start), string(sp.End))).GetDeleted()
				resp, err := DeleteRange(ctx, r, &flotillapb.DeleteRangeRequest{StartKey: sp.Start, EndKey: sp.End}, s.deleteRange)
				switch {
				case err != nil && outcomeOf(err) == flotillapb.Outcome_UNKNOWN:
					// Some parts may have applied; keys outside the span
					// are as they were.
					stats["delete-range unknown outcome"]++
					for k, v := range before {
						inSpan := k >= string(sp.Start) && (len(sp.End) == 0 || k < string(sp.End))
						if !inSpan && s.data[k] != v {
							t.Errorf("op %d: DeleteRange %v with an unknown outcome changed %q, outside its span", i, sp, k)
						}
					}
					model = maps.Clone(s.data)
				case err != nil:
					t.Errorf("op %d: DeleteRange %v: %v", i, sp, err)
				case resp.GetDeleted() != want:
					t.Errorf("op %d: DeleteRange %v deleted %d, want %d", i, sp, resp.GetDeleted(), want)
				}
			default:
				stats["batch"]++
				var ops []*flotillapb.Op
				for range 1 + rng.IntN(8) {
					ops = append(ops, randomOp(rng))
				}
				var want []*flotillapb.OpResult
				after := maps.Clone(model)
				for _, op := range ops {
					want = append(want, applyOp(after, op))
				}
				resp, err := Batch(ctx, r, &flotillapb.BatchRequest{Ops: ops}, s.batch)
				switch {
				case err != nil && outcomeOf(err) == flotillapb.Outcome_UNKNOWN:
					stats["batch unknown outcome"]++
					after = maps.Clone(s.data) // some parts may have applied
				case err != nil:
					t.Errorf("op %d: Batch %v: %v", i, ops, err)
				default:
					for j := range ops {
						if g, w := resp.GetResults()[j], want[j]; g.GetFound() != w.GetFound() || g.GetSwapped() != w.GetSwapped() ||
							g.GetDeleted() != w.GetDeleted() || !bytes.Equal(g.GetCurrent(), w.GetCurrent()) {
							t.Errorf("op %d: Batch %v: result %d = %v, want %v", i, ops, j, g, w)
						}
					}
				}
				model = after
			}
			cancel()
			if !maps.Equal(model, s.data) {
				t.Fatalf("op %d: the replicas' data differs from the model", i)
			}
			if bad := r.cache.check(); bad != "" {
				t.Fatalf("op %d: cache invariant broken: %s", i, bad)
			}
			if t.Failed() {
				return
			}
		}
		t.Logf("ops %v; parts served %d; cluster events %v; %d ranges at the end", stats, s.parts, m.events, len(m.ranges))
	})
}

// checkRandomScan pages through a random span with a random limit and size
// bound, and checks each page and all of them against the model.
func checkRandomScan(ctx context.Context, t *testing.T, r *Router, s *spanServer, model map[string]string, rng *rand.Rand, i int) {
	t.Helper()
	sp, reverse := randomSpan(rng), rng.IntN(2) == 0
	limit := []int{0, 1, 7, 50}[rng.IntN(4)]
	maxBytes := []int{0, 30, 200}[rng.IntN(3)]
	want := modelScan(model, sp, reverse, 0)
	var got []string
	rest := sp
	for page := 0; ; page++ {
		if page > len(want)+2 {
			t.Errorf("op %d: scan %v (reverse %v, limit %d): still paging after %d pages", i, sp, reverse, limit, page)
			return
		}
		resp, err := Scan(ctx, r, &flotillapb.ScanRequest{StartKey: rest.Start, EndKey: rest.End, Reverse: reverse, Limit: int64(limit)}, maxBytes, s.scan)
		if err != nil {
			t.Errorf("op %d: scan %v: %v", i, rest, err)
			return
		}
		keys := keysOf(resp.GetKvs())
		if limit > 0 && len(keys) > limit {
			t.Errorf("op %d: scan page of %d pairs, over the limit %d", i, len(keys), limit)
		}
		for _, kv := range resp.GetKvs() {
			if string(kv.GetValue()) != model[string(kv.GetKey())] {
				t.Errorf("op %d: scan returned %q = %q, want %q", i, kv.GetKey(), kv.GetValue(), model[string(kv.GetKey())])
			}
		}
		got = append(got, keys...)
		if !resp.GetMore() {
			break
		}
		if reverse {
			rest.End = resp.GetResumeKey()
		} else {
			rest.Start = resp.GetResumeKey()
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("op %d: scan %v (reverse %v, limit %d, bytes %d) returned %d keys %v, want %d %v",
			i, sp, reverse, limit, maxBytes, len(got), got, len(want), want)
	}
}
