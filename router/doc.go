// Copyright 2026 The Flotilla Authors. All rights reserved.

// Package router sends each request to the replica that can serve it. It
// owns the client side of routing: a cache of ranges and their leaders, the
// lookups that fill it, and the retry protocol of DESIGN.md ("router").
// It also splits requests that cover many ranges (scans, delete-ranges,
// batches) into one part per range, and holds the KV request driver that
// the Go client (package flotilla) and every node's gateway (package server)
// share. It does not own the transport (each attempt goes to the handler a
// Nodes gives for its store: a gRPC client of that node, or on a gateway
// its own store), nor the placement driver (a Resolver answers cache
// misses; PlacementResolver asks the Placement service). Scan, DeleteRange
// and Batch do not check a request for bad input: the caller runs
// CheckScan, CheckDeleteRange or CheckBatch first. Of Flotilla's packages
// it imports only rpc, rpc/flotillapb and internal/invariants, never
// multiraft, shard or placement, so that a client can link it.
//
// # Cache
//
// A B-tree of ranges by start key (github.com/google/btree, the ordered map
// DESIGN.md names for this) finds the range holding a key: the entry with
// the greatest start key ≤ key, if key < its end key (an empty end key is
// +∞). Inserting a range evicts the entries it overlaps and the previous
// entry of the same range, unless that one is newer by epoch: a lookup
// that raced a refresh never puts back an older descriptor of a range.
// Entries live for Config.TTL; an expired entry is looked up again, but it
// is still used when the lookup fails, because a replica refuses a request
// routed by an outdated descriptor (so the cost is a retry), while failing
// would stop all traffic whenever the placement driver is unreachable.
//
// Concurrent misses share one Resolver call (misses of the same key, and
// refreshes of the same expired entry) through
// golang.org/x/sync/singleflight: the standard library has no single-flight
// group, and this one is maintained by the Go team, already in the module
// graph, and does what a hand-written one would (DoChan lets each waiter
// leave when its own context ends). The flight runs under the context of
// the request that started it; a waiter whose flight was cut short by that
// context starts another.
//
// # Retries
//
// Do sends an attempt to the cached leader's store, or else to the
// replicas in turn (voters in descriptor order, then, for reads, learners),
// with the range's ID and epoch version in the request header, and reacts
// to the errors of the protocol:
//
//   - NotLeader with a hint: the hint becomes the cached leader and the
//     attempt is retried there at once. Without a hint: the next replica.
//   - EpochNotMatch: the descriptors it carries replace the cached ones;
//     retried at once with the new version.
//   - KeyNotInRange, RangeNotFound: the entry is invalidated (a carried
//     descriptor cached) and the key looked up again; retried at once.
//   - ServerBusy: retried after a backoff.
//   - Unavailable: the next replica; for a write only if it was certainly
//     not applied.
//   - InvalidArgument: returned at once.
//
// Retries "at once" are bounded (Config.MaxImmediateRetries in a row),
// then back off; moving to the next replica backs off once every replica
// failed in a round. Backoff starts at Config.MinBackoff, doubles up to
// Config.MaxBackoff, and sleeps a uniformly random part of it (full
// jitter). A request has one deadline, its context's or
// Config.DefaultTimeout; nothing is retried after it.
//
// Every error Do returns is a *flotillapb.Error whose Outcome, for a
// write, says whether it was certainly not applied (NOT_APPLIED) or may
// have been (UNKNOWN: some attempt's outcome was unknown). A write is never
// sent again after an unknown outcome, not even one that would have the
// same effect applied twice (a delete-range): another client's write,
// acknowledged and read in between, would be undone after the fact.
//
// # Spans
//
// DoSpan runs a request over a span [start, end) range by range, forward
// or in reverse, each part with Do. Each attempt's part is the rest of the
// span clipped to the attempt's Target.Range, computed again for every
// attempt: an EpochNotMatch retry may have narrowed the range (a split), and
// the part must then shrink with it. The next part starts where the served
// part ended. In reverse, the part ending at key X is routed to the range
// holding the keys just below X (Request.Before; the cache finds the range
// with start < X <= end, the Resolver is asked with before set), the last
// range when X is empty. On it, Scan merges the parts' pairs in order with
// a limit and a size bound across ranges and a resume key, and DeleteRange
// sums the parts' counts; Batch groups a batch's ops by range (each range's
// ops in their order, a delete-range cut at range bounds) and sends one
// batch per range, the ops of each attempt again chosen by the attempt's
// range. A request split this way is not atomic across ranges: a write
// that fails after a part was applied fails with outcome UNKNOWN, and so
// does one whose part's outcome is unknown (the part is not sent again).
//
// # The request driver
//
// kv.go holds what the client and the gateways share to send KV requests.
// Send runs a request routed by key through Do: each attempt is a copy of
// the request with the attempt's header (SetHeader: the range's ID and
// version, marked forwarded), sent with a KVMethod (a method expression of
// rpc.KVHandler, such as rpc.KVHandler.Put) to the handler Nodes gives for
// the attempt's store. PartSender sends the parts of a request that Scan,
// DeleteRange or Batch split. A request whose header is Routed (forwarded,
// or addressed to a range by ID or version) is served by the receiving
// node's replica or fails: it is never forwarded again nor split.
// Retriable says what may be sent again: never bad input, never a write
// that may have been applied.
// CheckScan, CheckDeleteRange and CheckBatch are the replicas' own input
// checks (flotillapb.CheckSpan, CheckOp), run before a request is split: a
// part refused after another part was applied would leave it half done.
//
// PlacementResolver (resolver.go) is the Resolver of both: it answers a
// miss with the Placement service's LookupRange (the client asks its
// endpoints in turn; a gateway asks its own node, which answers on the
// placement group's leader and forwards the question there elsewhere), and
// keeps the node addresses the answers list (Address), so that a Nodes can
// dial the store of an attempt.
//
// The router runs no goroutines of its own; a single-flight lookup runs in
// one that ends when the Resolver returns.
package router
