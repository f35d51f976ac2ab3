// Copyright 2026 The Flotilla Authors. All rights reserved.

package placement

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/flotilladb/flotilla/multiraft"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"github.com/flotilladb/flotilla/rpc/flotillapb/confchange"
	"google.golang.org/protobuf/proto"
)

// dsim drives a real Driver with heartbeats from a simulated cluster and
// executes the steps it hands out with the real leader-side decision
// (PlanStep) and descriptor change (ChangeReplicas). Heartbeats are
// replayed stale and duplicated, and steps are delayed and delivered out
// of order.
type dsim struct {
	t      *testing.T
	rng    *rand.Rand
	now    time.Time
	d      *Driver
	meta   *flotillapb.ClusterMeta
	live   map[multiraft.NodeID]bool
	diedAt time.Time
	ranges map[multiraft.GroupID]*simRange
	nextID uint32
	// applied counts the membership changes applied; refused the steps
	// the leaders or ranges refused.
	applied, refused int
}

type simRange struct {
	desc   *flotillapb.RangeDescriptor
	leader multiraft.ReplicaID
	term   uint64
	// catchUp counts the rounds a learner still needs.
	catchUp map[multiraft.ReplicaID]int
	// old are past heartbeats, replayed later; queued are steps whose
	// delivery is delayed.
	old    []*flotillapb.RangeHeartbeatRequest
	queued []*flotillapb.OperatorStep
}

const simRound = 500 * time.Millisecond

func (s *dsim) quorumOK(d *flotillapb.RangeDescriptor) bool {
	voters, _ := membersOf(d)
	live := 0
	for _, v := range voters {
		if s.live[multiraft.NodeID(v.GetStoreId())] {
			live++
		}
	}
	return len(voters) > 0 && live >= quorum(len(voters))
}

func (s *dsim) heartbeat(id multiraft.GroupID, r *simRange) *flotillapb.RangeHeartbeatRequest {
	hb := &flotillapb.RangeHeartbeatRequest{Descriptor_: proto.Clone(r.desc).(*flotillapb.RangeDescriptor),
		LeaderReplicaId: uint64(r.leader), Term: r.term}
	_, learners := membersOf(r.desc)
	for _, l := range learners {
		lid := multiraft.ReplicaID(l.GetReplicaId())
		if r.catchUp[lid] > 0 || !s.live[lid.Node()] {
			hb.PendingReplicas = append(hb.PendingReplicas, uint64(lid))
		}
	}
	return hb
}

// observe gives the driver a heartbeat as the placement service does:
// ObserveRange, record a newer descriptor, Schedule.
func (s *dsim) observe(hb *flotillapb.RangeHeartbeatRequest) *flotillapb.OperatorStep {
	s.d.ObserveRange(hb)
	next, _, err := applyMeta(s.meta, &flotillapb.MetaCommand{Command: &flotillapb.MetaCommand_UpdateRange{
		UpdateRange: &flotillapb.UpdateRange{Descriptor_: hb.GetDescriptor_()}}})
	if err != nil {
		s.t.Fatal(err)
	}
	s.meta = next
	if s.d.ReplicaSeqsNeeded() > 0 {
		s.d.AddReplicaSeqs(uint64(s.nextID), 64)
		s.nextID += 64
	}
	return s.d.Schedule(s.meta, multiraft.GroupID(hb.GetDescriptor_().GetRangeId()))
}

// exec runs a step on the range's current leader.
func (s *dsim) exec(id multiraft.GroupID, step *flotillapb.OperatorStep) {
	r := s.ranges[id]
	if r.leader == 0 || !s.live[r.leader.Node()] {
		return
	}
	ls := LeaderStatus{Self: r.leader, Commit: 1000, LearnerMatch: map[multiraft.ReplicaID]uint64{},
		Active: func(n multiraft.NodeID) bool { return s.live[n] }}
	_, learners := membersOf(r.desc)
	for _, l := range learners {
		lid := multiraft.ReplicaID(l.GetReplicaId())
		if r.catchUp[lid] == 0 && s.live[lid.Node()] {
			ls.LearnerMatch[lid] = 1000
		}
	}
	act, err := PlanStep(r.desc, ls, step)
	switch {
	case err != nil:
		s.refused++
		return
	case act.TransferTo != 0:
		if s.live[act.TransferTo.Node()] {
			r.leader = act.TransferTo
			r.term++
		}
		return
	case act.ConfChange == nil:
		return
	}
	before := s.quorumOK(r.desc)
	next, err := confchange.ChangeReplicas(r.desc, act.ConfChange)
	if err != nil {
		s.refused++
		return
	}
	for _, rep := range next.GetReplicas() {
		rid := multiraft.ReplicaID(rep.GetReplicaId())
		if r.desc.Replica(rid) == nil {
			r.catchUp[rid] = 1 + s.rng.IntN(4)
		}
	}
	r.desc = next
	s.applied++
	if before && !s.quorumOK(next) {
		s.t.Fatalf("step %v left range %d without a quorum of live voters: %v (live %v)", step, id, next.GetReplicas(), s.live)
	}
}

func (s *dsim) round(faults bool) {
	s.now = s.now.Add(simRound)
	nStores := len(s.meta.GetNodes())
	if faults {
		switch x := s.rng.IntN(25); {
		case x == 0 && s.now.Sub(s.diedAt) > 2*s.d.cfg.LivenessWindow:
			// One store dies at a time, never two within the time the
			// driver takes to notice: any minority failure.
			id := multiraft.NodeID(1 + s.rng.IntN(nStores))
			if s.live[id] {
				s.live[id] = false
				s.diedAt = s.now
			}
		case x < 3:
			s.live[multiraft.NodeID(1+s.rng.IntN(nStores))] = true
		case x == 3:
			n := s.meta.Nodes[s.rng.IntN(nStores)]
			up := 0
			for _, m := range s.meta.GetNodes() {
				if m.GetState() == flotillapb.StoreState_STORE_UP {
					up++
				}
			}
			if n.GetState() == flotillapb.StoreState_STORE_UP && up > 4 {
				n.State = flotillapb.StoreState_STORE_DECOMMISSIONING
			}
		}
	}
	if faults && s.rng.IntN(10) == 0 {
		// An administrator removes a random voter of a random range.
		id := multiraft.GroupID(10 + s.rng.IntN(len(s.ranges)))
		_, _ = s.d.AdminOperator(s.meta, id, func(cv *ClusterView, r *RangeView, _ ReplicaAllocator) (*Operator, error) {
			voters, _ := membersOf(r.Desc)
			v := multiraft.ReplicaID(voters[s.rng.IntN(len(voters))].GetReplicaId())
			if !cv.SafeToRemove(r, v) {
				return nil, fmt.Errorf("unsafe")
			}
			return &Operator{RangeID: id, ConfVer: r.Desc.GetEpoch().GetConfVer(), Steps: []Step{{Kind: StepRemove, Replica: v}}}, nil
		})
	}
	for id, live := range s.live {
		if live {
			s.d.ObserveStore(&flotillapb.StoreHeartbeatRequest{NodeId: uint64(id)})
		}
	}
	ids := make([]multiraft.GroupID, 0, len(s.ranges))
	for id := range s.ranges {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	s.rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	for _, id := range ids {
		r := s.ranges[id]
		for l, n := range r.catchUp {
			if n > 0 && s.live[l.Node()] {
				r.catchUp[l] = n - 1
			}
		}
		if r.leader == 0 || !s.live[r.leader.Node()] || r.desc.Replica(r.leader) == nil {
			r.leader = 0
			if s.quorumOK(r.desc) {
				voters, _ := membersOf(r.desc)
				for _, i := range s.rng.Perm(len(voters)) {
					if v := multiraft.ReplicaID(voters[i].GetReplicaId()); s.live[v.Node()] {
						r.leader, r.term = v, r.term+1
						break
					}
				}
			}
		}
		if r.leader == 0 {
			continue
		}
		if len(r.old) > 0 && s.rng.IntN(4) == 0 {
			// A stale heartbeat (a deposed leader's, or a delayed one).
			if step := s.observe(r.old[s.rng.IntN(len(r.old))]); step != nil {
				r.queued = append(r.queued, step)
			}
		}
		hb := s.heartbeat(id, r)
		r.old = append(r.old, hb)
		for range 1 + s.rng.IntN(2) { // sometimes duplicated
			step := s.observe(hb)
			if step == nil {
				continue
			}
			if s.rng.IntN(3) == 0 {
				r.queued = append(r.queued, step)
			} else {
				s.exec(id, step)
			}
		}
		if len(r.queued) > 0 && s.rng.IntN(3) == 0 {
			i := s.rng.IntN(len(r.queued))
			step := r.queued[i]
			r.queued = slices.Delete(r.queued, i, i+1)
			s.exec(id, step)
		}
	}
	for _, id := range s.d.Balance(s.meta) {
		for _, n := range s.meta.GetNodes() {
			if multiraft.NodeID(n.GetNodeId()) == id {
				n.State = flotillapb.StoreState_STORE_DECOMMISSIONED
			}
		}
	}
}

// TestDriverSafetyRandomized replays stale and duplicated heartbeats into
// the driver, delays and reorders the steps it hands out, and kills,
// revives and decommissions stores: no step may leave a range without a
// quorum of live voters. Once the faults stop, every range must end with
// three voters on up stores, decommissioning stores must be marked
// decommissioned, and replica and leader counts must be balanced.
func TestDriverSafetyRandomized(t *testing.T) {
	for run := range 4 {
		t.Run(fmt.Sprint(run), func(t *testing.T) {
			seed := newSeed(t)
			rng := rand.New(rand.NewPCG(seed, seed^0x51ed))
			s := &dsim{t: t, rng: rng, now: time.Unix(1_000_000, 0), live: map[multiraft.NodeID]bool{},
				ranges: map[multiraft.GroupID]*simRange{}, nextID: 1000}
			s.d = NewDriver(DriverConfig{LivenessWindow: time.Second, StoreDownTimeout: 3 * time.Second,
				OperatorTimeout: 20 * time.Second, Clock: func() time.Time { return s.now }})
			nStores := 5 + rng.IntN(3)
			s.meta = &flotillapb.ClusterMeta{ClusterId: "sim"}
			for i := 1; i <= nStores; i++ {
				s.meta.Nodes = append(s.meta.Nodes, &flotillapb.NodeDescriptor{NodeId: uint64(i), Address: "x"})
				s.live[multiraft.NodeID(i)] = true
			}
			nRanges := 10 + rng.IntN(20)
			for i := range nRanges {
				id := multiraft.GroupID(10 + i)
				d := &flotillapb.RangeDescriptor{RangeId: uint64(id), StartKey: []byte(fmt.Sprintf("k%03d", i)),
					EndKey: []byte(fmt.Sprintf("k%03d", i+1)), Epoch: &flotillapb.RangeEpoch{ConfVer: 1, Version: 1}}
				for _, st := range rng.Perm(nStores)[:3] {
					d.Replicas = append(d.Replicas, &flotillapb.ReplicaDescriptor{StoreId: uint64(st + 1), ReplicaId: uint64(multiraft.MakeReplicaID(multiraft.NodeID(st+1), 1))})
				}
				s.ranges[id] = &simRange{desc: d, catchUp: map[multiraft.ReplicaID]int{}}
			}
			for range 400 {
				s.round(true)
			}
			for id := range s.live {
				s.live[id] = true
			}
			// Heal: run until no operator runs for a while.
			quiet := 0
			for i := 0; i < 3000 && quiet < 20; i++ {
				s.round(false)
				if s.d.Operators(s.meta).GetCounts()[OpRunning] == 0 {
					quiet++
				} else {
					quiet = 0
				}
			}
			ops := s.d.Operators(s.meta)
			if quiet < 20 {
				t.Fatalf("operators still running after healing: %v", ops.GetOperators())
			}
			perStore := map[uint64][2]int{}
			for id, r := range s.ranges {
				voters, learners := membersOf(r.desc)
				if len(voters) != 3 || len(learners) != 0 {
					t.Errorf("range %d ends with %d voters and %d learners", id, len(voters), len(learners))
				}
				for _, v := range voters {
					c := perStore[v.GetStoreId()]
					c[0]++
					if multiraft.ReplicaID(v.GetReplicaId()) == r.leader {
						c[1]++
					}
					perStore[v.GetStoreId()] = c
				}
			}
			minR, maxR, minL, maxL := 1<<30, 0, 1<<30, 0
			var leaders []int
			for _, n := range s.meta.GetNodes() {
				c := perStore[n.GetNodeId()]
				switch n.GetState() {
				case flotillapb.StoreState_STORE_UP:
					minR, maxR = min(minR, c[0]), max(maxR, c[0])
					minL, maxL = min(minL, c[1]), max(maxL, c[1])
					leaders = append(leaders, c[1])
				case flotillapb.StoreState_STORE_DECOMMISSIONING:
					t.Errorf("store %d is still decommissioning with %d replicas", n.GetNodeId(), c[0])
				default:
					if c[0] != 0 {
						t.Errorf("decommissioned store %d holds %d replicas", n.GetNodeId(), c[0])
					}
				}
			}
			if maxR-minR > 1 || !withinOneOfMean(leaders) {
				t.Errorf("unbalanced after healing: replicas %d..%d, leaders %d..%d", minR, maxR, minL, maxL)
			}
			if ops.GetReplicaBalance() != uint32(maxR-minR) || ops.GetLeaderBalance() != uint32(maxL-minL) {
				t.Errorf("balance scores %d/%d, counted %d/%d", ops.GetReplicaBalance(), ops.GetLeaderBalance(), maxR-minR, maxL-minL)
			}
			t.Logf("%d stores, %d ranges: %d changes applied, %d steps refused, operators %v", nStores, nRanges, s.applied, s.refused, ops.GetCounts())
		})
	}
}

// TestPlacementGroupReplicas: the placement group is up-replicated to
// PlacementReplicationFactor voters like a range, on the stores that hold
// none of it, and is not counted as a key range.
func TestPlacementGroupReplicas(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	d := NewDriver(DriverConfig{LivenessWindow: time.Second, StoreDownTimeout: 3 * time.Second,
		PlacementReplicationFactor: 5, Clock: func() time.Time { return now }})
	meta := &flotillapb.ClusterMeta{ClusterId: "c", PlacementGroup: &flotillapb.RangeDescriptor{
		RangeId: uint64(GroupID), Epoch: &flotillapb.RangeEpoch{ConfVer: 3, Version: 1}}}
	for i := uint64(1); i <= 5; i++ {
		meta.Nodes = append(meta.Nodes, &flotillapb.NodeDescriptor{NodeId: i, Address: "x"})
		if i <= 3 {
			meta.PlacementGroup.Replicas = append(meta.PlacementGroup.Replicas,
				&flotillapb.ReplicaDescriptor{StoreId: i, ReplicaId: uint64(multiraft.MakeReplicaID(multiraft.NodeID(i), 1))})
		}
	}
	d.AddReplicaSeqs(100, 64)
	now = now.Add(2 * time.Second) // past the first liveness window
	for i := uint64(1); i <= 5; i++ {
		d.ObserveStore(&flotillapb.StoreHeartbeatRequest{NodeId: i})
	}
	d.ObserveRange(&flotillapb.RangeHeartbeatRequest{Descriptor_: meta.PlacementGroup,
		LeaderReplicaId: uint64(multiraft.MakeReplicaID(1, 1)), Term: 2})
	step := d.Schedule(meta, GroupID)
	if step.GetKind() != flotillapb.OperatorStepKind_ADD_LEARNER || multiraft.ReplicaID(step.GetReplicaId()).Node() < 4 ||
		step.GetConfVer() != 3 {
		t.Fatalf("step %v, want a learner on store 4 or 5 at conf_ver 3", step)
	}
	if c := d.StoreCounts(meta); c[1].Replicas != 0 || !c[1].Placement || c[4].Placement {
		t.Fatalf("store counts %v", c)
	}
	if ranges := d.Ranges(meta); len(ranges) != 0 {
		t.Fatalf("the placement group is listed among the ranges: %v", ranges)
	}
}

// TestStuckLearnerRemoved: a learner reported pending for longer than the
// operator timeout (its snapshot keeps failing) is removed by the replica
// checker, so the range can get a replica elsewhere.
func TestStuckLearnerRemoved(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	d := NewDriver(DriverConfig{LivenessWindow: time.Second, StoreDownTimeout: time.Hour,
		OperatorTimeout: 10 * time.Second, Clock: func() time.Time { return now }})
	learner := multiraft.MakeReplicaID(4, 9)
	desc := &flotillapb.RangeDescriptor{RangeId: 7, Epoch: &flotillapb.RangeEpoch{ConfVer: 4, Version: 1},
		Replicas: []*flotillapb.ReplicaDescriptor{{StoreId: 4, ReplicaId: uint64(learner), Type: flotillapb.ReplicaType_LEARNER}}}
	meta := &flotillapb.ClusterMeta{ClusterId: "c"}
	for i := uint64(1); i <= 4; i++ {
		meta.Nodes = append(meta.Nodes, &flotillapb.NodeDescriptor{NodeId: i, Address: "x"})
		if i <= 2 {
			desc.Replicas = append(desc.Replicas, &flotillapb.ReplicaDescriptor{StoreId: i, ReplicaId: uint64(multiraft.MakeReplicaID(multiraft.NodeID(i), 1))})
		}
	}
	d.AddReplicaSeqs(100, 64)
	beat := func() *flotillapb.OperatorStep {
		for i := uint64(1); i <= 4; i++ {
			d.ObserveStore(&flotillapb.StoreHeartbeatRequest{NodeId: i})
		}
		d.ObserveRange(&flotillapb.RangeHeartbeatRequest{Descriptor_: desc, LeaderReplicaId: uint64(multiraft.MakeReplicaID(1, 1)),
			Term: 1, PendingReplicas: []uint64{uint64(learner)}})
		return d.Schedule(meta, 7)
	}
	for range 5 { // within the timeout: it is left to catch up
		now = now.Add(time.Second + time.Millisecond)
		if step := beat(); step != nil {
			t.Fatalf("step %v while the learner may still catch up", step)
		}
	}
	now = now.Add(10 * time.Second)
	if step := beat(); step.GetKind() != flotillapb.OperatorStepKind_REMOVE || step.GetReplicaId() != uint64(learner) {
		t.Fatalf("step %v, want the stuck learner removed", step)
	}
}
