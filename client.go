// Copyright 2026 The Flotilla Authors. All rights reserved.

package flotilla

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flotilladb/flotilla/router"
	"github.com/flotilladb/flotilla/rpc"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
)

// readAttemptTimeout bounds one attempt of a read at one node, so that a
// node cut off from its peers does not hold a read for its whole deadline
// when another node could answer.
const readAttemptTimeout = 2 * time.Second

// connectWait bounds the wait for a connection to a node before a request
// moves on to another node.
const connectWait = time.Second

// lookupTimeout bounds one LookupRange call to one node, so that a node that
// cannot answer (cut off from the placement group's leader, say) costs a
// request at most this long before the router falls back to a stale entry,
// or the client to sending the request to an endpoint's gateway.
const lookupTimeout = 2 * time.Second

// maxScanResponseBytes bounds the keys and values of a scan response
// gathered from many ranges: no further range is asked once it is reached
// (each range's part is bounded by its server's limit too).
const maxScanResponseBytes = flotillapb.DefaultMaxScanBytes

// Client is a client of a Flotilla cluster. It routes each request to the
// node of its range's leader through a router (package router), whose cache
// of ranges it fills by asking its endpoints (Placement.LookupRange): a
// request normally takes one hop. The router retries what is safe to retry:
// reads, and writes that were certainly not applied. A write whose outcome
// is unknown is returned, never retried (a delete-range part too: resent,
// it could delete a value written and read in between). A scan, delete-range or batch whose keys
// cross range boundaries is split per range, one hop per part.
//
// When the router cannot find a key's range at all (the cluster is not
// initialized, or no endpoint can reach the placement driver), the request
// goes to an endpoint without a range in its header, to be routed by that
// node's gateway, as it would with no router. When none of the endpoints
// can be reached for Config.DialTimeout, the request fails with
// ErrUnavailable and the endpoints' dial errors.
//
// A Client links no storage engine and no raft: it is the root package,
// rpc and router over gRPC (a test over `go list -deps` keeps it so).
type Client struct {
	kvAPI
}

// Connect returns a client of the cluster whose nodes listen at endpoints
// (HOST:PORT, at least one), with the default Config otherwise.
// Connections are made lazily: Connect does not fail when nodes are down.
func Connect(ctx context.Context, endpoints ...string) (*Client, error) {
	return New(Config{Endpoints: endpoints})
}

// New returns a client configured by cfg. Connections are made lazily: New
// does not fail when nodes are down.
func New(cfg Config) (*Client, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	r := &remote{cfg: cfg, pool: rpc.NewPool(rpc.PoolConfig{TLS: cfg.TLS})}
	for _, ep := range slices.Compact(slices.Clone(cfg.Endpoints)) {
		if slices.ContainsFunc(r.endpoints, func(e endpoint) bool { return e.addr == ep }) {
			continue // given twice
		}
		conn, err := r.pool.Conn(ep)
		if err != nil {
			_ = r.pool.Close()
			return nil, fmt.Errorf("flotilla: endpoint %q: %w", ep, err)
		}
		r.endpoints = append(r.endpoints, endpoint{addr: ep, placement: flotillapb.NewPlacementClient(conn)})
	}
	r.next.Store(uint32(rand.IntN(len(r.endpoints))))
	r.resolver = router.NewPlacementResolver(r.lookupRange)
	// Reads from any replica go first to the node of the first endpoint,
	// if it holds one (the CLI's --host).
	first := cfg.Endpoints[0]
	local := func(store flotillapb.NodeID) bool {
		addr, ok := r.resolver.Address(store)
		return ok && addr == first
	}
	rt, err := router.New(router.Config{Resolver: r.resolver, DefaultTimeout: DefaultRequestTimeout, ReadAttemptTimeout: readAttemptTimeout, Local: local})
	if err != nil {
		_ = r.pool.Close()
		return nil, err
	}
	r.router = rt
	r.stopCtx, r.stop = context.WithCancel(context.Background())
	return &Client{kvAPI{h: r, close: r.close, readFrom: cfg.ReadFrom, zone: cfg.Zone}}, nil
}

// endpoint is one of Config.Endpoints.
type endpoint struct {
	addr      string
	placement flotillapb.PlacementClient
}

// remote handles KV requests by sending them to a cluster's nodes. It is
// the router's Nodes: a gRPC client per node.
type remote struct {
	cfg       Config
	pool      *rpc.Pool
	endpoints []endpoint
	// resolver and router send each request to its range's leader.
	resolver *router.PlacementResolver
	router   *router.Router
	// next is the endpoint to use first; it moves on after a failure.
	next atomic.Uint32
	// stopCtx ends when the client is closed: requests in flight end with
	// it (the router would otherwise retry them until their deadline).
	stopCtx context.Context
	stop    context.CancelFunc
	closed  atomic.Bool
}

var _ rpc.KVHandler = (*remote)(nil)

func (r *remote) close() error {
	if r.closed.Swap(true) {
		return nil
	}
	r.stop()
	return r.pool.Close()
}

// reach is the router's Nodes for one request: a gRPC client of each node
// an attempt goes to, once its connection is ready. A request whose dials
// keep failing for Config.DialTimeout (since it began, or since its last
// dial that found a working connection: that connection may have died
// before the attempt was sent, as when a node has just closed) gives up
// then, with their dial errors (unreachable), rather than at its deadline. The
// router calls Handler from the request's goroutine, one attempt at a
// time; mu guards against split requests all the same.
type reach struct {
	r *remote
	// giveUp ends the request's context when it gives up.
	giveUp context.CancelCauseFunc

	mu struct {
		sync.Mutex
		// start is when the current run of failing dials began; zero
		// before the first dial and after a dial that succeeded.
		start time.Time
		// sent: an attempt of the request (not a range lookup) found a
		// working connection, so it may have been sent: a write that then
		// gives up has an unknown outcome.
		sent bool
		// causes holds each address's dial error in the current run, in
		// the order tried.
		addrs  []string
		causes map[string]error
	}
}

// errUnreachable is the cause of a request context that reach ended.
var errUnreachable = errors.New("no node could be reached")

var _ router.Nodes = (*reach)(nil)

// Handler implements router.Nodes.
func (q *reach) Handler(ctx context.Context, node flotillapb.NodeID, _ bool) (rpc.KVHandler, error) {
	addr, ok := q.r.resolver.Address(node)
	if !ok {
		return nil, unavailable(fmt.Sprintf("no address known for node %d", node))
	}
	kv, err := q.dial(ctx, addr)
	if err != nil {
		// Never sent: certainly not applied.
		return nil, unavailable(fmt.Sprintf("node %d: %v", node, err))
	}
	q.markSent()
	return kv, nil
}

// markSent records that an attempt of the request is about to be sent.
func (q *reach) markSent() {
	q.mu.Lock()
	q.mu.sent = true
	q.mu.Unlock()
}

// dial returns the KV client of addr once its connection is ready, or the
// reason it is not. A run of failing dials takes at most DialTimeout from
// its first one's start: then the request gives up (giveUp).
func (q *reach) dial(ctx context.Context, addr string) (rpc.KVHandler, error) {
	q.mu.Lock()
	now := time.Now()
	if q.mu.start.IsZero() {
		q.mu.start = now
	}
	wait := min(connectWait, max(q.r.cfg.DialTimeout-now.Sub(q.mu.start), time.Millisecond))
	q.mu.Unlock()
	kv, err := q.r.pool.ReadyKV(ctx, addr, wait)
	q.mu.Lock()
	defer q.mu.Unlock()
	switch {
	case err == nil:
		q.mu.start, q.mu.addrs, q.mu.causes = time.Time{}, nil, nil
	case ctx.Err() != nil:
	default:
		if q.mu.causes == nil {
			q.mu.causes = make(map[string]error)
		}
		if _, seen := q.mu.causes[addr]; !seen {
			q.mu.addrs = append(q.mu.addrs, addr)
		}
		q.mu.causes[addr] = err
		if time.Since(q.mu.start) >= q.r.cfg.DialTimeout {
			q.giveUp(errUnreachable)
		}
	}
	return kv, err
}

// unreachable returns the error of a request that gave up because no node
// could be reached, naming each node's dial error; nil if it did not give
// up for that reason. A write an earlier attempt of which may have been
// sent has an unknown outcome.
func (q *reach) unreachable(ctx context.Context, write bool) *flotillapb.Error {
	if !errors.Is(context.Cause(ctx), errUnreachable) {
		return nil
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	causes := make([]string, 0, len(q.mu.addrs))
	for _, a := range q.mu.addrs {
		causes = append(causes, q.mu.causes[a].Error())
	}
	fe := unavailable(fmt.Sprintf("no node could be reached within the dial timeout (%v): %s", q.r.cfg.DialTimeout, strings.Join(causes, "; ")))
	if q.mu.sent && write {
		fe.Message += " (an earlier attempt found a connection and may have been sent)"
		fe.Outcome = flotillapb.Outcome_UNKNOWN
	}
	return fe
}

// lookupRange asks the endpoints in turn, from the current one, for the
// range holding a key (the router's Resolver). The one that answers becomes
// the current one.
func (r *remote) lookupRange(ctx context.Context, req *flotillapb.LookupRangeRequest) (*flotillapb.LookupRangeResponse, error) {
	n := uint32(len(r.endpoints))
	first := r.next.Load()
	var lastErr error
	q, _ := ctx.Value(reachKey{}).(*reach)
	for i := range n {
		ep := r.endpoints[(first+i)%n]
		var err error
		if q != nil {
			_, err = q.dial(ctx, ep.addr)
		} else {
			_, err = r.pool.Ready(ctx, ep.addr, connectWait)
		}
		if err != nil {
			lastErr = unavailable("endpoint " + err.Error())
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
// ctx, also ended when the client closes or when the request finds no node
// reachable (reach), the request's reach, and the function that releases
// them. (The KV API bounds every request by DefaultRequestTimeout already.)
func (r *remote) begin(ctx context.Context) (context.Context, *reach, context.CancelFunc, error) {
	if r.closed.Load() {
		return nil, nil, nil, ErrClosed
	}
	ctx, cancel := context.WithCancelCause(ctx)
	stop := context.AfterFunc(r.stopCtx, func() { cancel(ErrClosed) })
	q := &reach{r: r, giveUp: cancel}
	// The router's lookups run under the context of the request that
	// started them: their dials count towards its dial timeout.
	ctx = context.WithValue(ctx, reachKey{}, q)
	return ctx, q, func() { stop(); cancel(nil) }, nil
}

// reachKey is the context key of a request's reach.
type reachKey struct{}

// closedErr is the error a request returns: ErrClosed for one that failed
// because the client closed, unless it is a write that may have been
// applied.
func (r *remote) closedErr(err error, write bool) error {
	if err != nil && r.closed.Load() && !mayBeApplied(err, write) {
		return ErrClosed
	}
	return err
}

// mayBeApplied reports whether err leaves a write's outcome unknown: such an
// error must reach the caller, even once the client is closed.
func mayBeApplied(err error, write bool) bool {
	var fe *flotillapb.Error
	return write && errors.As(err, &fe) && fe.GetOutcome() == flotillapb.Outcome_UNKNOWN
}

// call runs one request, routed by key, with retries until it succeeds,
// fails for good, or ctx ends.
func call[Req router.KVRequest, Resp any](ctx context.Context, r *remote, key []byte, write bool, req Req, m router.KVMethod[Req, Resp]) (Resp, error) {
	var zero Resp
	ctx, q, done, err := r.begin(ctx)
	if err != nil {
		return zero, err
	}
	defer done()
	// The router caches the key's range (or keeps a stale entry when the
	// lookup fails), so this costs a lookup only on a miss. Without any
	// entry the router would only back off and ask again; an endpoint's
	// gateway may still route the request (its node may hold the range).
	if _, err := r.router.Lookup(ctx, key); err != nil {
		return callEndpoints(ctx, r, q, write, req, m)
	}
	resp, err := router.Send(ctx, r.router, q, key, write, req, m)
	return resp, r.finalErr(ctx, q, err, write)
}

// finalErr is the error a request returns: the unreachable nodes' if it
// gave up on them, else the router's (closedErr).
func (r *remote) finalErr(ctx context.Context, q *reach, err error, write bool) error {
	if err == nil {
		return nil
	}
	if fe := q.unreachable(ctx, write); fe != nil {
		return fe
	}
	return r.closedErr(err, write)
}

// callSpan runs a request whose keys may lie in many ranges, routed by key
// (its first key): as one request, like call, if the range the router
// caches for key holds all of them (fits), or if the router cannot find
// that range (an endpoint's gateway then routes and splits it); else, or if
// the one request turns out to reach past its range (the range split since
// it was cached), split per range by split.
func callSpan[Req router.KVRequest, Resp any](ctx context.Context, r *remote, key []byte, write bool, req Req, m router.KVMethod[Req, Resp],
	fits func(*flotillapb.RangeDescriptor) bool,
	split func(ctx context.Context, send func(context.Context, router.Target, Req) (Resp, error)) (Resp, error),
) (Resp, error) {
	var zero Resp
	ctx, q, done, err := r.begin(ctx)
	if err != nil {
		return zero, err
	}
	defer done()
	info, err := r.router.Lookup(ctx, key)
	if err != nil {
		return callEndpoints(ctx, r, q, write, req, m)
	}
	if fits(info.Desc) {
		resp, err := router.Send(ctx, r.router, q, key, write, req, m)
		if err == nil || !router.NeedsSplit(err, key) {
			return resp, r.finalErr(ctx, q, err, write)
		}
	}
	resp, err := split(ctx, router.PartSender(q, write, m))
	return resp, r.finalErr(ctx, q, err, write)
}

// callEndpoints sends a request, as given (no range in its header), to the
// endpoints' gateways, moving to another endpoint when one fails, with
// retries until it succeeds, fails for good, or ctx ends. It is the path
// for requests the router cannot route. When no endpoint could be reached
// for Config.DialTimeout, it fails with their dial errors (reach).
func callEndpoints[Req router.KVRequest, Resp any](ctx context.Context, r *remote, q *reach, write bool, req Req, m router.KVMethod[Req, Resp]) (Resp, error) {
	var zero Resp
	backoff := 10 * time.Millisecond
	n := uint32(len(r.endpoints))
	for attempt := 0; ; attempt++ {
		if r.closed.Load() {
			return zero, ErrClosed
		}
		old := r.next.Load()
		i := old % n
		ep := r.endpoints[i]
		actx, cancel := ctx, context.CancelFunc(func() {})
		if !write {
			actx, cancel = context.WithTimeout(ctx, readAttemptTimeout)
		}
		var fe *flotillapb.Error
		if kv, err := q.dial(actx, ep.addr); err != nil {
			// Never sent: certainly not applied.
			fe = unavailable("endpoint " + err.Error())
		} else {
			q.markSent()
			resp, err := m(kv, actx, req)
			if err == nil {
				cancel()
				return resp, nil
			}
			fe = rpc.ErrorFromStatus(err, write)
		}
		cancel()
		if u := q.unreachable(ctx, write); u != nil {
			return zero, u
		}
		if !router.Retriable(fe, write) || ctx.Err() != nil {
			return zero, fe
		}
		// Try another node next: this one could not serve.
		r.next.CompareAndSwap(old, (i+1)%n)
		if attempt+1 >= len(r.endpoints) {
			t := time.NewTimer(backoff/2 + rand.N(backoff/2+1))
			select {
			case <-ctx.Done():
				t.Stop()
				if u := q.unreachable(ctx, write); u != nil {
					return zero, u
				}
				return zero, fe
			case <-t.C:
			}
			backoff = min(2*backoff, 500*time.Millisecond)
		}
	}
}

// unavailable is the error of a request that could not be sent: it was
// certainly not applied.
func unavailable(msg string) *flotillapb.Error {
	return &flotillapb.Error{
		Message: msg,
		Outcome: flotillapb.Outcome_NOT_APPLIED,
		Detail:  &flotillapb.Error_Unavailable{Unavailable: &flotillapb.Unavailable{}},
	}
}

func (r *remote) Get(ctx context.Context, req *flotillapb.GetRequest) (*flotillapb.GetResponse, error) {
	return call(ctx, r, req.GetKey(), false, req, rpc.KVHandler.Get)
}

func (r *remote) Put(ctx context.Context, req *flotillapb.PutRequest) (*flotillapb.PutResponse, error) {
	return call(ctx, r, req.GetKey(), true, req, rpc.KVHandler.Put)
}

func (r *remote) Delete(ctx context.Context, req *flotillapb.DeleteRequest) (*flotillapb.DeleteResponse, error) {
	return call(ctx, r, req.GetKey(), true, req, rpc.KVHandler.Delete)
}

// DeleteRange deletes a span that may cover many ranges: split per range
// (router.DeleteRange) when it does.
func (r *remote) DeleteRange(ctx context.Context, req *flotillapb.DeleteRangeRequest) (*flotillapb.DeleteRangeResponse, error) {
	if fe := router.CheckDeleteRange(req); fe != nil {
		return nil, fe
	}
	return callSpan(ctx, r, req.GetStartKey(), true, req, rpc.KVHandler.DeleteRange,
		func(d *flotillapb.RangeDescriptor) bool { return d.ContainsSpan(req.GetStartKey(), req.GetEndKey()) },
		func(ctx context.Context, send func(context.Context, router.Target, *flotillapb.DeleteRangeRequest) (*flotillapb.DeleteRangeResponse, error)) (*flotillapb.DeleteRangeResponse, error) {
			return router.DeleteRange(ctx, r.router, req, send)
		})
}

// Scan scans a span that may cover many ranges: split per range
// (router.Scan) when it does.
func (r *remote) Scan(ctx context.Context, req *flotillapb.ScanRequest) (*flotillapb.ScanResponse, error) {
	if fe := router.CheckScan(req); fe != nil {
		return nil, fe
	}
	return callSpan(ctx, r, req.GetStartKey(), false, req, rpc.KVHandler.Scan,
		func(d *flotillapb.RangeDescriptor) bool { return d.ContainsSpan(req.GetStartKey(), req.GetEndKey()) },
		func(ctx context.Context, send func(context.Context, router.Target, *flotillapb.ScanRequest) (*flotillapb.ScanResponse, error)) (*flotillapb.ScanResponse, error) {
			return router.Scan(ctx, r.router, req, maxScanResponseBytes, send)
		})
}

func (r *remote) CompareAndSwap(ctx context.Context, req *flotillapb.CompareAndSwapRequest) (*flotillapb.CompareAndSwapResponse, error) {
	return call(ctx, r, req.GetKey(), true, req, rpc.KVHandler.CompareAndSwap)
}

// Batch applies a batch whose ops may lie in many ranges: one batch per
// range (router.Batch) when they do. The client does not know the
// cluster's value size limit: the servers check it.
func (r *remote) Batch(ctx context.Context, req *flotillapb.BatchRequest) (*flotillapb.BatchResponse, error) {
	if fe := router.CheckBatch(req, -1); fe != nil {
		return nil, fe
	}
	return callSpan(ctx, r, req.GetOps()[0].RouteKey(), true, req, rpc.KVHandler.Batch,
		func(d *flotillapb.RangeDescriptor) bool { return d.ContainsOps(req.GetOps()) },
		func(ctx context.Context, send func(context.Context, router.Target, *flotillapb.BatchRequest) (*flotillapb.BatchResponse, error)) (*flotillapb.BatchResponse, error) {
			return router.Batch(ctx, r.router, req, send)
		})
}

// Txn serves a txn at the range of its compares and writes, splitting off
// reads that lie beyond it (router.Txn).
func (r *remote) Txn(ctx context.Context, req *flotillapb.TxnRequest) (*flotillapb.TxnResponse, error) {
	if req == nil {
		return nil, unavailable("nil request")
	}
	// The client does not know the cluster's limits (value size, ops per
	// txn): the servers check those. Everything else is checked here, so
	// that a txn split by the router does not apply its writes and then
	// fail on a malformed read.
	if field, p := flotillapb.CheckTxn(req, -1, -1); p != "" {
		return nil, &flotillapb.Error{
			Message: fmt.Sprintf("invalid %s: %s", field, p),
			Outcome: flotillapb.Outcome_NOT_APPLIED,
			Detail:  &flotillapb.Error_InvalidArgument{InvalidArgument: &flotillapb.InvalidArgument{Field: field}},
		}
	}
	key := req.RouteKey()
	return callSpan(ctx, r, key, true, req, rpc.KVHandler.Txn,
		func(d *flotillapb.RangeDescriptor) bool { return router.TxnFits(req, d) },
		func(ctx context.Context, send func(context.Context, router.Target, *flotillapb.TxnRequest) (*flotillapb.TxnResponse, error)) (*flotillapb.TxnResponse, error) {
			return router.Txn(ctx, r.router, req, send, r)
		})
}

// Compact compacts every range at the request's revision.
func (r *remote) Compact(ctx context.Context, req *flotillapb.CompactRequest) (*flotillapb.CompactResponse, error) {
	ctx, q, done, err := r.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	resp, err := router.Compact(ctx, r.router, req, router.PartSender(q, true, rpc.KVHandler.Compact))
	return resp, r.finalErr(ctx, q, err, true)
}
