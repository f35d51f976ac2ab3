// Copyright 2026 The Flotilla Authors. All rights reserved.

package multiraft

import (
	"context"
	"errors"
	"fmt"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Transport carries message batches between hosts. The host calls Send from
// many goroutines; inbound batches are handed to Host.HandleBatch.
type Transport interface {
	// Send queues batch for delivery to node batch.To and returns at once.
	// It returns an error if it cannot take the batch (an unknown node, a
	// full queue); the host then reports the batch's replicas unreachable to
	// raft. Delivery is not guaranteed: raft tolerates lost messages. The
	// transport owns batch after the call.
	Send(batch *MessageBatch) error

	// SendSnapshot streams a snapshot to node: header, then the chunks that
	// chunks passes to emit. It returns once the receiver applied it (its
	// Host.HandleSnapshot returned nil), or an error. ctx ends early when
	// the sender stops.
	SendSnapshot(ctx context.Context, node NodeID, header *SnapshotHeader, chunks func(emit func(chunk []byte) error) error) error
}

// GroupMessage is a raft message for a replica of a group.
type GroupMessage struct {
	Group   GroupID
	Message *pb.Message
}

// MessageBatch is what one host sends another in one go: raft messages,
// plus every group's heartbeats and heartbeat responses coalesced into
// compact beats. A batch with nothing in it is a liveness ping.
type MessageBatch struct {
	From, To       NodeID
	Messages       []GroupMessage
	Heartbeats     []Heartbeat
	HeartbeatResps []Heartbeat
}

// Heartbeat is one group's raft heartbeat (or response) inside a coalesced
// batch: all the fields raft puts in one.
type Heartbeat struct {
	Group    GroupID
	From, To ReplicaID
	Term     uint64
	Commit   uint64
	Context  []byte
	// Quiesce: the leader is going quiet; the follower may too if it is
	// caught up (leader to follower only).
	Quiesce bool
}

// count is the number of messages and beats in the batch.
func (b *MessageBatch) count() int {
	return len(b.Messages) + len(b.Heartbeats) + len(b.HeartbeatResps)
}

func (b *Heartbeat) message(typ pb.MessageType) *pb.Message {
	m := &pb.Message{
		Type: typ.Enum(), From: new(uint64(b.From)), To: new(uint64(b.To)),
		Term: new(b.Term), Commit: new(b.Commit),
	}
	if len(b.Context) > 0 {
		m.Context = b.Context
	}
	return m
}

func heartbeatOf(group GroupID, m *pb.Message) Heartbeat {
	return Heartbeat{
		Group: group, From: ReplicaID(m.GetFrom()), To: ReplicaID(m.GetTo()),
		Term: m.GetTerm(), Commit: m.GetCommit(), Context: m.GetContext(),
	}
}

// ErrBadBatch is returned (wrapped) by UnmarshalBatch for input that is not
// a batch.
var ErrBadBatch = errors.New("multiraft: malformed message batch")

// Wire format of a MessageBatch, protobuf-compatible:
//
//	1: from (varint)   2: to (varint)
//	3: repeated { 1: group (varint)  2: raftpb.Message (bytes) }
//	4: repeated heartbeat   5: repeated heartbeat response, each
//	   { 1: group  2: from  3: to  4: term  5: commit (varints)
//	     6: context (bytes)  7: quiesce (varint bool) }
const (
	fieldFrom       = 1
	fieldTo         = 2
	fieldMessages   = 3
	fieldBeats      = 4
	fieldBeatResps  = 5
	fieldGroup      = 1
	fieldMessage    = 2
	fieldBeatGroup  = 1
	fieldBeatFrom   = 2
	fieldBeatTo     = 3
	fieldBeatTerm   = 4
	fieldBeatCommit = 5
	fieldBeatCtx    = 6
	fieldBeatQuiet  = 7
)

func appendBeat(buf []byte, field protowire.Number, hb *Heartbeat, scratch []byte) ([]byte, []byte) {
	inner := scratch[:0]
	for _, f := range []struct {
		num protowire.Number
		v   uint64
	}{{fieldBeatGroup, uint64(hb.Group)}, {fieldBeatFrom, uint64(hb.From)}, {fieldBeatTo, uint64(hb.To)},
		{fieldBeatTerm, hb.Term}, {fieldBeatCommit, hb.Commit}} {
		inner = protowire.AppendTag(inner, f.num, protowire.VarintType)
		inner = protowire.AppendVarint(inner, f.v)
	}
	if len(hb.Context) > 0 {
		inner = protowire.AppendTag(inner, fieldBeatCtx, protowire.BytesType)
		inner = protowire.AppendBytes(inner, hb.Context)
	}
	if hb.Quiesce {
		inner = protowire.AppendTag(inner, fieldBeatQuiet, protowire.VarintType)
		inner = protowire.AppendVarint(inner, 1)
	}
	buf = protowire.AppendTag(buf, field, protowire.BytesType)
	return protowire.AppendBytes(buf, inner), inner
}

func decodeBeat(data []byte) (Heartbeat, error) {
	var hb Heartbeat
	err := forEachField(data, func(num protowire.Number, typ protowire.Type, v uint64, bytes []byte) error {
		if typ == protowire.BytesType {
			if num == fieldBeatCtx {
				hb.Context = append([]byte(nil), bytes...)
			}
			return nil
		}
		switch num {
		case fieldBeatGroup:
			hb.Group = GroupID(v)
		case fieldBeatFrom:
			hb.From = ReplicaID(v)
		case fieldBeatTo:
			hb.To = ReplicaID(v)
		case fieldBeatTerm:
			hb.Term = v
		case fieldBeatCommit:
			hb.Commit = v
		case fieldBeatQuiet:
			hb.Quiesce = v != 0
		}
		return nil
	})
	if err == nil && (hb.Group == 0 || hb.To == 0) {
		err = fmt.Errorf("%w: heartbeat without group or recipient", ErrBadBatch)
	}
	return hb, err
}

// Marshal encodes the batch for the wire.
func (b *MessageBatch) Marshal() ([]byte, error) {
	buf := protowire.AppendTag(nil, fieldFrom, protowire.VarintType)
	buf = protowire.AppendVarint(buf, uint64(b.From))
	buf = protowire.AppendTag(buf, fieldTo, protowire.VarintType)
	buf = protowire.AppendVarint(buf, uint64(b.To))
	var inner []byte
	for _, m := range b.Messages {
		msg, err := proto.Marshal(m.Message)
		if err != nil {
			return nil, err
		}
		inner = protowire.AppendTag(inner[:0], fieldGroup, protowire.VarintType)
		inner = protowire.AppendVarint(inner, uint64(m.Group))
		inner = protowire.AppendTag(inner, fieldMessage, protowire.BytesType)
		inner = protowire.AppendBytes(inner, msg)
		buf = protowire.AppendTag(buf, fieldMessages, protowire.BytesType)
		buf = protowire.AppendBytes(buf, inner)
	}
	for i := range b.Heartbeats {
		buf, inner = appendBeat(buf, fieldBeats, &b.Heartbeats[i], inner)
	}
	for i := range b.HeartbeatResps {
		buf, inner = appendBeat(buf, fieldBeatResps, &b.HeartbeatResps[i], inner)
	}
	return buf, nil
}

// UnmarshalBatch decodes a batch encoded by Marshal. It returns an error
// wrapping ErrBadBatch, never panics, for anything else.
func UnmarshalBatch(data []byte) (*MessageBatch, error) {
	b := &MessageBatch{}
	err := forEachField(data, func(num protowire.Number, typ protowire.Type, v uint64, bytes []byte) error {
		switch {
		case num == fieldFrom && typ == protowire.VarintType:
			b.From = NodeID(v)
		case num == fieldTo && typ == protowire.VarintType:
			b.To = NodeID(v)
		case num == fieldMessages && typ == protowire.BytesType:
			var gm GroupMessage
			err := forEachField(bytes, func(num protowire.Number, typ protowire.Type, v uint64, bytes []byte) error {
				switch {
				case num == fieldGroup && typ == protowire.VarintType:
					gm.Group = GroupID(v)
				case num == fieldMessage && typ == protowire.BytesType:
					gm.Message = &pb.Message{}
					if err := proto.Unmarshal(bytes, gm.Message); err != nil {
						return fmt.Errorf("%w: raft message: %v", ErrBadBatch, err)
					}
				}
				return nil
			})
			if err != nil {
				return err
			}
			if gm.Group == 0 || gm.Message == nil {
				return fmt.Errorf("%w: message without group or body", ErrBadBatch)
			}
			b.Messages = append(b.Messages, gm)
		case (num == fieldBeats || num == fieldBeatResps) && typ == protowire.BytesType:
			hb, err := decodeBeat(bytes)
			if err != nil {
				return err
			}
			if num == fieldBeats {
				b.Heartbeats = append(b.Heartbeats, hb)
			} else {
				b.HeartbeatResps = append(b.HeartbeatResps, hb)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return b, nil
}

// forEachField calls fn for each field of a protobuf message: v for varints,
// bytes for length-delimited fields. Other wire types are skipped.
func forEachField(data []byte, fn func(num protowire.Number, typ protowire.Type, v uint64, bytes []byte) error) error {
	for len(data) > 0 {
		num, typ, n := protowire.ConsumeTag(data)
		if n < 0 {
			return fmt.Errorf("%w: %v", ErrBadBatch, protowire.ParseError(n))
		}
		data = data[n:]
		var (
			v     uint64
			bytes []byte
		)
		switch typ {
		case protowire.VarintType:
			v, n = protowire.ConsumeVarint(data)
		case protowire.BytesType:
			bytes, n = protowire.ConsumeBytes(data)
		default:
			n = protowire.ConsumeFieldValue(num, typ, data)
		}
		if n < 0 {
			return fmt.Errorf("%w: %v", ErrBadBatch, protowire.ParseError(n))
		}
		data = data[n:]
		if err := fn(num, typ, v, bytes); err != nil {
			return err
		}
	}
	return nil
}
