// Copyright 2026 The Flotilla Authors. All rights reserved.

package main

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/flotilladb/flotilla"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
)

func newClusterCmd() *cobra.Command {
	var (
		host    string
		timeout time.Duration
		format  string
	)
	cluster := &cobra.Command{
		Use:   "cluster",
		Short: "Inspect the cluster",
	}
	cluster.PersistentFlags().StringVar(&host, "host", flotilla.DefaultListenAddr, "a node of the cluster, HOST:PORT")
	cluster.PersistentFlags().DurationVar(&timeout, "timeout", 10*time.Second, "give up after this long")
	cluster.PersistentFlags().StringVar(&format, "format", "table", "output format: table or json")
	status := &cobra.Command{
		Use:   "status",
		Short: "Show the cluster's nodes, whether they answer, and their replicas",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "table" && format != "json" {
				return fmt.Errorf("--format %q: want table or json", format)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
			defer cancel()
			conn, closeConn, err := dial(host)
			if err != nil {
				return err
			}
			defer closeConn()
			resp, err := flotillapb.NewNodeClient(conn).ClusterStatus(ctx, &flotillapb.ClusterStatusRequest{})
			if err != nil {
				return fmt.Errorf("cluster status via %s: %s", host, describe(err))
			}
			if format == "json" {
				out, err := protojson.MarshalOptions{UseProtoNames: true, Indent: "  "}.Marshal(resp)
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(cmd.OutOrStdout(), "%s\n", out)
				return err
			}
			return printClusterStatus(cmd.OutOrStdout(), resp)
		},
	}
	cluster.AddCommand(status)
	return cluster
}

func printClusterStatus(w io.Writer, resp *flotillapb.ClusterStatusResponse) error {
	fmt.Fprintf(w, "cluster %s\n", resp.GetClusterId())
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tADDRESS\tHTTP\tLIVE\tREPLICAS\tLEADERS\tVERSION")
	for _, e := range resp.GetNodes() {
		replicas, leaders := 0, 0
		for _, r := range e.GetStatus().GetReplicas() {
			replicas++
			if r.GetReplicaId() == r.GetLeaderReplicaId() {
				leaders++
			}
		}
		live := "yes"
		if !e.GetLive() {
			live = "no"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%d\t%s\n", e.GetNode().GetNodeId(), e.GetNode().GetAddress(),
			e.GetNode().GetHttpAddress(), live, replicas, leaders, e.GetStatus().GetVersion())
	}
	return tw.Flush()
}
