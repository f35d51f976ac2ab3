// Copyright 2026 The Flotilla Authors. All rights reserved.

package shard

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flotilladb/flotilla/engine"
	"github.com/flotilladb/flotilla/internal/invariants"
	"github.com/flotilladb/flotilla/multiraft"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"google.golang.org/protobuf/proto"
)

// Replica is one replica of one range on this store: the multiraft state
// machine of the range's group.
//
// Apply, Spans, CheckSnapshotSpans, SnapshotIngesting and Restored are
// called by multiraft on the group's worker goroutine, one at a time. The
// other methods may be called from any goroutine.
type Replica struct {
	store *Store
	id    multiraft.GroupID

	// reads and writes count served reads and applied write ops, for the
	// in-memory rates Stats reports.
	reads, writes rateCounter
	// load samples the keys of the requests this replica served, for
	// load-based splits.
	load keySampler
	// wiped: the host destroyed the replica and deleted its data; until
	// then its span stays occupied (Store.overlapping).
	wiped atomic.Bool

	// mu guards the replica's cached replicated state. It is written only
	// on the worker (Apply, SnapshotIngesting, Restored) and read anywhere;
	// nothing does I/O while holding it. Lock order: Store.mu before
	// Replica.mu.
	mu struct {
		sync.Mutex
		// desc is the range's descriptor, nil while the replica is
		// uninitialized (it has no data yet and learns its bounds from a
		// snapshot). It is never modified in place: a change replaces it, so
		// readers may keep the pointer they got.
		desc *flotillapb.RangeDescriptor
		// span is desc's user span (user keys, not engine keys).
		span userSpan
		// stats are the replicated statistics as of the last Apply. Apply
		// publishes them (and desc) before the host commits its batch, so
		// they may briefly run ahead of the engine; Hash reads the engine.
		stats rangeStats
		// revs is the revision state as of the last Apply, published
		// like stats.
		revs revState
		// restoring counts the received snapshots handed to the log
		// writer (SnapshotIngesting, before their data replaces the
		// range's in the engine) and not yet reloaded by Restored: while
		// it is above zero, desc, stats and revs may be older than the
		// engine's (see revisionsForRead). Raft may accept a second
		// snapshot before the first is restored. A snapshot that never
		// reaches Restored (the replica destroyed, the host failed) leaves
		// it above zero: reads then only do more work.
		restoring int
		// lastRight is the right-hand range's descriptor as the last split
		// of this replica made it, for EpochNotMatch errors.
		lastRight *flotillapb.RangeDescriptor
	}

	// tracker follows the writes this replica proposes as leader.
	tracker writeTracker

	// versions caches keys' newest versions for apply (worker only; see
	// versionCache).
	versions versionCache

	// checkedSpans are the data spans snapshot checks accepted since the
	// last Restored (worker only): the descriptor a snapshot carries must
	// describe one of them.
	checkedSpans []engine.Span
}

// rangeStats are the replicated statistics of a range.
type rangeStats struct {
	keys, keyBytes, valueBytes int64
}

func (s rangeStats) proto() *flotillapb.RangeStats {
	return &flotillapb.RangeStats{Keys: s.keys, KeyBytes: s.keyBytes, ValueBytes: s.valueBytes}
}

// Stats describe a range's size and load as seen by one replica.
type Stats struct {
	// Keys, KeyBytes and ValueBytes are replicated: every replica at the same
	// applied index has the same.
	Keys, KeyBytes, ValueBytes int64
	// ReadsPerSecond (reads served by this replica) and WritesPerSecond
	// (write ops applied by it) are averaged over about ten seconds, in
	// memory.
	ReadsPerSecond, WritesPerSecond float64
}

// Destroyed implements multiraft.DestroyObserver.
func (r *Replica) Destroyed() {
	r.wiped.Store(true)
	// The worker is done with the replica (the host let it go before
	// its data was deleted).
	r.versions.reset()
}

// noteSplit remembers the right-hand range a split made (worker).
func (r *Replica) noteSplit(right *flotillapb.RangeDescriptor) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mu.lastRight = right
}

// epochNotMatch is the error for a request routed at version, with the
// range's current descriptor and, when the range was split, the descriptor
// of the range right of it on this store (or as the split made it), so the
// router learns both halves at once.
func (r *Replica) epochNotMatch(outcome flotillapb.Outcome, desc *flotillapb.RangeDescriptor, version uint64) *flotillapb.Error {
	e := epochNotMatch(outcome, desc, version)
	end := desc.GetEndKey()
	if len(end) == 0 || version >= desc.GetEpoch().GetVersion() {
		return e
	}
	var right *flotillapb.RangeDescriptor
	if o, ok := r.store.LookupKey(end); ok && o.id != r.id {
		right = o.descriptor()
	}
	if right == nil {
		r.mu.Lock()
		if lr := r.mu.lastRight; lr != nil && bytes.Equal(lr.GetStartKey(), end) {
			right = lr
		}
		r.mu.Unlock()
	}
	if right != nil {
		cur := e.GetEpochNotMatch()
		cur.Current = append(cur.Current, right.Clone())
	}
	return e
}

// RangeID returns the replica's range.
func (r *Replica) RangeID() multiraft.GroupID { return r.id }

// Descriptor returns a copy of the range's descriptor, or nil if the replica
// is uninitialized.
func (r *Replica) Descriptor() *flotillapb.RangeDescriptor {
	return r.descriptor().Clone()
}

// SharedDescriptor is Descriptor without the copy: the replica's current
// descriptor (or nil), shared and immutable: the caller must not modify
// it. For hot read-only paths (the heartbeat loop reads every led range's
// descriptor ten times a second).
func (r *Replica) SharedDescriptor() *flotillapb.RangeDescriptor { return r.descriptor() }

// descriptor returns the shared, immutable descriptor (or nil).
func (r *Replica) descriptor() *flotillapb.RangeDescriptor {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.mu.desc
}

func (r *Replica) initialized() bool { return r.descriptor() != nil }

// Stats returns the range's statistics.
func (r *Replica) Stats() Stats {
	r.mu.Lock()
	st := r.mu.stats
	r.mu.Unlock()
	now := time.Now()
	return Stats{
		Keys: st.keys, KeyBytes: st.keyBytes, ValueBytes: st.valueBytes,
		ReadsPerSecond: r.reads.rate(now), WritesPerSecond: r.writes.rate(now),
	}
}

// Hash returns a SHA-256 over the range's user data — for every pair in key
// order, the key's length (8 bytes, big endian), the key, the value's length
// and the value — together with the applied index it reflects, both read from
// one engine snapshot, so replicas at the same applied index report the same
// hash.
func (r *Replica) Hash() (appliedIndex uint64, sum [32]byte, err error) {
	snap, err := r.store.eng.NewSnapshot()
	if err != nil {
		return 0, sum, err
	}
	defer snap.Close()
	appliedIndex, err = multiraft.ReadAppliedIndex(snap, r.id)
	if err != nil {
		return 0, sum, err
	}
	desc, _, revs, err := loadState(snap, r.id)
	if err != nil {
		return 0, sum, err
	}
	if desc == nil {
		return 0, sum, fmt.Errorf("shard: range %d: replica not initialized", r.id)
	}
	sum, err = hashVersions(snap, desc, revs)
	return appliedIndex, sum, err
}

// hashVersions hashes the versions of desc's keys that a compaction at
// compacted keeps — per key, its versions above compacted and its newest
// at or below it unless that is a tombstone — so that replicas agree
// whether or not they removed the others yet, after the range's last,
// closed and compacted revisions. Each version adds the key's
// length (8 bytes, big endian), the key, the revision, a tombstone flag,
// create_revision, version, lease, the value's length and the value.
func hashVersions(snap engine.Reader, desc *flotillapb.RangeDescriptor, revs revState) (sum [32]byte, _ error) {
	compacted := revs.compacted
	span, err := engine.MVCCSpan(desc.GetStartKey(), desc.GetEndKey())
	if err != nil {
		return sum, err
	}
	it, err := snap.NewIter(span.Start, span.End)
	if err != nil {
		return sum, err
	}
	h := sha256.New()
	// The revision state first: replicas agree on it too.
	buf := binary.BigEndian.AppendUint64(nil, uint64(revs.last))
	buf = binary.BigEndian.AppendUint64(buf, uint64(revs.closed))
	buf = binary.BigEndian.AppendUint64(buf, uint64(revs.compacted))
	h.Write(buf)
	var prev []byte
	below := false // the current key's newest version at or below compacted was seen
	for ok := it.First(); ok; ok = it.Next() {
		uk, rev, err := engine.DecodeMVCCKey(it.Key())
		if err != nil {
			_ = it.Close()
			return sum, err
		}
		if !bytes.Equal(uk, prev) {
			prev, below = append(prev[:0], uk...), false
		}
		if rev <= compacted {
			if below {
				continue // compaction removes it
			}
			below = true
		}
		raw, err := it.Value()
		if err != nil {
			_ = it.Close()
			return sum, err
		}
		v, err := engine.DecodeVersion(raw)
		if err != nil {
			_ = it.Close()
			return sum, err
		}
		if rev <= compacted && v.Deleted {
			continue // compaction removes a tombstone at or below it
		}
		buf = binary.BigEndian.AppendUint64(buf[:0], uint64(len(uk)))
		buf = append(buf, uk...)
		buf = binary.BigEndian.AppendUint64(buf, uint64(rev))
		if v.Deleted {
			buf = append(buf, 1)
		} else {
			buf = append(buf, 0)
		}
		buf = binary.BigEndian.AppendUint64(buf, uint64(v.CreateRevision))
		buf = binary.BigEndian.AppendUint64(buf, uint64(v.Version))
		buf = binary.BigEndian.AppendUint64(buf, uint64(v.Lease))
		buf = binary.BigEndian.AppendUint64(buf, uint64(len(v.Value)))
		h.Write(buf)
		h.Write(v.Value)
	}
	if err := it.Close(); err != nil {
		return sum, err
	}
	copy(sum[:], h.Sum(nil))
	return sum, nil
}

// Spans implements multiraft.StateMachine: the range's user span, nil while
// uninitialized.
func (r *Replica) Spans() []engine.Span {
	desc := r.descriptor()
	if desc == nil {
		return nil
	}
	span, err := engine.MVCCSpan(desc.GetStartKey(), desc.GetEndKey())
	if err != nil {
		// setState only installs descriptors with valid bounds.
		panic(fmt.Sprintf("shard: range %d: descriptor with invalid bounds: %v", r.id, err))
	}
	return []engine.Span{span}
}

// CheckSnapshotSpans implements multiraft.SnapshotSpanChecker: the checks
// of PrecheckSnapshotSpans, and it records the span accepted for Restored.
// An initialized replica accepts its own span or a left part of it (it was
// split meanwhile). An uninitialized one accepts exactly one valid user
// span that no other replica on this store occupies or a split reserves.
func (r *Replica) CheckSnapshotSpans(spans []engine.Span) error {
	if err := r.PrecheckSnapshotSpans(spans); err != nil {
		return err
	}
	r.checkedSpans = append(r.checkedSpans, spans[0])
	return nil
}

// PrecheckSnapshotSpans implements multiraft.SnapshotPrechecker: the checks
// of CheckSnapshotSpans, from any goroutine and without recording
// anything, so that a snapshot this replica cannot take is refused before
// its data is streamed (a right-hand range's snapshot to a store that has
// not applied the split yet is refused until it has).
func (r *Replica) PrecheckSnapshotSpans(spans []engine.Span) error {
	if len(spans) != 1 {
		return fmt.Errorf("%w: range %d: %d data spans, want 1", multiraft.ErrBadSnapshot, r.id, len(spans))
	}
	got := spans[0]
	if own := r.Spans(); own != nil {
		// The range may have been split since this replica last applied:
		// the snapshot then covers the left part of its span (the same
		// start, an end inside the span). Restored clears the rest.
		if !bytes.Equal(got.Start, own[0].Start) || engine.CompareKeys(got.End, own[0].End) > 0 || engine.CompareKeys(got.End, got.Start) <= 0 {
			return fmt.Errorf("%w: range %d: snapshot span %s, the replica's is %s", multiraft.ErrBadSnapshot, r.id, got, own[0])
		}
		if _, ok := decodeUserSpan(got); !ok {
			return fmt.Errorf("%w: range %d: snapshot span %s is not a user span", multiraft.ErrBadSnapshot, r.id, got)
		}
		return nil
	}
	us, ok := decodeUserSpan(got)
	if !ok {
		return fmt.Errorf("%w: range %d: snapshot span %s is not a user span", multiraft.ErrBadSnapshot, r.id, got)
	}
	if other := r.store.overlapping(us, r.id); other != nil {
		od := other.descriptor()
		return fmt.Errorf("%w: range %d: snapshot span %s overlaps range %d [%q, %q) on this store",
			multiraft.ErrBadSnapshot, r.id, got, other.id, od.GetStartKey(), od.GetEndKey())
	}
	if id, ok := r.store.reservedOverlap(us); ok {
		return fmt.Errorf("%w: range %d: snapshot span %s overlaps the span a split into range %d is taking on this store",
			multiraft.ErrBadSnapshot, r.id, got, id)
	}
	return nil
}

// decodeUserSpan returns the user span whose engine span (of versioned
// keys, engine.MVCCSpan) is s, if s is one.
func decodeUserSpan(s engine.Span) (userSpan, bool) {
	all, err := engine.MVCCSpan(nil, nil)
	if err != nil {
		return userSpan{}, false
	}
	var us userSpan
	bound := func(b, whole []byte) ([]byte, bool) {
		if bytes.Equal(b, whole) {
			return nil, true
		}
		// A bound is the prefix of a user key's versions: the versioned
		// keyspace's first byte, the key, and a zero byte.
		if len(b) < 3 || b[0] != all.Start[0] || b[len(b)-1] != 0 {
			return nil, false
		}
		return b[1 : len(b)-1], true
	}
	var ok bool
	if us.start, ok = bound(s.Start, all.Start); !ok {
		return userSpan{}, false
	}
	if us.end, ok = bound(s.End, all.End); !ok {
		return userSpan{}, false
	}
	check, err := engine.MVCCSpan(us.start, us.end)
	if err != nil || !bytes.Equal(check.Start, s.Start) || !bytes.Equal(check.End, s.End) {
		return userSpan{}, false
	}
	return us, true
}

// SnapshotIngesting implements multiraft.SnapshotIngestObserver.
func (r *Replica) SnapshotIngesting() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mu.restoring++
}

// Restored implements multiraft.SnapshotRestorer: a snapshot replaced the
// range's data and replicated state, so the replica reloads its descriptor
// and statistics and registers its (possibly new) bounds with the store.
func (r *Replica) Restored() error {
	desc, stats, revs, err := loadState(r.store.eng, r.id)
	if err != nil {
		return fmt.Errorf("shard: range %d: reloading after a snapshot: %w", r.id, err)
	}
	if desc == nil {
		return fmt.Errorf("shard: range %d: a snapshot left no range descriptor", r.id)
	}
	if checked := r.checkedSpans; len(checked) > 0 {
		span, err := engine.MVCCSpan(desc.GetStartKey(), desc.GetEndKey())
		if err != nil || !slices.ContainsFunc(checked, func(c engine.Span) bool {
			return bytes.Equal(span.Start, c.Start) && bytes.Equal(span.End, c.End)
		}) {
			return fmt.Errorf("shard: range %d: the snapshot's descriptor [%q, %q) matches none of the data spans accepted %v",
				r.id, desc.GetStartKey(), desc.GetEndKey(), checked)
		}
	}
	r.checkedSpans = nil
	r.versions.reset()
	if old := r.descriptor(); old != nil && !bytes.Equal(old.GetEndKey(), desc.GetEndKey()) {
		// The snapshot narrowed the range (it was split while this replica
		// lagged): the rest of the old span belongs to the right-hand
		// ranges, none of which is initialized here (it would overlap), so
		// its data is stale. A crash before this deletion leaves it behind,
		// unowned and unread, until a snapshot of a range over it clears it.
		if err := r.clearSpan(userSpan{start: desc.GetEndKey(), end: old.GetEndKey()}); err != nil {
			return fmt.Errorf("shard: range %d: clearing the part a split took: %w", r.id, err)
		}
		r.store.logger.Info("a snapshot narrowed the range: it was split", "range", r.id,
			"old_end", fmt.Sprintf("%q", old.GetEndKey()), "end", fmt.Sprintf("%q", desc.GetEndKey()))
	}
	if invariants.Enabled {
		if err := checkStats(r.store.eng, desc, stats); err != nil {
			return fmt.Errorf("shard: range %d after a snapshot: %w", r.id, err)
		}
	}
	r.mu.Lock()
	r.setStateLocked(desc, stats, revs)
	if r.mu.restoring > 0 {
		r.mu.restoring--
	}
	r.mu.Unlock()
	r.store.register(r)
	return nil
}

// clearSpan deletes the user data in span, durably.
func (r *Replica) clearSpan(span userSpan) error {
	es, err := engine.MVCCSpan(span.start, span.end)
	if err != nil {
		return err
	}
	b := r.store.eng.NewBatch()
	defer b.Close()
	if err := b.DeleteRange(es); err != nil {
		return err
	}
	return b.Commit(true)
}

// setState installs a new descriptor, statistics and revision state
// (worker, or before the replica is shared).
func (r *Replica) setState(desc *flotillapb.RangeDescriptor, stats rangeStats, revs revState) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.setStateLocked(desc, stats, revs)
}

// setStateLocked is setState with r.mu held.
func (r *Replica) setStateLocked(desc *flotillapb.RangeDescriptor, stats rangeStats, revs revState) {
	r.mu.desc = desc
	if desc != nil {
		r.mu.span = userSpan{start: desc.GetStartKey(), end: desc.GetEndKey()}
	}
	r.mu.stats = stats
	r.mu.revs = revs
}

// revisions returns the range's revision state as of the last Apply.
func (r *Replica) revisions() revState {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.mu.revs
}

// revisionsForRead returns, for a read from an engine snapshot taken
// before the call while r was (and is) the store's replica of its range, a
// revision state whose compacted revision is at or above the snapshot's (so
// that a read at a revision it allows finds every version it needs), or
// false when the snapshot's own must be read. A replica starts with the
// engine's state (loaded, or made by a split after its commit); Apply
// publishes the state before its batch commits, and compaction only moves
// up, so the cached state is at least the snapshot's, except while a
// received snapshot's data is ingested and not yet reloaded (restoring):
// SnapshotIngesting runs before the ingest, so an engine snapshot that
// holds the received data was taken after it, and this call either sees it
// counted or sees the state Restored reloaded. The closed revision may be
// ahead of the engine's (published before the commit): a read relying on
// it must read the snapshot's.
func (r *Replica) revisionsForRead() (revState, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.mu.revs, r.mu.restoring == 0
}

// loadState reads a range's descriptor, statistics and revision state
// from r: nil if it has no descriptor (an uninitialized replica).
func loadState(r engine.Reader, id multiraft.GroupID) (*flotillapb.RangeDescriptor, rangeStats, revState, error) {
	data, err := r.Get(engine.RangeDescriptorKey(id))
	if errors.Is(err, engine.ErrNotFound) {
		return nil, rangeStats{}, revState{}, nil
	}
	if err != nil {
		return nil, rangeStats{}, revState{}, err
	}
	desc := &flotillapb.RangeDescriptor{}
	if err := proto.Unmarshal(data, desc); err != nil {
		return nil, rangeStats{}, revState{}, fmt.Errorf("decoding the descriptor of range %d: %w", id, err)
	}
	if err := validateDescriptor(desc); err != nil {
		return nil, rangeStats{}, revState{}, fmt.Errorf("range %d's stored descriptor: %w", id, err)
	}
	if desc.GetRangeId() != uint64(id) {
		return nil, rangeStats{}, revState{}, fmt.Errorf("range %d's stored descriptor names range %d", id, desc.GetRangeId())
	}
	var stats rangeStats
	data, err = r.Get(engine.RangeStatsKey(id))
	switch {
	case errors.Is(err, engine.ErrNotFound):
	case err != nil:
		return nil, rangeStats{}, revState{}, err
	default:
		var ps flotillapb.RangeStats
		if err := proto.Unmarshal(data, &ps); err != nil {
			return nil, rangeStats{}, revState{}, fmt.Errorf("decoding the stats of range %d: %w", id, err)
		}
		stats = rangeStats{keys: ps.GetKeys(), keyBytes: ps.GetKeyBytes(), valueBytes: ps.GetValueBytes()}
	}
	revs, err := loadRevisions(r, id)
	if err != nil {
		return nil, rangeStats{}, revState{}, err
	}
	return desc, stats, revs, nil
}

// loadRevisions reads a range's revision state from r (zero if it has
// none).
func loadRevisions(r engine.Reader, id multiraft.GroupID) (revState, error) {
	data, err := r.Get(engine.RangeRevisionsKey(id))
	switch {
	case errors.Is(err, engine.ErrNotFound):
		return revState{}, nil
	case err != nil:
		return revState{}, err
	}
	var pr flotillapb.RangeRevisions
	if err := proto.Unmarshal(data, &pr); err != nil {
		return revState{}, fmt.Errorf("decoding the revisions of range %d: %w", id, err)
	}
	return revStateOf(&pr), nil
}

// computeStats counts the live user data of desc's range in r.
func computeStats(r engine.Reader, desc *flotillapb.RangeDescriptor) (rangeStats, error) {
	st, err := engine.MVCCComputeStats(r, desc.GetStartKey(), desc.GetEndKey())
	if err != nil {
		return rangeStats{}, err
	}
	return rangeStats{keys: st.LiveKeys, keyBytes: st.LiveKeyBytes, valueBytes: st.LiveValueBytes}, nil
}

// checkStats is an invariant check: the stored statistics match the data.
func checkStats(r engine.Reader, desc *flotillapb.RangeDescriptor, stats rangeStats) error {
	actual, err := computeStats(r, desc)
	if err != nil {
		return err
	}
	if actual != stats {
		return fmt.Errorf("stored stats %+v, the data has %+v", stats, actual)
	}
	return nil
}

var (
	_ multiraft.StateMachine        = (*Replica)(nil)
	_ multiraft.SnapshotSpanChecker = (*Replica)(nil)
	_ multiraft.SnapshotRestorer    = (*Replica)(nil)
	_ multiraft.DestroyObserver     = (*Replica)(nil)
	_ multiraft.SnapshotPrechecker  = (*Replica)(nil)
)
