// Copyright 2026 The Flotilla Authors. All rights reserved.

package flotilla

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/flotilladb/flotilla/rpc/flotillapb"
)

// KV is Flotilla's key-value API, served by a Client (Connect, New) and by
// a node run in the caller's process (server.Open returns a *server.Node). Every method is safe for concurrent use. Keys are
// non-empty and at most MaxKeySize bytes; values at most the cluster's
// maximum (8 MiB by default). Byte slices passed in may be reused once a
// method returns; slices returned belong to the caller.
type KV interface {
	// Get returns key's value, or an error matching ErrKeyNotFound.
	Get(ctx context.Context, key []byte) ([]byte, error)
	// Put sets key to value.
	Put(ctx context.Context, key, value []byte) error
	// Delete removes key and reports whether it existed.
	Delete(ctx context.Context, key []byte) (existed bool, err error)
	// DeleteRange removes every key in [start, end) (an empty end means the
	// end of the keyspace) and returns how many it removed.
	//
	// Within one range it is atomic. A span across ranges is deleted one
	// range at a time, not atomically: a failure leaves the ranges done
	// before it deleted, and its error's outcome is then unknown
	// (ErrOutcomeUnknown). A range's part whose outcome is unknown is not
	// sent again (it could delete another client's write made since): the
	// delete-range fails with ErrOutcomeUnknown, and the caller decides
	// whether to delete the span again.
	DeleteRange(ctx context.Context, start, end []byte) (deleted int64, err error)
	// Scan returns the pairs in [start, end) in key order (descending with
	// Reverse), at most opts.Limit of them if it is positive. It reads a
	// page at a time (ScanAt) until the span is covered, every page at one
	// revision: opts.Revision, or if it is 0 the revision the first page
	// was read at (the latest when the scan began). So a whole Scan is one
	// consistent snapshot of the span, across ranges and pages; it fails
	// with ErrCompacted if that revision is compacted while it pages.
	Scan(ctx context.Context, start, end []byte, opts ScanOptions) ([]KeyValue, error)
	// ScanPage returns the first page of Scan: the pairs in [start, end)
	// in key order (descending with Reverse), at most opts.Limit of them if
	// it is positive and at most a few MiB of keys and values, gathered
	// from as many ranges as that takes. resume is nil if the page covers
	// the span; otherwise the rest of it is [resume, end) (forward) or
	// [start, resume) (Reverse): pass resume as start (or end) to get the
	// next page. A page that stopped at its limit at a range boundary
	// returns a resume key although no pair may remain; the next page is
	// then empty, with a nil resume.
	ScanPage(ctx context.Context, start, end []byte, opts ScanOptions) (kvs []KeyValue, resume []byte, err error)
	// ScanAt is ScanPage that also says the revision the page was read
	// at: opts.Revision, or if it is 0 the latest revision when the request
	// arrived. To read the rest of the span at the same snapshot, pass
	// that revision as opts.Revision of the next page.
	ScanAt(ctx context.Context, start, end []byte, opts ScanOptions) (ScanResult, error)
	// GetAt reads key as of revision rev (0: the latest, linearizable). A
	// key that did not exist at that revision is no error: Found is false.
	// It fails with ErrCompacted if rev is below the compacted revision
	// and with ErrFutureRevision if rev is above the current one.
	GetAt(ctx context.Context, key []byte, rev int64) (GetResult, error)
	// GetWith is GetAt with options: the revision, and which replica may
	// serve the read (ReadOptions.Replica).
	GetWith(ctx context.Context, key []byte, opts ReadOptions) (GetResult, error)
	// PutRev is Put that returns the write's revision.
	PutRev(ctx context.Context, key, value []byte) (rev int64, err error)
	// DeleteRev is Delete that returns the write's revision. A delete of a
	// key that did not exist is a write too and takes a revision.
	DeleteRev(ctx context.Context, key []byte) (existed bool, rev int64, err error)
	// Txn starts an etcd-style transaction, sent by its Commit: if every
	// compare (If) holds, the Then ops run, else the Else ops, atomically
	// at one revision. See Txn.
	Txn() *Txn
	// Compact discards, in every range, the versions a read at a revision
	// below rev would need: per key it keeps the newest version at or
	// below rev and every version above. Reads below rev fail with
	// ErrCompacted afterwards. rev must be positive and at most the
	// current revision (else ErrFutureRevision). Ranges are compacted one
	// after another: a failure may leave some compacted; compacting again
	// at the same revision is harmless.
	Compact(ctx context.Context, rev int64) error
	// CompareAndSwap sets key to value if its current value satisfies cond.
	CompareAndSwap(ctx context.Context, key []byte, cond Condition, value []byte) (CASResult, error)
	// Batch applies ops and returns their results, one per op, in order.
	// The ops whose keys lie in one range apply atomically and in their
	// order, as one write; a batch within one range is one request.
	//
	// A batch across ranges is NOT atomic: it is applied as one batch per
	// range (a DeleteRangeOp across ranges as one op per range, its Deleted
	// summed), one range after another. If one fails, the ranges applied
	// before it stay applied and the error's outcome is unknown
	// (ErrOutcomeUnknown); it is not applied (ErrNotApplied) only if no
	// range applied its part. The range holding the largest value goes
	// first, so that a value over the cluster's limit fails the batch
	// before anything is applied. A failed compare-and-swap inside a batch
	// does not stop the batch: see its OpResult.
	Batch(ctx context.Context, ops ...Op) ([]OpResult, error)
	// Close releases the KV's resources (for a Node: stops it).
	Close() error
}

// MaxKeySize is the largest key.
const MaxKeySize = flotillapb.MaxKeySize

// DefaultMaxValueSize is the largest value unless configured otherwise.
const DefaultMaxValueSize = flotillapb.DefaultMaxValueSize

// KeyValue is a key, its value and the metadata of the version read.
// Revisions are cluster-wide: every write gets one, larger than those of
// the writes that completed before it began; they are not dense (a
// failover may skip many).
type KeyValue struct {
	Key, Value []byte
	// CreateRevision is the revision of the put that created the key
	// (after its last delete), ModRevision that of its latest put, and
	// Version the number of puts since it was created (1 for a new key).
	CreateRevision, ModRevision, Version int64
	// Lease is the ID of the lease the key is attached to (always 0: there
	// are no leases yet).
	Lease int64
}

// GetResult is the outcome of GetAt.
type GetResult struct {
	// KV is the key's version at the revision read, if Found.
	KV KeyValue
	// Found says the key existed at the revision read.
	Found bool
	// Revision is the revision the read was served at: the one asked for,
	// or the latest when it was 0.
	Revision int64
}

// ScanResult is one page of a scan (ScanAt).
type ScanResult struct {
	// KVs are the page's pairs in key order (descending for a reverse
	// scan).
	KVs []KeyValue
	// Resume is nil if the page covers the span; otherwise the rest of the
	// span is [Resume, end) (forward) or [start, Resume) (reverse), as for
	// ScanPage.
	Resume []byte
	// Revision is the revision the page was read at.
	Revision int64
}

// ScanOptions modify a Scan or ScanPage.
type ScanOptions struct {
	// Limit bounds the pairs returned (by ScanPage: in this page); 0 means
	// no limit.
	Limit int
	// Reverse returns pairs in descending key order.
	Reverse bool
	// Revision reads the span as of that revision; 0 (the default) reads
	// the latest. It must not be negative.
	Revision int64
	// Replica chooses the replicas that may serve the scan (default the
	// leaders; the client's Config.ReadFrom if set).
	Replica Replica
}

// ReadOptions modify a read (GetWith).
type ReadOptions struct {
	// Revision reads as of that revision; 0 (the default) reads the
	// latest, linearizable. It must not be negative.
	Revision int64
	// Replica chooses the replica that serves the read (default the
	// leader; the client's Config.ReadFrom if set).
	Replica Replica
}

// Replica chooses which replica of a range serves a read. Every choice
// is linearizable. A follower or an observer (a non-voting replica, see
// `flotilla cluster rules`) serving a latest read asks the range's leader
// to close the revision it reads at, then reads its own data; a read at a
// revision the replica has closed already costs no round at all. A latest
// read from a follower still costs the leader a close round (shared by
// the reads of the range in flight) and a message to it; what it saves is
// the leader's reading and sending of the data, and, for a client far
// from the leader, the reply's distance. Reads at a past, closed revision
// are the cheapest anywhere.
type Replica int

const (
	// ReplicaDefault is the client's Config.ReadFrom (the leader unless
	// set).
	ReplicaDefault Replica = iota
	// Leader: the range's leader.
	Leader
	// Follower: a replica other than the leader (a follower or an
	// observer): the gateway node's own if it has one, else one in the
	// client's zone, else any; the leader if none can serve.
	Follower
	// Nearest: the gateway node's own replica if it has one, else one in
	// the client's zone (Config.Zone; the stores' "zone" label), else the
	// leader.
	Nearest
)

func (r Replica) String() string {
	switch r {
	case ReplicaDefault:
		return "default"
	case Leader:
		return "leader"
	case Follower:
		return "follower"
	case Nearest:
		return "nearest"
	}
	return fmt.Sprintf("Replica(%d)", int(r))
}

// ParseReplica parses "leader", "follower" or "nearest" (the CLI's
// --read-from).
func ParseReplica(s string) (Replica, error) {
	for _, r := range []Replica{Leader, Follower, Nearest} {
		if s == r.String() {
			return r, nil
		}
	}
	return 0, fmt.Errorf("%q is not leader, follower or nearest", s)
}

// Condition is what a compare-and-swap expects of the current value.
type Condition struct {
	absent   bool
	expected []byte
}

// ExpectValue is the condition "the key holds exactly v".
func ExpectValue(v []byte) Condition { return Condition{expected: v} }

// ExpectAbsent is the condition "the key does not exist".
func ExpectAbsent() Condition { return Condition{absent: true} }

// CASResult is the outcome of a compare-and-swap whose request succeeded.
type CASResult struct {
	// Swapped says the condition held and the value was written.
	Swapped bool
	// Found and Current are the key's value when the swap did not happen.
	Found   bool
	Current []byte
}

// Op is one operation of a Batch or a Txn. Build it with PutOp, DeleteOp
// or DeleteRangeOp (writes, valid in both), CompareAndSwapOp (a Batch
// only: a Txn has compares), or GetOp and ScanOp (reads, a Txn only).
// The zero Op is refused.
type Op struct {
	// pb is a write, or nil for a read.
	pb *flotillapb.Op
	// read is a get or scan (txn only), or nil for a write.
	read *flotillapb.TxnOp
}

// PutOp sets key to value.
func PutOp(key, value []byte) Op {
	return Op{pb: &flotillapb.Op{Op: &flotillapb.Op_Put{Put: &flotillapb.PutOp{Key: key, Value: value}}}}
}

// DeleteOp removes key.
func DeleteOp(key []byte) Op {
	return Op{pb: &flotillapb.Op{Op: &flotillapb.Op_Delete{Delete: &flotillapb.DeleteOp{Key: key}}}}
}

// DeleteRangeOp removes the keys in [start, end).
func DeleteRangeOp(start, end []byte) Op {
	return Op{pb: &flotillapb.Op{Op: &flotillapb.Op_DeleteRange{DeleteRange: &flotillapb.DeleteRangeOp{StartKey: start, EndKey: end}}}}
}

// CompareAndSwapOp sets key to value if cond holds.
func CompareAndSwapOp(key []byte, cond Condition, value []byte) Op {
	return Op{pb: &flotillapb.Op{Op: &flotillapb.Op_Cas{Cas: &flotillapb.CompareAndSwapOp{
		Key: key, Expected: cond.expected, ExpectAbsent: cond.absent, Value: value,
	}}}}
}

// OpResult is the outcome of one Op of a Batch.
type OpResult struct {
	// Found: the key existed (delete; compare-and-swap that did not swap).
	Found bool
	// Swapped: the compare-and-swap's condition held.
	Swapped bool
	// Current: the value a compare-and-swap found when it did not swap.
	Current []byte
	// Deleted counts the keys a delete-range removed.
	Deleted int64
}

// Errors, tested with errors.Is against any error a KV returns.
var (
	// ErrKeyNotFound: Get found no value.
	ErrKeyNotFound = errors.New("flotilla: key not found")
	// ErrInvalidArgument: the request is malformed (an empty or oversized
	// key, an oversized value, start after end). Nothing was written.
	ErrInvalidArgument = errors.New("flotilla: invalid argument")
	// ErrUnavailable: the cluster could not serve the request in time (no
	// leader, no quorum, unreachable nodes).
	ErrUnavailable = errors.New("flotilla: unavailable")
	// ErrNotApplied: the write was certainly not applied; retrying it is
	// safe.
	ErrNotApplied = errors.New("flotilla: write not applied")
	// ErrOutcomeUnknown: the write may or may not have been applied (it
	// timed out after being proposed, or the connection broke).
	ErrOutcomeUnknown = errors.New("flotilla: write outcome unknown")
	// ErrClosed: the client or node was closed.
	ErrClosed = errors.New("flotilla: closed")
	// ErrCompacted: the revision read at was compacted away (Compact).
	// The compacted revision is the error's CompactRevision.
	ErrCompacted = errors.New("flotilla: revision compacted")
	// ErrFutureRevision: the revision asked for (a read's or Compact's) is
	// above the cluster's current revision. The current revision is the
	// error's CurrentRevision.
	ErrFutureRevision = errors.New("flotilla: revision is in the future")
	// ErrCrossRange: a txn's compares and writes lie in more than one
	// range; nothing was applied. Its reads may lie anywhere.
	ErrCrossRange = errors.New("flotilla: txn spans more than one range")
	// ErrNoSpace: the write was refused because the node leading its range
	// (or, for a delete-range or batch across ranges, one part's range) is
	// short of disk space (its NOSPACE alarm is raised). Reads are still
	// served; writes succeed again once space is freed. The refusing range
	// applied nothing, but test ErrNotApplied or ErrOutcomeUnknown for the
	// request's outcome: a request split across ranges may have had other
	// parts applied (then it is ErrOutcomeUnknown, not ErrNotApplied).
	ErrNoSpace = errors.New("flotilla: no space")
)

// Error is the error of a failed request, carrying the server's detail.
type Error struct {
	// Op is the operation, e.g. "put".
	Op string
	// Detail is the server's error. A read's has no outcome.
	Detail *flotillapb.Error
	// Cause is the caller's context's error when the context ended the
	// request (context.Canceled or context.DeadlineExceeded, also when
	// the request's default timeout passed), else nil. errors.Is and
	// errors.As see it through Unwrap.
	Cause error
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("flotilla: %s: %s", e.Op, e.Detail.Error())
	if e.Cause != nil && !strings.Contains(msg, e.Cause.Error()) {
		msg += ": " + e.Cause.Error()
	}
	return msg
}

// Unwrap returns Cause, so that errors.Is(err, context.Canceled) and
// errors.Is(err, context.DeadlineExceeded) hold when the context ended the
// request.
func (e *Error) Unwrap() error { return e.Cause }

// Is makes errors.Is match the sentinel errors by the detail's kind and the
// write's outcome.
func (e *Error) Is(target error) bool {
	switch target {
	case ErrInvalidArgument:
		return e.Detail.GetInvalidArgument() != nil
	case ErrUnavailable:
		return e.Detail.GetInvalidArgument() == nil && e.Detail.GetCompacted() == nil &&
			e.Detail.GetFutureRevision() == nil && e.Detail.GetCrossRange() == nil
	case ErrCompacted:
		return e.Detail.GetCompacted() != nil
	case ErrFutureRevision:
		return e.Detail.GetFutureRevision() != nil
	case ErrCrossRange:
		return e.Detail.GetCrossRange() != nil
	case ErrNotApplied:
		return e.Detail.GetOutcome() == flotillapb.Outcome_NOT_APPLIED
	case ErrOutcomeUnknown:
		return e.Detail.GetOutcome() == flotillapb.Outcome_UNKNOWN
	case ErrNoSpace:
		return e.Detail.GetNoSpace() != nil
	}
	return false
}

// CompactRevision is, for an error matching ErrCompacted, the revision the
// cluster was compacted at (reads at or above it succeed); else 0.
func (e *Error) CompactRevision() int64 { return e.Detail.GetCompacted().GetCompactRevision() }

// CurrentRevision is, for an error matching ErrFutureRevision, the current
// revision the server saw; else 0.
func (e *Error) CurrentRevision() int64 {
	return e.Detail.GetFutureRevision().GetCurrentRevision()
}

// NotApplied reports whether err says the write was certainly not applied.
func NotApplied(err error) bool { return errors.Is(err, ErrNotApplied) }

// OutcomeUnknown reports whether err says the write may have been applied.
func OutcomeUnknown(err error) bool { return errors.Is(err, ErrOutcomeUnknown) }
