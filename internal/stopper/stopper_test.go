// Copyright 2026 The Flotilla Authors. All rights reserved.

package stopper_test

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/flotilladb/flotilla/internal/stopper"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestStopWaitsForWorkers: Stop returns only after every worker returned,
// and nothing starts afterwards.
func TestStopWaitsForWorkers(t *testing.T) {
	s := stopper.New()
	var done atomic.Int32
	for range 10 {
		if !s.RunWorker(func() {
			<-s.ShouldStop()
			done.Add(1)
		}) {
			t.Fatal("RunWorker refused before Stop")
		}
	}
	if s.Stopping() {
		t.Fatal("Stopping before Stop")
	}
	s.Stop()
	if got := done.Load(); got != 10 {
		t.Fatalf("Stop returned with %d of 10 workers done", got)
	}
	if !s.Stopping() {
		t.Fatal("not Stopping after Stop")
	}
	if s.RunWorker(func() { t.Error("a worker ran after Stop") }) {
		t.Fatal("RunWorker accepted a worker after Stop")
	}
	s.Stop() // idempotent
}

// TestWorkerStartsWorkerDuringStop: a worker that starts another worker
// while Stop runs neither deadlocks (syncutil.Stopper alone would) nor
// leaks: the late worker is refused, and the caller learns it.
func TestWorkerStartsWorkerDuringStop(t *testing.T) {
	for range 100 {
		s := stopper.New()
		var refused, ran atomic.Int32
		var started sync.WaitGroup
		started.Add(1)
		s.RunWorker(func() {
			started.Done()
			<-s.ShouldStop()
			// The spawner learns about the stop only now: what it starts
			// must be refused, not block.
			if s.RunWorker(func() { ran.Add(1) }) {
				t.Error("a worker started after Stop began")
			} else {
				refused.Add(1)
			}
		})
		started.Wait()
		s.Stop()
		if refused.Load() != 1 || ran.Load() != 0 {
			t.Fatalf("refused %d, ran %d; want 1, 0", refused.Load(), ran.Load())
		}
	}
}

// TestConcurrentRunAndStop races RunWorker against Stop: each accepted
// worker has returned when Stop returns (run with -race).
func TestConcurrentRunAndStop(t *testing.T) {
	for range 50 {
		s := stopper.New()
		var accepted, finished atomic.Int32
		var callers sync.WaitGroup
		for range 4 {
			callers.Add(1)
			go func() {
				defer callers.Done()
				for range 20 {
					if s.RunWorker(func() { finished.Add(1) }) {
						accepted.Add(1)
					}
				}
			}()
		}
		s.Stop()
		// Stop's promise covers the workers accepted before it began; the
		// callers may still be refused afterwards.
		callers.Wait()
		s.Stop()
		if accepted.Load() != finished.Load() {
			t.Fatalf("accepted %d workers, %d finished", accepted.Load(), finished.Load())
		}
	}
}
