// Copyright 2026 The Flotilla Authors. All rights reserved.

package shard

// Exported for the external tests.
var NewRand = newRand
