// Copyright 2026 The Flotilla Authors. All rights reserved.

package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/flotilladb/flotilla/multiraft"
	"github.com/flotilladb/flotilla/placement"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"github.com/flotilladb/flotilla/shard"
)

// Defaults for Config.
const (
	DefaultListenAddr = "127.0.0.1:7400"
	DefaultHTTPAddr   = "127.0.0.1:7480"
	DefaultSplitSize  = 64 << 20
	DefaultSplitQPS   = 2500
)

// Config configures a node run in this process by Open. Fill Dir, leave the
// rest zero for the defaults.
type Config struct {
	// Dir is the store's directory; it is created if missing. Required.
	Dir string
	// ListenAddr is the gRPC address (peers and clients), HOST:PORT. Port 0
	// picks a free port. Default 127.0.0.1:7400.
	ListenAddr string
	// AdvertiseAddr is the gRPC address other nodes and clients use to reach
	// this one. Default: the address actually listened on.
	AdvertiseAddr string
	// HTTPAddr is the admin HTTP address (/metrics, /health, /status,
	// /debug/pprof/). Default 127.0.0.1:7480; "off" disables it.
	HTTPAddr string
	// CertsDir holds the node's certificates (ca.crt, node.crt, node.key;
	// made by `flotilla cert`). With it the node is secure: its gRPC port
	// speaks mutual TLS and lets only node certificates reach the raft,
	// snapshot, join and placement heartbeat services (clients reach the
	// rest with a client certificate), its admin HTTP is HTTPS, and it
	// dials peers with its node certificate. Default "": insecure.
	CertsDir string
	// Insecure lets a node without CertsDir listen on an address other
	// than loopback. Without it such a node refuses to start: anyone who
	// can reach an insecure node can read, write and forge raft messages.
	// It cannot be set with CertsDir. Default false.
	Insecure bool
	// EnablePprof serves /debug/pprof/ on a secure node's admin HTTP to
	// anyone; without it the profiler needs a client certificate. (An
	// insecure node always serves it.) Default false.
	EnablePprof bool
	// Join lists nodes of an existing cluster to join (HOST:PORT). A node
	// that is not yet part of a cluster asks them, in turn, until one admits
	// it. Ignored by a node that is already a member.
	Join []string
	// Bootstrap makes a node that is not part of a cluster, and has no Join
	// list, create a new single-node cluster at once (as `flotilla init`
	// would). For embedded use.
	Bootstrap bool
	// DialOverrides maps a peer's advertised address to the address to dial
	// instead (to put proxies between nodes in tests).
	DialOverrides map[string]string
	// MaxValueSize is the largest value accepted. Default 8 MiB.
	MaxValueSize int
	// TickInterval is the raft tick. Default 100 ms.
	TickInterval time.Duration
	// MaxInflightRequests bounds the KV requests a node serves at once
	// (its own and those forwarded to it); beyond it requests fail at once
	// with ServerBusy (not applied) and clients back off. Default 8192.
	MaxInflightRequests int
	// ReplicationFactor is how many voters the placement driver keeps for
	// each range. It is read on the node leading the placement group: set
	// it alike on every node. Default 3.
	ReplicationFactor int
	// PlacementReplicationFactor is how many voters the placement driver
	// keeps for its own group (3 or 5 are usual). Read like
	// ReplicationFactor. Default 3.
	PlacementReplicationFactor int
	// HeartbeatInterval is how often the node reports itself and the
	// ranges it leads to the placement driver. Default 1 s, or a third of
	// LivenessWindow if that is shorter.
	HeartbeatInterval time.Duration
	// RangeReportInterval is how often the leader of a range that serves
	// no requests and changes nothing reports it to the placement driver
	// anyway (TiKV's region heartbeats): a range is reported at once when
	// its leadership, descriptor, catching-up learners or split proposal
	// changes, and every HeartbeatInterval while it serves requests, so
	// that idle ranges cost next to nothing. Default 60 s.
	RangeReportInterval time.Duration
	// LivenessWindow: the placement driver counts a store live if it
	// heartbeated within it. Default 5 s, or StoreDownTimeout if that is
	// shorter.
	LivenessWindow time.Duration
	// StoreDownTimeout: the placement driver counts a store down, and its
	// replicas as lost, after this long without a heartbeat. Default 60 s.
	StoreDownTimeout time.Duration
	// SplitSize: a range whose keys and values exceed it is split in two
	// halves by size. Default 64 MiB; negative disables size-based splits.
	SplitSize int64
	// SplitQPS: a range serving more reads and writes per second than this
	// (averaged over 10 s) is split at a key that halves its load. Default
	// 2500; negative disables load-based splits.
	SplitQPS float64
	// DiskReserve is the free space, in bytes, the node keeps on its
	// store's filesystem: below it the node raises its NOSPACE alarm and
	// the ranges it leads refuse writes (not applied) until the free space
	// is back above the reserve plus a quarter; reads are served
	// throughout (disk.go). Default: 1 % of the filesystem, at least
	// 256 MiB (DefaultDiskReserve) but at most 10 % of a small one.
	// Negative: no reserve, no alarm.
	DiskReserve int64
	// DiskReservePercent, if set, makes the reserve this percentage of the
	// filesystem's size instead, in (0, 100). Default unset.
	DiskReservePercent float64
	// AutoCompactionMode is how old versions are compacted away, as
	// etcd's --auto-compaction-mode: "periodic" keeps the history of the
	// last AutoCompactionRetention (a duration), "revision" keeps the last
	// AutoCompactionRevisions revisions, "off" keeps everything until a
	// Compact by hand. The node that leads the placement group compacts
	// every range (compaction.go). Default "periodic".
	AutoCompactionMode string
	// AutoCompactionRetention is the history periodic compaction keeps.
	// Default one hour (DefaultAutoCompactionRetention).
	AutoCompactionRetention time.Duration
	// AutoCompactionRevisions is the number of revisions revision-mode
	// compaction keeps. Default 10000.
	AutoCompactionRevisions int64
	// MaxTxnOps bounds the ops of a txn (both branches) and its compares,
	// as etcd's --max-txn-ops. Default 128.
	MaxTxnOps int
	// Labels are the store's labels, such as zone=a or role=observer
	// (flotillapb.ParseLabels reads flotilla start's --labels): the
	// placement group keeps them with the node (announced on join, and
	// again when a restart changes them) and `cluster status` shows them;
	// placement rules (to come) will choose stores by them. Keys and values use letters,
	// digits and . _ / - (flotillapb.CheckLabels). Default none.
	Labels map[string]string
	// Logger receives the node's log lines. Default slog.Default().
	Logger *slog.Logger

	// Testing holds knobs for tests; nil in production.
	Testing *TestingKnobs
}

// TestingKnobs change a node's behaviour in tests.
type TestingKnobs struct {
	// UnsafeFollowerReads serves reads from the local replica without
	// ReadIndex: stale reads become possible. It exists to show that the
	// linearizability checker catches them.
	UnsafeFollowerReads bool
	// UnsafeFollowerReadsSkipClose makes a follower or observer serve a
	// read that allows one at its last applied revision without asking
	// the leader to close (stale reads), so that tests can show they
	// catch it.
	UnsafeFollowerReadsSkipClose bool
	// BeforeServe, if set, runs in the gateway before each attempt to
	// serve a request.
	BeforeServe func()
	// DisableSync turns fsync off (acknowledged writes are lost on a
	// machine crash; a process crash keeps them).
	DisableSync bool
	// FS is the filesystem the store runs on (a fault-injecting one, such
	// as internal/diskfault's). Default: the operating system's.
	FS vfs.FS
	// DiskCheckInterval is how often the node reads its free disk space.
	// Default DefaultDiskCheckInterval.
	DiskCheckInterval time.Duration
	// RevisionWindow is the revision oracle's window W while this node
	// leads the placement group (a small one makes tests raise the
	// high-water mark often). Default placement.DefaultRevisionWindow.
	RevisionWindow int64
	// UnsafeOracleSkipLeadershipCheck makes the revision oracle's leader
	// answer batches without its leadership check: a deposed leader that
	// does not know it yet hands out revisions below its successor's. It
	// exists to show that the oracle's tests catch that.
	UnsafeOracleSkipLeadershipCheck bool
	// CompactionInterval, if set, is how often the placement leader runs
	// automatic compaction (default: a tenth of the retention, at most an
	// hour, at least a second).
	CompactionInterval time.Duration
	// DisableCheckQuorum turns raft's CheckQuorum off in every group
	// (multiraft.TestingKnobs.DisableCheckQuorum): a leader cut off from
	// the others keeps leading, as far as it knows, until the partition
	// heals.
	DisableCheckQuorum bool
	// UnsafeSkipRequestTermCheck, UnsafeSkipReadWait and
	// UnsafeApplyBelowLast break the store's revision rules on purpose
	// (shard.TestingKnobs): they exist to show that the revision
	// checkers catch a range that applies a write below its last
	// revision, or a read at R that does not wait for the writes at or
	// below R in flight.
	UnsafeSkipRequestTermCheck bool
	UnsafeSkipReadWait         bool
	UnsafeApplyBelowLast       bool
	// BeforePropose, if set, runs just before the store proposes a write
	// that got its revision (shard.TestingKnobs.BeforePropose); it may
	// block.
	BeforePropose func(rangeID uint64, revision int64)
}

// shardKnobs returns the store's testing knobs that k asks for, nil if
// none.
func (k *TestingKnobs) shardKnobs() *shard.TestingKnobs {
	if k == nil || !k.UnsafeFollowerReads && !k.UnsafeSkipRequestTermCheck && !k.UnsafeSkipReadWait &&
		!k.UnsafeApplyBelowLast && k.BeforePropose == nil && !k.UnsafeFollowerReadsSkipClose {
		return nil
	}
	sk := &shard.TestingKnobs{
		UnsafeFollowerReads:        k.UnsafeFollowerReads,
		UnsafeSkipRequestTermCheck: k.UnsafeSkipRequestTermCheck,
		UnsafeSkipReadWait:         k.UnsafeSkipReadWait,
		UnsafeApplyBelowLast:       k.UnsafeApplyBelowLast,

		UnsafeFollowerReadsSkipClose: k.UnsafeFollowerReadsSkipClose,
	}
	if before := k.BeforePropose; before != nil {
		sk.BeforePropose = func(rangeID multiraft.GroupID, revision int64) { before(uint64(rangeID), revision) }
	}
	return sk
}

// EnsureDefaults fills unset fields with their defaults.
func (c *Config) EnsureDefaults() {
	if c.AutoCompactionMode == "" {
		c.AutoCompactionMode = CompactionPeriodic
	}
	if c.AutoCompactionRetention == 0 {
		c.AutoCompactionRetention = DefaultAutoCompactionRetention
	}
	if c.AutoCompactionRevisions == 0 {
		c.AutoCompactionRevisions = DefaultAutoCompactionRevisions
	}
	if c.MaxTxnOps == 0 {
		c.MaxTxnOps = flotillapb.DefaultMaxTxnOps
	}
	if c.ListenAddr == "" {
		c.ListenAddr = DefaultListenAddr
	}
	if c.HTTPAddr == "" {
		c.HTTPAddr = DefaultHTTPAddr
	}
	if c.MaxValueSize == 0 {
		c.MaxValueSize = flotillapb.DefaultMaxValueSize
	}
	if c.TickInterval == 0 {
		c.TickInterval = multiraft.DefaultTickInterval
	}
	if c.ReplicationFactor == 0 {
		c.ReplicationFactor = 3
	}
	if c.PlacementReplicationFactor == 0 {
		c.PlacementReplicationFactor = 3
	}
	// Unset timings follow the ones given: a short store-down timeout
	// shortens the liveness window, which shortens the heartbeat interval.
	if c.LivenessWindow == 0 {
		c.LivenessWindow = placement.DefaultLivenessWindow
		if c.StoreDownTimeout > 0 {
			c.LivenessWindow = min(c.LivenessWindow, c.StoreDownTimeout)
		}
	}
	if c.HeartbeatInterval == 0 {
		c.HeartbeatInterval = min(time.Second, max(c.LivenessWindow/3, time.Millisecond))
	}
	if c.RangeReportInterval == 0 {
		c.RangeReportInterval = time.Minute
	}
	if c.StoreDownTimeout == 0 {
		c.StoreDownTimeout = max(placement.DefaultStoreDownTimeout, c.LivenessWindow)
	}
	if c.MaxInflightRequests == 0 {
		c.MaxInflightRequests = 8192
	}
	if c.SplitSize == 0 {
		c.SplitSize = DefaultSplitSize
	}
	if c.SplitQPS == 0 {
		c.SplitQPS = DefaultSplitQPS
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// loopback reports whether a listen address (HOST:PORT) is on loopback
// only: a loopback IP or "localhost". An empty host, 0.0.0.0 or :: listen
// on every interface.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return true // reported as malformed elsewhere
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// Validate reports every problem at once. It expects EnsureDefaults to have
// run.
func (c *Config) Validate() error {
	var errs []error
	switch c.AutoCompactionMode {
	case CompactionPeriodic, CompactionRevision, CompactionOff:
	default:
		errs = append(errs, fmt.Errorf("AutoCompactionMode %q is not %q, %q or %q", c.AutoCompactionMode, CompactionPeriodic, CompactionRevision, CompactionOff))
	}
	if c.AutoCompactionRetention < 0 {
		errs = append(errs, fmt.Errorf("AutoCompactionRetention %v is negative", c.AutoCompactionRetention))
	}
	if c.AutoCompactionRevisions < 0 {
		errs = append(errs, fmt.Errorf("AutoCompactionRevisions %d is negative", c.AutoCompactionRevisions))
	}
	if c.MaxTxnOps < 0 {
		errs = append(errs, fmt.Errorf("MaxTxnOps %d is negative", c.MaxTxnOps))
	}
	if _, err := flotillapb.NormalizeLabels(c.Labels); err != nil {
		errs = append(errs, err) // "labels: ..."
	}
	if c.Dir == "" {
		errs = append(errs, errors.New("a Dir is required"))
	}
	checkAddr := func(name, addr string) {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			errs = append(errs, fmt.Errorf("%s %q: want HOST:PORT: %v", name, addr, err))
		}
	}
	checkAddr("ListenAddr", c.ListenAddr)
	if c.AdvertiseAddr != "" {
		checkAddr("AdvertiseAddr", c.AdvertiseAddr)
	}
	if c.HTTPAddr != "off" {
		checkAddr("HTTPAddr", c.HTTPAddr)
	}
	for _, j := range c.Join {
		checkAddr("Join address", j)
	}
	for adv, actual := range c.DialOverrides {
		checkAddr("DialOverrides key", adv)
		checkAddr("DialOverrides value", actual)
	}
	if c.CertsDir != "" && c.Insecure {
		errs = append(errs, errors.New("CertsDir and Insecure are exclusive (--certs-dir, --insecure): a node with certificates is secure"))
	}
	if c.CertsDir == "" && !c.Insecure {
		for name, addr := range map[string]string{"ListenAddr": c.ListenAddr, "HTTPAddr": c.HTTPAddr} {
			if addr != "off" && !loopback(addr) {
				errs = append(errs, fmt.Errorf("%s %q is not a loopback address, and an insecure node (no certs directory) listens only on loopback: give it certificates (--certs-dir) or, to accept the risk, --insecure", name, addr))
			}
		}
	}
	if c.MaxValueSize < 0 {
		errs = append(errs, fmt.Errorf("MaxValueSize %d is negative", c.MaxValueSize))
	}
	if c.TickInterval < 0 {
		errs = append(errs, fmt.Errorf("TickInterval %v is negative", c.TickInterval))
	}
	if c.RangeReportInterval < 0 {
		errs = append(errs, fmt.Errorf("RangeReportInterval %v must not be negative", c.RangeReportInterval))
	}
	if c.HeartbeatInterval < 0 || c.LivenessWindow < 0 || c.StoreDownTimeout < 0 {
		errs = append(errs, fmt.Errorf("HeartbeatInterval %v, LivenessWindow %v and StoreDownTimeout %v must not be negative", c.HeartbeatInterval, c.LivenessWindow, c.StoreDownTimeout))
	} else if c.LivenessWindow < c.HeartbeatInterval || c.StoreDownTimeout < c.LivenessWindow {
		errs = append(errs, fmt.Errorf("want HeartbeatInterval (%v) <= LivenessWindow (%v) <= StoreDownTimeout (%v)", c.HeartbeatInterval, c.LivenessWindow, c.StoreDownTimeout))
	}
	if c.MaxInflightRequests < 0 {
		errs = append(errs, fmt.Errorf("MaxInflightRequests %d is negative", c.MaxInflightRequests))
	}
	if c.ReplicationFactor < 1 || c.ReplicationFactor > 7 {
		errs = append(errs, fmt.Errorf("ReplicationFactor %d is not in [1, 7]", c.ReplicationFactor))
	}
	if c.PlacementReplicationFactor < 1 || c.PlacementReplicationFactor > 7 {
		errs = append(errs, fmt.Errorf("PlacementReplicationFactor %d is not in [1, 7]", c.PlacementReplicationFactor))
	}
	if c.DiskReservePercent < 0 || c.DiskReservePercent >= 100 {
		errs = append(errs, fmt.Errorf("DiskReservePercent %v is not in (0, 100)", c.DiskReservePercent))
	} else if c.DiskReservePercent > 0 && c.DiskReserve != 0 {
		errs = append(errs, fmt.Errorf("DiskReserve %d and DiskReservePercent %v are both set; set one", c.DiskReserve, c.DiskReservePercent))
	}
	if len(errs) > 0 {
		return fmt.Errorf("flotilla: invalid config: %w", errors.Join(errs...))
	}
	return nil
}
