// Copyright 2026 The Flotilla Authors. All rights reserved.

package shard

import (
	"bytes"
	"fmt"
	"time"

	"github.com/flotilladb/flotilla/engine"
	"github.com/flotilladb/flotilla/multiraft"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"github.com/flotilladb/flotilla/rpc/flotillapb/confchange"
	"google.golang.org/protobuf/proto"
)

// Apply implements multiraft.StateMachine. Each CommandNormal is a
// marshalled flotillapb.KVCommand, checked again here against the range, its
// epoch version and its bounds (a command that fails the checks, or does not
// decode, writes nothing and returns a Result whose Err is the
// *flotillapb.Error, also set in the KVCommandResult of its Value). A
// CommandConfChange updates the descriptor's replicas and bumps its conf_ver.
// The statistics are updated from the values the ops replace and written
// with the data.
func (r *Replica) Apply(b *engine.Batch, cmds []multiraft.Command) ([]multiraft.Result, error) {
	r.mu.Lock()
	desc, stats, revs := r.mu.desc, r.mu.stats, r.mu.revs
	r.mu.Unlock()
	if desc == nil {
		// An uninitialized replica has no log to apply: its log starts
		// after the snapshot that initializes it.
		return nil, fmt.Errorf("shard: range %d: %d commands to apply on an uninitialized replica", r.id, len(cmds))
	}
	versions := &r.versions
	if r.store.testingKnob(func(k *TestingKnobs) bool { return k.UnsafeApplyBelowLast }) {
		// Writes land below the newest version: the cache would not
		// know the newest.
		versions = &versionCache{}
	}
	a := &applier{r: r, b: b, ov: newOverlay(r.store.eng, b, versions), desc: desc, stats: stats, revs: revs}
	results := make([]multiraft.Result, len(cmds))
	for i, c := range cmds {
		var err error
		switch c.Kind {
		case multiraft.CommandNormal:
			results[i], err = a.applyKV(c)
		case multiraft.CommandConfChange:
			results[i], err = a.applyConfChange(c)
		default:
			results[i] = multiraft.Result{Err: invalidArgument(flotillapb.Outcome_NOT_APPLIED, "command", "unknown command kind %d", c.Kind)}
		}
		if err != nil {
			return nil, fmt.Errorf("shard: range %d: applying entry %d: %w", r.id, c.Index, err)
		}
	}
	if a.stats != stats {
		data, err := proto.MarshalOptions{Deterministic: true}.Marshal(a.stats.proto())
		if err != nil {
			return nil, err
		}
		if err := b.Set(engine.RangeStatsKey(r.id), data); err != nil {
			return nil, err
		}
	}
	if a.revs != revs {
		data, err := a.revs.marshal()
		if err != nil {
			return nil, err
		}
		if err := b.Set(engine.RangeRevisionsKey(r.id), data); err != nil {
			return nil, err
		}
	}
	r.setState(a.desc, a.stats, a.revs)
	if a.writeOps > 0 {
		r.writes.add(time.Now(), a.writeOps)
	}
	return results, nil
}

// applier is the state of one Apply call.
type applier struct {
	r  *Replica
	b  *engine.Batch
	ov *overlay
	// desc and stats are the range's state as of the commands applied so
	// far in this call.
	desc     *flotillapb.RangeDescriptor
	stats    rangeStats
	revs     revState
	writeOps int64
}

// rejected is the Result of a command that failed its checks.
func rejected(e *flotillapb.Error, index uint64) multiraft.Result {
	return multiraft.Result{Err: e, Value: encodeResult(&flotillapb.KVCommandResult{Error: e}, index)}
}

func encodeResult(res *flotillapb.KVCommandResult, index uint64) []byte {
	res.AppliedIndex = index
	data, err := proto.Marshal(res)
	if err != nil {
		// Marshalling a message we built cannot fail.
		panic(fmt.Sprintf("shard: marshalling a command result: %v", err))
	}
	return data
}

// decodeResult reverses encodeResult.
func decodeResult(data []byte) (*flotillapb.KVCommandResult, uint64, error) {
	res := &flotillapb.KVCommandResult{}
	if err := proto.Unmarshal(data, res); err != nil {
		return nil, 0, err
	}
	return res, res.GetAppliedIndex(), nil
}

func (a *applier) applyKV(c multiraft.Command) (multiraft.Result, error) {
	const outcome = flotillapb.Outcome_NOT_APPLIED
	var cmd flotillapb.KVCommand
	if err := proto.Unmarshal(c.Data, &cmd); err != nil {
		a.r.store.logger.Warn("rejecting a malformed command", "range", a.r.id, "index", c.Index, "err", err)
		return rejected(invalidArgument(outcome, "command", "does not decode: %v", err), c.Index), nil
	}
	if cmd.GetRangeId() != uint64(a.r.id) {
		return rejected(rangeNotFound(outcome, multiraft.GroupID(cmd.GetRangeId()),
			"a command for range %d reached range %d", cmd.GetRangeId(), a.r.id), c.Index), nil
	}
	if v := cmd.GetVersion(); v != a.desc.GetEpoch().GetVersion() {
		return rejected(a.r.epochNotMatch(outcome, a.desc, v), c.Index), nil
	}
	if cmd.GetSplit() != nil {
		if len(cmd.GetOps()) > 0 {
			return rejected(invalidArgument(outcome, "ops", "a split command carries no ops"), c.Index), nil
		}
		return a.applySplit(c, cmd.GetSplit())
	}
	if cmd.GetClose() != 0 || cmd.GetCompact() != 0 {
		return a.applyClose(c, &cmd)
	}
	// The value size limit is the proposer's configuration; replicas apply
	// the same commands whatever theirs.
	txn := cmd.GetTxn()
	if e := validateCommandOps(&cmd, txn, outcome); e != nil {
		return rejected(e, c.Index), nil
	}
	for _, ops := range [][]*flotillapb.Op{cmd.GetOps(), cmd.GetFailure()} {
		if e := opsInRange(ops, a.desc, outcome); e != nil {
			return rejected(e, c.Index), nil
		}
	}
	rs := spanOf(a.desc)
	for _, cmp := range cmd.GetCompares() {
		if !rs.contains(cmp.GetKey()) {
			return rejected(keyNotInRange(outcome, cmp.GetKey(), a.desc), c.Index), nil
		}
	}
	if refused := a.checkRevision(c, &cmd); refused != nil {
		res := &flotillapb.KVCommandResult{Error: refused, RevisionRefused: true}
		return multiraft.Result{Err: refused, Value: encodeResult(res, c.Index)}, nil
	}
	rev := cmd.GetRevision()
	// at is the revision the versions are written at: rev, except under
	// UnsafeApplyBelowLast.
	at := rev
	if a.r.store.testingKnob(func(k *TestingKnobs) bool { return k.UnsafeApplyBelowLast }) && a.revs.last > 1 {
		at = a.revs.last - 1
	}
	succeeded := true
	for _, cmp := range cmd.GetCompares() {
		ok, err := a.compare(cmp)
		if err != nil {
			return multiraft.Result{}, err
		}
		if !ok {
			succeeded = false
			break
		}
	}
	ops := cmd.GetOps()
	if !succeeded {
		ops = cmd.GetFailure()
	}
	results := make([]*flotillapb.OpResult, len(ops))
	for i, op := range ops {
		var err error
		if results[i], err = a.applyOp(op, at); err != nil {
			return multiraft.Result{}, err
		}
	}
	a.writeOps += int64(len(results))
	a.revs.last = max(a.revs.last, rev)
	res := &flotillapb.KVCommandResult{Results: results, Revision: rev, Succeeded: succeeded}
	return multiraft.Result{Value: encodeResult(res, c.Index)}, nil
}

// validateCommandOps checks a command's ops: a plain write needs at least
// one; a txn's branches may be empty.
func validateCommandOps(cmd *flotillapb.KVCommand, txn bool, outcome flotillapb.Outcome) *flotillapb.Error {
	if !txn {
		return validateOps(cmd.GetOps(), "ops", -1, outcome)
	}
	for i, c := range cmd.GetCompares() {
		if field, p := flotillapb.CheckCompare(c, fmt.Sprintf("compares[%d].", i), -1); p != "" {
			return invalidArgument(outcome, field, "%s", p)
		}
	}
	for _, branch := range []struct {
		name string
		ops  []*flotillapb.Op
	}{{"ops", cmd.GetOps()}, {"failure", cmd.GetFailure()}} {
		if len(branch.ops) > 0 {
			if e := validateOps(branch.ops, branch.name, -1, outcome); e != nil {
				return e
			}
		}
	}
	return nil
}

// compare evaluates a txn's compare as etcd does: a compare on the value
// of a missing key fails; the other targets of a missing key are 0.
func (a *applier) compare(c *flotillapb.Compare) (bool, error) {
	v, found, err := a.ov.get(c.GetKey())
	if err != nil {
		return false, err
	}
	return compareVersion(c, v, found), nil
}

// compareVersion evaluates c against a key's version (found: the key
// exists).
func compareVersion(c *flotillapb.Compare, v engine.Version, found bool) bool {
	if !found {
		v = engine.Version{} // a missing (or deleted) key's targets are 0
	}
	var r int
	switch c.GetTarget() {
	case flotillapb.Compare_VALUE:
		if !found {
			return false
		}
		r = bytes.Compare(v.Value, c.GetValue())
	case flotillapb.Compare_VERSION:
		r = cmpInt(v.Version, c.GetVersion())
	case flotillapb.Compare_CREATE:
		r = cmpInt(v.CreateRevision, c.GetCreateRevision())
	case flotillapb.Compare_MOD:
		r = cmpInt(v.ModRevision, c.GetModRevision())
	default:
		return false
	}
	switch c.GetResult() {
	case flotillapb.Compare_EQUAL:
		return r == 0
	case flotillapb.Compare_NOT_EQUAL:
		return r != 0
	case flotillapb.Compare_LESS:
		return r < 0
	case flotillapb.Compare_GREATER:
		return r > 0
	}
	return false
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// applyOp applies one validated op whose keys lie in the range, at rev.
func (a *applier) applyOp(op *flotillapb.Op, rev int64) (*flotillapb.OpResult, error) {
	switch o := op.GetOp().(type) {
	case *flotillapb.Op_Put:
		return &flotillapb.OpResult{}, a.put(o.Put.GetKey(), o.Put.GetValue(), rev)
	case *flotillapb.Op_Delete:
		found, err := a.delete(o.Delete.GetKey(), rev)
		return &flotillapb.OpResult{Found: found}, err
	case *flotillapb.Op_DeleteRange:
		span := userSpan{start: o.DeleteRange.GetStartKey(), end: o.DeleteRange.GetEndKey()}
		kvs, err := a.ov.live(span)
		if err != nil {
			return nil, err
		}
		for _, kv := range kvs {
			if _, err := a.delete(kv.key, rev); err != nil {
				return nil, err
			}
		}
		return &flotillapb.OpResult{Deleted: int64(len(kvs))}, nil
	case *flotillapb.Op_Cas:
		cas := o.Cas
		cur, found, err := a.ov.get(cas.GetKey())
		if err != nil {
			return nil, err
		}
		if cas.GetExpectAbsent() && !found || !cas.GetExpectAbsent() && found && bytes.Equal(cur.Value, cas.GetExpected()) {
			return &flotillapb.OpResult{Swapped: true}, a.put(cas.GetKey(), cas.GetValue(), rev)
		}
		res := &flotillapb.OpResult{Found: found}
		if found {
			res.Current = bytes.Clone(cur.Value)
		}
		return res, nil
	}
	// validateOps let it through.
	panic(fmt.Sprintf("shard: applying an op of type %T", op.GetOp()))
}

func (a *applier) put(key, value []byte, rev int64) error {
	oldLen, found, err := a.ov.put(key, value, rev)
	if err != nil {
		return err
	}
	if !found {
		a.stats.keys++
		a.stats.keyBytes += int64(len(key))
	}
	a.stats.valueBytes += int64(len(value)) - int64(oldLen)
	return nil
}

func (a *applier) delete(key []byte, rev int64) (found bool, _ error) {
	oldLen, found, err := a.ov.delete(key, rev)
	if err != nil || !found {
		return false, err
	}
	a.stats.keys--
	a.stats.keyBytes -= int64(len(key))
	a.stats.valueBytes -= int64(oldLen)
	return true, nil
}

// checkRevision checks a write's revision (docs/REVISIONS.md, "The write
// path", step 4): it must be above the range's last and closed revisions,
// and asked for in the term of the command's own entry. A command that
// fails is refused as NOT_APPLIED with RevisionRefused set, so that its
// proposer may retry it with a new revision.
func (a *applier) checkRevision(c multiraft.Command, cmd *flotillapb.KVCommand) *flotillapb.Error {
	const outcome = flotillapb.Outcome_NOT_APPLIED
	rev := cmd.GetRevision()
	switch {
	case rev <= 0:
		return invalidArgument(outcome, "revision", "a write needs a positive revision, not %d", rev)
	case rev <= a.revs.last && !a.r.store.testingKnob(func(k *TestingKnobs) bool { return k.UnsafeApplyBelowLast }):
		return unavailable(outcome, "range %d: revision %d is not above the range's last revision %d", a.r.id, rev, a.revs.last)
	case rev <= a.revs.closed:
		return unavailable(outcome, "range %d: revision %d is at or below the range's closed revision %d", a.r.id, rev, a.revs.closed)
	case cmd.GetRequestTerm() != c.Term && !a.r.store.testingKnob(func(k *TestingKnobs) bool { return k.UnsafeSkipRequestTermCheck }):
		return unavailable(outcome, "range %d: revision %d was asked for in term %d, the entry is of term %d",
			a.r.id, rev, cmd.GetRequestTerm(), c.Term)
	}
	return nil
}

// applyClose applies a "closed at C" command, and a compaction (which
// closes at its revision too): both only ever raise their revision.
func (a *applier) applyClose(c multiraft.Command, cmd *flotillapb.KVCommand) (multiraft.Result, error) {
	const outcome = flotillapb.Outcome_NOT_APPLIED
	if len(cmd.GetOps()) > 0 || cmd.GetRevision() != 0 {
		return rejected(invalidArgument(outcome, "ops", "a close or compact command carries no ops and no revision"), c.Index), nil
	}
	closeAt, compact := cmd.GetClose(), cmd.GetCompact()
	if closeAt < 0 || compact < 0 {
		return rejected(invalidArgument(outcome, "revision", "negative revision"), c.Index), nil
	}
	a.revs.closed = max(a.revs.closed, closeAt, compact)
	if compact > a.revs.compacted {
		// Remove the versions no read at or above compact can see. The
		// engine holds the state as of the previous Apply; versions this
		// call wrote stay (reads may see them), which the data hash
		// allows for (hashVersions). The version cache stays exact: a
		// key's newest version survives, unless it is a tombstone, and a
		// key with none is as absent as one whose newest is one.
		if _, _, err := engine.MVCCCompact(a.r.store.eng, a.b, a.desc.GetStartKey(), a.desc.GetEndKey(), compact, 0); err != nil {
			return multiraft.Result{}, err
		}
		a.revs.compacted = compact
	}
	return multiraft.Result{Value: encodeResult(&flotillapb.KVCommandResult{}, c.Index)}, nil
}

// applyConfChange updates the descriptor's replicas from a membership
// change (confchange.ChangeReplicas): the conf_ver goes up by one; leaving a
// joint configuration changes nothing. A change the descriptor cannot take
// (another expected conf_ver, an invalid replica ID, two replicas on one
// store, no voter left) is rejected with Result.Err, and raft then applies
// it as no change.
func (a *applier) applyConfChange(c multiraft.Command) (multiraft.Result, error) {
	desc, err := confchange.ChangeReplicas(a.desc, c.ConfChange)
	if err != nil {
		e := invalidArgument(flotillapb.Outcome_NOT_APPLIED, "conf_change", "%v", err)
		a.r.store.logger.Warn("rejecting a membership change", "range", a.r.id, "index", c.Index, "err", e)
		return multiraft.Result{Err: e}, nil
	}
	if desc == a.desc {
		return multiraft.Result{}, nil
	}
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(desc)
	if err != nil {
		return multiraft.Result{}, err
	}
	if err := a.b.Set(engine.RangeDescriptorKey(a.r.id), data); err != nil {
		return multiraft.Result{}, err
	}
	a.desc = desc
	return multiraft.Result{}, nil
}

// applySplit splits the range at the command's key (see SplitCommand): the
// descriptor narrows to the left part and its version goes up; the new
// right-hand range gets the rest of the span, a replica on every store of
// this one (same types, the command's replica IDs), the same epoch, and the
// statistics of its part of the data, which stays where it is. The host
// creates the new range's group in the same batch (multiraft.NewGroup). A
// split the descriptor cannot take (another conf_ver, a key outside the
// range or at its start, replica IDs that do not match) is rejected.
func (a *applier) applySplit(c multiraft.Command, sc *flotillapb.SplitCommand) (multiraft.Result, error) {
	const outcome = flotillapb.Outcome_NOT_APPLIED
	right, e := splitDescriptors(a.desc, sc, outcome)
	if e != nil {
		a.r.store.logger.Warn("rejecting a split", "range", a.r.id, "index", c.Index, "err", e)
		return rejected(e, c.Index), nil
	}
	left := a.desc.Clone()
	left.EndKey = bytes.Clone(sc.GetSplitKey())
	left.Epoch.Version = right.GetEpoch().GetVersion()
	rightSpan := spanOf(right)
	keys, keyBytes, valueBytes, err := a.ov.stats(rightSpan)
	if err != nil {
		return multiraft.Result{}, err
	}
	rightStats := rangeStats{keys: keys, keyBytes: keyBytes, valueBytes: valueBytes}
	a.stats.keys -= keys
	a.stats.keyBytes -= keyBytes
	a.stats.valueBytes -= valueBytes
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(left)
	if err != nil {
		return multiraft.Result{}, err
	}
	if err := a.b.Set(engine.RangeDescriptorKey(a.r.id), data); err != nil {
		return multiraft.Result{}, err
	}
	a.desc = left
	// The right-hand keys leave; forget them (the cache holds no key of
	// another range).
	a.r.versions.reset()
	// Later commands of this call must not see the right-hand data through
	// the overlay as the left range's: they are checked against the new
	// descriptor, so none touches it.
	rightID := multiraft.GroupID(right.GetRangeId())
	rightRevs := a.revs
	// The right-hand span leaves this range when Apply returns, before the
	// batch commits and the new range starts: no snapshot may take it
	// meanwhile (it would be overwritten by this batch's data).
	a.r.store.reserve(rightID, rightSpan)
	ng := &multiraft.NewGroup{
		Done: func() { a.r.store.unreserve(rightID) },
		ID:   rightID,
		Init: func(b *engine.Batch) error {
			// The right-hand range starts with the left's revision state
			// as of the split: its keys' history is the left's
			// (docs/REVISIONS.md, Storage).
			return writeRangeState(b, right, rightStats, rightRevs)
		},
		Discard: func(b *engine.Batch) error {
			es, err := engine.MVCCSpan(rightSpan.start, rightSpan.end)
			if err != nil {
				return err
			}
			return b.DeleteRange(es)
		},
	}
	for _, rd := range right.GetReplicas() {
		ng.Replicas = append(ng.Replicas, multiraft.Replica{ID: multiraft.ReplicaID(rd.GetReplicaId()), Learner: rd.GetType() == flotillapb.ReplicaType_LEARNER})
	}
	a.r.noteSplit(right)
	a.r.resetLoad()
	a.r.store.logger.Info("range split", "range", a.r.id, "at", fmt.Sprintf("%q", sc.GetSplitKey()),
		"new", rightID, "version", left.GetEpoch().GetVersion(), "index", c.Index)
	res := &flotillapb.KVCommandResult{SplitDescriptors: []*flotillapb.RangeDescriptor{left.Clone(), right.Clone()}}
	return multiraft.Result{Value: encodeResult(res, c.Index), NewGroup: ng}, nil
}

// splitDescriptors checks a split against the range's descriptor and
// returns the right-hand range's descriptor.
func splitDescriptors(desc *flotillapb.RangeDescriptor, sc *flotillapb.SplitCommand, outcome flotillapb.Outcome) (*flotillapb.RangeDescriptor, *flotillapb.Error) {
	key := sc.GetSplitKey()
	if p := flotillapb.CheckKey(key); p != "" {
		return nil, invalidArgument(outcome, "split_key", "%s", p)
	}
	span := spanOf(desc)
	if !span.contains(key) || bytes.Equal(key, span.start) {
		return nil, keyNotInRange(outcome, key, desc)
	}
	if cv := sc.GetConfVer(); cv != desc.GetEpoch().GetConfVer() {
		return nil, invalidArgument(outcome, "conf_ver", "the split's replica IDs are for conf_ver %d, range %d is at %d",
			cv, desc.GetRangeId(), desc.GetEpoch().GetConfVer())
	}
	newID := sc.GetNewRangeId()
	if newID == 0 || newID == desc.GetRangeId() || newID == 1 {
		return nil, invalidArgument(outcome, "new_range_id", "invalid new range ID %d", newID)
	}
	ids := sc.GetNewReplicaIds()
	if len(ids) != len(desc.GetReplicas()) {
		return nil, invalidArgument(outcome, "new_replica_ids", "%d replica IDs for %d replicas", len(ids), len(desc.GetReplicas()))
	}
	right := &flotillapb.RangeDescriptor{
		RangeId:  newID,
		StartKey: bytes.Clone(key),
		EndKey:   bytes.Clone(desc.GetEndKey()),
		Epoch:    &flotillapb.RangeEpoch{ConfVer: desc.GetEpoch().GetConfVer(), Version: desc.GetEpoch().GetVersion() + 1},
	}
	for i, rd := range desc.GetReplicas() {
		id := multiraft.ReplicaID(ids[i])
		if !id.Valid() || uint64(id.Node()) != rd.GetStoreId() {
			return nil, invalidArgument(outcome, "new_replica_ids", "replica ID %v is not on store %d", id, rd.GetStoreId())
		}
		right.Replicas = append(right.Replicas, &flotillapb.ReplicaDescriptor{StoreId: rd.GetStoreId(), ReplicaId: ids[i], Type: rd.GetType()})
	}
	if err := validateDescriptor(right); err != nil {
		return nil, invalidArgument(outcome, "new_replica_ids", "%v", err)
	}
	return right, nil
}
