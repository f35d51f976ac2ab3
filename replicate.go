// Copyright 2026 The Flotilla Authors. All rights reserved.

package flotilla

import (
	"context"
	"slices"
	"time"

	"github.com/flotilladb/flotilla/multiraft"
	pb "go.etcd.io/raft/v3/raftpb"
)

// learnerCatchUpLag is how far behind the leader's commit index a learner
// may be and still be promoted to voter.
const learnerCatchUpLag = 64

// replicateLoop up-replicates the groups this node leads onto the first
// nodes of the cluster (by node ID) until each has ReplicationFactor
// replicas: add a learner, let it catch up (by snapshot), promote it. It is
// the stand-in for the placement driver's replica checker (the
// placement-driver issue), and makes "the first range is replicated on the
// first three nodes that join" hold.
func (n *Node) replicateLoop() {
	defer n.wg.Done()
	interval := max(2*n.cfg.TickInterval, 50*time.Millisecond)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-n.stopCtx.Done():
			return
		case <-t.C:
		}
		host, _, ok := n.running()
		if !ok {
			continue
		}
		for _, g := range host.Groups() {
			n.replicateGroup(host, g)
		}
	}
}

// replicateGroup makes at most one membership change to group g, if this
// node leads it.
func (n *Node) replicateGroup(host *multiraft.Host, g multiraft.GroupID) {
	st, ok := host.Status(g)
	if !ok || st.Leader != st.Replica || st.Replica == 0 || st.Joint {
		return
	}
	for _, l := range st.Learners {
		if match, ok := st.LearnerMatch[l]; ok && match+learnerCatchUpLag >= st.Commit {
			n.proposeChange(host, g, multiraft.AddVoter(l), "promote learner", l)
			return
		}
	}
	if len(st.Voters)+len(st.Learners) >= n.cfg.ReplicationFactor {
		return
	}
	has := func(node multiraft.NodeID) bool {
		in := func(r multiraft.ReplicaID) bool { return r.Node() == node }
		return slices.ContainsFunc(st.Voters, in) || slices.ContainsFunc(st.Learners, in)
	}
	for _, d := range n.directory() {
		node := multiraft.NodeID(d.GetNodeId())
		if node == 0 || node > multiraft.MaxNodeID || has(node) {
			continue
		}
		n.proposeChange(host, g, multiraft.AddLearner(multiraft.MakeReplicaID(node, 1)), "add learner", multiraft.MakeReplicaID(node, 1))
		return
	}
}

func (n *Node) proposeChange(host *multiraft.Host, g multiraft.GroupID, cc *pb.ConfChangeV2, what string, r multiraft.ReplicaID) {
	ctx, cancel := context.WithTimeout(n.stopCtx, 5*time.Second)
	defer cancel()
	_, err := host.ProposeConfChange(g, cc).Wait(ctx)
	if err != nil {
		n.log.Debug("membership change failed", "group", g, "change", what, "replica", r, "err", err)
		return
	}
	n.log.Info("membership changed", "group", g, "change", what, "replica", r)
}
