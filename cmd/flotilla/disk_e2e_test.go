// Copyright 2026 The Flotilla Authors. All rights reserved.

//go:build linux

package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flotilladb/flotilla/internal/testutil"
)

// startNode starts a node process over store, at the addresses of like if
// given (a restart), and waits until it answers on its admin HTTP address.
func startNode(t *testing.T, like *proc, dir, store string, extra ...string) *proc {
	t.Helper()
	p := &proc{t: t, addr: freeAddr(t), httpAddr: freeAddr(t), log: filepath.Join(dir, "node.log")}
	if like != nil {
		p.addr, p.httpAddr = like.addr, like.httpAddr
	}
	p.args = append([]string{"start", "--store", store, "--listen-addr", p.addr, "--http-addr", p.httpAddr, "--log-level", "warn"}, extra...)
	startProc(t, p)
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			t.Logf("node %s log:\n%s", p.addr, tail(p.log))
		}
	})
	testutil.SucceedsWithin(t, 30*time.Second, func() error {
		if !p.running() {
			return errors.New("exited")
		}
		_, err := nodeStatus(p.httpAddr)
		return err
	})
	return p
}

// TestStoreInUseE2E: a second `flotilla start` over a store a running
// node holds exits non-zero at once, naming the holder's pid.
func TestStoreInUseE2E(t *testing.T) {
	dir := t.TempDir()
	store := filepath.Join(dir, "store")
	first := startNode(t, nil, dir, store)
	_, stderr, err := cli(t, "start", "--store", store, "--listen-addr", freeAddr(t), "--http-addr", freeAddr(t))
	want := fmt.Sprintf("store in use by another process (pid %d)", first.cmd.Process.Pid)
	if ee := (*exec.ExitError)(nil); !errors.As(err, &ee) || !strings.Contains(stderr, want) {
		t.Fatalf("second start: %v, stderr %q; want a non-zero exit saying %q", err, stderr, want)
	}
	first.stop(t)
}

// mountTmpfs mounts a tmpfs of size bytes in a new directory, or skips the
// test if it cannot (not root, no tmpfs). It is unmounted at cleanup,
// after the processes using it are gone (cleanups run in reverse).
func mountTmpfs(t *testing.T, size int) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tmpfs")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, fmt.Sprintf("size=%d", size)); err != nil {
		t.Skipf("cannot mount a tmpfs (%v): run as root to test a full disk", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmounting %s: %v", dir, err)
		}
	})
	return dir
}

// fill allocates a file in dir that leaves about leave bytes free.
func fill(t *testing.T, dir string, leave int64) string {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	n := int64(st.Bavail)*st.Bsize - leave
	path := filepath.Join(dir, "filler")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if n > 0 {
		if err := syscall.Fallocate(int(f.Fd()), 0, 0, n); err != nil {
			t.Fatalf("fallocate %d bytes: %v", n, err)
		}
	}
	return path
}

// TestDiskFullE2E (TESTING.md scenario 26) runs a node over a small
// tmpfs. Below its reserve it raises NOSPACE: `kv put` fails at once with
// the reason and not applied, `kv get` works, `cluster status` shows the
// alarm; freed space clears it. Without a reserve, a write the full disk
// refuses stops the node: `flotilla start` exits non-zero with the
// reason. Every acknowledged write is there after a restart.
func TestDiskFullE2E(t *testing.T) {
	flotillaBinary(t)
	tmpfs := mountTmpfs(t, 64<<20)
	dir := t.TempDir()
	store := filepath.Join(tmpfs, "store")
	p := startNode(t, nil, dir, store, "--disk-reserve", "8MiB")
	mustCLIPrefix(t, "cluster ", "init", "--host", p.addr)
	acked := map[string]string{}
	put := func(key, value string) (string, error) {
		_, stderr, err := cli(t, "kv", "put", "--host", p.addr, "--timeout", "3s", key, value)
		if err == nil {
			acked[key] = value
		}
		return stderr, err
	}
	if stderr, err := put("a", "1"); err != nil {
		t.Fatalf("put: %v %s", err, stderr)
	}

	filler := fill(t, tmpfs, 4<<20)
	testutil.SucceedsWithin(t, 20*time.Second, func() error {
		out, _, err := cli(t, "cluster", "status", "--host", p.addr)
		if err != nil || !strings.Contains(out, "NOSPACE") {
			return fmt.Errorf("cluster status: %q, %v", out, err)
		}
		return nil
	})
	start := time.Now()
	stderr, err := put("b", "2")
	if err == nil || !strings.Contains(stderr, "no space") || !strings.Contains(stderr, "not applied") || time.Since(start) > 5*time.Second {
		t.Fatalf("put with the disk full: %v after %v, stderr %q; want at once, no space, not applied", err, time.Since(start), stderr)
	}
	mustCLI(t, "1\n", "kv", "get", "--host", p.addr, "a")
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	testutil.SucceedsWithin(t, 20*time.Second, func() error {
		stderr, err := put("b", "2")
		if err != nil {
			return fmt.Errorf("put once space is freed: %v %s", err, stderr)
		}
		return nil
	})
	p.stop(t)

	// No reserve: the disk itself refuses a write.
	p = startNode(t, p, dir, store, "--disk-reserve", "-1")
	testutil.SucceedsWithin(t, 20*time.Second, func() error {
		_, _, err := cli(t, "kv", "get", "--host", p.addr, "a")
		return err
	})
	filler = fill(t, tmpfs, 0)
	value := strings.Repeat("x", 32<<10)
	for i := 0; p.running(); i++ {
		if i == 100 {
			t.Fatal("the node is still running after 100 writes to a full disk")
		}
		_, _ = put(fmt.Sprintf("full-%d", i), value)
	}
	<-p.done
	log := tail(p.log)
	if ee := (*exec.ExitError)(nil); !errors.As(p.exitErr, &ee) || !strings.Contains(log, "node stopped: its store") || !strings.Contains(log, "no space left on device") {
		t.Fatalf("node exit %v, log:\n%s\nwant a non-zero exit saying the store failed for want of space", p.exitErr, log)
	}

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	p = startNode(t, p, dir, store)
	for key, value := range acked {
		testutil.SucceedsWithin(t, 20*time.Second, func() error {
			out, stderr, err := cli(t, "kv", "get", "--host", p.addr, key)
			if err != nil || out != value+"\n" {
				return fmt.Errorf("get %s after restart: %q %v %s", key, out, err, stderr)
			}
			return nil
		})
	}
	p.stop(t)
}
