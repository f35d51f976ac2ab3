// Copyright 2026 The Flotilla Authors. All rights reserved.

package shard

import (
	"errors"
	"maps"
	"testing"

	"github.com/flotilladb/flotilla/engine"
	"github.com/flotilladb/flotilla/internal/testutil"
	"github.com/flotilladb/flotilla/multiraft"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// applyHarness is one replica over an in-memory engine, driven by hand: the
// test plays multiraft, committing each Apply's batch.
type applyHarness struct {
	t     *testing.T
	eng   *engine.Engine
	store *Store
	r     *Replica
	index uint64
}

func testDesc(id multiraft.GroupID, start, end string) *flotillapb.RangeDescriptor {
	d := &flotillapb.RangeDescriptor{RangeId: uint64(id), Epoch: &flotillapb.RangeEpoch{Version: 1}}
	if start != "" {
		d.StartKey = []byte(start)
	}
	if end != "" {
		d.EndKey = []byte(end)
	}
	for n := multiraft.NodeID(1); n <= 3; n++ {
		rid := multiraft.MakeReplicaID(n, 1)
		d.Replicas = append(d.Replicas, &flotillapb.ReplicaDescriptor{StoreId: uint64(n), ReplicaId: uint64(rid)})
	}
	return d
}

func newApplyHarness(t *testing.T, desc *flotillapb.RangeDescriptor) *applyHarness {
	t.Helper()
	eng := openTestEngine(t)
	b := eng.NewBatch()
	defer b.Close()
	if err := WriteInitialState(b, desc); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	s, err := NewStore(Config{Engine: eng, Logger: quietLogger, Revisions: &testutil.Revisions{}})
	if err != nil {
		t.Fatal(err)
	}
	sm, err := s.NewStateMachine(multiraft.GroupID(desc.GetRangeId()))
	if err != nil {
		t.Fatal(err)
	}
	return &applyHarness{t: t, eng: eng, store: s, r: sm.(*Replica), index: 10}
}

func (h *applyHarness) kv(version uint64, ops ...*flotillapb.Op) multiraft.Command {
	h.t.Helper()
	h.index++
	// The index is a revision above every earlier one.
	data, err := proto.Marshal(&flotillapb.KVCommand{RangeId: uint64(h.r.id), Version: version, Ops: ops, Revision: int64(h.index), RequestTerm: 1})
	if err != nil {
		h.t.Fatal(err)
	}
	return multiraft.Command{Index: h.index, Term: 1, Kind: multiraft.CommandNormal, Data: data}
}

func (h *applyHarness) apply(cmds ...multiraft.Command) []multiraft.Result {
	h.t.Helper()
	b := h.eng.NewBatch()
	defer b.Close()
	res, err := h.r.Apply(b, cmds)
	if err != nil {
		h.t.Fatal(err)
	}
	if len(res) != len(cmds) {
		h.t.Fatalf("%d results for %d commands", len(res), len(cmds))
	}
	if err := b.Commit(false); err != nil {
		h.t.Fatal(err)
	}
	return res
}

// results decodes a successful command's op results.
func (h *applyHarness) results(r multiraft.Result, index uint64) []*flotillapb.OpResult {
	h.t.Helper()
	if r.Err != nil {
		h.t.Fatalf("command rejected: %v", r.Err)
	}
	kv, idx, err := decodeResult(r.Value)
	if err != nil || kv.GetError() != nil || idx != index {
		h.t.Fatalf("result %v at index %d (want %d): %v", kv, idx, index, err)
	}
	return kv.GetResults()
}

// checkStats compares the cached, stored and actual statistics with want.
func (h *applyHarness) checkStats(want map[string]string) {
	h.t.Helper()
	var ws rangeStats
	for k, v := range want {
		ws.keys, ws.keyBytes, ws.valueBytes = ws.keys+1, ws.keyBytes+int64(len(k)), ws.valueBytes+int64(len(v))
	}
	desc, stored, _, err := loadState(h.eng, h.r.id)
	if err != nil {
		h.t.Fatal(err)
	}
	actual, err := computeStats(h.eng, desc)
	if err != nil {
		h.t.Fatal(err)
	}
	st := h.r.Stats()
	cached := rangeStats{st.Keys, st.KeyBytes, st.ValueBytes}
	if stored != ws || actual != ws || cached != ws {
		h.t.Fatalf("stats: stored %+v, actual %+v, cached %+v; want %+v", stored, actual, cached, ws)
	}
	if got := userData(h.t, h.eng); !maps.Equal(got, want) {
		h.t.Fatalf("data %v, want %v", sortedPairs(got), sortedPairs(want))
	}
}

func put(k, v string) *flotillapb.Op {
	return &flotillapb.Op{Op: &flotillapb.Op_Put{Put: &flotillapb.PutOp{Key: []byte(k), Value: []byte(v)}}}
}

func del(k string) *flotillapb.Op {
	return &flotillapb.Op{Op: &flotillapb.Op_Delete{Delete: &flotillapb.DeleteOp{Key: []byte(k)}}}
}

func delRange(start, end string) *flotillapb.Op {
	return &flotillapb.Op{Op: &flotillapb.Op_DeleteRange{DeleteRange: &flotillapb.DeleteRangeOp{StartKey: []byte(start), EndKey: []byte(end)}}}
}

func cas(k, expected string, absent bool, v string) *flotillapb.Op {
	return &flotillapb.Op{Op: &flotillapb.Op_Cas{Cas: &flotillapb.CompareAndSwapOp{Key: []byte(k), Expected: []byte(expected), ExpectAbsent: absent, Value: []byte(v)}}}
}

// TestApplySeesEarlierCommands: later commands of one Apply call see the
// writes of earlier ones, through puts, deletes and delete-ranges, and the
// statistics follow.
func TestApplySeesEarlierCommands(t *testing.T) {
	h := newApplyHarness(t, testDesc(7, "", ""))
	res := h.apply(h.kv(1, put("a", "1"), put("b", "2"), put("c", "3")))
	h.results(res[0], 11)
	h.checkStats(map[string]string{"a": "1", "b": "2", "c": "3"})

	cmds := []multiraft.Command{
		h.kv(1, put("a", "10")),              // 12
		h.kv(1, cas("a", "10", false, "11")), // 13: sees the put above
		h.kv(1, cas("a", "10", false, "12")), // 14: fails, a is 11
		h.kv(1, delRange("a", "c")),          // 15: a and b
		h.kv(1, cas("b", "", true, "new")),   // 16: b is gone
		h.kv(1, del("c")),                    // 17
		h.kv(1, del("c")),                    // 18: already gone
		h.kv(1, cas("c", "", true, "x"), put("d", "4"), cas("d", "4", false, "5")), // 19
	}
	res = h.apply(cmds...)
	r13 := h.results(res[1], 13)[0]
	r14 := h.results(res[2], 14)[0]
	r15 := h.results(res[3], 15)[0]
	r16 := h.results(res[4], 16)[0]
	r17 := h.results(res[5], 17)[0]
	r18 := h.results(res[6], 18)[0]
	r19 := h.results(res[7], 19)
	switch {
	case !r13.GetSwapped():
		t.Fatalf("cas after put in the same apply did not swap: %v", r13)
	case r14.GetSwapped() || !r14.GetFound() || string(r14.GetCurrent()) != "11":
		t.Fatalf("stale cas: %v", r14)
	case r15.GetDeleted() != 2:
		t.Fatalf("delete-range deleted %d, want 2", r15.GetDeleted())
	case !r16.GetSwapped():
		t.Fatalf("cas expect-absent after delete-range: %v", r16)
	case !r17.GetFound() || r18.GetFound():
		t.Fatalf("deletes: %v, %v", r17, r18)
	case !r19[0].GetSwapped() || !r19[2].GetSwapped():
		t.Fatalf("batch: %v", r19)
	}
	h.checkStats(map[string]string{"b": "new", "c": "x", "d": "5"})

	// A delete-range over keys both in the engine and rewritten in this
	// call counts each once.
	res = h.apply(h.kv(1, put("b", "longer value")), h.kv(1, put("e", "5")), h.kv(1, delRange("", "")))
	if got := h.results(res[2], 22)[0].GetDeleted(); got != 4 {
		t.Fatalf("delete-range of everything deleted %d, want 4", got)
	}
	h.checkStats(map[string]string{})
}

// TestApplyRejects: commands that fail the checks at apply write nothing and
// say why; the host is not stopped.
func TestApplyRejects(t *testing.T) {
	h := newApplyHarness(t, testDesc(7, "b", "m"))
	h.apply(h.kv(1, put("c", "1")))
	wrongRange, err := proto.Marshal(&flotillapb.KVCommand{RangeId: 8, Version: 1, Ops: []*flotillapb.Op{put("c", "2")}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cmd  multiraft.Command
		want func(*flotillapb.Error) bool
	}{
		{"malformed", multiraft.Command{Index: 100, Kind: multiraft.CommandNormal, Data: []byte{0xff, 0xff, 0xff}},
			func(e *flotillapb.Error) bool { return e.GetInvalidArgument() != nil }},
		{"wrong range", multiraft.Command{Index: 101, Kind: multiraft.CommandNormal, Data: wrongRange},
			func(e *flotillapb.Error) bool { return e.GetRangeNotFound().GetRangeId() == 8 }},
		{"old version", h.kv(0, put("c", "2")),
			func(e *flotillapb.Error) bool { return len(e.GetEpochNotMatch().GetCurrent()) == 1 }},
		{"key outside", h.kv(1, put("c", "2"), put("z", "2")),
			func(e *flotillapb.Error) bool { return string(e.GetKeyNotInRange().GetKey()) == "z" }},
		{"span outside", h.kv(1, put("c", "2"), delRange("c", "")),
			func(e *flotillapb.Error) bool { return string(e.GetKeyNotInRange().GetKey()) == "m" }},
		{"no ops", h.kv(1),
			func(e *flotillapb.Error) bool { return e.GetInvalidArgument() != nil }},
		{"empty op", h.kv(1, put("c", "2"), &flotillapb.Op{}),
			func(e *flotillapb.Error) bool { return e.GetInvalidArgument().GetField() == "ops[1].op" }},
		{"empty key", h.kv(1, put("", "2")),
			func(e *flotillapb.Error) bool { return e.GetInvalidArgument() != nil }},
		{"unknown kind", multiraft.Command{Index: 102, Kind: 99},
			func(e *flotillapb.Error) bool { return e.GetInvalidArgument() != nil }},
	} {
		res := h.apply(tc.cmd)[0]
		var pe *flotillapb.Error
		if !errors.As(res.Err, &pe) || !tc.want(pe) || pe.GetOutcome() != flotillapb.Outcome_NOT_APPLIED {
			t.Errorf("%s: result error %v", tc.name, res.Err)
			continue
		}
		if res.Value != nil {
			kv, _, err := decodeResult(res.Value)
			if err != nil || !proto.Equal(kv.GetError(), pe) {
				t.Errorf("%s: result value %v, %v", tc.name, kv, err)
			}
		}
	}
	h.checkStats(map[string]string{"c": "1"})
}

// TestApplyConfChange: membership changes update the descriptor's replicas
// and conf_ver, persistently; bad ones are rejected and change nothing.
func TestApplyConfChange(t *testing.T) {
	h := newApplyHarness(t, testDesc(7, "", ""))
	cc := func(changes ...*pb.ConfChangeSingle) multiraft.Command {
		h.index++
		return multiraft.Command{Index: h.index, Kind: multiraft.CommandConfChange, ConfChange: &pb.ConfChangeV2{Changes: changes}}
	}
	one := func(typ pb.ConfChangeType, id multiraft.ReplicaID) *pb.ConfChangeSingle {
		return &pb.ConfChangeSingle{Type: typ.Enum(), NodeId: new(uint64(id))}
	}
	r4, r1 := multiraft.MakeReplicaID(4, 1), multiraft.MakeReplicaID(1, 1)
	check := func(confVer uint64, want map[multiraft.ReplicaID]flotillapb.ReplicaType) {
		t.Helper()
		for _, d := range []*flotillapb.RangeDescriptor{h.r.Descriptor(), func() *flotillapb.RangeDescriptor {
			d, _, _, err := loadState(h.eng, h.r.id)
			if err != nil {
				t.Fatal(err)
			}
			return d
		}()} {
			got := map[multiraft.ReplicaID]flotillapb.ReplicaType{}
			for _, rd := range d.GetReplicas() {
				if multiraft.ReplicaID(rd.GetReplicaId()).Node() != multiraft.NodeID(rd.GetStoreId()) {
					t.Fatalf("replica %v on store %d", rd.GetReplicaId(), rd.GetStoreId())
				}
				got[multiraft.ReplicaID(rd.GetReplicaId())] = rd.GetType()
			}
			if d.GetEpoch().GetConfVer() != confVer || !maps.Equal(got, want) {
				t.Fatalf("descriptor %v; want conf_ver %d, replicas %v", d, confVer, want)
			}
		}
	}
	r2, r3 := multiraft.MakeReplicaID(2, 1), multiraft.MakeReplicaID(3, 1)
	voter, learner := flotillapb.ReplicaType_VOTER, flotillapb.ReplicaType_LEARNER
	if res := h.apply(cc(one(pb.ConfChangeAddLearnerNode, r4))); res[0].Err != nil {
		t.Fatal(res[0].Err)
	}
	check(1, map[multiraft.ReplicaID]flotillapb.ReplicaType{r1: voter, r2: voter, r3: voter, r4: learner})
	// Promote and remove in one apply; then leave the joint config.
	res := h.apply(cc(one(pb.ConfChangeAddNode, r4)), cc(one(pb.ConfChangeRemoveNode, r1)), cc())
	for _, r := range res {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	check(3, map[multiraft.ReplicaID]flotillapb.ReplicaType{r2: voter, r3: voter, r4: voter})
	for name, c := range map[string]multiraft.Command{
		"replica 0":       cc(one(pb.ConfChangeAddNode, 0)),
		"invalid replica": cc(one(pb.ConfChangeAddNode, multiraft.ReplicaID(5))),
		"two on a store":  cc(one(pb.ConfChangeAddNode, multiraft.MakeReplicaID(2, 2))),
		"no voter left": cc(one(pb.ConfChangeRemoveNode, r2), one(pb.ConfChangeRemoveNode, r3),
			one(pb.ConfChangeRemoveNode, r4)),
	} {
		if res := h.apply(c); res[0].Err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	check(3, map[multiraft.ReplicaID]flotillapb.ReplicaType{r2: voter, r3: voter, r4: voter})
	// The store reloads the same descriptor.
	sm, err := h.store.NewStateMachine(h.r.id)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(sm.(*Replica).Descriptor(), h.r.Descriptor()) {
		t.Fatalf("reloaded %v, had %v", sm.(*Replica).Descriptor(), h.r.Descriptor())
	}
}

// TestSnapshotSpanChecks covers what initialized and uninitialized replicas
// accept as a snapshot's data spans.
func TestSnapshotSpanChecks(t *testing.T) {
	h := newApplyHarness(t, testDesc(7, "b", "m"))
	own := h.r.Spans()
	if len(own) != 1 || !own[0].Contains(mustUserKey(t, "c")) || own[0].Contains(mustUserKey(t, "m")) {
		t.Fatalf("spans %v", own)
	}
	if err := h.r.CheckSnapshotSpans(own); err != nil {
		t.Fatalf("own span refused: %v", err)
	}
	if err := h.r.CheckSnapshotSpans([]engine.Span{mustSpan(t, "b", "n")}); err == nil {
		t.Fatal("initialized replica accepted another span")
	}
	sm, err := h.store.NewStateMachine(8)
	if err != nil {
		t.Fatal(err)
	}
	u := sm.(*Replica)
	if u.Spans() != nil || u.Descriptor() != nil {
		t.Fatal("replica without a descriptor has spans")
	}
	if _, ok := h.store.LookupKey([]byte("x")); ok {
		t.Fatal("uninitialized replica indexed")
	}
	for name, spans := range map[string][]engine.Span{
		"none":        nil,
		"two":         {mustSpan(t, "m", "n"), mustSpan(t, "o", "p")},
		"not user":    {engine.RangeReplicatedSpan(8)},
		"overlapping": {mustSpan(t, "a", "c")},
		"everything":  {mustSpan(t, "", "")},
	} {
		if err := u.CheckSnapshotSpans(spans); !errors.Is(err, multiraft.ErrBadSnapshot) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if err := u.CheckSnapshotSpans([]engine.Span{mustSpan(t, "m", "")}); err != nil {
		t.Fatalf("adjacent span refused: %v", err)
	}
	// The snapshot lands: its descriptor and stats, then Restored.
	b := h.eng.NewBatch()
	d := testDesc(8, "m", "")
	if err := WriteInitialState(b, d); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if err := u.Restored(); err != nil {
		t.Fatal(err)
	}
	if r, ok := h.store.LookupKey([]byte("x")); !ok || r != u {
		t.Fatal("restored replica not indexed")
	}
	if r, ok := h.store.LookupKey([]byte("c")); !ok || r != h.r {
		t.Fatal("lookup of c")
	}
	if _, ok := h.store.LookupKey([]byte("a")); ok {
		t.Fatal("lookup of a, which no replica holds")
	}
	if got := h.store.Replicas(); len(got) != 2 || got[0] != h.r || got[1] != u {
		t.Fatalf("replicas %v", got)
	}
}

func TestWriteInitialStateValidates(t *testing.T) {
	eng := openTestEngine(t)
	b := eng.NewBatch()
	defer b.Close()
	good := testDesc(1, "a", "b")
	for name, mutate := range map[string]func(d *flotillapb.RangeDescriptor){
		"range 0":     func(d *flotillapb.RangeDescriptor) { d.RangeId = 0 },
		"inverted":    func(d *flotillapb.RangeDescriptor) { d.StartKey, d.EndKey = []byte("b"), []byte("a") },
		"empty":       func(d *flotillapb.RangeDescriptor) { d.EndKey = []byte("a") },
		"no replicas": func(d *flotillapb.RangeDescriptor) { d.Replicas = nil },
		"bad replica": func(d *flotillapb.RangeDescriptor) { d.Replicas[0].ReplicaId = 0 },
		"huge key":    func(d *flotillapb.RangeDescriptor) { d.StartKey, d.EndKey = make([]byte, flotillapb.MaxKeySize+1), nil },
	} {
		d := proto.Clone(good).(*flotillapb.RangeDescriptor)
		mutate(d)
		if err := WriteInitialState(b, d); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if err := WriteInitialState(b, nil); err == nil {
		t.Error("nil descriptor accepted")
	}
	if b.Count() != 0 {
		t.Fatalf("rejected descriptors wrote %d keys", b.Count())
	}
	if err := WriteInitialState(b, good); err != nil {
		t.Fatal(err)
	}
}

func TestConfigValidate(t *testing.T) {
	c := Config{MaxValueSize: -1, MaxScanBytes: -1}
	c.EnsureDefaults()
	err := c.Validate()
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, want := range []string{"Engine", "MaxValueSize", "MaxScanBytes"} {
		if !contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	if _, err := NewStore(Config{}); err == nil {
		t.Fatal("NewStore without an engine")
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// FuzzApply: any command data is applied or rejected, never panics, and
// the statistics stay exact.
func FuzzApply(f *testing.F) {
	for _, ops := range [][]*flotillapb.Op{
		{put("a", "1")}, {delRange("a", "z"), put("b", "2")}, {cas("a", "1", false, "2"), del("a")},
	} {
		data, err := proto.Marshal(&flotillapb.KVCommand{RangeId: 7, Version: 1, Ops: ops})
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte{0x0a, 0x80})
	f.Fuzz(func(t *testing.T, data []byte) {
		h := newApplyHarness(t, testDesc(7, "", ""))
		h.apply(h.kv(1, put("a", "1"), put("b", "2")))
		h.apply(multiraft.Command{Index: 100, Kind: multiraft.CommandNormal, Data: data})
		desc, stats, _, err := loadState(h.eng, h.r.id)
		if err != nil {
			t.Fatal(err)
		}
		if err := checkStats(h.eng, desc, stats); err != nil {
			t.Fatal(err)
		}
	})
}
