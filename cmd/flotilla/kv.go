// Copyright 2026 The Flotilla Authors. All rights reserved.

package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
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
}

// run connects a client and runs fn with a deadline.
func (f *kvFlags) run(cmd *cobra.Command, fn func(ctx context.Context, kv flotilla.KV, out io.Writer) error) error {
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
	c, err := flotilla.New(flotilla.Config{Endpoints: endpoints, DialTimeout: f.dialTimeout, TLS: tlsConfig})
	if err != nil {
		return err
	}
	defer c.Close()
	return fn(ctx, c, cmd.OutOrStdout())
}

func newKVCmd() *cobra.Command {
	f := &kvFlags{}
	kv := &cobra.Command{
		Use:   "kv",
		Short: "Read and write keys",
		Long: `Read and write keys through any node of a cluster (it routes the request).
Keys and values are taken as given on the command line (UTF-8 bytes).`,
	}
	kv.PersistentFlags().StringVar(&f.hosts, "host", server.DefaultListenAddr, "node(s) to send the request to, HOST:PORT[,HOST:PORT...]")
	kv.PersistentFlags().DurationVar(&f.dialTimeout, "dial-timeout", flotilla.DefaultDialTimeout, "fail when no node can be reached for this long")
	kv.PersistentFlags().DurationVar(&f.timeout, "timeout", 10*time.Second, "give up after this long")
	f.register(kv.PersistentFlags())

	get := &cobra.Command{
		Use:   "get KEY",
		Short: "Print a key's value (exit status 1 if it does not exist)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.run(cmd, func(ctx context.Context, kv flotilla.KV, out io.Writer) error {
				v, err := kv.Get(ctx, []byte(args[0]))
				if errors.Is(err, flotilla.ErrKeyNotFound) {
					return fmt.Errorf("key %q not found", args[0])
				}
				if err != nil {
					return err
				}
				fmt.Fprintf(out, "%s\n", v)
				return nil
			})
		},
	}
	put := &cobra.Command{
		Use:   "put KEY VALUE",
		Short: "Set a key's value",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.run(cmd, func(ctx context.Context, kv flotilla.KV, out io.Writer) error {
				if err := kv.Put(ctx, []byte(args[0]), []byte(args[1])); err != nil {
					return err
				}
				fmt.Fprintln(out, "OK")
				return nil
			})
		},
	}
	del := &cobra.Command{
		Use:     "del KEY",
		Aliases: []string{"delete"},
		Short:   "Delete a key",
		Args:    cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return f.run(cmd, func(ctx context.Context, kv flotilla.KV, out io.Writer) error {
				existed, err := kv.Delete(ctx, []byte(args[0]))
				if err != nil {
					return err
				}
				if existed {
					fmt.Fprintln(out, "deleted")
				} else {
					fmt.Fprintln(out, "not found")
				}
				return nil
			})
		},
	}
	var (
		limit   int
		reverse bool
	)
	scan := &cobra.Command{
		Use:   "scan START END",
		Short: "Print the pairs in [START, END), one key<TAB>value line each, in key order",
		Long: `Print the pairs with START <= key < END, one "key<TAB>value" line each, in key
order (descending with --reverse). An empty END ("") means the end of the keyspace.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if limit < 0 {
				return fmt.Errorf("--limit must not be negative, got %d", limit)
			}
			return f.run(cmd, func(ctx context.Context, kv flotilla.KV, out io.Writer) error {
				kvs, err := kv.Scan(ctx, []byte(args[0]), []byte(args[1]), flotilla.ScanOptions{Limit: limit, Reverse: reverse})
				if err != nil {
					return err
				}
				for _, p := range kvs {
					fmt.Fprintf(out, "%s\t%s\n", p.Key, p.Value)
				}
				return nil
			})
		},
	}
	scan.Flags().IntVar(&limit, "limit", 0, "print at most this many pairs (0: all)")
	scan.Flags().BoolVar(&reverse, "reverse", false, "descending key order")
	var expectAbsent bool
	cas := &cobra.Command{
		Use:   "cas KEY EXPECTED NEW | cas --expect-absent KEY NEW",
		Short: "Set KEY to NEW if it holds EXPECTED (or, with --expect-absent, does not exist)",
		Long: `Compare-and-swap: set KEY to NEW only if its value is EXPECTED, or with
--expect-absent only if KEY does not exist. Prints "swapped", or "not swapped"
with the current value; a failed comparison is not an error (exit status 0).`,
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
	kv.AddCommand(get, put, del, scan, cas)
	return kv
}
