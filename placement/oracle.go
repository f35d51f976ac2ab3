// Copyright 2026 The Flotilla Authors. All rights reserved.

package placement

import (
	"errors"
	"fmt"
	"math"
)

// Limits of the revision oracle (docs/REVISIONS.md, "The oracle").
const (
	// MaxRevision is the highest revision the oracle hands out, and the
	// highest high-water mark Meta accepts. It is half of int64's range so
	// that hwm + window + count, each within its limit, never overflows.
	MaxRevision int64 = math.MaxInt64 / 2
	// DefaultRevisionWindow is the oracle's window W: a new leader starts
	// W above the old high-water mark, and the mark is raised W at a time,
	// so one raft write serves W revisions and a failover skips at most W.
	DefaultRevisionWindow int64 = 1 << 20
	// MaxRevisionWindow bounds the window.
	MaxRevisionWindow int64 = 1 << 40
	// MaxRevisionBatch bounds the revisions one batch asks for.
	MaxRevisionBatch = 1 << 20
)

// ErrRevisionsExhausted: the oracle reached MaxRevision.
var ErrRevisionsExhausted = errors.New("placement: revisions exhausted")

// errOracleNotStarted: Take before Start (or after Reset).
var errOracleNotStarted = errors.New("placement: the revision oracle serves no term")

// RevisionOracle is the revision oracle's state on the placement group's
// leader: the next revision to hand out in the term it serves. It does no
// I/O and starts nothing: its caller (server/oracle.go) runs the
// leadership checks and commits the high-water marks (SetRevisionHWM) it
// asks for, and gives it the mark of the applied state. It is not safe for
// concurrent use: its caller lets one round at a time use it.
//
// The protocol and why it hands out no revision twice, and none below one
// handed out earlier in real time, are in docs/REVISIONS.md.
type RevisionOracle struct {
	window int64
	// term is the placement group's term this replica serves in, 0 while
	// it serves none: next is then meaningless.
	term uint64
	// next is the next revision to hand out. Invariant while term != 0:
	// next ≤ hwm + 1 for the hwm of the applied state, and every revision
	// below next handed out in this term was ≤ a committed hwm.
	next int64
}

// NewRevisionOracle returns an oracle serving no term, with window W
// (0: DefaultRevisionWindow) in [1, MaxRevisionWindow].
func NewRevisionOracle(window int64) (*RevisionOracle, error) {
	if window == 0 {
		window = DefaultRevisionWindow
	}
	if window < 1 || window > MaxRevisionWindow {
		return nil, fmt.Errorf("placement: revision window %d not in [1, %d]", window, MaxRevisionWindow)
	}
	return &RevisionOracle{window: window}, nil
}

// Term returns the term the oracle serves in, 0 if none.
func (o *RevisionOracle) Term() uint64 { return o.term }

// Next returns the next revision it would hand out (meaningless while it
// serves no term).
func (o *RevisionOracle) Next() int64 { return o.next }

// Reset forgets the term and the next revision: on any term change, and
// whenever the caller cannot tell whether the term changed.
func (o *RevisionOracle) Reset() { o.term, o.next = 0, 0 }

// StartHWM returns the high-water mark a new leader commits before it
// serves: hwmOld + W (at most MaxRevision), where hwmOld is the mark of
// its applied state once its log holds every entry committed before its
// term.
func (o *RevisionOracle) StartHWM(hwmOld int64) (int64, error) {
	if hwmOld < 0 || hwmOld >= MaxRevision {
		return 0, fmt.Errorf("%w: high-water mark %d", ErrRevisionsExhausted, hwmOld)
	}
	return min(hwmOld+o.window, MaxRevision), nil
}

// Start makes the oracle serve term from hwmOld + 1. The caller has
// committed and applied StartHWM(hwmOld) in that term.
func (o *RevisionOracle) Start(term uint64, hwmOld int64) {
	o.term, o.next = term, hwmOld+1
}

// RaiseTo returns the high-water mark to commit before count revisions can
// be handed out while the applied mark is hwm (next + count − 1 + W, at
// most MaxRevision), or 0 if hwm covers them.
func (o *RevisionOracle) RaiseTo(hwm, count int64) (int64, error) {
	if err := o.check(count); err != nil {
		return 0, err
	}
	last := o.next + count - 1
	if last <= hwm {
		return 0, nil
	}
	return min(last+o.window, MaxRevision), nil
}

// Take hands out count revisions, [first, first + count), if the applied
// mark hwm covers them; otherwise it hands out nothing and fails (the
// caller commits RaiseTo first).
func (o *RevisionOracle) Take(hwm, count int64) (first int64, err error) {
	if err := o.check(count); err != nil {
		return 0, err
	}
	if last := o.next + count - 1; last > hwm {
		return 0, fmt.Errorf("placement: revisions up to %d asked, high-water mark %d", last, hwm)
	}
	first = o.next
	o.next += count
	return first, nil
}

func (o *RevisionOracle) check(count int64) error {
	if o.term == 0 {
		return errOracleNotStarted
	}
	if count < 1 || count > MaxRevisionBatch {
		return fmt.Errorf("placement: a batch of %d revisions; want 1 to %d", count, MaxRevisionBatch)
	}
	if o.next+count-1 > MaxRevision {
		return fmt.Errorf("%w: %d more from %d", ErrRevisionsExhausted, count, o.next)
	}
	return nil
}
