// Copyright 2026 The Flotilla Authors. All rights reserved.

package placement

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flotilladb/flotilla/multiraft"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
)

var convergeSeeds = []uint64{49, 50}

// TestBalanceSizeConverges: with ranges of mixed sizes, the
// driver's balancers (replicas, size, leaders; several operators per
// round) reach a state where no operator runs, with no fault at all.
func TestBalanceSizeConverges(t *testing.T) {
	const mib = 1 << 20
	for _, seed := range convergeSeeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(seed, seed^0xb1))
			s := &dsim{t: t, rng: rng, now: time.Unix(1_000_000, 0), live: map[multiraft.NodeID]bool{},
				ranges: map[multiraft.GroupID]*simRange{}, nextID: 1000}
			s.d = NewDriver(DriverConfig{LivenessWindow: time.Second, StoreDownTimeout: 3 * time.Second,
				OperatorTimeout: 20 * time.Second, Clock: func() time.Time { return s.now }})
			nStores := 4 + rng.IntN(3)
			s.meta = &flotillapb.ClusterMeta{ClusterId: "sim"}
			for i := 1; i <= nStores; i++ {
				s.meta.Nodes = append(s.meta.Nodes, &flotillapb.NodeDescriptor{NodeId: uint64(i), Address: "x"})
				s.live[multiraft.NodeID(i)] = true
			}
			sizes := map[multiraft.GroupID]int64{}
			nRanges := 8 + rng.IntN(16)
			for i := range nRanges {
				id := multiraft.GroupID(10 + i)
				d := &flotillapb.RangeDescriptor{RangeId: uint64(id), StartKey: []byte(fmt.Sprintf("k%03d", i)),
					EndKey: []byte(fmt.Sprintf("k%03d", i+1)), Epoch: &flotillapb.RangeEpoch{ConfVer: 1, Version: 1}}
				// Skewed placement: the big ranges start on stores 1-3.
				stores := rng.Perm(nStores)[:3]
				if i%3 == 0 {
					stores = []int{0, 1, 2}
				}
				for _, st := range stores {
					d.Replicas = append(d.Replicas, &flotillapb.ReplicaDescriptor{StoreId: uint64(st + 1), ReplicaId: uint64(multiraft.MakeReplicaID(multiraft.NodeID(st+1), 1))})
				}
				s.ranges[id] = &simRange{desc: d, catchUp: map[multiraft.ReplicaID]int{}}
				sizes[id] = int64(1+rng.IntN(3)) * mib
				if i%3 == 0 {
					sizes[id] = int64(4+rng.IntN(8)) * mib
				}
			}
			quiet, started := 0, 0
			for i := 0; i < 600 && quiet < 20; i++ {
				s.now = s.now.Add(simRound)
				for id := range s.live {
					s.d.ObserveStore(&flotillapb.StoreHeartbeatRequest{NodeId: uint64(id)})
				}
				ids := make([]multiraft.GroupID, 0, len(s.ranges))
				for id := range s.ranges {
					ids = append(ids, id)
				}
				slices.Sort(ids)
				for _, id := range ids {
					r := s.ranges[id]
					for l, n := range r.catchUp {
						if n > 0 {
							r.catchUp[l] = n - 1
						}
					}
					if r.leader == 0 || r.desc.Replica(r.leader) == nil {
						voters, _ := membersOf(r.desc)
						r.leader, r.term = multiraft.ReplicaID(voters[0].GetReplicaId()), r.term+1
					}
					hb := s.heartbeat(id, r)
					hb.Stats = &flotillapb.RangeStats{KeyBytes: sizes[id]}
					if step := s.observe(hb); step != nil {
						s.exec(id, step)
					}
				}
				before := s.d.Operators(s.meta).GetCounts()
				s.d.Balance(s.meta)
				after := s.d.Operators(s.meta).GetCounts()
				started += int(after[OpRunning] - before[OpRunning])
				if after[OpRunning] == 0 {
					quiet++
				} else {
					quiet = 0
				}
			}
			ops := s.d.Operators(s.meta)
			if quiet < 20 {
				var recent []string
				for _, o := range ops.GetOperators() {
					recent = append(recent, fmt.Sprintf("r%d %s %s: %s", o.GetRangeId(), o.GetSource(), o.GetState(), o.GetReason()))
				}
				if len(recent) > 12 {
					recent = recent[len(recent)-12:]
				}
				t.Fatalf("%d stores, %d ranges: balancing never settles (%v); recent operators:\n%s", nStores, nRanges, ops.GetCounts(), strings.Join(recent, "\n"))
			}
			t.Logf("%d stores, %d ranges: settled; operators %v", nStores, nRanges, ops.GetCounts())
		})
	}
}
