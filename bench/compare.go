// Copyright 2026 The Flotilla Authors. All rights reserved.

package bench

import (
	"fmt"
	"io"
	"math"
	"text/tabwriter"
)

// Comparison sets two reports' figures side by side.
type Comparison struct {
	// A and B are the reports' titles (Report.Title), prefixed "A: " and
	// "B: " only when printed.
	A, B string
	Rows []ComparisonRow
}

// ComparisonRow is one figure of both reports.
type ComparisonRow struct {
	// Metric names the figure: "throughput (ops/s)", "read p50 (µs)",
	// "read p99 (µs)", …, "client CPU (µs/op)", "server CPU (µs/op)".
	Metric string
	// A and B are the figures; NaN where a report lacks it.
	A, B float64
	// Ratio is B/A; NaN if either is NaN or A is 0.
	Ratio float64
	// HigherIsBetter is true for throughput, false for latencies and CPU.
	HigherIsBetter bool
}

// Compare returns the ratios of b's figures to a's: throughput, p50 and p99
// of each operation type either has (a's order first), and client and
// server CPU per operation where either has them.
func Compare(a, b *Report) *Comparison {
	c := &Comparison{A: a.Title(), B: b.Title()}
	add := func(metric string, x, y float64, higherIsBetter bool) {
		ratio := y / x
		if x == 0 || math.IsNaN(x) || math.IsNaN(y) {
			ratio = math.NaN()
		}
		c.Rows = append(c.Rows, ComparisonRow{Metric: metric, A: x, B: y, Ratio: ratio, HigherIsBetter: higherIsBetter})
	}
	add("throughput (ops/s)", a.Throughput, b.Throughput, true)

	var names []string
	seen := map[string]bool{}
	for _, r := range []*Report{a, b} {
		for _, s := range r.Operations {
			if !seen[s.Op] {
				seen[s.Op] = true
				names = append(names, s.Op)
			}
		}
	}
	figure := func(r *Report, op string, f func(*OpStats) float64) float64 {
		if s := r.Op(op); s != nil && s.Count > 0 {
			return f(s)
		}
		return math.NaN()
	}
	for _, op := range names {
		p50 := func(s *OpStats) float64 { return s.P50Micros }
		p99 := func(s *OpStats) float64 { return s.P99Micros }
		add(op+" p50 (µs)", figure(a, op, p50), figure(b, op, p50), false)
		add(op+" p99 (µs)", figure(a, op, p99), figure(b, op, p99), false)
	}

	cpu := func(c *CPUCost) float64 {
		if c == nil {
			return math.NaN()
		}
		return c.MicrosPerOp
	}
	if a.ClientCPU != nil || b.ClientCPU != nil {
		add("client CPU (µs/op)", cpu(a.ClientCPU), cpu(b.ClientCPU), false)
	}
	if a.ServerCPU != nil || b.ServerCPU != nil {
		add("server CPU (µs/op)", cpu(a.ServerCPU), cpu(b.ServerCPU), false)
	}
	return c
}

// WriteComparison writes the comparison as a table: metric, A, B, B/A,
// with "-" for what is missing.
func (c *Comparison) WriteComparison(w io.Writer) error {
	ew := &errWriter{w: w}
	ew.printf("A: %s\nB: %s\n\n", c.A, c.B)
	tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "metric\tA\tB\tB/A\t\n")
	num := func(v float64, format string) string {
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return "-"
		}
		return fmt.Sprintf(format, v)
	}
	for _, r := range c.Rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", r.Metric, num(r.A, "%.1f"), num(r.B, "%.1f"), num(r.Ratio, "%.3f"))
	}
	_ = tw.Flush() // errors reach ew
	return ew.err
}
