// Copyright 2026 The Flotilla Authors. All rights reserved.

package placement

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/flotilladb/flotilla/multiraft"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
)

// This file holds the placement driver's decisions as pure functions over a
// view of the cluster: the replica checker and the replica and leader
// balancers. They return operators; they do not execute them. Each is a
// separate unit, tested alone (checker_test.go), and none may propose a
// step that leaves a range without a quorum of live voters.

// StoreState is a store's membership state.
type StoreState int

// Store states.
const (
	// StoreUp: the store takes replicas.
	StoreUp StoreState = iota
	// StoreDecommissioning: every replica is to move off the store.
	StoreDecommissioning
	// StoreDecommissioned: the store holds nothing and takes nothing.
	StoreDecommissioned
)

func (s StoreState) String() string {
	switch s {
	case StoreUp:
		return "up"
	case StoreDecommissioning:
		return "decommissioning"
	case StoreDecommissioned:
		return "decommissioned"
	}
	return fmt.Sprintf("StoreState(%d)", int(s))
}

// StoreView is what the driver knows of a store.
type StoreView struct {
	ID    multiraft.NodeID
	State StoreState
	// Live: the store heartbeated recently; its replicas can vote.
	Live bool
	// Down: the store has not heartbeated for longer than the store-down
	// timeout; its replicas are to be rebuilt elsewhere.
	Down bool
	// Ranges and Leaders count the replicas and leaders on the store.
	Ranges, Leaders int
	// Snapshots counts the snapshots the store is receiving (moves in
	// flight towards it).
	Snapshots int
	// Labels are the store's labels (never nil).
	Labels map[string]string
}

// usable reports whether the store may take a new replica.
func (s *StoreView) usable() bool { return s != nil && s.State == StoreUp && s.Live && !s.Down }

// RangeView is what the driver knows of a range.
type RangeView struct {
	Desc *flotillapb.RangeDescriptor
	// Leader is the leader's replica ID, 0 if unknown.
	Leader multiraft.ReplicaID
	// Pending are replicas known to be behind the leader's log (a learner
	// catching up).
	Pending []multiraft.ReplicaID
	// Load is the requests per second (reads and writes) the leader last
	// reported; Size the bytes of its keys and values.
	Load float64
	Size int64
	// Stuck are the pending replicas that have been pending for longer
	// than an operator may go without progress: their snapshot keeps
	// failing, or their replica cannot be created.
	Stuck []multiraft.ReplicaID
}

// ClusterView is the input of every decision.
type ClusterView struct {
	Stores map[multiraft.NodeID]*StoreView
	Ranges []*RangeView
	// ReplicationFactor is the number of voters each range should have.
	ReplicationFactor int
	// MaxSnapshotsPerStore bounds the moves in flight towards one store.
	MaxSnapshotsPerStore int
	// Rules are the placement rules (CompileRules), sorted by start key;
	// ranges outside them take the default rule, ReplicationFactor voters
	// anywhere.
	Rules []Rule
	// byID indexes Ranges (built with the view; nil in views built by
	// hand, which are searched).
	byID map[multiraft.GroupID]*RangeView
}

// Range returns range id's view, or nil.
func (c *ClusterView) Range(id multiraft.GroupID) *RangeView {
	if c.byID != nil {
		return c.byID[id]
	}
	for _, r := range c.Ranges {
		if multiraft.GroupID(r.Desc.GetRangeId()) == id {
			return r
		}
	}
	return nil
}

// StepKind says what an operator step does.
type StepKind int

// Step kinds.
const (
	// StepAddLearner adds Replica as a learner (it catches up by snapshot).
	StepAddLearner StepKind = iota
	// StepPromote makes learner Replica a voter once it caught up; with
	// Demote, it also demotes that voter to a learner in the same (joint)
	// configuration change, so a replacement never passes through an even
	// number of voters.
	StepPromote
	// StepRemove removes Replica (a learner, or a voter whose removal keeps
	// a quorum of live voters).
	StepRemove
	// StepTransferLeader hands leadership to voter Replica.
	StepTransferLeader
	// StepSplit splits the range at SplitKey into itself and range
	// NewRange with replicas NewReplicas, while the range is at Version.
	StepSplit
)

func (k StepKind) String() string {
	return [...]string{"add-learner", "promote", "remove", "transfer-leader", "split"}[k]
}

// Step is one step of an operator.
type Step struct {
	Kind    StepKind
	Replica multiraft.ReplicaID
	// Demote is, for StepPromote, the voter demoted in the same change.
	Demote multiraft.ReplicaID

	// For StepSplit: the split key, the new range's ID and replicas (one
	// per replica of the descriptor at the operator's ConfVer, in its
	// order), and the version the range must still be at.
	SplitKey    []byte
	NewRange    multiraft.GroupID
	NewReplicas []multiraft.ReplicaID
	Version     uint64
}

func (s Step) String() string {
	switch {
	case s.Kind == StepSplit:
		return fmt.Sprintf("split at %q into range %d", s.SplitKey, s.NewRange)
	case s.Demote != 0:
		return fmt.Sprintf("%s %v demote %v", s.Kind, s.Replica, s.Demote)
	}
	return fmt.Sprintf("%s %v", s.Kind, s.Replica)
}

// changesConf reports whether the step is a membership change (which bumps
// the range's conf_ver by one).
func (s Step) changesConf() bool { return s.Kind != StepTransferLeader && s.Kind != StepSplit }

// doneIn reports whether the step's effect is already in the range.
func (s Step) doneIn(r *RangeView) bool {
	rep := r.Desc.Replica(s.Replica)
	switch s.Kind {
	case StepAddLearner:
		return rep != nil
	case StepPromote:
		if rep == nil || rep.GetType() != flotillapb.ReplicaType_VOTER {
			return false
		}
		d := r.Desc.Replica(s.Demote)
		return s.Demote == 0 || d == nil || d.GetType() != flotillapb.ReplicaType_VOTER
	case StepRemove:
		return rep == nil
	case StepTransferLeader:
		return r.Leader == s.Replica
	case StepSplit:
		return r.Desc.GetEpoch().GetVersion() > s.Version
	}
	return false
}

// SplitOperator returns the operator that splits range r at key into range
// newID, with replica IDs from alloc; nil if alloc ran dry. The caller
// checked that key lies inside the range and is not its start.
func SplitOperator(r *RangeView, key []byte, newID multiraft.GroupID, alloc ReplicaAllocator, reason string) *Operator {
	s := Step{Kind: StepSplit, SplitKey: key, NewRange: newID, Version: r.Desc.GetEpoch().GetVersion()}
	for _, rd := range r.Desc.GetReplicas() {
		id := alloc(newID, multiraft.NodeID(rd.GetStoreId()))
		if !id.Valid() {
			return nil
		}
		s.NewReplicas = append(s.NewReplicas, id)
	}
	return &Operator{RangeID: multiraft.GroupID(r.Desc.GetRangeId()), ConfVer: r.Desc.GetEpoch().GetConfVer(),
		Steps: []Step{s}, Reason: reason}
}

// Operator is a sequence of steps for one range, computed against the
// range's configuration version ConfVer. A range leader executes the steps
// in order; a step whose effect is already there is skipped, which makes an
// operator idempotent. An operator whose ConfVer is older than the range's,
// other than by its own steps, is stale and is dropped.
type Operator struct {
	RangeID multiraft.GroupID
	ConfVer uint64
	Steps   []Step
	Reason  string
}

func (o *Operator) String() string {
	return fmt.Sprintf("range %d @conf_ver %d: %v (%s)", o.RangeID, o.ConfVer, o.Steps, o.Reason)
}

// ReplicaAllocator returns a new replica ID for a range on a store: replica
// IDs are never reused within a range.
type ReplicaAllocator func(rangeID multiraft.GroupID, store multiraft.NodeID) multiraft.ReplicaID

func quorum(n int) int { return n/2 + 1 }

// voters and learners of a descriptor.
func membersOf(d *flotillapb.RangeDescriptor) (voters, learners []*flotillapb.ReplicaDescriptor) {
	for _, r := range d.GetReplicas() {
		if r.GetType() == flotillapb.ReplicaType_LEARNER {
			learners = append(learners, r)
		} else {
			voters = append(voters, r)
		}
	}
	return voters, learners
}

// liveVoters counts the voters on live stores.
func (c *ClusterView) liveVoters(voters []*flotillapb.ReplicaDescriptor) int {
	n := 0
	for _, v := range voters {
		if s := c.Stores[multiraft.NodeID(v.GetStoreId())]; s != nil && s.Live {
			n++
		}
	}
	return n
}

// SafeToRemove reports whether removing replica from r keeps a quorum of
// live voters in the new configuration. Removing a learner is always safe.
func (c *ClusterView) SafeToRemove(r *RangeView, replica multiraft.ReplicaID) bool {
	voters, _ := membersOf(r.Desc)
	var rest []*flotillapb.ReplicaDescriptor
	found := false
	for _, v := range voters {
		if multiraft.ReplicaID(v.GetReplicaId()) == replica {
			found = true
			continue
		}
		rest = append(rest, v)
	}
	if !found {
		return true
	}
	return len(rest) > 0 && c.liveVoters(rest) >= quorum(len(rest))
}

// SafeToReplace reports whether promoting learner promote and demoting
// voter demote in one joint change is safe: both the current voters and
// the new ones have a quorum on live stores.
func (c *ClusterView) SafeToReplace(r *RangeView, promote, demote multiraft.ReplicaID) bool {
	voters, _ := membersOf(r.Desc)
	if len(voters) == 0 || c.liveVoters(voters) < quorum(len(voters)) {
		return false
	}
	var next []*flotillapb.ReplicaDescriptor
	for _, v := range voters {
		if multiraft.ReplicaID(v.GetReplicaId()) != demote {
			next = append(next, v)
		}
	}
	next = append(next, &flotillapb.ReplicaDescriptor{StoreId: uint64(promote.Node()), ReplicaId: uint64(promote)})
	return c.liveVoters(next) >= quorum(len(next))
}

func (c *ClusterView) hasReplicaOn(d *flotillapb.RangeDescriptor, store multiraft.NodeID) bool {
	return slices.ContainsFunc(d.GetReplicas(), func(r *flotillapb.ReplicaDescriptor) bool {
		return multiraft.NodeID(r.GetStoreId()) == store
	})
}

// allows reports whether store s may hold a replica under the rule: a
// voter (voter) or a non-voter.
func (r *Rule) allows(s *StoreView, voter bool) bool {
	if s == nil {
		return false
	}
	if voter {
		return matchesAll(r.VoterConstraints, s.Labels)
	}
	return r.NonVoters > 0 && matchesAll(r.NonVoterConstraints, s.Labels)
}

// canLead reports whether the rule lets store s lead.
func (r *Rule) canLead(s *StoreView) bool {
	return s != nil && matchesAll(r.LeaderConstraints, s.Labels)
}

// spreadGroup returns the value of the rule's spread_over label on store
// (the group a voter there counts in), "" without one.
func (c *ClusterView) spreadGroup(rule *Rule, store uint64) string {
	if s := c.Stores[multiraft.NodeID(store)]; s != nil && rule.SpreadOver != "" {
		return s.Labels[rule.SpreadOver]
	}
	return ""
}

// spreadCounts counts the voters per spread group.
func (c *ClusterView) spreadCounts(rule *Rule, voters []*flotillapb.ReplicaDescriptor) map[string]int {
	counts := map[string]int{}
	for _, v := range voters {
		counts[c.spreadGroup(rule, v.GetStoreId())]++
	}
	return counts
}

// pickTarget returns the store for a new replica of d under rule, voter
// or non-voter, or 0: usable, allowed by the rule, holding no replica of
// d, under the snapshot limit; for a voter, in the spread group with the
// fewest voters of d; then the store with the fewest ranges.
func (c *ClusterView) pickTarget(d *flotillapb.RangeDescriptor, rule *Rule, voter bool) multiraft.NodeID {
	var counts map[string]int
	if voter && rule.SpreadOver != "" {
		voters, _ := membersOf(d)
		counts = c.spreadCounts(rule, voters)
	}
	var best *StoreView
	bestCount := 0
	for _, s := range c.sortedStores() {
		if !s.usable() || !rule.allows(s, voter) || c.hasReplicaOn(d, s.ID) {
			continue
		}
		if c.MaxSnapshotsPerStore > 0 && s.Snapshots >= c.MaxSnapshotsPerStore {
			continue
		}
		n := counts[c.spreadGroup(rule, uint64(s.ID))]
		if best == nil || n < bestCount || (n == bestCount && s.Ranges < best.Ranges) {
			best, bestCount = s, n
		}
	}
	if best == nil {
		return 0
	}
	return best.ID
}

// sortedStores returns the stores by ID, so decisions are deterministic.
func (c *ClusterView) sortedStores() []*StoreView {
	out := make([]*StoreView, 0, len(c.Stores))
	for _, s := range c.Stores {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b *StoreView) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

func (c *ClusterView) isPending(r *RangeView, id multiraft.ReplicaID) bool {
	return slices.Contains(r.Pending, id)
}

// needsReplacing reports whether a replica's store must lose it.
func (c *ClusterView) needsReplacing(rep *flotillapb.ReplicaDescriptor) bool {
	s := c.Stores[multiraft.NodeID(rep.GetStoreId())]
	return s == nil || s.Down || s.State != StoreUp
}

// moveOff returns the steps that move replica from off its store to a new
// replica on target: add a learner; once it caught up, promote it and
// demote the old voter in one joint change; remove the old replica. If the
// old replica leads, the new one is promoted alone and takes the
// leadership before the old one goes (raft cannot demote its leader).
func moveOff(r *RangeView, from, to multiraft.ReplicaID, fromIsVoter bool) []Step {
	steps := []Step{{Kind: StepAddLearner, Replica: to}}
	switch {
	case fromIsVoter && r.Leader == from:
		steps = append(steps, Step{Kind: StepPromote, Replica: to}, Step{Kind: StepTransferLeader, Replica: to})
	case fromIsVoter:
		steps = append(steps, Step{Kind: StepPromote, Replica: to, Demote: from})
	}
	return append(steps, Step{Kind: StepRemove, Replica: from})
}

// nonVoters splits a range's learners into the non-voters the rule keeps
// (up to its count, on stores its non-voter constraints allow, in replica
// order) and the rest: learners being added as voters, or not wanted.
func (c *ClusterView) nonVoters(rule *Rule, learners []*flotillapb.ReplicaDescriptor) (keep, transit []*flotillapb.ReplicaDescriptor) {
	for _, l := range learners {
		if len(keep) < rule.NonVoters && rule.allows(c.Stores[multiraft.NodeID(l.GetStoreId())], false) {
			keep = append(keep, l)
		} else {
			transit = append(transit, l)
		}
	}
	return keep, transit
}

// CheckReplicas is the replica checker: it returns the operator that brings
// r towards its placement rule (RuleFor), or nil. In order: remove a
// learner on a store that cannot keep it, or stuck; finish a learner in
// transit (promote it if voters are missing, remove it if not); add a
// missing voter; remove an extra voter; replace a voter on a down,
// decommissioning or unknown store, or on one the rule does not allow;
// spread the voters over the rule's spread_over label; add a missing
// non-voter; move the leadership to a store the rule prefers. It never
// proposes a removal that SafeToRemove refuses.
func (c *ClusterView) CheckReplicas(r *RangeView, alloc ReplicaAllocator) *Operator {
	d := r.Desc
	id := multiraft.GroupID(d.GetRangeId())
	op := func(reason string, steps ...Step) *Operator {
		return &Operator{RangeID: id, ConfVer: d.GetEpoch().GetConfVer(), Steps: steps, Reason: reason}
	}
	rule := c.RuleFor(d)
	voters, learners := membersOf(d)
	storeOf := func(rep *flotillapb.ReplicaDescriptor) *StoreView {
		return c.Stores[multiraft.NodeID(rep.GetStoreId())]
	}

	// Removing a learner is always safe. A learner in transit on a store
	// that is not live is not catching up: it may have been added just
	// before its store died. A non-voter the rule keeps is treated like a
	// voter: replaced only once its store is down, decommissioning or
	// unknown (a store restarting does not lose its observers), and never
	// for lagging (an observer far away may stay behind under load).
	keep, transit := c.nonVoters(rule, learners)
	for _, l := range keep {
		if c.needsReplacing(l) {
			return op("non-voter on an unusable store", Step{Kind: StepRemove, Replica: multiraft.ReplicaID(l.GetReplicaId())})
		}
	}
	for _, l := range transit {
		lid := multiraft.ReplicaID(l.GetReplicaId())
		if c.needsReplacing(l) || !storeOf(l).Live {
			return op("learner on an unusable store", Step{Kind: StepRemove, Replica: lid})
		}
		if slices.Contains(r.Stuck, lid) {
			return op("learner stuck catching up", Step{Kind: StepRemove, Replica: lid})
		}
	}

	// A learner in transit: left over from a move, or being added. One
	// change at a time: the first decides.
	if len(transit) > 0 {
		l := transit[0]
		lid := multiraft.ReplicaID(l.GetReplicaId())
		if c.isPending(r, lid) {
			return nil // let it catch up; one change at a time
		}
		if len(voters) < rule.Voters && rule.allows(storeOf(l), true) {
			return op("promote a caught-up learner", Step{Kind: StepPromote, Replica: lid})
		}
		return op("extra learner", Step{Kind: StepRemove, Replica: lid})
	}

	// A missing voter. Without a store to add it on, a caught-up
	// non-voter the rule lets vote is promoted (the checker then adds the
	// non-voter it lacks, if it can).
	if len(voters) < rule.Voters {
		if t := c.pickTarget(d, rule, true); t != 0 {
			n := alloc(id, t)
			return op(fmt.Sprintf("missing voter: %d of %d", len(voters), rule.Voters), Step{Kind: StepAddLearner, Replica: n}, Step{Kind: StepPromote, Replica: n})
		}
		for _, l := range keep {
			lid := multiraft.ReplicaID(l.GetReplicaId())
			if !c.isPending(r, lid) && rule.allows(storeOf(l), true) {
				return op(fmt.Sprintf("missing voter: %d of %d, no other store can take it: promote a non-voter", len(voters), rule.Voters),
					Step{Kind: StepPromote, Replica: lid})
			}
		}
	}

	// An extra voter: remove first one on an unusable store, then one the
	// rule does not allow, then one in the most crowded spread group, then
	// the one on the fullest store; never the leader, and only if safe.
	if len(voters) > rule.Voters {
		counts := c.spreadCounts(rule, voters)
		score := func(v *flotillapb.ReplicaDescriptor) (int, int, int, int) {
			return btoi(c.needsReplacing(v)), btoi(!rule.allows(storeOf(v), true)), counts[c.spreadGroup(rule, v.GetStoreId())], c.rangesOn(v.GetStoreId())
		}
		cand := slices.Clone(voters)
		slices.SortStableFunc(cand, func(a, b *flotillapb.ReplicaDescriptor) int {
			a1, a2, a3, a4 := score(a)
			b1, b2, b3, b4 := score(b)
			return cmp.Or(cmp.Compare(b1, a1), cmp.Compare(b2, a2), cmp.Compare(b3, a3), cmp.Compare(b4, a4))
		})
		for _, v := range cand {
			vid := multiraft.ReplicaID(v.GetReplicaId())
			if vid == r.Leader || !c.SafeToRemove(r, vid) {
				continue
			}
			reason := "extra voter"
			if c.needsReplacing(v) {
				reason = "extra voter on an unusable store"
			}
			return op(reason, Step{Kind: StepRemove, Replica: vid})
		}
	}

	// A voter on a store that must lose it, or that the rule does not
	// allow. Without a store to move it to, a caught-up non-voter the rule
	// lets vote takes its place in one joint change (the checker then
	// adds the non-voter it lacks, if it can).
	for _, v := range voters {
		unusable, misplaced := c.needsReplacing(v), !rule.allows(storeOf(v), true)
		if !unusable && !misplaced {
			continue
		}
		vid := multiraft.ReplicaID(v.GetReplicaId())
		t := c.pickTarget(d, rule, true)
		if t == 0 {
			for _, l := range keep {
				lid := multiraft.ReplicaID(l.GetReplicaId())
				if vid != r.Leader && !c.isPending(r, lid) && storeOf(l).usable() && rule.allows(storeOf(l), true) {
					return op(fmt.Sprintf("replace the voter on store %d with the non-voter on store %d", v.GetStoreId(), l.GetStoreId()),
						Step{Kind: StepPromote, Replica: lid, Demote: vid}, Step{Kind: StepRemove, Replica: vid})
				}
			}
			break
		}
		reason := fmt.Sprintf("replace the replica on store %d", v.GetStoreId())
		if !unusable {
			reason = fmt.Sprintf("move the voter off store %d, which %s does not allow", v.GetStoreId(), rule)
		}
		return op(reason, moveOff(r, multiraft.ReplicaID(v.GetReplicaId()), alloc(id, t), true)...)
	}

	if o := c.checkSpread(r, rule, voters, alloc); o != nil {
		return o
	}

	// A missing non-voter.
	if len(keep) < rule.NonVoters {
		if t := c.pickTarget(d, rule, false); t != 0 {
			return op(fmt.Sprintf("missing non-voter: %d of %d", len(keep), rule.NonVoters), Step{Kind: StepAddLearner, Replica: alloc(id, t)})
		}
	}

	// The leader on a store the rule does not prefer: move the leadership
	// to a voter that may lead, or, if none may, first move a voter that
	// does not lead to a store that may.
	if len(rule.LeaderConstraints) > 0 && r.Leader != 0 && !rule.canLead(c.Stores[r.Leader.Node()]) {
		for _, v := range voters {
			vid := multiraft.ReplicaID(v.GetReplicaId())
			if s := storeOf(v); s.usable() && rule.canLead(s) && !c.isPending(r, vid) {
				return op(fmt.Sprintf("move the leadership to store %d, which %s prefers", v.GetStoreId(), rule),
					Step{Kind: StepTransferLeader, Replica: vid})
			}
		}
		if t := c.pickLeaderTarget(d, rule); t != 0 {
			for _, v := range voters {
				vid := multiraft.ReplicaID(v.GetReplicaId())
				if vid == r.Leader || (rule.SpreadOver != "" && c.spreadGroup(rule, v.GetStoreId()) != c.spreadGroup(rule, uint64(t)) &&
					c.spreadCounts(rule, voters)[c.spreadGroup(rule, uint64(t))] >= c.spreadCounts(rule, voters)[c.spreadGroup(rule, v.GetStoreId())]) {
					continue
				}
				return op(fmt.Sprintf("no voter may lead under %s: move the voter on store %d to store %d", rule, v.GetStoreId(), t),
					moveOff(r, vid, alloc(id, t), true)...)
			}
		}
	}
	return nil
}

// pickLeaderTarget is pickTarget for a voter whose store the rule's
// leader constraints allow, or 0.
func (c *ClusterView) pickLeaderTarget(d *flotillapb.RangeDescriptor, rule *Rule) multiraft.NodeID {
	narrow := *rule
	narrow.VoterConstraints = append(slices.Clone(rule.VoterConstraints), rule.LeaderConstraints...)
	return c.pickTarget(d, &narrow, true)
}

// checkSpread returns the operator that moves a voter of r out of a spread
// group holding at least two more of its voters than the group of the
// store pickTarget chooses, or nil.
func (c *ClusterView) checkSpread(r *RangeView, rule *Rule, voters []*flotillapb.ReplicaDescriptor, alloc ReplicaAllocator) *Operator {
	if rule.SpreadOver == "" || len(voters) < 2 {
		return nil
	}
	counts := c.spreadCounts(rule, voters)
	t := c.pickTarget(r.Desc, rule, true)
	if t == 0 {
		return nil
	}
	tg := c.spreadGroup(rule, uint64(t))
	var from *flotillapb.ReplicaDescriptor
	for _, v := range voters {
		g := c.spreadGroup(rule, v.GetStoreId())
		if counts[g] < counts[tg]+2 {
			continue
		}
		// The most crowded group; in it, not the leader, then the
		// fullest store.
		if from == nil {
			from = v
			continue
		}
		fg := c.spreadGroup(rule, from.GetStoreId())
		vid, fid := multiraft.ReplicaID(v.GetReplicaId()), multiraft.ReplicaID(from.GetReplicaId())
		if counts[g] > counts[fg] || (counts[g] == counts[fg] && fid == r.Leader && vid != r.Leader) ||
			(counts[g] == counts[fg] && (fid == r.Leader) == (vid == r.Leader) && c.rangesOn(v.GetStoreId()) > c.rangesOn(from.GetStoreId())) {
			from = v
		}
	}
	if from == nil {
		return nil
	}
	id := multiraft.GroupID(r.Desc.GetRangeId())
	fg := c.spreadGroup(rule, from.GetStoreId())
	return &Operator{RangeID: id, ConfVer: r.Desc.GetEpoch().GetConfVer(),
		Steps:  moveOff(r, multiraft.ReplicaID(from.GetReplicaId()), alloc(id, t), true),
		Reason: fmt.Sprintf("spread voters over %s: %d in %q, %d in %q", rule.SpreadOver, counts[fg], fg, counts[tg], tg)}
}

func (c *ClusterView) rangesOn(store uint64) int {
	if s := c.Stores[multiraft.NodeID(store)]; s != nil {
		return s.Ranges
	}
	return 0
}

// BalanceReplicas moves one replica from a usable store with more ranges
// to one with at least two fewer, trying the fullest stores first and the
// emptiest targets first: it returns the operator, or nil. Ranges that are
// not fully healthy (missing replicas, learners in transit, pending
// replicas, a replica on a store that is not usable) are not moved: the
// replica checker comes first. A move keeps the range's rule: the target
// must take the replica's role, and a voter's move must not crowd a spread
// group.
func (c *ClusterView) BalanceReplicas(alloc ReplicaAllocator) *Operator {
	var stores []*StoreView
	for _, s := range c.sortedStores() {
		if s.usable() {
			stores = append(stores, s)
		}
	}
	if len(stores) < 2 {
		return nil
	}
	most := slices.Clone(stores)
	slices.SortStableFunc(most, func(a, b *StoreView) int { return cmp.Compare(b.Ranges, a.Ranges) })
	fewest := slices.Clone(stores)
	slices.SortStableFunc(fewest, func(a, b *StoreView) int { return cmp.Compare(a.Ranges, b.Ranges) })
	// The smallest ranges first: BalanceSize moves the large ones, and the
	// two must not undo each other.
	var ranges []*RangeView
	for _, from := range most {
		for _, to := range fewest {
			if from.Ranges-to.Ranges <= 1 {
				break
			}
			if c.MaxSnapshotsPerStore > 0 && to.Snapshots >= c.MaxSnapshotsPerStore {
				continue
			}
			if ranges == nil {
				ranges = slices.Clone(c.Ranges)
				slices.SortStableFunc(ranges, func(a, b *RangeView) int { return cmp.Compare(a.Size, b.Size) })
			}
			for _, r := range ranges {
				if steps := c.moveSteps(r, from.ID, to, alloc); steps != nil {
					return &Operator{RangeID: multiraft.GroupID(r.Desc.GetRangeId()), ConfVer: r.Desc.GetEpoch().GetConfVer(), Steps: steps,
						Reason: fmt.Sprintf("balance replicas: store %d has %d, store %d has %d", from.ID, from.Ranges, to.ID, to.Ranges)}
				}
			}
		}
	}
	return nil
}

// moveSteps returns the steps that move healthy range r's replica on store
// from to store to, or nil if r is not healthy, has no replica on from or
// one on to, or if its rule does not let to take that replica's role
// (for a voter, without crowding a spread group).
func (c *ClusterView) moveSteps(r *RangeView, from multiraft.NodeID, to *StoreView, alloc ReplicaAllocator) []Step {
	rep := r.Desc.ReplicaOnStore(flotillapb.StoreID(from))
	if rep == nil || c.hasReplicaOn(r.Desc, to.ID) || !c.healthy(r) {
		return nil
	}
	rule := c.RuleFor(r.Desc)
	voter := rep.GetType() != flotillapb.ReplicaType_LEARNER
	if !rule.allows(to, voter) {
		return nil
	}
	if voter && rule.SpreadOver != "" {
		voters, _ := membersOf(r.Desc)
		counts := c.spreadCounts(rule, voters)
		fg, tg := c.spreadGroup(rule, uint64(from)), c.spreadGroup(rule, uint64(to.ID))
		if fg != tg && counts[tg] >= counts[fg] {
			return nil
		}
	}
	if voter && len(rule.LeaderConstraints) > 0 && !rule.canLead(to) && rule.canLead(c.Stores[from]) {
		// The move must leave a voter that may lead: the leader takes the
		// new replica when its own moves (moveOff).
		if multiraft.ReplicaID(rep.GetReplicaId()) == r.Leader {
			return nil
		}
		voters, _ := membersOf(r.Desc)
		others := 0
		for _, v := range voters {
			if v.GetStoreId() != uint64(from) && rule.canLead(c.Stores[multiraft.NodeID(v.GetStoreId())]) {
				others++
			}
		}
		if others == 0 {
			return nil
		}
	}
	id := multiraft.GroupID(r.Desc.GetRangeId())
	return moveOff(r, multiraft.ReplicaID(rep.GetReplicaId()), alloc(id, to.ID), voter)
}

// healthy reports whether r has exactly the voters and non-voters of its
// rule, all on usable stores the rule allows, a leader and nothing
// pending.
func (c *ClusterView) healthy(r *RangeView) bool {
	rule := c.RuleFor(r.Desc)
	voters, learners := membersOf(r.Desc)
	// Pending replicas are learners; here every learner is a non-voter the
	// rule keeps (checked below), and one lagging behind (an observer far
	// away, under load) does not keep its range from being balanced.
	if len(learners) != rule.NonVoters || len(voters) != rule.Voters || r.Leader == 0 {
		return false
	}
	for _, rep := range r.Desc.GetReplicas() {
		s := c.Stores[multiraft.NodeID(rep.GetStoreId())]
		if !s.usable() || !rule.allows(s, rep.GetType() != flotillapb.ReplicaType_LEARNER) {
			return false
		}
	}
	return true
}

// canLeadOn reports whether r's rule lets store s lead r.
func (c *ClusterView) canLeadOn(r *RangeView, s *StoreView) bool {
	return c.RuleFor(r.Desc).canLead(s)
}

// BalanceLeaders moves one leadership from a usable store leading more
// ranges to a usable store holding a voter of such a range and leading at
// least two fewer: it tries the stores leading the most first, and returns
// the operator, or nil.
func (c *ClusterView) BalanceLeaders() *Operator {
	hot := c.hotRanges()
	stores := c.sortedStores()
	slices.SortStableFunc(stores, func(a, b *StoreView) int { return cmp.Compare(b.Leaders, a.Leaders) })
	for _, from := range stores {
		if !from.usable() {
			continue
		}
		var best *Operator
		bestLeaders := 0
		for _, r := range c.Ranges {
			if r.Leader == 0 || r.Leader.Node() != from.ID || !c.healthy(r) || slices.Contains(hot, r) {
				continue // hot ranges are BalanceHotLeaders'
			}
			voters, _ := membersOf(r.Desc)
			for _, v := range voters {
				s := c.Stores[multiraft.NodeID(v.GetStoreId())]
				if s.ID == from.ID || !s.usable() || from.Leaders-s.Leaders <= 1 || !c.canLeadOn(r, s) {
					continue
				}
				if best == nil || s.Leaders < bestLeaders {
					id := multiraft.GroupID(r.Desc.GetRangeId())
					best = &Operator{RangeID: id, ConfVer: r.Desc.GetEpoch().GetConfVer(),
						Steps:  []Step{{Kind: StepTransferLeader, Replica: multiraft.ReplicaID(v.GetReplicaId())}},
						Reason: fmt.Sprintf("balance leaders: store %d leads %d, store %d leads %d", from.ID, from.Leaders, s.ID, s.Leaders)}
					bestLeaders = s.Leaders
				}
			}
		}
		if best != nil {
			return best
		}
	}
	return nil
}

// Hot ranges: those serving at least HotRangeMinLoad requests per second
// and at least HotRangeShare of all ranges' load together.
const (
	HotRangeMinLoad = 50
	HotRangeShare   = 0.1
)

// BalanceHotLeaders moves the leadership of one hot range from the usable
// store leading the most hot ranges to a voter's store leading at least
// two fewer (fewest first), so that the halves of a range split by load
// do not stay on one store. Count balancing alone would leave them there
// among hundreds of ranges.
func (c *ClusterView) BalanceHotLeaders() *Operator {
	hotRanges := c.hotRanges()
	hot := map[multiraft.NodeID]int{}
	for _, r := range hotRanges {
		hot[r.Leader.Node()]++
	}
	if len(hotRanges) < 2 {
		return nil
	}
	slices.SortFunc(hotRanges, func(a, b *RangeView) int { return cmp.Compare(b.Load, a.Load) })
	for _, r := range hotRanges {
		from := c.Stores[r.Leader.Node()]
		if !from.usable() || !c.healthy(r) {
			continue
		}
		var to *flotillapb.ReplicaDescriptor
		voters, _ := membersOf(r.Desc)
		for _, v := range voters {
			s := c.Stores[multiraft.NodeID(v.GetStoreId())]
			if s.ID == from.ID || !s.usable() || hot[from.ID]-hot[s.ID] < 2 || !c.canLeadOn(r, s) {
				continue
			}
			if to == nil || hot[s.ID] < hot[multiraft.NodeID(to.GetStoreId())] {
				to = v
			}
		}
		if to != nil {
			return &Operator{RangeID: multiraft.GroupID(r.Desc.GetRangeId()), ConfVer: r.Desc.GetEpoch().GetConfVer(),
				Steps: []Step{{Kind: StepTransferLeader, Replica: multiraft.ReplicaID(to.GetReplicaId())}},
				Reason: fmt.Sprintf("spread hot ranges: store %d leads %d, store %d leads %d", from.ID, hot[from.ID],
					to.GetStoreId(), hot[multiraft.NodeID(to.GetStoreId())])}
		}
	}
	return nil
}

// hotRanges returns the hot ranges with a known leader.
func (c *ClusterView) hotRanges() []*RangeView {
	total := 0.0
	for _, r := range c.Ranges {
		total += r.Load
	}
	var out []*RangeView
	for _, r := range c.Ranges {
		if r.Leader != 0 && r.Load >= HotRangeMinLoad && r.Load >= HotRangeShare*total {
			out = append(out, r)
		}
	}
	return out
}

// MinSizeImbalance is the smallest difference in bytes between two stores
// that BalanceSize acts on (besides 20% of the mean).
const MinSizeImbalance = 1 << 20

// BalanceSize moves one replica from the usable store holding the most
// bytes (by the ranges' reported sizes) to the one holding the fewest, once
// they differ by more than 20% of the mean and MinSizeImbalance: the
// largest range on the first, not on the second, smaller than half the
// difference (so the move cannot overshoot). It moves only towards a store
// with fewer replicas than the source, so the counts stay within one
// (BalanceReplicas acts on a difference of two) and the balancers do not
// undo each other.
func (c *ClusterView) BalanceSize(alloc ReplicaAllocator) *Operator {
	bytesOn := map[multiraft.NodeID]int64{}
	for _, r := range c.Ranges {
		for _, rep := range r.Desc.GetReplicas() {
			bytesOn[multiraft.NodeID(rep.GetStoreId())] += r.Size
		}
	}
	var from, to *StoreView
	var total int64
	n := 0
	for _, s := range c.sortedStores() {
		if !s.usable() {
			continue
		}
		total += bytesOn[s.ID]
		n++
		if from == nil || bytesOn[s.ID] > bytesOn[from.ID] {
			from = s
		}
		if to == nil || bytesOn[s.ID] < bytesOn[to.ID] {
			to = s
		}
	}
	if n < 2 {
		return nil
	}
	gap := bytesOn[from.ID] - bytesOn[to.ID]
	if gap <= MinSizeImbalance || float64(gap) <= 0.2*float64(total)/float64(n) || to.Ranges >= from.Ranges {
		return nil
	}
	if c.MaxSnapshotsPerStore > 0 && to.Snapshots >= c.MaxSnapshotsPerStore {
		return nil
	}
	var best *RangeView
	for _, r := range c.Ranges {
		if r.Size <= 0 || 2*r.Size >= gap || (best != nil && r.Size <= best.Size) {
			continue
		}
		if c.moveSteps(r, from.ID, to, func(multiraft.GroupID, multiraft.NodeID) multiraft.ReplicaID { return 0 }) != nil {
			best = r
		}
	}
	if best == nil {
		return nil
	}
	id := multiraft.GroupID(best.Desc.GetRangeId())
	return &Operator{RangeID: id, ConfVer: best.Desc.GetEpoch().GetConfVer(),
		Steps:  c.moveSteps(best, from.ID, to, alloc),
		Reason: fmt.Sprintf("balance size: store %d holds %d bytes, store %d %d", from.ID, bytesOn[from.ID], to.ID, bytesOn[to.ID])}
}

// RangesWithoutQuorum returns the IDs of the groups among descs that have
// a voter on store and fewer than a majority of their voters on other
// stores that live reports live: such a group cannot commit a change of
// its membership, so the store's replica cannot be replaced or removed.
func RangesWithoutQuorum(descs []*flotillapb.RangeDescriptor, store uint64, live func(store uint64) bool) []uint64 {
	var out []uint64
	for _, d := range descs {
		voters, _ := membersOf(d)
		onStore, others := false, 0
		for _, v := range voters {
			switch {
			case v.GetStoreId() == store:
				onStore = true
			case live(v.GetStoreId()):
				others++
			}
		}
		if onStore && others < len(voters)/2+1 {
			out = append(out, d.GetRangeId())
		}
	}
	return out
}

// CheckAddReplica returns why the replica checker would not keep a new
// replica of r on store, a voter or (learner) a non-voter, under r's rule,
// or nil: the rule's constraints do not allow the store, or, for a
// non-voter, the rule asks for no more non-voters than r has.
func (c *ClusterView) CheckAddReplica(r *RangeView, store multiraft.NodeID, learner bool) error {
	rule := c.RuleFor(r.Desc)
	s := c.Stores[store]
	if !learner {
		if !rule.allows(s, true) {
			return fmt.Errorf("%s does not allow a voter on store %d (voter constraints %v, store labels %v)", rule, store, rule.VoterConstraints, s.labelText())
		}
		return nil
	}
	if rule.NonVoters == 0 {
		return fmt.Errorf("%s asks for no non-voters, so the replica checker would remove a learner as extra; "+
			"set a rule with non_voters (flotilla cluster rules set) to keep one", rule)
	}
	if !rule.allows(s, false) {
		return fmt.Errorf("%s does not allow a non-voter on store %d (non-voter constraints %v, store labels %v)", rule, store, rule.NonVoterConstraints, s.labelText())
	}
	_, learners := membersOf(r.Desc)
	if keep, _ := c.nonVoters(rule, learners); len(keep) >= rule.NonVoters {
		return fmt.Errorf("range %d already has the %d non-voter(s) %s asks for", r.Desc.GetRangeId(), rule.NonVoters, rule)
	}
	return nil
}

func (s *StoreView) labelText() string {
	if s == nil || len(s.Labels) == 0 {
		return "none"
	}
	keys := make([]string, 0, len(s.Labels))
	for k := range s.Labels {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + s.Labels[k]
	}
	return strings.Join(parts, ",")
}
