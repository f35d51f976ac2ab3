// Copyright 2026 The Flotilla Authors. All rights reserved.

package server_test

// Linearizability of get, put, compare-and-swap and delete-range
// (TESTING.md scenario 15), checked with porcupine on histories recorded
// against an in-process three-node cluster whose peer links run through
// cuttable TCP proxies. TestLinearizableUnderFaults runs a random workload
// under partitions and restarts and must produce a linearizable history;
// TestLinearizabilityCheckerCatchesStaleReads breaks the read path on
// purpose (TestingKnobs.UnsafeFollowerReads) and must be caught, as must
// the resent delete-range part of TestLinearizabilityCheckerCatchesResentDeleteRange.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/flotilladb/flotilla"
	"github.com/flotilladb/flotilla/internal/testproxy"
	"github.com/flotilladb/flotilla/internal/testutil"
	"github.com/flotilladb/flotilla/placement"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"github.com/flotilladb/flotilla/server"
)

var (
	lzSeed = flag.Uint64("lz.seed", 0, "seed of TestLinearizableUnderFaults (0: time-based)")
	lzLog  = flag.Bool("lz.log", false, "send the linearizability tests' node logs to stderr (as FLOTILLA_TEST_LOG does)")
	lzVis  = flag.String("lz.vis", "", "directory for porcupine visualizations of failed checks (default: os.TempDir())")
)

const (
	lzNodes        = 3
	lzTick         = 20 * time.Millisecond
	lzOpTimeout    = 1500 * time.Millisecond
	lzCheckTimeout = 30 * time.Second
)

// ---- the model ----

type lzOpKind uint8

const (
	lzGet lzOpKind = iota
	lzPut
	lzCAS
	// lzDeleteRange deletes the keys in [key, end) (an empty end: the end of
	// the keyspace). The model checks it key by key (lzPartition): a
	// delete-range across ranges is not atomic, each range's part applies
	// at its own time, yet each key's deletion is one linearizable write.
	// Its count is not checked.
	lzDeleteRange
)

// lzInput is an operation's request.
type lzInput struct {
	kind lzOpKind
	// key is the key of a get, put or cas; the start of a delete-range.
	key string
	// end is the end of a delete-range's span.
	end   string
	value string // put, cas: the value written
	// cas: the condition, "key holds expected" or "key is absent".
	expected     string
	expectAbsent bool
}

// lzOutput is an operation's answer.
type lzOutput struct {
	// unknown: a write whose outcome is unknown; the model accepts it
	// having happened or not (an op that did not happen is linearized
	// after everything else, where it changes nothing observable).
	unknown bool
	// get: whether the key was found and its value; cas that did not
	// swap: the current value it reported.
	found bool
	value string
	// cas: whether it swapped.
	swapped bool
	// delete-range: the keys it reported deleted (described, not checked).
	deleted int64
}

// lzState is one key's value.
type lzState struct {
	present bool
	value   string
}

// covers reports whether in, a delete-range, covers key.
func (in lzInput) covers(key string) bool {
	return key >= in.key && (in.end == "" || key < in.end)
}

// lzKeys returns the keys that the gets, puts and cas of inputs name, in
// order: a key that only delete-ranges touch is never observed.
func lzKeys(inputs []lzInput) []string {
	var keys []string
	for _, in := range inputs {
		if in.kind != lzDeleteRange && !slices.Contains(keys, in.key) {
			keys = append(keys, in.key)
		}
	}
	slices.Sort(keys)
	return keys
}

// lzPartition splits a history by key; a delete-range goes to the
// partition of every key it covers, as a deletion of that key alone.
func lzPartition(history []porcupine.Operation) [][]porcupine.Operation {
	inputs := make([]lzInput, len(history))
	for i, op := range history {
		inputs[i] = op.Input.(lzInput)
	}
	keys := lzKeys(inputs)
	out := make([][]porcupine.Operation, len(keys))
	for i, k := range keys {
		for _, op := range history {
			in := op.Input.(lzInput)
			switch {
			case in.kind == lzDeleteRange && in.covers(k):
				in.key, in.end = k, ""
				op.Input = in
			case in.kind == lzDeleteRange || in.key != k:
				continue
			}
			out[i] = append(out[i], op)
		}
	}
	return out
}

func lzPartitionEvents(history []porcupine.Event) [][]porcupine.Event {
	inputOf := map[int]lzInput{}
	var inputs []lzInput
	for _, ev := range history {
		if ev.Kind == porcupine.CallEvent {
			inputOf[ev.Id] = ev.Value.(lzInput)
			inputs = append(inputs, ev.Value.(lzInput))
		}
	}
	keys := lzKeys(inputs)
	out := make([][]porcupine.Event, len(keys))
	for i, k := range keys {
		for _, ev := range history {
			in := inputOf[ev.Id]
			switch {
			case in.kind == lzDeleteRange && in.covers(k):
				if ev.Kind == porcupine.CallEvent {
					in.key, in.end = k, ""
					ev.Value = in
				}
			case in.kind == lzDeleteRange || in.key != k:
				continue
			}
			out[i] = append(out[i], ev)
		}
	}
	return out
}

// lzModel is a map of registers partitioned by key: each partition's state
// is one key's lzState, and a delete-range in it is that key's deletion.
var lzModel = porcupine.Model{
	Partition:      lzPartition,
	PartitionEvent: lzPartitionEvents,
	Init:           func() any { return lzState{} },
	Step: func(state, input, output any) (bool, any) {
		st, in, out := state.(lzState), input.(lzInput), output.(lzOutput)
		switch in.kind {
		case lzGet:
			return out.found == st.present && (!out.found || out.value == st.value), st
		case lzPut:
			return true, lzState{present: true, value: in.value}
		case lzCAS:
			holds := !st.present
			if !in.expectAbsent {
				holds = st.present && st.value == in.expected
			}
			next := st
			if holds {
				next = lzState{present: true, value: in.value}
			}
			switch {
			case out.unknown:
				return true, next
			case out.swapped:
				return holds, next
			default:
				return !holds && out.found == st.present && (!out.found || out.value == st.value), st
			}
		case lzDeleteRange:
			// Done or unknown alike: an unknown one that did not happen is
			// linearized after everything else.
			return true, lzState{}
		}
		return false, st
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(lzInput), output.(lzOutput)
		var s string
		switch in.kind {
		case lzGet:
			s = fmt.Sprintf("get(%s)", in.key)
		case lzPut:
			s = fmt.Sprintf("put(%s, %s)", in.key, in.value)
		case lzCAS:
			cond := "absent"
			if !in.expectAbsent {
				cond = in.expected
			}
			s = fmt.Sprintf("cas(%s, %s → %s)", in.key, cond, in.value)
		case lzDeleteRange:
			s = fmt.Sprintf("delete-range([%s, %s))", in.key, in.end)
		}
		switch {
		case out.unknown:
			return s + " → unknown"
		case in.kind == lzPut:
			return s
		case in.kind == lzDeleteRange:
			return fmt.Sprintf("%s → %d deleted", s, out.deleted)
		case in.kind == lzCAS && out.swapped:
			return s + " → swapped"
		case !out.found:
			return s + " → absent"
		default:
			return s + " → " + out.value
		}
	},
	DescribeState: func(state any) string {
		st := state.(lzState)
		if !st.present {
			return "absent"
		}
		return st.value
	},
}

// ---- the history ----

// lzHistory records operations from many goroutines.
type lzHistory struct {
	base time.Time
	mu   struct {
		sync.Mutex
		ops []porcupine.Operation
		// unknown indexes ops whose outcome is unknown; their return
		// time is set after everything else when the history is taken.
		unknown []int
	}
	okReads, okWrites, unknownWrites, failedReads, notApplied atomic.Int64
	// deleteRanges counts the delete-ranges recorded (done or unknown).
	deleteRanges atomic.Int64
}

func newLZHistory() *lzHistory { return &lzHistory{base: time.Now()} }

// now is a monotonic timestamp.
func (h *lzHistory) now() int64 { return time.Since(h.base).Nanoseconds() }

// record adds op, called at call, answered at ret with out and err.
func (h *lzHistory) record(client int, in lzInput, call, ret int64, out lzOutput, err error) {
	if err != nil {
		switch {
		case in.kind == lzGet:
			// A failed read observed nothing.
			h.failedReads.Add(1)
			return
		case errors.Is(err, flotilla.ErrNotApplied):
			h.notApplied.Add(1)
			return
		default:
			// ErrOutcomeUnknown, or an error that says neither: it may
			// have been applied.
			h.unknownWrites.Add(1)
			out = lzOutput{unknown: true}
		}
	} else if in.kind == lzGet {
		h.okReads.Add(1)
	} else {
		h.okWrites.Add(1)
	}
	if in.kind == lzDeleteRange {
		h.deleteRanges.Add(1)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if out.unknown {
		h.mu.unknown = append(h.mu.unknown, len(h.mu.ops))
	}
	h.mu.ops = append(h.mu.ops, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret})
}

// operations returns the history, unknown outcomes returning after
// everything else.
func (h *lzHistory) operations() []porcupine.Operation {
	h.mu.Lock()
	defer h.mu.Unlock()
	ops := slices.Clone(h.mu.ops)
	var last int64
	for _, op := range ops {
		last = max(last, op.Call, op.Return)
	}
	for _, i := range h.mu.unknown {
		ops[i].Return = last + 1
	}
	return ops
}

func (h *lzHistory) String() string {
	return fmt.Sprintf("reads ok %d, failed %d; writes ok %d, not applied %d, outcome unknown %d; delete-ranges recorded %d",
		h.okReads.Load(), h.failedReads.Load(), h.okWrites.Load(), h.notApplied.Load(), h.unknownWrites.Load(), h.deleteRanges.Load())
}

// lzClient runs operations against a KV and records them.
type lzClient struct {
	id int
	kv flotilla.KV
	h  *lzHistory
	// readFrom, if set, is the replica the client's gets ask for.
	readFrom flotilla.Replica
}

func (c *lzClient) get(key string) (lzOutput, error) {
	in := lzInput{kind: lzGet, key: key}
	ctx, cancel := context.WithTimeout(context.Background(), lzOpTimeout)
	defer cancel()
	call := c.h.now()
	var v []byte
	var err error
	if c.readFrom == flotilla.ReplicaDefault {
		v, err = c.kv.Get(ctx, []byte(key))
	} else {
		var r flotilla.GetResult
		if r, err = c.kv.GetWith(ctx, []byte(key), flotilla.ReadOptions{Replica: c.readFrom}); err == nil && !r.Found {
			err = flotilla.ErrKeyNotFound
		}
		v = r.KV.Value
	}
	ret := c.h.now()
	out := lzOutput{found: err == nil, value: string(v)}
	if errors.Is(err, flotilla.ErrKeyNotFound) {
		err = nil
	}
	c.h.record(c.id, in, call, ret, out, err)
	return out, err
}

func (c *lzClient) put(key, value string) error {
	in := lzInput{kind: lzPut, key: key, value: value}
	ctx, cancel := context.WithTimeout(context.Background(), lzOpTimeout)
	defer cancel()
	call := c.h.now()
	err := c.kv.Put(ctx, []byte(key), []byte(value))
	ret := c.h.now()
	c.h.record(c.id, in, call, ret, lzOutput{}, err)
	return err
}

func (c *lzClient) cas(key string, expected *string, value string) (lzOutput, error) {
	in := lzInput{kind: lzCAS, key: key, value: value, expectAbsent: expected == nil}
	cond := flotilla.ExpectAbsent()
	if expected != nil {
		in.expected = *expected
		cond = flotilla.ExpectValue([]byte(*expected))
	}
	ctx, cancel := context.WithTimeout(context.Background(), lzOpTimeout)
	defer cancel()
	call := c.h.now()
	res, err := c.kv.CompareAndSwap(ctx, []byte(key), cond, []byte(value))
	ret := c.h.now()
	out := lzOutput{swapped: res.Swapped, found: res.Found, value: string(res.Current)}
	c.h.record(c.id, in, call, ret, out, err)
	return out, err
}

func (c *lzClient) deleteRange(start, end string) (lzOutput, error) {
	in := lzInput{kind: lzDeleteRange, key: start, end: end}
	ctx, cancel := context.WithTimeout(context.Background(), lzOpTimeout)
	defer cancel()
	call := c.h.now()
	var endKey []byte
	if end != "" {
		endKey = []byte(end)
	}
	n, err := c.kv.DeleteRange(ctx, []byte(start), endKey)
	ret := c.h.now()
	out := lzOutput{deleted: n}
	c.h.record(c.id, in, call, ret, out, err)
	return out, err
}

// checkLinearizable runs porcupine over h. On a result other than want it
// writes the visualization to a file and fails the test.
func checkLinearizable(t *testing.T, h *lzHistory, want porcupine.CheckResult) {
	t.Helper()
	ops := h.operations()
	start := time.Now()
	res, info := porcupine.CheckOperationsVerbose(lzModel, ops, lzCheckTimeout)
	t.Logf("porcupine: %s over %d operations in %v", res, len(ops), time.Since(start).Round(time.Millisecond))
	if res == want {
		return
	}
	dir := *lzVis
	if dir == "" {
		dir = os.TempDir() // outlives t.TempDir, which the test deletes
	}
	path := filepath.Join(dir, fmt.Sprintf("flotilla-%s-%d.html", t.Name(), time.Now().UnixNano()))
	if err := porcupine.VisualizePath(lzModel, info, path); err != nil {
		t.Errorf("writing the visualization: %v", err)
	} else {
		t.Logf("visualization: %s", path)
	}
	t.Fatalf("porcupine: %s, want %s", res, want)
}

// ---- the cluster ----

// lzCluster is three in-process nodes with real gRPC on loopback; peer
// traffic from node a to node b goes through proxies[a][b]. Clients talk to
// the nodes directly.
type lzCluster struct {
	t       *testing.T
	addrs   [lzNodes]string
	cfgs    [lzNodes]server.Config
	proxies [lzNodes][lzNodes]*testproxy.Proxy

	mu struct {
		sync.Mutex
		nodes [lzNodes]*server.Node // nil while down
	}
	// stoppedFollowerReads sums, per node, the follower reads of its
	// stopped incarnations.
	stoppedFollowerReads [lzNodes]atomic.Int64
}

// followerReads returns the follower reads node i served, in every
// incarnation.
func (c *lzCluster) followerReads(i int) int64 {
	n := c.stoppedFollowerReads[i].Load()
	if nd := c.node(i); nd != nil {
		n += nd.FollowerReads()
	}
	return n
}

func lzLogger() *slog.Logger {
	if *lzLog || os.Getenv("FLOTILLA_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// startLZCluster starts the cluster and waits until the first range has a
// voter on every node.
func startLZCluster(t *testing.T, knobs *server.TestingKnobs, configure ...func(*server.Config)) *lzCluster {
	t.Helper()
	c := &lzCluster{t: t}
	for i := range c.addrs {
		c.addrs[i] = testutil.FreeAddr(t)
	}
	// Cleanups run last-registered first: the nodes must be closed before
	// their directories are removed, so the directory comes first.
	dir := t.TempDir()
	t.Cleanup(c.close)
	for a := range lzNodes {
		for b := range lzNodes {
			if a == b {
				continue
			}
			p, err := testproxy.New(c.addrs[b])
			if err != nil {
				t.Fatal(err)
			}
			c.proxies[a][b] = p
		}
	}
	logger := lzLogger()
	for i := range lzNodes {
		overrides := map[string]string{}
		for b := range lzNodes {
			if b != i {
				overrides[c.addrs[b]] = c.proxies[i][b].Addr()
			}
		}
		cfg := server.Config{
			Dir:           filepath.Join(dir, fmt.Sprintf("n%d", i+1)),
			ListenAddr:    c.addrs[i],
			HTTPAddr:      "off",
			DialOverrides: overrides,
			TickInterval:  lzTick,
			Logger:        logger.With("n", i+1),
			Testing:       knobs,
		}
		if i == 0 {
			cfg.Bootstrap = true
		} else {
			cfg.Join = []string{c.addrs[0]}
		}
		for _, f := range configure {
			f(&cfg)
		}
		c.cfgs[i] = cfg
		if err := c.open(i); err != nil {
			t.Fatal(err)
		}
	}
	testutil.SucceedsSoon(t, func() error {
		for i := range lzNodes {
			if err := c.fullyReplicated(i); err != nil {
				return err
			}
		}
		return nil
	})
	return c
}

// fullyReplicated reports why node i has no replica of the first range
// with three voters in its descriptor.
func (c *lzCluster) fullyReplicated(i int) error {
	n := c.node(i)
	if n == nil {
		return fmt.Errorf("node %d is down", i+1)
	}
	for _, r := range n.Status(false).GetReplicas() {
		if r.GetGroupId() != uint64(placement.FirstRangeID) {
			continue
		}
		// The descriptor lists learners too: a learner is not part of a
		// quorum yet.
		voters := 0
		for _, rd := range r.GetDescriptor_().GetReplicas() {
			if rd.GetType() == flotillapb.ReplicaType_VOTER {
				voters++
			}
		}
		if voters != lzNodes {
			return fmt.Errorf("node %d: range %d has %d voters in %v", i+1, r.GetGroupId(), voters, r.GetDescriptor_())
		}
		return nil
	}
	return fmt.Errorf("node %d has no replica of range %d", i+1, placement.FirstRangeID)
}

func (c *lzCluster) node(i int) *server.Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.nodes[i]
}

// open starts node i over its config, retrying briefly while its port is
// not yet free again.
func (c *lzCluster) open(i int) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := server.Open(context.Background(), c.cfgs[i])
		if err == nil {
			c.mu.Lock()
			c.mu.nodes[i] = n
			c.mu.Unlock()
			return nil
		}
		if time.Now().After(deadline) || !strings.Contains(err.Error(), "listen") {
			return fmt.Errorf("opening node %d: %w", i+1, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop closes node i.
func (c *lzCluster) stop(i int) error {
	c.mu.Lock()
	n := c.mu.nodes[i]
	c.mu.nodes[i] = nil
	c.mu.Unlock()
	if n == nil {
		return nil
	}
	c.stoppedFollowerReads[i].Add(n.FollowerReads())
	if err := n.Close(); err != nil {
		return fmt.Errorf("closing node %d: %w", i+1, err)
	}
	return nil
}

// isolate cuts every link to and from node i.
func (c *lzCluster) isolate(i int) {
	for j := range lzNodes {
		if j != i {
			c.proxies[i][j].Cut()
			c.proxies[j][i].Cut()
		}
	}
}

// heal restores every link.
func (c *lzCluster) heal() {
	for a := range lzNodes {
		for b := range lzNodes {
			if a != b {
				c.proxies[a][b].Heal()
			}
		}
	}
}

// leader returns the node among candidates (running ones) that reports
// itself leader of the first range at the highest term, or -1.
func (c *lzCluster) leader(candidates ...int) int {
	best, bestTerm := -1, uint64(0)
	for _, i := range candidates {
		n := c.node(i)
		if n == nil {
			continue
		}
		for _, r := range n.Status(false).GetReplicas() {
			if r.GetGroupId() == uint64(placement.FirstRangeID) && r.GetReplicaId() != 0 &&
				r.GetLeaderReplicaId() == r.GetReplicaId() && r.GetTerm() >= bestTerm {
				best, bestTerm = i, r.GetTerm()
			}
		}
	}
	return best
}

// connect returns a client of the given nodes, closed with the test.
func (c *lzCluster) connect(nodes ...int) *flotilla.Client {
	c.t.Helper()
	return c.connectReading(flotilla.Leader, nodes...)
}

// connectReading is connect with reads served by the replica readFrom
// chooses.
func (c *lzCluster) connectReading(readFrom flotilla.Replica, nodes ...int) *flotilla.Client {
	c.t.Helper()
	var eps []string
	for _, i := range nodes {
		eps = append(eps, c.addrs[i])
	}
	cl, err := flotilla.New(flotilla.Config{Endpoints: eps, ReadFrom: readFrom})
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { _ = cl.Close() })
	return cl
}

// makeObserver sets the placement rule "two voters and one non-voter"
// and waits until every node's replica of the first range has applied a
// descriptor with two voters and a learner; it returns the learner's node.
func (c *lzCluster) makeObserver() int {
	c.t.Helper()
	pc := placementClient(c.t, c.node(0))
	testutil.SucceedsSoon(c.t, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), lzOpTimeout)
		defer cancel()
		_, err := pc.SetRules(ctx, &flotillapb.SetRulesRequest{Rules: []*flotillapb.PlacementRule{{Voters: 2, NonVoters: 1}}})
		return err
	})
	observer := -1
	testutil.SucceedsWithin(c.t, time.Minute, func() error {
		for i := range lzNodes {
			n := c.node(i)
			found := false
			for _, r := range n.Status(false).GetReplicas() {
				if r.GetGroupId() != uint64(placement.FirstRangeID) {
					continue
				}
				found = true
				voters, learners := 0, 0
				for _, rd := range r.GetDescriptor_().GetReplicas() {
					if rd.GetType() == flotillapb.ReplicaType_VOTER {
						voters++
					} else {
						learners++
					}
				}
				if voters != 2 || learners != 1 {
					return fmt.Errorf("node %d: range %d has %d voters and %d learners", i+1, r.GetGroupId(), voters, learners)
				}
				for _, rd := range r.GetDescriptor_().GetReplicas() {
					if rd.GetType() == flotillapb.ReplicaType_LEARNER {
						observer = int(rd.GetStoreId()) - 1
					}
				}
			}
			if !found {
				return fmt.Errorf("node %d has no replica of range %d", i+1, placement.FirstRangeID)
			}
		}
		// The routers learn replicas from the placement driver: it must
		// list the observer too.
		ctx, cancel := context.WithTimeout(context.Background(), lzOpTimeout)
		defer cancel()
		resp, err := pc.LookupRange(ctx, &flotillapb.LookupRangeRequest{Key: []byte("k")})
		if err != nil {
			return err
		}
		if resp.GetDescriptor_().ReplicaOnStore(flotillapb.StoreID(observer+1)) == nil {
			return fmt.Errorf("the placement driver lists range %v without the observer on store %d", resp.GetDescriptor_(), observer+1)
		}
		return nil
	})
	return observer
}

func (c *lzCluster) close() {
	for i := range lzNodes {
		if err := c.stop(i); err != nil {
			c.t.Error(err)
		}
	}
	for a := range lzNodes {
		for b := range lzNodes {
			if p := c.proxies[a][b]; p != nil {
				_ = p.Close()
			}
		}
	}
}

// runLZClient runs client ci's share of the random workload of gets, puts,
// compare-and-swaps and delete-ranges over keys (sorted), recording into h,
// until stop closes or budget reaches maxOps.
func runLZClient(ci int, seed uint64, kv flotilla.KV, keys []string, h *lzHistory, stop <-chan struct{}, budget *atomic.Int64, maxOps int64) {
	rng := rand.New(rand.NewPCG(seed, uint64(ci)+1))
	cl := &lzClient{id: ci, kv: kv, h: h}
	// seen is the last value this client saw for each key: a
	// likely expected value for its next compare-and-swap.
	seen := map[string]string{}
	for seq := 0; ; seq++ {
		select {
		case <-stop:
			return
		default:
		}
		if budget.Add(1) > maxOps {
			return
		}
		key := keys[rng.IntN(len(keys))]
		value := fmt.Sprintf("c%d-%d", ci, seq)
		switch r := rng.IntN(20); {
		case r < 8:
			if out, err := cl.get(key); err == nil && out.found {
				seen[key] = out.value
			}
		case r < 14:
			if err := cl.put(key, value); err == nil {
				seen[key] = value
			}
		case r < 15:
			// One to three keys, the last span open-ended.
			i := rng.IntN(len(keys))
			j := min(i+1+rng.IntN(3), len(keys))
			end := ""
			if j < len(keys) {
				end = keys[j]
			}
			if _, err := cl.deleteRange(keys[i], end); err == nil {
				for _, k := range keys[i:j] {
					delete(seen, k)
				}
			}
		default:
			var expected *string
			if v, ok := seen[key]; ok && rng.IntN(10) > 0 {
				expected = &v
			}
			out, err := cl.cas(key, expected, value)
			switch {
			case err != nil:
			case out.swapped:
				seen[key] = value
			case out.found:
				seen[key] = out.value
			}
		}
	}
}

// lzTestSeed returns -lz.seed, or one from the clock, and logs how to rerun
// the test with it.
func lzTestSeed(t *testing.T) uint64 {
	seed := *lzSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -run '^%s$' -lz.seed=%d)", seed, t.Name(), seed)
	return seed
}

// ---- the tests ----

func TestLinearizableUnderFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a cluster under faults for several seconds")
	}
	lzFaultRun(t, lzRunOpts{})
}

// TestFollowerReadsLinearizableUnderFaults is TestLinearizableUnderFaults
// with every read served by a replica other than the leader where one
// answers (clients reading from Follower or Nearest), one of the three
// replicas an observer: the placement rule keeps two voters and one
// non-voter.
func TestFollowerReadsLinearizableUnderFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a cluster under faults for several seconds")
	}
	lzFaultRun(t, lzRunOpts{readFrom: []flotilla.Replica{flotilla.Follower, flotilla.Nearest}, observer: true})
}

// lzRunOpts vary lzFaultRun.
type lzRunOpts struct {
	// readFrom are the clients' replica choices, in turn (none: the
	// leader).
	readFrom []flotilla.Replica
	// observer makes one of the first range's replicas a non-voter (a
	// placement rule of two voters and one non-voter).
	observer bool
}

// lzFaultRun runs a random workload under partitions and restarts and
// checks that its history is linearizable.
func lzFaultRun(t *testing.T, opts lzRunOpts) {
	seed := lzTestSeed(t)

	const (
		workloadDuration = 8 * time.Second
		maxOps           = 20000
		clients          = 5
	)
	keys := []string{"k0", "k1", "k2"}

	c := startLZCluster(t, nil)
	observer := -1
	if opts.observer {
		observer = c.makeObserver()
	}
	h := newLZHistory()

	// Clients 0-2 each know one node only: their range lookups, and their
	// requests while they cannot look up, go there, so some certainly
	// reach a partitioned or restarting node; 3 and 4 know all of them, in
	// different orders. (Routed requests go to the range's leader, which
	// the nemesis isolates too.)
	var kvs [clients]flotilla.KV
	for i := range clients {
		readFrom := flotilla.Leader
		if len(opts.readFrom) > 0 {
			readFrom = opts.readFrom[i%len(opts.readFrom)]
		}
		if i < lzNodes {
			kvs[i] = c.connectReading(readFrom, i)
		} else {
			kvs[i] = c.connectReading(readFrom, i%lzNodes, (i+1)%lzNodes, (i+2)%lzNodes)
		}
	}
	var (
		stop       = make(chan struct{})
		opsStarted atomic.Int64
		partitions atomic.Int64
		restarts   atomic.Int64
		wg         sync.WaitGroup
	)
	for ci := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			runLZClient(ci, seed, kvs[ci], keys, h, stop, &opsStarted, maxOps)
		}()
	}

	// The nemesis: isolate the leader's node or a random one, heal,
	// restart a random node. The first two rounds are a partition and a
	// restart so that every run has both.
	nemesisDone := make(chan struct{})
	go func() {
		defer close(nemesisDone)
		rng := rand.New(rand.NewPCG(seed, 0))
		pause := func(d time.Duration) bool {
			tm := time.NewTimer(d)
			defer tm.Stop()
			select {
			case <-stop:
				return false
			case <-tm.C:
				return true
			}
		}
		if !pause(300 * time.Millisecond) {
			return
		}
		for round := 0; ; round++ {
			// 0: isolate the leader's node; 1: isolate a random node;
			// 2: restart a random node.
			action := rng.IntN(3)
			switch round {
			case 0:
				action = 0
			case 1:
				action = 2
			}
			victim := rng.IntN(lzNodes)
			switch action {
			case 0, 1:
				if l := c.leader(0, 1, 2); action == 0 && l >= 0 {
					victim = l
				}
				t.Logf("nemesis: isolating node %d", victim+1)
				c.isolate(victim)
				partitions.Add(1)
				ok := pause(time.Duration(500+rng.IntN(700)) * time.Millisecond)
				c.heal()
				t.Logf("nemesis: healed")
				if !ok {
					return
				}
			case 2:
				t.Logf("nemesis: restarting node %d", victim+1)
				if err := c.stop(victim); err != nil {
					t.Error(err)
				}
				restarts.Add(1)
				ok := pause(time.Duration(100+rng.IntN(400)) * time.Millisecond)
				if err := c.open(victim); err != nil {
					t.Error(err)
					return
				}
				if !ok {
					return
				}
			}
			if !pause(time.Duration(300+rng.IntN(500)) * time.Millisecond) {
				return
			}
		}
	}()

	// With two voters (opts.observer), isolating or restarting either
	// stops the range, and a slow machine may get little done.
	minOK := int64(50)
	if opts.observer {
		minOK = 25
	}
	// The workload runs workloadDuration, and longer (up to three times)
	// while fewer than minOK reads or writes succeeded.
	clientsDone := make(chan struct{})
	go func() { wg.Wait(); close(clientsDone) }()
	began := time.Now()
	tick := time.NewTicker(100 * time.Millisecond)
wait:
	for {
		select {
		case <-clientsDone:
			break wait
		case <-tick.C:
		}
		enough := h.okReads.Load() >= minOK && h.okWrites.Load() >= minOK
		if el := time.Since(began); el >= workloadDuration && enough || el >= 3*workloadDuration {
			break wait
		}
	}
	tick.Stop()
	close(stop)
	<-nemesisDone
	<-clientsDone
	c.heal()
	t.Logf("workload: %s; %d partitions, %d restarts", h, partitions.Load(), restarts.Load())

	// Once healed, every key is readable again; these reads join the
	// history (a lost acknowledged write would show here).
	final := &lzClient{id: clients, kv: c.connect(0, 1, 2), h: h}
	for _, k := range keys {
		testutil.SucceedsWithin(t, 20*time.Second, func() error {
			_, err := final.get(k)
			return err
		})
	}

	if partitions.Load() == 0 || restarts.Load() == 0 {
		t.Errorf("the nemesis made %d partitions and %d restarts, want at least one of each", partitions.Load(), restarts.Load())
	}
	if h.okReads.Load() < minOK || h.okWrites.Load() < minOK {
		t.Errorf("only %d reads and %d writes succeeded, want at least %d of each", h.okReads.Load(), h.okWrites.Load(), minOK)
	}
	if len(opts.readFrom) > 0 {
		var served [lzNodes]int64
		for i := range lzNodes {
			served[i] = c.followerReads(i)
		}
		t.Logf("follower reads served by each node: %v (node %d holds the observer)", served, observer+1)
		if observer >= 0 && served[observer] == 0 {
			t.Error("the observer served no read")
		}
		if served == [lzNodes]int64{} {
			t.Error("no read was served by a follower or observer")
		}
	}
	checkLinearizable(t, h, porcupine.Ok)
}

// TestLinearizabilityCheckerCatchesStaleReads shows that the checker can
// fail: with reads served from the local replica without ReadIndex, an
// isolated follower answers with a value overwritten long before.
func TestLinearizabilityCheckerCatchesStaleReads(t *testing.T) {
	c := startLZCluster(t, &server.TestingKnobs{UnsafeFollowerReads: true})
	h := newLZHistory()
	const key = "k"

	// k=v0, and every node serves it. A Client's reads go to the leader
	// (its router routes them there), so each node is asked through its
	// own KV: a node's gateway serves reads from its local replica.
	writer := &lzClient{id: 0, kv: c.connect(0), h: h}
	if err := writer.put(key, "v0"); err != nil {
		t.Fatal(err)
	}
	for i := range lzNodes {
		testutil.SucceedsSoon(t, func() error {
			ctx, cancel := context.WithTimeout(context.Background(), lzOpTimeout)
			defer cancel()
			v, err := c.node(i).Get(ctx, []byte(key))
			if err != nil {
				return err
			}
			if string(v) != "v0" {
				return fmt.Errorf("node %d serves %q", i+1, v)
			}
			return nil
		})
	}

	// Isolate node 3; nodes 1 and 2 are a quorum with a leader.
	c.isolate(2)
	var leader int
	testutil.SucceedsSoon(t, func() error {
		if leader = c.leader(0, 1); leader < 0 {
			return errors.New("no leader among nodes 1 and 2")
		}
		return nil
	})
	fresh := &lzClient{id: 1, kv: c.connect(leader), h: h}
	stale := &lzClient{id: 2, kv: c.node(2), h: h}
	put := func(v string) {
		t.Helper()
		testutil.SucceedsSoon(t, func() error {
			err := fresh.put(key, v)
			if err != nil && !errors.Is(err, flotilla.ErrNotApplied) {
				t.Fatalf("put %s through node %d: %v", v, leader+1, err)
			}
			return err
		})
	}
	read := func(cl *lzClient, want string) {
		t.Helper()
		out, err := cl.get(key)
		if err != nil {
			t.Fatalf("get through client %d: %v", cl.id, err)
		}
		if out.value != want {
			t.Fatalf("get through client %d = %q (found %v), want %q", cl.id, out.value, out.found, want)
		}
	}
	for i := 1; i <= 3; i++ {
		put(fmt.Sprintf("v%d", i))
	}
	read(stale, "v0")
	read(fresh, "v3")
	read(stale, "v0")
	put("v4")
	read(stale, "v0")
	c.heal()

	checkLinearizable(t, h, porcupine.Illegal)
}

// TestLinearizabilityCheckerCatchesStaleFollowerReads shows that the
// checker catches a follower that serves a read without asking the leader
// to close its revision (TestingKnobs.UnsafeFollowerReadsSkipClose): cut
// off, it answers with a value overwritten long before. Without the knob
// the same follower refuses the read while it cannot reach the leader,
// and serves the newest value once healed.
func TestLinearizabilityCheckerCatchesStaleFollowerReads(t *testing.T) {
	for _, broken := range []bool{true, false} {
		t.Run(fmt.Sprintf("broken=%v", broken), func(t *testing.T) {
			var knobs *server.TestingKnobs
			if broken {
				knobs = &server.TestingKnobs{UnsafeFollowerReadsSkipClose: true}
			}
			c := startLZCluster(t, knobs)
			h := newLZHistory()
			const key = "k"
			writer := &lzClient{id: 0, kv: c.connect(0), h: h}
			if err := writer.put(key, "v0"); err != nil {
				t.Fatal(err)
			}
			// Every node's replica serves v0 as a follower read.
			for i := range lzNodes {
				cl := &lzClient{id: 10 + i, kv: c.node(i), h: h, readFrom: flotilla.Follower}
				testutil.SucceedsSoon(t, func() error {
					out, err := cl.get(key)
					if err != nil {
						return err
					}
					if out.value != "v0" {
						return fmt.Errorf("node %d serves %q", i+1, out.value)
					}
					return nil
				})
			}
			// Isolate a node that does not lead; the other two are a
			// quorum with a leader.
			victim := 2
			if c.leader(0, 1, 2) == 2 {
				victim = 1
			}
			c.isolate(victim)
			var leader int
			testutil.SucceedsSoon(t, func() error {
				others := []int{}
				for i := range lzNodes {
					if i != victim {
						others = append(others, i)
					}
				}
				if leader = c.leader(others...); leader < 0 {
					return errors.New("no leader among the nodes not cut off")
				}
				return nil
			})
			fresh := &lzClient{id: 1, kv: c.connect(leader), h: h}
			for i := 1; i <= 3; i++ {
				v := fmt.Sprintf("v%d", i)
				testutil.SucceedsSoon(t, func() error {
					err := fresh.put(key, v)
					if err != nil && !errors.Is(err, flotilla.ErrNotApplied) {
						t.Fatalf("put %s through node %d: %v", v, leader+1, err)
					}
					return err
				})
			}
			stale := &lzClient{id: 2, kv: c.node(victim), h: h, readFrom: flotilla.Follower}
			out, err := stale.get(key)
			switch {
			case broken && (err != nil || out.value != "v0"):
				t.Fatalf("the broken follower read: %q, %v; want the stale v0", out.value, err)
			case !broken && err == nil:
				t.Fatalf("a follower cut off from its leader served %q", out.value)
			}
			c.heal()
			if !broken {
				testutil.SucceedsSoon(t, func() error {
					out, err := stale.get(key)
					if err == nil && out.value != "v3" {
						t.Fatalf("the healed follower serves %q, want v3", out.value)
					}
					return err
				})
				if c.node(victim).FollowerReads() == 0 {
					t.Fatal("the follower counted no follower reads")
				}
			}
			want := porcupine.Ok
			if broken {
				want = porcupine.Illegal
			}
			checkLinearizable(t, h, want)
		})
	}
}
