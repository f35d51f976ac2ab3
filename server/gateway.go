// Copyright 2026 The Flotilla Authors. All rights reserved.

package server

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/flotilladb/flotilla"
	"github.com/flotilladb/flotilla/multiraft"
	"github.com/flotilladb/flotilla/router"
	"github.com/flotilladb/flotilla/rpc"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"github.com/flotilladb/flotilla/shard"
	"google.golang.org/protobuf/proto"
)

// gateway serves KV requests for any key on any node: from a local replica
// when it can (any replica serves linearizable reads through ReadIndex; the
// leader serves writes), else through the node's router, which sends the
// request to the node of the range's leader with the range's ID and version
// in its header and follows the error protocol (NotLeader hints, new
// descriptors, backoff). It retries what is safe to retry until the
// request's deadline: reads, and writes that were certainly not applied. A
// forwarded request, or one whose header names its range (the router's), is
// served locally or fails; it is never forwarded again.
//
// When the router cannot find the key's range (the placement group has no
// leader, or this node cannot reach it) and this node holds no replica of
// it, the gateway falls back to guessing: it asks the other nodes it knows
// in turn and follows their NotLeader hints.
//
// A scan, delete-range or batch whose keys cross range boundaries is split
// per range by the router (spanKV); each part is served here or sent to its
// node like a routed request.
//
// The gateway and the Go client share their request driver (router.Send,
// router.PartSender, the checks): the gateway is the router's Nodes, whose
// handler for this node is its own store and for any other node a gRPC
// client of it.
type gateway struct {
	n *Node
	// router routes the requests this node cannot serve itself.
	router *router.Router
	// resolver answers the router's cache misses from this node's
	// placement service, and knows the nodes' addresses.
	resolver *router.PlacementResolver
	metrics  gatewayMetrics
	// guess is where requests for ranges this node has no replica of go
	// next when the router cannot find them (an index into the directory).
	guess atomic.Uint32
	// hint is the node that last named itself or was named leader of such
	// a range.
	hint atomic.Uint64
	// inflight counts the requests being served, bounded by
	// Config.MaxInflightRequests: at most that many plus the number of
	// refused callers momentarily (each adds before it checks).
	inflight atomic.Int64
}

// gatewayMetrics count where a gateway sends the attempts of requests.
//
//	flotilla_gateway_local_total                   attempts served (or refused) by this node's
//	                                               store, including those other nodes routed here
//	flotilla_gateway_forwarded_total{via="router"} attempts sent to another node by the router
//	flotilla_gateway_forwarded_total{via="guess"}  attempts sent to a guessed node, when the
//	                                               router could not find the range
type gatewayMetrics struct {
	local, routed, guessed *metrics.Counter
}

// newGateway returns n's gateway with its router, whose metrics join n's.
func newGateway(n *Node) (*gateway, error) {
	g := &gateway{
		n: n,
		resolver: router.NewPlacementResolver(func(ctx context.Context, req *flotillapb.LookupRangeRequest) (*flotillapb.LookupRangeResponse, error) {
			ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
			defer cancel()
			return n.lookupRange(ctx, req)
		}),
		metrics: gatewayMetrics{
			local:   n.metrics.GetOrCreateCounter("flotilla_gateway_local_total"),
			routed:  n.metrics.GetOrCreateCounter(`flotilla_gateway_forwarded_total{via="router"}`),
			guessed: n.metrics.GetOrCreateCounter(`flotilla_gateway_forwarded_total{via="guess"}`),
		},
	}
	r, err := router.New(router.Config{Resolver: g.resolver, Metrics: n.metrics,
		Local: func(store flotillapb.NodeID) bool { return uint64(store) == n.self.Load() }})
	if err != nil {
		return nil, err
	}
	g.router = r
	return g, nil
}

var (
	_ rpc.KVHandler = (*gateway)(nil)
	_ router.Nodes  = (*gateway)(nil)
)

// Handler implements router.Nodes: this node's store for itself (the store
// checks that its replica may serve), a gRPC client of any other node once
// its connection is ready.
func (g *gateway) Handler(ctx context.Context, node flotillapb.NodeID, _ bool) (rpc.KVHandler, error) {
	if self := g.n.self.Load(); self != 0 && uint64(node) == self {
		g.metrics.local.Inc()
		return g.n.store, nil
	}
	g.metrics.routed.Inc()
	return g.remote(ctx, node)
}

// remote returns a gRPC client of node, or an Unavailable error (not
// applied: nothing was sent) if no address is known or the connection is
// not ready.
func (g *gateway) remote(ctx context.Context, node flotillapb.NodeID) (rpc.KVHandler, error) {
	// The node's directory first: it follows address changes as the
	// placement group records them, the resolver only at its lookups.
	addr, ok := g.n.transport.Address(node)
	if !ok {
		addr, ok = g.resolver.Address(node)
	}
	if !ok {
		return nil, unavailable("no address known for node " + strconv.FormatUint(uint64(node), 10))
	}
	kv, err := g.n.pool.ReadyKV(ctx, addr, connectWait)
	if err != nil {
		return nil, unavailable("node " + strconv.FormatUint(uint64(node), 10) + ": " + err.Error())
	}
	return kv, nil
}

// partNodes is the gateway as the Nodes of a split request's parts: each
// part is an attempt of its own (the BeforeServe knob runs for it).
type partNodes struct{ g *gateway }

func (p partNodes) Handler(ctx context.Context, node flotillapb.NodeID, write bool) (rpc.KVHandler, error) {
	if k := p.g.n.cfg.Testing; k != nil && k.BeforeServe != nil {
		k.BeforeServe()
	}
	return p.g.Handler(ctx, node, write)
}

// admit takes a slot for a request, or says the node is busy.
func (g *gateway) admit() bool {
	if g.inflight.Add(1) > int64(g.n.cfg.MaxInflightRequests) {
		g.inflight.Add(-1)
		return false
	}
	return true
}

func serverBusy(n int) *flotillapb.Error {
	return &flotillapb.Error{
		Message: "the node is serving its maximum of " + strconv.Itoa(n) + " requests; back off and retry",
		Outcome: flotillapb.Outcome_NOT_APPLIED,
		Detail:  &flotillapb.Error_ServerBusy{ServerBusy: &flotillapb.ServerBusy{}},
	}
}

// routeKV serves a request that is not split: routed by key.
func routeKV[Req router.KVRequest, Resp any](ctx context.Context, g *gateway, key []byte, write bool, req Req, m router.KVMethod[Req, Resp]) (Resp, error) {
	var zero Resp
	if any(req) == nil || !req.ProtoReflect().IsValid() {
		return zero, invalidArgument("request", "empty request")
	}
	ctx, done, fe := g.begin(ctx, write)
	if fe != nil {
		return zero, fe
	}
	defer done()
	return retryKV(ctx, g, key, write, req, m)
}

// begin starts serving a request: it takes the node's gate (Node.enter)
// and an inflight slot, and bounds ctx by flotilla.DefaultRequestTimeout
// unless it has a deadline. It returns ctx and the function that releases
// them all, or the error the request fails with.
func (g *gateway) begin(ctx context.Context, write bool) (context.Context, func(), *flotillapb.Error) {
	// A node that is not (or no longer) a running member fails at once: a
	// client moves on to another node.
	if !g.n.enter() {
		return nil, nil, g.n.notRunningError()
	}
	if _, _, ok := g.n.running(); !ok {
		g.n.exit()
		return nil, nil, g.n.notRunningError()
	}
	if !g.admit() {
		g.n.exit()
		fe := serverBusy(g.n.cfg.MaxInflightRequests)
		if !write {
			fe.Outcome = flotillapb.Outcome_OUTCOME_UNSPECIFIED
		}
		return nil, nil, fe
	}
	cancel := context.CancelFunc(func() {})
	if _, ok := ctx.Deadline(); !ok {
		ctx, cancel = context.WithTimeout(ctx, flotilla.DefaultRequestTimeout)
	}
	return ctx, func() {
		cancel()
		g.inflight.Add(-1)
		g.n.exit()
	}, nil
}

// retryKV serves a request that begin admitted, retrying attempts (served
// here, routed, or guessed: attemptKV) as long as it is safe and useful.
func retryKV[Req router.KVRequest, Resp any](ctx context.Context, g *gateway, key []byte, write bool, req Req, m router.KVMethod[Req, Resp]) (Resp, error) {
	var zero Resp
	// A forwarded request, or one addressed to a range by ID, is served here
	// or fails: the sender routes and retries.
	forwarded := router.Routed(req.GetHeader())
	backoff := 5 * time.Millisecond
	for {
		resp, err := attemptKV(ctx, g, key, write, forwarded, req, m)
		if err == nil {
			return resp, nil
		}
		fe := asError(err, write)
		// A request that reaches past its range is split by the caller
		// (spanKV), unless forwarded; sent again, it would fail alike.
		if forwarded || !router.Retriable(fe, write) || ctx.Err() != nil || router.NeedsSplit(fe, key) {
			if ctx.Err() != nil && write && fe.GetOutcome() == flotillapb.Outcome_OUTCOME_UNSPECIFIED {
				fe.Outcome = flotillapb.Outcome_UNKNOWN
			}
			return zero, fe
		}
		t := time.NewTimer(backoff/2 + rand.N(backoff/2+1))
		select {
		case <-g.n.stopCtx.Done():
			t.Stop()
			if write && fe.GetOutcome() != flotillapb.Outcome_NOT_APPLIED {
				fe.Outcome = flotillapb.Outcome_UNKNOWN
			}
			return zero, fe
		case <-ctx.Done():
			t.Stop()
			if write && fe.GetOutcome() != flotillapb.Outcome_NOT_APPLIED {
				fe.Outcome = flotillapb.Outcome_UNKNOWN
			}
			return zero, fe
		case <-t.C:
		}
		backoff = min(2*backoff, 200*time.Millisecond)
	}
}

// spanKV serves a request whose keys may lie in many ranges, routed by key
// (its first key). If they lie in one range, as far as this node's replica
// of key's range (or else the router's cache) tells, or if the router
// cannot find key's range, it is served like any request (retryKV); else,
// or if that turns out to reach past its range (the range split), it is
// split per range by split, whose parts are served here when the router
// routes them to this node and sent to their node otherwise.
func spanKV[Req router.KVRequest, Resp any](ctx context.Context, g *gateway, key []byte, write bool, req Req, m router.KVMethod[Req, Resp],
	fits func(*flotillapb.RangeDescriptor) bool,
	split func(ctx context.Context, sendPart func(context.Context, router.Target, Req) (Resp, error)) (Resp, error),
) (Resp, error) {
	var zero Resp
	ctx, done, fe := g.begin(ctx, write)
	if fe != nil {
		return zero, fe
	}
	defer done()
	var desc *flotillapb.RangeDescriptor
	if r, has := g.n.store.LookupKey(key); has {
		desc = r.Descriptor()
	} else if info, err := g.router.Lookup(ctx, key); err == nil {
		desc = info.Desc
	}
	if desc == nil || fits(desc) {
		resp, err := retryKV(ctx, g, key, write, req, m)
		if err == nil || !router.NeedsSplit(err, key) {
			return resp, err
		}
	}
	if _, _, ok := g.n.running(); !ok {
		return zero, g.n.notRunningError()
	}
	// Close waits for requests: the router's retries end when the node
	// stops.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(g.n.stopCtx, cancel)()
	return split(ctx, router.PartSender(partNodes{g}, write, m))
}

// asError makes err a *flotillapb.Error.
func asError(err error, write bool) *flotillapb.Error {
	if fe, ok := err.(*flotillapb.Error); ok {
		return fe
	}
	return rpc.ErrorFromStatus(rpc.StatusError(err), write)
}

// attemptKV makes one attempt at a request: locally if this node can serve
// it, else through the router (or, if the router cannot find the range, by
// guessing a node).
func attemptKV[Req router.KVRequest, Resp any](ctx context.Context, g *gateway, key []byte, write, forwarded bool, req Req, m router.KVMethod[Req, Resp]) (Resp, error) {
	var zero Resp
	if t := g.n.cfg.Testing; t != nil && t.BeforeServe != nil {
		t.BeforeServe()
	}
	host, _, ok := g.n.running()
	if !ok {
		return zero, g.n.notRunningError()
	}
	r, has := g.n.store.LookupKey(key)
	if forwarded || has && !write && g.n.cfg.Testing != nil && g.n.cfg.Testing.UnsafeFollowerReads {
		// Without a local replica, the store says why it cannot serve.
		g.metrics.local.Inc()
		return m(g.n.store, ctx, req)
	}
	if has {
		st, _ := host.Leadership(r.RangeID())
		if st.Leading() {
			g.metrics.local.Inc()
			return m(g.n.store, ctx, req)
		}
		if !write && req.GetHeader().GetReadFrom() != flotillapb.ReadFrom_READ_FROM_LEADER {
			// A read that allows it is served by this replica (a
			// follower or observer), after the leader closed the
			// revision it reads at (shard.Store.awaitClosed), within
			// half of what is left of the request's time (at most a
			// router attempt's): a replica cut off from its leader, or
			// removed and never to catch up, must leave time for the
			// leader. If it fails, the read goes to the leader.
			g.metrics.local.Inc()
			actx, cancel := context.WithTimeout(ctx, followerAttemptTimeout(ctx))
			resp, err := m(g.n.store, actx, req)
			cancel()
			if err == nil || !router.Retriable(asError(err, false), false) || ctx.Err() != nil {
				return resp, err
			}
			req = proto.Clone(req).(Req)
			h := proto.Clone(req.GetHeader()).(*flotillapb.RequestHeader)
			h.ReadFrom = flotillapb.ReadFrom_READ_FROM_LEADER
			router.SetHeader(req, h)
		}
		// A follower serves neither writes nor reads that must come from
		// the leader (only the leader knows the writes it is about to
		// propose, which a read at a revision waits for), but it knows
		// its range and, better than the placement driver, who leads it.
		// Tell the router, unless it holds a newer descriptor.
		info := router.RangeInfo{Desc: r.Descriptor()}
		if st.Leader != 0 {
			info.Leader = &flotillapb.ReplicaDescriptor{StoreId: uint64(st.Leader.Node()), ReplicaId: uint64(st.Leader)}
		}
		g.router.Update(info)
	} else if _, err := g.router.Lookup(ctx, key); err != nil {
		return guessKV(ctx, g, write, req, m)
	}
	// Close waits for requests: the router's retries end when the node
	// stops.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(g.n.stopCtx, cancel)()
	return router.Send(ctx, g.router, g, key, write, req, m)
}

// followerAttemptTimeout bounds a gateway's attempt to serve a read from
// its own replica that does not lead: half of what is left of ctx's time,
// at most router.DefaultReadAttemptTimeout.
func followerAttemptTimeout(ctx context.Context) time.Duration {
	d := router.DefaultReadAttemptTimeout
	if dl, ok := ctx.Deadline(); ok {
		d = min(d, time.Until(dl)/2)
	}
	return d
}

// guessKV sends a request for a range this node has no replica of, and the
// router cannot find, to the last node named its leader, else to the known
// nodes in turn.
func guessKV[Req router.KVRequest, Resp any](ctx context.Context, g *gateway, write bool, req Req, m router.KVMethod[Req, Resp]) (Resp, error) {
	var zero Resp
	target := g.guessNode()
	if target == 0 {
		return zero, unavailable("no node known to serve the key")
	}
	fwd := proto.Clone(req).(Req)
	router.SetForwarded(fwd)
	g.metrics.guessed.Inc()
	h, err := g.remote(ctx, target)
	if err == nil {
		// Close waits for requests: a forwarded one ends when the node
		// stops.
		fctx, cancel := context.WithCancel(ctx)
		stop := context.AfterFunc(g.n.stopCtx, cancel)
		var resp Resp
		resp, err = m(h, fctx, fwd)
		stop()
		cancel()
		if err == nil {
			g.hint.Store(uint64(target))
			return resp, nil
		}
	}
	fe := asError(err, write)
	if nl := fe.GetNotLeader(); nl != nil && nl.GetLeader().GetStoreId() != 0 {
		g.hint.Store(nl.GetLeader().GetStoreId())
	} else {
		g.forgetHint()
	}
	return zero, fe
}

// forgetHint drops the leader hint and moves the guess on.
func (g *gateway) forgetHint() {
	g.hint.Store(0)
	g.guess.Add(1)
}

// notRunningError says why the node cannot serve requests.
func (n *Node) notRunningError() *flotillapb.Error {
	n.mu.Lock()
	state := n.mu.state
	n.mu.Unlock()
	if state == stateStopped {
		return unavailable("the node is stopped")
	}
	return unavailable("the node is not part of a cluster yet (run `flotilla init`, or start it with --join)")
}

// guessNode picks a node to forward a request to when this node holds no
// replica of its range and the router cannot find it: the last known
// leader, else the known nodes in turn.
func (g *gateway) guessNode() multiraft.NodeID {
	if h := g.hint.Load(); h != 0 {
		return multiraft.NodeID(h)
	}
	others := g.n.otherNodes()
	if len(others) == 0 {
		return 0
	}
	return others[int(g.guess.Load())%len(others)]
}

func (g *gateway) Get(ctx context.Context, req *flotillapb.GetRequest) (*flotillapb.GetResponse, error) {
	return routeKV(ctx, g, req.GetKey(), false, req, rpc.KVHandler.Get)
}

func (g *gateway) Put(ctx context.Context, req *flotillapb.PutRequest) (*flotillapb.PutResponse, error) {
	return routeKV(ctx, g, req.GetKey(), true, req, rpc.KVHandler.Put)
}

func (g *gateway) Delete(ctx context.Context, req *flotillapb.DeleteRequest) (*flotillapb.DeleteResponse, error) {
	return routeKV(ctx, g, req.GetKey(), true, req, rpc.KVHandler.Delete)
}

// DeleteRange deletes a span that may cover many ranges: split per range
// (router.DeleteRange) when it does.
func (g *gateway) DeleteRange(ctx context.Context, req *flotillapb.DeleteRangeRequest) (*flotillapb.DeleteRangeResponse, error) {
	if req == nil || router.Routed(req.GetHeader()) {
		return routeKV(ctx, g, req.GetStartKey(), true, req, rpc.KVHandler.DeleteRange)
	}
	if fe := router.CheckDeleteRange(req); fe != nil {
		return nil, fe
	}
	return spanKV(ctx, g, req.GetStartKey(), true, req, rpc.KVHandler.DeleteRange,
		func(d *flotillapb.RangeDescriptor) bool { return d.ContainsSpan(req.GetStartKey(), req.GetEndKey()) },
		func(ctx context.Context, send func(context.Context, router.Target, *flotillapb.DeleteRangeRequest) (*flotillapb.DeleteRangeResponse, error)) (*flotillapb.DeleteRangeResponse, error) {
			return router.DeleteRange(ctx, g.router, req, send)
		})
}

// Scan scans a span that may cover many ranges: split per range
// (router.Scan) when it does.
func (g *gateway) Scan(ctx context.Context, req *flotillapb.ScanRequest) (*flotillapb.ScanResponse, error) {
	if req == nil || router.Routed(req.GetHeader()) {
		return routeKV(ctx, g, req.GetStartKey(), false, req, rpc.KVHandler.Scan)
	}
	if fe := router.CheckScan(req); fe != nil {
		return nil, fe
	}
	return spanKV(ctx, g, req.GetStartKey(), false, req, rpc.KVHandler.Scan,
		func(d *flotillapb.RangeDescriptor) bool { return d.ContainsSpan(req.GetStartKey(), req.GetEndKey()) },
		func(ctx context.Context, send func(context.Context, router.Target, *flotillapb.ScanRequest) (*flotillapb.ScanResponse, error)) (*flotillapb.ScanResponse, error) {
			return router.Scan(ctx, g.router, req, flotillapb.DefaultMaxScanBytes, send)
		})
}

func (g *gateway) CompareAndSwap(ctx context.Context, req *flotillapb.CompareAndSwapRequest) (*flotillapb.CompareAndSwapResponse, error) {
	return routeKV(ctx, g, req.GetKey(), true, req, rpc.KVHandler.CompareAndSwap)
}

// Batch applies a batch whose ops may lie in many ranges: one batch per
// range (router.Batch) when they do.
func (g *gateway) Batch(ctx context.Context, req *flotillapb.BatchRequest) (*flotillapb.BatchResponse, error) {
	var key []byte
	if ops := req.GetOps(); len(ops) > 0 {
		key = ops[0].RouteKey()
	}
	if req == nil || router.Routed(req.GetHeader()) {
		return routeKV(ctx, g, key, true, req, rpc.KVHandler.Batch)
	}
	if fe := router.CheckBatch(req, g.n.cfg.MaxValueSize); fe != nil {
		return nil, fe
	}
	return spanKV(ctx, g, key, true, req, rpc.KVHandler.Batch,
		func(d *flotillapb.RangeDescriptor) bool { return d.ContainsOps(req.GetOps()) },
		func(ctx context.Context, send func(context.Context, router.Target, *flotillapb.BatchRequest) (*flotillapb.BatchResponse, error)) (*flotillapb.BatchResponse, error) {
			return router.Batch(ctx, g.router, req, send)
		})
}

// Txn serves a txn: at the range of its compares and writes when all its
// keys lie there, else split (router.Txn): the compares and writes at their
// range, the reads beyond it at the txn's revision; compares or writes in
// more than one range fail with CrossRange.
func (g *gateway) Txn(ctx context.Context, req *flotillapb.TxnRequest) (*flotillapb.TxnResponse, error) {
	key := req.RouteKey()
	if req == nil || router.Routed(req.GetHeader()) {
		return routeKV(ctx, g, key, true, req, rpc.KVHandler.Txn)
	}
	if fe := shard.ValidateTxn(req, g.n.cfg.MaxValueSize, g.n.cfg.MaxTxnOps, flotillapb.Outcome_NOT_APPLIED); fe != nil {
		return nil, fe
	}
	return spanKV(ctx, g, key, true, req, rpc.KVHandler.Txn,
		func(d *flotillapb.RangeDescriptor) bool { return router.TxnFits(req, d) },
		func(ctx context.Context, send func(context.Context, router.Target, *flotillapb.TxnRequest) (*flotillapb.TxnResponse, error)) (*flotillapb.TxnResponse, error) {
			return router.Txn(ctx, g.router, req, send, enteredReader{g})
		})
}

// enteredReader serves a txn's reads for a request that holds the node's
// gate already (begin): taking it again could deadlock with Close.
type enteredReader struct{ g *gateway }

func (e enteredReader) Get(ctx context.Context, req *flotillapb.GetRequest) (*flotillapb.GetResponse, error) {
	return retryKV(ctx, e.g, req.GetKey(), false, req, rpc.KVHandler.Get)
}

func (e enteredReader) Scan(ctx context.Context, req *flotillapb.ScanRequest) (*flotillapb.ScanResponse, error) {
	if fe := router.CheckScan(req); fe != nil {
		return nil, fe
	}
	return router.Scan(ctx, e.g.router, req, flotillapb.DefaultMaxScanBytes, router.PartSender(partNodes(e), false, rpc.KVHandler.Scan))
}

// Compact compacts every range at the request's revision (router.Compact).
func (g *gateway) Compact(ctx context.Context, req *flotillapb.CompactRequest) (*flotillapb.CompactResponse, error) {
	if req == nil || router.Routed(req.GetHeader()) {
		return routeKV(ctx, g, nil, true, req, rpc.KVHandler.Compact)
	}
	if req.GetRevision() <= 0 {
		return nil, invalidArgument("revision", fmt.Sprintf("compacting at revision %d: it must be positive", req.GetRevision()))
	}
	ctx, done, fe := g.begin(ctx, true)
	if fe != nil {
		return nil, fe
	}
	defer done()
	return router.Compact(ctx, g.router, req, router.PartSender(partNodes{g}, true, rpc.KVHandler.Compact))
}
