// Copyright 2026 The Flotilla Authors. All rights reserved.

package router

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"golang.org/x/sync/singleflight"
	"google.golang.org/protobuf/proto"
)

// RangeInfo is what the router knows of a range. Both pointers are shared
// with the cache: callers must not modify what they point to.
type RangeInfo struct {
	// Desc is the range's descriptor, never nil in a RangeInfo the router
	// returns.
	Desc *flotillapb.RangeDescriptor
	// Leader is the replica last known to lead the range, nil if unknown.
	// Only its store_id matters for routing; it may name a store missing
	// from an outdated Desc.
	Leader *flotillapb.ReplicaDescriptor
}

// Resolver answers cache misses: in a cluster the placement driver, in
// tests a fake.
type Resolver interface {
	// LookupRange returns the range that holds key, with its leader if
	// known; with before, the range that holds the keys just below key
	// (key exclusive: the range with start < key <= end, or the last range
	// if key is empty), which reverse span requests are routed by. It is
	// called from the goroutine of a request that missed the cache (or a
	// goroutine of the single-flight group on its behalf), from many at
	// once, and must return when ctx is done. The router keeps the
	// descriptors it is given; the resolver must not modify them afterwards.
	LookupRange(ctx context.Context, key []byte, before bool) (RangeInfo, error)
}

// Router routes requests to the replicas of the ranges that hold their
// keys. It is safe for concurrent use and runs no goroutines of its own,
// so it needs no Close.
type Router struct {
	cfg     Config
	cache   *cache
	flights singleflight.Group
	metrics *routerMetrics
}

// New returns a router. It fails if cfg is invalid.
func New(cfg Config) (*Router, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Router{cfg: cfg, cache: newCache(), metrics: newRouterMetrics(cfg.Metrics)}, nil
}

func (r *Router) now() time.Time {
	if k := r.cfg.Testing; k != nil && k.Clock != nil {
		return k.Clock()
	}
	return time.Now()
}

// jitter returns a uniformly random duration in [0, d].
func (r *Router) jitter(d time.Duration) time.Duration {
	if k := r.cfg.Testing; k != nil && k.Jitter != nil {
		return k.Jitter(d)
	}
	if d <= 0 {
		return 0
	}
	return rand.N(d + 1)
}

func (r *Router) sleep(ctx context.Context, d time.Duration) error {
	if k := r.cfg.Testing; k != nil && k.Sleep != nil {
		return k.Sleep(ctx, d)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// maxFlightRounds bounds the single-flight lookups one Lookup joins: a
// round is repeated when the flight it joined answered for a different key
// whose range turned out not to hold this one, or was cut short by the
// context of the request that started it.
const maxFlightRounds = 4

// Lookup returns the range that holds key: from the cache if it has a fresh
// entry, else from the Resolver, whose answer it caches. Concurrent misses
// share one Resolver call: misses for the same key, and refreshes of the
// same expired entry. If the Resolver fails and the cache holds an expired
// entry for key, Lookup returns that entry rather than the error: a
// replica refuses a request routed by an outdated descriptor, so a stale
// entry costs at most a retry, while an error would fail every request
// while the placement driver is unreachable.
func (r *Router) Lookup(ctx context.Context, key []byte) (RangeInfo, error) {
	return r.lookup(ctx, key, false)
}

// LookupBefore is Lookup for the range that holds the keys just below key
// (key exclusive): the range with start < key <= end, or the last range if
// key is empty. A reverse span request walks the ranges this way.
func (r *Router) LookupBefore(ctx context.Context, key []byte) (RangeInfo, error) {
	return r.lookup(ctx, key, true)
}

// lookup is Lookup (before false) or LookupBefore.
func (r *Router) lookup(ctx context.Context, key []byte, before bool) (RangeInfo, error) {
	r.metrics.lookups.Inc()
	stale, ok := r.cache.lookup(key, before)
	if ok && r.now().Before(stale.expires) {
		r.metrics.hits.Inc()
		return stale.info(), nil
	}
	r.metrics.misses.Inc()
	// Refreshes of one expired entry coalesce whatever key asked; misses
	// coalesce by key (nothing says which keys share a range).
	flightKey := missFlightKey(key, before)
	if ok {
		flightKey = "r" + string(stale.desc.GetStartKey())
	}
	var err error
	for range maxFlightRounds {
		var info RangeInfo
		info, err = r.resolve(ctx, key, before, flightKey)
		if err == nil {
			if holds(info.Desc, key, before) {
				return info, nil
			}
			// The flight was for another key of the expired entry, which
			// the answer shows to have split: look key up on its own.
			flightKey = missFlightKey(key, before)
			continue
		}
		if ctx.Err() != nil || !isContextError(err) {
			break
		}
		// The request that started the flight gave up; this one has not.
	}
	if ok {
		r.metrics.staleHits.Inc()
		return stale.info(), nil
	}
	return RangeInfo{}, err
}

// missFlightKey is the single-flight key of a cache miss.
func missFlightKey(key []byte, before bool) string {
	if before {
		return "b" + string(key)
	}
	return "k" + string(key)
}

func isContextError(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

// resolve joins or starts the flight that asks the Resolver for key's
// range. The flight runs under the context of the request that started it;
// a request whose own context ends stops waiting for it.
func (r *Router) resolve(ctx context.Context, key []byte, before bool, flightKey string) (RangeInfo, error) {
	ch := r.flights.DoChan(flightKey, func() (any, error) {
		// A flight that ended a moment ago may have cached the range.
		if e, ok := r.cache.lookup(key, before); ok && r.now().Before(e.expires) {
			return e.info(), nil
		}
		r.metrics.resolverCalls.Inc()
		info, err := r.cfg.Resolver.LookupRange(ctx, key, before)
		if err == nil {
			err = checkInfo(info, key, before)
		}
		if err != nil {
			r.metrics.resolverErrors.Inc()
			return nil, fmt.Errorf("router: looking up the range %s key %q: %w", lookupWhat(before), key, err)
		}
		e := r.cache.insert(info.Desc, info.Leader, r.now().Add(r.cfg.TTL))
		if e.desc.GetRangeId() == info.Desc.GetRangeId() && holds(e.desc, key, before) {
			// The cache's entry, which may be newer than the answer.
			return e.info(), nil
		}
		return RangeInfo{Desc: info.Desc.Clone(), Leader: info.Leader.Clone()}, nil
	})
	select {
	case res := <-ch:
		if res.Err != nil {
			return RangeInfo{}, res.Err
		}
		return res.Val.(RangeInfo), nil
	case <-ctx.Done():
		return RangeInfo{}, fmt.Errorf("router: looking up the range %s key %q: %w", lookupWhat(before), key, ctx.Err())
	}
}

func lookupWhat(before bool) string {
	if before {
		return "before"
	}
	return "of"
}

// checkInfo checks what the Resolver returned for key.
func checkInfo(info RangeInfo, key []byte, before bool) error {
	if err := checkDesc(info.Desc); err != nil {
		return err
	}
	if !holds(info.Desc, key, before) {
		what := "the key"
		if before {
			what = "the keys just below the key"
		}
		return fmt.Errorf("the resolver returned range %d [%q, %q), which does not hold %s",
			info.Desc.GetRangeId(), info.Desc.GetStartKey(), info.Desc.GetEndKey(), what)
	}
	return nil
}

// errBadDescriptor says a descriptor cannot be cached.
var errBadDescriptor = errors.New("invalid range descriptor")

func checkDesc(desc *flotillapb.RangeDescriptor) error {
	switch {
	case desc == nil:
		return fmt.Errorf("%w: none", errBadDescriptor)
	case desc.GetRangeId() == 0:
		return fmt.Errorf("%w: range ID 0", errBadDescriptor)
	case len(desc.GetEndKey()) != 0 && bytes.Compare(desc.GetStartKey(), desc.GetEndKey()) >= 0:
		return fmt.Errorf("%w: range %d has an empty span [%q, %q)", errBadDescriptor,
			desc.GetRangeId(), desc.GetStartKey(), desc.GetEndKey())
	}
	return nil
}

// Update caches what a caller learned of a range (say, a node's gateway
// from its own replicas): the entry replaces the ranges it overlaps, unless
// the cache holds a newer descriptor of the same range. It reports whether
// info was cached; an invalid descriptor is ignored.
func (r *Router) Update(info RangeInfo) bool {
	if checkDesc(info.Desc) != nil {
		return false
	}
	e := r.cache.insert(info.Desc, info.Leader, r.now().Add(r.cfg.TTL))
	return proto.Equal(e.desc, info.Desc)
}

// Invalidate drops the cached entry of desc's range, unless the cache
// already holds a newer descriptor of it than desc (someone refreshed it
// since desc was read). The next lookup of a key in the range asks the
// Resolver.
func (r *Router) Invalidate(desc *flotillapb.RangeDescriptor) {
	if desc == nil {
		return
	}
	r.cache.invalidate(desc)
}

// UpdateLeader records the leader of a cached range; nil records that it is
// unknown. It does nothing if the range is not cached.
func (r *Router) UpdateLeader(rangeID flotillapb.RangeID, leader *flotillapb.ReplicaDescriptor) {
	if leader != nil && leader.GetStoreId() == 0 {
		leader = nil
	}
	r.cache.setLeader(rangeID, leader, 0)
}
