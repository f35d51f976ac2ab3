// Copyright 2026 The Flotilla Authors. All rights reserved.

package shard

import (
	"context"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/flotilladb/flotilla/multiraft"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
)

// TestWaitTurnIgnoresLaterWrites: a write waits for the writes that may
// get a smaller revision — those registered before it got its own — and
// not for writes registered after (they ask the oracle later and get
// higher revisions). Waiting for those starved writes under steady load.
func TestWaitTurnIgnoresLaterWrites(t *testing.T) {
	var tr writeTracker
	tr.init()
	granted := func(w *trackedWrite) bool {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		return w.granted
	}
	early := tr.register(1, 0, writeKeys{})
	w := tr.register(1, 0, writeKeys{})
	tr.setRevision(w, 10, nil)
	late := tr.register(1, 50, writeKeys{}) // no revision yet, registered after w got one (50 seen)
	if granted(w) {
		t.Fatal("w did not wait for a write registered before it got its revision")
	}
	tr.setRevision(early, 11, nil) // above w's: no longer in its way
	if !granted(w) {
		t.Fatal("w waits for a write registered after it got its revision")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if p, err := tr.waitTurn(ctx, w); err != nil || p != nil {
		t.Fatalf("waitTurn = %v, %v; want its turn, to propose itself", p, err)
	}
	_ = late
	// closable stays below every unresolved write, and below what a write
	// without a revision may get.
	if c := tr.closable(1, 100); c != 9 {
		t.Fatalf("closable = %d, want 9 (below w's 10)", c)
	}
	other := tr.register(1, 3, writeKeys{})
	if c := tr.closable(1, 100); c != 3 {
		t.Fatalf("closable = %d, want 3 (a write without a revision registered when 3 was seen)", c)
	}
	_ = other
}

// TestWaitTurnProposesInRevisionOrder runs writes through the tracker the
// way proposeWrite does, some proposed by whoever grants their turn and
// some by their own goroutine, some giving up before their turn: the
// writes that propose do so in revision order, and every one gets its
// turn.
func TestWaitTurnProposesInRevisionOrder(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	var tr writeTracker
	tr.init()
	var (
		oracleMu sync.Mutex
		next     int64
	)
	revision := func() int64 {
		oracleMu.Lock()
		defer oracleMu.Unlock()
		next++
		return next
	}
	var (
		mu       sync.Mutex
		proposed []int64
	)
	const writers, perWriter = 16, 200
	giveUps := make([][]bool, writers)
	for i := range giveUps {
		giveUps[i] = make([]bool, perWriter)
		for j := range giveUps[i] {
			giveUps[i][j] = rng.IntN(10) == 0
		}
	}
	var wg sync.WaitGroup
	for i := range writers {
		wg.Go(func() {
			for j := range perWriter {
				w := tr.register(1, 0, writeKeys{})
				rev := revision()
				if giveUps[i][j] {
					tr.setRevision(w, rev, nil)
					tr.giveUp(w)
					continue
				}
				record := func() {
					mu.Lock()
					proposed = append(proposed, rev)
					mu.Unlock()
				}
				combined := (i+j)%2 == 0
				var propose func() *multiraft.Proposal
				if combined {
					propose = func() *multiraft.Proposal { record(); return multiraft.FailedProposal(nil) }
				}
				tr.setRevision(w, rev, propose)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				p, err := tr.waitTurn(ctx, w)
				cancel()
				if err != nil {
					t.Errorf("write at %d never got its turn: %v", rev, err)
					return
				}
				if (p != nil) != combined {
					t.Errorf("write at %d: proposal %v, want one: %v", rev, p, combined)
				}
				if !combined {
					record()
					tr.proposed(w, closedChan)
				}
				tr.finish(w)
			}
		})
	}
	wg.Wait()
	if !slices.IsSorted(proposed) {
		t.Fatalf("proposals out of revision order: %v", proposed)
	}
	if len(tr.queues) != 0 || len(tr.writes) != 0 {
		t.Fatalf("tracker keeps %d queues and %d writes after every write ended", len(tr.queues), len(tr.writes))
	}
}

// TestWaitResolved: a read waits for a write without a revision until it
// gets one above the read's, and for one at or below it until it resolves.
func TestWaitResolved(t *testing.T) {
	var tr writeTracker
	tr.init()
	a, b := tr.register(1, 0, writeKeys{}), tr.register(1, 0, writeKeys{})
	ws := []*trackedWrite{a, b}
	leading := func() bool { return true }
	errc := make(chan error, 1)
	go func() { errc <- tr.waitResolved(context.Background(), ws, 10, leading) }()
	done := make(chan struct{})
	tr.setRevision(a, 11, nil) // above the read: not waited for
	tr.setRevision(b, 9, nil)
	tr.proposed(b, done)
	select {
	case err := <-errc:
		t.Fatalf("the read did not wait for a proposed write at 9: %v", err)
	case <-time.After(10 * time.Millisecond):
	}
	close(done)
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the read still waits after the write at 9 resolved")
	}
}

func TestReadKeysTouchedBy(t *testing.T) {
	put := func(k string) *flotillapb.Op {
		return &flotillapb.Op{Op: &flotillapb.Op_Put{Put: &flotillapb.PutOp{Key: []byte(k)}}}
	}
	del := func(k string) *flotillapb.Op {
		return &flotillapb.Op{Op: &flotillapb.Op_Delete{Delete: &flotillapb.DeleteOp{Key: []byte(k)}}}
	}
	cas := func(k string) *flotillapb.Op {
		return &flotillapb.Op{Op: &flotillapb.Op_Cas{Cas: &flotillapb.CompareAndSwapOp{Key: []byte(k)}}}
	}
	delRange := func(s, e string) *flotillapb.Op {
		return &flotillapb.Op{Op: &flotillapb.Op_DeleteRange{DeleteRange: &flotillapb.DeleteRangeOp{StartKey: []byte(s), EndKey: []byte(e)}}}
	}
	ops := func(o ...*flotillapb.Op) []*flotillapb.Op { return o }
	point := func(k string) readKeys { return readKeys{start: []byte(k), point: true} }
	span := func(s, e string) readKeys { return readKeys{start: []byte(s), end: []byte(e)} }
	for _, c := range []struct {
		name string
		rk   readKeys
		wk   writeKeys
		want bool
	}{
		{"unknown write", point("a"), writeKeys{}, true},
		{"every key", readKeys{}, writeKeys{ops: ops(put("x"))}, true},
		{"put same key", point("a"), writeKeys{ops: ops(put("a"))}, true},
		{"put other key", point("a"), writeKeys{ops: ops(put("b"), put("a\x00"))}, false},
		{"put prefix of key", point("ab"), writeKeys{ops: ops(put("a"))}, false},
		{"delete", point("a"), writeKeys{ops: ops(put("b"), del("a"))}, true},
		{"cas", point("a"), writeKeys{ops: ops(cas("a"))}, true},
		{"txn failure branch", point("a"), writeKeys{ops: ops(put("b")), failure: ops(put("a"))}, true},
		{"txn empty success branch", point("a"), writeKeys{failure: ops(put("b"))}, false},
		{"delete-range over key", point("b"), writeKeys{ops: ops(delRange("a", "c"))}, true},
		{"delete-range ends at key", point("c"), writeKeys{ops: ops(delRange("a", "c"))}, false},
		{"delete-range to the end", point("z"), writeKeys{ops: ops(delRange("a", ""))}, true},
		{"span holds put", span("a", "c"), writeKeys{ops: ops(put("b"))}, true},
		{"span end excluded", span("a", "c"), writeKeys{ops: ops(put("c"))}, false},
		{"span before start", span("b", "c"), writeKeys{ops: ops(put("a"))}, false},
		{"open span", span("b", ""), writeKeys{ops: ops(put("zzz"))}, true},
		{"spans overlap", span("b", "d"), writeKeys{ops: ops(delRange("c", "e"))}, true},
		{"spans touch", span("b", "d"), writeKeys{ops: ops(delRange("d", "e"))}, false},
		{"span after", span("e", "f"), writeKeys{ops: ops(delRange("c", "e"))}, false},
		{"open delete-range", span("e", "f"), writeKeys{ops: ops(delRange("c", ""))}, true},
	} {
		if got := c.rk.touchedBy(c.wk); got != c.want {
			t.Errorf("%s: touchedBy = %v, want %v", c.name, got, c.want)
		}
	}
}
