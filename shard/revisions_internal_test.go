// Copyright 2026 The Flotilla Authors. All rights reserved.

package shard

import (
	"context"
	"testing"
	"time"
)

// TestWaitTurnIgnoresLaterWrites: a write waits for the writes that may
// get a smaller revision — those registered before it got its own — and
// not for writes registered after (they ask the oracle later and get
// higher revisions). Waiting for those starved writes under steady load.
func TestWaitTurnIgnoresLaterWrites(t *testing.T) {
	var tr writeTracker
	tr.init()
	early := tr.register(1, 0)
	w := tr.register(1, 0)
	tr.setRevision(w, 10)
	late := tr.register(1, 50) // no revision yet, registered after w got one (50 seen)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := tr.waitTurn(ctx, w); err == nil {
		t.Fatal("w did not wait for a write registered before it got its revision")
	}
	tr.setRevision(early, 11) // above w's: no longer in its way
	ctx2, cancel2 := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel2()
	if err := tr.waitTurn(ctx2, w); err != nil {
		t.Fatalf("w waits for a write registered after it got its revision: %v", err)
	}
	_ = late
	// closable stays below every unresolved write, and below what a write
	// without a revision may get.
	if c := tr.closable(1, 100); c != 9 {
		t.Fatalf("closable = %d, want 9 (below w's 10)", c)
	}
	other := tr.register(1, 3)
	if c := tr.closable(1, 100); c != 3 {
		t.Fatalf("closable = %d, want 3 (a write without a revision registered when 3 was seen)", c)
	}
	_ = other
}
