// Copyright 2026 The Flotilla Authors. All rights reserved.

package flotilla

import (
	"context"
	"fmt"
	"syscall"
	"time"

	"github.com/flotilladb/flotilla/multiraft"
	"github.com/flotilladb/flotilla/placement"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// heartbeatPoll is how often the heartbeat loop looks for ranges whose
// leader, term or descriptor changed, to report them at once rather than
// at the next HeartbeatInterval.
const heartbeatPoll = 100 * time.Millisecond

// learnerCatchUpLag is how far behind the leader's commit index a learner
// may be and still be promoted to voter.
const learnerCatchUpLag = 64

// reported is what this node last told the placement driver about a range
// it leads.
type reported struct {
	term, confVer, version uint64
	pending                int
}

// heartbeatLoop reports this store every HeartbeatInterval, and every
// range it leads then and whenever the range's leadership or descriptor
// changes; it runs the operator steps the driver answers with. On the
// placement group's leader it also runs the balancers.
func (n *Node) heartbeatLoop() {
	defer n.wg.Done()
	t := time.NewTicker(min(heartbeatPoll, n.cfg.HeartbeatInterval))
	defer t.Stop()
	last := map[multiraft.GroupID]reported{}
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
		n.sendHeartbeats(last, full)
		if full {
			n.scheduleBalance()
		}
	}
}

// sendHeartbeats sends the range heartbeats that are due (all of them if
// full, else those that changed since last) and, if full, the store
// heartbeat.
func (n *Node) sendHeartbeats(last map[multiraft.GroupID]reported, full bool) {
	host, meta, ok := n.running()
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(n.stopCtx, n.cfg.HeartbeatInterval)
	defer cancel()
	ps := (*placementService)(n)
	stats := &flotillapb.StoreStats{}
	var ranges []*flotillapb.RangeHeartbeatRequest
	leading := map[multiraft.GroupID]bool{}
	for _, g := range host.Groups() {
		gs, ok := host.Status(g)
		if !ok {
			continue
		}
		if g != placement.GroupID {
			stats.RangeCount++
		}
		if gs.Leader != gs.Replica || gs.Replica == 0 {
			continue
		}
		var hb *flotillapb.RangeHeartbeatRequest
		if g == placement.GroupID {
			if meta == nil || meta.State().GetPlacementGroup() == nil {
				continue
			}
			hb = &flotillapb.RangeHeartbeatRequest{Descriptor_: meta.State().GetPlacementGroup()}
		} else {
			stats.LeaderCount++
			r, ok := n.store.Replica(g)
			if !ok || r.Descriptor() == nil {
				continue
			}
			rs := r.Stats()
			stats.ReadsPerSecond += rs.ReadsPerSecond
			stats.WritesPerSecond += rs.WritesPerSecond
			hb = &flotillapb.RangeHeartbeatRequest{
				Descriptor_:    r.Descriptor(),
				Stats:          &flotillapb.RangeStats{Keys: rs.Keys, KeyBytes: rs.KeyBytes, ValueBytes: rs.ValueBytes},
				ReadsPerSecond: rs.ReadsPerSecond, WritesPerSecond: rs.WritesPerSecond,
			}
		}
		hb.LeaderReplicaId, hb.Term = uint64(gs.Replica), gs.Term
		for _, l := range gs.Learners {
			if match := gs.LearnerMatch[l]; match == 0 || match+learnerCatchUpLag < gs.Commit {
				hb.PendingReplicas = append(hb.PendingReplicas, uint64(l))
			}
		}
		leading[g] = true
		now := reported{term: gs.Term, confVer: hb.GetDescriptor_().GetEpoch().GetConfVer(),
			version: hb.GetDescriptor_().GetEpoch().GetVersion(), pending: len(hb.PendingReplicas)}
		if prev, ok := last[g]; full || !ok || prev != now {
			last[g] = now
			ranges = append(ranges, hb)
		}
	}
	for g := range last {
		if !leading[g] {
			delete(last, g)
		}
	}
	if full {
		var fs syscall.Statfs_t
		if syscall.Statfs(n.cfg.Dir, &fs) == nil {
			stats.CapacityBytes = fs.Blocks * uint64(fs.Bsize)
			stats.AvailableBytes = fs.Bavail * uint64(fs.Bsize)
			stats.UsedBytes = stats.CapacityBytes - stats.AvailableBytes
		}
		if _, err := ps.StoreHeartbeat(ctx, &flotillapb.StoreHeartbeatRequest{NodeId: n.NodeID(), Stats: stats}); err != nil {
			n.log.Debug("store heartbeat", "err", err)
		}
	}
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

// ensureReplicaSeqs gives the driver replica sequence numbers from the
// placement group's allocator when it runs low.
func (n *Node) ensureReplicaSeqs(ctx context.Context, host *multiraft.Host) {
	count := n.driver.ReplicaSeqsNeeded()
	if count == 0 {
		return
	}
	n.allocMu.Lock()
	defer n.allocMu.Unlock()
	if n.driver.ReplicaSeqsNeeded() == 0 {
		return
	}
	data, err := proto.Marshal(&flotillapb.MetaCommand{Command: &flotillapb.MetaCommand_AllocIds{
		AllocIds: &flotillapb.AllocIDs{Kind: flotillapb.AllocIDs_REPLICA_SEQ, Count: count}}})
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
		n.log.Debug("allocating replica IDs", "err", err)
		return
	}
	n.driver.AddReplicaSeqs(first, count)
}

// scheduleBalance runs the driver's balancers if this node leads the
// placement group, and marks the stores that finished decommissioning.
func (n *Node) scheduleBalance() {
	host, meta, ok := n.running()
	if !ok || meta == nil {
		return
	}
	st, ok := host.Status(placement.GroupID)
	if !ok || st.Leader != st.Replica || st.Replica == 0 {
		return
	}
	n.syncDriver(st.Term)
	ctx, cancel := context.WithTimeout(n.stopCtx, n.cfg.HeartbeatInterval)
	defer cancel()
	n.ensureReplicaSeqs(ctx, host)
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
// heartbeat if it is still due).
func (n *Node) executeStep(g multiraft.GroupID, step *flotillapb.OperatorStep) {
	if _, busy := n.executing.LoadOrStore(g, struct{}{}); busy {
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		defer n.executing.Delete(g)
		if err := n.runStep(g, step); err != nil {
			n.log.Info("operator step not run", "range", g, "step", stepString(step), "err", err)
		}
	}()
}

func stepString(s *flotillapb.OperatorStep) string {
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

func findReplica(d *flotillapb.RangeDescriptor, id multiraft.ReplicaID) *flotillapb.ReplicaDescriptor {
	for _, r := range d.GetReplicas() {
		if r.GetReplicaId() == uint64(id) {
			return r
		}
	}
	return nil
}

// runStep runs one operator step as group g's leader, with the checks a
// leader makes whatever the driver believed: the descriptor must be at the
// step's conf_ver (and the change carries it, so the group refuses it at
// any other); a step already done is skipped; a learner is promoted only
// once it has caught up; the leader never removes or demotes itself.
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
	if cv := desc.GetEpoch().GetConfVer(); cv != step.GetConfVer() {
		return fmt.Errorf("stale: the range is at conf_ver %d", cv)
	}
	if st.Joint {
		return nil // leaving a joint configuration first
	}
	id := multiraft.ReplicaID(step.GetReplicaId())
	if !id.Valid() {
		return fmt.Errorf("invalid replica ID %d", step.GetReplicaId())
	}
	rep := findReplica(desc, id)
	var cc *pb.ConfChangeV2
	switch step.GetKind() {
	case flotillapb.OperatorStepKind_ADD_LEARNER:
		if rep != nil {
			return nil
		}
		cc = multiraft.AddLearner(id)
	case flotillapb.OperatorStepKind_PROMOTE:
		if rep == nil {
			return fmt.Errorf("no replica %v to promote", id)
		}
		demote := multiraft.ReplicaID(step.GetDemoteReplicaId())
		if demote == st.Replica {
			return fmt.Errorf("the leader does not demote itself")
		}
		if rep.GetType() == flotillapb.ReplicaType_LEARNER {
			if match := st.LearnerMatch[id]; match == 0 || match+learnerCatchUpLag < st.Commit {
				return nil // still catching up
			}
		}
		cc = multiraft.AddVoter(id)
		if d := findReplica(desc, demote); demote != 0 && d != nil && d.GetType() == flotillapb.ReplicaType_VOTER {
			cc.Changes = append(cc.Changes, multiraft.AddLearner(demote).Changes...)
		} else if rep.GetType() == flotillapb.ReplicaType_VOTER {
			return nil
		}
	case flotillapb.OperatorStepKind_REMOVE:
		if rep == nil {
			return nil
		}
		if id == st.Replica {
			return fmt.Errorf("the leader does not remove itself")
		}
		cc = multiraft.RemoveReplica(id)
	case flotillapb.OperatorStepKind_TRANSFER_LEADER:
		if rep == nil || rep.GetType() != flotillapb.ReplicaType_VOTER {
			return fmt.Errorf("replica %v is not a voter", id)
		}
		if id == st.Replica {
			return nil
		}
		return host.TransferLeadership(g, id)
	default:
		return fmt.Errorf("unknown step kind %v", step.GetKind())
	}
	ctx, cancel := context.WithTimeout(n.stopCtx, 10*time.Second)
	defer cancel()
	res, err := host.ProposeConfChange(g, placement.WithConfVer(cc, step.GetConfVer())).Wait(ctx)
	if err == nil {
		err = res.Err
	}
	if err != nil {
		return err
	}
	n.log.Info("operator step done", "range", g, "step", stepString(step))
	return nil
}
