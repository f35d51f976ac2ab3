// Copyright 2026 The Flotilla Authors. All rights reserved.

// Package bench is the benchmark library behind `flotilla bench`: YCSB
// workloads and key distributions, closed- and open-loop drivers, HDR
// latency histograms, verification of what was written, and reports with
// summaries, comparisons and plots.
//
// A Workload (StandardWorkload for YCSB's A–F, "write" and "kv") says what
// to issue; a Config says how (clients, rate, duration, seed, verify); a
// Runner issues it against a Target: Load inserts the records, Run
// measures the mix, Verify re-reads what was written. Each phase returns a
// Report, which writes a summary (WriteSummary), JSON (WriteJSON,
// ReadReport), a comparison with another (Compare) and a PNG (WritePlot).
//
// The package owns the workload and its measurement, not the stores: the
// targets (a Flotilla cluster, embedded Flotilla, etcd) implement Target,
// declared in target.go, in their own packages, and the command line is
// cmd/flotilla's. The engine's own hot paths are measured by Go benchmarks
// in their packages.
package bench
