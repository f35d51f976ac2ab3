// Copyright 2026 The Flotilla Authors. All rights reserved.

package server

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/flotilladb/flotilla/multiraft"
	"github.com/flotilladb/flotilla/placement"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"github.com/flotilladb/flotilla/shard"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// heartbeatPoll is how often the heartbeat loop looks for ranges whose
// leader, term or descriptor changed, to report them at once rather than
// at the next HeartbeatInterval. The driver schedules a range only when
// the range's leader reports it, so this bounds how long a new leader, the
// halves of a split or a learner that caught up wait for their next step;
// a poll that finds nothing changed sends nothing, so it costs one pass
// over the host's groups.
const heartbeatPoll = 100 * time.Millisecond

// reported is what this node last told the placement driver about a range
// it leads: a range is reported again before its full heartbeat is due
// when any of these changes. The term says the leader changed (the driver
// ignores a report older than the one it holds, by epoch then term),
// confVer and version that the descriptor did, pending that a learner
// caught up (the driver waits for that to promote it), and splitKey that
// the range now proposes a split, or another one.
type reported struct {
	term, confVer, version uint64
	pending                int
	splitKey               string
	// active says the range served requests (its load was not 0).
	active bool

	// at is when the report was sent (not compared).
	at time.Time
}

// sameAs reports whether r and o report the same change state.
func (r reported) sameAs(o reported) bool {
	return r.term == o.term && r.confVer == o.confVer && r.version == o.version && r.pending == o.pending &&
		r.splitKey == o.splitKey && r.active == o.active
}

// hasLearner reports whether a descriptor lists a learner.
func hasLearner(d *flotillapb.RangeDescriptor) bool {
	for _, r := range d.GetReplicas() {
		if r.GetType() == flotillapb.ReplicaType_LEARNER {
			return true
		}
	}
	return false
}

// splitCandidate is a range's size-based split key, computed at most once
// per splitKeyTTL per version (it scans the range).
type splitCandidate struct {
	// version is the range's version the key was computed at: a split
	// changes it, and the key of the old bounds is then recomputed.
	version uint64
	at      time.Time
	// key is nil if the range could not be split (one key, or none).
	key []byte
}

// splitKeyTTL is how long a size-based split key is reused. Computing one
// reads the range's data (shard.Store.SizeSplitKey), and a range over
// SplitSize would otherwise be read at every poll; writes move the key
// that halves a range slowly, so a key 10 s old still splits it well.
const splitKeyTTL = 10 * time.Second

// heartbeatLoop reports this store every HeartbeatInterval, and every
// range it leads then and whenever the range's leadership or descriptor
// changes; it runs the operator steps the driver answers with. On the
// placement group's leader it also runs the balancers.
//
// By default HeartbeatInterval is at most a third of the driver's
// LivenessWindow (Config), so that a store stays live across two lost or
// slow beats; Validate only requires it not to exceed the window.
// One goroutine (the stopper's) runs the loop; the maps below are its own
// and need no lock. A heartbeat, or a balance round, that takes longer
// than the tick delays the next one rather than overlapping it.
func (n *Node) heartbeatLoop() {
	t := time.NewTicker(min(heartbeatPoll, n.cfg.HeartbeatInterval))
	defer t.Stop()
	// last holds what was last reported of each range this node leads; a
	// range missing from it is reported at the next poll (a new leader, or
	// a heartbeat that failed).
	last := map[multiraft.GroupID]reported{}
	// splits caches the size-based split key of each range this node
	// leads (splitSuggestion).
	splits := map[multiraft.GroupID]splitCandidate{}
	var lastFull time.Time
	for {
		select {
		case <-n.stopCtx.Done():
			return
		case <-t.C:
		}
		if _, _, ok := n.running(); !ok {
			continue
		}
		full := time.Since(lastFull) >= n.cfg.HeartbeatInterval
		if full {
			lastFull = time.Now()
		}
		n.sendHeartbeats(last, splits, full)
		if full {
			n.scheduleBalance()
		}
	}
}

// sendHeartbeats sends the range heartbeats that are due (all of them if
// full, else those that changed since last) and, if full, the store
// heartbeat, then hands each step the driver answers with to executeStep,
// which runs it in the background: a slow conf change must not hold up the
// other ranges' heartbeats. The store heartbeat goes first, so that the
// driver decides on this store's ranges with its latest liveness and
// statistics. The
// heartbeats go through the node's own placement service, which answers
// them on the placement group's leader and forwards them there elsewhere.
func (n *Node) sendHeartbeats(last map[multiraft.GroupID]reported, splits map[multiraft.GroupID]splitCandidate, full bool) {
	host, meta, ok := n.running()
	if !ok {
		return
	}
	// A heartbeat may take longer than the interval on a loaded machine;
	// failing it would make a live store look dead.
	ctx, cancel := context.WithTimeout(n.stopCtx, max(n.cfg.HeartbeatInterval, time.Second))
	defer cancel()
	ps := (*placementService)(n)
	stats := &flotillapb.StoreStats{}
	var ranges []*flotillapb.RangeHeartbeatRequest
	leading := map[multiraft.GroupID]bool{}
	now := time.Now()
	for _, g := range host.Groups() {
		ld, ok := host.Leadership(g)
		if !ok {
			continue
		}
		if g != placement.GroupID {
			stats.RangeCount++
		}
		// Only a range's leader reports it: its view of the range (the
		// descriptor it applied, its learners' progress) is the one the
		// driver may act on, and steps are run by the leader.
		if !ld.Leading() {
			continue
		}
		leading[g] = true
		var desc *flotillapb.RangeDescriptor
		var r *shard.Replica
		if g == placement.GroupID {
			if meta == nil || meta.State().GetPlacementGroup() == nil {
				continue
			}
			desc = meta.State().GetPlacementGroup()
		} else {
			stats.LeaderCount++
			// The shared descriptor: read only, never modified (it goes
			// into a report, which is cloned or marshalled).
			if r, ok = n.store.Replica(g); !ok || r.SharedDescriptor() == nil {
				continue
			}
			desc = r.SharedDescriptor()
		}
		prev, known := last[g]
		// Between full rounds only a change of leadership, descriptor or
		// catching-up learners is looked for, as cheaply as can be: a
		// quiet range costs a leadership check and a descriptor load.
		if !full && known && prev.term == ld.Term && prev.confVer == desc.GetEpoch().GetConfVer() &&
			prev.version == desc.GetEpoch().GetVersion() && prev.pending == 0 && !hasLearner(desc) {
			continue
		}
		hb := &flotillapb.RangeHeartbeatRequest{Descriptor_: desc, LeaderReplicaId: uint64(ld.Replica), Term: ld.Term}
		key := reported{term: ld.Term, confVer: desc.GetEpoch().GetConfVer(), version: desc.GetEpoch().GetVersion()}
		if hasLearner(desc) {
			// A learner is pending while it is further behind than
			// PlanStep would promote it at, so the driver asks for the
			// promotion once the leader would do it.
			if gs, ok := host.Status(g); ok {
				for _, l := range gs.Learners {
					if match := gs.LearnerMatch[l]; match == 0 || match+placement.LearnerCatchUpLag < gs.Commit {
						hb.PendingReplicas = append(hb.PendingReplicas, uint64(l))
					}
				}
			}
			key.pending = len(hb.PendingReplicas)
		}
		if r != nil {
			// Each report carries the range's statistics and its split
			// proposal of the moment: a report after a change must not
			// carry a split key computed for another descriptor.
			rs := r.Stats()
			if full {
				stats.ReadsPerSecond += rs.ReadsPerSecond
				stats.WritesPerSecond += rs.WritesPerSecond
			}
			hb.Stats = &flotillapb.RangeStats{Keys: rs.Keys, KeyBytes: rs.KeyBytes, ValueBytes: rs.ValueBytes}
			hb.ReadsPerSecond, hb.WritesPerSecond = rs.ReadsPerSecond, rs.WritesPerSecond
			hb.ApproximateBytes = uint64(max(rs.KeyBytes+rs.ValueBytes, 0))
			hb.SplitKey, hb.SplitReason = n.splitSuggestion(g, desc, rs, splits)
			key.splitKey, key.active = string(hb.GetSplitKey()), rs.ReadsPerSecond+rs.WritesPerSecond > 0
		}
		// Due: a new or changed range, an active one every full round, a
		// quiet one every RangeReportInterval (every full round while the
		// placement leader is an older build).
		changed := !known || !prev.sameAs(key)
		legacy := now.Before(n.legacyReportsUntil)
		if !changed && !(full && (key.active || legacy || now.Sub(prev.at) >= n.cfg.RangeReportInterval)) {
			continue
		}
		key.at = now
		last[g] = key
		ranges = append(ranges, hb)
	}
	for g := range last {
		if !leading[g] {
			delete(last, g)
		}
	}
	for g := range splits {
		if !leading[g] {
			delete(splits, g)
		}
	}
	if full {
		if d := n.disk.state.Load(); d != nil { // diskLoop's last reading
			stats.CapacityBytes = d.usage.TotalBytes
			stats.AvailableBytes = d.usage.AvailBytes
			stats.UsedBytes = d.usage.UsedBytes
		}
		stats.Alarms = n.Alarms()
		if _, err := ps.StoreHeartbeat(ctx, &flotillapb.StoreHeartbeatRequest{NodeId: n.NodeID(), Stats: stats}); err != nil {
			n.log.Debug("store heartbeat", "err", err)
		}
	}
	if time.Now().Before(n.legacyReportsUntil) {
		n.sendRangeReportsOneByOne(ctx, ps, last, ranges)
		return
	}
	n.sendRangeReports(ctx, ps, last, ranges, full)
}

// sendRangeReports sends range reports in batches (RangeHeartbeats), one
// in a full round even if none is due (its answer carries the steps of
// every range this node leads), and runs the steps answered. A
// batch that fails is reported again at the next poll. Against a
// placement leader that does not know RangeHeartbeats (an older node) the
// reports go one by one.
func (n *Node) sendRangeReports(ctx context.Context, ps *placementService, last map[multiraft.GroupID]reported,
	ranges []*flotillapb.RangeHeartbeatRequest, full bool) {
	for len(ranges) > 0 || full {
		batch := ranges[:min(len(ranges), maxRangeReports)]
		ranges = ranges[len(batch):]
		last1 := len(ranges) == 0
		// The last batch asks for every range's steps: the driver runs its
		// checkers over this node's ranges when anything changed since it
		// last did, so that a freed snapshot slot is used at once.
		resp, err := ps.RangeHeartbeats(ctx, &flotillapb.RangeHeartbeatsRequest{NodeId: n.NodeID(), Ranges: batch, All: last1})
		if unimplemented(err) {
			// The placement leader is an older build: report one by one,
			// every range every full round, as it expects, for a while.
			n.log.Info("the placement leader does not take batched range reports: sending them one by one for a minute")
			n.legacyReportsUntil = time.Now().Add(time.Minute)
			clear(last)
			n.sendRangeReportsOneByOne(ctx, ps, last, append(batch, ranges...))
			return
		}
		if err != nil {
			for _, hb := range batch {
				delete(last, multiraft.GroupID(hb.GetDescriptor_().GetRangeId())) // report it again next time
			}
			n.log.Debug("range heartbeats", "ranges", len(batch), "err", err)
		} else {
			if t := resp.GetDriverTerm(); t != n.reportedDriverTerm {
				// A new driver knows nothing of this node's ranges:
				// report them all again.
				n.reportedDriverTerm = t
				clear(last)
			}
			for _, rs := range resp.GetSteps() {
				n.executeStep(multiraft.GroupID(rs.GetRangeId()), rs.GetStep())
			}
		}
		if last1 {
			return
		}
	}
}

// unimplemented reports whether err says the placement leader does not
// serve RangeHeartbeats (an older build): a gRPC Unimplemented status, or,
// when the request was forwarded to it, the error that status became.
func unimplemented(err error) bool {
	return err != nil && (status.Code(err) == codes.Unimplemented ||
		strings.Contains(err.Error(), "unknown method RangeHeartbeats") || strings.Contains(err.Error(), "RangeHeartbeats not implemented"))
}

// sendRangeReportsOneByOne sends range reports as RangeHeartbeat calls.
func (n *Node) sendRangeReportsOneByOne(ctx context.Context, ps *placementService, last map[multiraft.GroupID]reported, ranges []*flotillapb.RangeHeartbeatRequest) {
	for _, hb := range ranges {
		g := multiraft.GroupID(hb.GetDescriptor_().GetRangeId())
		resp, err := ps.RangeHeartbeat(ctx, hb)
		if err != nil {
			delete(last, g) // report it again next time
			n.log.Debug("range heartbeat", "range", g, "err", err)
			continue
		}
		if step := resp.GetStep(); step != nil {
			n.executeStep(g, step)
		}
	}
}

// splitSuggestion returns where this node, leading range g, proposes to
// split it and why: by size once its data exceeds SplitSize (the key that
// halves it, cached per version for splitKeyTTL), else by load once it
// serves more than SplitQPS (the key that halves the sampled requests).
func (n *Node) splitSuggestion(g multiraft.GroupID, desc *flotillapb.RangeDescriptor, rs shard.Stats,
	splits map[multiraft.GroupID]splitCandidate) ([]byte, string) {
	version := desc.GetEpoch().GetVersion()
	if n.cfg.SplitSize > 0 && rs.KeyBytes+rs.ValueBytes > n.cfg.SplitSize {
		c, ok := splits[g]
		if !ok || c.version != version || time.Since(c.at) > splitKeyTTL {
			key, err := n.store.SizeSplitKey(g)
			if err != nil {
				n.log.Debug("finding a split key", "range", g, "err", err)
			}
			c = splitCandidate{version: version, at: time.Now(), key: key}
			splits[g] = c
		}
		if c.key != nil {
			return c.key, "size"
		}
	}
	if n.cfg.SplitQPS > 0 && rs.ReadsPerSecond+rs.WritesPerSecond > n.cfg.SplitQPS {
		if key := n.store.LoadSplitKey(g); key != nil {
			return key, "load"
		}
	}
	return nil, ""
}

// ensureIDs gives the driver replica sequence numbers and range IDs from
// the placement group's allocators when it runs low. The driver builds
// operators from blocks allocated ahead, through the placement group's
// log, so that replica and range IDs stay unique across driver leaders
// (the driver drops its block when a new term starts) at the cost of one
// proposal per block, not one per operator. Its callers run it on the
// placement group's leader only, where the driver is used.
func (n *Node) ensureIDs(ctx context.Context, host *multiraft.Host) {
	n.ensureAlloc(ctx, host, flotillapb.AllocIDs_REPLICA_SEQ, n.driver.ReplicaSeqsNeeded, n.driver.AddReplicaSeqs)
	n.ensureAlloc(ctx, host, flotillapb.AllocIDs_RANGE, n.driver.RangeIDsNeeded, n.driver.AddRangeIDs)
}

// ensureAlloc allocates needed() IDs of kind and gives them to add, if
// needed() is not 0. needed is asked again under allocMu, so that of callers
// racing on one shortage only the first proposes.
func (n *Node) ensureAlloc(ctx context.Context, host *multiraft.Host, kind flotillapb.AllocIDs_Kind,
	needed func() uint64, add func(first, n uint64)) {
	if needed() == 0 {
		return
	}
	n.allocMu.Lock()
	defer n.allocMu.Unlock()
	count := needed()
	if count == 0 {
		return
	}
	data, err := proto.Marshal(&flotillapb.MetaCommand{Command: &flotillapb.MetaCommand_AllocIds{
		AllocIds: &flotillapb.AllocIDs{Kind: kind, Count: count}}})
	if err != nil {
		return
	}
	res, err := host.ProposeAndWait(ctx, placement.GroupID, data)
	if err == nil {
		err = res.Err
	}
	var first uint64
	if err == nil {
		first, err = placement.DecodeID(res.Value)
	}
	if err != nil {
		n.log.Debug("allocating IDs", "kind", kind, "err", err)
		return
	}
	add(first, count)
}

// scheduleBalance runs the driver's balancers if this node leads the
// placement group, and marks the stores that finished decommissioning. It
// runs on the heartbeat loop once per HeartbeatInterval, and its proposals
// are bounded by that interval so that a slow placement group delays the
// next heartbeats by at most that long. On other nodes it clears the
// published view, so that /status and the placement gauges describe only
// the driver that acts.
func (n *Node) scheduleBalance() {
	host, meta, ok := n.running()
	if !ok || meta == nil {
		return
	}
	st, ok := host.Status(placement.GroupID)
	if !ok || st.Leader != st.Replica || st.Replica == 0 {
		n.placementView.Store(nil)
		return
	}
	n.syncDriver(st.Term)
	defer n.publishPlacementView(meta.State())
	ctx, cancel := context.WithTimeout(n.stopCtx, n.cfg.HeartbeatInterval)
	defer cancel()
	n.ensureIDs(ctx, host)
	for _, id := range n.driver.Balance(meta.State()) {
		if err := n.setStoreState(ctx, host, id, flotillapb.StoreState_STORE_DECOMMISSIONED); err != nil {
			n.log.Debug("marking a store decommissioned", "store", id, "err", err)
			continue
		}
		n.log.Info("store decommissioned: it holds no replica", "store", id)
	}
}

// setStoreState proposes a store's new membership state to the placement
// group.
func (n *Node) setStoreState(ctx context.Context, host *multiraft.Host, id multiraft.NodeID, state flotillapb.StoreState) error {
	data, err := proto.Marshal(&flotillapb.MetaCommand{Command: &flotillapb.MetaCommand_SetStoreState{
		SetStoreState: &flotillapb.SetStoreState{NodeId: uint64(id), State: state}}})
	if err != nil {
		return err
	}
	res, err := host.ProposeAndWait(ctx, placement.GroupID, data)
	if err != nil {
		return err
	}
	return res.Err
}

// executeStep runs an operator step for range g in the background, unless
// one already runs for g (the driver hands the step out again on the next
// heartbeat if it is still due). The step's goroutine belongs to the
// node's stopper: Close waits for it. A step that cannot start (the node
// is stopping) is dropped; the driver gives it to the range's next leader.
func (n *Node) executeStep(g multiraft.GroupID, step *flotillapb.OperatorStep) {
	if _, busy := n.executing.LoadOrStore(g, struct{}{}); busy {
		return
	}
	started := n.stopper.RunWorker(func() {
		defer n.executing.Delete(g)
		if err := n.runStep(g, step); err != nil {
			n.log.Info("operator step not run", "range", g, "step", stepString(step), "err", err)
		}
	})
	if !started {
		n.executing.Delete(g) // the node is stopping
	}
}

func stepString(s *flotillapb.OperatorStep) string {
	if s.GetKind() == flotillapb.OperatorStepKind_SPLIT {
		return fmt.Sprintf("op %d split at %q into range %d @version %d", s.GetOperatorId(), s.GetSplitKey(), s.GetNewRangeId(), s.GetVersion())
	}
	r := fmt.Sprintf("op %d %s %v", s.GetOperatorId(), s.GetKind(), multiraft.ReplicaID(s.GetReplicaId()))
	if s.GetDemoteReplicaId() != 0 {
		r += fmt.Sprintf(" demote %v", multiraft.ReplicaID(s.GetDemoteReplicaId()))
	}
	return r + fmt.Sprintf(" @conf_ver %d", s.GetConfVer())
}

// groupDescriptor returns the descriptor of group g on this node: a
// range's, or the placement group's.
func (n *Node) groupDescriptor(g multiraft.GroupID, meta *placement.Meta) *flotillapb.RangeDescriptor {
	if g == placement.GroupID {
		if meta == nil {
			return nil
		}
		return meta.State().GetPlacementGroup()
	}
	if r, ok := n.store.Replica(g); ok {
		return r.Descriptor()
	}
	return nil
}

// runStep runs one operator step as group g's leader (placement.PlanStep
// decides what that takes). Whatever the driver believed, the leader
// checks again: it leads g now, and the step is for g's current conf_ver
// (PlanStep), which the proposed change carries too, so the range refuses
// it if another change got in first. A conf change is given 10 s to
// commit; if it takes longer it is left to raft and the driver, which
// sees the change, or not, in the range's next heartbeat.
func (n *Node) runStep(g multiraft.GroupID, step *flotillapb.OperatorStep) error {
	host, meta, ok := n.running()
	if !ok {
		return nil
	}
	st, ok := host.Status(g)
	if !ok || st.Leader != st.Replica || st.Replica == 0 {
		return fmt.Errorf("this node does not lead the range")
	}
	desc := n.groupDescriptor(g, meta)
	if desc == nil {
		return fmt.Errorf("no descriptor")
	}
	if step.GetKind() == flotillapb.OperatorStepKind_SPLIT {
		return n.runSplit(g, step)
	}
	act, err := placement.PlanStep(desc, placement.LeaderStatus{Self: st.Replica, Commit: st.Commit,
		LearnerMatch: st.LearnerMatch, Joint: st.Joint, Active: host.NodeActive}, step)
	switch {
	case err != nil:
		return err
	case act.TransferTo != 0:
		return host.TransferLeadership(g, act.TransferTo)
	case act.ConfChange == nil:
		return nil
	}
	ctx, cancel := context.WithTimeout(n.stopCtx, 10*time.Second)
	defer cancel()
	res, err := host.ProposeConfChange(g, act.ConfChange).Wait(ctx)
	if err == nil {
		err = res.Err
	}
	if err != nil {
		return err
	}
	n.log.Info("operator step done", "range", g, "step", stepString(step))
	return nil
}

// runSplit splits range g as a SPLIT step says. The range refuses the
// split unless it is still at the step's version and conf_ver, so a stale
// or repeated SPLIT step changes nothing.
func (n *Node) runSplit(g multiraft.GroupID, step *flotillapb.OperatorStep) error {
	if g == placement.GroupID {
		return fmt.Errorf("the placement group has no keys to split")
	}
	ctx, cancel := context.WithTimeout(n.stopCtx, 10*time.Second)
	defer cancel()
	descs, err := n.store.Split(ctx, g, step.GetVersion(), &flotillapb.SplitCommand{
		SplitKey: step.GetSplitKey(), NewRangeId: step.GetNewRangeId(),
		NewReplicaIds: step.GetNewReplicaIds(), ConfVer: step.GetConfVer(),
	})
	if err != nil {
		return err
	}
	n.metrics.GetOrCreateCounter("flotilla_range_splits_total").Inc()
	n.log.Info("range split", "range", g, "at", fmt.Sprintf("%q", step.GetSplitKey()),
		"new", step.GetNewRangeId(), "op", step.GetOperatorId(), "ranges", len(descs))
	return nil
}

// publishPlacementView keeps the driver's view for /status and /metrics,
// and registers a heartbeat-age gauge for every store. The gauges are never
// unregistered (a metrics.Set cannot): they read the latest view, and say
// -1 for a store it does not list (this node no longer leads, say).
func (n *Node) publishPlacementView(meta *flotillapb.ClusterMeta) {
	stores := n.driver.Stores(meta)
	for _, st := range stores {
		id := st.GetNode().GetNodeId()
		n.metrics.GetOrCreateGauge(fmt.Sprintf(`flotilla_placement_store_heartbeat_age_seconds{store="%d"}`, id), func() float64 {
			for _, s := range n.placementView.Load().GetStores() {
				if s.GetNode().GetNodeId() == id {
					return s.GetSecondsSinceHeartbeat()
				}
			}
			return -1
		})
	}
	n.placementView.Store(&flotillapb.PlacementView{Stores: stores, Operators: n.driver.Operators(meta), Ranges: n.driver.Ranges(meta)})
}

// registerPlacementMetrics registers the placement driver's gauges; they
// read the view the node published while it led the placement group, and
// are 0 on other nodes.
func (n *Node) registerPlacementMetrics() {
	for _, state := range []string{placement.OpRunning, placement.OpFinished, placement.OpFailed, placement.OpExpired} {
		n.metrics.NewGauge(fmt.Sprintf(`flotilla_placement_operators{state=%q}`, state), func() float64 {
			return float64(n.placementView.Load().GetOperators().GetCounts()[state])
		})
	}
	n.metrics.NewGauge(`flotilla_placement_replica_balance`, func() float64 {
		return float64(n.placementView.Load().GetOperators().GetReplicaBalance())
	})
	n.metrics.NewGauge(`flotilla_placement_leader_balance`, func() float64 {
		return float64(n.placementView.Load().GetOperators().GetLeaderBalance())
	})
	n.metrics.NewGauge(`flotilla_placement_leader`, func() float64 {
		if n.placementView.Load() != nil {
			return 1
		}
		return 0
	})
}
