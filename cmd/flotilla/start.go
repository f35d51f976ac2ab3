// Copyright 2026 The Flotilla Authors. All rights reserved.

package main

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/flotilladb/flotilla"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"github.com/flotilladb/flotilla/server"
	"github.com/spf13/cobra"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func newLogger(level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
}

// parseOverrides parses repeated ADVERTISED=ACTUAL flags.
func parseOverrides(vals []string) (map[string]string, error) {
	m := map[string]string{}
	for _, v := range vals {
		adv, actual, ok := strings.Cut(v, "=")
		if !ok || adv == "" || actual == "" {
			return nil, fmt.Errorf("--dial-override %q: want ADVERTISED=ACTUAL (both HOST:PORT)", v)
		}
		m[adv] = actual
	}
	return m, nil
}

func newStartCmd() *cobra.Command {
	var (
		cfg       server.Config
		join      []string
		overrides []string
		logLevel  string
		gcPercent int
		retention string
		labels    []string
	)
	cmd := &cobra.Command{
		Use:   "start",
		Short: "Start a node",
		Long: `Start a node over the store in --store. A new store waits until the cluster is
initialized ("flotilla init --host ADDR" on one node) or, with --join, joins the
cluster of the listed nodes. A store that is already part of a cluster rejoins it.
SIGINT or SIGTERM stops the node cleanly.`,
		Example: `  flotilla start --store n1 --listen-addr 127.0.0.1:7400 --http-addr 127.0.0.1:7480
  flotilla start --store n2 --listen-addr 127.0.0.1:7401 --http-addr 127.0.0.1:7481 --join 127.0.0.1:7400
  flotilla init --host 127.0.0.1:7400
  flotilla start --store n3 --listen-addr 127.0.0.1:7402 --http-addr 127.0.0.1:7482 --join 127.0.0.1:7400 --labels zone=b,rack=r2`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := newLogger(logLevel)
			if err != nil {
				return err
			}
			if cfg.DialOverrides, err = parseOverrides(overrides); err != nil {
				return err
			}
			for _, j := range join {
				for _, a := range strings.Split(j, ",") {
					if a = strings.TrimSpace(a); a != "" {
						cfg.Join = append(cfg.Join, a)
					}
				}
			}
			if err := parseRetention(&cfg, retention); err != nil {
				return err
			}
			all := strings.Join(labels, ",")
			if cfg.Labels, err = flotillapb.ParseLabels(all); err != nil {
				return fmt.Errorf("--labels %q: %w", all, err)
			}
			cfg.Logger = log
			server.Version = version
			if err := setGCPercent(cmd, gcPercent); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			n, err := server.Open(ctx, cfg)
			if err != nil {
				return err
			}
			mode := "secure, certificates in " + cfg.CertsDir
			if cfg.CertsDir == "" {
				mode = "INSECURE: no --certs-dir, anyone who reaches its ports can read and write"
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "flotilla %s: node listening on %s (admin HTTP %s), store %s (%s)\n",
				version, n.Addr(), orOff(n.HTTPAddr()), cfg.Dir, mode)
			select {
			case <-ctx.Done():
			case <-n.Failed():
				// The store failed (a write to the disk failed): the node
				// stops itself; exit non-zero with the reason. A commit
				// stuck in the engine may keep Close from returning: exit
				// anyway rather than linger half-alive.
				closed := make(chan struct{})
				go func() { _ = n.Close(); close(closed) }()
				select {
				case <-closed:
				case <-time.After(30 * time.Second):
					fmt.Fprintln(cmd.ErrOrStderr(), "flotilla: the node did not stop within 30s of its store's failure; exiting")
				}
				return n.FailErr()
			}
			fmt.Fprintln(cmd.ErrOrStderr(), "flotilla: shutting down")
			return n.Close()
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.Dir, "store", "flotilla-data", "the store's data directory (created if missing)")
	f.StringVar(&cfg.ListenAddr, "listen-addr", server.DefaultListenAddr, "gRPC address to listen on, HOST:PORT (peers and clients)")
	f.StringVar(&cfg.AdvertiseAddr, "advertise-addr", "", "gRPC address other nodes and clients reach this one at (default: the listen address)")
	f.StringVar(&cfg.HTTPAddr, "http-addr", server.DefaultHTTPAddr, `admin HTTP address (/metrics, /health, /status, /debug/pprof/); "off" disables it`)
	f.StringVar(&cfg.CertsDir, "certs-dir", os.Getenv(certsDirEnv), "run secure with the certificates in this directory (ca.crt, node.crt, node.key; see `flotilla cert`): mTLS for peers and clients, HTTPS for admin; default $"+certsDirEnv+", or none: insecure")
	f.BoolVar(&cfg.Insecure, "insecure", false, "without --certs-dir, allow listening on addresses other than loopback (anyone who reaches the node can read and write every key)")
	f.BoolVar(&cfg.EnablePprof, "enable-pprof", false, "on a secure node, serve /debug/pprof/ without a client certificate")
	f.StringSliceVar(&join, "join", nil, "nodes of the cluster to join, HOST:PORT[,HOST:PORT...]")
	f.StringArrayVar(&labels, "labels", nil, "the store's labels, KEY=VALUE[,KEY=VALUE...] (repeatable), e.g. zone=a,rack=r1: shown by `cluster status`, for placement rules (to come) to choose stores by; letters, digits and . _ / - only")
	f.StringArrayVar(&overrides, "dial-override", nil, "dial ACTUAL when a peer advertises ADVERTISED, as ADVERTISED=ACTUAL (repeatable)")
	f.IntVar(&cfg.MaxValueSize, "max-value-size", flotilla.DefaultMaxValueSize, "largest value accepted, in bytes")
	f.DurationVar(&cfg.StoreDownTimeout, "store-down-timeout", 0, "the placement driver counts a store down, and rebuilds its replicas elsewhere, after this long without a heartbeat (default 60s)")
	f.DurationVar(&cfg.HeartbeatInterval, "heartbeat-interval", 0, "how often the node reports itself and the ranges it leads to the placement driver (default 1s)")
	f.DurationVar(&cfg.LivenessWindow, "liveness-window", 0, "the placement driver counts a store live if it heartbeated within this window (default 5s)")
	f.IntVar(&cfg.ReplicationFactor, "replicas", 0, "voters the placement driver keeps for each range; set it alike on every node (default 3)")
	f.IntVar(&cfg.PlacementReplicationFactor, "placement-replicas", 0, "voters of the placement driver's own group, e.g. 3 or 5; set it alike on every node (default 3)")
	f.Var(sizeFlag{&cfg.SplitSize}, "split-size", "split a range in two once its keys and values exceed this size, e.g. 64MiB or 512KiB; 0 for the default (64MiB), -1 never")
	f.Float64Var(&cfg.SplitQPS, "split-qps", 0, "split a range at a key that halves its load once it serves more reads and writes per second than this; 0 for the default (2500), -1 never")
	f.Var(diskReserveFlag{&cfg.DiskReserve, &cfg.DiskReservePercent}, "disk-reserve", "free disk space to keep, e.g. 1GiB or 5%: below it the node raises its NOSPACE alarm and refuses writes (default 1% of the disk, at least 256MiB but at most 10%; -1 no alarm)")
	f.StringVar(&cfg.AutoCompactionMode, "auto-compaction-mode", server.CompactionPeriodic, "how old versions are compacted away, as etcd's: periodic (keep --auto-compaction-retention of history), revision (keep that many revisions) or off")
	f.StringVar(&retention, "auto-compaction-retention", "", "history automatic compaction keeps: a duration such as 1h or 30m for periodic mode (a bare number is hours), a number of revisions for revision mode (default 1h, or 10000 revisions); 0 disables it, as in etcd")
	f.IntVar(&cfg.MaxTxnOps, "max-txn-ops", 128, "most ops (both branches together) and compares a txn may have")
	f.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	f.IntVar(&gcPercent, "gc-percent", 0, fmt.Sprintf("Go's GC target: let the heap grow this many percent over live data between collections (default %d; or GOGC from the environment, if set)", defaultGCPercent))
	return cmd
}

// parseRetention applies --auto-compaction-retention to cfg by its mode,
// as etcd reads its flag: a duration (or a number of hours) for periodic
// compaction, a number of revisions for revision compaction.
func parseRetention(cfg *server.Config, s string) error {
	if s == "" {
		return nil
	}
	switch cfg.AutoCompactionMode {
	case server.CompactionRevision:
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 0 {
			return fmt.Errorf("--auto-compaction-retention %q: revision mode keeps a number of revisions, e.g. 10000", s)
		}
		cfg.AutoCompactionRevisions = n
		if n == 0 {
			cfg.AutoCompactionMode = server.CompactionOff // etcd: 0 disables it
		}
	case server.CompactionPeriodic:
		if h, err := strconv.ParseFloat(s, 64); err == nil && h >= 0 {
			// A number of hours beyond a Duration (Inf included) would
			// convert to an implementation-defined value (negative on amd64).
			if h*float64(time.Hour) >= float64(math.MaxInt64) { // 2^63: past the largest Duration
				return fmt.Errorf("--auto-compaction-retention %q: more hours than a duration holds", s)
			}
			cfg.AutoCompactionRetention = time.Duration(h * float64(time.Hour))
			if cfg.AutoCompactionRetention == 0 {
				cfg.AutoCompactionMode = server.CompactionOff // etcd: 0 disables it
			}
			return nil
		}
		d, err := time.ParseDuration(s)
		if err != nil || d < 0 {
			return fmt.Errorf("--auto-compaction-retention %q: periodic mode keeps a duration, e.g. 1h or 30m", s)
		}
		cfg.AutoCompactionRetention = d
		if d == 0 {
			cfg.AutoCompactionMode = server.CompactionOff // etcd: 0 disables it
		}
	}
	return nil
}

// defaultGCPercent is a node's Go GC target. The node's live heap is small
// (Pebble's block cache and memtables are allocated outside it), so Go's
// default of 100 collects often: at 10k writes/s about 14 % of the
// server's CPU went to GC. Four times the headroom costs a few hundred MiB
// at most and removes most of that.
const defaultGCPercent = 400

// setGCPercent applies --gc-percent: the flag if set, else GOGC if set in
// the environment (Go applied it already), else defaultGCPercent.
func setGCPercent(cmd *cobra.Command, pct int) error {
	switch {
	case cmd.Flags().Changed("gc-percent"):
		if pct < 1 {
			return fmt.Errorf("--gc-percent %d: must be at least 1", pct)
		}
	case os.Getenv("GOGC") != "":
		return nil
	default:
		pct = defaultGCPercent
	}
	debug.SetGCPercent(pct)
	return nil
}

// sizeFlag is a byte size flag: a number with an optional unit (B, KiB,
// MiB, GiB, or KB, MB, GB as powers of ten), or -1.
type sizeFlag struct{ v *int64 }

func (f sizeFlag) String() string {
	if f.v == nil {
		return "0"
	}
	return strconv.FormatInt(*f.v, 10)
}

func (f sizeFlag) Type() string { return "size" }

func (f sizeFlag) Set(s string) error {
	n, err := parseSize(s)
	if err != nil {
		return err
	}
	*f.v = n
	return nil
}

// diskReserveFlag is --disk-reserve: a size (sizeFlag's syntax, -1 for no
// reserve) or a percentage of the disk such as 5%.
type diskReserveFlag struct {
	bytes   *int64
	percent *float64
}

func (f diskReserveFlag) String() string {
	if f.percent != nil && *f.percent > 0 {
		return strconv.FormatFloat(*f.percent, 'g', -1, 64) + "%"
	}
	return sizeFlag{f.bytes}.String()
}

func (f diskReserveFlag) Type() string { return "size|percent" }

func (f diskReserveFlag) Set(s string) error {
	if num, ok := strings.CutSuffix(strings.TrimSpace(s), "%"); ok {
		p, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
		if err != nil || !(p > 0 && p < 100) {
			return fmt.Errorf("bad percentage %q: want a number in (0, 100) followed by %%", s)
		}
		*f.percent, *f.bytes = p, 0
		return nil
	}
	n, err := parseSize(s)
	if err != nil {
		return err
	}
	*f.bytes, *f.percent = n, 0
	return nil
}

// parseSize parses a byte size such as 64MiB, 512KB or 1048576.
func parseSize(s string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range units {
		if rest, ok := strings.CutSuffix(num, u.suffix); ok {
			num, mult = strings.TrimSpace(rest), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < -1 || (n == -1 && mult != 1) || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("bad size %q: want a number of bytes with an optional unit (KiB, MiB, GiB, KB, MB, GB), or -1", s)
	}
	return n * mult, nil
}

func orOff(addr string) string {
	if addr == "" {
		return "off"
	}
	return addr
}

func newInitCmd() *cobra.Command {
	var (
		host        string
		timeout     time.Duration
		splitAt     []string
		splitAtFile string
		tf          tlsFlags

		dialTimeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Initialize a new cluster on a started node",
		Long: `Make the node at --host create a new cluster. Run it once, on one node; the other
nodes join it with --join. Initializing a node that is already part of a cluster
is refused. --split-at pre-splits the keyspace: the cluster starts with one
range ending at each key, and the placement driver spreads them over the
nodes as they join. --split-at-file reads more keys from a file, one per line
(text, or hex with a 0x prefix; empty lines are skipped), for more keys than
fit on a command line. At most 20000 keys in all.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			tlsConfig, err := tf.config(cmd.Flags())
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			conn, closeConn, err := dial(ctx, host, dialTimeout, tlsConfig)
			if err != nil {
				return err
			}
			defer closeConn()
			req := &flotillapb.InitRequest{}
			for _, k := range splitAt {
				req.SplitKeys = append(req.SplitKeys, []byte(k))
			}
			if splitAtFile != "" {
				keys, err := readSplitKeys(splitAtFile)
				if err != nil {
					return err
				}
				req.SplitKeys = append(req.SplitKeys, keys...)
			}
			resp, err := flotillapb.NewNodeClient(conn).Init(ctx, req)
			if err != nil {
				if status.Code(err) == codes.FailedPrecondition {
					return fmt.Errorf("cluster already initialized: %s", status.Convert(err).Message())
				}
				return fmt.Errorf("init %s: %s", host, describe(err))
			}
			fmt.Fprintf(cmd.OutOrStdout(), "cluster %s initialized; node %d is its first node\n", resp.GetClusterId(), resp.GetNodeId())
			return nil
		},
	}
	cmd.Flags().StringVar(&host, "host", server.DefaultListenAddr, "the node to initialize, HOST:PORT")
	cmd.Flags().StringSliceVar(&splitAt, "split-at", nil, "pre-split the keyspace at these keys, KEY[,KEY...]")
	cmd.Flags().StringVar(&splitAtFile, "split-at-file", "", "pre-split the keyspace at the keys in this file, one per line (text, or hex with 0x)")
	cmd.Flags().DurationVar(&timeout, "timeout", 10*time.Second, "give up after this long")
	cmd.Flags().DurationVar(&dialTimeout, "dial-timeout", flotilla.DefaultDialTimeout, "fail when the node cannot be reached for this long")
	tf.register(cmd.Flags())
	return cmd
}

// maxSplitKeysFile bounds a --split-at-file.
const maxSplitKeysFile = 64 << 20

// readSplitKeys reads a --split-at-file: one key per line, text or hex
// with a 0x prefix (as `cluster split` takes them), empty lines skipped.
func readSplitKeys(name string) ([][]byte, error) {
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, fmt.Errorf("--split-at-file: %v", err)
	}
	if len(data) > maxSplitKeysFile {
		return nil, fmt.Errorf("--split-at-file %s: %d bytes, more than %d", name, len(data), maxSplitKeysFile)
	}
	var keys [][]byte
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSuffix(line, "\r")
		if line == "" {
			continue
		}
		k, err := parseKey(line)
		if err != nil {
			return nil, fmt.Errorf("--split-at-file %s, line %d: %v", name, i+1, err)
		}
		keys = append(keys, k)
	}
	return keys, nil
}

// describe renders an RPC error for people.
func describe(err error) string {
	if st, ok := status.FromError(err); ok {
		if st.Code() == codes.Unavailable && !strings.Contains(st.Message(), "flotilla") {
			return "node unreachable: " + st.Message()
		}
		return st.Message()
	}
	return err.Error()
}
