// Copyright 2026 The Flotilla Authors. All rights reserved.

package multiraft

import (
	"errors"
	"fmt"
)

// Errors a proposal (or read) can end with. Every error returned for a
// proposal is either a *NotAppliedError, when the command was certainly not
// and will never be applied, or an *AmbiguousError, when it may or may not
// have been applied. Use IsNotApplied and IsAmbiguous, or errors.As.
var (
	// ErrNotLeader: the local replica is not the group's leader.
	ErrNotLeader = errors.New("multiraft: not leader")
	// ErrProposalDropped: raft dropped the proposal (e.g. during a leader
	// transfer) or a new leader overwrote its entry.
	ErrProposalDropped = errors.New("multiraft: proposal dropped")
	// ErrStopped: the host is shutting down.
	ErrStopped = errors.New("multiraft: host stopped")
	// ErrGroupNotFound: the host has no replica of the group.
	ErrGroupNotFound = errors.New("multiraft: group not found")
	// ErrTimeout: the caller stopped waiting before the outcome was known.
	ErrTimeout = errors.New("multiraft: timed out waiting for the outcome")
	// ErrGroupExists: the group is already on this host.
	ErrGroupExists = errors.New("multiraft: group already exists")
)

// NotAppliedError says the command was certainly not applied and never will
// be; it is safe to retry. A proposal ends so when the local replica is not
// the leader, when raft dropped it or refused it (a membership change while
// another is pending), when another entry was applied or appended at its
// index, or when the host stopped or the caller gave up before it reached
// raft.
type NotAppliedError struct {
	Err error
	// Leader is the leader's replica ID if known, with ErrNotLeader.
	Leader ReplicaID
}

func (e *NotAppliedError) Error() string {
	if e.Leader != 0 {
		return fmt.Sprintf("%v (leader is replica %s); not applied", e.Err, e.Leader)
	}
	return e.Err.Error() + "; not applied"
}

func (e *NotAppliedError) Unwrap() error { return e.Err }

// AmbiguousError says the command may or may not have been applied: the
// caller gave up after it reached raft, the host stopped or the replica was
// removed with it in the log, or a snapshot replaced the log at its index.
type AmbiguousError struct {
	Err error
}

func (e *AmbiguousError) Error() string { return e.Err.Error() + "; outcome unknown" }

func (e *AmbiguousError) Unwrap() error { return e.Err }

// IsNotApplied reports whether err says the command was certainly not
// applied.
func IsNotApplied(err error) bool {
	var na *NotAppliedError
	return errors.As(err, &na)
}

// IsAmbiguous reports whether err says the command's outcome is unknown.
func IsAmbiguous(err error) bool {
	var ae *AmbiguousError
	return errors.As(err, &ae)
}

// LeaderHint returns the leader named by a not-leader error, or 0.
func LeaderHint(err error) ReplicaID {
	var na *NotAppliedError
	if errors.As(err, &na) {
		return na.Leader
	}
	return 0
}

func notApplied(err error) error { return &NotAppliedError{Err: err} }
func ambiguous(err error) error  { return &AmbiguousError{Err: err} }
