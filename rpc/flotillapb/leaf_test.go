// Copyright 2026 The Flotilla Authors. All rights reserved.

package flotillapb_test

import (
	"strings"
	"testing"

	"github.com/flotilladb/flotilla/rpc/flotillapb"
)

func desc(start, end string) *flotillapb.RangeDescriptor {
	d := &flotillapb.RangeDescriptor{RangeId: 7, StartKey: []byte(start), Epoch: &flotillapb.RangeEpoch{ConfVer: 2, Version: 3},
		Replicas: []*flotillapb.ReplicaDescriptor{
			{StoreId: 1, ReplicaId: uint64(flotillapb.MakeReplicaID(1, 1))},
			{StoreId: 2, ReplicaId: uint64(flotillapb.MakeReplicaID(2, 5)), Type: flotillapb.ReplicaType_LEARNER},
		}}
	if end != "" {
		d.EndKey = []byte(end)
	}
	return d
}

func TestReplicaID(t *testing.T) {
	id := flotillapb.MakeReplicaID(3, 9)
	if id.Node() != 3 || !id.Valid() || id.String() != "3/9" {
		t.Errorf("MakeReplicaID(3, 9) = %v, node %d, valid %v", id, id.Node(), id.Valid())
	}
	for _, bad := range []flotillapb.ReplicaID{0, flotillapb.MakeReplicaID(0, 1), flotillapb.MakeReplicaID(4, 0), flotillapb.MakeReplicaID(flotillapb.MaxNodeID+1, 1)} {
		if bad.Valid() {
			t.Errorf("%v is valid", bad)
		}
	}
}

func TestDescriptorContains(t *testing.T) {
	b, last := desc("b", "d"), desc("d", "")
	for _, tc := range []struct {
		d          *flotillapb.RangeDescriptor
		key        string
		has, below bool
	}{
		{b, "a", false, false}, {b, "b", true, false}, {b, "c", true, true}, {b, "d", false, true}, {b, "e", false, false},
		{last, "d", true, false}, {last, "zz", true, true}, {last, "", true, true},
	} {
		if got := tc.d.ContainsKey([]byte(tc.key)); got != tc.has && tc.key != "" {
			t.Errorf("[%q, %q).ContainsKey(%q) = %v", tc.d.StartKey, tc.d.EndKey, tc.key, got)
		}
		if got := tc.d.ContainsKeyBefore([]byte(tc.key)); got != tc.below {
			t.Errorf("[%q, %q).ContainsKeyBefore(%q) = %v", tc.d.StartKey, tc.d.EndKey, tc.key, got)
		}
	}
	for _, tc := range []struct {
		start, end string
		want       bool
	}{
		{"b", "d", true}, {"b", "c", true}, {"d", "d", true}, {"a", "c", false}, {"b", "e", false}, {"b", "", false},
	} {
		if got := b.ContainsSpan([]byte(tc.start), []byte(tc.end)); got != tc.want {
			t.Errorf("[b, d).ContainsSpan(%q, %q) = %v", tc.start, tc.end, got)
		}
	}
	if !last.ContainsSpan([]byte("x"), nil) {
		t.Error("the last range does not hold [x, +∞)")
	}
	put := func(k string) *flotillapb.Op {
		return &flotillapb.Op{Op: &flotillapb.Op_Put{Put: &flotillapb.PutOp{Key: []byte(k)}}}
	}
	dr := func(s, e string) *flotillapb.Op {
		return &flotillapb.Op{Op: &flotillapb.Op_DeleteRange{DeleteRange: &flotillapb.DeleteRangeOp{StartKey: []byte(s), EndKey: []byte(e)}}}
	}
	if !b.ContainsOps([]*flotillapb.Op{put("b"), put("c"), dr("b", "d")}) || b.ContainsOps([]*flotillapb.Op{put("c"), dr("c", "e")}) || b.ContainsOps([]*flotillapb.Op{put("d")}) {
		t.Error("ContainsOps")
	}
}

func TestDescriptorOverlapsReplicasClone(t *testing.T) {
	for _, tc := range []struct {
		a, b *flotillapb.RangeDescriptor
		want bool
	}{
		{desc("b", "d"), desc("c", "e"), true}, {desc("b", "d"), desc("d", "e"), false},
		{desc("b", "d"), desc("a", "b"), false}, {desc("b", ""), desc("x", "y"), true}, {desc("", ""), desc("a", "b"), true},
	} {
		if tc.a.Overlaps(tc.b) != tc.want || tc.b.Overlaps(tc.a) != tc.want {
			t.Errorf("[%q, %q) overlaps [%q, %q): want %v", tc.a.StartKey, tc.a.EndKey, tc.b.StartKey, tc.b.EndKey, tc.want)
		}
	}
	d := desc("a", "b")
	if r := d.ReplicaOnStore(2); r == nil || flotillapb.ReplicaID(r.GetReplicaId()) != flotillapb.MakeReplicaID(2, 5) {
		t.Errorf("ReplicaOnStore(2) = %v", r)
	}
	if d.ReplicaOnStore(3) != nil || d.Replica(flotillapb.MakeReplicaID(1, 2)) != nil || d.Replica(flotillapb.MakeReplicaID(1, 1)) == nil {
		t.Error("ReplicaOnStore / Replica")
	}
	c := d.Clone()
	c.Replicas[0].StoreId = 9
	c.Epoch.Version = 9
	if d.Replicas[0].StoreId != 1 || d.Epoch.Version != 3 {
		t.Error("Clone shares its replicas or epoch with the original")
	}
	if (*flotillapb.RangeDescriptor)(nil).Clone() != nil || (*flotillapb.ReplicaDescriptor)(nil).Clone() != nil {
		t.Error("a nil clone is not nil")
	}
}

func TestEpochOrder(t *testing.T) {
	e := func(v, cv uint64) *flotillapb.RangeEpoch { return &flotillapb.RangeEpoch{Version: v, ConfVer: cv} }
	for _, tc := range []struct {
		a, b             *flotillapb.RangeEpoch
		newer, dominates bool
	}{
		{e(2, 1), e(1, 9), true, false}, // a split is newer, but not by both components
		{e(2, 9), e(1, 9), true, true},
		{e(1, 2), e(1, 1), true, true},
		{e(1, 1), e(1, 1), false, false},
		{e(1, 1), nil, true, true},
		{nil, e(1, 1), false, false},
	} {
		if got := tc.a.Newer(tc.b); got != tc.newer {
			t.Errorf("%v.Newer(%v) = %v", tc.a, tc.b, got)
		}
		if got := tc.a.Dominates(tc.b); got != tc.dominates {
			t.Errorf("%v.Dominates(%v) = %v", tc.a, tc.b, got)
		}
	}
}

func TestChecks(t *testing.T) {
	big := strings.Repeat("k", flotillapb.MaxKeySize+1)
	if flotillapb.CheckKey(nil) != "empty key" || flotillapb.CheckKey([]byte(big)) == "" || flotillapb.CheckKey([]byte("k")) != "" {
		t.Error("CheckKey")
	}
	if flotillapb.CheckValue(make([]byte, 11), 10) == "" || flotillapb.CheckValue(make([]byte, 11), -1) != "" || flotillapb.CheckValue(nil, 0) != "" {
		t.Error("CheckValue")
	}
	for _, tc := range []struct {
		start, end, field string
	}{
		{"a", "b", ""}, {"", "", ""}, {"b", "a", "p.end_key"}, {big, "", "p.start_key"}, {"", big, "p.end_key"},
	} {
		if f, _ := flotillapb.CheckSpan("p.", []byte(tc.start), []byte(tc.end)); f != tc.field {
			t.Errorf("CheckSpan(%.8q, %.8q) field %q, want %q", tc.start, tc.end, f, tc.field)
		}
	}
	ops := []struct {
		op           *flotillapb.Op
		prefix, want string
	}{
		{&flotillapb.Op{}, "", "op"},
		{&flotillapb.Op{}, "ops[1].", "ops[1].op"},
		{&flotillapb.Op{Op: &flotillapb.Op_Put{Put: &flotillapb.PutOp{}}}, "", "key"},
		{&flotillapb.Op{Op: &flotillapb.Op_Put{Put: &flotillapb.PutOp{Key: []byte("k"), Value: make([]byte, 5)}}}, "ops[0].", "ops[0].put.value"},
		{&flotillapb.Op{Op: &flotillapb.Op_Delete{Delete: &flotillapb.DeleteOp{Key: []byte(big)}}}, "ops[2].", "ops[2].delete.key"},
		{&flotillapb.Op{Op: &flotillapb.Op_DeleteRange{DeleteRange: &flotillapb.DeleteRangeOp{StartKey: []byte("b"), EndKey: []byte("a")}}}, "ops[3].", "ops[3].delete_range.end_key"},
		{&flotillapb.Op{Op: &flotillapb.Op_Cas{Cas: &flotillapb.CompareAndSwapOp{Key: []byte("k"), Expected: make([]byte, 5)}}}, "", "expected"},
		{&flotillapb.Op{Op: &flotillapb.Op_Cas{Cas: &flotillapb.CompareAndSwapOp{Key: []byte("k"), Value: make([]byte, 5)}}}, "ops[4].", "ops[4].cas.value"},
		{&flotillapb.Op{Op: &flotillapb.Op_Cas{Cas: &flotillapb.CompareAndSwapOp{Key: []byte("k"), Value: make([]byte, 4)}}}, "", ""},
	}
	for _, tc := range ops {
		if f, p := flotillapb.CheckOp(tc.op, tc.prefix, 4); f != tc.want || (f == "") != (p == "") {
			t.Errorf("CheckOp(%v, %q) = %q, %q; want field %q", tc.op, tc.prefix, f, p, tc.want)
		}
	}
}
