// Copyright 2026 The Flotilla Authors. All rights reserved.

package main

import (
	"bytes"
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
	"github.com/flotilladb/flotilla/server"
	"github.com/spf13/cobra"
)

func newClusterCmd() *cobra.Command {
	var (
		hosts       string
		dialTimeout time.Duration
		timeout     time.Duration
		format      string
		tf          tlsFlags
		// host is the node of hosts that run reached, for messages.
		host string
	)
	cluster := &cobra.Command{
		Use:   "cluster",
		Short: "Inspect and manage the cluster: stores, ranges, operators, decommissioning",
	}
	cluster.PersistentFlags().StringVar(&hosts, "host", server.DefaultListenAddr, "node(s) of the cluster, HOST:PORT[,HOST:PORT...]: the first that answers is used")
	cluster.PersistentFlags().DurationVar(&dialTimeout, "dial-timeout", flotilla.DefaultDialTimeout, "give up on a node that cannot be reached after this long")
	cluster.PersistentFlags().DurationVar(&timeout, "timeout", 10*time.Second, "give up after this long")
	cluster.PersistentFlags().StringVar(&format, "format", "table", "output format: table or json")
	tf.register(cluster.PersistentFlags())
	run := func(cmd *cobra.Command, fn func(ctx context.Context, pc flotillapb.PlacementClient, out io.Writer) error) error {
		if format != "table" && format != "json" {
			return fmt.Errorf("--format %q: want table or json", format)
		}
		tlsConfig, err := tf.config(cmd.Flags())
		if err != nil {
			return err
		}
		ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
		defer cancel()
		conn, addr, closeConn, err := dialAny(ctx, hosts, dialTimeout, tlsConfig)
		if err != nil {
			return err
		}
		defer closeConn()
		host = addr
		return fn(ctx, flotillapb.NewPlacementClient(conn), cmd.OutOrStdout())
	}
	status := &cobra.Command{
		Use:   "status",
		Short: "Show the cluster's stores: address, liveness, replica and leader counts, labels",
		Long: `Show every store of the cluster as the placement driver sees it: its address,
whether it heartbeated recently (live), its membership state, the replicas
and leaders it holds by the ranges' latest reports, its part in the placement
group (PLACEMENT: leader, the acting placement driver; voter; learner; - none),
its alarms and its labels (start --labels). --format json prints an array of
objects with store_id, address, http_address, live, state, ranges, leaders,
placement, seconds_since_heartbeat, capacity_bytes, available_bytes, alarms
(e.g. ["NOSPACE"]: the store's disk is short of space and it refuses writes)
and labels (an object).`,
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
	operators := &cobra.Command{
		Use:   "operators",
		Short: "Show the placement driver's operators: running and recently ended",
		Long: `Show the operators the placement driver runs (replica checker, balancers, admin
requests) and the last ones that ended, with the balance scores (the spread of
replica and leader counts over the live stores). --format json prints an
object with operators (id, range_id, source, reason, steps, done, state,
error, age_seconds), counts by state, replica_balance and leader_balance.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return run(cmd, func(ctx context.Context, pc flotillapb.PlacementClient, out io.Writer) error {
				resp, err := pc.ListOperators(ctx, &flotillapb.ListOperatorsRequest{})
				if err != nil {
					return fmt.Errorf("cluster operators via %s: %s", host, describe(err))
				}
				if format == "json" {
					return printJSON(out, operatorsJSON(resp))
				}
				return printOperators(out, resp)
			})
		},
	}
	// operatorCmd is an admin command that starts an operator on a range.
	operatorCmd := func(use, short, long string, send func(ctx context.Context, pc flotillapb.PlacementClient, rangeID, store uint64) (*flotillapb.OperatorResponse, error)) *cobra.Command {
		return &cobra.Command{
			Use: use, Short: short, Long: long,
			Args: cobra.ExactArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error {
				rangeID, err := parseID("RANGE", args[0])
				if err != nil {
					return err
				}
				store, err := parseID("STORE", args[1])
				if err != nil {
					return err
				}
				return run(cmd, func(ctx context.Context, pc flotillapb.PlacementClient, out io.Writer) error {
					resp, err := send(ctx, pc, rangeID, store)
					if err != nil {
						return fmt.Errorf("cluster %s via %s: %s", cmd.Name(), host, describe(err))
					}
					if format == "json" {
						return printJSON(out, operatorJSONOf(resp.GetOperator()))
					}
					return printOperators(out, &flotillapb.ListOperatorsResponse{Operators: []*flotillapb.OperatorStatus{resp.GetOperator()}})
				})
			},
		}
	}
	const opNote = `
The placement driver starts an operator on the range (replacing the one running
there, if any); the range's leader executes it step by step. The command
returns once the operator is scheduled: follow it with 'flotilla cluster
operators' and 'flotilla cluster ranges'.`
	transfer := operatorCmd("transfer-leader RANGE STORE", "Move a range's leadership to its voter on STORE",
		"Move range RANGE's leadership to its voter on store STORE.\n"+opNote,
		func(ctx context.Context, pc flotillapb.PlacementClient, rangeID, store uint64) (*flotillapb.OperatorResponse, error) {
			return pc.TransferLeader(ctx, &flotillapb.TransferLeaderRequest{RangeId: rangeID, StoreId: store})
		})
	var learner bool
	add := operatorCmd("add-replica RANGE STORE", "Add a replica of a range on STORE",
		"Add a replica of range RANGE on store STORE: a learner that catches up by\nsnapshot, then (unless --learner) promoted to voter. The replica checker\nlater removes a voter beyond the replication factor.\n"+opNote,
		func(ctx context.Context, pc flotillapb.PlacementClient, rangeID, store uint64) (*flotillapb.OperatorResponse, error) {
			return pc.AddReplica(ctx, &flotillapb.AddReplicaRequest{RangeId: rangeID, StoreId: store, Learner: learner})
		})
	add.Flags().BoolVar(&learner, "learner", false, "add a learner (a non-voting replica) and leave it one")
	remove := operatorCmd("remove-replica RANGE STORE", "Remove a range's replica from STORE",
		"Remove range RANGE's replica on store STORE. It is refused if the range would\nlose its quorum of live voters. The replica checker later adds a voter\nelsewhere if the range has fewer than the replication factor.\n"+opNote,
		func(ctx context.Context, pc flotillapb.PlacementClient, rangeID, store uint64) (*flotillapb.OperatorResponse, error) {
			return pc.RemoveReplica(ctx, &flotillapb.RemoveReplicaRequest{RangeId: rangeID, StoreId: store})
		})
	var (
		wait        bool
		waitTimeout time.Duration
	)
	decommission := &cobra.Command{
		Use:   "decommission NODE",
		Short: "Move every replica off a node, then mark it decommissioned",
		Long: `Mark node NODE decommissioning: the placement driver moves every replica off it
(new replicas elsewhere first, so no range loses its quorum), then marks it
decommissioned; it takes no replicas from then on and can be stopped. The
command shows the replicas left every second until the node is decommissioned
(or --wait=false to return at once). With --format json the progress goes to
stderr and the final store status (store_id, state, replicas) to stdout.
Refused if fewer stores than the replication factor would remain.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID("NODE", args[0])
			if err != nil {
				return err
			}
			return runDecommission(cmd, run, &host, format, id, false, wait, waitTimeout)
		},
	}
	decommission.Flags().BoolVar(&wait, "wait", true, "wait until the node holds no replica and is decommissioned")
	decommission.Flags().DurationVar(&waitTimeout, "wait-timeout", 30*time.Minute, "give up waiting after this long (the decommission goes on)")
	removeStore := &cobra.Command{
		Use:   "remove-store NODE",
		Short: "Remove a dead node that will not come back: rebuild its replicas elsewhere",
		Long: `Remove node NODE, which is dead and will not come back (etcd's member remove):
the placement driver rebuilds every replica it held on the other stores at
once, without waiting for --store-down-timeout, and marks it decommissioned
when none is left; it takes no replicas from then on. Refused, changing
nothing, if the node is live (use decommission), if fewer stores than the
replication factor would remain, or if a range or the placement group with a
voter on the node has a majority of its voters on stores that are not live
(its membership cannot change until one comes back). Shows the replicas left
every second until done (--wait=false returns at once); --format json as for
decommission.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID("NODE", args[0])
			if err != nil {
				return err
			}
			return runDecommission(cmd, run, &host, format, id, true, wait, waitTimeout)
		},
	}
	removeStore.Flags().BoolVar(&wait, "wait", true, "wait until the node's replicas are rebuilt elsewhere and it is decommissioned")
	removeStore.Flags().DurationVar(&waitTimeout, "wait-timeout", 30*time.Minute, "give up waiting after this long (the removal goes on)")
	recommission := &cobra.Command{
		Use:   "recommission NODE",
		Short: "Let a decommissioning or decommissioned node take replicas again",
		Long: `Mark node NODE up again: it stops shedding replicas and the balancer moves
replicas back onto it over time.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := parseID("NODE", args[0])
			if err != nil {
				return err
			}
			return run(cmd, func(ctx context.Context, pc flotillapb.PlacementClient, out io.Writer) error {
				resp, err := pc.SetStoreState(ctx, &flotillapb.SetStoreStateRequest{StoreId: id, State: flotillapb.StoreState_STORE_UP})
				if err != nil {
					return fmt.Errorf("cluster recommission via %s: %s", host, describe(err))
				}
				return printStoreState(out, format, resp)
			})
		},
	}
	var splitWait time.Duration
	split := &cobra.Command{
		Use:   "split KEY",
		Short: "Split the range holding KEY at KEY",
		Long: `Split the range holding KEY in two at KEY: the range keeps the keys before it and
a new range, with replicas on the same stores, takes KEY and the rest. No data
moves. KEY is text, or hex with a 0x prefix. Refused if KEY already starts a
range. The command waits (up to --wait, 0 to return at once) until the
placement driver sees a range starting at KEY. Ranges also split by themselves
when they grow past the nodes' --split-size or serve more than --split-qps.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			key, err := parseKey(args[0])
			if err != nil {
				return err
			}
			return run(cmd, func(ctx context.Context, pc flotillapb.PlacementClient, out io.Writer) error {
				resp, err := pc.SplitRange(ctx, &flotillapb.SplitRangeRequest{Key: key})
				if err != nil {
					return fmt.Errorf("cluster split via %s: %s", host, describe(err))
				}
				// A split of the same range that ran first (by size or
				// load) makes the operator fail: ask again until the
				// split shows or the wait ends.
				deadline := time.Now().Add(splitWait)
				for splitWait > 0 {
					werr := waitRangeStart(ctx, pc, key, min(2*time.Second, time.Until(deadline)))
					if werr == nil {
						break
					}
					if time.Now().After(deadline) || ctx.Err() != nil {
						return fmt.Errorf("cluster split: %w (the operator may still finish: see 'flotilla cluster operators')", werr)
					}
					// A refusal because KEY now starts a range shows in the
					// next wait.
					if again, err := pc.SplitRange(ctx, &flotillapb.SplitRangeRequest{Key: key}); err == nil {
						resp = again
					}
				}
				if format == "json" {
					return printJSON(out, operatorJSONOf(resp.GetOperator()))
				}
				return printOperators(out, &flotillapb.ListOperatorsResponse{Operators: []*flotillapb.OperatorStatus{resp.GetOperator()}})
			})
		},
	}
	split.Flags().DurationVar(&splitWait, "wait", 8*time.Second, "wait this long for the split to show in the range list (0: return at once; bounded by --timeout)")
	cluster.AddCommand(status, ranges, operators, transfer, add, remove, decommission, removeStore, recommission, split, newRulesCmd(run, &host, &format))
	return cluster
}

// parseKey parses a key argument: text, or hex with a 0x prefix.
func parseKey(arg string) ([]byte, error) {
	if h, ok := strings.CutPrefix(arg, "0x"); ok {
		k, err := hex.DecodeString(h)
		if err != nil {
			return nil, fmt.Errorf("KEY %q: bad hex: %v", arg, err)
		}
		arg = string(k)
	}
	if len(arg) == 0 || len(arg) > 4096 {
		return nil, fmt.Errorf("KEY must be 1 to 4096 bytes, got %d", len(arg))
	}
	return []byte(arg), nil
}

// waitRangeStart polls the range list until a range starts at key.
func waitRangeStart(ctx context.Context, pc flotillapb.PlacementClient, key []byte, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		resp, err := pc.ListRanges(ctx, &flotillapb.ListRangesRequest{})
		if err == nil {
			for _, r := range resp.GetRanges() {
				if bytes.Equal(r.GetDescriptor_().GetStartKey(), key) && r.GetLeader() != nil {
					return nil
				}
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no range starts at %q after %v", key, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// parseID parses a positive ID argument.
func parseID(what, arg string) (uint64, error) {
	id, err := strconv.ParseUint(arg, 10, 64)
	if err != nil || id == 0 {
		return 0, fmt.Errorf("%s %q: want a positive integer", what, arg)
	}
	return id, nil
}

type storeStateJSON struct {
	StoreID  uint64 `json:"store_id"`
	State    string `json:"state"`
	Live     bool   `json:"live"`
	Replicas uint32 `json:"replicas"`
}

func storeStateOf(resp *flotillapb.SetStoreStateResponse) storeStateJSON {
	return storeStateJSON{StoreID: resp.GetStore().GetNode().GetNodeId(), State: storeState(resp.GetStore().GetNode().GetState()),
		Live: resp.GetStore().GetLive(), Replicas: resp.GetReplicas()}
}

func printStoreState(out io.Writer, format string, resp *flotillapb.SetStoreStateResponse) error {
	s := storeStateOf(resp)
	if format == "json" {
		return printJSON(out, s)
	}
	_, err := fmt.Fprintf(out, "store %d: %s, %d replicas\n", s.StoreID, s.State, s.Replicas)
	return err
}

// runDecommission marks a store decommissioning (dead: removes a dead
// store, remove-store) and, if wait, polls it every second, printing the
// replicas left, until it is decommissioned.
func runDecommission(cmd *cobra.Command, run func(*cobra.Command, func(context.Context, flotillapb.PlacementClient, io.Writer) error) error,
	host *string, format string, id uint64, dead, wait bool, waitTimeout time.Duration) error {
	var resp *flotillapb.SetStoreStateResponse
	what := "decommission"
	if dead {
		what = "remove-store"
	}
	err := run(cmd, func(ctx context.Context, pc flotillapb.PlacementClient, out io.Writer) error {
		var err error
		resp, err = pc.SetStoreState(ctx, &flotillapb.SetStoreStateRequest{StoreId: id, State: flotillapb.StoreState_STORE_DECOMMISSIONING, Dead: dead})
		if err != nil {
			return fmt.Errorf("cluster %s via %s: %s", what, *host, describe(err))
		}
		return nil
	})
	if err != nil {
		return err
	}
	progress := cmd.OutOrStdout()
	if format == "json" {
		progress = cmd.ErrOrStderr()
	}
	deadline := time.Now().Add(waitTimeout)
	last := ""
	for {
		s := storeStateOf(resp)
		line := fmt.Sprintf("store %d: %s, %d replicas left", s.StoreID, s.State, s.Replicas)
		if line != last {
			fmt.Fprintf(progress, "%s %s\n", time.Now().Format("15:04:05"), line)
			last = line
		}
		if !wait || resp.GetStore().GetNode().GetState() == flotillapb.StoreState_STORE_DECOMMISSIONED {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("store %d is still decommissioning after %v (%d replicas left); the %s goes on", id, waitTimeout, s.Replicas, what)
		}
		select {
		case <-cmd.Context().Done():
			return cmd.Context().Err()
		case <-time.After(time.Second):
		}
		// Asking again for the same state only reads it.
		err := run(cmd, func(ctx context.Context, pc flotillapb.PlacementClient, out io.Writer) error {
			r, err := pc.SetStoreState(ctx, &flotillapb.SetStoreStateRequest{StoreId: id, State: flotillapb.StoreState_STORE_DECOMMISSIONING, Dead: dead})
			if err != nil {
				return err
			}
			resp = r
			return nil
		})
		if err != nil {
			fmt.Fprintf(cmd.ErrOrStderr(), "checking progress: %s (retrying)\n", describe(err))
		}
	}
	if format == "json" {
		return printJSON(cmd.OutOrStdout(), storeStateOf(resp))
	}
	switch {
	case wait && dead:
		fmt.Fprintf(cmd.OutOrStdout(), "store %d is removed: its replicas live on the other stores\n", id)
	case wait:
		fmt.Fprintf(cmd.OutOrStdout(), "store %d is decommissioned: it holds no replica and can be stopped\n", id)
	}
	return nil
}

type operatorJSON struct {
	ID         uint64   `json:"id"`
	RangeID    uint64   `json:"range_id"`
	Source     string   `json:"source"`
	Reason     string   `json:"reason"`
	Steps      []string `json:"steps"`
	Done       uint32   `json:"done"`
	State      string   `json:"state"`
	Error      string   `json:"error,omitempty"`
	AgeSeconds float64  `json:"age_seconds"`
}

func operatorJSONOf(o *flotillapb.OperatorStatus) operatorJSON {
	steps := o.GetSteps()
	if steps == nil {
		steps = []string{}
	}
	return operatorJSON{ID: o.GetId(), RangeID: o.GetRangeId(), Source: o.GetSource(), Reason: o.GetReason(),
		Steps: steps, Done: o.GetDone(), State: o.GetState(), Error: o.GetError(), AgeSeconds: o.GetAgeSeconds()}
}

type operatorsJSONOut struct {
	Operators      []operatorJSON    `json:"operators"`
	Counts         map[string]uint64 `json:"counts"`
	ReplicaBalance uint32            `json:"replica_balance"`
	LeaderBalance  uint32            `json:"leader_balance"`
}

func operatorsJSON(resp *flotillapb.ListOperatorsResponse) operatorsJSONOut {
	out := operatorsJSONOut{Operators: []operatorJSON{}, Counts: resp.GetCounts(),
		ReplicaBalance: resp.GetReplicaBalance(), LeaderBalance: resp.GetLeaderBalance()}
	if out.Counts == nil {
		out.Counts = map[string]uint64{}
	}
	for _, o := range resp.GetOperators() {
		out.Operators = append(out.Operators, operatorJSONOf(o))
	}
	return out
}

func printOperators(w io.Writer, resp *flotillapb.ListOperatorsResponse) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tRANGE\tSOURCE\tSTATE\tDONE\tSTEPS\tREASON")
	for _, o := range operatorsJSON(resp).Operators {
		reason := o.Reason
		if o.Error != "" {
			reason += " (" + o.Error + ")"
		}
		fmt.Fprintf(tw, "%d\t%d\t%s\t%s\t%d/%d\t%s\t%s\n", o.ID, o.RangeID, o.Source, o.State, o.Done, len(o.Steps), strings.Join(o.Steps, ", "), reason)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if resp.GetCounts() != nil {
		_, err := fmt.Fprintf(w, "finished %d, failed %d, expired %d; replica balance %d, leader balance %d\n",
			resp.GetCounts()["finished"], resp.GetCounts()["failed"], resp.GetCounts()["expired"], resp.GetReplicaBalance(), resp.GetLeaderBalance())
		return err
	}
	return nil
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
	// Alarms are the store's raised alarms, e.g. NOSPACE; always a list.
	Alarms []string `json:"alarms"`
	// Labels are the store's labels (start --labels); always an object.
	Labels map[string]string `json:"labels"`
	// Placement is the store's part in the placement group: "leader"
	// (the acting placement driver), "voter", "learner" or "".
	Placement string `json:"placement"`
	// labelText is Labels as the table shows them ("" for none).
	labelText string
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
			Ranges: s.GetReplicas(), Leaders: s.GetLeaders(),
			SecondsSinceHeartbeat: s.GetSecondsSinceHeartbeat(),
			CapacityBytes:         s.GetStats().GetCapacityBytes(), AvailableBytes: s.GetStats().GetAvailableBytes(),
			Alarms:    append([]string{}, s.GetStats().GetAlarms()...),
			Labels:    labelsJSON(s.GetNode().GetLabels()),
			Placement: s.GetPlacementRole(),
			labelText: flotillapb.FormatLabels(s.GetNode().GetLabels()),
		})
	}
	return out
}

// labelsJSON returns a store's labels as a JSON object ({} for none).
func labelsJSON(labels []*flotillapb.StoreLabel) map[string]string {
	m := flotillapb.LabelsMap(labels)
	if m == nil {
		m = map[string]string{}
	}
	return m
}

func printStores(w io.Writer, stores []*flotillapb.StoreStatus) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STORE\tADDRESS\tLIVE\tSTATE\tRANGES\tLEADERS\tPLACEMENT\tLAST HEARTBEAT\tALARMS\tLABELS")
	for _, s := range storesJSON(stores) {
		live := "yes"
		if !s.Live {
			live = "no"
		}
		last := "never"
		if s.SecondsSinceHeartbeat >= 0 {
			last = fmt.Sprintf("%.1fs ago", s.SecondsSinceHeartbeat)
		}
		alarms := "-"
		if len(s.Alarms) > 0 {
			alarms = strings.Join(s.Alarms, ",")
		}
		labels := s.labelText
		if labels == "" {
			labels = "-"
		}
		placement := s.Placement
		if placement == "" {
			placement = "-"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%d\t%s\t%s\t%s\t%s\n", s.StoreID, s.Address, live, s.State, s.Ranges, s.Leaders, placement, last, alarms, labels)
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
