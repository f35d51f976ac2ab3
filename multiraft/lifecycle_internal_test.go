// Copyright 2026 The Flotilla Authors. All rights reserved.

package multiraft

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/flotilladb/flotilla/engine"
	"go.etcd.io/raft/v3"
	pb "go.etcd.io/raft/v3/raftpb"
	"go.uber.org/goleak"
)

type nopTransport struct{}

func (nopTransport) Send(*MessageBatch) error { return nil }
func (nopTransport) SendSnapshot(context.Context, NodeID, *SnapshotHeader, func(func([]byte) error) error) error {
	return errors.New("no snapshots here")
}

// spanSM owns one user span and applies nothing of interest.
type spanSM struct{ span engine.Span }

func (s spanSM) Apply(_ *engine.Batch, cmds []Command) ([]Result, error) {
	return make([]Result, len(cmds)), nil
}
func (s spanSM) Spans() []engine.Span { return []engine.Span{s.span} }

// testHostConfig opens an in-memory engine (closed when the test ends) and
// returns it with the config of a host on node 1 over it: no network, no
// ticker, state machines owning the span "g7/".
func testHostConfig(t testing.TB) (*engine.Engine, Config) {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	eng, err := engine.Open(engine.Options{Dir: "store", FS: vfs.NewMem(), CacheSize: 1 << 20, MemTableSize: 1 << 20, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = eng.Close() })
	span, _ := engine.UserSpan([]byte("g7/"), []byte("g7/\xff"))
	return eng, Config{
		NodeID: 1, Engine: eng, Transport: nopTransport{}, Logger: quiet,
		NewStateMachine: func(GroupID) (StateMachine, error) { return spanSM{span}, nil },
		Testing:         &TestingKnobs{DisableTicker: true},
	}
}

// TestDestroyRemovedAtLoad: a replica whose removal was applied but whose
// destruction never ran (the host stopped in between) is destroyed when the
// host loads it: no zombie, data gone, tombstone written.
func TestDestroyRemovedAtLoad(t *testing.T) {
	eng, cfg := testHostConfig(t)
	h, err := NewHost(cfg)
	if err != nil {
		t.Fatal(err)
	}
	self, other := MakeReplicaID(1, 1), MakeReplicaID(2, 1)
	if err := h.Bootstrap(7, []Replica{{ID: self}, {ID: other}}); err != nil {
		t.Fatal(err)
	}
	h.Stop()
	// The removal was applied (and the state machine wrote data before).
	b := eng.NewBatch()
	key, _ := engine.UserKey([]byte("g7/data"))
	_ = b.Set(key, []byte("v"))
	_ = writeAppliedState(b, 7, appliedState{index: 20, term: 5, confState: &pb.ConfState{Voters: []uint64{uint64(other)}}})
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	b.Close()

	h, err = NewHost(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop()
	if _, ok := h.Status(7); ok {
		t.Fatal("removed replica loaded")
	}
	if next, err := loadTombstone(eng, 7); err != nil || next != self+1 {
		t.Fatalf("tombstone %v, %v; want %v", next, err, self+1)
	}
	if _, err := eng.Get(key); !errors.Is(err, engine.ErrNotFound) {
		t.Fatalf("removed replica's data survived: %v", err)
	}
	if _, err := h.groupFor(7, self, true); !errors.Is(err, ErrReplicaTombstoned) {
		t.Fatalf("old replica recreated: %v", err)
	}
}

// TestNoQuiesceUnderDeadLeader: a follower must not stay quiet under a leader
// whose node is down. Nothing would wake it a second time, and it could
// never elect. The quiesce beat it keeps while a write lands must not put it
// back to sleep once the leader's node is known down; and a delayed beat from
// the dead node (which counts as hearing from it) only delays the wake until
// the next liveness check.
func TestNoQuiesceUnderDeadLeader(t *testing.T) {
	_, cfg := testHostConfig(t)
	h, err := NewHost(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop()
	self, leader := MakeReplicaID(1, 1), MakeReplicaID(2, 1)
	if err := h.Bootstrap(7, []Replica{{ID: self}, {ID: leader}, {ID: MakeReplicaID(3, 1)}}); err != nil {
		t.Fatal(err)
	}
	beatMsg := &Heartbeat{Group: 7, From: leader, To: self, Term: 6, Commit: 10, Quiesce: true}
	beat := func() { h.HandleBatch(&MessageBatch{From: 2, To: 1, Heartbeats: []Heartbeat{*beatMsg}}) }
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(time.Millisecond)
		}
	}
	// The leader quiesces the follower (after its term change lands: the
	// log writer reschedules the group even though raft expects no answer).
	beat()
	waitFor("the follower to go quiet", func() bool { return h.Unquiesced() == 0 })
	// The worker may still be finishing the pass that quiesced the group;
	// the test calls worker-only code next, so it waits until no worker
	// holds the group (the scheduler's mutex orders the two).
	g := h.group(7)
	waitFor("the worker to let go of the group", func() bool {
		h.sched.mu.Lock()
		defer h.sched.mu.Unlock()
		return g.sched == 0
	})

	// The guard: with the leader's node known down, the follower refuses to
	// quiesce on that leader's beat. (Nothing else runs the group now: it is
	// quiet, the ticker is off and no message is in flight.)
	down := h.liveness.check(time.Now().Add(time.Hour))
	if len(down) != 1 || down[0] != 2 {
		t.Fatalf("nodes down: %v", down)
	}
	if h.maybeQuiesceFollower(g, beatMsg.message(pb.MsgHeartbeat)) {
		t.Fatal("follower agreed to quiesce under a leader whose node is down")
	}

	// The flow: the follower wakes; a delayed beat from the dead node makes
	// it look alive for a moment; ticking as the ticker does (with liveness
	// checks), the follower ends up campaigning.
	h.wakeGroupsOn(down)
	waitFor("the follower to wake", func() bool { return h.Unquiesced() == 1 })
	beat()
	waitFor("the follower to campaign", func() bool {
		h.Tick()
		h.wakeGroupsOn(h.liveness.check(time.Now().Add(time.Hour)))
		st, _ := h.Status(7)
		return st.State != raft.StateFollower
	})
}

// TestFailStopsHost: a failure shuts the host down on a goroutine the host
// owns, with nobody calling Stop, and that goroutine does not outlive the
// shutdown. Stop afterwards returns at once.
func TestFailStopsHost(t *testing.T) {
	_, cfg := testHostConfig(t)
	engineGoroutines := goleak.IgnoreCurrent()
	h, err := NewHost(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Bootstrap(7, []Replica{{ID: MakeReplicaID(1, 1)}}); err != nil {
		t.Fatal(err)
	}
	injected := errors.New("injected failure")
	h.fail(injected)
	h.fail(errors.New("a second failure")) // the first one sticks
	if !errors.Is(h.Err(), injected) {
		t.Fatalf("Err() = %v, want %v", h.Err(), injected)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !h.groupsReleased() {
		if time.Now().After(deadline) {
			t.Fatal("the failed host did not shut down")
		}
		time.Sleep(time.Millisecond)
	}
	// Every goroutine of the host ends, the one shutting it down included.
	goleak.VerifyNone(t, engineGoroutines)
	if p := h.Propose(7, []byte("x")); !errors.Is(mustWait(t, p), ErrStopped) {
		t.Fatal("a failed host took a proposal")
	}
	h.Stop()
}

// TestStopRacesFail: Stop called concurrently, several times, with failures
// reported from other goroutines neither deadlocks nor leaves a goroutine
// behind; every Stop returns once the host is stopped (run with -race).
func TestStopRacesFail(t *testing.T) {
	_, cfg := testHostConfig(t)
	cfg.Testing = nil // the ticker runs too
	cfg.TickInterval = time.Millisecond
	engineGoroutines := goleak.IgnoreCurrent()
	for i := range 20 {
		h, err := NewHost(cfg)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		for j := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if (i+j)%2 == 0 {
					h.fail(fmt.Errorf("injected failure %d", j))
				}
				h.Stop()
				if !h.stopper.Stopping() || !h.groupsReleased() {
					t.Error("Stop returned before the host stopped")
				}
			}()
		}
		wg.Wait()
	}
	goleak.VerifyNone(t, engineGoroutines)
}

// TestSnapshotSenderRefused: a snapshot raft asks for while the snapshot
// senders are stopping is failed at once: its Pebble snapshot is released
// and raft hears of the failure.
func TestSnapshotSenderRefused(t *testing.T) {
	eng, cfg := testHostConfig(t)
	h, err := NewHost(cfg)
	if err != nil {
		t.Fatal(err)
	}
	self, other := MakeReplicaID(1, 1), MakeReplicaID(2, 1)
	if err := h.Bootstrap(7, []Replica{{ID: self}, {ID: other}}); err != nil {
		t.Fatal(err)
	}
	// Nothing runs the new group (no ticker, no messages): the test may act
	// as its worker.
	g := h.group(7)
	h.snapStopper.Stop()
	failed := h.metrics.snapshotsFailed.Get()
	h.startSnapshot(g, &pb.Message{Type: pb.MsgSnap.Enum(), From: new(uint64(self)), To: new(uint64(other))})
	if got := h.metrics.snapshotsFailed.Get(); got != failed+1 {
		t.Fatalf("snapshots failed: %d, want %d", got, failed+1)
	}
	h.Stop()
	if err := eng.Close(); err != nil { // it reports leaked snapshots
		t.Fatal(err)
	}
}

func mustWait(t *testing.T, p *Proposal) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := p.Wait(ctx)
	return err
}

// groupsReleased reports whether closeGroups ran.
func (h *Host) groupsReleased() bool {
	h.groupsMu.RLock()
	defer h.groupsMu.RUnlock()
	return h.groupsClosed
}
