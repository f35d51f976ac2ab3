// Copyright 2026 The Flotilla Authors. All rights reserved.

package rpc

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// NodeCerts are what a secure node loads from its certs directory: the
// CA and its node certificate. It gives the TLS configurations of the
// node's listeners and of its dials to peers.
type NodeCerts struct {
	cas  *x509.CertPool
	cert tls.Certificate
	// NotAfter is when the node certificate expires.
	NotAfter time.Time
}

// LoadNodeCerts loads dir/ca.crt, dir/node.crt and dir/node.key and checks
// that the node certificate is one (CommonName "node", server and client
// use) that the CA signed and that is valid now.
func LoadNodeCerts(dir string) (*NodeCerts, error) {
	cas, err := loadCAs(dir)
	if err != nil {
		return nil, err
	}
	certPath, keyPath := filepath.Join(dir, NodeCertFile), filepath.Join(dir, NodeKeyFile)
	cert, err := tls.LoadX509KeyPair(certPath, keyPath)
	if err != nil {
		return nil, fmt.Errorf("node certificate: %w (make one with: flotilla cert create-node HOST... --certs-dir %s)", err, dir)
	}
	leaf := cert.Leaf
	if leaf.Subject.CommonName != NodeCommonName {
		return nil, fmt.Errorf("node certificate %s: CommonName %q, want %q: is it a client certificate?", certPath, leaf.Subject.CommonName, NodeCommonName)
	}
	_, err = leaf.Verify(x509.VerifyOptions{Roots: cas,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}})
	if err != nil {
		return nil, fmt.Errorf("node certificate %s does not verify against %s: %w", certPath, filepath.Join(dir, CACertFile), err)
	}
	return &NodeCerts{cas: cas, cert: cert, NotAfter: leaf.NotAfter}, nil
}

// ServerTLS is the configuration of the node's gRPC listener: it presents
// the node certificate and requires a client certificate the CA signed
// (a node's or a client's; Authorize tells them apart per method).
func (c *NodeCerts) ServerTLS() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{c.cert},
		ClientCAs:    c.cas,
		ClientAuth:   tls.RequireAndVerifyClientCert,
	}
}

// HTTPTLS is the configuration of the node's admin HTTP listener: it
// presents the node certificate and verifies a client certificate if one
// is given, without requiring one (metrics, health and the read-only
// pages are open; see HasVerifiedCert).
func (c *NodeCerts) HTTPTLS() *tls.Config {
	cfg := c.ServerTLS()
	cfg.ClientAuth = tls.VerifyClientCertIfGiven
	return cfg
}

// PeerTLS is the configuration of the node's dials to its peers: it
// trusts the CA and presents the node certificate as the client's.
func (c *NodeCerts) PeerTLS() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{c.cert},
		RootCAs:      c.cas,
	}
}

// LoadClientTLS loads dir/ca.crt and user's client certificate
// (dir/client.USER.crt and .key) into the TLS configuration of a client.
func LoadClientTLS(dir, user string) (*tls.Config, error) {
	if err := CheckUser(user); err != nil {
		return nil, err
	}
	cas, err := loadCAs(dir)
	if err != nil {
		return nil, err
	}
	certFile, keyFile := ClientCertFiles(user)
	cert, err := tls.LoadX509KeyPair(filepath.Join(dir, certFile), filepath.Join(dir, keyFile))
	if err != nil {
		return nil, fmt.Errorf("client certificate of user %q: %w (make one with: flotilla cert create-client %s --certs-dir %s)", user, err, user, dir)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		RootCAs:      cas,
	}, nil
}

func loadCAs(dir string) (*x509.CertPool, error) {
	if _, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("certs directory: %w", err)
	}
	certs, err := ReadCerts(filepath.Join(dir, CACertFile))
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w (make one with: flotilla cert create-ca --certs-dir %s)", err, dir)
	}
	pool := x509.NewCertPool()
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}

// Role is what a verified peer certificate lets its holder do.
type Role int8

const (
	// RoleNone: no verified certificate (an insecure connection).
	RoleNone Role = iota
	// RoleClient: a client certificate; Name is its user.
	RoleClient
	// RoleNode: a node certificate.
	RoleNode
)

func (r Role) String() string {
	switch r {
	case RoleClient:
		return "client"
	case RoleNode:
		return "node"
	}
	return "none"
}

// RoleOf returns the role of the peer of a TLS connection, from the leaf
// of its verified chain, and the user of a client certificate. A node
// certificate has CommonName "node" and may serve (ServerAuth); anything
// else the CA signed is a client's.
func RoleOf(state *tls.ConnectionState) (Role, string) {
	if state == nil || len(state.VerifiedChains) == 0 || len(state.VerifiedChains[0]) == 0 {
		return RoleNone, ""
	}
	leaf := state.VerifiedChains[0][0]
	if leaf.Subject.CommonName == NodeCommonName && slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		return RoleNode, NodeCommonName
	}
	return RoleClient, leaf.Subject.CommonName
}

// peerRole returns the role of a gRPC call's peer.
func peerRole(ctx context.Context) (Role, string) {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return RoleNone, ""
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok {
		return RoleNone, ""
	}
	return RoleOf(&info.State)
}

// NodeOnly reports whether a gRPC method (its full name) is for nodes
// only: the raft and snapshot streams, joining, and the heartbeats that
// feed the placement driver. Every other method (KV, init, status, range
// lookup and the placement admin calls) takes a client certificate too.
func NodeOnly(fullMethod string) bool {
	switch fullMethod {
	case flotillapb.Raft_RaftStream_FullMethodName,
		flotillapb.Raft_Snapshot_FullMethodName,
		flotillapb.Node_Join_FullMethodName,
		flotillapb.Placement_StoreHeartbeat_FullMethodName,
		flotillapb.Placement_RangeHeartbeat_FullMethodName:
		return true
	}
	return false
}

// ErrNotNode is the cause of a call refused because a node-only method
// was called with a client certificate.
var ErrNotNode = errors.New("accepts only node certificates")

// authorize refuses a call to a node-only method from anything but a node
// certificate, and any call without a verified certificate.
func authorize(ctx context.Context, fullMethod string) error {
	role, user := peerRole(ctx)
	switch {
	case role == RoleNone:
		return status.Errorf(codes.Unauthenticated, "rpc: %s: no verified client certificate", fullMethod)
	case role != RoleNode && NodeOnly(fullMethod):
		return status.Errorf(codes.PermissionDenied, "rpc: %s %v; the caller presented the client certificate of user %q", fullMethod, ErrNotNode, user)
	}
	return nil
}

// SecureServerOptions returns the options of a secure node's gRPC server,
// on top of ServerOptions: mTLS with the node's certificates, and
// interceptors that let only node certificates reach node-only methods
// (NodeOnly).
func SecureServerOptions(certs *NodeCerts) []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.Creds(credentials.NewTLS(certs.ServerTLS())),
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
			if err := authorize(ctx, info.FullMethod); err != nil {
				return nil, err
			}
			return handler(ctx, req)
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
			if err := authorize(ss.Context(), info.FullMethod); err != nil {
				return err
			}
			return handler(srv, ss)
		}),
	}
}
