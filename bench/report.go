// Copyright 2026 The Flotilla Authors. All rights reserved.

package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is what a phase measured, with everything needed to interpret
// and compare it. It round-trips through JSON (WriteJSON, ReadReport).
// Latencies are in µs. Operations that fail are counted as errors and
// left out of the latency figures.
type Report struct {
	// Phase is "load" or "run".
	Phase string `json:"phase"`
	// Commit is the code's version; the caller fills it.
	Commit string `json:"commit,omitempty"`
	// GoVersion is runtime.Version() of the benchmark's binary.
	GoVersion string `json:"go_version"`
	// Start is when the phase started (its warmup included).
	Start time.Time `json:"start"`
	// Config is the full configuration, defaults filled and seed chosen.
	Config Config `json:"config"`
	// Target is the target's Describe() (nodes, ranges, fsync, …), if it
	// implements Describer.
	Target map[string]any `json:"target,omitempty"`

	// ElapsedSeconds is the measured time: from the end of the warmup to
	// the return of the last operation.
	ElapsedSeconds float64 `json:"elapsed_seconds"`
	// Ops counts the measured operations that returned, failed or not.
	Ops int64 `json:"ops"`
	// Errors counts the measured operations that failed.
	Errors int64 `json:"errors"`
	// Throughput is successful operations per second of ElapsedSeconds.
	Throughput float64 `json:"throughput"`
	// OpenLoop is set for a run at a Rate.
	OpenLoop *OpenLoopStats `json:"open_loop,omitempty"`
	// Operations has a row per operation type issued, in Op order.
	Operations []OpStats `json:"operations"`
	// ErrorsByClass counts errors by class (ClassTimeout, ClassNotFound,
	// the target's classes, …).
	ErrorsByClass map[string]int64 `json:"errors_by_class,omitempty"`
	// Timeline has a sample a second of the measured time; the last may
	// cover less, or up to 1.25 s (a final interval under 250 ms is
	// merged into it).
	Timeline []Sample `json:"timeline"`
	// ClientCPU is the CPU the benchmark's own process used in the
	// measured time (user+system, getrusage); for an embedded target it
	// includes the server's. Nil where unsupported.
	ClientCPU *CPUCost `json:"client_cpu,omitempty"`
	// ServerCPU is the CPU the target's server processes used in the
	// measured time, if the target implements ServerCPU and answered.
	ServerCPU *CPUCost `json:"server_cpu,omitempty"`
	// ServerCPUError says why ServerCPU is missing though the target
	// implements ServerCPU.
	ServerCPUError string `json:"server_cpu_error,omitempty"`
	// Interrupted is set if the phase's context ended before it did.
	Interrupted bool `json:"interrupted,omitempty"`
}

// OpenLoopStats is how well an open-loop run kept its schedule.
type OpenLoopStats struct {
	// RequestedRate is Config.Rate.
	RequestedRate float64 `json:"requested_rate"`
	// AchievedRate is measured operations returned (failed or not) per
	// second of the measured time.
	AchievedRate float64 `json:"achieved_rate"`
	// LateOps counts operations sent more than LateThreshold after their
	// intended start (every client was busy, or the machine was slow).
	// Their latency includes the delay.
	LateOps int64 `json:"late_ops"`
	// MaxLateMicros is the greatest delay between an intended start and
	// the send.
	MaxLateMicros float64 `json:"max_late_us"`
	// DroppedOps counts scheduled operations never sent because the run
	// was still behind OpTimeout after its Duration ended (an overloaded
	// target); they are not in the latencies.
	DroppedOps int64 `json:"dropped_ops"`
}

// OpStats is one operation type's figures.
type OpStats struct {
	// Op is the type's name (Op.String()).
	Op string `json:"op"`
	// Count is the successful operations, which the latencies describe.
	Count int64 `json:"count"`
	// Errors is the failed operations.
	Errors     int64   `json:"errors"`
	MeanMicros float64 `json:"mean_us"`
	P50Micros  float64 `json:"p50_us"`
	P95Micros  float64 `json:"p95_us"`
	P99Micros  float64 `json:"p99_us"`
	P999Micros float64 `json:"p999_us"`
	MaxMicros  float64 `json:"max_us"`
	// Throughput is successful operations per second.
	Throughput float64 `json:"throughput"`
}

// Sample is one interval of the timeline.
type Sample struct {
	// Seconds is the interval's end, in seconds of measured time.
	Seconds float64 `json:"t"`
	// Ops counts operations that returned in the interval, failed or
	// not; Errors the failed ones.
	Ops    int64 `json:"ops"`
	Errors int64 `json:"errors"`
	// OpsPerSec is Ops over the interval's length.
	OpsPerSec float64 `json:"ops_per_sec"`
	// P50Micros and P99Micros are over the interval's successful
	// operations of every type (0 if none).
	P50Micros float64 `json:"p50_us"`
	P99Micros float64 `json:"p99_us"`
}

// CPUCost is CPU time used in the measured time.
type CPUCost struct {
	Seconds float64 `json:"seconds"`
	// MicrosPerOp is Seconds in µs over Report.Ops.
	MicrosPerOp float64 `json:"us_per_op"`
}

func goVersion() string { return runtime.Version() }

// fillReport fills report with what the phase measured up to finish.
func (p *phase) fillReport(ctx context.Context, report *Report, finish time.Time, openLoop bool) {
	report.Interrupted = ctx.Err() != nil
	elapsed := max(0, finish.Sub(p.measureStart).Seconds())
	report.ElapsedSeconds = elapsed
	per := func(n int64) float64 {
		if elapsed == 0 {
			return 0
		}
		return float64(n) / elapsed
	}

	hists, errs, classes := p.rec.totals()
	var ok int64
	for op := range Op(numOps) {
		h := hists[op]
		if h == nil && errs[op] == 0 {
			continue
		}
		s := OpStats{Op: op.String(), Errors: errs[op]}
		if h != nil {
			s.Count = h.TotalCount()
			s.MeanMicros = h.Mean()
			s.P50Micros = float64(h.ValueAtQuantile(50))
			s.P95Micros = float64(h.ValueAtQuantile(95))
			s.P99Micros = float64(h.ValueAtQuantile(99))
			s.P999Micros = float64(h.ValueAtQuantile(99.9))
			s.MaxMicros = float64(h.Max())
		}
		s.Throughput = per(s.Count)
		ok += s.Count
		report.Errors += s.Errors
		report.Operations = append(report.Operations, s)
	}
	report.Ops = ok + report.Errors
	report.Throughput = per(ok)
	if len(classes) > 0 {
		report.ErrorsByClass = classes
	}
	report.Timeline = p.timeline
	if report.Timeline == nil {
		report.Timeline = []Sample{}
	}

	if openLoop {
		report.OpenLoop = &OpenLoopStats{
			RequestedRate: p.r.cfg.Rate,
			AchievedRate:  per(report.Ops),
			LateOps:       p.late.Load(),
			MaxLateMicros: float64(micros(time.Duration(p.maxLate.Load()))),
		}
		if !report.Interrupted {
			report.OpenLoop.DroppedOps = max(0, p.scheduledMeasured()-p.sent.Load())
		}
	}

	if !p.cpuStart.taken {
		return
	}
	costOf := func(seconds float64) *CPUCost {
		c := &CPUCost{Seconds: max(0, seconds)}
		if report.Ops > 0 {
			c.MicrosPerOp = c.Seconds * 1e6 / float64(report.Ops)
		}
		return c
	}
	if end, ok := processCPUSeconds(); ok && p.cpuStart.clientOK {
		report.ClientCPU = costOf(end - p.cpuStart.client)
	}
	if s, ok := p.t.(ServerCPU); ok && p.cpuStart.serverSupported {
		if p.cpuStart.serverErr != nil {
			report.ServerCPUError = "at start: " + p.cpuStart.serverErr.Error()
			return
		}
		// Read the end even if the phase was interrupted.
		c, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.r.cfg.OpTimeout)
		defer cancel()
		end, err := s.ServerCPUSeconds(c)
		if err != nil {
			report.ServerCPUError = "at end: " + err.Error()
			return
		}
		report.ServerCPU = costOf(end - p.cpuStart.server)
	}
}

// WriteJSON writes the report as indented JSON.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// ReadReport reads a report WriteJSON wrote.
func ReadReport(rd io.Reader) (*Report, error) {
	var r Report
	dec := json.NewDecoder(rd)
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("bench: reading a report: %w", err)
	}
	return &r, nil
}

// Title names the report in one line, for comparisons and plot legends:
// phase, workload, target kind and commit.
func (r *Report) Title() string {
	s := fmt.Sprintf("%s %s", r.Config.Workload.Name, r.Phase)
	if kind, ok := r.Target["kind"]; ok {
		s += fmt.Sprintf(" on %v", kind)
	}
	if r.Commit != "" {
		s += " @" + r.Commit
	}
	return s
}

// Op returns the figures of the named operation type, or nil.
func (r *Report) Op(name string) *OpStats {
	for i := range r.Operations {
		if r.Operations[i].Op == name {
			return &r.Operations[i]
		}
	}
	return nil
}

// WriteSummary writes the report for people: configuration, throughput,
// errors, a table of latencies per operation type, CPU.
func (r *Report) WriteSummary(w io.Writer) error {
	ew := &errWriter{w: w}
	cfg := &r.Config
	ew.printf("%s phase, %s\n", r.Phase, cfg.Workload.Describe())
	if len(r.Target) > 0 {
		var parts []string
		for _, k := range slices.Sorted(maps.Keys(r.Target)) {
			parts = append(parts, fmt.Sprintf("%s=%v", k, r.Target[k]))
		}
		ew.printf("target: %s\n", strings.Join(parts, " "))
	}
	commit := r.Commit
	if commit == "" {
		commit = "(unknown)"
	}
	ew.printf("commit %s, %s, started %s, seed %d\n", commit, r.GoVersion, r.Start.UTC().Format(time.RFC3339), cfg.Seed)
	switch {
	case r.Phase == "load":
		ew.printf("load of %d records by %d clients\n", cfg.Workload.RecordCount, cfg.Clients)
	case r.OpenLoop != nil:
		ew.printf("open loop at %.6g ops/s with up to %d in flight%s\n", cfg.Rate, cfg.Clients, bounds(cfg))
	default:
		ew.printf("closed loop, %d clients%s\n", cfg.Clients, bounds(cfg))
	}
	if r.Interrupted {
		ew.printf("INTERRUPTED: the figures cover the phase until it was stopped\n")
	}
	ew.printf("%.1f ops/s: %d ops in %.2fs, %d errors", r.Throughput, r.Ops, r.ElapsedSeconds, r.Errors)
	if len(r.ErrorsByClass) > 0 {
		var parts []string
		for _, c := range slices.Sorted(maps.Keys(r.ErrorsByClass)) {
			parts = append(parts, fmt.Sprintf("%s %d", c, r.ErrorsByClass[c]))
		}
		ew.printf(" (%s)", strings.Join(parts, ", "))
	}
	ew.printf("\n")
	if o := r.OpenLoop; o != nil {
		ew.printf("achieved %.1f of %.6g ops/s requested; %d ops started late (by up to %s), %d dropped\n",
			o.AchievedRate, o.RequestedRate, o.LateOps, formatMicros(o.MaxLateMicros), o.DroppedOps)
	}
	ew.printf("\n")
	tw := tabwriter.NewWriter(ew, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintf(tw, "op\tcount\terrors\tops/s\tmean\tp50\tp95\tp99\tp99.9\tmax\t\n")
	for _, s := range r.Operations {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%.1f\t%s\t%s\t%s\t%s\t%s\t%s\t\n", s.Op, s.Count, s.Errors, s.Throughput,
			formatMicros(s.MeanMicros), formatMicros(s.P50Micros), formatMicros(s.P95Micros),
			formatMicros(s.P99Micros), formatMicros(s.P999Micros), formatMicros(s.MaxMicros))
	}
	_ = tw.Flush() // errors reach ew
	ew.printf("\n")
	if c := r.ClientCPU; c != nil {
		ew.printf("client CPU %.2fs, %.1f µs/op\n", c.Seconds, c.MicrosPerOp)
	}
	if c := r.ServerCPU; c != nil {
		ew.printf("server CPU %.2fs, %.1f µs/op\n", c.Seconds, c.MicrosPerOp)
	}
	if r.ServerCPUError != "" {
		ew.printf("server CPU unknown: %s\n", r.ServerCPUError)
	}
	return ew.err
}

func bounds(cfg *Config) string {
	var s string
	if cfg.Duration > 0 {
		s += fmt.Sprintf(", %v", cfg.Duration)
	}
	if cfg.MaxOps > 0 {
		if s != "" {
			s += " or"
		} else {
			s += ","
		}
		s += fmt.Sprintf(" %d ops", cfg.MaxOps)
	}
	if cfg.Warmup > 0 {
		s += fmt.Sprintf(" after %v warmup", cfg.Warmup)
	}
	return s
}

// formatMicros prints a latency in µs with a unit that suits it.
func formatMicros(us float64) string {
	switch {
	case us < 1000:
		return fmt.Sprintf("%.0fµs", us)
	case us < 1e6:
		return fmt.Sprintf("%.2fms", us/1e3)
	default:
		return fmt.Sprintf("%.2fs", us/1e6)
	}
}

// errWriter keeps the first write error and skips writes after it.
type errWriter struct {
	w   io.Writer
	err error
}

func (e *errWriter) Write(b []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	n, err := e.w.Write(b)
	e.err = err
	return n, err
}

func (e *errWriter) printf(format string, args ...any) {
	fmt.Fprintf(e, format, args...)
}
