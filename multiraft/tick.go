// Copyright 2026 The Flotilla Authors. All rights reserved.

package multiraft

import (
	"time"
)

// Ticks returns how many times the host's ticker has fired.
func (h *Host) Ticks() uint64 { return h.tickCount.Load() }

// GroupTicks returns how many ticks were delivered to groups in all.
func (h *Host) GroupTicks() uint64 { return h.metrics.ticks.Get() }

// Unquiesced returns the number of groups that are not quiescent.
func (h *Host) Unquiesced() int {
	h.activeMu.Lock()
	defer h.activeMu.Unlock()
	return len(h.active)
}

// TickInterval returns the host's raft tick.
func (h *Host) TickInterval() time.Duration { return h.cfg.TickInterval }

// Tick ticks every group that is not quiescent once, as the ticker does
// every TickInterval. Ticks queue up to MaxTicksQueued per group. It also
// has idle uninitialized replicas collected (collect.go).
func (h *Host) Tick() {
	h.activeMu.Lock()
	gs := make([]*group, 0, len(h.active))
	for _, g := range h.active {
		gs = append(gs, g)
	}
	h.activeMu.Unlock()
	for _, g := range gs {
		g.inboxMu.Lock()
		if g.inbox.ticks < h.cfg.MaxTicksQueued {
			g.inbox.ticks++
		}
		g.inboxMu.Unlock()
	}
	h.metrics.ticks.Add(len(gs))
	h.sched.enqueueAll(gs)
	h.collectIdle(time.Now())
}

// runTicker is the store's one ticker (a goroutine of h.stopper): each
// TickInterval it ticks the active groups, flushes the coalesced heartbeats,
// pings the peers once per heartbeat interval, and wakes the groups with a
// replica on a peer that went down.
func (h *Host) runTicker() {
	t := time.NewTicker(h.cfg.TickInterval)
	defer t.Stop()
	for {
		select {
		case <-h.stopper.ShouldStop():
			return
		case now := <-t.C:
			h.Tick()
			n := h.tickCount.Add(1)
			// Coalesced heartbeats go out once per tick; a liveness ping
			// once per heartbeat interval.
			h.flushOutboxes(n%uint64(h.cfg.HeartbeatTicks) == 0)
			if down := h.liveness.check(now); len(down) > 0 {
				h.logger.Info("peer nodes down: waking their groups", "nodes", down)
				h.wakeGroupsOn(down)
			}
		}
	}
}
