// Copyright 2026 The Flotilla Authors. All rights reserved.

package multiraft

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/flotilladb/flotilla/engine"
)

// Defaults for Config; each field's comment says what it bounds.
const (
	DefaultTickInterval    = 100 * time.Millisecond
	DefaultHeartbeatTicks  = 2
	DefaultElectionTicks   = 10
	DefaultMaxSizePerMsg   = 256 << 10
	DefaultMaxInflightMsgs = 128
	DefaultMaxTicksQueued  = 3
	// DefaultMaxCommittedSizePerReady bounds the committed entries applied in
	// one go.
	DefaultMaxCommittedSizePerReady = 4 << 20
	// DefaultMaxOutboxMessages bounds each peer node's queue of outgoing
	// messages; beyond it messages are dropped and their replicas reported
	// unreachable to raft.
	DefaultMaxOutboxMessages = 16 << 10
	// DefaultMaxUninitializedReplicas bounds the uninitialized replicas
	// that peers' messages may create on a host.
	DefaultMaxUninitializedReplicas = 64
	// DefaultUninitializedReplicaElections is, in election timeouts, how
	// long an uninitialized replica may hear nothing before it is
	// collected (10 s with the default tick and election timeout).
	DefaultUninitializedReplicaElections = 10
)

// Config configures a Host. Fill what is required, leave the rest zero for
// the defaults; NewHost calls EnsureDefaults and Validate.
type Config struct {
	// NodeID is this host's ID, in [1, MaxNodeID]. Required.
	NodeID NodeID
	// Engine holds every group's raft log and state. Required; the host does
	// not close it.
	Engine *engine.Engine
	// Transport carries messages to other hosts. Required.
	Transport Transport
	// NewStateMachine returns the state machine of a group. Required.
	NewStateMachine StateMachineFactory

	// TickInterval is the raft tick. Default 100 ms.
	TickInterval time.Duration
	// HeartbeatTicks is the number of ticks between leader heartbeats.
	// Default 2.
	HeartbeatTicks int
	// ElectionTicks is the number of ticks without a leader after which a
	// follower campaigns (raft randomizes it up to twice this). Default 10.
	ElectionTicks int
	// ReadRounds returns how many ReadIndex rounds a group may have in
	// flight at once (values below 1 count as 1). With one, a read that
	// arrives during a round waits for it to end and then for its own (one
	// and a half rounds on average), and a busy group costs one round at a
	// time; with two, it starts its own at once unless two are in flight,
	// at the cost of more rounds (heartbeats). Reads that arrive while the
	// limit is reached join the next round. Default: one for every group.
	ReadRounds func(GroupID) int
	// MaxTicksQueued caps the ticks queued for a group that is slow to be
	// processed, so a backlog does not turn into an election. Default 3.
	MaxTicksQueued int
	// MaxSizePerMsg bounds the entries in one append message. Default 256 KiB.
	MaxSizePerMsg uint64
	// MaxInflightMsgs bounds the append messages in flight to one follower.
	// Default 128.
	MaxInflightMsgs int
	// MaxCommittedSizePerReady bounds the committed entries applied at once.
	// Default 4 MiB.
	MaxCommittedSizePerReady uint64
	// MaxOutboxMessages bounds the queue of messages to one peer node.
	// Default 16 Ki.
	MaxOutboxMessages int
	// Workers is the number of goroutines that process groups. Default 4 ×
	// GOMAXPROCS (at least 4).
	Workers int
	// RaftLogTruncationThreshold is the log length, in entries, past which a
	// leader truncates its group's log. Default 1024.
	RaftLogTruncationThreshold uint64
	// RaftLogMaxEntries is the log length past which lagging followers are
	// no longer waited for: they get a snapshot. Default 64 Ki.
	RaftLogMaxEntries uint64
	// MaxConcurrentSnapshots bounds the snapshots this host sends at once.
	// Default 4.
	MaxConcurrentSnapshots int
	// MaxUninitializedReplicas bounds the uninitialized replicas (no log,
	// no data) that messages from peers may create on this host: beyond it
	// such messages are dropped (and counted, reason "uninit_limit") until
	// idle ones are collected. A legitimate new replica is created by its
	// leader's next append, and one created by a snapshot stream is not
	// bounded. Default 64.
	MaxUninitializedReplicas int
	// UninitializedReplicaTimeout is how long an uninitialized replica may
	// go without a message or snapshot for it before it is collected: it
	// leaves the host, its replica ID is deleted and its HardState (term
	// and vote) kept, so that the next message for it re-creates it with
	// the vote it cast. A replica a leader is catching up hears its
	// heartbeats every HeartbeatTicks, so it is never idle that long.
	// Default 10 election timeouts (ElectionTicks × TickInterval × 10).
	UninitializedReplicaTimeout time.Duration

	// Metrics receives the host's metrics if set.
	Metrics *metrics.Set
	// Logger receives the host's and raft's log lines. Default slog.Default().
	Logger *slog.Logger

	// Testing holds knobs for tests; nil in production.
	Testing *TestingKnobs
}

// TestingKnobs change the host's behaviour in tests.
type TestingKnobs struct {
	// DisableTicker stops the store-wide ticker; tests tick with Host.Tick.
	DisableTicker bool
	// DisableQuiescence keeps idle groups ticking and heartbeating.
	DisableQuiescence bool
	// DisableCheckQuorum turns raft's CheckQuorum off: a leader cut off
	// from its quorum keeps believing it leads until it hears of a later
	// term, as it may without CheckQuorum's timing, so that tests can
	// probe what a deposed leader does.
	DisableCheckQuorum bool
	// AfterSnapshotIngest runs in the log writer after a received
	// snapshot's data was ingested and before its raft state is written.
	AfterSnapshotIngest func(GroupID)
}

// EnsureDefaults fills unset fields with their defaults.
func (c *Config) EnsureDefaults() {
	if c.TickInterval == 0 {
		c.TickInterval = DefaultTickInterval
	}
	if c.HeartbeatTicks == 0 {
		c.HeartbeatTicks = DefaultHeartbeatTicks
	}
	if c.ElectionTicks == 0 {
		c.ElectionTicks = DefaultElectionTicks
	}
	if c.ReadRounds == nil {
		c.ReadRounds = func(GroupID) int { return 1 }
	}
	if c.MaxTicksQueued == 0 {
		c.MaxTicksQueued = DefaultMaxTicksQueued
	}
	if c.MaxSizePerMsg == 0 {
		c.MaxSizePerMsg = DefaultMaxSizePerMsg
	}
	if c.MaxInflightMsgs == 0 {
		c.MaxInflightMsgs = DefaultMaxInflightMsgs
	}
	if c.MaxCommittedSizePerReady == 0 {
		c.MaxCommittedSizePerReady = DefaultMaxCommittedSizePerReady
	}
	if c.MaxOutboxMessages == 0 {
		c.MaxOutboxMessages = DefaultMaxOutboxMessages
	}
	if c.Workers == 0 {
		c.Workers = max(4, 4*runtime.GOMAXPROCS(0))
	}
	if c.RaftLogTruncationThreshold == 0 {
		c.RaftLogTruncationThreshold = 1024
	}
	if c.RaftLogMaxEntries == 0 {
		c.RaftLogMaxEntries = 64 << 10
	}
	if c.MaxConcurrentSnapshots == 0 {
		c.MaxConcurrentSnapshots = 4
	}
	if c.MaxUninitializedReplicas == 0 {
		c.MaxUninitializedReplicas = DefaultMaxUninitializedReplicas
	}
	if c.UninitializedReplicaTimeout == 0 {
		c.UninitializedReplicaTimeout = DefaultUninitializedReplicaElections * time.Duration(c.ElectionTicks) * c.TickInterval
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports every problem at once. It expects EnsureDefaults to have
// run.
func (c *Config) Validate() error {
	var errs []error
	if c.NodeID == 0 || c.NodeID > MaxNodeID {
		errs = append(errs, fmt.Errorf("NodeID %d is not in [1, %d]", c.NodeID, uint64(MaxNodeID)))
	}
	if c.Engine == nil {
		errs = append(errs, errors.New("no Engine given"))
	}
	if c.Transport == nil {
		errs = append(errs, errors.New("no Transport given"))
	}
	if c.NewStateMachine == nil {
		errs = append(errs, errors.New("no NewStateMachine given"))
	}
	if c.TickInterval < time.Millisecond {
		errs = append(errs, fmt.Errorf("TickInterval %v is below 1ms", c.TickInterval))
	}
	if c.HeartbeatTicks < 1 {
		errs = append(errs, fmt.Errorf("HeartbeatTicks %d must be at least 1", c.HeartbeatTicks))
	}
	if c.ElectionTicks <= c.HeartbeatTicks {
		errs = append(errs, fmt.Errorf("ElectionTicks %d must exceed HeartbeatTicks %d", c.ElectionTicks, c.HeartbeatTicks))
	}
	if c.MaxTicksQueued < 1 {
		errs = append(errs, fmt.Errorf("MaxTicksQueued %d must be at least 1", c.MaxTicksQueued))
	}
	if c.MaxInflightMsgs < 1 {
		errs = append(errs, fmt.Errorf("MaxInflightMsgs %d must be at least 1", c.MaxInflightMsgs))
	}
	if c.MaxOutboxMessages < 1 {
		errs = append(errs, fmt.Errorf("MaxOutboxMessages %d must be at least 1", c.MaxOutboxMessages))
	}
	if c.RaftLogTruncationThreshold < 2 {
		errs = append(errs, fmt.Errorf("RaftLogTruncationThreshold %d must be at least 2", c.RaftLogTruncationThreshold))
	}
	if c.RaftLogMaxEntries < c.RaftLogTruncationThreshold {
		errs = append(errs, fmt.Errorf("RaftLogMaxEntries %d is below RaftLogTruncationThreshold %d",
			c.RaftLogMaxEntries, c.RaftLogTruncationThreshold))
	}
	if c.MaxConcurrentSnapshots < 1 {
		errs = append(errs, fmt.Errorf("MaxConcurrentSnapshots %d must be at least 1", c.MaxConcurrentSnapshots))
	}
	if c.MaxUninitializedReplicas < 1 {
		errs = append(errs, fmt.Errorf("MaxUninitializedReplicas %d must be at least 1", c.MaxUninitializedReplicas))
	}
	if min := 2 * time.Duration(c.ElectionTicks) * c.TickInterval; c.UninitializedReplicaTimeout < min {
		errs = append(errs, fmt.Errorf("UninitializedReplicaTimeout %v is below two election timeouts (%v)", c.UninitializedReplicaTimeout, min))
	}
	if c.Workers < 1 {
		errs = append(errs, fmt.Errorf("worker count (Workers) %d must be at least 1", c.Workers))
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("multiraft: invalid config: %w", errors.Join(errs...))
}
