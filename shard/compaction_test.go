// Copyright 2026 The Flotilla Authors. All rights reserved.

package shard_test

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flotilladb/flotilla/engine"
	"github.com/flotilladb/flotilla/internal/testcluster"
	"github.com/flotilladb/flotilla/multiraft"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"github.com/flotilladb/flotilla/shard"
)

// history is what a range should hold at each revision a write got: the
// model the compaction tests read the cluster against.
type history struct {
	revs   []int64             // in increasing order
	states []map[string]string // states[i]: the data as of revs[i]
	cur    map[string]string
}

func newHistory() *history { return &history{cur: map[string]string{}} }

func (h *history) record(rev int64) {
	if n := len(h.revs); n > 0 && rev <= h.revs[n-1] {
		panic(fmt.Sprintf("revision %d after %d", rev, h.revs[n-1]))
	}
	h.revs = append(h.revs, rev)
	h.states = append(h.states, maps.Clone(h.cur))
}

// want is the model's scan of [start, end) at rev ("" end: no bound).
func (h *history) want(rev int64, start, end string) string {
	i, found := slices.BinarySearch(h.revs, rev)
	if !found {
		i--
	}
	if i < 0 {
		return ""
	}
	var parts []string
	for _, key := range slices.Sorted(maps.Keys(h.states[i])) {
		if key >= start && (end == "" || key < end) {
			parts = append(parts, key+"="+h.states[i][key])
		}
	}
	return strings.Join(parts, ",")
}

// writeHistory writes rounds of puts and deletes of keys to range rid
// through its leader, recording each write's revision in h.
func writeHistory(t *testing.T, k *kvCluster, ctx context.Context, rid multiraft.GroupID, rng *rand.Rand, h *history, keys []string, writes int) {
	t.Helper()
	for i := range writes {
		key := keys[rng.IntN(len(keys))]
		var rev int64
		if _, ok := h.cur[key]; ok && rng.IntN(5) == 0 {
			resp, err := do(k, ctx, rid, func(ctx context.Context, s *shard.Store) (*flotillapb.DeleteResponse, error) {
				return s.Delete(ctx, &flotillapb.DeleteRequest{Header: hdr(rid), Key: []byte(key)})
			})
			if err != nil {
				t.Fatalf("delete %q: %v", key, err)
			}
			delete(h.cur, key)
			rev = resp.GetHeader().GetRevision()
		} else {
			value := fmt.Sprintf("v%d", i)
			resp, err := do(k, ctx, rid, func(ctx context.Context, s *shard.Store) (*flotillapb.PutResponse, error) {
				return s.Put(ctx, &flotillapb.PutRequest{Header: hdr(rid), Key: []byte(key), Value: []byte(value)})
			})
			if err != nil {
				t.Fatalf("put %q: %v", key, err)
			}
			h.cur[key] = value
			rev = resp.GetHeader().GetRevision()
		}
		h.record(rev)
	}
}

// scanAt scans [start, end) of range rid at rev: on node via's store if
// via is not 0 (retrying while it is not ready), else on the leader's.
func scanAt(k *kvCluster, ctx context.Context, rid multiraft.GroupID, via multiraft.NodeID, start, end string, rev int64) (*flotillapb.ScanResponse, error) {
	req := &flotillapb.ScanRequest{Header: hdr(rid), StartKey: []byte(start), Revision: rev}
	if end != "" {
		req.EndKey = []byte(end)
	}
	if via != 0 {
		return retry(ctx, func(ctx context.Context) (*flotillapb.ScanResponse, error) { return k.Store(via).Scan(ctx, req) })
	}
	return do(k, ctx, rid, func(ctx context.Context, s *shard.Store) (*flotillapb.ScanResponse, error) { return s.Scan(ctx, req) })
}

// checkCompacted reads range rid ([start, end)) at every revision of h
// and at the compacted revision: below compacted a read fails with
// Compacted naming it, at or above it the read is h's state.
func checkCompacted(t *testing.T, k *kvCluster, ctx context.Context, rid multiraft.GroupID, via multiraft.NodeID, h *history, start, end string, compacted int64) {
	t.Helper()
	revs := append(slices.Clone(h.revs), compacted, compacted-1)
	served := 0
	for _, rev := range revs {
		if rev <= 0 {
			continue
		}
		resp, err := scanAt(k, ctx, rid, via, start, end, rev)
		if rev < compacted {
			if c := pbError(t, err).GetCompacted(); c == nil || c.GetCompactRevision() != compacted {
				t.Fatalf("range %d: scan at %d, below the compaction at %d: %v, %v", rid, rev, compacted, resp, err)
			}
			// A get below is refused too.
			_, err = do(k, ctx, rid, func(ctx context.Context, s *shard.Store) (*flotillapb.GetResponse, error) {
				return s.Get(ctx, &flotillapb.GetRequest{Header: hdr(rid), Key: []byte(start + "a"), Revision: rev})
			})
			if pbError(t, err).GetCompacted() == nil {
				t.Fatalf("range %d: get at %d, below the compaction at %d: %v", rid, rev, compacted, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("range %d: scan at %d (compacted at %d): %v", rid, rev, compacted, err)
		}
		if got, want := kvString(resp.GetKvs()), h.want(rev, start, end); got != want {
			t.Fatalf("range %d: scan at %d (compacted at %d) = %q, want %q", rid, rev, compacted, got, want)
		}
		served++
	}
	if served == 0 {
		t.Fatalf("range %d: no revision of the history is at or above the compaction at %d", rid, compacted)
	}
}

func compact(t *testing.T, k *kvCluster, ctx context.Context, rid multiraft.GroupID, rev int64) {
	t.Helper()
	if _, err := do(k, ctx, rid, func(ctx context.Context, s *shard.Store) (*flotillapb.CompactResponse, error) {
		return s.Compact(ctx, &flotillapb.CompactRequest{Header: hdr(rid), Revision: rev})
	}); err != nil {
		t.Fatalf("compacting range %d at %d: %v", rid, rev, err)
	}
}

// versions counts node's stored versions of every key.
func versions(t *testing.T, k *kvCluster, node multiraft.NodeID) int64 {
	t.Helper()
	st, err := engine.MVCCComputeStats(k.Node(node).Engine(), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return st.Versions
}

// keptVersions is how many versions a compaction at rev keeps of h's
// history: per key, every version above rev, and its newest at or below
// rev unless that is a tombstone (or there is none).
func keptVersions(h *history, rev int64) int64 {
	var n int64
	i, found := slices.BinarySearch(h.revs, rev)
	if !found {
		i--
	}
	n += int64(len(h.revs) - (i + 1)) // each write above rev is one version
	if i >= 0 {
		n += int64(len(h.states[i])) // the live keys at rev
	}
	return n
}

var compactionKeys = []string{"a", "b", "c", "d", "e", "f", "g", "h"}

// TestCompactionBoundsVersions: a compaction removes the versions no read
// at or above it needs, on every replica (counted with
// engine.MVCCComputeStats), the replicas agree on the data hash, and the
// history above the compacted revision survives a restart of every node.
func TestCompactionBoundsVersions(t *testing.T) {
	rng, seed := shard.NewRand(t)
	k := newKVCluster(t, clusterOptions{Options: testcluster.Options{Nodes: 3, Seed: seed}})
	const rid = 1
	k.bootstrapRange(rid, "", "", 1, 2, 3)
	ctx := testCtx(t)
	h := newHistory()
	writeHistory(t, k, ctx, rid, rng, h, compactionKeys, 120)
	k.waitConverged(rid, 1, 2, 3)
	before := versions(t, k, 1)
	if before != int64(len(h.revs)) {
		t.Fatalf("%d versions stored after %d writes", before, len(h.revs))
	}
	at := h.revs[len(h.revs)*3/4]
	compact(t, k, ctx, rid, at)
	checkCompacted(t, k, ctx, rid, 0, h, "", "", at)
	k.waitConverged(rid, 1, 2, 3)
	want := keptVersions(h, at)
	for _, n := range []multiraft.NodeID{1, 2, 3} {
		// A replica that applied the compaction in the same Apply call as
		// writes at or below it keeps their predecessors until the next
		// compaction (apply.go, applyClose): at most one per key.
		got := versions(t, k, n)
		if got < want || got > want+int64(len(compactionKeys)) {
			t.Fatalf("node %d keeps %d versions after the compaction at %d; want %d (%d before)", n, got, at, want, before)
		}
		t.Logf("node %d: %d versions before the compaction, %d after (%d needed)", n, before, got, want)
	}
	// Writes after the compaction, then a restart of every node.
	writeHistory(t, k, ctx, rid, rng, h, compactionKeys, 20)
	_, sum, _, _ := k.waitConverged(rid, 1, 2, 3)
	for _, n := range []multiraft.NodeID{1, 2, 3} {
		k.Stop(n)
	}
	for _, n := range []multiraft.NodeID{1, 2, 3} {
		k.restart(n)
	}
	if _, s, _, _ := k.waitConverged(rid, 1, 2, 3); s != sum {
		t.Fatal("the data hash changed across a restart")
	}
	checkCompacted(t, k, ctx, rid, 0, h, "", "", at)
	// A second compaction, higher: the first's reads are now refused with
	// its revision; a lower one changes nothing.
	at2 := h.revs[len(h.revs)-5]
	compact(t, k, ctx, rid, at2)
	compact(t, k, ctx, rid, at)
	checkCompacted(t, k, ctx, rid, 0, h, "", "", at2)
	k.waitConverged(rid, 1, 2, 3)
	if got, want := versions(t, k, 1), keptVersions(h, at2); got > want+int64(len(compactionKeys)) {
		t.Fatalf("node 1 keeps %d versions after the compaction at %d; want %d", got, at2, want)
	}
}

// TestCompactionThenSplit: a range compacted and then split gives both
// halves the compacted revision: each refuses reads below it (naming it)
// and serves its part of the history above it; each compacts on its own
// afterwards; the replicas of both agree.
func TestCompactionThenSplit(t *testing.T) {
	rng, seed := shard.NewRand(t)
	k := newKVCluster(t, clusterOptions{Options: testcluster.Options{Nodes: 3, Seed: seed}})
	const rid, rhs = 3, 7
	desc := k.bootstrapRange(rid, "", "", 1, 2, 3)
	ctx := testCtx(t)
	h := newHistory()
	writeHistory(t, k, ctx, rid, rng, h, compactionKeys, 80)
	at := h.revs[len(h.revs)/2]
	compact(t, k, ctx, rid, at)
	split(t, k, ctx, rid, 1, splitCmd(desc, "e", rhs, 2))
	k.waitConverged(rid, 1, 2, 3)
	k.waitConverged(rhs, 1, 2, 3)
	checkCompacted(t, k, ctx, rid, 0, h, "", "e", at)
	checkCompacted(t, k, ctx, rhs, 0, h, "e", "", at)

	// The right half compacts further on its own; the left keeps its
	// history above the first compaction.
	at2 := h.revs[len(h.revs)-3]
	compact(t, k, ctx, rhs, at2)
	checkCompacted(t, k, ctx, rid, 0, h, "", "e", at)
	checkCompacted(t, k, ctx, rhs, 0, h, "e", "", at2)
	k.waitConverged(rid, 1, 2, 3)
	k.waitConverged(rhs, 1, 2, 3)
}

// TestCompactionSnapshotToNewReplica: a replica added after a compaction,
// once the log is truncated, catches up by snapshot: it gets the compacted
// revision with the data, agrees with the others on the hash and, made
// leader, refuses reads below the compaction and serves the history above.
func TestCompactionSnapshotToNewReplica(t *testing.T) {
	rng, seed := shard.NewRand(t)
	k := newKVCluster(t, clusterOptions{Options: testcluster.Options{
		Nodes:     4,
		Seed:      seed,
		Configure: func(c *multiraft.Config) { c.RaftLogTruncationThreshold = 8 },
	}})
	const rid = 3
	k.bootstrapRange(rid, "", "", 1, 2, 3)
	ctx := testCtx(t)
	h := newHistory()
	writeHistory(t, k, ctx, rid, rng, h, compactionKeys, 60)
	at := h.revs[len(h.revs)/2]
	compact(t, k, ctx, rid, at)
	// Enough writes after it to truncate the log past the compaction.
	writeHistory(t, k, ctx, rid, rng, h, compactionKeys, 30)
	snaps := k.Net.Snapshots()
	confChange(t, k, ctx, rid, multiraft.AddVoter(testcluster.ReplicaOn(4)))
	k.waitConverged(rid, 1, 2, 3, 4)
	if k.Net.Snapshots() == snaps {
		t.Fatal("the new replica caught up without a snapshot")
	}
	// The snapshot carried the compacted history only.
	if got, want := versions(t, k, 4), keptVersions(h, at); got > want+int64(len(compactionKeys)) {
		t.Fatalf("the new replica holds %d versions; a compaction at %d keeps %d", got, at, want)
	}
	k.makeLeader(rid, 4)
	checkCompacted(t, k, ctx, rid, 4, h, "", "", at)
	// It keeps serving and compacting as leader.
	writeHistory(t, k, ctx, rid, rng, h, compactionKeys, 5)
	at2 := h.revs[len(h.revs)-2]
	compact(t, k, ctx, rid, at2)
	checkCompacted(t, k, ctx, rid, 0, h, "", "", at2)
	k.waitConverged(rid, 1, 2, 3, 4)
}

// TestReadDuringSnapshotIngest: a replica that was cut off during a
// compaction catches up by snapshot. A read it serves while the snapshot's
// data is ingested, before it has reloaded its cached revision state, must
// go by the snapshot's compacted revision, not the cached one (still below
// it): a read below the compaction is refused. The follower serves the read
// itself (UnsafeFollowerReads); otherwise only a leader deposed in the
// middle of a read could be caught in that window.
func TestReadDuringSnapshotIngest(t *testing.T) {
	rng, seed := shard.NewRand(t)
	const rid = 3
	var (
		store3  atomic.Pointer[shard.Store]
		armed   atomic.Bool
		readAt  atomic.Int64
		results = make(chan error, 1)
	)
	k := newKVCluster(t, clusterOptions{
		Options: testcluster.Options{
			Nodes: 3,
			Seed:  seed,
			Configure: func(c *multiraft.Config) {
				// Node 3, cut off, is not waited for past 16 entries: it
				// catches up by snapshot.
				c.RaftLogTruncationThreshold, c.RaftLogMaxEntries = 8, 16
				if c.NodeID != 3 {
					return
				}
				c.Testing = &multiraft.TestingKnobs{AfterSnapshotIngest: func(g multiraft.GroupID) {
					s := store3.Load()
					if g != rid || s == nil || !armed.CompareAndSwap(true, false) {
						return
					}
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					_, err := s.Get(ctx, &flotillapb.GetRequest{Header: hdr(rid), Key: []byte(compactionKeys[0]), Revision: readAt.Load()})
					results <- err
				}}
			},
		},
		configureStore: func(id multiraft.NodeID, c *shard.Config) {
			if id == 3 {
				c.Testing = &shard.TestingKnobs{UnsafeFollowerReads: true}
			}
		},
	})
	store3.Store(k.Store(3))
	k.bootstrapRange(rid, "", "", 1, 2, 3)
	ctx := testCtx(t)
	h := newHistory()
	writeHistory(t, k, ctx, rid, rng, h, compactionKeys, 20)
	k.waitConverged(rid, 1, 2, 3)
	k.makeLeader(rid, 1)

	k.Net.Partition([]multiraft.NodeID{3}, []multiraft.NodeID{1, 2})
	writeHistory(t, k, ctx, rid, rng, h, compactionKeys, 20)
	at := h.revs[len(h.revs)-5]
	compact(t, k, ctx, rid, at)
	// Enough writes after it to truncate the log past the compaction.
	writeHistory(t, k, ctx, rid, rng, h, compactionKeys, 30)
	readAt.Store(at - 1)
	armed.Store(true)
	snaps := k.Net.Snapshots()
	k.Net.Heal()
	k.waitConverged(rid, 1, 2, 3)
	if k.Net.Snapshots() == snaps {
		t.Fatal("node 3 caught up without a snapshot")
	}
	select {
	case err := <-results:
		if c := pbError(t, err).GetCompacted(); c == nil || c.GetCompactRevision() != at {
			t.Fatalf("a read at %d on node 3 while it ingested a snapshot compacted at %d: %v", at-1, at, err)
		}
	default:
		t.Fatal("node 3 served no read while it ingested the snapshot")
	}
}
