// Copyright 2026 The Flotilla Authors. All rights reserved.

// Package placement will be the placement driver: its own raft group on the
// multiraft machinery holding stores, their liveness, the newest descriptor
// of every range and the ID allocators; store and range heartbeats; and the
// checkers and schedulers whose operators add, move and remove replicas,
// balance leaders and split ranges.
//
// Not built yet: see the placement-driver issue.
package placement
