// Copyright 2026 The Flotilla Authors. All rights reserved.

// Package invariants says whether expensive invariant checks are compiled in.
// They are, under the "invariants" build tag, which `make test` sets for the
// core packages (engine, multiraft, shard, rpc, router) and `make testrace`
// for all; production builds leave them out. Enabled is a constant, so a
// check guarded by it costs nothing when it is false.
package invariants
