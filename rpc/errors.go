// Copyright 2026 The Flotilla Authors. All rights reserved.

package rpc

import (
	"context"
	"errors"

	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Errors of the Node service that callers tell apart.
var (
	// ErrAlreadyInitialized: Init was sent to a node that is already part of
	// a cluster.
	ErrAlreadyInitialized = errors.New("node is already part of a cluster")
	// ErrNotInitialized: the node is not part of a cluster yet (it waits for
	// init or to join).
	ErrNotInitialized = errors.New("node is not part of a cluster yet")
	// ErrPeerUnreachable: Init was refused because a peer that could
	// already belong to a cluster did not answer (or is being initialized
	// itself); retry once the peers are up. gRPC code Aborted.
	ErrPeerUnreachable = errors.New("cannot tell whether a cluster exists")
)

// StatusError converts a service's error to a gRPC status error. A
// *flotillapb.Error travels as the status's detail, with a code chosen by
// its kind; the Node service's sentinels get their codes; context errors
// keep theirs. It is the only place Flotilla's errors become gRPC codes.
func StatusError(err error) error {
	if err == nil {
		return nil
	}
	var fe *flotillapb.Error
	if errors.As(err, &fe) {
		st := status.New(codeOf(fe), fe.Error())
		if withDetail, derr := st.WithDetails(fe); derr == nil {
			st = withDetail
		}
		return st.Err()
	}
	switch {
	case errors.Is(err, ErrAlreadyInitialized):
		return status.Error(codes.FailedPrecondition, err.Error())
	case errors.Is(err, ErrNotInitialized):
		return status.Error(codes.Unavailable, err.Error())
	case errors.Is(err, ErrPeerUnreachable):
		return status.Error(codes.Aborted, err.Error())
	case errors.Is(err, context.DeadlineExceeded):
		return status.Error(codes.DeadlineExceeded, err.Error())
	case errors.Is(err, context.Canceled):
		return status.Error(codes.Canceled, err.Error())
	}
	if _, ok := status.FromError(err); ok {
		return err
	}
	return status.Error(codes.Internal, err.Error())
}

func codeOf(e *flotillapb.Error) codes.Code {
	switch e.GetDetail().(type) {
	case *flotillapb.Error_NotLeader, *flotillapb.Error_Unavailable:
		return codes.Unavailable
	case *flotillapb.Error_EpochNotMatch, *flotillapb.Error_KeyNotInRange:
		return codes.FailedPrecondition
	case *flotillapb.Error_RangeNotFound:
		return codes.NotFound
	case *flotillapb.Error_ServerBusy, *flotillapb.Error_NoSpace:
		return codes.ResourceExhausted
	case *flotillapb.Error_InvalidArgument:
		return codes.InvalidArgument
	}
	return codes.Unknown
}

// ErrorFromStatus recovers the *flotillapb.Error a server attached to a gRPC
// error. For a failure without one (the connection failed, the deadline
// passed, the message was refused by gRPC) it builds one; a write's outcome
// is then UNKNOWN unless the code proves the server never ran it. An error
// that is a *flotillapb.Error already (one a KVHandler returned) is
// returned as it is. It returns nil for a nil error.
func ErrorFromStatus(err error, write bool) *flotillapb.Error {
	if err == nil {
		return nil
	}
	if fe := (*flotillapb.Error)(nil); errors.As(err, &fe) && fe != nil {
		return fe
	}
	st, ok := status.FromError(err)
	if !ok {
		return newUnavailable(err.Error(), write)
	}
	for _, d := range st.Details() {
		if fe, ok := d.(*flotillapb.Error); ok {
			return fe
		}
	}
	switch st.Code() {
	case codes.ResourceExhausted:
		// An oversized request is refused before any handler runs, but an
		// oversized response is refused after it ran.
		return &flotillapb.Error{
			Message: st.Message(),
			Outcome: writeOutcome(write, flotillapb.Outcome_UNKNOWN),
			Detail:  &flotillapb.Error_InvalidArgument{InvalidArgument: &flotillapb.InvalidArgument{}},
		}
	case codes.InvalidArgument, codes.OutOfRange:
		// gRPC refuses malformed messages before any handler runs.
		return &flotillapb.Error{
			Message: st.Message(),
			Outcome: writeOutcome(write, flotillapb.Outcome_NOT_APPLIED),
			Detail:  &flotillapb.Error_InvalidArgument{InvalidArgument: &flotillapb.InvalidArgument{}},
		}
	case codes.Unimplemented, codes.FailedPrecondition, codes.PermissionDenied, codes.Unauthenticated:
		return &flotillapb.Error{
			Message: st.Message(),
			Outcome: writeOutcome(write, flotillapb.Outcome_NOT_APPLIED),
			Detail:  &flotillapb.Error_Unavailable{Unavailable: &flotillapb.Unavailable{}},
		}
	}
	return newUnavailable(st.Message(), write)
}

func newUnavailable(msg string, write bool) *flotillapb.Error {
	return &flotillapb.Error{
		Message: msg,
		Outcome: writeOutcome(write, flotillapb.Outcome_UNKNOWN),
		Detail:  &flotillapb.Error_Unavailable{Unavailable: &flotillapb.Unavailable{}},
	}
}

func writeOutcome(write bool, o flotillapb.Outcome) flotillapb.Outcome {
	if !write {
		return flotillapb.Outcome_OUTCOME_UNSPECIFIED
	}
	return o
}
