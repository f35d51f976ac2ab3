// Copyright 2026 The Flotilla Authors. All rights reserved.

package shard

import (
	"testing"
	"time"
)

func TestRateCounter(t *testing.T) {
	var c rateCounter
	t0 := time.Unix(1000, 0)
	if r := c.rate(t0); r != 0 {
		t.Fatalf("empty counter: %v", r)
	}
	for s := range 11 {
		c.add(t0.Add(time.Duration(s)*time.Second), 11)
	}
	// The window holds 11 seconds (ten whole ones and the current).
	if r := c.rate(t0.Add(10 * time.Second)); r != 11 {
		t.Fatalf("rate %v, want 11", r)
	}
	// Seconds age out of the window.
	if r := c.rate(t0.Add(15 * time.Second)); r != 6 {
		t.Fatalf("rate after 5 idle seconds %v, want 6", r)
	}
	if r := c.rate(t0.Add(time.Minute)); r != 0 {
		t.Fatalf("rate after a minute %v, want 0", r)
	}
	// A bucket reused for a later second starts from zero.
	c.add(t0.Add(22*time.Second), 1)
	if r := c.rate(t0.Add(22 * time.Second)); r != 1.0/11 {
		t.Fatalf("rate %v, want 1/11", r)
	}
}
