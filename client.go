// Copyright 2026 The Flotilla Authors. All rights reserved.

package flotilla

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/flotilladb/flotilla/router"
	"github.com/flotilladb/flotilla/rpc"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
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

// Client is a client of a Flotilla cluster. It routes each request to the
// node of its range's leader through a router (package router), whose cache
// of ranges it fills by asking its endpoints (Placement.LookupRange): a
// request normally takes one hop. The router retries what is safe to retry:
// reads, and writes that were certainly not applied. A write whose outcome
// is unknown is returned, never retried, except a part of a delete-range
// across ranges (KV.DeleteRange). A scan, delete-range or batch whose keys
// cross range boundaries is split per range, one hop per part (spans.go).
//
// When the router cannot find a key's range at all (the cluster is not
// initialized, or no endpoint can reach the placement driver), the request
// goes to an endpoint without a range in its header, to be routed by that
// node's gateway, as it would with no router.
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
		r.endpoints = append(r.endpoints, endpoint{conn: conn, kv: flotillapb.NewKVClient(conn), placement: flotillapb.NewPlacementClient(conn)})
	}
	r.next.Store(uint32(rand.IntN(len(endpoints))))
	r.resolver = newPlacementResolver(r.lookupRange)
	rt, err := router.New(router.Config{Resolver: r.resolver, DefaultTimeout: DefaultRequestTimeout, ReadAttemptTimeout: readAttemptTimeout})
	if err != nil {
		_ = r.pool.Close()
		return nil, err
	}
	r.router = rt
	r.stopCtx, r.stop = context.WithCancel(context.Background())
	return &Client{kvAPI{h: r, close: r.close}}, nil
}

type endpoint struct {
	conn      *grpc.ClientConn
	kv        flotillapb.KVClient
	placement flotillapb.PlacementClient
}

// remote handles KV requests by sending them to a cluster's nodes.
type remote struct {
	pool      *rpc.Pool
	endpoints []endpoint
	// resolver and router send each request to its range's leader.
	resolver *placementResolver
	router   *router.Router
	// next is the endpoint to use first; it moves on after a failure.
	next atomic.Uint32
	// stopCtx ends when the client is closed: requests in flight end with
	// it (the router would otherwise retry them until their deadline).
	stopCtx context.Context
	stop    context.CancelFunc
	closed  atomic.Bool
}

func (r *remote) close() error {
	if r.closed.Swap(true) {
		return nil
	}
	r.stop()
	return r.pool.Close()
}

// lookupRange asks the endpoints in turn, from the current one, for the
// range holding a key (the router's Resolver). The one that answers becomes
// the current one.
func (r *remote) lookupRange(ctx context.Context, req *flotillapb.LookupRangeRequest) (*flotillapb.LookupRangeResponse, error) {
	n := uint32(len(r.endpoints))
	first := r.next.Load()
	var lastErr error
	for i := range n {
		ep := r.endpoints[(first+i)%n]
		if !rpc.EnsureReady(ctx, ep.conn, connectWait) {
			lastErr = unavailable(fmt.Sprintf("node %s is unreachable", ep.conn.Target()))
		} else {
			lctx, cancel := context.WithTimeout(ctx, lookupTimeout)
			resp, err := ep.placement.LookupRange(lctx, req)
			cancel()
			if err == nil {
				r.next.CompareAndSwap(first, (first+i)%n)
				return resp, nil
			}
			lastErr = rpc.ErrorFromStatus(err, false)
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, lastErr
}

// begin starts a request: it fails if the client is closed, and returns
// ctx bounded by DefaultRequestTimeout (unless it has a deadline) and ended
// when the client closes, with the function that releases it.
func (r *remote) begin(ctx context.Context) (context.Context, context.CancelFunc, error) {
	if r.closed.Load() {
		return nil, nil, ErrClosed
	}
	if _, ok := ctx.Deadline(); !ok {
		ctx, cancel := context.WithTimeout(ctx, DefaultRequestTimeout)
		ctx, stop := r.stopWith(ctx)
		return ctx, func() { stop(); cancel() }, nil
	}
	ctx, stop := r.stopWith(ctx)
	return ctx, stop, nil
}

// stopWith returns ctx, also ended when the client closes.
func (r *remote) stopWith(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(r.stopCtx, cancel)
	return ctx, func() { stop(); cancel() }
}

// closedErr is the error a request returns: ErrClosed for one that failed
// because the client closed, unless it is a write that may have been
// applied.
func (r *remote) closedErr(err error, write bool) error {
	if err != nil && r.closed.Load() && !mayBeApplied(err, write) {
		return ErrClosed
	}
	return err
}

// call runs one request, routed by key, with retries until it succeeds,
// fails for good, or ctx ends.
func call[Req request, Resp any](ctx context.Context, r *remote, key []byte, write bool, req Req,
	send func(flotillapb.KVClient, context.Context, Req, ...grpc.CallOption) (Resp, error)) (Resp, error) {
	var zero Resp
	ctx, done, err := r.begin(ctx)
	if err != nil {
		return zero, err
	}
	defer done()
	// The router caches the key's range (or keeps a stale entry when the
	// lookup fails), so this costs a lookup only on a miss. Without any
	// entry the router would only back off and ask again; an endpoint's
	// gateway may still route the request (its node may hold the range).
	if _, err := r.router.Lookup(ctx, key); err != nil {
		return callEndpoints(ctx, r, write, req, send)
	}
	return doCall(ctx, r, key, write, req, send)
}

// doCall sends a request, routed by key, through the router.
func doCall[Req request, Resp any](ctx context.Context, r *remote, key []byte, write bool, req Req,
	send func(flotillapb.KVClient, context.Context, Req, ...grpc.CallOption) (Resp, error)) (Resp, error) {
	resp, err := router.Do(ctx, r.router, router.Request{Key: key, Write: write},
		func(ctx context.Context, t router.Target) (Resp, error) {
			return sendTo(ctx, r, t, write, req, send)
		})
	return resp, r.closedErr(err, write)
}

// callSpan runs a request whose keys may lie in many ranges, routed by key
// (its first key): as one request, like call, if the range the router
// caches for key holds all of them (fits), or if the router cannot find
// that range (an endpoint's gateway then routes and splits it); else, or if
// the one request turns out to reach past its range (the range split since
// it was cached), split per range by split, whose parts go out with
// sendPart.
func callSpan[Req request, Resp any](ctx context.Context, r *remote, key []byte, write bool, req Req,
	send func(flotillapb.KVClient, context.Context, Req, ...grpc.CallOption) (Resp, error),
	fits func(*flotillapb.RangeDescriptor) bool,
	split func(ctx context.Context, sendPart func(context.Context, router.Target, Req) (Resp, error)) (Resp, error),
) (Resp, error) {
	var zero Resp
	ctx, done, err := r.begin(ctx)
	if err != nil {
		return zero, err
	}
	defer done()
	info, err := r.router.Lookup(ctx, key)
	if err != nil {
		return callEndpoints(ctx, r, write, req, send)
	}
	if fits(info.Desc) {
		resp, err := doCall(ctx, r, key, write, req, send)
		if err == nil || !router.NeedsSplit(err, key) {
			return resp, err
		}
	}
	resp, err := split(ctx, func(ctx context.Context, t router.Target, part Req) (Resp, error) {
		return sendPart(ctx, r, t, write, part, send)
	})
	return resp, r.closedErr(err, write)
}

// mayBeApplied reports whether err leaves a write's outcome unknown: such an
// error must reach the caller, even once the client is closed.
func mayBeApplied(err error, write bool) bool {
	var fe *flotillapb.Error
	return write && errors.As(err, &fe) && fe.GetOutcome() == flotillapb.Outcome_UNKNOWN
}

// sendTo makes one attempt of the router's: it sends the request to t.Store
// with t.Header. A request that could not be sent (the node's address is not
// known, or its connection is not ready) fails with Unavailable, not
// applied, so that the router moves on to another replica.
func sendTo[Req request, Resp any](ctx context.Context, r *remote, t router.Target, write bool, req Req,
	send func(flotillapb.KVClient, context.Context, Req, ...grpc.CallOption) (Resp, error)) (Resp, error) {
	routed := proto.Clone(req).(Req)
	setHeader(routed, t.Header)
	return sendPart(ctx, r, t, write, routed, send)
}

// sendPart is sendTo for a request whose header is set already and which
// is made for this attempt alone: a part of a request the router split.
func sendPart[Req request, Resp any](ctx context.Context, r *remote, t router.Target, write bool, part Req,
	send func(flotillapb.KVClient, context.Context, Req, ...grpc.CallOption) (Resp, error)) (Resp, error) {
	var zero Resp
	addr, ok := r.resolver.address(t.Store)
	if !ok {
		return zero, unavailable(fmt.Sprintf("no address known for node %d", t.Store))
	}
	conn, err := r.pool.Conn(addr)
	if err != nil {
		return zero, unavailable(fmt.Sprintf("node %d: %v", t.Store, err))
	}
	if !rpc.EnsureReady(ctx, conn, connectWait) {
		// Never sent: certainly not applied.
		return zero, unavailable(fmt.Sprintf("node %d (%s) is unreachable", t.Store, addr))
	}
	resp, err := send(flotillapb.NewKVClient(conn), ctx, part)
	if err != nil {
		return zero, rpc.ErrorFromStatus(err, write)
	}
	return resp, nil
}

// callEndpoints sends a request, as given (no range in its header), to the
// endpoints' gateways, moving to another endpoint when one fails, with
// retries until it succeeds, fails for good, or ctx ends. It is the path
// for requests the router cannot route.
func callEndpoints[Req, Resp any](ctx context.Context, r *remote, write bool, req Req,
	send func(flotillapb.KVClient, context.Context, Req, ...grpc.CallOption) (Resp, error)) (Resp, error) {
	var zero Resp
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
	return call(ctx, r, req.GetKey(), false, req, flotillapb.KVClient.Get)
}

func (r *remote) Put(ctx context.Context, req *flotillapb.PutRequest) (*flotillapb.PutResponse, error) {
	return call(ctx, r, req.GetKey(), true, req, flotillapb.KVClient.Put)
}

func (r *remote) Delete(ctx context.Context, req *flotillapb.DeleteRequest) (*flotillapb.DeleteResponse, error) {
	return call(ctx, r, req.GetKey(), true, req, flotillapb.KVClient.Delete)
}

// DeleteRange deletes a span that may cover many ranges: split per range
// (router.DeleteRange) when it does.
func (r *remote) DeleteRange(ctx context.Context, req *flotillapb.DeleteRangeRequest) (*flotillapb.DeleteRangeResponse, error) {
	if fe := checkDeleteRange(req); fe != nil {
		return nil, fe
	}
	return callSpan(ctx, r, req.GetStartKey(), true, req, flotillapb.KVClient.DeleteRange,
		func(d *flotillapb.RangeDescriptor) bool { return d.ContainsSpan(req.GetStartKey(), req.GetEndKey()) },
		func(ctx context.Context, send func(context.Context, router.Target, *flotillapb.DeleteRangeRequest) (*flotillapb.DeleteRangeResponse, error)) (*flotillapb.DeleteRangeResponse, error) {
			return router.DeleteRange(ctx, r.router, req, send)
		})
}

// Scan scans a span that may cover many ranges: split per range
// (router.Scan) when it does.
func (r *remote) Scan(ctx context.Context, req *flotillapb.ScanRequest) (*flotillapb.ScanResponse, error) {
	if fe := checkScan(req); fe != nil {
		return nil, fe
	}
	return callSpan(ctx, r, req.GetStartKey(), false, req, flotillapb.KVClient.Scan,
		func(d *flotillapb.RangeDescriptor) bool { return d.ContainsSpan(req.GetStartKey(), req.GetEndKey()) },
		func(ctx context.Context, send func(context.Context, router.Target, *flotillapb.ScanRequest) (*flotillapb.ScanResponse, error)) (*flotillapb.ScanResponse, error) {
			return router.Scan(ctx, r.router, req, maxScanResponseBytes, send)
		})
}

func (r *remote) CompareAndSwap(ctx context.Context, req *flotillapb.CompareAndSwapRequest) (*flotillapb.CompareAndSwapResponse, error) {
	return call(ctx, r, req.GetKey(), true, req, flotillapb.KVClient.CompareAndSwap)
}

// Batch applies a batch whose ops may lie in many ranges: one batch per
// range (router.Batch) when they do. The client does not know the
// cluster's value size limit: the servers check it.
func (r *remote) Batch(ctx context.Context, req *flotillapb.BatchRequest) (*flotillapb.BatchResponse, error) {
	if fe := checkBatch(req, -1); fe != nil {
		return nil, fe
	}
	return callSpan(ctx, r, req.GetOps()[0].RouteKey(), true, req, flotillapb.KVClient.Batch,
		func(d *flotillapb.RangeDescriptor) bool { return d.ContainsOps(req.GetOps()) },
		func(ctx context.Context, send func(context.Context, router.Target, *flotillapb.BatchRequest) (*flotillapb.BatchResponse, error)) (*flotillapb.BatchResponse, error) {
			return router.Batch(ctx, r.router, req, send)
		})
}
