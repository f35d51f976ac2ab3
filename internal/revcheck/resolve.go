// Copyright 2026 The Flotilla Authors. All rights reserved.

package revcheck

import (
	"fmt"
	"slices"
)

// keyValue is one (key, value) pair a put writes or a read returns.
type keyValue struct{ key, value string }

// observations returns, for every (key, value) that a completed read
// returned, the mod revisions it was returned with and the reads that
// returned it. Reads are gets, scans and the gets of completed txns.
func observations(history []Op) map[keyValue]map[int64][]int {
	seen := map[keyValue]map[int64][]int{}
	add := func(i int, kv KV) {
		k := keyValue{kv.Key, kv.Value}
		if seen[k] == nil {
			seen[k] = map[int64][]int{}
		}
		seen[k][kv.ModRevision] = append(seen[k][kv.ModRevision], i)
	}
	for i, op := range history {
		if op.Output.Outcome != OK {
			continue
		}
		for _, o := range readsOf(op) {
			if o.found {
				add(i, o.kv)
			}
		}
	}
	return seen
}

// observed is what one read said about one key.
type observed struct {
	key   string
	found bool
	kv    KV
}

// readsOf returns what a completed op says it read, key by key: a get's
// key, a scan's pairs (the keys it did not return are not listed), a
// txn's get results.
func readsOf(op Op) []observed {
	switch op.Input.Kind {
	case KindGet:
		kv := op.Output.KV
		kv.Key = op.Input.Key
		return []observed{{key: op.Input.Key, found: op.Output.Found, kv: kv}}
	case KindScan:
		out := make([]observed, len(op.Output.KVs))
		for i, kv := range op.Output.KVs {
			out[i] = observed{key: kv.Key, found: true, kv: kv}
		}
		return out
	case KindTxn:
		var out []observed
		for i, o := range op.branch() {
			if o.Kind != KindGet || i >= len(op.Output.Results) {
				continue
			}
			r := op.Output.Results[i]
			kv := r.KV
			kv.Key = o.Key
			out = append(out, observed{key: o.Key, found: r.Found, kv: kv})
		}
		return out
	}
	return nil
}

// putsOf returns the (key, value) pairs a write may put, with whether each
// is in a txn's Then branch.
func putsOf(in Input) (kvs []keyValue, then []bool) {
	switch in.Kind {
	case KindPut:
		return []keyValue{{in.Key, in.Value}}, []bool{true}
	case KindTxn:
		for b, ops := range [][]TxnOp{in.Then, in.Else} {
			for _, o := range ops {
				if o.Kind == KindPut {
					kvs = append(kvs, keyValue{o.Key, o.Value})
					then = append(then, b == 0)
				}
			}
		}
	}
	return kvs, then
}

// resolveUnknown returns a copy of history in which every unknown-outcome
// write that some completed read saw is claimed: it was applied, at the
// mod revision the read returned with one of its (key, value) pairs,
// running the branch that pair is in. A pair identifies its write only if
// no other write puts the same value to the same key; pairs that do not
// are never used. It returns too, as violations, the unknown writes whose
// pairs were seen with different revisions or from both branches (a
// correct store applies a write once): those stay unclaimed.
func resolveUnknown(history []Op) ([]Op, []Violation) {
	writers := map[keyValue][]int{}
	for i, op := range history {
		if op.Output.Outcome == NotApplied || !op.Input.IsWrite() {
			continue
		}
		kvs, _ := putsOf(op.Input)
		for _, kv := range kvs {
			if !slices.Contains(writers[kv], i) {
				writers[kv] = append(writers[kv], i)
			}
		}
	}
	seen := observations(history)
	out := slices.Clone(history)
	var bad []Violation
	for i, op := range history {
		if op.Output.Outcome != Unknown || !op.Input.IsWrite() {
			continue
		}
		kvs, then := putsOf(op.Input)
		var revs []int64
		var branches []bool
		var readers []int
		for j, kv := range kvs {
			if len(writers[kv]) != 1 {
				continue
			}
			for rev, rs := range seen[kv] {
				if !slices.Contains(revs, rev) {
					revs = append(revs, rev)
				}
				if !slices.Contains(branches, then[j]) {
					branches = append(branches, then[j])
				}
				readers = append(readers, rs...)
			}
		}
		switch {
		case len(revs) == 0:
		case len(revs) == 1 && len(branches) == 1:
			out[i].Output = Output{Outcome: Unknown, claimed: true, Revision: revs[0], Succeeded: branches[0]}
		default:
			slices.Sort(revs)
			slices.Sort(readers)
			v := Violation{Check: "snapshot", Reason: fmt.Sprintf("the values of unknown write #%d were seen at mod revisions %v, from %d branch(es): one write applies once", op.ID, revs, len(branches))}
			v.Ops = append(v.Ops, op)
			for _, r := range slices.Compact(readers) {
				v.Ops = append(v.Ops, history[r])
			}
			bad = append(bad, v)
		}
	}
	return out, bad
}
