// Copyright 2026 The Flotilla Authors. All rights reserved.

package revcheck

import (
	"fmt"
	"slices"
	"sync"
	"time"
)

// Recorder collects a history from many goroutines. Times come from one
// monotonic clock started by NewRecorder.
type Recorder struct {
	start time.Time
	mu    struct {
		sync.Mutex
		// ops are the recorded ops, IDs 1, 2, … in recording order.
		ops []Op
		// notApplied counts ops recorded with Outcome NotApplied (left
		// out of ops); unknown those with Outcome Unknown.
		notApplied, unknown int
	}
}

// NewRecorder returns an empty Recorder whose clock starts now.
func NewRecorder() *Recorder { return &Recorder{start: time.Now()} }

// Now is the Recorder's clock: nanoseconds since NewRecorder, monotonic.
// Take an op's call time before sending it and its return time after its
// answer (or error) arrived. Safe for concurrent use.
func (r *Recorder) Now() int64 { return time.Since(r.start).Nanoseconds() }

// Record adds an op that client ran between call and ret (from Now). An op
// with Outcome NotApplied is counted and dropped; a read that failed must
// be recorded as NotApplied too (it observed nothing). Safe for concurrent
// use; in and out are kept as given (the caller must not modify their
// slices afterwards).
func (r *Recorder) Record(client int, in Input, call, ret int64, out Output) {
	r.mu.Lock()
	defer r.mu.Unlock()
	switch out.Outcome {
	case NotApplied:
		r.mu.notApplied++
		return
	case Unknown:
		r.mu.unknown++
	}
	r.mu.ops = append(r.mu.ops, Op{ID: len(r.mu.ops) + 1, ClientID: client, Call: call, Return: ret, Input: in, Output: out})
}

// Do runs fn, timing it with Now, and records its answer as client's op in.
func (r *Recorder) Do(client int, in Input, fn func() Output) Output {
	call := r.Now()
	out := fn()
	r.Record(client, in, call, r.Now(), out)
	return out
}

// History returns a copy of the ops recorded so far, in recording order.
func (r *Recorder) History() []Op {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.mu.ops)
}

// String summarizes what was recorded.
func (r *Recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return fmt.Sprintf("%d ops recorded (%d of unknown outcome), %d not applied dropped", len(r.mu.ops), r.mu.unknown, r.mu.notApplied)
}
