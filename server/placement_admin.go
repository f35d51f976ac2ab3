// Copyright 2026 The Flotilla Authors. All rights reserved.

package server

import (
	"context"
	"fmt"
	"strings"

	"github.com/flotilladb/flotilla/multiraft"
	"github.com/flotilladb/flotilla/placement"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"google.golang.org/protobuf/proto"
)

// The placement driver's admin requests. Each runs on the placement
// group's leader (placementRequest forwards it there) and starts an
// operator, which the range's leader then executes through its heartbeats
// like any other: the request returns once the operator is scheduled, and
// ListOperators follows it.

func (s *placementService) ListOperators(ctx context.Context, req *flotillapb.ListOperatorsRequest) (*flotillapb.ListOperatorsResponse, error) {
	n := s.node()
	return placementRequest(ctx, n, req, req.GetForwarded(),
		func(r *flotillapb.ListOperatorsRequest) { r.Forwarded = true },
		flotillapb.PlacementClient.ListOperators,
		func(_ *multiraft.Host, meta *placement.Meta) (*flotillapb.ListOperatorsResponse, error) {
			return n.driver.Operators(meta.State()), nil
		})
}

// adminOperator builds and starts an operator for rangeID with build.
func (n *Node) adminOperator(ctx context.Context, host *multiraft.Host, meta *placement.Meta, rangeID uint64,
	build func(cv *placement.ClusterView, r *placement.RangeView, alloc placement.ReplicaAllocator) (*placement.Operator, error),
) (*flotillapb.OperatorResponse, error) {
	if rangeID == 0 {
		return nil, invalidArgument("range_id", "a range ID is required")
	}
	n.ensureIDs(ctx, host)
	st, err := n.driver.AdminOperator(meta.State(), multiraft.GroupID(rangeID), build)
	if err != nil {
		return nil, invalidArgument("range_id", err.Error())
	}
	n.log.Info("admin operator", "range", rangeID, "steps", st.GetSteps())
	return &flotillapb.OperatorResponse{Operator: st}, nil
}

func (s *placementService) TransferLeader(ctx context.Context, req *flotillapb.TransferLeaderRequest) (*flotillapb.OperatorResponse, error) {
	n := s.node()
	return placementRequest(ctx, n, req, req.GetForwarded(),
		func(r *flotillapb.TransferLeaderRequest) { r.Forwarded = true },
		flotillapb.PlacementClient.TransferLeader,
		func(host *multiraft.Host, meta *placement.Meta) (*flotillapb.OperatorResponse, error) {
			return n.adminOperator(ctx, host, meta, req.GetRangeId(), func(cv *placement.ClusterView, r *placement.RangeView, _ placement.ReplicaAllocator) (*placement.Operator, error) {
				rep := r.Desc.ReplicaOnStore(flotillapb.StoreID(req.GetStoreId()))
				if rep == nil || rep.GetType() != flotillapb.ReplicaType_VOTER {
					return nil, fmt.Errorf("range %d has no voter on store %d", req.GetRangeId(), req.GetStoreId())
				}
				if st := cv.Stores[multiraft.NodeID(req.GetStoreId())]; st == nil || !st.Live {
					return nil, fmt.Errorf("store %d is not live", req.GetStoreId())
				}
				return &placement.Operator{RangeID: multiraft.GroupID(req.GetRangeId()), ConfVer: r.Desc.GetEpoch().GetConfVer(),
					Steps:  []placement.Step{{Kind: placement.StepTransferLeader, Replica: multiraft.ReplicaID(rep.GetReplicaId())}},
					Reason: fmt.Sprintf("transfer the leadership to store %d", req.GetStoreId())}, nil
			})
		})
}

func (s *placementService) AddReplica(ctx context.Context, req *flotillapb.AddReplicaRequest) (*flotillapb.OperatorResponse, error) {
	n := s.node()
	return placementRequest(ctx, n, req, req.GetForwarded(),
		func(r *flotillapb.AddReplicaRequest) { r.Forwarded = true },
		flotillapb.PlacementClient.AddReplica,
		func(host *multiraft.Host, meta *placement.Meta) (*flotillapb.OperatorResponse, error) {
			return n.adminOperator(ctx, host, meta, req.GetRangeId(), func(cv *placement.ClusterView, r *placement.RangeView, alloc placement.ReplicaAllocator) (*placement.Operator, error) {
				store := multiraft.NodeID(req.GetStoreId())
				st := cv.Stores[store]
				switch {
				case st == nil:
					return nil, fmt.Errorf("store %d is not a member of the cluster", req.GetStoreId())
				case st.State != placement.StoreUp || !st.Live:
					return nil, fmt.Errorf("store %d cannot take a replica (%s, live %v)", req.GetStoreId(), st.State, st.Live)
				case r.Desc.ReplicaOnStore(flotillapb.StoreID(req.GetStoreId())) != nil:
					return nil, fmt.Errorf("range %d already has a replica on store %d", req.GetRangeId(), req.GetStoreId())
				}
				if err := cv.CheckAddReplica(r, store, req.GetLearner()); err != nil {
					return nil, err
				}
				id := alloc(multiraft.GroupID(req.GetRangeId()), store)
				steps := []placement.Step{{Kind: placement.StepAddLearner, Replica: id}}
				what := "learner"
				if !req.GetLearner() {
					steps = append(steps, placement.Step{Kind: placement.StepPromote, Replica: id})
					what = "voter"
				}
				return &placement.Operator{RangeID: multiraft.GroupID(req.GetRangeId()), ConfVer: r.Desc.GetEpoch().GetConfVer(),
					Steps: steps, Reason: fmt.Sprintf("add a %s on store %d", what, store)}, nil
			})
		})
}

func (s *placementService) RemoveReplica(ctx context.Context, req *flotillapb.RemoveReplicaRequest) (*flotillapb.OperatorResponse, error) {
	n := s.node()
	return placementRequest(ctx, n, req, req.GetForwarded(),
		func(r *flotillapb.RemoveReplicaRequest) { r.Forwarded = true },
		flotillapb.PlacementClient.RemoveReplica,
		func(host *multiraft.Host, meta *placement.Meta) (*flotillapb.OperatorResponse, error) {
			return n.adminOperator(ctx, host, meta, req.GetRangeId(), func(cv *placement.ClusterView, r *placement.RangeView, _ placement.ReplicaAllocator) (*placement.Operator, error) {
				rep := r.Desc.ReplicaOnStore(flotillapb.StoreID(req.GetStoreId()))
				if rep == nil {
					return nil, fmt.Errorf("range %d has no replica on store %d", req.GetRangeId(), req.GetStoreId())
				}
				id := multiraft.ReplicaID(rep.GetReplicaId())
				if !cv.SafeToRemove(r, id) {
					return nil, fmt.Errorf("removing the replica on store %d would leave range %d without a quorum of live voters", req.GetStoreId(), req.GetRangeId())
				}
				return &placement.Operator{RangeID: multiraft.GroupID(req.GetRangeId()), ConfVer: r.Desc.GetEpoch().GetConfVer(),
					Steps:  []placement.Step{{Kind: placement.StepRemove, Replica: id}},
					Reason: fmt.Sprintf("remove the replica on store %d", req.GetStoreId())}, nil
			})
		})
}

func (s *placementService) SetStoreState(ctx context.Context, req *flotillapb.SetStoreStateRequest) (*flotillapb.SetStoreStateResponse, error) {
	n := s.node()
	return placementRequest(ctx, n, req, req.GetForwarded(),
		func(r *flotillapb.SetStoreStateRequest) { r.Forwarded = true },
		flotillapb.PlacementClient.SetStoreState,
		func(host *multiraft.Host, meta *placement.Meta) (*flotillapb.SetStoreStateResponse, error) {
			var node *flotillapb.NodeDescriptor
			for _, d := range meta.State().GetNodes() {
				if d.GetNodeId() == req.GetStoreId() {
					node = d
				}
			}
			if node == nil {
				return nil, invalidArgument("store_id", fmt.Sprintf("store %d is not a member of the cluster", req.GetStoreId()))
			}
			if req.GetDead() {
				if req.GetState() != flotillapb.StoreState_STORE_DECOMMISSIONING {
					return nil, invalidArgument("dead", fmt.Sprintf("only a store being decommissioned can be dead, not one set %v", req.GetState()))
				}
				// The quorum is checked when the removal starts; later
				// requests (the CLI's polls) only read its progress.
				if err := n.checkDeadStore(meta.State(), req.GetStoreId(), node.GetState() == flotillapb.StoreState_STORE_UP); err != nil {
					return nil, err
				}
			}
			switch want := req.GetState(); {
			case want != flotillapb.StoreState_STORE_UP && want != flotillapb.StoreState_STORE_DECOMMISSIONING:
				return nil, invalidArgument("state", fmt.Sprintf("a store can be set %v or %v, not %v",
					flotillapb.StoreState_STORE_UP, flotillapb.StoreState_STORE_DECOMMISSIONING, want))
			case want == flotillapb.StoreState_STORE_DECOMMISSIONING && node.GetState() == flotillapb.StoreState_STORE_DECOMMISSIONED,
				want == node.GetState():
				// Already done, or under way: asking again only reads it.
			case want == flotillapb.StoreState_STORE_DECOMMISSIONING && n.usableStores(meta.State(), req.GetStoreId()) < n.cfg.ReplicationFactor:
				return nil, invalidArgument("store_id", fmt.Sprintf(
					"decommissioning store %d would leave fewer than %d live stores to hold each range's replicas", req.GetStoreId(), n.cfg.ReplicationFactor))
			case want == flotillapb.StoreState_STORE_DECOMMISSIONING && meta.State().GetPlacementGroup().ReplicaOnStore(flotillapb.StoreID(req.GetStoreId())) != nil &&
				n.usableStores(meta.State(), req.GetStoreId()) < n.cfg.PlacementReplicationFactor:
				return nil, invalidArgument("store_id", fmt.Sprintf(
					"decommissioning store %d would leave fewer than %d live stores to hold the placement group's replicas (--placement-replicas)", req.GetStoreId(), n.cfg.PlacementReplicationFactor))
			case want != node.GetState():
				if err := n.setStoreState(ctx, host, multiraft.NodeID(req.GetStoreId()), want); err != nil {
					return nil, err
				}
			}
			for _, st := range n.driver.Stores(meta.State()) {
				if st.GetNode().GetNodeId() == req.GetStoreId() {
					left := st.GetReplicas()
					if n.driver.StoreCounts(meta.State())[multiraft.NodeID(req.GetStoreId())].Placement {
						left++ // the placement group's replica moves off too
					}
					return &flotillapb.SetStoreStateResponse{Store: st, Replicas: left}, nil
				}
			}
			return nil, unavailable("the store vanished from the placement state")
		})
}

// checkDeadStore refuses to remove store id as dead (remove-store) while
// the placement driver's view is too young to tell a dead store, if the
// store is live, and, when quorum is set, if a range or the placement
// group with a voter on it has fewer than a majority of its voters on
// other live stores.
func (n *Node) checkDeadStore(meta *flotillapb.ClusterMeta, id uint64, quorum bool) error {
	warming, live, lost := n.driver.DeadStoreCheck(meta, id)
	switch {
	case warming:
		return unavailable(fmt.Sprintf("the placement driver's leader changed less than %v ago and has not heard from every store yet: retry `flotilla cluster remove-store %d` in a few seconds", n.cfg.LivenessWindow, id))
	case live:
		return invalidArgument("store_id", fmt.Sprintf(
			"store %d is live: remove-store is for a dead store that will not come back; "+
				"use `flotilla cluster decommission %d` to move a live store's replicas off", id, id))
	case !quorum || len(lost) == 0:
		return nil
	}
	var names, ranges []string
	for _, g := range lost {
		if g == uint64(placement.GroupID) {
			names = append(names, "the placement group")
		} else {
			ranges = append(ranges, fmt.Sprint(g))
		}
	}
	if len(ranges) > 0 {
		names = append(names, "ranges "+strings.Join(ranges, ", "))
	}
	return invalidArgument("store_id", fmt.Sprintf(
		"removing store %d would leave %s without a quorum: fewer than a majority of their voters are on live stores other than it, "+
			"so their membership cannot change; bring a store back first", id, strings.Join(names, " and ")))
}

// usableStores counts the member stores that are up and live, other than
// except: those that can take the replicas of a decommissioned store.
func (n *Node) usableStores(meta *flotillapb.ClusterMeta, except uint64) int {
	c := 0
	for _, st := range n.driver.Stores(meta) {
		if d := st.GetNode(); d.GetNodeId() != except && d.GetState() == flotillapb.StoreState_STORE_UP && st.GetLive() {
			c++
		}
	}
	return c
}

// SplitRange starts an operator that splits the range holding req.key at
// req.key.
func (s *placementService) SplitRange(ctx context.Context, req *flotillapb.SplitRangeRequest) (*flotillapb.OperatorResponse, error) {
	n := s.node()
	if len(req.GetKey()) == 0 || len(req.GetKey()) > flotillapb.MaxKeySize {
		return nil, invalidArgument("key", fmt.Sprintf("a split key of 1 to %d bytes is required", flotillapb.MaxKeySize))
	}
	return placementRequest(ctx, n, req, req.GetForwarded(),
		func(r *flotillapb.SplitRangeRequest) { r.Forwarded = true },
		flotillapb.PlacementClient.SplitRange,
		func(host *multiraft.Host, meta *placement.Meta) (*flotillapb.OperatorResponse, error) {
			n.ensureIDs(ctx, host)
			st, err := n.driver.AdminSplit(meta.State(), req.GetKey())
			if err != nil {
				return nil, invalidArgument("key", err.Error())
			}
			n.log.Info("admin split", "key", fmt.Sprintf("%q", req.GetKey()), "range", st.GetRangeId())
			return &flotillapb.OperatorResponse{Operator: st}, nil
		})
}

func (s *placementService) GetRules(ctx context.Context, req *flotillapb.GetRulesRequest) (*flotillapb.RulesResponse, error) {
	n := s.node()
	return placementRequest(ctx, n, req, req.GetForwarded(),
		func(r *flotillapb.GetRulesRequest) { r.Forwarded = true },
		flotillapb.PlacementClient.GetRules,
		func(_ *multiraft.Host, meta *placement.Meta) (*flotillapb.RulesResponse, error) {
			return &flotillapb.RulesResponse{Rules: meta.State().GetRules(), DefaultVoters: uint32(n.cfg.ReplicationFactor)}, nil
		})
}

// SetRules validates the rules (their form, then whether the member
// stores can satisfy them) and replaces the placement rules with them.
func (s *placementService) SetRules(ctx context.Context, req *flotillapb.SetRulesRequest) (*flotillapb.RulesResponse, error) {
	n := s.node()
	return placementRequest(ctx, n, req, req.GetForwarded(),
		func(r *flotillapb.SetRulesRequest) { r.Forwarded = true },
		flotillapb.PlacementClient.SetRules,
		func(host *multiraft.Host, meta *placement.Meta) (*flotillapb.RulesResponse, error) {
			rules, err := placement.CompileRules(req.GetRules())
			if err != nil {
				return nil, invalidArgument("rules", err.Error())
			}
			if err := placement.CheckRulesFit(rules, meta.State().GetNodes()); err != nil {
				return nil, invalidArgument("rules", err.Error())
			}
			out := &flotillapb.RulesResponse{Rules: placement.RulesToProto(rules), DefaultVoters: uint32(n.cfg.ReplicationFactor)}
			if req.GetDryRun() {
				return out, nil
			}
			data, err := proto.Marshal(&flotillapb.MetaCommand{Command: &flotillapb.MetaCommand_SetRules{
				SetRules: &flotillapb.SetRules{Rules: out.GetRules()}}})
			if err != nil {
				return nil, err
			}
			res, err := host.ProposeAndWait(ctx, placement.GroupID, data)
			if err == nil {
				err = res.Err
			}
			if err != nil {
				return nil, err
			}
			n.log.Info("placement rules set", "rules", len(rules))
			return out, nil
		})
}
