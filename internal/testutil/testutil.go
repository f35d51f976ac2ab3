// Copyright 2026 The Flotilla Authors. All rights reserved.

// Package testutil holds helpers shared by Flotilla's tests: SucceedsSoon
// and its variants, which poll a condition with backoff until a deadline,
// so that no test sleeps to wait for one. It imports nothing of Flotilla's
// and starts no goroutines.
package testutil

import (
	"fmt"
	"testing"
	"time"
)

// DefaultSucceedsSoonTimeout bounds SucceedsSoon. It is generous because
// tests run under the race detector on a shared 2-core machine.
const DefaultSucceedsSoonTimeout = 45 * time.Second

// SucceedsSoon polls fn until it returns nil, failing the test with fn's last
// error if that does not happen within DefaultSucceedsSoonTimeout. It backs
// off from 1 ms to 100 ms between attempts. Use it instead of sleeping.
func SucceedsSoon(t testing.TB, fn func() error) {
	t.Helper()
	SucceedsWithin(t, DefaultSucceedsSoonTimeout, fn)
}

// SucceedsWithin is SucceedsSoon with a chosen deadline.
func SucceedsWithin(t testing.TB, d time.Duration, fn func() error) {
	t.Helper()
	if err := SucceedsWithinErr(d, fn); err != nil {
		t.Fatal(err)
	}
}

// SucceedsWithinErr polls fn like SucceedsWithin and returns an error
// instead of failing the test, for conditions a test can do without.
func SucceedsWithinErr(d time.Duration, fn func() error) error {
	deadline := time.Now().Add(d)
	wait := time.Millisecond
	for {
		err := fn()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("condition not met after %v: %v", d, err)
		}
		time.Sleep(wait)
		wait = min(2*wait, 100*time.Millisecond)
	}
}
