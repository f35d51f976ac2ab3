// Copyright 2026 The Flotilla Authors. All rights reserved.

// Package router will send each request to the replica that can serve it: a
// range cache (B-tree by start key, with TTL and single-flight misses to the
// placement driver), request splitting across ranges, and the retry protocol
// of DESIGN.md (NotLeader, EpochNotMatch, KeyNotInRange, RangeNotFound,
// ServerBusy, deadlines, ambiguous outcomes).
//
// Not built yet: see the placement-driver issue.
package router
