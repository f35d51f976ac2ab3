// Copyright 2026 The Flotilla Authors. All rights reserved.

// Package testcluster runs N multiraft hosts in one process over a Network
// that can lose, delay, reorder and partition messages, and can stop,
// restart and crash hosts over their own data (in memory, on Pebble's
// crash-simulating filesystem, or in real directories).
//
// It is for the tests of multiraft and of what sits directly on it (shard,
// rpc/raftrpc). Each group's state machine is a LogStateMachine, which
// records the commands it applies, unless Options.Configure installs
// another (shard's tests install its replicas). It owns its hosts, engines
// and the Network's delivery goroutines, and stops them all when the test
// ends (New registers Close with t.Cleanup). It knows nothing of nodes,
// gRPC or placement: tests of whole nodes run real server.Nodes over
// loopback gRPC instead, with internal/testproxy to cut links.
package testcluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/flotilladb/flotilla/engine"
	"github.com/flotilladb/flotilla/internal/testutil"
	"github.com/flotilladb/flotilla/multiraft"
	"go.etcd.io/raft/v3"
)

// Storage says where nodes keep their data.
type Storage int

// Storage kinds.
const (
	// InMemory: vfs.NewMem; data survives Stop/Restart, not a crash.
	InMemory Storage = iota
	// Crashable: vfs.NewCrashableMem; Crash keeps only synced data.
	Crashable
	// Disk: a real directory per node under t.TempDir().
	Disk
)

// Options configure a Cluster.
type Options struct {
	Nodes   int
	Seed    uint64
	Storage Storage
	// TickInterval defaults to 20 ms, ElectionTicks to 10.
	TickInterval  time.Duration
	ElectionTicks int
	// Configure, if set, adjusts each host's config before it starts.
	Configure func(*multiraft.Config)
	// WrapFS, if set, wraps each node's filesystem as its engine sees it
	// (to inject latency or faults); crash images are still taken of the
	// filesystem underneath.
	WrapFS func(node multiraft.NodeID, fs vfs.FS) vfs.FS
	// Logger defaults to errors only.
	Logger *slog.Logger
}

// Cluster is N hosts in one process.
type Cluster struct {
	t     testing.TB
	opts  Options
	Net   *Network
	mu    sync.Mutex
	nodes map[multiraft.NodeID]*Node
	rng   *rand.Rand
}

// Node is one host and its storage.
type Node struct {
	ID  multiraft.NodeID
	fs  vfs.FS
	dir string

	// mu guards eng and host, which Stop, Restart and Crash replace while
	// other goroutines use them.
	mu   sync.Mutex
	eng  *engine.Engine
	host *multiraft.Host
}

// Host returns the node's running host, or nil if it is stopped.
func (n *Node) Host() *multiraft.Host {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.host
}

// Engine returns the node's open engine, or nil if it is stopped.
func (n *Node) Engine() *engine.Engine {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.eng
}

// Running reports whether the node's host is up.
func (n *Node) Running() bool { return n.Host() != nil }

func (n *Node) set(eng *engine.Engine, h *multiraft.Host) {
	n.mu.Lock()
	n.eng, n.host = eng, h
	n.mu.Unlock()
}

// shutdown stops the host and closes the engine, if running.
func (n *Node) shutdown() error {
	n.mu.Lock()
	eng, h := n.eng, n.host
	n.eng, n.host = nil, nil
	n.mu.Unlock()
	if h == nil {
		return nil
	}
	h.Stop()
	return eng.Close()
}

// New starts a cluster of opts.Nodes hosts (IDs 1..N) and stops it when the
// test ends.
func New(t testing.TB, opts Options) *Cluster {
	t.Helper()
	if opts.TickInterval == 0 {
		opts.TickInterval = 20 * time.Millisecond
	}
	if opts.ElectionTicks == 0 {
		opts.ElectionTicks = 10
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	}
	c := &Cluster{
		t:     t,
		opts:  opts,
		Net:   NewNetwork(opts.Seed),
		nodes: make(map[multiraft.NodeID]*Node),
		rng:   rand.New(rand.NewPCG(opts.Seed, opts.Seed^0xabcdef)),
	}
	t.Cleanup(c.Close)
	for i := 1; i <= opts.Nodes; i++ {
		id := multiraft.NodeID(i)
		n := &Node{ID: id}
		switch opts.Storage {
		case InMemory:
			n.fs, n.dir = vfs.NewMem(), "store"
		case Crashable:
			n.fs, n.dir = vfs.NewCrashableMem(), "store"
		case Disk:
			n.fs, n.dir = vfs.Default, filepath.Join(t.TempDir(), fmt.Sprintf("node%d", i))
		}
		c.nodes[id] = n
		if err := c.start(n); err != nil {
			t.Fatal(err)
		}
	}
	return c
}

// Node returns node id.
func (c *Cluster) Node(id multiraft.NodeID) *Node {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[id]
}

// NodeIDs returns every node's ID, in order.
func (c *Cluster) NodeIDs() []multiraft.NodeID {
	ids := make([]multiraft.NodeID, 0, c.opts.Nodes)
	for i := 1; i <= c.opts.Nodes; i++ {
		ids = append(ids, multiraft.NodeID(i))
	}
	return ids
}

func (c *Cluster) start(n *Node) error {
	fs := n.fs
	if c.opts.WrapFS != nil {
		fs = c.opts.WrapFS(n.ID, fs)
	}
	eng, err := engine.Open(engine.Options{
		Dir: n.dir, FS: fs, CacheSize: 8 << 20, MemTableSize: 4 << 20, Logger: c.opts.Logger,
	})
	if err != nil {
		return fmt.Errorf("node %d: %w", n.ID, err)
	}
	cfg := multiraft.Config{
		NodeID:        n.ID,
		Engine:        eng,
		Transport:     c.Net.Endpoint(n.ID),
		TickInterval:  c.opts.TickInterval,
		ElectionTicks: c.opts.ElectionTicks,
		Logger:        c.opts.Logger,
		NewStateMachine: func(g multiraft.GroupID) (multiraft.StateMachine, error) {
			return NewLogStateMachine(eng, g), nil
		},
	}
	if c.opts.Configure != nil {
		c.opts.Configure(&cfg)
	}
	h, err := multiraft.NewHost(cfg)
	if err != nil {
		_ = eng.Close()
		return fmt.Errorf("node %d: %w", n.ID, err)
	}
	n.set(eng, h)
	c.Net.Attach(n.ID, h)
	return nil
}

// Stop stops node's host and closes its engine; its data stays.
func (c *Cluster) Stop(id multiraft.NodeID) {
	c.t.Helper()
	n := c.Node(id)
	if !n.Running() {
		return
	}
	c.Net.Detach(id)
	if err := n.shutdown(); err != nil {
		c.t.Fatalf("node %d: closing engine: %v", id, err)
	}
}

// Restart starts a stopped node over its data.
func (c *Cluster) Restart(id multiraft.NodeID) {
	c.t.Helper()
	n := c.Node(id)
	if n.Running() {
		c.t.Fatalf("node %d is running", id)
	}
	if err := c.start(n); err != nil {
		c.t.Fatal(err)
	}
}

// Crash simulates a crash of node (Crashable storage): its host stops
// receiving at once, its disk keeps only what was synced plus a random part
// of the rest, and it restarts over that.
func (c *Cluster) Crash(id multiraft.NodeID) {
	c.t.Helper()
	n := c.Node(id)
	mem, ok := n.fs.(*vfs.MemFS)
	if !ok || c.opts.Storage != Crashable {
		c.t.Fatal("Crash needs Crashable storage")
	}
	c.Net.Detach(id)
	c.mu.Lock()
	crashed := mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: c.rng.IntN(101), RNG: c.rng})
	c.mu.Unlock()
	_ = n.shutdown()
	n.fs = crashed
	if err := c.start(n); err != nil {
		c.t.Fatal(err)
	}
}

// CrashImage returns what node's disk would hold if it crashed now (only
// synced data, plus a random part of the rest), without stopping it. It is
// safe to call from inside the node's own goroutines (testing knobs).
func (c *Cluster) CrashImage(id multiraft.NodeID) vfs.FS {
	n := c.Node(id)
	mem, ok := n.fs.(*vfs.MemFS)
	if !ok || c.opts.Storage != Crashable {
		panic("CrashImage needs Crashable storage")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return mem.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: c.rng.IntN(101), RNG: c.rng})
}

// RestartFrom stops node and restarts it over image (from CrashImage).
func (c *Cluster) RestartFrom(id multiraft.NodeID, image vfs.FS) {
	c.t.Helper()
	n := c.Node(id)
	c.Net.Detach(id)
	_ = n.shutdown()
	n.fs = image
	if err := c.start(n); err != nil {
		c.t.Fatal(err)
	}
}

// Close stops every node. It is idempotent.
func (c *Cluster) Close() {
	c.Net.Close()
	for _, id := range c.NodeIDs() {
		_ = c.Node(id).shutdown()
	}
}

// ReplicaOn returns the replica ID tests give a group's replica on node.
func ReplicaOn(node multiraft.NodeID) multiraft.ReplicaID { return multiraft.MakeReplicaID(node, 1) }

// Bootstrap creates group with a voter on each of nodes.
func (c *Cluster) Bootstrap(group multiraft.GroupID, nodes ...multiraft.NodeID) {
	c.t.Helper()
	var replicas []multiraft.Replica
	for _, n := range nodes {
		replicas = append(replicas, multiraft.Replica{ID: ReplicaOn(n)})
	}
	for _, n := range nodes {
		if err := c.Node(n).Host().Bootstrap(group, replicas); err != nil {
			c.t.Fatal(err)
		}
	}
}

// Leader returns the node whose replica leads group in the highest term
// seen, or an error if no running replica is leader.
func (c *Cluster) Leader(group multiraft.GroupID) (multiraft.NodeID, error) {
	var leader multiraft.NodeID
	var term uint64
	for _, id := range c.NodeIDs() {
		h := c.Node(id).Host()
		if h == nil {
			continue
		}
		st, ok := h.Status(group)
		if ok && st.State == raft.StateLeader && st.Term >= term {
			leader, term = id, st.Term
		}
	}
	if leader == 0 {
		return 0, fmt.Errorf("group %d has no leader", group)
	}
	return leader, nil
}

// WaitLeader waits until group has a leader and returns its node.
func (c *Cluster) WaitLeader(group multiraft.GroupID) multiraft.NodeID {
	c.t.Helper()
	var leader multiraft.NodeID
	testutil.SucceedsSoon(c.t, func() error {
		var err error
		leader, err = c.Leader(group)
		return err
	})
	return leader
}

// Propose proposes cmd to group at its current leader, retrying while the
// proposal is certainly not applied (no leader yet, leadership moved), until
// ctx ends. It returns the result or the last error (ambiguous errors are
// returned at once: the command may have been applied).
func (c *Cluster) Propose(ctx context.Context, group multiraft.GroupID, cmd []byte) (multiraft.Result, error) {
	for {
		leader, err := c.Leader(group)
		if err == nil {
			attemptCtx, cancel := context.WithTimeout(ctx, 2*time.Second)
			var res multiraft.Result
			if h := c.Node(leader).Host(); h != nil {
				res, err = h.ProposeAndWait(attemptCtx, group, cmd)
			} else {
				err = errors.New("leader stopped")
			}
			cancel()
			if err == nil || multiraft.IsAmbiguous(err) {
				return res, err
			}
		}
		select {
		case <-ctx.Done():
			return multiraft.Result{}, fmt.Errorf("proposing to group %d: %w (last error: %v)", group, ctx.Err(), err)
		case <-time.After(5 * time.Millisecond):
		}
	}
}
