// Copyright 2026 The Flotilla Authors. All rights reserved.

package flotilla

import (
	"context"
	"fmt"
	"syscall"
	"time"

	"github.com/flotilladb/flotilla/multiraft"
	"github.com/flotilladb/flotilla/placement"
	"github.com/flotilladb/flotilla/rpc"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// placementService serves the Placement gRPC service: the placement
// group's leader answers from its state and its Driver (what heartbeats
// reported); any other node forwards the request there once.
type placementService Node

var _ rpc.PlacementHandler = (*placementService)(nil)

func (s *placementService) node() *Node { return (*Node)(s) }

// placementRequest runs local on the placement group's leader, or
// forwards the request (marked forwarded) to the node that leads it. It
// holds the node's gate (Node.enter) while it runs.
func placementRequest[Req proto.Message, Resp any](ctx context.Context, n *Node, req Req, forwarded bool,
	markForwarded func(Req),
	remote func(flotillapb.PlacementClient, context.Context, Req, ...grpc.CallOption) (Resp, error),
	local func(*multiraft.Host, *placement.Meta) (Resp, error),
) (Resp, error) {
	var zero Resp
	if !n.enter() {
		return zero, n.notRunningError()
	}
	defer n.exit()
	return placementRequestEntered(ctx, n, req, forwarded, markForwarded, remote, local)
}

// placementRequestEntered is placementRequest for a caller that holds the
// node's gate already. It must not take it again: a read lock taken twice
// deadlocks with a Close waiting for the write lock in between.
func placementRequestEntered[Req proto.Message, Resp any](ctx context.Context, n *Node, req Req, forwarded bool,
	markForwarded func(Req),
	remote func(flotillapb.PlacementClient, context.Context, Req, ...grpc.CallOption) (Resp, error),
	local func(*multiraft.Host, *placement.Meta) (Resp, error),
) (Resp, error) {
	var zero Resp
	host, meta, ok := n.running()
	if !ok {
		return zero, rpc.ErrNotInitialized
	}
	var targets []multiraft.NodeID
	if st, has := host.Status(placement.GroupID); has && meta != nil {
		if st.Leader == st.Replica {
			n.syncDriver(st.Term)
			return local(host, meta)
		}
		if st.Leader != 0 {
			targets = []multiraft.NodeID{st.Leader.Node()}
		}
	} else {
		targets = n.otherNodes()
	}
	if forwarded || len(targets) == 0 {
		return zero, unavailable("this node does not lead the placement group and cannot tell which does")
	}
	fwd := proto.Clone(req).(Req)
	markForwarded(fwd)
	return forwardToNodes(ctx, n, targets, func(ctx context.Context, conn *grpc.ClientConn) (Resp, error) {
		return remote(flotillapb.NewPlacementClient(conn), ctx, fwd)
	})
}

// syncDriver resets the driver's observations when this node starts a new
// term as the placement group's leader.
func (n *Node) syncDriver(term uint64) {
	if n.driverTerm.Swap(term) != term {
		n.driver.Reset()
	}
}

func (s *placementService) StoreHeartbeat(ctx context.Context, req *flotillapb.StoreHeartbeatRequest) (*flotillapb.StoreHeartbeatResponse, error) {
	return placementRequest(ctx, s.node(), req, req.GetForwarded(),
		func(r *flotillapb.StoreHeartbeatRequest) { r.Forwarded = true },
		flotillapb.PlacementClient.StoreHeartbeat,
		func(*multiraft.Host, *placement.Meta) (*flotillapb.StoreHeartbeatResponse, error) {
			if req.GetNodeId() == 0 {
				return nil, invalidArgument("node_id", "a store heartbeat needs the store's node ID")
			}
			s.node().driver.ObserveStore(req)
			return &flotillapb.StoreHeartbeatResponse{}, nil
		})
}

func (s *placementService) RangeHeartbeat(ctx context.Context, req *flotillapb.RangeHeartbeatRequest) (*flotillapb.RangeHeartbeatResponse, error) {
	n := s.node()
	return placementRequest(ctx, n, req, req.GetForwarded(),
		func(r *flotillapb.RangeHeartbeatRequest) { r.Forwarded = true },
		flotillapb.PlacementClient.RangeHeartbeat,
		func(host *multiraft.Host, meta *placement.Meta) (*flotillapb.RangeHeartbeatResponse, error) {
			desc := req.GetDescriptor_()
			if desc.GetRangeId() == 0 || desc.GetEpoch() == nil {
				return nil, invalidArgument("descriptor", "a range heartbeat needs a descriptor with a range ID and an epoch")
			}
			n.driver.ObserveRange(req)
			if known := knownDescriptor(meta.State(), desc.GetRangeId()); known == nil || placement.NewerEpoch(desc.GetEpoch(), known.GetEpoch()) {
				// The driver's copy is stale: record the newer one.
				data, err := proto.Marshal(&flotillapb.MetaCommand{Command: &flotillapb.MetaCommand_UpdateRange{
					UpdateRange: &flotillapb.UpdateRange{Descriptor_: desc}}})
				if err != nil {
					return nil, err
				}
				if res, err := host.ProposeAndWait(ctx, placement.GroupID, data); err != nil || res.Err != nil {
					n.log.Debug("recording a range descriptor", "range", desc.GetRangeId(), "err", err, "result", res.Err)
				}
			}
			return &flotillapb.RangeHeartbeatResponse{}, nil
		})
}

func knownDescriptor(st *flotillapb.ClusterMeta, rangeID uint64) *flotillapb.RangeDescriptor {
	for _, d := range st.GetRanges() {
		if d.GetRangeId() == rangeID {
			return d
		}
	}
	return nil
}

func (s *placementService) LookupRange(ctx context.Context, req *flotillapb.LookupRangeRequest) (*flotillapb.LookupRangeResponse, error) {
	n := s.node()
	if !n.enter() {
		return nil, n.notRunningError()
	}
	defer n.exit()
	return n.lookupRange(ctx, req)
}

// lookupRange is LookupRange without taking the node's gate: for the
// gateway's router, which resolves keys on behalf of KV requests that hold
// it.
func (n *Node) lookupRange(ctx context.Context, req *flotillapb.LookupRangeRequest) (*flotillapb.LookupRangeResponse, error) {
	return placementRequestEntered(ctx, n, req, req.GetForwarded(),
		func(r *flotillapb.LookupRangeRequest) { r.Forwarded = true },
		flotillapb.PlacementClient.LookupRange,
		func(_ *multiraft.Host, meta *placement.Meta) (*flotillapb.LookupRangeResponse, error) {
			rs, ok := n.driver.Lookup(meta.State(), req.GetKey())
			if !ok {
				return nil, &flotillapb.Error{
					Message: fmt.Sprintf("no range holds key %q", req.GetKey()),
					Detail:  &flotillapb.Error_RangeNotFound{RangeNotFound: &flotillapb.RangeNotFound{}},
				}
			}
			return &flotillapb.LookupRangeResponse{Descriptor_: rs.GetDescriptor_(), Leader: rs.GetLeader(),
				Nodes: publicNodes(meta.State().GetNodes())}, nil
		})
}

// publicNodes returns copies of nodes without their join tokens.
func publicNodes(nodes []*flotillapb.NodeDescriptor) []*flotillapb.NodeDescriptor {
	out := make([]*flotillapb.NodeDescriptor, len(nodes))
	for i, d := range nodes {
		c := proto.Clone(d).(*flotillapb.NodeDescriptor)
		c.JoinToken = ""
		out[i] = c
	}
	return out
}

func (s *placementService) ListStores(ctx context.Context, req *flotillapb.ListStoresRequest) (*flotillapb.ListStoresResponse, error) {
	n := s.node()
	return placementRequest(ctx, n, req, req.GetForwarded(),
		func(r *flotillapb.ListStoresRequest) { r.Forwarded = true },
		flotillapb.PlacementClient.ListStores,
		func(_ *multiraft.Host, meta *placement.Meta) (*flotillapb.ListStoresResponse, error) {
			return &flotillapb.ListStoresResponse{Stores: n.driver.Stores(meta.State())}, nil
		})
}

func (s *placementService) ListRanges(ctx context.Context, req *flotillapb.ListRangesRequest) (*flotillapb.ListRangesResponse, error) {
	n := s.node()
	return placementRequest(ctx, n, req, req.GetForwarded(),
		func(r *flotillapb.ListRangesRequest) { r.Forwarded = true },
		flotillapb.PlacementClient.ListRanges,
		func(_ *multiraft.Host, meta *placement.Meta) (*flotillapb.ListRangesResponse, error) {
			return &flotillapb.ListRangesResponse{Ranges: n.driver.Ranges(meta.State())}, nil
		})
}

// heartbeatLoop reports this store, and every range it leads, to the
// placement driver every HeartbeatInterval.
func (n *Node) heartbeatLoop() {
	defer n.wg.Done()
	t := time.NewTicker(n.cfg.HeartbeatInterval)
	defer t.Stop()
	for {
		select {
		case <-n.stopCtx.Done():
			return
		case <-t.C:
		}
		if _, _, ok := n.running(); ok {
			n.sendHeartbeats()
		}
	}
}

func (n *Node) sendHeartbeats() {
	host, _, ok := n.running()
	if !ok {
		return
	}
	ctx, cancel := context.WithTimeout(n.stopCtx, n.cfg.HeartbeatInterval)
	defer cancel()
	ps := (*placementService)(n)
	stats := &flotillapb.StoreStats{}
	var fs syscall.Statfs_t
	if syscall.Statfs(n.cfg.Dir, &fs) == nil {
		stats.CapacityBytes = fs.Blocks * uint64(fs.Bsize)
		stats.AvailableBytes = fs.Bavail * uint64(fs.Bsize)
	}
	var ranges []*flotillapb.RangeHeartbeatRequest
	for _, g := range host.Groups() {
		gs, ok := host.Status(g)
		if !ok {
			continue
		}
		if g == placement.GroupID {
			continue // not a key range
		}
		stats.RangeCount++
		if gs.Leader != gs.Replica || gs.Replica == 0 {
			continue
		}
		stats.LeaderCount++
		r, ok := n.store.Replica(g)
		if !ok || r.Descriptor() == nil {
			continue
		}
		rs := r.Stats()
		stats.ReadsPerSecond += rs.ReadsPerSecond
		stats.WritesPerSecond += rs.WritesPerSecond
		hb := &flotillapb.RangeHeartbeatRequest{
			Descriptor_: r.Descriptor(), LeaderReplicaId: uint64(gs.Replica), Term: gs.Term,
			Stats:          &flotillapb.RangeStats{Keys: rs.Keys, KeyBytes: rs.KeyBytes, ValueBytes: rs.ValueBytes},
			ReadsPerSecond: rs.ReadsPerSecond, WritesPerSecond: rs.WritesPerSecond,
		}
		for _, l := range gs.Learners {
			if match := gs.LearnerMatch[l]; match+learnerCatchUpLag < gs.Commit {
				hb.PendingReplicas = append(hb.PendingReplicas, uint64(l))
			}
		}
		ranges = append(ranges, hb)
	}
	if _, err := ps.StoreHeartbeat(ctx, &flotillapb.StoreHeartbeatRequest{NodeId: n.NodeID(), Stats: stats}); err != nil {
		n.log.Debug("store heartbeat", "err", err)
	}
	for _, hb := range ranges {
		if _, err := ps.RangeHeartbeat(ctx, hb); err != nil {
			n.log.Debug("range heartbeat", "range", hb.GetDescriptor_().GetRangeId(), "err", err)
		}
	}
}
