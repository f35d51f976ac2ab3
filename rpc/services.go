// Copyright 2026 The Flotilla Authors. All rights reserved.

package rpc

import (
	"context"
	"time"

	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/connectivity"
)

// KVHandler serves the KV service; the node's gateway implements it. Its
// methods are called from gRPC's goroutines, concurrently. Errors are
// *flotillapb.Error (or context errors); StatusError turns them into gRPC
// statuses. It is also the shape of every hop a request takes: a gRPC
// client of a node (NewKVClient), a node's store (shard.Store, for the
// attempts its gateway serves locally) and the Go client's sender all
// implement it, and flotilla.NewKV builds the public KV API over any of
// them.
type KVHandler interface {
	Get(context.Context, *flotillapb.GetRequest) (*flotillapb.GetResponse, error)
	Put(context.Context, *flotillapb.PutRequest) (*flotillapb.PutResponse, error)
	Delete(context.Context, *flotillapb.DeleteRequest) (*flotillapb.DeleteResponse, error)
	DeleteRange(context.Context, *flotillapb.DeleteRangeRequest) (*flotillapb.DeleteRangeResponse, error)
	Scan(context.Context, *flotillapb.ScanRequest) (*flotillapb.ScanResponse, error)
	CompareAndSwap(context.Context, *flotillapb.CompareAndSwapRequest) (*flotillapb.CompareAndSwapResponse, error)
	Batch(context.Context, *flotillapb.BatchRequest) (*flotillapb.BatchResponse, error)
	Txn(context.Context, *flotillapb.TxnRequest) (*flotillapb.TxnResponse, error)
	Compact(context.Context, *flotillapb.CompactRequest) (*flotillapb.CompactResponse, error)
}

// RegisterKV registers the KV service on s, served by h.
func RegisterKV(s *grpc.Server, h KVHandler) {
	flotillapb.RegisterKVServer(s, kvService{h: h})
}

type kvService struct {
	flotillapb.UnimplementedKVServer
	h KVHandler
}

func (s kvService) Get(ctx context.Context, r *flotillapb.GetRequest) (*flotillapb.GetResponse, error) {
	resp, err := s.h.Get(ctx, r)
	return resp, StatusError(err)
}

func (s kvService) Put(ctx context.Context, r *flotillapb.PutRequest) (*flotillapb.PutResponse, error) {
	resp, err := s.h.Put(ctx, r)
	return resp, StatusError(err)
}

func (s kvService) Delete(ctx context.Context, r *flotillapb.DeleteRequest) (*flotillapb.DeleteResponse, error) {
	resp, err := s.h.Delete(ctx, r)
	return resp, StatusError(err)
}

func (s kvService) DeleteRange(ctx context.Context, r *flotillapb.DeleteRangeRequest) (*flotillapb.DeleteRangeResponse, error) {
	resp, err := s.h.DeleteRange(ctx, r)
	return resp, StatusError(err)
}

func (s kvService) Scan(ctx context.Context, r *flotillapb.ScanRequest) (*flotillapb.ScanResponse, error) {
	resp, err := s.h.Scan(ctx, r)
	return resp, StatusError(err)
}

func (s kvService) CompareAndSwap(ctx context.Context, r *flotillapb.CompareAndSwapRequest) (*flotillapb.CompareAndSwapResponse, error) {
	resp, err := s.h.CompareAndSwap(ctx, r)
	return resp, StatusError(err)
}

func (s kvService) Batch(ctx context.Context, r *flotillapb.BatchRequest) (*flotillapb.BatchResponse, error) {
	resp, err := s.h.Batch(ctx, r)
	return resp, StatusError(err)
}

func (s kvService) Txn(ctx context.Context, r *flotillapb.TxnRequest) (*flotillapb.TxnResponse, error) {
	resp, err := s.h.Txn(ctx, r)
	return resp, StatusError(err)
}

func (s kvService) Compact(ctx context.Context, r *flotillapb.CompactRequest) (*flotillapb.CompactResponse, error) {
	resp, err := s.h.Compact(ctx, r)
	return resp, StatusError(err)
}

// NodeHandler serves the Node service; package server implements it.
type NodeHandler interface {
	Init(context.Context, *flotillapb.InitRequest) (*flotillapb.InitResponse, error)
	Join(context.Context, *flotillapb.JoinRequest) (*flotillapb.JoinResponse, error)
	Status(context.Context, *flotillapb.StatusRequest) (*flotillapb.NodeStatus, error)
	ClusterStatus(context.Context, *flotillapb.ClusterStatusRequest) (*flotillapb.ClusterStatusResponse, error)
	CloseRange(context.Context, *flotillapb.CloseRangeRequest) (*flotillapb.CloseRangeResponse, error)
}

// RegisterNode registers the Node service on s, served by h.
func RegisterNode(s *grpc.Server, h NodeHandler) {
	flotillapb.RegisterNodeServer(s, nodeService{h: h})
}

type nodeService struct {
	flotillapb.UnimplementedNodeServer
	h NodeHandler
}

func (s nodeService) Init(ctx context.Context, r *flotillapb.InitRequest) (*flotillapb.InitResponse, error) {
	resp, err := s.h.Init(ctx, r)
	return resp, StatusError(err)
}

func (s nodeService) Join(ctx context.Context, r *flotillapb.JoinRequest) (*flotillapb.JoinResponse, error) {
	resp, err := s.h.Join(ctx, r)
	return resp, StatusError(err)
}

func (s nodeService) Status(ctx context.Context, r *flotillapb.StatusRequest) (*flotillapb.NodeStatus, error) {
	resp, err := s.h.Status(ctx, r)
	return resp, StatusError(err)
}

func (s nodeService) ClusterStatus(ctx context.Context, r *flotillapb.ClusterStatusRequest) (*flotillapb.ClusterStatusResponse, error) {
	resp, err := s.h.ClusterStatus(ctx, r)
	return resp, StatusError(err)
}

func (s nodeService) CloseRange(ctx context.Context, r *flotillapb.CloseRangeRequest) (*flotillapb.CloseRangeResponse, error) {
	resp, err := s.h.CloseRange(ctx, r)
	return resp, StatusError(err)
}

// EnsureReady waits, up to wait, for conn to have a working connection, and
// reports whether it has one. Callers check it before sending a write: a
// write that fails on a connection that was never ready was certainly not
// sent, so it was not applied; once it is sent, a connection failure leaves
// its outcome unknown.
func EnsureReady(ctx context.Context, conn *grpc.ClientConn, wait time.Duration) bool {
	state := conn.GetState()
	if state == connectivity.Ready {
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	conn.Connect()
	for {
		state = conn.GetState()
		switch state {
		case connectivity.Ready:
			return true
		case connectivity.TransientFailure, connectivity.Shutdown:
			return false
		}
		if !conn.WaitForStateChange(ctx, state) {
			return false
		}
	}
}

// PlacementHandler serves the Placement service; package server implements
// it over package placement.
type PlacementHandler interface {
	StoreHeartbeat(context.Context, *flotillapb.StoreHeartbeatRequest) (*flotillapb.StoreHeartbeatResponse, error)
	RangeHeartbeat(context.Context, *flotillapb.RangeHeartbeatRequest) (*flotillapb.RangeHeartbeatResponse, error)
	RangeHeartbeats(context.Context, *flotillapb.RangeHeartbeatsRequest) (*flotillapb.RangeHeartbeatsResponse, error)
	LookupRange(context.Context, *flotillapb.LookupRangeRequest) (*flotillapb.LookupRangeResponse, error)
	ListStores(context.Context, *flotillapb.ListStoresRequest) (*flotillapb.ListStoresResponse, error)
	ListRanges(context.Context, *flotillapb.ListRangesRequest) (*flotillapb.ListRangesResponse, error)
	ListOperators(context.Context, *flotillapb.ListOperatorsRequest) (*flotillapb.ListOperatorsResponse, error)
	TransferLeader(context.Context, *flotillapb.TransferLeaderRequest) (*flotillapb.OperatorResponse, error)
	AddReplica(context.Context, *flotillapb.AddReplicaRequest) (*flotillapb.OperatorResponse, error)
	RemoveReplica(context.Context, *flotillapb.RemoveReplicaRequest) (*flotillapb.OperatorResponse, error)
	SetStoreState(context.Context, *flotillapb.SetStoreStateRequest) (*flotillapb.SetStoreStateResponse, error)
	SplitRange(context.Context, *flotillapb.SplitRangeRequest) (*flotillapb.OperatorResponse, error)
	AllocateRevisions(context.Context, *flotillapb.AllocateRevisionsRequest) (*flotillapb.AllocateRevisionsResponse, error)
	GetRules(context.Context, *flotillapb.GetRulesRequest) (*flotillapb.RulesResponse, error)
	SetRules(context.Context, *flotillapb.SetRulesRequest) (*flotillapb.RulesResponse, error)
}

// RegisterPlacement registers the Placement service on s, served by h.
func RegisterPlacement(s *grpc.Server, h PlacementHandler) {
	flotillapb.RegisterPlacementServer(s, placementService{h: h})
}

type placementService struct {
	flotillapb.UnimplementedPlacementServer
	h PlacementHandler
}

func (s placementService) StoreHeartbeat(ctx context.Context, r *flotillapb.StoreHeartbeatRequest) (*flotillapb.StoreHeartbeatResponse, error) {
	resp, err := s.h.StoreHeartbeat(ctx, r)
	return resp, StatusError(err)
}

func (s placementService) RangeHeartbeat(ctx context.Context, r *flotillapb.RangeHeartbeatRequest) (*flotillapb.RangeHeartbeatResponse, error) {
	resp, err := s.h.RangeHeartbeat(ctx, r)
	return resp, StatusError(err)
}

func (s placementService) RangeHeartbeats(ctx context.Context, r *flotillapb.RangeHeartbeatsRequest) (*flotillapb.RangeHeartbeatsResponse, error) {
	resp, err := s.h.RangeHeartbeats(ctx, r)
	return resp, StatusError(err)
}

func (s placementService) LookupRange(ctx context.Context, r *flotillapb.LookupRangeRequest) (*flotillapb.LookupRangeResponse, error) {
	resp, err := s.h.LookupRange(ctx, r)
	return resp, StatusError(err)
}

func (s placementService) ListStores(ctx context.Context, r *flotillapb.ListStoresRequest) (*flotillapb.ListStoresResponse, error) {
	resp, err := s.h.ListStores(ctx, r)
	return resp, StatusError(err)
}

func (s placementService) ListRanges(ctx context.Context, r *flotillapb.ListRangesRequest) (*flotillapb.ListRangesResponse, error) {
	resp, err := s.h.ListRanges(ctx, r)
	return resp, StatusError(err)
}

func (s placementService) ListOperators(ctx context.Context, r *flotillapb.ListOperatorsRequest) (*flotillapb.ListOperatorsResponse, error) {
	resp, err := s.h.ListOperators(ctx, r)
	return resp, StatusError(err)
}

func (s placementService) TransferLeader(ctx context.Context, r *flotillapb.TransferLeaderRequest) (*flotillapb.OperatorResponse, error) {
	resp, err := s.h.TransferLeader(ctx, r)
	return resp, StatusError(err)
}

func (s placementService) AddReplica(ctx context.Context, r *flotillapb.AddReplicaRequest) (*flotillapb.OperatorResponse, error) {
	resp, err := s.h.AddReplica(ctx, r)
	return resp, StatusError(err)
}

func (s placementService) RemoveReplica(ctx context.Context, r *flotillapb.RemoveReplicaRequest) (*flotillapb.OperatorResponse, error) {
	resp, err := s.h.RemoveReplica(ctx, r)
	return resp, StatusError(err)
}

func (s placementService) SetStoreState(ctx context.Context, r *flotillapb.SetStoreStateRequest) (*flotillapb.SetStoreStateResponse, error) {
	resp, err := s.h.SetStoreState(ctx, r)
	return resp, StatusError(err)
}

func (s placementService) SplitRange(ctx context.Context, r *flotillapb.SplitRangeRequest) (*flotillapb.OperatorResponse, error) {
	resp, err := s.h.SplitRange(ctx, r)
	return resp, StatusError(err)
}

func (s placementService) GetRules(ctx context.Context, r *flotillapb.GetRulesRequest) (*flotillapb.RulesResponse, error) {
	resp, err := s.h.GetRules(ctx, r)
	return resp, StatusError(err)
}

func (s placementService) SetRules(ctx context.Context, r *flotillapb.SetRulesRequest) (*flotillapb.RulesResponse, error) {
	resp, err := s.h.SetRules(ctx, r)
	return resp, StatusError(err)
}

func (s placementService) AllocateRevisions(ctx context.Context, r *flotillapb.AllocateRevisionsRequest) (*flotillapb.AllocateRevisionsResponse, error) {
	resp, err := s.h.AllocateRevisions(ctx, r)
	return resp, StatusError(err)
}
