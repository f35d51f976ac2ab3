// Copyright 2026 The Flotilla Authors. All rights reserved.

package shard

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/flotilladb/flotilla/engine"
	"github.com/flotilladb/flotilla/internal/invariants"
	"github.com/flotilladb/flotilla/multiraft"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"google.golang.org/protobuf/proto"
)

// Store is every KV replica of one node and the request path that serves
// them. Its methods are safe for concurrent use. It starts no goroutines.
//
// Life cycle: NewStore; pass NewStateMachine as multiraft.Config's
// NewStateMachine for range groups; create the multiraft.Host; SetHost.
// Requests before SetHost fail with Unavailable.
//
// Removed replicas: multiraft destroys a replica that left its group without
// telling its state machine. The store keeps the *Replica it made, but every
// lookup (Replica, Replicas, LookupKey and the request path) skips the groups
// the host no longer has, asking RaftHost.Status; a later replica of the same
// group, or one whose span overlaps, replaces it.
type Store struct {
	cfg    Config
	eng    *engine.Engine
	logger *slog.Logger

	host atomic.Pointer[hostRef]

	// closer batches the close requests of the ranges this store leads.
	closer closer
	// followerReads counts the reads served by replicas that did not lead.
	followerReads atomic.Int64

	// versionBudget bounds the replicas' version caches together.
	versionBudget cacheBudget

	// mu guards the replica registry. Lock order: Store.mu before
	// Replica.mu. Never held while calling the host.
	mu struct {
		sync.Mutex
		// replicas holds the newest Replica made for each group.
		replicas map[multiraft.GroupID]*Replica
		// byStart holds the initialized replicas of replicas sorted by start
		// key. Their spans do not overlap: registering a replica evicts
		// those it overlaps, which can only be replicas the host no longer
		// has (a snapshot that would overlap a live one is refused). It is
		// replaced, never modified in place, so a copy of the slice header
		// may be read without the lock.
		byStart []*Replica
		// reserved are the spans of splits being applied, by the new
		// range's ID: from the moment the left range's descriptor narrows
		// (before the apply batch commits) until the new range is started,
		// no snapshot may take them.
		reserved map[multiraft.GroupID]userSpan
	}
}

type hostRef struct{ h RaftHost }

// NewStore returns a store over cfg.Engine with no replicas; they are made by
// NewStateMachine as multiraft loads or creates groups.
func NewStore(cfg Config) (*Store, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Store{cfg: cfg, eng: cfg.Engine, logger: cfg.Logger}
	s.versionBudget.limit = cfg.VersionCacheBytes
	s.mu.replicas = make(map[multiraft.GroupID]*Replica)
	return s, nil
}

// SetHost gives the store the host that runs its replicas' groups. Call it
// once, after multiraft.NewHost returned (which loads the groups already in
// the engine, calling NewStateMachine).
func (s *Store) SetHost(h RaftHost) {
	if h == nil {
		return
	}
	s.host.Store(&hostRef{h: h})
	// Rebuild the index from the replicas the host actually runs: at load
	// time the host may have made (and then destroyed) replicas that a
	// removal left behind. The host is asked without holding s.mu.
	s.mu.Lock()
	all := make([]*Replica, 0, len(s.mu.replicas))
	for _, r := range s.mu.replicas {
		all = append(all, r)
	}
	s.mu.Unlock()
	live := make(map[*Replica]bool, len(all))
	for _, r := range all {
		_, live[r] = h.Status(r.id)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var idx []*Replica
	for _, r := range s.mu.replicas {
		// A replica registered meanwhile was just made by the host.
		if isLive, checked := live[r]; (isLive || !checked) && r.initialized() {
			idx = append(idx, r)
		}
	}
	sortByStart(idx)
	for i := 1; i < len(idx); i++ {
		if a, b := idx[i-1].descriptor(), idx[i].descriptor(); spansOverlap(spanOf(a), spanOf(b)) {
			s.logger.Error("two live replicas on this store hold overlapping ranges",
				"range", a.GetRangeId(), "other", b.GetRangeId())
		}
	}
	s.mu.byStart = idx
}

// raftHost returns the host, or nil before SetHost.
func (s *Store) raftHost() RaftHost {
	if ref := s.host.Load(); ref != nil {
		return ref.h
	}
	return nil
}

// live reports whether the host still has group id (true before SetHost).
func (s *Store) live(id multiraft.GroupID) bool {
	h := s.raftHost()
	if h == nil {
		return true
	}
	_, ok := h.Status(id)
	return ok
}

// NewStateMachine is the multiraft.StateMachineFactory of range groups. It
// loads the group's descriptor and statistics from the engine if they are
// there (an initialized replica), and otherwise returns an uninitialized
// replica, with no descriptor and no spans, that learns its bounds from a
// snapshot.
func (s *Store) NewStateMachine(group multiraft.GroupID) (multiraft.StateMachine, error) {
	desc, stats, revs, err := loadState(s.eng, group)
	if err != nil {
		return nil, fmt.Errorf("shard: loading range %d: %w", group, err)
	}
	if invariants.Enabled && desc != nil {
		if err := checkStats(s.eng, desc, stats); err != nil {
			return nil, fmt.Errorf("shard: loading range %d: %w", group, err)
		}
	}
	r := &Replica{store: s, id: group}
	r.versions.budget = &s.versionBudget
	r.tracker.init()
	r.setState(desc, stats, revs)
	s.register(r)
	return r, nil
}

// register makes r the replica of its group and, if it is initialized,
// indexes it by its bounds.
func (s *Store) register(r *Replica) {
	desc := r.descriptor()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.replicas[r.id] = r
	idx := make([]*Replica, 0, len(s.mu.byStart)+1)
	for _, o := range s.mu.byStart {
		if o.id == r.id {
			continue
		}
		if desc != nil && spansOverlap(spanOf(o.descriptor()), spanOf(desc)) {
			s.logger.Info("a replica replaces an overlapping one the store no longer runs",
				"range", r.id, "replaced", o.id)
			continue
		}
		idx = append(idx, o)
	}
	if desc != nil {
		idx = append(idx, r)
	}
	sortByStart(idx)
	s.mu.byStart = idx
}

func spanOf(d *flotillapb.RangeDescriptor) userSpan {
	return userSpan{start: d.GetStartKey(), end: d.GetEndKey()}
}

func spansOverlap(a, b userSpan) bool {
	// a starts before b ends and b starts before a ends.
	aBeforeBEnd := len(b.end) == 0 || bytes.Compare(a.start, b.end) < 0
	bBeforeAEnd := len(a.end) == 0 || bytes.Compare(b.start, a.end) < 0
	return aBeforeBEnd && bBeforeAEnd
}

func sortByStart(rs []*Replica) {
	slices.SortFunc(rs, func(a, b *Replica) int {
		return bytes.Compare(a.descriptor().GetStartKey(), b.descriptor().GetStartKey())
	})
}

func (s *Store) index() []*Replica {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.byStart
}

// overlapping returns an initialized replica other than self whose range
// overlaps span and that still occupies it: the host runs it, or destroyed
// it and has not deleted its data yet. Or nil.
func (s *Store) overlapping(span userSpan, self multiraft.GroupID) *Replica {
	for _, r := range s.index() {
		if r.id != self && spansOverlap(spanOf(r.descriptor()), span) && (s.live(r.id) || !r.wiped.Load()) {
			return r
		}
	}
	return nil
}

// reserve keeps span from snapshots while a split into range id applies.
func (s *Store) reserve(id multiraft.GroupID, span userSpan) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.reserved == nil {
		s.mu.reserved = map[multiraft.GroupID]userSpan{}
	}
	s.mu.reserved[id] = span
}

func (s *Store) unreserve(id multiraft.GroupID) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.mu.reserved, id)
}

// reservedOverlap returns the split whose reserved span overlaps span.
func (s *Store) reservedOverlap(span userSpan) (multiraft.GroupID, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, r := range s.mu.reserved {
		if spansOverlap(r, span) {
			return id, true
		}
	}
	return 0, false
}

// Replica returns the local replica of range id, initialized or not, if the
// host runs it.
func (s *Store) Replica(id multiraft.GroupID) (*Replica, bool) {
	s.mu.Lock()
	r := s.mu.replicas[id]
	s.mu.Unlock()
	if r == nil || !s.live(id) {
		return nil, false
	}
	return r, true
}

// Replicas returns the initialized local replicas the host runs, sorted by
// start key.
func (s *Store) Replicas() []*Replica {
	idx := s.index()
	out := make([]*Replica, 0, len(idx))
	for _, r := range idx {
		if s.live(r.id) {
			out = append(out, r)
		}
	}
	return out
}

// LookupKey returns the initialized local replica whose range holds key.
func (s *Store) LookupKey(key []byte) (*Replica, bool) {
	idx := s.index()
	// The last replica starting at or before key is the only candidate.
	i, found := slices.BinarySearchFunc(idx, key, func(r *Replica, k []byte) int {
		return bytes.Compare(r.descriptor().GetStartKey(), k)
	})
	if !found {
		i--
	}
	if i < 0 {
		return nil, false
	}
	r := idx[i]
	if !spanOf(r.descriptor()).contains(key) || !s.live(r.id) {
		return nil, false
	}
	return r, true
}

// WriteInitialState writes a new range's descriptor and zero statistics into
// b; use it as the init function of multiraft.Host.BootstrapWith, with the
// same descriptor on every initial member.
func WriteInitialState(b *engine.Batch, desc *flotillapb.RangeDescriptor) error {
	if err := validateDescriptor(desc); err != nil {
		return fmt.Errorf("shard: %w", err)
	}
	return writeRangeState(b, desc, rangeStats{}, revState{})
}

// writeRangeState writes a range's descriptor, statistics and revision
// state into b.
func writeRangeState(b *engine.Batch, desc *flotillapb.RangeDescriptor, st rangeStats, revs revState) error {
	id := multiraft.GroupID(desc.GetRangeId())
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(desc)
	if err != nil {
		return err
	}
	stats, err := proto.MarshalOptions{Deterministic: true}.Marshal(st.proto())
	if err != nil {
		return err
	}
	rv, err := revs.marshal()
	if err != nil {
		return err
	}
	return errors.Join(
		b.Set(engine.RangeDescriptorKey(id), data),
		b.Set(engine.RangeStatsKey(id), stats),
		b.Set(engine.RangeRevisionsKey(id), rv),
	)
}

// validateDescriptor checks what every stored descriptor must satisfy.
func validateDescriptor(desc *flotillapb.RangeDescriptor) error {
	if desc == nil {
		return errors.New("no range descriptor")
	}
	var errs []error
	if desc.GetRangeId() == 0 {
		errs = append(errs, errors.New("range ID 0"))
	}
	if _, err := engine.UserSpan(desc.GetStartKey(), desc.GetEndKey()); err != nil {
		errs = append(errs, fmt.Errorf("bounds [%q, %q): %w", desc.GetStartKey(), desc.GetEndKey(), err))
	}
	if len(desc.GetReplicas()) == 0 {
		errs = append(errs, errors.New("no replicas"))
	}
	seen := map[uint64]bool{}
	for _, rd := range desc.GetReplicas() {
		rid := multiraft.ReplicaID(rd.GetReplicaId())
		if !rid.Valid() || uint64(rid.Node()) != rd.GetStoreId() || seen[rd.GetReplicaId()] {
			errs = append(errs, fmt.Errorf("invalid or duplicate replica %v on store %d", rid, rd.GetStoreId()))
		}
		seen[rd.GetReplicaId()] = true
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("invalid descriptor of range %d: %w", desc.GetRangeId(), err)
	}
	return nil
}
