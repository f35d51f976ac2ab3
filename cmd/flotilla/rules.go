// Copyright 2026 The Flotilla Authors. All rights reserved.

package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"github.com/spf13/cobra"
)

// ruleJSON is a placement rule as `cluster rules` reads and prints it.
// Keys are text, or hex with a 0x prefix; "" is the start (start_key) or
// the end (end_key) of the keyspace.
type ruleJSON struct {
	StartKey            string   `json:"start_key"`
	EndKey              string   `json:"end_key"`
	Voters              uint32   `json:"voters"`
	VoterConstraints    []string `json:"voter_constraints,omitempty"`
	SpreadOver          string   `json:"spread_over,omitempty"`
	NonVoters           uint32   `json:"non_voters,omitempty"`
	NonVoterConstraints []string `json:"non_voter_constraints,omitempty"`
	LeaderConstraints   []string `json:"leader_constraints,omitempty"`
}

// maxRulesFile bounds a rules file.
const maxRulesFile = 16 << 20

// readRulesFile parses a rules file (a JSON array of rules; "-" is stdin).
// Unknown fields and trailing data are errors, so a misspelt field is not
// silently ignored.
func readRulesFile(name string, stdin io.Reader) ([]*flotillapb.PlacementRule, error) {
	var r io.Reader = stdin
	if name != "-" {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, maxRulesFile+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %v", name, err)
	}
	if len(data) > maxRulesFile {
		return nil, fmt.Errorf("%s: larger than %d bytes", name, maxRulesFile)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var rules []ruleJSON
	if err := dec.Decode(&rules); err != nil {
		return nil, fmt.Errorf("%s: not a JSON array of rules: %v", name, err)
	}
	if dec.More() {
		return nil, fmt.Errorf("%s: data after the array of rules", name)
	}
	if rules == nil {
		return nil, fmt.Errorf("%s: not a JSON array of rules (null); use `flotilla cluster rules delete` to remove every rule", name)
	}
	out := make([]*flotillapb.PlacementRule, 0, len(rules))
	for i, rj := range rules {
		start, err := parseRuleKey(rj.StartKey)
		if err != nil {
			return nil, fmt.Errorf("%s: rule #%d: start_key: %v", name, i+1, err)
		}
		end, err := parseRuleKey(rj.EndKey)
		if err != nil {
			return nil, fmt.Errorf("%s: rule #%d: end_key: %v", name, i+1, err)
		}
		out = append(out, &flotillapb.PlacementRule{
			StartKey: start, EndKey: end, Voters: rj.Voters, VoterConstraints: rj.VoterConstraints,
			SpreadOver: rj.SpreadOver, NonVoters: rj.NonVoters, NonVoterConstraints: rj.NonVoterConstraints,
			LeaderConstraints: rj.LeaderConstraints,
		})
	}
	return out, nil
}

// ruleKeyText renders a rule's key as parseRuleKey reads it back: "" for
// none, text if printable, else (or if the text itself begins with 0x) hex
// with a 0x prefix.
func ruleKeyText(k []byte) string {
	if len(k) == 0 {
		return ""
	}
	if strings.HasPrefix(string(k), "0x") {
		return "0x" + hex.EncodeToString(k)
	}
	return printableKey(k)
}

// parseRuleKey is parseKey with "" allowed (an open end of the span).
func parseRuleKey(s string) ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	return parseKey(s)
}

func rulesJSON(rules []*flotillapb.PlacementRule) []ruleJSON {
	out := []ruleJSON{}
	for _, r := range rules {
		rj := ruleJSON{
			Voters: r.GetVoters(), VoterConstraints: r.GetVoterConstraints(), SpreadOver: r.GetSpreadOver(),
			NonVoters: r.GetNonVoters(), NonVoterConstraints: r.GetNonVoterConstraints(), LeaderConstraints: r.GetLeaderConstraints(),
		}
		rj.StartKey, rj.EndKey = ruleKeyText(r.GetStartKey()), ruleKeyText(r.GetEndKey())
		out = append(out, rj)
	}
	return out
}

func printRules(w io.Writer, format string, resp *flotillapb.RulesResponse) error {
	if format == "json" {
		return printJSON(w, rulesJSON(resp.GetRules()))
	}
	if len(resp.GetRules()) == 0 {
		_, err := fmt.Fprintf(w, "No placement rules: every range has the default rule, %d voters on any stores.\n", resp.GetDefaultVoters())
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RULE\tSTART\tEND\tVOTERS\tVOTER_CONSTRAINTS\tSPREAD_OVER\tNON_VOTERS\tNON_VOTER_CONSTRAINTS\tLEADER_CONSTRAINTS")
	dash := func(s string) string {
		if s == "" {
			return "-"
		}
		return s
	}
	for i, r := range rulesJSON(resp.GetRules()) {
		start, end := r.StartKey, r.EndKey
		if start == "" {
			start = "<start>"
		}
		if end == "" {
			end = "<end>"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%d\t%s\t%s\t%d\t%s\t%s\n", i+1, start, end, r.Voters, dash(strings.Join(r.VoterConstraints, ",")),
			dash(r.SpreadOver), r.NonVoters, dash(strings.Join(r.NonVoterConstraints, ",")), dash(strings.Join(r.LeaderConstraints, ",")))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "Keys outside these spans have the default rule, %d voters on any stores.\n", resp.GetDefaultVoters())
	return err
}

// newRulesCmd is `flotilla cluster rules`.
func newRulesCmd(run func(*cobra.Command, func(context.Context, flotillapb.PlacementClient, io.Writer) error) error,
	host, format *string) *cobra.Command {
	rules := &cobra.Command{
		Use:   "rules",
		Short: "Show or set the placement rules: where each key span's voters and observers go",
		Long: `Placement rules say, per key span, how many voters each range has and on which
stores (by store labels, flotilla start --labels), how to spread them (over a
label such as zone), how many non-voting replicas (observers: they follow the
log and serve reads, and never vote) and on which stores, and which stores
should lead. Ranges outside every rule have the default rule: --replicas
voters on any stores. The placement driver moves replicas to satisfy the
rules and splits ranges at rule boundaries.

A rules file is a JSON array (see docs/PLACEMENT.md):

  [{"start_key": "", "end_key": "", "voters": 3,
    "voter_constraints": ["role!=observer"], "spread_over": "zone",
    "non_voters": 2, "non_voter_constraints": ["role=observer"],
    "leader_constraints": ["zone=a"]}]

Keys are text, or hex with a 0x prefix; "" is the start (start_key) or the
end (end_key) of the keyspace. A constraint is label=value or label!=value.`,
	}
	get := &cobra.Command{
		Use:   "get",
		Short: "Print the placement rules (--format json prints a file rules set reads)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return run(cmd, func(ctx context.Context, pc flotillapb.PlacementClient, out io.Writer) error {
				resp, err := pc.GetRules(ctx, &flotillapb.GetRulesRequest{})
				if err != nil {
					return fmt.Errorf("cluster rules get via %s: %s", *host, describe(err))
				}
				return printRules(out, *format, resp)
			})
		},
	}
	var dryRun bool
	set := &cobra.Command{
		Use:   "set FILE",
		Short: "Replace the placement rules with those in FILE (- for stdin)",
		Long: `Replace the placement rules with the JSON array of rules in FILE (- reads
stdin). The rules are checked first, and refused with nothing changed, if a
rule is malformed, two spans overlap, a constraint names a label no store
has, or fewer stores are up that match a rule's constraints than it asks
replicas for. --dry-run only checks. Prints the rules now in force.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			rules, err := readRulesFile(args[0], cmd.InOrStdin())
			if err != nil {
				return err
			}
			if len(rules) == 0 {
				return errors.New("the file holds no rules; use `flotilla cluster rules delete` to remove every rule")
			}
			return run(cmd, func(ctx context.Context, pc flotillapb.PlacementClient, out io.Writer) error {
				resp, err := pc.SetRules(ctx, &flotillapb.SetRulesRequest{Rules: rules, DryRun: dryRun})
				if err != nil {
					return fmt.Errorf("cluster rules set via %s: %s", *host, describe(err))
				}
				if dryRun && *format != "json" {
					fmt.Fprintln(out, "The rules are valid (--dry-run: nothing changed).")
				}
				return printRules(out, *format, resp)
			})
		},
	}
	set.Flags().BoolVar(&dryRun, "dry-run", false, "check the rules against the cluster without setting them")
	del := &cobra.Command{
		Use:   "delete",
		Short: "Remove every placement rule: all ranges take the default rule",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return run(cmd, func(ctx context.Context, pc flotillapb.PlacementClient, out io.Writer) error {
				resp, err := pc.SetRules(ctx, &flotillapb.SetRulesRequest{})
				if err != nil {
					return fmt.Errorf("cluster rules delete via %s: %s", *host, describe(err))
				}
				return printRules(out, *format, resp)
			})
		},
	}
	rules.AddCommand(get, set, del)
	return rules
}
