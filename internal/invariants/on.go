// Copyright 2026 The Flotilla Authors. All rights reserved.

//go:build invariants

package invariants

// Enabled is true: the build has the "invariants" tag.
const Enabled = true
