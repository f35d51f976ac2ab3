// Copyright 2026 The Flotilla Authors. All rights reserved.

package shard_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/flotilladb/flotilla/engine"
	"github.com/flotilladb/flotilla/internal/testcluster"
	"github.com/flotilladb/flotilla/internal/testutil"
	"github.com/flotilladb/flotilla/multiraft"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"github.com/flotilladb/flotilla/shard"
	"google.golang.org/protobuf/proto"
)

// kvCluster is a testcluster whose nodes run a shard.Store each: every
// start of a node (New, Restart, Crash) builds a new store over the node's
// engine, and the store gets its host once the node runs.
type kvCluster struct {
	*testcluster.Cluster
	t *testing.T

	mu     sync.Mutex
	stores map[multiraft.NodeID]*shard.Store
	// revs is the cluster's revision oracle, shared by its stores.
	revs *testutil.Revisions
}

type clusterOptions struct {
	testcluster.Options
	// configureStore adjusts each node's store's config.
	configureStore func(multiraft.NodeID, *shard.Config)
	// onApply, if set, is told the number of commands of every Apply call.
	onApply func(n int)
	// beforeApply, if set, sees every Apply call's commands first, on the
	// group's worker.
	beforeApply func(node multiraft.NodeID, group multiraft.GroupID, cmds []multiraft.Command)
	// afterApply, if set, sees every Apply call's commands after the
	// replica applied them (its descriptor published, the host's batch not
	// yet committed), on the group's worker.
	afterApply func(node multiraft.NodeID, group multiraft.GroupID, cmds []multiraft.Command)
}

// observedReplica is a replica whose Apply calls are reported.
type observedReplica struct {
	*shard.Replica
	node        multiraft.NodeID
	onApply     func(n int)
	beforeApply func(node multiraft.NodeID, group multiraft.GroupID, cmds []multiraft.Command)
	afterApply  func(node multiraft.NodeID, group multiraft.GroupID, cmds []multiraft.Command)
}

func (r observedReplica) Apply(b *engine.Batch, cmds []multiraft.Command) ([]multiraft.Result, error) {
	if r.onApply != nil {
		r.onApply(len(cmds))
	}
	if r.beforeApply != nil {
		r.beforeApply(r.node, r.RangeID(), cmds)
	}
	res, err := r.Replica.Apply(b, cmds)
	if err == nil && r.afterApply != nil {
		r.afterApply(r.node, r.RangeID(), cmds)
	}
	return res, err
}

func newKVCluster(t *testing.T, opts clusterOptions) *kvCluster {
	t.Helper()
	k := &kvCluster{t: t, stores: map[multiraft.NodeID]*shard.Store{}, revs: &testutil.Revisions{}}
	if opts.Seed == 0 {
		_, opts.Seed = shard.NewRand(t)
	}
	configureHost := opts.Configure
	opts.Configure = func(cfg *multiraft.Config) {
		if configureHost != nil {
			configureHost(cfg)
		}
		sc := shard.Config{Engine: cfg.Engine, Logger: cfg.Logger, Revisions: k.revs}
		if opts.configureStore != nil {
			opts.configureStore(cfg.NodeID, &sc)
		}
		s, err := shard.NewStore(sc)
		if err != nil {
			panic(err) // a test bug; Configure cannot return errors
		}
		k.mu.Lock()
		k.stores[cfg.NodeID] = s
		k.mu.Unlock()
		cfg.NewStateMachine = s.NewStateMachine
		if opts.onApply != nil || opts.beforeApply != nil || opts.afterApply != nil {
			node := cfg.NodeID
			cfg.NewStateMachine = func(g multiraft.GroupID) (multiraft.StateMachine, error) {
				sm, err := s.NewStateMachine(g)
				if err != nil {
					return nil, err
				}
				return observedReplica{Replica: sm.(*shard.Replica), node: node, onApply: opts.onApply, beforeApply: opts.beforeApply, afterApply: opts.afterApply}, nil
			}
		}
	}
	k.Cluster = testcluster.New(t, opts.Options)
	for _, id := range k.NodeIDs() {
		k.attach(id)
	}
	return k
}

func (k *kvCluster) attach(id multiraft.NodeID) {
	k.Store(id).SetHost(k.Node(id).Host())
}

// Store returns node id's current store.
func (k *kvCluster) Store(id multiraft.NodeID) *shard.Store {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.stores[id]
}

func (k *kvCluster) restart(id multiraft.NodeID) {
	k.Restart(id)
	k.attach(id)
}

// bootstrapRange creates a range with a voter on each of nodes.
func (k *kvCluster) bootstrapRange(id multiraft.GroupID, start, end string, nodes ...multiraft.NodeID) *flotillapb.RangeDescriptor {
	k.t.Helper()
	desc := &flotillapb.RangeDescriptor{RangeId: uint64(id), Epoch: &flotillapb.RangeEpoch{Version: 1}}
	if start != "" {
		desc.StartKey = []byte(start)
	}
	if end != "" {
		desc.EndKey = []byte(end)
	}
	var replicas []multiraft.Replica
	for _, n := range nodes {
		r := testcluster.ReplicaOn(n)
		replicas = append(replicas, multiraft.Replica{ID: r})
		desc.Replicas = append(desc.Replicas, &flotillapb.ReplicaDescriptor{StoreId: uint64(n), ReplicaId: uint64(r)})
	}
	for _, n := range nodes {
		err := k.Node(n).Host().BootstrapWith(id, replicas, func(b *engine.Batch) error {
			return shard.WriteInitialState(b, desc)
		})
		if err != nil {
			k.t.Fatal(err)
		}
	}
	return desc
}

// leaderStore waits for range id to have a leader and returns its store.
func (k *kvCluster) leaderStore(id multiraft.GroupID) (*shard.Store, multiraft.NodeID) {
	k.t.Helper()
	n := k.WaitLeader(id)
	return k.Store(n), n
}

// makeLeader makes node lead range id: it campaigns, and the leader, if
// there is one, hands over (a campaign alone fails while the followers
// hear from a leader: PreVote and CheckQuorum).
func (k *kvCluster) makeLeader(id multiraft.GroupID, node multiraft.NodeID) {
	k.t.Helper()
	testutil.SucceedsSoon(k.t, func() error {
		l, err := k.Leader(id)
		if err == nil && l == node {
			return nil
		}
		if st, ok := k.Node(node).Host().Status(id); err == nil && ok {
			_ = k.Node(l).Host().TransferLeadership(id, st.Replica)
		} else {
			_ = k.Node(node).Host().Campaign(id)
		}
		return fmt.Errorf("range %d led by %d (%v)", id, l, err)
	})
}

// retriable reports whether err says a request certainly did not happen and
// may be retried elsewhere or later.
func retriable(err error) bool {
	var pe *flotillapb.Error
	if !errors.As(err, &pe) {
		return false
	}
	if pe.GetOutcome() == flotillapb.Outcome_UNKNOWN {
		return false
	}
	return pe.GetNotLeader() != nil || pe.GetUnavailable() != nil
}

// do runs fn against the store of range id's leader, retrying while the
// request certainly did not happen (no leader yet, leadership moved), until
// it succeeds, fails otherwise, or the test's patience ends.
func do[T any](k *kvCluster, ctx context.Context, id multiraft.GroupID, fn func(context.Context, *shard.Store) (T, error)) (T, error) {
	k.t.Helper()
	var last error
	for {
		if n, err := k.Leader(id); err == nil {
			attempt, cancel := context.WithTimeout(ctx, 5*time.Second)
			res, err := fn(attempt, k.Store(n))
			cancel()
			if err == nil || !retriable(err) {
				return res, err
			}
			last = err
		} else {
			last = err
		}
		select {
		case <-ctx.Done():
			var zero T
			return zero, fmt.Errorf("%w (last error: %v)", ctx.Err(), last)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// retry runs fn until it succeeds or fails with a non-retriable error.
func retry[T any](ctx context.Context, fn func(context.Context) (T, error)) (T, error) {
	for {
		res, err := fn(ctx)
		if err == nil || !retriable(err) {
			return res, err
		}
		select {
		case <-ctx.Done():
			return res, fmt.Errorf("%w (last error: %v)", ctx.Err(), err)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// testCtx bounds a test.
func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func hdr(id multiraft.GroupID) *flotillapb.RequestHeader {
	return &flotillapb.RequestHeader{RangeId: uint64(id)}
}

// pbError returns err as a *flotillapb.Error or fails the test.
func pbError(t *testing.T, err error) *flotillapb.Error {
	t.Helper()
	var pe *flotillapb.Error
	if !errors.As(err, &pe) {
		t.Fatalf("error %v (%T) is not a *flotillapb.Error", err, err)
	}
	return pe
}

// waitConverged waits until every running replica of range id has applied
// the same index and reports the same hash, descriptor and stats, and
// returns them.
func (k *kvCluster) waitConverged(id multiraft.GroupID, nodes ...multiraft.NodeID) (uint64, [32]byte, shard.Stats, *flotillapb.RangeDescriptor) {
	k.t.Helper()
	var (
		index uint64
		sum   [32]byte
		stats shard.Stats
		desc  *flotillapb.RangeDescriptor
	)
	testutil.SucceedsSoon(k.t, func() error {
		for i, n := range nodes {
			r, ok := k.Store(n).Replica(id)
			if !ok {
				return fmt.Errorf("no replica of range %d on node %d", id, n)
			}
			idx, h, err := r.Hash()
			if err != nil {
				return err
			}
			st := r.Stats()
			st.ReadsPerSecond, st.WritesPerSecond = 0, 0
			d := r.Descriptor()
			if i == 0 {
				index, sum, stats, desc = idx, h, st, d
				continue
			}
			if idx != index {
				return fmt.Errorf("node %d applied %d, node %d %d", n, idx, nodes[0], index)
			}
			if h != sum {
				return fmt.Errorf("node %d and node %d differ in hash at index %d", n, nodes[0], idx)
			}
			if st != stats {
				return fmt.Errorf("node %d stats %+v, node %d %+v", n, st, nodes[0], stats)
			}
			if !proto.Equal(d, desc) {
				return fmt.Errorf("node %d descriptor %v, node %d %v", n, d, nodes[0], desc)
			}
		}
		return nil
	})
	return index, sum, stats, desc
}

func marshal(m proto.Message) ([]byte, error) { return proto.Marshal(m) }

// isOnly reports whether got is exactly [want].
func isOnly(got []*flotillapb.RangeDescriptor, want *flotillapb.RangeDescriptor) bool {
	return len(got) == 1 && proto.Equal(got[0], want)
}
