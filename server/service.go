// Copyright 2026 The Flotilla Authors. All rights reserved.

package server

import (
	"cmp"
	"context"
	"encoding/hex"
	"fmt"
	"slices"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/status"

	"github.com/flotilladb/flotilla/multiraft"
	"github.com/flotilladb/flotilla/placement"
	"github.com/flotilladb/flotilla/rpc"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"google.golang.org/protobuf/proto"
)

// nodeService serves the Node gRPC service. It is the Node itself under
// another method set (a conversion, no state of its own), so that the
// service's methods (Init, Join, Status) do not clash with Node's own.
//
// Its handlers run on gRPC's goroutines, which Close drains before it
// stops the host (WaitForHandlers), so those that touch only the host and
// in-memory state take no gate; Status, which reads the store, does.
type nodeService Node

var _ rpc.NodeHandler = (*nodeService)(nil)

func (s *nodeService) node() *Node { return (*Node)(s) }

// Init is Node.Init for `flotilla init`. It is serialized with joins and
// Close by memberMu (initChecked).
func (s *nodeService) Init(ctx context.Context, req *flotillapb.InitRequest) (*flotillapb.InitResponse, error) {
	ident, err := s.node().initChecked(ctx, req.GetSplitKeys())
	if err != nil {
		return nil, err
	}
	return &flotillapb.InitResponse{ClusterId: ident.GetClusterId(), NodeId: ident.GetNodeId()}, nil
}

// checkPeersUninitialized refuses to create a cluster unless every node this
// one was told to join answers and belongs to no cluster: a waiting node
// must not found a second cluster instead of joining the first. (A node
// started without --join has nobody to ask.) Each peer gets 3 s, enough for
// a connection still in its reconnection backoff to be retried once; the
// caller holds memberMu throughout, so a Close waits for it.
func (n *Node) checkPeersUninitialized(ctx context.Context) error {
	for _, addr := range n.cfg.Join {
		if addr == n.addr {
			continue
		}
		conn, err := n.pool.Conn(addr)
		if err != nil {
			return fmt.Errorf("%w: --join peer %s: %v", rpc.ErrPeerUnreachable, addr, err)
		}
		// WaitForReady: a connection still backing off from an earlier
		// failure (the peer started after this node) must be retried.
		cctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		st, err := flotillapb.NewNodeClient(conn).Status(cctx, &flotillapb.StatusRequest{}, grpc.WaitForReady(true))
		cancel()
		if err != nil {
			return fmt.Errorf("%w: --join peer %s did not answer (%v); start it, or start this node without it in --join, before init", rpc.ErrPeerUnreachable, addr, status.Convert(err).Message())
		}
		if st.GetClusterId() != "" {
			return fmt.Errorf("%w: %s is a node of cluster %s; this node joins it", rpc.ErrAlreadyInitialized, addr, st.GetClusterId())
		}
		if st.GetState() == stateInitializing {
			return fmt.Errorf("%w: %s is being initialized at the same time; init one node only", rpc.ErrPeerUnreachable, addr)
		}
	}
	return nil
}

// Join admits a node: the placement group's leader allocates its ID. A
// member that does not lead the group forwards the request to the node that
// does (or, holding no replica of it, to the other nodes it knows). A
// forwarded request is never forwarded again, so a join takes at most one
// extra hop and cannot loop between nodes that disagree about the leader.
// AddNode is idempotent per join token: a retried join, or a member that
// announces a new address or labels (maintainMembership), gets the same
// node ID.
//
// It runs from gRPC and from the maintenance loop, both of which Close
// waits for; it takes no gate, since once the host stops its proposal
// fails at once.
func (s *nodeService) Join(ctx context.Context, req *flotillapb.JoinRequest) (*flotillapb.JoinResponse, error) {
	n := s.node()
	host, meta, ok := n.running()
	if !ok {
		return nil, rpc.ErrNotInitialized
	}
	if req.GetAddress() == "" {
		return nil, invalidArgument("address", "a joining node must give its address")
	}
	if p := flotillapb.CheckLabels(req.GetLabels()); p != "" {
		return nil, invalidArgument("labels", p)
	}
	if st, ok := host.Status(placement.GroupID); ok && meta != nil {
		if st.Leader == st.Replica {
			data, err := proto.Marshal(&flotillapb.MetaCommand{Command: &flotillapb.MetaCommand_AddNode{AddNode: &flotillapb.AddNode{
				Address: req.GetAddress(), HttpAddress: req.GetHttpAddress(), JoinToken: req.GetJoinToken(),
				Labels: req.GetLabels(),
			}}})
			if err != nil {
				return nil, err
			}
			res, err := host.ProposeAndWait(ctx, placement.GroupID, data)
			if err == nil {
				err = res.Err
			}
			if err != nil {
				return nil, unavailable(fmt.Sprintf("admitting the node: %v", err))
			}
			id, err := placement.DecodeNodeID(res.Value)
			if err != nil {
				return nil, err
			}
			cm := meta.State()
			n.log.Info("node joined", "node", id, "addr", req.GetAddress())
			return &flotillapb.JoinResponse{ClusterId: cm.GetClusterId(), NodeId: uint64(id), Nodes: withoutTokens(cm.GetNodes())}, nil
		}
		if req.GetForwarded() {
			return nil, unavailable("this node does not lead the placement group")
		}
		if st.Leader == 0 {
			return nil, unavailable("the placement group has no leader yet")
		}
		return s.forwardJoin(ctx, req, []multiraft.NodeID{st.Leader.Node()})
	}
	if req.GetForwarded() {
		return nil, unavailable("this node holds no replica of the placement group")
	}
	return s.forwardJoin(ctx, req, n.otherNodes())
}

func (s *nodeService) forwardJoin(ctx context.Context, req *flotillapb.JoinRequest, targets []multiraft.NodeID) (*flotillapb.JoinResponse, error) {
	fwd := proto.Clone(req).(*flotillapb.JoinRequest)
	fwd.Forwarded = true
	return forwardToNodes(ctx, s.node(), targets, func(ctx context.Context, conn *grpc.ClientConn) (*flotillapb.JoinResponse, error) {
		return flotillapb.NewNodeClient(conn).Join(ctx, fwd)
	})
}

// forwardToNodes sends a request, already marked forwarded, to the first
// of targets that serves it: a target that cannot (not the leader,
// unreachable) passes it on to the next; any other answer, success or
// failure, is the result. The call ends when the node stops: Close waits
// for the handler that forwards, and must not wait out the peer's answer.
// Only an Unavailable error moves on to the next target. A connection that
// broke mid-call is Unavailable too, so a request may run on two targets
// if both led the placement group in turn: joins are idempotent per join
// token, and a placement request is an observation, a read, idempotent
// (SetStoreState), or starts an operator that replaces the range's running
// one.
func forwardToNodes[Resp any](ctx context.Context, n *Node, targets []multiraft.NodeID,
	call func(context.Context, *grpc.ClientConn) (Resp, error)) (Resp, error) {
	var zero Resp
	var lastErr error = unavailable("no node to forward the request to")
	for _, t := range targets {
		addr, ok := n.transport.Address(t)
		if !ok {
			continue
		}
		conn, err := n.pool.Conn(addr)
		if err != nil {
			continue
		}
		fctx, cancel := context.WithCancel(ctx)
		stop := context.AfterFunc(n.stopCtx, cancel)
		resp, err := call(fctx, conn)
		stop()
		cancel()
		if err == nil {
			return resp, nil
		}
		fe := rpc.ErrorFromStatus(err, false)
		if fe.GetUnavailable() == nil {
			return zero, fe
		}
		fe.Message = fmt.Sprintf("forwarding to node %d: %s", t, fe.GetMessage())
		lastErr = fe
	}
	return zero, lastErr
}

// otherNodes returns the IDs of the known nodes other than this one.
func (n *Node) otherNodes() []multiraft.NodeID {
	self := n.NodeID()
	var out []multiraft.NodeID
	for _, d := range n.directory() {
		if d.GetNodeId() != self {
			out = append(out, multiraft.NodeID(d.GetNodeId()))
		}
	}
	return out
}

// stateInitializing is the state Status reports while an Init asks the
// --join peers whether a cluster exists.
const stateInitializing = "initializing"

// withoutTokens returns copies of nodes without their join tokens, which
// only the placement group needs (a token lets its holder change the node's
// addresses).
func withoutTokens(nodes []*flotillapb.NodeDescriptor) []*flotillapb.NodeDescriptor {
	out := make([]*flotillapb.NodeDescriptor, len(nodes))
	for i, d := range nodes {
		c := proto.Clone(d).(*flotillapb.NodeDescriptor)
		c.JoinToken = ""
		out[i] = c
	}
	return out
}

func (s *nodeService) Status(ctx context.Context, req *flotillapb.StatusRequest) (*flotillapb.NodeStatus, error) {
	n := s.node()
	if !n.enter() {
		return nil, n.notRunningError()
	}
	defer n.exit()
	return n.Status(req.GetWithHash()), nil
}

// Status reports the node and its replicas (with each range's data hash if
// withHash: it reads all their data). It takes mu only to copy the node's
// fields, then asks the host and the store without it. The caller holds
// the gate (or is a gRPC handler, which Close drains first) when withHash
// reads the store.
func (n *Node) Status(withHash bool) *flotillapb.NodeStatus {
	n.mu.Lock()
	st := &flotillapb.NodeStatus{
		NodeId:           n.mu.ident.GetNodeId(),
		ClusterId:        n.mu.ident.GetClusterId(),
		Address:          n.addr,
		HttpAddress:      n.httpAddr,
		Version:          Version,
		State:            n.mu.state.String(),
		StartedUnixNanos: n.started.UnixNano(),
	}
	if n.mu.initializing && n.mu.state == stateWaiting {
		st.State = stateInitializing
	}
	host := n.mu.host
	n.mu.Unlock()
	st.Nodes = withoutTokens(n.directory())
	st.Alarms, st.Disk = n.Alarms(), n.diskStatus()
	if host == nil || st.State != stateRunning.String() {
		return st
	}
	st.Placement = n.placementView.Load()
	groups := host.Groups()
	for _, g := range groups {
		gs, ok := host.Status(g)
		if !ok {
			continue
		}
		rs := &flotillapb.ReplicaStatus{
			GroupId:         uint64(g),
			Kind:            "range",
			ReplicaId:       uint64(gs.Replica),
			LeaderReplicaId: uint64(gs.Leader),
			RaftState:       gs.State.String(),
			Term:            gs.Term,
			CommitIndex:     gs.Commit,
			AppliedIndex:    gs.Applied,
		}
		if g == placement.GroupID {
			rs.Kind = "placement"
			if _, meta, ok := n.running(); ok && meta != nil {
				rs.Descriptor_ = meta.State().GetPlacementGroup()
			}
		} else if r, ok := n.store.Replica(g); ok {
			rs.Descriptor_ = r.Descriptor()
			stats := r.Stats()
			rs.Stats = &flotillapb.RangeStats{Keys: stats.Keys, KeyBytes: stats.KeyBytes, ValueBytes: stats.ValueBytes}
			rs.ReadsPerSecond = stats.ReadsPerSecond
			rs.WritesPerSecond = stats.WritesPerSecond
			if withHash && rs.Descriptor_ != nil {
				if idx, sum, err := r.Hash(); err == nil {
					rs.DataHash = hex.EncodeToString(sum[:])
					rs.HashAppliedIndex = idx
				}
			}
		}
		st.Replicas = append(st.Replicas, rs)
	}
	slices.SortFunc(st.Replicas, func(a, b *flotillapb.ReplicaStatus) int { return cmp.Compare(a.GetGroupId(), b.GetGroupId()) })
	return st
}

// ClusterStatus asks every known node for its status, at once: one
// goroutine per node, each bounded by 2 s so that a dead node costs the
// answer 2 s, not the caller's deadline. The handler owns those goroutines
// and waits for all of them before it returns; each writes only its own
// entry of the response.
func (s *nodeService) ClusterStatus(ctx context.Context, _ *flotillapb.ClusterStatusRequest) (*flotillapb.ClusterStatusResponse, error) {
	n := s.node()
	if _, _, ok := n.running(); !ok {
		return nil, rpc.ErrNotInitialized
	}
	nodes := withoutTokens(n.directory())
	resp := &flotillapb.ClusterStatusResponse{ClusterId: n.ClusterID(), Nodes: make([]*flotillapb.NodeEntry, len(nodes))}
	var wg sync.WaitGroup
	for i, d := range nodes {
		e := &flotillapb.NodeEntry{Node: d}
		resp.Nodes[i] = e
		if d.GetNodeId() == n.NodeID() {
			e.Live, e.Status = true, n.Status(false)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			conn, err := n.pool.Conn(d.GetAddress())
			if err != nil {
				e.Error = err.Error()
				return
			}
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			st, err := flotillapb.NewNodeClient(conn).Status(cctx, &flotillapb.StatusRequest{})
			if err != nil {
				e.Error = err.Error()
				return
			}
			e.Live, e.Status = true, st
		}()
	}
	wg.Wait()
	return resp, nil
}

// CloseRange closes a range at a revision on this node, which must lead
// it (shard.Store.EnsureClosed): a follower or observer on another node
// asks before it serves a read at that revision (follower reads).
func (s *nodeService) CloseRange(ctx context.Context, req *flotillapb.CloseRangeRequest) (*flotillapb.CloseRangeResponse, error) {
	n := s.node()
	if _, _, ok := n.running(); !ok {
		return nil, rpc.ErrNotInitialized
	}
	if req.GetRangeId() == 0 || req.GetRangeId() == uint64(placement.GroupID) {
		return nil, invalidArgument("range_id", fmt.Sprintf("range %d cannot be closed", req.GetRangeId()))
	}
	closed, err := n.store.EnsureClosed(ctx, multiraft.GroupID(req.GetRangeId()), req.GetRevision())
	if err != nil {
		return nil, err
	}
	return &flotillapb.CloseRangeResponse{Closed: closed}, nil
}

// closeAtLeader is the store's CloseAtLeader: it asks node leader, which
// leads range id, to close it at rev (CloseRange).
func (n *Node) closeAtLeader(ctx context.Context, leader multiraft.NodeID, id multiraft.GroupID, rev int64) (int64, error) {
	if uint64(leader) == n.self.Load() {
		return n.store.EnsureClosed(ctx, id, rev)
	}
	addr, ok := n.transport.Address(flotillapb.NodeID(leader))
	if !ok {
		return 0, unavailable(fmt.Sprintf("no address known for node %d, the leader of range %d", leader, id))
	}
	conn, err := n.pool.Ready(ctx, addr, connectWait)
	if err != nil {
		return 0, unavailable(fmt.Sprintf("node %d, the leader of range %d: %v", leader, id, err))
	}
	resp, err := flotillapb.NewNodeClient(conn).CloseRange(ctx, &flotillapb.CloseRangeRequest{RangeId: uint64(id), Revision: rev})
	if err != nil {
		return 0, rpc.ErrorFromStatus(rpc.StatusError(err), false)
	}
	return resp.GetClosed(), nil
}

// FollowerReads returns how many reads this node's replicas served
// without leading their range (follower and observer reads) since it
// started (flotilla_kv_follower_reads_total).
func (n *Node) FollowerReads() int64 { return n.store.FollowerReads() }
