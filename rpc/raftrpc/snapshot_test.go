// Copyright 2026 The Flotilla Authors. All rights reserved.

package raftrpc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flotilladb/flotilla/engine"
	"github.com/flotilladb/flotilla/internal/testcluster"
	"github.com/flotilladb/flotilla/internal/testutil"
	"github.com/flotilladb/flotilla/multiraft"
	pb "go.etcd.io/raft/v3/raftpb"
	"golang.org/x/time/rate"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// countingLimiter records what a transport asks its snapshot limiter for.
type countingLimiter struct {
	inner bytesLimiter
	mu    sync.Mutex
	calls []int
}

func (l *countingLimiter) WaitN(ctx context.Context, n int) error {
	l.mu.Lock()
	l.calls = append(l.calls, n)
	l.mu.Unlock()
	if l.inner == nil {
		return ctx.Err()
	}
	return l.inner.WaitN(ctx, n)
}

func (l *countingLimiter) Burst() int {
	if l.inner == nil {
		return 1000
	}
	return l.inner.Burst()
}

// total returns the calls made and the bytes asked for.
func (l *countingLimiter) total() (calls, bytes int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, n := range l.calls {
		bytes += n
	}
	return len(l.calls), bytes
}

func TestWaitBytes(t *testing.T) {
	l := &countingLimiter{}
	if err := waitBytes(context.Background(), l, 3500); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(l.calls, []int{1000, 1000, 1000, 500}) {
		t.Errorf("waited in pieces %v, want 1000 1000 1000 500", l.calls)
	}
	if err := waitBytes(context.Background(), nil, 1<<30); err != nil {
		t.Errorf("nil limiter: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := waitBytes(ctx, rate.NewLimiter(1, 1), 10); err == nil {
		t.Error("waiting with a cancelled context succeeded")
	}
}

// compressibleCommand returns a command of size bytes, unique by its name,
// that s2 compresses about fourfold: random blocks, each repeated.
func compressibleCommand(rng *rand.Rand, name string, size int) []byte {
	cmd := []byte(name + ":")
	block := make([]byte, 256)
	for len(cmd) < size {
		for i := range block {
			block[i] = byte(rng.IntN(256))
		}
		for range 4 {
			cmd = append(cmd, block...)
		}
	}
	return cmd[:size]
}

// TestTransportSnapshot adds a learner to a group whose log was truncated:
// it catches up through a snapshot streamed over gRPC, compressed and paced
// by the sender's limiter, and then through the log.
func TestTransportSnapshot(t *testing.T) {
	rng := newRand(t)
	c := newTestCluster(t, 3)
	c.configureHost = func(cfg *multiraft.Config) { cfg.RaftLogTruncationThreshold = 8 }
	limiters := make(map[multiraft.NodeID]*countingLimiter)
	c.beforeStart = func(n *testNode) {
		l := &countingLimiter{inner: rate.NewLimiter(rate.Limit(512<<20), 64<<10)}
		limiters[n.id] = l
		n.tr.snapLimiter = l
	}
	c.startAll()
	c.bootstrap(1, 1, 2)

	var want [][]byte
	for i := range 30 {
		cmd := compressibleCommand(rng, fmt.Sprintf("cmd%d", i), 80<<10)
		c.propose(1, cmd)
		want = append(want, cmd)
	}
	c.waitConverged(1, want, 1, 2)

	leader := c.waitLeader(1)
	ctx, cancel := context.WithTimeout(context.Background(), testutil.DefaultSucceedsSoonTimeout)
	defer cancel()
	if _, err := leader.host.ProposeConfChange(1, multiraft.AddLearner(testcluster.ReplicaOn(3))).Wait(ctx); err != nil {
		t.Fatal(err)
	}
	c.waitConverged(1, want, leader.id, 3)
	for _, cmd := range commands("after", 5) {
		c.propose(1, cmd)
		want = append(want, cmd)
	}
	c.waitConverged(1, want, 1, 2, 3)

	var sent, compressed uint64
	var limiterCalls, limiterBytes int
	for _, id := range []multiraft.NodeID{1, 2} {
		m := c.node(id).tr.metrics
		sent += m.snapshotsSent.Get()
		compressed += m.compressedFrames.Get()
		calls, bytes := limiters[id].total()
		limiterCalls += calls
		limiterBytes += bytes
		if uint64(bytes) != m.snapBytesSent.Get() {
			t.Errorf("node %d: limiter asked for %d bytes, %d snapshot bytes sent", id, bytes, m.snapBytesSent.Get())
		}
		for _, n := range limiters[id].calls {
			if n > 64<<10 {
				t.Errorf("node %d: limiter asked for %d bytes at once, more than its burst", id, n)
			}
		}
	}
	if sent == 0 || c.node(3).tr.metrics.snapshotsReceived.Get() == 0 {
		t.Errorf("%d snapshots sent, %d received; want some", sent, c.node(3).tr.metrics.snapshotsReceived.Get())
	}
	if compressed == 0 {
		t.Error("nothing was compressed")
	}
	if limiterCalls == 0 {
		t.Error("the snapshot rate limiter was not consulted")
	}
	t.Logf("%d snapshots, %d compressed frames, limiter: %d calls for %d bytes", sent, compressed, limiterCalls, limiterBytes)
}

func testSnapshotHeader() *multiraft.SnapshotHeader {
	return &multiraft.SnapshotHeader{
		Group: 7,
		Message: &pb.Message{Type: pb.MessageType_MsgSnap.Enum(), From: new(uint64(multiraft.MakeReplicaID(1, 1))),
			To: new(uint64(multiraft.MakeReplicaID(2, 1))), Term: new(uint64(3)),
			Snapshot: &pb.Snapshot{Metadata: &pb.SnapshotMetadata{Index: new(uint64(20)), Term: new(uint64(3))}}},
		Spans: []engine.Span{engine.RangeReplicatedSpan(7)},
	}
}

// TestSendSnapshotStream checks the snapshot stream between two transports
// with a fake receiver: chunks arrive intact and in order (large ones
// compressed), the receiver's refusal reaches the sender with its message,
// a receiver that gives up early is reported, and cancelling the sender
// stops the receiver's stream.
func TestSendSnapshotStream(t *testing.T) {
	recv := newLonePeer(t, 2, true, nil)
	send := newLonePeer(t, 1, true, func(cfg *TransportConfig) { cfg.CompressThreshold = 4 << 10 })
	limiter := &countingLimiter{inner: rate.NewLimiter(rate.Inf, 1<<10)}
	send.tr.snapLimiter = limiter
	send.tr.SetAddress(2, recv.addr)

	rng := newRand(t)
	var chunks [][]byte
	for i := range 20 {
		if i%2 == 0 {
			chunks = append(chunks, compressibleCommand(rng, fmt.Sprint(i), 1+rng.IntN(64<<10)))
		} else {
			chunk := make([]byte, 1+rng.IntN(100))
			for j := range chunk {
				chunk[j] = byte(rng.IntN(256))
			}
			chunks = append(chunks, chunk)
		}
	}
	// emit reuses one buffer, as engine.Snapshot.Export does.
	emitAll := func(emit func([]byte) error) error {
		var buf []byte
		for _, c := range chunks {
			buf = append(buf[:0], c...)
			if err := emit(buf); err != nil {
				return err
			}
		}
		return nil
	}

	var mu sync.Mutex
	var got [][]byte
	var gotHeader *multiraft.SnapshotHeader
	recv.h.snapshot = func(ctx context.Context, h *multiraft.SnapshotHeader, next func() ([]byte, error)) error {
		mu.Lock()
		defer mu.Unlock()
		gotHeader = h
		got = nil
		for {
			c, err := next()
			if errors.Is(err, io.EOF) {
				return nil
			}
			if err != nil {
				return err
			}
			got = append(got, bytes.Clone(c))
		}
	}
	header := testSnapshotHeader()
	if err := send.tr.SendSnapshot(context.Background(), 2, header, emitAll); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	if len(got) != len(chunks) {
		t.Fatalf("received %d chunks, sent %d", len(got), len(chunks))
	}
	for i := range chunks {
		if !bytes.Equal(got[i], chunks[i]) {
			t.Fatalf("chunk %d differs", i)
		}
	}
	if gotHeader.Group != 7 || gotHeader.Message.GetSnapshot().GetMetadata().GetIndex() != 20 {
		t.Errorf("header arrived as %+v", gotHeader)
	}
	mu.Unlock()
	if send.tr.metrics.compressedFrames.Get() == 0 {
		t.Error("no chunk was compressed")
	}
	if calls, n := limiter.total(); calls == 0 || uint64(n) != send.tr.metrics.snapBytesSent.Get() {
		t.Errorf("limiter: %d calls for %d bytes; %d bytes sent", calls, n, send.tr.metrics.snapBytesSent.Get())
	}
	if addr, ok := recv.tr.Address(1); ok {
		t.Errorf("receiver took address %q for the sender from a stream header", addr)
	}

	// The receiver refuses after reading everything.
	recv.h.snapshot = func(ctx context.Context, h *multiraft.SnapshotHeader, next func() ([]byte, error)) error {
		for {
			if _, err := next(); err != nil {
				if errors.Is(err, io.EOF) {
					return errors.New("the replica moved on")
				}
				return err
			}
		}
	}
	err := send.tr.SendSnapshot(context.Background(), 2, header, emitAll)
	if status.Code(err) != codes.FailedPrecondition || !strings.Contains(err.Error(), "the replica moved on") {
		t.Errorf("refused snapshot: %v", err)
	}

	// The receiver refuses before reading anything: the sender reports its
	// reason, not a broken stream.
	recv.h.snapshot = func(ctx context.Context, h *multiraft.SnapshotHeader, next func() ([]byte, error)) error {
		return fmt.Errorf("%w: not for me", multiraft.ErrBadSnapshot)
	}
	err = send.tr.SendSnapshot(context.Background(), 2, header, emitAll)
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "not for me") {
		t.Errorf("snapshot refused early: %v", err)
	}

	// The sender gives up midway: the receiver's next fails.
	receiverErr := make(chan error, 1)
	gotFirst := make(chan struct{})
	recv.h.snapshot = func(ctx context.Context, h *multiraft.SnapshotHeader, next func() ([]byte, error)) error {
		if _, err := next(); err != nil {
			receiverErr <- err
			return err
		}
		close(gotFirst)
		for {
			if _, err := next(); err != nil {
				receiverErr <- err
				return err
			}
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	err = send.tr.SendSnapshot(ctx, 2, header, func(emit func([]byte) error) error {
		if err := emit([]byte("first")); err != nil {
			return err
		}
		<-gotFirst
		cancel()
		return ctx.Err()
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled snapshot: %v", err)
	}
	select {
	case err := <-receiverErr:
		if err == nil || errors.Is(err, io.EOF) {
			t.Errorf("receiver saw %v, want an error", err)
		}
	case <-time.After(testutil.DefaultSucceedsSoonTimeout):
		t.Fatal("receiver did not notice the cancelled stream")
	}
	if got := send.tr.metrics.snapshotsFailed.Get(); got != 3 {
		t.Errorf("%d snapshots counted failed, want 3", got)
	}

	// Closing the sender's transport ends a snapshot waiting for its
	// outcome, and the receiver's context.
	waiting := make(chan struct{})
	recv.h.snapshot = func(ctx context.Context, h *multiraft.SnapshotHeader, next func() ([]byte, error)) error {
		for {
			if _, err := next(); err != nil {
				if !errors.Is(err, io.EOF) {
					return err
				}
				break
			}
		}
		close(waiting)
		<-ctx.Done()
		return ctx.Err()
	}
	sendErr := make(chan error, 1)
	go func() { sendErr <- send.tr.SendSnapshot(context.Background(), 2, header, emitAll) }()
	<-waiting
	if err := send.tr.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-sendErr; !errors.Is(err, ErrTransportClosed) {
		t.Errorf("snapshot in flight at Close: %v", err)
	}
}
