// Copyright 2026 The Flotilla Authors. All rights reserved.

package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/flotilladb/flotilla"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"github.com/spf13/cobra"
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
	run := func(cmd *cobra.Command, fn func(ctx context.Context, pc flotillapb.PlacementClient, out io.Writer) error) error {
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
		return fn(ctx, flotillapb.NewPlacementClient(conn), cmd.OutOrStdout())
	}
	status := &cobra.Command{
		Use:   "status",
		Short: "Show the cluster's stores: address, liveness, replica and leader counts",
		Long: `Show every store of the cluster as the placement driver sees it: its address,
whether it heartbeated recently (live), its membership state, and the replicas
and leaders it reported. --format json prints an array of objects with
store_id, address, http_address, live, state, ranges, leaders,
seconds_since_heartbeat, capacity_bytes and available_bytes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return run(cmd, func(ctx context.Context, pc flotillapb.PlacementClient, out io.Writer) error {
				resp, err := pc.ListStores(ctx, &flotillapb.ListStoresRequest{})
				if err != nil {
					return fmt.Errorf("cluster status via %s: %s", host, describe(err))
				}
				if format == "json" {
					return printJSON(out, storesJSON(resp.GetStores()))
				}
				return printStores(out, resp.GetStores())
			})
		},
	}
	ranges := &cobra.Command{
		Use:   "ranges",
		Short: "Show the cluster's ranges: bounds, epoch, leader, replicas, size",
		Long: `Show every range as the placement driver sees it. --format json prints an array
with one object per range: range_id, start_key, end_key, version, conf_ver,
leader_store, replicas (store_id, replica_id, type), size_bytes and keys. Keys
are printed as text when they are printable UTF-8, else as 0x-prefixed hex.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return run(cmd, func(ctx context.Context, pc flotillapb.PlacementClient, out io.Writer) error {
				resp, err := pc.ListRanges(ctx, &flotillapb.ListRangesRequest{})
				if err != nil {
					return fmt.Errorf("cluster ranges via %s: %s", host, describe(err))
				}
				if format == "json" {
					return printJSON(out, rangesJSON(resp.GetRanges()))
				}
				return printRanges(out, resp.GetRanges())
			})
		},
	}
	cluster.AddCommand(status, ranges)
	return cluster
}

type storeJSON struct {
	StoreID               uint64  `json:"store_id"`
	Address               string  `json:"address"`
	HTTPAddress           string  `json:"http_address"`
	Live                  bool    `json:"live"`
	State                 string  `json:"state"`
	Ranges                uint32  `json:"ranges"`
	Leaders               uint32  `json:"leaders"`
	SecondsSinceHeartbeat float64 `json:"seconds_since_heartbeat"`
	CapacityBytes         uint64  `json:"capacity_bytes"`
	AvailableBytes        uint64  `json:"available_bytes"`
}

func storeState(s flotillapb.StoreState) string {
	return strings.ToLower(strings.TrimPrefix(s.String(), "STORE_"))
}

func storesJSON(stores []*flotillapb.StoreStatus) []storeJSON {
	out := []storeJSON{}
	for _, s := range stores {
		out = append(out, storeJSON{
			StoreID: s.GetNode().GetNodeId(), Address: s.GetNode().GetAddress(), HTTPAddress: s.GetNode().GetHttpAddress(),
			Live: s.GetLive(), State: storeState(s.GetNode().GetState()),
			Ranges: s.GetStats().GetRangeCount(), Leaders: s.GetStats().GetLeaderCount(),
			SecondsSinceHeartbeat: s.GetSecondsSinceHeartbeat(),
			CapacityBytes:         s.GetStats().GetCapacityBytes(), AvailableBytes: s.GetStats().GetAvailableBytes(),
		})
	}
	return out
}

func printStores(w io.Writer, stores []*flotillapb.StoreStatus) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STORE\tADDRESS\tLIVE\tSTATE\tRANGES\tLEADERS\tLAST HEARTBEAT")
	for _, s := range storesJSON(stores) {
		live := "yes"
		if !s.Live {
			live = "no"
		}
		last := "never"
		if s.SecondsSinceHeartbeat >= 0 {
			last = fmt.Sprintf("%.1fs ago", s.SecondsSinceHeartbeat)
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%d\t%s\n", s.StoreID, s.Address, live, s.State, s.Ranges, s.Leaders, last)
	}
	return tw.Flush()
}

type replicaJSON struct {
	StoreID   uint64 `json:"store_id"`
	ReplicaID uint64 `json:"replica_id"`
	Type      string `json:"type"`
}

type rangeJSON struct {
	RangeID     uint64        `json:"range_id"`
	StartKey    string        `json:"start_key"`
	EndKey      string        `json:"end_key"`
	Version     uint64        `json:"version"`
	ConfVer     uint64        `json:"conf_ver"`
	LeaderStore uint64        `json:"leader_store"`
	Replicas    []replicaJSON `json:"replicas"`
	SizeBytes   int64         `json:"size_bytes"`
	Keys        int64         `json:"keys"`
}

// printableKey renders a key as text if it is printable UTF-8, else as hex.
func printableKey(k []byte) string {
	if utf8.Valid(k) && !strings.ContainsFunc(string(k), func(r rune) bool { return !unicode.IsPrint(r) }) {
		return string(k)
	}
	return "0x" + hex.EncodeToString(k)
}

func rangesJSON(ranges []*flotillapb.RangeStatus) []rangeJSON {
	out := []rangeJSON{}
	for _, r := range ranges {
		d := r.GetDescriptor_()
		rj := rangeJSON{
			RangeID: d.GetRangeId(), StartKey: printableKey(d.GetStartKey()), EndKey: printableKey(d.GetEndKey()),
			Version: d.GetEpoch().GetVersion(), ConfVer: d.GetEpoch().GetConfVer(), LeaderStore: r.GetLeader().GetStoreId(),
			SizeBytes: r.GetStats().GetKeyBytes() + r.GetStats().GetValueBytes(), Keys: r.GetStats().GetKeys(),
			Replicas: []replicaJSON{},
		}
		for _, rep := range d.GetReplicas() {
			rj.Replicas = append(rj.Replicas, replicaJSON{StoreID: rep.GetStoreId(), ReplicaID: rep.GetReplicaId(), Type: strings.ToLower(rep.GetType().String())})
		}
		out = append(out, rj)
	}
	return out
}

func printRanges(w io.Writer, ranges []*flotillapb.RangeStatus) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RANGE\tSTART\tEND\tVERSION\tCONF_VER\tLEADER\tREPLICAS\tKEYS\tSIZE")
	for _, r := range rangesJSON(ranges) {
		var reps []string
		for _, rep := range r.Replicas {
			s := strconv.FormatUint(rep.StoreID, 10)
			if rep.Type == "learner" {
				s += "(learner)"
			}
			reps = append(reps, s)
		}
		end := r.EndKey
		if end == "0x" || end == "" {
			end = "<end>"
		}
		start := r.StartKey
		if start == "0x" || start == "" {
			start = "<start>"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%d\t%d\t%s\t%d\t%d\n", r.RangeID, start, end, r.Version, r.ConfVer, r.LeaderStore, strings.Join(reps, ","), r.Keys, r.SizeBytes)
	}
	return tw.Flush()
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
