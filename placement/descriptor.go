// Copyright 2026 The Flotilla Authors. All rights reserved.

package placement

import (
	"fmt"

	"github.com/flotilladb/flotilla/multiraft"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"github.com/flotilladb/flotilla/rpc/flotillapb/confchange"
	pb "go.etcd.io/raft/v3/raftpb"
)

// LearnerCatchUpLag is how far behind the leader's commit index a learner
// may be and still be promoted to voter.
const LearnerCatchUpLag = 64

// LeaderStatus is what a range's leader knows when it runs a step.
type LeaderStatus struct {
	// Self is the leader's replica ID.
	Self multiraft.ReplicaID
	// Commit is its commit index; LearnerMatch each learner's matched
	// index.
	Commit       uint64
	LearnerMatch map[multiraft.ReplicaID]uint64
	// Joint: the range is in a joint configuration, which it leaves on
	// its own before any other change.
	Joint bool
	// Active reports whether the leader heard from a node recently; nil
	// counts every node active.
	Active func(multiraft.NodeID) bool
}

// activeQuorum reports whether voters, after removing without and adding
// with (either may be 0), have a quorum of replicas on active nodes.
func (ls LeaderStatus) activeQuorum(desc *flotillapb.RangeDescriptor, without, with multiraft.ReplicaID) bool {
	n, active := 0, 0
	count := func(id multiraft.ReplicaID) {
		n++
		if ls.Active == nil || id == ls.Self || ls.Active(id.Node()) {
			active++
		}
	}
	for _, r := range desc.GetReplicas() {
		if id := multiraft.ReplicaID(r.GetReplicaId()); r.GetType() == flotillapb.ReplicaType_VOTER && id != without && id != with {
			count(id)
		}
	}
	if with != 0 {
		count(with)
	}
	return n > 0 && active >= n/2+1
}

// StepAction is what a leader does for a step: propose ConfChange, or
// transfer its leadership to TransferTo; neither means nothing to do now.
type StepAction struct {
	ConfChange *pb.ConfChangeV2
	TransferTo multiraft.ReplicaID
}

// PlanStep decides what a range's leader does for an operator step, with
// the checks a leader makes whatever the driver believed: the descriptor
// must be at the step's conf_ver (the change carries it, so the range
// refuses it at any other too); a step already done is skipped; a learner
// is promoted only once it has caught up; the leader never removes or
// demotes itself, and makes no change after which the voters on nodes it
// heard from recently would lack a quorum (the driver's view of liveness
// lags the leader's). An error says the step is refused.
func PlanStep(desc *flotillapb.RangeDescriptor, ls LeaderStatus, step *flotillapb.OperatorStep) (StepAction, error) {
	if cv := desc.GetEpoch().GetConfVer(); cv != step.GetConfVer() {
		return StepAction{}, fmt.Errorf("stale: the range is at conf_ver %d, the step expects %d", cv, step.GetConfVer())
	}
	if ls.Joint {
		return StepAction{}, nil
	}
	id := multiraft.ReplicaID(step.GetReplicaId())
	if !id.Valid() {
		return StepAction{}, fmt.Errorf("invalid replica ID %d", step.GetReplicaId())
	}
	rep := desc.Replica(id)
	var cc *pb.ConfChangeV2
	switch step.GetKind() {
	case flotillapb.OperatorStepKind_ADD_LEARNER:
		if rep != nil {
			return StepAction{}, nil
		}
		cc = multiraft.AddLearner(id)
	case flotillapb.OperatorStepKind_PROMOTE:
		if rep == nil {
			return StepAction{}, fmt.Errorf("no replica %v to promote", id)
		}
		demote := multiraft.ReplicaID(step.GetDemoteReplicaId())
		if demote != 0 && demote == ls.Self {
			return StepAction{}, fmt.Errorf("the leader does not demote itself")
		}
		if rep.GetType() == flotillapb.ReplicaType_LEARNER {
			if match := ls.LearnerMatch[id]; match == 0 || match+LearnerCatchUpLag < ls.Commit {
				return StepAction{}, nil // still catching up
			}
		}
		cc = multiraft.AddVoter(id)
		if d := desc.Replica(demote); demote != 0 && d != nil && d.GetType() == flotillapb.ReplicaType_VOTER {
			cc.Changes = append(cc.Changes, multiraft.AddLearner(demote).Changes...)
		} else if rep.GetType() == flotillapb.ReplicaType_VOTER {
			return StepAction{}, nil
		} else {
			demote = 0
		}
		if !ls.activeQuorum(desc, demote, id) {
			return StepAction{}, fmt.Errorf("promoting %v would leave too few voters on nodes heard from recently", id)
		}
	case flotillapb.OperatorStepKind_REMOVE:
		if rep == nil {
			return StepAction{}, nil
		}
		if id == ls.Self {
			return StepAction{}, fmt.Errorf("the leader does not remove itself")
		}
		if rep.GetType() == flotillapb.ReplicaType_VOTER && !ls.activeQuorum(desc, id, 0) {
			return StepAction{}, fmt.Errorf("removing %v would leave too few voters on nodes heard from recently", id)
		}
		cc = multiraft.RemoveReplica(id)
	case flotillapb.OperatorStepKind_TRANSFER_LEADER:
		if rep == nil || rep.GetType() != flotillapb.ReplicaType_VOTER {
			return StepAction{}, fmt.Errorf("replica %v is not a voter", id)
		}
		if id == ls.Self {
			return StepAction{}, nil
		}
		return StepAction{TransferTo: id}, nil
	default:
		return StepAction{}, fmt.Errorf("unknown step kind %v", step.GetKind())
	}
	return StepAction{ConfChange: confchange.WithConfVer(cc, step.GetConfVer())}, nil
}
