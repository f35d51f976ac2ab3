// Copyright 2026 The Flotilla Authors. All rights reserved.

package rpc

import (
	"context"

	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"google.golang.org/grpc"
)

// NewKVClient returns a KVHandler that sends each request to the node at
// the other end of conn and returns its response, or its error as a
// *flotillapb.Error (ErrorFromStatus: a write whose fate the failure hides
// has an unknown outcome). The router and the gateways call a remote node
// and their own store through the same interface. Check that conn is ready
// (Pool.Ready) before sending a write: one that fails on a connection that
// never was is certainly not applied, which the status alone cannot tell.
func NewKVClient(conn grpc.ClientConnInterface) KVHandler {
	return kvClient{c: flotillapb.NewKVClient(conn)}
}

type kvClient struct{ c flotillapb.KVClient }

// callErr is ErrorFromStatus as an error: nil stays an untyped nil.
func callErr(err error, write bool) error {
	if err == nil {
		return nil
	}
	return ErrorFromStatus(err, write)
}

func (k kvClient) Get(ctx context.Context, r *flotillapb.GetRequest) (*flotillapb.GetResponse, error) {
	resp, err := k.c.Get(ctx, r)
	return resp, callErr(err, false)
}

func (k kvClient) Put(ctx context.Context, r *flotillapb.PutRequest) (*flotillapb.PutResponse, error) {
	resp, err := k.c.Put(ctx, r)
	return resp, callErr(err, true)
}

func (k kvClient) Delete(ctx context.Context, r *flotillapb.DeleteRequest) (*flotillapb.DeleteResponse, error) {
	resp, err := k.c.Delete(ctx, r)
	return resp, callErr(err, true)
}

func (k kvClient) DeleteRange(ctx context.Context, r *flotillapb.DeleteRangeRequest) (*flotillapb.DeleteRangeResponse, error) {
	resp, err := k.c.DeleteRange(ctx, r)
	return resp, callErr(err, true)
}

func (k kvClient) Scan(ctx context.Context, r *flotillapb.ScanRequest) (*flotillapb.ScanResponse, error) {
	resp, err := k.c.Scan(ctx, r)
	return resp, callErr(err, false)
}

func (k kvClient) CompareAndSwap(ctx context.Context, r *flotillapb.CompareAndSwapRequest) (*flotillapb.CompareAndSwapResponse, error) {
	resp, err := k.c.CompareAndSwap(ctx, r)
	return resp, callErr(err, true)
}

func (k kvClient) Batch(ctx context.Context, r *flotillapb.BatchRequest) (*flotillapb.BatchResponse, error) {
	resp, err := k.c.Batch(ctx, r)
	return resp, callErr(err, true)
}

func (k kvClient) Txn(ctx context.Context, r *flotillapb.TxnRequest) (*flotillapb.TxnResponse, error) {
	resp, err := k.c.Txn(ctx, r)
	return resp, callErr(err, true)
}

func (k kvClient) Compact(ctx context.Context, r *flotillapb.CompactRequest) (*flotillapb.CompactResponse, error) {
	resp, err := k.c.Compact(ctx, r)
	return resp, callErr(err, true)
}
