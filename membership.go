// Copyright 2026 The Flotilla Authors. All rights reserved.

package flotilla

import (
	"context"
	"time"

	"github.com/flotilladb/flotilla/placement"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"google.golang.org/grpc"
)

// maintenanceInterval is how often a node refreshes its node directory and
// checks that the cluster has its current addresses.
const maintenanceInterval = 2 * time.Second

// maintenanceLoop keeps the node's membership current (maintainMembership).
// Replicas are placed by the placement driver (heartbeat.go).
func (n *Node) maintenanceLoop() {
	defer n.wg.Done()
	t := time.NewTicker(maintenanceInterval)
	defer t.Stop()
	for {
		select {
		case <-n.stopCtx.Done():
			return
		case <-t.C:
		}
		if _, _, ok := n.running(); ok {
			n.maintainMembership()
		}
	}
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
