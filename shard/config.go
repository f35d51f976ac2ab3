// Copyright 2026 The Flotilla Authors. All rights reserved.

package shard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/flotilladb/flotilla/engine"
	"github.com/flotilladb/flotilla/multiraft"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
)

// Limits on requests (DESIGN.md, "Identifiers and metadata").
const (
	// DefaultMaxValueSize is the default for Config.MaxValueSize: 8 MiB.
	// Keys are at most flotillapb.MaxKeySize bytes.
	DefaultMaxValueSize = flotillapb.DefaultMaxValueSize
	// DefaultMaxCommandSize is the default for Config.MaxCommandSize: 32 MiB.
	DefaultMaxCommandSize = 32 << 20
	// DefaultVersionCacheBytes is the default for Config.VersionCacheBytes:
	// 64 MiB, about 500,000 keys of 30 bytes.
	DefaultVersionCacheBytes = 64 << 20
	// DefaultMaxScanBytes is the default for Config.MaxScanBytes: 4 MiB.
	DefaultMaxScanBytes = flotillapb.DefaultMaxScanBytes
)

// Config configures a Store. Fill what is required, leave the rest zero for
// the defaults; NewStore calls EnsureDefaults and Validate.
type Config struct {
	// Engine is the store's engine, shared with multiraft. Required; the
	// store does not close it.
	Engine *engine.Engine
	// Revisions is the node's client of the revision oracle: every write
	// and every latest read takes a revision from it. Required.
	Revisions Revisions
	// MaxValueSize is the largest value a write may carry, in bytes (also
	// bounds a compare-and-swap's expected value). Checked before proposing
	// only: replicas with different settings apply the same commands.
	// Default DefaultMaxValueSize.
	MaxValueSize int
	// MaxCommandSize bounds the encoded size of one write (a batch's ops
	// together), which becomes one raft log entry. It must leave room for
	// one maximal value. Default DefaultMaxCommandSize, or MaxValueSize plus
	// 1 MiB if that is larger.
	MaxCommandSize int
	// MaxScanBytes bounds a scan's response: once this many key and value
	// bytes are gathered the scan stops with More set. A scan always returns
	// at least one pair if there is one. Default DefaultMaxScanBytes.
	MaxScanBytes int
	// MaxTxnOps bounds the ops of a txn (both branches together) and its
	// compares. Default flotillapb.DefaultMaxTxnOps (etcd's --max-txn-ops).
	MaxTxnOps int
	// VersionCacheBytes is the memory the store's replicas share to
	// remember keys' newest versions for apply (versionCache), so that a
	// write to a recently written key does not seek the engine for the
	// version it continues. Shared fairly, the caches together may hold up
	// to twice it (idle replicas keep theirs until then). Negative turns
	// the cache off. Default DefaultVersionCacheBytes.
	VersionCacheBytes int64
	// AdmitWrite, if set, is asked before a range's leader proposes a
	// client write (put, delete, delete-range, compare-and-swap, batch),
	// whichever node's gateway sent it; an error refuses the write, which
	// fails with it at once (it must say NOT_APPLIED). The node refuses
	// writes so while its disk is short of space. Splits, membership
	// changes and the raft log's own traffic are not asked. It is called
	// on the request's goroutine and must not block. Default: admit all.
	AdmitWrite func() *flotillapb.Error
	// CloseAtLeader, if set, asks the node whose replica leads range id
	// (leader) to close it at rev (EnsureClosed there) and returns the
	// closed revision: a follower or observer asks it before serving a
	// read at rev from its own data (follower reads). Unset, a replica that
	// does not lead refuses reads with NotLeader.
	CloseAtLeader func(ctx context.Context, leader multiraft.NodeID, id multiraft.GroupID, rev int64) (int64, error)
	// OnFollowerRead, if set, is called for every read a replica served
	// without leading its range (a follower or observer read). It must
	// not block.
	OnFollowerRead func()
	// Logger receives the store's log lines. Default slog.Default().
	Logger *slog.Logger
	// Testing holds knobs for tests; nil in production.
	Testing *TestingKnobs
}

// TestingKnobs change the store's behaviour in tests.
type TestingKnobs struct {
	// UnsafeFollowerReads serves Get and Scan from the local replica without
	// ReadIndex, so stale reads are possible. It exists only so that the
	// linearizability checker can be shown to catch them.
	UnsafeFollowerReads bool
	// UnsafeFollowerReadsSkipClose serves a follower read (a request that
	// allows one, on a replica that does not lead) from the local replica
	// at its last applied revision, without asking the leader to close:
	// stale reads are possible, so that tests can show they catch them.
	UnsafeFollowerReadsSkipClose bool
	// UnsafeSkipRequestTermCheck applies writes whatever the term their
	// revision was asked for in, and UnsafeSkipReadWait serves a read at R
	// without waiting for the leader's writes at or below R in flight:
	// each breaks reads at a revision, so that tests can show they catch
	// it.
	UnsafeSkipRequestTermCheck bool
	UnsafeSkipReadWait         bool
	// UnsafeApplyBelowLast makes apply accept a write at or below the
	// range's last revision, and write every write's versions at last − 1
	// (once the range has applied a write above 1) instead of at its
	// revision, while answering with its revision and raising last to it:
	// each write lands below the one applied before it, so a later write
	// to a key hides under the earlier one. It breaks "a range never
	// applies a write below its last revision" deterministically, so that
	// tests can show the revision checkers catch it.
	UnsafeApplyBelowLast bool
	// BeforePropose, if set, runs on a write's goroutine on the range's
	// leader after the write got its revision and its turn, just before
	// it is proposed; it may block (tests use it to hold a write with a
	// revision back while a read is served).
	BeforePropose func(rangeID multiraft.GroupID, revision int64)
}

// EnsureDefaults fills unset fields with their defaults.
func (c *Config) EnsureDefaults() {
	if c.MaxValueSize == 0 {
		c.MaxValueSize = DefaultMaxValueSize
	}
	if c.MaxCommandSize == 0 {
		c.MaxCommandSize = max(DefaultMaxCommandSize, c.MaxValueSize+1<<20)
	}
	if c.MaxScanBytes == 0 {
		c.MaxScanBytes = DefaultMaxScanBytes
	}
	if c.MaxTxnOps == 0 {
		c.MaxTxnOps = flotillapb.DefaultMaxTxnOps
	}
	if c.VersionCacheBytes == 0 {
		c.VersionCacheBytes = DefaultVersionCacheBytes
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports every problem at once. It expects EnsureDefaults to have
// run.
func (c *Config) Validate() error {
	var errs []error
	if c.Engine == nil {
		errs = append(errs, errors.New("no Engine given"))
	}
	if c.Revisions == nil {
		errs = append(errs, errors.New("no Revisions (revision oracle client) given"))
	}
	if c.MaxValueSize <= 0 {
		errs = append(errs, fmt.Errorf("MaxValueSize %d is not positive", c.MaxValueSize))
	}
	if c.MaxCommandSize < c.MaxValueSize+2*flotillapb.MaxKeySize+64 {
		errs = append(errs, fmt.Errorf("MaxCommandSize %d leaves no room for a value of MaxValueSize %d", c.MaxCommandSize, c.MaxValueSize))
	}
	if c.MaxTxnOps <= 0 {
		errs = append(errs, fmt.Errorf("MaxTxnOps %d is not positive", c.MaxTxnOps))
	}
	if c.MaxScanBytes <= 0 {
		errs = append(errs, fmt.Errorf("MaxScanBytes %d is not positive", c.MaxScanBytes))
	}
	if c.Logger == nil {
		errs = append(errs, errors.New("no Logger given"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("shard: invalid config: %w", err)
	}
	return nil
}

// RaftHost is what a Store needs from its node's multiraft.Host, which
// implements it. Its methods may be called from any goroutine.
type RaftHost interface {
	// Propose proposes cmd to the group through its local replica. It must
	// not block nor call back into the store: a range's write tracker calls
	// it under its lock, to propose a batch of writes in revision order.
	Propose(id multiraft.GroupID, cmd []byte) *multiraft.Proposal
	// ReadIndex returns once a linearizable read of the group may be served
	// from the local replica, with the index it may be served at.
	ReadIndex(ctx context.Context, id multiraft.GroupID) (uint64, error)
	// Status returns the local replica's status, or false if the host has no
	// replica of the group (never had one, or it was removed).
	Status(id multiraft.GroupID) (multiraft.GroupStatus, bool)
	// Leadership is the leadership part of Status, without allocating.
	Leadership(id multiraft.GroupID) (multiraft.Leadership, bool)
}

var _ RaftHost = (*multiraft.Host)(nil)

// testingKnob reports a testing knob's setting (false without knobs).
func (s *Store) testingKnob(get func(*TestingKnobs) bool) bool {
	return s.cfg.Testing != nil && get(s.cfg.Testing)
}
