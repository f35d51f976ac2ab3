// Copyright 2026 The Flotilla Authors. All rights reserved.

package layout

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"testing"
)

const module = "github.com/flotilladb/flotilla"

// rank places each package of the module in DESIGN.md's layering: a
// package may import only packages of a strictly lower rank, so imports
// flow downward and packages of one rank (siblings) never import each
// other:
//
//	cmd/flotilla → bench → server → {router, placement, shard} → rpc/raftrpc → multiraft → engine
//	                 ↘ flotilla (root: client) → {router, rpc} → rpc/flotillapb (leaf)
//
// server imports the root package too: a server.Node is a flotilla.KV,
// built with flotilla.NewKV. internal/* packages may be imported by anyone
// (their own rank says what they may import). A new package must be given
// a rank here, which is the point: its place in the design is decided, not
// discovered.
var rank = map[string]int{
	"cmd/flotilla":              100,
	"examples/client":           95, // a client program: TestClientLinksNoServer keeps it one
	"bench/target":              90,
	"bench":                     85,
	"server":                    80,
	"":                          70, // the root package: the client API
	"router":                    60,
	"placement":                 60,
	"shard":                     60,
	"rpc/raftrpc":               50,
	"internal/testcluster":      45,
	"internal/badinput":         15, // the fuzz targets' oracle of bad requests (tests only)
	"internal/revcheck":         15, // the oracles of histories with revisions (tests only)
	"multiraft":                 40,
	"engine":                    30,
	"rpc":                       25,
	"rpc/flotillapb/confchange": 20,
	"rpc/flotillapb":            10,
	"internal/invariants":       1,
	"internal/stopper":          1,
	"internal/testutil":         1,
	"internal/testproxy":        1,
	"internal/diskfault":        1,
	"internal/layout":           1,
}

// clientForbidden are what a program importing only the root package must
// not link: the storage engine, raft, and every node package.
var clientForbidden = []string{
	"github.com/cockroachdb/pebble",
	"go.etcd.io/raft",
	module + "/engine",
	module + "/multiraft",
	module + "/shard",
	module + "/placement",
	module + "/server",
	module + "/rpc/raftrpc",
	module + "/rpc/flotillapb/confchange",
}

type pkg struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

// goList runs `go list -json` with args from the module's root.
func goList(t *testing.T, args ...string) []pkg {
	t.Helper()
	root, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
	if err != nil {
		t.Fatalf("go list -m: %v", err)
	}
	cmd := exec.Command("go", append([]string{"list", "-json"}, args...)...)
	cmd.Dir = strings.TrimSpace(string(root))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %v: %v\n%s", args, err, stderr.String())
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// rel returns a module package's path relative to the module ("" for the
// root), and whether it is one of the module's.
func rel(path string) (string, bool) {
	if path == module {
		return "", true
	}
	if r, ok := strings.CutPrefix(path, module+"/"); ok {
		return r, true
	}
	return "", false
}

// checkEdges returns every import among graph (package → its direct
// imports, module-relative) that the ranks forbid, and every package
// without a rank.
func checkEdges(graph map[string][]string) []string {
	var bad []string
	for from, imports := range graph {
		rf, ok := rank[from]
		if !ok {
			bad = append(bad, fmt.Sprintf("package %q has no place in the layering: give it a rank in internal/layout (and DESIGN.md)", from))
			continue
		}
		for _, to := range imports {
			rt, ok := rank[to]
			if !ok {
				continue // reported as a package of its own
			}
			if rt >= rf {
				bad = append(bad, fmt.Sprintf("%q (rank %d) imports %q (rank %d): imports must flow downward (DESIGN.md, Layout)", name(from), rf, name(to), rt))
			}
		}
	}
	sort.Strings(bad)
	return bad
}

func name(p string) string {
	if p == "" {
		return "flotilla (root)"
	}
	return p
}

// TestImportGraph fails on any import between the module's packages that
// DESIGN.md's layering does not allow.
func TestImportGraph(t *testing.T) {
	graph := map[string][]string{}
	for _, p := range goList(t, "./...") {
		from, ok := rel(p.ImportPath)
		if !ok {
			continue
		}
		graph[from] = nil
		for _, imp := range p.Imports {
			if to, ok := rel(imp); ok {
				graph[from] = append(graph[from], to)
			}
		}
	}
	if len(graph) < 10 {
		t.Fatalf("go list found only %d packages: %v", len(graph), graph)
	}
	for _, bad := range checkEdges(graph) {
		t.Error(bad)
	}
}

// TestImportGraphCatchesViolations shows that the checker refuses the edges
// the design forbids, and a package it does not know.
func TestImportGraphCatchesViolations(t *testing.T) {
	for _, tc := range []struct {
		graph map[string][]string
		want  string
	}{
		{map[string][]string{"router": {"shard"}}, `"router" (rank 60) imports "shard"`},
		{map[string][]string{"shard": {"placement"}}, `"shard" (rank 60) imports "placement"`},
		{map[string][]string{"rpc": {"multiraft"}}, `"rpc" (rank 25) imports "multiraft"`},
		{map[string][]string{"multiraft": {"shard"}}, `"multiraft" (rank 40) imports "shard"`},
		{map[string][]string{"": {"server"}}, `"flotilla (root)" (rank 70) imports "server"`},
		{map[string][]string{"engine": {"multiraft"}}, `"engine" (rank 30) imports "multiraft"`},
		{map[string][]string{"newpkg": {"rpc"}}, `package "newpkg" has no place`},
	} {
		bad := checkEdges(tc.graph)
		if len(bad) != 1 || !strings.Contains(bad[0], tc.want) {
			t.Errorf("checkEdges(%v) = %q, want one problem containing %q", tc.graph, bad, tc.want)
		}
	}
	if bad := checkEdges(map[string][]string{"server": {"", "shard", "engine"}, "shard": {"multiraft", "rpc/flotillapb"}}); len(bad) != 0 {
		t.Errorf("allowed edges refused: %q", bad)
	}
}

// forbiddenDeps returns the deps that a client must not link.
func forbiddenDeps(deps []string) []string {
	var bad []string
	for _, d := range deps {
		for _, f := range clientForbidden {
			if d == f || strings.HasPrefix(d, f+"/") || strings.HasPrefix(d, f+"/v") {
				bad = append(bad, d)
				break
			}
		}
	}
	return bad
}

// TestClientLinksNoServer: a program that imports only the root package
// (the client), such as examples/client, links no Pebble, no etcd raft
// (raftpb included) and no node package.
func TestClientLinksNoServer(t *testing.T) {
	for _, p := range goList(t, "-deps", module, module+"/examples/client") {
		if p.ImportPath == module || p.ImportPath == module+"/examples/client" {
			continue
		}
		if bad := forbiddenDeps([]string{p.ImportPath}); len(bad) > 0 {
			t.Errorf("a client program links %s", bad[0])
		}
	}
	// The same check, on the root package's own dependency list.
	pkgs := goList(t, module)
	if len(pkgs) != 1 || len(pkgs[0].Deps) == 0 {
		t.Fatalf("go list %s: %v", module, pkgs)
	}
	if bad := forbiddenDeps(pkgs[0].Deps); len(bad) > 0 {
		t.Errorf("the client package links %v", bad)
	}
	// And the check catches what it must: a node links all of them.
	server := goList(t, module+"/server")
	if bad := forbiddenDeps(server[0].Deps); !slices.ContainsFunc(bad, func(d string) bool { return strings.HasPrefix(d, "github.com/cockroachdb/pebble") }) ||
		!slices.Contains(bad, "go.etcd.io/raft/v3/raftpb") {
		t.Errorf("the check does not see Pebble and raftpb in the server's dependencies: %v", bad)
	}
}
