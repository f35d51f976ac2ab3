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
// Not built yet (the placement-driver issue): store and range heartbeats,
// liveness, the newest descriptor of every range, range ID allocation, and
// the checkers and schedulers whose operators add, move and remove replicas,
// balance leaders and split ranges.
package placement
