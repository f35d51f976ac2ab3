// Copyright 2026 The Flotilla Authors. All rights reserved.

package multiraft_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flotilladb/flotilla/internal/testcluster"
	"github.com/flotilladb/flotilla/internal/testutil"
	"github.com/flotilladb/flotilla/multiraft"
	pb "go.etcd.io/raft/v3/raftpb"
)

// checkSameSequence waits until every running replica of group applied the
// same commands (conf changes aside), then checks them: each of acked exactly
// once, each of maybe at most once, nothing else.
func checkSameSequence(t *testing.T, c *testcluster.Cluster, group multiraft.GroupID, acked, maybe []string) {
	t.Helper()
	var applied []testcluster.AppliedCommand
	testutil.SucceedsSoon(t, func() error {
		var first []testcluster.AppliedCommand
		var firstNode multiraft.NodeID
		for _, id := range c.NodeIDs() {
			n := c.Node(id)
			h, eng := n.Host(), n.Engine()
			if h == nil || eng == nil {
				continue
			}
			if _, ok := h.Status(group); !ok {
				continue
			}
			got, err := testcluster.ReadApplied(eng, group)
			if err != nil {
				return err
			}
			if first == nil {
				first, firstNode = got, id
				continue
			}
			if fmt.Sprint(got) != fmt.Sprint(first) {
				return fmt.Errorf("group %d: node %d applied %d commands, node %d applied %d (or different ones)",
					group, id, len(got), firstNode, len(first))
			}
		}
		seen := map[string]int{}
		for _, c := range first {
			seen[c.Data]++
		}
		for _, w := range acked {
			if seen[w] != 1 {
				return fmt.Errorf("group %d: acknowledged command %q applied %d times", group, w, seen[w])
			}
		}
		applied = first
		return nil
	})
	allowed := map[string]bool{}
	for _, w := range acked {
		allowed[w] = true
	}
	for _, w := range maybe {
		allowed[w] = true
	}
	seen := map[string]int{}
	for _, a := range applied {
		if strings.HasPrefix(a.Data, "confchange:") {
			continue
		}
		seen[a.Data]++
		if !allowed[a.Data] {
			t.Fatalf("group %d applied %q, which nobody proposed", group, a.Data)
		}
		if seen[a.Data] > 1 {
			t.Fatalf("group %d applied %q twice", group, a.Data)
		}
	}
}

// TestManyGroups: 3 hosts × 100 groups: every group elects a leader,
// proposals commit, every replica applies the same sequence.
func TestManyGroups(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{Nodes: 3, Seed: newSeed(t)})
	groups := groupRange(100)
	for _, g := range groups {
		c.Bootstrap(g, 1, 2, 3)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p := newProposer(c)
	var wg sync.WaitGroup
	errs := make(chan error, len(groups))
	for _, g := range groups {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.proposeUntilAcked(ctx, g, 5); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	p.checkConverged(t, groups)
}

func TestHostBadInput(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{Nodes: 2, Seed: newSeed(t)})
	h := c.Node(1).Host()
	r1, r2 := testcluster.ReplicaOn(1), testcluster.ReplicaOn(2)
	for _, tc := range []struct {
		name     string
		group    multiraft.GroupID
		replicas []multiraft.Replica
	}{
		{"group 0", 0, []multiraft.Replica{{ID: r1}}},
		{"no local replica", 1, []multiraft.Replica{{ID: r2}}},
		{"invalid replica", 1, []multiraft.Replica{{ID: r1}, {ID: 0}}},
		{"duplicate replica", 1, []multiraft.Replica{{ID: r1}, {ID: r1}}},
		{"two local replicas", 1, []multiraft.Replica{{ID: r1}, {ID: multiraft.MakeReplicaID(1, 2)}}},
		{"no voters", 1, []multiraft.Replica{{ID: r1, Learner: true}}},
	} {
		if err := h.Bootstrap(tc.group, tc.replicas); err == nil {
			t.Errorf("%s: Bootstrap succeeded", tc.name)
		}
	}
	if got := h.Groups(); len(got) != 0 {
		t.Fatalf("rejected bootstraps created groups: %v", got)
	}
	c.Bootstrap(1, 1, 2)
	if err := h.Bootstrap(1, []multiraft.Replica{{ID: r1}}); !errors.Is(err, multiraft.ErrGroupExists) {
		t.Fatalf("second Bootstrap: %v", err)
	}
	ctx := context.Background()
	if _, err := h.ProposeAndWait(ctx, 99, []byte("x")); !errors.Is(err, multiraft.ErrGroupNotFound) || !multiraft.IsNotApplied(err) {
		t.Fatalf("proposal to an unknown group: %v", err)
	}
	// Malformed or misaddressed messages are dropped, not fatal.
	h.HandleBatch(&multiraft.MessageBatch{From: 2, To: 1, Messages: []multiraft.GroupMessage{
		{Group: 99, Message: &pb.Message{To: new(uint64(r1))}},
		{Group: 1, Message: &pb.Message{To: new(uint64(multiraft.MakeReplicaID(1, 5)))}},
	}})
	c.Stop(1)
	if _, err := h.ProposeAndWait(ctx, 1, []byte("x")); !errors.Is(err, multiraft.ErrStopped) || !multiraft.IsNotApplied(err) {
		t.Fatalf("proposal to a stopped host: %v", err)
	}
}
