// Copyright 2026 The Flotilla Authors. All rights reserved.

package multiraft

import (
	"sync"
	"time"

	"github.com/flotilladb/flotilla/internal/stopper"
)

// Scheduling states of a group, kept in group.sched under scheduler.mu.
const (
	schedQueued     = 1 << iota // in the queue
	schedProcessing             // a worker is processing it
	schedRequeue                // more work arrived while processing
)

// scheduler runs groups with pending work on a fixed pool of workers, so
// that thousands of groups need no goroutine each. Whoever adds work to a
// group's inbox enqueues the group; a worker takes it off the queue (first
// in, first out) and processes it.
//
// Invariants, kept under mu through group.sched: a group is processed by at
// most one worker at a time, so the worker-owned state of a group needs no
// lock and per-group order is kept; a group is queued at most once; work
// that arrives while a group is processed marks it (schedRequeue) and the
// group is queued again when the pass ends, so no work is left unprocessed.
type scheduler struct {
	process func(g *group)

	mu struct {
		sync.Mutex
		// queue holds queued groups from head on, first in first out.
		queue   []*group
		head    int
		stopped bool
	}
	cond *sync.Cond
	// stopper owns the workers. They wait on cond, not on its ShouldStop:
	// stop wakes them through mu.stopped.
	stopper *stopper.Stopper

	// queueLatency, if set, observes how long groups wait in the queue.
	queueLatency func(time.Duration)
}

func newScheduler(process func(g *group)) *scheduler {
	s := &scheduler{process: process, stopper: stopper.New()}
	s.cond = sync.NewCond(&s.mu)
	return s
}

func (s *scheduler) start(workers int) {
	for range workers {
		if !s.stopper.RunWorker(s.worker) {
			return // stopped before it started: nothing to process
		}
	}
}

// stop makes the workers exit once their current group is done, and waits.
func (s *scheduler) stop() {
	s.mu.Lock()
	s.mu.stopped = true
	s.mu.Unlock()
	s.cond.Broadcast()
	s.stopper.Stop()
}

// enqueue schedules g to be processed.
func (s *scheduler) enqueue(g *group) {
	s.mu.Lock()
	signal := s.enqueueLocked(g)
	s.mu.Unlock()
	if signal {
		s.cond.Signal()
	}
}

// enqueueAll schedules every group in gs.
func (s *scheduler) enqueueAll(gs []*group) {
	n := 0
	s.mu.Lock()
	for _, g := range gs {
		if s.enqueueLocked(g) {
			n++
		}
	}
	s.mu.Unlock()
	switch {
	case n == 1:
		s.cond.Signal()
	case n > 1:
		s.cond.Broadcast()
	}
}

// enqueueLocked reports whether g was added to the queue.
func (s *scheduler) enqueueLocked(g *group) bool {
	switch {
	case g.sched&schedProcessing != 0:
		g.sched |= schedRequeue
		return false
	case g.sched&schedQueued != 0:
		return false
	}
	g.sched |= schedQueued
	g.queuedAt = time.Now()
	s.mu.queue = append(s.mu.queue, g)
	return true
}

func (s *scheduler) worker() {
	s.mu.Lock()
	for {
		for s.mu.head == len(s.mu.queue) && !s.mu.stopped {
			s.cond.Wait()
		}
		if s.mu.stopped {
			s.mu.Unlock()
			return
		}
		g := s.mu.queue[s.mu.head]
		s.mu.queue[s.mu.head] = nil
		s.mu.head++
		if s.mu.head == len(s.mu.queue) {
			s.mu.queue, s.mu.head = s.mu.queue[:0], 0
		} else if s.mu.head > 1024 && s.mu.head > len(s.mu.queue)/2 {
			n := copy(s.mu.queue, s.mu.queue[s.mu.head:])
			clear(s.mu.queue[n:])
			s.mu.queue, s.mu.head = s.mu.queue[:n], 0
		}
		g.sched = schedProcessing
		queuedAt := g.queuedAt
		s.mu.Unlock()

		if s.queueLatency != nil {
			s.queueLatency(time.Since(queuedAt))
		}
		s.process(g)

		s.mu.Lock()
		if g.sched&schedRequeue != 0 {
			g.sched = 0
			if s.enqueueLocked(g) {
				// We will pick it (or another) up ourselves; wake one more
				// worker only if more than this is queued.
				if len(s.mu.queue)-s.mu.head > 1 {
					s.cond.Signal()
				}
			}
		} else {
			g.sched = 0
		}
	}
}
