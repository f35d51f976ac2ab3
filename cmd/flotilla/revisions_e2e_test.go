// Copyright 2026 The Flotilla Authors. All rights reserved.

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flotilladb/flotilla"
	"github.com/flotilladb/flotilla/internal/testutil"
)

// cliIn runs the binary with args and stdin.
func cliIn(t *testing.T, stdin string, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, flotillaBinary(t), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

var revisionRE = regexp.MustCompile(`\(revision (\d+)\)\n$`)

// putRev runs kv put and returns the revision it prints.
func putRev(t *testing.T, host, key, value string) int64 {
	t.Helper()
	out, errOut, err := cli(t, "kv", "put", "--host", host, key, value)
	m := revisionRE.FindStringSubmatch(out)
	if err != nil || m == nil || !strings.HasPrefix(out, "OK (revision ") {
		t.Fatalf("kv put %s %s: %q, %v, stderr %q", key, value, out, err, errOut)
	}
	rev, _ := strconv.ParseInt(m[1], 10, 64)
	return rev
}

// cliJSON runs a kv command with --format json (and stdin) and decodes
// its output into v.
func cliJSON(t *testing.T, v any, stdin string, args ...string) {
	t.Helper()
	out, errOut, err := cliIn(t, stdin, append(args, "--format", "json")...)
	if err != nil {
		t.Fatalf("flotilla %s --format json: %v, stderr %q", strings.Join(args, " "), err, errOut)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		t.Fatalf("flotilla %s --format json printed %q: %v", strings.Join(args, " "), out, err)
	}
}

// mustFail runs a command that must fail with a message containing want.
func mustFail(t *testing.T, stdin, want string, args ...string) {
	t.Helper()
	out, errOut, err := cliIn(t, stdin, args...)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 || !strings.Contains(errOut, want) {
		t.Errorf("flotilla %s: %v, stdout %q, stderr %q; want a non-zero exit saying %q", strings.Join(args, " "), err, out, errOut, want)
	}
}

type e2eKV struct {
	Key            string `json:"key"`
	Value          string `json:"value"`
	ValueBase64    []byte `json:"value_base64"`
	CreateRevision int64  `json:"create_revision"`
	ModRevision    int64  `json:"mod_revision"`
	Version        int64  `json:"version"`
	Revision       int64  `json:"revision"`
}

// TestRevisionsE2E runs the revision commands of kv (put, get --rev,
// scan --rev, txn, compact, --format json) and the Go API's revision
// methods against a real three-node cluster, across two ranges.
func TestRevisionsE2E(t *testing.T) {
	procs := cluster3(t)
	for _, p := range procs {
		testutil.SucceedsWithin(t, 30*time.Second, func() error {
			_, err := nodeStatus(p.httpAddr)
			return err
		})
	}
	mustCLIPrefix(t, "cluster ", "init", "--host", procs[0].addr)
	waitReplicated(t, procs)
	h := procs[1].addr

	// Two ranges: [.., m) and [m, ..).
	mustCLIPrefix(t, "ID", "cluster", "split", "m", "--host", h)

	// Writes take increasing revisions; get and scan read at past ones.
	r1 := putRev(t, h, "a", "1")
	var w struct{ Revision int64 }
	cliJSON(t, &w, "", "kv", "put", "--host", h, "b", "x")
	r2 := w.Revision
	r3 := putRev(t, h, "a", "2")
	r4 := putRev(t, h, "n", "in the second range")
	if !(r1 < r2 && r2 < r3 && r3 < r4) {
		t.Fatalf("revisions %d, %d, %d, %d do not increase", r1, r2, r3, r4)
	}
	mustCLI(t, "1\n", "kv", "get", "--host", h, "a", "--rev", fmt.Sprint(r1))
	mustCLI(t, "2\n", "kv", "get", "--host", h, "a")
	mustCLI(t, "2\n", "kv", "get", "--host", h, "a", "--rev", fmt.Sprint(r3))
	mustFail(t, "", fmt.Sprintf(`key "b" not found (at revision %d)`, r1), "kv", "get", "--host", h, "b", "--rev", fmt.Sprint(r1))
	var g e2eKV
	cliJSON(t, &g, "", "kv", "get", "--host", h, "a")
	if g.Key != "a" || g.Value != "2" || g.CreateRevision != r1 || g.ModRevision != r3 || g.Version != 2 || g.Revision < r4 {
		t.Errorf("get a --format json = %+v; want a=2 created at %d, modified at %d, version 2, read at ≥ %d", g, r1, r3, r4)
	}
	cliJSON(t, &g, "", "kv", "get", "--host", h, "a", "--rev", fmt.Sprint(r1))
	if g.Value != "1" || g.ModRevision != r1 || g.Version != 1 || g.Revision != r1 {
		t.Errorf("get a --rev %d --format json = %+v", r1, g)
	}
	// A scan across both ranges at a past revision is that snapshot.
	mustCLI(t, "a\t1\nb\tx\n", "kv", "scan", "--host", h, "a", "--rev", fmt.Sprint(r2))
	mustCLI(t, "a\t2\nb\tx\nn\tin the second range\n", "kv", "scan", "--host", h, "a", "")
	mustCLI(t, "n\tin the second range\nb\tx\n", "kv", "scan", "--host", h, "a", "--reverse", "--limit", "2")
	// Reads from any replica: each node serves from its own replica (two
	// of the three follow), the same answers.
	for _, p := range procs {
		for _, from := range []string{"follower", "nearest"} {
			mustCLI(t, "2\n", "kv", "get", "--host", p.addr, "a", "--read-from", from)
			mustCLI(t, "a\t2\nb\tx\nn\tin the second range\n", "kv", "scan", "--host", p.addr, "a", "", "--read-from", from, "--zone", "z1")
		}
	}
	mustFail(t, "", `--read-from: "any" is not leader, follower or nearest`, "kv", "get", "--host", h, "a", "--read-from", "any")
	mustFail(t, "", `zone "a,b" is not a label value`, "kv", "get", "--host", h, "a", "--zone", "a,b")
	followerReads := 0.0
	for _, p := range procs {
		followerReads += metricValue(t, p.httpAddr, "flotilla_kv_follower_reads_total")
	}
	if followerReads < 2 {
		t.Errorf("flotilla_kv_follower_reads_total sums to %v over the nodes; want reads served by followers", followerReads)
	}
	var s struct {
		Revision int64
		KVs      []e2eKV
	}
	cliJSON(t, &s, "", "kv", "scan", "--host", h, "a", "z", "--rev", fmt.Sprint(r3))
	if s.Revision != r3 || len(s.KVs) != 2 || s.KVs[0].Value != "2" || s.KVs[0].Version != 2 || s.KVs[1].Key != "b" || s.KVs[1].ModRevision != r2 {
		t.Errorf("scan a z --rev %d --format json = %+v", r3, s)
	}

	var cas struct {
		Swapped, Found bool
		Current        *string
	}
	cliJSON(t, &cas, "", "kv", "cas", "--host", h, "b", "nope", "y")
	if cas.Swapped || !cas.Found || cas.Current == nil || *cas.Current != "x" {
		t.Errorf("kv cas --format json of a wrong value = %+v", cas)
	}

	// Values that would be misread are printed quoted.
	putRev(t, h, "nl", "x\ny")
	mustCLI(t, "\"x\\ny\"\n", "kv", "get", "--host", h, "nl")
	putRev(t, h, "empty", "")
	mustCLI(t, "empty\t\"\"\n", "kv", "scan", "--host", h, "empty", "f")

	t.Run("txn", func(t *testing.T) {
		in := fmt.Sprintf(`mod("a") = "%d"
create("absent") = "0"
version("a") != "1"
value("a") = "2"

put a 3
get a
get a c

get a
`, r3)
		out, errOut, err := cliIn(t, in, "kv", "txn", "--host", h)
		m := regexp.MustCompile(`^SUCCESS \(revision (\d+)\)\n\nOK\n\na\t3\n\na\t3\nb\tx\n$`).FindStringSubmatch(out)
		if err != nil || m == nil {
			t.Fatalf("kv txn: %q, %v, stderr %q", out, err, errOut)
		}
		rt, _ := strconv.ParseInt(m[1], 10, 64)
		if rt <= r4 {
			t.Errorf("the txn's revision %d is not above %d", rt, r4)
		}
		// The same txn again: a's mod revision moved, the failure branch
		// runs.
		var res struct {
			Succeeded bool
			Revision  int64
			Results   []struct {
				Op    string
				Found *bool
				KV    *e2eKV
				KVs   []e2eKV
			}
		}
		cliJSON(t, &res, in, "kv", "txn", "--host", h)
		if res.Succeeded || len(res.Results) != 1 || res.Results[0].Op != "get" || res.Results[0].KV == nil ||
			res.Results[0].KV.Value != "3" || res.Results[0].KV.ModRevision != rt {
			t.Errorf("the txn again = %+v; want the failure branch reading a=3 at %d", res, rt)
		}
		// A txn in the second range, deleting; a read of the first.
		in = "version(\"n\") = 1\n\ndel n\nput n2 v\nget a\n"
		cliJSON(t, &res, in, "kv", "txn", "--host", h)
		if !res.Succeeded || len(res.Results) != 3 || res.Results[0].Op != "del" || res.Results[0].Found == nil || !*res.Results[0].Found ||
			res.Results[2].KV == nil || res.Results[2].KV.Value != "3" {
			t.Errorf("txn in the second range = %+v", res)
		}
		// Compares or writes in both ranges are refused, nothing applied.
		mustFail(t, "\nput a 4\nput z 4\n", "one range", "kv", "txn", "--host", h)
		mustCLI(t, "3\n", "kv", "get", "--host", h, "a")
		mustFail(t, "\nput a 4\nput a 5\nfoo\n", `line 4: op "foo"`, "kv", "txn", "--host", h)
		mustFail(t, "\n\n", "an empty txn", "kv", "txn", "--host", h)
		var many strings.Builder
		many.WriteString("\n")
		for i := range 129 {
			fmt.Fprintf(&many, "put k%03d v\n", i)
		}
		mustFail(t, many.String(), "too many ops", "kv", "txn", "--host", h)
	})

	t.Run("go api", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		c, err := flotilla.New(flotilla.Config{Endpoints: []string{procs[0].addr, procs[2].addr}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		p1, err := c.PutRev(ctx, []byte("g"), []byte("1"))
		if err != nil {
			t.Fatal(err)
		}
		p2, err := c.PutRev(ctx, []byte("g"), []byte("2"))
		if err != nil || p2 <= p1 {
			t.Fatalf("PutRev = %d, %v after %d", p2, err, p1)
		}
		got, err := c.GetAt(ctx, []byte("g"), p1)
		if err != nil || !got.Found || string(got.KV.Value) != "1" || got.KV.ModRevision != p1 || got.Revision != p1 {
			t.Errorf("GetAt(g, %d) = %+v, %v", p1, got, err)
		}
		// A scan paged one pair at a time is one snapshot: a write made
		// between its pages is not seen.
		res, err := c.ScanAt(ctx, []byte("a"), nil, flotilla.ScanOptions{Limit: 1})
		if err != nil || res.Resume == nil || res.Revision < p2 {
			t.Fatalf("ScanAt(limit 1) = %+v, %v", res, err)
		}
		if _, err := c.PutRev(ctx, []byte("zz"), []byte("late")); err != nil {
			t.Fatal(err)
		}
		all := res.KVs
		for res.Resume != nil {
			rev := res.Revision
			if res, err = c.ScanAt(ctx, res.Resume, nil, flotilla.ScanOptions{Limit: 1, Revision: rev}); err != nil {
				t.Fatal(err)
			}
			if res.Revision != rev {
				t.Fatalf("a page at revision %d was read at %d", rev, res.Revision)
			}
			all = append(all, res.KVs...)
		}
		for _, kv := range all {
			if string(kv.Key) == "zz" {
				t.Errorf("the scan at one revision saw a later write: %q", kv.Key)
			}
		}
		existed, dr, err := c.DeleteRev(ctx, []byte("g"))
		if err != nil || !existed || dr <= p2 {
			t.Errorf("DeleteRev(g) = %v, %d, %v", existed, dr, err)
		}
		tr, err := c.Txn().
			If(flotilla.Compare(flotilla.CreateRevision([]byte("g")), "=", 0)).
			Then(flotilla.PutOp([]byte("g"), []byte("again")), flotilla.GetOp([]byte("g")),
				flotilla.ScanOp([]byte("m"), nil, flotilla.ScanOptions{Limit: 1})).
			Commit(ctx)
		if err != nil || !tr.Succeeded || len(tr.Results) != 3 || tr.Results[1].Get == nil ||
			string(tr.Results[1].Get.KV.Value) != "again" || tr.Results[1].Get.KV.Version != 1 || tr.Results[1].Get.KV.CreateRevision != tr.Revision ||
			tr.Results[2].Scan == nil || len(tr.Results[2].Scan.KVs) != 1 {
			t.Errorf("txn on a deleted key = %+v, %v", tr, err)
		}
		_, err = c.Txn().Then(flotilla.PutOp([]byte("a"), nil), flotilla.PutOp([]byte("z"), nil)).Commit(ctx)
		if !errors.Is(err, flotilla.ErrCrossRange) || !errors.Is(err, flotilla.ErrNotApplied) {
			t.Errorf("a cross-range txn: %v", err)
		}

		// Compaction: reads below fail with the compacted revision, above
		// the current revision is refused.
		if err := c.Compact(ctx, p2); err != nil {
			t.Fatalf("Compact(%d): %v", p2, err)
		}
		var fe *flotilla.Error
		if got, err := c.GetAt(ctx, []byte("g"), p2); err != nil || string(got.KV.Value) != "2" {
			t.Errorf("GetAt(g, %d) at the compacted revision = %+v, %v", p2, got, err)
		}
		err = c.Compact(ctx, 1<<60)
		if !errors.Is(err, flotilla.ErrFutureRevision) || !errors.As(err, &fe) || fe.CurrentRevision() < tr.Revision {
			t.Errorf("Compact(1<<60): %v", err)
		}
		t.Run("reads below the compacted or above the current revision", func(t *testing.T) {
			_, err = c.GetAt(ctx, []byte("g"), p1)
			if !errors.Is(err, flotilla.ErrCompacted) || !errors.As(err, &fe) || fe.CompactRevision() < p2 {
				t.Errorf("GetAt(g, %d) after compacting at %d: %v", p1, p2, err)
			}
			_, err = c.GetAt(ctx, []byte("g"), 1<<60)
			if !errors.Is(err, flotilla.ErrFutureRevision) {
				t.Errorf("GetAt(1<<60): %v", err)
			}
		})
	})

	t.Run("compact", func(t *testing.T) {
		now := putRev(t, h, "c", "now")
		mustCLI(t, fmt.Sprintf("compacted at revision %d\n", now), "kv", "compact", "--host", h, fmt.Sprint(now))
		mustCLI(t, "now\n", "kv", "get", "--host", h, "c", "--rev", fmt.Sprint(now))
		var c struct{ Revision int64 }
		cliJSON(t, &c, "", "kv", "compact", "--host", h, fmt.Sprint(now))
		if c.Revision != now {
			t.Errorf("kv compact --format json = %+v", c)
		}
		mustFail(t, "", "above the current revision", "kv", "compact", "--host", h, "1000000000000000")
		t.Run("reads below the compacted or above the current revision", func(t *testing.T) {
			mustFail(t, "", "compacted", "kv", "get", "--host", h, "a", "--rev", fmt.Sprint(r1))
			mustFail(t, "", "compacted", "kv", "scan", "--host", h, "a", "--rev", fmt.Sprint(r1))
			mustFail(t, "", "above the current revision", "kv", "get", "--host", h, "a", "--rev", "1000000000000000")
		})
	})

	t.Run("bad input", func(t *testing.T) {
		mustFail(t, "", "--rev must not be negative", "kv", "get", "--host", h, "a", "--rev", "-1")
		mustFail(t, "", "--rev must not be negative", "kv", "scan", "--host", h, "a", "--rev", "-3")
		mustFail(t, "", "want a positive revision", "kv", "compact", "--host", h, "0")
		mustFail(t, "", "want a positive revision", "kv", "compact", "--host", h, "x")
		mustFail(t, "", `--format "yaml": want text or json`, "kv", "get", "--host", h, "a", "--format", "yaml")
		mustFail(t, `bogus("a") = "1"`, `line 1: compare "bogus(\"a\") = \"1\"": unknown compare target "bogus"`, "kv", "txn", "--host", h)
	})
}
