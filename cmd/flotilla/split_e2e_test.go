// Copyright 2026 The Flotilla Authors. All rights reserved.

package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flotilladb/flotilla"
	"github.com/flotilladb/flotilla/internal/testutil"
)

// TestSplitE2E: three node processes with a 24 KiB split size. Writers load
// enough data for many automatic splits while a scanner runs full scans:
// every scan returns each key at most once, in order, and every key
// acknowledged before it began. Afterwards every acknowledged write reads
// back, a final scan holds exactly the acknowledged keys (and possibly
// ones whose outcome was unknown), the ranges tile the keyspace, and every
// range's replicas report the same data hash at the same applied index.
func TestSplitE2E(t *testing.T) {
	c := newPlacementCluster(t)
	c.flags = []string{"--split-size", "24KiB", "--split-qps", "-1"}
	first := c.start()
	mustCLIPrefix(t, "", "init", "--host", first.addr)
	for range 2 {
		c.start(first.addr)
	}
	procs := c.running()
	testutil.SucceedsWithin(t, time.Minute, func() error {
		_, _, leader, err := firstRange(t, first.addr)
		if err != nil {
			return err
		}
		for _, p := range procs {
			c.storeID(p)
		}
		return errors.Join(func() error {
			if leader == 0 {
				return fmt.Errorf("no leader")
			}
			return nil
		}())
	})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cl, err := flotilla.Connect(ctx, c.addrs(procs)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()

	const (
		writers   = 4
		perWriter = 600
	)
	value := bytes.Repeat([]byte("x"), 150)
	var (
		mu      sync.Mutex
		acked   = map[string]bool{}
		unknown = map[string]bool{}
		wg      sync.WaitGroup
		failed  atomic.Pointer[error]
	)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWriter {
				// Keys spread over the keyspace, so that every range grows.
				key := fmt.Sprintf("%c/%d/%05d", 'a'+(i*7+w)%26, w, i)
				pctx, pcancel := context.WithTimeout(ctx, 10*time.Second)
				err := cl.Put(pctx, []byte(key), value)
				pcancel()
				mu.Lock()
				switch {
				case err == nil:
					acked[key] = true
				case errors.Is(err, flotilla.ErrOutcomeUnknown):
					unknown[key] = true
				default:
					e := fmt.Errorf("put %s: %w", key, err)
					failed.CompareAndSwap(nil, &e)
				}
				mu.Unlock()
				if failed.Load() != nil {
					return
				}
			}
		}()
	}
	// The scanner: full scans while the writers run.
	scanErr := make(chan error, 1)
	writersDone := make(chan struct{})
	scans := 0
	go func() {
		defer close(scanErr)
		for {
			select {
			case <-writersDone:
				return
			default:
			}
			mu.Lock()
			before := make([]string, 0, len(acked))
			for k := range acked {
				before = append(before, k)
			}
			mu.Unlock()
			sctx, scancel := context.WithTimeout(ctx, 20*time.Second)
			kvs, err := cl.Scan(sctx, nil, nil, flotilla.ScanOptions{})
			scancel()
			if err != nil {
				scanErr <- fmt.Errorf("scan %d: %w", scans, err)
				return
			}
			got := map[string]bool{}
			for i, kv := range kvs {
				if i > 0 && bytes.Compare(kvs[i-1].Key, kv.Key) >= 0 {
					scanErr <- fmt.Errorf("scan %d: key %q after %q", scans, kv.Key, kvs[i-1].Key)
					return
				}
				got[string(kv.Key)] = true
			}
			for _, k := range before {
				if !got[k] {
					scanErr <- fmt.Errorf("scan %d: acknowledged key %q missing (%d keys returned)", scans, k, len(kvs))
					return
				}
			}
			scans++
		}
	}()
	wg.Wait()
	close(writersDone)
	if err := <-scanErr; err != nil {
		t.Fatal(err)
	}
	if e := failed.Load(); e != nil {
		t.Fatal(*e)
	}
	if scans < 3 {
		t.Fatalf("only %d full scans ran during the writes", scans)
	}

	// The ranges split: many of them, tiling the keyspace.
	var ranges []e2eRangeSpan
	testutil.SucceedsWithin(t, time.Minute, func() error {
		ranges = nil
		if err := clusterJSON(t, first.addr, &ranges, "ranges"); err != nil {
			return err
		}
		if len(ranges) < 8 {
			return fmt.Errorf("%d ranges", len(ranges))
		}
		end := ""
		for _, r := range ranges {
			if r.StartKey != end && !(end == "" && r.StartKey == "0x") {
				return fmt.Errorf("range %d starts at %q, the previous ends at %q", r.RangeID, r.StartKey, end)
			}
			end = r.EndKey
			if r.LeaderStore == 0 {
				return fmt.Errorf("range %d has no leader", r.RangeID)
			}
		}
		return nil
	})
	// A manual split through the CLI; a second one at the same key is
	// refused with a clear error.
	mustCLIPrefix(t, "ID", "cluster", "split", "m/manual", "--host", first.addr)
	if _, errOut, err := cli(t, "cluster", "split", "m/manual", "--host", first.addr); err == nil || !strings.Contains(errOut, "already the start") {
		t.Fatalf("a second split at the same key: %v, stderr %q", err, errOut)
	}
	if _, errOut, err := cli(t, "cluster", "split", "0xzz", "--host", first.addr); err == nil || !strings.Contains(errOut, "bad hex") {
		t.Fatalf("a split at a malformed key: %v, stderr %q", err, errOut)
	}
	for key := range acked {
		v, err := cl.Get(ctx, []byte(key))
		if err != nil || !bytes.Equal(v, value) {
			t.Fatalf("get %s: %q, %v", key, v, err)
		}
	}
	kvs, err := cl.Scan(ctx, nil, nil, flotilla.ScanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range kvs {
		if !acked[string(kv.Key)] && !unknown[string(kv.Key)] {
			t.Fatalf("final scan: key %q was never written", kv.Key)
		}
		delete(acked, string(kv.Key))
	}
	if len(acked) > 0 {
		t.Fatalf("final scan misses %d acknowledged keys", len(acked))
	}
	// Every range's replicas agree.
	testutil.SucceedsWithin(t, time.Minute, func() error {
		type seen struct {
			index uint64
			hash  string
		}
		byRange := map[uint64][]seen{}
		ranges = nil
		if err := clusterJSON(t, first.addr, &ranges, "ranges"); err != nil {
			return err
		}
		for _, p := range procs {
			st, err := nodeStatus(p.httpAddr)
			if err != nil {
				return err
			}
			for _, r := range st.GetReplicas() {
				if r.GetKind() == "range" {
					byRange[r.GetGroupId()] = append(byRange[r.GetGroupId()], seen{r.GetHashAppliedIndex(), r.GetDataHash()})
				}
			}
		}
		if len(byRange) != len(ranges) {
			return fmt.Errorf("nodes hold %d ranges, the driver lists %d", len(byRange), len(ranges))
		}
		for id, ss := range byRange {
			if len(ss) != 3 {
				return fmt.Errorf("range %d has %d replicas", id, len(ss))
			}
			for _, s := range ss[1:] {
				if s != ss[0] {
					return fmt.Errorf("range %d: replicas at %v and %v", id, ss[0], s)
				}
			}
		}
		return nil
	})
	t.Logf("%d ranges, %d full scans during the load, %d keys", len(ranges), scans, len(kvs))
}

type e2eRangeSpan struct {
	RangeID     uint64 `json:"range_id"`
	StartKey    string `json:"start_key"`
	EndKey      string `json:"end_key"`
	LeaderStore uint64 `json:"leader_store"`
}
