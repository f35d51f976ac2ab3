// Copyright 2026 The Flotilla Authors. All rights reserved.

package multiraft_test

import (
	"strings"
	"testing"

	"github.com/flotilladb/flotilla/multiraft"
)

func TestConfigValidate(t *testing.T) {
	var c multiraft.Config
	c.EnsureDefaults()
	if c.TickInterval != multiraft.DefaultTickInterval || c.ElectionTicks != multiraft.DefaultElectionTicks ||
		c.HeartbeatTicks != multiraft.DefaultHeartbeatTicks || c.Workers < 4 {
		t.Fatalf("defaults not applied: %+v", c)
	}
	c.ElectionTicks = 1
	err := c.Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	for _, want := range []string{"NodeID", "Engine", "Transport", "NewStateMachine", "ElectionTicks"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	if _, err := multiraft.NewHost(c); err == nil {
		t.Fatal("NewHost accepted an invalid config")
	}
}

func TestReplicaID(t *testing.T) {
	r := multiraft.MakeReplicaID(7, 3)
	if r.Node() != 7 || !r.Valid() || r.String() != "7/3" {
		t.Fatalf("MakeReplicaID(7, 3) = %v (node %d, valid %v)", r, r.Node(), r.Valid())
	}
	for _, bad := range []multiraft.ReplicaID{0, multiraft.MakeReplicaID(0, 1), multiraft.MakeReplicaID(7, 0),
		multiraft.ReplicaID(^uint64(0))} {
		if bad.Valid() {
			t.Errorf("%v is valid", bad)
		}
	}
}
