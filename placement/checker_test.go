// Copyright 2026 The Flotilla Authors. All rights reserved.

package placement

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/flotilladb/flotilla/multiraft"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
)

var seedFlag = flag.Uint64("seed", 0, "seed for randomized tests (0: pick one and print it)")

func newSeed(t *testing.T) uint64 {
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -run '^%s$' -seed %d)", seed, t.Name(), seed)
	return seed
}

func rid(store multiraft.NodeID, seq uint32) multiraft.ReplicaID {
	return multiraft.MakeReplicaID(store, seq)
}

func desc(id uint64, confVer uint64, voters []multiraft.ReplicaID, learners ...multiraft.ReplicaID) *flotillapb.RangeDescriptor {
	d := &flotillapb.RangeDescriptor{RangeId: id, StartKey: fmt.Appendf(nil, "r%05d", id), EndKey: fmt.Appendf(nil, "r%05d~", id),
		Epoch: &flotillapb.RangeEpoch{ConfVer: confVer, Version: 1}}
	for _, v := range voters {
		d.Replicas = append(d.Replicas, &flotillapb.ReplicaDescriptor{StoreId: uint64(v.Node()), ReplicaId: uint64(v)})
	}
	for _, l := range learners {
		d.Replicas = append(d.Replicas, &flotillapb.ReplicaDescriptor{StoreId: uint64(l.Node()), ReplicaId: uint64(l), Type: flotillapb.ReplicaType_LEARNER})
	}
	return d
}

func stores(n int) map[multiraft.NodeID]*StoreView {
	m := map[multiraft.NodeID]*StoreView{}
	for i := 1; i <= n; i++ {
		m[multiraft.NodeID(i)] = &StoreView{ID: multiraft.NodeID(i), Live: true}
	}
	return m
}

// seqAlloc allocates replica IDs with a global sequence, never reused.
func seqAlloc(next *uint32) ReplicaAllocator {
	return func(_ multiraft.GroupID, s multiraft.NodeID) multiraft.ReplicaID {
		*next++
		return rid(s, *next)
	}
}

func TestCheckReplicas(t *testing.T) {
	a, b, c, d := rid(1, 1), rid(2, 1), rid(3, 1), rid(4, 1)
	for _, tc := range []struct {
		name  string
		setup func(cv *ClusterView)
		r     *RangeView
		want  string // Operator.Steps as printed, "" for none
	}{
		{name: "healthy", r: &RangeView{Desc: desc(7, 3, []multiraft.ReplicaID{a, b, c}), Leader: a}, want: ""},
		{name: "missing voter goes to the emptiest store", setup: func(cv *ClusterView) { cv.Stores[4].Ranges = 5 },
			r: &RangeView{Desc: desc(7, 3, []multiraft.ReplicaID{a, b}), Leader: a}, want: "[add-learner 3/100 promote 3/100]"},
		{name: "no usable store for a missing voter", setup: func(cv *ClusterView) { cv.Stores[3].Live = false; cv.Stores[4].Down = true },
			r: &RangeView{Desc: desc(7, 3, []multiraft.ReplicaID{a, b}), Leader: a}, want: ""},
		{name: "pending learner waits", r: &RangeView{Desc: desc(7, 3, []multiraft.ReplicaID{a, b}, c), Leader: a, Pending: []multiraft.ReplicaID{c}}, want: ""},
		{name: "caught-up learner promoted", r: &RangeView{Desc: desc(7, 3, []multiraft.ReplicaID{a, b}, c), Leader: a}, want: "[promote 3/1]"},
		{name: "extra learner removed", r: &RangeView{Desc: desc(7, 3, []multiraft.ReplicaID{a, b, c}, d), Leader: a}, want: "[remove 4/1]"},
		{name: "learner on a down store removed", setup: func(cv *ClusterView) { cv.Stores[3].Down, cv.Stores[3].Live = true, false },
			r: &RangeView{Desc: desc(7, 3, []multiraft.ReplicaID{a, b}, c), Leader: a, Pending: []multiraft.ReplicaID{c}}, want: "[remove 3/1]"},
		{name: "voter on a down store replaced", setup: func(cv *ClusterView) { cv.Stores[3].Down, cv.Stores[3].Live = true, false },
			r: &RangeView{Desc: desc(7, 3, []multiraft.ReplicaID{a, b, c}), Leader: a}, want: "[add-learner 4/100 promote 4/100 demote 3/1 remove 3/1]"},
		{name: "leader on a decommissioning store hands over first", setup: func(cv *ClusterView) { cv.Stores[1].State = StoreDecommissioning },
			r: &RangeView{Desc: desc(7, 3, []multiraft.ReplicaID{a, b, c}), Leader: a}, want: "[add-learner 4/100 promote 4/100 transfer-leader 4/100 remove 1/1]"},
		{name: "extra voter on a down store removed directly", setup: func(cv *ClusterView) { cv.Stores[4].Down, cv.Stores[4].Live = true, false },
			r: &RangeView{Desc: desc(7, 3, []multiraft.ReplicaID{a, b, c, d}), Leader: a}, want: "[remove 4/1]"},
		{name: "extra voter: never the leader", setup: func(cv *ClusterView) { cv.Stores[1].Ranges = 9 },
			r: &RangeView{Desc: desc(7, 3, []multiraft.ReplicaID{a, b, c, d}), Leader: a}, want: "[remove 2/1]"},
		{name: "extra voter not removed when that loses the quorum",
			setup: func(cv *ClusterView) { cv.Stores[2].Live, cv.Stores[3].Live, cv.Stores[4].Live = false, false, false },
			r:     &RangeView{Desc: desc(7, 3, []multiraft.ReplicaID{a, b, c, d}), Leader: a}, want: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cv := &ClusterView{Stores: stores(4), ReplicationFactor: 3}
			if tc.setup != nil {
				tc.setup(cv)
			}
			next := uint32(99)
			op := cv.CheckReplicas(tc.r, seqAlloc(&next))
			got := ""
			if op != nil {
				got = fmt.Sprint(op.Steps)
				if op.ConfVer != 3 || op.RangeID != 7 {
					t.Errorf("operator %v: wrong range or conf_ver", op)
				}
			}
			if got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestBalance(t *testing.T) {
	a, b, c := rid(1, 1), rid(2, 1), rid(3, 1)
	cv := &ClusterView{Stores: stores(4), ReplicationFactor: 3}
	cv.Stores[1].Ranges, cv.Stores[2].Ranges, cv.Stores[3].Ranges, cv.Stores[4].Ranges = 2, 2, 2, 0
	cv.Stores[1].Leaders = 2
	cv.Ranges = []*RangeView{
		{Desc: desc(7, 3, []multiraft.ReplicaID{a, b, c}), Leader: a},
		{Desc: desc(8, 3, []multiraft.ReplicaID{rid(1, 2), rid(2, 2), rid(3, 2)}), Leader: rid(1, 2)},
	}
	next := uint32(99)
	op := cv.BalanceReplicas(seqAlloc(&next))
	if op == nil || fmt.Sprint(op.Steps) != "[add-learner 4/100 promote 4/100 transfer-leader 4/100 remove 1/1]" {
		t.Fatalf("balance replicas: %v", op)
	}
	op = cv.BalanceLeaders()
	if op == nil || len(op.Steps) != 1 || op.Steps[0].Kind != StepTransferLeader || op.Steps[0].Replica.Node() == 1 {
		t.Fatalf("balance leaders: %v", op)
	}
	cv.Stores[4].Ranges = 1
	cv.Stores[2].Leaders, cv.Stores[3].Leaders = 1, 1
	if op := cv.BalanceReplicas(seqAlloc(&next)); op != nil {
		t.Fatalf("within one of each other: %v", op)
	}
	if op := cv.BalanceLeaders(); op != nil {
		t.Fatalf("leaders within one: %v", op)
	}
}

// sim is a simulated cluster in which operators execute step by step, as
// range leaders would, with the checks a leader makes before each step.
type sim struct {
	t      *testing.T
	rng    *rand.Rand
	cv     *ClusterView
	ranges map[multiraft.GroupID]*RangeView
	// downFor counts the rounds a store has been dead; past downAfter it is
	// marked Down.
	downFor map[multiraft.NodeID]int
	// catchUp counts the rounds a learner still needs.
	catchUp map[multiraft.ReplicaID]int
	used    map[multiraft.ReplicaID]bool
	nextSeq uint32
	// ops are the operators in flight, with their next step; old holds
	// operators already finished or dropped, replayed later as stale
	// duplicates.
	ops   map[multiraft.GroupID]*runningOp
	old   []*Operator
	steps int
	// scheduled counts the operators scheduled so far.
	scheduled int
}

type runningOp struct {
	op   *Operator
	next int
	// confVer is the range's conf_ver the next step expects.
	confVer uint64
}

const downAfter = 3

func (s *sim) alloc(_ multiraft.GroupID, store multiraft.NodeID) multiraft.ReplicaID {
	s.nextSeq++
	r := rid(store, s.nextSeq)
	if s.used[r] {
		s.t.Fatalf("replica ID %v allocated twice", r)
	}
	s.used[r] = true
	return r
}

// refresh recomputes the view's counts from the ranges.
func (s *sim) refresh() {
	for _, st := range s.cv.Stores {
		st.Ranges, st.Leaders, st.Snapshots = 0, 0, 0
	}
	s.cv.Ranges = s.cv.Ranges[:0]
	ids := make([]multiraft.GroupID, 0, len(s.ranges))
	for id := range s.ranges {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		r := s.ranges[id]
		r.Pending = r.Pending[:0]
		for _, rep := range r.Desc.GetReplicas() {
			st := s.cv.Stores[multiraft.NodeID(rep.GetStoreId())]
			st.Ranges++
			if s.catchUp[multiraft.ReplicaID(rep.GetReplicaId())] > 0 {
				r.Pending = append(r.Pending, multiraft.ReplicaID(rep.GetReplicaId()))
				st.Snapshots++
			}
		}
		if r.Leader != 0 {
			s.cv.Stores[r.Leader.Node()].Leaders++
		}
		s.cv.Ranges = append(s.cv.Ranges, r)
	}
}

// quorumOK reports whether r has a quorum of live voters.
func (s *sim) quorumOK(r *RangeView) bool {
	voters, _ := membersOf(r.Desc)
	return len(voters) > 0 && s.cv.liveVoters(voters) >= quorum(len(voters))
}

// exec runs the next step of ro, as the range's leader would: it drops a
// stale operator, skips a step already done, waits (returns false) when
// the step cannot run yet, and refuses an unsafe removal.
func (s *sim) exec(ro *runningOp) (done bool) {
	r := s.ranges[ro.op.RangeID]
	if r.Leader == 0 || !s.cv.Stores[r.Leader.Node()].Live {
		return false // no leader to execute it
	}
	if r.Desc.GetEpoch().GetConfVer() != ro.confVer {
		return true // stale: the configuration moved under it
	}
	if ro.next >= len(ro.op.Steps) {
		return true
	}
	step := ro.op.Steps[ro.next]
	d := r.Desc
	idx := slices.IndexFunc(d.GetReplicas(), func(x *flotillapb.ReplicaDescriptor) bool {
		return multiraft.ReplicaID(x.GetReplicaId()) == step.Replica
	})
	before := s.quorumOK(r)
	change := func() {
		d.Epoch.ConfVer++
		ro.confVer++
	}
	switch step.Kind {
	case StepAddLearner:
		if idx >= 0 {
			break // done already
		}
		if !s.cv.Stores[step.Replica.Node()].usable() {
			return true // the target went away: drop the operator
		}
		d.Replicas = append(d.Replicas, &flotillapb.ReplicaDescriptor{StoreId: uint64(step.Replica.Node()), ReplicaId: uint64(step.Replica), Type: flotillapb.ReplicaType_LEARNER})
		s.catchUp[step.Replica] = 1 + s.rng.IntN(3)
		change()
	case StepPromote:
		if idx < 0 {
			return true
		}
		if step.doneIn(r) {
			break
		}
		if s.catchUp[step.Replica] > 0 || !s.cv.Stores[step.Replica.Node()].Live {
			return false // wait until it caught up
		}
		if step.Demote != 0 && step.Demote == r.Leader {
			// Raft cannot demote its leader: it hands leadership to
			// another live voter first.
			return !s.handOff(r)
		}
		if step.Demote != 0 && !s.cv.SafeToReplace(r, step.Replica, step.Demote) {
			return true // the leader refuses: drop the operator
		}
		d.Replicas[idx].Type = flotillapb.ReplicaType_VOTER
		if rep := d.Replica(step.Demote); rep != nil {
			rep.Type = flotillapb.ReplicaType_LEARNER
		}
		change()
	case StepTransferLeader:
		if idx < 0 || d.Replicas[idx].GetType() != flotillapb.ReplicaType_VOTER || !s.cv.Stores[step.Replica.Node()].Live {
			return true
		}
		r.Leader = step.Replica
	case StepRemove:
		if idx < 0 {
			break
		}
		if !s.cv.SafeToRemove(r, step.Replica) {
			return true // the leader refuses: drop the operator
		}
		if step.Replica == r.Leader {
			// The leader hands leadership to another live voter first
			// (it became leader after the operator was computed).
			return !s.handOff(r)
		}
		d.Replicas = slices.Delete(d.Replicas, idx, idx+1)
		delete(s.catchUp, step.Replica)
		change()
	}
	s.steps++
	if before && !s.quorumOK(r) {
		s.t.Fatalf("step %v of %v left range %d without a quorum of live voters: %v", step, ro.op, ro.op.RangeID, d.GetReplicas())
	}
	ro.next++
	return ro.next >= len(ro.op.Steps)
}

// handOff moves r's leadership to another live voter, if there is one.
func (s *sim) handOff(r *RangeView) bool {
	voters, _ := membersOf(r.Desc)
	for _, v := range voters {
		if id := multiraft.ReplicaID(v.GetReplicaId()); id != r.Leader && s.cv.Stores[id.Node()].Live {
			r.Leader = id
			return true
		}
	}
	return false
}

// round advances the simulation: learners catch up, leaders move off dead
// stores, the checkers schedule, operators (and stale replays) execute.
func (s *sim) round(schedule bool) {
	for id, st := range s.cv.Stores {
		if st.Live {
			s.downFor[id] = 0
			st.Down = false
		} else if s.downFor[id]++; s.downFor[id] > downAfter {
			st.Down = true
		}
	}
	for rep, n := range s.catchUp {
		if n > 0 && s.cv.Stores[rep.Node()].Live {
			s.catchUp[rep] = n - 1
		}
	}
	for _, r := range s.ranges {
		if r.Leader != 0 && s.cv.Stores[r.Leader.Node()].Live {
			continue
		}
		// An election among the live voters, if they have a quorum.
		r.Leader = 0
		if s.quorumOK(r) {
			voters, _ := membersOf(r.Desc)
			for _, v := range voters {
				if s.cv.Stores[multiraft.NodeID(v.GetStoreId())].Live {
					r.Leader = multiraft.ReplicaID(v.GetReplicaId())
					break
				}
			}
		}
	}
	s.refresh()
	if schedule {
		for _, r := range s.cv.Ranges {
			id := multiraft.GroupID(r.Desc.GetRangeId())
			if s.ops[id] != nil {
				continue
			}
			if op := s.cv.CheckReplicas(r, s.alloc); op != nil {
				s.ops[id] = &runningOp{op: op, confVer: op.ConfVer}
				s.scheduled++
			}
		}
		s.refresh()
		if len(s.ops) < 4 {
			for _, op := range []*Operator{s.cv.BalanceReplicas(s.alloc), s.cv.BalanceLeaders()} {
				if op != nil && s.ops[op.RangeID] == nil {
					s.ops[op.RangeID] = &runningOp{op: op, confVer: op.ConfVer}
					s.scheduled++
				}
			}
		}
	}
	// Execute in random order; replay stale operators now and then.
	ids := make([]multiraft.GroupID, 0, len(s.ops))
	for id := range s.ops {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	s.rng.Shuffle(len(ids), func(i, j int) { ids[i], ids[j] = ids[j], ids[i] })
	for _, id := range ids {
		ro := s.ops[id]
		for range 1 + s.rng.IntN(2) {
			if s.exec(ro) {
				s.old = append(s.old, ro.op)
				delete(s.ops, id)
				break
			}
		}
		s.refresh()
	}
	if len(s.old) > 0 && s.rng.IntN(3) == 0 {
		stale := s.old[s.rng.IntN(len(s.old))]
		if s.ops[stale.RangeID] == nil {
			// A duplicated or reordered instruction: it carries the
			// conf_ver it was computed against.
			s.exec(&runningOp{op: stale, confVer: stale.ConfVer, next: s.rng.IntN(len(stale.Steps))})
			s.refresh()
		}
	}
}

// TestOperatorSafetyRandomized schedules and executes operators while
// stores die, come back and are decommissioned, and stale operators are
// replayed: no step may leave a range without a quorum of live voters, and
// once the faults stop every range ends with ReplicationFactor voters on
// up stores, and replica and leader counts balanced.
func TestOperatorSafetyRandomized(t *testing.T) {
	for run := range 4 {
		t.Run(fmt.Sprint(run), func(t *testing.T) {
			seed := newSeed(t)
			rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b9))
			nStores := 5 + rng.IntN(3)
			s := &sim{t: t, rng: rng, ranges: map[multiraft.GroupID]*RangeView{}, downFor: map[multiraft.NodeID]int{},
				catchUp: map[multiraft.ReplicaID]int{}, used: map[multiraft.ReplicaID]bool{}, ops: map[multiraft.GroupID]*runningOp{},
				cv: &ClusterView{Stores: stores(nStores), ReplicationFactor: 3, MaxSnapshotsPerStore: 2}}
			for i := range 10 + rng.IntN(20) {
				id := multiraft.GroupID(100 + i)
				var voters []multiraft.ReplicaID
				for _, st := range rng.Perm(nStores)[:3] {
					voters = append(voters, s.alloc(id, multiraft.NodeID(st+1)))
				}
				s.ranges[id] = &RangeView{Desc: desc(uint64(id), 1, voters), Leader: voters[0]}
			}
			decommissioned := 0
			for range 300 {
				switch x := rng.IntN(20); {
				case x == 0: // a store dies (keeping enough alive for quorums most of the time)
					st := s.cv.Stores[multiraft.NodeID(1+rng.IntN(nStores))]
					st.Live = false
				case x < 3: // a store comes back
					st := s.cv.Stores[multiraft.NodeID(1+rng.IntN(nStores))]
					st.Live = true
				case x == 3 && decommissioned < nStores-4:
					st := s.cv.Stores[multiraft.NodeID(1+rng.IntN(nStores))]
					if st.State == StoreUp {
						st.State = StoreDecommissioning
						decommissioned++
					}
				}
				s.round(true)
			}
			// Heal: every store lives; run until nothing is scheduled.
			for _, st := range s.cv.Stores {
				st.Live = true
			}
			quiet := 0
			for i := 0; i < 2000 && quiet < 5; i++ {
				before := s.scheduled
				s.round(true)
				if len(s.ops) == 0 && s.scheduled == before {
					quiet++
				} else {
					quiet = 0
				}
			}
			if quiet < 5 {
				for _, ro := range s.ops {
					t.Errorf("still running: %v, next step %d, range %v leader %v pending %v", ro.op, ro.next,
						s.ranges[ro.op.RangeID].Desc.GetReplicas(), s.ranges[ro.op.RangeID].Leader, s.ranges[ro.op.RangeID].Pending)
				}
				t.Fatal("operators still running after healing")
			}
			s.refresh()
			for _, r := range s.cv.Ranges {
				voters, learners := membersOf(r.Desc)
				if len(voters) != 3 || len(learners) != 0 {
					t.Errorf("range %d ends with %d voters and %d learners", r.Desc.GetRangeId(), len(voters), len(learners))
				}
				for _, v := range voters {
					if st := s.cv.Stores[multiraft.NodeID(v.GetStoreId())]; st.State != StoreUp {
						t.Errorf("range %d keeps a voter on %s store %d", r.Desc.GetRangeId(), st.State, st.ID)
					}
				}
			}
			minR, maxR, minL, maxL := 1<<30, 0, 1<<30, 0
			var leaders []int
			for _, st := range s.cv.Stores {
				if st.State != StoreUp {
					if st.Ranges != 0 {
						t.Errorf("%s store %d still holds %d replicas", st.State, st.ID, st.Ranges)
					}
					continue
				}
				minR, maxR = min(minR, st.Ranges), max(maxR, st.Ranges)
				minL, maxL = min(minL, st.Leaders), max(maxL, st.Leaders)
				leaders = append(leaders, st.Leaders)
			}
			if maxR-minR > 1 || !withinOneOfMean(leaders) {
				t.Errorf("unbalanced after healing: replicas %d..%d, leaders %d..%d", minR, maxR, minL, maxL)
			}
			t.Logf("%d stores, %d ranges, %d steps executed", nStores, len(s.ranges), s.steps)
		})
	}
}

// withinOneOfMean reports whether every count is within one of their mean:
// the balance the placement driver promises for leaders. (The leader
// balancer moves a leadership only to a store holding a voter of the
// range, so it can stop at a spread of two.)
func withinOneOfMean(counts []int) bool {
	sum := 0
	for _, c := range counts {
		sum += c
	}
	for _, c := range counts {
		if d := float64(c) - float64(sum)/float64(len(counts)); d > 1 || d < -1 {
			return false
		}
	}
	return true
}

// TestBalanceSize: with replica counts balanced, bytes are not: the largest
// range that fits half the gap moves from the fullest store to the
// emptiest; nothing moves below the thresholds or towards a store with more
// replicas.
func TestBalanceSize(t *testing.T) {
	const mib = 1 << 20
	type rng struct {
		stores []multiraft.NodeID
		size   int64
	}
	build := func(rs []rng) *ClusterView {
		cv := &ClusterView{Stores: stores(4), ReplicationFactor: 3}
		for i, r := range rs {
			var voters []multiraft.ReplicaID
			for _, s := range r.stores {
				voters = append(voters, rid(s, uint32(i+1)))
				cv.Stores[s].Ranges++
			}
			cv.Ranges = append(cv.Ranges, &RangeView{Desc: desc(uint64(10+i), 1, voters), Leader: voters[0], Size: r.size})
		}
		return cv
	}
	big := []multiraft.NodeID{1, 2, 3}
	skewed := []rng{
		{big, 6 * mib}, {big, 5 * mib}, {big, 6 * mib}, // 10, 11, 12
		{[]multiraft.NodeID{1, 2, 4}, mib}, {[]multiraft.NodeID{1, 3, 4}, mib},
		{[]multiraft.NodeID{2, 3, 4}, mib}, {[]multiraft.NodeID{2, 3, 4}, mib},
	}
	// Bytes: store 1 19 MiB, 2 and 3 20 MiB, 4 4 MiB; the gap is 16 MiB.
	var next uint32 = 100
	op := build(skewed).BalanceSize(seqAlloc(&next))
	if op == nil || len(op.Steps) == 0 {
		t.Fatal("no move for a size imbalance")
	}
	if s := op.Steps[0]; s.Kind != StepAddLearner || s.Replica.Node() != 4 || (op.RangeID != 10 && op.RangeID != 12) {
		t.Fatalf("want a 6 MiB range moved to store 4, got %v", op)
	}
	// Balanced enough: nothing.
	even := []rng{{big, mib}, {[]multiraft.NodeID{1, 2, 4}, mib}, {[]multiraft.NodeID{1, 3, 4}, mib}, {[]multiraft.NodeID{2, 3, 4}, mib}}
	if op := build(even).BalanceSize(seqAlloc(&next)); op != nil {
		t.Fatalf("move between even stores: %v", op)
	}
	// The emptiest store holds more replicas: nothing.
	cv := build(skewed)
	cv.Stores[4].Ranges = 10
	if op := cv.BalanceSize(seqAlloc(&next)); op != nil {
		t.Fatalf("move towards a store with more replicas: %v", op)
	}
}

// TestRangesWithoutQuorum: removing a dead store needs every group with a
// voter on it to keep a majority of its voters on live stores.
func TestRangesWithoutQuorum(t *testing.T) {
	r := func(node uint64, seq uint32) multiraft.ReplicaID {
		return multiraft.MakeReplicaID(multiraft.NodeID(node), seq)
	}
	descs := []*flotillapb.RangeDescriptor{
		desc(2, 1, []multiraft.ReplicaID{r(1, 1), r(2, 1), r(3, 1)}),                   // 2 of 3 others live: fine
		desc(3, 1, []multiraft.ReplicaID{r(1, 2), r(3, 2), r(4, 1)}),                   // store 4 dead too: 1 of 3 live
		desc(4, 1, []multiraft.ReplicaID{r(1, 3), r(4, 3)}, r(3, 3)),                   // only a learner on store 3: not counted, though 1 of 2 voters is live
		desc(5, 1, []multiraft.ReplicaID{r(3, 4), r(4, 4), r(5, 4), r(1, 4), r(2, 4)}), // 3 of 5 others live: fine
		desc(6, 1, []multiraft.ReplicaID{r(3, 5), r(4, 5), r(5, 5), r(6, 5), r(1, 5)}), // 2 of 5 others live
		desc(7, 1, []multiraft.ReplicaID{r(3, 6)}),                                     // its only voter
		nil, // a cluster without a placement group descriptor
	}
	live := func(s uint64) bool { return s == 1 || s == 2 || s == 5 }
	if got, want := RangesWithoutQuorum(descs, 3, live), []uint64{3, 6, 7}; !slices.Equal(got, want) {
		t.Errorf("RangesWithoutQuorum(store 3) = %v; want %v", got, want)
	}
	if got := RangesWithoutQuorum(descs, 9, live); len(got) != 0 {
		t.Errorf("RangesWithoutQuorum of a store without voters = %v; want none", got)
	}
}
