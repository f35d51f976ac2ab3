// Copyright 2026 The Flotilla Authors. All rights reserved.

package main

import (
	"image/png"
	"os"
	"path/filepath"
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

	for _, bad := range [][]string{
		{"bench", "--workload", "z", "--embedded", dir},
		{"bench"},
		{"bench", "--embedded", dir, "--etcd", "127.0.0.1:1"},
		{"bench", "--embedded", dir, "--phase", "sideways"},
		{"bench", "--embedded", dir, "--clients", "0"},
		{"bench", "compare", jsonPath},
	} {
		if out, err := run(t, bad...); err == nil {
			t.Errorf("flotilla %s: accepted\n%s", strings.Join(bad, " "), out)
		}
	}
}
