// Copyright 2026 The Flotilla Authors. All rights reserved.

package bench

import (
	"cmp"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
)

// TableFormat is how WriteTable lays out its table.
type TableFormat string

const (
	// TableMarkdown is a Markdown (GitHub) table for documents: latencies
	// with units, p50 and p99 of an operation type in one cell, "-" for a
	// missing figure.
	TableMarkdown TableFormat = "markdown"
	// TableTSV is tab-separated values with a header line, for
	// spreadsheets and scripts: plain numbers (latencies in µs), p50 and
	// p99 in columns of their own, an empty field for a missing figure.
	TableTSV TableFormat = "tsv"
)

// TableFormats lists the formats WriteTable knows.
var TableFormats = []TableFormat{TableMarkdown, TableTSV}

// WriteTable writes reports as a table with a row per report, in the
// order given: the target (kind, nodes, ranges, fsync, from
// Report.Target), the workload ("load" for a load phase), the clients (and
// the rate of an open loop), throughput, p50 and p99 of each operation
// type any report has (in Op order), server and client CPU per operation,
// and errors.
func WriteTable(w io.Writer, reports []*Report, format TableFormat) error {
	if len(reports) == 0 {
		return errors.New("bench: WriteTable: no reports")
	}
	if !slices.Contains(TableFormats, format) {
		return fmt.Errorf("bench: WriteTable: unknown format %q (known: %v)", format, TableFormats)
	}
	ops := tableOps(reports)
	ew := &errWriter{w: w}
	if format == TableTSV {
		header := []string{"target", "workload", "clients", "rate", "throughput"}
		for _, op := range ops {
			header = append(header, op+"_p50_us", op+"_p99_us")
		}
		header = append(header, "server_cpu_us_per_op", "client_cpu_us_per_op", "errors")
		writeTSVRow(ew, header)
		for _, r := range reports {
			writeTSVRow(ew, tsvRow(r, ops))
		}
		return ew.err
	}
	header := []string{"target", "workload", "clients", "ops/s"}
	for _, op := range ops {
		header = append(header, op+" p50 / p99")
	}
	header = append(header, "server CPU µs/op", "client CPU µs/op", "errors")
	writeMarkdownRow(ew, header)
	rule := make([]string, len(header))
	for i := range rule {
		rule[i] = "---"
		if i >= 2 { // figures, right-aligned
			rule[i] = "--:"
		}
	}
	writeMarkdownRow(ew, rule)
	for _, r := range reports {
		writeMarkdownRow(ew, markdownRow(r, ops))
	}
	return ew.err
}

// tableOps returns the operation types of the reports: the known ones in
// Op order, then any others in the order first seen.
func tableOps(reports []*Report) []string {
	var names []string
	for _, r := range reports {
		for _, s := range r.Operations {
			if !slices.Contains(names, s.Op) {
				names = append(names, s.Op)
			}
		}
	}
	rank := func(name string) int {
		for op := range Op(numOps) {
			if op.String() == name {
				return int(op)
			}
		}
		return int(numOps)
	}
	slices.SortStableFunc(names, func(a, b string) int { return cmp.Compare(rank(a), rank(b)) })
	return names
}

// targetSummary describes the report's target in a few words from
// Report.Target: its kind, nodes, ranges and fsync, e.g. "flotilla, 3
// nodes, 16 ranges, fsync". It is "-" if the report has no description.
func (r *Report) targetSummary() string {
	if len(r.Target) == 0 {
		return "-"
	}
	var parts []string
	if kind, ok := r.Target["kind"]; ok {
		parts = append(parts, fmt.Sprint(kind))
	}
	count := func(key, one, many string) {
		v, ok := r.Target[key]
		if !ok {
			return
		}
		s := fmt.Sprint(v) // an int, or a float64 once read back from JSON
		if s == "1" {
			parts = append(parts, s+" "+one)
		} else {
			parts = append(parts, s+" "+many)
		}
	}
	count("nodes", "node", "nodes")
	count("ranges", "range", "ranges")
	if fsync, ok := r.Target["fsync"].(bool); ok {
		if fsync {
			parts = append(parts, "fsync")
		} else {
			parts = append(parts, "no fsync")
		}
	}
	if tls, ok := r.Target["tls"].(bool); ok && tls {
		parts = append(parts, "TLS")
	}
	if len(parts) == 0 {
		return "-"
	}
	return strings.Join(parts, ", ")
}

// tableWorkload names the report's workload for a table: "load" for a load
// phase, the read fraction of kv, and a mark if the phase was interrupted.
func tableWorkload(r *Report) string {
	w := &r.Config.Workload
	s := w.Name
	switch {
	case r.Phase == "load":
		s = "load"
	case w.Name == "kv":
		s = fmt.Sprintf("kv (read %.3g)", w.ReadProportion/(w.ReadProportion+w.UpdateProportion))
	}
	if r.Interrupted {
		s += " (interrupted)"
	}
	return s
}

func markdownRow(r *Report, ops []string) []string {
	clients := strconv.Itoa(r.Config.Clients)
	if r.OpenLoop != nil {
		clients = fmt.Sprintf("%s/s (≤%d)", thousands(r.Config.Rate), r.Config.Clients)
	}
	row := []string{r.targetSummary(), tableWorkload(r), clients, thousands(r.Throughput)}
	for _, op := range ops {
		cell := "-"
		if s := r.Op(op); s != nil && s.Count > 0 {
			cell = formatMicros(s.P50Micros) + " / " + formatMicros(s.P99Micros)
		}
		row = append(row, cell)
	}
	cpu := func(c *CPUCost) string {
		if c == nil {
			return "-"
		}
		return fmt.Sprintf("%.0f", c.MicrosPerOp)
	}
	return append(row, cpu(r.ServerCPU), cpu(r.ClientCPU), strconv.FormatInt(r.Errors, 10))
}

func tsvRow(r *Report, ops []string) []string {
	num := func(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }
	row := []string{r.targetSummary(), tableWorkload(r), strconv.Itoa(r.Config.Clients), num(r.Config.Rate), num(r.Throughput)}
	for _, op := range ops {
		if s := r.Op(op); s != nil && s.Count > 0 {
			row = append(row, num(s.P50Micros), num(s.P99Micros))
		} else {
			row = append(row, "", "")
		}
	}
	cpu := func(c *CPUCost) string {
		if c == nil {
			return ""
		}
		return num(c.MicrosPerOp)
	}
	return append(row, cpu(r.ServerCPU), cpu(r.ClientCPU), strconv.FormatInt(r.Errors, 10))
}

func writeMarkdownRow(ew *errWriter, cells []string) {
	escaped := make([]string, len(cells))
	for i, c := range cells {
		escaped[i] = strings.ReplaceAll(c, "|", `\|`)
	}
	ew.printf("| %s |\n", strings.Join(escaped, " | "))
}

func writeTSVRow(ew *errWriter, cells []string) {
	clean := make([]string, len(cells))
	for i, c := range cells {
		clean[i] = strings.Map(func(r rune) rune {
			if r == '\t' || r == '\n' || r == '\r' {
				return ' '
			}
			return r
		}, c)
	}
	ew.printf("%s\n", strings.Join(clean, "\t"))
}

// thousands formats v rounded to an integer, with commas between groups of
// three digits: 12,345.
func thousands(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "-"
	}
	n := int64(math.Round(v))
	neg := n < 0
	s := strconv.FormatInt(max(n, -n), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
