// Copyright 2026 The Flotilla Authors. All rights reserved.

package engine

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

func openStorage(t testing.TB, e *Engine, id RangeID) *RaftStorage {
	t.Helper()
	s, err := e.OpenRaftStorage(id)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func entry(index, term uint64, data []byte) *pb.Entry {
	return &pb.Entry{Index: new(index), Term: new(term), Type: pb.EntryNormal.Enum(), Data: data}
}

// modelRange is one range under test: our storage and the reference.
type modelRange struct {
	id      RangeID
	mem     *raft.MemoryStorage
	s       *RaftStorage
	maxTerm uint64
}

// sameErr reports whether two errors are the same outcome: both nil, or both
// the same raft sentinel.
func sameErr(a, b error) bool {
	if a == nil || b == nil {
		return a == b
	}
	for _, sentinel := range []error{raft.ErrCompacted, raft.ErrUnavailable, raft.ErrSnapOutOfDate} {
		if errors.Is(a, sentinel) || errors.Is(b, sentinel) {
			return errors.Is(a, sentinel) && errors.Is(b, sentinel)
		}
	}
	return false
}

func normConfState(cs *pb.ConfState) *pb.ConfState {
	return pb.EnsureConfState(proto.Clone(cs).(*pb.ConfState))
}

func normSnapshot(s *pb.Snapshot) *pb.Snapshot {
	s = pb.EnsureSnapshot(proto.Clone(s).(*pb.Snapshot))
	s.Metadata.ConfState = normConfState(s.Metadata.ConfState)
	return s
}

// compareStorage checks that every raft.Storage method of got answers as
// want does, for every index around the log and random Entries calls.
func compareStorage(t *testing.T, rng *rand.Rand, step int, m *modelRange) {
	t.Helper()
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("step %d, range %d: %s", step, m.id, fmt.Sprintf(format, args...))
	}
	wantHS, wantCS, _ := m.mem.InitialState()
	gotHS, gotCS, err := m.s.InitialState()
	if err != nil {
		fail("InitialState: %v", err)
	}
	if (wantHS == nil) != (gotHS == nil) || (wantHS != nil && !proto.Equal(wantHS, gotHS)) {
		fail("HardState = %v, want %v", gotHS, wantHS)
	}
	if !proto.Equal(normConfState(wantCS), normConfState(gotCS)) {
		fail("ConfState = %v, want %v", gotCS, wantCS)
	}
	wantFirst, _ := m.mem.FirstIndex()
	wantLast, _ := m.mem.LastIndex()
	gotFirst, err1 := m.s.FirstIndex()
	gotLast, err2 := m.s.LastIndex()
	if gotFirst != wantFirst || gotLast != wantLast || err1 != nil || err2 != nil {
		fail("first, last = %d, %d (%v, %v); want %d, %d", gotFirst, gotLast, err1, err2, wantFirst, wantLast)
	}
	for i := max(wantFirst, 3) - 3; i <= wantLast+2; i++ {
		wt, werr := m.mem.Term(i)
		gt, gerr := m.s.Term(i)
		if wt != gt || !sameErr(werr, gerr) {
			fail("Term(%d) = %d, %v; want %d, %v", i, gt, gerr, wt, werr)
		}
	}
	wantSnap, _ := m.mem.Snapshot()
	gotSnap, err := m.s.Snapshot()
	if err != nil || !proto.Equal(normSnapshot(wantSnap), normSnapshot(gotSnap)) {
		fail("Snapshot = %v, %v; want %v", gotSnap, err, wantSnap)
	}
	for range 8 {
		lo := wantFirst - 1 + rng.Uint64N(wantLast-wantFirst+3)
		if lo == 0 {
			lo = 1
		}
		if lo > wantLast+1 {
			lo = wantLast + 1
		}
		hi := lo + rng.Uint64N(wantLast+2-lo)
		maxSize := []uint64{0, 1, 200, 1000, math.MaxUint64}[rng.IntN(5)]
		we, werr := m.mem.Entries(lo, hi, maxSize)
		ge, gerr := m.s.Entries(lo, hi, maxSize)
		if !sameErr(werr, gerr) {
			fail("Entries(%d, %d, %d) error = %v, want %v", lo, hi, maxSize, gerr, werr)
		}
		if len(we) != len(ge) {
			fail("Entries(%d, %d, %d) returned %d entries, want %d", lo, hi, maxSize, len(ge), len(we))
		}
		for i := range we {
			if !proto.Equal(we[i], ge[i]) {
				fail("Entries(%d, %d, %d)[%d] = %v, want %v", lo, hi, maxSize, i, ge[i], we[i])
			}
		}
	}
}

// randomOp stages one random operation on m in b and, unless dryRun, applies
// it to the reference, checking both agree on the outcome. Operations the
// reference would panic on are not generated (their errors are tested
// elsewhere).
func randomOp(t *testing.T, rng *rand.Rand, step int, b *Batch, m *modelRange, dryRun bool) string {
	t.Helper()
	first, _ := m.mem.FirstIndex()
	last, _ := m.mem.LastIndex()
	snap, _ := m.mem.Snapshot()
	snapIndex := snap.GetMetadata().GetIndex()
	check := func(op string, want func() error, got error) string {
		t.Helper()
		if dryRun {
			return op
		}
		if w := want(); !sameErr(w, got) {
			t.Fatalf("step %d, range %d: %s: error %v, want %v", step, m.id, op, got, w)
		}
		return op
	}
	randConfState := func() *pb.ConfState {
		if rng.IntN(3) == 0 {
			return nil
		}
		return &pb.ConfState{Voters: []uint64{1, 2, uint64(3 + rng.IntN(3))}, Learners: []uint64{uint64(10 + rng.IntN(2))}}
	}
	switch p := rng.IntN(20); {
	case p < 11: // append, maybe overwriting a suffix, maybe partly compacted
		start := max(first, 3) - 2 + rng.Uint64N(last+4-max(first, 3))
		if start == 0 {
			start = 1
		}
		n := 1 + rng.IntN(6)
		if rng.IntN(3) == 0 {
			m.maxTerm++
		}
		var ents []*pb.Entry
		for i := range n {
			data := make([]byte, rng.IntN(300))
			for j := range data {
				data[j] = byte(rng.IntN(256))
			}
			ents = append(ents, entry(start+uint64(i), m.maxTerm, data))
		}
		return check(fmt.Sprintf("Append[%d..%d]", start, start+uint64(n)-1),
			func() error { return m.mem.Append(ents) }, m.s.Append(b, ents))
	case p < 14:
		hs := &pb.HardState{Term: new(m.maxTerm), Vote: new(uint64(rng.IntN(4))), Commit: new(rng.Uint64N(last + 1))}
		return check("SetHardState", func() error { return m.mem.SetHardState(hs) }, m.s.SetHardState(b, hs))
	case p < 16:
		i := first - 1 + rng.Uint64N(last-first+2)
		return check(fmt.Sprintf("Compact(%d)", i), func() error { return m.mem.Compact(i) }, m.s.Compact(b, i))
	case p < 18:
		i := first - 1 + rng.Uint64N(last-first+2)
		cs := randConfState()
		_, err := m.s.CreateSnapshot(b, i, cs)
		return check(fmt.Sprintf("CreateSnapshot(%d)", i), func() error {
			_, err := m.mem.CreateSnapshot(i, cs, nil)
			return err
		}, err)
	default:
		base := max(snapIndex, 2) - 2 // the snapshot index may lie beyond last
		index := base + rng.Uint64N(max(last+8, base+10)-base)
		if rng.IntN(4) == 0 {
			m.maxTerm++
		}
		s := &pb.Snapshot{Metadata: &pb.SnapshotMetadata{Index: new(index), Term: new(m.maxTerm), ConfState: randConfState()}}
		return check(fmt.Sprintf("ApplySnapshot(%d)", index),
			func() error { return m.mem.ApplySnapshot(s) }, m.s.ApplySnapshot(b, s))
	}
}

// TestRaftStorageDifferential applies the same random sequence of appends,
// truncations, hard states and snapshots to RaftStorage and to
// raft.MemoryStorage and checks that every raft.Storage method answers the
// same. Two ranges share each batch, batches are sometimes abandoned, and the
// engine is sometimes closed and reopened, so what is answered is what was
// persisted. Entry cache sizes cover disabled, tiny (constant eviction) and
// ample.
func TestRaftStorageDifferential(t *testing.T) {
	for _, cacheSize := range []int64{-1, 2 << 10, DefaultRaftEntryCacheSize} {
		t.Run(fmt.Sprintf("cache=%d", cacheSize), func(t *testing.T) {
			rng := newRand(t)
			fs := vfs.NewMem()
			open := func() *Engine {
				e, err := Open(Options{Dir: "store", FS: fs, CacheSize: 1 << 20, MemTableSize: 1 << 20,
					RaftEntryCacheSize: cacheSize, Logger: quietLogger})
				if err != nil {
					t.Fatal(err)
				}
				return e
			}
			e := open()
			defer func() { _ = e.Close() }()
			ranges := []*modelRange{
				{id: 1, mem: raft.NewMemoryStorage(), s: openStorage(t, e, 1), maxTerm: 1},
				{id: 2, mem: raft.NewMemoryStorage(), s: openStorage(t, e, 2), maxTerm: 1},
			}
			steps := 1500
			if testing.Short() {
				steps = 300
			}
			for step := range steps {
				switch r := rng.IntN(40); {
				case r == 0: // reopen: answers must come from disk
					for _, m := range ranges {
						m.s.Close()
					}
					if err := e.Close(); err != nil {
						t.Fatal(err)
					}
					e = open()
					for _, m := range ranges {
						m.s = openStorage(t, e, m.id)
					}
				case r == 1: // an abandoned batch changes nothing
					b := e.NewBatch()
					for range 1 + rng.IntN(4) {
						randomOp(t, rng, step, b, ranges[rng.IntN(2)], true)
					}
					b.Close()
				default:
					b := e.NewBatch()
					for range 1 + rng.IntN(4) {
						randomOp(t, rng, step, b, ranges[rng.IntN(2)], false)
					}
					mustCommit(t, b, rng.IntN(2) == 0)
				}
				for _, m := range ranges {
					compareStorage(t, rng, step, m)
				}
			}
		})
	}
}

func TestRaftStorageBadInput(t *testing.T) {
	e := openMem(t, nil)
	s := openStorage(t, e, 1)
	defer s.Close()
	if _, err := e.OpenRaftStorage(1); !errors.Is(err, ErrStorageOpen) {
		t.Fatalf("second open: %v", err)
	}
	if _, err := e.OpenRaftStorage(0); err == nil {
		t.Fatal("range 0 accepted")
	}
	b := e.NewBatch()
	if err := s.Append(b, []*pb.Entry{entry(1, 1, nil), entry(2, 1, nil)}); err != nil {
		t.Fatal(err)
	}
	mustCommit(t, b, true)

	b = e.NewBatch()
	defer b.Close()
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"gap", s.Append(b, []*pb.Entry{entry(5, 1, nil)})},
		{"not contiguous", s.Append(b, []*pb.Entry{entry(3, 1, nil), entry(5, 1, nil)})},
		{"compact beyond last", s.Compact(b, 3)},
	} {
		if tc.err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
	if _, err := s.CreateSnapshot(b, 9, nil); err == nil {
		t.Error("snapshot beyond last index: no error")
	}
	if _, err := s.Entries(1, 9, math.MaxUint64); err == nil {
		t.Error("Entries beyond last index: no error")
	}
	if _, err := s.Entries(2, 1, math.MaxUint64); err == nil {
		t.Error("Entries with lo > hi: no error")
	}
	// A storage writes through one batch at a time.
	b2 := e.NewBatch()
	defer b2.Close()
	if err := s.SetHardState(b2, &pb.HardState{}); !errors.Is(err, ErrPendingBatch) {
		t.Errorf("second batch: %v", err)
	}
	// Rejected writes left the log alone.
	b.Close()
	if last, _ := s.LastIndex(); last != 2 {
		t.Fatalf("last index %d after rejected writes", last)
	}
}

// TestRaftStorageReopenRealDir persists a log with a truncation, a conflict
// and a hard state through a real directory and reads it back.
func TestRaftStorageReopenRealDir(t *testing.T) {
	dir := t.TempDir()
	opts := Options{Dir: dir, CacheSize: 1 << 20, MemTableSize: 1 << 20, Logger: quietLogger}
	e, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	s := openStorage(t, e, 7)
	b := e.NewBatch()
	var ents []*pb.Entry
	for i := uint64(1); i <= 100; i++ {
		ents = append(ents, entry(i, 1, []byte(fmt.Sprint(i))))
	}
	_ = s.Append(b, ents)
	_ = s.Append(b, []*pb.Entry{entry(90, 2, []byte("new")), entry(91, 2, []byte("new"))}) // conflict
	hs := &pb.HardState{Term: new(uint64(2)), Vote: new(uint64(3)), Commit: new(uint64(80))}
	_ = s.SetHardState(b, hs)
	mustCommit(t, b, true)
	b = e.NewBatch()
	if err := s.Compact(b, 10); err != nil {
		t.Fatal(err)
	}
	mustCommit(t, b, true)
	s.Close()
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}

	e, err = Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	s = openStorage(t, e, 7)
	defer s.Close()
	first, _ := s.FirstIndex()
	last, _ := s.LastIndex()
	if first != 11 || last != 91 {
		t.Fatalf("first, last = %d, %d; want 11, 91", first, last)
	}
	if term, err := s.Term(10); err != nil || term != 1 {
		t.Fatalf("Term(10) = %d, %v", term, err)
	}
	if term, err := s.Term(91); err != nil || term != 2 {
		t.Fatalf("Term(91) = %d, %v", term, err)
	}
	gotHS, _, _ := s.InitialState()
	if !proto.Equal(gotHS, hs) {
		t.Fatalf("HardState = %v, want %v", gotHS, hs)
	}
	got, err := s.Entries(11, 92, math.MaxUint64)
	if err != nil || len(got) != 81 || string(got[80].GetData()) != "new" || string(got[0].GetData()) != "11" {
		t.Fatalf("Entries after reopen: %d entries, %v", len(got), err)
	}
}

// TestRaftStorageCrash appends to several ranges in shared synced batches,
// then in an unsynced one, and crashes. The synced appends and hard states
// survive; the unsynced batch is there entirely or not at all.
func TestRaftStorageCrash(t *testing.T) {
	rng := newRand(t)
	for iter := range 20 {
		fs := vfs.NewCrashableMem()
		opts := Options{Dir: "store", FS: fs, CacheSize: 1 << 20, MemTableSize: 1 << 20, Logger: quietLogger}
		e, err := Open(opts)
		if err != nil {
			t.Fatal(err)
		}
		const numRanges = 8
		storages := make([]*RaftStorage, numRanges)
		for i := range storages {
			storages[i] = openStorage(t, e, RangeID(i+1))
		}
		var next uint64 = 1
		for range 5 {
			b := e.NewBatch()
			for _, s := range storages {
				_ = s.Append(b, []*pb.Entry{entry(next, 1, []byte("synced"))})
				_ = s.SetHardState(b, &pb.HardState{Term: new(uint64(1)), Commit: new(next)})
			}
			mustCommit(t, b, true)
			next++
		}
		synced := next - 1
		b := e.NewBatch()
		for _, s := range storages {
			_ = s.Append(b, []*pb.Entry{entry(next, 1, []byte("unsynced")), entry(next+1, 1, []byte("unsynced"))})
			_ = s.SetHardState(b, &pb.HardState{Term: new(uint64(1)), Commit: new(next + 1)})
		}
		mustCommit(t, b, false)

		crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: rng.IntN(101), RNG: rng})
		for _, s := range storages {
			s.Close()
		}
		_ = e.Close()
		opts.FS = crashed
		e, err = Open(opts)
		if err != nil {
			t.Fatalf("iteration %d: reopen: %v", iter, err)
		}
		var lasts []uint64
		for i := range numRanges {
			s := openStorage(t, e, RangeID(i+1))
			last, _ := s.LastIndex()
			hs, _, _ := s.InitialState()
			if last < synced || hs.GetCommit() < synced {
				t.Fatalf("iteration %d: range %d lost synced data: last %d, commit %d, synced %d",
					iter, i+1, last, hs.GetCommit(), synced)
			}
			if hs.GetCommit() != last {
				t.Fatalf("iteration %d: range %d: HardState and log from different batches (%d vs %d)",
					iter, i+1, hs.GetCommit(), last)
			}
			ents, err := s.Entries(1, last+1, math.MaxUint64)
			if err != nil || uint64(len(ents)) != last {
				t.Fatalf("iteration %d: range %d: entries: %d, %v", iter, i+1, len(ents), err)
			}
			lasts = append(lasts, last)
			s.Close()
		}
		for _, l := range lasts {
			if l != lasts[0] {
				t.Fatalf("iteration %d: unsynced batch partially applied across ranges: %v", iter, lasts)
			}
		}
		_ = e.Close()
	}
}

// TestRaftStorageConcurrentReaders runs readers against a writer that
// appends, overwrites suffixes, truncates and applies snapshots. Readers must
// only ever see a log that existed: contiguous entries whose contents match
// their index and term, terms never decreasing, and no error but
// raft.ErrCompacted, raft.ErrUnavailable past the end, or a request beyond a
// log that has just shrunk.
func TestRaftStorageConcurrentReaders(t *testing.T) {
	rng := newRand(t)
	e := openMem(t, nil, func(o *Options) { o.RaftEntryCacheSize = 4 << 10 })
	s := openStorage(t, e, 1)
	defer s.Close()
	data := func(index, term uint64) []byte { return []byte(fmt.Sprintf("i=%d,t=%d", index, term)) }

	done := make(chan struct{})
	errc := make(chan error, 4)
	reader := func(seed uint64) {
		r := rand.New(rand.NewPCG(seed, seed))
		for {
			select {
			case <-done:
				errc <- nil
				return
			default:
			}
			first, _ := s.FirstIndex()
			last, _ := s.LastIndex()
			if last < first {
				continue
			}
			lo := first + r.Uint64N(last-first+1)
			hi := lo + r.Uint64N(last+2-lo)
			ents, err := s.Entries(lo, hi, []uint64{64, 512, math.MaxUint64}[r.IntN(3)])
			switch {
			case err == nil:
				var prevTerm uint64
				for i, en := range ents {
					if en.GetIndex() != lo+uint64(i) || string(en.GetData()) != string(data(en.GetIndex(), en.GetTerm())) {
						errc <- fmt.Errorf("Entries(%d, %d)[%d] = %v: not a written entry", lo, hi, i, en)
						return
					}
					if en.GetTerm() < prevTerm {
						errc <- fmt.Errorf("Entries(%d, %d): term goes down at %d: a mixed log", lo, hi, en.GetIndex())
						return
					}
					prevTerm = en.GetTerm()
				}
				if hi > lo && len(ents) == 0 {
					errc <- fmt.Errorf("Entries(%d, %d) returned nothing", lo, hi)
					return
				}
			case errors.Is(err, raft.ErrCompacted), errors.Is(err, raft.ErrUnavailable):
			case errors.Is(err, ErrLogCorrupt):
				errc <- fmt.Errorf("Entries(%d, %d): %v", lo, hi, err)
				return
			default: // the log shrank below hi since LastIndex: fine
			}
			if _, err := s.Term(lo); err != nil && !errors.Is(err, raft.ErrCompacted) && !errors.Is(err, raft.ErrUnavailable) {
				errc <- fmt.Errorf("Term(%d): %v", lo, err)
				return
			}
		}
	}
	for i := range 3 {
		go reader(rng.Uint64() + uint64(i))
	}

	var term uint64 = 1
	for step := range 600 {
		first, _ := s.FirstIndex()
		last, _ := s.LastIndex()
		b := e.NewBatch()
		var err error
		switch p := rng.IntN(20); {
		case p < 14:
			start := last + 1
			if rng.IntN(4) == 0 && last >= first {
				start = first + rng.Uint64N(last-first+1) // overwrite a suffix
				term++
			}
			var ents []*pb.Entry
			for i := range uint64(1 + rng.IntN(8)) {
				ents = append(ents, entry(start+i, term, data(start+i, term)))
			}
			err = s.Append(b, ents)
		case p < 19:
			if last > first+4 {
				err = s.Compact(b, first+rng.Uint64N(last-first-3))
			}
		default:
			term++
			err = s.ApplySnapshot(b, &pb.Snapshot{Metadata: &pb.SnapshotMetadata{Index: new(last + 3), Term: new(term)}})
		}
		if err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		mustCommit(t, b, false)
	}
	close(done)
	for range 3 {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
}

// TestRaftStorageClosedWithPendingBatch: a batch holding writes of a storage
// closed since refuses to commit, writes nothing, and a storage opened again
// for the range sees the log as it was.
func TestRaftStorageClosedWithPendingBatch(t *testing.T) {
	e := openMem(t, nil)
	s := openStorage(t, e, 1)
	other := openStorage(t, e, 2)
	defer other.Close()
	b := e.NewBatch()
	_ = s.Append(b, []*pb.Entry{entry(1, 1, nil), entry(2, 1, nil)})
	_ = other.Append(b, []*pb.Entry{entry(1, 1, nil)})
	s.Close()
	s2 := openStorage(t, e, 1)
	defer s2.Close()
	if err := b.Commit(true); err == nil {
		t.Fatal("batch of a closed storage committed")
	}
	b.Close()
	if last, _ := s2.LastIndex(); last != 0 {
		t.Fatalf("refused batch changed range 1: last index %d", last)
	}
	if last, _ := other.LastIndex(); last != 0 {
		t.Fatalf("refused batch changed range 2: last index %d", last)
	}
	// Both storages work normally afterwards.
	b = e.NewBatch()
	if err := s2.Append(b, []*pb.Entry{entry(1, 2, nil)}); err != nil {
		t.Fatal(err)
	}
	if err := other.Append(b, []*pb.Entry{entry(1, 2, nil)}); err != nil {
		t.Fatal(err)
	}
	mustCommit(t, b, true)
	if term, err := s2.Term(1); err != nil || term != 2 {
		t.Fatalf("Term(1) = %d, %v", term, err)
	}
}

// TestBatchPoisoned: a batch in which a staged write failed part-way
// refuses to commit.
func TestBatchPoisoned(t *testing.T) {
	e := openMem(t, nil)
	s := openStorage(t, e, 1)
	defer s.Close()
	b := e.NewBatch()
	_ = s.Append(b, []*pb.Entry{entry(1, 1, nil)})
	_ = b.fail(errors.New("injected"))
	if err := b.Commit(true); err == nil {
		t.Fatal("poisoned batch committed")
	}
	b.Close()
	if last, _ := s.LastIndex(); last != 0 {
		t.Fatalf("poisoned batch changed the log: last %d", last)
	}
	b = e.NewBatch() // the storage is free for the next batch
	_ = s.Append(b, []*pb.Entry{entry(1, 1, nil)})
	mustCommit(t, b, true)
}

func TestRaftStorageStateBadInput(t *testing.T) {
	e := openMem(t, nil)
	s := openStorage(t, e, 1)
	defer s.Close()
	b := e.NewBatch()
	defer b.Close()
	if err := s.SetHardState(b, nil); err == nil {
		t.Error("nil HardState accepted")
	}
	if err := s.SetConfState(b, 10, &pb.ConfState{Voters: []uint64{1}}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetConfState(b, 9, &pb.ConfState{Voters: []uint64{2}}); err == nil {
		t.Error("configuration moved backwards")
	}
	snap := &pb.Snapshot{Metadata: &pb.SnapshotMetadata{Index: new(uint64(math.MaxUint64)), Term: new(uint64(1))}}
	if err := s.ApplySnapshot(b, snap); err == nil {
		t.Error("snapshot at the last possible index accepted")
	}
}
