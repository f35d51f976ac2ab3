// Copyright 2026 The Flotilla Authors. All rights reserved.

package multiraft

import (
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
}

// GroupMessage is a raft message for a replica of a group.
type GroupMessage struct {
	Group   GroupID
	Message *pb.Message
}

// MessageBatch is what one host sends another in one go.
type MessageBatch struct {
	From, To NodeID
	Messages []GroupMessage
}

// ErrBadBatch is returned (wrapped) by UnmarshalBatch for input that is not
// a batch.
var ErrBadBatch = errors.New("multiraft: malformed message batch")

// Wire format of a MessageBatch, protobuf-compatible:
//
//	1: from (varint)   2: to (varint)
//	3: repeated { 1: group (varint)  2: raftpb.Message (bytes) }
const (
	fieldFrom     = 1
	fieldTo       = 2
	fieldMessages = 3
	fieldGroup    = 1
	fieldMessage  = 2
)

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
