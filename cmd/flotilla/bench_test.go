// Copyright 2026 The Flotilla Authors. All rights reserved.

package main

import (
	"image/png"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/flotilladb/flotilla/bench"
)

// TestBenchCLI: `flotilla bench` against an embedded node writes a summary,
// a JSON report and a PNG plot and verifies; `bench compare` of a report
// with itself prints ratios of 1; bad flags get clear errors.
func TestBenchCLI(t *testing.T) {
	dir := t.TempDir()
	jsonPath, plotPath := filepath.Join(dir, "a.json"), filepath.Join(dir, "a.png")
	out, err := run(t, "bench", "--embedded", filepath.Join(dir, "store"), "--workload", "b", "--records", "200",
		"--ops", "600", "--clients", "4", "--value-size", "64", "--verify", "--json", jsonPath, "--plot", plotPath)
	if err != nil {
		t.Fatalf("bench: %v\n%s", err, out)
	}
	for _, want := range []string{"load phase, workload b", "run phase, workload b", "read", "update", "verify: 200 keys re-read"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	f, err := os.Open(jsonPath)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := bench.ReadReport(f)
	f.Close()
	if err != nil || rep.Ops != 600 || rep.Config.Workload.Name != "b" || rep.Target["kind"] != "flotilla-embedded" {
		t.Fatalf("report: %+v, %v", rep, err)
	}
	pf, err := os.Open(plotPath)
	if err != nil {
		t.Fatal(err)
	}
	_, err = png.Decode(pf)
	pf.Close()
	if err != nil {
		t.Fatalf("plot: %v", err)
	}
	out, err = run(t, "bench", "compare", jsonPath, jsonPath)
	if err != nil || !strings.Contains(out, "1.00") {
		t.Fatalf("compare: %v\n%s", err, out)
	}
	out, err = run(t, "bench", "table", jsonPath, jsonPath)
	if err != nil || strings.Count(out, "| flotilla-embedded, 1 node, ") != 2 || !strings.Contains(out, " | b | 4 | ") {
		t.Fatalf("table: %v\n%s", err, out)
	}
	out, err = run(t, "bench", "table", "--format", "tsv", jsonPath)
	if err != nil || !strings.HasPrefix(out, "target\tworkload\tclients\t") || strings.Count(out, "\n") != 2 {
		t.Fatalf("table --format tsv: %v\n%s", err, out)
	}

	for _, bad := range [][]string{
		{"bench", "--workload", "z", "--embedded", dir},
		{"bench"},
		{"bench", "--embedded", dir, "--etcd", "127.0.0.1:1"},
		{"bench", "--embedded", dir, "--phase", "sideways"},
		{"bench", "--embedded", dir, "--clients", "0"},
		{"bench", "--embedded", dir, "--read-from", "follower"},
		{"bench", "--endpoints", "127.0.0.1:1", "--read-from", "any"},
		{"bench", "compare", jsonPath},
		{"bench", "table"},
		{"bench", "table", "--format", "html", jsonPath},
		{"bench", "table", filepath.Join(dir, "missing.json")},
	} {
		if out, err := run(t, bad...); err == nil {
			t.Errorf("flotilla %s: accepted\n%s", strings.Join(bad, " "), out)
		}
	}
}

// TestBenchSplitKeysCLI: `flotilla bench split-keys` prints SplitKeys'
// keys on one line, comma-separated, in a form `flotilla init --split-at`
// parses back into the same keys; bad input gets clear errors.
func TestBenchSplitKeysCLI(t *testing.T) {
	out, err := run(t, "bench", "split-keys", "--records", "2000", "--ranges", "4")
	if err != nil {
		t.Fatalf("split-keys: %v\n%s", err, out)
	}
	keys, err := bench.SplitKeys(2000, bench.DefaultKeySize, 4)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, k := range keys {
		want = append(want, string(k))
	}
	if out != strings.Join(want, ",")+"\n" {
		t.Fatalf("split-keys printed %q, want %q", out, want)
	}
	initCmd := newInitCmd()
	if err := initCmd.ParseFlags([]string{"--split-at", strings.TrimSuffix(out, "\n")}); err != nil {
		t.Fatalf("init --split-at: %v", err)
	}
	if got, err := initCmd.Flags().GetStringSlice("split-at"); err != nil || !slices.Equal(got, want) {
		t.Fatalf("init --split-at parsed %q (%v), want %q", got, err, want)
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--ranges", "0"}, "ranges is 0"},
		{[]string{"--records", "3", "--ranges", "4"}, "must not exceed the record count"},
		{[]string{"--key-size", "5"}, "key size is 5"},
		{[]string{"extra"}, "unknown command"},
	} {
		out, err := run(t, append([]string{"bench", "split-keys"}, tc.args...)...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("split-keys %s: %v, want an error saying %q\n%s", strings.Join(tc.args, " "), err, tc.want, out)
		}
	}
}
