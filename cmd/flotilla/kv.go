// Copyright 2026 The Flotilla Authors. All rights reserved.

package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/flotilladb/flotilla"
	"github.com/flotilladb/flotilla/rpc"
	"github.com/flotilladb/flotilla/server"
	"github.com/spf13/cobra"
	"google.golang.org/grpc"
)

// dial connects to one node for the admin services, over TLS if tlsConfig
// is not nil, waiting up to dialTimeout for it to answer; if it does not,
// the error says why (refused, a TLS refusal, a secure node reached in
// plaintext).
func dial(ctx context.Context, host string, dialTimeout time.Duration, tlsConfig *tls.Config) (*grpc.ClientConn, func(), error) {
	pool := rpc.NewPool(rpc.PoolConfig{TLS: tlsConfig})
	conn, err := pool.Ready(ctx, host, dialTimeout)
	if err != nil {
		_ = pool.Close()
		return nil, nil, fmt.Errorf("--host %q: %w", host, err)
	}
	return conn, func() { _ = pool.Close() }, nil
}

// splitHosts returns the HOST:PORT entries of a comma-separated --host
// list, or an error naming the malformed ones.
func splitHosts(list string) ([]string, error) {
	var hosts []string
	var bad []string
	for _, h := range strings.Split(list, ",") {
		if h = strings.TrimSpace(h); h == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(h); err != nil {
			bad = append(bad, fmt.Sprintf("%q (want HOST:PORT)", h))
			continue
		}
		hosts = append(hosts, h)
	}
	if len(bad) > 0 {
		return nil, fmt.Errorf("--host: %s", strings.Join(bad, ", "))
	}
	if len(hosts) == 0 {
		return nil, errors.New("--host: no node given")
	}
	return hosts, nil
}

// dialAny connects to the first node of the --host list that can be
// reached within dialTimeout each, for the admin services, and returns its
// connection and address. When none can, the error says why for each.
func dialAny(ctx context.Context, list string, dialTimeout time.Duration, tlsConfig *tls.Config) (*grpc.ClientConn, string, func(), error) {
	hosts, err := splitHosts(list)
	if err != nil {
		return nil, "", nil, err
	}
	pool := rpc.NewPool(rpc.PoolConfig{TLS: tlsConfig})
	var causes []string
	for _, h := range hosts {
		conn, err := pool.Ready(ctx, h, dialTimeout)
		if err == nil {
			return conn, h, func() { _ = pool.Close() }, nil
		}
		causes = append(causes, err.Error())
		if ctx.Err() != nil {
			break
		}
	}
	_ = pool.Close()
	return nil, "", nil, fmt.Errorf("no node of --host %s could be reached: %s", list, strings.Join(causes, "; "))
}

type kvFlags struct {
	tlsFlags
	hosts       string
	dialTimeout time.Duration
	timeout     time.Duration
	// format is text or json.
	format string
	// readFrom (--read-from, kv get and scan) and zone (--zone).
	readFrom, zone string
}

// run connects a client and runs fn with a deadline.
func (f *kvFlags) run(cmd *cobra.Command, fn func(ctx context.Context, kv flotilla.KV, out io.Writer) error) error {
	if f.format != "text" && f.format != "json" {
		return fmt.Errorf("--format %q: want text or json", f.format)
	}
	endpoints, err := splitHosts(f.hosts)
	if err != nil {
		return err
	}
	tlsConfig, err := f.config(cmd.Flags())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), f.timeout)
	defer cancel()
	readFrom := flotilla.Leader
	if f.readFrom != "" {
		if readFrom, err = flotilla.ParseReplica(f.readFrom); err != nil {
			return fmt.Errorf("--read-from: %v", err)
		}
	}
	c, err := flotilla.New(flotilla.Config{Endpoints: endpoints, DialTimeout: f.dialTimeout, TLS: tlsConfig, ReadFrom: readFrom, Zone: f.zone})
	if err != nil {
		return err
	}
	defer c.Close()
	return fn(ctx, c, cmd.OutOrStdout())
}

// registerRead adds the flags that choose the replica serving a read.
func (f *kvFlags) registerRead(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.readFrom, "read-from", "leader",
		"replica that serves the read: leader, follower (the --host node's own replica if it has one, else another than the leader) "+
			"or nearest (the --host node's own, else one in --zone, else the leader); every choice is linearizable")
	cmd.Flags().StringVar(&f.zone, "zone", "", `the client's zone: --read-from nearest prefers replicas on stores with this "zone" label`)
}

// checkRev refuses a negative --rev.
func checkRev(rev int64) error {
	if rev < 0 {
		return fmt.Errorf("--rev must not be negative (0: the latest), got %d", rev)
	}
	return nil
}

// revisionError explains a read or compaction refused for its revision.
func revisionError(err error) error {
	var fe *flotilla.Error
	switch {
	case errors.Is(err, flotilla.ErrCompacted) && errors.As(err, &fe):
		return fmt.Errorf("the revision was compacted (reads at or above %d work): %w", fe.CompactRevision(), err)
	case errors.Is(err, flotilla.ErrFutureRevision) && errors.As(err, &fe):
		return fmt.Errorf("the revision is above the current revision %d: %w", fe.CurrentRevision(), err)
	}
	return err
}

func newKVCmd() *cobra.Command {
	f := &kvFlags{}
	kv := &cobra.Command{
		Use:   "kv",
		Short: "Read and write keys",
		Long: `Read and write keys through any node of a cluster (it routes the request).
Keys and values are taken as given on the command line (UTF-8 bytes).

Every write has a revision, from one cluster-wide counter; reads may be at a
past revision (--rev) until it is compacted (kv compact). docs/REVISIONS.md
describes them.

Output: with --format text (the default) a key or value is printed as it is
if it is non-empty printable UTF-8 without tabs or newlines and does not begin
with a double quote, else Go-quoted ("a\nb", "\x00", ""). With --format json
every command prints one JSON object; keys and values are strings ("key",
"value"), or "key_base64"/"value_base64" when they are not UTF-8.`,
	}
	kv.PersistentFlags().StringVar(&f.hosts, "host", server.DefaultListenAddr, "node(s) to send the request to, HOST:PORT[,HOST:PORT...]")
	kv.PersistentFlags().DurationVar(&f.dialTimeout, "dial-timeout", flotilla.DefaultDialTimeout, "fail when no node can be reached for this long")
	kv.PersistentFlags().DurationVar(&f.timeout, "timeout", 10*time.Second, "give up after this long")
	kv.PersistentFlags().StringVar(&f.format, "format", "text", "output format: text or json")
	f.register(kv.PersistentFlags())

	var getRev int64
	get := &cobra.Command{
		Use:   "get KEY",
		Short: "Print a key's value (exit status 1 if it does not exist)",
		Long: `Print KEY's value, as of revision --rev (0: the latest). Exit status 1 if it
does not exist. --format json prints key, value, create_revision,
mod_revision, version, lease and the revision the read was served at.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkRev(getRev); err != nil {
				return err
			}
			return f.run(cmd, func(ctx context.Context, kv flotilla.KV, out io.Writer) error {
				r, err := kv.GetAt(ctx, []byte(args[0]), getRev)
				if err != nil {
					return revisionError(err)
				}
				if !r.Found {
					return fmt.Errorf("key %q not found (at revision %d)", args[0], r.Revision)
				}
				if f.format == "json" {
					return printJSON(out, jsonGet{jsonKV: newJSONKV(r.KV), Revision: r.Revision})
				}
				fmt.Fprintln(out, textBytes(r.KV.Value))
				return nil
			})
		},
	}
	get.Flags().Int64Var(&getRev, "rev", 0, "read as of this revision (0: the latest)")
	f.registerRead(get)
	put := &cobra.Command{
		Use:   "put KEY VALUE",
		Short: "Set a key's value and print the write's revision",
		Long: `Set KEY to VALUE. Prints "OK (revision N)", or with --format json
{"revision": N}.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.run(cmd, func(ctx context.Context, kv flotilla.KV, out io.Writer) error {
				rev, err := kv.PutRev(ctx, []byte(args[0]), []byte(args[1]))
				if err != nil {
					return err
				}
				if f.format == "json" {
					return printJSON(out, jsonWrite{Revision: rev})
				}
				fmt.Fprintf(out, "OK (revision %d)\n", rev)
				return nil
			})
		},
	}
	del := &cobra.Command{
		Use:     "del KEY",
		Aliases: []string{"delete"},
		Short:   "Delete a key",
		Long: `Delete KEY. Prints "deleted (revision N)" or "not found (revision N)", or with
--format json {"revision": N, "found": true|false}.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.run(cmd, func(ctx context.Context, kv flotilla.KV, out io.Writer) error {
				existed, rev, err := kv.DeleteRev(ctx, []byte(args[0]))
				if err != nil {
					return err
				}
				if f.format == "json" {
					return printJSON(out, jsonWrite{Revision: rev, Found: &existed})
				}
				if existed {
					fmt.Fprintf(out, "deleted (revision %d)\n", rev)
				} else {
					fmt.Fprintf(out, "not found (revision %d)\n", rev)
				}
				return nil
			})
		},
	}
	var (
		limit   int
		reverse bool
		scanRev int64
	)
	scan := &cobra.Command{
		Use:   "scan START [END]",
		Short: "Print the pairs in [START, END), one key<TAB>value line each, in key order",
		Long: `Print the pairs with START <= key < END, one "key<TAB>value" line each, in key
order (descending with --reverse). An empty or missing END ("") means the end
of the keyspace. The whole scan is read at one revision, --rev or else the
latest when it began: one consistent snapshot, however many ranges and pages
it takes. --format json prints {"revision": N, "kvs": [...]}, each pair with
key, value, create_revision, mod_revision, version and lease.`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit < 0 {
				return fmt.Errorf("--limit must not be negative, got %d", limit)
			}
			if err := checkRev(scanRev); err != nil {
				return err
			}
			start, end := []byte(args[0]), []byte(nil)
			if len(args) == 2 {
				end = []byte(args[1])
			}
			return f.run(cmd, func(ctx context.Context, kv flotilla.KV, out io.Writer) error {
				kvs, rev, err := scanAll(ctx, kv, start, end, flotilla.ScanOptions{Limit: limit, Reverse: reverse, Revision: scanRev})
				if err != nil {
					return revisionError(err)
				}
				if f.format == "json" {
					j := jsonScan{Revision: rev, KVs: []jsonKV{}}
					for _, p := range kvs {
						j.KVs = append(j.KVs, newJSONKV(p))
					}
					return printJSON(out, j)
				}
				for _, p := range kvs {
					fmt.Fprintf(out, "%s\t%s\n", textBytes(p.Key), textBytes(p.Value))
				}
				return nil
			})
		},
	}
	scan.Flags().IntVar(&limit, "limit", 0, "print at most this many pairs (0: all)")
	scan.Flags().BoolVar(&reverse, "reverse", false, "descending key order")
	scan.Flags().Int64Var(&scanRev, "rev", 0, "read as of this revision (0: the latest)")
	f.registerRead(scan)
	var expectAbsent bool
	cas := &cobra.Command{
		Use:   "cas KEY EXPECTED NEW | cas --expect-absent KEY NEW",
		Short: "Set KEY to NEW if it holds EXPECTED (or, with --expect-absent, does not exist)",
		Long: `Compare-and-swap: set KEY to NEW only if its value is EXPECTED, or with
--expect-absent only if KEY does not exist. Prints "swapped", or "not swapped"
with the current value; a failed comparison is not an error (exit status 0).
--format json prints {"swapped": ..., "found": ..., "current": ...}.`,
		Args: func(cmd *cobra.Command, args []string) error {
			if expectAbsent {
				return cobra.ExactArgs(2)(cmd, args)
			}
			return cobra.ExactArgs(3)(cmd, args)
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			key, cond, value := []byte(args[0]), flotilla.ExpectAbsent(), []byte(args[1])
			if !expectAbsent {
				cond, value = flotilla.ExpectValue([]byte(args[1])), []byte(args[2])
			}
			return f.run(cmd, func(ctx context.Context, kv flotilla.KV, out io.Writer) error {
				r, err := kv.CompareAndSwap(ctx, key, cond, value)
				if err != nil {
					return err
				}
				if f.format == "json" {
					j := jsonCAS{Swapped: r.Swapped, Found: r.Found}
					if !r.Swapped && r.Found {
						jsonBytes(r.Current, &j.Current, &j.CurrentBase64)
					}
					return printJSON(out, j)
				}
				switch {
				case r.Swapped:
					fmt.Fprintln(out, "swapped")
				case r.Found:
					fmt.Fprintf(out, "not swapped: current value %q\n", r.Current)
				default:
					fmt.Fprintln(out, "not swapped: key does not exist")
				}
				return nil
			})
		},
	}
	cas.Flags().BoolVar(&expectAbsent, "expect-absent", false, "swap only if the key does not exist (then give KEY NEW)")
	txn := &cobra.Command{
		Use:   "txn",
		Short: "Run a transaction read from stdin (etcdctl txn's format)",
		Long: `Read a transaction from stdin, in etcdctl txn's format, and run it: if every
compare holds, the success ops run, else the failure ops, atomically at one
revision. The input is compare lines, a blank line, success op lines, a blank
line, failure op lines (the end of input ends a section too):

  mod("k") > "5"
  value("k") = "v"

  put k "new value"
  get k

  get k

A compare is TARGET("KEY") OP "VALUE": TARGET is value (val), version (ver),
create (c) or mod (m); OP is =, !=, < or >; KEY and VALUE are double-quoted
(Go syntax: "\n", "\x00"), and a revision or version may be given bare.
create("k") = "0" holds when k does not exist. An op is put KEY VALUE,
get KEY [END] (a scan of [KEY, END)) or del KEY [END] (a delete-range); a
word may be double-quoted (Go syntax) or single-quoted ('a b', literally);
END "" is the end of the keyspace. The compares and writes must lie in one
range; the reads may lie anywhere and are read at the txn's revision.

Prints SUCCESS or FAILURE with the revision, then each op's result after a
blank line (OK; deleted, not found or deleted N; key<TAB>value lines). With
--format json: {"succeeded": ..., "revision": N, "results": [{"op": ...}]}.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			spec, err := parseTxn(cmd.InOrStdin())
			if err != nil {
				return fmt.Errorf("txn: %w", err)
			}
			return f.run(cmd, func(ctx context.Context, kv flotilla.KV, out io.Writer) error {
				res, err := spec.build(kv.Txn()).Commit(ctx)
				if err != nil {
					return err
				}
				ops := spec.then
				if !res.Succeeded {
					ops = spec.els
				}
				return printTxn(out, f.format, res, ops)
			})
		},
	}
	compact := &cobra.Command{
		Use:   "compact REV",
		Short: "Discard the versions older than revision REV",
		Long: `Compact every range at revision REV: per key, keep the newest version at or
below REV and every version above. Reads below REV fail afterwards. REV must be
positive and at most the current revision. Prints "compacted at revision N",
or with --format json {"revision": N}.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rev, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil || rev <= 0 {
				return fmt.Errorf("REV %q: want a positive revision", args[0])
			}
			return f.run(cmd, func(ctx context.Context, kv flotilla.KV, out io.Writer) error {
				if err := kv.Compact(ctx, rev); err != nil {
					return revisionError(err)
				}
				if f.format == "json" {
					return printJSON(out, jsonWrite{Revision: rev})
				}
				fmt.Fprintf(out, "compacted at revision %d\n", rev)
				return nil
			})
		},
	}
	kv.AddCommand(get, put, del, scan, cas, txn, compact)
	return kv
}

// scanAll reads [start, end) a page at a time, every page at one
// revision (opts.Revision, or the first page's), and returns the pairs
// and that revision.
func scanAll(ctx context.Context, kv flotilla.KV, start, end []byte, opts flotilla.ScanOptions) ([]flotilla.KeyValue, int64, error) {
	var out []flotilla.KeyValue
	for {
		page := opts
		if opts.Limit > 0 {
			page.Limit = opts.Limit - len(out)
		}
		res, err := kv.ScanAt(ctx, start, end, page)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, res.KVs...)
		opts.Revision = res.Revision
		if res.Resume == nil || (opts.Limit > 0 && len(out) >= opts.Limit) {
			return out, res.Revision, nil
		}
		if opts.Reverse {
			end = res.Resume
		} else {
			start = res.Resume
		}
	}
}
