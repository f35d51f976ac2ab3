// Copyright 2026 The Flotilla Authors. All rights reserved.

package placement

import (
	"errors"
	"testing"

	"github.com/flotilladb/flotilla/rpc/flotillapb"
)

func setHWM(h int64) *flotillapb.MetaCommand {
	return &flotillapb.MetaCommand{Command: &flotillapb.MetaCommand_SetRevisionHwm{SetRevisionHwm: &flotillapb.SetRevisionHWM{Hwm: h}}}
}

func setCompacted(r int64) *flotillapb.MetaCommand {
	return &flotillapb.MetaCommand{Command: &flotillapb.MetaCommand_SetCompactedRevision{SetCompactedRevision: &flotillapb.SetCompactedRevision{Revision: r}}}
}

// TestApplyRevisionMarks: SetRevisionHWM and SetCompactedRevision apply as
// max; values ≤ 0 or above MaxRevision (which would let hwm + W overflow)
// are refused and change nothing.
func TestApplyRevisionMarks(t *testing.T) {
	for _, tc := range []struct {
		name               string
		hwm, compacted     int64 // before
		cmd                *flotillapb.MetaCommand
		wantHWM, wantCompd int64
		wantErr, unchanged bool
	}{
		{name: "raise hwm", cmd: setHWM(10), wantHWM: 10},
		{name: "raise hwm again", hwm: 10, cmd: setHWM(11), wantHWM: 11},
		{name: "lower hwm is a no-op", hwm: 10, cmd: setHWM(5), wantHWM: 10, unchanged: true},
		{name: "equal hwm is a no-op", hwm: 10, cmd: setHWM(10), wantHWM: 10, unchanged: true},
		{name: "zero hwm", hwm: 10, cmd: setHWM(0), wantErr: true},
		{name: "negative hwm", cmd: setHWM(-1), wantErr: true},
		{name: "hwm at the limit", cmd: setHWM(MaxRevision), wantHWM: MaxRevision},
		{name: "hwm past the limit", cmd: setHWM(MaxRevision + 1), wantErr: true},
		{name: "hwm at int64's max", cmd: setHWM(1<<63 - 1), wantErr: true},
		{name: "raise compacted", hwm: 3, cmd: setCompacted(7), wantHWM: 3, wantCompd: 7},
		{name: "lower compacted is a no-op", compacted: 7, cmd: setCompacted(6), wantCompd: 7, unchanged: true},
		{name: "zero compacted", cmd: setCompacted(0), wantErr: true},
		{name: "compacted past the limit", cmd: setCompacted(MaxRevision + 1), wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := &flotillapb.ClusterMeta{ClusterId: "c", RevisionHwm: tc.hwm, CompactedRevision: tc.compacted}
			next, _, err := applyMeta(st, tc.cmd)
			if tc.wantErr {
				if !errors.Is(err, ErrBadCommand) {
					t.Fatalf("err %v, want ErrBadCommand", err)
				}
				if st.GetRevisionHwm() != tc.hwm || st.GetCompactedRevision() != tc.compacted {
					t.Fatalf("a refused command changed the state: %v", st)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.unchanged != (next == st) {
				t.Errorf("state replaced: %v, want %v", next != st, !tc.unchanged)
			}
			if next.GetRevisionHwm() != tc.wantHWM || next.GetCompactedRevision() != tc.wantCompd {
				t.Errorf("hwm %d compacted %d, want %d %d", next.GetRevisionHwm(), next.GetCompactedRevision(), tc.wantHWM, tc.wantCompd)
			}
			if st.GetRevisionHwm() != tc.hwm {
				t.Errorf("the old state was modified")
			}
		})
	}
}

// TestRevisionOracle steps the leader-side allocator through a term: the
// start mark, batches within the mark, a raise, exhaustion and a reset.
func TestRevisionOracle(t *testing.T) {
	if _, err := NewRevisionOracle(-1); err == nil {
		t.Fatal("negative window accepted")
	}
	if _, err := NewRevisionOracle(MaxRevisionWindow + 1); err == nil {
		t.Fatal("too large a window accepted")
	}
	o, err := NewRevisionOracle(100)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := o.Take(1000, 1); err == nil {
		t.Fatal("Take before Start")
	}
	start, err := o.StartHWM(50)
	if err != nil || start != 150 {
		t.Fatalf("StartHWM(50) = %d, %v; want 150", start, err)
	}
	o.Start(7, 50)
	if o.Term() != 7 {
		t.Fatalf("term %d", o.Term())
	}
	hwm := start
	steps := []struct {
		count     int64
		wantRaise int64 // 0: none needed
		wantFirst int64
	}{
		{count: 1, wantFirst: 51},
		{count: 49, wantFirst: 52},
		{count: 50, wantFirst: 101}, // up to 150 = hwm exactly
		{count: 1, wantRaise: 251, wantFirst: 151},
		{count: 100, wantFirst: 152},
		{count: 100, wantRaise: 451, wantFirst: 252},
	}
	for i, s := range steps {
		raise, err := o.RaiseTo(hwm, s.count)
		if err != nil || raise != s.wantRaise {
			t.Fatalf("step %d: RaiseTo(%d, %d) = %d, %v; want %d", i, hwm, s.count, raise, err, s.wantRaise)
		}
		if raise != 0 {
			if _, err := o.Take(hwm, s.count); err == nil {
				t.Fatalf("step %d: Take above the mark succeeded", i)
			}
			hwm = raise
		}
		first, err := o.Take(hwm, s.count)
		if err != nil || first != s.wantFirst {
			t.Fatalf("step %d: Take = %d, %v; want %d", i, first, err, s.wantFirst)
		}
	}
	for _, bad := range []int64{0, -1, MaxRevisionBatch + 1} {
		if _, err := o.RaiseTo(hwm, bad); err == nil {
			t.Errorf("a batch of %d accepted", bad)
		}
	}
	o.Reset()
	if o.Term() != 0 {
		t.Fatal("Reset kept the term")
	}
	if _, err := o.Take(hwm, 1); err == nil {
		t.Fatal("Take after Reset")
	}

	// Near the limit: the marks are clamped, and a batch past it fails.
	if _, err := o.StartHWM(MaxRevision); !errors.Is(err, ErrRevisionsExhausted) {
		t.Fatalf("StartHWM at the limit: %v", err)
	}
	start, err = o.StartHWM(MaxRevision - 10)
	if err != nil || start != MaxRevision {
		t.Fatalf("StartHWM near the limit = %d, %v", start, err)
	}
	o.Start(8, MaxRevision-10)
	if raise, err := o.RaiseTo(MaxRevision-10, 5); err != nil || raise != MaxRevision {
		t.Fatalf("RaiseTo near the limit = %d, %v", raise, err)
	}
	if first, err := o.Take(MaxRevision, 10); err != nil || first != MaxRevision-9 {
		t.Fatalf("Take up to the limit = %d, %v", first, err)
	}
	if _, err := o.RaiseTo(MaxRevision, 1); !errors.Is(err, ErrRevisionsExhausted) {
		t.Fatalf("past the limit: %v", err)
	}
}
