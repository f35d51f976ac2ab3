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
// ReadReport), a comparison with another (Compare), a row of a table of
// many (WriteTable) and a PNG (WritePlot). SplitKeys gives the keys that
// pre-split a benchmark's records into ranges of equal counts.
//
// The package owns the workload and its measurement, not the stores: the
// targets (a Flotilla cluster, embedded Flotilla, etcd) implement Target,
// declared in target.go, in package bench/target, and the command line is
// cmd/flotilla's. Of Flotilla it imports only rpc/flotillapb (the key size
// limit), so it links no store. The engine's own hot paths are measured by
// Go benchmarks in their packages.
package bench
