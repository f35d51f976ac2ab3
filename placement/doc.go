// Copyright 2026 The Flotilla Authors. All rights reserved.

// Package placement is the placement driver: its own raft group (the
// placement group) on the multiraft machinery.
//
// Today it holds the cluster's identity and membership: the cluster ID, the
// nodes with their addresses and the node ID allocator (Meta, the placement
// group's state machine). Nodes join through it, and until the full driver
// exists the node assembly up-replicates the first range and the placement
// group onto the first three nodes that join.
//
// The driver's decisions exist as pure functions over a ClusterView
// (checker.go): the replica checker (missing, extra, down, decommissioning)
// and the replica and leader balancers, which return Operators (add
// learner, promote, transfer leader, remove) and never propose a removal
// that would leave a range without a quorum of live voters. They are tested
// alone, including a randomized simulation with failing stores and stale
// operators; nothing runs them yet.
//
// Not built yet (the placement-driver issue): store and range heartbeats,
// liveness, the newest descriptor of every range, range and replica ID
// allocation, executing operators on range leaders, and splits.
package placement
