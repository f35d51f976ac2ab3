// Copyright 2026 The Flotilla Authors. All rights reserved.

package router

import (
	"context"
	"fmt"
	"testing"

	"github.com/flotilladb/flotilla/rpc/flotillapb"
)

// zonedResolver is a fakeResolver that knows the stores' zones.
type zonedResolver struct {
	*fakeResolver
	zones map[flotillapb.NodeID]string
}

func (z zonedResolver) Zone(store flotillapb.NodeID) string { return z.zones[store] }

// TestReadFromChoosesReplica: a read that allows any replica goes to a
// Local store holding one first; then, from a follower, to a replica
// other than the leader (in the client's zone first); from the nearest,
// to one in the client's zone (the leader first among them), else the
// leader. Writes and leader reads go to the leader. Each attempt's header
// carries the choice; when the chosen replica fails, the next goes
// elsewhere, the leader last.
func TestReadFromChoosesReplica(t *testing.T) {
	res := zonedResolver{
		fakeResolver: newFakeResolver(RangeInfo{Desc: desc(1, "", "", 1, 1, 1, 2, 3, 4), Leader: leaderOn(1)}),
		zones:        map[flotillapb.NodeID]string{1: "a", 2: "b", 3: "a", 4: "c"},
	}
	for _, tc := range []struct {
		name  string
		from  flotillapb.ReadFrom
		zone  string
		write bool
		local flotillapb.NodeID
		want  []uint64 // any of them
	}{
		{name: "leader", from: flotillapb.ReadFrom_READ_FROM_LEADER, want: []uint64{1}},
		{name: "write ignores it", from: flotillapb.ReadFrom_READ_FROM_FOLLOWER, write: true, want: []uint64{1}},
		{name: "follower", from: flotillapb.ReadFrom_READ_FROM_FOLLOWER, want: []uint64{2, 3, 4}},
		{name: "follower in zone", from: flotillapb.ReadFrom_READ_FROM_FOLLOWER, zone: "a", want: []uint64{3}},
		{name: "follower local", from: flotillapb.ReadFrom_READ_FROM_FOLLOWER, zone: "a", local: 4, want: []uint64{4}},
		{name: "local leader", from: flotillapb.ReadFrom_READ_FROM_FOLLOWER, local: 1, want: []uint64{1}},
		{name: "nearest leader in zone", from: flotillapb.ReadFrom_READ_FROM_NEAREST, zone: "a", want: []uint64{1}},
		{name: "nearest in zone", from: flotillapb.ReadFrom_READ_FROM_NEAREST, zone: "c", want: []uint64{4}},
		{name: "nearest no zone", from: flotillapb.ReadFrom_READ_FROM_NEAREST, want: []uint64{1}},
		{name: "nearest unknown zone", from: flotillapb.ReadFrom_READ_FROM_NEAREST, zone: "x", want: []uint64{1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, _, _ := testRouter(t, res)
			if tc.local != 0 {
				r.cfg.Local = func(s flotillapb.NodeID) bool { return s == tc.local }
			}
			seen := map[uint64]bool{}
			for range 40 {
				s := &script{t: t, steps: []step{{check: func(t *testing.T, tg Target) {
					want := tc.from
					if tc.write {
						want = flotillapb.ReadFrom_READ_FROM_LEADER
					}
					if tg.Header.GetReadFrom() != want || (!tc.write && tg.Header.GetZone() != tc.zone) {
						t.Errorf("header %v", tg.Header)
					}
				}}}}
				if _, err := Do(context.Background(), r, Request{Key: []byte("k"), Write: tc.write, ReadFrom: tc.from, Zone: tc.zone}, s.send); err != nil {
					t.Fatal(err)
				}
				seen[s.stores()[0]] = true
			}
			want := map[uint64]bool{}
			for _, w := range tc.want {
				want[w] = true
			}
			if fmt.Sprint(seen) != fmt.Sprint(want) {
				t.Errorf("reads went to stores %v, want %v", seen, want)
			}
		})
	}

	// Followers that cannot serve: the next attempts go to the others,
	// then to the leader.
	r, _, _ := testRouter(t, res)
	s := &script{t: t, steps: []step{{err: unavailable(flotillapb.Outcome_OUTCOME_UNSPECIFIED)}, {err: notLeader(1)},
		{err: unavailable(flotillapb.Outcome_OUTCOME_UNSPECIFIED)}, {store: 1}}}
	if _, err := Do(context.Background(), r, Request{Key: []byte("k"), ReadFrom: flotillapb.ReadFrom_READ_FROM_FOLLOWER}, s.send); err != nil {
		t.Fatal(err)
	}
	got := s.stores()
	if len(got) != 4 || got[3] != 1 || got[0] == 1 || got[1] == 1 || got[2] == 1 || got[0] == got[1] || got[1] == got[2] || got[0] == got[2] {
		t.Fatalf("attempts went to %v; want the three followers, then the leader", got)
	}
}
