// Copyright 2026 The Flotilla Authors. All rights reserved.

package server

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/flotilladb/flotilla/internal/testutil"
)

// TestRevisionQueueBatching steps the batching shared by the oracle's
// client and leader with a fake serve: one round at a time; a caller joins
// only a round begun after it queued; a round asks for exactly the
// revisions of the callers still waiting, and hands them out in arrival
// order; a caller gone before its round gets nothing; an error reaches
// every caller of its round.
func TestRevisionQueueBatching(t *testing.T) {
	n := &Node{}
	n.stopCtx, n.stop = context.WithCancel(context.Background())
	q := newRevisionQueue()

	type round struct {
		total   int64
		release chan error
	}
	rounds := make(chan round)
	var inFlight, next int64 = 0, 100
	var mu sync.Mutex
	serve := func(ctx context.Context, total int64) (int64, error) {
		mu.Lock()
		inFlight++
		if inFlight > 1 {
			t.Errorf("%d rounds in flight", inFlight)
		}
		mu.Unlock()
		r := round{total: total, release: make(chan error)}
		var err error
		// The round's context ends with the node: a failed test does
		// not leave it blocked.
		select {
		case rounds <- r:
			select {
			case err = <-r.release:
			case <-ctx.Done():
				err = ctx.Err()
			}
		case <-ctx.Done():
			err = ctx.Err()
		}
		mu.Lock()
		inFlight--
		first := next
		if err == nil {
			next += total
		}
		mu.Unlock()
		return first, err
	}
	defer runQueue(n, q, 1, serve)()
	call := func(ctx context.Context, count int64) chan queueAnswer { return callQueue(ctx, n, q, count) }
	pending := func(want int) { t.Helper(); waitPending(t, q, want) }
	expect := func(ch chan queueAnswer, first int64, wantErr bool) {
		t.Helper()
		a := <-ch
		if (a.err != nil) != wantErr || (!wantErr && a.first != first) {
			t.Fatalf("answer %d, %v; want %d (error: %v)", a.first, a.err, first, wantErr)
		}
	}

	// A alone: a round of 1.
	a := call(context.Background(), 1)
	r1 := <-rounds
	if r1.total != 1 {
		t.Fatalf("first round asks %d", r1.total)
	}
	// B (2) and C (1) arrive while it is in flight: the next round.
	b := call(context.Background(), 2)
	pending(1)
	c := call(context.Background(), 1)
	pending(2)
	r1.release <- nil
	expect(a, 100, false)
	r2 := <-rounds
	if r2.total != 3 {
		t.Fatalf("second round asks %d, want 3", r2.total)
	}
	// D gives up before its round begins; E waits.
	dctx, cancelD := context.WithCancel(context.Background())
	d := call(dctx, 5)
	pending(1)
	e := call(context.Background(), 1)
	pending(2)
	cancelD()
	expect(d, 0, true)
	r2.release <- nil
	expect(b, 101, false)
	expect(c, 103, false)
	r3 := <-rounds
	if r3.total != 1 {
		t.Fatalf("third round asks %d, want 1 (the caller gone gets none)", r3.total)
	}
	r3.release <- fmt.Errorf("leader lost")
	expect(e, 0, true)
	// After an error, a new caller gets a new round.
	f := call(context.Background(), 1)
	r4 := <-rounds
	r4.release <- nil
	expect(f, 104, false)
}

// TestRevisionQueueRoundsAtOnce: with two rounds allowed at once (the
// oracle leader's), a caller that arrives during a round gets its own
// round at once; one that arrives while two are in flight waits for one of
// them to end, and then joins the next with every caller that arrived
// meanwhile.
func TestRevisionQueueRoundsAtOnce(t *testing.T) {
	n := &Node{}
	n.stopCtx, n.stop = context.WithCancel(context.Background())
	q := newRevisionQueue()

	type round struct {
		total   int64
		release chan struct{}
	}
	rounds := make(chan round)
	var (
		mu               sync.Mutex
		inFlight, maxNow int
		next             int64 = 1
	)
	serve := func(ctx context.Context, total int64) (int64, error) {
		mu.Lock()
		inFlight++
		maxNow = max(maxNow, inFlight)
		mu.Unlock()
		defer func() {
			mu.Lock()
			inFlight--
			mu.Unlock()
		}()
		r := round{total: total, release: make(chan struct{})}
		select {
		case rounds <- r:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		select {
		case <-r.release:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
		mu.Lock()
		defer mu.Unlock()
		first := next
		next += total
		return first, nil
	}
	defer runQueue(n, q, 2, serve)()
	call := func(count int64) chan queueAnswer { return callQueue(context.Background(), n, q, count) }
	expect := func(ch chan queueAnswer, first int64) {
		t.Helper()
		if a := <-ch; a.err != nil || a.first != first {
			t.Fatalf("answer %d, %v; want %d", a.first, a.err, first)
		}
	}
	pending := func(want int) { t.Helper(); waitPending(t, q, want) }

	a := call(1)
	r1 := <-rounds
	b := call(2)
	r2 := <-rounds // while r1 is in flight
	if r1.total != 1 || r2.total != 2 {
		t.Fatalf("rounds ask %d and %d, want 1 and 2", r1.total, r2.total)
	}
	c := call(3)
	pending(1)
	d := call(4)
	pending(2)
	// Revisions follow the order rounds end, not the order they began.
	close(r2.release)
	expect(b, 1)
	r3 := <-rounds
	if r3.total != 7 {
		t.Fatalf("third round asks %d, want 7 (the two callers that waited)", r3.total)
	}
	close(r1.release)
	expect(a, 3)
	close(r3.release)
	expect(c, 4)
	expect(d, 7)
	mu.Lock()
	defer mu.Unlock()
	if maxNow != 2 {
		t.Fatalf("%d rounds at once at most, want 2", maxNow)
	}
}

// runQueue runs q with inFlight rounds at once until the returned func
// stops n and waits for it.
func runQueue(n *Node, q *revisionQueue, inFlight int, serve func(context.Context, int64) (int64, error)) (stop func()) {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		q.run(n, inFlight, serve)
	}()
	return func() {
		n.stop()
		wg.Wait()
	}
}

// queueAnswer is what a caller of a revisionQueue got.
type queueAnswer struct {
	first int64
	err   error
}

// callQueue asks q for count revisions in the background.
func callQueue(ctx context.Context, n *Node, q *revisionQueue, count int64) chan queueAnswer {
	ch := make(chan queueAnswer, 1)
	go func() {
		first, err := q.wait(ctx, n, count)
		ch <- queueAnswer{first, err}
	}()
	return ch
}

// waitPending waits until want callers wait in q's pending batch.
func waitPending(t *testing.T, q *revisionQueue, want int) {
	t.Helper()
	testutil.SucceedsSoon(t, func() error {
		q.mu.Lock()
		defer q.mu.Unlock()
		if q.mu.pending == nil || len(q.mu.pending.slots) != want {
			return fmt.Errorf("callers pending %v, want %d", q.mu.pending, want)
		}
		return nil
	})
}
