// Copyright 2026 The Flotilla Authors. All rights reserved.

package multiraft

import (
	"errors"
	"fmt"
	"time"

	"github.com/flotilladb/flotilla/engine"
)

// Uninitialized replicas: bounded and collected. A message from a leader
// or candidate for a group this host lacks creates an uninitialized
// replica (groupFor), which costs memory, a state machine, and an fsync.
// Peers' messages may create at most Config.MaxUninitializedReplicas of
// them at a time; beyond, such messages are dropped until some are
// initialized (by a snapshot or a split) or collected. Snapshot streams are
// not bounded: their header is checked, and a leader sends one only to a
// replica that answered its append.
//
// An uninitialized replica that hears nothing (no message, no snapshot) for
// Config.UninitializedReplicaTimeout is collected: it leaves the host and
// its replica ID record is deleted, so it is not loaded again, but its
// HardState stays: it may have voted, and the next message for the group
// re-creates the replica with that term and vote (raft's safety needs a
// vote to survive; an uninitialized replica has nothing else). No
// tombstone is written, so nothing forbids the re-creation. A replica that
// a leader is catching up hears its heartbeats every heartbeat interval and
// its snapshot stream keeps it (snapsIncoming) while it arrives, so it is
// not collected; were it collected anyway, the leader's next message would
// re-create it.
//
// The HardStates of collected replicas stay on disk (a few dozen bytes
// each): forged votes for made-up groups still cost a little disk each.

// errUninitLimit: creating the replica would exceed
// Config.MaxUninitializedReplicas.
var errUninitLimit = errors.New("multiraft: too many uninitialized replicas")

// errNotHere: the message is for a replica on another node, or names no
// valid group or replica.
var errNotHere = errors.New("multiraft: message for no replica of this node")

// noteIfUninitialized records g in h.uninit if it has no applied state,
// as heard from now.
func (h *Host) noteIfUninitialized(g *group) {
	if g.applied.index != 0 {
		return
	}
	g.lastHeard.Store(time.Now().UnixNano())
	h.uninit.Lock()
	h.uninit.groups[g.id] = g
	h.uninit.Unlock()
}

// uninitRoom reports whether one more uninitialized replica may be
// created by a message, pruning replicas since initialized or gone.
func (h *Host) uninitRoom() bool {
	h.uninit.Lock()
	defer h.uninit.Unlock()
	if len(h.uninit.groups) < h.cfg.MaxUninitializedReplicas {
		return true
	}
	h.pruneUninitLocked()
	return len(h.uninit.groups) < h.cfg.MaxUninitializedReplicas
}

func (h *Host) pruneUninitLocked() {
	for id, g := range h.uninit.groups {
		if g.destroyed.Load() || g.status.applied.Load() != 0 {
			delete(h.uninit.groups, id)
		}
	}
}

// UninitializedReplicas returns how many uninitialized replicas the host
// holds.
func (h *Host) UninitializedReplicas() int {
	h.uninit.Lock()
	defer h.uninit.Unlock()
	h.pruneUninitLocked()
	return len(h.uninit.groups)
}

// collectIdle asks the workers of the uninitialized replicas idle since
// before now minus the timeout to collect them (the ticker, every tick).
func (h *Host) collectIdle(now time.Time) {
	deadline := now.Add(-h.cfg.UninitializedReplicaTimeout).UnixNano()
	var idle []*group
	h.uninit.Lock()
	h.pruneUninitLocked()
	for _, g := range h.uninit.groups {
		if g.lastHeard.Load() < deadline && g.snapsIncoming.Load() == 0 {
			idle = append(idle, g)
		}
	}
	h.uninit.Unlock()
	for _, g := range idle {
		g.inboxMu.Lock()
		closed := g.inbox.closed
		g.inbox.collect = !closed
		g.inboxMu.Unlock()
		if !closed {
			h.sched.enqueue(g)
		}
	}
}

// collectable reports whether the worker may collect g now: it is still
// uninitialized, idle, and nothing of it is in flight. work is whether this
// pass took any work from the inbox.
func (h *Host) collectable(g *group, work bool) bool {
	deadline := time.Now().Add(-h.cfg.UninitializedReplicaTimeout).UnixNano()
	return !work && g.applied.index == 0 && g.lastHeard.Load() < deadline && g.snapsIncoming.Load() == 0 &&
		g.appendsInFlight.Load() == 0 && len(g.stagedSnaps) == 0 && len(g.proposing) == 0 &&
		len(g.pendingByIndex) == 0 && len(g.readBatches) == 0 && len(g.readQueue) == 0 && len(g.readWaiters) == 0
}

// collectGroup removes an idle uninitialized replica (worker; see
// collectable) and reports whether it did. Under createMu, so that no
// message re-creates the group while its replica ID record is deleted: the
// replica leaves the host, its work fails, and its record goes (without
// fsync: a crash before the deletion is durable loads the replica again, to
// be collected again). Its HardState stays. The worker holds the group's
// procMu, and a split holding createMu may be waiting for it (split.go):
// so createMu is only tried, and collection waits for the next round if it
// is taken.
func (h *Host) collectGroup(g *group) (bool, error) {
	if !h.createMu.TryLock() {
		return false, nil
	}
	defer h.createMu.Unlock()
	h.groupsMu.Lock()
	if h.groups[g.id] != g {
		h.groupsMu.Unlock()
		return false, nil // replaced (a split) or gone
	}
	g.destroyed.Store(true)
	delete(h.groups, g.id)
	h.groupsMu.Unlock()
	h.activeMu.Lock()
	delete(h.active, g.id)
	h.activeMu.Unlock()
	h.uninit.Lock()
	delete(h.uninit.groups, g.id)
	h.uninit.Unlock()
	gone := fmt.Errorf("%w: idle uninitialized replica collected", ErrGroupNotFound)
	g.closeInbox(gone)
	g.failReads(gone)
	g.dropUnacceptedSnapshots()
	b := h.eng.NewBatch()
	defer b.Close()
	err := b.Delete(engine.RaftReplicaIDKey(g.id))
	if err == nil {
		err = b.Commit(false)
	}
	g.storage.Close()
	if err != nil {
		return true, fmt.Errorf("collecting uninitialized replica: %w", err)
	}
	h.metrics.replicasCollected.Inc()
	h.logger.Debug("collected an idle uninitialized replica", "group", g.id, "replica", g.replicaID)
	return true, nil
}
