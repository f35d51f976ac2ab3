// Copyright 2026 The Flotilla Authors. All rights reserved.

package flotilla

import (
	"context"

	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func (s *placementService) ListOperators(ctx context.Context, req *flotillapb.ListOperatorsRequest) (*flotillapb.ListOperatorsResponse, error) {
	return nil, status.Error(codes.Unimplemented, "not yet")
}

func (s *placementService) TransferLeader(ctx context.Context, req *flotillapb.TransferLeaderRequest) (*flotillapb.OperatorResponse, error) {
	return nil, status.Error(codes.Unimplemented, "not yet")
}

func (s *placementService) AddReplica(ctx context.Context, req *flotillapb.AddReplicaRequest) (*flotillapb.OperatorResponse, error) {
	return nil, status.Error(codes.Unimplemented, "not yet")
}

func (s *placementService) RemoveReplica(ctx context.Context, req *flotillapb.RemoveReplicaRequest) (*flotillapb.OperatorResponse, error) {
	return nil, status.Error(codes.Unimplemented, "not yet")
}

func (s *placementService) SetStoreState(ctx context.Context, req *flotillapb.SetStoreStateRequest) (*flotillapb.SetStoreStateResponse, error) {
	return nil, status.Error(codes.Unimplemented, "not yet")
}
