// Copyright 2026 The Flotilla Authors. All rights reserved.

package shard_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/flotilladb/flotilla/internal/testcluster"
	"github.com/flotilladb/flotilla/internal/testutil"
	"github.com/flotilladb/flotilla/multiraft"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
)

// TestEnsureClosed: closed revisions are proposed on demand only (ranges
// that nobody asks do nothing), wait for the leader's writes in flight at
// or below the revision, are batched across the store's ranges (callers
// arriving during a round share the next one, one proposal per range), and
// let followers serve reads at or below them without a leader round.
func TestEnsureClosed(t *testing.T) {
	k := newKVCluster(t, clusterOptions{Options: testcluster.Options{Nodes: 3}})
	ranges := []struct {
		id         multiraft.GroupID
		start, end string
	}{{1, "", "b"}, {2, "b", "d"}, {3, "d", "f"}, {4, "f", ""}}
	for _, r := range ranges {
		k.bootstrapRange(r.id, r.start, r.end, 1, 2, 3)
		k.makeLeader(r.id, 1)
	}
	ctx := testCtx(t)
	leader := k.Store(1)
	for _, r := range ranges {
		if _, err := leader.Put(ctx, &flotillapb.PutRequest{Key: []byte(r.start + "a"), Value: []byte("v1")}); err != nil {
			t.Fatal(err)
		}
	}
	if req, rounds, props := leader.CloseStats(); req+rounds+props != 0 {
		t.Fatalf("nobody asked, yet the closer took %d requests, ran %d rounds, made %d proposals", req, rounds, props)
	}
	followerGet := func(node multiraft.NodeID, r multiraft.GroupID, key string, rev int64) (*flotillapb.GetResponse, error) {
		return k.Store(node).Get(ctx, &flotillapb.GetRequest{Header: hdr(r), Key: []byte(key), Revision: rev})
	}
	if _, err := followerGet(2, 1, "a", k.revs.Seen()); pbError(t, err).GetNotLeader() == nil {
		t.Fatalf("a follower served a read above the closed revision: %v", err)
	}

	// A write to range 1 is held in its oracle call, which handed it v
	// (so it has no revision yet as far as the range knows): closing range
	// 1 at v waits for it. Closing the other ranges does not.
	held, release := holdWrite(k)
	defer release()
	putDone := make(chan error, 1)
	go func() {
		_, err := leader.Put(ctx, &flotillapb.PutRequest{Key: []byte("a"), Value: []byte("v2")})
		putDone <- err
	}()
	v := <-held
	type answer struct {
		r      multiraft.GroupID
		closed int64
		err    error
	}
	answers := make(chan answer, 8*len(ranges))
	var wg sync.WaitGroup
	for range 8 {
		for _, r := range ranges {
			wg.Go(func() {
				c, err := leader.EnsureClosed(ctx, r.id, v)
				answers <- answer{r.id, c, err}
			})
		}
	}
	check := func(a answer) {
		t.Helper()
		if a.err != nil || a.closed < v {
			t.Fatalf("EnsureClosed(range %d, %d) = %d, %v", a.r, v, a.closed, a.err)
		}
	}
	for range 8 * (len(ranges) - 1) {
		a := <-answers
		if a.r == 1 {
			t.Fatalf("range 1 closed at %d (%v) while a write that may get %d was in flight", a.closed, a.err, v)
		}
		check(a)
	}
	select {
	case a := <-answers:
		t.Fatalf("range 1 closed at %d (%v) while a write that may get %d was in flight", a.closed, a.err, v)
	case <-time.After(20 * time.Millisecond):
	}
	release()
	if err := <-putDone; err != nil {
		t.Fatalf("the held write: %v", err)
	}
	wg.Wait()
	for range 8 {
		check(<-answers)
	}
	req, rounds, props := leader.CloseStats()
	t.Logf("%d requests, %d rounds, %d proposals", req, rounds, props)
	// (A caller that arrives once its range is closed at v needs no
	// round: it does not join.)
	if req > int64(8*len(ranges)) || props != int64(len(ranges)) {
		t.Fatalf("%d requests (at most %d) made %d proposals; want one per range, %d", req, 8*len(ranges), props, len(ranges))
	}

	// Followers serve reads at v without a leader round, and see the held
	// write (applied, not refused by the close).
	for _, node := range []multiraft.NodeID{2, 3} {
		for _, r := range ranges {
			key := r.start + "a"
			testutil.SucceedsSoon(t, func() error {
				g, err := followerGet(node, r.id, key, v)
				if err != nil {
					return err
				}
				want := "v1"
				if key == "a" {
					want = "v2"
				}
				if string(g.GetValue()) != want {
					return fmt.Errorf("node %d: %s at %d = %q, want %q", node, key, v, g.GetValue(), want)
				}
				return nil
			})
		}
	}

	// Bad requests: a revision not handed out (which fails alone: a
	// request at a revision handed out, made meanwhile, succeeds), a store
	// that does not lead, a negative revision.
	future := make(chan error, 1)
	go func() {
		_, err := leader.EnsureClosed(ctx, 3, k.revs.Seen()+100)
		future <- err
	}()
	if c, err := leader.EnsureClosed(ctx, 3, k.revs.Seen()); err != nil || c < v {
		t.Fatalf("closing at the current revision, beside a request at a future one: %d, %v", c, err)
	}
	if err := <-future; pbError(t, err).GetFutureRevision() == nil {
		t.Fatalf("closing at a future revision: %v", err)
	}
	if _, err := k.Store(2).EnsureClosed(ctx, 1, k.revs.Seen()+1); pbError(t, err).GetNotLeader() == nil {
		t.Fatalf("closing on a follower: %v", err)
	}
	if _, err := leader.EnsureClosed(ctx, 1, -1); pbError(t, err).GetInvalidArgument() == nil {
		t.Fatalf("closing at a negative revision: %v", err)
	}
	// A request at or below the closed revision costs nothing.
	_, rounds0, _ := leader.CloseStats()
	if c, err := leader.EnsureClosed(ctx, 2, v); err != nil || c < v {
		t.Fatalf("EnsureClosed at a closed revision = %d, %v", c, err)
	}
	if _, rounds1, _ := leader.CloseStats(); rounds1 != rounds0 {
		t.Fatal("a request at a closed revision ran a round")
	}
}
