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
	"github.com/flotilladb/flotilla/internal/stopper"
	"golang.org/x/time/rate"
)

// Host runs the raft groups of one store (see the package documentation).
// Its exported methods may be called from any goroutine, except Stop (see
// there).
//
// Lock order: a group's procMu (held through a worker's pass), createMu,
// groupsMu, a group's inboxMu. The other mutexes are leaves, held while
// nothing else is taken: activeMu, uninit's, outboxMu (but for a Stopper's own lock
// when it starts a sender), an outbox's mu, and those of the scheduler,
// the log writer, liveness and rng. A split, holding createMu, only tries
// another group's procMu (split.go); a worker collecting its group only
// tries createMu (collect.go).
type Host struct {
	// cfg is the configuration with its defaults, validated; immutable.
	cfg Config
	// eng is cfg.Engine; the caller closes it, after Stop.
	eng    *engine.Engine
	logger *slog.Logger
	// rng makes proposal IDs and ReadIndex request contexts.
	rng *lockedRand

	sched     *scheduler
	logWriter *logWriter
	metrics   *hostMetrics

	// groupsMu guards groups and groupsClosed; groups themselves have their
	// own locks. It is never held across I/O.
	groupsMu sync.RWMutex
	// groups holds every replica on this host that is not destroyed, by
	// group: a group's replica is reachable (for messages, proposals,
	// reads) exactly while it is here.
	groups       map[GroupID]*group
	groupsClosed bool // Stop released the groups: no new ones
	// createMu serializes creating groups (Bootstrap, uninitialized
	// replicas, splits), which does I/O and must not create a group twice;
	// it is taken before groupsMu.
	createMu sync.Mutex

	// outboxMu guards outboxes: the outgoing queue of each peer node this
	// host sent to, made with its sender on the first message and kept
	// until the host stops.
	outboxMu sync.Mutex
	outboxes map[NodeID]*outbox

	// activeMu guards active, the groups that are not quiescent: the ones
	// the ticker ticks. A live group is in active exactly when its quiesced
	// is false: the group's worker moves it (quiesce, unquiesce), and a new
	// group starts awake (insertGroup).
	activeMu sync.Mutex
	active   map[GroupID]*group

	// uninit holds the uninitialized replicas on the host (no applied
	// state: created by a message or a snapshot stream, or loaded so), to
	// bound those messages create (Config.MaxUninitializedReplicas) and
	// collect the idle ones (collect.go). Entries of replicas since
	// initialized or gone are pruned lazily. A leaf lock.
	uninit struct {
		sync.Mutex
		groups map[GroupID]*group
	}
	// dropLog rate-limits the logging of dropped messages: a hostile or
	// broken peer must not flood the log.
	dropLog *rate.Sometimes

	// liveness records when each peer node was last heard from
	// (HandleBatch) and which are down (the ticker checks).
	liveness *liveness
	// tickCount counts ticker ticks: one in HeartbeatTicks also pings the
	// peers.
	tickCount atomic.Uint64

	// snapSem bounds the snapshots sent at once; a sender takes a slot
	// before it reads the snapshot and frees it when done.
	snapSem chan struct{}

	// The host's goroutines belong to one Stopper per stage of shutdown,
	// because a Stopper stops all of its goroutines at once and shutdown
	// must stop them in order (see shutdown): the scheduler and the log
	// writer own their goroutines with Stoppers of their own.
	//
	// stopper owns the ticker and the per-peer senders and is stopped
	// first: its ShouldStop is the host's stop signal, which every other
	// goroutine of the host and every caller blocked in it watches, and
	// Stopping is what the host's entry points check. Once it is stopping,
	// no sender starts: an outbox made later only collects.
	stopper *stopper.Stopper
	// snapStopper owns the snapshot senders. Workers start them, so it is
	// stopped after the workers: none can start after it.
	snapStopper *stopper.Stopper
	// failStopper owns the goroutine fail starts to shut the host down.
	// It cannot belong to a stage's Stopper, since it stops them all; Stop
	// stops it last, so that no such goroutine outlives the host.
	failStopper *stopper.Stopper
	// shutdownOnce runs shutdown once, from Stop or from fail's goroutine;
	// a second caller waits until it is done.
	shutdownOnce sync.Once
	// failed is the error that made the host fail: set once, by fail.
	failed atomic.Pointer[error]
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
		snapSem:  make(chan struct{}, cfg.MaxConcurrentSnapshots),
		liveness: newLiveness(time.Duration(cfg.ElectionTicks) * cfg.TickInterval),
		dropLog:  &rate.Sometimes{Interval: 10 * time.Second},

		stopper:     stopper.New(),
		snapStopper: stopper.New(),
		failStopper: stopper.New(),
	}
	h.uninit.groups = make(map[GroupID]*group)
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
		h.noteIfUninitialized(g)
	}

	h.sched.start(cfg.Workers)
	h.logWriter.start()
	if cfg.Testing == nil || !cfg.Testing.DisableTicker {
		h.stopper.RunWorker(h.runTicker) // nothing stops the host before NewHost returns
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
// failure). It returns at once; the host shuts down on a goroutine of
// failStopper, which Stop waits for. fail runs on the host's own goroutines
// (a worker, the log writer), which shutdown waits for, so it must not
// shut down itself. If Stop has begun, the goroutine is refused: Stop is
// shutting down already.
func (h *Host) fail(err error) {
	if !h.failed.CompareAndSwap(nil, &err) {
		return
	}
	h.logger.Error("host failed, stopping", "err", err)
	h.failStopper.RunWorker(func() { h.shutdownOnce.Do(h.shutdown) })
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
// engine stays open. Stop is idempotent and may be called concurrently, and
// while a failure stops the host: every call returns once the host is
// stopped. It must not be called from the host's goroutines (a
// StateMachine's methods, Transport.Send): it would wait for itself.
func (h *Host) Stop() {
	h.shutdownOnce.Do(h.shutdown)
	// fail may have started a goroutine that runs (or ran, or waits in
	// shutdownOnce for) shutdown: wait for it too.
	h.failStopper.Stop()
}

// shutdown stops the host's goroutines stage by stage, each stage's
// Stopper waiting for its goroutines before the next begins, and then
// releases the groups. It runs once (shutdownOnce), from Stop or from the
// goroutine fail starts.
func (h *Host) shutdown() {
	// The ticker and the senders. This raises the host's stop signal too:
	// workers' passes do nothing from now on, the log writer stops taking
	// writes, snapshot senders cancel their streams, callers return
	// ErrStopped.
	h.stopper.Stop()
	// The workers: a worker part-way through a pass may still start a
	// snapshot sender or queue a write.
	h.sched.stop()
	h.snapStopper.Stop()
	// The log writer last: with the workers gone nothing queues a write
	// after it drained its queue.
	h.logWriter.stop()
	h.closeGroups()
	h.metrics.unregister()
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
