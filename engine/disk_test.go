// Copyright 2026 The Flotilla Authors. All rights reserved.

package engine

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/flotilladb/flotilla/internal/diskfault"
	"github.com/flotilladb/flotilla/internal/testutil"
)

// TestStoreLockInProcess: a second Open of an open store fails with
// ErrStoreInUse naming this process, and leaves the first one working;
// once it is closed, the store opens again.
func TestStoreLockInProcess(t *testing.T) {
	dir := t.TempDir()
	e, err := Open(Options{Dir: dir, Logger: quietLogger})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(Options{Dir: dir, Logger: quietLogger})
	if !errors.Is(err, ErrStoreInUse) || !strings.Contains(err.Error(), fmt.Sprintf("store in use by this process (pid %d)", os.Getpid())) {
		t.Fatalf("second Open: %v, want ErrStoreInUse by this process", err)
	}
	// The same store by another path (a symlink to it, "dir/."): the same
	// store.
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	for _, other := range []string{link, dir + "/."} {
		if _, err := Open(Options{Dir: other, Logger: quietLogger}); !errors.Is(err, ErrStoreInUse) {
			t.Fatalf("Open by %s: %v, want ErrStoreInUse", other, err)
		}
	}
	// The failed Open must not have dropped the first one's lock.
	b := e.NewBatch()
	if err := b.Set(userKey(t, "k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	mustCommit(t, b, true)
	b.Close()
	if pid := osLockHolder(dir + "/" + lockName); pid != 0 {
		t.Fatalf("lock seen held by pid %d from its own process", pid)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e2, err := Open(Options{Dir: dir, Logger: quietLogger})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	if v, err := e2.Get(userKey(t, "k")); err != nil || string(v) != "v" {
		t.Fatalf("Get after reopen: %q, %v", v, err)
	}
	if err := e2.Close(); err != nil {
		t.Fatal(err)
	}
}

// lockHolderEnv makes the test binary a process that holds a store open
// (TestStoreLockOtherProcess starts it).
const lockHolderEnv = "FLOTILLA_TEST_LOCK_HOLDER_DIR"

// TestStoreLockHolderProcess is the other process of
// TestStoreLockOtherProcess: it opens the store, says so, and holds it
// until its stdin closes. It does nothing in a normal run.
func TestStoreLockHolderProcess(t *testing.T) {
	dir := os.Getenv(lockHolderEnv)
	if dir == "" {
		t.Skip("the helper process of TestStoreLockOtherProcess")
	}
	e, err := Open(Options{Dir: dir, Logger: quietLogger})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	fmt.Println("locked")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
}

// TestStoreLockOtherProcess: a store another process has open fails to
// open with ErrStoreInUse and that process's pid; a read-only open
// (`flotilla debug keys`) is refused alike.
func TestStoreLockOtherProcess(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestStoreLockHolderProcess$")
	cmd.Env = append(os.Environ(), lockHolderEnv+"="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || strings.TrimSpace(line) != "locked" {
		t.Fatalf("helper process: %q, %v", line, err)
	}
	want := "store in use by another process (pid " + strconv.Itoa(cmd.Process.Pid) + ")"
	for _, opts := range []Options{{Dir: dir}, {Dir: dir, ReadOnly: true}, {Dir: dir, ErrorIfNotExists: true}} {
		opts.Logger = quietLogger
		_, err = Open(opts)
		if !errors.Is(err, ErrStoreInUse) || !strings.Contains(err.Error(), want) {
			t.Fatalf("Open(%+v) while another process holds the store: %v, want %q", opts, err, want)
		}
	}
	_ = stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper process: %v", err)
	}
	e, err := Open(Options{Dir: dir, Logger: quietLogger})
	if err != nil {
		t.Fatalf("Open once the other process exited: %v", err)
	}
	_ = e.Close()
}

// TestDiskUsage: the engine reports its filesystem's space, as the FS
// says.
func TestDiskUsage(t *testing.T) {
	fs := diskfault.New(vfs.NewMem())
	e := openMem(t, fs)
	if _, err := e.DiskUsage(); !errors.Is(err, vfs.ErrUnsupported) {
		t.Fatalf("DiskUsage on a MemFS: %v, want ErrUnsupported", err)
	}
	fs.SetAvailable(10, 100)
	if u, err := e.DiskUsage(); err != nil || u.AvailBytes != 10 || u.TotalBytes != 100 {
		t.Fatalf("DiskUsage: %+v, %v", u, err)
	}
	d, err := Open(Options{Dir: t.TempDir(), Logger: quietLogger})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if u, err := d.DiskUsage(); err != nil || u.TotalBytes == 0 || u.AvailBytes > u.TotalBytes {
		t.Fatalf("DiskUsage on disk: %+v, %v", u, err)
	}
}

// TestWALWriteFailure: when the WAL cannot be written (ENOSPC), a
// pipelined commit's SyncWait reports it, the engine fails, and every
// later commit fails with ErrFailed at once instead of reaching Pebble
// (whose next commit would be fatal to the process). Reads go on, and
// after a restart on a disk with room everything synced before the
// failure is there.
func TestWALWriteFailure(t *testing.T) {
	mem := vfs.NewMem()
	fs := diskfault.New(mem)
	e := openMem(t, fs)
	b := e.NewBatch()
	if err := b.Set(userKey(t, "before"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	mustCommit(t, b, true)
	b.Close()

	fs.SetFullMatching(true, diskfault.WAL)
	b = e.NewBatch()
	if err := b.Set(userKey(t, "during"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := b.CommitPipelined(); err != nil {
		t.Fatalf("CommitPipelined: %v (the failure shows at SyncWait)", err)
	}
	if err := b.SyncWait(); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("SyncWait: %v, want ENOSPC", err)
	}
	b.Close()
	if err := e.Err(); !errors.Is(err, ErrFailed) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Err: %v, want ErrFailed and ENOSPC", err)
	}
	for _, sync := range []bool{false, true} {
		b = e.NewBatch()
		if err := b.Set(userKey(t, "after"), []byte("v")); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(sync); !errors.Is(err, ErrFailed) {
			t.Fatalf("Commit(%v) after the failure: %v, want ErrFailed", sync, err)
		}
		b.Close()
	}
	if v, err := e.Get(userKey(t, "before")); err != nil || string(v) != "v" {
		t.Fatalf("Get after the failure: %q, %v", v, err)
	}
	_ = e.Close()

	fs.SetFull(false)
	e = openMem(t, fs)
	if v, err := e.Get(userKey(t, "before")); err != nil || string(v) != "v" {
		t.Fatalf("Get after restart: %q, %v", v, err)
	}
	if _, err := e.Get(userKey(t, "after")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a refused commit is there after restart: %v", err)
	}
}

// TestFlushFailure: a memtable flush that fails for want of space fails
// the engine (Pebble would retry it while the memtables fill and commits
// stall); what was committed is there after a restart with room.
func TestFlushFailure(t *testing.T) {
	fs := diskfault.New(vfs.NewMem())
	e := openMem(t, fs)
	b := e.NewBatch()
	if err := b.Set(userKey(t, "k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	mustCommit(t, b, true)
	b.Close()
	fs.SetFullMatching(true, func(name string) bool { return strings.HasSuffix(name, ".sst") })
	// Not e.Flush: it waits until the flush succeeds, which Pebble
	// retries for as long as the disk is full.
	if _, err := e.db.AsyncFlush(); err != nil {
		t.Fatal(err)
	}
	testutil.SucceedsSoon(t, func() error {
		if err := e.Err(); !errors.Is(err, ErrFailed) || !errors.Is(err, syscall.ENOSPC) {
			return fmt.Errorf("Err: %v, want ErrFailed and ENOSPC", err)
		}
		return nil
	})
	_ = e.Close()
	fs.SetFull(false)
	e = openMem(t, fs)
	if v, err := e.Get(userKey(t, "k")); err != nil || string(v) != "v" {
		t.Fatalf("Get after restart: %q, %v", v, err)
	}
}

// TestSyncCommitWALFailure: a plain synced commit (splits, snapshots,
// membership changes commit so) whose WAL write fails returns the error and
// fails the engine; Pebble's own synced commit would end the process.
func TestSyncCommitWALFailure(t *testing.T) {
	mem := vfs.NewMem()
	fs := diskfault.New(mem)
	e := openMem(t, fs)
	fs.SetFullMatching(true, diskfault.WAL)
	b := e.NewBatch()
	if err := b.Set(userKey(t, "during"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(true); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Commit(true) on a full WAL: %v, want ENOSPC", err)
	}
	b.Close()
	if err := e.Err(); !errors.Is(err, ErrFailed) {
		t.Fatalf("Err: %v, want ErrFailed", err)
	}
	_ = e.Close()
}
