// Copyright 2026 The Flotilla Authors. All rights reserved.

package flotilla_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/flotilladb/flotilla"
	"github.com/flotilladb/flotilla/internal/testutil"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// refusingAddr returns a loopback address nothing listens on: a port that
// was just free.
func refusingAddr(t *testing.T) string { return testutil.FreeAddr(t) }

// checkOutcomeOnce fails unless msg names a write's outcome at most once,
// and a read's never.
func checkOutcomeOnce(t *testing.T, what string, err error, write bool) {
	t.Helper()
	msg := err.Error()
	n := strings.Count(msg, "not applied") + strings.Count(msg, "outcome unknown")
	switch {
	case write && n > 1:
		t.Errorf("%s: the outcome is told %d times: %q", what, n, msg)
	case !write && n > 0:
		t.Errorf("%s: a read's error names a write outcome: %q", what, msg)
	}
	if !write && (errors.Is(err, flotilla.ErrNotApplied) || errors.Is(err, flotilla.ErrOutcomeUnknown)) {
		t.Errorf("%s: a read's error has a write outcome: %v", what, err)
	}
}

// TestDialTimeout: when every endpoint refuses connections, a request fails
// within the dial timeout, with the cause, not at its deadline.
func TestDialTimeout(t *testing.T) {
	eps := []string{refusingAddr(t), refusingAddr(t)}
	// An endpoint given twice counts once.
	c, err := flotilla.New(flotilla.Config{Endpoints: append(eps, eps[0]), DialTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// A deadline far beyond the dial timeout: the request must not wait
	// for it.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, op := range []struct {
		name  string
		write bool
		do    func() error
	}{
		{"put", true, func() error { return c.Put(ctx, []byte("k"), []byte("v")) }},
		{"get", false, func() error { _, err := c.Get(ctx, []byte("k")); return err }},
		{"scan", false, func() error { _, err := c.Scan(ctx, nil, nil, flotilla.ScanOptions{}); return err }},
	} {
		start := time.Now()
		err := op.do()
		took := time.Since(start)
		if !errors.Is(err, flotilla.ErrUnavailable) {
			t.Fatalf("%s: %v, want ErrUnavailable", op.name, err)
		}
		if op.write && !errors.Is(err, flotilla.ErrNotApplied) {
			t.Errorf("%s: %v: a write that never reached a node was certainly not applied", op.name, err)
		}
		if !strings.Contains(err.Error(), "connection refused") || !strings.Contains(err.Error(), eps[0]) || !strings.Contains(err.Error(), eps[1]) {
			t.Errorf("%s: %q does not name each endpoint's cause", op.name, err)
		}
		if errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("%s: %v: the caller's deadline did not end the request", op.name, err)
		}
		checkOutcomeOnce(t, op.name, err, op.write)
		// Far below the one-minute deadline and the 10 s default request
		// timeout: the dial timeout ended it.
		if took > 8*time.Second {
			t.Errorf("%s took %v with a dial timeout of 300ms", op.name, took)
		}
	}
}

// silentAddr returns a loopback address that accepts connections and never
// answers (a node that hangs), closed when the test ends.
func silentAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var conns []net.Conn
	go func() {
		defer close(done)
		for {
			c, err := lis.Accept()
			if err != nil {
				for _, c := range conns {
					_ = c.Close()
				}
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() { _ = lis.Close(); <-done })
	return lis.Addr().String()
}

// TestDialTimeoutSilentNode: a node that accepts connections but never
// answers counts as unreachable too, within the dial timeout as a whole
// (every dial of the request together, the range lookup's included).
func TestDialTimeoutSilentNode(t *testing.T) {
	c, err := flotilla.New(flotilla.Config{Endpoints: []string{silentAddr(t)}, DialTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	_, err = c.Get(ctx, []byte("k"))
	took := time.Since(start)
	if !errors.Is(err, flotilla.ErrUnavailable) || !strings.Contains(err.Error(), "did not answer") {
		t.Fatalf("get from a silent node: %v", err)
	}
	// Well below the connect wait (1 s) that two dials of the request
	// would take without a shared bound.
	if took > 900*time.Millisecond {
		t.Errorf("get took %v with a dial timeout of 300ms", took)
	}
}

// TestContextEndsRequest: when the caller's context ends a request, its
// error matches the context's error with errors.Is (and still says the
// outcome of a write).
func TestContextEndsRequest(t *testing.T) {
	c, err := flotilla.New(flotilla.Config{Endpoints: []string{refusingAddr(t)}, DialTimeout: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	err = c.Put(canceled, []byte("k"), []byte("v"))
	if !errors.Is(err, context.Canceled) || !errors.Is(err, flotilla.ErrNotApplied) {
		t.Errorf("put with a canceled context: %v, want context.Canceled and not applied", err)
	}
	checkOutcomeOnce(t, "put", err, true)

	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err = c.Get(ctx, []byte("k"))
	if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, flotilla.ErrUnavailable) {
		t.Errorf("get past its deadline: %v, want context.DeadlineExceeded", err)
	}
	var fe *flotilla.Error
	if !errors.As(err, &fe) || fe.Op != "get" {
		t.Errorf("get: %v is not a *flotilla.Error of op get", err)
	}
	checkOutcomeOnce(t, "get", err, false)

	ctx, cancel = context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	_, err = c.Scan(ctx, []byte("a"), []byte("b"), flotilla.ScanOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("scan canceled while in flight: %v, want context.Canceled", err)
	}
	checkOutcomeOnce(t, "scan", err, false)
}

func TestConfigAndClose(t *testing.T) {
	if _, err := flotilla.New(flotilla.Config{}); !errors.Is(err, flotilla.ErrInvalidArgument) || !strings.Contains(err.Error(), "no endpoints") {
		t.Errorf("no endpoints: %v", err)
	}
	_, err := flotilla.New(flotilla.Config{Endpoints: []string{"nonsense"}, DialTimeout: -1})
	if !errors.Is(err, flotilla.ErrInvalidArgument) || !strings.Contains(err.Error(), "nonsense") || !strings.Contains(err.Error(), "DialTimeout") {
		t.Errorf("bad config: %v, want both problems", err)
	}
	c, err := flotilla.Connect(context.Background(), refusingAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Put(context.Background(), []byte("k"), []byte("v")); !errors.Is(err, flotilla.ErrClosed) {
		t.Errorf("put on a closed client: %v", err)
	}
	if err := c.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
	// Bad input is refused before anything is sent.
	c, err = flotilla.Connect(context.Background(), refusingAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = c.Scan(context.Background(), []byte("b"), []byte("a"), flotilla.ScanOptions{})
	if !errors.Is(err, flotilla.ErrInvalidArgument) {
		t.Errorf("inverted scan: %v", err)
	}
	checkOutcomeOnce(t, "inverted scan", err, false)
	_, err = c.Batch(context.Background(), flotilla.PutOp(nil, []byte("v")))
	if !errors.Is(err, flotilla.ErrInvalidArgument) || !errors.Is(err, flotilla.ErrNotApplied) || !strings.Contains(err.Error(), "ops[0].put.key") {
		t.Errorf("batch with an empty key: %v", err)
	}
}
