// Copyright 2026 The Flotilla Authors. All rights reserved.

package flotilla

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/flotilladb/flotilla/multiraft"
	"github.com/flotilladb/flotilla/router"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"google.golang.org/protobuf/proto"
)

// lookupTimeout bounds one LookupRange call to one node, so that a node that
// cannot answer (cut off from the placement group's leader, say) costs a
// request at most this long before the router falls back to a stale entry,
// or its caller to routing without the router.
const lookupTimeout = 2 * time.Second

// placementResolver is the routers' Resolver: it answers a cache miss with
// the Placement service's LookupRange, and keeps the node addresses the
// answers list, so that whoever sends a router.Target can dial its Store.
// The Go client asks its endpoints in turn; a node's gateway asks its own
// placement service, which answers on the placement group's leader and
// forwards the question there elsewhere.
type placementResolver struct {
	// lookup asks the cluster; it returns a *flotillapb.Error (or an error
	// of the Node service) on failure.
	lookup func(context.Context, *flotillapb.LookupRangeRequest) (*flotillapb.LookupRangeResponse, error)

	mu struct {
		sync.Mutex
		// addrs maps a node to its advertised gRPC address, as the latest
		// answer that listed the node gave it.
		addrs map[multiraft.NodeID]string
	}
}

var _ router.Resolver = (*placementResolver)(nil)

func newPlacementResolver(lookup func(context.Context, *flotillapb.LookupRangeRequest) (*flotillapb.LookupRangeResponse, error)) *placementResolver {
	r := &placementResolver{lookup: lookup}
	r.mu.addrs = make(map[multiraft.NodeID]string)
	return r
}

// LookupRange implements router.Resolver.
func (r *placementResolver) LookupRange(ctx context.Context, key []byte, before bool) (router.RangeInfo, error) {
	resp, err := r.lookup(ctx, &flotillapb.LookupRangeRequest{Key: key, Before: before})
	if err != nil {
		return router.RangeInfo{}, err
	}
	r.learn(resp.GetNodes())
	if resp.GetDescriptor_() == nil {
		return router.RangeInfo{}, fmt.Errorf("the placement driver answered the lookup of key %q (before: %v) without a descriptor", key, before)
	}
	// The router keeps what it is given: copy it out of the response, which
	// a local placement service may share with its own state.
	info := router.RangeInfo{Desc: proto.Clone(resp.GetDescriptor_()).(*flotillapb.RangeDescriptor)}
	if l := resp.GetLeader(); l.GetStoreId() != 0 {
		info.Leader = l.Clone()
	}
	return info, nil
}

func (r *placementResolver) learn(nodes []*flotillapb.NodeDescriptor) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, d := range nodes {
		if d.GetNodeId() != 0 && d.GetAddress() != "" {
			r.mu.addrs[multiraft.NodeID(d.GetNodeId())] = d.GetAddress()
		}
	}
}

// address returns node's advertised gRPC address, if a lookup listed it.
func (r *placementResolver) address(node multiraft.NodeID) (string, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	addr, ok := r.mu.addrs[node]
	return addr, ok
}
