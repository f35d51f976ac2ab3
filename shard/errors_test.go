// Copyright 2026 The Flotilla Authors. All rights reserved.

package shard

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/flotilladb/flotilla/multiraft"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
)

func TestErrorMapping(t *testing.T) {
	leader := multiraft.MakeReplicaID(2, 5)
	const (
		notApplied  = flotillapb.Outcome_NOT_APPLIED
		unknown     = flotillapb.Outcome_UNKNOWN
		unspecified = flotillapb.Outcome_OUTCOME_UNSPECIFIED
	)
	isNotLeader := func(withHint bool) func(*flotillapb.Error) bool {
		return func(e *flotillapb.Error) bool {
			nl := e.GetNotLeader()
			if nl == nil || nl.GetRangeId() != 7 {
				return false
			}
			if !withHint {
				return nl.GetLeader() == nil
			}
			return nl.GetLeader().GetStoreId() == 2 && nl.GetLeader().GetReplicaId() == uint64(leader)
		}
	}
	isUnavailable := func(e *flotillapb.Error) bool { return e.GetUnavailable() != nil }
	isRangeNotFound := func(e *flotillapb.Error) bool { return e.GetRangeNotFound().GetRangeId() == 7 }
	for _, tc := range []struct {
		name    string
		err     *flotillapb.Error
		outcome flotillapb.Outcome
		check   func(*flotillapb.Error) bool
	}{
		{"not leader, hint", proposalError(7, &multiraft.NotAppliedError{Err: multiraft.ErrNotLeader, Leader: leader}), notApplied, isNotLeader(true)},
		{"not leader, no hint", proposalError(7, &multiraft.NotAppliedError{Err: multiraft.ErrNotLeader}), notApplied, isNotLeader(false)},
		{"dropped", proposalError(7, &multiraft.NotAppliedError{Err: multiraft.ErrProposalDropped}), notApplied, isUnavailable},
		{"stopped before proposing", proposalError(7, &multiraft.NotAppliedError{Err: multiraft.ErrStopped}), notApplied, isUnavailable},
		{"no group", proposalError(7, &multiraft.NotAppliedError{Err: fmt.Errorf("%w: 7", multiraft.ErrGroupNotFound)}), notApplied, isRangeNotFound},
		{"timeout after proposing", proposalError(7, &multiraft.AmbiguousError{Err: multiraft.ErrTimeout}), unknown, isUnavailable},
		{"removed after proposing", proposalError(7, &multiraft.AmbiguousError{Err: multiraft.ErrGroupNotFound}), unknown, isUnavailable},
		{"unexpected", proposalError(7, errors.New("boom")), unknown, isUnavailable},
		{"read: no leader", readIndexError(7, &multiraft.NotAppliedError{Err: multiraft.ErrNotLeader}), unspecified, isNotLeader(false)},
		{"read: failed", readIndexError(7, multiraft.ErrReadFailed), unspecified, isUnavailable},
		{"read: deadline", readIndexError(7, context.DeadlineExceeded), unspecified, isUnavailable},
		{"read: no group", readIndexError(7, fmt.Errorf("%w: 7", multiraft.ErrGroupNotFound)), unspecified, isRangeNotFound},
	} {
		if tc.err.GetOutcome() != tc.outcome || !tc.check(tc.err) || tc.err.GetMessage() == "" {
			t.Errorf("%s: %v (outcome %v)", tc.name, tc.err, tc.err.GetOutcome())
		}
	}
}
