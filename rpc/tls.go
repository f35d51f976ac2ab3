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
	"strings"
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
	if leaf == nil { // GODEBUG=x509keypairleaf=0
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("node certificate %s: %w", certPath, err)
		}
		cert.Leaf = leaf
	}
	if !isNodeCert(leaf) {
		return nil, fmt.Errorf("node certificate %s: CommonName %q with usages %v is not a node certificate (CommonName %q, server and client usage): is it a client certificate?",
			certPath, leaf.Subject.CommonName, leaf.ExtKeyUsage, NodeCommonName)
	}
	// KeyUsages means any of them: check each.
	for _, usage := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err = leaf.Verify(x509.VerifyOptions{Roots: cas, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
			return nil, fmt.Errorf("node certificate %s does not verify against %s: %w", certPath, filepath.Join(dir, CACertFile), err)
		}
	}
	return &NodeCerts{cas: cas, cert: cert, NotAfter: leaf.NotAfter}, nil
}

// isNodeCert reports whether a certificate is a node's: CommonName "node"
// and usable both as server and as client. Anything else the CA signed is
// a client's.
func isNodeCert(c *x509.Certificate) bool {
	return c.Subject.CommonName == NodeCommonName &&
		slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageServerAuth) &&
		slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
}

// VerifyHostname checks that the node certificate is valid for host (the
// host part of the node's advertised address), which peers and clients
// check when they dial it.
func (c *NodeCerts) VerifyHostname(host string) error {
	if err := c.cert.Leaf.VerifyHostname(host); err != nil {
		return fmt.Errorf("the node certificate does not cover the advertised host: %w (make it with: flotilla cert create-node %s ...)", err, host)
	}
	return nil
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
// certificate has CommonName "node" and both server and client usage
// (isNodeCert); anything else the CA signed is a client's. Hence ca.crt
// must hold CAs dedicated to the cluster: whatever they sign gets in.
func RoleOf(state *tls.ConnectionState) (Role, string) {
	if state == nil || len(state.VerifiedChains) == 0 || len(state.VerifiedChains[0]) == 0 {
		return RoleNone, ""
	}
	leaf := state.VerifiedChains[0][0]
	if isNodeCert(leaf) {
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

// ClientAllowed reports whether a gRPC method (its full name) may be
// called with a client certificate: the KV service, init and status, range
// lookup (routing) and the placement admin calls. Every other method — the
// raft and snapshot streams, joining, the heartbeats that feed the
// placement driver, and any method added later until it is listed here —
// takes a node certificate.
func ClientAllowed(fullMethod string) bool {
	if strings.HasPrefix(fullMethod, "/"+flotillapb.KV_ServiceDesc.ServiceName+"/") {
		return true
	}
	switch fullMethod {
	case flotillapb.Node_Init_FullMethodName,
		flotillapb.Node_Status_FullMethodName,
		flotillapb.Node_ClusterStatus_FullMethodName,
		flotillapb.Placement_LookupRange_FullMethodName,
		flotillapb.Placement_ListStores_FullMethodName,
		flotillapb.Placement_ListRanges_FullMethodName,
		flotillapb.Placement_ListOperators_FullMethodName,
		flotillapb.Placement_TransferLeader_FullMethodName,
		flotillapb.Placement_AddReplica_FullMethodName,
		flotillapb.Placement_RemoveReplica_FullMethodName,
		flotillapb.Placement_SetStoreState_FullMethodName,
		flotillapb.Placement_SplitRange_FullMethodName,
		flotillapb.Placement_GetRules_FullMethodName,
		flotillapb.Placement_SetRules_FullMethodName:
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
	case role != RoleNode && !ClientAllowed(fullMethod):
		return status.Errorf(codes.PermissionDenied, "rpc: %s %v; the caller presented the client certificate of user %q", fullMethod, ErrNotNode, user)
	}
	return nil
}

// SecureServerOptions returns the options of a secure node's gRPC server,
// on top of ServerOptions: mTLS with the node's certificates, a bound on
// the TLS handshake, and interceptors that let client certificates reach
// only the methods ClientAllowed lists.
func SecureServerOptions(certs *NodeCerts) []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.Creds(credentials.NewTLS(certs.ServerTLS())),
		// An unauthenticated peer holds a handshake open this long at most.
		grpc.ConnectionTimeout(10 * time.Second),
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
