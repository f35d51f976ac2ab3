// Copyright 2026 The Flotilla Authors. All rights reserved.

package server_test

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/flotilladb/flotilla/internal/testutil"
	"github.com/flotilladb/flotilla/multiraft"
	"github.com/flotilladb/flotilla/placement"
	"github.com/flotilladb/flotilla/rpc"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"github.com/flotilladb/flotilla/server"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

var hostileSeed = flag.Uint64("hostile-seed", 0, "seed of TestHostileRaftStream's mutations (0: pick one and print it)")

// rawRaftStream sends frames on a new Raft stream to addr, half-closes it
// and returns how the node ended it (nil for OK): once it returns, the
// node handed every batch it accepted to its raft host.
func rawRaftStream(t *testing.T, client flotillapb.RaftClient, frames ...*flotillapb.RaftFrame) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stream, err := client.RaftStream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range frames {
		if err := stream.Send(f); err != nil {
			break // the node ended the stream; Recv says why
		}
	}
	_ = stream.CloseSend()
	_, err = stream.Recv()
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

func marshal(t *testing.T, b *multiraft.MessageBatch) []byte {
	t.Helper()
	data, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestHostileRaftStream opens raw raft streams to a real node's gRPC port,
// with hand-built peer headers and batches (TESTING.md #25): a heartbeat
// from the leader's replica committing index 2^40, a heartbeat for a group
// that does not exist, a flood of votes for made-up groups, a header that
// claims another node's ID with another address, and seeded random
// mutations of valid frames. No node panics, no more uninitialized
// replicas than the bound are created, no address changes, each forged
// message is counted, and the cluster still serves writes.
func TestHostileRaftStream(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	n1 := openNode(t, server.Config{Dir: t.TempDir()})
	nodes := []*server.Node{n1}
	for range 2 {
		nodes = append(nodes, openNode(t, server.Config{Dir: t.TempDir(), Join: []string{n1.Addr()}}))
	}
	if _, err := n1.Init(ctx); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if err := n.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// The first range on all three nodes, with a leader: the target is a
	// follower, the forged beats come "from" the leader.
	var target *server.Node
	var self, leader multiraft.ReplicaID
	var term uint64
	testutil.SucceedsWithin(t, time.Minute, func() error {
		for _, n := range nodes {
			for _, r := range n.Status(false).GetReplicas() {
				if r.GetGroupId() != uint64(placement.FirstRangeID) || len(r.GetDescriptor_().GetReplicas()) != 3 {
					continue
				}
				if r.GetLeaderReplicaId() != 0 && r.GetLeaderReplicaId() != r.GetReplicaId() {
					target, self, leader, term = n, multiraft.ReplicaID(r.GetReplicaId()), multiraft.ReplicaID(r.GetLeaderReplicaId()), r.GetTerm()
					return nil
				}
			}
		}
		return errors.New("first range has no follower with a leader yet")
	})
	addrs := map[uint64]string{}
	for _, n := range nodes {
		addrs[n.NodeID()] = n.Addr()
	}
	checkAddresses := func() {
		t.Helper()
		for _, n := range nodes {
			for id, want := range addrs {
				if id == n.NodeID() {
					continue
				}
				if got, _ := n.PeerAddressForTest(id); got != want {
					t.Fatalf("node %d has address %q for node %d, want %q", n.NodeID(), got, id, want)
				}
			}
		}
	}
	checkAddresses()

	conn, err := grpc.NewClient(target.Addr(), rpc.DialOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = conn.Close() }()
	client := flotillapb.NewRaftClient(conn)
	from, to := leader.Node(), multiraft.NodeID(target.NodeID())
	// The header claims the leader's node, and an address of its own.
	header := &flotillapb.PeerHeader{ClusterId: target.ClusterID(), FromNode: uint64(from), FromAddress: "127.0.0.1:1",
		ToNode: uint64(to)}
	frame := func(b *multiraft.MessageBatch) *flotillapb.RaftFrame {
		return &flotillapb.RaftFrame{Batch: marshal(t, b)}
	}
	hugeBeat := &multiraft.MessageBatch{From: from, To: to, Heartbeats: []multiraft.Heartbeat{{
		Group: placement.FirstRangeID, From: leader, To: self, Term: term, Commit: 1 << 40,
	}}}
	hugeBeatMsg := &multiraft.MessageBatch{From: from, To: to, Messages: []multiraft.GroupMessage{{Group: placement.FirstRangeID, Message: &pb.Message{
		Type: pb.MsgHeartbeat.Enum(), From: new(uint64(leader)), To: new(uint64(self)), Term: new(term), Commit: new(uint64(1 << 40)),
	}}}}
	const made = 987654
	unknownBeat := &multiraft.MessageBatch{From: from, To: to, Heartbeats: []multiraft.Heartbeat{{
		Group: made, From: leader, To: multiraft.MakeReplicaID(to, 1), Term: 3, Commit: 1 << 40,
	}}}
	var flood []*flotillapb.RaftFrame
	const floodSize = multiraft.DefaultMaxUninitializedReplicas + 36
	for i := range floodSize {
		flood = append(flood, frame(&multiraft.MessageBatch{From: from, To: to, Messages: []multiraft.GroupMessage{{
			Group: multiraft.GroupID(500000 + i), Message: &pb.Message{
				Type: pb.MsgVote.Enum(), From: new(uint64(leader)), To: new(uint64(multiraft.MakeReplicaID(to, 1))),
				Term: new(uint64(7)), Index: new(uint64(10)), LogTerm: new(uint64(5)),
			}}}}))
	}
	before := map[string]uint64{}
	for _, reason := range []string{"commit_beyond_log", "unknown_group", "uninit_limit"} {
		before[reason] = target.RaftDroppedForTest(reason)
	}
	frames := append([]*flotillapb.RaftFrame{
		{Header: header, Batch: marshal(t, hugeBeat)}, frame(hugeBeatMsg), frame(unknownBeat),
	}, flood...)
	if err := rawRaftStream(t, client, frames...); err != nil {
		t.Fatalf("forged stream: %v", err)
	}
	testutil.SucceedsWithin(t, 30*time.Second, func() error {
		for reason, want := range map[string]uint64{
			"commit_beyond_log": before["commit_beyond_log"] + 2,
			"unknown_group":     before["unknown_group"] + 1,
			"uninit_limit":      before["uninit_limit"] + floodSize - multiraft.DefaultMaxUninitializedReplicas,
		} {
			if got := target.RaftDroppedForTest(reason); got < want {
				return fmt.Errorf("%s: %d dropped, want at least %d", reason, got, want)
			}
		}
		return nil
	})
	if got := target.UninitializedReplicasForTest(); got > multiraft.DefaultMaxUninitializedReplicas {
		t.Fatalf("%d uninitialized replicas, bound %d", got, multiraft.DefaultMaxUninitializedReplicas)
	}
	for _, r := range target.Status(false).GetReplicas() {
		if r.GetGroupId() == made {
			t.Fatal("a heartbeat created a replica")
		}
	}

	// A header claiming another node (not the target) with another address.
	var other uint64
	for id := range addrs {
		if id != uint64(to) && id != uint64(from) {
			other = id
		}
	}
	if other == 0 {
		other = uint64(from)
	}
	spoofed := &flotillapb.PeerHeader{ClusterId: target.ClusterID(), FromNode: other, FromAddress: "127.0.0.1:2", ToNode: uint64(to)}
	if err := rawRaftStream(t, client, &flotillapb.RaftFrame{Header: spoofed,
		Batch: marshal(t, &multiraft.MessageBatch{From: multiraft.NodeID(other), To: to})}); err != nil {
		t.Fatalf("spoofed ping: %v", err)
	}
	checkAddresses()

	// Random mutations of valid frames, each on its own stream (a frame
	// that does not decode ends its stream): OK or InvalidArgument, never
	// anything else.
	seed := *hostileSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("mutation seed %d (rerun with -run '^%s$' -hostile-seed %d)", seed, t.Name(), seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	valid := [][]byte{marshal(t, hugeBeat), marshal(t, hugeBeatMsg), marshal(t, unknownBeat), flood[0].GetBatch(),
		marshal(t, &multiraft.MessageBatch{From: from, To: to, Messages: []multiraft.GroupMessage{{Group: placement.FirstRangeID, Message: &pb.Message{
			Type: pb.MsgApp.Enum(), From: new(uint64(leader)), To: new(uint64(self)), Term: new(term), Index: new(uint64(10)),
			LogTerm: new(uint64(5)), Commit: new(uint64(1 << 40)),
			Entries: []*pb.Entry{{Index: new(uint64(11)), Term: new(term), Data: []byte("forged")}, {Index: new(uint64(9)), Term: new(term)}},
		}}}})}
	for range 200 {
		data := append([]byte(nil), valid[rng.IntN(len(valid))]...)
		switch rng.IntN(3) {
		case 0: // flip bytes
			for range 1 + rng.IntN(4) {
				data[rng.IntN(len(data))] ^= byte(1 + rng.IntN(255))
			}
		case 1: // truncate
			data = data[:rng.IntN(len(data))]
		case 2: // overwrite a byte with an extreme varint byte
			data[rng.IntN(len(data))] = []byte{0x00, 0x7f, 0x80, 0xff}[rng.IntN(4)]
		}
		err := rawRaftStream(t, client, &flotillapb.RaftFrame{Header: header, Batch: data})
		if err != nil && status.Code(err) != codes.InvalidArgument {
			t.Fatalf("mutated frame %x: %v", data, err)
		}
	}

	// Nothing changed where nodes are reached; no node failed; every node
	// still serves writes.
	checkAddresses()
	if got := target.UninitializedReplicasForTest(); got > multiraft.DefaultMaxUninitializedReplicas {
		t.Fatalf("%d uninitialized replicas after the mutations, bound %d", got, multiraft.DefaultMaxUninitializedReplicas)
	}
	for i, n := range nodes {
		key := fmt.Appendf(nil, "after-%d", i)
		if err := n.Put(ctx, key, key); err != nil {
			t.Fatalf("put through node %d after the attack: %v", n.NodeID(), err)
		}
		if v, err := target.Get(ctx, key); err != nil || string(v) != string(key) {
			t.Fatalf("get through the target: %q, %v", v, err)
		}
	}
}
