// Copyright 2026 The Flotilla Authors. All rights reserved.

package main

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/flotilladb/flotilla/engine"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	// The tests say which certificates each command uses: a user's
	// exported default must not change that.
	os.Unsetenv(certsDirEnv)
	goleak.VerifyTestMain(m)
}

func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := newRootCmd()
	var out bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&out)
	cmd.SetArgs(args)
	err := cmd.Execute()
	return out.String(), err
}

func TestDebugKeys(t *testing.T) {
	dir := t.TempDir()
	e, err := engine.Open(engine.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	b := e.NewBatch()
	uk, _ := engine.UserKey([]byte("apple"))
	_ = b.Set(uk, []byte("red"))
	_ = b.Set(engine.RaftLogKey(7, 42), []byte("entry"))
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}

	out, err := run(t, "debug", "keys", "--store", dir)
	if err != nil {
		t.Fatal(err)
	}
	want := "/Range/7/Raft/Log/42\t5 bytes\n/User/\"apple\"\t3 bytes\n"
	if out != want {
		t.Fatalf("debug keys printed %q, want %q", out, want)
	}
	out, err = run(t, "debug", "keys", "--store", dir, "--values", "--limit", "1")
	if err != nil || out != "/Range/7/Raft/Log/42\t\"entry\"\n" {
		t.Fatalf("debug keys --values --limit 1 = %q, %v", out, err)
	}
}

func TestBadInput(t *testing.T) {
	empty := t.TempDir()
	for _, args := range [][]string{
		{"debug", "keys"}, // missing --store
		{"debug", "keys", "--store", t.TempDir() + "/no"}, // no such directory
		{"debug", "keys", "--store", t.TempDir(), "--limit", "-1"},
		{"debug", "keys", "--store", empty}, // not a store: not created either
		{"debug", "keys", "--bogus"},
		{"no-such-command"},
		{"version", "extra"},
		{"start", "--store", t.TempDir(), "--http-addr", "off", "--listen-addr", "127.0.0.1:0", "--gc-percent", "0"},
		{"start", "--store", t.TempDir(), "--http-addr", "off", "--listen-addr", "127.0.0.1:0", "--gc-percent", "-5"},
	} {
		if _, err := run(t, args...); err == nil {
			t.Errorf("flotilla %s: no error", strings.Join(args, " "))
		}
	}
	if names, _ := os.ReadDir(empty); len(names) != 0 {
		t.Fatalf("debug keys created files in an empty directory: %v", names)
	}
	out, err := run(t, "version")
	if err != nil || !strings.HasPrefix(out, "flotilla ") {
		t.Fatalf("version = %q, %v", out, err)
	}
}
