// Copyright 2026 The Flotilla Authors. All rights reserved.

package placement

import (
	"errors"
	"fmt"
	"maps"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/flotilladb/flotilla/engine"
	"github.com/flotilladb/flotilla/multiraft"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func metaCmd(t *testing.T, c *flotillapb.MetaCommand) []byte {
	t.Helper()
	b, err := proto.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func addNode(t *testing.T, addr, token string) []byte {
	return metaCmd(t, &flotillapb.MetaCommand{Command: &flotillapb.MetaCommand_AddNode{AddNode: &flotillapb.AddNode{Address: addr, JoinToken: token}}})
}

func TestMeta(t *testing.T) {
	eng, err := engine.Open(engine.Options{Dir: "m", FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	b := eng.NewBatch()
	if err := WriteInitialMeta(b, "c1", &flotillapb.NodeDescriptor{NodeId: 1, Address: "a1:1"}); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if err := WriteInitialMeta(eng.NewBatch(), "", &flotillapb.NodeDescriptor{}); !errors.Is(err, ErrBadCommand) {
		t.Fatalf("initial meta without an ID: %v", err)
	}

	var changes int
	m, err := NewMeta(eng, func(*flotillapb.ClusterMeta) { changes++ })
	if err != nil {
		t.Fatal(err)
	}
	if m.State().GetClusterId() != "c1" || len(m.State().GetNodes()) != 1 {
		t.Fatalf("loaded state %v", m.State())
	}
	cmds := []multiraft.Command{
		{Index: 10, Data: addNode(t, "a2:1", "tok2")},
		{Index: 11, Data: addNode(t, "a3:1", "tok3")},
		{Index: 12, Data: addNode(t, "a2:9", "tok2")}, // a retried join, from a new address
		{Index: 13, Data: addNode(t, "", "x")},        // no address
		{Index: 14, Data: []byte("garbage")},
		{Index: 15, Data: metaCmd(t, &flotillapb.MetaCommand{})},
		{Index: 16, Data: metaCmd(t, &flotillapb.MetaCommand{Command: &flotillapb.MetaCommand_UpdateNode{UpdateNode: &flotillapb.UpdateNode{
			Node: &flotillapb.NodeDescriptor{NodeId: 3, Address: "a3:2"}}}})},
		{Index: 17, Data: metaCmd(t, &flotillapb.MetaCommand{Command: &flotillapb.MetaCommand_UpdateNode{UpdateNode: &flotillapb.UpdateNode{
			Node: &flotillapb.NodeDescriptor{NodeId: 99, Address: "a:1"}}}})},
		{Index: 18, Kind: multiraft.CommandConfChange, ConfChange: multiraft.AddVoter(multiraft.MakeReplicaID(2, 1))},
	}
	res := applyCommitted(t, eng, m, cmds)
	wantIDs := map[int]multiraft.NodeID{0: 2, 1: 3, 2: 2}
	for i, want := range wantIDs {
		id, err := DecodeNodeID(res[i].Value)
		if err != nil || id != want || res[i].Err != nil {
			t.Errorf("command %d: node %d, %v, %v; want node %d", i, id, err, res[i].Err, want)
		}
	}
	for _, i := range []int{3, 4, 5, 7} {
		if !errors.Is(res[i].Err, ErrBadCommand) {
			t.Errorf("command %d: %v, want ErrBadCommand", i, res[i].Err)
		}
	}
	if res[6].Err != nil || res[8].Err != nil {
		t.Errorf("update / conf change: %v %v", res[6].Err, res[8].Err)
	}
	if changes != 1 {
		t.Errorf("onChange called %d times, want once per Apply that changed the state", changes)
	}
	st, err := ReadMeta(eng)
	if err != nil {
		t.Fatal(err)
	}
	if st.GetNextNodeId() != 4 || len(st.GetNodes()) != 3 || st.GetNodes()[2].GetAddress() != "a3:2" || st.GetNodes()[1].GetAddress() != "a2:9" {
		t.Fatalf("state after apply: %v", st)
	}
	if !proto.Equal(st, m.State()) {
		t.Fatalf("engine %v and memory %v disagree", st, m.State())
	}
	if _, err := DecodeNodeID([]byte{1}); !errors.Is(err, ErrBadCommand) {
		t.Fatalf("DecodeNodeID of a short value: %v", err)
	}
}

func TestMetaRangesStoresIDs(t *testing.T) {
	eng, err := engine.Open(engine.Options{Dir: "m", FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	first := &flotillapb.RangeDescriptor{RangeId: uint64(FirstRangeID), Epoch: &flotillapb.RangeEpoch{ConfVer: 1, Version: 1}}
	b := eng.NewBatch()
	if err := WriteInitialMeta(b, "c1", &flotillapb.NodeDescriptor{NodeId: 1, Address: "a1:1"}, first); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	b.Close()
	if err := WriteInitialMeta(eng.NewBatch(), "c1", &flotillapb.NodeDescriptor{NodeId: 1}, &flotillapb.RangeDescriptor{RangeId: uint64(GroupID)}); !errors.Is(err, ErrBadCommand) {
		t.Fatalf("an initial range with the placement group's ID: %v", err)
	}
	changes := 0
	m, err := NewMeta(eng, func(*flotillapb.ClusterMeta) { changes++ })
	if err != nil {
		t.Fatal(err)
	}
	update := func(id, version, confVer uint64) []byte {
		return metaCmd(t, &flotillapb.MetaCommand{Command: &flotillapb.MetaCommand_UpdateRange{UpdateRange: &flotillapb.UpdateRange{
			Descriptor_: &flotillapb.RangeDescriptor{RangeId: id, StartKey: fmt.Appendf(nil, "r%05d", id), EndKey: fmt.Appendf(nil, "r%05d~", id),
				Epoch: &flotillapb.RangeEpoch{Version: version, ConfVer: confVer}}}}})
	}
	alloc := func(kind flotillapb.AllocIDs_Kind, n uint64) []byte {
		return metaCmd(t, &flotillapb.MetaCommand{Command: &flotillapb.MetaCommand_AllocIds{AllocIds: &flotillapb.AllocIDs{Kind: kind, Count: n}}})
	}
	apply := func(cmds ...[]byte) []multiraft.Result {
		t.Helper()
		var cs []multiraft.Command
		for i, c := range cmds {
			cs = append(cs, multiraft.Command{Index: uint64(100 + i), Data: c})
		}
		return applyCommitted(t, eng, m, cs)
	}
	res := apply(
		update(2, 1, 3), // newer configuration
		update(2, 1, 2), // stale: ignored
		update(7, 2, 1), // a new range
		update(5, 1, 1), // another, inserted in order
		update(7, 1, 9), // older version, later conf_ver: stale
		update(2, 1, 3), // duplicate
		update(0, 1, 1), // bad
		alloc(flotillapb.AllocIDs_RANGE, 2),
		alloc(flotillapb.AllocIDs_RANGE, 1),
		alloc(flotillapb.AllocIDs_REPLICA_SEQ, 10),
		alloc(flotillapb.AllocIDs_REPLICA_SEQ, 0),
		metaCmd(t, &flotillapb.MetaCommand{Command: &flotillapb.MetaCommand_SetStoreState{SetStoreState: &flotillapb.SetStoreState{NodeId: 1, State: flotillapb.StoreState_STORE_DECOMMISSIONING}}}),
		metaCmd(t, &flotillapb.MetaCommand{Command: &flotillapb.MetaCommand_SetStoreState{SetStoreState: &flotillapb.SetStoreState{NodeId: 9}}}),
	)
	for _, i := range []int{6, 10, 12} {
		if !errors.Is(res[i].Err, ErrBadCommand) {
			t.Errorf("command %d: %v, want ErrBadCommand", i, res[i].Err)
		}
	}
	for i, want := range map[int]uint64{7: 3, 8: 5, 9: 2} {
		if got, err := DecodeID(res[i].Value); err != nil || got != want {
			t.Errorf("allocation %d: %d %v, want %d", i, got, err, want)
		}
	}
	st := m.State()
	var got []string
	for _, d := range st.GetRanges() {
		got = append(got, fmt.Sprintf("%d@%d.%d", d.GetRangeId(), d.GetEpoch().GetVersion(), d.GetEpoch().GetConfVer()))
	}
	if fmt.Sprint(got) != "[2@1.3 5@1.1 7@2.1]" {
		t.Errorf("ranges %v", got)
	}
	if st.GetNodes()[0].GetState() != flotillapb.StoreState_STORE_DECOMMISSIONING {
		t.Errorf("store state %v", st.GetNodes()[0].GetState())
	}
	if changes != 1 {
		t.Errorf("onChange called %d times", changes)
	}
	// An apply of only stale reports changes nothing and writes nothing.
	apply(update(2, 1, 1))
	if changes != 1 {
		t.Errorf("a stale report counted as a change")
	}
}

// TestMetaNodeLabels: a node's labels come with its join, change with a
// later join of the same token (a restart with other --labels), and bad
// labels change nothing.
func TestMetaNodeLabels(t *testing.T) {
	eng, err := engine.Open(engine.Options{Dir: "m", FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	zoneA := []*flotillapb.StoreLabel{{Key: "zone", Value: "a"}}
	bad := eng.NewBatch()
	err = WriteInitialMeta(bad, "c1", &flotillapb.NodeDescriptor{NodeId: 1, Address: "a1:1",
		Labels: []*flotillapb.StoreLabel{{Key: "zone", Value: "a=b"}}})
	bad.Close()
	if !errors.Is(err, ErrBadCommand) {
		t.Fatalf("initial meta with a bad label: %v", err)
	}
	b := eng.NewBatch()
	if err := WriteInitialMeta(b, "c1", &flotillapb.NodeDescriptor{NodeId: 1, Address: "a1:1", Labels: zoneA}); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(true); err != nil {
		t.Fatal(err)
	}
	b.Close()
	m, err := NewMeta(eng, nil)
	if err != nil {
		t.Fatal(err)
	}
	join := func(token string, labels ...*flotillapb.StoreLabel) []byte {
		return metaCmd(t, &flotillapb.MetaCommand{Command: &flotillapb.MetaCommand_AddNode{AddNode: &flotillapb.AddNode{
			Address: "a:" + token, JoinToken: token, Labels: labels}}})
	}
	rackR1 := &flotillapb.StoreLabel{Key: "rack", Value: "r1"}
	zoneB := &flotillapb.StoreLabel{Key: "zone", Value: "b"}
	cmds := []multiraft.Command{
		{Index: 10, Data: join("t2", rackR1, zoneB)},
		{Index: 11, Data: join("t3", zoneB)},
		{Index: 12, Data: join("t2", zoneB, rackR1)},                       // unsorted: refused
		{Index: 13, Data: join("t2", zoneB, zoneB)},                        // duplicate: refused
		{Index: 14, Data: join("t3", &flotillapb.StoreLabel{Key: "zone"})}, // no value: refused
		{Index: 15, Data: join("t3")},                                      // restarted without labels
		{Index: 16, Data: metaCmd(t, &flotillapb.MetaCommand{Command: &flotillapb.MetaCommand_UpdateNode{UpdateNode: &flotillapb.UpdateNode{
			Node: &flotillapb.NodeDescriptor{NodeId: 2, Address: "a:t2", Labels: []*flotillapb.StoreLabel{{Key: "!"}}}}}})},
	}
	res := applyCommitted(t, eng, m, cmds)
	for i, c := range cmds {
		bad := c.Index >= 12 && c.Index <= 14 || c.Index == 16
		if got := errors.Is(res[i].Err, ErrBadCommand); got != bad {
			t.Errorf("entry %d: %v; want refused %v", c.Index, res[i].Err, bad)
		}
	}
	want := map[uint64]string{1: "zone=a", 2: "rack=r1,zone=b", 3: ""}
	for _, st := range []*flotillapb.ClusterMeta{m.State(), mustReadMeta(t, eng)} {
		got := map[uint64]string{}
		for _, n := range st.GetNodes() {
			got[n.GetNodeId()] = flotillapb.FormatLabels(n.GetLabels())
		}
		if !maps.Equal(got, want) {
			t.Errorf("nodes' labels %v; want %v", got, want)
		}
	}
}

// applyCommitted applies cmds to m in one batch and commits it.
func applyCommitted(t *testing.T, eng *engine.Engine, m *Meta, cmds []multiraft.Command) []multiraft.Result {
	t.Helper()
	b := eng.NewBatch()
	defer b.Close()
	res, err := m.Apply(b, cmds)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	return res
}

func mustReadMeta(t *testing.T, eng *engine.Engine) *flotillapb.ClusterMeta {
	t.Helper()
	st, err := ReadMeta(eng)
	if err != nil {
		t.Fatal(err)
	}
	return st
}
