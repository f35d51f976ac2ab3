// Copyright 2026 The Flotilla Authors. All rights reserved.

// Package testproxy is a TCP proxy for tests: put one between two processes
// (or two in-process nodes) and cut or heal the link between them. It
// listens on 127.0.0.1 only. It owns its listener, its connections and the
// goroutines that copy bytes; it does not delay, reorder or corrupt bytes,
// and it does not know the protocol it carries.
package testproxy

import (
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// MaxConns bounds the connections a proxy carries at once; more are closed
// as soon as they are accepted. Each connection costs two goroutines, so a
// proxy runs at most 2*MaxConns+1 of them.
const MaxConns = 64

// dialTimeout bounds the dial to the target for one accepted connection.
const dialTimeout = time.Second

// Proxy forwards every connection made to Addr to its target. Its methods
// are safe for concurrent use.
type Proxy struct {
	target string
	lis    net.Listener
	// wg counts the accept loop and every connection's goroutines.
	wg sync.WaitGroup

	mu struct {
		sync.Mutex
		// cut: new connections are closed at once and there are no open
		// ones.
		cut    bool
		closed bool
		// conns holds both ends of every open connection, the accepted
		// one and the one to the target (once dialled).
		conns map[*link]struct{}
	}
}

// link is one proxied connection: the accepted end and the target end.
type link struct {
	client net.Conn
	server net.Conn // nil while dialling
}

// close closes both ends; it may be called more than once.
func (l *link) close() {
	_ = l.client.Close()
	if l.server != nil {
		_ = l.server.Close()
	}
}

// New starts a proxy to target (HOST:PORT) listening on 127.0.0.1 at a
// free port.
func New(target string) (*Proxy, error) {
	if target == "" {
		return nil, errors.New("testproxy: empty target")
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{target: target, lis: lis}
	p.mu.conns = make(map[*link]struct{})
	p.wg.Add(1)
	go p.acceptLoop()
	return p, nil
}

// Addr returns the address the proxy listens on.
func (p *Proxy) Addr() string { return p.lis.Addr().String() }

// Target returns the address the proxy forwards to.
func (p *Proxy) Target() string { return p.target }

// Cut closes every open connection and makes the proxy close new ones as
// soon as it accepts them, until Heal.
func (p *Proxy) Cut() {
	p.mu.Lock()
	p.mu.cut = true
	conns := p.takeConnsLocked()
	p.mu.Unlock()
	for _, l := range conns {
		l.close()
	}
}

// Heal makes the proxy forward new connections again.
func (p *Proxy) Heal() {
	p.mu.Lock()
	p.mu.cut = false
	p.mu.Unlock()
}

// IsCut reports whether the proxy is cut.
func (p *Proxy) IsCut() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mu.cut
}

// Close stops the proxy: it closes its listener and every connection and
// waits for its goroutines. It is idempotent.
func (p *Proxy) Close() error {
	p.mu.Lock()
	first := !p.mu.closed
	p.mu.closed = true
	conns := p.takeConnsLocked()
	p.mu.Unlock()
	var err error
	if first {
		err = p.lis.Close()
	}
	for _, l := range conns {
		l.close()
	}
	p.wg.Wait()
	return err
}

// takeConnsLocked empties the set of open connections and returns them.
func (p *Proxy) takeConnsLocked() []*link {
	out := make([]*link, 0, len(p.mu.conns))
	for l := range p.mu.conns {
		out = append(out, l)
	}
	clear(p.mu.conns)
	return out
}

// acceptLoop accepts connections until the listener is closed.
func (p *Proxy) acceptLoop() {
	defer p.wg.Done()
	for {
		c, err := p.lis.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			// A transient accept error (e.g. too many open files): the
			// listener is still usable.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		l := &link{client: c}
		p.mu.Lock()
		refuse := p.mu.cut || p.mu.closed || len(p.mu.conns) >= MaxConns
		if !refuse {
			p.mu.conns[l] = struct{}{}
			p.wg.Add(1)
		}
		p.mu.Unlock()
		if refuse {
			_ = c.Close()
			continue
		}
		go p.serve(l)
	}
}

// serve dials the target for l and copies bytes both ways until either side
// closes or the link is cut.
func (p *Proxy) serve(l *link) {
	defer p.wg.Done()
	server, err := net.DialTimeout("tcp", p.target, dialTimeout)
	p.mu.Lock()
	_, open := p.mu.conns[l] // false if cut or closed while dialling
	if open && err == nil {
		l.server = server
	} else {
		delete(p.mu.conns, l)
	}
	p.mu.Unlock()
	if !open || err != nil {
		_ = l.client.Close()
		if server != nil {
			_ = server.Close()
		}
		return
	}

	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		_, _ = io.Copy(server, l.client)
		l.close()
	}()
	_, _ = io.Copy(l.client, server)
	l.close()
	p.mu.Lock()
	delete(p.mu.conns, l)
	p.mu.Unlock()
}
