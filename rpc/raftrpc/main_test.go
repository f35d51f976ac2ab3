// Copyright 2026 The Flotilla Authors. All rights reserved.

package raftrpc

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"github.com/flotilladb/flotilla/rpc"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/flotilladb/flotilla/engine"
	"github.com/flotilladb/flotilla/internal/testcluster"
	"github.com/flotilladb/flotilla/internal/testutil"
	"github.com/flotilladb/flotilla/multiraft"
	"go.etcd.io/raft/v3"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
)

var seedFlag = flag.Uint64("seed", 0, "seed for randomized tests (0: pick one and print it)")

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newRand returns the randomness of a randomized test, its seed printed so
// a failure can be rerun with -seed.
func newRand(t testing.TB) *rand.Rand {
	t.Helper()
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -run '^%s$' -seed %d)", seed, t.Name(), seed)
	return rand.New(rand.NewPCG(seed, seed^0x5bd1e995))
}

func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: testLogLevel}))
}

const testClusterID = "test-cluster"

var testLogLevel = slog.LevelError

// testNode is one node of a testCluster: a multiraft host over an
// in-memory engine, talking through a real Transport on a real loopback
// gRPC server. Its engine's filesystem survives restarts.
type testNode struct {
	id        multiraft.NodeID
	fs        vfs.FS
	overrides map[string]string
	metrics   *metrics.Set

	// Set while running.
	lis     net.Listener
	addr    string
	srv     *grpc.Server
	srvDone chan struct{}
	pool    *rpc.Pool
	tr      *Transport
	eng     *engine.Engine
	host    *multiraft.Host
}

// testCluster runs nodes over gRPC.
type testCluster struct {
	t     testing.TB
	nodes []*testNode // index i holds node i+1
	// configureHost and configureTransport adjust each node's config.
	configureHost      func(*multiraft.Config)
	configureTransport func(*TransportConfig)
	// beforeStart runs on each transport before Start (tests inject knobs).
	beforeStart func(*testNode)
}

func newTestCluster(t testing.TB, n int) *testCluster {
	c := &testCluster{t: t}
	for i := 1; i <= n; i++ {
		c.nodes = append(c.nodes, &testNode{id: multiraft.NodeID(i), fs: vfs.NewMem(), metrics: metrics.NewSet()})
	}
	t.Cleanup(c.stopAll)
	return c
}

func (c *testCluster) node(id multiraft.NodeID) *testNode { return c.nodes[id-1] }

// listen opens a loopback listener for node id (on addr, or a fresh port
// if addr is empty) without starting the node.
func (c *testCluster) listen(id multiraft.NodeID, addr string) {
	c.t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		c.t.Fatal(err)
	}
	n := c.node(id)
	n.lis, n.addr = lis, lis.Addr().String()
}

// startAll starts every node, each knowing every other's address.
func (c *testCluster) startAll() {
	c.t.Helper()
	for _, n := range c.nodes {
		if n.lis == nil {
			c.listen(n.id, "")
		}
	}
	for _, n := range c.nodes {
		c.start(n.id)
	}
}

// start starts node id on its listener (listening on a fresh port first
// if it has none) and tells it every other node's address.
func (c *testCluster) start(id multiraft.NodeID) {
	c.t.Helper()
	n := c.node(id)
	if n.lis == nil {
		c.listen(id, "")
	}
	n.pool = rpc.NewPool(rpc.PoolConfig{DialOverrides: n.overrides, Logger: quietLogger()})
	tcfg := TransportConfig{Pool: n.pool, Metrics: n.metrics, Logger: quietLogger()}
	if c.configureTransport != nil {
		c.configureTransport(&tcfg)
	}
	tr, err := NewTransport(tcfg)
	if err != nil {
		c.t.Fatal(err)
	}
	n.tr = tr
	n.srv = grpc.NewServer(rpc.ServerOptions()...)
	tr.Register(n.srv)
	n.srvDone = make(chan struct{})
	go func(srv *grpc.Server, lis net.Listener, done chan struct{}) {
		defer close(done)
		_ = srv.Serve(lis)
	}(n.srv, n.lis, n.srvDone)

	eng, err := engine.Open(engine.Options{Dir: "store", FS: n.fs, CacheSize: 1 << 20, MemTableSize: 4 << 20, Logger: quietLogger()})
	if err != nil {
		c.t.Fatal(err)
	}
	n.eng = eng
	cfg := multiraft.Config{
		NodeID:        id,
		Engine:        eng,
		Transport:     tr,
		TickInterval:  20 * time.Millisecond,
		ElectionTicks: 10,
		Logger:        quietLogger(),
		NewStateMachine: func(g multiraft.GroupID) (multiraft.StateMachine, error) {
			return testcluster.NewLogStateMachine(eng, g), nil
		},
	}
	if c.configureHost != nil {
		c.configureHost(&cfg)
	}
	host, err := multiraft.NewHost(cfg)
	if err != nil {
		c.t.Fatal(err)
	}
	n.host = host
	for _, other := range c.nodes {
		if other.id != id && other.addr != "" {
			tr.SetAddress(other.id, other.addr)
		}
	}
	if c.beforeStart != nil {
		c.beforeStart(n)
	}
	if err := tr.Start(id, testClusterID, n.addr, host); err != nil {
		c.t.Fatal(err)
	}
}

// stop stops node id; its data stays in its filesystem. Its address stays
// known (others keep it).
func (c *testCluster) stop(id multiraft.NodeID) {
	c.t.Helper()
	n := c.node(id)
	if n.host == nil {
		return
	}
	n.srv.Stop()
	<-n.srvDone
	if err := n.tr.Close(); err != nil {
		c.t.Error(err)
	}
	n.host.Stop()
	if err := n.pool.Close(); err != nil {
		c.t.Error(err)
	}
	if err := n.eng.Close(); err != nil {
		c.t.Error(err)
	}
	n.lis, n.srv, n.tr, n.host, n.eng, n.pool = nil, nil, nil, nil, nil, nil
}

func (c *testCluster) stopAll() {
	for _, n := range c.nodes {
		if n.host != nil {
			c.stop(n.id)
		} else if n.lis != nil {
			_ = n.lis.Close()
		}
	}
}

// bootstrap creates group with a voter on each of nodes.
func (c *testCluster) bootstrap(group multiraft.GroupID, nodes ...multiraft.NodeID) {
	c.t.Helper()
	var replicas []multiraft.Replica
	for _, id := range nodes {
		replicas = append(replicas, multiraft.Replica{ID: testcluster.ReplicaOn(id)})
	}
	for _, id := range nodes {
		if err := c.node(id).host.Bootstrap(group, replicas); err != nil {
			c.t.Fatal(err)
		}
	}
}

// leader returns the running node whose replica of group leads in the
// highest term.
func (c *testCluster) leader(group multiraft.GroupID, among ...multiraft.NodeID) (*testNode, error) {
	var leader *testNode
	var term uint64
	for _, n := range c.nodes {
		if n.host == nil || (len(among) > 0 && !slices.Contains(among, n.id)) {
			continue
		}
		if st, ok := n.host.Status(group); ok && st.State == raft.StateLeader && st.Term >= term {
			leader, term = n, st.Term
		}
	}
	if leader == nil {
		return nil, fmt.Errorf("group %d has no leader", group)
	}
	return leader, nil
}

func (c *testCluster) waitLeader(group multiraft.GroupID, among ...multiraft.NodeID) *testNode {
	c.t.Helper()
	var leader *testNode
	testutil.SucceedsSoon(c.t, func() error {
		var err error
		leader, err = c.leader(group, among...)
		return err
	})
	return leader
}

// propose proposes cmd at the group's leader among the given nodes (all
// if none), retrying while it is certainly not applied.
func (c *testCluster) propose(group multiraft.GroupID, cmd []byte, among ...multiraft.NodeID) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testutil.DefaultSucceedsSoonTimeout)
	defer cancel()
	var lastErr error
	for ctx.Err() == nil {
		leader, err := c.leader(group, among...)
		if err == nil {
			attempt, cancelAttempt := context.WithTimeout(ctx, 2*time.Second)
			_, err = leader.host.ProposeAndWait(attempt, group, cmd)
			cancelAttempt()
			if err == nil {
				return
			}
			if multiraft.IsAmbiguous(err) {
				c.t.Fatalf("proposal's outcome unknown: %v", err)
			}
		}
		lastErr = err
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Millisecond):
		}
	}
	c.t.Fatalf("proposing to group %d: %v", group, lastErr)
}

// applied returns the commands node applied to group.
func (n *testNode) applied(group multiraft.GroupID) ([]testcluster.AppliedCommand, error) {
	return testcluster.ReadApplied(n.eng, group)
}

// waitConverged waits until the given nodes applied the same commands to
// group, including every one of want.
func (c *testCluster) waitConverged(group multiraft.GroupID, want [][]byte, nodes ...multiraft.NodeID) {
	c.t.Helper()
	testutil.SucceedsSoon(c.t, func() error {
		var first []testcluster.AppliedCommand
		for i, id := range nodes {
			got, err := c.node(id).applied(group)
			if err != nil {
				return err
			}
			if i == 0 {
				first = got
				seen := make(map[string]bool, len(got))
				for _, cmd := range got {
					seen[cmd.Data] = true
				}
				for _, w := range want {
					if !seen[string(w)] {
						return fmt.Errorf("node %d has not applied %.20q (%d commands applied)", id, w, len(got))
					}
				}
				continue
			}
			if !slices.Equal(got, first) {
				return fmt.Errorf("node %d applied %d commands, node %d %d", id, len(got), nodes[0], len(first))
			}
		}
		return nil
	})
}

// fakeHandler records what a transport delivers.
type fakeHandler struct {
	mu       sync.Mutex
	batches  []*multiraft.MessageBatch
	snapshot func(ctx context.Context, header *multiraft.SnapshotHeader, next func() ([]byte, error)) error
}

func (h *fakeHandler) HandleBatch(b *multiraft.MessageBatch) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.batches = append(h.batches, b)
}

func (h *fakeHandler) received() []*multiraft.MessageBatch {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.batches)
}

func (h *fakeHandler) HandleSnapshot(ctx context.Context, header *multiraft.SnapshotHeader, next func() ([]byte, error)) error {
	if h.snapshot != nil {
		return h.snapshot(ctx, header, next)
	}
	for {
		if _, err := next(); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// lonePeer is one transport with a fake handler on a real gRPC server.
type lonePeer struct {
	addr string
	pool *rpc.Pool
	tr   *Transport
	h    *fakeHandler
}

// newLonePeer starts a transport for node id on a loopback server; start
// says whether to Start it. Everything stops when the test ends.
func newLonePeer(t *testing.T, id multiraft.NodeID, start bool, adjust func(*TransportConfig)) *lonePeer {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &lonePeer{addr: lis.Addr().String(), pool: rpc.NewPool(rpc.PoolConfig{Logger: quietLogger()}), h: &fakeHandler{}}
	cfg := TransportConfig{Pool: p.pool, Logger: quietLogger(), Metrics: metrics.NewSet()}
	if adjust != nil {
		adjust(&cfg)
	}
	if p.tr, err = NewTransport(cfg); err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(rpc.ServerOptions()...)
	p.tr.Register(srv)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
		_ = p.tr.Close()
		_ = p.pool.Close()
	})
	if start {
		if err := p.tr.Start(id, testClusterID, p.addr, p.h); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// tcpProxy forwards TCP connections from a loopback port to a target and
// counts the bytes; it can be cut (every connection closed, new ones
// refused) and healed.
type tcpProxy struct {
	lis    net.Listener
	target string
	bytes  atomic.Int64
	wg     sync.WaitGroup

	mu struct {
		sync.Mutex
		cut   bool
		conns map[net.Conn]struct{}
	}
}

func newTCPProxy(t testing.TB, target string) *tcpProxy {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{lis: lis, target: target}
	p.mu.conns = make(map[net.Conn]struct{})
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *tcpProxy) addr() string { return p.lis.Addr().String() }

func (p *tcpProxy) accept() {
	defer p.wg.Done()
	for {
		in, err := p.lis.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		cut := p.mu.cut
		p.mu.Unlock()
		if cut {
			_ = in.Close()
			continue
		}
		out, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = in.Close()
			continue
		}
		if !p.track(in, out) {
			continue
		}
		p.wg.Add(2)
		go p.pipe(in, out)
		go p.pipe(out, in)
	}
}

// track registers a connection pair unless the proxy was cut meanwhile.
func (p *tcpProxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mu.cut {
		for _, c := range conns {
			_ = c.Close()
		}
		return false
	}
	for _, c := range conns {
		p.mu.conns[c] = struct{}{}
	}
	return true
}

func (p *tcpProxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.bytes.Add(int64(n))
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	_ = dst.Close()
	_ = src.Close()
}

// setCut cuts (closing every connection) or heals the proxy.
func (p *tcpProxy) setCut(cut bool) {
	p.mu.Lock()
	p.mu.cut = cut
	var conns []net.Conn
	if cut {
		for c := range p.mu.conns {
			conns = append(conns, c)
		}
		clear(p.mu.conns)
	}
	p.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
}

func (p *tcpProxy) close() {
	_ = p.lis.Close()
	p.setCut(true)
	p.wg.Wait()
}
