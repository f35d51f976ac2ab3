// Copyright 2026 The Flotilla Authors. All rights reserved.

package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/flotilladb/flotilla"
	"github.com/flotilladb/flotilla/engine"
	"github.com/flotilladb/flotilla/internal/diskfault"
	"github.com/flotilladb/flotilla/internal/testutil"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"github.com/flotilladb/flotilla/server"
)

// writeOps are the kinds of write, each applied through kv with a key of
// its own (n numbers the attempt).
var writeOps = []struct {
	name string
	do   func(ctx context.Context, kv flotilla.KV, n string) error
}{
	{"put", func(ctx context.Context, kv flotilla.KV, n string) error {
		return kv.Put(ctx, []byte("put-"+n), []byte(n))
	}},
	{"delete", func(ctx context.Context, kv flotilla.KV, n string) error {
		_, err := kv.Delete(ctx, []byte("put-"+n))
		return err
	}},
	{"delete-range", func(ctx context.Context, kv flotilla.KV, n string) error {
		_, err := kv.DeleteRange(ctx, []byte("none-"+n), []byte("none-"+n+"~"))
		return err
	}},
	{"cas", func(ctx context.Context, kv flotilla.KV, n string) error {
		_, err := kv.CompareAndSwap(ctx, []byte("cas-"+n), flotilla.ExpectAbsent(), []byte(n))
		return err
	}},
	{"batch", func(ctx context.Context, kv flotilla.KV, n string) error {
		_, err := kv.Batch(ctx, flotilla.PutOp([]byte("batch-"+n), []byte(n)), flotilla.DeleteOp([]byte("none-"+n)))
		return err
	}},
}

func httpText(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func httpGet(t *testing.T, url string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	return resp.StatusCode, body
}

// TestDiskFullAlarm (TESTING.md scenario 26): node 1 leads every range;
// node 2 holds no replica and forwards. When node 1's free disk space
// falls below its reserve it raises NOSPACE: every kind of write fails at
// once with ErrNoSpace, not applied, whether sent to node 1, through node
// 2's gateway or by a client; reads are served; /health, the node's status
// and the cluster's store list show the alarm. It stays raised until the
// space is back above the reserve with a margin, then clears by itself,
// and every acknowledged write is there, also after a restart.
func TestDiskFullAlarm(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const reserve = 1 << 30
	const total = 100 << 30
	fs := diskfault.New(vfs.Default)
	fs.SetAvailable(10<<30, total)
	dir1 := t.TempDir()
	cfg1 := server.Config{
		Dir: dir1, Bootstrap: true, ReplicationFactor: 1, PlacementReplicationFactor: 1, DiskReserve: reserve,
		Testing: &server.TestingKnobs{FS: fs, DiskCheckInterval: 10 * time.Millisecond},
	}
	n1 := openNode(t, cfg1)
	if err := n1.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	n2 := openNode(t, server.Config{Dir: t.TempDir(), Join: []string{n1.Addr()}, ReplicationFactor: 1, PlacementReplicationFactor: 1})
	if err := n2.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	client, err := flotilla.New(flotilla.Config{Endpoints: []string{n2.Addr()}})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	paths := []struct {
		name string
		kv   flotilla.KV
	}{{"node 1", n1}, {"node 2's gateway", n2}, {"a client of node 2", client}}

	var acked []string // keys whose put was acknowledged
	put := func(kv flotilla.KV, key string) error {
		err := kv.Put(ctx, []byte(key), []byte(key))
		if err == nil {
			acked = append(acked, key)
		}
		return err
	}
	for i, p := range paths {
		for _, op := range writeOps {
			if err := op.do(ctx, p.kv, fmt.Sprintf("ok-%d", i)); err != nil {
				t.Fatalf("%s through %s: %v", op.name, p.name, err)
			}
		}
		if err := put(p.kv, fmt.Sprintf("before-%d", i)); err != nil {
			t.Fatal(err)
		}
	}

	// The disk fills up.
	fs.SetAvailable(reserve/2, total)
	testutil.SucceedsSoon(t, func() error {
		if a := n1.Alarms(); !slices.Equal(a, []string{server.AlarmNoSpace}) {
			return fmt.Errorf("node 1's alarms: %v", a)
		}
		return nil
	})
	if a := n2.Alarms(); len(a) != 0 {
		t.Fatalf("node 2's alarms: %v", a)
	}
	for i, p := range paths {
		for _, op := range writeOps {
			start := time.Now()
			err := op.do(ctx, p.kv, fmt.Sprintf("full-%d", i))
			if !errors.Is(err, flotilla.ErrNoSpace) || !errors.Is(err, flotilla.ErrNotApplied) || !strings.Contains(err.Error(), "no space") {
				t.Fatalf("%s through %s while the disk is full: %v, want ErrNoSpace, not applied", op.name, p.name, err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Fatalf("%s through %s took %v to fail; want it at once", op.name, p.name, d)
			}
		}
		for _, key := range acked {
			if v, err := p.kv.Get(ctx, []byte(key)); err != nil || string(v) != key {
				t.Fatalf("get %s through %s while the disk is full: %q, %v", key, p.name, v, err)
			}
		}
		if kvs, err := p.kv.Scan(ctx, []byte("before-"), []byte("before-~"), flotilla.ScanOptions{}); err != nil || len(kvs) != len(paths) {
			t.Fatalf("scan through %s while the disk is full: %v, %v", p.name, kvs, err)
		}
	}
	// /health: 503 with the alarm, unless excluded; node 2 is healthy.
	if code, body := httpGet(t, "http://"+n1.HTTPAddr()+"/health"); code != http.StatusServiceUnavailable || body["status"] != "alarm" || fmt.Sprint(body["alarms"]) != "[NOSPACE]" {
		t.Fatalf("node 1 /health: %d %v", code, body)
	}
	if code, body := httpGet(t, "http://"+n1.HTTPAddr()+"/health?exclude=NOSPACE"); code != http.StatusOK || fmt.Sprint(body["alarms"]) != "[NOSPACE]" {
		t.Fatalf("node 1 /health?exclude=NOSPACE: %d %v", code, body)
	}
	if m := httpText(t, "http://"+n1.HTTPAddr()+"/metrics"); !strings.Contains(m, "flotilla_alarm_nospace 1\n") || !strings.Contains(m, fmt.Sprintf("flotilla_store_disk_reserve_bytes %d\n", reserve)) {
		t.Fatalf("node 1 /metrics lacks the alarm:\n%s", m)
	}
	if code, body := httpGet(t, "http://"+n2.HTTPAddr()+"/health"); code != http.StatusOK {
		t.Fatalf("node 2 /health: %d %v", code, body)
	}
	if st := n1.Status(false); !slices.Equal(st.GetAlarms(), []string{server.AlarmNoSpace}) || st.GetDisk().GetReserveBytes() != reserve {
		t.Fatalf("node 1 status: alarms %v, disk %v", st.GetAlarms(), st.GetDisk())
	}
	pc := placementClient(t, n2)
	testutil.SucceedsSoon(t, func() error {
		resp, err := pc.ListStores(ctx, &flotillapb.ListStoresRequest{})
		if err != nil {
			return err
		}
		for _, s := range resp.GetStores() {
			want := []string(nil)
			if s.GetNode().GetNodeId() == n1.NodeID() {
				want = []string{server.AlarmNoSpace}
			}
			if got := s.GetStats().GetAlarms(); !slices.Equal(got, want) {
				return fmt.Errorf("store %d's alarms: %v, want %v", s.GetNode().GetNodeId(), got, want)
			}
		}
		return nil
	})

	// Some space is freed, not enough to clear the alarm (hysteresis).
	fs.SetAvailable(reserve+reserve/8, total)
	testutil.SucceedsSoon(t, func() error {
		if got := n1.Status(false).GetDisk().GetAvailableBytes(); got != reserve+reserve/8 {
			return fmt.Errorf("node 1 saw %d bytes free", got)
		}
		return nil
	})
	if a := n1.Alarms(); len(a) != 1 {
		t.Fatalf("alarm cleared at %d bytes free with a reserve of %d", reserve+reserve/8, reserve)
	}
	// Enough space: the alarm clears by itself and writes go through.
	fs.SetAvailable(2*reserve, total)
	testutil.SucceedsSoon(t, func() error {
		if a := n1.Alarms(); len(a) != 0 {
			return fmt.Errorf("node 1's alarms: %v", a)
		}
		return nil
	})
	for i, p := range paths {
		for _, op := range writeOps {
			if err := op.do(ctx, p.kv, fmt.Sprintf("again-%d", i)); err != nil {
				t.Fatalf("%s through %s once space returned: %v", op.name, p.name, err)
			}
		}
		if err := put(p.kv, fmt.Sprintf("after-%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if code, body := httpGet(t, "http://"+n1.HTTPAddr()+"/health"); code != http.StatusOK || body["alarms"] != nil {
		t.Fatalf("node 1 /health once space returned: %d %v", code, body)
	}

	// Every acknowledged write is there after a restart.
	_ = client.Close()
	_ = n2.Close()
	_ = n1.Close()
	cfg1.Testing = nil
	n1 = openNode(t, cfg1)
	if err := n1.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	for _, key := range acked {
		if v, err := n1.Get(ctx, []byte(key)); err != nil || string(v) != key {
			t.Fatalf("get %s after restart: %q, %v", key, v, err)
		}
	}
}

// TestStoreWriteFailureStopsNode: a write the disk refuses all the same
// (ENOSPC on the raft log's WAL) stops the node, with the reason in
// FailErr, instead of leaving it up and serving nothing; every write
// acknowledged before is there when the node is restarted with room.
func TestStoreWriteFailureStopsNode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	fs := diskfault.New(vfs.Default)
	cfg := server.Config{Dir: t.TempDir(), Bootstrap: true, Testing: &server.TestingKnobs{FS: fs, DiskCheckInterval: 10 * time.Millisecond}}
	n := openNode(t, cfg)
	if err := n.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	var acked []string
	for i := range 20 {
		key := fmt.Sprintf("k%02d", i)
		if err := n.Put(ctx, []byte(key), []byte(key)); err != nil {
			t.Fatal(err)
		}
		acked = append(acked, key)
	}
	if n.FailErr() != nil {
		t.Fatalf("FailErr before any failure: %v", n.FailErr())
	}
	fs.SetFullMatching(true, diskfault.WAL)
	err := n.Put(ctx, []byte("lost"), []byte("v"))
	if err == nil {
		t.Fatal("a put whose log write failed was acknowledged")
	}
	select {
	case <-n.Failed():
	case <-ctx.Done():
		t.Fatalf("the node did not stop after its store failed (put: %v)", err)
	}
	if err := n.FailErr(); err == nil || !strings.Contains(err.Error(), "no space left on device") || !strings.Contains(err.Error(), "store") {
		t.Fatalf("FailErr: %v, want the store's failure with ENOSPC", err)
	}
	if err := n.Put(ctx, []byte("after"), []byte("v")); err == nil {
		t.Fatal("a put after the node stopped succeeded")
	}
	_ = n.Close()

	cfg.Testing = nil
	n = openNode(t, cfg)
	if err := n.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	for _, key := range acked {
		if v, err := n.Get(ctx, []byte(key)); err != nil || string(v) != key {
			t.Fatalf("get %s after restart: %q, %v", key, v, err)
		}
	}
}

// TestStoreInUse: a second node over a store this process has open fails
// to open, saying so, and the first goes on.
func TestStoreInUse(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dir := t.TempDir()
	n := openNode(t, server.Config{Dir: dir, Bootstrap: true})
	if err := n.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	_, err := server.Open(ctx, server.Config{Dir: dir, ListenAddr: "127.0.0.1:0", HTTPAddr: "off", Logger: quietLogger()})
	if !errors.Is(err, engine.ErrStoreInUse) || !strings.Contains(err.Error(), "store in use by this process") {
		t.Fatalf("second Open: %v, want ErrStoreInUse", err)
	}
	if err := n.Put(ctx, []byte("k"), []byte("v")); err != nil {
		t.Fatalf("put after a second Open failed: %v", err)
	}
}
