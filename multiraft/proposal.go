// Copyright 2026 The Flotilla Authors. All rights reserved.

package multiraft

import (
	"context"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Proposal states.
const (
	propQueued    int32 = iota // waiting in the group's inbox
	propProposed               // handed to raft: the outcome may be either
	propCancelled              // the caller gave up before it was proposed
	propDone                   // resolved
)

// proposal is one command on its way through raft, as seen by its
// proposer's host.
type proposal struct {
	id    uint64
	data  []byte           // the command (normal proposals)
	cc    *pb.ConfChangeV2 // the change (membership proposals)
	state atomic.Int32
	// index and term of its entry, once raft appended it (worker-owned).
	index, term uint64
	// submitted and proposed are when the proposal entered its group's
	// inbox and when the worker handed it to raft (stage metrics).
	submitted, proposed time.Time

	done   chan struct{}
	result Result
	err    error
}

// Proposal is a handle on a command proposed to a group. It resolves when the
// command's entry is applied on this host, or when it is known it will never
// be, or is given up on.
type Proposal struct {
	p *proposal
}

// Done is closed when the proposal is resolved.
func (h *Proposal) Done() <-chan struct{} { return h.p.done }

// Wait waits until the command is applied and returns the state machine's
// Result. If the command was certainly not applied, the error is a
// *NotAppliedError; if ctx ends first or the outcome cannot be known, a
// *AmbiguousError (unless it had not yet reached raft, in which case it will
// never be applied: *NotAppliedError).
func (h *Proposal) Wait(ctx context.Context) (Result, error) {
	p := h.p
	select {
	case <-p.done:
		return p.result, p.err
	case <-ctx.Done():
	}
	if p.state.CompareAndSwap(propQueued, propCancelled) {
		return Result{}, notApplied(fmt.Errorf("%w before proposing: %w", ErrTimeout, ctx.Err()))
	}
	select {
	case <-p.done: // resolved meanwhile
		return p.result, p.err
	default:
	}
	return Result{}, ambiguous(fmt.Errorf("%w: %w", ErrTimeout, ctx.Err()))
}

// resolve sets the outcome once; later calls do nothing.
func (p *proposal) resolve(res Result, err error) {
	for {
		s := p.state.Load()
		if s == propDone {
			return
		}
		if p.state.CompareAndSwap(s, propDone) {
			p.result, p.err = res, err
			close(p.done)
			return
		}
	}
}

// FailedProposal returns a proposal that already failed with err, for
// tests of code that hands proposals around.
func FailedProposal(err error) *Proposal { return resolvedProposal(err) }

func resolvedProposal(err error) *Proposal {
	p := &proposal{done: make(chan struct{})}
	p.resolve(Result{}, err)
	return &Proposal{p: p}
}

// Encoding of a normal entry's data: a version byte, the proposal ID (8
// bytes, big endian), then the command. A conf change carries the same
// header in its Context.
const (
	entryVersion    = 1
	entryHeaderSize = 9
)

func encodeEntry(id uint64, cmd []byte) []byte {
	buf := make([]byte, entryHeaderSize, entryHeaderSize+len(cmd))
	buf[0] = entryVersion
	binary.BigEndian.PutUint64(buf[1:], id)
	return append(buf, cmd...)
}

// decodeEntry splits an entry's data into proposal ID and command.
func decodeEntry(data []byte) (id uint64, cmd []byte, ok bool) {
	if len(data) < entryHeaderSize || data[0] != entryVersion {
		return 0, nil, false
	}
	return binary.BigEndian.Uint64(data[1:entryHeaderSize]), data[entryHeaderSize:], true
}

// entryProposalID returns the proposal ID an entry carries, or 0.
func entryProposalID(e *pb.Entry) uint64 {
	switch e.GetType() {
	case pb.EntryNormal:
		id, _, _ := decodeEntry(e.GetData())
		return id
	case pb.EntryConfChangeV2:
		var cc pb.ConfChangeV2
		if err := proto.Unmarshal(e.GetData(), &cc); err != nil {
			return 0
		}
		id, _, _ := decodeEntry(cc.GetContext())
		return id
	}
	return 0
}

// Propose proposes cmd to the group through its local replica, which must be
// the leader. The handle resolves when the command is applied here.
func (h *Host) Propose(id GroupID, cmd []byte) *Proposal {
	return h.submit(id, &proposal{data: cmd})
}

// ProposeConfChange proposes a membership change to the group through its
// local replica, which must be the leader.
func (h *Host) ProposeConfChange(id GroupID, cc *pb.ConfChangeV2) *Proposal {
	return h.submit(id, &proposal{cc: proto.Clone(cc).(*pb.ConfChangeV2)})
}

// ProposeAndWait proposes cmd and waits for its outcome (see Proposal.Wait).
func (h *Host) ProposeAndWait(ctx context.Context, id GroupID, cmd []byte) (Result, error) {
	return h.Propose(id, cmd).Wait(ctx)
}

// submit queues a proposal for its group's worker.
func (h *Host) submit(id GroupID, p *proposal) *Proposal {
	if h.stopper.Stopping() {
		return resolvedProposal(notApplied(ErrStopped))
	}
	p.id, p.done = h.rng.nonZero(), make(chan struct{})
	p.submitted = time.Now()
	err := h.toInbox(id, func(g *group) { g.inbox.proposals = append(g.inbox.proposals, p) })
	if err != nil {
		return resolvedProposal(notApplied(err))
	}
	return &Proposal{p: p}
}

// lockedRand makes proposal IDs: random, so that IDs of different hosts and
// of restarts do not collide in practice (a proposal is also matched by its
// index and term).
type lockedRand struct {
	mu  sync.Mutex
	rng *rand.Rand
}

func newLockedRand() *lockedRand {
	return &lockedRand{rng: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))}
}

func (r *lockedRand) nonZero() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		if v := r.rng.Uint64(); v != 0 {
			return v
		}
	}
}
