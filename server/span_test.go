// Copyright 2026 The Flotilla Authors. All rights reserved.

package server_test

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flotilladb/flotilla"
	"github.com/flotilladb/flotilla/server"
)

var spanSeed = flag.Uint64("span.seed", 0, "seed of TestSpansRandomized (0: time-based)")

// spanSplitKeys pre-split the keyspace into nine ranges.
var spanSplitKeys = []string{"b", "d", "f", "h", "j", "l", "n", "p"}

// spanCluster is three nodes whose keyspace starts as nine ranges, and
// the two ways in: a client of all three nodes, and the third node's
// gateway (an embedded node's KV).
type spanCluster struct {
	nodes   []*server.Node
	client  *flotilla.Client
	gateway *server.Node
}

func startSpanCluster(t *testing.T, ctx context.Context) *spanCluster {
	t.Helper()
	// Fast placement timings: the ranges, which start on the first node
	// alone, gain replicas on the others, and their leaders spread, while
	// the tests run.
	n1 := openNode(t, placementConfig(t.TempDir()))
	c := &spanCluster{nodes: []*server.Node{n1}}
	for range 2 {
		c.nodes = append(c.nodes, openNode(t, placementConfig(t.TempDir(), n1.Addr())))
	}
	var keys [][]byte
	for _, k := range spanSplitKeys {
		keys = append(keys, []byte(k))
	}
	if _, err := n1.Init(ctx, keys...); err != nil {
		t.Fatal(err)
	}
	for _, n := range c.nodes {
		if err := n.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
	}
	cl, err := flotilla.Connect(ctx, n1.Addr(), c.nodes[1].Addr(), c.nodes[2].Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cl.Close() })
	c.client, c.gateway = cl, c.nodes[2]
	return c
}

// ways are the two paths a request takes, by name.
func (c *spanCluster) ways() []struct {
	name string
	kv   flotilla.KV
} {
	return []struct {
		name string
		kv   flotilla.KV
	}{{"client", c.client}, {"gateway", c.gateway}}
}

// spanModel is what the cluster should hold.
type spanModel map[string]string

func (m spanModel) scan(start, end string, reverse bool, limit int) []string {
	var out []string
	for k := range m {
		if k >= start && (end == "" || k < end) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	if reverse {
		slices.Reverse(out)
	}
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out
}

func (m spanModel) deleteRange(start, end string) int64 {
	keys := m.scan(start, end, false, 0)
	for _, k := range keys {
		delete(m, k)
	}
	return int64(len(keys))
}

func bs(s string) []byte {
	if s == "" {
		return nil
	}
	return []byte(s)
}

// checkScan compares a scan, and a paged scan, of [start, end) with the
// model: the same keys, each once, in order, with their values.
func checkScan(ctx context.Context, kv flotilla.KV, m spanModel, start, end string, reverse bool, limit int) error {
	want := m.scan(start, end, reverse, limit)
	got, err := kv.Scan(ctx, bs(start), bs(end), flotilla.ScanOptions{Limit: limit, Reverse: reverse})
	if err != nil {
		return fmt.Errorf("scan [%q, %q) reverse %v limit %d: %w", start, end, reverse, limit, err)
	}
	if err := sameKVs(got, want, m); err != nil {
		return fmt.Errorf("scan [%q, %q) reverse %v limit %d: %w", start, end, reverse, limit, err)
	}
	if limit == 0 {
		return nil
	}
	// Page through the whole span, limit pairs a page.
	var paged []flotilla.KeyValue
	s, e := bs(start), bs(end)
	for page := 0; ; page++ {
		if page > len(m)+1 {
			return fmt.Errorf("paging [%q, %q): still going after %d pages", start, end, page)
		}
		kvs, resume, err := kv.ScanPage(ctx, s, e, flotilla.ScanOptions{Limit: limit, Reverse: reverse})
		if err != nil {
			return fmt.Errorf("page %d of [%q, %q): %w", page, start, end, err)
		}
		if len(kvs) > limit {
			return fmt.Errorf("page %d of [%q, %q): %d pairs, over the limit %d", page, start, end, len(kvs), limit)
		}
		paged = append(paged, kvs...)
		if resume == nil {
			break
		}
		if reverse {
			e = resume
		} else {
			s = resume
		}
	}
	if err := sameKVs(paged, m.scan(start, end, reverse, 0), m); err != nil {
		return fmt.Errorf("paged scan [%q, %q) reverse %v by %d: %w", start, end, reverse, limit, err)
	}
	return nil
}

func sameKVs(got []flotilla.KeyValue, want []string, m spanModel) error {
	keys := make([]string, len(got))
	for i, kv := range got {
		keys[i] = string(kv.Key)
		if v, ok := m[keys[i]]; !ok || v != string(kv.Value) {
			return fmt.Errorf("pair %q = %q, the model has %q (%v)", kv.Key, kv.Value, v, ok)
		}
	}
	if !slices.Equal(keys, want) {
		return fmt.Errorf("got %d keys %q, want %d %q", len(keys), keys, len(want), want)
	}
	return nil
}

// checkAll compares the whole keyspace, through kv, with the model.
func checkAll(ctx context.Context, kv flotilla.KV, m spanModel) error {
	return checkScan(ctx, kv, m, "", "", false, 0)
}

// spanMetric returns a counter of a node's /metrics.
func spanMetric(t *testing.T, n *server.Node, name string) float64 {
	t.Helper()
	// No keep-alive: no idle connection outlives the test (goleak).
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := hc.Get("http://" + n.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	return 0
}

// TestSpansAcrossRanges: scans forward and in reverse, with and without
// limits and paged, delete-ranges and batches across nine ranges (some
// empty), through the client and through a node's gateway, match a model
// exactly; bad input changes nothing; a batch inside one range is one
// request.
func TestSpansAcrossRanges(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := startSpanCluster(t, ctx)
	m := spanModel{}
	// Ranges [d, f), [h, j) and [n, p) stay empty.
	var ops []flotilla.Op
	for _, k := range []string{"a", "a1", "a2", "b", "b1", "c", "c9", "f", "f1", "g", "j", "j1", "k", "l", "l5", "m", "p", "q", "z", "zz"} {
		m[k] = "v" + k
		ops = append(ops, flotilla.PutOp([]byte(k), []byte("v"+k)))
	}
	// The first write, a batch over seven ranges.
	if _, err := c.client.Batch(ctx, ops...); err != nil {
		t.Fatal(err)
	}

	t.Run("scan", func(t *testing.T) {
		spans := [][2]string{{"", ""}, {"a1", "q"}, {"b", "p"}, {"c", ""}, {"", "b"}, {"d", "f"}, {"c5", "j"}, {"e", "o"}, {"l5", "l5"}}
		for _, w := range c.ways() {
			for _, s := range spans {
				for _, reverse := range []bool{false, true} {
					for _, limit := range []int{0, 1, 3, 7} {
						if err := checkScan(ctx, w.kv, m, s[0], s[1], reverse, limit); err != nil {
							t.Fatalf("%s: %v", w.name, err)
						}
					}
				}
			}
		}
	})

	t.Run("bad input", func(t *testing.T) {
		big := bytes.Repeat([]byte("k"), flotilla.MaxKeySize+1)
		for _, w := range c.ways() {
			for name, err := range map[string]error{
				"scan end before start": func() error { _, err := w.kv.Scan(ctx, []byte("q"), []byte("c"), flotilla.ScanOptions{}); return err }(),
				"scan negative limit":   func() error { _, err := w.kv.Scan(ctx, nil, nil, flotilla.ScanOptions{Limit: -1}); return err }(),
				"page negative limit": func() error {
					_, _, err := w.kv.ScanPage(ctx, nil, nil, flotilla.ScanOptions{Limit: -1})
					return err
				}(),
				"scan oversized end": func() error { _, err := w.kv.Scan(ctx, []byte("a"), big, flotilla.ScanOptions{}); return err }(),
				"delete-range end before start": func() error {
					_, err := w.kv.DeleteRange(ctx, []byte("q"), []byte("c"))
					return err
				}(),
				"delete-range oversized start": func() error { _, err := w.kv.DeleteRange(ctx, big, nil); return err }(),
				"batch oversized key": func() error {
					_, err := w.kv.Batch(ctx, flotilla.DeleteOp([]byte("a")), flotilla.PutOp(big, []byte("x")))
					return err
				}(),
				"batch empty key": func() error {
					_, err := w.kv.Batch(ctx, flotilla.DeleteOp([]byte("a")), flotilla.DeleteOp([]byte("z")), flotilla.PutOp(nil, []byte("x")))
					return err
				}(),
				"batch reversed delete-range": func() error {
					_, err := w.kv.Batch(ctx, flotilla.DeleteOp([]byte("a")), flotilla.DeleteRangeOp([]byte("z"), []byte("b")))
					return err
				}(),
				"batch empty": func() error { _, err := w.kv.Batch(ctx); return err }(),
			} {
				if !errors.Is(err, flotilla.ErrInvalidArgument) {
					t.Errorf("%s: %s: %v, want InvalidArgument", w.name, name, err)
				}
			}
		}
		// The gateway knows the value limit: a batch with a value over it
		// is refused before any part is sent.
		_, err := c.gateway.Batch(ctx, flotilla.DeleteOp([]byte("a")), flotilla.PutOp([]byte("z"), make([]byte, flotilla.DefaultMaxValueSize+1)))
		if !errors.Is(err, flotilla.ErrInvalidArgument) || !flotilla.NotApplied(err) {
			t.Errorf("gateway: batch with an oversized value: %v, want InvalidArgument, not applied", err)
		}
		if err := checkAll(ctx, c.client, m); err != nil {
			t.Fatalf("bad input changed the data: %v", err)
		}
	})

	t.Run("delete-range", func(t *testing.T) {
		for _, tc := range []struct{ way, start, end string }{
			{"client", "a2", "c5"},    // two ranges
			{"gateway", "f1", "l"},    // four ranges, two empty
			{"client", "c9", "c9"},    // empty span
			{"gateway", "zz", ""},     // to the end of the keyspace
			{"client", "", "a1"},      // from its start
			{"gateway", "l", "q\x00"}, // ends inside a range
		} {
			kv := flotilla.KV(c.client)
			if tc.way == "gateway" {
				kv = c.gateway
			}
			want := m.deleteRange(tc.start, tc.end)
			got, err := kv.DeleteRange(ctx, bs(tc.start), bs(tc.end))
			if err != nil || got != want {
				t.Fatalf("%s: DeleteRange [%q, %q) = %d, %v; want %d", tc.way, tc.start, tc.end, got, err, want)
			}
			if err := checkAll(ctx, c.client, m); err != nil {
				t.Fatalf("after %s DeleteRange [%q, %q): %v", tc.way, tc.start, tc.end, err)
			}
		}
	})

	t.Run("batch", func(t *testing.T) {
		for _, w := range c.ways() {
			p := w.name + "-"
			m[p+"x"] = "old"
			if err := w.kv.Put(ctx, []byte(p+"x"), []byte("old")); err != nil {
				t.Fatal(err)
			}
			// Over six ranges. p+"x" lies in [b, k): the delete-range
			// removes it before the compare-and-swap, which comes after it
			// in the same range's part, fails.
			results, err := w.kv.Batch(ctx,
				flotilla.PutOp([]byte("a-"+p), []byte("1")),
				flotilla.DeleteRangeOp([]byte("b"), []byte("k")),
				flotilla.CompareAndSwapOp([]byte(p+"x"), flotilla.ExpectValue([]byte("old")), []byte("new")),
				flotilla.PutOp([]byte("e-"+p), []byte("2")),
				flotilla.DeleteOp([]byte("z")),
				flotilla.PutOp([]byte("z-"+p), []byte("3")),
			)
			if err != nil {
				t.Fatalf("%s: %v", w.name, err)
			}
			wantDeleted := m.deleteRange("b", "k")
			m["a-"+p], m["e-"+p], m["z-"+p] = "1", "2", "3"
			_, zFound := m["z"]
			delete(m, "z")
			if len(results) != 6 || results[1].Deleted != wantDeleted || results[2].Swapped || results[2].Found || results[4].Found != zFound {
				t.Fatalf("%s: results %+v; want %d deleted, a failed swap of an absent key, found %v", w.name, results, wantDeleted, zFound)
			}
			if err := checkAll(ctx, c.client, m); err != nil {
				t.Fatalf("after the %s's batch: %v", w.name, err)
			}
		}
		// A batch inside one range is one request: the gateway's router
		// splits nothing.
		const spanRequests = "flotilla_router_span_requests_total"
		before := spanMetric(t, c.gateway, spanRequests)
		if _, err := c.gateway.Batch(ctx, flotilla.PutOp([]byte("j2"), []byte("x")), flotilla.DeleteRangeOp([]byte("j3"), []byte("j9")), flotilla.PutOp([]byte("j1"), []byte("y"))); err != nil {
			t.Fatal(err)
		}
		m["j2"], m["j1"] = "x", "y"
		m.deleteRange("j3", "j9")
		if after := spanMetric(t, c.gateway, spanRequests); after != before {
			t.Fatalf("a batch inside one range went through the span splitter (%v -> %v)", before, after)
		}
		if _, err := c.gateway.Batch(ctx, flotilla.PutOp([]byte("j2"), []byte("x")), flotilla.PutOp([]byte("z0"), []byte("y"))); err != nil {
			t.Fatal(err)
		}
		m["z0"] = "y"
		if after := spanMetric(t, c.gateway, spanRequests); after != before+1 {
			t.Fatalf("a batch over two ranges: span requests %v -> %v, want one more", before, after)
		}
		if err := checkAll(ctx, c.gateway, m); err != nil {
			t.Fatal(err)
		}
	})
}

// TestSpansRandomized runs random puts, deletes, delete-ranges, batches
// and scans (paged, forward and reverse) over nine ranges, alternately
// through the client and a node's gateway, against a model map.
func TestSpansRandomized(t *testing.T) {
	seed := *spanSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -run '^TestSpansRandomized$' -span.seed=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, 0x5ca1ab1e))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := startSpanCluster(t, ctx)
	m := spanModel{}
	key := func() string { return string(rune('a'+rng.IntN(26))) + strconv.Itoa(rng.IntN(20)) }
	span := func() (string, string) {
		a, b := key(), key()
		if a > b {
			a, b = b, a
		}
		switch rng.IntN(8) {
		case 0:
			a = ""
		case 1:
			b = ""
		}
		return a, b
	}
	ways := c.ways()
	// At least minOps, and on until every node leads a range (the ranges
	// start on the first node alone): the requests run while replicas are
	// added and leaders move.
	const minOps = 300
	spreadBy := time.Now().Add(20 * time.Second)
	spread := false
	i := 0
	for ; i < minOps || !spread && time.Now().Before(spreadBy); i++ {
		if i%20 == 0 && !spread {
			spread = c.leadersSpread()
		}
		w := ways[i%2]
		switch p := rng.IntN(10); {
		case p < 3:
			k, v := key(), strconv.Itoa(i)
			if err := w.kv.Put(ctx, []byte(k), []byte(v)); err != nil {
				t.Fatalf("op %d (%s): put %s: %v", i, w.name, k, err)
			}
			m[k] = v
		case p < 4:
			a, b := span()
			want := m.deleteRange(a, b)
			if got, err := w.kv.DeleteRange(ctx, bs(a), bs(b)); err != nil || got != want {
				t.Fatalf("op %d (%s): delete-range [%q, %q) = %d, %v; want %d", i, w.name, a, b, got, err, want)
			}
		case p < 6:
			var bops []flotilla.Op
			var descs []string
			after := maps.Clone(spanModel(m))
			var want []flotilla.OpResult
			for range 1 + rng.IntN(6) {
				k := key()
				switch rng.IntN(4) {
				case 0:
					_, found := after[k]
					delete(after, k)
					descs = append(descs, "delete "+k)
					bops = append(bops, flotilla.DeleteOp([]byte(k)))
					want = append(want, flotilla.OpResult{Found: found})
				case 1:
					a, b := span()
					descs = append(descs, fmt.Sprintf("delete-range [%q, %q)", a, b))
					bops = append(bops, flotilla.DeleteRangeOp(bs(a), bs(b)))
					want = append(want, flotilla.OpResult{Deleted: after.deleteRange(a, b)})
				default:
					v := fmt.Sprintf("%d.%d", i, len(bops))
					after[k] = v
					descs = append(descs, "put "+k)
					bops = append(bops, flotilla.PutOp([]byte(k), []byte(v)))
					want = append(want, flotilla.OpResult{})
				}
			}
			got, err := w.kv.Batch(ctx, bops...)
			if err != nil {
				t.Fatalf("op %d (%s): batch: %v", i, w.name, err)
			}
			for j := range want {
				if got[j].Found != want[j].Found || got[j].Deleted != want[j].Deleted {
					t.Fatalf("op %d (%s): batch %s: result %d = %+v, want %+v", i, w.name, descs, j, got[j], want[j])
				}
			}
			m = after
		default:
			a, b := span()
			if err := checkScan(ctx, w.kv, m, a, b, rng.IntN(2) == 0, []int{0, 1, 4, 25}[rng.IntN(4)]); err != nil {
				t.Fatalf("op %d (%s): %v", i, w.name, err)
			}
		}
	}
	for _, w := range ways {
		if err := checkAll(ctx, w.kv, m); err != nil {
			t.Fatalf("at the end (%s): %v", w.name, err)
		}
	}
	g := c.gateway
	t.Logf("%d ops; leaders spread: %v; the gateway's router split %v requests into %v parts; its node served %v attempts and forwarded %v",
		i, spread, spanMetric(t, g, "flotilla_router_span_multi_range_total"), spanMetric(t, g, "flotilla_router_span_parts_total"),
		spanMetric(t, g, gatewayLocal), spanMetric(t, g, gatewayRouted))
}

// leadersSpread reports whether every node leads a range.
func (c *spanCluster) leadersSpread() bool {
	for _, n := range c.nodes {
		leads := false
		for _, r := range n.Status(false).GetReplicas() {
			if r.GetKind() == "range" && r.GetReplicaId() != 0 && r.GetLeaderReplicaId() == r.GetReplicaId() {
				leads = true
			}
		}
		if !leads {
			return false
		}
	}
	return true
}
