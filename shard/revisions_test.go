// Copyright 2026 The Flotilla Authors. All rights reserved.

package shard_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/flotilladb/flotilla/internal/testcluster"
	"github.com/flotilladb/flotilla/multiraft"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"github.com/flotilladb/flotilla/shard"
)

// TestRevisions: every write returns a revision above the last; a latest
// read returns one at or above every earlier write's; each key carries
// create_revision, mod_revision and version (reset by a delete); reads at
// a past revision see exactly the writes at or below it, again and again.
func TestRevisions(t *testing.T) {
	k := newKVCluster(t, clusterOptions{Options: testcluster.Options{Nodes: 3}})
	const rid = 1
	k.bootstrapRange(rid, "", "", 1, 2, 3)
	ctx := testCtx(t)
	put := func(key, value string) int64 {
		t.Helper()
		resp, err := do(k, ctx, rid, func(ctx context.Context, s *shard.Store) (*flotillapb.PutResponse, error) {
			return s.Put(ctx, &flotillapb.PutRequest{Key: []byte(key), Value: []byte(value)})
		})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetHeader().GetRevision()
	}
	get := func(key string, rev int64) *flotillapb.GetResponse {
		t.Helper()
		resp, err := do(k, ctx, rid, func(ctx context.Context, s *shard.Store) (*flotillapb.GetResponse, error) {
			return s.Get(ctx, &flotillapb.GetRequest{Key: []byte(key), Revision: rev})
		})
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	r1 := put("a", "1")
	r2 := put("a", "2")
	r3 := put("b", "x")
	if !(0 < r1 && r1 < r2 && r2 < r3) {
		t.Fatalf("revisions %d, %d, %d do not increase", r1, r2, r3)
	}
	g := get("a", 0)
	if g.GetHeader().GetRevision() < r3 || string(g.GetValue()) != "2" || g.GetCreateRevision() != r1 ||
		g.GetModRevision() != r2 || g.GetVersion() != 2 {
		t.Fatalf("latest get a = %v", g)
	}
	if g := get("a", r1); string(g.GetValue()) != "1" || g.GetModRevision() != r1 || g.GetVersion() != 1 || g.GetHeader().GetRevision() != r1 {
		t.Fatalf("get a at %d = %v", r1, g)
	}
	if g := get("b", r2); g.GetFound() {
		t.Fatalf("get b at %d, before it was written = %v", r2, g)
	}
	// A delete leaves a tombstone: the key is gone at and after it, there
	// before it; a put after it creates the key anew.
	d, err := do(k, ctx, rid, func(ctx context.Context, s *shard.Store) (*flotillapb.DeleteResponse, error) {
		return s.Delete(ctx, &flotillapb.DeleteRequest{Key: []byte("a")})
	})
	if err != nil || !d.GetFound() {
		t.Fatalf("delete a = %v, %v", d, err)
	}
	r4 := d.GetHeader().GetRevision()
	if g := get("a", r4); g.GetFound() {
		t.Fatalf("get a at the delete's revision = %v", g)
	}
	if g := get("a", r4-1); string(g.GetValue()) != "2" {
		t.Fatalf("get a just before the delete = %v", g)
	}
	r5 := put("a", "3")
	if g := get("a", 0); g.GetCreateRevision() != r5 || g.GetVersion() != 1 {
		t.Fatalf("get a recreated = %v", g)
	}
	// A scan at a revision is the snapshot at it, every time.
	scan := func(rev int64) string {
		t.Helper()
		resp, err := do(k, ctx, rid, func(ctx context.Context, s *shard.Store) (*flotillapb.ScanResponse, error) {
			return s.Scan(ctx, &flotillapb.ScanRequest{Revision: rev})
		})
		if err != nil {
			t.Fatal(err)
		}
		return kvString(resp.GetKvs())
	}
	for range 2 {
		for rev, want := range map[int64]string{r1: "a=1", r2: "a=2", r3: "a=2,b=x", r4: "b=x", r5: "a=3,b=x"} {
			if got := scan(rev); got != want {
				t.Fatalf("scan at %d = %q, want %q", rev, got, want)
			}
		}
	}
	// A revision nobody was given yet is in the future.
	_, err = do(k, ctx, rid, func(ctx context.Context, s *shard.Store) (*flotillapb.GetResponse, error) {
		return s.Get(ctx, &flotillapb.GetRequest{Key: []byte("a"), Revision: k.revs.Seen() + 1000})
	})
	if pbError(t, err).GetFutureRevision() == nil {
		t.Fatalf("get at a future revision: %v", err)
	}
	_, err = k.Store(1).Get(ctx, &flotillapb.GetRequest{Key: []byte("a"), Revision: -1})
	if pbError(t, err).GetInvalidArgument() == nil {
		t.Fatalf("get at a negative revision: %v", err)
	}
}

// TestCompaction: reads below the compacted revision fail with Compacted,
// reads at or above it are unchanged, also after a restart; compacting
// above the current revision is refused.
func TestCompaction(t *testing.T) {
	k := newKVCluster(t, clusterOptions{Options: testcluster.Options{Nodes: 3}})
	const rid = 1
	k.bootstrapRange(rid, "", "", 1, 2, 3)
	ctx := testCtx(t)
	var revs []int64
	for i := range 5 {
		resp, err := do(k, ctx, rid, func(ctx context.Context, s *shard.Store) (*flotillapb.PutResponse, error) {
			return s.Put(ctx, &flotillapb.PutRequest{Key: []byte("k"), Value: fmt.Appendf(nil, "v%d", i)})
		})
		if err != nil {
			t.Fatal(err)
		}
		revs = append(revs, resp.GetHeader().GetRevision())
	}
	at := revs[2]
	if _, err := do(k, ctx, rid, func(ctx context.Context, s *shard.Store) (*flotillapb.CompactResponse, error) {
		return s.Compact(ctx, &flotillapb.CompactRequest{Header: hdr(rid), Revision: at})
	}); err != nil {
		t.Fatal(err)
	}
	check := func() {
		t.Helper()
		for i, rev := range revs {
			g, err := do(k, ctx, rid, func(ctx context.Context, s *shard.Store) (*flotillapb.GetResponse, error) {
				return s.Get(ctx, &flotillapb.GetRequest{Key: []byte("k"), Revision: rev})
			})
			if rev < at {
				if c := pbError(t, err).GetCompacted(); c == nil || c.GetCompactRevision() != at {
					t.Fatalf("get at %d below the compaction at %d: %v, %v", rev, at, g, err)
				}
				continue
			}
			if err != nil || string(g.GetValue()) != fmt.Sprintf("v%d", i) {
				t.Fatalf("get at %d = %v, %v", rev, g, err)
			}
		}
	}
	check()
	k.waitConverged(rid, 1, 2, 3)
	for _, n := range []multiraft.NodeID{1, 2, 3} {
		k.Stop(n)
	}
	for _, n := range []multiraft.NodeID{1, 2, 3} {
		k.restart(n)
	}
	check()
	_, err := do(k, ctx, rid, func(ctx context.Context, s *shard.Store) (*flotillapb.CompactResponse, error) {
		return s.Compact(ctx, &flotillapb.CompactRequest{Header: hdr(rid), Revision: k.revs.Seen() + 1000})
	})
	if pbError(t, err).GetFutureRevision() == nil {
		t.Fatalf("compacting above the current revision: %v", err)
	}
}

// TestTxn covers every compare target and result, both branches, reads in
// a txn (at its revision, after its writes), a txn of reads only, and
// refusals: a key outside the range, an empty txn, too many ops.
func TestTxn(t *testing.T) {
	k := newKVCluster(t, clusterOptions{Options: testcluster.Options{Nodes: 3}})
	const rid = 1
	k.bootstrapRange(rid, "", "m", 1, 2, 3)
	ctx := testCtx(t)
	txn := func(req *flotillapb.TxnRequest) (*flotillapb.TxnResponse, error) {
		return do(k, ctx, rid, func(ctx context.Context, s *shard.Store) (*flotillapb.TxnResponse, error) {
			return s.Txn(ctx, req)
		})
	}
	put := func(key, value string) *flotillapb.TxnOp {
		return &flotillapb.TxnOp{Op: &flotillapb.TxnOp_Put{Put: &flotillapb.PutOp{Key: []byte(key), Value: []byte(value)}}}
	}
	getOp := func(key string) *flotillapb.TxnOp {
		return &flotillapb.TxnOp{Op: &flotillapb.TxnOp_Get{Get: &flotillapb.GetOp{Key: []byte(key)}}}
	}
	resp, err := txn(&flotillapb.TxnRequest{Success: []*flotillapb.TxnOp{put("a", "1"), put("b", "2")}})
	if err != nil || !resp.GetSucceeded() {
		t.Fatalf("txn without compares = %v, %v", resp, err)
	}
	created := resp.GetHeader().GetRevision()
	value := func(v string) *flotillapb.Compare_Value { return &flotillapb.Compare_Value{Value: []byte(v)} }
	for _, tc := range []struct {
		name string
		cmp  *flotillapb.Compare
		want bool
	}{
		{"value =", &flotillapb.Compare{Key: []byte("a"), Target: flotillapb.Compare_VALUE, Result: flotillapb.Compare_EQUAL, TargetUnion: value("1")}, true},
		{"value = other", &flotillapb.Compare{Key: []byte("a"), Target: flotillapb.Compare_VALUE, Result: flotillapb.Compare_EQUAL, TargetUnion: value("2")}, false},
		{"value !=", &flotillapb.Compare{Key: []byte("a"), Target: flotillapb.Compare_VALUE, Result: flotillapb.Compare_NOT_EQUAL, TargetUnion: value("2")}, true},
		{"value <", &flotillapb.Compare{Key: []byte("a"), Target: flotillapb.Compare_VALUE, Result: flotillapb.Compare_LESS, TargetUnion: value("2")}, true},
		{"value >", &flotillapb.Compare{Key: []byte("a"), Target: flotillapb.Compare_VALUE, Result: flotillapb.Compare_GREATER, TargetUnion: value("2")}, false},
		{"value of absent", &flotillapb.Compare{Key: []byte("kk"), Target: flotillapb.Compare_VALUE, Result: flotillapb.Compare_NOT_EQUAL, TargetUnion: value("")}, false},
		{"version =", &flotillapb.Compare{Key: []byte("a"), Target: flotillapb.Compare_VERSION, Result: flotillapb.Compare_EQUAL,
			TargetUnion: &flotillapb.Compare_Version{Version: 1}}, true},
		{"version >", &flotillapb.Compare{Key: []byte("a"), Target: flotillapb.Compare_VERSION, Result: flotillapb.Compare_GREATER,
			TargetUnion: &flotillapb.Compare_Version{Version: 1}}, false},
		{"create =", &flotillapb.Compare{Key: []byte("b"), Target: flotillapb.Compare_CREATE, Result: flotillapb.Compare_EQUAL,
			TargetUnion: &flotillapb.Compare_CreateRevision{CreateRevision: created}}, true},
		{"absent: create = 0", &flotillapb.Compare{Key: []byte("kk"), Target: flotillapb.Compare_CREATE, Result: flotillapb.Compare_EQUAL,
			TargetUnion: &flotillapb.Compare_CreateRevision{CreateRevision: 0}}, true},
		{"mod <", &flotillapb.Compare{Key: []byte("a"), Target: flotillapb.Compare_MOD, Result: flotillapb.Compare_LESS,
			TargetUnion: &flotillapb.Compare_ModRevision{ModRevision: created}}, false},
		{"mod !=", &flotillapb.Compare{Key: []byte("a"), Target: flotillapb.Compare_MOD, Result: flotillapb.Compare_NOT_EQUAL,
			TargetUnion: &flotillapb.Compare_ModRevision{ModRevision: created + 1}}, true},
	} {
		// Reads only: no revision spent, nothing written.
		resp, err := txn(&flotillapb.TxnRequest{Compares: []*flotillapb.Compare{tc.cmp},
			Success: []*flotillapb.TxnOp{getOp("a")}, Failure: []*flotillapb.TxnOp{getOp("b")}})
		if err != nil || resp.GetSucceeded() != tc.want || len(resp.GetResults()) != 1 {
			t.Fatalf("%s (reads): %v, %v", tc.name, resp, err)
		}
		want := map[bool]string{true: "1", false: "2"}[tc.want]
		if got := resp.GetResults()[0].GetGet(); string(got.GetValue()) != want {
			t.Fatalf("%s (reads): read %v, want %q", tc.name, got, want)
		}
	}
	// With writes: the branch taken writes at the txn's revision, and its
	// reads see the writes.
	cmp := &flotillapb.Compare{Key: []byte("a"), Target: flotillapb.Compare_VALUE, Result: flotillapb.Compare_EQUAL, TargetUnion: value("1")}
	resp, err = txn(&flotillapb.TxnRequest{Compares: []*flotillapb.Compare{cmp},
		Success: []*flotillapb.TxnOp{put("a", "one"), getOp("a")}, Failure: []*flotillapb.TxnOp{put("b", "failed")}})
	if err != nil || !resp.GetSucceeded() || string(resp.GetResults()[1].GetGet().GetValue()) != "one" ||
		resp.GetResults()[1].GetGet().GetModRevision() != resp.GetHeader().GetRevision() {
		t.Fatalf("txn that holds: %v, %v", resp, err)
	}
	resp, err = txn(&flotillapb.TxnRequest{Compares: []*flotillapb.Compare{cmp},
		Success: []*flotillapb.TxnOp{put("a", "again")}, Failure: []*flotillapb.TxnOp{put("b", "failed"), getOp("b")}})
	if err != nil || resp.GetSucceeded() || string(resp.GetResults()[1].GetGet().GetValue()) != "failed" {
		t.Fatalf("txn that fails: %v, %v", resp, err)
	}
	// Refused, nothing applied.
	for name, req := range map[string]*flotillapb.TxnRequest{
		"key outside": {Compares: []*flotillapb.Compare{cmp}, Success: []*flotillapb.TxnOp{put("n", "x")}},
		"empty":       {},
		"too many": {Success: func() []*flotillapb.TxnOp {
			var ops []*flotillapb.TxnOp
			for i := range flotillapb.DefaultMaxTxnOps + 1 {
				ops = append(ops, put(fmt.Sprint("k", i), "x"))
			}
			return ops
		}()},
		"unknown target": {Compares: []*flotillapb.Compare{{Key: []byte("a"), Target: 9}}, Success: []*flotillapb.TxnOp{put("a", "x")}},
	} {
		_, err := txn(req)
		if pe := pbError(t, err); pe.GetOutcome() != flotillapb.Outcome_NOT_APPLIED {
			t.Errorf("%s: %v", name, pe)
		}
	}
	g, err := do(k, ctx, rid, func(ctx context.Context, s *shard.Store) (*flotillapb.ScanResponse, error) {
		return s.Scan(ctx, &flotillapb.ScanRequest{EndKey: []byte("m")})
	})
	if err != nil || kvString(g.GetKvs()) != "a=one,b=failed" {
		t.Fatalf("after the refused txns: %v, %v", g, err)
	}
}

// interleavingCluster starts the cluster of the interleaving tests: range
// 1 on three nodes, led by node 1, with k = "old" (knobs for every store).
func interleavingCluster(t *testing.T, knobs *shard.TestingKnobs) (*kvCluster, context.Context) {
	k := newKVCluster(t, clusterOptions{Options: testcluster.Options{Nodes: 3},
		configureStore: func(_ multiraft.NodeID, c *shard.Config) { c.Testing = knobs }})
	k.bootstrapRange(1, "", "", 1, 2, 3)
	ctx := testCtx(t)
	k.makeLeader(1, 1)
	if _, err := k.Store(1).Put(ctx, &flotillapb.PutRequest{Key: []byte("k"), Value: []byte("old")}); err != nil {
		t.Fatal(err)
	}
	return k, ctx
}

// putLate puts k = "late" through node 1 in the background; the channel
// gets its error.
func putLate(ctx context.Context, k *kvCluster) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := k.Store(1).Put(ctx, &flotillapb.PutRequest{Key: []byte("k"), Value: []byte("late")})
		done <- err
	}()
	return done
}

// holdWrite arms k's oracle to hold the next revision it hands out (a
// write's) in its caller until release is called; held reports the
// revision once it is held.
func holdWrite(k *kvCluster) (held <-chan int64, release func()) {
	h := make(chan int64, 1)
	rel := make(chan struct{})
	var once sync.Once
	k.revs.SetHook(func(rev int64) {
		first := false
		once.Do(func() { first = true })
		if first {
			h <- rev
			<-rel
		}
	})
	var relOnce sync.Once
	return h, func() { relOnce.Do(func() { close(rel) }) }
}

// loseAndRegain runs the interleaving of docs/REVISIONS.md's reqTerm
// check: node 1 leads and gets a revision v for a write, then — before it
// proposes — loses leadership to node 2, which serves a read at R > v,
// and regains it; then the write proposes. It returns the read's value
// and R, and the value a read at R finds afterwards.
func loseAndRegain(t *testing.T, knobs *shard.TestingKnobs) (before, after string, r int64) {
	k, ctx := interleavingCluster(t, knobs)
	const rid = 1
	held, release := holdWrite(k)
	defer release()
	done := putLate(ctx, k)
	v := <-held
	k.revs.SetHook(nil)
	k.makeLeader(rid, 2)
	g, err := retry(ctx, func(ctx context.Context) (*flotillapb.GetResponse, error) {
		return k.Store(2).Get(ctx, &flotillapb.GetRequest{Key: []byte("k")})
	})
	if err != nil {
		t.Fatal(err)
	}
	r = g.GetHeader().GetRevision()
	if r <= v {
		t.Fatalf("read at %d, not above the held write's %d", r, v)
	}
	k.makeLeader(rid, 1)
	release()
	if err := <-done; err != nil {
		t.Logf("the held write: %v", err)
	}
	g2, err := do(k, ctx, rid, func(ctx context.Context, s *shard.Store) (*flotillapb.GetResponse, error) {
		return s.Get(ctx, &flotillapb.GetRequest{Key: []byte("k"), Revision: r})
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(g.GetValue()), string(g2.GetValue()), r
}

// TestLoseAndRegainLeadership: a write whose revision was fetched by a
// leader that then lost and regained leadership is refused at apply (its
// request term is not its entry's), so it cannot land below a read served
// in between: reading again at that read's revision gives the same
// answer. Without the check it does, and the re-read differs.
func TestLoseAndRegainLeadership(t *testing.T) {
	if before, after, r := loseAndRegain(t, nil); before != after {
		t.Fatalf("read at %d found %q, later %q", r, before, after)
	}
	t.Run("broken", func(t *testing.T) {
		before, after, r := loseAndRegain(t, &shard.TestingKnobs{UnsafeSkipRequestTermCheck: true})
		if before == after {
			t.Fatalf("without the request-term check the read at %d still found %q both times: the test does not force the interleaving", r, before)
		}
	})
}

// readWhileWriteHeld has node 1 (leader) get a revision for a write and
// hold it before proposing, then serves a latest read there; the write is
// released once the read has taken its revision. It returns the read's
// value and revision and what a read at that revision finds afterwards.
func readWhileWriteHeld(t *testing.T, knobs *shard.TestingKnobs) (before, after string, r int64) {
	k, ctx := interleavingCluster(t, knobs)
	held, release := holdWrite(k)
	defer release()
	wrote := putLate(ctx, k)
	<-held
	broken := knobs != nil && knobs.UnsafeSkipReadWait
	if !broken {
		// The read's own revision call releases the write: by then the
		// read has arrived, after the write asked for its revision.
		k.revs.SetHook(func(int64) { release() })
	} else {
		// A read that does not wait returns with the write still held.
		k.revs.SetHook(nil)
	}
	g, err := k.Store(1).Get(ctx, &flotillapb.GetRequest{Key: []byte("k")})
	if err != nil {
		t.Fatal(err)
	}
	k.revs.SetHook(nil)
	release()
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	r = g.GetHeader().GetRevision()
	g2, err := k.Store(1).Get(ctx, &flotillapb.GetRequest{Key: []byte("k"), Revision: r})
	if err != nil {
		t.Fatal(err)
	}
	return string(g.GetValue()), string(g2.GetValue()), r
}

// TestReadWaitsForEarlierWrites: a read at R on the leader waits for the
// writes it asked revisions for before the read arrived, so a write at a
// revision below R that applies later cannot change what R shows. Without
// the wait the read misses the write, and a read at R afterwards sees it.
func TestReadWaitsForEarlierWrites(t *testing.T) {
	if before, after, r := readWhileWriteHeld(t, nil); before != "late" || after != before {
		t.Fatalf("read at %d found %q, later %q; want the held write's value both times", r, before, after)
	}
	t.Run("broken", func(t *testing.T) {
		before, after, r := readWhileWriteHeld(t, &shard.TestingKnobs{UnsafeSkipReadWait: true})
		if before == after {
			t.Fatalf("without the wait the read at %d found %q both times: the test does not force the interleaving", r, before)
		}
	})
}

// TestLatestReadWaitsForWriteRevisionedFirst: a write that registers while
// a latest read is asking the oracle for its revision, and gets its own
// revision first (below the read's), is waited for: the read "arrives"
// once its revision is known, not when it started asking (the review of
// issue 16 found the read served without it).
func TestLatestReadWaitsForWriteRevisionedFirst(t *testing.T) {
	k, ctx := interleavingCluster(t, nil)
	var late <-chan error
	k.revs.SetPreHook(func() {
		// In the read's oracle call, before its revision is handed out
		// (once: the write's own call runs no hook): a write registers
		// and gets its revision first.
		k.revs.SetPreHook(nil)
		got := make(chan struct{})
		k.revs.SetHook(func(int64) {
			k.revs.SetHook(nil)
			close(got)
		})
		late = putLate(context.Background(), k)
		<-got
	})
	g, err := k.Store(1).Get(ctx, &flotillapb.GetRequest{Key: []byte("k")})
	k.revs.SetPreHook(nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-late; err != nil {
		t.Fatal(err)
	}
	r := g.GetHeader().GetRevision()
	g2, err := k.Store(1).Get(ctx, &flotillapb.GetRequest{Key: []byte("k"), Revision: r})
	if err != nil {
		t.Fatal(err)
	}
	if string(g.GetValue()) != "late" || string(g2.GetValue()) != "late" {
		t.Fatalf("read at %d found %q, later %q; want the write revisioned before it both times", r, g.GetValue(), g2.GetValue())
	}
}

// TestTxnCompareOnDeletedKey: a deleted key is absent to a txn's compares
// (its mod revision is 0) in a txn that only reads as in one that writes.
func TestTxnCompareOnDeletedKey(t *testing.T) {
	k := newKVCluster(t, clusterOptions{Options: testcluster.Options{Nodes: 3}})
	const rid = 1
	k.bootstrapRange(rid, "", "", 1, 2, 3)
	ctx := testCtx(t)
	txn := func(req *flotillapb.TxnRequest) *flotillapb.TxnResponse {
		t.Helper()
		resp, err := do(k, ctx, rid, func(ctx context.Context, s *shard.Store) (*flotillapb.TxnResponse, error) { return s.Txn(ctx, req) })
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	op := func(o *flotillapb.TxnOp) []*flotillapb.TxnOp { return []*flotillapb.TxnOp{o} }
	txn(&flotillapb.TxnRequest{Success: op(&flotillapb.TxnOp{Op: &flotillapb.TxnOp_Put{Put: &flotillapb.PutOp{Key: []byte("a"), Value: []byte("1")}}})})
	txn(&flotillapb.TxnRequest{Success: op(&flotillapb.TxnOp{Op: &flotillapb.TxnOp_Delete{Delete: &flotillapb.DeleteOp{Key: []byte("a")}}})})
	cmp := []*flotillapb.Compare{{Key: []byte("a"), Target: flotillapb.Compare_MOD, Result: flotillapb.Compare_EQUAL,
		TargetUnion: &flotillapb.Compare_ModRevision{ModRevision: 0}}}
	ro := txn(&flotillapb.TxnRequest{Compares: cmp, Success: op(&flotillapb.TxnOp{Op: &flotillapb.TxnOp_Get{Get: &flotillapb.GetOp{Key: []byte("b")}}})})
	rw := txn(&flotillapb.TxnRequest{Compares: cmp, Success: op(&flotillapb.TxnOp{Op: &flotillapb.TxnOp_Put{Put: &flotillapb.PutOp{Key: []byte("b"), Value: []byte("1")}}})})
	if !ro.GetSucceeded() || !rw.GetSucceeded() {
		t.Fatalf("mod(a) = 0 on a deleted key: a txn of reads says %v, a writing one %v; want true both", ro.GetSucceeded(), rw.GetSucceeded())
	}
}

// TestReadWaitsOnlyForWritesToItsKeys: a read waits for the earlier writes
// that may change a key it reads, not for the others: with a write to k
// held before it has its revision, a get of another key and a scan of a
// span without k are served, and a scan of a span with k waits.
func TestReadWaitsOnlyForWritesToItsKeys(t *testing.T) {
	k, ctx := interleavingCluster(t, nil)
	held, release := holdWrite(k)
	defer release()
	wrote := putLate(ctx, k)
	<-held
	served, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := k.Store(1).Get(served, &flotillapb.GetRequest{Key: []byte("j")}); err != nil {
		t.Fatalf("get of another key while a write to k is held: %v", err)
	}
	if _, err := k.Store(1).Scan(served, &flotillapb.ScanRequest{StartKey: []byte("k\x00"), EndKey: []byte("z")}); err != nil {
		t.Fatalf("scan of a span without k while a write to k is held: %v", err)
	}
	// The write is held until released: a read of k cannot be served.
	waits, cancelWait := context.WithTimeout(ctx, 200*time.Millisecond)
	_, err := k.Store(1).Scan(waits, &flotillapb.ScanRequest{StartKey: []byte("a"), EndKey: []byte("z")})
	cancelWait()
	if err == nil {
		t.Fatal("a scan over k was served while a write to k, asked for its revision first, was held")
	}
	release()
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
}
