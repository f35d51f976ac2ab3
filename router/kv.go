// Copyright 2026 The Flotilla Authors. All rights reserved.

package router

import (
	"context"
	"fmt"

	"github.com/flotilladb/flotilla/rpc"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The KV request driver that the Go client and every node's gateway share:
// how a KV request is routed, addressed, sent to a node and checked before
// it is split. The client sends every attempt over gRPC; a gateway serves
// the attempts routed to its own node from its store. Both are a
// rpc.KVHandler per node (Nodes), so the driver is written once.

// KVRequest is what every KV request message has: a header, which routes
// it to a range.
type KVRequest interface {
	proto.Message
	GetHeader() *flotillapb.RequestHeader
}

// KVMethod is one method of the KV service as a method expression of
// rpc.KVHandler (rpc.KVHandler.Get, rpc.KVHandler.Scan, …): the driver
// calls it on the handler of the node an attempt goes to.
type KVMethod[Req KVRequest, Resp any] = func(rpc.KVHandler, context.Context, Req) (Resp, error)

// Nodes gives the handler that serves requests sent to a node: a gRPC
// client of that node (rpc.NewKVClient), or, on a gateway, its own store
// for itself. Handler fails, with a *flotillapb.Error that is Unavailable
// and not applied, when the node cannot be reached (no address known, the
// connection not ready): the router then moves on to another replica.
// Called from the request's goroutine; safe for concurrent use.
type Nodes interface {
	Handler(ctx context.Context, node flotillapb.NodeID, write bool) (rpc.KVHandler, error)
}

// Routed reports whether a request's header routes it already: forwarded
// by a gateway, or addressed to a range by ID or by the version of its
// descriptor. Such a request is served by the receiving node's replica or
// fails; it is never forwarded nor split. (A version without a range ID
// asks the replica holding the key to check it: a gateway that retried an
// EpochNotMatch for it would get the same one until the deadline, since
// only the sender can route it anew.)
func Routed(h *flotillapb.RequestHeader) bool {
	return h.GetForwarded() || h.GetRangeId() != 0 || h.GetVersion() != 0
}

// SetHeader sets a request's header (every KV request has one, named
// "header"); the request keeps h.
func SetHeader(m KVRequest, h *flotillapb.RequestHeader) {
	r := m.ProtoReflect()
	r.Set(r.Descriptor().Fields().ByName("header"), protoreflect.ValueOfMessage(h.ProtoReflect()))
}

// SetForwarded marks a request as forwarded by a gateway (its header is
// copied first: it may be shared).
func SetForwarded(m KVRequest) {
	h := proto.Clone(m.GetHeader()).(*flotillapb.RequestHeader)
	if h == nil {
		h = &flotillapb.RequestHeader{}
	}
	h.Forwarded = true
	SetHeader(m, h)
}

// Retriable reports whether a failed request may be sent again: never an
// invalid one, never a write that may have been applied, never a write
// refused for want of disk space (NoSpace: it would be refused again),
// never one refused for its revision or its ranges (Compacted,
// FutureRevision, CrossRange: every replica refuses it alike, so a retry
// only spins until the deadline).
func Retriable(fe *flotillapb.Error, write bool) bool {
	if Permanent(fe) {
		return false
	}
	if write {
		return fe.GetOutcome() == flotillapb.Outcome_NOT_APPLIED
	}
	return true
}

// Permanent reports whether fe refuses the request itself, wherever it is
// sent: bad input (InvalidArgument), a full disk (NoSpace), a revision
// below the compaction (Compacted) or not handed out yet (FutureRevision),
// a txn across ranges (CrossRange).
func Permanent(fe *flotillapb.Error) bool {
	switch fe.GetDetail().(type) {
	case *flotillapb.Error_InvalidArgument, *flotillapb.Error_NoSpace, *flotillapb.Error_Compacted,
		*flotillapb.Error_FutureRevision, *flotillapb.Error_CrossRange:
		return true
	}
	return false
}

// Send sends a request, routed by key, through r (Do): each attempt is a
// copy of req with the attempt's header, sent with m to the handler nodes
// give for the attempt's store.
func Send[Req KVRequest, Resp any](ctx context.Context, r *Router, nodes Nodes, key []byte, write bool, req Req, m KVMethod[Req, Resp]) (Resp, error) {
	dreq := Request{Key: key, Write: write}
	if h := req.GetHeader(); !write {
		dreq.ReadFrom, dreq.Zone = h.GetReadFrom(), h.GetZone()
	}
	return Do(ctx, r, dreq, func(ctx context.Context, t Target) (Resp, error) {
		routed := proto.Clone(req).(Req)
		SetHeader(routed, t.Header)
		return sendTo(ctx, nodes, t, write, routed, m)
	})
}

// PartSender returns the function that sends one part of a request split
// per range (Scan, DeleteRange, Batch: the part's header is set already,
// and the part is made for this attempt alone) to its target with m.
func PartSender[Req KVRequest, Resp any](nodes Nodes, write bool, m KVMethod[Req, Resp]) func(context.Context, Target, Req) (Resp, error) {
	return func(ctx context.Context, t Target, part Req) (Resp, error) {
		return sendTo(ctx, nodes, t, write, part, m)
	}
}

func sendTo[Req KVRequest, Resp any](ctx context.Context, nodes Nodes, t Target, write bool, req Req, m KVMethod[Req, Resp]) (Resp, error) {
	var zero Resp
	h, err := nodes.Handler(ctx, t.Store, write)
	if err != nil {
		return zero, err
	}
	return m(h, ctx, req)
}

// The checks a request gets before it is split per range: a part refused
// after others were applied would leave the request half done. They are
// the replicas' own checks (flotillapb.CheckSpan, CheckOp), with the same
// fields and messages.

// CheckScan returns what is wrong with a scan, or nil.
func CheckScan(req *flotillapb.ScanRequest) *flotillapb.Error {
	if field, p := flotillapb.CheckSpan("", req.GetStartKey(), req.GetEndKey()); p != "" {
		return badInputError(false, field, p)
	}
	if req.GetLimit() < 0 {
		return badInputError(false, "limit", fmt.Sprintf("negative limit %d", req.GetLimit()))
	}
	if req.GetRevision() < 0 {
		return badInputError(false, "revision", fmt.Sprintf("negative revision %d", req.GetRevision()))
	}
	return nil
}

// CheckDeleteRange returns what is wrong with a delete-range, or nil.
func CheckDeleteRange(req *flotillapb.DeleteRangeRequest) *flotillapb.Error {
	if field, p := flotillapb.CheckSpan("", req.GetStartKey(), req.GetEndKey()); p != "" {
		return badInputError(true, field, p)
	}
	return nil
}

// CheckBatch returns what is wrong with a batch, or nil. Values are
// checked against maxValue unless it is negative (a client does not know
// the cluster's limit: Batch sends the part with the largest value first
// instead).
func CheckBatch(req *flotillapb.BatchRequest, maxValue int) *flotillapb.Error {
	ops := req.GetOps()
	if len(ops) == 0 {
		return badInputError(true, "ops", "no operations")
	}
	for i, op := range ops {
		if field, p := flotillapb.CheckOp(op, fmt.Sprintf("ops[%d].", i), maxValue); p != "" {
			return badInputError(true, field, p)
		}
	}
	return nil
}

// invalidArgument is the error of a request refused for bad input: a
// write's was certainly not applied; a read has no outcome.
func badInputError(write bool, field, msg string) *flotillapb.Error {
	fe := &flotillapb.Error{
		Message: msg,
		Detail:  &flotillapb.Error_InvalidArgument{InvalidArgument: &flotillapb.InvalidArgument{Field: field}},
	}
	if write {
		fe.Outcome = flotillapb.Outcome_NOT_APPLIED
	}
	return fe
}
