// Copyright 2026 The Flotilla Authors. All rights reserved.

package router

import "github.com/VictoriaMetrics/metrics"

// Reasons a request is retried, the label of flotilla_router_retries_total.
const (
	reasonNotLeader     = "not_leader"
	reasonEpochNotMatch = "epoch_not_match"
	reasonKeyNotInRange = "key_not_in_range"
	reasonRangeNotFound = "range_not_found"
	reasonServerBusy    = "server_busy"
	reasonUnavailable   = "unavailable"
	reasonLookup        = "lookup_failed"
	reasonNoReplica     = "no_replica"
)

var retryReasons = []string{
	reasonNotLeader, reasonEpochNotMatch, reasonKeyNotInRange, reasonRangeNotFound,
	reasonServerBusy, reasonUnavailable, reasonLookup, reasonNoReplica,
}

// routerMetrics are the router's metrics. With no Config.Metrics they are
// kept on a private set that nothing exports.
//
//	flotilla_router_lookups_total              Lookup calls (every attempt of a request makes one)
//	flotilla_router_cache_hits_total           lookups answered by a fresh cache entry
//	flotilla_router_cache_misses_total         lookups with no entry or an expired one
//	flotilla_router_resolver_calls_total       calls to the Resolver (misses coalesce)
//	flotilla_router_resolver_errors_total      failed Resolver calls
//	flotilla_router_stale_hits_total           expired entries used because the Resolver failed
//	flotilla_router_requests_total             requests (Do calls)
//	flotilla_router_request_errors_total       requests that returned an error
//	flotilla_router_backoffs_total             backoff sleeps
//	flotilla_router_retries_total{reason=...}  attempts retried, by the error that caused it
//	flotilla_router_span_requests_total        span requests and batches split by range (DoSpan,
//	                                           Scan, DeleteRange, Batch calls)
//	flotilla_router_span_multi_range_total     those that needed more than one range
//	flotilla_router_span_parts_total           their parts served (one Do call each)
type routerMetrics struct {
	lookups        *metrics.Counter
	hits           *metrics.Counter
	misses         *metrics.Counter
	resolverCalls  *metrics.Counter
	resolverErrors *metrics.Counter
	staleHits      *metrics.Counter
	requests       *metrics.Counter
	requestErrors  *metrics.Counter
	backoffs       *metrics.Counter
	retries        map[string]*metrics.Counter
	spanRequests   *metrics.Counter
	spanMultiRange *metrics.Counter
	spanParts      *metrics.Counter
}

func newRouterMetrics(set *metrics.Set) *routerMetrics {
	if set == nil {
		set = metrics.NewSet()
	}
	m := &routerMetrics{
		lookups:        set.GetOrCreateCounter("flotilla_router_lookups_total"),
		hits:           set.GetOrCreateCounter("flotilla_router_cache_hits_total"),
		misses:         set.GetOrCreateCounter("flotilla_router_cache_misses_total"),
		resolverCalls:  set.GetOrCreateCounter("flotilla_router_resolver_calls_total"),
		resolverErrors: set.GetOrCreateCounter("flotilla_router_resolver_errors_total"),
		staleHits:      set.GetOrCreateCounter("flotilla_router_stale_hits_total"),
		requests:       set.GetOrCreateCounter("flotilla_router_requests_total"),
		requestErrors:  set.GetOrCreateCounter("flotilla_router_request_errors_total"),
		backoffs:       set.GetOrCreateCounter("flotilla_router_backoffs_total"),
		retries:        make(map[string]*metrics.Counter, len(retryReasons)),
		spanRequests:   set.GetOrCreateCounter("flotilla_router_span_requests_total"),
		spanMultiRange: set.GetOrCreateCounter("flotilla_router_span_multi_range_total"),
		spanParts:      set.GetOrCreateCounter("flotilla_router_span_parts_total"),
	}
	for _, r := range retryReasons {
		m.retries[r] = set.GetOrCreateCounter(`flotilla_router_retries_total{reason="` + r + `"}`)
	}
	return m
}
