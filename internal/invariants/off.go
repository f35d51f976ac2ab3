// Copyright 2026 The Flotilla Authors. All rights reserved.

//go:build !invariants

package invariants

// Enabled is false: the build lacks the "invariants" tag.
const Enabled = false
