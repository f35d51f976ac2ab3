// Copyright 2026 The Flotilla Authors. All rights reserved.

package placement

import (
	"errors"
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
	b = eng.NewBatch()
	res, err := m.Apply(b, cmds)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(false); err != nil {
		t.Fatal(err)
	}
	b.Close()
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
