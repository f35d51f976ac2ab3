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
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/flotilladb/flotilla/placement"
	"github.com/flotilladb/flotilla/rpc"
	"github.com/flotilladb/flotilla/server"
	"github.com/spf13/cobra"
)

const demoNodes = 3

func newDemoCmd() *cobra.Command {
	var (
		store    string
		basePort int
		logLevel string
		certsDir string
		insecure bool
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run a 3-node cluster in this process, for trying Flotilla out",
		Long: `Run a 3-node cluster in one process on local ports: node i listens for gRPC on
127.0.0.1:BASE+i-1 and for HTTP on 127.0.0.1:BASE+80+i-1 (--base-port 0 picks free
ports). Data goes to a temporary directory that is removed at exit, or to --store,
which is kept. Stop it with Ctrl-C.

The cluster is secure: it makes a throwaway CA, a node certificate for
127.0.0.1 and localhost and a client certificate for root in the data directory
(or uses those in --certs-dir, making any that are missing), and prints the
--certs-dir clients need. --insecure runs it in plaintext instead.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if basePort < 0 || basePort > 65535-100 {
				return fmt.Errorf("--base-port %d: want 0 (free ports) or a port below 65435", basePort)
			}
			log, err := newLogger(logLevel)
			if err != nil {
				return err
			}
			dir := store
			if dir == "" {
				if dir, err = os.MkdirTemp("", "flotilla-demo-"); err != nil {
					return err
				}
				defer os.RemoveAll(dir)
			}
			if insecure && certsDir != "" {
				return errors.New("--insecure and --certs-dir are exclusive")
			}
			if !insecure {
				if certsDir == "" {
					certsDir = filepath.Join(dir, "certs")
				}
				if err := demoCerts(certsDir); err != nil {
					return err
				}
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			server.Version = version
			nodes, err := startDemo(ctx, dir, certsDir, basePort, log)
			defer func() {
				// A node whose store failed may never finish closing (a
				// commit stuck in Pebble): give up after a while, as
				// flotilla start does.
				closed := make(chan struct{})
				go func() {
					defer close(closed)
					for _, n := range nodes {
						_ = n.Close()
					}
				}()
				select {
				case <-closed:
				case <-time.After(30 * time.Second):
					fmt.Fprintln(cmd.ErrOrStderr(), "flotilla demo: the nodes did not stop within 30s; exiting")
				}
			}()
			if err != nil {
				return err
			}
			printDemo(cmd.OutOrStdout(), dir, certsDir, nodes, store == "")
			// A node whose store failed (a full disk, say) stopped
			// itself: end the demo with its reason, non-zero.
			failed := make(chan *server.Node, len(nodes))
			for _, n := range nodes {
				go func() {
					select {
					case <-n.Failed():
						failed <- n
					case <-ctx.Done():
					}
				}()
			}
			select {
			case <-ctx.Done():
				fmt.Fprintln(cmd.ErrOrStderr(), "flotilla demo: shutting down")
				return nil
			case n := <-failed:
				stop()
				return fmt.Errorf("flotilla demo: node %d stopped: %w", n.NodeID(), n.FailErr())
			}
		},
	}
	cmd.Flags().StringVar(&store, "store", "", "keep the nodes' data under this directory (default: a temporary one, removed at exit)")
	cmd.Flags().IntVar(&basePort, "base-port", 7400, "first gRPC port (HTTP ports start 80 higher); 0 picks free ports")
	cmd.Flags().StringVar(&logLevel, "log-level", "warn", "log level: debug, info, warn or error")
	cmd.Flags().StringVar(&certsDir, "certs-dir", "", "use the certificates in this directory, making any missing (default: a certs directory in the data directory)")
	cmd.Flags().BoolVar(&insecure, "insecure", false, "run without TLS (plaintext, no certificates)")
	return cmd
}

func demoAddr(basePort, offset int) string {
	if basePort == 0 {
		return "127.0.0.1:0"
	}
	return "127.0.0.1:" + strconv.Itoa(basePort+offset)
}

// startDemo starts the nodes and waits until the first range has a replica
// on each.
func startDemo(ctx context.Context, dir, certsDir string, basePort int, log *slog.Logger) ([]*server.Node, error) {
	var nodes []*server.Node
	for i := range demoNodes {
		cfg := server.Config{
			Dir:        filepath.Join(dir, fmt.Sprintf("node%d", i+1)),
			ListenAddr: demoAddr(basePort, i),
			HTTPAddr:   demoAddr(basePort, 80+i),
			CertsDir:   certsDir,
			Logger:     log,
		}
		if i == 0 {
			cfg.Bootstrap = true
		} else {
			cfg.Join = []string{nodes[0].Addr()}
		}
		n, err := server.Open(ctx, cfg)
		if err != nil {
			return nodes, fmt.Errorf("starting node %d: %w", i+1, err)
		}
		nodes = append(nodes, n)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		if demoReplicated(nodes) {
			return nodes, nil
		}
		if time.Now().After(deadline) {
			return nodes, errors.New("the demo cluster did not replicate its first range to 3 nodes within 60s")
		}
		select {
		case <-ctx.Done():
			return nodes, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// demoReplicated reports whether every node holds a voter of the first
// range and of the placement group.
func demoReplicated(nodes []*server.Node) bool {
	for _, n := range nodes {
		st := n.Status(false)
		voters := 0
		for _, r := range st.GetReplicas() {
			if r.GetGroupId() == uint64(placement.FirstRangeID) && len(r.GetDescriptor_().GetReplicas()) == demoNodes {
				voters++
			}
		}
		if voters == 0 || st.GetState() != "running" {
			return false
		}
	}
	return true
}

// demoCerts makes, in dir, the certificates of a demo cluster that are
// missing: a CA, a node certificate for the loopback names, and root's
// client certificate. A new CA gets new node and client certificates.
func demoCerts(dir string) error {
	exists := func(name string) bool {
		_, err := os.Stat(filepath.Join(dir, name))
		return err == nil
	}
	req := rpc.CertRequest{CertsDir: dir}
	newCA := !exists(rpc.CACertFile)
	if newCA {
		if err := rpc.CreateCA(rpc.CertRequest{CertsDir: dir, Overwrite: true}); err != nil {
			return err
		}
		req.Overwrite = true
	}
	if newCA || !exists(rpc.NodeCertFile) {
		if err := rpc.CreateNodeCert(req, []string{"127.0.0.1", "::1", "localhost"}); err != nil {
			return err
		}
	}
	if c, _ := rpc.ClientCertFiles(rpc.RootUser); newCA || !exists(c) {
		if err := rpc.CreateClientCert(req, rpc.RootUser); err != nil {
			return err
		}
	}
	return nil
}

func printDemo(w io.Writer, dir, certsDir string, nodes []*server.Node, temporary bool) {
	where := dir
	if temporary {
		where += " (removed at exit)"
	}
	fmt.Fprintf(w, "Flotilla demo cluster: %d nodes, data in %s\n", len(nodes), where)
	scheme, certs := "https", " --certs-dir "+certsDir
	if certsDir == "" {
		scheme, certs = "http", ""
		fmt.Fprintln(w, "  INSECURE: plaintext, no certificates")
	} else {
		fmt.Fprintf(w, "  certs %s (clients: --certs-dir %s)\n", certsDir, certsDir)
	}
	for i, n := range nodes {
		fmt.Fprintf(w, "  node %d: grpc %s  http %s://%s\n", i+1, n.Addr(), scheme, n.HTTPAddr())
	}
	first := nodes[0].Addr()
	fmt.Fprintf(w, "Try:\n  flotilla kv put --host %s%s hello world\n  flotilla kv get --host %s%s hello\n  flotilla cluster status --host %s%s\n",
		first, certs, first, certs, first, certs)
	fmt.Fprintln(w, "Press Ctrl-C to stop.")
}
