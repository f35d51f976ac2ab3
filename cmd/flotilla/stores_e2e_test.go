// Copyright 2026 The Flotilla Authors. All rights reserved.

package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flotilladb/flotilla/internal/testutil"
)

// TestStoresE2E: `flotilla start --labels` on a real process, shown by
// `cluster status` as a column and in its JSON; malformed labels stop the
// start with a clear error before the store is touched. `cluster
// remove-store` of a live store is refused.
func TestStoresE2E(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct{ labels, want string }{
		{"zone", `"zone" is not key=value`},
		{"zone=a,zone=b", `"zone" given twice`},
		{"zone=a=b", `holds '='`},
		{"role!=observer", `holds '!'`},
		{"zone=", "empty label value"},
	} {
		store := filepath.Join(dir, "refused")
		_, errOut, err := cli(t, "start", "--store", store, "--listen-addr", freeAddr(t), "--http-addr", "off", "--labels", tc.labels)
		if err == nil || !strings.Contains(errOut, "--labels") || !strings.Contains(errOut, tc.want) {
			t.Errorf("start --labels %q: %v, stderr %q; want an error with %q", tc.labels, err, errOut, tc.want)
		}
		if _, statErr := os.Stat(store); !errors.Is(statErr, fs.ErrNotExist) {
			t.Errorf("start --labels %q: the store was created (%v)", tc.labels, statErr)
		}
	}

	// --labels is repeatable; a key given in two of them is refused too.
	_, errOut, err := cli(t, "start", "--store", filepath.Join(dir, "refused"), "--listen-addr", freeAddr(t), "--http-addr", "off",
		"--labels", "zone=a", "--labels", "zone=b")
	if err == nil || !strings.Contains(errOut, `"zone" given twice`) {
		t.Errorf("start --labels zone=a --labels zone=b: %v, stderr %q; want refused", err, errOut)
	}

	p := startNode(t, nil, dir, filepath.Join(dir, "store"), "--labels", "zone=eu-1a, rack=r7", "--labels", "role=observer")
	mustCLIPrefix(t, "cluster ", "init", "--host", p.addr)
	testutil.SucceedsWithin(t, 30*time.Second, func() error {
		var stores []struct {
			StoreID   uint64            `json:"store_id"`
			Live      bool              `json:"live"`
			Labels    map[string]string `json:"labels"`
			Placement string            `json:"placement"`
		}
		if err := clusterJSON(t, p.addr, &stores, "status"); err != nil {
			return err
		}
		if len(stores) != 1 || fmt.Sprint(stores[0].Labels) != "map[rack:r7 role:observer zone:eu-1a]" || stores[0].Placement != "leader" || !stores[0].Live {
			return fmt.Errorf("cluster status --format json: %+v", stores)
		}
		return nil
	})
	out, errOut, err := cli(t, "cluster", "status", "--host", p.addr)
	if err != nil || !strings.Contains(out, "LABELS") || !strings.Contains(out, "rack=r7,role=observer,zone=eu-1a") ||
		!strings.Contains(out, "PLACEMENT") || !strings.Contains(out, " leader ") {
		t.Fatalf("cluster status: %v, %q\n%s", err, errOut, out)
	}
	// (Refused as too early, and Unavailable, while the new driver's view
	// is younger than a liveness window.)
	testutil.SucceedsWithin(t, 30*time.Second, func() error {
		_, errOut, err := cli(t, "cluster", "remove-store", "1", "--host", p.addr)
		if err == nil || !strings.Contains(errOut, "store 1 is live") || !strings.Contains(errOut, "decommission") {
			return fmt.Errorf("remove-store of a live store: %v, stderr %q; want refused, pointing to decommission", err, errOut)
		}
		return nil
	})
	rulesE2E(t, p.addr, dir)
	p.stop(t)
}

// rulesE2E drives `cluster rules` against a one-node cluster whose store
// has the labels rack=r7, role=observer, zone=eu-1a: bad files are refused
// with clear errors and change nothing; a good one is set, read back as
// JSON the same, checked by --dry-run, and deleted.
func rulesE2E(t *testing.T, addr, dir string) {
	t.Helper()
	write := func(name, body string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	noRules := func() {
		t.Helper()
		out, errOut, err := cli(t, "cluster", "rules", "get", "--host", addr)
		if err != nil || !strings.Contains(out, "No placement rules") {
			t.Fatalf("cluster rules get: %v, %q, %q; want no rules", err, out, errOut)
		}
	}
	noRules()
	for _, tc := range []struct{ body, want string }{
		{`{"voters": 1}`, "not a JSON array of rules"},
		{`[{"voters": 1, "voter": 2}]`, `unknown field "voter"`},
		{`[{"voters": 1}] [1]`, "data after the array"},
		{`[]`, "holds no rules; use `flotilla cluster rules delete`"},
		{`[{"voters": 1, "voter_constraints": ["region=eu"]}]`, `names label "region", which no store has (stores have rack, role, zone)`},
		{`[{"voters": 2}]`, "asks for 2 voters, but only 1 store(s) up"},
		{`[{"voters": 1, "voter_constraints": ["zone"]}]`, `constraint "zone" is not key=value or key!=value`},
		{`[{"voters": 1, "start_key": "0xzz"}]`, "rule #1: start_key"},
		{`[{"voters": 1, "end_key": "m"}, {"voters": 1, "start_key": "a"}]`, "overlap"},
	} {
		_, errOut, err := cli(t, "cluster", "rules", "set", write("bad.json", tc.body), "--host", addr)
		if err == nil || !strings.Contains(errOut, tc.want) {
			t.Errorf("rules set %s: %v, stderr %q; want an error with %q", tc.body, err, errOut, tc.want)
		}
	}
	if _, errOut, err := cli(t, "cluster", "rules", "set", filepath.Join(dir, "missing.json"), "--host", addr); err == nil || !strings.Contains(errOut, "no such file") {
		t.Errorf("rules set of a missing file: %v, %q", err, errOut)
	}
	noRules()

	good := `[{"start_key": "", "end_key": "", "voters": 1, "voter_constraints": ["role=observer"], "spread_over": "zone", "leader_constraints": ["zone=eu-1a"]}]`
	out, errOut, err := cli(t, "cluster", "rules", "set", write("good.json", good), "--host", addr, "--dry-run")
	if err != nil || !strings.Contains(out, "nothing changed") {
		t.Fatalf("rules set --dry-run: %v, %q, %q", err, out, errOut)
	}
	noRules()
	if out, errOut, err := cli(t, "cluster", "rules", "set", filepath.Join(dir, "good.json"), "--host", addr); err != nil ||
		!strings.Contains(out, "role=observer") || !strings.Contains(out, "VOTER_CONSTRAINTS") {
		t.Fatalf("rules set: %v, %q, %q", err, out, errOut)
	}
	var rules []map[string]any
	if err := clusterJSON(t, addr, &rules, "rules", "get"); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(rules); got != "[map[end_key: leader_constraints:[zone=eu-1a] spread_over:zone start_key: voter_constraints:[role=observer] voters:1]]" {
		t.Fatalf("rules get --format json: %s", got)
	}
	if out, errOut, err := cli(t, "cluster", "rules", "delete", "--host", addr); err != nil || !strings.Contains(out, "No placement rules") {
		t.Fatalf("rules delete: %v, %q, %q", err, out, errOut)
	}
	noRules()
}
