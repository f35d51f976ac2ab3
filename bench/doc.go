// Copyright 2026 The Flotilla Authors. All rights reserved.

// Package bench will be the benchmark library behind `flotilla bench`:
// YCSB-style workloads and key distributions, closed- and open-loop drivers,
// targets (a Flotilla cluster, embedded Flotilla, etcd), HDR latency
// histograms, and reports with comparisons and plots. The engine's own
// hot paths are measured by Go benchmarks in their packages.
//
// The library is being built (the bench issue): target.go declares what a
// store must offer a workload.
package bench
