// Copyright 2026 The Flotilla Authors. All rights reserved.

package server_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flotilladb/flotilla"
	"github.com/flotilladb/flotilla/internal/testutil"
	"github.com/flotilladb/flotilla/placement"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"github.com/flotilladb/flotilla/server"
)

// routingCluster is four nodes: the first range on the first three (by
// node ID), the fourth without a replica until one moves there.
type routingCluster struct {
	t     *testing.T
	nodes map[uint64]*server.Node // by node ID
	down  map[uint64]bool
	http  *http.Client
}

func startRoutingCluster(t *testing.T, ctx context.Context) *routingCluster {
	t.Helper()
	n1 := openNode(t, server.Config{Dir: t.TempDir()})
	all := []*server.Node{n1}
	for range 3 {
		all = append(all, openNode(t, server.Config{Dir: t.TempDir(), Join: []string{n1.Addr()}}))
	}
	if _, err := n1.Init(ctx); err != nil {
		t.Fatal(err)
	}
	c := &routingCluster{t: t, nodes: map[uint64]*server.Node{}, down: map[uint64]bool{},
		// No keep-alive: no idle connection outlives the test (goleak).
		http: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}}
	for _, n := range all {
		if err := n.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
		c.nodes[n.NodeID()] = n
	}
	testutil.SucceedsWithin(t, time.Minute, func() error {
		return c.wantVoters(1, 2, 3)
	})
	return c
}

// firstRange returns node id's replica of the first range, if it has one.
func (c *routingCluster) firstRange(id uint64) *flotillapb.ReplicaStatus {
	if c.down[id] {
		return nil
	}
	for _, r := range c.nodes[id].Status(false).GetReplicas() {
		if r.GetGroupId() == uint64(placement.FirstRangeID) {
			return r
		}
	}
	return nil
}

// leader returns the ID of the node that leads the first range at the
// highest term, 0 if none does.
func (c *routingCluster) leader() uint64 {
	best, bestTerm := uint64(0), uint64(0)
	for id := range c.nodes {
		r := c.firstRange(id)
		if r != nil && r.GetReplicaId() != 0 && r.GetLeaderReplicaId() == r.GetReplicaId() && r.GetTerm() >= bestTerm {
			best, bestTerm = id, r.GetTerm()
		}
	}
	return best
}

// wantVoters reports why the first range's leader does not list exactly
// voters on the given nodes, and no learner.
func (c *routingCluster) wantVoters(stores ...uint64) error {
	l := c.leader()
	if l == 0 {
		return errors.New("the first range has no leader")
	}
	var got []uint64
	for _, rd := range c.firstRange(l).GetDescriptor_().GetReplicas() {
		if rd.GetType() != flotillapb.ReplicaType_VOTER {
			return fmt.Errorf("the first range has a learner on node %d", rd.GetStoreId())
		}
		got = append(got, rd.GetStoreId())
	}
	slices.Sort(got)
	if !slices.Equal(got, stores) {
		return fmt.Errorf("the first range has voters on nodes %v, want %v", got, stores)
	}
	return nil
}

// transferLeadership moves the first range's leadership to node to.
func (c *routingCluster) transferLeadership(to uint64) {
	c.t.Helper()
	testutil.SucceedsWithin(c.t, 30*time.Second, func() error {
		l := c.leader()
		switch l {
		case to:
			return nil
		case 0:
			return errors.New("the first range has no leader")
		}
		if err := c.nodes[l].TransferLeadershipForTest(uint64(placement.FirstRangeID), to); err != nil {
			return err
		}
		return fmt.Errorf("node %d still leads", l)
	})
}

// metrics returns a node's metrics by name (with labels).
func (c *routingCluster) metrics(id uint64) (map[string]float64, error) {
	resp, err := c.http.Get("http://" + c.nodes[id].HTTPAddr() + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		name, value, ok := strings.Cut(line, " ")
		if !ok || strings.HasPrefix(name, "#") {
			continue
		}
		if v, err := strconv.ParseFloat(value, 64); err == nil {
			out[name] = v
		}
	}
	return out, nil
}

const (
	gatewayLocal  = "flotilla_gateway_local_total"
	gatewayRouted = `flotilla_gateway_forwarded_total{via="router"}`
	gatewayGuess  = `flotilla_gateway_forwarded_total{via="guess"}`
)

// checkDirect reports why puts through cl were not all served by the
// first range's leader without any gateway forwarding them.
func (c *routingCluster) checkDirect(ctx context.Context, cl *flotilla.Client, key string) error {
	const puts = 5
	leader := c.leader()
	if leader == 0 {
		return errors.New("the first range has no leader")
	}
	type counts struct{ local, forwarded float64 }
	read := func() (map[uint64]counts, error) {
		out := map[uint64]counts{}
		for id := range c.nodes {
			if c.down[id] {
				continue
			}
			m, err := c.metrics(id)
			if err != nil {
				return nil, err
			}
			out[id] = counts{m[gatewayLocal], m[gatewayRouted] + m[gatewayGuess]}
		}
		return out, nil
	}
	before, err := read()
	if err != nil {
		return err
	}
	for i := range puts {
		if err := cl.Put(ctx, []byte(key), []byte(strconv.Itoa(i))); err != nil {
			return err
		}
	}
	after, err := read()
	if err != nil {
		return err
	}
	if l := c.leader(); l != leader {
		return fmt.Errorf("the leadership moved from node %d to node %d during the check", leader, l)
	}
	for id, a := range after {
		if d := a.forwarded - before[id].forwarded; d != 0 {
			return fmt.Errorf("node %d's gateway forwarded %v attempts", id, d)
		}
	}
	if d := after[leader].local - before[leader].local; d < puts {
		return fmt.Errorf("the leader, node %d, served %v of %d puts", leader, d, puts)
	}
	return nil
}

// TestClientRouting: a Client's router sends requests straight to the
// range's leader, so no gateway forwards them, and corrects its stale cache
// without returning errors, after a leadership transfer and after the
// leader's replica moved to another node.
func TestClientRouting(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := startRoutingCluster(t, ctx)

	// The client knows only node 4, which holds no replica: without the
	// router its gateway would forward every request.
	cl, err := flotilla.Connect(ctx, c.nodes[4].Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	// Warm up: the placement driver learns the leader from its heartbeats.
	testutil.SucceedsWithin(t, 30*time.Second, func() error {
		return cl.Put(ctx, []byte("warm"), []byte("up"))
	})
	testutil.SucceedsWithin(t, 30*time.Second, func() error {
		return c.checkDirect(ctx, cl, "direct")
	})

	// A node's gateway routes what it cannot serve through its router too:
	// node 4 (no replica) and a follower (a write) send requests on to
	// the leader, with no guessing.
	for _, pick := range []func() uint64{
		func() uint64 { return 4 },
		func() uint64 { return 1 + c.leader()%3 }, // a follower
	} {
		testutil.SucceedsWithin(t, 30*time.Second, func() error {
			id := pick()
			before, err := c.metrics(id)
			if err != nil {
				return err
			}
			if err := c.nodes[id].Put(ctx, []byte("through-gateway"), []byte("v")); err != nil {
				return err
			}
			after, err := c.metrics(id)
			if err != nil {
				return err
			}
			if after[gatewayRouted] <= before[gatewayRouted] || after[gatewayGuess] != before[gatewayGuess] {
				return fmt.Errorf("node %d's gateway: %s went from %v to %v, %s from %v to %v", id,
					gatewayRouted, before[gatewayRouted], after[gatewayRouted], gatewayGuess, before[gatewayGuess], after[gatewayGuess])
			}
			return nil
		})
	}

	// written holds what the puts below wrote; every phase reads it all
	// back.
	written := map[string]string{}
	putsAndGets := func(phase string) {
		t.Helper()
		for i := range 10 {
			k, v := fmt.Sprintf("%s-%d", phase, i), fmt.Sprintf("v%d", i)
			if err := cl.Put(ctx, []byte(k), []byte(v)); err != nil {
				t.Fatalf("%s: put %s: %v", phase, k, err)
			}
			written[k] = v
		}
		for k, want := range written {
			if v, err := cl.Get(ctx, []byte(k)); err != nil || string(v) != want {
				t.Fatalf("%s: get %s = %q, %v; want %q", phase, k, v, err, want)
			}
		}
	}

	// The leadership moves: the client's cache names the old leader.
	old := c.leader()
	next := uint64(1) + old%3 // another of nodes 1-3
	c.transferLeadership(next)
	putsAndGets("after-transfer")
	testutil.SucceedsWithin(t, 30*time.Second, func() error {
		return c.checkDirect(ctx, cl, "direct")
	})

	// The leader's node stops, its replica moves to node 4, and node 4
	// takes the leadership: the client's cache names a node that is gone
	// and lists replicas of which one no longer exists.
	gone := c.leader()
	if err := c.nodes[gone].Close(); err != nil {
		t.Fatal(err)
	}
	c.down[gone] = true
	var rest []uint64
	for id := uint64(1); id <= 3; id++ {
		if id != gone {
			rest = append(rest, id)
		}
	}
	testutil.SucceedsWithin(t, time.Minute, func() error {
		l := c.leader()
		if l == 0 {
			return errors.New("the first range has no leader")
		}
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		return c.nodes[l].RemoveReplicaForTest(rctx, uint64(placement.FirstRangeID), gone)
	})
	// The replica checker adds a voter on node 4, the only other usable store.
	testutil.SucceedsWithin(t, time.Minute, func() error {
		return c.wantVoters(append(rest, 4)...)
	})
	c.transferLeadership(4)
	putsAndGets("after-move")
	testutil.SucceedsWithin(t, 30*time.Second, func() error {
		return c.checkDirect(ctx, cl, "direct")
	})
}

// TestClientBeforeInit: while the cluster cannot answer lookups (it is not
// initialized yet), a Client falls back to its endpoints' gateways, and
// fails as it did without a router: unavailable, not applied. Once the
// cluster exists, the same client works.
func TestClientBeforeInit(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	n := openNode(t, server.Config{Dir: t.TempDir()})
	cl, err := flotilla.Connect(ctx, n.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	// The deadline most likely falls in a backoff, and the put was then
	// not applied; if it falls while an attempt is in flight, the client
	// cannot know what the node did with it: its outcome is unknown, and
	// the deadline ended it.
	pctx, pcancel := context.WithTimeout(ctx, 2*time.Second)
	err = cl.Put(pctx, []byte("k"), []byte("v"))
	pcancel()
	if !errors.Is(err, flotilla.ErrUnavailable) || !errors.Is(err, flotilla.ErrNotApplied) &&
		!(errors.Is(err, flotilla.ErrOutcomeUnknown) && errors.Is(err, context.DeadlineExceeded)) {
		t.Fatalf("put before init: %v", err)
	}
	if _, err := n.Init(ctx); err != nil {
		t.Fatal(err)
	}
	testutil.SucceedsWithin(t, 30*time.Second, func() error {
		return cl.Put(ctx, []byte("k"), []byte("v"))
	})
	if v, err := cl.Get(ctx, []byte("k")); err != nil || string(v) != "v" {
		t.Fatalf("get: %q %v", v, err)
	}
	if err := cl.Close(); err != nil {
		t.Fatal(err)
	}
	if err := cl.Put(ctx, []byte("k"), []byte("v")); !errors.Is(err, flotilla.ErrClosed) {
		t.Fatalf("put on a closed client: %v", err)
	}
}
