// Copyright 2026 The Flotilla Authors. All rights reserved.

package multiraft

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flotilladb/flotilla/engine"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
	"google.golang.org/protobuf/proto"
)

// Initial log position of a bootstrapped group, as in CockroachDB: the log
// starts empty after a synthetic snapshot at this index and term, so that a
// replica created later by a snapshot can never be confused with one that
// was bootstrapped.
const (
	initialLogIndex = 10
	initialLogTerm  = 5
)

// Host runs the raft groups of one store: many RawNodes on a few goroutines,
// one log writer that makes every group's appends durable with shared
// fsyncs, one ticker, and one outgoing queue per peer node. See
// docs/multiraft.md.
type Host struct {
	cfg    Config
	eng    *engine.Engine
	logger *slog.Logger
	rng    *lockedRand

	sched     *scheduler
	logWriter *logWriter
	metrics   *hostMetrics

	// groupsMu guards groups and groupsClosed; groups themselves have their
	// own locks. It is never held across I/O.
	groupsMu     sync.RWMutex
	groups       map[GroupID]*group
	groupsClosed bool // Stop released the groups: no new ones
	// createMu serializes creating groups (Bootstrap, uninitialized
	// replicas), which does I/O; it is taken before groupsMu.
	createMu sync.Mutex

	outboxMu sync.Mutex
	outboxes map[NodeID]*outbox

	// activeMu guards active, the groups that are not quiescent: the ones
	// the ticker ticks.
	activeMu sync.Mutex
	active   map[GroupID]*group

	liveness *liveness
	// tickCount counts ticker ticks.
	tickCount atomic.Uint64

	// snapSem bounds the snapshots sent at once; snapWG waits for senders.
	snapSem chan struct{}
	snapWG  sync.WaitGroup

	stopper  chan struct{} // closed by Stop
	stopOnce sync.Once
	stopped  atomic.Bool
	wg       sync.WaitGroup // ticker and senders
	failed   atomic.Pointer[error]
}

// NewHost creates a host over cfg.Engine, loads every group found there and
// starts running them.
func NewHost(cfg Config) (*Host, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	h := &Host{
		cfg:      cfg,
		eng:      cfg.Engine,
		logger:   cfg.Logger.With("node", cfg.NodeID),
		rng:      newLockedRand(),
		groups:   make(map[GroupID]*group),
		outboxes: make(map[NodeID]*outbox),
		active:   make(map[GroupID]*group),
		stopper:  make(chan struct{}),
		snapSem:  make(chan struct{}, cfg.MaxConcurrentSnapshots),
		liveness: newLiveness(time.Duration(cfg.ElectionTicks) * cfg.TickInterval),
	}
	h.metrics = newHostMetrics(cfg.Metrics, h)
	h.sched = newScheduler(h.processGroup)
	h.sched.queueLatency = h.metrics.observeQueueLatency
	h.logWriter = newLogWriter(h)

	ids, err := h.eng.RangeIDs()
	if err != nil {
		return nil, fmt.Errorf("multiraft: listing groups: %w", err)
	}
	for _, id := range ids {
		replicaID, err := loadReplicaID(h.eng, id)
		if errors.Is(err, engine.ErrNotFound) {
			continue // local state of a range without a replica here
		}
		if err != nil {
			h.closeGroups()
			return nil, err
		}
		if removed, err := h.destroyIfRemoved(id, replicaID); err != nil || removed {
			if err != nil {
				h.closeGroups()
				return nil, err
			}
			continue
		}
		g, err := h.loadGroup(id, replicaID)
		if err != nil {
			h.closeGroups()
			return nil, fmt.Errorf("multiraft: loading group %d: %w", id, err)
		}
		h.groups[id] = g
		h.active[id] = g
	}

	h.sched.start(cfg.Workers)
	h.logWriter.start()
	if cfg.Testing == nil || !cfg.Testing.DisableTicker {
		h.wg.Add(1)
		go h.runTicker()
	}
	// Let restarted groups hand their committed but unapplied entries to
	// their state machines at once.
	h.groupsMu.RLock()
	all := make([]*group, 0, len(h.groups))
	for _, g := range h.groups {
		all = append(all, g)
	}
	h.groupsMu.RUnlock()
	h.sched.enqueueAll(all)
	return h, nil
}

// NodeID returns the host's node ID.
func (h *Host) NodeID() NodeID { return h.cfg.NodeID }

// Ticks returns how many times the host's ticker has fired.
func (h *Host) Ticks() uint64 { return h.tickCount.Load() }

// GroupTicks returns how many ticks were delivered to groups in all.
func (h *Host) GroupTicks() uint64 { return h.metrics.ticks.Get() }

// Unquiesced returns the number of groups that are not quiescent.
func (h *Host) Unquiesced() int {
	h.activeMu.Lock()
	defer h.activeMu.Unlock()
	return len(h.active)
}

// TickInterval returns the host's raft tick.
func (h *Host) TickInterval() time.Duration { return h.cfg.TickInterval }

// loadGroup builds a group from its state in the engine.
func (h *Host) loadGroup(id GroupID, replicaID ReplicaID) (*group, error) {
	applied, err := loadAppliedState(h.eng, id)
	if err != nil {
		return nil, err
	}
	st, err := h.eng.OpenRaftStorage(id)
	if err != nil {
		return nil, err
	}
	if err := completeSnapshot(h.eng, st, applied); err != nil {
		st.Close()
		return nil, fmt.Errorf("completing an interrupted snapshot: %w", err)
	}
	g := &group{
		id:             id,
		replicaID:      replicaID,
		applied:        applied,
		proposing:      make(map[uint64]*proposal),
		pendingByIndex: make(map[uint64]*proposal),
		readBatches:    make(map[string]*readBatch),
		stagedSnaps:    make(map[uint64]*pendingSnapshot),
	}
	g.storage = &groupStorage{RaftStorage: st, g: g}
	if g.sm, err = h.cfg.NewStateMachine(id); err != nil {
		st.Close()
		return nil, err
	}
	g.rn, err = raft.NewRawNode(&raft.Config{
		ID:                        uint64(replicaID),
		ElectionTick:              h.cfg.ElectionTicks,
		HeartbeatTick:             h.cfg.HeartbeatTicks,
		Storage:                   g.storage,
		Applied:                   applied.index,
		AsyncStorageWrites:        true,
		MaxSizePerMsg:             h.cfg.MaxSizePerMsg,
		MaxCommittedSizePerReady:  h.cfg.MaxCommittedSizePerReady,
		MaxInflightMsgs:           h.cfg.MaxInflightMsgs,
		CheckQuorum:               true,
		PreVote:                   true,
		StepDownOnRemoval:         true,
		DisableProposalForwarding: true,
		Logger:                    raftLogger{h.logger},
	})
	if err != nil {
		st.Close()
		return nil, err
	}
	g.publishStatus()
	return g, nil
}

// Bootstrap creates a group on this host with an initial membership. Every
// member of a new group must be bootstrapped with the same replicas (on its
// own host); the group then elects a leader. replicas must include one on
// this host.
func (h *Host) Bootstrap(id GroupID, replicas []Replica) error {
	return h.BootstrapWith(id, replicas, nil)
}

// BootstrapWith is Bootstrap, with the state machine's initial state written
// by init into the batch that creates the group (so a crash leaves both or
// neither). Everything init writes must lie in the group's replicated state
// or the state machine's spans, so that snapshots carry it to new replicas.
func (h *Host) BootstrapWith(id GroupID, replicas []Replica, init func(b *engine.Batch) error) error {
	if h.stopped.Load() {
		return ErrStopped
	}
	if id == 0 {
		return errors.New("multiraft: group ID 0 is invalid")
	}
	var self ReplicaID
	cs := &pb.ConfState{}
	seen := map[ReplicaID]bool{}
	for _, r := range replicas {
		if !r.ID.Valid() || seen[r.ID] {
			return fmt.Errorf("multiraft: group %d: invalid or duplicate replica %v", id, r.ID)
		}
		seen[r.ID] = true
		if r.ID.Node() == h.cfg.NodeID {
			if self != 0 {
				return fmt.Errorf("multiraft: group %d: two replicas on node %d", id, h.cfg.NodeID)
			}
			self = r.ID
		}
		if r.Learner {
			cs.Learners = append(cs.Learners, uint64(r.ID))
		} else {
			cs.Voters = append(cs.Voters, uint64(r.ID))
		}
	}
	if self == 0 {
		return fmt.Errorf("multiraft: group %d: no replica on node %d", id, h.cfg.NodeID)
	}
	if len(cs.Voters) == 0 {
		return fmt.Errorf("multiraft: group %d: no voters", id)
	}
	cs = pb.EnsureConfState(cs)

	h.createMu.Lock()
	defer h.createMu.Unlock()
	if h.group(id) != nil {
		return fmt.Errorf("%w: %d", ErrGroupExists, id)
	}
	if _, err := loadReplicaID(h.eng, id); err == nil {
		return fmt.Errorf("%w: %d (on disk)", ErrGroupExists, id)
	}
	st, err := h.eng.OpenRaftStorage(id)
	if err != nil {
		return err
	}
	b := h.eng.NewBatch()
	defer b.Close()
	applied := appliedState{index: initialLogIndex, term: initialLogTerm, confState: cs}
	snap := &pb.Snapshot{Metadata: &pb.SnapshotMetadata{
		Index: new(uint64(initialLogIndex)), Term: new(uint64(initialLogTerm)), ConfState: cs,
	}}
	err = errors.Join(
		st.ApplySnapshot(b, snap),
		st.SetHardState(b, &pb.HardState{Term: new(uint64(initialLogTerm)), Commit: new(uint64(initialLogIndex))}),
		writeAppliedState(b, id, applied),
		writeReplicaID(b, id, self),
	)
	if err == nil && init != nil {
		err = init(b)
	}
	if err == nil {
		err = b.Commit(true)
	}
	st.Close()
	if err != nil {
		return fmt.Errorf("multiraft: bootstrapping group %d: %w", id, err)
	}
	g, err := h.loadGroup(id, self)
	if err != nil {
		return err
	}
	return h.insertGroup(g)
}

// insertGroup makes a new group visible and ticking, unless the host has
// released its groups (Stop), in which case the group is closed.
func (h *Host) insertGroup(g *group) error {
	h.groupsMu.Lock()
	if h.groupsClosed {
		h.groupsMu.Unlock()
		g.storage.Close()
		return ErrStopped
	}
	h.groups[g.id] = g
	h.groupsMu.Unlock()
	h.activeMu.Lock()
	h.active[g.id] = g
	h.activeMu.Unlock()
	return nil
}

func (h *Host) group(id GroupID) *group {
	h.groupsMu.RLock()
	defer h.groupsMu.RUnlock()
	return h.groups[id]
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

// submit queues a proposal for its group's worker.
func (h *Host) submit(id GroupID, p *proposal) *Proposal {
	if h.stopped.Load() {
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

// toInbox runs add on the group's inbox, under its lock, and schedules the
// group.
func (h *Host) toInbox(id GroupID, add func(g *group)) error {
	g := h.group(id)
	if g == nil {
		return fmt.Errorf("%w: %d", ErrGroupNotFound, id)
	}
	g.inboxMu.Lock()
	if g.inbox.closed {
		err := g.inbox.closeErr
		g.inboxMu.Unlock()
		return err
	}
	add(g)
	g.inboxMu.Unlock()
	h.sched.enqueue(g)
	return nil
}

// Campaign makes the local replica of the group campaign to become leader
// (tests and leader placement use it).
func (h *Host) Campaign(id GroupID) error {
	return h.toInbox(id, func(g *group) { g.inbox.campaign = true })
}

// GroupStatus is a group's replica as seen at some recent instant.
type GroupStatus struct {
	Group     GroupID
	Replica   ReplicaID
	Leader    ReplicaID
	Term      uint64
	Commit    uint64
	Applied   uint64
	LastIndex uint64
	State     raft.StateType
	// Voters and Learners are the applied configuration (the incoming one
	// while Joint).
	Voters, Learners []ReplicaID
	Joint            bool
	// LearnerMatch is each learner's matched log index, known on the leader
	// only.
	LearnerMatch map[ReplicaID]uint64
}

// Status returns the status of the local replica of a group.
func (h *Host) Status(id GroupID) (GroupStatus, bool) {
	g := h.group(id)
	if g == nil {
		return GroupStatus{}, false
	}
	st := GroupStatus{
		Group:     id,
		Replica:   g.replicaID,
		Leader:    ReplicaID(g.status.leader.Load()),
		Term:      g.status.term.Load(),
		Commit:    g.status.commit.Load(),
		Applied:   g.status.applied.Load(),
		LastIndex: g.status.lastIndex.Load(),
		State:     raft.StateType(g.status.raftState.Load()),
	}
	if cs := g.status.confState.Load(); cs != nil {
		for _, id := range cs.GetVoters() {
			st.Voters = append(st.Voters, ReplicaID(id))
		}
		for _, id := range cs.GetLearners() {
			st.Learners = append(st.Learners, ReplicaID(id))
		}
		st.Joint = len(cs.GetVotersOutgoing()) > 0
	}
	if m := g.status.learnerMatch.Load(); m != nil {
		st.LearnerMatch = maps.Clone(*m)
	}
	return st, true
}

// Groups returns the IDs of the groups on this host.
func (h *Host) Groups() []GroupID {
	h.groupsMu.RLock()
	defer h.groupsMu.RUnlock()
	ids := make([]GroupID, 0, len(h.groups))
	for id := range h.groups {
		ids = append(ids, id)
	}
	return ids
}

// HandleBatch delivers a batch received from a peer. Transports call it from
// any goroutine. Messages for groups not on this host, or for another
// replica than this host's, are dropped.
func (h *Host) HandleBatch(batch *MessageBatch) {
	if h.stopped.Load() {
		return
	}
	h.liveness.heard(batch.From, time.Now())
	h.metrics.batchesReceived.Inc()
	var touched []*group
	h.groupsMu.RLock()
	var unknown []GroupMessage // for groups not here yet
	lookup := func(group GroupID, to ReplicaID) *group {
		g := h.groups[group]
		if g == nil || to != g.replicaID {
			return nil
		}
		touched = append(touched, g)
		return g
	}
	for _, gm := range batch.Messages {
		h.metrics.countReceived(gm.Message.GetType())
		if !fromPeer(batch.From, gm.Message) {
			h.metrics.messagesDropped.Inc()
			continue
		}
		if g := lookup(gm.Group, ReplicaID(gm.Message.GetTo())); g != nil {
			g.addMessages(gm.Message)
		} else {
			unknown = append(unknown, gm)
		}
	}
	for i := range batch.Heartbeats {
		hb := &batch.Heartbeats[i]
		h.metrics.countReceived(pb.MsgHeartbeat)
		if hb.From.Node() != batch.From || !hb.From.Valid() || !hb.To.Valid() {
			h.metrics.messagesDropped.Inc()
			continue
		}
		g := lookup(hb.Group, hb.To)
		m := hb.message(pb.MsgHeartbeat)
		if g == nil {
			unknown = append(unknown, GroupMessage{Group: hb.Group, Message: m})
			continue
		}
		g.inboxMu.Lock()
		if hb.Quiesce {
			g.inbox.quietMsgs = append(g.inbox.quietMsgs, m)
			g.inbox.quiesceBeat = m
		} else {
			// A plain heartbeat means the leader is awake: so is the group.
			g.inbox.msgs = append(g.inbox.msgs, m)
			g.inbox.quiesceBeat = nil
		}
		g.inboxMu.Unlock()
	}
	for i := range batch.HeartbeatResps {
		hb := &batch.HeartbeatResps[i]
		h.metrics.countReceived(pb.MsgHeartbeatResp)
		if hb.From.Node() != batch.From || !hb.From.Valid() || !hb.To.Valid() {
			h.metrics.messagesDropped.Inc()
			continue
		}
		if g := lookup(hb.Group, hb.To); g != nil {
			g.inboxMu.Lock()
			g.inbox.quietMsgs = append(g.inbox.quietMsgs, hb.message(pb.MsgHeartbeatResp))
			g.inboxMu.Unlock()
		} else {
			h.metrics.messagesDropped.Inc()
		}
	}
	h.groupsMu.RUnlock()
	for _, gm := range unknown {
		if !createsReplica(gm.Message.GetType()) {
			h.metrics.messagesDropped.Inc()
			continue
		}
		g, err := h.groupFor(gm.Group, ReplicaID(gm.Message.GetTo()))
		if err != nil {
			h.metrics.messagesDropped.Inc()
			continue
		}
		g.addMessages(gm.Message)
		touched = append(touched, g)
	}
	h.sched.enqueueAll(touched)
}

// fromPeer reports whether m may come from node over the network: a raft
// message between replicas (not one of raft's local messages, not a
// snapshot, which has its own stream), from a valid replica on node.
func fromPeer(node NodeID, m *pb.Message) bool {
	switch m.GetType() {
	case pb.MsgApp, pb.MsgAppResp, pb.MsgVote, pb.MsgVoteResp, pb.MsgPreVote, pb.MsgPreVoteResp,
		pb.MsgHeartbeat, pb.MsgHeartbeatResp, pb.MsgTransferLeader, pb.MsgTimeoutNow,
		pb.MsgReadIndex, pb.MsgReadIndexResp:
	default:
		return false
	}
	from, to := ReplicaID(m.GetFrom()), ReplicaID(m.GetTo())
	return from.Valid() && to.Valid() && from.Node() == node
}

// Tick ticks every group that is not quiescent once, as the ticker does
// every TickInterval. Ticks queue up to MaxTicksQueued per group.
func (h *Host) Tick() {
	h.activeMu.Lock()
	gs := make([]*group, 0, len(h.active))
	for _, g := range h.active {
		gs = append(gs, g)
	}
	h.activeMu.Unlock()
	for _, g := range gs {
		g.inboxMu.Lock()
		if g.inbox.ticks < h.cfg.MaxTicksQueued {
			g.inbox.ticks++
		}
		g.inboxMu.Unlock()
	}
	h.metrics.ticks.Add(len(gs))
	h.sched.enqueueAll(gs)
}

func (h *Host) runTicker() {
	defer h.wg.Done()
	t := time.NewTicker(h.cfg.TickInterval)
	defer t.Stop()
	for {
		select {
		case <-h.stopper:
			return
		case now := <-t.C:
			h.Tick()
			n := h.tickCount.Add(1)
			// Coalesced heartbeats go out once per tick; a liveness ping
			// once per heartbeat interval.
			h.flushOutboxes(n%uint64(h.cfg.HeartbeatTicks) == 0)
			if down := h.liveness.check(now); len(down) > 0 {
				h.logger.Info("peer nodes down: waking their groups", "nodes", down)
				h.wakeGroupsOn(down)
			}
		}
	}
}

// processGroup runs on a worker: it feeds the group's inbox to raft and
// handles what raft produces.
func (h *Host) processGroup(g *group) {
	g.procMu.Lock()
	defer g.procMu.Unlock()
	if h.stopped.Load() || g.destroyed.Load() {
		return
	}
	start := time.Now()
	g.inboxMu.Lock()
	in := g.inbox
	g.inbox.msgs, g.inbox.quietMsgs, g.inbox.quiesceBeat, g.inbox.proposals, g.inbox.reads = nil, nil, nil, nil, nil
	g.inbox.ticks, g.inbox.unreachable, g.inbox.campaign, g.inbox.downNodes = 0, nil, false, nil
	g.inbox.snapshots, g.inbox.snapStatus, g.inbox.transferTo = nil, nil, 0
	g.inbox.destroy = 0
	g.inboxMu.Unlock()
	if in.destroy != 0 && in.destroy == g.replicaID {
		h.logger.Info("destroying a replica removed from its group while it could not hear of it", "group", g.id, "replica", g.replicaID)
		h.destroyGroup(g)
		return
	}
	msgs, props, ticks, unreachable, campaign := in.msgs, in.proposals, in.ticks, in.unreachable, in.campaign

	busy := len(msgs) > 0 || len(props) > 0 || len(in.reads) > 0 || len(unreachable) > 0 || campaign ||
		len(in.snapshots) > 0 || len(in.snapStatus) > 0 || in.transferTo != 0
	peerDown := len(in.downNodes) > 0 && g.hasReplicaOn(in.downNodes)
	if g.quiesced && (busy || peerDown) {
		h.unquiesce(g)
	}
	switch {
	case peerDown:
		// A replica's node died: forget any quiesce beat, from it or not;
		// the group must run until it is settled again.
		g.quiesceBeat = nil
	case in.quiesceBeat != nil:
		g.quiesceBeat = in.quiesceBeat
	case busy:
		g.quiesceBeat = nil
	}
	for range ticks {
		g.rn.Tick()
	}
	for _, batch := range [][]*pb.Message{in.quietMsgs, msgs} {
		for _, m := range batch {
			if err := h.step(g, m); err != nil {
				h.fail(fmt.Errorf("group %d: %w", g.id, err))
				return
			}
		}
	}
	for _, s := range in.snapStatus {
		g.rn.ReportSnapshot(uint64(s.to), s.status)
	}
	for _, ps := range in.snapshots {
		h.offerSnapshot(g, ps)
	}
	if in.transferTo != 0 {
		g.rn.TransferLeader(uint64(in.transferTo))
	}
	for _, r := range unreachable {
		g.rn.ReportUnreachable(uint64(r))
	}
	if campaign {
		_ = g.rn.Campaign()
	}
	for _, p := range props {
		h.propose(g, p)
	}
	g.readQueue = append(g.readQueue, in.reads...)
	h.maybeIssueReads(g)
	if ticks > 0 && !busy {
		h.maybeTruncateLog(g)
	}
	if err := h.handleReady(g); err != nil {
		h.fail(fmt.Errorf("group %d: %w", g.id, err))
		return
	}
	if g.destroyed.Load() {
		return
	}
	g.dropUnacceptedSnapshots()
	h.expireReads(g, ticks)
	if h.maybeIssueReads(g) {
		// The new round's messages.
		if err := h.handleReady(g); err != nil {
			h.fail(fmt.Errorf("group %d: %w", g.id, err))
			return
		}
	}
	switch {
	case g.quiesced:
		// Quiet messages alone may still have given a quiescent leader work
		// (a follower turned out to lag): then it must wake.
		if _, _, _, ok := h.leaderQuiescable(g); !ok && g.rn.BasicStatus().RaftState == raft.StateLeader {
			h.unquiesce(g)
		}
	case g.quiesceBeat != nil && !busy:
		if h.maybeQuiesceFollower(g, g.quiesceBeat) {
			g.quiesceBeat = nil
		}
	case ticks > 0 && !busy && !h.disableQuiescence():
		h.maybeQuiesceLeader(g)
	}
	g.publishStatus()
	h.metrics.observeProcessing(time.Since(start))
}

// step feeds one message to raft (worker). Errors from raft are for
// messages it ignores (stale, from unknown peers); the error returned is a
// failure to take in a snapshot the log writer made durable.
func (h *Host) step(g *group, m *pb.Message) error {
	_ = g.rn.Step(m)
	if m.GetType() == pb.MsgStorageAppendResp && m.GetSnapshot() != nil {
		return h.snapshotApplied(g, m.GetSnapshot())
	}
	return nil
}

// propose hands p to raft, or resolves it if it cannot be proposed.
func (h *Host) propose(g *group, p *proposal) {
	if !p.state.CompareAndSwap(propQueued, propProposed) {
		return // the caller gave up
	}
	p.proposed = time.Now()
	h.metrics.proposalWait.Update(p.proposed.Sub(p.submitted).Seconds())
	st := g.rn.BasicStatus()
	if st.RaftState != raft.StateLeader {
		p.resolve(Result{}, &NotAppliedError{Err: ErrNotLeader, Leader: ReplicaID(st.Lead)})
		return
	}
	var err error
	if p.cc != nil {
		cc := proto.Clone(p.cc).(*pb.ConfChangeV2)
		cc.Context = encodeEntry(p.id, p.cc.GetContext())
		err = g.rn.ProposeConfChange(cc)
	} else {
		err = g.rn.Propose(encodeEntry(p.id, p.data))
	}
	if err != nil {
		p.resolve(Result{}, notApplied(fmt.Errorf("%w: %v", ErrProposalDropped, err)))
		return
	}
	g.proposing[p.id] = p
}

// handleReady processes every Ready the group has.
func (h *Host) handleReady(g *group) error {
	for g.rn.HasReady() {
		rd := g.rn.Ready()
		for _, m := range rd.Messages {
			switch m.GetTo() {
			case raft.LocalAppendThread:
				g.notePendingIndexes(m.GetEntries())
				var ps *pendingSnapshot
				if snap := m.GetSnapshot(); snap != nil {
					idx := snap.GetMetadata().GetIndex()
					if ps = g.stagedSnaps[idx]; ps == nil {
						return fmt.Errorf("raft accepted a snapshot at %d with no data staged for it", idx)
					}
					delete(g.stagedSnaps, idx)
				}
				g.appendsInFlight.Add(1)
				h.logWriter.enqueue(g, m, ps)
			case raft.LocalApplyThread:
				destroyed, err := h.apply(g, m.GetEntries())
				if err != nil {
					return err
				}
				if destroyed {
					return nil
				}
				for _, resp := range m.GetResponses() {
					_ = g.rn.Step(resp)
				}
			default:
				h.send(g, m)
			}
		}
		if len(rd.ReadStates) > 0 {
			h.handleReadStates(g, rd.ReadStates)
		}
	}
	if len(g.proposing) > 0 {
		// Every proposal raft accepted is in the unstable log and so in a
		// MsgStorageAppend of the Ready that followed it, carrying its ID;
		// raft refuses a membership change while another is pending by
		// appending an empty entry instead, so a change not seen was
		// refused and will never be applied.
		for id, p := range g.proposing {
			if p.cc != nil {
				p.resolve(Result{}, notApplied(fmt.Errorf("%w: another membership change is pending", ErrProposalDropped)))
			} else {
				p.resolve(Result{}, ambiguous(errors.New("multiraft: proposal's entry not seen in the log")))
			}
			delete(g.proposing, id)
		}
	}
	return nil
}

// notePendingIndexes records the log positions of this host's proposals as
// raft appends their entries.
func (g *group) notePendingIndexes(ents []*pb.Entry) {
	if len(g.proposing) == 0 {
		return
	}
	for _, e := range ents {
		id := entryProposalID(e)
		p := g.proposing[id]
		if p == nil {
			continue
		}
		delete(g.proposing, id)
		p.index, p.term = e.GetIndex(), e.GetTerm()
		if old := g.pendingByIndex[p.index]; old != nil && old != p {
			old.resolve(Result{}, notApplied(fmt.Errorf("%w: entry overwritten", ErrProposalDropped)))
		}
		g.pendingByIndex[p.index] = p
	}
}

// apply applies committed entries to the state machine and records the
// applied state in the same batch. It reports whether the replica removed
// itself from the group (and was destroyed).
func (h *Host) apply(g *group, ents []*pb.Entry) (destroyed bool, _ error) {
	if len(ents) == 0 {
		return false, nil
	}
	applyStart := time.Now()
	cmds := make([]Command, 0, len(ents))
	ids := make([]uint64, 0, len(ents))
	var truncateTo uint64
	for _, e := range ents {
		switch e.GetType() {
		case pb.EntryNormal:
			if len(e.GetData()) == 0 {
				continue // the empty entry a new leader appends
			}
			if idx, ok := decodeInternal(e.GetData()); ok {
				truncateTo = max(truncateTo, idx)
				g.truncationPending = false
				continue
			}
			id, cmd, ok := decodeEntry(e.GetData())
			if !ok {
				h.logger.Error("skipping malformed entry", "group", g.id, "index", e.GetIndex())
				continue
			}
			cmds = append(cmds, Command{Index: e.GetIndex(), Term: e.GetTerm(), Kind: CommandNormal, Data: cmd})
			ids = append(ids, id)
		case pb.EntryConfChange, pb.EntryConfChangeV2:
			cc, err := decodeConfChange(e)
			if err != nil {
				return false, fmt.Errorf("entry %d: %w", e.GetIndex(), err)
			}
			// The state machine sees the Context the proposer gave, not the
			// proposal ID wrapped around it.
			id, inner, ok := decodeEntry(cc.GetContext())
			if ok {
				cc.Context = inner
			}
			cmds = append(cmds, Command{Index: e.GetIndex(), Term: e.GetTerm(), Kind: CommandConfChange, ConfChange: cc})
			ids = append(ids, id)
		}
	}
	b := h.eng.NewBatch()
	defer b.Close()
	var results []Result
	if len(cmds) > 0 {
		var err error
		if results, err = g.sm.Apply(b, cmds); err != nil {
			return false, fmt.Errorf("state machine: %w", err)
		}
		if len(results) != len(cmds) {
			return false, fmt.Errorf("state machine returned %d results for %d commands", len(results), len(cmds))
		}
	}
	var splits []*preparedSplit
	var newGroups []*NewGroup
	defer func() {
		for _, ng := range newGroups {
			if ng.Done != nil {
				ng.Done()
			}
		}
	}()
	for i := range results {
		if results[i].NewGroup == nil {
			continue
		}
		newGroups = append(newGroups, results[i].NewGroup)
		if len(splits) == 0 {
			h.createMu.Lock()
			defer h.createMu.Unlock()
		}
		ps, err := h.prepareSplit(g, b, results[i].NewGroup)
		if err != nil {
			for _, p := range splits {
				_ = h.finishSplit(p, false)
			}
			return false, fmt.Errorf("entry %d: %w", cmds[i].Index, err)
		}
		if ps != nil {
			splits = append(splits, ps)
		}
	}
	wasMember := inConfig(g.applied.confState, g.replicaID)
	cs := g.applied.confState
	for i, c := range cmds {
		if c.Kind != CommandConfChange {
			continue
		}
		cc := c.ConfChange
		if results[i].Err != nil && !cc.LeaveJoint() {
			cc = rejectedConfChange(cc)
		}
		cs = g.rn.ApplyConfChange(cc)
	}
	last := ents[len(ents)-1]
	g.applied = appliedState{index: last.GetIndex(), term: last.GetTerm(), confState: cs}
	err := writeAppliedState(b, g.id, g.applied)
	if err == nil {
		// A split is synced: once the new group's span is released to
		// snapshots (NewGroup.Done), a snapshot ingested there must never
		// meet, after a crash, the parent's span from before the split.
		err = b.Commit(len(newGroups) > 0)
	}
	for _, p := range splits {
		if ferr := h.finishSplit(p, err == nil); err == nil {
			err = ferr
		}
	}
	if err != nil {
		return false, err
	}
	h.metrics.entriesApplied.Add(len(ents))
	g.releaseReads()
	if truncateTo > 0 {
		h.logWriter.enqueueCompact(g, truncateTo)
	}
	defer func() {
		if wasMember && !inConfig(cs, g.replicaID) {
			h.destroyGroup(g)
			destroyed = true
		}
	}()

	// Resolve this host's proposals at the applied indexes.
	if len(g.pendingByIndex) == 0 {
		return false, nil
	}
	j := 0
	for _, e := range ents {
		p := g.pendingByIndex[e.GetIndex()]
		for j < len(cmds) && cmds[j].Index < e.GetIndex() {
			j++
		}
		if p == nil {
			continue
		}
		delete(g.pendingByIndex, e.GetIndex())
		if j < len(cmds) && cmds[j].Index == e.GetIndex() && ids[j] == p.id && e.GetTerm() == p.term {
			h.metrics.observeProposal(p.proposed, applyStart)
			p.resolve(results[j], nil)
		} else {
			p.resolve(Result{}, notApplied(fmt.Errorf("%w: a new leader overwrote its entry", ErrProposalDropped)))
		}
	}
	return false, nil
}

// rejectedConfChange is what raft must apply for a change the state machine
// rejected: one change of replica ID zero, which raft skips. (An empty
// ConfChangeV2 would mean "leave the joint configuration", and a rejected
// change of several replicas kept whole would still enter a joint
// configuration, of nothing.) A LeaveJoint cannot be rejected: it only
// finishes a change already made.
func rejectedConfChange(cc *pb.ConfChangeV2) *pb.ConfChangeV2 {
	return &pb.ConfChangeV2{Changes: []*pb.ConfChangeSingle{{Type: cc.GetChanges()[0].Type, NodeId: new(uint64(0))}}}
}

func decodeConfChange(e *pb.Entry) (*pb.ConfChangeV2, error) {
	if e.GetType() == pb.EntryConfChange {
		var cc pb.ConfChange
		if err := proto.Unmarshal(e.GetData(), &cc); err != nil {
			return nil, err
		}
		return cc.AsV2(), nil
	}
	cc := &pb.ConfChangeV2{}
	if err := proto.Unmarshal(e.GetData(), cc); err != nil {
		return nil, err
	}
	return cc, nil
}

// publishStatus makes the replica's state readable by other goroutines.
func (g *group) publishStatus() {
	st := g.rn.BasicStatus()
	g.status.leader.Store(st.Lead)
	g.status.term.Store(st.GetTerm())
	g.status.commit.Store(st.GetCommit())
	g.status.applied.Store(g.applied.index)
	g.status.raftState.Store(int32(st.RaftState))
	if last, err := g.storage.LastIndex(); err == nil {
		g.status.lastIndex.Store(last)
	}
	if g.status.confState.Load() != g.applied.confState {
		g.status.confState.Store(g.applied.confState)
	}
	// Learners are rare and short-lived (a replica catching up before its
	// promotion), so the map is built only while there are some.
	if st.RaftState == raft.StateLeader && len(g.applied.confState.GetLearners()) > 0 {
		m := make(map[ReplicaID]uint64, len(g.applied.confState.GetLearners()))
		g.rn.WithProgress(func(id uint64, typ raft.ProgressType, pr tracker.Progress) {
			if pr.IsLearner {
				m[ReplicaID(id)] = pr.Match
			}
		})
		g.status.learnerMatch.Store(&m)
	} else if g.status.learnerMatch.Load() != nil {
		g.status.learnerMatch.Store(nil)
	}
}

// ---- Outgoing messages ----------------------------------------------------

// outbox queues messages to one peer node; its sender goroutine drains it
// into one batch at a time. Heartbeats and their responses wait for the next
// tick (unless they carry a read's context), so that every group's beats to
// a node travel in one batch per tick.
type outbox struct {
	to        NodeID
	mu        sync.Mutex
	msgs      []GroupMessage
	beats     []Heartbeat
	beatResps []Heartbeat
	ping      bool // a liveness ping is due
	wake      chan struct{}
}

func (ob *outbox) queuedLocked() int { return len(ob.msgs) + len(ob.beats) + len(ob.beatResps) }

func (ob *outbox) signal() {
	select {
	case ob.wake <- struct{}{}:
	default:
	}
}

// sendBeat queues a coalesced heartbeat (or response, if resp); urgent
// beats (a read waits on them) go out at once, the others with the next
// tick.
func (h *Host) sendBeat(g *group, hb Heartbeat, resp bool) {
	ob := h.outbox(hb.To.Node())
	ob.mu.Lock()
	full := ob.queuedLocked() >= h.cfg.MaxOutboxMessages
	if !full {
		if resp {
			ob.beatResps = append(ob.beatResps, hb)
		} else {
			ob.beats = append(ob.beats, hb)
		}
	}
	ob.mu.Unlock()
	if full {
		h.metrics.messagesDropped.Inc()
		h.reportUnreachable(g, hb.To)
		return
	}
	if len(hb.Context) > 0 {
		ob.signal()
	}
}

// send queues a raft message for its replica's node.
func (h *Host) send(g *group, m *pb.Message) {
	to := ReplicaID(m.GetTo())
	switch m.GetType() {
	case pb.MsgHeartbeat, pb.MsgHeartbeatResp:
		if to.Node() != h.cfg.NodeID && to.Node() != 0 {
			h.metrics.countSent(m.GetType())
			h.sendBeat(g, heartbeatOf(g.id, m), m.GetType() == pb.MsgHeartbeatResp)
			return
		}
	}
	if m.GetType() == pb.MsgSnap {
		h.startSnapshot(g, m) // only raft, on the worker, sends MsgSnap
		return
	}
	node := to.Node()
	if node == h.cfg.NodeID || node == 0 {
		h.logger.Error("raft message to a replica on this node", "group", g.id, "to", to)
		return
	}
	ob := h.outbox(node)
	ob.mu.Lock()
	full := ob.queuedLocked() >= h.cfg.MaxOutboxMessages
	if !full {
		ob.msgs = append(ob.msgs, GroupMessage{Group: g.id, Message: m})
	}
	ob.mu.Unlock()
	if full {
		h.metrics.messagesDropped.Inc()
		h.reportUnreachable(g, to)
		return
	}
	h.metrics.countSent(m.GetType())
	ob.signal()
}

// flushOutboxes sends every outbox's queued heartbeats; with ping, an empty
// batch goes to peers with nothing queued, so they hear from this node.
func (h *Host) flushOutboxes(ping bool) {
	h.outboxMu.Lock()
	obs := make([]*outbox, 0, len(h.outboxes))
	for _, ob := range h.outboxes {
		obs = append(obs, ob)
	}
	h.outboxMu.Unlock()
	for _, ob := range obs {
		ob.mu.Lock()
		if ping {
			ob.ping = true
		}
		due := ob.ping || len(ob.beats) > 0 || len(ob.beatResps) > 0
		ob.mu.Unlock()
		if due {
			ob.signal()
		}
	}
}

// reportBatchUnreachable tells the groups of a batch the transport refused
// that their peers are unreachable.
func (h *Host) reportBatchUnreachable(b *MessageBatch) {
	for _, gm := range b.Messages {
		if g := h.group(gm.Group); g != nil {
			h.reportUnreachable(g, ReplicaID(gm.Message.GetTo()))
		}
	}
	for _, beats := range [][]Heartbeat{b.Heartbeats, b.HeartbeatResps} {
		for _, hb := range beats {
			if g := h.group(hb.Group); g != nil {
				h.reportUnreachable(g, hb.To)
			}
		}
	}
}

func (h *Host) reportUnreachable(g *group, to ReplicaID) {
	g.inboxMu.Lock()
	g.inbox.unreachable = append(g.inbox.unreachable, to)
	g.inboxMu.Unlock()
	h.sched.enqueue(g)
}

func (h *Host) outbox(node NodeID) *outbox {
	h.outboxMu.Lock()
	defer h.outboxMu.Unlock()
	ob := h.outboxes[node]
	if ob == nil {
		ob = &outbox{to: node, wake: make(chan struct{}, 1)}
		h.outboxes[node] = ob
		if !h.stopped.Load() {
			h.wg.Add(1)
			go h.runSender(ob)
		}
	}
	return ob
}

func (h *Host) runSender(ob *outbox) {
	defer h.wg.Done()
	for {
		select {
		case <-h.stopper:
			return
		case <-ob.wake:
		}
		ob.mu.Lock()
		batch := &MessageBatch{From: h.cfg.NodeID, To: ob.to, Messages: ob.msgs,
			Heartbeats: ob.beats, HeartbeatResps: ob.beatResps}
		ping := ob.ping
		ob.msgs, ob.beats, ob.beatResps, ob.ping = nil, nil, nil, false
		ob.mu.Unlock()
		if len(batch.Messages) == 0 && len(batch.Heartbeats) == 0 && len(batch.HeartbeatResps) == 0 && !ping {
			continue
		}
		h.metrics.batchesSent.Inc()
		h.metrics.heartbeatsCoalesced.Add(len(batch.Heartbeats) + len(batch.HeartbeatResps))
		if err := h.cfg.Transport.Send(batch); err != nil {
			h.metrics.messagesDropped.Add(batch.count())
			h.reportBatchUnreachable(batch)
		}
	}
}

func (h *Host) disableQuiescence() bool {
	return h.cfg.Testing != nil && h.cfg.Testing.DisableQuiescence
}

// ---- Lifecycle ------------------------------------------------------------

// fail stops the host after an error it cannot continue from (a storage
// failure). It returns at once; the host stops in the background.
func (h *Host) fail(err error) {
	if !h.failed.CompareAndSwap(nil, &err) {
		return
	}
	h.logger.Error("host failed, stopping", "err", err)
	go h.Stop()
}

// Err returns the error that made the host fail, if any.
func (h *Host) Err() error {
	if p := h.failed.Load(); p != nil {
		return *p
	}
	return nil
}

// Stop stops every goroutine of the host and waits for them. Proposals not
// yet handed to raft fail as not applied, the others as ambiguous. The
// engine stays open. Stop is idempotent.
func (h *Host) Stop() {
	h.stopOnce.Do(func() {
		// Outbox creation checks stopped under outboxMu, so no sender starts
		// after this and wg.Wait below sees them all.
		h.outboxMu.Lock()
		h.stopped.Store(true)
		h.outboxMu.Unlock()
		close(h.stopper)
		h.wg.Wait()
		// Workers first: a worker part-way through a pass may still start a
		// snapshot sender.
		h.sched.stop()
		h.snapWG.Wait()
		h.logWriter.stop()
		h.closeGroups()
		h.metrics.unregister()
	})
}

// closeGroups resolves every outstanding proposal and releases the groups'
// storages. Nothing else may run on the groups.
func (h *Host) closeGroups() {
	h.groupsMu.Lock()
	defer h.groupsMu.Unlock()
	h.groupsClosed = true
	for id, g := range h.groups {
		g.closeInbox(ErrStopped)
		for _, p := range g.proposing {
			p.resolve(Result{}, ambiguous(ErrStopped))
		}
		for _, p := range g.pendingByIndex {
			p.resolve(Result{}, ambiguous(ErrStopped))
		}
		g.failReads(ErrStopped)
		g.dropUnacceptedSnapshots()
		g.inboxMu.Lock()
		for _, r := range g.inbox.reads {
			r.resolve(0, ErrStopped)
		}
		g.inbox.reads = nil
		g.inboxMu.Unlock()
		g.storage.Close()
		delete(h.groups, id)
	}
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

// ProposeAndWait proposes cmd and waits for its outcome (see Proposal.Wait).
func (h *Host) ProposeAndWait(ctx context.Context, id GroupID, cmd []byte) (Result, error) {
	return h.Propose(id, cmd).Wait(ctx)
}
