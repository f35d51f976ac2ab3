// Copyright 2026 The Flotilla Authors. All rights reserved.

package revcheck

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"sort"
)

// posWrite is one write to one key at a known revision.
type posWrite struct {
	rev   int64
	seq   int // order among the writes to the key at one revision (a txn's)
	op    Op
	put   bool
	value string
}

// keyVersion is a key's state after a prefix of its positioned writes.
type keyVersion struct {
	present     bool
	value       string
	create, mod int64
	version     int64
	// last is the write that made it (nil: none yet).
	last *posWrite
}

// unpositioned counts a key's unknown-outcome writes that no read saw:
// each may have applied at some unknown revision, or not at all.
type unpositioned struct {
	puts    int
	deletes bool
}

// CheckSnapshots checks what every completed read returned against the
// writes at or below the revision R it was served at: reads at a given
// revision, linearizable reads (which return R), and the gets of txns
// (read at the txn's revision after it applied). A read of a key at R must
// return exactly the key's state after applying, in revision order, the
// acknowledged writes at or below R and the unknown-outcome writes that
// some read saw (by value: such a write was applied, at the mod revision
// the read reported), plus possibly some unknown writes nobody saw. A
// scan at R is checked key by key over every key the history names within
// its span, so it must be one snapshot. And any two reads at the same R
// must agree on every key both cover (repeated reads at R give the same
// answer), which holds whatever the unknown writes did.
//
// Unknown writes nobody saw have no known revision; the check allows them
// only where they could not be seen: a key absent although the last known
// write put it (an unseen unknown delete may follow it), a version and
// create revision in the range the unseen unknown puts and deletes
// allow. A key with no unseen unknown write is checked exactly. The
// (key, value) pairs of writes must be unique for this to hold: a read of
// a value two writes put identifies neither.
//
// What it does not check: revisions against real time (CheckRealTime),
// that a txn's compares were evaluated right (the model), reads at a
// revision above every revision handed out (a future read shows no write
// it should have seen only if the writes are recorded).
func CheckSnapshots(history []Op) error {
	if err := validate(history); err != nil {
		return err
	}
	resolved, bad := resolveUnknown(history)

	// Each key's writes at known revisions, and its unseen unknown ones.
	writes := map[string][]posWrite{}
	unseen := map[string]unpositioned{}
	universe := map[string]bool{}
	addOps := func(op Op, rev int64, ops []TxnOp) {
		for i, o := range ops {
			switch o.Kind {
			case KindPut, KindDelete:
				writes[o.Key] = append(writes[o.Key], posWrite{rev: rev, seq: i, op: op, put: o.Kind == KindPut, value: o.Value})
			}
		}
	}
	for _, op := range resolved {
		in, out := op.Input, op.Output
		for _, k := range in.keys() {
			universe[k] = true
		}
		if !in.IsWrite() {
			continue
		}
		switch {
		case out.Outcome == OK || out.claimed:
			switch in.Kind {
			case KindPut:
				addOps(op, out.Revision, []TxnOp{{Kind: KindPut, Key: in.Key, Value: in.Value}})
			case KindDelete:
				addOps(op, out.Revision, []TxnOp{{Kind: KindDelete, Key: in.Key}})
			case KindTxn:
				addOps(op, out.Revision, op.branch())
			}
		case out.Outcome == Unknown:
			ops := [][]TxnOp{in.Then, in.Else}
			if in.Kind != KindTxn {
				ops = [][]TxnOp{{{Kind: in.Kind, Key: in.Key}}}
			}
			for _, ops := range ops {
				for _, o := range ops {
					u := unseen[o.Key]
					switch o.Kind {
					case KindPut:
						u.puts++
					case KindDelete:
						u.deletes = true
					}
					unseen[o.Key] = u
				}
			}
		}
	}
	// Each key's versions: versions[k][i] is the state after its first i
	// writes in revision order.
	versions := map[string][]keyVersion{}
	for k, ws := range writes {
		slices.SortStableFunc(ws, func(a, b posWrite) int {
			if c := cmp.Compare(a.rev, b.rev); c != 0 {
				return c
			}
			return cmp.Compare(a.seq, b.seq)
		})
		vs := make([]keyVersion, len(ws)+1)
		for i := range ws {
			v := vs[i]
			w := &ws[i]
			if w.put {
				if !v.present {
					v = keyVersion{present: true, create: w.rev}
				}
				v.value, v.mod = w.value, w.rev
				v.version++
			} else {
				v = keyVersion{}
			}
			v.last = w
			vs[i+1] = v
		}
		writes[k], versions[k] = ws, vs
	}
	// at returns key's state at R.
	at := func(key string, R int64) keyVersion {
		ws := writes[key]
		n := sort.Search(len(ws), func(i int) bool { return ws[i].rev > R })
		if vs := versions[key]; len(vs) > 0 {
			return vs[n]
		}
		return keyVersion{}
	}

	type seenAt struct {
		op    Op
		found bool
		kv    KV
	}
	type keyAt struct {
		key string
		rev int64
	}
	agree := map[keyAt][]seenAt{}
	for _, op := range resolved {
		in, out := op.Input, op.Output
		if out.Outcome != OK {
			continue
		}
		var R int64
		var obs []observed
		switch in.Kind {
		case KindGet, KindScan:
			R = out.Revision
			if in.AtRevision != 0 {
				if out.Revision != 0 && out.Revision != in.AtRevision {
					bad = append(bad, Violation{Check: "snapshot", Reason: fmt.Sprintf("read #%d at revision %d says it was served at %d", op.ID, in.AtRevision, out.Revision), Ops: []Op{op}})
				}
				R = in.AtRevision
			}
			obs = readsOf(op)
			if in.Kind == KindScan {
				returned := map[string]bool{}
				for _, o := range obs {
					returned[o.key] = true
				}
				for _, k := range slices.Sorted(maps.Keys(universe)) {
					if in.covers(k) && !returned[k] {
						obs = append(obs, observed{key: k})
					}
				}
			}
		case KindTxn:
			R = out.Revision
			obs = readsOf(op)
		default:
			continue
		}
		if R <= 0 {
			continue // CheckRealTime reports it
		}
		for _, o := range obs {
			agree[keyAt{o.key, R}] = append(agree[keyAt{o.key, R}], seenAt{op, o.found, o.kv})
			if reason, last := checkRead(at(o.key, R), unseen[o.key], o, R); reason != "" {
				v := Violation{Check: "snapshot", Reason: fmt.Sprintf("#%d read %s at revision %d: %s", op.ID, o.key, R, reason)}
				if last != nil {
					v.Ops = append(v.Ops, last.op)
				}
				v.Ops = append(v.Ops, op)
				bad = append(bad, v)
			}
		}
	}

	keys := slices.SortedFunc(maps.Keys(agree), func(a, b keyAt) int {
		if c := cmp.Compare(a.rev, b.rev); c != 0 {
			return c
		}
		return cmp.Compare(a.key, b.key)
	})
	for _, ka := range keys {
		seen := agree[ka]
		for _, s := range seen[1:] {
			if s.found != seen[0].found || s.found && s.kv != seen[0].kv {
				bad = append(bad, Violation{Check: "snapshot", Reason: fmt.Sprintf("#%d and #%d read %s at revision %d differently", seen[0].op.ID, s.op.ID, ka.key, ka.rev), Ops: []Op{seen[0].op, s.op}})
				break
			}
		}
	}
	return violations(bad)
}

// checkRead returns why read o at R cannot be right given the key's
// state want at R and its unseen unknown writes u ("" if it can), and
// the write to show with the reason.
func checkRead(want keyVersion, u unpositioned, o observed, R int64) (string, *posWrite) {
	describe := func(v keyVersion) string {
		if !v.present {
			return "absent"
		}
		return KV{Key: o.key, Value: v.value, CreateRevision: v.create, ModRevision: v.mod, Version: v.version}.String()
	}
	if !o.found {
		if want.present && !u.deletes {
			return fmt.Sprintf("absent, but write #%d put %s at revision %d ≤ %d", want.last.op.ID, want.value, want.mod, R), want.last
		}
		return "", nil
	}
	kv := o.kv
	switch {
	case kv.ModRevision > R:
		return fmt.Sprintf("returned %s, modified above the revision read at", kv), nil
	case !want.present && want.last != nil:
		return fmt.Sprintf("returned %s, but write #%d deleted it at revision %d ≤ %d", kv, want.last.op.ID, want.last.rev, R), want.last
	case !want.present:
		return fmt.Sprintf("returned %s, which no write at or below %d put", kv, R), nil
	case kv.Value != want.value || kv.ModRevision != want.mod:
		return fmt.Sprintf("returned %s, want %s (write #%d at revision %d ≤ %d missed, or applied out of revision order)", kv, describe(want), want.last.op.ID, want.mod, R), want.last
	}
	if u.puts == 0 && !u.deletes {
		if kv.CreateRevision != want.create || kv.Version != want.version {
			return fmt.Sprintf("returned %s, want %s", kv, describe(want)), want.last
		}
		return "", nil
	}
	// Unseen unknown writes may have added puts or a delete.
	if kv.CreateRevision <= 0 || kv.CreateRevision > kv.ModRevision || kv.Version < 1 || kv.Version > want.version+int64(u.puts) {
		return fmt.Sprintf("returned %s, impossible from %s and %d unseen unknown put(s)", kv, describe(want), u.puts), want.last
	}
	return "", nil
}
