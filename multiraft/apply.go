// Copyright 2026 The Flotilla Authors. All rights reserved.

package multiraft

import (
	"fmt"
	"time"

	pb "go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Applying committed entries, on the group's worker. The state machine
// writes their effects into an engine batch and the host adds the applied
// state (index, term, configuration) to the same batch, so that a crash
// leaves both or neither. The batch is committed without fsync: the log is
// the durable record and is replayed from the applied index; after a crash
// the saved HardState's commit index may trail the applied index, which
// groupStorage.InitialState raises. A batch that creates a group (a split)
// is synced.
//
// This host's proposals are matched to applied entries by index, term and
// proposal ID: the proposal at an index is resolved with its Result if the
// entry applied there is its own, and as not applied if another entry took
// its place (a new leader overwrote it).

// apply applies committed entries to the state machine and records the
// applied state in the same batch. It reports whether the replica removed
// itself from the group (and was destroyed).
func (h *Host) apply(g *group, ents []*pb.Entry) (destroyed bool, _ error) {
	if len(ents) == 0 {
		return false, nil
	}
	applyStart := time.Now()
	cmds := make([]Command, 0, len(ents))
	ids := make([]uint64, 0, len(ents))
	var truncateTo uint64
	for _, e := range ents {
		switch e.GetType() {
		case pb.EntryNormal:
			if len(e.GetData()) == 0 {
				continue // the empty entry a new leader appends
			}
			if idx, ok := decodeInternal(e.GetData()); ok {
				truncateTo = max(truncateTo, idx)
				g.truncationPending = false
				continue
			}
			id, cmd, ok := decodeEntry(e.GetData())
			if !ok {
				h.logger.Error("skipping malformed entry", "group", g.id, "index", e.GetIndex())
				continue
			}
			cmds = append(cmds, Command{Index: e.GetIndex(), Term: e.GetTerm(), Kind: CommandNormal, Data: cmd})
			ids = append(ids, id)
		case pb.EntryConfChange, pb.EntryConfChangeV2:
			cc, err := decodeConfChange(e)
			if err != nil {
				return false, fmt.Errorf("entry %d: %w", e.GetIndex(), err)
			}
			// The state machine sees the Context the proposer gave, not the
			// proposal ID wrapped around it.
			id, inner, ok := decodeEntry(cc.GetContext())
			if ok {
				cc.Context = inner
			}
			cmds = append(cmds, Command{Index: e.GetIndex(), Term: e.GetTerm(), Kind: CommandConfChange, ConfChange: cc})
			ids = append(ids, id)
		}
	}
	b := h.eng.NewBatch()
	defer b.Close()
	var results []Result
	if len(cmds) > 0 {
		var err error
		if results, err = g.sm.Apply(b, cmds); err != nil {
			return false, fmt.Errorf("state machine: %w", err)
		}
		if len(results) != len(cmds) {
			return false, fmt.Errorf("state machine returned %d results for %d commands", len(results), len(cmds))
		}
	}
	var splits []*preparedSplit
	var newGroups []*NewGroup
	defer func() {
		for _, ng := range newGroups {
			if ng.Done != nil {
				ng.Done()
			}
		}
	}()
	for i := range results {
		if results[i].NewGroup == nil {
			continue
		}
		newGroups = append(newGroups, results[i].NewGroup)
		if len(splits) == 0 {
			h.createMu.Lock()
			defer h.createMu.Unlock()
		}
		ps, err := h.prepareSplit(g, b, results[i].NewGroup)
		if err != nil {
			for _, p := range splits {
				_ = h.finishSplit(p, false)
			}
			return false, fmt.Errorf("entry %d: %w", cmds[i].Index, err)
		}
		if ps != nil {
			splits = append(splits, ps)
		}
	}
	wasMember := inConfig(g.applied.confState, g.replicaID)
	cs := g.applied.confState
	for i, c := range cmds {
		if c.Kind != CommandConfChange {
			continue
		}
		cc := c.ConfChange
		if results[i].Err != nil && !cc.LeaveJoint() {
			cc = rejectedConfChange(cc)
		}
		cs = g.rn.ApplyConfChange(cc)
	}
	last := ents[len(ents)-1]
	g.applied = appliedState{index: last.GetIndex(), term: last.GetTerm(), confState: cs}
	err := writeAppliedState(b, g.id, g.applied)
	if err == nil {
		// A split is synced: once the new group's span is released to
		// snapshots (NewGroup.Done), a snapshot ingested there must never
		// meet, after a crash, the parent's span from before the split.
		err = b.Commit(len(newGroups) > 0)
	}
	for _, p := range splits {
		if ferr := h.finishSplit(p, err == nil); err == nil {
			err = ferr
		}
	}
	if err != nil {
		return false, err
	}
	h.metrics.entriesApplied.Add(len(ents))
	g.releaseReads()
	if truncateTo > 0 {
		h.logWriter.enqueueCompact(g, truncateTo)
	}
	defer func() {
		if wasMember && !inConfig(cs, g.replicaID) {
			h.destroyGroup(g)
			destroyed = true
		}
	}()

	// Resolve this host's proposals at the applied indexes.
	if len(g.pendingByIndex) == 0 {
		return false, nil
	}
	j := 0
	for _, e := range ents {
		p := g.pendingByIndex[e.GetIndex()]
		for j < len(cmds) && cmds[j].Index < e.GetIndex() {
			j++
		}
		if p == nil {
			continue
		}
		delete(g.pendingByIndex, e.GetIndex())
		if j < len(cmds) && cmds[j].Index == e.GetIndex() && ids[j] == p.id && e.GetTerm() == p.term {
			h.metrics.observeProposal(p.proposed, applyStart)
			p.resolve(results[j], nil)
		} else {
			p.resolve(Result{}, notApplied(fmt.Errorf("%w: a new leader overwrote its entry", ErrProposalDropped)))
		}
	}
	return false, nil
}

// rejectedConfChange is what raft must apply for a change the state machine
// rejected: one change of replica ID zero, which raft skips. (An empty
// ConfChangeV2 would mean "leave the joint configuration", and a rejected
// change of several replicas kept whole would still enter a joint
// configuration, of nothing.) A LeaveJoint cannot be rejected: it only
// finishes a change already made.
func rejectedConfChange(cc *pb.ConfChangeV2) *pb.ConfChangeV2 {
	return &pb.ConfChangeV2{Changes: []*pb.ConfChangeSingle{{Type: cc.GetChanges()[0].Type, NodeId: new(uint64(0))}}}
}

func decodeConfChange(e *pb.Entry) (*pb.ConfChangeV2, error) {
	if e.GetType() == pb.EntryConfChange {
		var cc pb.ConfChange
		if err := proto.Unmarshal(e.GetData(), &cc); err != nil {
			return nil, err
		}
		return cc.AsV2(), nil
	}
	cc := &pb.ConfChangeV2{}
	if err := proto.Unmarshal(e.GetData(), cc); err != nil {
		return nil, err
	}
	return cc, nil
}
