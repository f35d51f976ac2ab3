// Copyright 2026 The Flotilla Authors. All rights reserved.

package flotilla

import (
	"context"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/flotilladb/flotilla/multiraft"
	"github.com/flotilladb/flotilla/rpc"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"github.com/flotilladb/flotilla/shard"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// gateway serves KV requests for any key on any node: from a local replica
// when it can (any replica serves linearizable reads through ReadIndex; the
// leader serves writes), else by forwarding the request once to the node
// that can. It retries what is safe to retry until the request's deadline:
// reads, and writes that were certainly not applied. A forwarded request is
// served locally or fails; it is never forwarded again.
//
// Until the router exists (the placement-driver issue), a node that holds
// no replica of a key's range asks the other nodes it knows in turn and
// follows their NotLeader hints.
type gateway struct {
	n *Node
	// guess is where requests for ranges this node has no replica of go
	// next (an index into the directory).
	guess atomic.Uint32
	// hint is the node that last named itself or was named leader of such
	// a range.
	hint atomic.Uint64
	// inflight counts the requests being served, bounded by
	// Config.MaxInflightRequests.
	inflight atomic.Int64
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

var _ rpc.KVHandler = (*gateway)(nil)

// request is what every KV request message has.
type request interface {
	proto.Message
	GetHeader() *flotillapb.RequestHeader
}

func routeKV[Req request, Resp any](ctx context.Context, g *gateway, key []byte, write bool, req Req,
	local func(*shard.Store, context.Context, Req) (Resp, error),
	remote func(flotillapb.KVClient, context.Context, Req, ...grpc.CallOption) (Resp, error),
) (Resp, error) {
	var zero Resp
	if any(req) == nil || !req.ProtoReflect().IsValid() {
		return zero, invalidArgument("request", "empty request")
	}
	// A node that is not (or no longer) a running member fails at once: a
	// client moves on to another node.
	if !g.n.enter() {
		return zero, g.n.notRunningError()
	}
	defer g.n.exit()
	if _, _, ok := g.n.running(); !ok {
		return zero, g.n.notRunningError()
	}
	if !g.admit() {
		fe := serverBusy(g.n.cfg.MaxInflightRequests)
		if !write {
			fe.Outcome = flotillapb.Outcome_OUTCOME_UNSPECIFIED
		}
		return zero, fe
	}
	defer g.inflight.Add(-1)
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultRequestTimeout)
		defer cancel()
	}
	// A forwarded request, or one addressed to a range by ID, is served here
	// or fails: the sender routes and retries.
	forwarded := req.GetHeader().GetForwarded() || req.GetHeader().GetRangeId() != 0
	backoff := 5 * time.Millisecond
	for {
		resp, err := attemptKV(ctx, g, key, write, forwarded, req, local, remote)
		if err == nil {
			return resp, nil
		}
		fe := asError(err, write)
		if forwarded || !retriable(fe, write) || ctx.Err() != nil {
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

// asError makes err a *flotillapb.Error.
func asError(err error, write bool) *flotillapb.Error {
	if fe, ok := err.(*flotillapb.Error); ok {
		return fe
	}
	return rpc.ErrorFromStatus(rpc.StatusError(err), write)
}

// attemptKV makes one attempt at a request: locally, or forwarded to the
// node that should serve it.
func attemptKV[Req request, Resp any](ctx context.Context, g *gateway, key []byte, write, forwarded bool, req Req,
	local func(*shard.Store, context.Context, Req) (Resp, error),
	remote func(flotillapb.KVClient, context.Context, Req, ...grpc.CallOption) (Resp, error),
) (Resp, error) {
	var zero Resp
	if t := g.n.cfg.Testing; t != nil && t.BeforeServe != nil {
		t.BeforeServe()
	}
	host, _, ok := g.n.running()
	if !ok {
		return zero, g.n.notRunningError()
	}
	var target multiraft.NodeID
	if r, ok := g.n.store.LookupKey(key); ok || forwarded {
		if !ok {
			return local(g.n.store, ctx, req) // the store says why it cannot serve
		}
		st, _ := host.Status(r.RangeID())
		if forwarded || !write || st.Leader == st.Replica {
			return local(g.n.store, ctx, req)
		}
		if st.Leader == 0 {
			return zero, &flotillapb.Error{
				Message: "the range has no leader at the moment",
				Outcome: flotillapb.Outcome_NOT_APPLIED,
				Detail:  &flotillapb.Error_NotLeader{NotLeader: &flotillapb.NotLeader{RangeId: uint64(r.RangeID())}},
			}
		}
		target = st.Leader.Node()
	} else {
		target = g.guessNode()
		if target == 0 {
			return zero, unavailable("no node known to serve the key")
		}
	}
	addr, ok := g.n.transport.Address(target)
	if !ok {
		g.forgetHint()
		return zero, unavailable("no address known for node " + strconv.FormatUint(uint64(target), 10))
	}
	conn, err := g.n.pool.Conn(addr)
	if err != nil {
		g.forgetHint()
		return zero, unavailable(err.Error())
	}
	if !rpc.EnsureReady(ctx, conn, connectWait) {
		g.forgetHint()
		return zero, unavailable("node " + strconv.FormatUint(uint64(target), 10) + " is unreachable")
	}
	fwd := proto.Clone(req).(Req)
	setForwarded(fwd)
	// Close waits for requests: a forwarded one ends when the node stops.
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(g.n.stopCtx, cancel)()
	resp, err := remote(flotillapb.NewKVClient(conn), fctx, fwd)
	if err != nil {
		fe := rpc.ErrorFromStatus(err, write)
		if nl := fe.GetNotLeader(); nl != nil && nl.GetLeader().GetStoreId() != 0 {
			g.hint.Store(nl.GetLeader().GetStoreId())
		} else {
			g.forgetHint()
		}
		return zero, fe
	}
	g.hint.Store(uint64(target))
	return resp, nil
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
// replica of its range: the last known leader, else the known nodes in turn.
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

// setForwarded marks a request as forwarded by a gateway.
func setForwarded(m request) {
	h := proto.Clone(m.GetHeader()).(*flotillapb.RequestHeader)
	if h == nil {
		h = &flotillapb.RequestHeader{}
	}
	h.Forwarded = true
	r := m.ProtoReflect()
	r.Set(r.Descriptor().Fields().ByName("header"), protoreflect.ValueOfMessage(h.ProtoReflect()))
}

func (g *gateway) Get(ctx context.Context, req *flotillapb.GetRequest) (*flotillapb.GetResponse, error) {
	return routeKV(ctx, g, req.GetKey(), false, req, (*shard.Store).Get, flotillapb.KVClient.Get)
}

func (g *gateway) Put(ctx context.Context, req *flotillapb.PutRequest) (*flotillapb.PutResponse, error) {
	return routeKV(ctx, g, req.GetKey(), true, req, (*shard.Store).Put, flotillapb.KVClient.Put)
}

func (g *gateway) Delete(ctx context.Context, req *flotillapb.DeleteRequest) (*flotillapb.DeleteResponse, error) {
	return routeKV(ctx, g, req.GetKey(), true, req, (*shard.Store).Delete, flotillapb.KVClient.Delete)
}

func (g *gateway) DeleteRange(ctx context.Context, req *flotillapb.DeleteRangeRequest) (*flotillapb.DeleteRangeResponse, error) {
	return routeKV(ctx, g, req.GetStartKey(), true, req, (*shard.Store).DeleteRange, flotillapb.KVClient.DeleteRange)
}

func (g *gateway) Scan(ctx context.Context, req *flotillapb.ScanRequest) (*flotillapb.ScanResponse, error) {
	return routeKV(ctx, g, req.GetStartKey(), false, req, (*shard.Store).Scan, flotillapb.KVClient.Scan)
}

func (g *gateway) CompareAndSwap(ctx context.Context, req *flotillapb.CompareAndSwapRequest) (*flotillapb.CompareAndSwapResponse, error) {
	return routeKV(ctx, g, req.GetKey(), true, req, (*shard.Store).CompareAndSwap, flotillapb.KVClient.CompareAndSwap)
}

func (g *gateway) Batch(ctx context.Context, req *flotillapb.BatchRequest) (*flotillapb.BatchResponse, error) {
	var key []byte
	if ops := req.GetOps(); len(ops) > 0 {
		key = ops[0].RouteKey()
	}
	return routeKV(ctx, g, key, true, req, (*shard.Store).Batch, flotillapb.KVClient.Batch)
}
