// Copyright 2026 The Flotilla Authors. All rights reserved.

package rpc

import (
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCertsAndRoles(t *testing.T) {
	dir := t.TempDir()
	caKey := filepath.Join(t.TempDir(), "safe", "ca.key")
	req := CertRequest{CertsDir: dir, CAKey: caKey}
	if err := os.MkdirAll(filepath.Dir(caKey), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := CreateCA(req); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, CAKeyFile)); err == nil {
		t.Error("the CA key was written to the certs directory, not to CAKey")
	}
	if fi, err := os.Stat(caKey); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("CA key: %v, %v; want mode 0600", fi, err)
	}
	if err := CreateCA(req); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("second CreateCA: %v, want already exists", err)
	}
	if err := CreateNodeCert(req, nil); err == nil {
		t.Error("a node certificate without hosts was made")
	}
	if err := CreateNodeCert(req, []string{"127.0.0.1", "localhost"}); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"node", "", "Root", "-x", strings.Repeat("a", 64), "a/b"} {
		if err := CreateClientCert(req, u); err == nil {
			t.Errorf("client certificate for user %q was made", u)
		}
	}
	if err := CreateClientCert(req, RootUser); err != nil {
		t.Fatal(err)
	}
	if err := CreateClientCert(CertRequest{CertsDir: dir}, "bob"); err == nil || !strings.Contains(err.Error(), "CA key") {
		t.Errorf("client certificate without the CA key: %v", err)
	}

	node, err := LoadNodeCerts(dir)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(node.NotAfter); d < DefaultCertLifetime-2*time.Hour || d > DefaultCertLifetime {
		t.Errorf("node certificate expires in %v", d)
	}
	client, err := LoadClientTLS(dir, RootUser)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := LoadClientTLS(dir, "bob"); err == nil || !strings.Contains(err.Error(), "create-client bob") {
		t.Errorf("missing client certificate: %v", err)
	}

	// A client certificate posing as a node's is refused.
	fake := t.TempDir()
	copyFile(t, filepath.Join(dir, CACertFile), filepath.Join(fake, CACertFile))
	c, k := ClientCertFiles(RootUser)
	copyFile(t, filepath.Join(dir, c), filepath.Join(fake, NodeCertFile))
	copyFile(t, filepath.Join(dir, k), filepath.Join(fake, NodeKeyFile))
	if _, err := LoadNodeCerts(fake); err == nil || !strings.Contains(err.Error(), "CommonName") {
		t.Errorf("client certificate as node certificate: %v", err)
	}

	// Roles as a server sees them, over a real handshake.
	for _, tc := range []struct {
		name string
		cfg  *tls.Config
		role Role
		user string
	}{
		{"node", node.PeerTLS(), RoleNode, NodeCommonName},
		{"client", client, RoleClient, RootUser},
	} {
		state := handshake(t, node.ServerTLS(), tc.cfg)
		if role, user := RoleOf(state); role != tc.role || user != tc.user {
			t.Errorf("%s: role %v user %q, want %v %q", tc.name, role, user, tc.role, tc.user)
		}
	}
	if role, _ := RoleOf(nil); role != RoleNone {
		t.Errorf("no TLS: role %v", role)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// handshake runs a TLS handshake over an in-memory pipe and returns the
// server's view of the connection.
func handshake(t *testing.T, server, client *tls.Config) *tls.ConnectionState {
	t.Helper()
	a, b := pipe(t)
	client = client.Clone()
	client.ServerName = "127.0.0.1"
	errc := make(chan error, 1)
	go func() {
		c := tls.Client(b, client)
		errc <- c.Handshake()
	}()
	s := tls.Server(a, server)
	if err := s.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	st := s.ConnectionState()
	return &st
}

func pipe(t *testing.T) (net.Conn, net.Conn) {
	a, b := net.Pipe()
	t.Cleanup(func() { _ = a.Close(); _ = b.Close() })
	return a, b
}
