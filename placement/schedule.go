// Copyright 2026 The Flotilla Authors. All rights reserved.

package placement

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/flotilladb/flotilla/multiraft"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"google.golang.org/protobuf/proto"
)

// This file is the driver's scheduling: it turns the checker's and the
// balancers' operators into steps for range leaders, one step per range
// heartbeat, and tracks every operator until it finishes, fails or
// expires. Operators live in memory on the placement group's leader (a new
// leader starts with none: a half-done operator leaves a range the replica
// checker repairs, e.g. an extra learner).
//
// Safety does not rest on the heartbeats being fresh or in order:
//   - a step carries the conf_ver of the descriptor it was computed
//     against, and both the range's leader and the range's state machine
//     refuse it at any other conf_ver, so a step runs at most once;
//   - an operator expects the range's conf_ver to move only by its own
//     steps; any other change fails it;
//   - a removal or demotion is handed out only while the driver sees a
//     quorum of live voters after it (SafeToRemove, SafeToReplace).

// Operator sources.
const (
	SourceReplicaChecker  = "replica-checker"
	SourceBalanceReplicas = "balance-replicas"
	SourceBalanceLeaders  = "balance-leaders"
	SourceAdmin           = "admin"
	SourceSplitChecker    = "split-checker"
)

// Operator states.
const (
	OpRunning  = "running"
	OpFinished = "finished"
	OpFailed   = "failed"
	OpExpired  = "expired"
)

// historySize is how many ended operators the driver remembers for status.
const historySize = 64

// trackedOp is an operator the driver hands out.
type trackedOp struct {
	id     uint64
	op     *Operator
	source string
	// done counts the steps finished; confVer is the range's conf_ver the
	// next step expects.
	done    int
	confVer uint64
	started time.Time
	// progressed is when a step last finished (or the operator started).
	progressed time.Time
	state      string
	err        string
	ended      time.Time
}

func (t *trackedOp) status(now time.Time) *flotillapb.OperatorStatus {
	st := &flotillapb.OperatorStatus{
		Id: t.id, RangeId: uint64(t.op.RangeID), Source: t.source, Reason: t.op.Reason,
		Done: uint32(t.done), State: t.state, Error: t.err, AgeSeconds: now.Sub(t.started).Seconds(),
	}
	for _, s := range t.op.Steps {
		st.Steps = append(st.Steps, s.String())
	}
	return st
}

// view builds the ClusterView the checker and balancers decide on: member
// stores with their state and liveness, every range with its newest
// descriptor, leader and pending replicas, and per-store counts from those
// ranges (not from store heartbeats, which lag the descriptors). The
// placement group is not among the ranges; it is returned apart.
//
// With influence, the counts are those the running operators will leave
// (a replica still to add counts on its target, one still to remove no
// longer counts, a leadership still to move counts on its new store), so
// that balancing does not start a second move for an imbalance a running
// one already corrects. Decommission and status counts are without.
//
// Views are cached: a view is built again only once something it depends
// on changed (the driver's generation, bumped by every observation that
// changes a range's descriptor, leader or pending replicas, a store coming
// back, and every operator change; or the meta state) or it is older than
// viewCacheTTL (liveness and stuck replicas depend on the time). With
// hundreds of ranges, most heartbeats change nothing, and a view costs
// O(ranges). Callers must not modify a view.
func (d *Driver) viewLocked(meta *flotillapb.ClusterMeta, now time.Time, influence bool) (*ClusterView, *RangeView) {
	c := &d.mu.views[btoi(influence)]
	if c.cv != nil && c.gen == d.mu.gen && c.meta == meta && !now.Before(c.at) && now.Sub(c.at) < viewCacheTTL {
		return c.cv, c.pg
	}
	cv, pg := d.buildViewLocked(meta, now, influence)
	*c = cachedView{gen: d.mu.gen, meta: meta, at: now, cv: cv, pg: pg}
	return cv, pg
}

// viewCacheTTL bounds how old a cached view may be.
const viewCacheTTL = 100 * time.Millisecond

type cachedView struct {
	gen  uint64
	meta *flotillapb.ClusterMeta
	at   time.Time
	cv   *ClusterView
	pg   *RangeView
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// buildViewLocked builds a view (see viewLocked).
func (d *Driver) buildViewLocked(meta *flotillapb.ClusterMeta, now time.Time, influence bool) (*ClusterView, *RangeView) {
	cv := &ClusterView{
		Stores:               map[multiraft.NodeID]*StoreView{},
		ReplicationFactor:    d.cfg.ReplicationFactor,
		MaxSnapshotsPerStore: d.cfg.MaxSnapshotsPerStore,
	}
	for _, n := range meta.GetNodes() {
		id := multiraft.NodeID(n.GetNodeId())
		live, down, _ := d.storeLivenessLocked(id, now)
		labels := flotillapb.LabelsMap(n.GetLabels())
		if labels == nil {
			labels = map[string]string{}
		}
		cv.Stores[id] = &StoreView{ID: id, State: StoreState(n.GetState()), Live: live, Down: down, Labels: labels}
	}
	cv.Rules = d.rulesOfLocked(meta)
	byID := map[multiraft.GroupID]*RangeView{}
	for _, desc := range meta.GetRanges() {
		byID[multiraft.GroupID(desc.GetRangeId())] = &RangeView{Desc: desc}
	}
	for id, obs := range d.mu.ranges {
		rv := byID[id]
		hd := obs.hb.GetDescriptor_()
		if rv == nil || !rv.Desc.GetEpoch().Newer(hd.GetEpoch()) {
			rv = &RangeView{Desc: hd}
			byID[id] = rv
		}
		rangeLeader(rv, obs.hb)
		rv.Load = obs.hb.GetReadsPerSecond() + obs.hb.GetWritesPerSecond()
		rv.Size = obs.hb.GetStats().GetKeyBytes() + obs.hb.GetStats().GetValueBytes()
		rv.Stuck = d.stuckLocked(id, rv.Pending, now)
	}
	descs := make([]*flotillapb.RangeDescriptor, 0, len(byID))
	for _, rv := range byID {
		descs = append(descs, rv.Desc)
	}
	cv.byID = make(map[multiraft.GroupID]*RangeView, len(descs))
	for _, desc := range DropOverlapped(descs) {
		rv := byID[multiraft.GroupID(desc.GetRangeId())]
		cv.Ranges = append(cv.Ranges, rv)
		cv.byID[multiraft.GroupID(desc.GetRangeId())] = rv
		for _, rep := range rv.Desc.GetReplicas() {
			if s := cv.Stores[multiraft.NodeID(rep.GetStoreId())]; s != nil {
				s.Ranges++
			}
		}
		if s := cv.Stores[rv.Leader.Node()]; s != nil && rv.Leader != 0 {
			s.Leaders++
		}
	}
	// Moves in flight towards each store: a range smaller than
	// SmallSnapshotBytes counts 1/SmallSnapshotShare of one (its snapshot
	// costs little), so that a freshly pre-split cluster's empty ranges
	// up-replicate many at a time.
	large, small := map[multiraft.NodeID]int{}, map[multiraft.NodeID]int{}
	for id, t := range d.mu.ops {
		for _, s := range t.op.Steps[t.done:] {
			if s.Kind == StepAddLearner || (s.Kind == StepPromote && s.Replica != 0) {
				if rv := byID[id]; rv != nil && rv.Size < SmallSnapshotBytes {
					small[s.Replica.Node()]++
				} else {
					large[s.Replica.Node()]++
				}
				break
			}
		}
	}
	for id, st := range cv.Stores {
		st.Snapshots = large[id] + small[id]/SmallSnapshotShare
	}
	if influence {
		d.addInfluenceLocked(cv, byID)
	}
	pg := &RangeView{Desc: meta.GetPlacementGroup()}
	if obs := d.mu.placement; obs.hb != nil {
		if pg.Desc == nil || obs.hb.GetDescriptor_().GetEpoch().Newer(pg.Desc.GetEpoch()) {
			pg.Desc = obs.hb.GetDescriptor_()
		}
		rangeLeader(pg, obs.hb)
		pg.Stuck = d.stuckLocked(GroupID, pg.Pending, now)
	}
	if pg.Desc == nil {
		pg = nil
	}
	return cv, pg
}

// rulesOfLocked returns meta's rules compiled, compiling them only when
// meta changed. The placement group applied the rules, so they compile;
// if they did not (a bug), the default rule is the safe fallback.
func (d *Driver) rulesOfLocked(meta *flotillapb.ClusterMeta) []Rule {
	if d.mu.rulesMeta != meta {
		rules, err := CompileRules(meta.GetRules())
		if err != nil {
			rules = nil
		}
		d.mu.rules, d.mu.rulesMeta = rules, meta
	}
	return d.mu.rules
}

// addInfluenceLocked adjusts cv's counts by what the running operators
// still have to do.
func (d *Driver) addInfluenceLocked(cv *ClusterView, ranges map[multiraft.GroupID]*RangeView) {
	for id, t := range d.mu.ops {
		r := ranges[id]
		if r == nil {
			continue
		}
		for _, s := range t.op.Steps[t.done:] {
			st := cv.Stores[s.Replica.Node()]
			if st == nil {
				continue
			}
			switch {
			case s.Kind == StepAddLearner && r.Desc.Replica(s.Replica) == nil:
				st.Ranges++
			case s.Kind == StepRemove && r.Desc.Replica(s.Replica) != nil:
				st.Ranges--
			case s.Kind == StepTransferLeader && r.Leader != s.Replica:
				st.Leaders++
				if from := cv.Stores[r.Leader.Node()]; from != nil && r.Leader != 0 {
					from.Leaders--
				}
			}
		}
	}
}

// stuckLocked returns the replicas of pending that have been pending for
// longer than OperatorTimeout.
func (d *Driver) stuckLocked(rangeID multiraft.GroupID, pending []multiraft.ReplicaID, now time.Time) []multiraft.ReplicaID {
	var out []multiraft.ReplicaID
	for _, p := range pending {
		if since, ok := d.mu.pendingSince[rangeID][p]; ok && now.Sub(since) > d.cfg.OperatorTimeout {
			out = append(out, p)
		}
	}
	return out
}

// rangeLeader fills rv's leader and pending replicas from a heartbeat, if
// the heartbeat's leader is a replica of rv's descriptor.
func rangeLeader(rv *RangeView, hb *flotillapb.RangeHeartbeatRequest) {
	if rv.Desc.Replica(multiraft.ReplicaID(hb.GetLeaderReplicaId())) == nil {
		return
	}
	rv.Leader = multiraft.ReplicaID(hb.GetLeaderReplicaId())
	rv.Pending = rv.Pending[:0]
	for _, p := range hb.GetPendingReplicas() {
		rv.Pending = append(rv.Pending, multiraft.ReplicaID(p))
	}
}

// rangeView returns the view of range id in cv (the placement group's is
// pg), and the ClusterView to decide it with.
func (d *Driver) rangeView(cv *ClusterView, pg *RangeView, id multiraft.GroupID) (*RangeView, *ClusterView) {
	if id == GroupID {
		if pg == nil {
			return nil, nil
		}
		pcv := *cv
		pcv.ReplicationFactor = d.cfg.PlacementReplicationFactor
		pcv.Rules = nil // placement rules are for ranges
		return pg, &pcv
	}
	if r := cv.Range(id); r != nil {
		return r, cv
	}
	return nil, nil
}

// ReplicaSeqsNeeded returns how many replica sequence numbers the caller
// should allocate (AllocIDs) and hand to AddReplicaSeqs before scheduling,
// 0 if the driver holds enough.
func (d *Driver) ReplicaSeqsNeeded() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.mu.seqEnd-d.mu.seqNext >= 16 {
		return 0
	}
	return 64
}

// AddReplicaSeqs gives the driver the replica sequence numbers [first,
// first+n), allocated through the placement group.
func (d *Driver) AddReplicaSeqs(first, n uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.mu.seqNext, d.mu.seqEnd = first, first+n
}

// allocLocked is the ReplicaAllocator over the driver's block of sequence
// numbers; it returns 0 when the block is empty.
func (d *Driver) allocLocked(_ multiraft.GroupID, store multiraft.NodeID) multiraft.ReplicaID {
	if d.mu.seqNext >= d.mu.seqEnd || d.mu.seqNext >= 1<<32 {
		return 0
	}
	seq := d.mu.seqNext
	d.mu.seqNext++
	return multiraft.MakeReplicaID(store, uint32(seq))
}

// validOp reports whether every replica an operator names is valid (the
// allocator did not run dry).
func validOp(op *Operator) bool {
	if op == nil || len(op.Steps) == 0 {
		return false
	}
	for _, s := range op.Steps {
		if s.Kind == StepSplit {
			if s.NewRange == 0 || len(s.NewReplicas) == 0 || slices.ContainsFunc(s.NewReplicas, func(id multiraft.ReplicaID) bool { return !id.Valid() }) {
				return false
			}
			continue
		}
		if !s.Replica.Valid() {
			return false
		}
	}
	return true
}

// RangeIDsNeeded returns how many range IDs the caller should allocate
// (AllocIDs) and hand to AddRangeIDs, 0 if the driver holds enough.
func (d *Driver) RangeIDsNeeded() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.mu.rangeEnd-d.mu.rangeNext >= 4 {
		return 0
	}
	return 32
}

// AddRangeIDs gives the driver the range IDs [first, first+n), allocated
// through the placement group.
func (d *Driver) AddRangeIDs(first, n uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.mu.rangeNext, d.mu.rangeEnd = first, first+n
}

// allocRangeLocked returns a new range ID from the driver's block, or 0.
func (d *Driver) allocRangeLocked() multiraft.GroupID {
	if d.mu.rangeNext >= d.mu.rangeEnd {
		return 0
	}
	id := d.mu.rangeNext
	d.mu.rangeNext++
	return multiraft.GroupID(id)
}

// splitLocked starts an operator that splits range r at key, for source;
// nil if no IDs are at hand.
func (d *Driver) splitLocked(r *RangeView, key []byte, source, reason string, now time.Time) *trackedOp {
	if d.mu.rangeNext >= d.mu.rangeEnd || d.mu.seqEnd-d.mu.seqNext < uint64(len(r.Desc.GetReplicas())) {
		return nil
	}
	op := SplitOperator(r, key, d.allocRangeLocked(), d.allocLocked, reason)
	if !validOp(op) {
		return nil
	}
	return d.startLocked(op, source, now)
}

// ValidSplitKey reports whether key can split range desc: inside it, not
// its start, and a valid key.
func ValidSplitKey(desc *flotillapb.RangeDescriptor, key []byte) bool {
	return flotillapb.CheckKey(key) == "" && desc.ContainsKey(key) && !bytes.Equal(key, desc.GetStartKey())
}

// startLocked tracks op, replacing the range's operator if any.
func (d *Driver) startLocked(op *Operator, source string, now time.Time) *trackedOp {
	if old := d.mu.ops[op.RangeID]; old != nil {
		d.endLocked(old, OpFailed, "replaced by operator "+fmt.Sprint(d.mu.nextOpID+1), now)
	}
	d.mu.nextOpID++
	t := &trackedOp{id: d.mu.nextOpID, op: op, source: source, confVer: op.ConfVer,
		started: now, progressed: now, state: OpRunning}
	d.mu.ops[op.RangeID] = t
	d.mu.gen++
	return t
}

func (d *Driver) endLocked(t *trackedOp, state, err string, now time.Time) {
	d.mu.gen++
	t.state, t.err, t.ended = state, err, now
	if d.mu.ops[t.op.RangeID] == t {
		delete(d.mu.ops, t.op.RangeID)
	}
	d.mu.counts[state]++
	d.mu.history = append(d.mu.history, t)
	if len(d.mu.history) > historySize {
		d.mu.history = slices.Delete(d.mu.history, 0, len(d.mu.history)-historySize)
	}
}

// advanceLocked moves t past the steps the range shows done and returns the
// next step to hand to the range's leader: nil if the operator ended or
// must wait.
func (d *Driver) advanceLocked(t *trackedOp, r *RangeView, cv *ClusterView, now time.Time) *flotillapb.OperatorStep {
	confVer := r.Desc.GetEpoch().GetConfVer()
	if confVer < t.confVer {
		return nil // an older report than the one that advanced t: wait
	}
	for t.done < len(t.op.Steps) {
		s := t.op.Steps[t.done]
		if !s.doneIn(r) {
			break
		}
		if s.changesConf() {
			// Done by a change of the configuration the operator has not
			// counted yet.
			if confVer <= t.confVer {
				break
			}
			t.confVer++
		}
		t.done++
		t.progressed = now
		d.mu.gen++
	}
	if t.done == len(t.op.Steps) && confVer == t.confVer {
		d.endLocked(t, OpFinished, "", now)
		return nil
	}
	if confVer != t.confVer {
		d.endLocked(t, OpFailed, fmt.Sprintf("the range's configuration changed under the operator (conf_ver %d, expected %d)", confVer, t.confVer), now)
		return nil
	}
	if now.Sub(t.progressed) > d.cfg.OperatorTimeout {
		d.endLocked(t, OpExpired, fmt.Sprintf("no progress for %v", d.cfg.OperatorTimeout), now)
		return nil
	}
	s := t.op.Steps[t.done]
	step := &flotillapb.OperatorStep{OperatorId: t.id, ReplicaId: uint64(s.Replica), DemoteReplicaId: uint64(s.Demote), ConfVer: confVer}
	storeOf := func(id multiraft.ReplicaID) *StoreView { return cv.Stores[id.Node()] }
	// handOff is the step that moves the leadership off the replica a
	// removal or demotion would take out from under it.
	handOff := func() *flotillapb.OperatorStep {
		voters, _ := membersOf(r.Desc)
		for _, v := range voters {
			id := multiraft.ReplicaID(v.GetReplicaId())
			if id != r.Leader && id != s.Demote && storeOf(id).usable() && !slices.Contains(r.Pending, id) {
				return &flotillapb.OperatorStep{OperatorId: t.id, Kind: flotillapb.OperatorStepKind_TRANSFER_LEADER,
					ReplicaId: uint64(id), ConfVer: confVer}
			}
		}
		return nil
	}
	switch s.Kind {
	case StepAddLearner:
		if !storeOf(s.Replica).usable() {
			d.endLocked(t, OpFailed, fmt.Sprintf("store %d cannot take a replica", s.Replica.Node()), now)
			return nil
		}
		step.Kind = flotillapb.OperatorStepKind_ADD_LEARNER
	case StepPromote:
		if r.Desc.Replica(s.Replica) == nil {
			d.endLocked(t, OpFailed, fmt.Sprintf("replica %v to promote is gone", s.Replica), now)
			return nil
		}
		if !storeOf(s.Replica).usable() {
			// Its store died or is leaving: the replica checker removes
			// the learner and picks another store.
			d.endLocked(t, OpFailed, fmt.Sprintf("store %d of the replica to promote cannot take it", s.Replica.Node()), now)
			return nil
		}
		if slices.Contains(r.Pending, s.Replica) {
			return nil // catching up
		}
		if s.Demote != 0 && s.Demote == r.Leader {
			return handOff()
		}
		if s.Demote != 0 && !cv.SafeToReplace(r, s.Replica, s.Demote) {
			return nil
		}
		step.Kind = flotillapb.OperatorStepKind_PROMOTE
	case StepRemove:
		if s.Replica == r.Leader {
			return handOff()
		}
		if !cv.SafeToRemove(r, s.Replica) {
			return nil
		}
		step.Kind = flotillapb.OperatorStepKind_REMOVE
	case StepTransferLeader:
		rep := r.Desc.Replica(s.Replica)
		if rep == nil || rep.GetType() != flotillapb.ReplicaType_VOTER || !storeOf(s.Replica).usable() {
			d.endLocked(t, OpFailed, fmt.Sprintf("replica %v cannot lead", s.Replica), now)
			return nil
		}
		step.Kind = flotillapb.OperatorStepKind_TRANSFER_LEADER
	case StepSplit:
		if v := r.Desc.GetEpoch().GetVersion(); v != s.Version {
			return nil // an older report than the one the split was planned at
		}
		if !ValidSplitKey(r.Desc, s.SplitKey) {
			d.endLocked(t, OpFailed, fmt.Sprintf("split key %q is not inside the range", s.SplitKey), now)
			return nil
		}
		step.Kind = flotillapb.OperatorStepKind_SPLIT
		step.SplitKey, step.NewRangeId, step.Version = s.SplitKey, uint64(s.NewRange), s.Version
		for _, id := range s.NewReplicas {
			step.NewReplicaIds = append(step.NewReplicaIds, uint64(id))
		}
	}
	return step
}

// Schedule returns the next step for the range a heartbeat (already given
// to ObserveRange) reports: the step of its running operator, or of a new
// operator from the replica checker. nil means nothing to do now.
func (d *Driver) Schedule(meta *flotillapb.ClusterMeta, rangeID multiraft.GroupID) *flotillapb.OperatorStep {
	now := d.cfg.Clock()
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.scheduleLocked(meta, rangeID, now)
}

// ScheduleLedBy returns the steps due for the ranges that node leads, by
// the driver's latest reports, other than those in skip (reported in the
// same batch, scheduled by Schedule): the steps of their running
// operators and, with all, of new operators from the replica checker and
// the split checker. A node reports a range that changed nothing rarely
// (the heartbeats scale with activity, not with ranges): this is how its
// ranges get their steps meanwhile. A step decided on an older report is
// safe: the range's leader and its state machine refuse it at any other
// configuration version, and a node that no longer leads refuses it.
func (d *Driver) ScheduleLedBy(meta *flotillapb.ClusterMeta, node multiraft.NodeID, skip map[multiraft.GroupID]bool, all bool) map[multiraft.GroupID]*flotillapb.OperatorStep {
	now := d.cfg.Clock()
	d.mu.Lock()
	defer d.mu.Unlock()
	var out map[multiraft.GroupID]*flotillapb.OperatorStep
	add := func(id multiraft.GroupID) {
		if skip[id] {
			return
		}
		if step := d.scheduleLocked(meta, id, now); step != nil {
			if out == nil {
				out = map[multiraft.GroupID]*flotillapb.OperatorStep{}
			}
			out[id] = step
		}
	}
	if !all {
		return d.scheduleRunningLocked(meta, node, skip, now)
	}
	// Nothing new to decide if nothing changed since the last scan of the
	// node's ranges: the view's generation, the placement state, and the
	// stores' liveness, which moves with time alone (a running operator
	// still gets its step). During the first liveness window after a reset
	// the checkers decide nothing, so such a scan is not recorded.
	cv, pg := d.viewLocked(meta, now, true)
	live := livenessOf(cv)
	if rec, ok := d.mu.scanned[node]; ok && (now.Sub(rec.at) < minScanInterval ||
		rec.gen == d.mu.gen && rec.meta == meta && rec.live == live && now.Sub(rec.at) < idleRecheck) {
		return d.scheduleRunningLocked(meta, node, skip, now)
	}
	warming := now.Sub(d.mu.since) < d.cfg.LivenessWindow
	// Each operator started changes the view, which the next decision is
	// built on again (O(ranges)): at most maxScanStarts per scan, the rest
	// at the next.
	started := 0
	for _, r := range cv.Ranges {
		if started >= maxScanStarts {
			break
		}
		if r.Leader != 0 && r.Leader.Node() == node {
			ops := len(d.mu.ops)
			add(multiraft.GroupID(r.Desc.GetRangeId()))
			if len(d.mu.ops) > ops {
				started++
			}
		}
	}
	if pg != nil && pg.Leader != 0 && pg.Leader.Node() == node {
		add(GroupID)
	}
	if d.mu.scanned == nil {
		d.mu.scanned = map[multiraft.NodeID]scanRecord{}
	}
	if !warming {
		d.mu.scanned[node] = scanRecord{gen: d.mu.gen, meta: meta, at: now, live: live}
	}
	return out
}

// Scans of a node's ranges (ScheduleLedBy): at most one per
// minScanInterval per node, starting at most maxScanStarts operators.
const (
	minScanInterval = 250 * time.Millisecond
	maxScanStarts   = 32
)

// livenessOf returns what a view's decisions depend on that moves with
// time alone, as a string: each store's liveness (ID, live and down
// flags) and how many replicas are stuck catching up.
func livenessOf(cv *ClusterView) string {
	var b []byte
	for _, st := range cv.sortedStores() {
		b = fmt.Appendf(b, "%d:%d%d,", st.ID, btoi(st.Live), btoi(st.Down))
	}
	stuck := 0
	for _, r := range cv.Ranges {
		stuck += len(r.Stuck)
	}
	return string(fmt.Appendf(b, "stuck %d", stuck))
}

// scheduleRunningLocked is ScheduleLedBy without all.
func (d *Driver) scheduleRunningLocked(meta *flotillapb.ClusterMeta, node multiraft.NodeID, skip map[multiraft.GroupID]bool, now time.Time) map[multiraft.GroupID]*flotillapb.OperatorStep {
	var out map[multiraft.GroupID]*flotillapb.OperatorStep
	for id, t := range d.mu.ops {
		obs, ok := d.mu.ranges[id]
		if id == GroupID {
			obs, ok = d.mu.placement, d.mu.placement.hb != nil
		}
		if skip[id] || !ok || t.state != OpRunning || multiraft.ReplicaID(obs.hb.GetLeaderReplicaId()).Node() != node {
			continue
		}
		if step := d.scheduleLocked(meta, id, now); step != nil {
			if out == nil {
				out = map[multiraft.GroupID]*flotillapb.OperatorStep{}
			}
			out[id] = step
		}
	}
	return out
}

// scheduleLocked is Schedule.
func (d *Driver) scheduleLocked(meta *flotillapb.ClusterMeta, rangeID multiraft.GroupID, now time.Time) *flotillapb.OperatorStep {
	cv, pg := d.viewLocked(meta, now, true)
	r, rcv := d.rangeView(cv, pg, rangeID)
	if r == nil || r.Leader == 0 {
		return nil
	}
	if t := d.mu.ops[rangeID]; t != nil {
		if step := d.advanceLocked(t, r, rcv, now); step != nil || d.mu.ops[rangeID] != nil {
			return step
		}
	}
	// The first liveness window after a reset, the driver has not heard
	// from every store yet: it would take them all for dead.
	if now.Sub(d.mu.since) < d.cfg.LivenessWindow {
		return nil
	}
	op := rcv.CheckReplicas(r, d.allocLocked)
	if validOp(op) {
		return d.advanceLocked(d.startLocked(op, SourceReplicaChecker, now), r, rcv, now)
	}
	if rangeID == GroupID {
		return nil
	}
	// A rule boundary inside the range: each side takes its own rule.
	if key := rcv.RuleBoundaryIn(r.Desc); key != nil && ValidSplitKey(r.Desc, key) {
		if t := d.splitLocked(r, bytes.Clone(key), SourceSplitChecker, "split at a placement rule's boundary", now); t != nil {
			return d.advanceLocked(t, r, rcv, now)
		}
	}
	// The leader's proposed split, if its report is about this version.
	obs, ok := d.mu.ranges[rangeID]
	if !ok {
		return nil
	}
	hb := obs.hb
	if key := hb.GetSplitKey(); len(key) > 0 && proto.Equal(hb.GetDescriptor_().GetEpoch(), r.Desc.GetEpoch()) && ValidSplitKey(r.Desc, key) {
		if t := d.splitLocked(r, key, SourceSplitChecker, "split by "+hb.GetSplitReason(), now); t != nil {
			return d.advanceLocked(t, r, rcv, now)
		}
	}
	return nil
}

// AdminSplit starts an operator that splits the range holding key at key,
// in place of the range's running operator, and returns its status.
func (d *Driver) AdminSplit(meta *flotillapb.ClusterMeta, key []byte) (*flotillapb.OperatorStatus, error) {
	now := d.cfg.Clock()
	d.mu.Lock()
	defer d.mu.Unlock()
	cv, _ := d.viewLocked(meta, now, false)
	for _, r := range cv.Ranges {
		desc := r.Desc
		if !desc.Overlaps(&flotillapb.RangeDescriptor{StartKey: key, EndKey: append(bytes.Clone(key), 0)}) {
			continue
		}
		if bytes.Equal(desc.GetStartKey(), key) {
			return nil, fmt.Errorf("%w: %q is already the start of range %d", ErrNoSplit, key, desc.GetRangeId())
		}
		t := d.splitLocked(r, bytes.Clone(key), SourceAdmin, "admin split", now)
		if t == nil {
			return nil, fmt.Errorf("no range or replica IDs are allocated yet; retry")
		}
		return t.status(now), nil
	}
	return nil, fmt.Errorf("no range known to the placement driver holds key %q", key)
}

// ErrNoSplit: the split asked for is already there.
var ErrNoSplit = errors.New("placement: nothing to split")

// Balance runs the replica and leader balancers if fewer than
// MaxBalanceOperators balance operators run, and returns the stores that
// finished decommissioning: STORE_DECOMMISSIONING, and no replica of any
// range or of the placement group left on them. It also expires operators
// that made no progress.
func (d *Driver) Balance(meta *flotillapb.ClusterMeta) (decommissioned []multiraft.NodeID) {
	now := d.cfg.Clock()
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, t := range d.mu.ops {
		if now.Sub(t.progressed) > d.cfg.OperatorTimeout {
			d.endLocked(t, OpExpired, fmt.Sprintf("no progress for %v", d.cfg.OperatorTimeout), now)
		}
	}
	if now.Sub(d.mu.since) < d.cfg.LivenessWindow {
		return nil
	}
	cv, pg := d.viewLocked(meta, now, false)
	for _, s := range cv.sortedStores() {
		if s.State != StoreDecommissioning || s.Ranges > 0 || (pg != nil && cv.hasReplicaOn(pg.Desc, s.ID)) {
			continue
		}
		// Every range the driver knows of must have reported since it
		// became leader, so that no older descriptor hides a replica.
		if len(d.mu.ranges) < len(meta.GetRanges()) {
			continue
		}
		decommissioned = append(decommissioned, s.ID)
	}
	running := 0
	for _, t := range d.mu.ops {
		if t.source == SourceBalanceReplicas || t.source == SourceBalanceLeaders {
			running++
		}
	}
	// Start operators up to the limit, each decided on a view that counts
	// the ones started before it. Ranges with an operator are not
	// balanced until it ends.
	for ; running < d.cfg.MaxBalanceOperators; running++ {
		cv, _ = d.viewLocked(meta, now, true)
		busy := *cv
		busy.Ranges = slices.DeleteFunc(slices.Clone(cv.Ranges), func(r *RangeView) bool {
			return d.mu.ops[multiraft.GroupID(r.Desc.GetRangeId())] != nil
		})
		live := livenessOf(cv)
		idle := d.mu.idleGen == d.mu.gen && d.mu.idleMeta == meta && d.mu.idleLive == live && now.Sub(d.mu.idleAt) < idleRecheck
		var op *Operator
		if !idle {
			if op = busy.BalanceReplicas(d.allocLocked); !validOp(op) {
				op = busy.BalanceSize(d.allocLocked)
			}
			if !validOp(op) {
				d.mu.idleGen, d.mu.idleMeta, d.mu.idleLive, d.mu.idleAt = d.mu.gen, meta, live, now
			}
		}
		if validOp(op) {
			d.startLocked(op, SourceBalanceReplicas, now)
		} else if op := busy.BalanceHotLeaders(); validOp(op) {
			d.startLocked(op, SourceBalanceLeaders, now)
		} else if op := busy.BalanceLeaders(); validOp(op) {
			d.startLocked(op, SourceBalanceLeaders, now)
		} else {
			break
		}
	}
	return decommissioned
}

// AdminOperator builds an operator an administrator asked for, with build
// over the current view of the range and the cluster, and tracks it in
// place of the range's running one; it returns the operator's status.
func (d *Driver) AdminOperator(meta *flotillapb.ClusterMeta, rangeID multiraft.GroupID,
	build func(cv *ClusterView, r *RangeView, alloc ReplicaAllocator) (*Operator, error)) (*flotillapb.OperatorStatus, error) {
	now := d.cfg.Clock()
	d.mu.Lock()
	defer d.mu.Unlock()
	cv, pg := d.viewLocked(meta, now, true)
	r, rcv := d.rangeView(cv, pg, rangeID)
	if r == nil {
		return nil, fmt.Errorf("range %d is unknown to the placement driver", rangeID)
	}
	op, err := build(rcv, r, d.allocLocked)
	if err != nil {
		return nil, err
	}
	if !validOp(op) {
		return nil, fmt.Errorf("no replica IDs are allocated yet; retry")
	}
	return d.startLocked(op, SourceAdmin, now).status(now), nil
}

// Operators returns the running operators and the recently ended ones
// (newest last), the counts of ended operators by state, and the balance
// scores: the spread (max - min) of replica and leader counts over the
// live stores that take replicas.
func (d *Driver) Operators(meta *flotillapb.ClusterMeta) *flotillapb.ListOperatorsResponse {
	now := d.cfg.Clock()
	d.mu.Lock()
	defer d.mu.Unlock()
	resp := &flotillapb.ListOperatorsResponse{Counts: map[string]uint64{}}
	for _, t := range d.mu.history {
		resp.Operators = append(resp.Operators, t.status(now))
	}
	running := make([]*trackedOp, 0, len(d.mu.ops))
	for _, t := range d.mu.ops {
		running = append(running, t)
	}
	slices.SortFunc(running, func(a, b *trackedOp) int { return cmp.Compare(a.id, b.id) })
	for _, t := range running {
		resp.Operators = append(resp.Operators, t.status(now))
	}
	for k, v := range d.mu.counts {
		resp.Counts[k] = v
	}
	resp.Counts[OpRunning] = uint64(len(d.mu.ops))
	cv, _ := d.viewLocked(meta, now, false)
	minR, maxR, minL, maxL, n := 0, 0, 0, 0, 0
	for _, s := range cv.sortedStores() {
		if !s.usable() {
			continue
		}
		if n == 0 {
			minR, maxR, minL, maxL = s.Ranges, s.Ranges, s.Leaders, s.Leaders
		}
		minR, maxR = min(minR, s.Ranges), max(maxR, s.Ranges)
		minL, maxL = min(minL, s.Leaders), max(maxL, s.Leaders)
		n++
	}
	resp.ReplicaBalance, resp.LeaderBalance = uint32(maxR-minR), uint32(maxL-minL)
	return resp
}

// StoreCount is what a store holds by the ranges' latest reports.
type StoreCount struct {
	// Replicas and Leaders count the ranges with a replica on the store
	// and those it leads (the placement group not included).
	Replicas, Leaders int
	// Placement: the store holds a replica of the placement group.
	Placement bool
}

// StoreCounts returns every member store's StoreCount.
func (d *Driver) StoreCounts(meta *flotillapb.ClusterMeta) map[multiraft.NodeID]StoreCount {
	now := d.cfg.Clock()
	d.mu.Lock()
	defer d.mu.Unlock()
	cv, pg := d.viewLocked(meta, now, false)
	out := map[multiraft.NodeID]StoreCount{}
	for id, s := range cv.Stores {
		out[id] = StoreCount{Replicas: s.Ranges, Leaders: s.Leaders, Placement: pg != nil && cv.hasReplicaOn(pg.Desc, id)}
	}
	return out
}
