// Copyright 2026 The Flotilla Authors. All rights reserved.

package server_test

// The harness of the revision tests (docs/REVISIONS.md, "What the tests
// must show"; TESTING.md scenarios 19 and 20): the linearizability tests'
// cluster (lzCluster) driven through the wire API, so that every response's
// revision and every key's create/mod revision and version reach the
// history, recorded with internal/revcheck.

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flotilladb/flotilla/internal/revcheck"
	"github.com/flotilladb/flotilla/internal/testutil"
	"github.com/flotilladb/flotilla/rpc"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"github.com/flotilladb/flotilla/server"
)

var lzSoak = flag.Duration("lz.soak", 0,
	"run the workload of each revision test (TestLinearizableRevisionsUnderFaults, TestRevisionRealTimeOrderAcrossRanges, TestBankRevisions) this long instead of its short default: a soak run")

// rvDuration returns the workload duration of a revision test: short
// unless -lz.soak asks for longer.
func rvDuration(short time.Duration) time.Duration {
	if *lzSoak > short {
		return *lzSoak
	}
	return short
}

// rvCluster is an lzCluster with a pool of gRPC connections to its nodes
// for the test's clients.
type rvCluster struct {
	*lzCluster
	pool *rpc.Pool

	errMu sync.Mutex
	errs  map[string]int // by message
}

// startRVCluster starts an lzCluster whose placement driver sees changes
// quickly (splits, transfers) and never splits by load, then splits the
// keyspace at splitKeys.
func startRVCluster(t *testing.T, knobs *server.TestingKnobs, splitKeys []string, configure ...func(*server.Config)) *rvCluster {
	t.Helper()
	configure = append([]func(*server.Config){func(cfg *server.Config) {
		cfg.HeartbeatInterval = 100 * time.Millisecond
		cfg.LivenessWindow = time.Second
		cfg.SplitQPS = -1
	}}, configure...)
	c := &rvCluster{lzCluster: startLZCluster(t, knobs, configure...), pool: rpc.NewPool(rpc.PoolConfig{})}
	// Cleanups run last-registered first: the pool closes before the nodes.
	t.Cleanup(func() { _ = c.pool.Close() })
	waitPlacementVoters(t, c.lzCluster)
	c.split(t, splitKeys...)
	return c
}

// placementClient returns a Placement client of a running node (tried in
// rng's order), nil if none runs.
func (c *rvCluster) placementClient(rng *rand.Rand) flotillapb.PlacementClient {
	for _, i := range rng.Perm(lzNodes) {
		if c.node(i) == nil {
			continue
		}
		if conn, err := c.pool.Conn(c.addrs[i]); err == nil {
			return flotillapb.NewPlacementClient(conn)
		}
	}
	return nil
}

// ranges returns the ranges the placement driver knows.
func (c *rvCluster) ranges(ctx context.Context, rng *rand.Rand) ([]*flotillapb.RangeStatus, error) {
	pc := c.placementClient(rng)
	if pc == nil {
		return nil, errors.New("no node runs")
	}
	resp, err := pc.ListRanges(ctx, &flotillapb.ListRangesRequest{})
	if err != nil {
		return nil, err
	}
	return resp.GetRanges(), nil
}

// split splits the keyspace at every key and waits until each starts a
// range (a split is an operator the placement driver runs after
// answering).
func (c *rvCluster) split(t *testing.T, keys ...string) {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	testutil.SucceedsSoon(t, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		rs, err := c.ranges(ctx, rng)
		if err != nil {
			return err
		}
		starts := map[string]bool{}
		for _, r := range rs {
			starts[string(r.GetDescriptor_().GetStartKey())] = true
		}
		var missing []string
		for _, k := range keys {
			if !starts[k] {
				missing = append(missing, k)
				if pc := c.placementClient(rng); pc != nil {
					_, _ = pc.SplitRange(ctx, &flotillapb.SplitRangeRequest{Key: []byte(k)})
				}
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("no range starts at %q yet", missing)
		}
		return nil
	})
}

// transferSomeLeader moves a random range's leadership to another of its
// voters, and reports what it did ("" if nothing).
func (c *rvCluster) transferSomeLeader(ctx context.Context, rng *rand.Rand) string {
	pc := c.placementClient(rng)
	if pc == nil {
		return ""
	}
	resp, err := pc.ListRanges(ctx, &flotillapb.ListRangesRequest{})
	if err != nil || len(resp.GetRanges()) == 0 {
		return ""
	}
	r := resp.GetRanges()[rng.IntN(len(resp.GetRanges()))]
	for _, rep := range r.GetDescriptor_().GetReplicas() {
		if rep.GetStoreId() != r.GetLeader().GetStoreId() && rep.GetType() == flotillapb.ReplicaType_VOTER {
			if _, err := pc.TransferLeader(ctx, &flotillapb.TransferLeaderRequest{RangeId: r.GetDescriptor_().GetRangeId(), StoreId: rep.GetStoreId()}); err != nil {
				return ""
			}
			return fmt.Sprintf("range %d's leadership to store %d", r.GetDescriptor_().GetRangeId(), rep.GetStoreId())
		}
	}
	return ""
}

// ---- recorded clients ----

// rvClient runs one op at a time against the cluster's nodes through
// their gateways, over gRPC, and records each op with its revisions. It
// sends to one node at a time (nodes[at]) and moves on to the next after
// an error.
type rvClient struct {
	id      int
	c       *rvCluster
	rec     *revcheck.Recorder
	nodes   []int
	at      int
	timeout time.Duration
}

func (c *rvCluster) client(rec *revcheck.Recorder, id int, nodes ...int) *rvClient {
	return &rvClient{id: id, c: c, rec: rec, nodes: nodes, timeout: lzOpTimeout}
}

// errorCounts counts the errors of the cluster's clients by message (the
// first words), for the logs of a run that made little progress.
func (c *rvCluster) countError(err error) {
	msg := err.Error()
	if len(msg) > 100 {
		msg = msg[:100]
	}
	c.errMu.Lock()
	defer c.errMu.Unlock()
	if c.errs == nil {
		c.errs = map[string]int{}
	}
	c.errs[msg]++
}

// logErrors logs the most frequent client errors.
func (c *rvCluster) logErrors(t *testing.T) {
	t.Helper()
	c.errMu.Lock()
	defer c.errMu.Unlock()
	type count struct {
		msg string
		n   int
	}
	var cs []count
	for m, n := range c.errs {
		cs = append(cs, count{m, n})
	}
	slices.SortFunc(cs, func(a, b count) int { return b.n - a.n })
	for i, e := range cs {
		if i == 8 {
			break
		}
		t.Logf("client errors: %d× %s", e.n, e.msg)
	}
}

// node is the node the client sends its next op to.
func (cl *rvClient) node() int { return cl.nodes[cl.at%len(cl.nodes)] }

// errNotSent: the client could not reach its node, so nothing was sent.
var errNotSent = errors.New("not sent")

// do runs fn against the client's node and records it as op in. fn returns
// the op's output, or an error: a read that failed observed nothing
// (NotApplied), a write failed with NOT_APPLIED or never sent was not
// applied, any other failed write has an unknown outcome.
func (cl *rvClient) do(in revcheck.Input, fn func(context.Context, rpc.KVHandler) (revcheck.Output, error)) (revcheck.Output, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cl.timeout)
	defer cancel()
	call := cl.rec.Now()
	var out revcheck.Output
	kv, err := cl.c.pool.ReadyKV(ctx, cl.c.addrs[cl.node()], 200*time.Millisecond)
	if err != nil {
		err = fmt.Errorf("%w: %v", errNotSent, err)
	} else {
		out, err = fn(ctx, kv)
	}
	ret := cl.rec.Now()
	if err != nil {
		out = revcheck.Output{Outcome: revcheck.Unknown}
		var fe *flotillapb.Error
		if !in.IsWrite() || errors.Is(err, errNotSent) || errors.As(err, &fe) && fe.GetOutcome() == flotillapb.Outcome_NOT_APPLIED {
			out.Outcome = revcheck.NotApplied
		}
		cl.at++
		cl.c.countError(err)
	}
	cl.rec.Record(cl.id, in, call, ret, out)
	return out, err
}

func kvOf(key string, found bool, value []byte, create, mod, version int64) revcheck.KV {
	if !found {
		return revcheck.KV{}
	}
	return revcheck.KV{Key: key, Value: string(value), CreateRevision: create, ModRevision: mod, Version: version}
}

func (cl *rvClient) get(key string, at int64) (revcheck.Output, error) {
	in := revcheck.Input{Kind: revcheck.KindGet, Key: key, AtRevision: at}
	return cl.do(in, func(ctx context.Context, kv rpc.KVHandler) (revcheck.Output, error) {
		resp, err := kv.Get(ctx, &flotillapb.GetRequest{Key: []byte(key), Revision: at})
		if err != nil {
			return revcheck.Output{}, err
		}
		return revcheck.Output{Revision: resp.GetHeader().GetRevision(), Found: resp.GetFound(),
			KV: kvOf(key, resp.GetFound(), resp.GetValue(), resp.GetCreateRevision(), resp.GetModRevision(), resp.GetVersion())}, nil
	})
}

func (cl *rvClient) put(key, value string) (revcheck.Output, error) {
	in := revcheck.Input{Kind: revcheck.KindPut, Key: key, Value: value}
	return cl.do(in, func(ctx context.Context, kv rpc.KVHandler) (revcheck.Output, error) {
		resp, err := kv.Put(ctx, &flotillapb.PutRequest{Key: []byte(key), Value: []byte(value)})
		if err != nil {
			return revcheck.Output{}, err
		}
		return revcheck.Output{Revision: resp.GetHeader().GetRevision()}, nil
	})
}

func (cl *rvClient) delete(key string) (revcheck.Output, error) {
	in := revcheck.Input{Kind: revcheck.KindDelete, Key: key}
	return cl.do(in, func(ctx context.Context, kv rpc.KVHandler) (revcheck.Output, error) {
		resp, err := kv.Delete(ctx, &flotillapb.DeleteRequest{Key: []byte(key)})
		if err != nil {
			return revcheck.Output{}, err
		}
		return revcheck.Output{Revision: resp.GetHeader().GetRevision(), Found: resp.GetFound()}, nil
	})
}

// errScanCut: a scan stopped before the end of its span (the test's scans
// are small enough never to).
var errScanCut = errors.New("the scan stopped at the server's size bound")

// scan scans [start, end) at revision at (0: the latest).
func (cl *rvClient) scan(start, end string, at int64) (revcheck.Output, error) {
	in := revcheck.Input{Kind: revcheck.KindScan, Key: start, End: end, AtRevision: at}
	return cl.do(in, func(ctx context.Context, kv rpc.KVHandler) (revcheck.Output, error) {
		req := &flotillapb.ScanRequest{StartKey: []byte(start), Revision: at}
		if end != "" {
			req.EndKey = []byte(end)
		}
		resp, err := kv.Scan(ctx, req)
		if err != nil {
			return revcheck.Output{}, err
		}
		if resp.GetMore() {
			return revcheck.Output{}, errScanCut
		}
		out := revcheck.Output{Revision: resp.GetHeader().GetRevision()}
		for _, p := range resp.GetKvs() {
			out.KVs = append(out.KVs, kvOf(string(p.GetKey()), true, p.GetValue(), p.GetCreateRevision(), p.GetModRevision(), p.GetVersion()))
		}
		return out, nil
	})
}

// txn runs in, a KindTxn.
func (cl *rvClient) txn(in revcheck.Input) (revcheck.Output, error) {
	req := &flotillapb.TxnRequest{}
	for _, c := range in.Compares {
		req.Compares = append(req.Compares, compareProto(c))
	}
	req.Success = txnOpsProto(in.Then)
	req.Failure = txnOpsProto(in.Else)
	return cl.do(in, func(ctx context.Context, kv rpc.KVHandler) (revcheck.Output, error) {
		resp, err := kv.Txn(ctx, req)
		if err != nil {
			return revcheck.Output{}, err
		}
		out := revcheck.Output{Revision: resp.GetHeader().GetRevision(), Succeeded: resp.GetSucceeded()}
		branch := in.Else
		if resp.GetSucceeded() {
			branch = in.Then
		}
		if len(resp.GetResults()) != len(branch) {
			return revcheck.Output{}, fmt.Errorf("%d results for the %d ops of the branch run", len(resp.GetResults()), len(branch))
		}
		for i, r := range resp.GetResults() {
			var res revcheck.TxnResult
			if branch[i].Kind == revcheck.KindGet {
				g := r.GetGet()
				res = revcheck.TxnResult{Found: g.GetFound(), KV: kvOf(branch[i].Key, g.GetFound(), g.GetValue(), g.GetCreateRevision(), g.GetModRevision(), g.GetVersion())}
			}
			out.Results = append(out.Results, res)
		}
		return out, nil
	})
}

func compareProto(c revcheck.Compare) *flotillapb.Compare {
	p := &flotillapb.Compare{Key: []byte(c.Key)}
	switch c.Cmp {
	case revcheck.CmpEqual:
		p.Result = flotillapb.Compare_EQUAL
	case revcheck.CmpNotEqual:
		p.Result = flotillapb.Compare_NOT_EQUAL
	case revcheck.CmpLess:
		p.Result = flotillapb.Compare_LESS
	case revcheck.CmpGreater:
		p.Result = flotillapb.Compare_GREATER
	}
	switch c.Target {
	case revcheck.TargetVersion:
		p.Target, p.TargetUnion = flotillapb.Compare_VERSION, &flotillapb.Compare_Version{Version: c.Operand}
	case revcheck.TargetCreate:
		p.Target, p.TargetUnion = flotillapb.Compare_CREATE, &flotillapb.Compare_CreateRevision{CreateRevision: c.Operand}
	case revcheck.TargetMod:
		p.Target, p.TargetUnion = flotillapb.Compare_MOD, &flotillapb.Compare_ModRevision{ModRevision: c.Operand}
	case revcheck.TargetValue:
		p.Target, p.TargetUnion = flotillapb.Compare_VALUE, &flotillapb.Compare_Value{Value: []byte(c.Value)}
	}
	return p
}

func txnOpsProto(ops []revcheck.TxnOp) []*flotillapb.TxnOp {
	var out []*flotillapb.TxnOp
	for _, o := range ops {
		switch o.Kind {
		case revcheck.KindPut:
			out = append(out, &flotillapb.TxnOp{Op: &flotillapb.TxnOp_Put{Put: &flotillapb.PutOp{Key: []byte(o.Key), Value: []byte(o.Value)}}})
		case revcheck.KindDelete:
			out = append(out, &flotillapb.TxnOp{Op: &flotillapb.TxnOp_Delete{Delete: &flotillapb.DeleteOp{Key: []byte(o.Key)}}})
		case revcheck.KindGet:
			out = append(out, &flotillapb.TxnOp{Op: &flotillapb.TxnOp_Get{Get: &flotillapb.GetOp{Key: []byte(o.Key)}}})
		}
	}
	return out
}

// ---- revisions seen ----

// rvSeen collects the revisions responses reported, for reads at past
// revisions.
type rvSeen struct {
	mu   sync.Mutex
	revs []int64
}

func (s *rvSeen) add(rev int64) {
	if rev <= 0 {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.revs = append(s.revs, rev)
}

// pick returns a revision seen so far, 0 if none: the recent ones more
// often.
func (s *rvSeen) pick(rng *rand.Rand) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.revs) == 0 {
		return 0
	}
	if rng.IntN(2) == 0 {
		return s.revs[len(s.revs)-1-rng.IntN(min(len(s.revs), 8))]
	}
	return s.revs[rng.IntN(len(s.revs))]
}

// ---- checks ----

// checkRevisionHistory runs revcheck.CheckAll over the recorded history
// and fails the test with the violations.
func checkRevisionHistory(t *testing.T, rec *revcheck.Recorder) {
	t.Helper()
	h := rec.History()
	start := time.Now()
	err := revcheck.CheckAll(h, lzCheckTimeout)
	t.Logf("revcheck.CheckAll over %d ops in %v", len(h), time.Since(start).Round(time.Millisecond))
	if err == nil {
		return
	}
	dir := *lzVis
	if dir == "" {
		dir = os.TempDir() // outlives t.TempDir, which the test deletes
	}
	base := filepath.Join(dir, fmt.Sprintf("flotilla-%s-%d", strings.ReplaceAll(t.Name(), "/", "_"), time.Now().UnixNano()))
	if data, jerr := json.MarshalIndent(h, "", " "); jerr == nil && os.WriteFile(base+".json", data, 0o644) == nil {
		t.Logf("history: %s.json", base)
	}
	var le *revcheck.LinearizabilityError
	if errors.As(err, &le) {
		path := base + ".html"
		if verr := le.Visualize(path); verr != nil {
			t.Errorf("writing the visualization: %v", verr)
		} else {
			t.Logf("visualization: %s", path)
		}
	}
	t.Fatalf("the history with revisions is not right: %v", err)
}

func splitRequest(key string) *flotillapb.SplitRangeRequest {
	return &flotillapb.SplitRangeRequest{Key: []byte(key)}
}

// rvCounts counts a history's completed ops by kind.
type rvCounts struct {
	reads, pastReads, writes, txns, scans, unknown int
}

func countOps(h []revcheck.Op) rvCounts {
	var n rvCounts
	for _, op := range h {
		switch {
		case op.Output.Outcome == revcheck.Unknown:
			n.unknown++
			continue
		case op.Input.Kind == revcheck.KindTxn:
			n.txns++
		case op.Input.Kind == revcheck.KindScan:
			n.scans++
		}
		switch {
		case op.Input.IsWrite():
			n.writes++
		case op.Input.AtRevision != 0:
			n.pastReads++
		default:
			n.reads++
		}
	}
	return n
}

func (n rvCounts) String() string {
	return fmt.Sprintf("%d linearizable reads, %d reads at a past revision, %d writes, of which %d txns (and read-only txns), %d scans; %d of unknown outcome",
		n.reads, n.pastReads, n.writes, n.txns, n.scans, n.unknown)
}

// logTimeline logs how many ops completed (and with unknown outcome) in
// each second of the recorder's clock, by their call time.
func logTimeline(t *testing.T, h []revcheck.Op) {
	t.Helper()
	var ok, unknown []int
	for _, op := range h {
		sec := int(op.Call / int64(time.Second))
		for len(ok) <= sec {
			ok, unknown = append(ok, 0), append(unknown, 0)
		}
		if op.Output.Outcome == revcheck.Unknown {
			unknown[sec]++
		} else {
			ok[sec]++
		}
	}
	var b strings.Builder
	for i := range ok {
		fmt.Fprintf(&b, " %ds:%d/%d", i, ok[i], unknown[i])
	}
	t.Logf("ops completed/unknown by second of their call:%s", b.String())
}
