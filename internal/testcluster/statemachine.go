// Copyright 2026 The Flotilla Authors. All rights reserved.

package testcluster

import (
	"encoding/binary"
	"fmt"

	"github.com/flotilladb/flotilla/engine"
	"github.com/flotilladb/flotilla/multiraft"
)

// LogStateMachine is a state machine for tests: it records every command it
// applies, in the engine, under its group's prefix of the user keyspace, in
// the same batch as the applied index. Reading the record back (Applied)
// shows what a replica applied, in order, including after crashes.
type LogStateMachine struct {
	group multiraft.GroupID
	eng   *engine.Engine
	span  engine.Span
}

// NewLogStateMachine returns the state machine of group over eng.
func NewLogStateMachine(eng *engine.Engine, group multiraft.GroupID) *LogStateMachine {
	span, err := engine.UserSpan(groupPrefix(group), groupPrefix(group+1))
	if err != nil {
		panic(err) // the prefixes are well-formed by construction
	}
	return &LogStateMachine{group: group, eng: eng, span: span}
}

func groupPrefix(group multiraft.GroupID) []byte {
	return binary.BigEndian.AppendUint64([]byte("log/"), uint64(group))
}

func (s *LogStateMachine) recordKey(index uint64) []byte {
	k, err := engine.UserKey(binary.BigEndian.AppendUint64(groupPrefix(s.group), index))
	if err != nil {
		panic(err)
	}
	return k
}

// Apply implements multiraft.StateMachine: each command is recorded at its
// index; the result is the index (8 bytes).
func (s *LogStateMachine) Apply(b *engine.Batch, cmds []multiraft.Command) ([]multiraft.Result, error) {
	results := make([]multiraft.Result, len(cmds))
	for i, c := range cmds {
		data := c.Data
		if c.Kind == multiraft.CommandConfChange {
			data = []byte(fmt.Sprintf("confchange:%v", c.ConfChange.GetChanges()))
		}
		if err := b.Set(s.recordKey(c.Index), data); err != nil {
			return nil, err
		}
		results[i].Value = binary.BigEndian.AppendUint64(nil, c.Index)
	}
	return results, nil
}

// Spans implements multiraft.StateMachine.
func (s *LogStateMachine) Spans() []engine.Span { return []engine.Span{s.span} }

// AppliedCommand is one command as recorded.
type AppliedCommand struct {
	Index uint64
	Data  string
}

// Applied reads back every command the state machine recorded, in order.
func (s *LogStateMachine) Applied() ([]AppliedCommand, error) {
	return ReadApplied(s.eng, s.group)
}

// ReadApplied reads the commands recorded for group in eng, in order.
func ReadApplied(eng *engine.Engine, group multiraft.GroupID) ([]AppliedCommand, error) {
	s := NewLogStateMachine(eng, group)
	var out []AppliedCommand
	err := engine.Scan(eng, s.span, engine.ScanOptions{}, func(k, v []byte) error {
		uk, err := engine.DecodeUserKey(k)
		if err != nil {
			return err
		}
		if len(uk) < 8 {
			return fmt.Errorf("short record key %q", uk)
		}
		out = append(out, AppliedCommand{Index: binary.BigEndian.Uint64(uk[len(uk)-8:]), Data: string(v)})
		return nil
	})
	return out, err
}
