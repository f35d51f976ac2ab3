// Copyright 2026 The Flotilla Authors. All rights reserved.

package server

import (
	"context"
	"slices"
	"time"

	"github.com/flotilladb/flotilla/multiraft"
	"github.com/flotilladb/flotilla/placement"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"google.golang.org/grpc"
)

// maintenanceInterval is how often a node refreshes its node directory and
// checks that the cluster has its current addresses. What it repairs is
// rare (a restart at a new address, a node that missed others joining, a
// replica removed while its node was away) and none of it is urgent, so a
// round is cheap and mostly does nothing; 2 s bounds how long a node that
// came back at a new address stays unknown to its peers.
const maintenanceInterval = 2 * time.Second

// maintenanceLoop keeps the node's membership current (maintainMembership)
// and destroys the replicas removed while the node was away
// (collectRemovedReplicas). Replicas are placed by the placement driver
// (heartbeat.go). One goroutine, the stopper's, runs it.
func (n *Node) maintenanceLoop() {
	t := time.NewTicker(maintenanceInterval)
	defer t.Stop()
	// leaderless holds, for each of this node's groups with no known
	// leader, when it was first seen so; it is the loop's own.
	leaderless := map[multiraft.GroupID]time.Time{}
	for round := 1; ; round++ {
		select {
		case <-n.stopCtx.Done():
			return
		case <-t.C:
		}
		if _, _, ok := n.running(); ok {
			n.maintainMembership()
			// A removed learner never campaigns, so it keeps its last
			// leader: every so often (every 15th round, 30 s) every
			// follower is checked, not only the leaderless; that costs
			// one ListRanges call to the placement group's leader.
			n.collectRemovedReplicas(leaderless, round%15 == 0)
		}
	}
}

// collectRemovedReplicas destroys the replicas that were removed from
// their groups while this node was down or cut off: no change of the
// configuration reaches such a replica, so it would campaign forever
// without a leader (a zombie). A replica without a leader for long enough
// is checked against the placement driver's descriptor of its group (and,
// with checkAll, every follower); if that is newer and lists it no more,
// it is destroyed.
//
// Safety rests on that check alone: the driver's descriptor is newer by
// epoch than the replica's own and does not list the replica, so its group
// removed it. The grace (10 s, or two liveness windows if longer) only
// keeps ordinary elections and short partitions from costing a ListRanges
// call.
func (n *Node) collectRemovedReplicas(leaderless map[multiraft.GroupID]time.Time, checkAll bool) {
	host, meta, ok := n.running()
	if !ok {
		return
	}
	now := time.Now()
	grace := max(10*time.Second, 2*n.cfg.LivenessWindow)
	var suspects []multiraft.GroupID
	groups := host.Groups()
	for _, g := range groups {
		st, ok := host.Status(g)
		if ok && checkAll && st.Leader != st.Replica {
			suspects = append(suspects, g)
		}
		if !ok || st.Leader != 0 {
			delete(leaderless, g)
			continue
		}
		since, seen := leaderless[g]
		if !seen {
			leaderless[g] = now
		} else if now.Sub(since) >= grace && !slices.Contains(suspects, g) {
			suspects = append(suspects, g)
		}
	}
	for g := range leaderless {
		if !slices.Contains(groups, g) {
			delete(leaderless, g)
		}
	}
	if len(suspects) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(n.stopCtx, 5*time.Second)
	defer cancel()
	resp, err := (*placementService)(n).ListRanges(ctx, &flotillapb.ListRangesRequest{})
	if err != nil {
		n.log.Debug("checking leaderless replicas", "err", err)
		return
	}
	current := map[multiraft.GroupID]*flotillapb.RangeDescriptor{placement.GroupID: resp.GetPlacementGroup()}
	for _, r := range resp.GetRanges() {
		current[multiraft.GroupID(r.GetDescriptor_().GetRangeId())] = r.GetDescriptor_()
	}
	for _, g := range suspects {
		st, ok := host.Status(g)
		cur := current[g]
		if !ok || cur == nil || cur.Replica(st.Replica) != nil {
			continue
		}
		// Only an initialized replica is judged: an uninitialized one may
		// be a learner still waiting for its snapshot, listed in no
		// descriptor the driver has yet (and it cannot campaign anyway).
		if local := n.groupDescriptor(g, meta); local == nil || !cur.GetEpoch().Newer(local.GetEpoch()) {
			continue
		}
		if err := host.DestroyRemovedReplica(g, st.Replica); err != nil {
			n.log.Debug("destroying a removed replica", "group", g, "err", err)
			continue
		}
		n.log.Info("destroying a replica its group removed while this node was away", "group", g, "replica", st.Replica,
			"conf_ver", cur.GetEpoch().GetConfVer())
		delete(leaderless, g)
	}
}

// maintainMembership keeps the node's view of the cluster and the
// cluster's view of the node current: a node without a replica of the
// placement group, or whose replica knows no leader, refreshes its node
// directory from a peer, and a node
// whose address or labels changed (a restart on another port, or with
// other --labels) re-announces itself.
// The re-announcement is a Join with the store's join token, which the
// placement group applies as an address (and label) change of the same
// node ID.
func (n *Node) maintainMembership() {
	host, meta, ok := n.running()
	if !ok {
		return
	}
	// A node whose placement replica knows no leader may be a leftover
	// of a node that was down while others joined: it learns them too.
	if st, has := host.Status(placement.GroupID); !has || meta == nil || st.Leader == 0 {
		n.refreshDirectory()
	}
	self := n.NodeID()
	for _, d := range n.directory() {
		if d.GetNodeId() != self || (d.GetAddress() == n.addr && d.GetHttpAddress() == n.httpAddr && flotillapb.EqualLabels(d.GetLabels(), n.labels)) {
			continue
		}
		// The same announcement again within reannounceInterval means it
		// did not take (a placement group replica of an older build drops
		// labels): say so once, and do not rewrite the group's state every
		// round.
		key := n.addr + " " + n.httpAddr + " " + flotillapb.FormatLabels(n.labels)
		if a := &n.announced; a.key == key && time.Since(a.at) < reannounceInterval {
			// (Give the group's replicas some seconds to apply it first.)
			if !a.warned && time.Since(a.at) > 10*time.Second {
				a.warned = true
				n.log.Warn("the cluster has not taken this node's address or labels; announcing again every minute",
					"addr", n.addr, "labels", flotillapb.FormatLabels(n.labels), "cluster_has", d)
			}
			continue
		}
		ctx, cancel := context.WithTimeout(n.stopCtx, 5*time.Second)
		resp, err := (*nodeService)(n).Join(ctx, &flotillapb.JoinRequest{Address: n.addr, HttpAddress: n.httpAddr, JoinToken: n.joinToken, Labels: n.labels})
		cancel()
		if err != nil {
			n.log.Debug("announcing this node's new address or labels", "err", err)
		} else {
			n.announced.key, n.announced.at, n.announced.warned = key, time.Now(), false
			n.learnNodes(resp.GetNodes())
		}
	}
}

// reannounceInterval is the least time between two identical
// announcements of a node's address and labels (maintainMembership).
const reannounceInterval = time.Minute

// refreshDirectory asks a known node (or a join address) for the cluster's
// nodes, and learns them from the first that answers as a member of this
// node's cluster. Each peer gets 1 s, WaitForReady so that a connection in
// its reconnection backoff is retried; a round asks the peers in turn, so
// a round with every peer down costs 1 s per peer.
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
