// Copyright 2026 The Flotilla Authors. All rights reserved.

package target

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/flotilladb/flotilla"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The error classes ClassifyError returns, for the report's error counts.
const (
	// ClassTimeout: the operation's deadline passed (the caller's, or the
	// target's RequestTimeout), or the server said the request timed out.
	// A write that timed out may or may not have been applied.
	ClassTimeout = "timeout"
	// ClassCanceled: the caller canceled the operation (typically at the
	// end of a phase).
	ClassCanceled = "canceled"
	// ClassInvalid: the store refused the request as malformed (an empty
	// or oversized key, an oversized value, a negative scan limit).
	ClassInvalid = "invalid"
	// ClassOutcomeUnknown: a write that may or may not have been applied
	// (Flotilla only; etcd's errors do not say).
	ClassOutcomeUnknown = "outcome-unknown"
	// ClassNotApplied: a write that was certainly not applied, e.g. for
	// want of a leader (Flotilla only).
	ClassNotApplied = "not-applied"
	// ClassUnavailable: the store could not serve the request (no leader,
	// no quorum, unreachable servers, overload); for Flotilla, a failed
	// read.
	ClassUnavailable = "unavailable"
	// ClassOther: anything else.
	ClassOther = "other"
)

// DefaultRequestTimeout bounds an operation whose context has no deadline:
// the same as flotilla.DefaultRequestTimeout, for every target alike.
const DefaultRequestTimeout = flotilla.DefaultRequestTimeout

// errNegativeLimit is the error of a Scan with a negative limit, where the
// store would not refuse it itself (etcd takes it as "no limit").
var errNegativeLimit = errors.New("target: negative scan limit")

// withTimeout bounds ctx by timeout if it has no deadline of its own.
func withTimeout(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok || timeout <= 0 {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, timeout)
}

// withContextErr adds ctx's error to err, the error of an operation run
// with ctx, if ctx has ended and err does not already say so: Flotilla's
// client reports a request that ran out of time as unavailable (with an
// outcome), without the context's error, and the classes need it.
func withContextErr(ctx context.Context, err error) error {
	cerr := ctx.Err()
	if err == nil || cerr == nil || errors.Is(err, cerr) {
		return err
	}
	return fmt.Errorf("%w (%w)", err, cerr)
}

// classifyContext returns the class of a context error in err, or "".
func classifyContext(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return ClassTimeout
	case errors.Is(err, context.Canceled):
		return ClassCanceled
	}
	return ""
}

// classifyFlotilla is ClassifyError for the Flotilla targets. Context
// errors come first (a write that timed out has an unknown outcome too, but
// the timeout is its cause); then the request's own verdict: invalid, then
// a write's outcome, then unavailable for any other error of the store's.
func classifyFlotilla(err error) string {
	if err == nil {
		return ""
	}
	if c := classifyContext(err); c != "" {
		return c
	}
	var fe *flotilla.Error
	switch {
	case errors.Is(err, flotilla.ErrInvalidArgument), errors.Is(err, errNegativeLimit):
		return ClassInvalid
	case errors.Is(err, flotilla.ErrOutcomeUnknown):
		return ClassOutcomeUnknown
	case errors.Is(err, flotilla.ErrNotApplied):
		return ClassNotApplied
	case errors.As(err, &fe):
		// flotilla.ErrUnavailable matches every *flotilla.Error that is not
		// invalid: test the type, so that an unrelated error stays other.
		return ClassUnavailable
	}
	return ClassOther
}

// etcdTimeouts are etcd's server-side timeouts: the request was accepted
// but not answered in time (a write may have been applied).
var etcdTimeouts = []error{
	rpctypes.ErrTimeout,
	rpctypes.ErrTimeoutDueToLeaderFail,
	rpctypes.ErrTimeoutDueToConnectionLost,
	rpctypes.ErrTimeoutWaitAppliedIndex,
}

// classifyEtcd is ClassifyError for the etcd target: context errors, then
// etcd's server-side timeouts, then by gRPC code (etcd's client turns
// server errors into rpctypes.EtcdError, which carries the code). etcd's
// errors do not say whether a failed write was applied, so it never
// returns ClassNotApplied or ClassOutcomeUnknown.
func classifyEtcd(err error) string {
	if err == nil {
		return ""
	}
	if c := classifyContext(err); c != "" {
		return c
	}
	for _, t := range etcdTimeouts {
		if errors.Is(err, t) {
			return ClassTimeout
		}
	}
	if errors.Is(err, errNegativeLimit) {
		return ClassInvalid
	}
	if errors.Is(err, clientv3.ErrNoAvailableEndpoints) {
		return ClassUnavailable
	}
	code, ok := grpcCode(err)
	if !ok {
		return ClassOther
	}
	switch code {
	case codes.DeadlineExceeded:
		return ClassTimeout
	case codes.Canceled:
		return ClassCanceled
	case codes.InvalidArgument:
		return ClassInvalid
	case codes.Unavailable, codes.ResourceExhausted, codes.FailedPrecondition:
		// No leader, leader changed, stopped, unhealthy; too many
		// requests, no space; not leader, not capable.
		return ClassUnavailable
	}
	return ClassOther
}

// grpcCode returns the gRPC code an error of etcd's client carries.
func grpcCode(err error) (codes.Code, bool) {
	var ee rpctypes.EtcdError
	if errors.As(err, &ee) {
		return ee.Code(), true
	}
	if st, ok := status.FromError(err); ok {
		return st.Code(), true
	}
	return codes.Unknown, false
}
