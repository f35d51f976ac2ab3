// Copyright 2026 The Flotilla Authors. All rights reserved.

package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"google.golang.org/protobuf/proto"
)

// TestRulesFileRoundTrip: what `rules get --format json` prints, `rules
// set` reads back as the same rules, keys of any bytes included (text that
// looks like hex, binary, the open ends).
func TestRulesFileRoundTrip(t *testing.T) {
	rules := []*flotillapb.PlacementRule{
		{StartKey: []byte("0x41"), EndKey: []byte("0x42"), Voters: 3, VoterConstraints: []string{"zone!=c"}, SpreadOver: "zone"},
		{StartKey: []byte{0, 0xff}, EndKey: []byte("b"), Voters: 1, NonVoters: 2, NonVoterConstraints: []string{"role=observer"}},
		{StartKey: []byte("m"), Voters: 5, LeaderConstraints: []string{"zone=a"}},
		{EndKey: []byte{0}, Voters: 3},
	}
	var buf bytes.Buffer
	if err := printRules(&buf, "json", &flotillapb.RulesResponse{Rules: rules}); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "rules.json")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	back, err := readRulesFile(path, nil)
	if err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	if len(back) != len(rules) {
		t.Fatalf("%d rules back, want %d", len(back), len(rules))
	}
	for i := range rules {
		if !proto.Equal(back[i], rules[i]) {
			t.Errorf("rule %d: %v back, want %v\n%s", i+1, back[i], rules[i], buf.String())
		}
	}
	var raw []map[string]any
	if err := json.Unmarshal(buf.Bytes(), &raw); err != nil || raw[0]["start_key"] != "0x30783431" {
		t.Errorf("a text key that looks like hex prints as %v (%v)", raw[0]["start_key"], err)
	}
}

// TestReadSplitKeys: --split-at-file takes one key per line, text or 0x
// hex, skipping empty lines (and CRs); a bad line is named.
func TestReadSplitKeys(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "keys")
	if err := os.WriteFile(good, []byte("b\r\n\nm\n0x00ff\nuser 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	keys, err := readSplitKeys(good)
	if err != nil {
		t.Fatal(err)
	}
	if want := [][]byte{[]byte("b"), []byte("m"), {0, 0xff}, []byte("user 1")}; !slices.EqualFunc(keys, want, bytes.Equal) {
		t.Fatalf("keys %q, want %q", keys, want)
	}
	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(bad, []byte("a\n0xzz\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readSplitKeys(bad); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Fatalf("a bad hex key: %v; want an error naming line 2", err)
	}
	if _, err := readSplitKeys(filepath.Join(dir, "missing")); err == nil || !strings.Contains(err.Error(), "--split-at-file") {
		t.Fatalf("a missing file: %v", err)
	}
}
