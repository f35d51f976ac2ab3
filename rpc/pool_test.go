// Copyright 2026 The Flotilla Authors. All rights reserved.

package rpc

import (
	"errors"
	"sync"
	"testing"

	"google.golang.org/grpc"
)

func TestPool(t *testing.T) {
	overrides := map[string]string{"10.0.0.1:7000": "127.0.0.1:7001"}
	p := NewPool(PoolConfig{DialOverrides: overrides})
	overrides["10.0.0.1:7000"] = "changed after NewPool"

	a, err := p.Conn("10.0.0.2:7000")
	if err != nil {
		t.Fatal(err)
	}
	if a.Target() != "10.0.0.2:7000" {
		t.Errorf("connection targets %s", a.Target())
	}
	o, err := p.Conn("10.0.0.1:7000")
	if err != nil {
		t.Fatal(err)
	}
	if o.Target() != "127.0.0.1:7001" {
		t.Errorf("overridden connection targets %s, want 127.0.0.1:7001", o.Target())
	}
	if _, err := p.Conn(""); err == nil {
		t.Error("Conn accepted an empty address")
	}

	// Concurrent callers share one connection.
	var wg sync.WaitGroup
	conns := make([]*grpc.ClientConn, 16)
	for i := range conns {
		wg.Go(func() {
			c, err := p.Conn("10.0.0.3:7000")
			if err != nil {
				t.Error(err)
			}
			conns[i] = c
		})
	}
	wg.Wait()
	for _, c := range conns {
		if c != conns[0] {
			t.Fatal("concurrent Conn calls returned different connections")
		}
	}
	if again, _ := p.Conn("10.0.0.2:7000"); again != a {
		t.Error("a second Conn returned another connection")
	}

	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Conn("10.0.0.2:7000"); !errors.Is(err, ErrPoolClosed) {
		t.Errorf("Conn after Close: %v", err)
	}
}
