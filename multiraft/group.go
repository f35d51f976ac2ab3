// Copyright 2026 The Flotilla Authors. All rights reserved.

package multiraft

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flotilladb/flotilla/engine"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// group is one replica of one raft group on this host.
//
// Its fields fall in three classes:
//   - immutable after creation (id, replicaID, storage, sm);
//   - the inbox, written by any goroutine under inboxMu;
//   - worker-owned: only the worker processing the group touches them (the
//     scheduler runs a group on one worker at a time).
type group struct {
	id        GroupID
	replicaID ReplicaID
	storage   *groupStorage
	sm        StateMachine

	// procMu is held while a worker processes the group, and by a split
	// that replaces the group's uninitialized replica (split.go).
	procMu sync.Mutex

	// Scheduling state, guarded by scheduler.mu.
	sched    uint8
	queuedAt time.Time

	inboxMu sync.Mutex
	inbox   struct {
		msgs []*pb.Message // from peers and from the log writer; they wake the group
		// quietMsgs are heartbeat responses and quiesce beats: stepped
		// without waking a quiescent group.
		quietMsgs []*pb.Message
		// quiesceBeat is the latest quiesce beat from the leader, if any.
		quiesceBeat *pb.Message
		proposals   []*proposal
		reads       []*readReq
		ticks       int
		unreachable []ReplicaID
		campaign    bool
		// downNodes are peer nodes detected down since last processed.
		downNodes []NodeID
		// snapshots received, staged for raft; snapStatus outcomes of
		// snapshots sent; transferTo a leadership transfer request.
		snapshots  []*pendingSnapshot
		snapStatus []snapStatus
		transferTo ReplicaID
		// destroy asks to destroy the replica if it is this one.
		destroy ReplicaID
		// collect asks to collect the replica if it is still an idle
		// uninitialized one (collect.go).
		collect bool
		// closed: the group was destroyed or the host stopped; closeErr is
		// what new work fails with.
		closed   bool
		closeErr error
	}

	// destroyed: the replica left its group; nothing may run on it.
	destroyed atomic.Bool

	// appendsInFlight counts MsgStorageAppends queued to the log writer and
	// not yet delivered back.
	appendsInFlight atomic.Int32

	// lastHeard is when a peer's message or snapshot for the replica last
	// arrived (unix nanoseconds), kept while the replica is uninitialized:
	// an idle one is collected (collect.go). snapsIncoming counts the
	// snapshot streams being received for it; it is not collected while
	// one is.
	lastHeard     atomic.Int64
	snapsIncoming atomic.Int32

	// Worker-owned.
	rn *raft.RawNode
	// view is what the worker knows of the replica's raft state to check
	// peers' messages (validate.go): exact after every Ready.
	view stepView
	// quiesced: the group neither ticks nor heartbeats (see quiesce.go).
	// Membership in Host.active mirrors !quiesced.
	quiesced bool
	// truncationPending: a log truncation was proposed in term
	// truncationTerm and not yet applied.
	truncationPending bool
	truncationTerm    uint64
	// stagedSnaps are received snapshots stepped into raft in this pass, by
	// index; the one raft accepts goes to the log writer, the rest are
	// dropped at the end of the pass.
	stagedSnaps map[uint64]*pendingSnapshot
	// quiesceBeat is the last quiesce beat a follower could not act on yet
	// (an append was in flight); it retries when idle.
	quiesceBeat *pb.Message
	applied     appliedState
	// proposing holds proposals handed to raft whose entry index is not yet
	// known, by proposal ID; pendingByIndex those whose entry was appended,
	// by index. Each is resolved when its index is applied, or replaced by a
	// snapshot. An entry a deposed leader appended beyond the new leader's
	// log stays pending until something else is applied (or appended here)
	// at its index: a later leader holding it could still commit it.
	proposing      map[uint64]*proposal
	pendingByIndex map[uint64]*proposal
	// readBatches are ReadIndex rounds in flight, by request context (at
	// most Config.ReadRounds); readQueue the reads waiting for the next round;
	// readWaiters reads whose index is known but not yet applied.
	readBatches map[string]*readBatch
	readQueue   []*readReq
	readWaiters []*readReq

	// Published status, readable by anyone.
	status struct {
		// lead is the leader and term, one consistent pair (replaced
		// when either changes).
		lead    atomic.Pointer[leadTerm]
		commit  atomic.Uint64
		applied atomic.Uint64
		// appliedTerm is the term of the entry at applied.
		appliedTerm atomic.Uint64
		raftState   atomic.Int32
		lastIndex   atomic.Uint64
		// confState is the applied configuration; it is replaced, never
		// modified.
		confState atomic.Pointer[pb.ConfState]
		// learnerMatch is, on a leader of a group with learners, each
		// learner's matched log index; nil otherwise.
		learnerMatch atomic.Pointer[map[ReplicaID]uint64]
	}
}

func (g *group) addMessages(msgs ...*pb.Message) {
	g.inboxMu.Lock()
	g.inbox.msgs = append(g.inbox.msgs, msgs...)
	g.inboxMu.Unlock()
}

// addQuiet queues messages that do not wake a quiescent group.
func (g *group) addQuiet(msgs ...*pb.Message) {
	g.inboxMu.Lock()
	g.inbox.quietMsgs = append(g.inbox.quietMsgs, msgs...)
	g.inboxMu.Unlock()
}

// closeInbox stops the inbox taking work and fails what it holds: queued
// proposals were never proposed (not applied), reads and snapshots fail
// with err.
func (g *group) closeInbox(err error) {
	g.inboxMu.Lock()
	in := g.inbox
	g.inbox.closed, g.inbox.closeErr = true, err
	g.inbox.proposals, g.inbox.reads, g.inbox.snapshots = nil, nil, nil
	g.inboxMu.Unlock()
	if in.closed {
		return
	}
	for _, p := range in.proposals {
		p.resolve(Result{}, notApplied(err))
	}
	for _, r := range in.reads {
		r.resolve(0, err)
	}
	for _, ps := range in.snapshots {
		ps.ing.Abort()
		ps.done <- err
	}
}

// appliedState is what the host persists with every apply, in one batch with
// the state machine's writes: the index and term of the last applied entry
// and the configuration as of it.
type appliedState struct {
	index, term uint64
	confState   *pb.ConfState
}

const appliedStateVersion = 1

func (a appliedState) encode() ([]byte, error) {
	cs, err := proto.Marshal(a.confState)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, 17, 17+len(cs))
	buf[0] = appliedStateVersion
	binary.BigEndian.PutUint64(buf[1:], a.index)
	binary.BigEndian.PutUint64(buf[9:], a.term)
	return append(buf, cs...), nil
}

func decodeAppliedState(v []byte) (appliedState, error) {
	if len(v) < 17 || v[0] != appliedStateVersion {
		return appliedState{}, fmt.Errorf("multiraft: malformed applied state (%d bytes)", len(v))
	}
	a := appliedState{
		index:     binary.BigEndian.Uint64(v[1:]),
		term:      binary.BigEndian.Uint64(v[9:]),
		confState: &pb.ConfState{},
	}
	if err := proto.Unmarshal(v[17:], a.confState); err != nil {
		return appliedState{}, fmt.Errorf("multiraft: malformed applied state: %w", err)
	}
	a.confState = pb.EnsureConfState(a.confState)
	return a, nil
}

func loadAppliedState(r engine.Reader, id GroupID) (appliedState, error) {
	v, err := r.Get(engine.RangeAppliedStateKey(id))
	if errors.Is(err, engine.ErrNotFound) {
		return appliedState{confState: pb.EnsureConfState(nil)}, nil
	}
	if err != nil {
		return appliedState{}, err
	}
	return decodeAppliedState(v)
}

func writeAppliedState(b *engine.Batch, id GroupID, a appliedState) error {
	v, err := a.encode()
	if err != nil {
		return err
	}
	return b.Set(engine.RangeAppliedStateKey(id), v)
}

func loadReplicaID(r engine.Reader, id GroupID) (ReplicaID, error) {
	v, err := r.Get(engine.RaftReplicaIDKey(id))
	if err != nil {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("multiraft: group %d: malformed replica ID (%d bytes)", id, len(v))
	}
	return ReplicaID(binary.BigEndian.Uint64(v)), nil
}

func writeReplicaID(b *engine.Batch, id GroupID, r ReplicaID) error {
	return b.Set(engine.RaftReplicaIDKey(id), binary.BigEndian.AppendUint64(nil, uint64(r)))
}

// groupStorage is the raft.Storage of a group: the engine's RaftStorage for
// the log and HardState, and the group's applied state for the configuration
// and the snapshot metadata.
type groupStorage struct {
	*engine.RaftStorage
	g *group
}

// InitialState returns the saved HardState and the configuration as of the
// applied index. Applies are not synced with the HardState, so after a crash
// the saved commit index may trail the applied index; the entries applied
// were committed, so the commit index is raised to match.
func (s *groupStorage) InitialState() (*pb.HardState, *pb.ConfState, error) {
	hs, _, err := s.RaftStorage.InitialState()
	if err != nil {
		return nil, nil, err
	}
	if applied := s.g.applied.index; hs != nil && hs.GetCommit() < applied {
		hs.Commit = new(applied)
	}
	return hs, proto.Clone(s.g.applied.confState).(*pb.ConfState), nil
}

// Snapshot returns the metadata of a snapshot at the applied index. Raft
// calls it (on the worker) when a follower needs a snapshot; the data is
// produced when the snapshot is sent, from a later, consistent point.
func (s *groupStorage) Snapshot() (*pb.Snapshot, error) {
	a := s.g.applied
	return &pb.Snapshot{Metadata: &pb.SnapshotMetadata{
		Index:     new(a.index),
		Term:      new(a.term),
		ConfState: proto.Clone(a.confState).(*pb.ConfState),
	}}, nil
}

// ReadAppliedIndex returns the applied index of group id as recorded in r (an
// engine or a snapshot of it), 0 if the group has none. A state machine
// reading its data from the same snapshot sees exactly the state as of that
// index.
func ReadAppliedIndex(r engine.Reader, id GroupID) (uint64, error) {
	a, err := loadAppliedState(r, id)
	if err != nil {
		return 0, err
	}
	return a.index, nil
}

// leadTerm is a replica's view of its group's leader in a term.
type leadTerm struct{ leader, term uint64 }
