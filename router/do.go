// Copyright 2026 The Flotilla Authors. All rights reserved.

package router

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"google.golang.org/protobuf/proto"
)

// Request is what Do needs to know of a request.
type Request struct {
	// Key is the key the request is routed by: its only key, or the first
	// key of a span or batch, all of which must lie in Key's range.
	Key []byte
	// Write says the request changes data. Only reads are retried after an
	// attempt whose outcome is unknown, and only writes' errors carry an
	// outcome. No write is retried then, not even one that, applied twice,
	// has the effect of once (a put of a fixed value, a delete-range): a
	// write of another client acknowledged in between would be undone
	// after it was read, which is not linearizable (issue 15).
	Write bool
	// Before routes the request by the keys just below Key instead (Key
	// exclusive): to the range with start < Key <= end, or the last range
	// if Key is empty. The part of a reverse span request that ends at Key
	// is routed this way.
	Before bool
	// ReadFrom says which replicas may serve a read (writes ignore it):
	// with READ_FROM_FOLLOWER the router prefers replicas other than the
	// leader, with READ_FROM_NEAREST those on stores in Zone (by the
	// stores' "zone" label, as the resolver learned it). Either falls
	// back to the leader when no such replica answers. The attempt's
	// header carries both, so that the replica serves the read itself.
	ReadFrom flotillapb.ReadFrom
	Zone     string
}

// Target is where one attempt of a request goes.
type Target struct {
	// Store is the store (node) to send the attempt to.
	Store flotillapb.NodeID
	// Replica is the replica on Store the router expects to serve it. It
	// comes from a descriptor or a leader hint, so it may lack its type.
	Replica *flotillapb.ReplicaDescriptor
	// Range is the descriptor the attempt was routed by. A request that
	// covers a span must clip it to Range's bounds (and continue past them
	// with another Do). Shared with the cache: read only.
	Range *flotillapb.RangeDescriptor
	// Header is the header to put in the request: Range's ID and version,
	// and forwarded, so that the receiver serves it from its own replica or
	// fails. A new one for each attempt; send may keep it.
	Header *flotillapb.RequestHeader
}

// Do sends a request to the range that holds req.Key and retries it as the
// errors allow (DESIGN.md, "router"), until it succeeds, fails for good or
// its deadline passes: ctx's, or Config.DefaultTimeout if ctx has none.
//
// send makes one attempt: it sends the request to t.Store with t.Header and
// returns the response or a *flotillapb.Error (the caller converts
// transport errors, e.g. with rpc.ErrorFromStatus; any other error counts
// as Unavailable with, for a write, an unknown outcome). Do calls send on
// the caller's goroutine, one attempt at a time; a read's ctx is bounded by
// Config.ReadAttemptTimeout.
//
// Do returns send's response, or the last error as a *flotillapb.Error
// whose Outcome, for a write, is UNKNOWN if any attempt may have been
// applied and NOT_APPLIED otherwise (reads carry OUTCOME_UNSPECIFIED). A
// write is never sent again after an attempt with an unknown outcome.
func Do[Resp any](ctx context.Context, r *Router, req Request,
	send func(ctx context.Context, t Target) (Resp, error)) (Resp, error) {
	var zero Resp
	r.metrics.requests.Inc()
	ctx, cancel := withDefaultTimeout(ctx, r.cfg.DefaultTimeout)
	defer cancel()
	rt := retrier{r: r, req: req, nextBackoff: r.cfg.MinBackoff}
	for {
		if err := ctx.Err(); err != nil {
			return zero, rt.fail(err)
		}
		info, err := r.lookup(ctx, req.Key, req.Before)
		if ctx.Err() != nil {
			// Never retry once ctx is done (Lookup may have returned a
			// stale entry regardless).
			return zero, rt.fail(ctx.Err())
		}
		if err != nil {
			var fe *flotillapb.Error
			if errors.As(err, &fe) && fe.GetInvalidArgument() != nil {
				rt.lastErr = fe
				return zero, rt.fail(nil)
			}
			rt.lastErr = &flotillapb.Error{
				Message: err.Error(),
				Outcome: flotillapb.Outcome_NOT_APPLIED,
				Detail:  &flotillapb.Error_Unavailable{Unavailable: &flotillapb.Unavailable{}},
			}
			r.metrics.retries[reasonLookup].Inc()
			if !rt.backoff(ctx) {
				return zero, rt.fail(ctx.Err())
			}
			continue
		}
		replica := rt.choose(info)
		if replica == nil {
			// Every replica failed in this round: start another after a
			// backoff.
			r.metrics.retries[reasonNoReplica].Inc()
			rt.avoid = rt.avoid[:0]
			if rt.lastErr == nil {
				rt.lastErr = &flotillapb.Error{
					Message: fmt.Sprintf("router: range %d has no replica to send to", info.Desc.GetRangeId()),
					Outcome: flotillapb.Outcome_NOT_APPLIED,
					Detail:  &flotillapb.Error_Unavailable{Unavailable: &flotillapb.Unavailable{}},
				}
			}
			if len(info.Desc.GetReplicas()) == 0 && info.Leader == nil {
				r.Invalidate(info.Desc)
			}
			if !rt.backoff(ctx) {
				return zero, rt.fail(ctx.Err())
			}
			continue
		}
		t := Target{
			Store:   flotillapb.NodeID(replica.GetStoreId()),
			Replica: replica,
			Range:   info.Desc,
			Header: &flotillapb.RequestHeader{
				RangeId:   info.Desc.GetRangeId(),
				Version:   info.Desc.GetEpoch().GetVersion(),
				Forwarded: true,
			},
		}
		if !req.Write {
			t.Header.ReadFrom, t.Header.Zone = req.ReadFrom, req.Zone
		}
		rt.attempts++
		actx, cancel := ctx, context.CancelFunc(func() {})
		if !req.Write {
			actx, cancel = context.WithTimeout(ctx, r.cfg.ReadAttemptTimeout)
		}
		resp, err := send(actx, t)
		cancel()
		if err == nil {
			if req.Write && info.Leader.GetStoreId() != replica.GetStoreId() {
				// Only the leader accepts writes. (A read that succeeded
				// says less: a replica serves reads at or below its closed
				// revision whether it leads or not.)
				r.cache.setLeader(flotillapb.RangeID(info.Desc.GetRangeId()), replica, 0)
			}
			return resp, nil
		}
		switch rt.handle(asError(err, req.Write), info, t) {
		case fail:
			return zero, rt.fail(nil)
		case retryNow:
			if rt.immediate < r.cfg.MaxImmediateRetries {
				rt.immediate++
				continue
			}
			if !rt.backoff(ctx) {
				return zero, rt.fail(ctx.Err())
			}
		case retryNext:
			// choose moves on to a replica not yet tried in this round.
		case retryBackoff:
			if !rt.backoff(ctx) {
				return zero, rt.fail(ctx.Err())
			}
		}
	}
}

// action is what to do after a failed attempt.
type action int

const (
	// fail returns the error.
	fail action = iota
	// retryNow retries at once, unless MaxImmediateRetries retries in a
	// row did so already: then after a backoff.
	retryNow
	// retryNext retries at once at a replica not yet tried in this round
	// (the failed one is in retrier.avoid); when none is left, the round
	// ends with a backoff.
	retryNext
	// retryBackoff retries after a backoff.
	retryBackoff
)

// retrier is the state of one Do call.
type retrier struct {
	r   *Router
	req Request
	// lastErr is the error of the last failed attempt (or lookup).
	lastErr *flotillapb.Error
	// unknown says an attempt of a write may have been applied.
	unknown  bool
	attempts int
	// immediate counts the retryNow retries since the last backoff.
	immediate   int
	nextBackoff time.Duration
	// avoid lists the stores of avoidRange that failed in this round.
	avoidRange uint64
	avoid      []uint64
}

// choose picks the replica to send the next attempt to: the leader if
// known, else the voters in the descriptor's order, then (for reads) the
// learners, skipping the stores that failed in this round. It returns nil
// when none is left.
func (rt *retrier) choose(info RangeInfo) *flotillapb.ReplicaDescriptor {
	if id := info.Desc.GetRangeId(); id != rt.avoidRange {
		rt.avoidRange, rt.avoid = id, rt.avoid[:0]
	}
	if !rt.req.Write && rt.req.ReadFrom != flotillapb.ReadFrom_READ_FROM_LEADER {
		if rep := rt.chooseForRead(info); rep != nil {
			return rep
		}
	}
	if l := info.Leader; l.GetStoreId() != 0 && !rt.avoided(l.GetStoreId()) {
		return l
	}
	for _, typ := range []flotillapb.ReplicaType{flotillapb.ReplicaType_VOTER, flotillapb.ReplicaType_LEARNER} {
		if typ == flotillapb.ReplicaType_LEARNER && rt.req.Write {
			break // a learner cannot lead, so cannot take a write
		}
		for _, rep := range info.Desc.GetReplicas() {
			if rep.GetType() == typ && rep.GetStoreId() != 0 && !rt.avoided(rep.GetStoreId()) {
				return rep
			}
		}
	}
	return nil
}

// Zoner is implemented by a Resolver that knows the stores' zones (the
// value of their "zone" label); READ_FROM_NEAREST needs one.
type Zoner interface {
	Zone(store flotillapb.NodeID) string
}

// chooseForRead picks, for a read that allows other replicas than the
// leader, one not tried in this round: a replica on a Local store first,
// whatever its role; then with READ_FROM_FOLLOWER a replica that is not
// the leader, those in the client's zone first; with READ_FROM_NEAREST
// one in the client's zone, the leader first among them (it serves
// without asking anyone). Among equals it picks at random, to spread the
// reads. It returns nil when none fits (the caller then picks as for the
// leader).
func (rt *retrier) chooseForRead(info RangeInfo) *flotillapb.ReplicaDescriptor {
	zoner, _ := rt.r.cfg.Resolver.(Zoner)
	inZone := func(store uint64) bool {
		return rt.req.Zone != "" && zoner != nil && zoner.Zone(flotillapb.NodeID(store)) == rt.req.Zone
	}
	leader := info.Leader.GetStoreId()
	var best []*flotillapb.ReplicaDescriptor
	bestRank := 0
	for _, rep := range info.Desc.GetReplicas() {
		store := rep.GetStoreId()
		if store == 0 || rt.avoided(store) {
			continue
		}
		var rank int
		switch {
		case rt.r.cfg.Local != nil && rt.r.cfg.Local(flotillapb.NodeID(store)):
			rank = 3
		case rt.req.ReadFrom == flotillapb.ReadFrom_READ_FROM_FOLLOWER && store == leader:
			continue
		case rt.req.ReadFrom == flotillapb.ReadFrom_READ_FROM_FOLLOWER:
			rank = 1 + btoi(inZone(store))
		case !inZone(store):
			continue // nearest: only the client's zone
		default:
			rank = 1 + btoi(store == leader)
		}
		switch {
		case rank > bestRank:
			best, bestRank = append(best[:0], rep), rank
		case rank == bestRank:
			best = append(best, rep)
		}
	}
	if len(best) == 0 {
		return nil
	}
	return best[rand.IntN(len(best))]
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func (rt *retrier) avoided(store uint64) bool {
	for _, s := range rt.avoid {
		if s == store {
			return true
		}
	}
	return false
}

// handle records what a failed attempt at t teaches (in the cache and in
// rt) and says what to do next.
func (rt *retrier) handle(fe *flotillapb.Error, info RangeInfo, t Target) action {
	r := rt.r
	rt.lastErr = fe
	rangeID := flotillapb.RangeID(info.Desc.GetRangeId())
	store := uint64(t.Store)
	if rt.req.Write && outcomeUnknown(fe) {
		rt.unknown = true
		return fail
	}
	switch d := fe.GetDetail().(type) {
	case *flotillapb.Error_InvalidArgument, *flotillapb.Error_NoSpace, *flotillapb.Error_Compacted,
		*flotillapb.Error_FutureRevision, *flotillapb.Error_CrossRange:
		// NoSpace: the range's leader refuses writes until its disk has
		// room again; another replica would only name it leader. The
		// others (Permanent) every replica would refuse alike.
		return fail

	case *flotillapb.Error_NotLeader:
		r.metrics.retries[reasonNotLeader].Inc()
		rt.avoid = append(rt.avoid, store)
		if hint := d.NotLeader.GetLeader(); hint.GetStoreId() != 0 && hint.GetStoreId() != store {
			r.cache.setLeader(rangeID, hint, 0)
			if !rt.avoided(hint.GetStoreId()) {
				return retryNow
			}
			return retryNext
		}
		r.cache.setLeader(rangeID, nil, store)
		return retryNext

	case *flotillapb.Error_EpochNotMatch:
		r.metrics.retries[reasonEpochNotMatch].Inc()
		replaced := false
		for _, cur := range d.EpochNotMatch.GetCurrent() {
			if checkDesc(cur) != nil {
				continue
			}
			if cur.GetRangeId() == info.Desc.GetRangeId() && info.Desc.GetEpoch().Dominates(cur.GetEpoch()) {
				// The replica is behind the descriptor we routed by: it has
				// not applied the change yet. Try another.
				rt.avoid = append(rt.avoid, store)
				return retryNext
			}
			r.cache.insert(cur, nil, r.now().Add(r.cfg.TTL))
			replaced = replaced || holds(cur, rt.req.Key, rt.req.Before)
		}
		if !replaced {
			r.cache.invalidate(info.Desc)
		}
		return retryNow

	case *flotillapb.Error_KeyNotInRange:
		r.metrics.retries[reasonKeyNotInRange].Inc()
		cur := d.KeyNotInRange.GetRange()
		if checkDesc(cur) == nil {
			if cur.GetRangeId() == info.Desc.GetRangeId() && info.Desc.GetEpoch().Dominates(cur.GetEpoch()) {
				// The replica is behind the descriptor we routed by.
				rt.avoid = append(rt.avoid, store)
				return retryNext
			}
			r.cache.insert(cur, nil, r.now().Add(r.cfg.TTL))
			if reachesPast(d.KeyNotInRange, rt.req.Key, rt.req.Before) {
				// The request reaches past its range (a batch or span
				// across ranges): the caller must split it, by the
				// descriptor just learned.
				return fail
			}
		}
		r.cache.invalidate(info.Desc)
		return retryNow

	case *flotillapb.Error_RangeNotFound:
		r.metrics.retries[reasonRangeNotFound].Inc()
		rt.avoid = append(rt.avoid, store)
		r.cache.setLeader(rangeID, nil, store)
		r.cache.invalidate(info.Desc)
		return retryNow

	case *flotillapb.Error_ServerBusy:
		r.metrics.retries[reasonServerBusy].Inc()
		return retryBackoff
	}
	// Unavailable, or an error Do does not know: this replica cannot serve
	// now; another may. A write gets here only if it was certainly not
	// applied.
	r.metrics.retries[reasonUnavailable].Inc()
	rt.avoid = append(rt.avoid, store)
	r.cache.setLeader(rangeID, nil, store)
	return retryNext
}

// NeedsSplit reports whether err says that a request routed by key reaches
// past the range that holds key (a KeyNotInRange naming another key, from
// a replica whose range holds key): it must be split per range (DoSpan,
// Scan, DeleteRange, Batch). Such a request was not applied.
func NeedsSplit(err error, key []byte) bool {
	var fe *flotillapb.Error
	if !errors.As(err, &fe) || fe.GetKeyNotInRange() == nil {
		return false
	}
	return reachesPast(fe.GetKeyNotInRange(), key, false)
}

// reachesPast reports whether a KeyNotInRange says that a request routed
// by key (and before) holds a key outside the range that holds key.
func reachesPast(e *flotillapb.KeyNotInRange, key []byte, before bool) bool {
	cur := e.GetRange()
	k := e.GetKey()
	return checkDesc(cur) == nil && len(k) > 0 && !bytes.Equal(k, key) && holds(cur, key, before)
}

// backoff sleeps before the next retry, for a uniformly random part of the
// current backoff, which then doubles up to MaxBackoff. It returns false if
// ctx ended first.
func (rt *retrier) backoff(ctx context.Context) bool {
	r := rt.r
	r.metrics.backoffs.Inc()
	d := r.jitter(rt.nextBackoff)
	rt.nextBackoff = min(2*rt.nextBackoff, r.cfg.MaxBackoff)
	rt.immediate = 0
	return r.sleep(ctx, d) == nil && ctx.Err() == nil
}

// fail returns the error Do returns: the last one, with the outcome of the
// whole request, and ctxErr (the reason Do gave up) if not nil.
func (rt *retrier) fail(ctxErr error) *flotillapb.Error {
	rt.r.metrics.requestErrors.Inc()
	var fe *flotillapb.Error
	if rt.lastErr == nil {
		fe = &flotillapb.Error{
			Message: "router: the request was not sent",
			Detail:  &flotillapb.Error_Unavailable{Unavailable: &flotillapb.Unavailable{}},
		}
	} else {
		fe = proto.Clone(rt.lastErr).(*flotillapb.Error)
	}
	if ctxErr != nil {
		if strings.Contains(fe.GetMessage(), ctxErr.Error()) {
			fe.Message = fmt.Sprintf("%s (gave up after %d attempts)", fe.GetMessage(), rt.attempts)
		} else {
			fe.Message = fmt.Sprintf("%s (gave up after %d attempts: %v)", fe.GetMessage(), rt.attempts, ctxErr)
		}
	}
	switch {
	case !rt.req.Write:
		fe.Outcome = flotillapb.Outcome_OUTCOME_UNSPECIFIED
	case rt.unknown:
		fe.Outcome = flotillapb.Outcome_UNKNOWN
	default:
		fe.Outcome = flotillapb.Outcome_NOT_APPLIED
	}
	return fe
}

// outcomeUnknown reports whether a write's failed attempt may have been
// applied. Without an explicit outcome, the refusals that come before a
// proposal are taken as not applied, and anything else as unknown.
func outcomeUnknown(fe *flotillapb.Error) bool {
	switch fe.GetOutcome() {
	case flotillapb.Outcome_UNKNOWN:
		return true
	case flotillapb.Outcome_NOT_APPLIED:
		return false
	}
	switch fe.GetDetail().(type) {
	case *flotillapb.Error_NotLeader, *flotillapb.Error_EpochNotMatch, *flotillapb.Error_KeyNotInRange,
		*flotillapb.Error_RangeNotFound, *flotillapb.Error_ServerBusy, *flotillapb.Error_InvalidArgument,
		*flotillapb.Error_NoSpace, *flotillapb.Error_Compacted, *flotillapb.Error_FutureRevision, *flotillapb.Error_CrossRange:
		return false
	}
	return true
}

// asError makes send's error a *flotillapb.Error. An error of another type
// counts as Unavailable, with an unknown outcome for a write.
func asError(err error, write bool) *flotillapb.Error {
	var fe *flotillapb.Error
	if errors.As(err, &fe) && fe != nil {
		return fe
	}
	outcome := flotillapb.Outcome_OUTCOME_UNSPECIFIED
	if write {
		outcome = flotillapb.Outcome_UNKNOWN
	}
	return &flotillapb.Error{
		Message: err.Error(),
		Outcome: outcome,
		Detail:  &flotillapb.Error_Unavailable{Unavailable: &flotillapb.Unavailable{}},
	}
}
