// Copyright 2026 The Flotilla Authors. All rights reserved.

package flotilla

import (
	"context"
	"slices"
	"time"

	"github.com/flotilladb/flotilla/multiraft"
	"github.com/flotilladb/flotilla/placement"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
)

const (
	// learnerCatchUpLag is how far behind the leader's commit index a
	// learner may be and still be promoted to voter.
	learnerCatchUpLag = 64
	// maintenanceInterval is how often a node refreshes its node directory
	// and checks that the cluster has its current addresses.
	maintenanceInterval = 2 * time.Second
)

// replicator up-replicates the groups this node leads onto the first nodes
// of the cluster (by node ID) until each has ReplicationFactor replicas: add
// a learner on a node that answers, let it catch up (by snapshot), promote
// it. It is the stand-in for the placement driver's replica checker (the
// placement-driver issue), and makes "the first range is replicated on the
// first three nodes that join" hold. Its state is owned by replicateLoop's
// goroutine.
type replicator struct {
	n         *Node
	lastMaint time.Time
}

func (n *Node) replicateLoop() {
	defer n.wg.Done()
	r := &replicator{n: n}
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
			r.replicateGroup(host, g)
		}
		if time.Since(r.lastMaint) >= maintenanceInterval {
			r.lastMaint = time.Now()
			n.maintainMembership()
		}
	}
}

// replicateGroup makes at most one membership change to group g, if this
// node leads it.
func (r *replicator) replicateGroup(host *multiraft.Host, g multiraft.GroupID) {
	n := r.n
	st, ok := host.Status(g)
	if !ok || st.Leader != st.Replica || st.Replica == 0 || st.Joint {
		return
	}
	for _, l := range st.Learners {
		// A new learner starts at match 0: it has acknowledged nothing, and
		// promoting it would count a possibly dead node in the quorum. A
		// learner that never catches up (its node died after it was
		// added) stays a learner: it costs no quorum, and replacing it
		// needs fresh replica IDs, which the placement driver will
		// allocate.
		if match := st.LearnerMatch[l]; match > 0 && match+learnerCatchUpLag >= st.Commit {
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
		if node == 0 || node > multiraft.MaxNodeID || has(node) || !n.nodeAnswers(d) {
			continue
		}
		// Replica IDs are never reused in a group; until replicas are
		// removed and re-added (the placement driver), sequence 1 is unique.
		id := multiraft.MakeReplicaID(node, 1)
		n.proposeChange(host, g, multiraft.AddLearner(id), "add learner", id)
		return
	}
}

// nodeAnswers reports whether node d is up and a running member of this
// cluster, so that a replica placed on it can catch up.
func (n *Node) nodeAnswers(d *flotillapb.NodeDescriptor) bool {
	if d.GetNodeId() == n.NodeID() {
		return true
	}
	conn, err := n.pool.Conn(d.GetAddress())
	if err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(n.stopCtx, time.Second)
	defer cancel()
	st, err := flotillapb.NewNodeClient(conn).Status(ctx, &flotillapb.StatusRequest{}, grpc.WaitForReady(true))
	return err == nil && st.GetNodeId() == d.GetNodeId() && st.GetClusterId() == n.ClusterID() && st.GetState() == stateRunning.String()
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

// maintainMembership keeps the node's view of the cluster and the
// cluster's view of the node current: a node without a replica of the
// placement group refreshes its node directory from a peer, and a node
// whose address changed (a restart on another port) re-announces itself.
func (n *Node) maintainMembership() {
	host, meta, ok := n.running()
	if !ok {
		return
	}
	if _, has := host.Status(placement.GroupID); !has || meta == nil {
		n.refreshDirectory()
	}
	self := n.NodeID()
	for _, d := range n.directory() {
		if d.GetNodeId() != self || (d.GetAddress() == n.addr && d.GetHttpAddress() == n.httpAddr) {
			continue
		}
		ctx, cancel := context.WithTimeout(n.stopCtx, 5*time.Second)
		resp, err := (*nodeService)(n).Join(ctx, &flotillapb.JoinRequest{Address: n.addr, HttpAddress: n.httpAddr, JoinToken: n.joinToken})
		cancel()
		if err != nil {
			n.log.Debug("announcing this node's new address", "err", err)
		} else {
			n.learnNodes(resp.GetNodes())
		}
	}
}

// refreshDirectory asks a known node (or a join address) for the cluster's
// nodes.
func (n *Node) refreshDirectory() {
	var addrs []string
	for _, d := range n.directory() {
		if d.GetNodeId() != n.NodeID() {
			addrs = append(addrs, d.GetAddress())
		}
	}
	addrs = append(addrs, n.cfg.Join...)
	for _, addr := range addrs {
		if addr == n.addr {
			continue
		}
		conn, err := n.pool.Conn(addr)
		if err != nil {
			continue
		}
		ctx, cancel := context.WithTimeout(n.stopCtx, time.Second)
		st, err := flotillapb.NewNodeClient(conn).Status(ctx, &flotillapb.StatusRequest{}, grpc.WaitForReady(true))
		cancel()
		if err == nil && st.GetClusterId() == n.ClusterID() && len(st.GetNodes()) > 0 {
			n.learnNodes(st.GetNodes())
			return
		}
	}
}
