// Copyright 2026 The Flotilla Authors. All rights reserved.

package shard

import (
	"bytes"
	"fmt"
	"time"

	"github.com/flotilladb/flotilla/engine"
	"github.com/flotilladb/flotilla/multiraft"
	"github.com/flotilladb/flotilla/placement"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
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
	desc, stats := r.mu.desc, r.mu.stats
	r.mu.Unlock()
	if desc == nil {
		// An uninitialized replica has no log to apply: its log starts
		// after the snapshot that initializes it.
		return nil, fmt.Errorf("shard: range %d: %d commands to apply on an uninitialized replica", r.id, len(cmds))
	}
	a := &applier{r: r, b: b, ov: newOverlay(r.store.eng), desc: desc, stats: stats}
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
	r.setState(a.desc, a.stats)
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
		return rejected(epochNotMatch(outcome, a.desc, v), c.Index), nil
	}
	// The value size limit is the proposer's configuration; replicas apply
	// the same commands whatever theirs.
	if e := validateOps(cmd.GetOps(), "ops", -1, outcome); e != nil {
		return rejected(e, c.Index), nil
	}
	if e := opsInRange(cmd.GetOps(), a.desc, outcome); e != nil {
		return rejected(e, c.Index), nil
	}
	results := make([]*flotillapb.OpResult, len(cmd.GetOps()))
	for i, op := range cmd.GetOps() {
		var err error
		if results[i], err = a.applyOp(op); err != nil {
			return multiraft.Result{}, err
		}
	}
	a.writeOps += int64(len(results))
	return multiraft.Result{Value: encodeResult(&flotillapb.KVCommandResult{Results: results}, c.Index)}, nil
}

// applyOp applies one validated op whose keys lie in the range.
func (a *applier) applyOp(op *flotillapb.Op) (*flotillapb.OpResult, error) {
	switch o := op.GetOp().(type) {
	case *flotillapb.Op_Put:
		return &flotillapb.OpResult{}, a.put(o.Put.GetKey(), o.Put.GetValue())
	case *flotillapb.Op_Delete:
		found, err := a.delete(o.Delete.GetKey())
		return &flotillapb.OpResult{Found: found}, err
	case *flotillapb.Op_DeleteRange:
		span := userSpan{start: o.DeleteRange.GetStartKey(), end: o.DeleteRange.GetEndKey()}
		keys, keyBytes, valueBytes, err := a.ov.deleteRange(span)
		if err != nil {
			return nil, err
		}
		if !span.empty() {
			es, err := engine.UserSpan(span.start, span.end)
			if err != nil {
				return nil, err
			}
			if err := a.b.DeleteRange(es); err != nil {
				return nil, err
			}
		}
		a.stats.keys -= keys
		a.stats.keyBytes -= keyBytes
		a.stats.valueBytes -= valueBytes
		return &flotillapb.OpResult{Deleted: keys}, nil
	case *flotillapb.Op_Cas:
		cas := o.Cas
		cur, found, err := a.ov.get(cas.GetKey())
		if err != nil {
			return nil, err
		}
		if cas.GetExpectAbsent() && !found || !cas.GetExpectAbsent() && found && bytes.Equal(cur, cas.GetExpected()) {
			return &flotillapb.OpResult{Swapped: true}, a.put(cas.GetKey(), cas.GetValue())
		}
		res := &flotillapb.OpResult{Found: found}
		if found {
			res.Current = append([]byte{}, cur...)
		}
		return res, nil
	}
	// validateOps let it through.
	panic(fmt.Sprintf("shard: applying an op of type %T", op.GetOp()))
}

func (a *applier) put(key, value []byte) error {
	old, found, err := a.ov.get(key)
	if err != nil {
		return err
	}
	ek, err := engine.UserKey(key)
	if err != nil {
		return err
	}
	if err := a.b.Set(ek, value); err != nil {
		return err
	}
	a.ov.set(key, value)
	if !found {
		a.stats.keys++
		a.stats.keyBytes += int64(len(key))
	}
	a.stats.valueBytes += int64(len(value)) - int64(len(old))
	return nil
}

func (a *applier) delete(key []byte) (found bool, _ error) {
	old, found, err := a.ov.get(key)
	if err != nil || !found {
		return false, err
	}
	ek, err := engine.UserKey(key)
	if err != nil {
		return false, err
	}
	if err := a.b.Delete(ek); err != nil {
		return false, err
	}
	a.ov.delete(key)
	a.stats.keys--
	a.stats.keyBytes -= int64(len(key))
	a.stats.valueBytes -= int64(len(old))
	return true, nil
}

// applyConfChange updates the descriptor's replicas from a membership
// change (placement.ChangeReplicas): the conf_ver goes up by one; leaving a
// joint configuration changes nothing. A change the descriptor cannot take
// (another expected conf_ver, an invalid replica ID, two replicas on one
// store, no voter left) is rejected with Result.Err, and raft then applies
// it as no change.
func (a *applier) applyConfChange(c multiraft.Command) (multiraft.Result, error) {
	desc, err := placement.ChangeReplicas(a.desc, c.ConfChange)
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
