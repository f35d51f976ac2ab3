// Copyright 2026 The Flotilla Authors. All rights reserved.

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/flotilladb/flotilla"
	"github.com/flotilladb/flotilla/bench"
	"github.com/flotilladb/flotilla/bench/target"
	"github.com/flotilladb/flotilla/server"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// benchFlags are `flotilla bench`'s options.
type benchFlags struct {
	tlsFlags
	workload     string
	readFraction float64
	distribution string
	records      int64
	keySize      int
	valueSize    int
	maxScan      int

	endpoints []string
	embedded  string
	etcd      []string
	readFrom  string
	zone      string

	clients   int
	rate      float64
	duration  time.Duration
	ops       int64
	warmup    time.Duration
	opTimeout time.Duration
	seed      uint64
	phase     string
	verify    bool

	jsonOut string
	plotOut string
	quiet   bool

	// flags are the command's flags, for tlsFlags.config.
	flags *pflag.FlagSet
}

func newBenchCmd() *cobra.Command {
	var f benchFlags
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Run a YCSB-style workload against Flotilla (a cluster or embedded) or etcd",
		Long: `Run a workload against a target and report throughput, latency percentiles
(p50, p95, p99, p99.9, max per operation type), errors by class and the CPU
cost per operation.

Targets (exactly one):
  --endpoints HOST:PORT,...   a Flotilla cluster
  --embedded DIR              one Flotilla node in this process, on DIR
  --etcd HOST:PORT,...        an etcd cluster (its client URLs)

Workloads (--workload): a (50% read, 50% update), b (95/5), c (read only),
d (read latest, 5% insert), e (short scans, 5% insert), f (read-modify-write),
write (puts only), kv (--read-fraction reads, the rest updates). Distributions:
uniform, zipfian, latest (each workload has YCSB's default).

Phases (--phase): load inserts --records records, run runs the workload;
both (the default) does one then the other. The run is a closed loop of
--clients clients, or, with --rate, an open loop at that many operations per
second whose latencies count from each operation's intended start (no
coordinated omission).

--json writes the run's report (every figure and the full configuration);
'flotilla bench compare A.json B.json' prints the ratios of two reports, and
'flotilla bench table A.json B.json ...' a table with a row per report.
'flotilla bench split-keys' prints the keys that pre-split a cluster
('flotilla init --split-at') into ranges of equal record counts.
--plot writes a PNG of throughput over time and latency percentiles.
--verify re-reads every key written and fails on any mismatch.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBench(cmd, &f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.workload, "workload", "a", "workload: "+strings.Join(bench.StandardWorkloads, ", "))
	fl.Float64Var(&f.readFraction, "read-fraction", 0.5, "for --workload kv: the fraction of reads, 0 to 1")
	fl.StringVar(&f.distribution, "distribution", "", "request distribution: uniform, zipfian or latest (default: the workload's)")
	fl.Int64Var(&f.records, "records", bench.DefaultRecordCount, "records loaded and chosen among")
	fl.IntVar(&f.keySize, "key-size", bench.DefaultKeySize, "key size in bytes")
	fl.IntVar(&f.valueSize, "value-size", 256, "value size in bytes")
	fl.IntVar(&f.maxScan, "max-scan", 0, "longest scan of workload e (default 100)")
	fl.StringSliceVar(&f.endpoints, "endpoints", nil, "a Flotilla cluster's nodes, HOST:PORT[,HOST:PORT...]")
	fl.StringVar(&f.embedded, "embedded", "", "run one Flotilla node in this process on this data directory")
	fl.StringSliceVar(&f.etcd, "etcd", nil, "an etcd cluster's client endpoints, HOST:PORT[,HOST:PORT...]")
	fl.StringVar(&f.readFrom, "read-from", "leader", "with --endpoints: the replica that serves reads: leader, follower or nearest (all linearizable)")
	fl.StringVar(&f.zone, "zone", "", `with --endpoints and --read-from nearest: the client's zone (the stores' "zone" label)`)
	fl.IntVar(&f.clients, "clients", bench.DefaultClients, "concurrent clients (closed loop), or the most operations in flight (open loop)")
	fl.Float64Var(&f.rate, "rate", 0, "open loop: operations per second over all clients (0: closed loop)")
	fl.DurationVar(&f.duration, "duration", 0, "measured time of the run (default 30s unless --ops is set)")
	fl.Int64Var(&f.ops, "ops", 0, "measured operations of the run (0: bounded by --duration only)")
	fl.DurationVar(&f.warmup, "warmup", 0, "run this long before measuring")
	fl.DurationVar(&f.opTimeout, "op-timeout", bench.DefaultOpTimeout, "fail an operation after this long (class timeout)")
	fl.Uint64Var(&f.seed, "seed", 0, "seed of the workload's generators (0: from the clock; reports record it)")
	fl.StringVar(&f.phase, "phase", "both", "load, run or both")
	fl.BoolVar(&f.verify, "verify", false, "re-read every key written after the run and fail on any mismatch")
	fl.StringVar(&f.jsonOut, "json", "", "write the run's report as JSON to this file")
	fl.StringVar(&f.plotOut, "plot", "", "write a PNG plot of the run to this file")
	fl.BoolVar(&f.quiet, "quiet", false, "no progress line (it is shown only on a terminal anyway)")
	f.register(fl)
	f.flags = fl
	cmd.AddCommand(newBenchCompareCmd(), newBenchTableCmd(), newBenchSplitKeysCmd())
	return cmd
}

func newBenchTableCmd() *cobra.Command {
	var format string
	cmd := &cobra.Command{
		Use:   "table A.json [B.json ...]",
		Short: "Print reports as a table, one row per report (Markdown or TSV)",
		Long: `Print a table with one row per report, in the order given: the target (kind,
nodes, ranges, fsync), workload, clients (or rate), throughput, p50 and p99 of
each operation type, server and client CPU per operation, and errors.
--format markdown (the default) is for documents; --format tsv gives plain
numbers (latencies in µs) for spreadsheets and scripts.`,
		Example: `  flotilla bench table bench-results/20261127-101500/*.json
  flotilla bench table --format tsv etcd-write-64.json flotilla-16-write-64.json`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f := bench.TableFormat(format)
			if !slices.Contains(bench.TableFormats, f) {
				return fmt.Errorf("--format %q: want markdown or tsv", format)
			}
			reports := make([]*bench.Report, 0, len(args))
			for _, path := range args {
				r, err := readReportFile(path)
				if err != nil {
					return err
				}
				reports = append(reports, r)
			}
			return bench.WriteTable(cmd.OutOrStdout(), reports, f)
		},
	}
	cmd.Flags().StringVar(&format, "format", string(bench.TableMarkdown), "output format: markdown or tsv")
	return cmd
}

func newBenchSplitKeysCmd() *cobra.Command {
	var (
		records int64
		keySize int
		ranges  int
	)
	cmd := &cobra.Command{
		Use:   "split-keys",
		Short: "Print the keys that split a benchmark's records into ranges of equal size",
		Long: `Print the --ranges minus 1 keys that split the keys of --records records (as
'flotilla bench' generates them, --key-size bytes each) into --ranges parts of
equal record counts, comma-separated on one line, for 'flotilla init
--split-at'. Give the same --records and --key-size as to the benchmark.`,
		Example: `  flotilla init --host 127.0.0.1:7400 --split-at "$(flotilla bench split-keys --records 100000 --ranges 16)"`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			keys, err := bench.SplitKeys(records, keySize, ranges)
			if err != nil {
				return err
			}
			parts := make([]string, len(keys))
			for i, k := range keys {
				parts[i] = string(k) // printable ASCII, no commas or quotes
			}
			_, err = fmt.Fprintln(cmd.OutOrStdout(), strings.Join(parts, ","))
			return err
		},
	}
	fl := cmd.Flags()
	fl.Int64Var(&records, "records", bench.DefaultRecordCount, "records of the benchmark (its --records)")
	fl.IntVar(&keySize, "key-size", bench.DefaultKeySize, "key size in bytes (the benchmark's --key-size)")
	fl.IntVar(&ranges, "ranges", 16, "ranges to split the records into")
	return cmd
}

func newBenchCompareCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "compare A.json B.json",
		Short: "Print the ratios of two reports' figures (B over A)",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			var reports [2]*bench.Report
			for i, path := range args {
				r, err := readReportFile(path)
				if err != nil {
					return err
				}
				reports[i] = r
			}
			return bench.Compare(reports[0], reports[1]).WriteComparison(cmd.OutOrStdout())
		},
	}
}

func readReportFile(path string) (*bench.Report, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r, err := bench.ReadReport(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// benchConfig turns the flags into a runner configuration.
func benchConfig(f *benchFlags) (bench.Config, error) {
	w, err := bench.StandardWorkload(f.workload, f.readFraction)
	if err != nil {
		return bench.Config{}, err
	}
	if f.distribution != "" {
		w.RequestDistribution = bench.Distribution(f.distribution)
	}
	w.RecordCount, w.KeySize, w.ValueSize = f.records, f.keySize, f.valueSize
	if f.maxScan != 0 {
		w.MaxScanLength = f.maxScan
	}
	cfg := bench.Config{
		Workload: w, Clients: f.clients, Rate: f.rate, Duration: f.duration, MaxOps: f.ops,
		Warmup: f.warmup, OpTimeout: f.opTimeout, Seed: f.seed, Verify: f.verify,
	}
	// Zero would mean "the default" to the library; on the command line
	// it is a mistake.
	var errs []error
	for _, c := range []struct {
		name string
		ok   bool
	}{
		{"--clients", f.clients >= 1}, {"--records", f.records >= 1}, {"--value-size", f.valueSize >= 1},
		{"--key-size", f.keySize >= 1}, {"--op-timeout", f.opTimeout > 0}, {"--max-scan", f.maxScan >= 0},
	} {
		if !c.ok {
			errs = append(errs, fmt.Errorf("%s must be positive", c.name))
		}
	}
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		errs = append(errs, err)
	}
	switch f.phase {
	case "load", "run", "both":
	default:
		errs = append(errs, fmt.Errorf("--phase %q: want load, run or both", f.phase))
	}
	targets := 0
	for _, set := range []bool{len(f.endpoints) > 0, f.embedded != "", len(f.etcd) > 0} {
		if set {
			targets++
		}
	}
	if targets != 1 {
		errs = append(errs, errors.New("give exactly one target: --endpoints, --embedded or --etcd"))
	}
	if _, err := flotilla.ParseReplica(f.readFrom); err != nil {
		errs = append(errs, fmt.Errorf("--read-from: %v", err))
	} else if f.readFrom != "leader" && len(f.endpoints) == 0 {
		errs = append(errs, errors.New("--read-from is for a Flotilla cluster (--endpoints)"))
	}
	return cfg, errors.Join(errs...)
}

func openTarget(ctx context.Context, f *benchFlags) (bench.Target, error) {
	switch {
	case len(f.endpoints) > 0:
		tlsConfig, err := f.config(f.flags)
		if err != nil {
			return nil, err
		}
		readFrom, err := flotilla.ParseReplica(f.readFrom)
		if err != nil {
			return nil, fmt.Errorf("--read-from: %v", err)
		}
		return target.NewFlotilla(ctx, f.endpoints, target.FlotillaOptions{TLS: tlsConfig, ReadFrom: readFrom, Zone: f.zone})
	case f.embedded != "":
		// The node's own log would drown the report: warnings only.
		logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
		return target.NewEmbedded(ctx, f.embedded, target.EmbeddedOptions{Node: server.Config{Logger: logger}})
	default:
		return target.NewEtcd(ctx, f.etcd, target.EtcdOptions{})
	}
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func runBench(cmd *cobra.Command, f *benchFlags) (err error) {
	cfg, err := benchConfig(f)
	if err != nil {
		return err
	}
	if !f.quiet && isTerminal(cmd.ErrOrStderr()) {
		cfg.Progress = cmd.ErrOrStderr()
	}
	ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	t, err := openTarget(ctx, f)
	if err != nil {
		return fmt.Errorf("bench: opening the target: %w", err)
	}
	defer func() {
		if cerr := t.Close(); err == nil {
			err = cerr
		}
	}()
	runner, err := bench.NewRunner(cfg)
	if err != nil {
		return err
	}
	out := cmd.OutOrStdout()
	if f.phase == "load" || f.phase == "both" {
		rep, err := runner.Load(ctx, t)
		if err != nil {
			return fmt.Errorf("bench: load: %w", err)
		}
		rep.Commit = version
		if err := rep.WriteSummary(out); err != nil {
			return err
		}
		if f.phase == "load" {
			return writeReportFiles(f, rep)
		}
	}
	rep, err := runner.Run(ctx, t)
	if err != nil {
		return fmt.Errorf("bench: run: %w", err)
	}
	rep.Commit = version
	if err := rep.WriteSummary(out); err != nil {
		return err
	}
	if err := writeReportFiles(f, rep); err != nil {
		return err
	}
	if f.verify {
		n, err := runner.Verify(ctx, t)
		if err != nil {
			return fmt.Errorf("bench: verify: %w", err)
		}
		fmt.Fprintf(out, "verify: %d keys re-read, all hold a value that may be current\n", n)
	}
	if rep.Interrupted {
		return errors.New("bench: interrupted")
	}
	return nil
}

func writeReportFiles(f *benchFlags, rep *bench.Report) error {
	write := func(path string, fn func(io.Writer) error) error {
		if path == "" {
			return nil
		}
		file, err := os.Create(path)
		if err != nil {
			return err
		}
		if err := fn(file); err != nil {
			file.Close()
			return fmt.Errorf("writing %s: %w", path, err)
		}
		return file.Close()
	}
	if err := write(f.jsonOut, rep.WriteJSON); err != nil {
		return err
	}
	return write(f.plotOut, func(w io.Writer) error { return bench.WritePlot(w, rep) })
}
