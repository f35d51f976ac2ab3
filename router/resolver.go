// Copyright 2026 The Flotilla Authors. All rights reserved.

package router

import (
	"context"
	"fmt"
	"sync"

	"github.com/flotilladb/flotilla/rpc/flotillapb"
)

// PlacementResolver is the Resolver of the Go client's and the gateways'
// routers: it answers a cache miss with the Placement service's
// LookupRange, and keeps the node addresses the answers list, so that
// whoever sends a Target can dial its Store (Address). The Go client asks
// its endpoints in turn; a node's gateway asks its own placement service,
// which answers on the placement group's leader and forwards the question
// there elsewhere.
type PlacementResolver struct {
	// lookup asks the cluster; it returns a *flotillapb.Error (or an error
	// of the Node service) on failure.
	lookup func(context.Context, *flotillapb.LookupRangeRequest) (*flotillapb.LookupRangeResponse, error)

	mu struct {
		sync.Mutex
		// addrs maps a node to its advertised gRPC address, as the latest
		// answer that listed the node gave it; zones to the value of its
		// "zone" label.
		addrs map[flotillapb.NodeID]string
		zones map[flotillapb.NodeID]string
	}
}

var _ Resolver = (*PlacementResolver)(nil)

// NewPlacementResolver returns a resolver that asks lookup.
func NewPlacementResolver(lookup func(context.Context, *flotillapb.LookupRangeRequest) (*flotillapb.LookupRangeResponse, error)) *PlacementResolver {
	r := &PlacementResolver{lookup: lookup}
	r.mu.addrs = make(map[flotillapb.NodeID]string)
	r.mu.zones = make(map[flotillapb.NodeID]string)
	return r
}

// LookupRange implements Resolver.
func (r *PlacementResolver) LookupRange(ctx context.Context, key []byte, before bool) (RangeInfo, error) {
	resp, err := r.lookup(ctx, &flotillapb.LookupRangeRequest{Key: key, Before: before})
	if err != nil {
		return RangeInfo{}, err
	}
	r.learn(resp.GetNodes())
	if resp.GetDescriptor_() == nil {
		return RangeInfo{}, fmt.Errorf("the placement driver answered the lookup of key %q (before: %v) without a descriptor", key, before)
	}
	// The router keeps what it is given: copy it out of the response, which
	// a local placement service may share with its own state.
	info := RangeInfo{Desc: resp.GetDescriptor_().Clone()}
	if l := resp.GetLeader(); l.GetStoreId() != 0 {
		info.Leader = l.Clone()
	}
	return info, nil
}

func (r *PlacementResolver) learn(nodes []*flotillapb.NodeDescriptor) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, d := range nodes {
		if d.GetNodeId() != 0 && d.GetAddress() != "" {
			r.mu.addrs[flotillapb.NodeID(d.GetNodeId())] = d.GetAddress()
			zone := ""
			for _, l := range d.GetLabels() {
				if l.GetKey() == ZoneLabel {
					zone = l.GetValue()
				}
			}
			r.mu.zones[flotillapb.NodeID(d.GetNodeId())] = zone
		}
	}
}

// Address returns node's advertised gRPC address, if a lookup listed it.
func (r *PlacementResolver) Address(node flotillapb.NodeID) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	addr, ok := r.mu.addrs[node]
	return addr, ok
}

// ZoneLabel is the store label whose value is a store's zone, for
// READ_FROM_NEAREST.
const ZoneLabel = "zone"

// Zone implements Zoner: node's zone, "" if unknown.
func (r *PlacementResolver) Zone(node flotillapb.NodeID) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.mu.zones[node]
}
