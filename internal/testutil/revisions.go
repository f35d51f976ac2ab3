// Copyright 2026 The Flotilla Authors. All rights reserved.

package testutil

import (
	"context"
	"sync"
)

// Revisions is a revision oracle for the stores of one test process: a
// counter shared by every store given it. It satisfies shard.Revisions
// (each revision is handed out after the call began, above every earlier
// one). Fail makes calls fail, to test a store cut off from the oracle.
// The zero value is ready to use.
type Revisions struct {
	mu   sync.Mutex
	last int64
	err  error
	hook func(rev int64)
	pre  func()
}

// SetPreHook makes every later call run pre before it hands out its
// revision (pre may block to hold the caller there); nil removes it.
func (r *Revisions) SetPreHook(pre func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pre = pre
}

// SetHook makes every later call run hook with the revision it hands
// out, after handing it out and before returning it (hook may block to
// hold the caller there); nil removes it.
func (r *Revisions) SetHook(hook func(rev int64)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.hook = hook
}

// Revision hands out the next revision.
func (r *Revisions) Revision(ctx context.Context) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	r.mu.Lock()
	pre := r.pre
	r.mu.Unlock()
	if pre != nil {
		pre()
	}
	r.mu.Lock()
	if r.err != nil {
		r.mu.Unlock()
		return 0, r.err
	}
	r.last++
	rev, hook := r.last, r.hook
	r.mu.Unlock()
	if hook != nil {
		hook(rev)
	}
	return rev, nil
}

// Seen returns the last revision handed out.
func (r *Revisions) Seen() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}

// Fail makes every later call fail with err (nil: succeed again).
func (r *Revisions) Fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.err = err
}
