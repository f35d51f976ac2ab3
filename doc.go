// Copyright 2026 The Flotilla Authors. All rights reserved.

// Package flotilla will be the public Go API of Flotilla and the assembly of
// its parts: Open runs a node inside the caller's process, Connect returns a
// client of a cluster, and both satisfy one KV interface with typed errors.
//
// Not built yet: see the cluster issue. What exists today is the storage
// engine, package engine.
package flotilla
