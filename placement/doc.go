// Copyright 2026 The Flotilla Authors. All rights reserved.

// Package placement is the placement driver: what decides where every
// replica lives and when a range splits, and the state it keeps in its own
// raft group (the placement group, GroupID 1) on the multiraft machinery.
// docs/PLACEMENT.md describes it for operators.
//
// It owns:
//   - Meta (meta.go), the placement group's replicated state machine: one
//     flotillapb.ClusterMeta holding the cluster ID; the member nodes with
//     their addresses, join tokens and membership state (up,
//     decommissioning, decommissioned); the newest descriptor of every
//     range by epoch (a stale UpdateRange changes nothing, and a descriptor
//     at a later version drops the ones it overlaps: the unsplit range);
//     the placement group's own descriptor; and the allocators of node
//     IDs (AddNode, idempotent per join token), range IDs and replica
//     sequence numbers (AllocIDs); the revision oracle's high-water mark
//     (SetRevisionHWM) and the cluster's compacted revision
//     (SetCompactedRevision), both only raised. WriteInitialMeta writes a
//     new cluster's.
//   - RevisionOracle (oracle.go), the revision oracle's in-memory state on
//     the placement group's leader: the next revision of the term it
//     serves, the high-water marks to commit first, overflow limits
//     (docs/REVISIONS.md). Package server runs its leadership checks and
//     raft writes (server/oracle.go).
//   - Driver (driver.go, schedule.go): what the placement group's leader
//     observes (the latest store and range heartbeats, hence liveness and
//     each range's leader and catching-up learners), and the scheduling of
//     operators: Schedule answers a range heartbeat with the next step of
//     the range's operator, starting one from the replica checker or from
//     the split the leader proposed; Balance runs the balancers and names
//     the decommissioning stores left empty; AdminOperator and AdminSplit
//     start the operators an administrator asks for. Every operator is
//     tracked until it finishes, fails or expires. The Driver is not
//     replicated: a new leader starts empty (Reset).
//   - the decisions, as pure functions over a ClusterView (checker.go): the
//     replica checker (CheckReplicas: missing, extra, down, decommissioning
//     or stuck replicas), the balancers (BalanceReplicas, BalanceSize,
//     BalanceLeaders, BalanceHotLeaders) and SplitOperator. They return
//     Operators (add learner, promote, remove, transfer leader, split) and
//     are tested alone, including randomized simulations with failing
//     stores, stale heartbeats and delayed steps
//     (TestOperatorSafetyRandomized, TestDriverSafetyRandomized);
//   - PlanStep (descriptor.go): what a range's leader does for a step, with
//     the checks the leader makes whatever the driver believed.
//
// It does not run any of this: it starts no goroutines and sends nothing.
// Package server wires it: each node's heartbeat loop (server/heartbeat.go)
// reports its store and the ranges it leads, executes the steps the driver
// answers with (PlanStep, then a conf change or a leadership transfer
// through multiraft, or shard.Store.Split), proposes the Meta commands the
// driver needs (AllocIDs, UpdateRange, SetStoreState) and, on the placement
// group's leader, runs Balance; the node's Placement gRPC service
// (server/placement_service.go, server/placement_admin.go) answers
// heartbeats, lookups and admin requests from the Driver on that leader. It
// does not build raft conf changes from descriptors
// (rpc/flotillapb/confchange does) nor apply splits (shard does), and it
// imports neither shard nor router.
//
// Invariants:
//   - A step carries the conf_ver it was computed at (a split also the
//     range's version). The leader refuses it at any other (PlanStep, and
//     shard for a split), and so does the range's state machine when it
//     applies the change, so a step applies at most once and never to a
//     configuration it was not computed for, however stale, repeated or
//     reordered the heartbeats and steps.
//   - The driver hands out a removal or a demotion only while its view keeps
//     a quorum of live voters (SafeToRemove, SafeToReplace); PlanStep checks
//     again against the nodes the leader heard from recently, and a leader
//     never removes or demotes itself.
//   - Replica IDs are never reused within a group: they come from the
//     replicated allocator in blocks, and a new term drops what was left of
//     the previous term's block.
//   - A new driver leader starts no operator of its own (checker, balancer
//     or split) during its first liveness window, when it has not heard
//     from every store yet, and calls a store down only after
//     StoreDownTimeout without hearing from it.
//   - Meta's state is replaced on every change, never modified in place, so
//     a State() a caller holds stays consistent.
package placement
