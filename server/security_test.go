// Copyright 2026 The Flotilla Authors. All rights reserved.

package server_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flotilladb/flotilla"
	"github.com/flotilladb/flotilla/internal/testutil"
	"github.com/flotilladb/flotilla/rpc"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"github.com/flotilladb/flotilla/server"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// makeCerts makes a CA in dir with a node certificate for loopback and
// client certificates for users.
func makeCerts(t testing.TB, dir string, users ...string) {
	t.Helper()
	req := rpc.CertRequest{CertsDir: dir}
	if err := rpc.CreateCA(req); err != nil {
		t.Fatal(err)
	}
	if err := rpc.CreateNodeCert(req, []string{"127.0.0.1", "localhost"}); err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		if err := rpc.CreateClientCert(req, u); err != nil {
			t.Fatal(err)
		}
	}
}

func clientTLS(t testing.TB, dir, user string) *tls.Config {
	t.Helper()
	c, err := flotilla.LoadClientTLS(dir, user)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestSecureCluster runs three secure nodes in this process and checks
// who may reach what: clients of the cluster's CA reach the KV and admin
// services but not the node-only ones (raft, snapshot, join, placement
// heartbeats); clients without a certificate, or of another CA, reach
// nothing; the admin HTTPS serves metrics and health to anyone and the
// profiler only to certificate holders.
func TestSecureCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	certs, otherCA := t.TempDir(), t.TempDir()
	makeCerts(t, certs, rpc.RootUser, "alice")
	makeCerts(t, otherCA, rpc.RootUser)

	n1 := openNode(t, server.Config{Dir: t.TempDir(), CertsDir: certs, Bootstrap: true})
	nodes := []*server.Node{n1}
	for range 2 {
		nodes = append(nodes, openNode(t, server.Config{Dir: t.TempDir(), CertsDir: certs, Join: []string{n1.Addr()}}))
	}
	for _, n := range nodes {
		if err := n.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// The nodes replicate to each other over mTLS.
	testutil.SucceedsWithin(t, time.Minute, func() error {
		for i, n := range nodes {
			if got := len(n.Status(false).GetReplicas()); got != 2 {
				return fmt.Errorf("node %d holds %d replicas, want 2", i+1, got)
			}
		}
		return nil
	})

	endpoints := []string{nodes[2].Addr()}
	for _, user := range []string{rpc.RootUser, "alice"} {
		c, err := flotilla.New(flotilla.Config{Endpoints: endpoints, TLS: clientTLS(t, certs, user)})
		if err != nil {
			t.Fatal(err)
		}
		key := []byte("k-" + user)
		if err := c.Put(ctx, key, []byte(user)); err != nil {
			t.Fatalf("%s: put: %v", user, err)
		}
		if v, err := c.Get(ctx, key); err != nil || string(v) != user {
			t.Fatalf("%s: get: %q, %v", user, v, err)
		}
		_ = c.Close()
	}

	// No certificate, or one of another CA: nothing gets through.
	refused := func(what string, cfg flotilla.Config, cause string) {
		t.Helper()
		cfg.Endpoints, cfg.DialTimeout = endpoints, 500*time.Millisecond
		c, err := flotilla.New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		rctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
		if _, err := c.Get(rctx, []byte("k-root")); err == nil || !strings.Contains(err.Error(), cause) {
			t.Errorf("%s: read: %v, want a refusal mentioning %q", what, err, cause)
		}
		if err := c.Put(rctx, []byte("k-root"), []byte("forged")); err == nil || !strings.Contains(err.Error(), cause) {
			t.Errorf("%s: write: %v, want a refusal mentioning %q", what, err, cause)
		}
	}
	refused("plaintext client", flotilla.Config{}, "is a secure node")
	refused("client of another CA", flotilla.Config{TLS: clientTLS(t, otherCA, rpc.RootUser)}, "certificate signed by unknown authority")
	noCert := clientTLS(t, certs, rpc.RootUser)
	noCert.Certificates = nil
	refused("client without a certificate", flotilla.Config{TLS: noCert}, "refused this client's certificate")

	// A client certificate does not reach the node-only services.
	pool := rpc.NewPool(rpc.PoolConfig{TLS: clientTLS(t, certs, "alice")})
	defer pool.Close()
	conn, err := pool.Conn(n1.Addr())
	if err != nil {
		t.Fatal(err)
	}
	denied := func(what string, err error) {
		t.Helper()
		if status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), "node certificates") {
			t.Errorf("%s with a client certificate: %v, want PermissionDenied", what, err)
		}
	}
	stream, err := flotillapb.NewRaftClient(conn).RaftStream(ctx)
	if err == nil {
		_ = stream.Send(&flotillapb.RaftFrame{Header: &flotillapb.PeerHeader{FromNode: 2, ToNode: uint64(n1.NodeID())}})
		_, err = stream.Recv()
	}
	denied("raft stream", err)
	snap, err := flotillapb.NewRaftClient(conn).Snapshot(ctx)
	if err == nil {
		_, err = snap.CloseAndRecv()
	}
	denied("snapshot stream", err)
	_, err = flotillapb.NewNodeClient(conn).Join(ctx, &flotillapb.JoinRequest{Address: "127.0.0.1:1"})
	denied("join", err)
	_, err = flotillapb.NewPlacementClient(conn).StoreHeartbeat(ctx, &flotillapb.StoreHeartbeatRequest{})
	denied("store heartbeat", err)
	_, err = flotillapb.NewPlacementClient(conn).RangeHeartbeat(ctx, &flotillapb.RangeHeartbeatRequest{})
	denied("range heartbeat", err)
	// ... but does reach the admin ones.
	if _, err := flotillapb.NewPlacementClient(conn).ListStores(ctx, &flotillapb.ListStoresRequest{}); err != nil {
		t.Errorf("list stores with a client certificate: %v", err)
	}
	if _, err := flotillapb.NewNodeClient(conn).Status(ctx, &flotillapb.StatusRequest{}); err != nil {
		t.Errorf("node status with a client certificate: %v", err)
	}

	// Admin HTTPS.
	get := func(cfg *tls.Config, scheme, path string) (int, error) {
		hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
		defer hc.CloseIdleConnections()
		resp, err := hc.Get(scheme + "://" + n1.HTTPAddr() + path)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, nil
	}
	anon := clientTLS(t, certs, rpc.RootUser)
	anon.Certificates = nil
	for path, want := range map[string]int{"/metrics": 200, "/health": 200, "/status?hash=false": 200, "/status": 200,
		"/status?hash=true": 403, "/debug/pprof/": 403} {
		if code, err := get(anon, "https", path); err != nil || code != want {
			t.Errorf("GET %s without a client certificate: %d, %v; want %d", path, code, err, want)
		}
	}
	for _, path := range []string{"/debug/pprof/", "/status?hash=true"} {
		if code, err := get(clientTLS(t, certs, "alice"), "https", path); err != nil || code != 200 {
			t.Errorf("GET %s with a client certificate: %d, %v; want 200", path, code, err)
		}
	}
	if code, err := get(clientTLS(t, otherCA, rpc.RootUser), "https", "/metrics"); err == nil {
		t.Errorf("GET /metrics trusting another CA: %d, want a TLS error", code)
	}
	if code, err := get(nil, "http", "/metrics"); err == nil && code == 200 {
		t.Errorf("plain HTTP /metrics on a secure node: %d", code)
	}
}

// TestProtectedMode: a node without certificates listens only on loopback
// unless Insecure is set; certificates and Insecure are exclusive; a bad
// certs directory fails Open with a clear error.
func TestProtectedMode(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  server.Config
		want string
	}{
		{"all interfaces", server.Config{ListenAddr: "0.0.0.0:0", HTTPAddr: "off"}, "--insecure"},
		{"empty host", server.Config{ListenAddr: ":0", HTTPAddr: "off"}, "not a loopback address"},
		{"http on all interfaces", server.Config{ListenAddr: "127.0.0.1:0", HTTPAddr: "[::]:0"}, "HTTPAddr"},
		{"a host name", server.Config{ListenAddr: "example.com:0", HTTPAddr: "off"}, "not a loopback address"},
		{"both", server.Config{ListenAddr: "127.0.0.1:0", HTTPAddr: "off", Insecure: true, CertsDir: "x"}, "exclusive"},
		{"no certs", server.Config{ListenAddr: "127.0.0.1:0", HTTPAddr: "off", CertsDir: filepath.Join(t.TempDir(), "none")}, "certs directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Dir = t.TempDir()
			tc.cfg.Logger = quietLogger()
			n, err := server.Open(context.Background(), tc.cfg)
			if err == nil {
				_ = n.Close()
				t.Fatal("Open succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}
	for _, addr := range []string{"127.0.0.1:0", "[::1]:0", "localhost:0"} {
		cfg := server.Config{Dir: t.TempDir(), ListenAddr: addr, HTTPAddr: "off"}
		cfg.EnsureDefaults()
		if err := cfg.Validate(); err != nil {
			t.Errorf("%s: %v", addr, err)
		}
	}
	// Insecure lifts the rule (checked by Validate: the test binds only
	// to loopback).
	cfg := server.Config{Dir: "d", ListenAddr: "0.0.0.0:0", HTTPAddr: "off", Insecure: true}
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		t.Errorf("Insecure: %v", err)
	}
}
