// Copyright 2026 The Flotilla Authors. All rights reserved.

package shard_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/flotilladb/flotilla/internal/testcluster"
	"github.com/flotilladb/flotilla/internal/testutil"
	"github.com/flotilladb/flotilla/multiraft"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"github.com/flotilladb/flotilla/shard"
)

// crashTxn is a txn the crash test sent: its value, written to each of its
// keys, names the txn and its keys ("r1/w2/7:k0,k3"), so that any version
// found later tells which txn wrote it and what else it wrote.
type crashTxn struct {
	value string
	keys  []string
	rev   int64 // once acknowledged
}

func crashTxnValue(round, writer, i int, keys []string) string {
	return fmt.Sprintf("r%d/w%d/%d:%s", round, writer, i, strings.Join(keys, ","))
}

// txnKeysOf returns the keys a crash test txn's value names.
func txnKeysOf(value string) []string {
	_, keys, ok := strings.Cut(value, ":")
	if !ok {
		return nil
	}
	return strings.Split(keys, ",")
}

// TestTxnCrashAtomicity: writers run txns that each put several keys of
// one range, with a compare, while nodes crash at random points (losing
// what they had not synced): all at once, or one at a time. Afterwards
// every acknowledged txn is there in full at its revision, and at every
// revision each txn is all or nothing: the keys that carry a revision as
// their mod revision are exactly the keys of the one txn whose value they
// hold, and no txn's value appears at two revisions (applied twice).
func TestTxnCrashAtomicity(t *testing.T) {
	rng, seed := shard.NewRand(t)
	k := newKVCluster(t, clusterOptions{Options: testcluster.Options{Nodes: 3, Storage: testcluster.Crashable, Seed: seed}})
	const rid = 1
	k.bootstrapRange(rid, "", "", 1, 2, 3)
	ctx := testCtx(t)
	keys := []string{"k0", "k1", "k2", "k3", "k4", "k5"}

	var (
		mu    sync.Mutex
		acked []crashTxn
	)
	const rounds, writers, perRound = 3, 3, 8
	for round := range rounds {
		stop := make(chan struct{})
		var wg sync.WaitGroup
		roundAcked := 0
		for w := range writers {
			wrng := rand.New(rand.NewPCG(seed, uint64(round*writers+w)))
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < 1000; i++ {
					select {
					case <-stop:
						return
					default:
					}
					ks := slices.Clone(keys)
					wrng.Shuffle(len(ks), func(i, j int) { ks[i], ks[j] = ks[j], ks[i] })
					ks = ks[:2+wrng.IntN(3)]
					slices.Sort(ks)
					tx := crashTxn{value: crashTxnValue(round, w, i, ks), keys: ks}
					req := &flotillapb.TxnRequest{
						// Holds unless a key was deleted: both branches write
						// the same keys, so every txn writes.
						Compares: []*flotillapb.Compare{{Key: []byte(ks[0]), Target: flotillapb.Compare_VERSION,
							Result: flotillapb.Compare_GREATER, TargetUnion: &flotillapb.Compare_Version{Version: -1}}},
					}
					for _, key := range ks {
						op := &flotillapb.TxnOp{Op: &flotillapb.TxnOp_Put{Put: &flotillapb.PutOp{Key: []byte(key), Value: []byte(tx.value)}}}
						req.Success = append(req.Success, op)
						req.Failure = append(req.Failure, op)
					}
					l, err := k.Leader(rid)
					if err != nil {
						select {
						case <-stop:
							return
						case <-time.After(time.Millisecond): // no leader yet: back off
						}
						continue
					}
					attempt, cancel := context.WithTimeout(ctx, 2*time.Second)
					resp, err := k.Store(l).Txn(attempt, req)
					cancel()
					if err == nil {
						tx.rev = resp.GetHeader().GetRevision()
						mu.Lock()
						acked = append(acked, tx)
						roundAcked++
						mu.Unlock()
					}
				}
			}()
		}
		testutil.SucceedsSoon(t, func() error {
			mu.Lock()
			defer mu.Unlock()
			if roundAcked < perRound {
				return fmt.Errorf("round %d: %d txns acknowledged", round, roundAcked)
			}
			return nil
		})
		if rng.IntN(2) == 0 {
			// Every node at once: all are cut off first (a crashed node
			// acknowledges nothing its image lacks), then imaged.
			t.Logf("round %d: every node crashes", round)
			for _, n := range k.NodeIDs() {
				k.Net.Detach(n)
			}
			images := map[multiraft.NodeID]vfs.FS{}
			for _, n := range k.NodeIDs() {
				images[n] = k.CrashImage(n)
			}
			close(stop)
			wg.Wait()
			for _, n := range k.NodeIDs() {
				k.RestartFrom(n, images[n])
				k.attach(n)
			}
		} else {
			// One node, while the writers go on.
			n := multiraft.NodeID(1 + rng.IntN(3))
			t.Logf("round %d: node %d crashes", round, n)
			k.Crash(n)
			k.attach(n)
			close(stop)
			wg.Wait()
		}
	}
	k.waitConverged(rid, 1, 2, 3)

	// Every acknowledged txn, in full, at its revision.
	for _, tx := range acked {
		resp, err := scanAt(k, ctx, rid, 0, "", "", tx.rev)
		if err != nil {
			t.Fatal(err)
		}
		found := map[string]*flotillapb.KeyValue{}
		for _, kv := range resp.GetKvs() {
			found[string(kv.GetKey())] = kv
		}
		for _, key := range tx.keys {
			kv := found[key]
			if string(kv.GetValue()) != tx.value || kv.GetModRevision() != tx.rev {
				t.Fatalf("acknowledged txn %s at revision %d: key %s is %v", tx.value, tx.rev, key, kv)
			}
		}
	}
	// Every revision: all or nothing, and each txn at one revision only.
	appliedAt := map[string]int64{}
	last := k.revs.Seen()
	for rev := int64(1); rev <= last; rev++ {
		resp, err := scanAt(k, ctx, rid, 0, "", "", rev)
		if err != nil {
			t.Fatal(err)
		}
		var atRev []string
		value := ""
		for _, kv := range resp.GetKvs() {
			v, mod := string(kv.GetValue()), kv.GetModRevision()
			if mod > rev || mod <= 0 {
				t.Fatalf("scan at %d: %s has mod revision %d", rev, kv.GetKey(), mod)
			}
			if !slices.Contains(txnKeysOf(v), string(kv.GetKey())) {
				t.Fatalf("scan at %d: %s holds %q, a txn that did not write it", rev, kv.GetKey(), v)
			}
			if prev, ok := appliedAt[v]; ok && prev != mod {
				t.Fatalf("txn %s applied at revisions %d and %d", v, prev, mod)
			}
			appliedAt[v] = mod
			if mod == rev {
				if value != "" && v != value {
					t.Fatalf("scan at %d: two txns at one revision: %q and %q", rev, value, v)
				}
				value = v
				atRev = append(atRev, string(kv.GetKey()))
			}
		}
		if value != "" && !slices.Equal(atRev, txnKeysOf(value)) {
			t.Fatalf("scan at %d: txn %s wrote keys %v, but %v carry its revision", rev, value, txnKeysOf(value), atRev)
		}
	}
	t.Logf("%d txns acknowledged, %d applied, %d revisions checked", len(acked), len(appliedAt), last)
	if len(appliedAt) < len(acked) {
		t.Fatalf("%d txns applied, %d acknowledged", len(appliedAt), len(acked))
	}
}
