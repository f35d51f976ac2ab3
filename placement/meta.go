// Copyright 2026 The Flotilla Authors. All rights reserved.

package placement

import (
	"bytes"
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/flotilladb/flotilla/engine"
	"github.com/flotilladb/flotilla/multiraft"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"github.com/flotilladb/flotilla/rpc/flotillapb/confchange"
	"google.golang.org/protobuf/proto"
)

// GroupID is the placement group's ID. Range IDs start after it.
const GroupID multiraft.GroupID = 1

// FirstRangeID is the ID of the range that covers the whole keyspace when a
// cluster is bootstrapped.
const FirstRangeID multiraft.GroupID = 2

// firstFreeReplicaSeq is the first replica sequence number the allocator
// hands out: bootstrapping and the up-replication that predates the
// driver use 1.
const firstFreeReplicaSeq = 2

// ErrBadCommand is returned (wrapped) in a Result for a command that does
// not decode or names nothing valid.
var ErrBadCommand = errors.New("placement: bad command")

// Meta is the placement group's state machine on one node: one
// flotillapb.ClusterMeta (the cluster ID, the member nodes and their
// states, the newest descriptor of every range, the placement group's own
// descriptor, the node, range and replica ID allocators, and the revision
// oracle's high-water mark and the compacted revision), kept under
// engine.PlacementStateKey so that snapshots carry it.
//
// Apply runs on the group's worker; State may be called from any goroutine.
type Meta struct {
	eng *engine.Engine
	// onChange, if set, is called (on the worker, without locks held) with
	// the new state after every apply or snapshot that changed it.
	onChange func(*flotillapb.ClusterMeta)

	mu struct {
		sync.Mutex
		// state is replaced, never modified in place, so readers may keep
		// the pointer.
		state *flotillapb.ClusterMeta
	}
}

var _ multiraft.StateMachine = (*Meta)(nil)
var _ multiraft.SnapshotRestorer = (*Meta)(nil)

// NewMeta returns the placement group's state machine over eng, loading its
// state if the engine holds one. onChange may be nil.
func NewMeta(eng *engine.Engine, onChange func(*flotillapb.ClusterMeta)) (*Meta, error) {
	m := &Meta{eng: eng, onChange: onChange}
	if err := m.load(); err != nil {
		return nil, err
	}
	return m, nil
}

// ReadMeta reads the placement group's state from r; it returns nil, nil if
// there is none.
func ReadMeta(r engine.Reader) (*flotillapb.ClusterMeta, error) {
	v, err := r.Get(engine.PlacementStateKey(GroupID))
	if errors.Is(err, engine.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	st := &flotillapb.ClusterMeta{}
	if err := proto.Unmarshal(v, st); err != nil {
		return nil, fmt.Errorf("placement: decoding cluster state: %w", err)
	}
	return st, nil
}

func (m *Meta) load() error {
	st, err := ReadMeta(m.eng)
	if err != nil {
		return err
	}
	if st == nil {
		st = &flotillapb.ClusterMeta{}
	}
	m.mu.Lock()
	m.mu.state = st
	m.mu.Unlock()
	return nil
}

// WriteInitialMeta writes a new cluster's placement state into b: the
// cluster ID, its first node and its first ranges. Use it with
// Host.BootstrapWith.
func WriteInitialMeta(b *engine.Batch, clusterID string, first *flotillapb.NodeDescriptor, ranges ...*flotillapb.RangeDescriptor) error {
	if clusterID == "" || first.GetNodeId() == 0 {
		return fmt.Errorf("%w: a cluster needs an ID and a first node", ErrBadCommand)
	}
	if p := flotillapb.CheckLabels(first.GetLabels()); p != "" {
		return fmt.Errorf("%w: the first node: %s", ErrBadCommand, p)
	}
	st := &flotillapb.ClusterMeta{
		ClusterId:      clusterID,
		NextNodeId:     first.GetNodeId() + 1,
		Nodes:          []*flotillapb.NodeDescriptor{proto.Clone(first).(*flotillapb.NodeDescriptor)},
		NextRangeId:    uint64(FirstRangeID) + 1,
		NextReplicaSeq: firstFreeReplicaSeq,
		// Bootstrap makes the first node's replica 1 the group's only one.
		PlacementGroup: &flotillapb.RangeDescriptor{
			RangeId: uint64(GroupID),
			Epoch:   &flotillapb.RangeEpoch{ConfVer: 1, Version: 1},
			Replicas: []*flotillapb.ReplicaDescriptor{{
				StoreId: first.GetNodeId(), ReplicaId: uint64(multiraft.MakeReplicaID(multiraft.NodeID(first.GetNodeId()), 1)),
			}},
		},
	}
	for _, d := range ranges {
		if d.GetRangeId() < uint64(FirstRangeID) || d.GetRangeId() > multiraft.MaxNodeID {
			return fmt.Errorf("%w: initial range %d", ErrBadCommand, d.GetRangeId())
		}
		st.NextRangeId = max(st.NextRangeId, d.GetRangeId()+1)
		st.Ranges = append(st.Ranges, d.Clone())
	}
	slices.SortFunc(st.Ranges, func(a, b *flotillapb.RangeDescriptor) int { return cmp.Compare(a.GetRangeId(), b.GetRangeId()) })
	v, err := proto.Marshal(st)
	if err != nil {
		return err
	}
	return b.Set(engine.PlacementStateKey(GroupID), v)
}

// State returns the current state. The caller must not modify it.
func (m *Meta) State() *flotillapb.ClusterMeta {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mu.state
}

// Spans implements multiraft.StateMachine: the state lives in the group's
// replicated range-local keys, which snapshots carry anyway.
func (m *Meta) Spans() []engine.Span { return nil }

// Restored implements multiraft.SnapshotRestorer.
func (m *Meta) Restored() error {
	if err := m.load(); err != nil {
		return err
	}
	if m.onChange != nil {
		m.onChange(m.State())
	}
	return nil
}

// Apply implements multiraft.StateMachine. An AddNode command's result is
// the new node's ID, 8 bytes big-endian. Membership changes of the group
// update its descriptor (ClusterMeta.placement_group) like a range's, and
// are rejected when the descriptor cannot take them (ChangeReplicas).
func (m *Meta) Apply(b *engine.Batch, cmds []multiraft.Command) ([]multiraft.Result, error) {
	results := make([]multiraft.Result, len(cmds))
	st := m.State()
	changed := false
	for i, c := range cmds {
		if c.Kind == multiraft.CommandConfChange {
			if st.GetPlacementGroup() == nil {
				continue // a state from before the group had a descriptor
			}
			desc, err := confchange.ChangeReplicas(st.GetPlacementGroup(), c.ConfChange)
			if err != nil {
				results[i].Err = fmt.Errorf("%w: %v", ErrBadCommand, err)
				continue
			}
			if desc != st.GetPlacementGroup() {
				next := proto.Clone(st).(*flotillapb.ClusterMeta)
				next.PlacementGroup = desc
				st, changed = next, true
			}
			continue
		}
		if c.Kind != multiraft.CommandNormal {
			continue
		}
		var cmd flotillapb.MetaCommand
		if err := proto.Unmarshal(c.Data, &cmd); err != nil {
			results[i].Err = fmt.Errorf("%w: %v", ErrBadCommand, err)
			continue
		}
		next, value, err := applyMeta(st, &cmd)
		if err != nil {
			results[i].Err = err
			continue
		}
		if next != st {
			st, changed = next, true
		}
		results[i].Value = value
	}
	if !changed {
		return results, nil
	}
	v, err := proto.Marshal(st)
	if err != nil {
		return nil, err
	}
	if err := b.Set(engine.PlacementStateKey(GroupID), v); err != nil {
		return nil, err
	}
	m.mu.Lock()
	m.mu.state = st
	m.mu.Unlock()
	if m.onChange != nil {
		m.onChange(st)
	}
	return results, nil
}

// applyMeta returns the state after cmd (a new value; st is not modified)
// and the command's result value.
func applyMeta(st *flotillapb.ClusterMeta, cmd *flotillapb.MetaCommand) (*flotillapb.ClusterMeta, []byte, error) {
	if st.GetClusterId() == "" {
		return nil, nil, fmt.Errorf("%w: the cluster is not bootstrapped", ErrBadCommand)
	}
	next := proto.Clone(st).(*flotillapb.ClusterMeta)
	switch c := cmd.GetCommand().(type) {
	case *flotillapb.MetaCommand_AddNode:
		if c.AddNode.GetAddress() == "" {
			return nil, nil, fmt.Errorf("%w: a node needs an address", ErrBadCommand)
		}
		if p := flotillapb.CheckLabels(c.AddNode.GetLabels()); p != "" {
			return nil, nil, fmt.Errorf("%w: %s", ErrBadCommand, p)
		}
		labels := cloneLabels(c.AddNode.GetLabels())
		if tok := c.AddNode.GetJoinToken(); tok != "" {
			for _, n := range next.GetNodes() {
				if n.GetJoinToken() == tok {
					// A retried join, or a member that came back at
					// another address or with other labels: same ID,
					// addresses and labels updated.
					n.Address, n.HttpAddress, n.Labels = c.AddNode.GetAddress(), c.AddNode.GetHttpAddress(), labels
					return next, encodeNodeID(n.GetNodeId()), nil
				}
			}
		}
		id := next.GetNextNodeId()
		if id == 0 || id > multiraft.MaxNodeID {
			return nil, nil, fmt.Errorf("%w: node IDs exhausted", ErrBadCommand)
		}
		next.NextNodeId = id + 1
		next.Nodes = append(next.Nodes, &flotillapb.NodeDescriptor{
			NodeId: id, Address: c.AddNode.GetAddress(), HttpAddress: c.AddNode.GetHttpAddress(),
			JoinToken: c.AddNode.GetJoinToken(), Labels: labels,
		})
		return next, encodeNodeID(id), nil
	case *flotillapb.MetaCommand_UpdateNode:
		n := c.UpdateNode.GetNode()
		i := slices.IndexFunc(next.Nodes, func(d *flotillapb.NodeDescriptor) bool { return d.GetNodeId() == n.GetNodeId() })
		if i < 0 || n.GetAddress() == "" {
			return nil, nil, fmt.Errorf("%w: unknown node %d or no address", ErrBadCommand, n.GetNodeId())
		}
		if p := flotillapb.CheckLabels(n.GetLabels()); p != "" {
			return nil, nil, fmt.Errorf("%w: %s", ErrBadCommand, p)
		}
		next.Nodes[i] = proto.Clone(n).(*flotillapb.NodeDescriptor)
		return next, nil, nil
	case *flotillapb.MetaCommand_UpdateRange:
		d := c.UpdateRange.GetDescriptor_()
		if d.GetRangeId() == 0 || d.GetEpoch() == nil {
			return nil, nil, fmt.Errorf("%w: a descriptor needs a range ID and an epoch", ErrBadCommand)
		}
		i, found := slices.BinarySearchFunc(next.Ranges, d.GetRangeId(), func(x *flotillapb.RangeDescriptor, id uint64) int {
			return cmp.Compare(x.GetRangeId(), id)
		})
		if found && !d.GetEpoch().Newer(next.Ranges[i].GetEpoch()) {
			return st, nil, nil // stale or duplicated: nothing changes
		}
		// Other ranges over the same keys: an older version was split
		// (its newer descriptor has not been reported yet) and is dropped;
		// a newer or equal one means this report is stale.
		var drop []uint64
		for _, o := range next.Ranges {
			if o.GetRangeId() == d.GetRangeId() || !o.Overlaps(d) {
				continue
			}
			if o.GetEpoch().GetVersion() >= d.GetEpoch().GetVersion() {
				return st, nil, nil
			}
			drop = append(drop, o.GetRangeId())
		}
		if found {
			next.Ranges[i] = d.Clone()
		} else {
			next.Ranges = slices.Insert(next.Ranges, i, d.Clone())
		}
		next.Ranges = slices.DeleteFunc(next.Ranges, func(o *flotillapb.RangeDescriptor) bool {
			return slices.Contains(drop, o.GetRangeId())
		})
		return next, nil, nil
	case *flotillapb.MetaCommand_SetStoreState:
		i := slices.IndexFunc(next.Nodes, func(d *flotillapb.NodeDescriptor) bool { return d.GetNodeId() == c.SetStoreState.GetNodeId() })
		if i < 0 {
			return nil, nil, fmt.Errorf("%w: unknown node %d", ErrBadCommand, c.SetStoreState.GetNodeId())
		}
		next.Nodes[i].State = c.SetStoreState.GetState()
		return next, nil, nil
	case *flotillapb.MetaCommand_AllocIds:
		n := c.AllocIds.GetCount()
		if n == 0 || n > 1<<20 {
			return nil, nil, fmt.Errorf("%w: allocating %d IDs", ErrBadCommand, n)
		}
		var first uint64
		switch c.AllocIds.GetKind() {
		case flotillapb.AllocIDs_RANGE:
			first = max(next.GetNextRangeId(), uint64(FirstRangeID)+1)
			next.NextRangeId = first + n
		case flotillapb.AllocIDs_REPLICA_SEQ:
			first = max(next.GetNextReplicaSeq(), firstFreeReplicaSeq)
			if first+n > 1<<32 {
				return nil, nil, fmt.Errorf("%w: replica sequence numbers exhausted", ErrBadCommand)
			}
			next.NextReplicaSeq = first + n
		default:
			return nil, nil, fmt.Errorf("%w: unknown ID kind %v", ErrBadCommand, c.AllocIds.GetKind())
		}
		return next, binary.BigEndian.AppendUint64(nil, first), nil
	case *flotillapb.MetaCommand_SetRevisionHwm:
		h := c.SetRevisionHwm.GetHwm()
		if h <= 0 || h > MaxRevision {
			return nil, nil, fmt.Errorf("%w: revision high-water mark %d not in [1, %d]", ErrBadCommand, h, MaxRevision)
		}
		if h <= st.GetRevisionHwm() {
			return st, nil, nil // raised only: a lower or repeated mark changes nothing
		}
		next.RevisionHwm = h
		return next, nil, nil
	case *flotillapb.MetaCommand_SetCompactedRevision:
		r := c.SetCompactedRevision.GetRevision()
		if r <= 0 || r > MaxRevision {
			return nil, nil, fmt.Errorf("%w: compacted revision %d not in [1, %d]", ErrBadCommand, r, MaxRevision)
		}
		if r <= st.GetCompactedRevision() {
			return st, nil, nil
		}
		next.CompactedRevision = r
		return next, nil, nil
	case *flotillapb.MetaCommand_SetRules:
		rules, err := CompileRules(c.SetRules.GetRules())
		if err != nil {
			return nil, nil, fmt.Errorf("%w: placement rules: %v", ErrBadCommand, err)
		}
		next.Rules = RulesToProto(rules)
		return next, nil, nil
	default:
		return nil, nil, fmt.Errorf("%w: empty command", ErrBadCommand)
	}
}

// DropOverlapped removes from descs, in place, every descriptor that
// shares a key with one of a later version (a range split after it was
// reported, whose halves' reports arrived first), and returns the rest
// sorted by start key.
func DropOverlapped(descs []*flotillapb.RangeDescriptor) []*flotillapb.RangeDescriptor {
	slices.SortFunc(descs, func(a, b *flotillapb.RangeDescriptor) int {
		if c := bytes.Compare(a.GetStartKey(), b.GetStartKey()); c != 0 {
			return c
		}
		return cmp.Compare(b.GetEpoch().GetVersion(), a.GetEpoch().GetVersion())
	})
	out := descs[:0]
	for _, d := range descs {
		keep := true
		for len(out) > 0 && (out[len(out)-1]).Overlaps(d) {
			if out[len(out)-1].GetEpoch().GetVersion() < d.GetEpoch().GetVersion() {
				out = out[:len(out)-1]
				continue
			}
			keep = false
			break
		}
		if keep {
			out = append(out, d)
		}
	}
	return out
}

// DecodeID decodes an AllocIDs command's result: the first ID allocated.
func DecodeID(v []byte) (uint64, error) {
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: ID result of %d bytes", ErrBadCommand, len(v))
	}
	return binary.BigEndian.Uint64(v), nil
}

func encodeNodeID(id uint64) []byte { return binary.BigEndian.AppendUint64(nil, id) }

// DecodeNodeID decodes an AddNode command's result.
func DecodeNodeID(v []byte) (multiraft.NodeID, error) {
	if len(v) != 8 {
		return 0, fmt.Errorf("%w: node ID result of %d bytes", ErrBadCommand, len(v))
	}
	return multiraft.NodeID(binary.BigEndian.Uint64(v)), nil
}

// cloneLabels copies a command's labels for the state (nil for none).
func cloneLabels(labels []*flotillapb.StoreLabel) []*flotillapb.StoreLabel {
	if len(labels) == 0 {
		return nil
	}
	out := make([]*flotillapb.StoreLabel, len(labels))
	for i, l := range labels {
		out[i] = &flotillapb.StoreLabel{Key: l.GetKey(), Value: l.GetValue()}
	}
	return out
}
