// Copyright 2026 The Flotilla Authors. All rights reserved.

package testproxy_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/flotilladb/flotilla/internal/testproxy"
	"github.com/flotilladb/flotilla/internal/testutil"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// echoServer echoes lines back until it is closed.
func echoServer(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]struct{}{}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := lis.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = struct{}{}
			mu.Unlock()
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _ = io.Copy(c, c)
				_ = c.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		_ = lis.Close()
		mu.Lock()
		for c := range conns {
			_ = c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return lis.Addr().String()
}

// roundTrip dials addr, sends a line and reads it back.
func roundTrip(addr string) error {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	return echo(c)
}

func echo(c net.Conn) error {
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := io.WriteString(c, "ping\n"); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return err
	}
	if line != "ping\n" {
		return errors.New("got " + line)
	}
	return nil
}

func TestProxyCutHeal(t *testing.T) {
	p, err := testproxy.New(echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	if err := roundTrip(p.Addr()); err != nil {
		t.Fatalf("through a healthy proxy: %v", err)
	}

	// An open connection is closed by Cut.
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := echo(c); err != nil {
		t.Fatal(err)
	}
	p.Cut()
	if !p.IsCut() {
		t.Fatal("IsCut is false after Cut")
	}
	if err := echo(c); err == nil {
		t.Fatal("an open connection still works after Cut")
	}
	// New connections are accepted, then closed.
	if err := roundTrip(p.Addr()); err == nil {
		t.Fatal("a new connection works while cut")
	}

	p.Heal()
	testutil.SucceedsWithin(t, 5*time.Second, func() error { return roundTrip(p.Addr()) })

	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := roundTrip(p.Addr()); err == nil {
		t.Fatal("a connection works after Close")
	}
}

func TestProxyTargetDown(t *testing.T) {
	// Reserve a port with nothing listening on it.
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := lis.Addr().String()
	_ = lis.Close()
	p, err := testproxy.New(target)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := roundTrip(p.Addr()); err == nil {
		t.Fatal("a connection works while the target is down")
	}
}
