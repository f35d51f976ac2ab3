// Copyright 2026 The Flotilla Authors. All rights reserved.

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flotilladb/flotilla"
	"github.com/flotilladb/flotilla/internal/testutil"
	"github.com/flotilladb/flotilla/placement"
)

// placementFlags make the placement driver act in seconds, not minutes: a
// store is live if it heartbeated within a second and down after three.
var placementFlags = []string{"--heartbeat-interval", "200ms", "--liveness-window", "1s", "--store-down-timeout", "3s"}

// placementCluster is a cluster of node processes started one by one.
type placementCluster struct {
	t     *testing.T
	dir   string
	procs []*proc
	// ids maps each process to its node (store) ID, once known.
	ids map[*proc]uint64
	// flags are added to every node's start command.
	flags []string
}

func newPlacementCluster(t *testing.T) *placementCluster {
	c := &placementCluster{t: t, dir: t.TempDir(), ids: map[*proc]uint64{}}
	t.Cleanup(func() {
		for _, p := range c.procs {
			p.kill()
		}
		if t.Failed() {
			for i, p := range c.procs {
				t.Logf("node process %d (store %d, %s) log:\n%s", i+1, c.ids[p], p.addr, tail(p.log))
			}
		}
	})
	return c
}

// start starts a node process that joins the nodes at join (none: it
// waits for `flotilla init`) and waits until it serves /status.
func (c *placementCluster) start(join ...string) *proc {
	t := c.t
	t.Helper()
	i := len(c.procs) + 1
	p := &proc{t: t, addr: freeAddr(t), httpAddr: freeAddr(t), log: filepath.Join(c.dir, fmt.Sprintf("node%d.log", i))}
	p.args = append([]string{"start", "--store", filepath.Join(c.dir, fmt.Sprintf("node%d", i)),
		"--listen-addr", p.addr, "--http-addr", p.httpAddr, "--log-level", "info"}, placementFlags...)
	p.args = append(p.args, c.flags...)
	if len(join) > 0 {
		p.args = append(p.args, "--join", strings.Join(join, ","))
	}
	c.procs = append(c.procs, p)
	startProc(t, p)
	testutil.SucceedsWithin(t, 30*time.Second, func() error {
		_, err := nodeStatus(p.httpAddr)
		return err
	})
	return p
}

// storeID waits until p is a member and returns its node ID.
func (c *placementCluster) storeID(p *proc) uint64 {
	c.t.Helper()
	if id := c.ids[p]; id != 0 {
		return id
	}
	testutil.SucceedsWithin(c.t, 30*time.Second, func() error {
		st, err := nodeStatus(p.httpAddr)
		if err != nil {
			return err
		}
		if st.GetNodeId() == 0 || st.GetState() != "running" {
			return fmt.Errorf("node %s: %s, node ID %d", p.addr, st.GetState(), st.GetNodeId())
		}
		c.ids[p] = st.GetNodeId()
		return nil
	})
	return c.ids[p]
}

// proc returns the process of store id.
func (c *placementCluster) proc(id uint64) *proc {
	c.t.Helper()
	for p, pid := range c.ids {
		if pid == id {
			return p
		}
	}
	c.t.Fatalf("no process for store %d", id)
	return nil
}

func (c *placementCluster) running() []*proc {
	var out []*proc
	for _, p := range c.procs {
		if p.running() {
			out = append(out, p)
		}
	}
	return out
}

func (c *placementCluster) addrs(procs []*proc) []string {
	var out []string
	for _, p := range procs {
		out = append(out, p.addr)
	}
	return out
}

// The JSON the cluster commands print, as their help documents it.
type (
	e2eStore struct {
		StoreID uint64 `json:"store_id"`
		Address string `json:"address"`
		Live    bool   `json:"live"`
		State   string `json:"state"`
		Ranges  int    `json:"ranges"`
		Leaders int    `json:"leaders"`
	}
	e2eRange struct {
		RangeID     uint64 `json:"range_id"`
		ConfVer     uint64 `json:"conf_ver"`
		LeaderStore uint64 `json:"leader_store"`
		Replicas    []struct {
			StoreID   uint64 `json:"store_id"`
			ReplicaID uint64 `json:"replica_id"`
			Type      string `json:"type"`
		} `json:"replicas"`
	}
	e2eOperators struct {
		Operators []struct {
			ID      uint64 `json:"id"`
			RangeID uint64 `json:"range_id"`
			Source  string `json:"source"`
			Reason  string `json:"reason"`
			State   string `json:"state"`
		} `json:"operators"`
		Counts map[string]uint64 `json:"counts"`
	}
)

// clusterJSON runs `flotilla cluster ARGS --host HOST --format json` and
// decodes its output into v.
func clusterJSON(t *testing.T, host string, v any, args ...string) error {
	args = append(append([]string{"cluster"}, args...), "--host", host, "--format", "json")
	out, errOut, err := cli(t, args...)
	if err != nil {
		return fmt.Errorf("flotilla %s: %v: %s", strings.Join(args, " "), err, errOut)
	}
	if err := json.Unmarshal([]byte(out), v); err != nil {
		return fmt.Errorf("flotilla %s: %v:\n%s", strings.Join(args, " "), err, out)
	}
	return nil
}

// storeStatus returns store id as `cluster status` shows it.
func storeStatus(t *testing.T, host string, id uint64) (e2eStore, error) {
	var stores []e2eStore
	if err := clusterJSON(t, host, &stores, "status"); err != nil {
		return e2eStore{}, err
	}
	for _, s := range stores {
		if s.StoreID == id {
			return s, nil
		}
	}
	return e2eStore{}, fmt.Errorf("store %d not listed: %+v", id, stores)
}

// firstRange returns the first range as `cluster ranges` shows it: its
// voters' and learners' stores (sorted) and its leader's store.
func firstRange(t *testing.T, host string) (voters, learners []uint64, leader uint64, err error) {
	var ranges []e2eRange
	if err := clusterJSON(t, host, &ranges, "ranges"); err != nil {
		return nil, nil, 0, err
	}
	for _, r := range ranges {
		if r.RangeID != uint64(placement.FirstRangeID) {
			continue
		}
		for _, rep := range r.Replicas {
			if rep.Type == "learner" {
				learners = append(learners, rep.StoreID)
			} else {
				voters = append(voters, rep.StoreID)
			}
		}
		slices.Sort(voters)
		slices.Sort(learners)
		return voters, learners, r.LeaderStore, nil
	}
	return nil, nil, 0, fmt.Errorf("range %d not listed: %+v", placement.FirstRangeID, ranges)
}

// placementGroup returns, from the /status of every running node, the
// stores holding a replica of the placement group (sorted) and the process
// leading it (nil if none says it does). /status shows no descriptor for
// the placement group, so voters and learners are not told apart.
func (c *placementCluster) placementGroup() (holders []uint64, leader *proc, err error) {
	for _, p := range c.running() {
		st, err := nodeStatus(p.httpAddr)
		if err != nil {
			return nil, nil, err
		}
		for _, r := range st.GetReplicas() {
			if r.GetGroupId() != uint64(placement.GroupID) {
				continue
			}
			holders = append(holders, st.GetNodeId())
			if r.GetReplicaId() == r.GetLeaderReplicaId() {
				leader = p
			}
		}
	}
	slices.Sort(holders)
	return holders, leader, nil
}

// healed returns a condition: range 2 has three voters, no learner and a
// leader, and the placement group three replicas with a leader, all on
// running stores none of which is in gone; host answers the CLI.
func (c *placementCluster) healed(host func() string, gone ...uint64) func() error {
	isGone := func(s uint64) bool { return slices.Contains(gone, s) }
	return func() error {
		v, l, leader, err := firstRange(c.t, host())
		if err != nil {
			return err
		}
		if len(v) != 3 || len(l) != 0 || leader == 0 || slices.ContainsFunc(v, isGone) {
			return fmt.Errorf("range %d: voters on stores %v, learners on %v, leader on %d; stores %v are gone",
				placement.FirstRangeID, v, l, leader, gone)
		}
		holders, pgLeader, err := c.placementGroup()
		if err != nil {
			return err
		}
		if len(holders) != 3 || pgLeader == nil || slices.ContainsFunc(holders, isGone) {
			return fmt.Errorf("placement group: replicas on running stores %v, a leader among them %v; stores %v are gone",
				holders, pgLeader != nil, gone)
		}
		return nil
	}
}

// withinOneOfMean reports counts that differ from their mean by more than
// one.
func withinOneOfMean(what string, counts map[uint64]int) error {
	sum := 0
	for _, n := range counts {
		sum += n
	}
	mean := float64(sum) / float64(len(counts))
	for id, n := range counts {
		if math.Abs(float64(n)-mean) > 1 {
			return fmt.Errorf("%s: store %d has %d, the mean is %.2f (%v)", what, id, n, mean, counts)
		}
	}
	return nil
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// e2eWriter writes unique keys e2e/NNNNNN (value v-KEY, as checkAcked
// expects) one at a time until stopped, and records which were
// acknowledged and which have an unknown outcome.
type e2eWriter struct {
	stop chan struct{}
	done chan struct{}

	mu      sync.Mutex
	acked   []string
	unknown []string
	// failed are errors other than an unknown outcome: none is allowed.
	failed []error
}

// maxWrites bounds the keys written (at most one every writePace).
const (
	maxWrites = 20000
	writePace = 5 * time.Millisecond
)

func startWriter(c *flotilla.Client) *e2eWriter {
	w := &e2eWriter{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tick := time.NewTicker(writePace)
		defer tick.Stop()
		for i := range maxWrites {
			select {
			case <-w.stop:
				return
			case <-tick.C:
			}
			key := fmt.Sprintf("e2e/%06d", i)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := c.Put(ctx, []byte(key), []byte("v-"+key))
			cancel()
			w.mu.Lock()
			switch {
			case err == nil:
				w.acked = append(w.acked, key)
			case errors.Is(err, flotilla.ErrOutcomeUnknown):
				w.unknown = append(w.unknown, key)
			default:
				w.failed = append(w.failed, fmt.Errorf("put %s at %s: %w", key, time.Now().Format("15:04:05.000"), err))
			}
			w.mu.Unlock()
		}
	}()
	return w
}

// progress returns the number of acknowledged writes.
func (w *e2eWriter) progress() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked)
}

// waitProgress waits until n more writes are acknowledged: the cluster
// serves writes.
func (w *e2eWriter) waitProgress(t *testing.T, n int) {
	t.Helper()
	want := w.progress() + n
	testutil.SucceedsWithin(t, 30*time.Second, func() error {
		if got := w.progress(); got < want {
			return fmt.Errorf("%d writes acknowledged, want %d", got, want)
		}
		return nil
	})
}

func (w *e2eWriter) finish() (acked, unknown []string, failed []error) {
	close(w.stop)
	<-w.done
	return w.acked, w.unknown, w.failed
}

var decommissionProgress = regexp.MustCompile(`(?m)^\d\d:\d\d:\d\d store (\d+): decommissioning, (\d+) replicas left$`)

// TestPlacementE2E runs the placement driver with real processes: the
// first range and the placement group up-replicate as nodes join; a store
// killed for longer than the store-down timeout has its replicas rebuilt;
// the placement group's leader is killed and another node takes over the
// scheduling; a node is decommissioned with the CLI. A client writes
// throughout, and every acknowledged write reads back at the end.
func TestPlacementE2E(t *testing.T) {
	flotillaBinary(t) // skips under -short
	began := time.Now()
	phase := func(name string) { t.Logf("%5.1fs %s", time.Since(began).Seconds(), name) }
	c := newPlacementCluster(t)

	// Three nodes: the first range and the placement group reach three
	// voters with no operator command.
	n1 := c.start()
	mustCLIPrefix(t, "cluster ", "init", "--host", n1.addr)
	c.start(n1.addr)
	c.start(n1.addr)
	var first3 []uint64
	for _, p := range c.procs {
		first3 = append(first3, c.storeID(p))
	}
	slices.Sort(first3)
	host := func() string { return c.running()[0].addr }
	testutil.SucceedsWithin(t, 60*time.Second, func() error {
		if err := c.healed(host)(); err != nil {
			return err
		}
		v, _, _, _ := firstRange(t, host())
		if holders, _, _ := c.placementGroup(); !slices.Equal(v, first3) || !slices.Equal(holders, first3) {
			return fmt.Errorf("range on stores %v and placement group on %v, want both on %v", v, holders, first3)
		}
		return nil
	})
	phase("3 nodes: range 2 and the placement group have 3 voters")

	// Two more nodes: five live stores. Their replica and leader counts in
	// `cluster status` are the first range's and the placement group's
	// replicas on them; the balancers spread ranges, not the placement
	// group, so the counts of range replicas (the placement group's taken
	// out) and of range leaders are within one of the mean.
	c.start(c.addrs(c.procs)...)
	c.start(c.addrs(c.procs)...)
	for _, p := range c.procs {
		c.storeID(p)
	}
	testutil.SucceedsWithin(t, 60*time.Second, func() error {
		var stores []e2eStore
		if err := clusterJSON(t, host(), &stores, "status"); err != nil {
			return err
		}
		if len(stores) != 5 {
			return fmt.Errorf("cluster status lists %d stores: %+v", len(stores), stores)
		}
		voters, learners, _, err := firstRange(t, host())
		if err != nil {
			return err
		}
		holders, _, err := c.placementGroup()
		if err != nil {
			return err
		}
		replicas, leaders := map[uint64]int{}, map[uint64]int{}
		for _, s := range stores {
			if !s.Live || s.State != "up" {
				return fmt.Errorf("store %d: live %v, state %q", s.StoreID, s.Live, s.State)
			}
			// ranges counts key ranges (the placement group apart).
			inRange := slices.Contains(voters, s.StoreID) || slices.Contains(learners, s.StoreID)
			if want := btoi(inRange); s.Ranges != want {
				return fmt.Errorf("cluster status: store %d holds %d ranges, want %d (range %d: %v, placement group on %v)",
					s.StoreID, s.Ranges, want, placement.FirstRangeID, inRange, holders)
			}
			replicas[s.StoreID], leaders[s.StoreID] = s.Ranges, s.Leaders
		}
		return errors.Join(withinOneOfMean("range replicas", replicas), withinOneOfMean("range leaders", leaders))
	})
	phase("5 live stores, balanced")

	// A client writes unique keys from now on.
	// The client's context spans every phase below and the final reads.
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	client, err := flotilla.Connect(ctx, c.addrs(c.procs)...)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	w := startWriter(client)
	stopped := false
	defer func() {
		if !stopped {
			w.finish()
		}
	}()
	w.waitProgress(t, 20)

	// Kill -9 a follower of the first range that does not lead the
	// placement group, for longer than the store-down timeout: its
	// replicas are rebuilt on the other stores.
	voters, _, rangeLeader, err := firstRange(t, host())
	if err != nil {
		t.Fatal(err)
	}
	_, pgLeader, err := c.placementGroup()
	if err != nil || pgLeader == nil {
		t.Fatalf("placement group leader: %v, %v", pgLeader, err)
	}
	var victim uint64
	for _, s := range voters {
		if s != rangeLeader && s != c.storeID(pgLeader) {
			victim = s
			break
		}
	}
	if victim == 0 {
		t.Fatalf("no follower of range %d (%v, leader %d) outside the placement group's leader", placement.FirstRangeID, voters, rangeLeader)
	}
	t.Logf("killing store %d (range %d on %v led by %d; placement group led by %d)",
		victim, placement.FirstRangeID, voters, rangeLeader, c.storeID(pgLeader))
	c.proc(victim).kill()
	testutil.SucceedsWithin(t, 60*time.Second, c.healed(host, victim))
	if s, err := storeStatus(t, host(), victim); err != nil || s.Live {
		t.Fatalf("cluster status: killed store %d: %+v, %v", victim, s, err)
	}
	w.waitProgress(t, 20)
	phase(fmt.Sprintf("store %d killed: range 2 and the placement group healed", victim))

	// Kill -9 the placement group's leader: another node takes over and
	// scheduling goes on (the range and the group heal again).
	_, pgLeader, err = c.placementGroup()
	if err != nil || pgLeader == nil {
		t.Fatalf("placement group leader: %v, %v", pgLeader, err)
	}
	oldLeader := c.storeID(pgLeader)
	t.Logf("killing store %d, the placement group's leader", oldLeader)
	pgLeader.kill()
	testutil.SucceedsWithin(t, 30*time.Second, func() error {
		// Every survivor with a replica of the group sees the same leader,
		// and that leader's node says it leads.
		seen := map[uint64][]uint64{} // leader replica ID -> stores seeing it
		var self *proc
		for _, p := range c.running() {
			st, err := nodeStatus(p.httpAddr)
			if err != nil {
				return err
			}
			for _, r := range st.GetReplicas() {
				if r.GetGroupId() == uint64(placement.GroupID) {
					seen[r.GetLeaderReplicaId()] = append(seen[r.GetLeaderReplicaId()], st.GetNodeId())
					if r.GetReplicaId() == r.GetLeaderReplicaId() {
						self = p
					}
				}
			}
		}
		if len(seen) != 1 || seen[0] != nil || self == nil {
			return fmt.Errorf("placement group leaders seen by the survivors (replica ID: stores): %v; a survivor leads: %v", seen, self != nil)
		}
		return nil
	})
	_, pgLeader, err = c.placementGroup()
	if err != nil || pgLeader == nil {
		t.Fatalf("placement group leader: %v, %v", pgLeader, err)
	}
	t.Logf("store %d leads the placement group", c.storeID(pgLeader))
	testutil.SucceedsWithin(t, 60*time.Second, c.healed(host, victim, oldLeader))
	testutil.SucceedsWithin(t, 30*time.Second, func() error {
		var ops e2eOperators
		if err := clusterJSON(t, host(), &ops, "operators"); err != nil {
			return err
		}
		if ops.Counts["finished"] == 0 {
			return fmt.Errorf("the new placement group leader finished no operator: %+v", ops)
		}
		return nil
	})
	w.waitProgress(t, 20)
	phase(fmt.Sprintf("store %d (placement group leader) killed: new leader, healed again", oldLeader))

	// A new node gives the decommissioned node's replicas somewhere to go.
	live := c.running()
	fresh := c.start(c.addrs(live)...)
	freshID := c.storeID(fresh)
	testutil.SucceedsWithin(t, 30*time.Second, func() error {
		if s, err := storeStatus(t, host(), freshID); err != nil || !s.Live || s.State != "up" {
			return fmt.Errorf("cluster status: store %d: %+v, %v", freshID, s, err)
		}
		return nil
	})

	// Decommission the placement group's leader, which holds a replica of
	// the first range too, while the client writes: the driver moves its
	// own group off its node, and the next leader finishes the job.
	voters, _, rangeLeader, err = firstRange(t, host())
	if err != nil {
		t.Fatal(err)
	}
	if _, pgLeader, err = c.placementGroup(); err != nil || pgLeader == nil {
		t.Fatalf("placement group leader: %v, %v", pgLeader, err)
	}
	target := c.storeID(pgLeader)
	if !slices.Contains(voters, target) {
		t.Fatalf("store %d leads the placement group but holds no voter of range %d (%v)", target, placement.FirstRangeID, voters)
	}
	targetProc := pgLeader
	var via string
	for _, p := range c.running() {
		if p != targetProc {
			via = p.addr
			break
		}
	}
	t.Logf("decommissioning store %d (range %d on %v led by %d) via %s", target, placement.FirstRangeID, voters, rangeLeader, via)
	out, errOut, err := cli(t, "cluster", "decommission", strconv.FormatUint(target, 10), "--host", via, "--wait-timeout", "60s")
	t.Logf("flotilla cluster decommission %d:\n%s%s", target, out, errOut)
	if err != nil {
		t.Fatalf("flotilla cluster decommission %d: %v", target, err)
	}
	if m := decommissionProgress.FindStringSubmatch(out); m == nil || m[1] != strconv.FormatUint(target, 10) {
		t.Errorf("decommission printed no progress line for store %d", target)
	}
	if want := fmt.Sprintf("store %d is decommissioned: ", target); !strings.Contains(out, "\n"+want) && !strings.HasPrefix(out, want) {
		t.Errorf("decommission printed no completion line %q", want)
	}
	testutil.SucceedsWithin(t, 30*time.Second, func() error {
		if err := c.healed(host, victim, oldLeader, target)(); err != nil {
			return err
		}
		st, err := nodeStatus(targetProc.httpAddr)
		if err != nil {
			return err
		}
		if reps := st.GetReplicas(); len(reps) > 0 {
			return fmt.Errorf("decommissioned store %d still holds a replica of group %d", target, reps[0].GetGroupId())
		}
		if s, err := storeStatus(t, host(), target); err != nil || s.State != "decommissioned" {
			return fmt.Errorf("cluster status: store %d: %+v, %v", target, s, err)
		}
		return nil
	})
	w.waitProgress(t, 20)
	phase(fmt.Sprintf("store %d decommissioned", target))

	// The first store killed comes back on its old data. Its replicas
	// were removed while it was down, so no configuration change reaches
	// them: it must destroy them rather than campaign forever, and serve
	// again (placement requests included).
	back := c.proc(victim)
	startProc(t, back)
	testutil.SucceedsWithin(t, 90*time.Second, func() error {
		st, err := nodeStatus(back.httpAddr)
		if err != nil {
			return err
		}
		for _, r := range st.GetReplicas() {
			if r.GetLeaderReplicaId() == 0 {
				return fmt.Errorf("store %d came back with replica %d of group %d and no leader", victim, r.GetReplicaId(), r.GetGroupId())
			}
		}
		if s, err := storeStatus(t, back.addr, victim); err != nil || !s.Live {
			return fmt.Errorf("cluster status through store %d: %+v, %v", victim, s, err)
		}
		return nil
	})
	w.waitProgress(t, 20)
	phase(fmt.Sprintf("store %d came back and dropped its removed replicas", victim))

	// Every acknowledged write reads back.
	acked, unknown, failed := w.finish()
	stopped = true
	t.Logf("%d writes acknowledged, %d with an unknown outcome, %d failed", len(acked), len(unknown), len(failed))
	for i, err := range failed {
		if i == 10 {
			t.Errorf("... and %d more", len(failed)-i)
			break
		}
		t.Errorf("write failed with an error other than an unknown outcome: %v", err)
	}
	checkAcked(t, ctx, c.addrs(c.running()), acked)
	phase("acknowledged writes read back")
	// The replicas' data hashes are compared in TestEndToEnd, inline; the
	// harness has no helper for it yet, so this test does not.

	// SIGTERM stops every node cleanly.
	for _, p := range c.procs {
		p.stop(t)
	}
}

// TestPlacementBalanceE2E: a cluster initialized pre-split into 13 ranges
// on one node spreads them as four more nodes join, with no operator
// command: every range gets three voters, and replica and leader counts
// per store end within one of the mean. A client then writes to and reads
// from every range.
func TestPlacementBalanceE2E(t *testing.T) {
	flotillaBinary(t) // skips under -short
	c := newPlacementCluster(t)
	n1 := c.start()
	var splits []string
	for r := 'b'; r <= 'm'; r++ {
		splits = append(splits, string(r))
	}
	mustCLIPrefix(t, "cluster ", "init", "--host", n1.addr, "--split-at", strings.Join(splits, ","))
	for range 4 {
		c.start(n1.addr)
	}
	for _, p := range c.procs {
		c.storeID(p)
	}
	testutil.SucceedsWithin(t, 3*time.Minute, func() error {
		var ranges []e2eRange
		if err := clusterJSON(t, n1.addr, &ranges, "ranges"); err != nil {
			return err
		}
		if len(ranges) != len(splits)+1 {
			return fmt.Errorf("%d ranges listed, want %d", len(ranges), len(splits)+1)
		}
		replicas, leaders := map[uint64]int{}, map[uint64]int{}
		for _, p := range c.procs {
			replicas[c.ids[p]], leaders[c.ids[p]] = 0, 0
		}
		for _, r := range ranges {
			voters := 0
			for _, rep := range r.Replicas {
				if rep.Type == "learner" {
					return fmt.Errorf("range %d has a learner", r.RangeID)
				}
				voters++
				replicas[rep.StoreID]++
			}
			if voters != 3 || r.LeaderStore == 0 {
				return fmt.Errorf("range %d: %d voters, leader store %d", r.RangeID, voters, r.LeaderStore)
			}
			leaders[r.LeaderStore]++
		}
		return errors.Join(withinOneOfMean("replicas", replicas), withinOneOfMean("leaders", leaders))
	})
	var stores []e2eStore
	if err := clusterJSON(t, n1.addr, &stores, "status"); err != nil {
		t.Fatal(err)
	}
	t.Logf("stores: %+v", stores)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client, err := flotilla.Connect(ctx, c.addrs(c.procs)...)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	// Keys in every range (a..m start ranges, n..z fall in the last).
	for r := 'a'; r <= 'z'; r++ {
		k := string(r) + "/key"
		if err := client.Put(ctx, []byte(k), []byte("v-"+k)); err != nil {
			t.Fatalf("put %s: %v", k, err)
		}
	}
	for r := 'a'; r <= 'z'; r++ {
		k := string(r) + "/key"
		if v, err := client.Get(ctx, []byte(k)); err != nil || string(v) != "v-"+k {
			t.Fatalf("get %s: %q, %v", k, v, err)
		}
	}
	for _, p := range c.procs {
		p.stop(t)
	}
}
