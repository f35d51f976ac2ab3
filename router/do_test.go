// Copyright 2026 The Flotilla Authors. All rights reserved.

package router

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"google.golang.org/protobuf/proto"
)

// Errors a fake replica returns.

func notLeader(hint uint64) *flotillapb.Error {
	nl := &flotillapb.NotLeader{}
	if hint != 0 {
		nl.Leader = &flotillapb.ReplicaDescriptor{StoreId: hint, ReplicaId: replicaID(hint)}
	}
	return &flotillapb.Error{Message: "not leader", Outcome: flotillapb.Outcome_NOT_APPLIED,
		Detail: &flotillapb.Error_NotLeader{NotLeader: nl}}
}

func epochNotMatch(current ...*flotillapb.RangeDescriptor) *flotillapb.Error {
	return &flotillapb.Error{Message: "epoch not match", Outcome: flotillapb.Outcome_NOT_APPLIED,
		Detail: &flotillapb.Error_EpochNotMatch{EpochNotMatch: &flotillapb.EpochNotMatch{Current: current}}}
}

func keyNotInRange(key string, d *flotillapb.RangeDescriptor) *flotillapb.Error {
	return &flotillapb.Error{Message: "key not in range", Outcome: flotillapb.Outcome_NOT_APPLIED,
		Detail: &flotillapb.Error_KeyNotInRange{KeyNotInRange: &flotillapb.KeyNotInRange{Key: []byte(key), Range: d}}}
}

func rangeNotFound(id uint64) *flotillapb.Error {
	return &flotillapb.Error{Message: "range not found", Outcome: flotillapb.Outcome_NOT_APPLIED,
		Detail: &flotillapb.Error_RangeNotFound{RangeNotFound: &flotillapb.RangeNotFound{RangeId: id}}}
}

func serverBusy() *flotillapb.Error {
	return &flotillapb.Error{Message: "busy", Outcome: flotillapb.Outcome_NOT_APPLIED,
		Detail: &flotillapb.Error_ServerBusy{ServerBusy: &flotillapb.ServerBusy{}}}
}

func unavailable(o flotillapb.Outcome) *flotillapb.Error {
	return &flotillapb.Error{Message: "unavailable", Outcome: o,
		Detail: &flotillapb.Error_Unavailable{Unavailable: &flotillapb.Unavailable{}}}
}

func invalidArgument() *flotillapb.Error {
	return &flotillapb.Error{Message: "bad key", Outcome: flotillapb.Outcome_NOT_APPLIED,
		Detail: &flotillapb.Error_InvalidArgument{InvalidArgument: &flotillapb.InvalidArgument{Field: "key"}}}
}

// step is one scripted attempt: the store it must go to (0: any), an
// optional check of its target, and what the replica answers (err, else
// success).
type step struct {
	store  uint64
	check  func(t *testing.T, tg Target)
	before func() // runs before answering, e.g. to change the resolver
	err    error
}

// script is a sender that answers attempts from a list of steps.
type script struct {
	t     *testing.T
	steps []step
	sent  []Target
}

func (s *script) send(_ context.Context, tg Target) (string, error) {
	s.t.Helper()
	s.sent = append(s.sent, tg)
	i := len(s.sent) - 1
	if i >= len(s.steps) {
		s.t.Errorf("attempt %d to store %d was not expected", i+1, tg.Store)
		return "", invalidArgument()
	}
	st := s.steps[i]
	if st.store != 0 && uint64(tg.Store) != st.store {
		s.t.Errorf("attempt %d went to store %d, want %d", i+1, tg.Store, st.store)
	}
	if h := tg.Header; h.GetRangeId() != tg.Range.GetRangeId() || h.GetVersion() != tg.Range.GetEpoch().GetVersion() || !h.GetForwarded() {
		s.t.Errorf("attempt %d: header %v does not match range %v", i+1, h, tg.Range)
	}
	if st.check != nil {
		st.check(s.t, tg)
	}
	if st.before != nil {
		st.before()
	}
	if st.err != nil {
		return "", st.err
	}
	return "ok", nil
}

// stores lists the stores the attempts went to.
func (s *script) stores() []uint64 {
	var out []uint64
	for _, tg := range s.sent {
		out = append(out, uint64(tg.Store))
	}
	return out
}

func wantHeader(id, version uint64) func(*testing.T, Target) {
	return func(t *testing.T, tg Target) {
		t.Helper()
		if tg.Header.GetRangeId() != id || tg.Header.GetVersion() != version {
			t.Errorf("header %v, want range %d version %d", tg.Header, id, version)
		}
	}
}

func asFE(t *testing.T, err error) *flotillapb.Error {
	t.Helper()
	var fe *flotillapb.Error
	if !errors.As(err, &fe) {
		t.Fatalf("error %v (%T) is not a *flotillapb.Error", err, err)
	}
	return fe
}

func leaderOf(t *testing.T, r *Router, key string) uint64 {
	t.Helper()
	e, ok := r.cache.get([]byte(key))
	if !ok {
		t.Fatalf("key %q not cached", key)
	}
	return e.leader.GetStoreId()
}

func TestDoNotLeaderWithHint(t *testing.T) {
	res := newFakeResolver(RangeInfo{Desc: desc(1, "", "", 1, 1, 1, 2, 3), Leader: leaderOn(1)})
	r, _, sleeps := testRouter(t, res)
	s := &script{t: t, steps: []step{{store: 1, err: notLeader(3)}, {store: 3}}}
	if _, err := Do(context.Background(), r, Request{Key: []byte("k"), Write: true}, s.send); err != nil {
		t.Fatal(err)
	}
	if got := leaderOf(t, r, "k"); got != 3 {
		t.Fatalf("cached leader on store %d, want 3", got)
	}
	if d := sleeps.durations(); len(d) != 0 {
		t.Fatalf("backed off %v, want no backoff", d)
	}
	// The next request goes straight to the new leader.
	s2 := &script{t: t, steps: []step{{store: 3}}}
	if _, err := Do(context.Background(), r, Request{Key: []byte("k")}, s2.send); err != nil {
		t.Fatal(err)
	}
}

func TestDoNotLeaderHintHopsAreBounded(t *testing.T) {
	res := newFakeResolver(RangeInfo{Desc: desc(1, "", "", 1, 1, 1, 2, 3, 4, 5, 6), Leader: leaderOn(1)})
	r, _, sleeps := testRouter(t, res)
	// Each replica names the next as leader: three hops at once, then a
	// backoff before the fourth.
	var steps []step
	for i := uint64(1); i <= 5; i++ {
		i := i
		steps = append(steps, step{store: i, err: notLeader(i + 1), before: func() {
			if n := len(sleeps.durations()); (i <= 4 && n != 0) || (i == 5 && n != 1) {
				t.Errorf("attempt %d after %d backoffs", i, n)
			}
		}})
	}
	steps = append(steps, step{store: 6})
	s := &script{t: t, steps: steps}
	if _, err := Do(context.Background(), r, Request{Key: []byte("k"), Write: true}, s.send); err != nil {
		t.Fatal(err)
	}
	if d := sleeps.durations(); !slices.Equal(d, []time.Duration{DefaultMinBackoff}) {
		t.Fatalf("backoffs %v, want one of %v", d, DefaultMinBackoff)
	}
}

func TestDoNotLeaderWithoutHint(t *testing.T) {
	res := newFakeResolver(RangeInfo{Desc: desc(1, "", "", 1, 1, 1, 2, 3), Leader: leaderOn(2)})
	r, _, sleeps := testRouter(t, res)
	// The cached leader, then the other replicas in order, then (after a
	// backoff) a new round: the leader was elected meanwhile.
	s := &script{t: t, steps: []step{
		{store: 2, err: notLeader(0)},
		{store: 1, err: notLeader(0)},
		{store: 3, err: notLeader(0)},
		{store: 1, err: notLeader(0)},
		{store: 2},
	}}
	if _, err := Do(context.Background(), r, Request{Key: []byte("k"), Write: true}, s.send); err != nil {
		t.Fatal(err)
	}
	if d := sleeps.durations(); !slices.Equal(d, []time.Duration{DefaultMinBackoff}) {
		t.Fatalf("backoffs %v, want one full round's", d)
	}
	if got := leaderOf(t, r, "k"); got != 2 {
		t.Fatalf("cached leader on store %d, want 2 (it took the write)", got)
	}
}

func TestDoEpochNotMatch(t *testing.T) {
	for _, tc := range []struct {
		key         string
		wantID      uint64
		wantVersion uint64
	}{
		{"c", 1, 2}, // the left half kept the range ID, at a new version
		{"p", 2, 1}, // the right half is a new range
	} {
		t.Run(tc.key, func(t *testing.T) {
			res := newFakeResolver(RangeInfo{Desc: desc(1, "a", "z", 1, 1, 1, 2, 3), Leader: leaderOn(1)})
			r, _, sleeps := testRouter(t, res)
			left, right := desc(1, "a", "m", 2, 1, 1, 2, 3), desc(2, "m", "z", 1, 1, 1, 2, 3)
			s := &script{t: t, steps: []step{
				{store: 1, check: wantHeader(1, 1), err: epochNotMatch(left, right)},
				{check: wantHeader(tc.wantID, tc.wantVersion)},
			}}
			if _, err := Do(context.Background(), r, Request{Key: []byte(tc.key)}, s.send); err != nil {
				t.Fatal(err)
			}
			if got := cacheIDs(r.cache); !slices.Equal(got, []string{"1[a,m)v2", "2[m,z)v1"}) {
				t.Fatalf("cache holds %v", got)
			}
			if n := res.numCalls(); n != 1 {
				t.Fatalf("resolver called %d times, want 1 (the error carried the descriptors)", n)
			}
			if len(sleeps.durations()) != 0 {
				t.Fatal("backed off")
			}
			checkCache(t, r)
		})
	}
}

func TestDoEpochNotMatchFromLaggingReplica(t *testing.T) {
	cur := desc(1, "a", "m", 2, 1, 1, 2, 3)
	res := newFakeResolver(RangeInfo{Desc: cur})
	r, _, _ := testRouter(t, res)
	// Store 1 has not applied the split yet: it knows only version 1.
	s := &script{t: t, steps: []step{
		{store: 1, err: epochNotMatch(desc(1, "a", "z", 1, 1, 1, 2, 3))},
		{store: 2, check: wantHeader(1, 2)},
	}}
	if _, err := Do(context.Background(), r, Request{Key: []byte("b")}, s.send); err != nil {
		t.Fatal(err)
	}
	if got := cacheIDs(r.cache); !slices.Equal(got, []string{"1[a,m)v2"}) {
		t.Fatalf("cache holds %v: the lagging replica's descriptor replaced a newer one", got)
	}
}

func TestDoInvalidatesAndLooksUpAgain(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  func(old *flotillapb.RangeDescriptor) *flotillapb.Error
	}{
		{"RangeNotFound", func(old *flotillapb.RangeDescriptor) *flotillapb.Error { return rangeNotFound(old.GetRangeId()) }},
		{"KeyNotInRange", func(old *flotillapb.RangeDescriptor) *flotillapb.Error { return keyNotInRange("k", nil) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			old := desc(1, "a", "z", 1, 1, 1, 2, 3)
			res := newFakeResolver(RangeInfo{Desc: old, Leader: leaderOn(1)})
			r, _, _ := testRouter(t, res)
			moved := desc(7, "j", "m", 1, 1, 4, 5, 6)
			s := &script{t: t, steps: []step{
				{store: 1, check: wantHeader(1, 1), err: tc.err(old), before: func() {
					res.set(RangeInfo{Desc: moved, Leader: leaderOn(5)})
				}},
				{store: 5, check: wantHeader(7, 1)},
			}}
			if _, err := Do(context.Background(), r, Request{Key: []byte("k"), Write: true}, s.send); err != nil {
				t.Fatal(err)
			}
			if n := res.numCalls(); n != 2 {
				t.Fatalf("resolver called %d times, want 2", n)
			}
			if got := cacheIDs(r.cache); !slices.Equal(got, []string{"7[j,m)v1"}) {
				t.Fatalf("cache holds %v", got)
			}
		})
	}
}

func TestDoKeyNotInRangeCarriesDescriptor(t *testing.T) {
	res := newFakeResolver(RangeInfo{Desc: desc(1, "a", "z", 1, 1, 1)})
	r, _, _ := testRouter(t, res)
	cur := desc(1, "a", "m", 2, 1, 1)
	s := &script{t: t, steps: []step{
		{store: 1, err: keyNotInRange("b", cur), before: func() { res.set(RangeInfo{Desc: cur}) }},
		{store: 1, check: wantHeader(1, 2)},
	}}
	if _, err := Do(context.Background(), r, Request{Key: []byte("b")}, s.send); err != nil {
		t.Fatal(err)
	}
	if n := res.numCalls(); n != 1 {
		t.Fatalf("resolver called %d times, want 1: the error carried the descriptor", n)
	}
}

func TestDoRequestSpanningRangesFails(t *testing.T) {
	res := newFakeResolver(RangeInfo{Desc: desc(1, "a", "m", 1, 1, 1)})
	r, _, _ := testRouter(t, res)
	// A batch routed by "b" also writes "q", outside the range.
	s := &script{t: t, steps: []step{{store: 1, err: keyNotInRange("q", desc(1, "a", "m", 1, 1, 1))}}}
	_, err := Do(context.Background(), r, Request{Key: []byte("b"), Write: true}, s.send)
	fe := asFE(t, err)
	if fe.GetKeyNotInRange() == nil || fe.GetOutcome() != flotillapb.Outcome_NOT_APPLIED || len(s.sent) != 1 {
		t.Fatalf("Do = %v after %d attempts, want KeyNotInRange (not applied) at once", fe, len(s.sent))
	}
}

func TestDoServerBusyBacksOff(t *testing.T) {
	res := newFakeResolver(RangeInfo{Desc: desc(1, "", "", 1, 1, 1, 2, 3), Leader: leaderOn(1)})
	r, _, sleeps := testRouter(t, res)
	s := &script{t: t, steps: []step{{store: 1, err: serverBusy()}, {store: 1, err: serverBusy()}, {store: 1, err: serverBusy()}, {store: 1}}}
	if _, err := Do(context.Background(), r, Request{Key: []byte("k"), Write: true}, s.send); err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{DefaultMinBackoff, 2 * DefaultMinBackoff, 4 * DefaultMinBackoff}
	if d := sleeps.durations(); !slices.Equal(d, want) {
		t.Fatalf("backoffs %v, want %v", d, want)
	}
}

func TestDoBackoffIsCappedAndJittered(t *testing.T) {
	res := newFakeResolver(RangeInfo{Desc: desc(1, "", "", 1, 1, 1), Leader: leaderOn(1)})
	sleeps := &sleepRecorder{}
	var asked []time.Duration
	r, err := New(Config{Resolver: res, MaxBackoff: 50 * time.Millisecond, Testing: &TestingKnobs{
		Sleep:  sleeps.Sleep,
		Jitter: func(d time.Duration) time.Duration { asked = append(asked, d); return d / 2 },
	}})
	if err != nil {
		t.Fatal(err)
	}
	var steps []step
	for range 6 {
		steps = append(steps, step{err: serverBusy()})
	}
	s := &script{t: t, steps: append(steps, step{})}
	if _, err := Do(context.Background(), r, Request{Key: []byte("k")}, s.send); err != nil {
		t.Fatal(err)
	}
	ms := time.Millisecond
	if want := []time.Duration{10 * ms, 20 * ms, 40 * ms, 50 * ms, 50 * ms, 50 * ms}; !slices.Equal(asked, want) {
		t.Fatalf("backoff bounds %v, want %v", asked, want)
	}
	if want := []time.Duration{5 * ms, 10 * ms, 20 * ms, 25 * ms, 25 * ms, 25 * ms}; !slices.Equal(sleeps.durations(), want) {
		t.Fatalf("slept %v, want %v", sleeps.durations(), want)
	}
	// The default jitter stays within bounds.
	r2, _ := New(Config{Resolver: res})
	for range 100 {
		if d := r2.jitter(10 * ms); d < 0 || d > 10*ms {
			t.Fatalf("jitter(10ms) = %v", d)
		}
	}
}

func TestDoUnavailable(t *testing.T) {
	const (
		notApplied  = flotillapb.Outcome_NOT_APPLIED
		unknown     = flotillapb.Outcome_UNKNOWN
		unspecified = flotillapb.Outcome_OUTCOME_UNSPECIFIED
	)
	for _, tc := range []struct {
		name        string
		req         Request
		errOutcome  flotillapb.Outcome
		wantStores  []uint64 // attempts made
		wantOutcome flotillapb.Outcome
		wantErr     bool
	}{
		{"read tries another replica", Request{}, unspecified, []uint64{1, 2}, unspecified, false},
		{"write not applied is retried", Request{Write: true}, notApplied, []uint64{1, 2}, unspecified, false},
		{"write unknown is returned", Request{Write: true}, unknown, []uint64{1}, unknown, true},
		{"write without outcome counts as unknown", Request{Write: true}, unspecified, []uint64{1}, unknown, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := newFakeResolver(RangeInfo{Desc: desc(1, "", "", 1, 1, 1, 2, 3), Leader: leaderOn(1)})
			r, _, sleeps := testRouter(t, res)
			s := &script{t: t, steps: []step{{store: 1, err: unavailable(tc.errOutcome)}, {store: 2}}}
			tc.req.Key = []byte("k")
			_, err := Do(context.Background(), r, tc.req, s.send)
			if tc.wantErr != (err != nil) {
				t.Fatalf("Do error %v, want error %v", err, tc.wantErr)
			}
			if err != nil {
				if fe := asFE(t, err); fe.GetOutcome() != tc.wantOutcome || fe.GetUnavailable() == nil {
					t.Fatalf("Do error %v, want Unavailable with outcome %v", fe, tc.wantOutcome)
				}
			}
			if got := s.stores(); !slices.Equal(got, tc.wantStores) {
				t.Fatalf("attempts went to stores %v, want %v", got, tc.wantStores)
			}
			if len(sleeps.durations()) != 0 {
				t.Fatalf("backed off before a full round: %v", sleeps.durations())
			}
		})
	}
}

func TestDoUnavailableEveryReplicaBacksOffPerRound(t *testing.T) {
	res := newFakeResolver(RangeInfo{Desc: desc(1, "", "", 1, 1, 1, 2, 3)})
	r, _, sleeps := testRouter(t, res)
	var steps []step
	for range 2 {
		for s := uint64(1); s <= 3; s++ {
			steps = append(steps, step{store: s, err: unavailable(flotillapb.Outcome_OUTCOME_UNSPECIFIED)})
		}
	}
	s := &script{t: t, steps: append(steps, step{store: 1})}
	if _, err := Do(context.Background(), r, Request{Key: []byte("k")}, s.send); err != nil {
		t.Fatal(err)
	}
	if d := sleeps.durations(); len(d) != 2 {
		t.Fatalf("backoffs %v, want one per full round (2)", d)
	}
}

func TestDoInvalidArgument(t *testing.T) {
	for _, write := range []bool{false, true} {
		res := newFakeResolver(RangeInfo{Desc: desc(1, "", "", 1, 1, 1, 2, 3), Leader: leaderOn(1)})
		r, _, sleeps := testRouter(t, res)
		s := &script{t: t, steps: []step{{store: 1, err: invalidArgument()}}}
		_, err := Do(context.Background(), r, Request{Key: []byte("k"), Write: write}, s.send)
		want := flotillapb.Outcome_OUTCOME_UNSPECIFIED
		if write {
			want = flotillapb.Outcome_NOT_APPLIED
		}
		if fe := asFE(t, err); fe.GetInvalidArgument() == nil || fe.GetOutcome() != want {
			t.Fatalf("write=%v: Do error %v, want InvalidArgument with outcome %v", write, fe, want)
		}
		if len(s.sent) != 1 || len(sleeps.durations()) != 0 {
			t.Fatalf("write=%v: %d attempts, %d backoffs; want 1 and 0", write, len(s.sent), len(sleeps.durations()))
		}
	}
}

func TestDoLookupInvalidArgument(t *testing.T) {
	res := newFakeResolver()
	res.setErr(invalidArgument())
	r, _, sleeps := testRouter(t, res)
	_, err := Do(context.Background(), r, Request{Key: []byte("k"), Write: true}, (&script{t: t}).send)
	if fe := asFE(t, err); fe.GetInvalidArgument() == nil || fe.GetOutcome() != flotillapb.Outcome_NOT_APPLIED {
		t.Fatalf("Do error %v, want InvalidArgument, not applied", fe)
	}
	if len(sleeps.durations()) != 0 {
		t.Fatal("backed off")
	}
}

func TestDoDoesNotMutateSendersError(t *testing.T) {
	res := newFakeResolver(RangeInfo{Desc: desc(1, "", "", 1, 1, 1), Leader: leaderOn(1)})
	r, _, _ := testRouter(t, res)
	orig := invalidArgument()
	orig.Outcome = flotillapb.Outcome_OUTCOME_UNSPECIFIED
	keep := proto.Clone(orig)
	_, err := Do(context.Background(), r, Request{Key: []byte("k"), Write: true}, (&script{t: t, steps: []step{{err: orig}}}).send)
	if asFE(t, err).GetOutcome() != flotillapb.Outcome_NOT_APPLIED || !proto.Equal(orig, keep) {
		t.Fatalf("Do returned %v and changed the sender's error to %v", err, orig)
	}
}

func TestDoForeignErrors(t *testing.T) {
	res := newFakeResolver(RangeInfo{Desc: desc(1, "", "", 1, 1, 1, 2), Leader: leaderOn(1)})
	r, _, _ := testRouter(t, res)
	// A plain error from send is Unavailable: a read moves on, a write's
	// outcome is unknown.
	s := &script{t: t, steps: []step{{store: 1, err: errors.New("connection reset")}, {store: 2}}}
	if _, err := Do(context.Background(), r, Request{Key: []byte("k")}, s.send); err != nil {
		t.Fatal(err)
	}
	s = &script{t: t, steps: []step{{store: 1, err: errors.New("connection reset")}}}
	_, err := Do(context.Background(), r, Request{Key: []byte("k"), Write: true}, s.send)
	if fe := asFE(t, err); fe.GetOutcome() != flotillapb.Outcome_UNKNOWN || !strings.Contains(fe.GetMessage(), "connection reset") {
		t.Fatalf("Do error %v, want the cause with an unknown outcome", fe)
	}
}

// TestDoDeadline runs in a synctest bubble: backoffs sleep for real, in
// virtual time, until the request's deadline.
func TestDoDeadline(t *testing.T) {
	for _, tc := range []struct {
		name        string
		req         Request
		errs        func(attempt int) error
		resolverErr error
		wantOutcome flotillapb.Outcome
		wantDetail  string
	}{{
		name:        "write only refused stays not applied",
		req:         Request{Write: true},
		errs:        func(int) error { return serverBusy() },
		wantOutcome: flotillapb.Outcome_NOT_APPLIED,
		wantDetail:  "ServerBusy",
	}, {
		name:        "write never sent is not applied",
		req:         Request{Write: true},
		resolverErr: errors.New("placement driver unreachable"),
		wantOutcome: flotillapb.Outcome_NOT_APPLIED,
		wantDetail:  "Unavailable",
	}, {
		name:        "read",
		req:         Request{},
		errs:        func(int) error { return notLeader(0) },
		wantOutcome: flotillapb.Outcome_OUTCOME_UNSPECIFIED,
		wantDetail:  "NotLeader",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				res := newFakeResolver(RangeInfo{Desc: desc(1, "", "", 1, 1, 1, 2, 3)})
				res.setErr(tc.resolverErr)
				r, err := New(Config{Resolver: res})
				if err != nil {
					t.Fatal(err)
				}
				attempts := 0
				send := func(context.Context, Target) (string, error) {
					attempts++
					return "", tc.errs(attempts - 1)
				}
				start := time.Now()
				ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
				defer cancel()
				tc.req.Key = []byte("k")
				_, err = Do(ctx, r, tc.req, send)
				if elapsed := time.Since(start); elapsed != 3*time.Second {
					t.Errorf("Do returned after %v, want at its deadline", elapsed)
				}
				fe := asFE(t, err)
				if fe.GetOutcome() != tc.wantOutcome || !strings.Contains(fmt.Sprintf("%T", fe.GetDetail()), tc.wantDetail) {
					t.Fatalf("Do error %v, want %s with outcome %v", fe, tc.wantDetail, tc.wantOutcome)
				}
				if !strings.Contains(fe.GetMessage(), context.DeadlineExceeded.Error()) {
					t.Errorf("message %q does not say the deadline passed", fe.GetMessage())
				}
				if tc.errs != nil && attempts < 5 {
					t.Errorf("only %d attempts in 3 s", attempts)
				}
			})
		})
	}
}

func TestDoDefaultTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		res := newFakeResolver(RangeInfo{Desc: desc(1, "", "", 1, 1, 1)})
		r, err := New(Config{Resolver: res, DefaultTimeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		_, err = Do(t.Context(), r, Request{Key: []byte("k")}, func(context.Context, Target) (string, error) {
			return "", serverBusy()
		})
		if elapsed := time.Since(start); err == nil || elapsed != 5*time.Second {
			t.Fatalf("Do = %v after %v, want an error after the default timeout", err, elapsed)
		}
	})
}

func TestDoReadAttemptTimeout(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		res := newFakeResolver(RangeInfo{Desc: desc(1, "", "", 1, 1, 1, 2), Leader: leaderOn(1)})
		r, err := New(Config{Resolver: res, ReadAttemptTimeout: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		var stores []uint64
		start := time.Now()
		_, err = Do(t.Context(), r, Request{Key: []byte("k")}, func(ctx context.Context, tg Target) (string, error) {
			stores = append(stores, uint64(tg.Store))
			if tg.Store == 1 { // cut off from its peers: hangs
				<-ctx.Done()
				return "", ctx.Err()
			}
			return "ok", nil
		})
		if err != nil || !slices.Equal(stores, []uint64{1, 2}) || time.Since(start) != time.Second {
			t.Fatalf("Do = %v via %v after %v; want success at store 2 after 1s", err, stores, time.Since(start))
		}
	})
}

func TestDoNeverRetriesAfterContextEnds(t *testing.T) {
	res := newFakeResolver(RangeInfo{Desc: desc(1, "", "", 1, 1, 1, 2, 3), Leader: leaderOn(1)})
	r, _, _ := testRouter(t, res)
	// Already canceled: nothing is sent.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s := &script{t: t}
	_, err := Do(ctx, r, Request{Key: []byte("k"), Write: true}, s.send)
	if fe := asFE(t, err); fe.GetOutcome() != flotillapb.Outcome_NOT_APPLIED || len(s.sent) != 0 {
		t.Fatalf("Do = %v after %d attempts, want not applied and none", fe, len(s.sent))
	}
	// Canceled by the attempt: no retry, even one that would be at once.
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	s = &script{t: t, steps: []step{{store: 1, err: notLeader(2), before: cancel}}}
	_, err = Do(ctx, r, Request{Key: []byte("k"), Write: true}, s.send)
	if fe := asFE(t, err); fe.GetNotLeader() == nil || fe.GetOutcome() != flotillapb.Outcome_NOT_APPLIED {
		t.Fatalf("Do error %v, want the NotLeader, not applied", fe)
	}
}

// TestStaleCacheCorrected: requests routed by a stale cache succeed
// without the caller seeing an error (the router tests).
func TestStaleCacheCorrected(t *testing.T) {
	t.Run("leader change", func(t *testing.T) {
		res := newFakeResolver(RangeInfo{Desc: desc(1, "", "", 1, 1, 1, 2, 3), Leader: leaderOn(1)})
		r, _, _ := testRouter(t, res)
		if _, err := r.Lookup(context.Background(), []byte("k")); err != nil {
			t.Fatal(err)
		}
		// Leadership moved to store 3; the former leader knows.
		s := &script{t: t, steps: []step{{store: 1, err: notLeader(3)}, {store: 3}, {store: 3}}}
		for range 2 {
			if _, err := Do(context.Background(), r, Request{Key: []byte("k"), Write: true}, s.send); err != nil {
				t.Fatalf("caller saw %v", err)
			}
		}
	})
	t.Run("replica move", func(t *testing.T) {
		before := RangeInfo{Desc: desc(1, "", "", 1, 1, 1, 2, 3), Leader: leaderOn(1)}
		after := RangeInfo{Desc: desc(1, "", "", 1, 2, 2, 3, 4), Leader: leaderOn(4)}
		res := newFakeResolver(before)
		r, _, _ := testRouter(t, res)
		if _, err := r.Lookup(context.Background(), []byte("k")); err != nil {
			t.Fatal(err)
		}
		// The range left store 1 (which was its leader); the placement
		// driver knows the new descriptor.
		res.set(after)
		s := &script{t: t, steps: []step{
			{store: 1, err: rangeNotFound(1)},
			{store: 4, check: func(t *testing.T, tg Target) {
				if tg.Range.GetEpoch().GetConfVer() != 2 {
					t.Errorf("routed by %v, want the new descriptor", tg.Range)
				}
			}},
		}}
		if _, err := Do(context.Background(), r, Request{Key: []byte("k"), Write: true}, s.send); err != nil {
			t.Fatalf("caller saw %v", err)
		}
	})
	t.Run("replica move, placement driver behind", func(t *testing.T) {
		res := newFakeResolver(RangeInfo{Desc: desc(1, "", "", 1, 1, 1, 2, 3), Leader: leaderOn(1)})
		r, _, _ := testRouter(t, res)
		// The resolver still answers with the old descriptor: the router
		// moves on to the other replicas, which know the new leader.
		s := &script{t: t, steps: []step{
			{store: 1, err: rangeNotFound(1)},
			{store: 2, err: notLeader(4)},
			{store: 4},
		}}
		if _, err := Do(context.Background(), r, Request{Key: []byte("k"), Write: true}, s.send); err != nil {
			t.Fatalf("caller saw %v", err)
		}
	})
}
