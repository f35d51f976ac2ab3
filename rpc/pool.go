// Copyright 2026 The Flotilla Authors. All rights reserved.

package rpc

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
)

// MaxMessageSize bounds gRPC messages both ways: values may be 8 MiB, and a
// raft batch or snapshot chunk carries several, so allow 64 MiB.
const MaxMessageSize = 64 << 20

// Keepalive settings. A client pings an idle connection every
// keepaliveTime and drops it if no answer comes within keepaliveTimeout, so
// a peer that vanished without closing its sockets is noticed. The server
// tolerates pings down to keepaliveMinTime apart (it must be at most
// keepaliveTime, or the server would close connections for pinging too
// often).
const (
	keepaliveTime    = 10 * time.Second
	keepaliveTimeout = 5 * time.Second
	keepaliveMinTime = 5 * time.Second
)

// ServerOptions returns the options every Flotilla gRPC server runs with:
// message size bounds, keepalive, and a keepalive policy that lets peers
// ping idle connections.
//
// Requests run on a pool of streamWorkers goroutines that live across
// requests (a stream beyond them gets a goroutine of its own): a request
// runs deep into Pebble and raft, and a fresh goroutine's small stack grows
// by copying on every request (runtime.newstack was 11-17 % of a node's
// CPU under the read workload on 48 ranges).
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.NumStreamWorkers(streamWorkers),
		grpc.MaxRecvMsgSize(MaxMessageSize),
		grpc.MaxSendMsgSize(MaxMessageSize),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			Time:    keepaliveTime,
			Timeout: keepaliveTimeout,
		}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             keepaliveMinTime,
			PermitWithoutStream: true,
		}),
	}
}

// streamWorkers is the size of a server's pool of request goroutines: the
// standard suite's 256 clients, each with one request in flight. An idle
// worker keeps its grown stack (tens of KiB).
const streamWorkers = 256

// DialOptions returns the options every insecure Flotilla gRPC client
// connection uses: no transport security, message size bounds, keepalive,
// and a reconnection backoff capped at one second so that a restarted peer
// is found again quickly.
func DialOptions() []grpc.DialOption { return dialOptions(nil) }

// dialOptions returns DialOptions with TLS when tlsConfig is not nil.
func dialOptions(tlsConfig *tls.Config) []grpc.DialOption {
	creds := insecure.NewCredentials()
	if tlsConfig != nil {
		creds = credentials.NewTLS(tlsConfig)
	}
	return []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(MaxMessageSize),
			grpc.MaxCallSendMsgSize(MaxMessageSize),
		),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time:                keepaliveTime,
			Timeout:             keepaliveTimeout,
			PermitWithoutStream: true,
		}),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: backoff.Config{
				BaseDelay:  50 * time.Millisecond,
				Multiplier: 1.6,
				Jitter:     0.2,
				MaxDelay:   time.Second,
			},
			MinConnectTimeout: 5 * time.Second,
		}),
	}
}

// ErrPoolClosed is returned by Pool.Conn after Close.
var ErrPoolClosed = errors.New("rpc: connection pool closed")

// PoolConfig configures a Pool.
type PoolConfig struct {
	// DialOverrides maps an advertised address to the address actually
	// dialled (tests put proxies between nodes). Keys and values are
	// HOST:PORT. Default none. The pool keeps its own copy.
	DialOverrides map[string]string
	// TLS secures every connection: a node's PeerTLS or a client's
	// LoadClientTLS. The server's name is checked against the address
	// dialled (its host), unless TLS.ServerName is set. Default nil:
	// plaintext. The pool does not modify it.
	TLS *tls.Config
	// Logger receives the pool's log lines. Default slog.Default().
	Logger *slog.Logger
}

// Pool shares one gRPC client connection per advertised address among
// every user in the process (the raft transport, the router, the
// placement client). gRPC multiplexes streams and reconnects by itself, so
// one connection per peer is enough.
type Pool struct {
	overrides map[string]string // immutable after NewPool
	tls       *tls.Config       // immutable after NewPool
	dialOpts  []grpc.DialOption // immutable after NewPool
	logger    *slog.Logger

	mu struct {
		sync.Mutex
		closed bool
		// conns maps an advertised address to its connection and the KV
		// client over it (made once: a request's every hop needs one).
		conns map[string]poolConn
	}
}

type poolConn struct {
	conn *grpc.ClientConn
	kv   KVHandler
}

// NewPool returns an empty pool.
func NewPool(cfg PoolConfig) *Pool {
	p := &Pool{overrides: maps.Clone(cfg.DialOverrides), tls: cfg.TLS, dialOpts: dialOptions(cfg.TLS), logger: cfg.Logger}
	if p.logger == nil {
		p.logger = slog.Default()
	}
	p.mu.conns = make(map[string]poolConn)
	return p
}

// Conn returns the shared client connection to an advertised address
// (HOST:PORT), creating it on first use with grpc.NewClient and
// DialOptions, towards the address's dial override if it has one. Creating
// a connection does no I/O: gRPC connects when the first call needs it and
// reconnects by itself. The caller must not close the connection. Safe for
// concurrent use.
func (p *Pool) Conn(addr string) (*grpc.ClientConn, error) {
	pc, err := p.get(addr)
	return pc.conn, err
}

// get is Conn, with the connection's KV client.
func (p *Pool) get(addr string) (poolConn, error) {
	if addr == "" {
		return poolConn{}, errors.New("rpc: empty address")
	}
	p.mu.Lock()
	pc, closed := p.mu.conns[addr], p.mu.closed
	p.mu.Unlock()
	if closed {
		return poolConn{}, ErrPoolClosed
	}
	if pc.conn != nil {
		return pc, nil
	}

	target := p.target(addr)
	// grpc.NewClient starts the resolver's goroutines; keep it out of the
	// lock and settle races below.
	opts := p.dialOpts
	if p.tls != nil && target != addr && p.tls.ServerName == "" {
		// The certificate names the advertised address, not the one an
		// override dials.
		tc := p.tls.Clone()
		tc.ServerName, _, _ = net.SplitHostPort(addr)
		opts = dialOptions(tc)
	}
	created, err := grpc.NewClient(target, opts...)
	if err != nil {
		return poolConn{}, fmt.Errorf("rpc: connection to %s (dialling %s): %w", addr, target, err)
	}

	p.mu.Lock()
	pc, closed = p.mu.conns[addr], p.mu.closed
	if !closed && pc.conn == nil {
		pc = poolConn{conn: created, kv: NewKVClient(created)}
		p.mu.conns[addr] = pc
	}
	p.mu.Unlock()
	if pc.conn != created {
		_ = created.Close()
	}
	if closed {
		return poolConn{}, ErrPoolClosed
	}
	if target != addr {
		p.logger.Debug("rpc: dial override", "addr", addr, "dialling", target)
	}
	return pc, nil
}

// target is what addr's connection dials: its override, or addr.
func (p *Pool) target(addr string) string {
	if o, ok := p.overrides[addr]; ok {
		return o
	}
	return addr
}

// Ready returns the connection to addr once it works, waiting up to wait
// (and no longer than ctx) for it to connect. If it does not, the error
// says why: a request that was never sent was certainly not applied.
//
// gRPC says only that a connection failed, and after a failure waits (up
// to a second) before it dials again. So when the connection is not ready,
// Ready dials the node itself, once: if that fails, its error is the
// cause (connection refused, no route); if it succeeds, the node is back,
// and gRPC is told to reconnect at once rather than when its backoff ends.
// The probe dials TCP directly, as gRPC's connections do (DialOptions
// sets no proxy), and only where the target is HOST:PORT.
func (p *Pool) Ready(ctx context.Context, addr string, wait time.Duration) (*grpc.ClientConn, error) {
	pc, err := p.get(addr)
	if err != nil {
		return nil, err
	}
	return pc.conn, p.ready(ctx, addr, pc.conn, wait)
}

// ReadyKV is Ready, returning the KV client over the connection.
func (p *Pool) ReadyKV(ctx context.Context, addr string, wait time.Duration) (KVHandler, error) {
	pc, err := p.get(addr)
	if err != nil {
		return nil, err
	}
	return pc.kv, p.ready(ctx, addr, pc.conn, wait)
}

// probeTimeout bounds the dial Ready makes itself to learn why a node is
// unreachable.
const probeTimeout = 200 * time.Millisecond

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func (p *Pool) ready(ctx context.Context, addr string, conn *grpc.ClientConn, wait time.Duration) error {
	deadline := time.Now().Add(wait)
	if EnsureReady(ctx, conn, wait) {
		return nil
	}
	if ctx.Err() != nil {
		return fmt.Errorf("%s: not connected before the request ended: %w", addr, ctx.Err())
	}
	target := p.target(addr)
	if _, _, err := net.SplitHostPort(target); err != nil {
		return fmt.Errorf("%s is unreachable: not connected within %v", addr, wait)
	}
	// The probe gets at least probeTimeout even when gRPC's attempt used
	// up the wait: it exists to tell why.
	pctx, cancel := context.WithDeadline(ctx, later(deadline, time.Now().Add(probeTimeout)))
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(pctx, "tcp", target)
	if err != nil {
		return fmt.Errorf("%s is unreachable: %w", addr, err)
	}
	err = p.probeTLS(pctx, addr, c)
	_ = c.Close()
	if err != nil {
		return err
	}
	pctx, cancel = context.WithDeadline(ctx, deadline)
	defer cancel()
	// The node accepts connections: reconnect now, and wait for it.
	conn.ResetConnectBackoff()
	for {
		switch conn.GetState() {
		case connectivity.Ready:
			return nil
		case connectivity.Shutdown:
			return fmt.Errorf("%s: connection closed", addr)
		}
		if !conn.WaitForStateChange(pctx, conn.GetState()) {
			if ctx.Err() != nil {
				return fmt.Errorf("%s: not connected before the request ended: %w", addr, ctx.Err())
			}
			return fmt.Errorf("%s accepts connections but did not answer within %v", addr, wait)
		}
	}
}

// probeTLS runs a TLS handshake over the probe's connection c. A plaintext
// pool only learns whether the node is a secure one. A secure pool checks, so that a certificate the node does not accept (or a node
// whose certificate this side does not) is reported as such rather than as
// a node that does not answer. With TLS 1.3 the server checks the client's
// certificate after the client's side of the handshake is done, so the
// probe also reads once: a refusal arrives as an alert, an accepted
// connection as the server's HTTP/2 settings (or nothing, soon).
func (p *Pool) probeTLS(ctx context.Context, addr string, c net.Conn) error {
	if p.tls == nil {
		// A plaintext client of a secure node sees only a connection that
		// closes: say that the node speaks TLS if it does.
		tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2"}}) //nolint:gosec // only to tell that the peer speaks TLS
		if tc.HandshakeContext(ctx) == nil {
			return fmt.Errorf("%s is a secure node (it speaks TLS): connect with its cluster's certificates (--certs-dir, Config.TLS)", addr)
		}
		return nil
	}
	cfg := p.tls.Clone()
	if cfg.ServerName == "" {
		cfg.ServerName, _, _ = net.SplitHostPort(addr)
	}
	cfg.NextProtos = []string{"h2"}
	tc := tls.Client(c, cfg)
	if err := tc.HandshakeContext(ctx); err != nil {
		if ctx.Err() != nil {
			return nil // no answer in time: not a verdict on certificates
		}
		return fmt.Errorf("%s: TLS handshake failed: %w", addr, err)
	}
	readBy := time.Now().Add(probeTimeout)
	if d, ok := ctx.Deadline(); ok && d.Before(readBy) {
		readBy = d
	}
	_ = tc.SetReadDeadline(readBy)
	var b [1]byte
	if _, err := tc.Read(b[:]); err != nil {
		// A refusal is a TLS alert; a close or reset after the handshake
		// is the node (or a proxy in front of it) going away.
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Op == "remote error" {
			return fmt.Errorf("%s refused this client's certificate: %w", addr, err)
		}
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			return fmt.Errorf("%s closed the connection after the TLS handshake: %w", addr, err)
		}
	}
	return nil
}

// Close closes every connection; calls in flight on them fail. Later Conn
// calls return ErrPoolClosed. Close is idempotent.
func (p *Pool) Close() error {
	p.mu.Lock()
	conns := p.mu.conns
	p.mu.conns = make(map[string]poolConn)
	p.mu.closed = true
	p.mu.Unlock()
	var errs []error
	for addr, c := range conns {
		if err := c.conn.Close(); err != nil {
			errs = append(errs, fmt.Errorf("rpc: closing connection to %s: %w", addr, err))
		}
	}
	return errors.Join(errs...)
}
