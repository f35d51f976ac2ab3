// Copyright 2026 The Flotilla Authors. All rights reserved.

package placement

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"google.golang.org/protobuf/proto"
)

// Placement rules (TiKV PD's placement rules, CockroachDB's zone configs)
// say, per key span, how many voters a range has and on which stores, how
// many non-voting replicas (observers) and on which stores, and which
// stores should lead. They live in the placement group (ClusterMeta.rules)
// and are replaced as a whole (SetRules). A range takes the rule its start
// key lies in, or the default rule (ReplicationFactor voters on any
// stores); the driver splits a range that a rule boundary crosses.
//
// A non-voter is a raft learner the replica checker keeps: it follows the
// log, can serve reads, never votes, and does not count towards a quorum.
// The descriptor does not mark a learner as a non-voter: the checker
// counts, as the range's non-voters, up to the rule's number of learners
// on stores that match the non-voter constraints; any other learner is in
// transit (being added as a voter) or extra.

// Limits on placement rules.
const (
	MaxRules           = 1024
	MaxRuleVoters      = 7
	MaxRuleNonVoters   = 16
	MaxRuleConstraints = 16
	// MaxRulesBytes bounds the encoded size of all rules together: they
	// are part of the placement state, rewritten with every change of it.
	MaxRulesBytes = 256 << 10
)

// Rule is a compiled placement rule.
type Rule struct {
	// Start and End bound the rule's span; End nil is the end of the
	// keyspace.
	Start, End []byte
	Voters     int
	// VoterConstraints, NonVoterConstraints and LeaderConstraints must
	// all hold of a store holding a voter, a non-voter or the leader.
	VoterConstraints    []flotillapb.LabelConstraint
	NonVoterConstraints []flotillapb.LabelConstraint
	LeaderConstraints   []flotillapb.LabelConstraint
	// SpreadOver is a label key: voters go to stores with different values
	// of it where they can.
	SpreadOver string
	NonVoters  int
	// Index is the rule's position in the list it was set as (from 0); -1
	// for the default rule.
	Index int
}

func (r *Rule) String() string {
	if r.Index < 0 {
		return fmt.Sprintf("the default rule (%d voters)", r.Voters)
	}
	return fmt.Sprintf("rule #%d [%s)", r.Index+1, spanString(r.Start, r.End))
}

func spanString(start, end []byte) string {
	e := "end"
	if end != nil {
		e = fmt.Sprintf("%q", end)
	}
	return fmt.Sprintf("%q, %s", start, e)
}

// contains reports whether key lies in the rule's span.
func (r *Rule) contains(key []byte) bool {
	return bytes.Compare(key, r.Start) >= 0 && (r.End == nil || bytes.Compare(key, r.End) < 0)
}

func matchesAll(cs []flotillapb.LabelConstraint, labels map[string]string) bool {
	for _, c := range cs {
		if !c.Matches(labels) {
			return false
		}
	}
	return true
}

// CompileRules checks the rules' form (not whether the cluster's stores
// can satisfy them: see CheckRulesFit) and returns them compiled, sorted
// by start key. The placement group runs it when it applies SetRules, so
// what it accepts must not change without a cluster version gate.
func CompileRules(pbs []*flotillapb.PlacementRule) ([]Rule, error) {
	if len(pbs) > MaxRules {
		return nil, fmt.Errorf("%d rules, more than %d", len(pbs), MaxRules)
	}
	size := 0
	for _, pb := range pbs {
		size += proto.Size(pb)
	}
	if size > MaxRulesBytes {
		return nil, fmt.Errorf("the rules take %d bytes, more than %d", size, MaxRulesBytes)
	}
	out := make([]Rule, 0, len(pbs))
	for i, pb := range pbs {
		r, err := compileRule(i, pb)
		if err != nil {
			return nil, fmt.Errorf("rule #%d: %w", i+1, err)
		}
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b Rule) int { return bytes.Compare(a.Start, b.Start) })
	for i := 1; i < len(out); i++ {
		a, b := &out[i-1], &out[i]
		if a.End == nil || bytes.Compare(a.End, b.Start) > 0 {
			return nil, fmt.Errorf("rule #%d [%s) and rule #%d [%s) overlap", a.Index+1, spanString(a.Start, a.End),
				b.Index+1, spanString(b.Start, b.End))
		}
	}
	return out, nil
}

func compileRule(i int, pb *flotillapb.PlacementRule) (Rule, error) {
	r := Rule{Index: i, Start: bytes.Clone(pb.GetStartKey()), Voters: int(pb.GetVoters()),
		NonVoters: int(pb.GetNonVoters()), SpreadOver: pb.GetSpreadOver()}
	if r.Start == nil {
		r.Start = []byte{}
	}
	if len(pb.GetEndKey()) > 0 {
		r.End = bytes.Clone(pb.GetEndKey())
	}
	switch {
	case len(r.Start) > flotillapb.MaxKeySize || len(r.End) > flotillapb.MaxKeySize:
		return r, fmt.Errorf("a key of the span is longer than %d bytes", flotillapb.MaxKeySize)
	case r.End != nil && bytes.Compare(r.Start, r.End) >= 0:
		return r, fmt.Errorf("start_key %q is not below end_key %q", r.Start, r.End)
	case pb.GetVoters() < 1 || pb.GetVoters() > MaxRuleVoters:
		return r, fmt.Errorf("voters is %d; it must be 1 to %d", pb.GetVoters(), MaxRuleVoters)
	case pb.GetNonVoters() > MaxRuleNonVoters:
		return r, fmt.Errorf("non_voters is %d; it must be 0 to %d", pb.GetNonVoters(), MaxRuleNonVoters)
	case r.NonVoters == 0 && len(pb.GetNonVoterConstraints()) > 0:
		return r, fmt.Errorf("non_voter_constraints without non_voters")
	}
	if r.SpreadOver != "" {
		if _, err := flotillapb.ParseConstraint(r.SpreadOver + "=x"); err != nil || strings.ContainsAny(r.SpreadOver, "=!") {
			what := r.SpreadOver
			if len(what) > 80 {
				what = what[:80] + "..."
			}
			return r, fmt.Errorf("spread_over %q is not a label key", what)
		}
	}
	var err error
	if r.VoterConstraints, err = compileConstraints("voter_constraints", pb.GetVoterConstraints()); err != nil {
		return r, err
	}
	if r.NonVoterConstraints, err = compileConstraints("non_voter_constraints", pb.GetNonVoterConstraints()); err != nil {
		return r, err
	}
	if r.LeaderConstraints, err = compileConstraints("leader_constraints", pb.GetLeaderConstraints()); err != nil {
		return r, err
	}
	return r, nil
}

func compileConstraints(what string, ss []string) ([]flotillapb.LabelConstraint, error) {
	if len(ss) > MaxRuleConstraints {
		return nil, fmt.Errorf("%s: %d constraints, more than %d", what, len(ss), MaxRuleConstraints)
	}
	out := make([]flotillapb.LabelConstraint, 0, len(ss))
	for _, s := range ss {
		c, err := flotillapb.ParseConstraint(s)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", what, err)
		}
		out = append(out, c)
	}
	return out, nil
}

// CheckRulesFit returns why the member stores (those up, by nodes) cannot
// satisfy rules, or nil: a constraint or spread_over names a label no store
// has, or fewer stores match a rule's voter or non-voter constraints than
// it asks replicas for (voters and non-voters of a range never share a
// store), or no store matching its voter constraints matches its leader
// constraints. Rules are checked against the stores when they are set,
// not when stores change later.
func CheckRulesFit(rules []Rule, nodes []*flotillapb.NodeDescriptor) error {
	known := map[string]bool{}
	var up []map[string]string
	for _, n := range nodes {
		if n.GetState() == flotillapb.StoreState_STORE_DECOMMISSIONED {
			continue
		}
		for _, l := range n.GetLabels() {
			known[l.GetKey()] = true
		}
		if n.GetState() == flotillapb.StoreState_STORE_UP {
			labels := flotillapb.LabelsMap(n.GetLabels())
			if labels == nil {
				labels = map[string]string{}
			}
			up = append(up, labels)
		}
	}
	for i := range rules {
		r := &rules[i]
		for _, cs := range [][]flotillapb.LabelConstraint{r.VoterConstraints, r.NonVoterConstraints, r.LeaderConstraints} {
			for _, c := range cs {
				if !known[c.Key] {
					return fmt.Errorf("%s: constraint %s names label %q, which no store has (%s)", r, c, c.Key, knownLabels(known))
				}
			}
		}
		if r.SpreadOver != "" && !known[r.SpreadOver] {
			return fmt.Errorf("%s: spread_over names label %q, which no store has (%s)", r, r.SpreadOver, knownLabels(known))
		}
		voters, nonVoters, either, leaders := 0, 0, 0, 0
		for _, labels := range up {
			v, nv := matchesAll(r.VoterConstraints, labels), r.NonVoters > 0 && matchesAll(r.NonVoterConstraints, labels)
			if v {
				voters++
				if matchesAll(r.LeaderConstraints, labels) {
					leaders++
				}
			}
			if nv {
				nonVoters++
			}
			if v || nv {
				either++
			}
		}
		switch {
		case voters < r.Voters:
			return fmt.Errorf("%s asks for %d voters, but only %d store(s) up match its voter constraints %v", r, r.Voters, voters, r.VoterConstraints)
		case nonVoters < r.NonVoters:
			return fmt.Errorf("%s asks for %d non-voters, but only %d store(s) up match its non-voter constraints %v", r, r.NonVoters, nonVoters, r.NonVoterConstraints)
		case either < r.Voters+r.NonVoters:
			return fmt.Errorf("%s asks for %d voters and %d non-voters on distinct stores, but only %d store(s) up match either", r, r.Voters, r.NonVoters, either)
		case leaders == 0:
			return fmt.Errorf("%s: no store up matches both its voter constraints %v and its leader constraints %v", r, r.VoterConstraints, r.LeaderConstraints)
		}
	}
	return nil
}

func knownLabels(known map[string]bool) string {
	if len(known) == 0 {
		return "no store has labels; give them with flotilla start --labels"
	}
	keys := make([]string, 0, len(known))
	for k := range known {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return "stores have " + strings.Join(keys, ", ")
}

// RuleFor returns the rule of the range described by d: the one its start
// key lies in, or the default rule.
func (c *ClusterView) RuleFor(d *flotillapb.RangeDescriptor) *Rule {
	start := d.GetStartKey()
	i, found := slices.BinarySearchFunc(c.Rules, start, func(r Rule, k []byte) int { return bytes.Compare(r.Start, k) })
	if !found {
		i--
	}
	if i >= 0 && c.Rules[i].contains(start) {
		return &c.Rules[i]
	}
	return &Rule{Voters: c.ReplicationFactor, Index: -1, Start: []byte{}}
}

// RuleBoundaryIn returns the first rule boundary strictly inside the range
// described by d (a key at which the driver splits it), or nil.
func (c *ClusterView) RuleBoundaryIn(d *flotillapb.RangeDescriptor) []byte {
	var best []byte
	consider := func(k []byte) {
		if k == nil || bytes.Compare(k, d.GetStartKey()) <= 0 || (len(d.GetEndKey()) > 0 && bytes.Compare(k, d.GetEndKey()) >= 0) {
			return
		}
		if best == nil || bytes.Compare(k, best) < 0 {
			best = k
		}
	}
	for i := range c.Rules {
		consider(c.Rules[i].Start)
		consider(c.Rules[i].End)
	}
	return best
}

// RulesToProto renders compiled rules back (sorted by start key).
func RulesToProto(rules []Rule) []*flotillapb.PlacementRule {
	out := make([]*flotillapb.PlacementRule, 0, len(rules))
	for _, r := range rules {
		out = append(out, &flotillapb.PlacementRule{
			StartKey: r.Start, EndKey: r.End, Voters: uint32(r.Voters), VoterConstraints: constraintStrings(r.VoterConstraints),
			SpreadOver: r.SpreadOver, NonVoters: uint32(r.NonVoters), NonVoterConstraints: constraintStrings(r.NonVoterConstraints),
			LeaderConstraints: constraintStrings(r.LeaderConstraints),
		})
	}
	return out
}

func constraintStrings(cs []flotillapb.LabelConstraint) []string {
	if len(cs) == 0 {
		return nil
	}
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.String()
	}
	return out
}
