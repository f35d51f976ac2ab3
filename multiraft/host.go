// Copyright 2026 The Flotilla Authors. All rights reserved.

package multiraft

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flotilladb/flotilla/engine"
)

// Host runs the raft groups of one store: many RawNodes on a few goroutines,
// one log writer that makes every group's appends durable with shared
// fsyncs, one ticker, and one outgoing queue per peer node. See
// docs/multiraft.md.
type Host struct {
	cfg    Config
	eng    *engine.Engine
	logger *slog.Logger
	rng    *lockedRand

	sched     *scheduler
	logWriter *logWriter
	metrics   *hostMetrics

	// groupsMu guards groups and groupsClosed; groups themselves have their
	// own locks. It is never held across I/O.
	groupsMu     sync.RWMutex
	groups       map[GroupID]*group
	groupsClosed bool // Stop released the groups: no new ones
	// createMu serializes creating groups (Bootstrap, uninitialized
	// replicas), which does I/O; it is taken before groupsMu.
	createMu sync.Mutex

	outboxMu sync.Mutex
	outboxes map[NodeID]*outbox

	// activeMu guards active, the groups that are not quiescent: the ones
	// the ticker ticks.
	activeMu sync.Mutex
	active   map[GroupID]*group

	liveness *liveness
	// tickCount counts ticker ticks.
	tickCount atomic.Uint64

	// snapSem bounds the snapshots sent at once; snapWG waits for senders.
	snapSem chan struct{}
	snapWG  sync.WaitGroup

	stopper  chan struct{} // closed by Stop
	stopOnce sync.Once
	stopped  atomic.Bool
	wg       sync.WaitGroup // ticker and senders
	failed   atomic.Pointer[error]
}

// NewHost creates a host over cfg.Engine, loads every group found there and
// starts running them.
func NewHost(cfg Config) (*Host, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	h := &Host{
		cfg:      cfg,
		eng:      cfg.Engine,
		logger:   cfg.Logger.With("node", cfg.NodeID),
		rng:      newLockedRand(),
		groups:   make(map[GroupID]*group),
		outboxes: make(map[NodeID]*outbox),
		active:   make(map[GroupID]*group),
		stopper:  make(chan struct{}),
		snapSem:  make(chan struct{}, cfg.MaxConcurrentSnapshots),
		liveness: newLiveness(time.Duration(cfg.ElectionTicks) * cfg.TickInterval),
	}
	h.metrics = newHostMetrics(cfg.Metrics, h)
	h.sched = newScheduler(h.processGroup)
	h.sched.queueLatency = h.metrics.observeQueueLatency
	h.logWriter = newLogWriter(h)

	ids, err := h.eng.RangeIDs()
	if err != nil {
		return nil, fmt.Errorf("multiraft: listing groups: %w", err)
	}
	for _, id := range ids {
		replicaID, err := loadReplicaID(h.eng, id)
		if errors.Is(err, engine.ErrNotFound) {
			continue // local state of a range without a replica here
		}
		if err != nil {
			h.closeGroups()
			return nil, err
		}
		if removed, err := h.destroyIfRemoved(id, replicaID); err != nil || removed {
			if err != nil {
				h.closeGroups()
				return nil, err
			}
			continue
		}
		g, err := h.loadGroup(id, replicaID)
		if err != nil {
			h.closeGroups()
			return nil, fmt.Errorf("multiraft: loading group %d: %w", id, err)
		}
		h.groups[id] = g
		h.active[id] = g
	}

	h.sched.start(cfg.Workers)
	h.logWriter.start()
	if cfg.Testing == nil || !cfg.Testing.DisableTicker {
		h.wg.Add(1)
		go h.runTicker()
	}
	// Let restarted groups hand their committed but unapplied entries to
	// their state machines at once.
	h.groupsMu.RLock()
	all := make([]*group, 0, len(h.groups))
	for _, g := range h.groups {
		all = append(all, g)
	}
	h.groupsMu.RUnlock()
	h.sched.enqueueAll(all)
	return h, nil
}

// NodeID returns the host's node ID.
func (h *Host) NodeID() NodeID { return h.cfg.NodeID }

// fail stops the host after an error it cannot continue from (a storage
// failure). It returns at once; the host stops in the background.
func (h *Host) fail(err error) {
	if !h.failed.CompareAndSwap(nil, &err) {
		return
	}
	h.logger.Error("host failed, stopping", "err", err)
	go h.Stop()
}

// Err returns the error that made the host fail, if any.
func (h *Host) Err() error {
	if p := h.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// Stop stops every goroutine of the host and waits for them. Proposals not
// yet handed to raft fail as not applied, the others as ambiguous. The
// engine stays open. Stop is idempotent.
func (h *Host) Stop() {
	h.stopOnce.Do(func() {
		// Outbox creation checks stopped under outboxMu, so no sender starts
		// after this and wg.Wait below sees them all.
		h.outboxMu.Lock()
		h.stopped.Store(true)
		h.outboxMu.Unlock()
		close(h.stopper)
		h.wg.Wait()
		// Workers first: a worker part-way through a pass may still start a
		// snapshot sender.
		h.sched.stop()
		h.snapWG.Wait()
		h.logWriter.stop()
		h.closeGroups()
		h.metrics.unregister()
	})
}

// closeGroups resolves every outstanding proposal and releases the groups'
// storages. Nothing else may run on the groups.
func (h *Host) closeGroups() {
	h.groupsMu.Lock()
	defer h.groupsMu.Unlock()
	h.groupsClosed = true
	for id, g := range h.groups {
		g.closeInbox(ErrStopped)
		for _, p := range g.proposing {
			p.resolve(Result{}, ambiguous(ErrStopped))
		}
		for _, p := range g.pendingByIndex {
			p.resolve(Result{}, ambiguous(ErrStopped))
		}
		g.failReads(ErrStopped)
		g.dropUnacceptedSnapshots()
		g.inboxMu.Lock()
		for _, r := range g.inbox.reads {
			r.resolve(0, ErrStopped)
		}
		g.inbox.reads = nil
		g.inboxMu.Unlock()
		g.storage.Close()
		delete(h.groups, id)
	}
}
