// Copyright 2026 The Flotilla Authors. All rights reserved.

// Package invariants says whether expensive invariant checks are compiled in.
// They are, under the "invariants" build tag, which `make test` sets for the
// core packages; production builds leave them out.
package invariants
