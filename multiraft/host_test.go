// Copyright 2026 The Flotilla Authors. All rights reserved.

package multiraft_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/flotilladb/flotilla/internal/testcluster"
	"github.com/flotilladb/flotilla/internal/testutil"
	"github.com/flotilladb/flotilla/multiraft"
)

// checkSameSequence checks that every running replica of group applied the
// same commands, and that one of them applied at least want (by data).
func checkSameSequence(t *testing.T, c *testcluster.Cluster, group multiraft.GroupID, want []string) {
	t.Helper()
	testutil.SucceedsSoon(t, func() error {
		var first []testcluster.AppliedCommand
		var firstNode multiraft.NodeID
		for _, id := range c.NodeIDs() {
			n := c.Node(id)
			if !n.Running() {
				continue
			}
			if _, ok := n.Host.Status(group); !ok {
				continue
			}
			got, err := testcluster.ReadApplied(n.Engine, group)
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
		for _, w := range want {
			if seen[w] != 1 {
				return fmt.Errorf("group %d: command %q applied %d times", group, w, seen[w])
			}
		}
		return nil
	})
}

// TestManyGroups: 3 hosts × 100 groups: every group elects a leader,
// proposals commit, every replica applies the same sequence.
func TestManyGroups(t *testing.T) {
	c := testcluster.New(t, testcluster.Options{Nodes: 3, Seed: newSeed(t)})
	const groups = 100
	for g := multiraft.GroupID(1); g <= groups; g++ {
		c.Bootstrap(g, 1, 2, 3)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, groups)
	for g := multiraft.GroupID(1); g <= groups; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 5 {
				if _, err := c.Propose(ctx, g, []byte(fmt.Sprintf("g%d-cmd%d", g, i))); err != nil {
					errs <- fmt.Errorf("group %d, command %d: %w", g, i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	for g := multiraft.GroupID(1); g <= groups; g++ {
		var want []string
		for i := range 5 {
			want = append(want, fmt.Sprintf("g%d-cmd%d", g, i))
		}
		checkSameSequence(t, c, g, want)
	}
}
