// Copyright 2026 The Flotilla Authors. All rights reserved.

package revcheck

import (
	"fmt"
	"strconv"
	"strings"
)

// CheckBank checks the bank invariant: every completed scan in history
// whose span covers all of accounts (keys whose values are decimal
// integers) finds every account, and their values sum to total. Scans at
// a revision and linearizable ones alike: a scan at one R is one snapshot,
// so the transfers (txns moving an amount between two accounts) it sees
// are whole. Scans that do not cover every account are skipped.
//
// It proves only the sum; that the snapshot is the right one at R is
// CheckSnapshots' job.
func CheckBank(history []Op, accounts []string, total int64) error {
	var bad []Violation
	for _, op := range history {
		if op.Input.Kind != KindScan || op.Output.Outcome != OK {
			continue
		}
		coversAll := true
		for _, a := range accounts {
			coversAll = coversAll && op.Input.covers(a)
		}
		if !coversAll {
			continue
		}
		balances := map[string]string{}
		for _, kv := range op.Output.KVs {
			balances[kv.Key] = kv.Value
		}
		var sum int64
		var parts, problems []string
		for _, a := range accounts {
			v, ok := balances[a]
			if !ok {
				problems = append(problems, fmt.Sprintf("account %s missing", a))
				continue
			}
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				problems = append(problems, fmt.Sprintf("account %s holds %q, not a number", a, v))
				continue
			}
			sum += n
			parts = append(parts, fmt.Sprintf("%s=%d", a, n))
		}
		if sum != total {
			problems = append(problems, fmt.Sprintf("balances sum to %d, want %d (%s)", sum, total, strings.Join(parts, " ")))
		}
		if len(problems) > 0 {
			bad = append(bad, Violation{Check: "bank", Reason: fmt.Sprintf("scan #%d at revision %d: %s", op.ID, op.Output.Revision, strings.Join(problems, "; ")), Ops: []Op{op}})
		}
	}
	return violations(bad)
}
