// Copyright 2026 The Flotilla Authors. All rights reserved.

package shard

import (
	"errors"
	"fmt"

	"github.com/flotilladb/flotilla/multiraft"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"google.golang.org/protobuf/proto"
)

// Every error the Store returns is a *flotillapb.Error. Its Outcome says, for
// a write, whether it certainly was not applied (NOT_APPLIED) or may have
// been (UNKNOWN); reads carry OUTCOME_UNSPECIFIED. The constructors below
// take the outcome from the caller, who knows whether the request is a read
// or a write.

func invalidArgument(outcome flotillapb.Outcome, field, format string, args ...any) *flotillapb.Error {
	return &flotillapb.Error{
		Message: fmt.Sprintf("invalid %s: %s", field, fmt.Sprintf(format, args...)),
		Outcome: outcome,
		Detail:  &flotillapb.Error_InvalidArgument{InvalidArgument: &flotillapb.InvalidArgument{Field: field}},
	}
}

func rangeNotFound(outcome flotillapb.Outcome, id multiraft.GroupID, format string, args ...any) *flotillapb.Error {
	return &flotillapb.Error{
		Message: fmt.Sprintf(format, args...),
		Outcome: outcome,
		Detail:  &flotillapb.Error_RangeNotFound{RangeNotFound: &flotillapb.RangeNotFound{RangeId: uint64(id)}},
	}
}

// epochNotMatch carries a copy of the current descriptor.
func epochNotMatch(outcome flotillapb.Outcome, desc *flotillapb.RangeDescriptor, version uint64) *flotillapb.Error {
	return &flotillapb.Error{
		Message: fmt.Sprintf("range %d is at version %d, the request was routed at version %d",
			desc.GetRangeId(), desc.GetEpoch().GetVersion(), version),
		Outcome: outcome,
		Detail: &flotillapb.Error_EpochNotMatch{EpochNotMatch: &flotillapb.EpochNotMatch{
			Current: []*flotillapb.RangeDescriptor{desc.Clone()},
		}},
	}
}

// keyNotInRange carries a copy of the current descriptor.
func keyNotInRange(outcome flotillapb.Outcome, key []byte, desc *flotillapb.RangeDescriptor) *flotillapb.Error {
	return &flotillapb.Error{
		Message: fmt.Sprintf("key %q is outside range %d [%q, %q)",
			key, desc.GetRangeId(), desc.GetStartKey(), desc.GetEndKey()),
		Outcome: outcome,
		Detail: &flotillapb.Error_KeyNotInRange{KeyNotInRange: &flotillapb.KeyNotInRange{
			Key: append([]byte(nil), key...), Range: desc.Clone(),
		}},
	}
}

// notLeader names the leader when leader is non-zero.
func notLeader(outcome flotillapb.Outcome, id multiraft.GroupID, leader multiraft.ReplicaID) *flotillapb.Error {
	nl := &flotillapb.NotLeader{RangeId: uint64(id)}
	msg := fmt.Sprintf("this replica of range %d is not its leader; the leader is unknown", id)
	if leader != 0 {
		nl.Leader = &flotillapb.ReplicaDescriptor{StoreId: uint64(leader.Node()), ReplicaId: uint64(leader)}
		msg = fmt.Sprintf("this replica of range %d is not its leader; the leader is replica %s on store %d", id, leader, leader.Node())
	}
	return &flotillapb.Error{
		Message: msg,
		Outcome: outcome,
		Detail:  &flotillapb.Error_NotLeader{NotLeader: nl},
	}
}

func unavailable(outcome flotillapb.Outcome, format string, args ...any) *flotillapb.Error {
	return &flotillapb.Error{
		Message: fmt.Sprintf(format, args...),
		Outcome: outcome,
		Detail:  &flotillapb.Error_Unavailable{Unavailable: &flotillapb.Unavailable{}},
	}
}

// proposalError maps the error of a proposal's Wait to a *flotillapb.Error.
// The outcome travels in the error's Outcome; its message is the cause's
// alone, or the outcome would be told twice ("…; outcome unknown (outcome
// unknown)").
func proposalError(id multiraft.GroupID, err error) *flotillapb.Error {
	var ambiguous *multiraft.AmbiguousError
	var notApplied *multiraft.NotAppliedError
	switch {
	case errors.As(err, &ambiguous):
		return unavailable(flotillapb.Outcome_UNKNOWN, "range %d: %v", id, ambiguous.Err)
	case errors.Is(err, multiraft.ErrNotLeader):
		return notLeader(flotillapb.Outcome_NOT_APPLIED, id, multiraft.LeaderHint(err))
	case errors.Is(err, multiraft.ErrGroupNotFound):
		return rangeNotFound(flotillapb.Outcome_NOT_APPLIED, id, "range %d: %v", id, err)
	case errors.As(err, &notApplied):
		return unavailable(flotillapb.Outcome_NOT_APPLIED, "range %d: %v", id, notApplied.Err)
	}
	// multiraft promises one of the two kinds; anything else may have been
	// applied as far as we know.
	return unavailable(flotillapb.Outcome_UNKNOWN, "range %d: %v", id, err)
}

// readIndexError maps the error of a ReadIndex to a *flotillapb.Error.
func readIndexError(id multiraft.GroupID, err error) *flotillapb.Error {
	const outcome = flotillapb.Outcome_OUTCOME_UNSPECIFIED
	switch {
	case errors.Is(err, multiraft.ErrNotLeader):
		return notLeader(outcome, id, multiraft.LeaderHint(err))
	case errors.Is(err, multiraft.ErrGroupNotFound):
		return rangeNotFound(outcome, id, "range %d: %v", id, err)
	}
	// ErrReadFailed (retry), ErrStopped, or the caller's context ending.
	return unavailable(outcome, "range %d: read index: %v", id, err)
}

// storageError reports a failure of the local engine.
func storageError(outcome flotillapb.Outcome, id multiraft.GroupID, err error) *flotillapb.Error {
	return unavailable(outcome, "range %d: reading the engine: %v", id, err)
}

// compacted: a read below the range's compacted revision.
func compacted(id multiraft.GroupID, rev, compactRev int64) *flotillapb.Error {
	return &flotillapb.Error{
		Message: fmt.Sprintf("revision %d of range %d has been compacted (compacted revision %d)", rev, id, compactRev),
		Outcome: readOutcome,
		Detail:  &flotillapb.Error_Compacted{Compacted: &flotillapb.Compacted{CompactRevision: compactRev}},
	}
}

// futureRevision: a read above the oracle's current revision.
func futureRevision(outcome flotillapb.Outcome, rev, current int64) *flotillapb.Error {
	return &flotillapb.Error{
		Message: fmt.Sprintf("revision %d is a future revision (the current revision is %d)", rev, current),
		Outcome: outcome,
		Detail:  &flotillapb.Error_FutureRevision{FutureRevision: &flotillapb.FutureRevision{CurrentRevision: current}},
	}
}

// oracleError maps the error of asking the revision oracle to a
// *flotillapb.Error: nothing was proposed, so a write was not applied.
func oracleError(outcome flotillapb.Outcome, id multiraft.GroupID, err error) *flotillapb.Error {
	var fe *flotillapb.Error
	if errors.As(err, &fe) {
		e := proto.Clone(fe).(*flotillapb.Error)
		e.Outcome = outcome
		e.Message = fmt.Sprintf("range %d: asking the revision oracle: %s", id, fe.GetMessage())
		return e
	}
	return unavailable(outcome, "range %d: asking the revision oracle: %v", id, err)
}
