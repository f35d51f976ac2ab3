// Copyright 2026 The Flotilla Authors. All rights reserved.

package router

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/flotilladb/flotilla/rpc/flotillapb"
)

func TestSpanClip(t *testing.T) {
	for _, tc := range []struct {
		span       Span
		start, end string // the range
		want       string // the clipped span, "empty" if Empty
	}{
		{Span{[]byte("a"), []byte("z")}, "c", "f", `["c", "f")`},
		{Span{[]byte("d"), []byte("e")}, "c", "f", `["d", "e")`},
		{Span{nil, nil}, "c", "f", `["c", "f")`},
		{Span{nil, nil}, "", "", `["", "")`},
		{Span{[]byte("d"), nil}, "c", "", `["d", "")`},
		{Span{[]byte("a"), []byte("c")}, "c", "f", "empty"},
		{Span{[]byte("f"), nil}, "c", "f", "empty"},
		{Span{[]byte("g"), []byte("h")}, "c", "f", "empty"},
		{Span{[]byte("a"), []byte("b")}, "c", "", "empty"},
	} {
		got := tc.span.Clip(desc(1, tc.start, tc.end, 1, 1, 1))
		s := got.String()
		if got.Empty() {
			s = "empty"
			if !got.valid() {
				t.Errorf("%v clipped to [%q, %q) is reversed: %v", tc.span, tc.start, tc.end, got)
			}
		}
		if s != tc.want {
			t.Errorf("%v clipped to [%q, %q) = %s, want %s", tc.span, tc.start, tc.end, s, tc.want)
		}
	}
}

// fakeKV is a cluster of ranges, all on store 1, serving scans,
// delete-ranges and batches over one map with the checks of shard's Store.
// ranges is the truth; the router learns it from a fakeResolver the tests
// set up, and from the errors.
type fakeKV struct {
	t  *testing.T
	mu sync.Mutex
	// ranges are the current descriptors by range ID.
	ranges map[uint64]*flotillapb.RangeDescriptor
	data   map[string]string
	// maxScanBytes is the server's bound on a scan response.
	maxScanBytes int
	// log lists the parts served, e.g. "scan 2 [b,d) limit 3".
	log []string
	// before, if set, runs before each attempt is checked, with mu held;
	// an error it returns is the attempt's.
	before func(tg Target) error
}

func newFakeKV(t *testing.T, descs ...*flotillapb.RangeDescriptor) *fakeKV {
	f := &fakeKV{t: t, ranges: map[uint64]*flotillapb.RangeDescriptor{}, data: map[string]string{}, maxScanBytes: 1 << 20}
	for _, d := range descs {
		f.ranges[d.GetRangeId()] = d
	}
	return f
}

// splitRanges returns ranges 1..n+1 on store 1 ending at each key.
func splitRanges(keys ...string) []*flotillapb.RangeDescriptor {
	var out []*flotillapb.RangeDescriptor
	start := ""
	for i, k := range append(keys, "") {
		out = append(out, desc(uint64(i+1), start, k, 1, 1, 1))
		start = k
	}
	return out
}

func (f *fakeKV) infos() []RangeInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.infosLocked()
}

func (f *fakeKV) infosLocked() []RangeInfo {
	var out []RangeInfo
	for _, d := range f.ranges {
		out = append(out, RangeInfo{Desc: d.Clone()})
	}
	return out
}

func (f *fakeKV) put(kvs ...string) {
	for _, kv := range kvs {
		f.data[kv] = "v" + kv
	}
}

func (f *fakeKV) logged() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.log)
}

// check is the replica's check of an attempt: its range and version, and
// that its span lies inside the range.
func (f *fakeKV) check(tg Target, spans ...Span) (*flotillapb.RangeDescriptor, error) {
	if f.before != nil {
		if err := f.before(tg); err != nil {
			return nil, err
		}
	}
	d := f.ranges[tg.Header.GetRangeId()]
	if d == nil {
		return nil, rangeNotFound(tg.Header.GetRangeId())
	}
	if tg.Header.GetVersion() != d.GetEpoch().GetVersion() {
		return nil, epochNotMatch(d.Clone())
	}
	for _, s := range spans {
		in := s.Clip(d)
		if !bytes.Equal(in.Start, s.Start) || !bytes.Equal(in.End, s.End) {
			return nil, keyNotInRange(string(s.Start), d.Clone())
		}
	}
	return d, nil
}

func (f *fakeKV) sortedKeys(s Span) []string {
	var keys []string
	for k := range f.data {
		if k >= string(s.Start) && (len(s.End) == 0 || k < string(s.End)) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

func (f *fakeKV) scan(_ context.Context, tg Target, req *flotillapb.ScanRequest) (*flotillapb.ScanResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := Span{req.GetStartKey(), req.GetEndKey()}
	if _, err := f.check(tg, s); err != nil {
		return nil, err
	}
	f.log = append(f.log, fmt.Sprintf("scan %d [%s,%s) limit %d", tg.Header.GetRangeId(), s.Start, s.End, req.GetLimit()))
	keys := f.sortedKeys(s)
	if req.GetReverse() {
		slices.Reverse(keys)
	}
	resp := &flotillapb.ScanResponse{}
	size := 0
	for _, k := range keys {
		if req.GetLimit() > 0 && int64(len(resp.Kvs)) >= req.GetLimit() || size >= f.maxScanBytes {
			resp.More = true
			break
		}
		resp.Kvs = append(resp.Kvs, &flotillapb.KeyValue{Key: []byte(k), Value: []byte(f.data[k])})
		size += len(k) + len(f.data[k])
	}
	if resp.More {
		last := resp.Kvs[len(resp.Kvs)-1].Key
		resp.ResumeKey = append(bytes.Clone(last), 0)
		if req.GetReverse() {
			resp.ResumeKey = bytes.Clone(last)
		}
	}
	return resp, nil
}

func (f *fakeKV) deleteSpan(s Span) int64 {
	var n int64
	for _, k := range f.sortedKeys(s) {
		delete(f.data, k)
		n++
	}
	return n
}

func (f *fakeKV) deleteRange(_ context.Context, tg Target, req *flotillapb.DeleteRangeRequest) (*flotillapb.DeleteRangeResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := Span{req.GetStartKey(), req.GetEndKey()}
	if _, err := f.check(tg, s); err != nil {
		return nil, err
	}
	f.log = append(f.log, fmt.Sprintf("delete %d [%s,%s)", tg.Header.GetRangeId(), s.Start, s.End))
	return &flotillapb.DeleteRangeResponse{Deleted: f.deleteSpan(s)}, nil
}

func (f *fakeKV) batch(_ context.Context, tg Target, req *flotillapb.BatchRequest) (*flotillapb.BatchResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var spans []Span
	var names []string
	for _, op := range req.GetOps() {
		if dr := op.GetDeleteRange(); dr != nil {
			spans = append(spans, Span{dr.GetStartKey(), dr.GetEndKey()})
			names = append(names, fmt.Sprintf("delrange [%s,%s)", dr.GetStartKey(), dr.GetEndKey()))
			continue
		}
		k := op.RouteKey()
		spans = append(spans, Span{k, append(bytes.Clone(k), 0)})
		names = append(names, fmt.Sprintf("%T %s", op.GetOp(), k)[len("*flotillapb.Op_"):])
	}
	if _, err := f.check(tg, spans...); err != nil {
		return nil, err
	}
	f.log = append(f.log, fmt.Sprintf("batch %d: %s", tg.Header.GetRangeId(), strings.Join(names, ", ")))
	resp := &flotillapb.BatchResponse{}
	for _, op := range req.GetOps() {
		var r flotillapb.OpResult
		switch o := op.GetOp().(type) {
		case *flotillapb.Op_Put:
			f.data[string(o.Put.GetKey())] = string(o.Put.GetValue())
		case *flotillapb.Op_Delete:
			_, r.Found = f.data[string(o.Delete.GetKey())]
			delete(f.data, string(o.Delete.GetKey()))
		case *flotillapb.Op_DeleteRange:
			r.Deleted = f.deleteSpan(Span{o.DeleteRange.GetStartKey(), o.DeleteRange.GetEndKey()})
		case *flotillapb.Op_Cas:
			cur, ok := f.data[string(o.Cas.GetKey())]
			if ok != o.Cas.GetExpectAbsent() && (!ok || cur == string(o.Cas.GetExpected())) {
				f.data[string(o.Cas.GetKey())] = string(o.Cas.GetValue())
				r.Swapped = true
			} else {
				r.Found, r.Current = ok, []byte(cur)
			}
		}
		resp.Results = append(resp.Results, &r)
	}
	return resp, nil
}

// modelScan is what a scan of s must return, at most limit pairs (0: all).
func modelScan(data map[string]string, s Span, reverse bool, limit int) []string {
	var keys []string
	for k := range data {
		if k >= string(s.Start) && (len(s.End) == 0 || k < string(s.End)) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	if reverse {
		slices.Reverse(keys)
	}
	if limit > 0 && len(keys) > limit {
		keys = keys[:limit]
	}
	return keys
}

func keysOf(kvs []*flotillapb.KeyValue) []string {
	out := []string{}
	for _, kv := range kvs {
		out = append(out, string(kv.GetKey()))
	}
	return out
}

// spanTestRanges are six ranges, two of them empty, over keys in the
// others and at their bounds.
func spanTestKV(t *testing.T) *fakeKV {
	f := newFakeKV(t, splitRanges("b", "d", "f", "h", "j")...)
	f.put("a", "a1", "a2", "b", "b1", "b2", "c", "f", "f1", "g", "j", "j1", "x", "z")
	return f
}

// TestScanAcrossRanges pages through spans over six ranges (two empty)
// forward and in reverse with limits, and checks each page against the
// model and that the pages together return every key once, in order.
func TestScanAcrossRanges(t *testing.T) {
	spans := []Span{{}, {[]byte("a1"), []byte("j1")}, {[]byte("b"), []byte("h")}, {[]byte("c"), nil},
		{nil, []byte("b")}, {[]byte("d"), []byte("f")}, {[]byte("c1"), []byte("f")}, {[]byte("g"), []byte("g")}}
	for _, maxScanBytes := range []int{1 << 20, 5} {
		for _, reverse := range []bool{false, true} {
			for _, s := range spans {
				for _, limit := range []int{0, 1, 2, 3, 4, 100} {
					name := fmt.Sprintf("%v reverse=%v limit=%d serverbytes=%d", s, reverse, limit, maxScanBytes)
					f := spanTestKV(t)
					f.maxScanBytes = maxScanBytes
					r, _, _ := testRouter(t, newFakeResolver(f.infos()...))
					want := modelScan(f.data, s, reverse, 0)
					var got []string
					rest := s
					for page := 0; ; page++ {
						if page > len(want)+6 {
							t.Fatalf("%s: still paging after %d pages", name, page)
						}
						resp, err := Scan(context.Background(), r, &flotillapb.ScanRequest{
							StartKey: rest.Start, EndKey: rest.End, Reverse: reverse, Limit: int64(limit)}, 0, f.scan)
						if err != nil {
							t.Fatalf("%s: %v", name, err)
						}
						keys := keysOf(resp.GetKvs())
						if limit > 0 && len(keys) > limit {
							t.Fatalf("%s: page %d has %d pairs, over the limit", name, page, len(keys))
						}
						if maxScanBytes > 100 {
							// Without a size bound, a page is the next
							// limit's worth exactly (the last may be empty).
							if wantPage := modelScan(f.data, rest, reverse, limit); !slices.Equal(keys, wantPage) {
								t.Fatalf("%s: page %d = %v, want %v", name, page, keys, wantPage)
							}
						}
						got = append(got, keys...)
						if !resp.GetMore() {
							if len(resp.GetResumeKey()) != 0 {
								t.Fatalf("%s: a resume key without more", name)
							}
							break
						}
						rk := resp.GetResumeKey()
						if reverse {
							if bytes.Compare(rk, rest.Start) <= 0 || len(rest.End) > 0 && bytes.Compare(rk, rest.End) >= 0 {
								t.Fatalf("%s: resume key %q outside %v", name, rk, rest)
							}
							rest.End = rk
						} else {
							if bytes.Compare(rk, rest.Start) <= 0 || len(rest.End) > 0 && bytes.Compare(rk, rest.End) > 0 {
								t.Fatalf("%s: resume key %q outside %v", name, rk, rest)
							}
							rest.Start = rk
						}
					}
					if !slices.Equal(got, want) {
						t.Fatalf("%s: pages returned %v, want %v", name, got, want)
					}
				}
			}
		}
	}
}

// TestScanStopsAtLimitAndSize: a limit reached at a range boundary, and the
// response size bound, stop the scan with a resume key at the boundary; an
// empty span sends nothing; a negative limit and a reversed span are
// refused.
func TestScanStopsAtLimitAndSize(t *testing.T) {
	f := spanTestKV(t)
	r, _, _ := testRouter(t, newFakeResolver(f.infos()...))
	// [a1, a2] fills the limit exactly at the end of range 1.
	resp, err := Scan(context.Background(), r, &flotillapb.ScanRequest{StartKey: []byte("a1"), Limit: 2}, 0, f.scan)
	if err != nil || !resp.GetMore() || string(resp.GetResumeKey()) != "b" || !slices.Equal(keysOf(resp.GetKvs()), []string{"a1", "a2"}) {
		t.Fatalf("Scan = %v, %v; want a1 a2 and more at b", resp, err)
	}
	resp, err = Scan(context.Background(), r, &flotillapb.ScanRequest{EndKey: []byte("f1"), Reverse: true, Limit: 1}, 0, f.scan)
	if err != nil || !resp.GetMore() || string(resp.GetResumeKey()) != "f" || !slices.Equal(keysOf(resp.GetKvs()), []string{"f"}) {
		t.Fatalf("reverse Scan = %v, %v; want f and more below f", resp, err)
	}
	// The last part ends the span: no more, whatever the limit.
	resp, err = Scan(context.Background(), r, &flotillapb.ScanRequest{StartKey: []byte("j"), Limit: 4}, 0, f.scan)
	if err != nil || resp.GetMore() || len(resp.GetKvs()) != 4 {
		t.Fatalf("Scan = %v, %v; want all of the last range, no more", resp, err)
	}
	// A size bound of 1 byte: one range's part, then stop.
	n := len(f.logged())
	resp, err = Scan(context.Background(), r, &flotillapb.ScanRequest{}, 1, f.scan)
	if err != nil || !resp.GetMore() || string(resp.GetResumeKey()) != "b" || len(f.logged()) != n+1 {
		t.Fatalf("Scan with 1 byte = %v, %v after %d parts; want range 1 and more at b", resp, err, len(f.logged())-n)
	}
	// Empty: nothing sent.
	n = len(f.logged())
	if resp, err := Scan(context.Background(), r, &flotillapb.ScanRequest{StartKey: []byte("c"), EndKey: []byte("c")}, 0, f.scan); err != nil ||
		len(resp.GetKvs()) != 0 || resp.GetMore() || len(f.logged()) != n {
		t.Fatalf("empty Scan = %v, %v", resp, err)
	}
	for _, bad := range []*flotillapb.ScanRequest{{Limit: -1}, {StartKey: []byte("d"), EndKey: []byte("c")}} {
		_, err := Scan(context.Background(), r, bad, 0, f.scan)
		if fe := asFE(t, err); fe.GetInvalidArgument() == nil || len(f.logged()) != n {
			t.Fatalf("Scan(%v) = %v, want InvalidArgument with nothing sent", bad, err)
		}
	}
}

// TestSpanEpochNotMatchNarrows: the router caches one wide range; it split
// into three. Each part is clipped again to the narrowed range that the
// EpochNotMatch carries, and the scan, delete-range and batch go on through
// the new ranges, forward and in reverse.
func TestSpanEpochNotMatchNarrows(t *testing.T) {
	wide := desc(1, "", "", 1, 1, 1)
	split := []*flotillapb.RangeDescriptor{desc(1, "", "f", 2, 1, 1), desc(2, "f", "p", 1, 1, 1), desc(3, "p", "", 1, 1, 1)}
	setup := func(t *testing.T) (*fakeKV, *Router) {
		f := newFakeKV(t, split...)
		f.put("a", "e", "f", "g", "o", "p", "q", "z")
		res := newFakeResolver(RangeInfo{Desc: wide})
		r, _, _ := testRouter(t, res)
		// The placement driver learns of the split after the first attempt.
		f.before = func(Target) error { res.set(f.infosLocked()...); return nil }
		return f, r
	}
	t.Run("forward", func(t *testing.T) {
		f, r := setup(t)
		resp, err := Scan(context.Background(), r, &flotillapb.ScanRequest{StartKey: []byte("b"), EndKey: []byte("y")}, 0, f.scan)
		if err != nil || !slices.Equal(keysOf(resp.GetKvs()), []string{"e", "f", "g", "o", "p", "q"}) || resp.GetMore() {
			t.Fatalf("Scan = %v, %v", resp, err)
		}
		if got := f.logged(); !slices.Equal(got, []string{"scan 1 [b,f) limit 0", "scan 2 [f,p) limit 0", "scan 3 [p,y) limit 0"}) {
			t.Fatalf("parts served %q", got)
		}
	})
	t.Run("reverse", func(t *testing.T) {
		f, r := setup(t)
		resp, err := Scan(context.Background(), r, &flotillapb.ScanRequest{StartKey: []byte("b"), EndKey: []byte("y"), Reverse: true, Limit: 5}, 0, f.scan)
		if err != nil || !slices.Equal(keysOf(resp.GetKvs()), []string{"q", "p", "o", "g", "f"}) || !resp.GetMore() || string(resp.GetResumeKey()) != "f" {
			t.Fatalf("Scan = %v, %v", resp, err)
		}
		if got := f.logged(); !slices.Equal(got, []string{"scan 3 [p,y) limit 5", "scan 2 [f,p) limit 3"}) {
			t.Fatalf("parts served %q", got)
		}
	})
	t.Run("delete-range", func(t *testing.T) {
		f, r := setup(t)
		resp, err := DeleteRange(context.Background(), r, &flotillapb.DeleteRangeRequest{StartKey: []byte("e"), EndKey: []byte("q")}, f.deleteRange)
		if err != nil || resp.GetDeleted() != 5 {
			t.Fatalf("DeleteRange = %v, %v; want 5 deleted", resp, err)
		}
		if got := f.logged(); !slices.Equal(got, []string{"delete 1 [e,f)", "delete 2 [f,p)", "delete 3 [p,q)"}) {
			t.Fatalf("parts served %q", got)
		}
		if got := modelScan(f.data, Span{}, false, 0); !slices.Equal(got, []string{"a", "q", "z"}) {
			t.Fatalf("left %v", got)
		}
	})
	t.Run("batch", func(t *testing.T) {
		f, r := setup(t)
		resp, err := Batch(context.Background(), r, &flotillapb.BatchRequest{Ops: []*flotillapb.Op{
			putOp("b", "1"), deleteRangeOp("e", "q"), putOp("x", "2"), putOp("g", "3")}}, f.batch)
		if err != nil || len(resp.GetResults()) != 4 || resp.GetResults()[1].GetDeleted() != 5 {
			t.Fatalf("Batch = %v, %v", resp, err)
		}
		if got := f.logged(); !slices.Equal(got, []string{
			"batch 1: Put b, delrange [e,f)",
			"batch 2: delrange [f,p), Put g",
			"batch 3: delrange [p,q), Put x",
		}) {
			t.Fatalf("parts served %q", got)
		}
		if got := modelScan(f.data, Span{}, false, 0); !slices.Equal(got, []string{"a", "b", "g", "q", "x", "z"}) {
			t.Fatalf("left %v", got)
		}
	})
}

func putOp(k, v string) *flotillapb.Op {
	return &flotillapb.Op{Op: &flotillapb.Op_Put{Put: &flotillapb.PutOp{Key: []byte(k), Value: []byte(v)}}}
}

func deleteOp(k string) *flotillapb.Op {
	return &flotillapb.Op{Op: &flotillapb.Op_Delete{Delete: &flotillapb.DeleteOp{Key: []byte(k)}}}
}

func deleteRangeOp(start, end string) *flotillapb.Op {
	dr := &flotillapb.DeleteRangeOp{}
	if start != "" {
		dr.StartKey = []byte(start)
	}
	if end != "" {
		dr.EndKey = []byte(end)
	}
	return &flotillapb.Op{Op: &flotillapb.Op_DeleteRange{DeleteRange: dr}}
}

func casOp(k, expected, v string) *flotillapb.Op {
	return &flotillapb.Op{Op: &flotillapb.Op_Cas{Cas: &flotillapb.CompareAndSwapOp{Key: []byte(k), Expected: []byte(expected), Value: []byte(v)}}}
}

// TestBatchAcrossRanges: ops grouped by range in their order, a
// delete-range across ranges cut per range with its counts summed, results
// at the ops' indexes, the range with the largest value first, and a batch
// inside one range sent as one request.
func TestBatchAcrossRanges(t *testing.T) {
	f := spanTestKV(t)
	r, _, _ := testRouter(t, newFakeResolver(f.infos()...))
	ops := []*flotillapb.Op{
		putOp("k", "1"),             // range 6
		deleteOp("a1"),              // range 1
		deleteRangeOp("a2", "g"),    // ranges 1-4: a2 b b1 b2 c f f1 (7)
		casOp("c", "vc", "big-one"), // range 2, the largest value: first
		putOp("a1", "2"),            // range 1, after the delete of a1
		deleteOp("nope"),            // range 6
		putOp("e", "3"),             // range 3, empty before
	}
	resp, err := Batch(context.Background(), r, &flotillapb.BatchRequest{Ops: ops}, f.batch)
	if err != nil {
		t.Fatal(err)
	}
	// The largest value's range first, then by the first op left.
	if got := f.logged(); !slices.Equal(got, []string{
		"batch 2: delrange [b,d), Cas c",
		"batch 6: Put k, Delete nope",
		"batch 1: Delete a1, delrange [a2,b), Put a1",
		"batch 3: delrange [d,f), Put e",
		"batch 4: delrange [f,g)",
	}) {
		t.Fatalf("parts served %q", got)
	}
	res := resp.GetResults()
	if len(res) != len(ops) || !res[1].GetFound() || res[2].GetDeleted() != 7 || res[3].GetSwapped() || res[3].GetFound() || res[5].GetFound() {
		t.Fatalf("results %v", res)
	}
	// c was deleted by the delete-range before the cas in range 2's batch.
	if got := modelScan(f.data, Span{}, false, 0); !slices.Equal(got, []string{"a", "a1", "e", "g", "j", "j1", "k", "x", "z"}) {
		t.Fatalf("left %v", got)
	}

	// One range: one request, the ops as given.
	n := len(f.logged())
	resp, err = Batch(context.Background(), r, &flotillapb.BatchRequest{Ops: []*flotillapb.Op{putOp("b3", "x"), deleteRangeOp("b", "b2"), casOp("c", "", "y")}}, f.batch)
	if err != nil || len(resp.GetResults()) != 3 || len(f.logged()) != n+1 {
		t.Fatalf("single-range Batch = %v, %v after %d requests", resp, err, len(f.logged())-n)
	}
	if got := f.logged()[n]; got != "batch 2: Put b3, delrange [b,b2), Cas c" {
		t.Fatalf("single-range batch sent as %q", got)
	}
}

// TestSpanWriteOutcomes: a part that fails after others were applied makes
// the outcome UNKNOWN; a first part that fails leaves it NOT_APPLIED; a
// part whose outcome is unknown, of a delete-range or a batch, is not sent
// again.
func TestSpanWriteOutcomes(t *testing.T) {
	failOn := func(f *fakeKV, rangeID uint64, errs ...error) {
		f.before = func(tg Target) error {
			if tg.Header.GetRangeId() != rangeID || len(errs) == 0 {
				return nil
			}
			err := errs[0]
			errs = errs[1:]
			return err
		}
	}
	bad := invalidArgument()
	t.Run("delete-range later part fails", func(t *testing.T) {
		f := spanTestKV(t)
		r, _, _ := testRouter(t, newFakeResolver(f.infos()...))
		failOn(f, 3, bad)
		_, err := DeleteRange(context.Background(), r, &flotillapb.DeleteRangeRequest{StartKey: []byte("a"), EndKey: []byte("z")}, f.deleteRange)
		if fe := asFE(t, err); fe.GetOutcome() != flotillapb.Outcome_UNKNOWN || fe.GetInvalidArgument() == nil {
			t.Fatalf("DeleteRange = %v, want InvalidArgument with an unknown outcome", err)
		}
	})
	t.Run("delete-range first part fails", func(t *testing.T) {
		f := spanTestKV(t)
		r, _, _ := testRouter(t, newFakeResolver(f.infos()...))
		failOn(f, 1, bad)
		_, err := DeleteRange(context.Background(), r, &flotillapb.DeleteRangeRequest{StartKey: []byte("a"), EndKey: []byte("z")}, f.deleteRange)
		if fe := asFE(t, err); fe.GetOutcome() != flotillapb.Outcome_NOT_APPLIED || len(f.logged()) != 0 {
			t.Fatalf("DeleteRange = %v after %v, want not applied", err, f.logged())
		}
	})
	t.Run("delete-range part with unknown outcome", func(t *testing.T) {
		f := spanTestKV(t)
		r, _, _ := testRouter(t, newFakeResolver(f.infos()...))
		failOn(f, 2, unavailable(flotillapb.Outcome_UNKNOWN))
		_, err := DeleteRange(context.Background(), r, &flotillapb.DeleteRangeRequest{StartKey: []byte("a"), EndKey: []byte("z")}, f.deleteRange)
		if fe := asFE(t, err); fe.GetOutcome() != flotillapb.Outcome_UNKNOWN {
			t.Fatalf("DeleteRange = %v, want an unknown outcome", err)
		}
		if got := f.logged(); !slices.Equal(got, []string{"delete 1 [a,b)"}) {
			t.Fatalf("parts served %q: the part with the unknown outcome was sent again, or went on", got)
		}
	})
	t.Run("batch part with unknown outcome", func(t *testing.T) {
		f := spanTestKV(t)
		r, _, _ := testRouter(t, newFakeResolver(f.infos()...))
		failOn(f, 6, unavailable(flotillapb.Outcome_UNKNOWN))
		_, err := Batch(context.Background(), r, &flotillapb.BatchRequest{Ops: []*flotillapb.Op{putOp("a", "1"), putOp("k", "2"), putOp("c", "3")}}, f.batch)
		if fe := asFE(t, err); fe.GetOutcome() != flotillapb.Outcome_UNKNOWN {
			t.Fatalf("Batch = %v, want an unknown outcome", err)
		}
		if got := f.logged(); !slices.Equal(got, []string{"batch 1: Put a"}) {
			t.Fatalf("parts served %q: the part with the unknown outcome was sent again, or went on", got)
		}
	})
	t.Run("batch first part refused", func(t *testing.T) {
		f := spanTestKV(t)
		r, _, _ := testRouter(t, newFakeResolver(f.infos()...))
		// The server refuses the large value: the part holding it goes
		// first, so nothing is applied.
		failOn(f, 6, bad)
		_, err := Batch(context.Background(), r, &flotillapb.BatchRequest{Ops: []*flotillapb.Op{putOp("a", "1"), putOp("k", "a large value"), putOp("c", "3")}}, f.batch)
		if fe := asFE(t, err); fe.GetOutcome() != flotillapb.Outcome_NOT_APPLIED || fe.GetInvalidArgument() == nil || len(f.logged()) != 0 {
			t.Fatalf("Batch = %v after %v, want InvalidArgument, not applied, nothing served", err, f.logged())
		}
	})
	t.Run("reversed spans", func(t *testing.T) {
		f := spanTestKV(t)
		r, _, _ := testRouter(t, newFakeResolver(f.infos()...))
		_, err := DeleteRange(context.Background(), r, &flotillapb.DeleteRangeRequest{StartKey: []byte("z"), EndKey: []byte("a")}, f.deleteRange)
		if fe := asFE(t, err); fe.GetInvalidArgument() == nil || fe.GetOutcome() != flotillapb.Outcome_NOT_APPLIED {
			t.Fatalf("DeleteRange = %v", err)
		}
		_, err = Batch(context.Background(), r, &flotillapb.BatchRequest{Ops: []*flotillapb.Op{putOp("a", "1"), deleteRangeOp("z", "a")}}, f.batch)
		if fe := asFE(t, err); fe.GetInvalidArgument() == nil || fe.GetOutcome() != flotillapb.Outcome_NOT_APPLIED || len(f.logged()) != 0 {
			t.Fatalf("Batch = %v", err)
		}
	})
}

// TestSpanMetrics counts span requests, those over many ranges, and parts.
func TestSpanMetrics(t *testing.T) {
	f := spanTestKV(t)
	r, _, _ := testRouter(t, newFakeResolver(f.infos()...))
	if _, err := Scan(context.Background(), r, &flotillapb.ScanRequest{StartKey: []byte("a"), EndKey: []byte("e")}, 0, f.scan); err != nil {
		t.Fatal(err)
	}
	if _, err := Scan(context.Background(), r, &flotillapb.ScanRequest{StartKey: []byte("a"), EndKey: []byte("a2")}, 0, f.scan); err != nil {
		t.Fatal(err)
	}
	if got := []uint64{r.metrics.spanRequests.Get(), r.metrics.spanMultiRange.Get(), r.metrics.spanParts.Get()}; !slices.Equal(got, []uint64{2, 1, 4}) {
		t.Fatalf("span requests, multi-range, parts = %v, want [2 1 4]", got)
	}
}
