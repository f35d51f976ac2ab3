// Copyright 2026 The Flotilla Authors. All rights reserved.

package server

import (
	"cmp"
	"context"
	"fmt"
	"slices"

	"github.com/flotilladb/flotilla/multiraft"
	"github.com/flotilladb/flotilla/placement"
	"github.com/flotilladb/flotilla/rpc"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
)

// placementService serves the Placement gRPC service: the placement
// group's leader answers from its state and its Driver (what heartbeats
// reported); any other node forwards the request there once. Like
// nodeService it is the Node under another method set, with no state of
// its own. The node's own loops call it in-process too (heartbeats,
// ListRanges for collectRemovedReplicas), and its router's lookups go
// through lookupRange.
//
// Why the leader: the Driver is not replicated; only the node that leads
// the placement group observes the heartbeats and schedules, and only its
// proposals to the group's state (descriptors, allocations, store states)
// succeed, so every request must reach it. A forwarded request is served
// or refused, never forwarded again, so a request takes at most one extra
// hop and nodes that disagree about the leader cannot bounce it.
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
		} else {
			// No leader known here: this replica may be cut off, or a
			// leftover removed while its node was down. Ask the others.
			targets = n.otherNodes()
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
// term as the placement group's leader: what it saw in an earlier term is
// stale (another node led meanwhile, and its operators moved replicas),
// and the replica IDs and range IDs left in its blocks may have been used
// since. Every caller passes the term it saw this node lead in; driverTerm
// only grows (compare-and-swap), so the driver is reset once per term,
// by whichever caller sees the term first, and a late caller with an
// older term resets nothing.
func (n *Node) syncDriver(term uint64) {
	for {
		cur := n.driverTerm.Load()
		if term <= cur {
			return // this term, or a late caller with an older one
		}
		if n.driverTerm.CompareAndSwap(cur, term) {
			n.driver.Reset()
			return
		}
	}
}

// StoreHeartbeat records a store's report: its liveness and statistics, in
// the driver's memory only (a new leader waits a liveness window to hear
// from every store again).
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

// RangeHeartbeat records a range leader's report and answers with the
// range's next operator step, if any. A descriptor newer than the one the
// placement group holds is recorded in the group first (UpdateRange), and
// the heartbeat fails if that fails: the driver hands out no step against
// a descriptor its replicated state does not hold, so a new driver leader,
// which starts with no heartbeats, still knows every range a step was
// computed for (the halves of a split included). IDs are topped up before
// scheduling (ensureIDs), so that an operator needing a new replica or
// range ID can start at this heartbeat rather than the next.
func (s *placementService) RangeHeartbeat(ctx context.Context, req *flotillapb.RangeHeartbeatRequest) (*flotillapb.RangeHeartbeatResponse, error) {
	n := s.node()
	return placementRequest(ctx, n, req, req.GetForwarded(),
		func(r *flotillapb.RangeHeartbeatRequest) { r.Forwarded = true },
		flotillapb.PlacementClient.RangeHeartbeat,
		func(host *multiraft.Host, meta *placement.Meta) (*flotillapb.RangeHeartbeatResponse, error) {
			if err := n.observeRangeReport(ctx, host, meta, req); err != nil {
				return nil, err
			}
			n.ensureIDs(ctx, host)
			return &flotillapb.RangeHeartbeatResponse{Step: n.driver.Schedule(meta.State(), multiraft.GroupID(req.GetDescriptor_().GetRangeId()))}, nil
		})
}

// maxRangeReports bounds the reports of one RangeHeartbeats request; a
// node sends more in several.
const maxRangeReports = 4096

// RangeHeartbeats takes a node's due range reports in one request and
// answers with the steps of the reported ranges and of the other ranges
// the node leads that have a running operator, or, with all, of every one
// (placement.Driver.ScheduleLedBy).
func (s *placementService) RangeHeartbeats(ctx context.Context, req *flotillapb.RangeHeartbeatsRequest) (*flotillapb.RangeHeartbeatsResponse, error) {
	n := s.node()
	return placementRequest(ctx, n, req, req.GetForwarded(),
		func(r *flotillapb.RangeHeartbeatsRequest) { r.Forwarded = true },
		flotillapb.PlacementClient.RangeHeartbeats,
		func(host *multiraft.Host, meta *placement.Meta) (*flotillapb.RangeHeartbeatsResponse, error) {
			if len(req.GetRanges()) > maxRangeReports {
				return nil, invalidArgument("ranges", fmt.Sprintf("%d range reports, more than %d", len(req.GetRanges()), maxRangeReports))
			}
			node := multiraft.NodeID(req.GetNodeId())
			if node == 0 {
				return nil, invalidArgument("node_id", "a node ID is required")
			}
			reported := make(map[multiraft.GroupID]bool, len(req.GetRanges()))
			for _, hb := range req.GetRanges() {
				if err := n.observeRangeReport(ctx, host, meta, hb); err != nil {
					// The node sends the batch again.
					return nil, err
				}
				reported[multiraft.GroupID(hb.GetDescriptor_().GetRangeId())] = true
			}
			n.ensureIDs(ctx, host)
			resp := &flotillapb.RangeHeartbeatsResponse{DriverTerm: n.driverTerm.Load()}
			st := meta.State()
			for _, hb := range req.GetRanges() {
				id := multiraft.GroupID(hb.GetDescriptor_().GetRangeId())
				if step := n.driver.Schedule(st, id); step != nil {
					resp.Steps = append(resp.Steps, &flotillapb.RangeStep{RangeId: uint64(id), Step: step})
				}
			}
			for id, step := range n.driver.ScheduleLedBy(st, node, reported, req.GetAll()) {
				resp.Steps = append(resp.Steps, &flotillapb.RangeStep{RangeId: uint64(id), Step: step})
			}
			return resp, nil
		})
}

// observeRangeReport gives the driver a range's report and, if its
// descriptor is newer than the placement state's, records it there first
// (the driver must not hand out steps against a descriptor its replicated
// state does not hold).
func (n *Node) observeRangeReport(ctx context.Context, host *multiraft.Host, meta *placement.Meta, req *flotillapb.RangeHeartbeatRequest) error {
	desc := req.GetDescriptor_()
	if desc.GetRangeId() == 0 || desc.GetEpoch() == nil {
		return invalidArgument("descriptor", "a range heartbeat needs a descriptor with a range ID and an epoch")
	}
	n.driver.ObserveRange(req)
	id := multiraft.GroupID(desc.GetRangeId())
	if known := knownDescriptor(meta.State(), desc.GetRangeId()); id != placement.GroupID &&
		(known == nil || desc.GetEpoch().Newer(known.GetEpoch())) {
		data, err := proto.Marshal(&flotillapb.MetaCommand{Command: &flotillapb.MetaCommand_UpdateRange{
			UpdateRange: &flotillapb.UpdateRange{Descriptor_: desc}}})
		if err != nil {
			return err
		}
		res, err := host.ProposeAndWait(ctx, placement.GroupID, data)
		if err == nil {
			err = res.Err
		}
		if err != nil {
			return unavailable("recording range " + fmt.Sprint(desc.GetRangeId()) + "'s descriptor: " + err.Error())
		}
	}
	return nil
}

// knownDescriptor returns range rangeID's descriptor in the placement
// state (whose ranges are sorted by ID), or nil.
func knownDescriptor(st *flotillapb.ClusterMeta, rangeID uint64) *flotillapb.RangeDescriptor {
	ranges := st.GetRanges()
	i, found := slices.BinarySearchFunc(ranges, rangeID, func(d *flotillapb.RangeDescriptor, id uint64) int {
		return cmp.Compare(d.GetRangeId(), id)
	})
	if !found {
		return nil
	}
	return ranges[i]
}

// LookupRange answers a router's cache miss: the range holding a key (or,
// with before, the keys just below it), its last reported leader, and the
// nodes' addresses so that the router can reach it.
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
			rs, ok := n.driver.Lookup(meta.State(), req.GetKey(), req.GetBefore())
			if !ok {
				return nil, &flotillapb.Error{
					Message: fmt.Sprintf("no range holds key %q (before: %v)", req.GetKey(), req.GetBefore()),
					Detail:  &flotillapb.Error_RangeNotFound{RangeNotFound: &flotillapb.RangeNotFound{}},
				}
			}
			return &flotillapb.LookupRangeResponse{Descriptor_: rs.GetDescriptor_(), Leader: rs.GetLeader(),
				Nodes: withoutTokens(meta.State().GetNodes())}, nil
		})
}

func (s *placementService) ListStores(ctx context.Context, req *flotillapb.ListStoresRequest) (*flotillapb.ListStoresResponse, error) {
	n := s.node()
	return placementRequest(ctx, n, req, req.GetForwarded(),
		func(r *flotillapb.ListStoresRequest) { r.Forwarded = true },
		flotillapb.PlacementClient.ListStores,
		func(_ *multiraft.Host, meta *placement.Meta) (*flotillapb.ListStoresResponse, error) {
			st := meta.State()
			stores := n.driver.Stores(st)
			for _, s := range stores {
				s.PlacementRole = placementRole(st.GetPlacementGroup(), s.GetNode().GetNodeId(), n.NodeID())
			}
			return &flotillapb.ListStoresResponse{Stores: stores}, nil
		})
}

func (s *placementService) ListRanges(ctx context.Context, req *flotillapb.ListRangesRequest) (*flotillapb.ListRangesResponse, error) {
	n := s.node()
	return placementRequest(ctx, n, req, req.GetForwarded(),
		func(r *flotillapb.ListRangesRequest) { r.Forwarded = true },
		flotillapb.PlacementClient.ListRanges,
		func(_ *multiraft.Host, meta *placement.Meta) (*flotillapb.ListRangesResponse, error) {
			return &flotillapb.ListRangesResponse{Ranges: n.driver.Ranges(meta.State()), PlacementGroup: meta.State().GetPlacementGroup()}, nil
		})
}

// placementRole is store's part in the placement group whose descriptor is
// pg, as ListStores reports it, when node leader leads the group.
func placementRole(pg *flotillapb.RangeDescriptor, store, leader uint64) string {
	if store == leader {
		return "leader"
	}
	for _, r := range pg.GetReplicas() {
		if r.GetStoreId() != store {
			continue
		}
		if r.GetType() == flotillapb.ReplicaType_VOTER {
			return "voter"
		}
		return "learner"
	}
	return ""
}
