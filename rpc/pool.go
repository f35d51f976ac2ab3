// Copyright 2026 The Flotilla Authors. All rights reserved.

package rpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
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
func ServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
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

// DialOptions returns the options every Flotilla gRPC client connection
// uses: no transport security yet, message size bounds, keepalive, and a
// reconnection backoff capped at one second so that a restarted peer is
// found again quickly.
func DialOptions() []grpc.DialOption {
	return []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
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
	// Logger receives the pool's log lines. Default slog.Default().
	Logger *slog.Logger
}

// Pool shares one gRPC client connection per advertised address among
// every user in the process (the raft transport, the router, the
// placement client). gRPC multiplexes streams and reconnects by itself, so
// one connection per peer is enough.
type Pool struct {
	overrides map[string]string // immutable after NewPool
	logger    *slog.Logger

	mu struct {
		sync.Mutex
		closed bool
		// conns maps an advertised address to its connection.
		conns map[string]*grpc.ClientConn
		// dialErrs maps an advertised address to the error of its latest
		// failed dial, removed by the next successful one: what Ready
		// reports as the cause of an unreachable node.
		dialErrs map[string]error
	}
}

// NewPool returns an empty pool.
func NewPool(cfg PoolConfig) *Pool {
	p := &Pool{overrides: maps.Clone(cfg.DialOverrides), logger: cfg.Logger}
	if p.logger == nil {
		p.logger = slog.Default()
	}
	p.mu.conns = make(map[string]*grpc.ClientConn)
	p.mu.dialErrs = make(map[string]error)
	return p
}

// Conn returns the shared client connection to an advertised address
// (HOST:PORT), creating it on first use with grpc.NewClient and
// DialOptions, towards the address's dial override if it has one. Creating
// a connection does no I/O: gRPC connects when the first call needs it and
// reconnects by itself. The caller must not close the connection. Safe for
// concurrent use.
func (p *Pool) Conn(addr string) (*grpc.ClientConn, error) {
	if addr == "" {
		return nil, errors.New("rpc: empty address")
	}
	p.mu.Lock()
	conn, closed := p.mu.conns[addr], p.mu.closed
	p.mu.Unlock()
	if closed {
		return nil, ErrPoolClosed
	}
	if conn != nil {
		return conn, nil
	}

	target := addr
	if o, ok := p.overrides[addr]; ok {
		target = o
	}
	// grpc.NewClient starts the resolver's goroutines; keep it out of the
	// lock and settle races below.
	created, err := grpc.NewClient(target, append(DialOptions(), grpc.WithContextDialer(p.dialer(addr)))...)
	if err != nil {
		return nil, fmt.Errorf("rpc: connection to %s (dialling %s): %w", addr, target, err)
	}

	p.mu.Lock()
	conn, closed = p.mu.conns[addr], p.mu.closed
	if !closed && conn == nil {
		p.mu.conns[addr] = created
		conn = created
	}
	p.mu.Unlock()
	if conn != created {
		_ = created.Close()
	}
	if closed {
		return nil, ErrPoolClosed
	}
	if target != addr {
		p.logger.Debug("rpc: dial override", "addr", addr, "dialling", target)
	}
	return conn, nil
}

// dialer returns the dialer of addr's connection: a plain TCP dial that
// remembers its last failure, so that an unreachable node is reported with
// its cause (connection refused, no route) rather than only as unreachable.
func (p *Pool) dialer(addr string) func(context.Context, string) (net.Conn, error) {
	return func(ctx context.Context, target string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", target)
		p.mu.Lock()
		if err != nil {
			p.mu.dialErrs[addr] = err
		} else {
			delete(p.mu.dialErrs, addr)
		}
		p.mu.Unlock()
		return c, err
	}
}

// DialError returns the error of the latest failed attempt to connect to
// addr, unless one succeeded since; nil otherwise.
func (p *Pool) DialError(addr string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mu.dialErrs[addr]
}

// Ready returns the connection to addr once it works, waiting up to wait
// (and no longer than ctx) for it to connect. If it does not, the error
// says why (the dial's error when there was one): a request that was never
// sent was certainly not applied.
func (p *Pool) Ready(ctx context.Context, addr string, wait time.Duration) (*grpc.ClientConn, error) {
	conn, err := p.Conn(addr)
	if err != nil {
		return nil, err
	}
	if EnsureReady(ctx, conn, wait) {
		return conn, nil
	}
	if err := p.DialError(addr); err != nil {
		return nil, fmt.Errorf("%s is unreachable: %w", addr, err)
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("%s: not connected before the request ended: %w", addr, ctx.Err())
	}
	return nil, fmt.Errorf("%s is unreachable: not connected within %v", addr, wait)
}

// Close closes every connection; calls in flight on them fail. Later Conn
// calls return ErrPoolClosed. Close is idempotent.
func (p *Pool) Close() error {
	p.mu.Lock()
	conns := p.mu.conns
	p.mu.conns = make(map[string]*grpc.ClientConn)
	p.mu.closed = true
	p.mu.Unlock()
	var errs []error
	for addr, c := range conns {
		if err := c.Close(); err != nil {
			errs = append(errs, fmt.Errorf("rpc: closing connection to %s: %w", addr, err))
		}
	}
	return errors.Join(errs...)
}
