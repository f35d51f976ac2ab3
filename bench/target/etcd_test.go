// Copyright 2026 The Flotilla Authors. All rights reserved.

package target_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flotilladb/flotilla/bench/target"
	"github.com/flotilladb/flotilla/internal/testutil"
)

// etcdPeerDir is the module that builds etcd's server (bench/peers/etcd).
const etcdPeerDir = "../peers/etcd"

// TestEtcd builds etcd's server from bench/peers/etcd, starts one member
// on loopback, and runs the Target operations, CPU and Describe against it
// through NewEtcd. The build takes 30-50 s with an empty build cache (a
// second or two after), so -short skips it; it skips too if etcd's modules
// cannot be downloaded.
func TestEtcd(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds etcd's server (30-50 s with an empty build cache)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	bin := buildEtcd(t, ctx)
	clientAddr := startEtcd(t, ctx, bin)

	e, err := target.NewEtcd(ctx, []string{clientAddr}, target.EtcdOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	roundTrip(t, ctx, e, "k")
	desc := e.Describe(ctx)
	if desc["kind"] != "etcd" || desc["members"] != 1 || desc["nodes"] != 1 || desc["fsync"] != true || desc["describe_error"] != nil ||
		!strings.HasPrefix(fmt.Sprint(desc["version"]), "3.6.") {
		t.Errorf("Describe: %v", desc)
	}
	cpuGrows(t, ctx, e, 30*time.Second)
	closeTwice(t, e)

	// With the metrics URL given.
	withURL, err := target.NewEtcd(ctx, []string{"http://" + clientAddr},
		target.EtcdOptions{MetricsURLs: []string{"http://" + clientAddr + "/metrics"}, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer withURL.Close()
	if desc := withURL.Describe(ctx); desc["fsync"] != false {
		t.Errorf("Describe with NoSync: %v", desc)
	}
	cpuGrows(t, ctx, withURL, 30*time.Second)
	closeTwice(t, withURL)
}

// TestEtcdRefuses checks that NewEtcd fails without endpoints, with bad
// options, and when nothing answers; it needs no etcd.
func TestEtcdRefuses(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := target.NewEtcd(ctx, nil, target.EtcdOptions{}); err == nil {
		t.Error("no endpoints: want an error")
	}
	if _, err := target.NewEtcd(ctx, []string{"127.0.0.1:1"}, target.EtcdOptions{MetricsURLs: []string{"nonsense"}, RequestTimeout: -1}); err == nil ||
		!strings.Contains(err.Error(), "nonsense") || !strings.Contains(err.Error(), "RequestTimeout") {
		t.Errorf("bad options: %v; want both problems reported", err)
	}
	dctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	dead := freeAddr(t)
	if _, err := target.NewEtcd(dctx, []string{dead}, target.EtcdOptions{}); err == nil || !strings.Contains(err.Error(), dead) {
		t.Errorf("nothing listening: %v; want an error naming %s", err, dead)
	}
}

// buildEtcd builds bench/peers/etcd into the test's directory and returns
// the binary's path. It skips the test if etcd's modules are neither in
// the module cache nor downloadable; a failed build is a failure.
func buildEtcd(t *testing.T, ctx context.Context) string {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("no go command to build etcd with: %v", err)
	}
	run := func(args ...string) ([]byte, error) {
		cmd := exec.CommandContext(ctx, goBin, args...)
		cmd.Dir = etcdPeerDir
		return cmd.CombinedOutput()
	}
	start := time.Now()
	if out, err := run("mod", "download"); err != nil {
		t.Skipf("etcd's modules are not in the module cache and cannot be downloaded (no network?): %v\n%s", err, out)
	}
	bin := filepath.Join(t.TempDir(), "etcd")
	if out, err := run("build", "-o", bin, "."); err != nil {
		t.Fatalf("building etcd in %s: %v\n%s", etcdPeerDir, err, out)
	}
	t.Logf("built etcd in %v", time.Since(start).Round(time.Millisecond))
	return bin
}

// startEtcd starts a single-member etcd cluster on free loopback ports,
// waits until it reports itself healthy, and returns its client address
// (HOST:PORT). The member is killed when the test ends.
func startEtcd(t *testing.T, ctx context.Context, bin string) string {
	t.Helper()
	dir := t.TempDir()
	logPath := filepath.Join(dir, "etcd.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	clientURL, peerURL := "http://"+freeAddr(t), "http://"+freeAddr(t)
	cmd := exec.Command(bin,
		"--name", "bench",
		"--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", clientURL, "--advertise-client-urls", clientURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "bench="+peerURL, "--initial-cluster-state", "new",
		"--log-level", "warn")
	// A file, not a buffer: no goroutine copies the output.
	cmd.Stdout, cmd.Stderr = logFile, logFile
	dieWithTest(cmd)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
		if t.Failed() {
			if log, err := os.ReadFile(logPath); err == nil {
				t.Logf("etcd's log:\n%s", log)
			}
		}
	})

	// Healthy: /health says {"health":"true"}, which takes a leader and a
	// committed entry.
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: time.Second}
	var exitErr error
	exitedEarly := false
	if err := testutil.SucceedsWithinErr(30*time.Second, func() error {
		select {
		case exitErr = <-exited:
			exited <- exitErr // for the cleanup
			exitedEarly = true
			return nil
		default:
		}
		return etcdHealthy(ctx, hc, clientURL)
	}); err != nil {
		t.Fatalf("etcd at %s: %v", clientURL, err)
	}
	if exitedEarly {
		t.Fatalf("etcd exited before it was healthy: %v", exitErr)
	}
	return strings.TrimPrefix(clientURL, "http://")
}

// etcdHealthy returns nil if etcd's /health at clientURL says it is.
func etcdHealthy(ctx context.Context, hc *http.Client, clientURL string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, clientURL+"/health", nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var body struct {
		Health string `json:"health"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return fmt.Errorf("%s: %w", resp.Status, err)
	}
	if ok, _ := strconv.ParseBool(body.Health); !ok {
		return fmt.Errorf("%s: health %q", resp.Status, body.Health)
	}
	return nil
}

// freeAddr returns a loopback address with a port that was free a moment
// ago: for a server in another process to listen at, or as an address
// nothing listens at.
func freeAddr(t *testing.T) string { return testutil.FreeAddr(t) }
