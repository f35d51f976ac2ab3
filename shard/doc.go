// Copyright 2026 The Flotilla Authors. All rights reserved.

// Package shard will hold one replica of one key range on multiraft: the
// key-value commands (put, delete, delete-range, compare-and-swap, atomic
// batches), linearizable reads through ReadIndex, the range and epoch checks
// before proposing and at apply, per-range statistics and data hashes, range
// splits and the snapshot data of a range.
//
// Not built yet: see the cluster issue.
package shard
