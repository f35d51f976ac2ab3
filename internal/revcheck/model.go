// Copyright 2026 The Flotilla Authors. All rights reserved.

package revcheck

import (
	"errors"
	"fmt"
	"hash/maphash"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// keyState is one present key in the model's state.
type keyState struct {
	value string
	// create and mod are revisions; a negative one is -id of the
	// unknown-outcome write (Op.ID) that set it, whose revision is not
	// known: modelState.unknown bounds it.
	create, mod int64
	version     int64
}

// bounds are the possible revisions of an unknown-outcome write the model
// applied: lo < revision ≤ hi.
type bounds struct{ lo, hi int64 }

// modelState is the state of one partition: the key → (value, create,
// mod, version) map of its keys, and rev.
//
// Unknown revisions: a write of unknown outcome that no read saw (so whose
// revision nobody reported) is applied with its revision as a variable r,
// bounded by unknown[id]: r > rev when it is applied, and every write
// linearized after it lowers the upper bound below its own revision, every
// read to its R (the write must be ≤ R to be visible, and a read at R
// orders every later write above R). A read that returns such a field
// fixes r (if it lies within the bounds) everywhere it appears. rev itself
// is not raised by an unknown write (its value is unknown); the bounds
// carry that constraint instead, so that a later write or read that leaves
// no room for r (hi ≤ lo) is refused. What is not kept: the order among
// several unknown revisions (each is only bounded by the known ones), and
// the bounds of a variable no key refers to any more (dropped, to keep
// states few): both only make the model more lenient.
type modelState struct {
	keys map[string]keyState
	// rev is the highest revision linearized so far: a write's, or a
	// read's R. The next write must be above it, the next read at or
	// above it.
	rev int64
	// revGroup is the Group of the write that set rev ("" after a read):
	// another part of that write may share rev.
	revGroup string
	unknown  map[int]bounds
}

func (s modelState) clone() modelState {
	return modelState{keys: maps.Clone(s.keys), rev: s.rev, revGroup: s.revGroup, unknown: maps.Clone(s.unknown)}
}

// bound records that every unknown revision applied so far is at most hi,
// and reports whether each still has room.
func (s *modelState) bound(hi int64) bool {
	for id, b := range s.unknown {
		b.hi = min(b.hi, hi)
		if b.hi <= b.lo {
			return false
		}
		s.unknown[id] = b
	}
	return true
}

// beginWrite linearizes a write at r: above rev (or at it, for another
// part of the write that set it).
func (s *modelState) beginWrite(r int64, group string) bool {
	if r <= 0 || r < s.rev || r == s.rev && (group == "" || group != s.revGroup) {
		return false
	}
	if !s.bound(r - 1) {
		return false
	}
	s.rev, s.revGroup = r, group
	return true
}

// beginRead linearizes a read served at R: at or above rev.
func (s *modelState) beginRead(R int64) bool {
	if R <= 0 || R < s.rev || !s.bound(R) {
		return false
	}
	s.rev, s.revGroup = R, ""
	return true
}

// matchRev reports whether a revision field of the state can be got, and
// fixes an unknown one to got.
func (s *modelState) matchRev(field, got int64) bool {
	if field >= 0 {
		return field == got
	}
	b, ok := s.unknown[int(-field)]
	if !ok || got <= b.lo || got > b.hi {
		return false
	}
	delete(s.unknown, int(-field))
	for k, ks := range s.keys {
		if ks.create == field {
			ks.create = got
		}
		if ks.mod == field {
			ks.mod = got
		}
		s.keys[k] = ks
	}
	return true
}

// matchKV reports whether a read of key that found it (or not) with kv
// agrees with the state, fixing unknown revisions it reveals.
func (s *modelState) matchKV(key string, found bool, kv KV) bool {
	ks, present := s.keys[key]
	if found != present {
		return false
	}
	if !found {
		return true
	}
	if ks.value != kv.Value || ks.version != kv.Version || !s.matchRev(ks.create, kv.CreateRevision) {
		return false
	}
	return s.matchRev(s.keys[key].mod, kv.ModRevision)
}

func (s *modelState) put(key, value string, rev int64) {
	ks, ok := s.keys[key]
	if !ok {
		ks = keyState{create: rev}
	}
	ks.value, ks.mod = value, rev
	ks.version++
	s.keys[key] = ks
}

// applyOps applies a txn branch's writes at rev.
func (s *modelState) applyOps(ops []TxnOp, rev int64) {
	for _, o := range ops {
		switch o.Kind {
		case KindPut:
			s.put(o.Key, o.Value, rev)
		case KindDelete:
			delete(s.keys, o.Key)
		}
	}
}

// gc drops the bounds of unknown revisions no key refers to.
func (s *modelState) gc() {
	for id := range s.unknown {
		used := false
		for _, ks := range s.keys {
			if ks.create == int64(-id) || ks.mod == int64(-id) {
				used = true
				break
			}
		}
		if !used {
			delete(s.unknown, id)
		}
	}
}

// tri is a truth value that may be unknown (a compare of an unknown
// revision).
type tri uint8

const (
	triFalse tri = iota
	triTrue
	triUnknown
)

func triOf(b bool) tri {
	if b {
		return triTrue
	}
	return triFalse
}

func compareInts(a, b int64, cmp Cmp) bool {
	switch cmp {
	case CmpEqual:
		return a == b
	case CmpNotEqual:
		return a != b
	case CmpLess:
		return a < b
	case CmpGreater:
		return a > b
	}
	return false
}

// eval evaluates a compare on the state. A compare of an unknown revision
// is decided when the bounds decide it, else unknown.
func (s *modelState) eval(c Compare) tri {
	ks, present := s.keys[c.Key]
	var field int64
	switch c.Target {
	case TargetValue:
		// etcd: comparing the value of an absent key always fails.
		return triOf(present && compareInts(int64(strings.Compare(ks.value, c.Value)), 0, c.Cmp))
	case TargetVersion:
		field = ks.version
	case TargetCreate:
		field = ks.create
	case TargetMod:
		field = ks.mod
	default:
		return triFalse
	}
	if field >= 0 {
		return triOf(compareInts(field, c.Operand, c.Cmp))
	}
	b := s.unknown[int(-field)]
	x := c.Operand
	switch c.Cmp {
	case CmpEqual, CmpNotEqual:
		eq := triUnknown
		if x <= b.lo || x > b.hi {
			eq = triFalse
		} else if b.lo+1 == b.hi {
			eq = triTrue
		}
		if c.Cmp == CmpNotEqual && eq != triUnknown {
			eq = triOf(eq == triFalse)
		}
		return eq
	case CmpLess: // r < x
		switch {
		case b.hi < x:
			return triTrue
		case b.lo+1 >= x:
			return triFalse
		}
	case CmpGreater: // r > x
		switch {
		case b.lo >= x:
			return triTrue
		case b.hi <= x:
			return triFalse
		}
	}
	return triUnknown
}

// cond evaluates a txn's compares (all must hold).
func (s *modelState) cond(cs []Compare) tri {
	result := triTrue
	for _, c := range cs {
		switch s.eval(c) {
		case triFalse:
			return triFalse
		case triUnknown:
			result = triUnknown
		}
	}
	return result
}

// step returns the states the model may be in after in answered out in
// state s (none: the step is impossible).
func step(s modelState, in Input, out Output) []modelState {
	switch {
	case out.Outcome == OK:
		ns := s.clone()
		if !stepDone(&ns, in, out) {
			return nil
		}
		ns.gc()
		return []modelState{ns}
	case out.Outcome != Unknown || !in.IsWrite():
		// Operations leaves these out; they observed nothing.
		return []modelState{s}
	case out.claimed:
		// Applied, at out.Revision (a read saw it), running the branch
		// out.Succeeded.
		ns := s.clone()
		if !ns.beginWrite(out.Revision, in.Group) {
			return nil
		}
		switch in.Kind {
		case KindPut:
			ns.put(in.Key, in.Value, out.Revision)
		case KindTxn:
			if c := ns.cond(in.Compares); c != triUnknown && c != triOf(out.Succeeded) {
				return nil
			}
			ns.applyOps(Op{Input: in, Output: out}.branch(), out.Revision)
		default:
			return nil // only puts are claimed
		}
		ns.gc()
		return []modelState{ns}
	}
	// Applied at an unknown revision r > rev. (Not applied at all is the
	// op linearized after everything else, where it changes nothing seen.)
	var branches [][]TxnOp
	switch in.Kind {
	case KindPut:
		branches = [][]TxnOp{{{Kind: KindPut, Key: in.Key, Value: in.Value}}}
	case KindDelete:
		branches = [][]TxnOp{{{Kind: KindDelete, Key: in.Key}}}
	case KindTxn:
		switch s.cond(in.Compares) {
		case triTrue:
			branches = [][]TxnOp{in.Then}
		case triFalse:
			branches = [][]TxnOp{in.Else}
		default:
			branches = [][]TxnOp{in.Then, in.Else}
		}
	}
	var next []modelState
	for _, ops := range branches {
		ns := s.clone()
		if ns.unknown == nil {
			ns.unknown = map[int]bounds{}
		}
		ns.unknown[in.id] = bounds{lo: ns.rev, hi: math.MaxInt64}
		ns.applyOps(ops, int64(-in.id))
		ns.gc()
		next = append(next, ns)
	}
	return next
}

// stepDone steps s over a completed op.
func stepDone(s *modelState, in Input, out Output) bool {
	switch in.Kind {
	case KindGet:
		return s.beginRead(out.Revision) && s.matchKV(in.Key, out.Found, out.KV)
	case KindScan:
		if !s.beginRead(out.Revision) {
			return false
		}
		returned := map[string]bool{}
		for _, kv := range out.KVs {
			if !in.covers(kv.Key) || returned[kv.Key] || !s.matchKV(kv.Key, true, kv) {
				return false
			}
			returned[kv.Key] = true
		}
		for k := range s.keys {
			if in.covers(k) && !returned[k] {
				return false
			}
		}
		return true
	case KindPut:
		if !s.beginWrite(out.Revision, in.Group) {
			return false
		}
		s.put(in.Key, in.Value, out.Revision)
		return true
	case KindDelete:
		if !s.beginWrite(out.Revision, in.Group) {
			return false
		}
		_, present := s.keys[in.Key]
		delete(s.keys, in.Key)
		return present == out.Found
	case KindTxn:
		var ok bool
		if in.IsWrite() {
			ok = s.beginWrite(out.Revision, in.Group)
		} else {
			ok = s.beginRead(out.Revision)
		}
		if !ok {
			return false
		}
		if c := s.cond(in.Compares); c != triUnknown && c != triOf(out.Succeeded) {
			return false
		}
		ops := Op{Input: in, Output: out}.branch()
		s.applyOps(ops, out.Revision)
		// Gets read the state after the whole branch applied.
		for i, o := range ops {
			if o.Kind != KindGet {
				continue
			}
			if i >= len(out.Results) || !s.matchKV(o.Key, out.Results[i].Found, out.Results[i].KV) {
				return false
			}
		}
		return true
	}
	return false
}

// hashSeed seeds the states' hashes; set once, never changed.
var hashSeed = maphash.MakeSeed()

func hashState(st any) uint64 {
	s := st.(modelState)
	h := maphash.Comparable(hashSeed, struct {
		rev   int64
		group string
	}{s.rev, s.revGroup})
	// XOR: the maps have no order.
	for k, ks := range s.keys {
		h ^= maphash.Comparable(hashSeed, struct {
			k  string
			ks keyState
		}{k, ks})
	}
	for id, b := range s.unknown {
		h ^= maphash.Comparable(hashSeed, struct {
			id int
			b  bounds
		}{id, b})
	}
	return h
}

func equalStates(a, b any) bool {
	s, t := a.(modelState), b.(modelState)
	return s.rev == t.rev && s.revGroup == t.revGroup && maps.Equal(s.keys, t.keys) && maps.Equal(s.unknown, t.unknown)
}

func describeRev(r int64) string {
	if r < 0 {
		return fmt.Sprintf("?#%d", -r)
	}
	return fmt.Sprint(r)
}

func describeState(st any) string {
	s := st.(modelState)
	var b strings.Builder
	fmt.Fprintf(&b, "rev %d", s.rev)
	for _, k := range slices.Sorted(maps.Keys(s.keys)) {
		ks := s.keys[k]
		fmt.Fprintf(&b, ", %s=%s(c%s,m%s,v%d)", k, ks.value, describeRev(ks.create), describeRev(ks.mod), ks.version)
	}
	for _, id := range slices.Sorted(maps.Keys(s.unknown)) {
		u := s.unknown[id]
		fmt.Fprintf(&b, ", %d<?#%d≤%d", u.lo, id, u.hi)
	}
	return b.String()
}

// NewModel returns the porcupine model of a store with revisions, for the
// histories Operations builds (Operations numbers the unknown writes the
// model needs to tell apart: do not feed it porcupine operations built
// otherwise).
//
// State: each key's (value, create_revision, mod_revision, version) and
// rev, the highest revision linearized so far. A write at r is possible
// only if r > rev (or r = rev for another part of the same Group), and
// sets rev = r; a linearizable read served at R only if R ≥ rev and it
// returns the state, and sets rev = R, so that every later write is above
// R. Unknown-outcome writes: see modelState; one that a read saw is
// applied at the revision the read reported (resolveUnknown).
//
// The model is partitioned: the keys a txn names are one partition (so a
// txn's keys, its compares' included, are checked together), every other
// key is a partition of its own, and a scan is checked in each partition
// its span covers, as a read of that partition's keys at its R. What that
// gives up: the order of revisions across partitions. Each partition only
// sees its own writes and reads, so a write to key a at revision 5 after a
// write to key b at revision 9 completed, or a scan whose R does not cover
// a write to another partition, passes here: CheckRealTime checks that
// order over the whole history, and CheckSnapshots that a scan at R is one
// snapshot across keys. To check a small history as one partition, set
// the model's Partition and PartitionEvent to nil.
func NewModel() porcupine.Model {
	nm := porcupine.NondeterministicModel{
		Partition:      partitionOps,
		PartitionEvent: partitionEvents,
		Init: func() []any {
			return []any{modelState{keys: map[string]keyState{}, unknown: map[int]bounds{}}}
		},
		Step: func(state, input, output any) []any {
			var out []any
			for _, s := range step(state.(modelState), input.(Input), output.(Output)) {
				out = append(out, s)
			}
			return out
		},
		Equal: equalStates,
		Hash:  hashState,
		DescribeOperation: func(input, output any) string {
			in, out := input.(Input), output.(Output)
			return in.String() + " → " + out.describe(in)
		},
		DescribeState: describeState,
	}
	return nm.ToModel()
}

// ---- partitions ----

// partition computes the model's partitions of ops given by their inputs
// and outputs: for each partition, the indexes of its ops and the output
// each has there (a scan's pairs filtered to the partition's keys).
func partition(inputs []Input, outputs []Output) [][]projected {
	parent := map[string]string{}
	var find func(string) string
	find = func(k string) string {
		p, ok := parent[k]
		if !ok {
			parent[k] = k
			return k
		}
		if p == k {
			return k
		}
		r := find(p)
		parent[k] = r
		return r
	}
	union := func(a, b string) {
		ra, rb := find(a), find(b)
		if ra != rb {
			parent[max(ra, rb)] = min(ra, rb)
		}
	}
	for i, in := range inputs {
		ks := in.keys()
		for _, k := range ks {
			union(ks[0], k)
		}
		if in.Kind == KindScan {
			// A key only a scan returns (no op wrote it) is a partition
			// too: there the scan fails, as it should.
			for _, kv := range outputs[i].KVs {
				find(kv.Key)
			}
		}
	}
	roots := map[string]int{}
	for _, k := range slices.Sorted(maps.Keys(parent)) {
		if r := find(k); r == k {
			roots[r] = len(roots)
		}
	}
	parts := make([][]projected, len(roots))
	for i, in := range inputs {
		if in.Kind != KindScan {
			if ks := in.keys(); len(ks) > 0 {
				p := roots[find(ks[0])]
				parts[p] = append(parts[p], projected{i, outputs[i]})
			}
			continue
		}
		covered := map[int]bool{}
		for k := range parent {
			if in.covers(k) {
				covered[roots[find(k)]] = true
			}
		}
		for p := range covered {
			out := outputs[i]
			out.KVs = nil
			for _, kv := range outputs[i].KVs {
				if roots[find(kv.Key)] == p {
					out.KVs = append(out.KVs, kv)
				}
			}
			parts[p] = append(parts[p], projected{i, out})
		}
	}
	// Scans were appended out of order; keep each partition in history
	// order.
	for _, p := range parts {
		slices.SortStableFunc(p, func(a, b projected) int { return a.index - b.index })
	}
	return parts
}

// projected is one op in one partition.
type projected struct {
	index  int
	output Output
}

func partitionOps(history []porcupine.Operation) [][]porcupine.Operation {
	inputs := make([]Input, len(history))
	outputs := make([]Output, len(history))
	for i, op := range history {
		inputs[i], outputs[i] = op.Input.(Input), op.Output.(Output)
	}
	var out [][]porcupine.Operation
	for _, part := range partition(inputs, outputs) {
		ops := make([]porcupine.Operation, len(part))
		for j, p := range part {
			ops[j] = history[p.index]
			ops[j].Output = p.output
		}
		out = append(out, ops)
	}
	return out
}

func partitionEvents(history []porcupine.Event) [][]porcupine.Event {
	index := map[int]int{} // event Id → op index
	var inputs []Input
	var outputs []Output
	for _, ev := range history {
		if ev.Kind == porcupine.CallEvent {
			index[ev.Id] = len(inputs)
			inputs = append(inputs, ev.Value.(Input))
			outputs = append(outputs, Output{})
		}
	}
	for _, ev := range history {
		if ev.Kind == porcupine.ReturnEvent {
			outputs[index[ev.Id]] = ev.Value.(Output)
		}
	}
	var out [][]porcupine.Event
	for _, part := range partition(inputs, outputs) {
		in := map[int]Output{}
		for _, p := range part {
			in[p.index] = p.output
		}
		var evs []porcupine.Event
		for _, ev := range history {
			o, ok := in[index[ev.Id]]
			if !ok {
				continue
			}
			if ev.Kind == porcupine.ReturnEvent {
				ev.Value = o
			}
			evs = append(evs, ev)
		}
		out = append(out, evs)
	}
	return out
}

// ---- checking ----

// Operations returns the porcupine operations of history for NewModel:
// the writes and the linearizable reads (reads at a revision are left to
// CheckSnapshots), without the ops that were not applied. An
// unknown-outcome write returns after everything else (porcupine's
// treatment: it may linearize anywhere after its call, or never, which at
// the end changes nothing observed); one that a completed read saw (by
// its value) is claimed at the revision that read reported. Metadata is
// the op's ID.
func Operations(history []Op) []porcupine.Operation {
	resolved, _ := resolveUnknown(history)
	var last int64
	for _, op := range history {
		last = max(last, op.Call, op.Return)
	}
	var ops []porcupine.Operation
	for _, op := range resolved {
		switch {
		case op.Output.Outcome == NotApplied:
			continue
		case op.Output.Outcome == Unknown && !op.Input.IsWrite():
			continue
		case !op.Input.IsWrite() && !op.Input.IsLatestRead():
			continue
		}
		in := op.Input
		in.id = op.ID
		ret := op.Return
		if op.Output.Outcome == Unknown {
			ret = last + 1
		}
		ops = append(ops, porcupine.Operation{ClientId: op.ClientID, Input: in, Call: op.Call, Output: op.Output, Return: ret, Metadata: op.ID})
	}
	return ops
}

// DefaultCheckTimeout bounds CheckLinearizable when given no timeout.
const DefaultCheckTimeout = 10 * time.Second

// LinearizabilityError is CheckLinearizable's error: porcupine found the
// history Illegal, or gave up (Unknown) within the timeout. Unknown is no
// pass: shrink the history (fewer ops per key, fewer unknown outcomes,
// less concurrency) or raise the timeout.
type LinearizabilityError struct {
	Result porcupine.CheckResult
	// Info is porcupine's, for Visualize.
	Info porcupine.LinearizationInfo
	// Ops is how many operations were checked.
	Ops int
}

func (e *LinearizabilityError) Error() string {
	if e.Result == porcupine.Unknown {
		return fmt.Sprintf("porcupine gave up on %d operations within the timeout (Unknown): not a pass; check fewer operations per key or fewer unknown outcomes", e.Ops)
	}
	return fmt.Sprintf("porcupine: %d operations are %s (not linearizable with revisions)", e.Ops, e.Result)
}

// Visualize writes porcupine's HTML visualization of the check to path.
func (e *LinearizabilityError) Visualize(path string) error {
	return porcupine.VisualizePath(NewModel(), e.Info, path)
}

// CheckLinearizable checks history against NewModel, within timeout
// (DefaultCheckTimeout if ≤ 0). It returns nil if porcupine found it
// linearizable, a *LinearizabilityError otherwise, or an error for a
// malformed history (IDs not unique and positive).
func CheckLinearizable(history []Op, timeout time.Duration) error {
	if err := validate(history); err != nil {
		return err
	}
	if timeout <= 0 {
		timeout = DefaultCheckTimeout
	}
	ops := Operations(history)
	res, info := porcupine.CheckOperationsVerbose(NewModel(), ops, timeout)
	if res == porcupine.Ok {
		return nil
	}
	return &LinearizabilityError{Result: res, Info: info, Ops: len(ops)}
}

// ErrMalformed is returned for a history the checkers cannot read.
var ErrMalformed = errors.New("revcheck: malformed history")

// validate reports a history whose IDs are not unique and positive.
func validate(history []Op) error {
	seen := make(map[int]bool, len(history))
	for _, op := range history {
		if op.ID <= 0 || seen[op.ID] {
			return fmt.Errorf("%w: op ID %d repeated or not positive: %s", ErrMalformed, op.ID, op)
		}
		seen[op.ID] = true
	}
	return nil
}
