// Copyright 2026 The Flotilla Authors. All rights reserved.

// Package stopper owns a component's goroutines: every long-lived goroutine
// of a Host, a Transport or a node is started by its Stopper, and Stop
// signals them all and waits until each has returned.
//
// It is lni/goutils' syncutil.Stopper (the owner the design names) behind a
// guard that makes two of its sharp edges safe for goroutines started
// lazily from other goroutines (a sender for a new peer, an operator step
// started by the heartbeat loop):
//
//   - syncutil.Stopper.Stop holds its mutex while it waits for the workers,
//     and RunWorker takes that mutex: a worker that starts another worker
//     while Stop runs would block forever, and Stop with it. Here Stop first
//     closes the gate, under a lock every RunWorker holds while it starts
//     its goroutine, so no RunWorker reaches syncutil's once Stop waits.
//   - syncutil.Stopper.RunWorker silently drops f once stopping. Here
//     RunWorker reports it, so that the caller can undo what it prepared
//     for f (fail a request, release a slot).
//
// Invariant: once Stop has begun, no new goroutine starts, and Stop returns
// only after every goroutine RunWorker started has returned.
package stopper

import (
	"sync"

	"github.com/lni/goutils/syncutil"
)

// Stopper starts goroutines and stops them all at once. The zero value is
// not usable: call New.
type Stopper struct {
	s *syncutil.Stopper
	// gate is held shared by RunWorker while it starts a goroutine, and
	// exclusively by Stop while it sets stopping.
	gate struct {
		sync.RWMutex
		stopping bool
	}
	once sync.Once
}

// New returns a Stopper with no goroutines.
func New() *Stopper {
	return &Stopper{s: syncutil.NewStopper()}
}

// RunWorker runs f on a new goroutine that Stop waits for, and reports
// true; once Stop has begun it does nothing and reports false. f should
// return soon after ShouldStop is closed. Safe to call from any goroutine,
// a worker of this Stopper included.
func (s *Stopper) RunWorker(f func()) bool {
	s.gate.RLock()
	defer s.gate.RUnlock()
	if s.gate.stopping {
		return false
	}
	s.s.RunWorker(f)
	return true
}

// ShouldStop is closed when Stop begins: workers select on it.
func (s *Stopper) ShouldStop() <-chan struct{} { return s.s.ShouldStop() }

// Stopping reports whether Stop has begun.
func (s *Stopper) Stopping() bool {
	select {
	case <-s.s.ShouldStop():
		return true
	default:
		return false
	}
}

// Stop closes ShouldStop and waits for every worker to return. It is
// idempotent; a second call waits like the first. It must not be called
// from a worker of this Stopper (it would wait for itself).
func (s *Stopper) Stop() {
	s.gate.Lock()
	s.gate.stopping = true
	s.gate.Unlock()
	s.once.Do(s.s.Stop)
	s.s.Wait()
}
