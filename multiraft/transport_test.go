// Copyright 2026 The Flotilla Authors. All rights reserved.

package multiraft_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/flotilladb/flotilla/multiraft"
	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

func sampleBatch() *multiraft.MessageBatch {
	return &multiraft.MessageBatch{
		From: 1, To: 2,
		Messages: []multiraft.GroupMessage{
			{Group: 7, Message: &pb.Message{Type: pb.MsgApp.Enum(), To: new(uint64(2 << 32)), From: new(uint64(1 << 32)),
				Term: new(uint64(3)), Entries: []*pb.Entry{{Index: new(uint64(11)), Term: new(uint64(3)), Data: []byte("x")}}}},
			{Group: 9, Message: &pb.Message{Type: pb.MsgHeartbeat.Enum(), Commit: new(uint64(5)), Context: []byte("ctx")}},
		},
		Heartbeats: []multiraft.Heartbeat{
			{Group: 3, From: 1 << 32, To: 2 << 32, Term: 4, Commit: 9, Context: []byte("read"), Quiesce: true},
			{Group: 4, From: 1 << 32, To: 2 << 32, Term: 1},
		},
		HeartbeatResps: []multiraft.Heartbeat{{Group: 5, From: 1 << 32, To: 2 << 32, Term: 2}},
	}
}

func TestBatchRoundTrip(t *testing.T) {
	b := sampleBatch()
	data, err := b.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := multiraft.UnmarshalBatch(data)
	if err != nil {
		t.Fatal(err)
	}
	if got.From != 1 || got.To != 2 || len(got.Messages) != 2 {
		t.Fatalf("round trip: %+v", got)
	}
	if fmt.Sprint(got.Heartbeats, got.HeartbeatResps) != fmt.Sprint(b.Heartbeats, b.HeartbeatResps) {
		t.Fatalf("beats: got %v %v, want %v %v", got.Heartbeats, got.HeartbeatResps, b.Heartbeats, b.HeartbeatResps)
	}
	for i := range b.Messages {
		if got.Messages[i].Group != b.Messages[i].Group || !proto.Equal(got.Messages[i].Message, b.Messages[i].Message) {
			t.Fatalf("message %d: got %v, want %v", i, got.Messages[i], b.Messages[i])
		}
	}
	for _, bad := range [][]byte{{0xff}, data[:len(data)-3], {0x1a, 0x02, 0x08, 0x01}} {
		if _, err := multiraft.UnmarshalBatch(bad); !errors.Is(err, multiraft.ErrBadBatch) {
			t.Errorf("UnmarshalBatch(%x) = %v, want ErrBadBatch", bad, err)
		}
	}
}

// FuzzUnmarshalBatch: no input makes the decoder panic, and what decodes
// re-encodes to something that decodes the same.
func FuzzUnmarshalBatch(f *testing.F) {
	data, _ := sampleBatch().Marshal()
	f.Add(data)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		b, err := multiraft.UnmarshalBatch(data)
		if err != nil {
			return
		}
		again, err := b.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		b2, err := multiraft.UnmarshalBatch(again)
		if err != nil || b2.From != b.From || b2.To != b.To || len(b2.Messages) != len(b.Messages) ||
			fmt.Sprint(b2.Heartbeats, b2.HeartbeatResps) != fmt.Sprint(b.Heartbeats, b.HeartbeatResps) {
			t.Fatalf("re-encoded batch differs: %v", err)
		}
	})
}
