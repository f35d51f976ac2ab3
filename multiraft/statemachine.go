// Copyright 2026 The Flotilla Authors. All rights reserved.

package multiraft

import (
	"github.com/flotilladb/flotilla/engine"
	pb "go.etcd.io/raft/v3/raftpb"
)

// StateMachine is the replicated state of one group on one host: a key-value
// range, the placement driver's state, or a test's counter. The host drives
// it; it never sees raft.
//
// All methods are called from the group's worker goroutine, one at a time.
type StateMachine interface {
	// Apply applies committed commands, in log order, by writing their
	// effects into b, and returns one Result per command. It must be
	// deterministic: every replica applies the same commands to the same
	// state and must reach the same state. The host adds the applied index
	// to b and commits it; the state machine must not commit b or keep it.
	//
	// A command of kind CommandConfChange is a membership change that raft
	// will apply after this call; a Result with Err set rejects it (raft
	// then applies an empty change instead).
	//
	// An error return means the state machine cannot continue (its storage
	// failed); the host stops.
	Apply(b *engine.Batch, cmds []Command) ([]Result, error)

	// Spans returns the engine spans holding the state machine's data, which
	// snapshots carry besides the group's replicated range-local state.
	Spans() []engine.Span
}

// StateMachineFactory returns the state machine of a group on this host,
// whose data may already be in the engine (after a restart).
type StateMachineFactory func(group GroupID) (StateMachine, error)

// CommandKind says what a command is.
type CommandKind int

// Command kinds.
const (
	CommandNormal CommandKind = iota
	CommandConfChange
)

// Command is one committed log entry handed to StateMachine.Apply.
type Command struct {
	Index, Term uint64
	Kind        CommandKind
	// Data is the proposed command (CommandNormal). It aliases the log entry:
	// copy it to keep it.
	Data []byte
	// ConfChange is the membership change (CommandConfChange).
	ConfChange *pb.ConfChangeV2
}

// Result is the outcome of applying one command, returned to its proposer if
// it was proposed on this host.
type Result struct {
	Value []byte
	Err   error
	// NewGroup, set by a command that splits the group, is the group the
	// split creates (see split.go).
	NewGroup *NewGroup
}
