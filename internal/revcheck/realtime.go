// Copyright 2026 The Flotilla Authors. All rights reserved.

package revcheck

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
)

// CheckRealTime checks, over the whole history (no partitions), that
// revisions follow real time. With A and B completed ops, A returned
// before B was called:
//
//   - both writes: rev(A) < rev(B);
//   - A a write, B a linearizable read: R(B) ≥ rev(A);
//   - A a linearizable read, B a write: rev(B) > R(A);
//   - both linearizable reads: R(B) ≥ R(A);
//
// and no two writes share a revision unless they are parts of one Group
// (an unknown-outcome write that a read saw counts, at the revision it was
// seen with). Each op B is checked against the op of highest revision that
// returned before B's call, so at most one violation per B and kind.
//
// What it does not check: what reads return (the model and
// CheckSnapshots), unknown-outcome writes against real time (their
// revision and return are unknown), and reads at a given revision (their R
// is the caller's).
func CheckRealTime(history []Op) error {
	if err := validate(history); err != nil {
		return err
	}
	resolved, _ := resolveUnknown(history)
	var bad []Violation

	// Duplicates, among completed and claimed writes.
	byRev := map[int64][]Op{}
	var timed []Op // completed ops with a revision
	for _, op := range resolved {
		o := op.Output
		switch {
		case o.Outcome == OK && (op.Input.IsWrite() || op.Input.IsLatestRead()):
			if o.Revision <= 0 {
				bad = append(bad, Violation{Check: "real-time", Reason: fmt.Sprintf("#%d completed without a revision", op.ID), Ops: []Op{op}})
				continue
			}
			timed = append(timed, op)
			if op.Input.IsWrite() {
				byRev[o.Revision] = append(byRev[o.Revision], op)
			}
		case o.Outcome == Unknown && o.claimed:
			byRev[o.Revision] = append(byRev[o.Revision], op)
		}
	}
	for _, rev := range slices.Sorted(maps.Keys(byRev)) {
		ops := byRev[rev]
		if len(ops) < 2 {
			continue
		}
		group := ops[0].Input.Group
		same := group != ""
		for _, op := range ops {
			same = same && op.Input.Group == group
		}
		if !same {
			bad = append(bad, Violation{Check: "real-time", Reason: fmt.Sprintf("%d writes share revision %d", len(ops), rev), Ops: ops})
		}
	}

	// Order: sweep the ops by call time, with every op that returned
	// before folded into the highest write and read revision seen.
	byCall := slices.Clone(timed)
	slices.SortStableFunc(byCall, func(a, b Op) int { return cmp.Compare(a.Call, b.Call) })
	byReturn := slices.Clone(timed)
	slices.SortStableFunc(byReturn, func(a, b Op) int { return cmp.Compare(a.Return, b.Return) })
	var maxWrite, maxRead *Op
	next := 0
	for _, b := range byCall {
		for ; next < len(byReturn) && byReturn[next].Return < b.Call; next++ {
			a := &byReturn[next]
			if a.Input.IsWrite() {
				if maxWrite == nil || a.Output.Revision > maxWrite.Output.Revision {
					maxWrite = a
				}
			} else if maxRead == nil || a.Output.Revision > maxRead.Output.Revision {
				maxRead = a
			}
		}
		r := b.Output.Revision
		if b.Input.IsWrite() {
			if maxWrite != nil && maxWrite.Output.Revision >= r &&
				!(maxWrite.Output.Revision == r && b.Input.Group != "" && b.Input.Group == maxWrite.Input.Group) {
				bad = append(bad, Violation{Check: "real-time", Reason: fmt.Sprintf("write #%d at revision %d after write #%d at revision %d completed", b.ID, r, maxWrite.ID, maxWrite.Output.Revision), Ops: []Op{*maxWrite, b}})
			}
			if maxRead != nil && maxRead.Output.Revision >= r {
				bad = append(bad, Violation{Check: "real-time", Reason: fmt.Sprintf("write #%d at revision %d after read #%d served at %d completed", b.ID, r, maxRead.ID, maxRead.Output.Revision), Ops: []Op{*maxRead, b}})
			}
			continue
		}
		if maxWrite != nil && maxWrite.Output.Revision > r {
			bad = append(bad, Violation{Check: "real-time", Reason: fmt.Sprintf("read #%d served at %d after write #%d at revision %d completed (stale)", b.ID, r, maxWrite.ID, maxWrite.Output.Revision), Ops: []Op{*maxWrite, b}})
		}
		if maxRead != nil && maxRead.Output.Revision > r {
			bad = append(bad, Violation{Check: "real-time", Reason: fmt.Sprintf("read #%d served at %d after read #%d served at %d completed", b.ID, r, maxRead.ID, maxRead.Output.Revision), Ops: []Op{*maxRead, b}})
		}
	}
	return violations(bad)
}
