// Copyright 2026 The Flotilla Authors. All rights reserved.

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flotilladb/flotilla"
	"github.com/flotilladb/flotilla/internal/testutil"
	"github.com/flotilladb/flotilla/placement"
	"github.com/flotilladb/flotilla/rpc"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
)

// The end-to-end tests run the real binary as separate processes on
// loopback ports chosen at random.

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// flotillaBinary builds the binary once per test run.
func flotillaBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "flotilla-e2e-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "flotilla")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// freeAddr returns a loopback address free a moment ago, for a node
// process to bind (see testutil.FreeAddr).
func freeAddr(t *testing.T) string { return testutil.FreeAddr(t) }

// proc is a node process.
type proc struct {
	t        *testing.T
	args     []string
	addr     string
	httpAddr string
	log      string
	cmd      *exec.Cmd
	done     chan struct{}
	exitErr  error
}

func startProc(t *testing.T, p *proc) {
	t.Helper()
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	p.cmd = exec.Command(flotillaBinary(t), p.args...)
	p.cmd.Stdout, p.cmd.Stderr = f, f
	if err := p.cmd.Start(); err != nil {
		f.Close()
		t.Fatal(err)
	}
	p.done = make(chan struct{})
	go func() {
		p.exitErr = p.cmd.Wait()
		f.Close()
		close(p.done)
	}()
}

func (p *proc) running() bool {
	if p.done == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

func (p *proc) kill() {
	if p.running() {
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// stop sends SIGTERM and waits for a clean exit.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	if !p.running() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if p.exitErr != nil {
			t.Errorf("node %s exited uncleanly after SIGTERM: %v\n%s", p.addr, p.exitErr, tail(p.log))
		}
	case <-time.After(30 * time.Second):
		p.kill()
		t.Errorf("node %s did not stop within 30s of SIGTERM", p.addr)
	}
}

func tail(path string) string {
	b, _ := os.ReadFile(path)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// cluster3 starts three node processes that join each other.
func cluster3(t *testing.T) []*proc {
	t.Helper()
	dir := t.TempDir()
	procs := make([]*proc, 3)
	for i := range procs {
		procs[i] = &proc{t: t, addr: freeAddr(t), httpAddr: freeAddr(t), log: filepath.Join(dir, fmt.Sprintf("node%d.log", i+1))}
	}
	join := procs[0].addr + "," + procs[1].addr + "," + procs[2].addr
	for i, p := range procs {
		p.args = []string{"start", "--store", filepath.Join(dir, fmt.Sprintf("node%d", i+1)),
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
	return procs
}

// cli runs the binary with args and returns stdout, stderr and the error.
func cli(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	// No command of a test runs for long; one that hangs must not outlive
	// the test.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, flotillaBinary(t), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

func mustCLI(t *testing.T, want string, args ...string) {
	t.Helper()
	out, errOut, err := cli(t, args...)
	if err != nil || out != want {
		t.Fatalf("flotilla %s: got %q, %v (stderr %q), want %q", strings.Join(args, " "), out, err, errOut, want)
	}
}

// nodeStatus reads a node's /status page.
func nodeStatus(httpAddr string) (*flotillapb.NodeStatus, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+httpAddr+"/status", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	st := &flotillapb.NodeStatus{}
	if err := protojson.Unmarshal(body, st); err != nil {
		return nil, fmt.Errorf("decoding /status: %w: %s", err, body)
	}
	return st, nil
}

func rangeStatus(st *flotillapb.NodeStatus) *flotillapb.ReplicaStatus {
	for _, r := range st.GetReplicas() {
		if r.GetGroupId() == uint64(placement.FirstRangeID) {
			return r
		}
	}
	return nil
}

// waitReplicated waits until every node holds a replica of the first range
// whose descriptor lists three voters.
func waitReplicated(t *testing.T, procs []*proc) {
	t.Helper()
	testutil.SucceedsWithin(t, 60*time.Second, func() error {
		for _, p := range procs {
			st, err := nodeStatus(p.httpAddr)
			if err != nil {
				return err
			}
			r := rangeStatus(st)
			if r == nil {
				return fmt.Errorf("node %s: no replica of the first range yet", p.addr)
			}
			voters := 0
			for _, rd := range r.GetDescriptor_().GetReplicas() {
				if rd.GetType() == flotillapb.ReplicaType_VOTER {
					voters++
				}
			}
			if voters != 3 {
				return fmt.Errorf("node %s: %d voters", p.addr, voters)
			}
		}
		return nil
	})
}

// leaderProc returns the process whose replica leads the first range.
func leaderProc(t *testing.T, procs []*proc) *proc {
	t.Helper()
	var leader *proc
	testutil.SucceedsWithin(t, 30*time.Second, func() error {
		for _, p := range procs {
			if !p.running() {
				continue
			}
			st, err := nodeStatus(p.httpAddr)
			if err != nil {
				continue
			}
			if r := rangeStatus(st); r != nil && r.GetReplicaId() == r.GetLeaderReplicaId() {
				leader = p
				return nil
			}
		}
		return errors.New("no leader of the first range")
	})
	return leader
}

func TestEndToEnd(t *testing.T) {
	procs := cluster3(t)
	for _, p := range procs {
		testutil.SucceedsWithin(t, 30*time.Second, func() error {
			_, err := nodeStatus(p.httpAddr)
			return err
		})
	}
	// Init once; a second init is refused.
	mustCLIPrefix(t, "cluster ", "init", "--host", procs[0].addr)
	if _, errOut, err := cli(t, "init", "--host", procs[1].addr); err == nil || !strings.Contains(errOut, "already") {
		t.Fatalf("second init: %v, stderr %q; want a refusal saying the cluster is already initialized", err, errOut)
	}
	waitReplicated(t, procs)

	t.Run("cli", func(t *testing.T) {
		h := procs[1].addr // a follower or the leader: every node is a gateway
		mustCLIPrefix(t, "OK (revision ", "kv", "put", "--host", h, "apple", "red")
		mustCLIPrefix(t, "OK (revision ", "kv", "put", "--host", h, "banana", "yellow")
		mustCLIPrefix(t, "OK (revision ", "kv", "put", "--host", h, "cherry", "dark red")
		mustCLI(t, "red\n", "kv", "get", "--host", procs[2].addr, "apple")
		mustCLI(t, "apple\tred\nbanana\tyellow\ncherry\tdark red\n", "kv", "scan", "--host", h, "a", "")
		mustCLI(t, "apple\tred\nbanana\tyellow\n", "kv", "scan", "--host", h, "a", "c")
		mustCLI(t, "apple\tred\n", "kv", "scan", "--host", h, "a", "z", "--limit", "1")
		mustCLI(t, "swapped\n", "kv", "cas", "--host", h, "apple", "red", "green")
		mustCLI(t, "not swapped: current value \"green\"\n", "kv", "cas", "--host", h, "apple", "red", "blue")
		mustCLI(t, "swapped\n", "kv", "cas", "--host", h, "--expect-absent", "date", "brown")
		mustCLI(t, "not swapped: current value \"brown\"\n", "kv", "cas", "--host", h, "--expect-absent", "date", "x")
		mustCLIPrefix(t, "deleted (revision ", "kv", "del", "--host", h, "date")
		if _, errOut, err := cli(t, "kv", "get", "--host", h, "date"); err == nil || !strings.Contains(errOut, "not found") {
			t.Fatalf("get of a deleted key: %v, %q", err, errOut)
		}
		// Stores report to the placement driver every second.
		testutil.SucceedsWithin(t, 30*time.Second, func() error {
			out, errOut, err := cli(t, "cluster", "status", "--host", procs[2].addr)
			if err != nil || strings.Count(out, " yes ") != 3 {
				return fmt.Errorf("cluster status: %v %q\n%s", err, errOut, out)
			}
			return nil
		})
		testutil.SucceedsWithin(t, 30*time.Second, func() error {
			out, errOut, err := cli(t, "cluster", "ranges", "--host", procs[1].addr, "--format", "json")
			if err != nil {
				return fmt.Errorf("cluster ranges: %v %q", err, errOut)
			}
			var ranges []struct {
				RangeID     uint64 `json:"range_id"`
				LeaderStore uint64 `json:"leader_store"`
				ConfVer     uint64 `json:"conf_ver"`
				Keys        int64  `json:"keys"`
				Replicas    []struct {
					StoreID uint64 `json:"store_id"`
					Type    string `json:"type"`
				} `json:"replicas"`
			}
			if err := json.Unmarshal([]byte(out), &ranges); err != nil {
				return fmt.Errorf("cluster ranges JSON: %v\n%s", err, out)
			}
			if len(ranges) != 1 || ranges[0].RangeID != uint64(placement.FirstRangeID) || ranges[0].LeaderStore == 0 ||
				len(ranges[0].Replicas) != 3 || ranges[0].Keys != 3 {
				return fmt.Errorf("cluster ranges: %s", out)
			}
			return nil
		})
		if _, errOut, err := cli(t, "cluster", "ranges", "--host", h, "--format", "yaml"); err == nil || !strings.Contains(errOut, "--format") {
			t.Errorf("unknown format: %v %q", err, errOut)
		}
	})

	t.Run("bad-input-cli", func(t *testing.T) {
		h := procs[0].addr
		before, _, _ := cli(t, "kv", "scan", "--host", h, "", "")
		for _, args := range [][]string{
			{"kv", "put", "--host", h, "", "v"},
			{"kv", "put", "--host", h, strings.Repeat("k", 4097), "v"},
			{"kv", "get", "--host", h, ""},
			{"kv", "scan", "--host", h, "z", "a"},
			{"kv", "scan", "--host", h, "a", "z", "--limit", "-1"},
			{"kv", "put", "--host", h, "onlykey"},
			{"kv", "put", "--no-such-flag", "k", "v"},
			{"start", "--listen-addr", "nonsense"},
		} {
			out, errOut, err := cli(t, args...)
			if err == nil || errOut == "" || strings.Contains(errOut, "panic") {
				t.Errorf("flotilla %q: exit %v, stdout %q, stderr %q; want a clear error", args, err, out, errOut)
			}
		}
		after, _, _ := cli(t, "kv", "scan", "--host", h, "", "")
		if before != after {
			t.Errorf("bad input changed the data:\nbefore %q\nafter  %q", before, after)
		}
	})

	t.Run("bad-input-grpc", func(t *testing.T) { badInputGRPC(t, procs[1].addr) })

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c, err := flotilla.Connect(ctx, procs[0].addr, procs[1].addr, procs[2].addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	t.Run("client", func(t *testing.T) {
		if err := c.Put(ctx, []byte("go/a"), []byte("1")); err != nil {
			t.Fatal(err)
		}
		if v, err := c.Get(ctx, []byte("go/a")); err != nil || string(v) != "1" {
			t.Fatalf("get: %q %v", v, err)
		}
		if _, err := c.Get(ctx, []byte("go/missing")); !errors.Is(err, flotilla.ErrKeyNotFound) {
			t.Fatalf("get missing: %v", err)
		}
		r, err := c.CompareAndSwap(ctx, []byte("go/a"), flotilla.ExpectValue([]byte("1")), []byte("2"))
		if err != nil || !r.Swapped {
			t.Fatalf("cas: %+v %v", r, err)
		}
		r, err = c.CompareAndSwap(ctx, []byte("go/a"), flotilla.ExpectAbsent(), []byte("3"))
		if err != nil || r.Swapped || string(r.Current) != "2" {
			t.Fatalf("cas expect-absent on a present key: %+v %v", r, err)
		}
		kvs, err := c.Scan(ctx, []byte("go/"), []byte("go0"), flotilla.ScanOptions{})
		if err != nil || len(kvs) != 1 || string(kvs[0].Value) != "2" {
			t.Fatalf("scan: %v %v", kvs, err)
		}
		if err := c.Put(ctx, nil, []byte("x")); !errors.Is(err, flotilla.ErrInvalidArgument) || !errors.Is(err, flotilla.ErrNotApplied) {
			t.Fatalf("put with an empty key: %v", err)
		}
	})

	// Kill -9 the leader while a client writes 1000 unique keys.
	leader := leaderProc(t, procs)
	t.Logf("leader of the first range: %s", leader.addr)
	const total = 1000
	var (
		mu    sync.Mutex
		acked []string
		wg    sync.WaitGroup
	)
	killAt := make(chan struct{})
	var killOnce sync.Once
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := range total {
			key := fmt.Sprintf("e2e/%04d", i)
			wctx, wcancel := context.WithTimeout(ctx, 5*time.Second)
			err := c.Put(wctx, []byte(key), []byte("v-"+key))
			wcancel()
			if err == nil {
				mu.Lock()
				acked = append(acked, key)
				n := len(acked)
				mu.Unlock()
				if n == 200 {
					killOnce.Do(func() { close(killAt) })
				}
			}
		}
		killOnce.Do(func() { close(killAt) })
	}()
	<-killAt
	leader.kill() // SIGKILL
	wg.Wait()
	t.Logf("%d of %d writes acknowledged", len(acked), total)
	if len(acked) < total/2 {
		t.Fatalf("only %d of %d writes acknowledged", len(acked), total)
	}
	survivors := []string{}
	for _, p := range procs {
		if p != leader {
			survivors = append(survivors, p.addr)
		}
	}
	checkAcked(t, ctx, survivors, acked)

	// Restart the killed node: it catches up and serves every key itself.
	startProc(t, leader)
	checkAcked(t, ctx, []string{leader.addr}, acked)

	// Every replica reports the same data hash at the same applied index.
	testutil.SucceedsWithin(t, 60*time.Second, func() error {
		var idx uint64
		var hash string
		for _, p := range procs {
			st, err := nodeStatus(p.httpAddr)
			if err != nil {
				return err
			}
			r := rangeStatus(st)
			if r == nil || r.GetDataHash() == "" {
				return fmt.Errorf("node %s: no hash yet", p.addr)
			}
			if hash == "" {
				idx, hash = r.GetHashAppliedIndex(), r.GetDataHash()
				continue
			}
			if r.GetHashAppliedIndex() != idx {
				return fmt.Errorf("applied indexes differ: %d and %d", idx, r.GetHashAppliedIndex())
			}
			if r.GetDataHash() != hash {
				t.Fatalf("at applied index %d node %s has hash %s, another node %s", idx, p.addr, r.GetDataHash(), hash)
			}
		}
		return nil
	})

	// SIGTERM stops every node cleanly.
	for _, p := range procs {
		p.stop(t)
	}
}

func mustCLIPrefix(t *testing.T, prefix string, args ...string) {
	t.Helper()
	out, errOut, err := cli(t, args...)
	if err != nil || !strings.HasPrefix(out, prefix) {
		t.Fatalf("flotilla %s: got %q, %v (stderr %q), want prefix %q", strings.Join(args, " "), out, err, errOut, prefix)
	}
}

// checkAcked reads every acknowledged key through a client of endpoints.
func checkAcked(t *testing.T, ctx context.Context, endpoints []string, acked []string) {
	t.Helper()
	c, err := flotilla.Connect(ctx, endpoints...)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var kvs []flotilla.KeyValue
	testutil.SucceedsWithin(t, 60*time.Second, func() error {
		kvs, err = c.Scan(ctx, []byte("e2e/"), []byte("e2e0"), flotilla.ScanOptions{})
		return err
	})
	got := map[string]string{}
	for _, kv := range kvs {
		got[string(kv.Key)] = string(kv.Value)
	}
	for _, k := range acked {
		if got[k] != "v-"+k {
			t.Fatalf("acknowledged key %s reads back as %q through %v", k, got[k], endpoints)
		}
		if v, err := c.Get(ctx, []byte(k)); err != nil || string(v) != "v-"+k {
			t.Fatalf("get of acknowledged key %s through %v: %q, %v", k, endpoints, v, err)
		}
	}
}

// badInputGRPC sends malformed requests straight to a node's KV service.
func badInputGRPC(t *testing.T, addr string) {
	pool := rpc.NewPool(rpc.PoolConfig{})
	defer pool.Close()
	conn, err := pool.Conn(addr)
	if err != nil {
		t.Fatal(err)
	}
	kv := flotillapb.NewKVClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	countKeys := func() int {
		resp, err := kv.Scan(ctx, &flotillapb.ScanRequest{})
		if err != nil {
			t.Fatal(err)
		}
		return len(resp.GetKvs())
	}
	before := countKeys()
	check := func(name string, err error, code codes.Code, detail func(*flotillapb.Error) bool) {
		t.Helper()
		if status.Code(err) != code {
			t.Errorf("%s: got %v, want code %v", name, err, code)
			return
		}
		fe := rpc.ErrorFromStatus(err, true)
		if !detail(fe) {
			t.Errorf("%s: detail %v", name, fe)
		}
	}
	invalid := func(e *flotillapb.Error) bool {
		return e.GetInvalidArgument() != nil && e.GetOutcome() == flotillapb.Outcome_NOT_APPLIED
	}
	_, err = kv.Put(ctx, &flotillapb.PutRequest{Key: nil, Value: []byte("v")})
	check("empty key", err, codes.InvalidArgument, invalid)
	_, err = kv.Put(ctx, &flotillapb.PutRequest{Key: bytes.Repeat([]byte("k"), 4097), Value: []byte("v")})
	check("oversize key", err, codes.InvalidArgument, invalid)
	_, err = kv.Put(ctx, &flotillapb.PutRequest{Key: []byte("big"), Value: make([]byte, 8<<20+1)})
	check("oversize value", err, codes.InvalidArgument, invalid)
	_, err = kv.Batch(ctx, &flotillapb.BatchRequest{Ops: []*flotillapb.Op{
		{Op: &flotillapb.Op_Put{Put: &flotillapb.PutOp{Key: []byte("ok"), Value: []byte("v")}}},
		{Op: &flotillapb.Op_Put{Put: &flotillapb.PutOp{Key: nil, Value: []byte("v")}}},
	}})
	check("batch with an empty key", err, codes.InvalidArgument, invalid)
	_, err = kv.Batch(ctx, &flotillapb.BatchRequest{Ops: []*flotillapb.Op{{}}})
	check("batch with an empty op", err, codes.InvalidArgument, invalid)
	_, err = kv.Scan(ctx, &flotillapb.ScanRequest{StartKey: []byte("z"), EndKey: []byte("a")})
	check("scan start > end", err, codes.InvalidArgument, func(e *flotillapb.Error) bool { return e.GetInvalidArgument() != nil })
	_, err = kv.DeleteRange(ctx, &flotillapb.DeleteRangeRequest{StartKey: []byte("z"), EndKey: []byte("a")})
	check("delete-range start > end", err, codes.InvalidArgument, invalid)
	_, err = kv.Get(ctx, &flotillapb.GetRequest{Header: &flotillapb.RequestHeader{RangeId: 999}, Key: []byte("k")})
	check("unknown range", err, codes.NotFound, func(e *flotillapb.Error) bool { return e.GetRangeNotFound().GetRangeId() == 999 })
	_, err = kv.Put(ctx, &flotillapb.PutRequest{Header: &flotillapb.RequestHeader{RangeId: 999}, Key: []byte("k"), Value: []byte("v")})
	check("unknown range (write)", err, codes.NotFound, func(e *flotillapb.Error) bool {
		return e.GetRangeNotFound() != nil && e.GetOutcome() == flotillapb.Outcome_NOT_APPLIED
	})
	if after := countKeys(); after != before {
		t.Errorf("bad input changed the number of keys from %d to %d", before, after)
	}
}

// TestMakeRun starts the demo cluster with `make run` and uses it with the
// CLI, securely with the certificates it made (and not without them).
func TestMakeRun(t *testing.T) {
	bin := flotillaBinary(t)
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make is not installed")
	}
	demoCerts := filepath.Join(t.TempDir(), "certs")
	cmd := exec.Command("make", "-s", "-C", "../..", "run", "RUN_ARGS=--base-port 0", "DEMO_CERTS="+demoCerts)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	addrs := make(chan string, 1)
	certs := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sent := false
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) >= 2 && f[0] == "certs" {
				certs <- f[1]
			}
			if !sent && len(f) >= 4 && f[0] == "node" && f[1] == "1:" && f[2] == "grpc" {
				addrs <- f[3]
				sent = true
			}
		}
		exited <- cmd.Wait()
	}()
	defer func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
			t.Error("make run did not stop within 30s of SIGTERM")
		}
	}()
	var addr string
	select {
	case addr = <-addrs:
	case err := <-exited:
		exited <- err
		t.Fatalf("make run exited: %v\n%s", err, stderr.String())
	case <-time.After(3 * time.Minute):
		t.Fatalf("make run printed no address within 3 minutes\n%s", stderr.String())
	}
	var certsDir string
	select {
	case certsDir = <-certs:
	default:
		t.Fatal("make run printed no certs directory: is the demo insecure?")
	}
	if certsDir != demoCerts {
		t.Fatalf("make run used certificates in %s, not DEMO_CERTS=%s", certsDir, demoCerts)
	}
	_ = bin
	mustCLIPrefix(t, "OK (revision ", "kv", "put", "--host", addr, "--certs-dir", certsDir, "hello", "world")
	mustCLI(t, "world\n", "kv", "get", "--host", addr, "--certs-dir", certsDir, "hello")
	if out, _, err := cli(t, "kv", "get", "--host", addr, "--dial-timeout", "1s", "--timeout", "3s", "hello"); err == nil {
		t.Errorf("a client without certificates read from the secure demo: %q", out)
	}
}

// metricValue returns the value of an unlabelled metric on a node's
// /metrics page (0 if the page does not list it).
func metricValue(t *testing.T, httpAddr, name string) float64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+httpAddr+"/metrics", nil)
	resp, err := http.DefaultClient.Do(req)
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
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("metric %s: %q: %v", name, line, err)
			}
			return f
		}
	}
	return 0
}
