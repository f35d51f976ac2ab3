// Copyright 2026 The Flotilla Authors. All rights reserved.

package bench

import "context"

// Target is a store a workload runs against: a Flotilla cluster, Flotilla
// embedded in the benchmark's process, or etcd. Its methods are called
// concurrently by the workload's clients (one goroutine each); it must be
// safe for that. Keys and values passed in are not retained after a call
// returns; values returned belong to the caller.
type Target interface {
	// Get reads key linearizably; found is false if it does not exist.
	Get(ctx context.Context, key []byte) (value []byte, found bool, err error)
	// Put writes key durably (acknowledged once the store would keep it
	// across a crash of a minority).
	Put(ctx context.Context, key, value []byte) error
	// Scan reads up to limit pairs from start on, in key order, and returns
	// how many it read.
	Scan(ctx context.Context, start []byte, limit int) (int, error)
	// Close releases the target's connections (and, for an embedded
	// target, stops its node). It is idempotent.
	Close() error
}

// ErrorClassifier is implemented by targets that can name the class of an
// error ("timeout", "unavailable", "not-applied", "outcome-unknown",
// "invalid", ...) for the report's error counts. Without it, errors are
// classed by context errors and otherwise as "other".
//
// ClassifyError is called concurrently by the clients. Returning "" falls
// back to those default classes. A write classed ClassNotApplied
// ("not-applied") must be known not to have been applied: with
// Config.Verify its value is then not accepted on re-reading; any other
// class leaves the write's outcome unknown.
type ErrorClassifier interface {
	ClassifyError(err error) string
}

// ServerCPU is implemented by targets whose servers report the CPU time
// they used: the sum over the target's server processes of their CPU
// seconds so far. The runner reads it before and after a phase and reports
// CPU-µs per operation.
type ServerCPU interface {
	ServerCPUSeconds(ctx context.Context) (float64, error)
}

// Describer is implemented by targets that can describe what they run
// against, for the report's configuration: e.g. "kind": "flotilla",
// "nodes": 3, "ranges": 16, "fsync": true, "version": "…".
type Describer interface {
	Describe(ctx context.Context) map[string]any
}
