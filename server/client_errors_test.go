// Copyright 2026 The Flotilla Authors. All rights reserved.

package server_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/flotilladb/flotilla"
)

// checkErr fails unless err came from the caller's context ending the
// request (errors.Is(err, ctxErr)), names a write's outcome once and a
// read's never.
func checkErr(t *testing.T, what string, err, ctxErr error, write bool) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error", what)
	}
	if !errors.Is(err, ctxErr) {
		t.Errorf("%s: %v does not match %v", what, err, ctxErr)
	}
	msg := err.Error()
	n := strings.Count(msg, "(not applied)") + strings.Count(msg, "(outcome unknown)")
	if write && (n != 1 || !(errors.Is(err, flotilla.ErrNotApplied) || errors.Is(err, flotilla.ErrOutcomeUnknown))) {
		t.Errorf("%s: a write's error must tell its outcome once: %q", what, msg)
	}
	if !write && (n != 0 || errors.Is(err, flotilla.ErrNotApplied) || errors.Is(err, flotilla.ErrOutcomeUnknown)) {
		t.Errorf("%s: a read's error has a write outcome: %q", what, msg)
	}
}

// TestRequestErrorsWithoutQuorum: with two of three nodes down, requests
// through a client and through the surviving embedded node end with the
// caller's context. Their errors match the context's error with errors.Is,
// tell a write's outcome once (unknown: the write was proposed and may yet
// commit) and a read's never.
func TestRequestErrorsWithoutQuorum(t *testing.T) {
	c := startLZCluster(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cl := c.connect(0, 1, 2)
	if err := cl.Put(ctx, []byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	survivor := c.leader(0, 1, 2)
	if survivor < 0 {
		survivor = 0
	}
	for i := range lzNodes {
		if i != survivor {
			if err := c.stop(i); err != nil {
				t.Fatal(err)
			}
		}
	}
	kvs := map[string]flotilla.KV{"client": cl, "embedded node": c.node(survivor)}
	for name, kv := range kvs {
		dctx, dcancel := context.WithTimeout(ctx, time.Second)
		err := kv.Put(dctx, []byte("k"), []byte("v2"))
		dcancel()
		checkErr(t, name+" put past its deadline", err, context.DeadlineExceeded, true)
		t.Logf("%s put: %v", name, err)

		dctx, dcancel = context.WithTimeout(ctx, time.Second)
		_, err = kv.Get(dctx, []byte("k"))
		dcancel()
		checkErr(t, name+" get past its deadline", err, context.DeadlineExceeded, false)
		t.Logf("%s get: %v", name, err)

		cctx, ccancel := context.WithCancel(ctx)
		time.AfterFunc(300*time.Millisecond, ccancel)
		_, err = kv.CompareAndSwap(cctx, []byte("k"), flotilla.ExpectValue([]byte("v")), []byte("v3"))
		checkErr(t, name+" cas canceled", err, context.Canceled, true)
		ccancel()

		cctx, ccancel = context.WithCancel(ctx)
		time.AfterFunc(300*time.Millisecond, ccancel)
		_, err = kv.Scan(cctx, nil, nil, flotilla.ScanOptions{})
		checkErr(t, name+" scan canceled", err, context.Canceled, false)
		ccancel()
	}
}
