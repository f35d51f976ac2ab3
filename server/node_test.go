// Copyright 2026 The Flotilla Authors. All rights reserved.

package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flotilladb/flotilla"
	"github.com/flotilladb/flotilla/internal/testutil"
	"github.com/flotilladb/flotilla/placement"
	"github.com/flotilladb/flotilla/rpc"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"github.com/flotilladb/flotilla/server"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// quietLogger discards the nodes' logs unless FLOTILLA_TEST_LOG is set.
func quietLogger() *slog.Logger {
	if os.Getenv("FLOTILLA_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func openNode(t testing.TB, cfg server.Config) *server.Node {
	t.Helper()
	// Ports below the ephemeral range, so that a node restarted at its
	// address finds it free (see testutil.FreeAddr).
	if cfg.ListenAddr == "" {
		cfg.ListenAddr = testutil.FreeAddr(t)
	}
	if cfg.HTTPAddr == "" {
		cfg.HTTPAddr = testutil.FreeAddr(t)
	}
	if cfg.TickInterval == 0 {
		cfg.TickInterval = 20 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = quietLogger()
	}
	n, err := server.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	return n
}

func TestConfigValidate(t *testing.T) {
	cfg := server.Config{ListenAddr: "nonsense", HTTPAddr: "also:bad:addr", MaxValueSize: -1, ReplicationFactor: 9,
		Join: []string{"x"}, DialOverrides: map[string]string{"a:1": "b"}}
	cfg.EnsureDefaults()
	err := cfg.Validate()
	if err == nil {
		t.Fatal("want an error")
	}
	for _, want := range []string{"Dir is required", "ListenAddr", "HTTPAddr", "Join", "DialOverrides value", "MaxValueSize", "ReplicationFactor"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	if _, err := server.Open(context.Background(), server.Config{}); err == nil {
		t.Fatal("Open with an empty config should fail")
	}
}

// TestEmbedded runs one node in this process: it bootstraps a cluster,
// serves the KV interface, and keeps its data across a restart.
func TestEmbedded(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	n := openNode(t, server.Config{Dir: dir, Bootstrap: true})
	if err := n.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	var kv flotilla.KV = n
	if err := kv.Put(ctx, []byte("a"), []byte("1")); err != nil {
		t.Fatal(err)
	}
	res, err := kv.Batch(ctx,
		flotilla.PutOp([]byte("b"), []byte("2")),
		flotilla.CompareAndSwapOp([]byte("b"), flotilla.ExpectValue([]byte("2")), []byte("3")),
		flotilla.DeleteOp([]byte("a")),
		flotilla.PutOp([]byte("c"), []byte{}),
	)
	if err != nil || len(res) != 4 || !res[1].Swapped || !res[2].Found {
		t.Fatalf("batch: %+v %v", res, err)
	}
	kvs, err := kv.Scan(ctx, nil, nil, flotilla.ScanOptions{})
	var pairs []string
	for _, p := range kvs {
		pairs = append(pairs, fmt.Sprintf("%s=%q", p.Key, p.Value))
	}
	// One batch, one revision: b was put and swapped at it (version 2),
	// c created at it.
	if err != nil || fmt.Sprint(pairs) != `[b="3" c=""]` || kvs[0].Version != 2 || kvs[1].Version != 1 ||
		kvs[0].ModRevision != kvs[1].ModRevision || kvs[1].CreateRevision != kvs[1].ModRevision {
		t.Fatalf("scan: %+v %v", kvs, err)
	}
	kvs, err = kv.Scan(ctx, nil, nil, flotilla.ScanOptions{Reverse: true, Limit: 1})
	if err != nil || len(kvs) != 1 || string(kvs[0].Key) != "c" {
		t.Fatalf("reverse scan: %v %v", kvs, err)
	}
	if v, err := kv.Get(ctx, []byte("c")); err != nil || v == nil || len(v) != 0 {
		t.Fatalf("empty value: %q %v", v, err)
	}
	if _, err := kv.Get(ctx, []byte("a")); !errors.Is(err, flotilla.ErrKeyNotFound) {
		t.Fatalf("deleted key: %v", err)
	}
	if deleted, err := kv.DeleteRange(ctx, []byte("b"), []byte("c")); err != nil || deleted != 1 {
		t.Fatalf("delete-range: %d %v", deleted, err)
	}
	// Bad input: a clear error, nothing written.
	for name, err := range map[string]error{
		"empty key":      kv.Put(ctx, nil, []byte("v")),
		"oversize key":   kv.Put(ctx, make([]byte, flotilla.MaxKeySize+1), []byte("v")),
		"oversize value": kv.Put(ctx, []byte("k"), make([]byte, flotilla.DefaultMaxValueSize+1)),
	} {
		if !errors.Is(err, flotilla.ErrInvalidArgument) || !errors.Is(err, flotilla.ErrNotApplied) {
			t.Errorf("%s: %v", name, err)
		}
	}
	big := make([]byte, flotilla.DefaultMaxValueSize)
	if _, err := kv.Batch(ctx, flotilla.PutOp([]byte("b1"), big), flotilla.PutOp([]byte("b2"), big),
		flotilla.PutOp([]byte("b3"), big), flotilla.PutOp([]byte("b4"), big), flotilla.PutOp([]byte("b5"), big),
	); !errors.Is(err, flotilla.ErrInvalidArgument) || !errors.Is(err, flotilla.ErrNotApplied) {
		t.Errorf("oversize batch: %v", err)
	}
	if _, err := kv.Scan(ctx, []byte("z"), []byte("a"), flotilla.ScanOptions{}); !errors.Is(err, flotilla.ErrInvalidArgument) {
		t.Errorf("scan start > end: %v", err)
	}
	if _, err := kv.Scan(ctx, nil, nil, flotilla.ScanOptions{Limit: -1}); !errors.Is(err, flotilla.ErrInvalidArgument) {
		t.Errorf("negative limit: %v", err)
	}
	if _, err := n.Init(ctx); !errors.Is(err, rpc.ErrAlreadyInitialized) {
		t.Errorf("second init: %v", err)
	}
	// Admin endpoints.
	for _, path := range []string{"/health", "/status", "/metrics", "/debug/pprof/"} {
		resp, err := http.Get("http://" + n.HTTPAddr() + path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || len(body) == 0 {
			t.Errorf("%s: %d %q", path, resp.StatusCode, body)
		}
		if path == "/metrics" && !strings.Contains(string(body), "process_cpu_seconds_total") {
			t.Errorf("/metrics lacks process metrics")
		}
		if path == "/status" && !strings.Contains(string(body), `"data_hash"`) {
			t.Errorf("/status lacks the data hash: %s", body)
		}
	}

	clusterID := n.ClusterID()
	if err := n.Close(); err != nil {
		t.Fatal(err)
	}
	if err := n.Put(ctx, []byte("x"), []byte("y")); err == nil {
		t.Fatal("put on a closed node succeeded")
	}
	n = openNode(t, server.Config{Dir: dir})
	if err := n.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if n.ClusterID() != clusterID {
		t.Fatalf("cluster ID changed across a restart: %s, then %s", clusterID, n.ClusterID())
	}
	if v, err := n.Get(ctx, []byte("c")); err != nil || len(v) != 0 {
		t.Fatalf("after restart: %q %v", v, err)
	}
}

// TestJoinAndGateway joins three nodes: the first range and the placement
// group get replicas on all three; a fourth joins, gets no replica, and
// still serves reads and writes as a gateway.
func TestJoinAndGateway(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	n1 := openNode(t, server.Config{Dir: t.TempDir()})
	nodes := []*server.Node{n1}
	for range 2 {
		nodes = append(nodes, openNode(t, server.Config{Dir: t.TempDir(), Join: []string{n1.Addr()}}))
	}
	// Nothing happens before init: the joiners wait.
	if err := n1.Put(ctx, []byte("k"), []byte("v")); !errors.Is(err, flotilla.ErrUnavailable) {
		t.Fatalf("put before init: %v", err)
	}
	if _, err := n1.Init(ctx); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if err := n.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// Both groups reach three replicas, then a fourth node joins: one
	// range with a replica on each of three stores is balanced, so the
	// fourth gets none.
	testutil.SucceedsWithin(t, time.Minute, func() error {
		for i, n := range nodes {
			if len(n.Status(false).GetReplicas()) != 2 {
				return fmt.Errorf("node %d holds %v", i+1, n.Status(false).GetReplicas())
			}
		}
		return nil
	})
	nodes = append(nodes, openNode(t, server.Config{Dir: t.TempDir(), Join: []string{n1.Addr()}}))
	if err := nodes[3].WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	testutil.SucceedsWithin(t, time.Minute, func() error {
		for i, n := range nodes {
			groups := map[uint64]bool{}
			for _, r := range n.Status(false).GetReplicas() {
				groups[r.GetGroupId()] = true
				if r.GetGroupId() == uint64(placement.FirstRangeID) && len(r.GetDescriptor_().GetReplicas()) != 3 {
					return fmt.Errorf("node %d: descriptor %v", i+1, r.GetDescriptor_())
				}
			}
			want := n.NodeID() <= 3 // the first three nodes by ID, in join order
			if groups[uint64(placement.GroupID)] != want || groups[uint64(placement.FirstRangeID)] != want {
				return fmt.Errorf("node %d holds groups %v", i+1, groups)
			}
		}
		return nil
	})
	ids := map[uint64]bool{}
	for _, n := range nodes {
		ids[n.NodeID()] = true
		if n.ClusterID() != n1.ClusterID() {
			t.Fatalf("node %d is in cluster %s, want %s", n.NodeID(), n.ClusterID(), n1.ClusterID())
		}
	}
	if len(ids) != 4 {
		t.Fatalf("node IDs %v", ids)
	}
	// Every node serves every request.
	for i, n := range nodes {
		key := []byte(fmt.Sprintf("from-%d", i))
		if err := n.Put(ctx, key, key); err != nil {
			t.Fatalf("put through node %d: %v", i+1, err)
		}
		for j, m := range nodes {
			if v, err := m.Get(ctx, key); err != nil || string(v) != string(key) {
				t.Fatalf("get through node %d of a key written through node %d: %q %v", j+1, i+1, v, err)
			}
		}
	}
	var spare *server.Node // the node with no replicas
	for _, n := range nodes {
		if n.NodeID() == 4 {
			spare = n
		}
	}
	c, err := flotilla.Connect(ctx, spare.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	kvs, err := c.Scan(ctx, []byte("from-"), []byte("from."), flotilla.ScanOptions{})
	if err != nil || len(kvs) != 4 {
		t.Fatalf("scan through the replica-less node: %v %v", kvs, err)
	}

	// The placement driver's view, asked through the replica-less node
	// (which forwards to the placement group's leader): four live stores
	// once they heartbeated, and the first range with its leader.
	pool := rpc.NewPool(rpc.PoolConfig{})
	defer pool.Close()
	conn, err := pool.Conn(spare.Addr())
	if err != nil {
		t.Fatal(err)
	}
	pc := flotillapb.NewPlacementClient(conn)
	testutil.SucceedsWithin(t, 30*time.Second, func() error {
		resp, err := pc.ListStores(ctx, &flotillapb.ListStoresRequest{})
		if err != nil {
			return err
		}
		live := 0
		for _, s := range resp.GetStores() {
			if s.GetLive() {
				live++
			}
		}
		if live != 4 {
			return fmt.Errorf("%d of %d stores live", live, len(resp.GetStores()))
		}
		lr, err := pc.LookupRange(ctx, &flotillapb.LookupRangeRequest{Key: []byte("from-1")})
		if err != nil {
			return err
		}
		if lr.GetDescriptor_().GetRangeId() != uint64(placement.FirstRangeID) || lr.GetLeader() == nil || len(lr.GetDescriptor_().GetReplicas()) != 3 {
			return fmt.Errorf("lookup: %v", lr)
		}
		return nil
	})
	if _, err := pc.StoreHeartbeat(ctx, &flotillapb.StoreHeartbeatRequest{}); status.Code(err) != codes.InvalidArgument {
		t.Fatalf("a store heartbeat without a node ID: %v", err)
	}

	// The replica-less node restarts on another port, without --join: it
	// still knows its peers (saved in its store) and the cluster learns its
	// new address.
	dir4, id4 := spare.Dir(), spare.NodeID()
	if err := spare.Close(); err != nil {
		t.Fatal(err)
	}
	n4 := openNode(t, server.Config{Dir: dir4})
	if err := n4.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	if n4.NodeID() != id4 {
		t.Fatalf("restarted node has ID %d, want %d", n4.NodeID(), id4)
	}
	if v, err := n4.Get(ctx, []byte("from-0")); err != nil || string(v) != "from-0" {
		t.Fatalf("get through the restarted replica-less node: %q %v", v, err)
	}
	testutil.SucceedsWithin(t, 30*time.Second, func() error {
		for _, d := range n1.Status(false).GetNodes() {
			if d.GetNodeId() == id4 && d.GetAddress() == n4.Addr() {
				return nil
			}
		}
		return fmt.Errorf("node 1 does not know node %d's new address %s: %v", id4, n4.Addr(), n1.Status(false).GetNodes())
	})
}

// TestServerBusy: a node serving its maximum of requests turns more away at
// once with ServerBusy, not applied.
func TestServerBusy(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	entered, release := make(chan struct{}), make(chan struct{})
	var first atomic.Bool
	n := openNode(t, server.Config{Dir: t.TempDir(), Bootstrap: true, MaxInflightRequests: 1,
		Testing: &server.TestingKnobs{BeforeServe: func() {
			if first.CompareAndSwap(false, true) {
				close(entered)
				<-release
			}
		}}})
	if err := n.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- n.Put(ctx, []byte("a"), []byte("1")) }()
	<-entered
	err := n.Put(ctx, []byte("b"), []byte("2"))
	var fe *flotilla.Error
	if !errors.As(err, &fe) || fe.Detail.GetServerBusy() == nil || !errors.Is(err, flotilla.ErrNotApplied) {
		t.Fatalf("second request while the node is full: %v", err)
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := n.Put(ctx, []byte("b"), []byte("2")); err != nil {
		t.Fatalf("after the first finished: %v", err)
	}
}
