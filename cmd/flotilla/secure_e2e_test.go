// Copyright 2026 The Flotilla Authors. All rights reserved.

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flotilladb/flotilla/internal/testutil"
	"github.com/flotilladb/flotilla/rpc"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestSecureEndToEnd runs a secure cluster of three processes with
// certificates made by `flotilla cert`, and uses it with every kind of
// client command; clients without the cluster's certificates, and client
// certificates on node-only services, are refused.
func TestSecureEndToEnd(t *testing.T) {
	flotillaBinary(t)
	dir := t.TempDir()
	certs, caKey, other := filepath.Join(dir, "certs"), filepath.Join(dir, "safe-ca.key"), filepath.Join(dir, "other")
	mustCLIPrefix(t, "created ", "cert", "create-ca", "--certs-dir", certs, "--ca-key", caKey)
	mustCLIPrefix(t, "created ", "cert", "create-node", "127.0.0.1", "localhost", "--certs-dir", certs, "--ca-key", caKey)
	mustCLIPrefix(t, "created ", "cert", "create-client", "root", "--certs-dir", certs, "--ca-key", caKey)
	mustCLIPrefix(t, "created ", "cert", "create-client", "alice", "--certs-dir", certs, "--ca-key", caKey)
	if _, errOut, err := cli(t, "cert", "create-client", "bob", "--certs-dir", certs); err == nil || !strings.Contains(errOut, "--ca-key") {
		t.Errorf("create-client without the CA key: %v %q", err, errOut)
	}
	if _, errOut, err := cli(t, "cert", "create-client", "alice", "--certs-dir", certs, "--ca-key", caKey); err == nil || !strings.Contains(errOut, "--overwrite") {
		t.Errorf("create-client over an existing one: %v %q", err, errOut)
	}
	mustCLIPrefix(t, "created ", "cert", "create-ca", "--certs-dir", other)
	mustCLIPrefix(t, "created ", "cert", "create-client", "root", "--certs-dir", other)
	out, errOut, err := cli(t, "cert", "list", "--certs-dir", certs, "--format", "json")
	var listed []struct {
		File    string    `json:"file"`
		Usage   string    `json:"usage"`
		Hosts   []string  `json:"hosts"`
		Expires time.Time `json:"expires"`
	}
	if err != nil || json.Unmarshal([]byte(out), &listed) != nil || len(listed) != 4 {
		t.Fatalf("cert list: %v %q\n%s", err, errOut, out)
	}
	if listed[0].File != "ca.crt" || listed[0].Usage != "ca" || listed[3].Usage != "node" || strings.Join(listed[3].Hosts, ",") != "localhost,127.0.0.1" {
		t.Errorf("cert list: %+v", listed)
	}
	// The CA is valid 10 years, the others 5.
	for i, want := range []time.Duration{rpc.DefaultCALifetime, rpc.DefaultCertLifetime, rpc.DefaultCertLifetime, rpc.DefaultCertLifetime} {
		if d := time.Until(listed[i].Expires); d < want-2*time.Hour || d > want {
			t.Errorf("%s expires in %v, want %v", listed[i].File, d.Round(time.Hour), want)
		}
	}

	procs := make([]*proc, 3)
	for i := range procs {
		procs[i] = &proc{t: t, addr: freeAddr(t), httpAddr: freeAddr(t), log: filepath.Join(dir, fmt.Sprintf("node%d.log", i+1))}
	}
	join := procs[0].addr + "," + procs[1].addr + "," + procs[2].addr
	for i, p := range procs {
		p.args = []string{"start", "--store", filepath.Join(dir, fmt.Sprintf("node%d", i+1)), "--certs-dir", certs,
			"--listen-addr", p.addr, "--http-addr", p.httpAddr, "--join", join, "--log-level", "warn"}
		startProc(t, p)
	}
	t.Cleanup(func() {
		for _, p := range procs {
			p.kill()
		}
		if t.Failed() {
			for i, p := range procs {
				t.Logf("node %d log:\n%s", i+1, tail(p.log))
			}
		}
	})
	anon := httpsClient(t, certs, "")
	for _, p := range procs {
		testutil.SucceedsWithin(t, 30*time.Second, func() error {
			code, err := httpsGet(anon, p.httpAddr, "/metrics")
			if err == nil && code != 200 {
				err = fmt.Errorf("status %d", code)
			}
			return err
		})
	}
	if _, errOut, err := cli(t, "init", "--host", procs[0].addr, "--timeout", "3s"); err == nil || !strings.Contains(errOut, "is a secure node") {
		t.Fatalf("init without certificates: %v, stderr %q; want a refusal saying the node is secure", err, errOut)
	}
	sec := []string{"--certs-dir", certs}
	mustCLIPrefix(t, "cluster ", append([]string{"init", "--host", procs[0].addr}, sec...)...)

	h := procs[1].addr
	kv := func(args ...string) []string {
		return append(append([]string{"kv"}, args...), append([]string{"--host", h}, sec...)...)
	}
	mustCLIPrefix(t, "OK (revision ", kv("put", "apple", "red")...)
	mustCLIPrefix(t, "OK (revision ", append(kv("put", "banana", "yellow"), "--user", "alice")...)
	mustCLI(t, "red\n", kv("get", "apple")...)
	mustCLI(t, "apple\tred\nbanana\tyellow\n", kv("scan", "a", "")...)
	mustCLI(t, "swapped\n", kv("cas", "apple", "red", "green")...)
	testutil.SucceedsWithin(t, 30*time.Second, func() error {
		out, errOut, err := cli(t, append([]string{"cluster", "status", "--host", procs[2].addr}, sec...)...)
		if err != nil || strings.Count(out, " yes ") != 3 {
			return fmt.Errorf("cluster status: %v %q\n%s", err, errOut, out)
		}
		return nil
	})
	if _, errOut, err := cli(t, append([]string{"cluster", "ranges", "--host", h, "--format", "json"}, sec...)...); err != nil {
		t.Errorf("cluster ranges: %v %q", err, errOut)
	}
	out, err = run(t, "bench", "--endpoints", h, "--certs-dir", certs, "--workload", "a", "--records", "100",
		"--ops", "300", "--clients", "4", "--value-size", "64", "--verify", "--quiet")
	if err != nil || !strings.Contains(out, "verify: 100 keys re-read") {
		t.Errorf("bench: %v\n%s", err, out)
	}

	// Refused: no certificates, another CA's, --user without --certs-dir.
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"plaintext", []string{"kv", "get", "--host", h, "apple"}, "is a secure node"},
		{"another CA", []string{"kv", "get", "--host", h, "apple", "--certs-dir", other}, "certificate"},
		{"missing user", []string{"kv", "get", "--host", h, "apple", "--certs-dir", certs, "--user", "bob"}, "create-client bob"},
		{"user without certs", []string{"kv", "get", "--host", h, "apple", "--user", "alice"}, "--certs-dir"},
		{"cluster plaintext", []string{"cluster", "status", "--host", h}, "is a secure node"},
	} {
		args := append(tc.args, "--dial-timeout", "1s", "--timeout", "4s")
		if out, errOut, err := cli(t, args...); err == nil || !strings.Contains(errOut, tc.want) {
			t.Errorf("%s: %v, stdout %q, stderr %q; want an error mentioning %q", tc.name, err, out, errOut, tc.want)
		}
	}

	// A client certificate on the raft port is refused.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ctls, err := rpc.LoadClientTLS(certs, "alice")
	if err != nil {
		t.Fatal(err)
	}
	pool := rpc.NewPool(rpc.PoolConfig{TLS: ctls})
	defer pool.Close()
	conn, err := pool.Conn(procs[0].addr)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := flotillapb.NewRaftClient(conn).RaftStream(ctx)
	if err == nil {
		_ = stream.Send(&flotillapb.RaftFrame{Header: &flotillapb.PeerHeader{FromNode: 2, ToNode: 1}})
		_, err = stream.Recv()
	}
	if status.Code(err) != codes.PermissionDenied {
		t.Errorf("raft stream with a client certificate: %v, want PermissionDenied", err)
	}

	// The profiler needs a certificate; health and metrics do not.
	if code, err := httpsGet(anon, procs[0].httpAddr, "/debug/pprof/"); err != nil || code != http.StatusForbidden {
		t.Errorf("pprof without a certificate: %d %v", code, err)
	}
	if code, err := httpsGet(httpsClient(t, certs, "root"), procs[0].httpAddr, "/debug/pprof/"); err != nil || code != 200 {
		t.Errorf("pprof with a certificate: %d %v", code, err)
	}
	if code, err := httpsGet(anon, procs[0].httpAddr, "/health"); err != nil || code != 200 {
		t.Errorf("health: %d %v", code, err)
	}
	for _, p := range procs {
		p.stop(t)
	}
}

// TestInsecureRefusesNonLoopback: a node without certificates does not
// start on a non-loopback address unless --insecure (it fails before it
// binds anything).
func TestInsecureRefusesNonLoopback(t *testing.T) {
	flotillaBinary(t)
	_, errOut, err := cli(t, "start", "--store", t.TempDir(), "--listen-addr", "0.0.0.0:7499", "--http-addr", "off")
	if err == nil || !strings.Contains(errOut, "--insecure") || !strings.Contains(errOut, "loopback") {
		t.Fatalf("insecure start on 0.0.0.0: %v, stderr %q", err, errOut)
	}
	_, errOut, err = cli(t, "start", "--store", t.TempDir(), "--insecure", "--certs-dir", t.TempDir())
	if err == nil || !strings.Contains(errOut, "exclusive") {
		t.Fatalf("--insecure with --certs-dir: %v, stderr %q", err, errOut)
	}
}

// httpsClient returns an HTTPS client trusting certs' CA, presenting
// user's client certificate unless user is "".
func httpsClient(t *testing.T, certs, user string) *http.Client {
	t.Helper()
	cfg, err := rpc.LoadClientTLS(certs, rpc.RootUser)
	if err != nil {
		t.Fatal(err)
	}
	if user == "" {
		cfg.Certificates = nil
	} else if cfg, err = rpc.LoadClientTLS(certs, user); err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}
	return hc
}

func httpsGet(hc *http.Client, addr, path string) (int, error) {
	resp, err := hc.Get("https://" + addr + path)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}
