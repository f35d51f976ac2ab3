// Copyright 2026 The Flotilla Authors. All rights reserved.

package revcheck

import (
	"fmt"
	"strings"
)

// Violation is one thing a history shows that a correct store cannot do.
type Violation struct {
	// Check is the check that found it: "real-time", "snapshot" or "bank".
	Check string
	// Reason says what is wrong, naming the ops by ID.
	Reason string
	// Ops are the ops involved (the later one last, where order matters).
	Ops []Op
}

func (v Violation) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s", v.Check, v.Reason)
	for _, op := range v.Ops {
		fmt.Fprintf(&b, "\n\t%s", op)
	}
	return b.String()
}

// maxListed bounds the violations an error message lists.
const maxListed = 10

// ViolationsError is the error of CheckRealTime, CheckSnapshots and
// CheckBank: every violation found (errors.As gets the list).
type ViolationsError struct {
	Violations []Violation
}

func (e *ViolationsError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d violation(s)", len(e.Violations))
	for i, v := range e.Violations {
		if i == maxListed {
			fmt.Fprintf(&b, "\n… and %d more", len(e.Violations)-maxListed)
			break
		}
		fmt.Fprintf(&b, "\n%s", v)
	}
	return b.String()
}

// violations returns nil for none, else a *ViolationsError.
func violations(vs []Violation) error {
	if len(vs) == 0 {
		return nil
	}
	return &ViolationsError{Violations: vs}
}
