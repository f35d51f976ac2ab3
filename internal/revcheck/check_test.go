// Copyright 2026 The Flotilla Authors. All rights reserved.

package revcheck_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	"github.com/flotilladb/flotilla/internal/revcheck"
)

const checkTimeout = 5 * time.Second

// verdict is what each check must say of a history: true means it must
// find it wrong.
type verdict struct{ model, realTime, snapshot bool }

var (
	passes    = verdict{}
	onlyModel = verdict{model: true}
	onlyRT    = verdict{realTime: true}
	onlySnap  = verdict{snapshot: true}
	modelSnap = verdict{model: true, snapshot: true}
	modelRT   = verdict{model: true, realTime: true}
	allCatch  = verdict{model: true, realTime: true, snapshot: true}
	compare   = func(k string, t revcheck.Target, c revcheck.Cmp, operand int64) revcheck.Compare {
		return revcheck.Compare{Key: k, Target: t, Cmp: c, Operand: operand}
	}
	valueIs = func(k, v string) revcheck.Compare {
		return revcheck.Compare{Key: k, Target: revcheck.TargetValue, Cmp: revcheck.CmpEqual, Value: v}
	}
)

// handHistories are small histories written by hand: correct ones, and
// broken ones with the checks that must catch them.
func handHistories() []struct {
	name string
	h    *hist
	want verdict
} {
	h := func() *hist { return &hist{} }
	return []struct {
		name string
		h    *hist
		want verdict
	}{
		{"puts, deletes and reads, with gaps", h().
			put(0, 0, 1, "a", "1", 3).
			get(1, 2, 3, "a", 5, kv("a", "1", 3, 3, 1)).
			put(0, 4, 5, "a", "2", 8).
			get(1, 6, 7, "a", 8, kv("a", "2", 3, 8, 2)).
			del(0, 8, 9, "a", 12, true).
			get(1, 10, 11, "a", 15, nil).
			put(0, 12, 13, "a", "3", 20).
			get(1, 14, 15, "a", 21, kv("a", "3", 20, 20, 1)).
			getAt(1, 16, 17, "a", 10, 10, kv("a", "2", 3, 8, 2)).
			getAt(1, 18, 19, "a", 12, 0, nil).
			getAt(1, 20, 21, "a", 5, 5, kv("a", "1", 3, 3, 1)).
			del(0, 22, 23, "b", 30, false).
			get(1, 24, 25, "a", 100, kv("a", "3", 20, 20, 1)).
			put(0, 26, 27, "a", "4", 101).
			get(1, 28, 29, "a", 102, kv("a", "4", 20, 101, 2)), passes},
		{"concurrent writes ordered by revision, not by call", h().
			put(0, 0, 10, "a", "1", 7).
			put(1, 1, 9, "a", "2", 5).
			get(2, 2, 3, "a", 6, kv("a", "2", 5, 5, 1)).
			get(2, 11, 12, "a", 8, kv("a", "1", 5, 7, 2)), passes},
		{"an unknown write a read saw", h().
			put(0, 0, 1, "a", "1", 3).
			putUnknown(1, 2, "a", "2").
			get(0, 4, 5, "a", 10, kv("a", "2", 3, 6, 2)).
			getAt(0, 6, 7, "a", 6, 6, kv("a", "2", 3, 6, 2)).
			getAt(0, 8, 9, "a", 5, 5, kv("a", "1", 3, 3, 1)).
			get(0, 10, 11, "a", 11, kv("a", "2", 3, 6, 2)), passes},
		{"unknown writes nobody saw", h().
			put(0, 0, 1, "a", "1", 3).
			putUnknown(1, 2, "a", "2"). // applied and overwritten: the version shows it
			put(0, 4, 5, "a", "3", 9).
			get(0, 6, 7, "a", 10, kv("a", "3", 3, 9, 3)).
			putUnknown(1, 8, "b", "x"). // not applied
			get(0, 10, 11, "b", 12, nil).
			put(0, 12, 13, "c", "1", 13).
			delUnknown(1, 14, "c").
			get(0, 16, 17, "c", 20, nil).
			getAt(0, 18, 19, "c", 20, 20, nil).
			putUnknown(2, 20, "d", "1"). // created d: its revision shows as d's create
			put(0, 22, 23, "d", "2", 25).
			get(0, 24, 25, "d", 26, kv("d", "2", 22, 25, 2)), passes},
		{"txns", h().
			put(0, 0, 1, "a", "1", 3).
			txn(0, 2, 3, revcheck.Input{Compares: []revcheck.Compare{valueIs("a", "1")}, Then: []revcheck.TxnOp{putOp("a", "2"), getOp("a")}, Else: []revcheck.TxnOp{getOp("a")}},
				5, true, revcheck.TxnResult{}, found(kv("a", "2", 3, 5, 2))).
			// Read-only: served at R.
			txn(0, 4, 5, revcheck.Input{Compares: []revcheck.Compare{compare("a", revcheck.TargetMod, revcheck.CmpEqual, 5)}, Then: []revcheck.TxnOp{getOp("a")}},
				7, true, found(kv("a", "2", 3, 5, 2))).
			// A write that took a revision though its branch only reads.
			txn(0, 6, 7, revcheck.Input{Compares: []revcheck.Compare{compare("a", revcheck.TargetVersion, revcheck.CmpGreater, 5)}, Then: []revcheck.TxnOp{putOp("a", "9")}, Else: []revcheck.TxnOp{getOp("a")}},
				9, false, found(kv("a", "2", 3, 5, 2))).
			txn(0, 8, 9, revcheck.Input{Compares: []revcheck.Compare{compare("b", revcheck.TargetCreate, revcheck.CmpEqual, 0), compare("a", revcheck.TargetMod, revcheck.CmpLess, 6)}, Then: []revcheck.TxnOp{putOp("b", "1"), putOp("a", "3")}},
				11, true, revcheck.TxnResult{}, revcheck.TxnResult{}).
			get(0, 10, 11, "b", 12, kv("b", "1", 11, 11, 1)).
			scan(0, 12, 13, "a", "c", 0, 13, kv("a", "3", 3, 11, 3), kv("b", "1", 11, 11, 1)), passes},
		{"a multi-key write in one group", h().
			put(0, 0, 1, "a", "0", 2).
			groupPut(1, 2, 3, "g1", "a", "1", 5).
			groupPut(1, 2, 3, "g1", "b", "1", 5).
			scan(0, 4, 5, "", "", 0, 6, kv("a", "1", 2, 5, 2), kv("b", "1", 5, 5, 1)).
			scan(0, 6, 7, "", "", 5, 5, kv("a", "1", 2, 5, 2), kv("b", "1", 5, 5, 1)), passes},

		{"a range applies a write below its last revision", h().
			put(0, 0, 1, "a", "1", 10).
			put(0, 2, 3, "a", "2", 8).
			get(0, 4, 5, "a", 11, kv("a", "2", 10, 8, 2)), allCatch},
		{"a range applies a write below its last revision, concurrent writes", h().
			put(0, 0, 5, "a", "1", 10).
			put(1, 1, 6, "a", "2", 8).
			get(0, 7, 8, "a", 11, kv("a", "2", 10, 8, 2)), modelSnap},
		{"a read at R that did not wait", h().
			put(0, 0, 1, "a", "1", 3).
			put(0, 2, 3, "a", "2", 6).
			getAt(1, 4, 5, "a", 6, 6, kv("a", "1", 3, 3, 1)), onlySnap},
		{"a duplicate revision", h().
			put(0, 0, 1, "a", "1", 5).
			put(1, 0, 1, "b", "1", 5), onlyRT},
		{"a write revision regression across real time", h().
			put(0, 0, 1, "a", "1", 10).
			put(1, 2, 3, "b", "1", 7), onlyRT},
		{"a read revision regression across real time", h().
			put(0, 0, 1, "a", "1", 3).
			get(0, 2, 3, "a", 12, kv("a", "1", 3, 3, 1)).
			get(1, 4, 5, "b", 11, nil), onlyRT},
		{"a stale linearizable read", h().
			put(0, 0, 1, "a", "1", 3).
			put(0, 2, 3, "a", "2", 6).
			get(1, 4, 5, "a", 7, kv("a", "1", 3, 3, 1)), modelSnap},
		{"a stale linearizable read with a stale R", h().
			put(0, 0, 1, "a", "1", 3).
			put(0, 2, 3, "a", "2", 6).
			get(1, 4, 5, "a", 4, kv("a", "1", 3, 3, 1)), modelRT},
		{"an unknown write seen then unseen", h().
			put(0, 0, 1, "a", "1", 3).
			putUnknown(1, 2, "a", "2").
			get(0, 4, 5, "a", 8, kv("a", "2", 3, 6, 2)).
			get(0, 6, 7, "a", 9, kv("a", "1", 3, 3, 1)), modelSnap},
		{"an unknown write seen at two revisions", h().
			put(0, 0, 1, "a", "1", 3).
			putUnknown(1, 2, "a", "2").
			get(0, 4, 5, "a", 8, kv("a", "2", 3, 6, 2)).
			get(0, 6, 7, "a", 9, kv("a", "2", 3, 7, 2)), modelSnap},
		{"two reads at one R disagree", h().
			put(0, 0, 1, "a", "1", 3).
			delUnknown(1, 2, "a").
			getAt(0, 4, 5, "a", 5, 5, kv("a", "1", 3, 3, 1)).
			getAt(0, 6, 7, "a", 5, 5, nil), onlySnap},
		{"a latest scan that is no snapshot", h().
			put(0, 0, 1, "a", "1", 3).
			put(0, 2, 3, "b", "1", 4).
			put(0, 4, 5, "a", "2", 6).
			put(0, 6, 7, "b", "2", 7).
			scan(1, 8, 9, "a", "c", 0, 8, kv("a", "2", 3, 6, 2), kv("b", "1", 4, 4, 1)), modelSnap},
		{"a scan at a revision that is no snapshot", h().
			put(0, 0, 1, "a", "1", 3).
			put(0, 2, 3, "b", "1", 4).
			put(0, 4, 5, "a", "2", 6).
			put(0, 6, 7, "b", "2", 7).
			scan(1, 8, 9, "a", "c", 7, 7, kv("a", "2", 3, 6, 2), kv("b", "1", 4, 4, 1)), onlySnap},
		{"a txn's compare evaluated wrong", h().
			put(0, 0, 1, "a", "1", 3).
			txn(0, 2, 3, revcheck.Input{Compares: []revcheck.Compare{valueIs("a", "1")}, Then: []revcheck.TxnOp{putOp("a", "2")}, Else: []revcheck.TxnOp{putOp("a", "3")}}, 5, false), onlyModel},
		{"a value nobody wrote", h().
			get(0, 0, 1, "a", 5, kv("a", "zzz", 4, 4, 1)), modelSnap},
		{"a multi-key write torn by a read", h().
			groupPut(1, 0, 1, "g1", "a", "1", 5).
			groupPut(1, 0, 1, "g1", "b", "1", 5).
			scan(0, 2, 3, "", "", 0, 5, kv("a", "1", 5, 5, 1)), modelSnap},
		{"a wrong version", h().
			put(0, 0, 1, "a", "1", 3).
			put(0, 2, 3, "a", "2", 6).
			get(0, 4, 5, "a", 7, kv("a", "2", 3, 6, 1)), modelSnap},
		{"a delete that found an absent key", h().
			del(0, 0, 1, "a", 3, true), onlyModel},
	}
}

// TestHandHistories runs every check over the hand-written histories: the
// correct ones pass every check, each broken one is caught by exactly the
// checks its verdict names (so that what each check covers is pinned
// down). The model is run partitioned and whole: the whole one must
// agree where the partitioned one fails and where everything passes.
func TestHandHistories(t *testing.T) {
	for _, tc := range handHistories() {
		t.Run(tc.name, func(t *testing.T) {
			ops := tc.h.ops
			for _, op := range ops {
				t.Logf("%s", op)
			}
			got := verdict{
				model:    revcheck.CheckLinearizable(ops, checkTimeout) != nil,
				realTime: revcheck.CheckRealTime(ops) != nil,
				snapshot: revcheck.CheckSnapshots(ops) != nil,
			}
			if got != tc.want {
				t.Errorf("caught by (model, real-time, snapshot) = %+v, want %+v", got, tc.want)
				for _, err := range []error{revcheck.CheckLinearizable(ops, checkTimeout), revcheck.CheckRealTime(ops), revcheck.CheckSnapshots(ops)} {
					t.Logf("%v", err)
				}
			}
			whole := revcheck.NewModel()
			whole.Partition, whole.PartitionEvent = nil, nil
			res := porcupine.CheckOperationsTimeout(whole, revcheck.Operations(ops), checkTimeout)
			if (got.model && res != porcupine.Illegal) || (got == passes && res != porcupine.Ok) {
				t.Errorf("unpartitioned model: %s, partitioned caught=%v", res, got.model)
			}
			if err := revcheck.CheckAll(ops, checkTimeout); (err != nil) != (tc.want != passes) {
				t.Errorf("CheckAll = %v", err)
			}
		})
	}
}

// TestViolationsNameOps: a violation says which check found it and lists
// the ops involved; errors.As gets the list.
func TestViolationsNameOps(t *testing.T) {
	ops := (&hist{}).
		put(0, 0, 1, "a", "1", 10).
		put(1, 2, 3, "b", "1", 7).ops
	err := revcheck.CheckRealTime(ops)
	var ve *revcheck.ViolationsError
	if !errors.As(err, &ve) || len(ve.Violations) != 1 {
		t.Fatalf("CheckRealTime = %v, want one violation", err)
	}
	v := ve.Violations[0]
	if v.Check != "real-time" || len(v.Ops) != 2 || v.Ops[0].ID != 1 || v.Ops[1].ID != 2 {
		t.Errorf("violation %+v: want real-time, ops #1 then #2", v)
	}
	if !strings.Contains(err.Error(), "#2") || !strings.Contains(err.Error(), "revision 7") {
		t.Errorf("message %q names neither the op nor the revision", err)
	}
}

// TestMalformedHistory: repeated or missing IDs are refused by every check.
func TestMalformedHistory(t *testing.T) {
	ops := (&hist{}).put(0, 0, 1, "a", "1", 3).put(0, 2, 3, "a", "2", 5).ops
	ops[1].ID = 1
	for name, err := range map[string]error{
		"linearizable": revcheck.CheckLinearizable(ops, checkTimeout),
		"real-time":    revcheck.CheckRealTime(ops),
		"snapshots":    revcheck.CheckSnapshots(ops),
	} {
		if !errors.Is(err, revcheck.ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
}

// TestCheckTimeoutIsAFailure: when porcupine gives up (Unknown), the check
// fails and says so; it is not taken for a pass. Forty concurrent unknown
// puts to one key and a read of a value none of them wrote make porcupine
// try every subset.
func TestCheckTimeoutIsAFailure(t *testing.T) {
	h := &hist{}
	for i := range 40 {
		h.putUnknown(i, int64(i), "a", string(rune('A'+i)))
	}
	h.put(41, 0, 100, "a", "x", 3)
	h.get(42, 200, 201, "a", 1000, kv("a", "x", 4, 3, 1))
	start := time.Now()
	err := revcheck.CheckLinearizable(h.ops, 50*time.Millisecond)
	var le *revcheck.LinearizabilityError
	if !errors.As(err, &le) || le.Result != porcupine.Unknown {
		t.Fatalf("CheckLinearizable = %v, want a LinearizabilityError with result Unknown", err)
	}
	if !strings.Contains(err.Error(), "not a pass") {
		t.Errorf("message %q does not say Unknown is no pass", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the check took %v with a 50ms timeout", d)
	}
}

// TestVisualize writes the visualization of a failed check.
func TestVisualize(t *testing.T) {
	ops := (&hist{}).
		put(0, 0, 1, "a", "1", 3).
		put(0, 2, 3, "a", "2", 6).
		get(1, 4, 5, "a", 7, kv("a", "1", 3, 3, 1)).ops
	var le *revcheck.LinearizabilityError
	if err := revcheck.CheckLinearizable(ops, checkTimeout); !errors.As(err, &le) || le.Result != porcupine.Illegal {
		t.Fatalf("CheckLinearizable = %v, want Illegal", err)
	}
	if err := le.Visualize(t.TempDir() + "/vis.html"); err != nil {
		t.Fatal(err)
	}
}

// TestCheckBank: scans covering every account must sum to the total; a
// scan at any revision that does not, or misses an account, is reported;
// scans covering only some accounts are skipped.
func TestCheckBank(t *testing.T) {
	accounts := []string{"acct/0", "acct/1", "acct/2"}
	acct := func(i int, v string) *revcheck.KV { return kv(accounts[i], v, 1, 1, 1) }
	good := (&hist{}).
		scan(0, 0, 1, "acct/", "acct0", 0, 5, acct(0, "50"), acct(1, "30"), acct(2, "20")).
		scan(0, 2, 3, "acct/", "acct0", 4, 4, acct(0, "60"), acct(1, "20"), acct(2, "20")).
		scan(0, 4, 5, "acct/0", "acct/1", 0, 6, acct(0, "1")) // covers one account: skipped
	if err := revcheck.CheckBank(good.ops, accounts, 100); err != nil {
		t.Errorf("CheckBank(correct scans) = %v", err)
	}
	for name, h := range map[string]*hist{
		"torn transfer":  (&hist{}).scan(0, 0, 1, "", "", 7, 7, acct(0, "40"), acct(1, "30"), acct(2, "20")),
		"missing":        (&hist{}).scan(0, 0, 1, "", "", 0, 7, acct(0, "50"), acct(2, "50")),
		"not a number":   (&hist{}).scan(0, 0, 1, "", "", 0, 7, acct(0, "50"), acct(1, "x"), acct(2, "50")),
		"money appeared": (&hist{}).scan(0, 0, 1, "", "", 0, 7, acct(0, "50"), acct(1, "30"), acct(2, "21")),
	} {
		err := revcheck.CheckBank(h.ops, accounts, 100)
		var ve *revcheck.ViolationsError
		if !errors.As(err, &ve) || ve.Violations[0].Check != "bank" {
			t.Errorf("%s: CheckBank = %v, want a bank violation", name, err)
			continue
		}
		t.Logf("%s: %v", name, err)
	}
}
