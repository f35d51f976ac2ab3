// Copyright 2026 The Flotilla Authors. All rights reserved.

package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime"

	"github.com/flotilladb/flotilla/engine"
	"github.com/spf13/cobra"
)

// version is set at build time by the Makefile (-ldflags "-X main.version=...").
var version = "dev"

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "flotilla",
		Short:         "Flotilla: a multi-raft sharded key-value store",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newStartCmd(), newInitCmd(), newDemoCmd(), newKVCmd(), newClusterCmd(), newBenchCmd(), newCertCmd(), newVersionCmd(), newDebugCmd())
	return root
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the version of this binary",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintf(cmd.OutOrStdout(), "flotilla %s (%s, %s/%s)\n", version, runtime.Version(), runtime.GOOS, runtime.GOARCH)
		},
	}
}

func newDebugCmd() *cobra.Command {
	debug := &cobra.Command{
		Use:   "debug",
		Short: "Inspect a store's data directory (the node must be stopped)",
	}
	var (
		store  string
		limit  int
		values bool
	)
	keys := &cobra.Command{
		Use:   "keys",
		Short: "Print every key of a store in order, decoded",
		Long: "Print every key of a stopped store's engine in key order, one per line, decoded\n" +
			"(e.g. /Range/7/Raft/Log/42), with the size of its value or, with --values, the value quoted.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if store == "" {
				return errors.New("--store is required")
			}
			if limit < 0 {
				return fmt.Errorf("--limit must not be negative, got %d", limit)
			}
			return printKeys(cmd.OutOrStdout(), store, limit, values)
		},
	}
	keys.Flags().StringVar(&store, "store", "", "the store's data directory (required)")
	keys.Flags().IntVar(&limit, "limit", 0, "stop after this many keys (0: no limit)")
	keys.Flags().BoolVar(&values, "values", false, "print values (quoted) instead of their sizes")
	debug.AddCommand(keys)
	return debug
}

func printKeys(w io.Writer, dir string, limit int, values bool) error {
	if _, err := os.Stat(dir); err != nil {
		return fmt.Errorf("store directory: %w", err)
	}
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	e, err := engine.Open(engine.Options{Dir: dir, Logger: quiet, CacheSize: 8 << 20,
		ReadOnly: true, ErrorIfNotExists: true})
	if err != nil {
		return err
	}
	defer e.Close()
	all := engine.Span{Start: []byte{0x00}, End: []byte{0xff}}
	return engine.Scan(e, all, engine.ScanOptions{Limit: limit}, func(k, v []byte) error {
		var err error
		if values {
			_, err = fmt.Fprintf(w, "%s\t%q\n", engine.PrettyKey(k), v)
		} else {
			_, err = fmt.Fprintf(w, "%s\t%d bytes\n", engine.PrettyKey(k), len(v))
		}
		return err
	})
}
