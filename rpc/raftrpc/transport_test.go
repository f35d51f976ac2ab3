// Copyright 2026 The Flotilla Authors. All rights reserved.

package raftrpc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/flotilladb/flotilla/rpc"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"

	"github.com/flotilladb/flotilla/engine"
	"github.com/flotilladb/flotilla/internal/testcluster"
	"github.com/flotilladb/flotilla/internal/testutil"
	"github.com/flotilladb/flotilla/multiraft"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func commands(prefix string, n int) [][]byte {
	var cmds [][]byte
	for i := range n {
		cmds = append(cmds, fmt.Appendf(nil, "%s-%d", prefix, i))
	}
	return cmds
}

// TestTransportCluster runs a group on three hosts over gRPC: it elects and
// applies; it carries on without a stopped node; the node, restarted on a
// new port, is found again once its peers are told its new address (as
// the cluster's membership records tell them: a stream's header does not)
// and catches up; a node restarted on its old port is reconnected to.
func TestTransportCluster(t *testing.T) {
	c := newTestCluster(t, 3)
	c.startAll()
	c.bootstrap(1, 1, 2, 3)
	c.waitLeader(1)

	var want [][]byte
	for _, cmd := range commands("a", 20) {
		c.propose(1, cmd)
		want = append(want, cmd)
	}
	c.waitConverged(1, want, 1, 2, 3)

	// Stop the leader: the others elect and carry on.
	stopped := c.waitLeader(1).id
	var others []multiraft.NodeID
	for _, n := range c.nodes {
		if n.id != stopped {
			others = append(others, n.id)
		}
	}
	oldAddr := c.node(stopped).addr
	c.stop(stopped)
	for _, cmd := range commands("b", 10) {
		c.propose(1, cmd, others...)
		want = append(want, cmd)
	}
	c.waitConverged(1, want, others...)

	// Restart it on a new port. Its streams name its new address, which
	// its peers do not take from them: they keep the old one until told.
	c.start(stopped)
	newAddr := c.node(stopped).addr
	if newAddr == oldAddr {
		t.Fatalf("restarted on the same address %s", newAddr)
	}
	waitTicksOf(t, c.node(stopped).host, 10) // its streams reached the others
	for _, id := range others {
		if addr, _ := c.node(id).tr.Address(stopped); addr != oldAddr {
			t.Fatalf("node %d took address %s for node %d from a stream header (had %s)", id, addr, stopped, oldAddr)
		}
	}
	for _, id := range others {
		c.node(id).tr.SetAddress(stopped, newAddr)
	}
	testutil.SucceedsSoon(t, func() error {
		for _, id := range others {
			if addr, _ := c.node(id).tr.Address(stopped); addr != newAddr {
				return fmt.Errorf("node %d has address %s for node %d, want %s", id, addr, stopped, newAddr)
			}
		}
		return nil
	})
	for _, cmd := range commands("c", 5) {
		c.propose(1, cmd)
		want = append(want, cmd)
	}
	c.waitConverged(1, want, 1, 2, 3)

	// Restart a node on its own port: the others' connections to it come
	// back by themselves.
	follower := others[0]
	if l, err := c.leader(1); err == nil && l.id == follower {
		follower = others[1]
	}
	addr := c.node(follower).addr
	c.stop(follower)
	c.listen(follower, addr)
	c.start(follower)
	for _, cmd := range commands("d", 5) {
		c.propose(1, cmd)
		want = append(want, cmd)
	}
	c.waitConverged(1, want, 1, 2, 3)

	for _, n := range c.nodes {
		m := n.tr.metrics
		if m.batchesSent[flotillapb.StreamClass_SYSTEM].Get() == 0 || m.batchesSent[flotillapb.StreamClass_DEFAULT].Get() == 0 {
			t.Errorf("node %d sent %d system and %d default batches; want both", n.id,
				m.batchesSent[flotillapb.StreamClass_SYSTEM].Get(), m.batchesSent[flotillapb.StreamClass_DEFAULT].Get())
		}
		if m.batchesReceived.Get() == 0 {
			t.Errorf("node %d received no batches", n.id)
		}
	}
}

// TestTransportDialOverride routes every connection to and from node 3
// through proxies (dial overrides), sees traffic cross them, cuts them while
// node 3 leads and sees the other two elect and carry on, then heals them
// and sees node 3 catch up.
func TestTransportDialOverride(t *testing.T) {
	c := newTestCluster(t, 3)
	for _, n := range c.nodes {
		c.listen(n.id, "")
	}
	to3 := newTCPProxy(t, c.node(3).addr)
	from3to1 := newTCPProxy(t, c.node(1).addr)
	from3to2 := newTCPProxy(t, c.node(2).addr)
	proxies := []*tcpProxy{to3, from3to1, from3to2}
	c.node(1).overrides = map[string]string{c.node(3).addr: to3.addr()}
	c.node(2).overrides = map[string]string{c.node(3).addr: to3.addr()}
	c.node(3).overrides = map[string]string{c.node(1).addr: from3to1.addr(), c.node(2).addr: from3to2.addr()}
	c.startAll()
	c.bootstrap(1, 1, 2, 3)

	var want [][]byte
	for _, cmd := range commands("a", 5) {
		c.propose(1, cmd)
		want = append(want, cmd)
	}
	c.waitConverged(1, want, 1, 2, 3)

	// Make node 3 the leader, then isolate it.
	r3 := testcluster.ReplicaOn(3)
	testutil.SucceedsSoon(t, func() error {
		l, err := c.leader(1)
		if err != nil {
			return err
		}
		if l.id == 3 {
			return nil
		}
		_ = l.host.TransferLeadership(1, r3)
		return fmt.Errorf("node %d leads", l.id)
	})
	// As leader, node 3 talks to both others.
	testutil.SucceedsSoon(t, func() error {
		for i, p := range proxies {
			if p.bytes.Load() == 0 {
				return fmt.Errorf("no traffic through proxy %d", i)
			}
		}
		return nil
	})
	for _, p := range proxies {
		p.setCut(true)
	}
	for _, cmd := range commands("b", 5) {
		c.propose(1, cmd, 1, 2)
		want = append(want, cmd)
	}
	c.waitConverged(1, want, 1, 2)

	for _, p := range proxies {
		p.setCut(false)
	}
	c.waitConverged(1, want, 1, 2, 3)
}

// rawClient returns a Raft client on a connection of its own to addr.
func rawClient(t *testing.T, addr string) flotillapb.RaftClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, rpc.DialOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return flotillapb.NewRaftClient(conn)
}

// rawStream sends frames on a new RaftStream, half-closes it and returns
// how the server ended it (nil for OK).
func rawStream(t *testing.T, client flotillapb.RaftClient, frames ...*flotillapb.RaftFrame) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testutil.DefaultSucceedsSoonTimeout)
	defer cancel()
	stream, err := client.RaftStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range frames {
		if err := stream.Send(f); err != nil {
			break // the server ended the stream; Recv says why
		}
	}
	_ = stream.CloseSend()
	_, err = stream.Recv()
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

// rawSnapshot sends frames on a new Snapshot stream and returns the outcome.
func rawSnapshot(t *testing.T, client flotillapb.RaftClient, frames ...*flotillapb.SnapshotFrame) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testutil.DefaultSucceedsSoonTimeout)
	defer cancel()
	stream, err := client.Snapshot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range frames {
		if err := stream.Send(f); err != nil {
			break
		}
	}
	_, err = stream.CloseAndRecv()
	return err
}

func marshalBatch(t *testing.T, b *multiraft.MessageBatch) []byte {
	t.Helper()
	data, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func wantCode(t *testing.T, what string, err error, code codes.Code) {
	t.Helper()
	if got := status.Code(err); got != code {
		t.Errorf("%s: got %v (%v), want code %v", what, status.Code(err), err, code)
	}
}

// TestTransportBadInput sends a node malformed streams and snapshots: each
// ends with a clear gRPC error and the node's group keeps working.
func TestTransportBadInput(t *testing.T) {
	c := newTestCluster(t, 1)
	c.startAll()
	c.bootstrap(1, 1)
	c.propose(1, []byte("before"))
	n := c.node(1)
	client := rawClient(t, n.addr)

	header := func(mod func(h *flotillapb.PeerHeader)) *flotillapb.PeerHeader {
		h := &flotillapb.PeerHeader{ClusterId: testClusterID, FromNode: 2, FromAddress: "127.0.0.1:1", ToNode: 1}
		if mod != nil {
			mod(h)
		}
		return h
	}
	ping := marshalBatch(t, &multiraft.MessageBatch{From: 2, To: 1})
	compressedGarbage := append([]byte{0x80, 0x08}, bytes.Repeat([]byte{0xfe}, 64)...)

	for _, tc := range []struct {
		name   string
		frames []*flotillapb.RaftFrame
		code   codes.Code
	}{
		{"ok", []*flotillapb.RaftFrame{{Header: header(nil), Batch: ping}}, codes.OK},
		{"empty stream", nil, codes.OK},
		{"header alone first", []*flotillapb.RaftFrame{{Header: header(nil)}, {Batch: ping}}, codes.OK},
		{"no header", []*flotillapb.RaftFrame{{Batch: ping}}, codes.InvalidArgument},
		{"no sender", []*flotillapb.RaftFrame{{Header: header(func(h *flotillapb.PeerHeader) { h.FromNode = 0 }), Batch: ping}}, codes.InvalidArgument},
		{"wrong cluster", []*flotillapb.RaftFrame{{Header: header(func(h *flotillapb.PeerHeader) { h.ClusterId = "other" }), Batch: ping}}, codes.FailedPrecondition},
		{"wrong node", []*flotillapb.RaftFrame{{Header: header(func(h *flotillapb.PeerHeader) { h.ToNode = 9 }), Batch: ping}}, codes.FailedPrecondition},
		{"from itself", []*flotillapb.RaftFrame{{Header: header(func(h *flotillapb.PeerHeader) { h.FromNode = 1 }),
			Batch: marshalBatch(t, &multiraft.MessageBatch{From: 1, To: 1})}}, codes.FailedPrecondition},
		{"garbage batch", []*flotillapb.RaftFrame{{Header: header(nil), Batch: []byte{0xff, 0xff, 0xff, 0xff}}}, codes.InvalidArgument},
		{"garbage after a good frame", []*flotillapb.RaftFrame{{Header: header(nil), Batch: ping}, {Batch: []byte{0x0a, 0x7f}}}, codes.InvalidArgument},
		{"garbage compressed", []*flotillapb.RaftFrame{{Header: header(nil), Batch: compressedGarbage, Compression: flotillapb.Compression_S2}}, codes.InvalidArgument},
		{"unknown compression", []*flotillapb.RaftFrame{{Header: header(nil), Batch: ping, Compression: 7}}, codes.InvalidArgument},
		{"batch from another node", []*flotillapb.RaftFrame{{Header: header(nil),
			Batch: marshalBatch(t, &multiraft.MessageBatch{From: 5, To: 1})}}, codes.InvalidArgument},
		{"batch for another node", []*flotillapb.RaftFrame{{Header: header(nil),
			Batch: marshalBatch(t, &multiraft.MessageBatch{From: 2, To: 3})}}, codes.InvalidArgument},
		{"bad raft message", []*flotillapb.RaftFrame{{Header: header(nil), Batch: marshalBatch(t, &multiraft.MessageBatch{From: 2, To: 1,
			Messages: []multiraft.GroupMessage{{Group: 1, Message: &pb.Message{Type: pb.MessageType_MsgApp.Enum(),
				From: new(uint64(multiraft.MakeReplicaID(2, 1))), To: new(uint64(multiraft.MakeReplicaID(1, 1))), Term: new(uint64(1 << 40))}}}})}},
			codes.OK}, // well-formed: delivered, and the host drops it (no replica 2 in the group)
	} {
		t.Run("stream/"+tc.name, func(t *testing.T) {
			wantCode(t, tc.name, rawStream(t, client, tc.frames...), tc.code)
		})
	}

	snapHeader := &multiraft.SnapshotHeader{
		Group: 1,
		Message: &pb.Message{
			Type: pb.MessageType_MsgSnap.Enum(), From: new(uint64(multiraft.MakeReplicaID(2, 1))),
			To: new(uint64(multiraft.MakeReplicaID(1, 1))), Term: new(uint64(1000)),
			Snapshot: &pb.Snapshot{Metadata: &pb.SnapshotMetadata{Index: new(uint64(1000)), Term: new(uint64(1000)),
				ConfState: &pb.ConfState{Voters: []uint64{uint64(multiraft.MakeReplicaID(1, 1)), uint64(multiraft.MakeReplicaID(2, 1))}}}},
		},
	}
	testSM := testcluster.NewLogStateMachine(n.eng, 1)
	snapHeader.Spans = append(snapHeader.Spans, engine.RangeReplicatedSpan(1), testSM.Spans()[0])
	snapHeaderBytes, err := snapHeader.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	snapFirst := func(mod func(f *flotillapb.SnapshotFrame)) *flotillapb.SnapshotFrame {
		f := &flotillapb.SnapshotFrame{Header: header(nil), SnapshotHeader: snapHeaderBytes}
		if mod != nil {
			mod(f)
		}
		return f
	}
	for _, tc := range []struct {
		name   string
		frames []*flotillapb.SnapshotFrame
		code   codes.Code
	}{
		{"no frames", nil, codes.InvalidArgument},
		{"no header", []*flotillapb.SnapshotFrame{snapFirst(func(f *flotillapb.SnapshotFrame) { f.Header = nil })}, codes.InvalidArgument},
		{"wrong cluster", []*flotillapb.SnapshotFrame{snapFirst(func(f *flotillapb.SnapshotFrame) { f.Header.ClusterId = "x" })}, codes.FailedPrecondition},
		{"wrong node", []*flotillapb.SnapshotFrame{snapFirst(func(f *flotillapb.SnapshotFrame) { f.Header.ToNode = 3 })}, codes.FailedPrecondition},
		{"no snapshot header", []*flotillapb.SnapshotFrame{snapFirst(func(f *flotillapb.SnapshotFrame) { f.SnapshotHeader = nil })}, codes.InvalidArgument},
		{"garbage snapshot header", []*flotillapb.SnapshotFrame{snapFirst(func(f *flotillapb.SnapshotFrame) { f.SnapshotHeader = []byte{0xff, 0x01, 0x02} })}, codes.InvalidArgument},
		{"garbage chunk", []*flotillapb.SnapshotFrame{snapFirst(nil), {Chunk: []byte("not a chunk at all")}}, codes.InvalidArgument},
		{"garbage compressed chunk", []*flotillapb.SnapshotFrame{snapFirst(nil), {Chunk: compressedGarbage, Compression: flotillapb.Compression_S2}}, codes.InvalidArgument},
	} {
		t.Run("snapshot/"+tc.name, func(t *testing.T) {
			wantCode(t, tc.name, rawSnapshot(t, client, tc.frames...), tc.code)
		})
	}

	if err := n.host.Err(); err != nil {
		t.Fatalf("host failed: %v", err)
	}
	if got := n.tr.metrics.rejected.Get(); got == 0 {
		t.Errorf("no inbound input counted as rejected")
	}
	c.propose(1, []byte("after"))
	c.waitConverged(1, [][]byte{[]byte("before"), []byte("after")}, 1)
}

// TestTransportBeforeStart: until Start, inbound streams are refused with
// Unavailable and nothing can be sent; after Start traffic flows; after
// Close everything is refused again.
func TestTransportBeforeStart(t *testing.T) {
	p := newLonePeer(t, 1, false, nil)
	client := rawClient(t, p.addr)
	hdr := &flotillapb.PeerHeader{ClusterId: testClusterID, FromNode: 2, ToNode: 1}
	ping := marshalBatch(t, &multiraft.MessageBatch{From: 2, To: 1})

	wantCode(t, "stream before start", rawStream(t, client, &flotillapb.RaftFrame{Header: hdr, Batch: ping}), codes.Unavailable)
	wantCode(t, "snapshot before start", rawSnapshot(t, client, &flotillapb.SnapshotFrame{Header: hdr}), codes.Unavailable)
	p.tr.SetAddress(2, "127.0.0.1:1")
	if err := p.tr.Send(&multiraft.MessageBatch{From: 1, To: 2}); !errors.Is(err, ErrTransportNotStarted) {
		t.Errorf("Send before Start: %v", err)
	}
	err := p.tr.SendSnapshot(context.Background(), 2, &multiraft.SnapshotHeader{}, func(func([]byte) error) error { return nil })
	if !errors.Is(err, ErrTransportNotStarted) {
		t.Errorf("SendSnapshot before Start: %v", err)
	}

	if err := p.tr.Start(1, testClusterID, p.addr, p.h); err != nil {
		t.Fatal(err)
	}
	if err := p.tr.Start(1, testClusterID, p.addr, p.h); err == nil {
		t.Error("second Start succeeded")
	}
	wantCode(t, "stream after start", rawStream(t, client, &flotillapb.RaftFrame{Header: hdr, Batch: ping}), codes.OK)
	if got := len(p.h.received()); got != 1 {
		t.Errorf("handler received %d batches, want 1", got)
	}

	if err := p.tr.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.tr.Close(); err != nil {
		t.Fatal(err)
	}
	wantCode(t, "stream after close", rawStream(t, client, &flotillapb.RaftFrame{Header: hdr, Batch: ping}), codes.Unavailable)
	if err := p.tr.Send(&multiraft.MessageBatch{From: 1, To: 2}); !errors.Is(err, ErrTransportClosed) {
		t.Errorf("Send after Close: %v", err)
	}
}

// TestTransportCloseEndsInboundStreams: an open inbound stream ends with
// Unavailable when the transport closes.
func TestTransportCloseEndsInboundStreams(t *testing.T) {
	p := newLonePeer(t, 1, true, nil)
	client := rawClient(t, p.addr)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stream, err := client.RaftStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	hdr := &flotillapb.PeerHeader{ClusterId: testClusterID, FromNode: 2, FromAddress: "127.0.0.1:9", ToNode: 1}
	if err := stream.Send(&flotillapb.RaftFrame{Header: hdr, Batch: marshalBatch(t, &multiraft.MessageBatch{From: 2, To: 1})}); err != nil {
		t.Fatal(err)
	}
	testutil.SucceedsSoon(t, func() error {
		if len(p.h.received()) != 1 {
			return errors.New("batch not delivered yet")
		}
		return nil
	})
	if addr, ok := p.tr.Address(2); ok {
		t.Errorf("took address %q for node 2 from a stream header", addr)
	}
	if err := p.tr.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = stream.Recv()
	wantCode(t, "open stream after Close", err, codes.Unavailable)
}

// TestTransportSendErrors: Send refuses batches for unknown nodes, for
// itself, and when a peer's queue is full; Close returns while a sender is
// stuck connecting to a peer that never answers.
func TestTransportSendErrors(t *testing.T) {
	p := newLonePeer(t, 1, true, func(cfg *TransportConfig) { cfg.MaxQueuedBatches = 2 })
	if err := p.tr.Send(&multiraft.MessageBatch{From: 1, To: 7}); !errors.Is(err, ErrUnknownPeer) {
		t.Errorf("Send to an unknown node: %v", err)
	}
	err := p.tr.SendSnapshot(context.Background(), 7, &multiraft.SnapshotHeader{}, func(func([]byte) error) error { return nil })
	if !errors.Is(err, ErrUnknownPeer) {
		t.Errorf("SendSnapshot to an unknown node: %v", err)
	}
	if err := p.tr.Send(&multiraft.MessageBatch{From: 1, To: 1}); err == nil {
		t.Error("Send to itself succeeded")
	}

	// A peer that accepts connections and never speaks.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var conns []net.Conn
	var connsMu sync.Mutex
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			connsMu.Lock()
			conns = append(conns, c)
			connsMu.Unlock()
		}
	}()
	defer func() {
		_ = silent.Close()
		wg.Wait()
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	p.tr.SetAddress(2, silent.Addr().String())
	var full int
	for range 10 {
		if err := p.tr.Send(&multiraft.MessageBatch{From: 1, To: 2}); errors.Is(err, ErrSendQueueFull) {
			full++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if full < 7 {
		t.Errorf("%d of 10 sends found the queue of 2 full, want at least 7", full)
	}
	if got := p.tr.metrics.droppedQueueFull.Get(); got != uint64(full) {
		t.Errorf("queue-full drops counted %d, want %d", got, full)
	}
	if err := p.tr.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestTransportStreamsByClass: heartbeat-only batches and pings travel on
// the system stream, the rest on the default stream, each class in order,
// and big batches are compressed.
func TestTransportStreamsByClass(t *testing.T) {
	recv := newLonePeer(t, 2, true, nil)
	send := newLonePeer(t, 1, true, func(cfg *TransportConfig) { cfg.CompressThreshold = 1024 })
	send.tr.SetAddress(2, recv.addr)

	rng := newRand(t)
	var sent []*multiraft.MessageBatch
	for i := range 200 {
		b := &multiraft.MessageBatch{From: 1, To: 2}
		switch rng.IntN(3) {
		case 0: // ping
		case 1:
			b.Heartbeats = []multiraft.Heartbeat{{Group: multiraft.GroupID(i + 1), From: multiraft.MakeReplicaID(1, 1),
				To: multiraft.MakeReplicaID(2, 1), Term: uint64(i)}}
		case 2:
			data := bytes.Repeat([]byte{byte(i)}, rng.IntN(4096))
			b.Messages = []multiraft.GroupMessage{{Group: multiraft.GroupID(i + 1), Message: &pb.Message{
				Type: pb.MessageType_MsgApp.Enum(), From: new(uint64(multiraft.MakeReplicaID(1, 1))),
				To: new(uint64(multiraft.MakeReplicaID(2, 1))), Term: new(uint64(i)),
				Entries: []*pb.Entry{{Index: new(uint64(i)), Term: new(uint64(i)), Data: data}}}}}
		}
		sent = append(sent, b)
		if err := send.tr.Send(b); err != nil {
			t.Fatal(err)
		}
	}
	testutil.SucceedsSoon(t, func() error {
		if got := len(recv.h.received()); got != len(sent) {
			return fmt.Errorf("received %d of %d batches", got, len(sent))
		}
		return nil
	})
	// Within a class, order is kept.
	for _, class := range streamClasses {
		var want, got []string
		for _, b := range sent {
			if classOf(b) == class {
				want = append(want, batchKey(b))
			}
		}
		for _, b := range recv.h.received() {
			if classOf(b) == class {
				got = append(got, batchKey(b))
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s class: received out of order or altered", class)
		}
	}
	if send.tr.metrics.compressedFrames.Get() == 0 {
		t.Error("no batch was compressed")
	}
	if got := send.tr.metrics.streamsOpened.Get(); got != 2 {
		t.Errorf("opened %d streams, want 2 (one per class)", got)
	}
}

func batchKey(b *multiraft.MessageBatch) string {
	s := fmt.Sprintf("%d>%d", b.From, b.To)
	for _, m := range b.Messages {
		s += fmt.Sprintf(" m%d:%d:%d", m.Group, m.Message.GetTerm(), len(m.Message.GetEntries()[0].GetData()))
	}
	for _, hb := range b.Heartbeats {
		s += fmt.Sprintf(" h%d:%d", hb.Group, hb.Term)
	}
	return s
}

// TestEncodeBatchSplits: a batch too large for one gRPC message goes as
// several frames, split by messages; a single message too large is dropped.
func TestEncodeBatchSplits(t *testing.T) {
	tr, err := NewTransport(TransportConfig{Pool: rpc.NewPool(rpc.PoolConfig{}), CompressThreshold: -1, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer tr.Close()
	tr.maxBatchBytes = 10 << 10
	msg := func(group multiraft.GroupID, size int) multiraft.GroupMessage {
		return multiraft.GroupMessage{Group: group, Message: &pb.Message{Type: pb.MessageType_MsgApp.Enum(),
			From: new(uint64(multiraft.MakeReplicaID(1, 1))), To: new(uint64(multiraft.MakeReplicaID(2, 1))),
			Entries: []*pb.Entry{{Data: make([]byte, size)}}}}
	}
	b := &multiraft.MessageBatch{From: 1, To: 2, Heartbeats: []multiraft.Heartbeat{{Group: 9, To: 5}}}
	for g := range 8 {
		b.Messages = append(b.Messages, msg(multiraft.GroupID(g+1), 3<<10))
	}
	b.Messages = append(b.Messages, msg(100, 20<<10)) // too large alone
	frames := tr.encodeBatch(b, nil)
	var groups []multiraft.GroupID
	var beats int
	for _, f := range frames {
		if len(f.Batch) > tr.maxBatchBytes {
			t.Errorf("frame of %d bytes", len(f.Batch))
		}
		got, err := multiraft.UnmarshalBatch(f.Batch)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range got.Messages {
			groups = append(groups, m.Group)
		}
		beats += len(got.Heartbeats)
	}
	if fmt.Sprint(groups) != "[1 2 3 4 5 6 7 8]" || beats != 1 {
		t.Errorf("frames carry groups %v and %d heartbeats; want groups 1-8 in order and 1", groups, beats)
	}
	if got := tr.metrics.droppedTooLarge.Get(); got != 1 {
		t.Errorf("dropped %d messages as too large, want 1", got)
	}
}

func TestCompressPayload(t *testing.T) {
	compressible := bytes.Repeat([]byte("flotilla "), 10000)
	random := make([]byte, 100000)
	rng := newRand(t)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	for _, tc := range []struct {
		name      string
		data      []byte
		threshold int
		want      flotillapb.Compression
	}{
		{"below threshold", compressible, len(compressible) + 1, flotillapb.Compression_NONE},
		{"at threshold", compressible, len(compressible), flotillapb.Compression_S2},
		{"disabled", compressible, -1, flotillapb.Compression_NONE},
		{"incompressible", random, 1, flotillapb.Compression_NONE},
		{"empty", nil, 1, flotillapb.Compression_NONE},
	} {
		t.Run(tc.name, func(t *testing.T) {
			payload, c := compressPayload(tc.data, tc.threshold)
			if c != tc.want {
				t.Fatalf("compression %v, want %v", c, tc.want)
			}
			if c == flotillapb.Compression_S2 && len(payload) >= len(tc.data) {
				t.Errorf("compressed %d bytes into %d", len(tc.data), len(payload))
			}
			got, err := decompressPayload(payload, c)
			if err != nil || !bytes.Equal(got, tc.data) {
				t.Errorf("round trip: %v", err)
			}
		})
	}

	// Garbage never panics.
	enc, _ := compressPayload(compressible, 1)
	for _, bad := range [][]byte{nil, {0xff}, {0x80, 0x80, 0x80, 0x80, 0x80, 0x80}, enc[:len(enc)/2],
		append([]byte{0xff, 0xff, 0xff, 0xff, 0x7f}, enc...)} {
		if _, err := decompressPayload(bad, flotillapb.Compression_S2); !errors.Is(err, errBadCompression) {
			t.Errorf("decompressing %x...: %v", bad[:min(len(bad), 8)], err)
		}
	}
	for range 1000 {
		junk := make([]byte, rng.IntN(64))
		for i := range junk {
			junk[i] = byte(rng.Uint32())
		}
		_, _ = decompressPayload(junk, flotillapb.Compression_S2)
	}
	if _, err := decompressPayload(compressible, 42); !errors.Is(err, errBadCompression) {
		t.Errorf("unknown compression: %v", err)
	}
}

func TestTransportConfig(t *testing.T) {
	if _, err := NewTransport(TransportConfig{MaxQueuedBatches: -1}); err == nil {
		t.Fatal("NewTransport accepted a config without a pool and a negative queue")
	} else if s := err.Error(); !bytes.Contains([]byte(s), []byte("Pool")) || !bytes.Contains([]byte(s), []byte("MaxQueuedBatches")) {
		t.Errorf("error does not report every problem: %v", err)
	}
	cfg := TransportConfig{Pool: rpc.NewPool(rpc.PoolConfig{})}
	cfg.EnsureDefaults()
	if cfg.SnapshotBytesPerSecond != DefaultSnapshotBytesPerSecond || cfg.CompressThreshold != DefaultCompressThreshold ||
		cfg.MaxQueuedBatches != DefaultMaxQueuedBatches || cfg.Logger == nil {
		t.Errorf("defaults not filled: %+v", cfg)
	}
	tr, err := NewTransport(TransportConfig{Pool: cfg.Pool, SnapshotBytesPerSecond: -1})
	if err != nil {
		t.Fatal(err)
	}
	if tr.snapLimiter != nil {
		t.Error("negative SnapshotBytesPerSecond should mean unlimited")
	}
	if err := tr.Start(0, "", "", &fakeHandler{}); err == nil {
		t.Error("Start accepted node 0")
	}
	if err := tr.Start(1, "", "", nil); err == nil {
		t.Error("Start accepted no handler")
	}
	_ = tr.Close()
	if err := tr.Start(1, "", "", &fakeHandler{}); !errors.Is(err, ErrTransportClosed) {
		t.Errorf("Start after Close: %v", err)
	}
}

// waitTicksOf waits until h's ticker fired n more times.
func waitTicksOf(t *testing.T, h *multiraft.Host, n uint64) {
	t.Helper()
	target := h.Ticks() + n
	testutil.SucceedsSoon(t, func() error {
		if got := h.Ticks(); got < target {
			return fmt.Errorf("ticks %d of %d", got, target)
		}
		return nil
	})
}
