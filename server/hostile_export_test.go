// Copyright 2026 The Flotilla Authors. All rights reserved.

package server

import (
	"fmt"

	"github.com/flotilladb/flotilla/multiraft"
)

// Hooks for the hostile-input tests (hostile_test.go). Compiled into test
// binaries only.

// PeerAddressForTest returns the address this node's raft transport has
// for node.
func (n *Node) PeerAddressForTest(node uint64) (string, bool) {
	return n.transport.Address(multiraft.NodeID(node))
}

// RaftDroppedForTest returns how many raft messages this node dropped for
// reason (flotilla_raft_messages_dropped_total).
func (n *Node) RaftDroppedForTest(reason string) uint64 {
	return n.metrics.GetOrCreateCounter(fmt.Sprintf(`flotilla_raft_messages_dropped_total{reason=%q}`, reason)).Get()
}

// UninitializedReplicasForTest returns how many uninitialized replicas
// this node's raft host holds (-1 if it runs none).
func (n *Node) UninitializedReplicasForTest() int {
	host, _, ok := n.running()
	if !ok {
		return -1
	}
	return host.UninitializedReplicas()
}
