// Copyright 2026 The Flotilla Authors. All rights reserved.

package flotilla

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/flotilladb/flotilla/rpc"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"google.golang.org/grpc"
)

// DefaultRequestTimeout bounds a request whose context has no deadline.
const DefaultRequestTimeout = 10 * time.Second

// readAttemptTimeout bounds one attempt of a read at one node, so that a
// node cut off from its peers does not hold a read for its whole deadline
// when another node could answer.
const readAttemptTimeout = 2 * time.Second

// connectWait bounds the wait for a connection to a node before a request
// moves on to another node.
const connectWait = time.Second

// Client is a client of a Flotilla cluster. It sends each request to one of
// its endpoints (every node is a gateway that routes requests), moving to
// another when a node is unreachable or cannot serve, and retries what is
// safe to retry: reads, and writes that were certainly not applied. A write
// whose outcome is unknown is returned, never retried.
type Client struct {
	kvAPI
}

// Connect returns a client of the cluster whose nodes listen at endpoints
// (HOST:PORT, at least one). Connections are made lazily: Connect does not
// fail when nodes are down.
func Connect(ctx context.Context, endpoints ...string) (*Client, error) {
	if len(endpoints) == 0 {
		return nil, fmt.Errorf("%w: no endpoints", ErrInvalidArgument)
	}
	r := &remote{pool: rpc.NewPool(rpc.PoolConfig{})}
	for _, ep := range endpoints {
		conn, err := r.pool.Conn(ep)
		if err != nil {
			_ = r.pool.Close()
			return nil, fmt.Errorf("flotilla: endpoint %q: %w", ep, err)
		}
		r.endpoints = append(r.endpoints, endpoint{conn: conn, kv: flotillapb.NewKVClient(conn)})
	}
	r.next.Store(uint32(rand.IntN(len(endpoints))))
	return &Client{kvAPI{h: r, close: r.close}}, nil
}

type endpoint struct {
	conn *grpc.ClientConn
	kv   flotillapb.KVClient
}

// remote handles KV requests by sending them to a cluster's nodes.
type remote struct {
	pool      *rpc.Pool
	endpoints []endpoint
	// next is the endpoint to use first; it moves on after a failure.
	next   atomic.Uint32
	closed atomic.Bool
}

func (r *remote) close() error {
	if r.closed.Swap(true) {
		return nil
	}
	return r.pool.Close()
}

// call runs one request with retries across endpoints until it succeeds,
// fails for good, or ctx ends.
func call[Req, Resp any](ctx context.Context, r *remote, write bool, req Req,
	send func(flotillapb.KVClient, context.Context, Req, ...grpc.CallOption) (Resp, error)) (Resp, error) {
	var zero Resp
	if r.closed.Load() {
		return zero, ErrClosed
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultRequestTimeout)
		defer cancel()
	}
	backoff := 10 * time.Millisecond
	n := uint32(len(r.endpoints))
	for attempt := 0; ; attempt++ {
		if r.closed.Load() {
			return zero, ErrClosed
		}
		old := r.next.Load()
		i := old % n
		actx, cancel := ctx, context.CancelFunc(func() {})
		if !write {
			actx, cancel = context.WithTimeout(ctx, readAttemptTimeout)
		}
		var fe *flotillapb.Error
		if ep := r.endpoints[i]; !rpc.EnsureReady(actx, ep.conn, connectWait) {
			// Never sent: certainly not applied.
			fe = unavailable(fmt.Sprintf("node %s is unreachable", ep.conn.Target()))
		} else {
			resp, err := send(ep.kv, actx, req)
			if err == nil {
				cancel()
				return resp, nil
			}
			fe = rpc.ErrorFromStatus(err, write)
		}
		cancel()
		if !retriable(fe, write) || ctx.Err() != nil {
			if ctx.Err() != nil && !write {
				fe.Message = fmt.Sprintf("%s (gave up after %d attempts: %v)", fe.GetMessage(), attempt+1, ctx.Err())
			}
			return zero, fe
		}
		// Try another node next: this one could not serve.
		r.next.CompareAndSwap(old, (i+1)%n)
		if attempt+1 >= len(r.endpoints) {
			t := time.NewTimer(backoff/2 + rand.N(backoff/2+1))
			select {
			case <-ctx.Done():
				t.Stop()
				return zero, fe
			case <-t.C:
			}
			backoff = min(2*backoff, 500*time.Millisecond)
		}
	}
}

// retriable reports whether a failed request may be sent again: never an
// invalid one, never a write that may have been applied.
func retriable(fe *flotillapb.Error, write bool) bool {
	if fe.GetInvalidArgument() != nil {
		return false
	}
	if write {
		return fe.GetOutcome() == flotillapb.Outcome_NOT_APPLIED
	}
	return true
}

var _ rpc.KVHandler = (*remote)(nil)

func (r *remote) Get(ctx context.Context, req *flotillapb.GetRequest) (*flotillapb.GetResponse, error) {
	return call(ctx, r, false, req, flotillapb.KVClient.Get)
}

func (r *remote) Put(ctx context.Context, req *flotillapb.PutRequest) (*flotillapb.PutResponse, error) {
	return call(ctx, r, true, req, flotillapb.KVClient.Put)
}

func (r *remote) Delete(ctx context.Context, req *flotillapb.DeleteRequest) (*flotillapb.DeleteResponse, error) {
	return call(ctx, r, true, req, flotillapb.KVClient.Delete)
}

func (r *remote) DeleteRange(ctx context.Context, req *flotillapb.DeleteRangeRequest) (*flotillapb.DeleteRangeResponse, error) {
	return call(ctx, r, true, req, flotillapb.KVClient.DeleteRange)
}

func (r *remote) Scan(ctx context.Context, req *flotillapb.ScanRequest) (*flotillapb.ScanResponse, error) {
	return call(ctx, r, false, req, flotillapb.KVClient.Scan)
}

func (r *remote) CompareAndSwap(ctx context.Context, req *flotillapb.CompareAndSwapRequest) (*flotillapb.CompareAndSwapResponse, error) {
	return call(ctx, r, true, req, flotillapb.KVClient.CompareAndSwap)
}

func (r *remote) Batch(ctx context.Context, req *flotillapb.BatchRequest) (*flotillapb.BatchResponse, error) {
	return call(ctx, r, true, req, flotillapb.KVClient.Batch)
}
