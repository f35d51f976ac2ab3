// Copyright 2026 The Flotilla Authors. All rights reserved.

package flotillapb

import (
	"fmt"
	"strings"
)

// Error makes *Error an error, so that servers can return it as is and
// rpc/ can carry it as a gRPC status detail.
func (e *Error) Error() string {
	if e == nil {
		return "<nil>"
	}
	msg := e.GetMessage()
	if msg == "" {
		msg = fmt.Sprintf("%T", e.GetDetail())
	}
	// Name the offending field of a bad request, unless the message does.
	if f := e.GetInvalidArgument().GetField(); f != "" && !strings.Contains(msg, f) {
		msg = f + ": " + msg
	}
	switch e.GetOutcome() {
	case Outcome_NOT_APPLIED:
		return msg + " (not applied)"
	case Outcome_UNKNOWN:
		return msg + " (outcome unknown)"
	}
	return msg
}
