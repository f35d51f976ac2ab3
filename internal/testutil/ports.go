// Copyright 2026 The Flotilla Authors. All rights reserved.

package testutil

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Ports handed to processes are drawn from [portLow, portHigh), below
// Linux's default ephemeral range (32768–60999). A port taken from
// "127.0.0.1:0" and closed again lies in the ephemeral range, where any
// process's next outgoing connection or ":0" listener may take it before the
// child process binds it; CI once failed that way. Below that range only
// explicit binds compete.
const (
	portLow  = 20000
	portHigh = 32000
)

var ports struct {
	mu     sync.Mutex
	handed map[int]bool
}

// portClaimTTL is how long a port claimed by one test process stays out of
// reach of the others.
const portClaimTTL = 30 * time.Minute

// FreeAddr returns a loopback address ("127.0.0.1:port") that was free a
// moment ago and that no other FreeAddr of this or another test process on
// this machine has handed out recently: for a server in another process to
// listen at, or as an address nothing listens at. Claims across processes
// are files in the temporary directory, created exclusively.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ports.mu.Lock()
	defer ports.mu.Unlock()
	if ports.handed == nil {
		ports.handed = make(map[int]bool)
	}
	dir := filepath.Join(os.TempDir(), "flotilla-test-ports")
	_ = os.MkdirAll(dir, 0o755)
	for range 1000 {
		port := portLow + rand.IntN(portHigh-portLow)
		if ports.handed[port] || !claimPort(dir, port) {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			continue
		}
		_ = l.Close()
		ports.handed[port] = true
		return l.Addr().String()
	}
	t.Fatalf("no free loopback port in [%d, %d) after 1000 tries", portLow, portHigh)
	return ""
}

// claimPort creates dir/port exclusively, or takes it over when it is older
// than portClaimTTL. It reports false if another process holds the claim.
// When the directory cannot be written it claims nothing and reports true.
func claimPort(dir string, port int) bool {
	name := filepath.Join(dir, strconv.Itoa(port))
	f, err := os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err == nil {
		_, _ = fmt.Fprintf(f, "%d\n", os.Getpid())
		_ = f.Close()
		return true
	}
	if !os.IsExist(err) {
		return true
	}
	fi, err := os.Stat(name)
	if err != nil || time.Since(fi.ModTime()) < portClaimTTL {
		return false
	}
	now := time.Now()
	return os.Chtimes(name, now, now) == nil
}
