// Copyright 2026 The Flotilla Authors. All rights reserved.

package server

import (
	"context"
	"fmt"

	"github.com/flotilladb/flotilla/engine"
	"github.com/flotilladb/flotilla/multiraft"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
)

// Hooks into a node's raft groups for the external tests, which act on
// the groups directly, under the placement driver. Compiled into test
// binaries only.

// replicaOn returns the replica ID of range rangeID on node store, from
// this node's descriptor of the range (0 if it lists none there).
func (n *Node) replicaOn(rangeID, store uint64) (multiraft.ReplicaID, error) {
	r, ok := n.store.Replica(multiraft.GroupID(rangeID))
	if !ok {
		return 0, fmt.Errorf("node %d has no replica of range %d", n.NodeID(), rangeID)
	}
	for _, rd := range r.Descriptor().GetReplicas() {
		if rd.GetStoreId() == store {
			return multiraft.ReplicaID(rd.GetReplicaId()), nil
		}
	}
	return 0, nil
}

// TransferLeadershipForTest asks this node, which should lead range
// rangeID, to hand the leadership to the range's replica on node to. It
// returns before the transfer is done (or ignored, on a follower).
func (n *Node) TransferLeadershipForTest(rangeID, to uint64) error {
	host, _, ok := n.running()
	if !ok {
		return n.notRunningError()
	}
	id, err := n.replicaOn(rangeID, to)
	if err != nil {
		return err
	}
	if id == 0 {
		return fmt.Errorf("range %d has no replica on node %d", rangeID, to)
	}
	return host.TransferLeadership(multiraft.GroupID(rangeID), id)
}

// RemoveReplicaForTest removes the replica of range rangeID on node from,
// through this node, which must lead the range. It succeeds at once if this
// node's descriptor lists no replica there.
func (n *Node) RemoveReplicaForTest(ctx context.Context, rangeID, from uint64) error {
	host, _, ok := n.running()
	if !ok {
		return n.notRunningError()
	}
	id, err := n.replicaOn(rangeID, from)
	if err != nil || id == 0 {
		return err
	}
	_, err = host.ProposeConfChange(multiraft.GroupID(rangeID), multiraft.RemoveReplica(id)).Wait(ctx)
	return err
}

// RevisionsForTest asks n's revision oracle client for count revisions.
func RevisionsForTest(ctx context.Context, n *Node, count int) (int64, error) {
	return n.oracle.Revisions(ctx, count)
}

// CounterForTest returns the value of one of n's counters by name.
func (n *Node) CounterForTest(name string) uint64 {
	return n.metrics.GetOrCreateCounter(name).Get()
}

// CompactEngine runs a manual compaction of the node's whole LSM (for
// benchmarks that measure space).
func (n *Node) CompactEngine() error { return n.eng.CompactAll() }

// CompactAt compacts every range at rev through the node's gateway.
func (n *Node) CompactAt(ctx context.Context, rev int64) error {
	_, err := n.gw.Compact(ctx, &flotillapb.CompactRequest{Revision: rev})
	return err
}

// VersionBytes returns the number of versions the node's store holds and
// their bytes (engine.MVCCComputeStats over every key).
func (n *Node) VersionBytes() (versions, bytes int64, err error) {
	st, err := engine.MVCCComputeStats(n.eng, nil, nil)
	return st.Versions, st.VersionBytes, err
}
