// Copyright 2026 The Flotilla Authors. All rights reserved.

package rpc

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"google.golang.org/grpc"
)

func TestCertsAndRoles(t *testing.T) {
	dir := t.TempDir()
	caKey := filepath.Join(t.TempDir(), "safe", "ca.key")
	req := CertRequest{CertsDir: dir, CAKey: caKey} // caKey's directory does not exist yet
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
	for _, h := range []string{"10.0.0.1:7400", "", "a..b", "-x.example.com", "x_y"} {
		if err := CreateNodeCert(req, []string{h}); err == nil || !strings.Contains(err.Error(), "neither an IP") {
			t.Errorf("node certificate for host %q: %v", h, err)
		}
	}
	if err := CreateNodeCert(req, []string{"127.0.0.1", "[::1]", "localhost", "node-1.example.com"}); err != nil {
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
	for _, h := range []string{"127.0.0.1", "::1", "localhost", "node-1.example.com"} {
		if err := node.VerifyHostname(h); err != nil {
			t.Errorf("VerifyHostname(%s): %v", h, err)
		}
	}
	if err := node.VerifyHostname("10.0.0.1"); err == nil {
		t.Error("the node certificate covers 10.0.0.1")
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

// TestRoleNeedsBothUsages: only a certificate with CommonName "node" and
// both server and client usage is a node's; LoadNodeCerts refuses the
// others, RoleOf calls them clients.
func TestRoleNeedsBothUsages(t *testing.T) {
	dir := t.TempDir()
	req := CertRequest{CertsDir: dir}
	if err := CreateCA(req); err != nil {
		t.Fatal(err)
	}
	if err := CreateNodeCert(req, []string{"127.0.0.1"}); err != nil {
		t.Fatal(err)
	}
	node, err := LoadNodeCerts(dir)
	if err != nil {
		t.Fatal(err)
	}
	ca, caKey, err := loadCA(filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		cn     string
		usages []x509.ExtKeyUsage
		role   Role
	}{
		{"node, client usage only", NodeCommonName, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, RoleClient},
		{"node, both usages", NodeCommonName, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, RoleNode},
		{"alice, both usages", "alice", []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, RoleClient},
		{"node, any usage", NodeCommonName, []x509.ExtKeyUsage{x509.ExtKeyUsageAny}, RoleClient},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tmpl, err := template(CertRequest{Now: time.Now(), Lifetime: time.Hour}, tc.cn)
			if err != nil {
				t.Fatal(err)
			}
			tmpl.ExtKeyUsage = tc.usages
			tmpl.IPAddresses = []net.IP{net.ParseIP("127.0.0.1")}
			key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
			if err != nil {
				t.Fatal(err)
			}
			cfg := &tls.Config{RootCAs: node.cas, Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
			if role, _ := RoleOf(handshake(t, node.ServerTLS(), cfg)); role != tc.role {
				t.Errorf("role %v, want %v", role, tc.role)
			}
			// As a node's own certificate.
			sub := t.TempDir()
			copyFile(t, filepath.Join(dir, CACertFile), filepath.Join(sub, CACertFile))
			if err := (&CertRequest{CertsDir: sub}).writePair(filepath.Join(sub, NodeCertFile), der, filepath.Join(sub, NodeKeyFile), key); err != nil {
				t.Fatal(err)
			}
			if _, err := LoadNodeCerts(sub); (err == nil) != (tc.role == RoleNode) {
				t.Errorf("LoadNodeCerts: %v", err)
			}
		})
	}
}

// TestEveryMethodClassified: every method of Flotilla's gRPC services is
// either open to client certificates (ClientAllowed) or node-only, as
// this table says. A new method fails here until it is put in the table:
// it is node-only unless ClientAllowed lists it.
func TestEveryMethodClassified(t *testing.T) {
	clientOK := map[string]bool{
		"/flotilla.v1.KV/Get": true, "/flotilla.v1.KV/Put": true, "/flotilla.v1.KV/Delete": true,
		"/flotilla.v1.KV/DeleteRange": true, "/flotilla.v1.KV/Scan": true, "/flotilla.v1.KV/CompareAndSwap": true,
		"/flotilla.v1.KV/Batch": true, "/flotilla.v1.KV/Txn": true, "/flotilla.v1.KV/Compact": true,
		"/flotilla.v1.Node/Init": true, "/flotilla.v1.Node/Status": true, "/flotilla.v1.Node/ClusterStatus": true,
		"/flotilla.v1.Node/Join": false, "/flotilla.v1.Node/CloseRange": false,
		"/flotilla.v1.Placement/StoreHeartbeat": false, "/flotilla.v1.Placement/RangeHeartbeat": false,
		"/flotilla.v1.Placement/RangeHeartbeats": false,
		"/flotilla.v1.Placement/LookupRange":     true, "/flotilla.v1.Placement/ListStores": true,
		"/flotilla.v1.Placement/ListRanges": true, "/flotilla.v1.Placement/ListOperators": true,
		"/flotilla.v1.Placement/TransferLeader": true, "/flotilla.v1.Placement/AddReplica": true,
		"/flotilla.v1.Placement/RemoveReplica": true, "/flotilla.v1.Placement/SetStoreState": true,
		"/flotilla.v1.Placement/SplitRange": true, "/flotilla.v1.Placement/AllocateRevisions": false,
		"/flotilla.v1.Placement/GetRules": true, "/flotilla.v1.Placement/SetRules": true,
		"/flotilla.v1.Raft/RaftStream": false, "/flotilla.v1.Raft/Snapshot": false,
	}
	seen := 0
	for _, sd := range []grpc.ServiceDesc{flotillapb.KV_ServiceDesc, flotillapb.Node_ServiceDesc, flotillapb.Placement_ServiceDesc, flotillapb.Raft_ServiceDesc} {
		var names []string
		for _, m := range sd.Methods {
			names = append(names, m.MethodName)
		}
		for _, s := range sd.Streams {
			names = append(names, s.StreamName)
		}
		for _, name := range names {
			full := "/" + sd.ServiceName + "/" + name
			want, ok := clientOK[full]
			if !ok {
				t.Errorf("%s is not classified: decide whether client certificates may call it (ClientAllowed) and add it here", full)
				continue
			}
			seen++
			if got := ClientAllowed(full); got != want {
				t.Errorf("ClientAllowed(%s) = %v, want %v", full, got, want)
			}
		}
	}
	if seen != len(clientOK) {
		t.Errorf("the table lists %d methods, the services have %d classified", len(clientOK), seen)
	}
	for _, m := range []string{"", "/", "KV/Get", "/flotilla.v1.KV", "/flotilla.v1.Raft/RaftStream/", "/other.KV/Get"} {
		if ClientAllowed(m) {
			t.Errorf("ClientAllowed(%q)", m)
		}
	}
}
