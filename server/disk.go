// Copyright 2026 The Flotilla Authors. All rights reserved.

package server

import (
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
)

// The node watches its store's disk (diskLoop):
//
//   - Free space. Every DiskCheckInterval it reads the free space of the
//     store's filesystem (statfs, through the engine's vfs.FS). Below the
//     reserve (Config.DiskReserve) it raises its NOSPACE alarm; it clears
//     the alarm once the free space is back above the reserve plus a
//     quarter of it (hysteresis: a node hovering at the reserve does not
//     flap). While the alarm is raised, the ranges this node leads refuse
//     client writes at once with a NoSpace error (not applied), whichever
//     gateway sent them (shard.Config.AdmitWrite, checked at the leader's
//     proposal path: the leader is where a write enters the raft log and
//     where it can still be refused cleanly). Reads are served. Raft's
//     own writes go on: log entries a leader on another node replicates
//     here, heartbeats, votes, applying committed entries, log truncation,
//     snapshots, splits and membership changes. They are small, and
//     refusing them would lose nothing less than a committed write's
//     replica, or stall the other nodes' ranges. So a follower whose disk
//     fills does not refuse the leader's entries: it keeps writing them
//     into its reserve until the disk itself fails.
//   - Store failure. When a write to the store fails all the same (ENOSPC
//     or any I/O error on the raft log or while applying), the engine and
//     the raft host fail; the node then logs why, stops itself and closes
//     Failed, and `flotilla start` exits non-zero with the reason. Nothing
//     acknowledged is lost: a write is acknowledged only after its log
//     entry was synced on a quorum.

// Defaults of the disk reserve (Config.DiskReserve).
const (
	// DefaultDiskReserve is the least free space kept: 256 MiB.
	DefaultDiskReserve = 256 << 20
	// DefaultDiskReservePercent is the free space kept on large disks: 1 %
	// of the filesystem, when that is more than DefaultDiskReserve.
	DefaultDiskReservePercent = 1.0
	// DefaultDiskCheckInterval is how often the free space is read.
	DefaultDiskCheckInterval = time.Second
)

// AlarmNoSpace is the alarm a node raises while its store's free disk space
// is below its reserve.
const AlarmNoSpace = "NOSPACE"

// storeCheckInterval is how often the node checks whether its store failed
// (two atomic loads).
const storeCheckInterval = 100 * time.Millisecond

// diskState is what the node last read of its store's filesystem.
type diskState struct {
	usage   vfs.DiskUsage
	reserve uint64
	// alarm: the NOSPACE alarm is raised.
	alarm bool
}

// diskWatch is the node's view of its disk. Only diskLoop writes it.
type diskWatch struct {
	// state is the last reading; nil until the first one, or if the
	// filesystem cannot tell its free space.
	state atomic.Pointer[diskState]
	// failOnce makes the node stop once for a failed store; failErr is
	// why, set before failed is closed.
	failOnce sync.Once
	failErr  error
	failed   chan struct{}
}

// reserveFor returns the reserve on a filesystem of total bytes, 0 when
// there is none (DiskReserve negative).
func (c *Config) reserveFor(total uint64) uint64 {
	switch {
	case c.DiskReserve < 0:
		return 0
	case c.DiskReservePercent > 0:
		return uint64(float64(total) * c.DiskReservePercent / 100)
	case c.DiskReserve > 0:
		return uint64(c.DiskReserve)
	}
	// A small disk (a test's, a container's) keeps no more than a tenth.
	return min(max(DefaultDiskReserve, uint64(float64(total)*DefaultDiskReservePercent/100)), total/10)
}

// diskLoop watches the store's disk space and failure until the node
// stops or its store fails (a stopper worker).
func (n *Node) diskLoop() {
	interval := n.diskCheckInterval()
	tick := time.NewTicker(min(interval, storeCheckInterval))
	defer tick.Stop()
	var lastRead time.Time
	for {
		if n.checkStoreFailed() {
			return
		}
		if now := time.Now(); now.Sub(lastRead) >= interval {
			n.checkDisk()
			lastRead = now
		}
		select {
		case <-n.stopCtx.Done():
			return
		case <-tick.C:
		}
	}
}

func (n *Node) diskCheckInterval() time.Duration {
	if k := n.cfg.Testing; k != nil && k.DiskCheckInterval > 0 {
		return k.DiskCheckInterval
	}
	return DefaultDiskCheckInterval
}

// checkDisk reads the free space and raises or clears the alarm. With no
// reserve (DiskReserve negative) it only reads, for the heartbeats.
func (n *Node) checkDisk() {
	u, err := n.eng.DiskUsage()
	if err != nil {
		if !errors.Is(err, vfs.ErrUnsupported) {
			n.log.Warn("reading the store's free disk space", "dir", n.cfg.Dir, "err", err)
		}
		return
	}
	st := &diskState{usage: u, reserve: n.cfg.reserveFor(u.TotalBytes)}
	prev := n.disk.state.Load()
	wasRaised := prev != nil && prev.alarm
	switch {
	case u.AvailBytes < st.reserve:
		st.alarm = true
	case wasRaised:
		// Clear only with a margin over the reserve.
		st.alarm = u.AvailBytes < st.reserve+st.reserve/4
	}
	n.disk.state.Store(st)
	switch {
	case st.alarm && !wasRaised:
		n.log.Error("alarm NOSPACE raised: free disk space is below the reserve; refusing writes to the ranges this node leads until space is freed",
			"dir", n.cfg.Dir, "available_bytes", u.AvailBytes, "reserve_bytes", st.reserve)
	case !st.alarm && wasRaised:
		n.log.Warn("alarm NOSPACE cleared: free disk space is back above the reserve; accepting writes",
			"dir", n.cfg.Dir, "available_bytes", u.AvailBytes, "reserve_bytes", st.reserve)
	}
}

// admitWrite is the store's AdmitWrite: a NoSpace error while the alarm
// is raised.
func (n *Node) admitWrite() *flotillapb.Error {
	st := n.disk.state.Load()
	if st == nil || !st.alarm {
		return nil
	}
	return &flotillapb.Error{
		Message: fmt.Sprintf("no space: node %d's free disk space (%d bytes) is below its reserve (%d bytes): alarm NOSPACE; it refuses writes until space is freed (reads are served)",
			n.self.Load(), st.usage.AvailBytes, st.reserve),
		Outcome: flotillapb.Outcome_NOT_APPLIED,
		Detail: &flotillapb.Error_NoSpace{NoSpace: &flotillapb.NoSpace{
			NodeId: n.self.Load(), AvailableBytes: st.usage.AvailBytes, ReserveBytes: st.reserve,
		}},
	}
}

// Alarms returns the node's raised alarms: AlarmNoSpace while its disk is
// short of space; none otherwise.
func (n *Node) Alarms() []string {
	if st := n.disk.state.Load(); st != nil && st.alarm {
		return []string{AlarmNoSpace}
	}
	return nil
}

// diskStatus returns the last reading of the disk for status reports, nil
// if there is none.
func (n *Node) diskStatus() *flotillapb.DiskStatus {
	st := n.disk.state.Load()
	if st == nil {
		return nil
	}
	return &flotillapb.DiskStatus{TotalBytes: st.usage.TotalBytes, AvailableBytes: st.usage.AvailBytes, ReserveBytes: st.reserve}
}

// checkStoreFailed stops the node if its store or raft host failed, and
// reports whether it did.
func (n *Node) checkStoreFailed() bool {
	err := n.eng.Err()
	if err == nil {
		if host, _, ok := n.running(); ok {
			err = host.Err()
		}
	}
	if err == nil {
		return false
	}
	n.disk.failOnce.Do(func() {
		n.disk.failErr = fmt.Errorf("flotilla: node stopped: its store in %s failed: %w", n.cfg.Dir, err)
		n.log.Error("the store failed; stopping the node", "dir", n.cfg.Dir, "err", err.Error())
		close(n.disk.failed)
		// Close waits for the stopper's goroutines, diskLoop among them,
		// so it runs on a goroutine of its own; any other Close call waits
		// until it is done (closeOnce).
		go func() { _ = n.Close() }()
	})
	return true
}

// Failed is closed when the node stopped itself because its store failed
// (a write to the disk failed); FailErr then says why. A program that
// runs a node should exit non-zero then, as `flotilla start` does.
func (n *Node) Failed() <-chan struct{} { return n.disk.failed }

// FailErr returns why the node stopped itself (see Failed), or nil.
func (n *Node) FailErr() error {
	select {
	case <-n.disk.failed:
		return n.disk.failErr
	default:
		return nil
	}
}

// registerDiskMetrics adds the disk watch's gauges to the node's metrics:
//
//	flotilla_store_disk_available_bytes  free space of the store's filesystem, as last read
//	flotilla_store_disk_reserve_bytes    the reserve kept there
//	flotilla_alarm_nospace               1 while the NOSPACE alarm is raised, else 0
func (n *Node) registerDiskMetrics() {
	read := func(f func(*diskState) float64) func() float64 {
		return func() float64 {
			if st := n.disk.state.Load(); st != nil {
				return f(st)
			}
			return 0
		}
	}
	n.metrics.NewGauge("flotilla_store_disk_available_bytes", read(func(st *diskState) float64 { return float64(st.usage.AvailBytes) }))
	n.metrics.NewGauge("flotilla_store_disk_reserve_bytes", read(func(st *diskState) float64 { return float64(st.reserve) }))
	n.metrics.NewGauge("flotilla_alarm_nospace", read(func(st *diskState) float64 {
		if st.alarm {
			return 1
		}
		return 0
	}))
}
