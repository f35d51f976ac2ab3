// Copyright 2026 The Flotilla Authors. All rights reserved.

package engine

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"

	"github.com/flotilladb/flotilla/internal/invariants"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// ErrLogCorrupt is returned (wrapped) when a range's raft log on disk
// contradicts its recorded shape, e.g. an entry is missing in the middle.
var ErrLogCorrupt = errors.New("engine: raft log corrupt")

// ErrStorageOpen is returned by OpenRaftStorage for a range whose storage is
// already open.
var ErrStorageOpen = errors.New("engine: raft storage already open")

// ErrPendingBatch is returned when a RaftStorage is written through a batch
// while it has uncommitted writes in another one.
var ErrPendingBatch = errors.New("engine: raft storage has writes pending in another batch")

// pointDeleteLimit is the largest number of log entries removed with point
// deletes; longer runs get one range deletion.
const pointDeleteLimit = 64

// logState is the shape of a range's raft log and the raft state kept with
// it. It is a value: copies are independent, except for the pointed-to
// protos, which are never mutated once stored here.
type logState struct {
	// truncIndex and truncTerm describe the last entry removed from the
	// front of the log (0, 0 if none). The log holds exactly the entries
	// (truncIndex, lastIndex], so firstIndex == truncIndex+1.
	truncIndex, truncTerm uint64
	lastIndex             uint64
	// lastTerm is the term of lastIndex if lastTermOK.
	lastTerm   uint64
	lastTermOK bool

	hardState *pb.HardState // nil if none saved
	// snapMeta is the newest snapshot's metadata, EnsureSnapshotMetadata'd;
	// Index 0 means none.
	snapMeta *pb.SnapshotMetadata
	// confState is the configuration as of confIndex: the newest of what
	// SetConfState, CreateSnapshot and ApplySnapshot recorded. nil if none,
	// in which case InitialState falls back to snapMeta's.
	confState *pb.ConfState
	confIndex uint64
}

// RaftStorage is one range's raft log and raft state in the engine. It
// implements raft.Storage for the range's RawNode, with the semantics of
// raft.MemoryStorage, backed by Pebble and a store-wide entry cache.
//
// Concurrency. The raft.Storage methods may be called from any goroutine,
// concurrently with writes. The write methods (Append, SetHardState,
// SetConfState, Compact, CreateSnapshot, ApplySnapshot) stage writes in a
// Batch and must be called by one goroutine at a time (in Flotilla, the log
// writer). They take effect, for readers, when the batch commits: writes of
// many ranges may share one batch and so one fsync. A storage may have staged
// writes in at most one uncommitted batch at a time, and later writes in the
// same batch see the effect of earlier ones.
//
// Readers never see a log that did not exist: while a batch that removes
// entries (a truncation, an overwritten suffix, a snapshot) commits, readers
// see only the entries valid both before and after it.
type RaftStorage struct {
	e       *Engine
	rangeID RangeID

	// mu guards the fields below. It is never held across I/O.
	mu struct {
		sync.Mutex
		// visible is what readers see.
		visible logState
		// gen counts commits that removed or replaced entries. A reader that
		// saw gen change while it read must read again.
		gen uint64
		// err, once set, fails every call: a commit failed and the storage
		// no longer knows what is on disk.
		err    error
		closed bool

		// pending is the batch holding this storage's staged writes, or nil.
		pending *Batch
		// committing: pending passed prepareCommit and is being written.
		committing bool
		// staged is the state once pending commits.
		staged logState
		// stagedAppends are the entries staged by Append, in order; after
		// the commit they go to the entry cache.
		stagedAppends [][]*pb.Entry
		// minChanged is the lowest index whose entry the staged writes
		// overwrite or delete at the tail (math.MaxUint64 if none).
		minChanged uint64
		// truncated: staged writes remove entries at the front.
		truncated bool
		// snapshotApplied: staged writes replace the whole log.
		snapshotApplied bool
	}
}

var _ raft.Storage = (*RaftStorage)(nil)

// OpenRaftStorage loads rangeID's raft state from the engine. A range that
// has none gets an empty log. Only one RaftStorage per range may be open at a
// time; Close releases it.
func (e *Engine) OpenRaftStorage(rangeID RangeID) (*RaftStorage, error) {
	if err := e.checkOpen(); err != nil {
		return nil, err
	}
	if rangeID == 0 {
		return nil, errors.New("engine: range ID 0 is invalid")
	}
	// Reserve the range first: a storage still registered may yet commit,
	// and what it commits must be loaded.
	e.storagesMu.Lock()
	if _, ok := e.storages[rangeID]; ok {
		e.storagesMu.Unlock()
		return nil, fmt.Errorf("%w: range %d", ErrStorageOpen, rangeID)
	}
	if e.storages == nil {
		e.storages = make(map[RangeID]*RaftStorage)
	}
	e.storages[rangeID] = nil
	e.storagesMu.Unlock()

	st, err := loadLogState(e, rangeID)
	if err != nil {
		e.unregisterStorage(rangeID)
		return nil, fmt.Errorf("engine: loading raft state of range %d: %w", rangeID, err)
	}
	s := &RaftStorage{e: e, rangeID: rangeID}
	s.mu.visible = st
	e.storagesMu.Lock()
	e.storages[rangeID] = s
	e.storagesMu.Unlock()
	return s, nil
}

func (e *Engine) unregisterStorage(rangeID RangeID) {
	e.storagesMu.Lock()
	delete(e.storages, rangeID)
	e.storagesMu.Unlock()
}

// Close releases the storage and its cached entries. A batch holding writes
// staged by it will refuse to commit. If such a batch is committing right
// now, the range stays reserved until the commit ends, so a storage opened
// again for the range loads what it wrote. It is idempotent.
func (s *RaftStorage) Close() {
	s.mu.Lock()
	if s.mu.closed {
		s.mu.Unlock()
		return
	}
	s.mu.closed = true
	s.mu.err = fmt.Errorf("engine: raft storage of range %d is closed", s.rangeID)
	committing := s.mu.committing
	s.mu.Unlock()
	s.e.entryCache.drop(s.rangeID)
	if !committing {
		s.e.unregisterStorage(s.rangeID)
	} // else postCommit unregisters
}

// RangeID returns the storage's range.
func (s *RaftStorage) RangeID() RangeID { return s.rangeID }

func loadLogState(e *Engine, rangeID RangeID) (logState, error) {
	st := logState{snapMeta: pb.EnsureSnapshotMetadata(nil)}
	if v, err := e.Get(RaftHardStateKey(rangeID)); err == nil {
		st.hardState = &pb.HardState{}
		if err := proto.Unmarshal(v, st.hardState); err != nil {
			return st, fmt.Errorf("%w: HardState: %v", ErrLogCorrupt, err)
		}
	} else if !errors.Is(err, ErrNotFound) {
		return st, err
	}
	if v, err := e.Get(RaftTruncatedStateKey(rangeID)); err == nil {
		if len(v) != 16 {
			return st, fmt.Errorf("%w: TruncatedState of %d bytes", ErrLogCorrupt, len(v))
		}
		st.truncIndex, st.truncTerm = binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:])
	} else if !errors.Is(err, ErrNotFound) {
		return st, err
	}
	if v, err := e.Get(RaftSnapshotMetaKey(rangeID)); err == nil {
		m := &pb.SnapshotMetadata{}
		if err := proto.Unmarshal(v, m); err != nil {
			return st, fmt.Errorf("%w: SnapshotMetadata: %v", ErrLogCorrupt, err)
		}
		st.snapMeta = pb.EnsureSnapshotMetadata(m)
	} else if !errors.Is(err, ErrNotFound) {
		return st, err
	}
	if v, err := e.Get(RangeConfStateKey(rangeID)); err == nil {
		if len(v) < 8 {
			return st, fmt.Errorf("%w: ConfState of %d bytes", ErrLogCorrupt, len(v))
		}
		cs := &pb.ConfState{}
		if err := proto.Unmarshal(v[8:], cs); err != nil {
			return st, fmt.Errorf("%w: ConfState: %v", ErrLogCorrupt, err)
		}
		st.confIndex, st.confState = binary.BigEndian.Uint64(v), pb.EnsureConfState(cs)
	} else if !errors.Is(err, ErrNotFound) {
		return st, err
	}

	span := RaftLogSpan(rangeID, st.truncIndex+1, 0)
	it, err := e.NewIter(span.Start, span.End)
	if err != nil {
		return st, err
	}
	defer it.Close()
	st.lastIndex, st.lastTerm, st.lastTermOK = st.truncIndex, st.truncTerm, true
	if it.Last() {
		_, index, err := DecodeRaftLogKey(it.Key())
		if err != nil {
			return st, err
		}
		v, err := it.Value()
		if err != nil {
			return st, err
		}
		term, err := entryTerm(v)
		if err != nil {
			return st, err
		}
		st.lastIndex, st.lastTerm = index, term
		if !it.First() {
			return st, it.Error()
		}
		if _, first, _ := DecodeRaftLogKey(it.Key()); first != st.truncIndex+1 {
			return st, fmt.Errorf("%w: first entry is %d, truncated state says %d",
				ErrLogCorrupt, first, st.truncIndex+1)
		}
	}
	return st, it.Error()
}

// entryTerm reads the term of an encoded entry without decoding its data.
func entryTerm(encoded []byte) (uint64, error) {
	for b := encoded; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, fmt.Errorf("%w: entry: %v", ErrLogCorrupt, protowire.ParseError(n))
		}
		b = b[n:]
		if num == 2 && typ == protowire.VarintType { // Entry.Term
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return 0, fmt.Errorf("%w: entry term: %v", ErrLogCorrupt, protowire.ParseError(n))
			}
			return v, nil
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return 0, fmt.Errorf("%w: entry: %v", ErrLogCorrupt, protowire.ParseError(n))
		}
		b = b[n:]
	}
	return 0, nil
}

// ---- raft.Storage --------------------------------------------------------

// readState returns what a reader may see now, with the generation to check
// after reading.
func (s *RaftStorage) readState() (logState, uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.visible, s.mu.gen, s.mu.err
}

// stillValid reports whether no entries were removed or replaced since a
// reader saw generation gen.
func (s *RaftStorage) stillValid(gen uint64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.gen == gen
}

// InitialState implements raft.Storage.
func (s *RaftStorage) InitialState() (*pb.HardState, *pb.ConfState, error) {
	st, _, err := s.readState()
	if err != nil {
		return nil, nil, err
	}
	var hs *pb.HardState
	if st.hardState != nil {
		hs = proto.Clone(st.hardState).(*pb.HardState)
	}
	cs := st.confState
	if cs == nil {
		cs = st.snapMeta.GetConfState()
	}
	return hs, pb.EnsureConfState(proto.Clone(cs).(*pb.ConfState)), nil
}

// FirstIndex implements raft.Storage.
func (s *RaftStorage) FirstIndex() (uint64, error) {
	st, _, err := s.readState()
	return st.truncIndex + 1, err
}

// LastIndex implements raft.Storage.
func (s *RaftStorage) LastIndex() (uint64, error) {
	st, _, err := s.readState()
	return st.lastIndex, err
}

// Snapshot implements raft.Storage. It returns the newest snapshot's
// metadata; Flotilla streams snapshot data separately (see Export), so Data
// is empty.
func (s *RaftStorage) Snapshot() (*pb.Snapshot, error) {
	st, _, err := s.readState()
	if err != nil {
		return nil, err
	}
	return &pb.Snapshot{Metadata: proto.Clone(st.snapMeta).(*pb.SnapshotMetadata)}, nil
}

// Term implements raft.Storage.
func (s *RaftStorage) Term(i uint64) (uint64, error) {
	for {
		st, gen, err := s.readState()
		switch {
		case err != nil:
			return 0, err
		case i < st.truncIndex:
			return 0, raft.ErrCompacted
		case i == st.truncIndex:
			return st.truncTerm, nil
		case i > st.lastIndex:
			return 0, raft.ErrUnavailable
		case i == st.lastIndex && st.lastTermOK:
			return st.lastTerm, nil
		}
		term, ok := s.e.entryCache.term(s.rangeID, i)
		if !ok {
			s.e.entryCache.misses.Add(1)
			v, err := s.e.Get(RaftLogKey(s.rangeID, i))
			if errors.Is(err, ErrNotFound) {
				if !s.stillValid(gen) {
					continue
				}
				return 0, fmt.Errorf("%w: range %d has no entry %d in (%d, %d]",
					ErrLogCorrupt, s.rangeID, i, st.truncIndex, st.lastIndex)
			} else if err != nil {
				return 0, err
			}
			if term, err = entryTerm(v); err != nil {
				return 0, err
			}
		}
		if s.stillValid(gen) {
			return term, nil
		}
	}
}

// Entries implements raft.Storage.
func (s *RaftStorage) Entries(lo, hi, maxSize uint64) ([]*pb.Entry, error) {
	for {
		st, gen, err := s.readState()
		switch {
		case err != nil:
			return nil, err
		case lo <= st.truncIndex:
			return nil, raft.ErrCompacted
		case hi > st.lastIndex+1:
			return nil, fmt.Errorf("engine: range %d: entries [%d, %d) beyond last index %d",
				s.rangeID, lo, hi, st.lastIndex)
		case lo > hi:
			return nil, fmt.Errorf("engine: range %d: entries [%d, %d) inverted", s.rangeID, lo, hi)
		case st.lastIndex == st.truncIndex:
			return nil, raft.ErrUnavailable // as MemoryStorage: the log is empty
		}
		ents, err := s.readEntries(lo, hi, maxSize)
		if err != nil {
			if errors.Is(err, ErrLogCorrupt) && !s.stillValid(gen) {
				continue
			}
			return nil, err
		}
		if s.stillValid(gen) {
			return ents, nil
		}
	}
}

// readEntries reads [lo, hi) under raft's size limit from the entry cache
// where it holds them and from Pebble where not. Its result is meaningful only
// if no entries in that span were removed or replaced meanwhile, which the
// caller checks.
func (s *RaftStorage) readEntries(lo, hi, maxSize uint64) ([]*pb.Entry, error) {
	var (
		ents    []*pb.Entry
		size    uint64
		limited bool
		err     error
	)
	for next := lo; next < hi && !limited && err == nil; {
		from := s.e.entryCache.firstCached(s.rangeID, next, hi)
		if from > next {
			ents, next, limited, err = s.appendFromEngine(ents, next, from, &size, maxSize)
			continue
		}
		ents, next, limited = s.e.entryCache.appendEntries(ents, s.rangeID, next, hi, &size, maxSize)
		if next == from && !limited {
			// Evicted since firstCached: read the rest from the engine.
			ents, next, limited, err = s.appendFromEngine(ents, next, hi, &size, maxSize)
		}
	}
	return ents, err
}

// appendFromEngine appends entries [lo, hi) read from Pebble to ents under
// raft's size limit (*size is the running total; the result holds at least
// one entry). It returns the index after the last entry appended and whether
// it stopped because of the limit.
func (s *RaftStorage) appendFromEngine(ents []*pb.Entry, lo, hi uint64, size *uint64, maxSize uint64) (
	_ []*pb.Entry, next uint64, limited bool, _ error,
) {
	span := RaftLogSpan(s.rangeID, lo, hi)
	it, err := s.e.NewIter(span.Start, span.End)
	if err != nil {
		return ents, lo, false, err
	}
	defer it.Close()
	next = lo
	for valid := it.First(); valid; valid = it.Next() {
		_, index, err := DecodeRaftLogKey(it.Key())
		if err != nil {
			return ents, next, false, err
		}
		if index != next {
			break // a gap: reported below
		}
		v, err := it.Value()
		if err != nil {
			return ents, next, false, err
		}
		if len(ents) > 0 && *size+uint64(len(v)) > maxSize {
			limited = true
			break
		}
		e := &pb.Entry{}
		if err := proto.Unmarshal(v, e); err != nil {
			return ents, next, false, fmt.Errorf("%w: range %d entry %d: %v", ErrLogCorrupt, s.rangeID, index, err)
		}
		*size += uint64(len(v))
		ents = append(ents, e)
		next++
	}
	s.e.entryCache.misses.Add(next - lo)
	if err := it.Error(); err != nil {
		return ents, next, false, err
	}
	if !limited && next != hi {
		return ents, next, false, fmt.Errorf("%w: range %d has no entry %d", ErrLogCorrupt, s.rangeID, next)
	}
	return ents, next, limited, nil
}

// ---- Writes --------------------------------------------------------------

// stage prepares s to stage writes in b and returns the staged state to
// modify. It must be called with s.mu held.
func (s *RaftStorage) stageLocked(b *Batch) (*logState, error) {
	if s.mu.err != nil {
		return nil, s.mu.err
	}
	if b.done {
		return nil, ErrBatchDone
	}
	if b.e != s.e {
		return nil, errors.New("engine: batch of another engine")
	}
	switch s.mu.pending {
	case b:
	case nil:
		s.mu.pending = b
		s.mu.staged = s.mu.visible
		s.mu.stagedAppends = s.mu.stagedAppends[:0]
		s.mu.minChanged = math.MaxUint64
		s.mu.truncated, s.mu.snapshotApplied = false, false
		b.register(s)
	default:
		return nil, fmt.Errorf("%w: range %d", ErrPendingBatch, s.rangeID)
	}
	return &s.mu.staged, nil
}

// Append stages entries for appending to the log. Entries must be
// contiguous. Entries at or before the truncation point are ignored; an
// entry at an index the log already holds replaces it and everything after
// it (a conflicting suffix). It is an error for entries to start after
// LastIndex()+1.
func (s *RaftStorage) Append(b *Batch, entries []*pb.Entry) error {
	if len(entries) == 0 {
		return nil
	}
	for i, e := range entries {
		if e.GetIndex() != entries[0].GetIndex()+uint64(i) {
			return fmt.Errorf("engine: range %d: appended entries not contiguous at %d: index %d",
				s.rangeID, i, e.GetIndex())
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.stageLocked(b)
	if err != nil {
		return err
	}
	first := st.truncIndex + 1
	last := entries[len(entries)-1].GetIndex()
	if last < first {
		return nil
	}
	if entries[0].GetIndex() < first {
		entries = entries[first-entries[0].GetIndex():]
	}
	start := entries[0].GetIndex()
	if start > st.lastIndex+1 {
		return fmt.Errorf("engine: range %d: appending at %d leaves a gap after last index %d",
			s.rangeID, start, st.lastIndex)
	}
	for _, e := range entries {
		if err := b.setRaftEntry(s.rangeID, e); err != nil {
			return b.fail(err)
		}
	}
	if st.lastIndex > last {
		if err := b.deleteRaftEntries(s.rangeID, last+1, st.lastIndex+1); err != nil {
			return b.fail(err)
		}
	}
	if start <= st.lastIndex {
		s.mu.minChanged = min(s.mu.minChanged, start)
	}
	st.lastIndex, st.lastTerm, st.lastTermOK = last, entries[len(entries)-1].GetTerm(), true
	s.mu.stagedAppends = append(s.mu.stagedAppends, entries)
	return nil
}

// SetHardState stages saving the raft HardState.
func (s *RaftStorage) SetHardState(b *Batch, hs *pb.HardState) error {
	if hs == nil {
		return errors.New("engine: nil HardState")
	}
	v, err := proto.Marshal(hs)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.stageLocked(b)
	if err != nil {
		return err
	}
	if err := b.Set(RaftHardStateKey(s.rangeID), v); err != nil {
		return b.fail(err)
	}
	st.hardState = proto.Clone(hs).(*pb.HardState)
	return nil
}

// SetConfState stages recording cs as the range's configuration as of the
// applied index. The state machine calls it in the batch that advances the
// applied index past a configuration change, so that InitialState returns
// the configuration that matches the applied state after a restart. It is an
// error for appliedIndex to be older than the configuration recorded.
func (s *RaftStorage) SetConfState(b *Batch, appliedIndex uint64, cs *pb.ConfState) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.stageLocked(b)
	if err != nil {
		return err
	}
	if appliedIndex < st.confIndex {
		return fmt.Errorf("engine: range %d: configuration as of %d is older than the one recorded at %d",
			s.rangeID, appliedIndex, st.confIndex)
	}
	return s.setConfStateLocked(b, st, appliedIndex, cs)
}

func (s *RaftStorage) setConfStateLocked(b *Batch, st *logState, index uint64, cs *pb.ConfState) error {
	cs = pb.EnsureConfState(proto.Clone(cs).(*pb.ConfState))
	enc, err := proto.Marshal(cs)
	if err != nil {
		return err
	}
	v := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(enc)), index)
	if err := b.Set(RangeConfStateKey(s.rangeID), append(v, enc...)); err != nil {
		return b.fail(err)
	}
	st.confIndex, st.confState = index, cs
	return nil
}

// stagedTermLocked returns the term of entry i of the staged log, which
// must hold it (truncIndex <= i <= lastIndex). It may release s.mu while
// reading from the engine.
func (s *RaftStorage) stagedTermLocked(st *logState, i uint64) (uint64, error) {
	switch {
	case i == st.truncIndex:
		return st.truncTerm, nil
	case i == st.lastIndex && st.lastTermOK:
		return st.lastTerm, nil
	}
	for j := len(s.mu.stagedAppends) - 1; j >= 0; j-- {
		ents := s.mu.stagedAppends[j]
		if first := ents[0].GetIndex(); i >= first && i < first+uint64(len(ents)) {
			return ents[i-first].GetTerm(), nil
		}
	}
	// Not written by this batch, so the committed entry stands: i lies
	// below every staged append and within the visible log, which cannot
	// change meanwhile (this goroutine is the only writer). Read it without
	// holding s.mu, so readers are not held up by the I/O.
	s.mu.Unlock()
	term, err := s.Term(i)
	s.mu.Lock()
	if err == nil && s.mu.err != nil {
		err = s.mu.err // closed meanwhile
	}
	return term, err
}

// Compact stages removing the entries up to and including index from the
// front of the log (raft log truncation). The term of index is kept: Term
// answers for FirstIndex()-1. It returns raft.ErrCompacted if index is
// already truncated and an error if index is beyond LastIndex(). It is the
// caller's job not to truncate what the applied state, a follower or a
// snapshot in flight still needs.
func (s *RaftStorage) Compact(b *Batch, index uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.stageLocked(b)
	if err != nil {
		return err
	}
	if index <= st.truncIndex {
		return raft.ErrCompacted
	}
	if index > st.lastIndex {
		return fmt.Errorf("engine: range %d: compacting to %d beyond last index %d",
			s.rangeID, index, st.lastIndex)
	}
	term, err := s.stagedTermLocked(st, index)
	if err != nil {
		return err
	}
	if err := b.deleteRaftEntries(s.rangeID, st.truncIndex+1, index+1); err != nil {
		return b.fail(err)
	}
	if err := b.Set(RaftTruncatedStateKey(s.rangeID), encodeTruncatedState(index, term)); err != nil {
		return b.fail(err)
	}
	st.truncIndex, st.truncTerm = index, term
	if st.lastIndex == index {
		st.lastTerm, st.lastTermOK = term, true
	}
	s.mu.truncated = true
	return nil
}

func encodeTruncatedState(index, term uint64) []byte {
	v := binary.BigEndian.AppendUint64(make([]byte, 0, 16), index)
	return binary.BigEndian.AppendUint64(v, term)
}

// CreateSnapshot stages recording a snapshot at index with configuration cs
// (nil keeps the previous one). Snapshot() returns its metadata afterwards.
// The data is not stored: Flotilla streams it from the state machine when a
// snapshot is sent. It returns raft.ErrSnapOutOfDate if index is not newer
// than the current snapshot, raft.ErrCompacted if it is truncated and an
// error if it is beyond LastIndex().
func (s *RaftStorage) CreateSnapshot(b *Batch, index uint64, cs *pb.ConfState) (*pb.Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.stageLocked(b)
	if err != nil {
		return nil, err
	}
	if index <= st.snapMeta.GetIndex() {
		return nil, raft.ErrSnapOutOfDate
	}
	if index < st.truncIndex {
		return nil, raft.ErrCompacted
	}
	if index > st.lastIndex {
		return nil, fmt.Errorf("engine: range %d: snapshot at %d beyond last index %d",
			s.rangeID, index, st.lastIndex)
	}
	term, err := s.stagedTermLocked(st, index)
	if err != nil {
		return nil, err
	}
	meta := &pb.SnapshotMetadata{Index: new(index), Term: new(term), ConfState: st.snapMeta.GetConfState()}
	if cs != nil {
		meta.ConfState = cs
	}
	meta = pb.EnsureSnapshotMetadata(proto.Clone(meta).(*pb.SnapshotMetadata))
	if err := s.setSnapMetaLocked(b, st, meta); err != nil {
		return nil, err
	}
	if cs != nil && index >= st.confIndex {
		if err := s.setConfStateLocked(b, st, index, cs); err != nil {
			return nil, err
		}
	}
	return &pb.Snapshot{Metadata: proto.Clone(meta).(*pb.SnapshotMetadata)}, nil
}

func (s *RaftStorage) setSnapMetaLocked(b *Batch, st *logState, meta *pb.SnapshotMetadata) error {
	v, err := proto.Marshal(meta)
	if err != nil {
		return err
	}
	if err := b.Set(RaftSnapshotMetaKey(s.rangeID), v); err != nil {
		return b.fail(err)
	}
	st.snapMeta = meta
	return nil
}

// ApplySnapshot stages replacing the log with the snapshot's metadata: the
// log becomes empty, positioned after the snapshot's index and term, and the
// configuration becomes the snapshot's. The snapshot's data is ingested
// separately (Ingester), before this batch commits. It returns
// raft.ErrSnapOutOfDate if the snapshot is not newer than the current one.
func (s *RaftStorage) ApplySnapshot(b *Batch, snap *pb.Snapshot) error {
	meta := pb.EnsureSnapshotMetadata(proto.Clone(snap.GetMetadata()).(*pb.SnapshotMetadata))
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.stageLocked(b)
	if err != nil {
		return err
	}
	if cur := st.snapMeta.GetIndex(); cur != 0 && cur >= meta.GetIndex() {
		return raft.ErrSnapOutOfDate
	}
	if meta.GetIndex() == math.MaxUint64 {
		return fmt.Errorf("engine: range %d: snapshot index %d leaves no room for a log", s.rangeID, meta.GetIndex())
	}
	if err := b.DeleteRange(RaftLogSpan(s.rangeID, 0, 0)); err != nil {
		return b.fail(err)
	}
	index, term := meta.GetIndex(), meta.GetTerm()
	if err := b.Set(RaftTruncatedStateKey(s.rangeID), encodeTruncatedState(index, term)); err != nil {
		return b.fail(err)
	}
	if err := s.setSnapMetaLocked(b, st, meta); err != nil {
		return err
	}
	if err := s.setConfStateLocked(b, st, index, meta.GetConfState()); err != nil {
		return err
	}
	st.truncIndex, st.truncTerm = index, term
	st.lastIndex, st.lastTerm, st.lastTermOK = index, term, true
	s.clearStagedAppendsLocked()
	s.mu.snapshotApplied = true
	return nil
}

// ---- Commit protocol (called by Batch) -----------------------------------

// prepareCommit runs before b is written and says whether it may be: not if
// the storage was closed or has failed since it staged writes in b.
func (s *RaftStorage) prepareCommit(b *Batch) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.pending != b {
		return fmt.Errorf("engine: range %d: batch no longer holds its staged writes", s.rangeID)
	}
	if s.mu.err != nil {
		return fmt.Errorf("engine: batch not committed: %w", s.mu.err)
	}
	s.mu.committing = true
	return nil
}

// cancelCommit undoes prepareCommit when another storage of b refused.
func (s *RaftStorage) cancelCommit(b *Batch) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.pending == b {
		s.mu.committing = false
	}
}

func (s *RaftStorage) clearStagedAppendsLocked() {
	clear(s.mu.stagedAppends)
	s.mu.stagedAppends = s.mu.stagedAppends[:0]
}

// preCommit runs just before b is written. If b removes or replaces
// entries, readers from now on see only the part of the log that is valid
// both before and after the commit, and readers already reading will retry.
func (s *RaftStorage) preCommit(b *Batch) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.pending != b || (s.mu.minChanged == math.MaxUint64 && !s.mu.truncated && !s.mu.snapshotApplied) {
		return
	}
	v, n := &s.mu.visible, &s.mu.staged
	if s.mu.snapshotApplied {
		v.truncIndex, v.truncTerm = n.truncIndex, n.truncTerm
		v.lastIndex, v.lastTerm, v.lastTermOK = n.truncIndex, n.truncTerm, true
		s.e.entryCache.drop(s.rangeID)
	} else {
		if n.truncIndex > v.truncIndex {
			v.truncIndex, v.truncTerm = n.truncIndex, n.truncTerm
		}
		if s.mu.minChanged <= v.lastIndex {
			v.lastIndex, v.lastTermOK = s.mu.minChanged-1, false
		}
		if v.lastIndex <= v.truncIndex {
			v.lastIndex, v.lastTerm, v.lastTermOK = v.truncIndex, v.truncTerm, true
		}
		if s.mu.minChanged != math.MaxUint64 {
			s.e.entryCache.truncateFrom(s.rangeID, s.mu.minChanged)
		}
		s.e.entryCache.truncateTo(s.rangeID, v.truncIndex)
	}
	s.mu.gen++
}

// postCommit runs after b was written (err == nil) or failed to be.
func (s *RaftStorage) postCommit(b *Batch, err error) {
	s.mu.Lock()
	if s.mu.pending != b {
		s.mu.Unlock()
		return
	}
	s.mu.pending, s.mu.committing = nil, false
	closed := s.mu.closed
	switch {
	case err != nil:
		s.mu.err = fmt.Errorf("engine: range %d: raft log commit failed, storage unusable: %w", s.rangeID, err)
	case closed:
		// Closed while committing: what was written is on disk for the next
		// storage of the range to load; this one caches nothing.
	default:
		s.mu.visible = s.mu.staged
		for _, ents := range s.mu.stagedAppends {
			s.e.entryCache.add(s.rangeID, ents)
		}
		if s.mu.truncated || s.mu.snapshotApplied {
			s.e.entryCache.truncateTo(s.rangeID, s.mu.visible.truncIndex)
		}
		if invariants.Enabled {
			s.checkVisibleLocked()
		}
	}
	s.clearStagedAppendsLocked()
	s.mu.Unlock()
	if closed {
		s.e.unregisterStorage(s.rangeID)
	}
}

// abort runs when b's writes are dropped: b is closed without committing, or
// its commit was refused.
func (s *RaftStorage) abort(b *Batch) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.pending == b {
		s.mu.pending, s.mu.committing = nil, false
		s.clearStagedAppendsLocked()
	}
}

// checkVisibleLocked verifies the visible state against the engine. It reads
// the engine under s.mu and runs only under the invariants build tag.
func (s *RaftStorage) checkVisibleLocked() {
	st := s.mu.visible
	if st.lastIndex < st.truncIndex {
		panic(fmt.Sprintf("range %d: last index %d < truncated index %d", s.rangeID, st.lastIndex, st.truncIndex))
	}
	if st.lastIndex > st.truncIndex {
		if _, err := s.e.Get(RaftLogKey(s.rangeID, st.lastIndex)); err != nil {
			panic(fmt.Sprintf("range %d: last entry %d missing: %v", s.rangeID, st.lastIndex, err))
		}
	}
	if _, err := s.e.Get(RaftLogKey(s.rangeID, st.lastIndex+1)); !errors.Is(err, ErrNotFound) {
		panic(fmt.Sprintf("range %d: entry %d after last index exists (%v)", s.rangeID, st.lastIndex+1, err))
	}
}

// ---- Batch helpers for the raft log --------------------------------------

// setRaftEntry encodes e straight into the batch, without an intermediate
// buffer.
func (b *Batch) setRaftEntry(rangeID RangeID, e *pb.Entry) error {
	size := proto.Size(e)
	b.bufs.scratch = AppendRaftLogKey(b.bufs.scratch[:0], rangeID, e.GetIndex())
	op := b.b.SetDeferred(len(b.bufs.scratch), size)
	copy(op.Key, b.bufs.scratch)
	out, err := proto.MarshalOptions{}.MarshalAppend(op.Value[:0:size], e)
	if err != nil {
		return err
	}
	if len(out) != size || (size > 0 && &out[0] != &op.Value[0]) {
		// The entry changed while being encoded: raft entries are immutable.
		panic(fmt.Sprintf("engine: raft entry %d changed size while encoded (%d != %d)", e.GetIndex(), len(out), size))
	}
	return op.Finish()
}

// deleteRaftEntries removes rangeID's entries with index in [lo, hi).
func (b *Batch) deleteRaftEntries(rangeID RangeID, lo, hi uint64) error {
	if hi <= lo {
		return nil
	}
	if hi-lo > pointDeleteLimit {
		return b.DeleteRange(RaftLogSpan(rangeID, lo, hi))
	}
	for i := lo; i < hi; i++ {
		b.bufs.scratch = AppendRaftLogKey(b.bufs.scratch[:0], rangeID, i)
		if err := b.b.Delete(b.bufs.scratch, nil); err != nil {
			return err
		}
	}
	return nil
}
