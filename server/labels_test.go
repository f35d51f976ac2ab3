// Copyright 2026 The Flotilla Authors. All rights reserved.

package server_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flotilladb/flotilla/internal/testutil"
	"github.com/flotilladb/flotilla/rpc"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"github.com/flotilladb/flotilla/server"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// TestStoreLabels: a node's labels reach the placement group with its
// bootstrap or join and show in the store list; a restart with other
// labels replaces them; a join with malformed labels, and a node
// configured with them, are refused and change nothing.
func TestStoreLabels(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := server.Open(ctx, server.Config{Dir: t.TempDir(), ListenAddr: "127.0.0.1:0", HTTPAddr: "off",
		Labels: map[string]string{"zone": "a,b"}}); err == nil || !strings.Contains(err.Error(), `holds ','`) {
		t.Fatalf("a node with a malformed label: %v; want refused", err)
	}
	n1 := openNode(t, server.Config{Dir: t.TempDir(), Bootstrap: true, Labels: map[string]string{"zone": "a"}})
	if err := n1.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	n2 := openNode(t, server.Config{Dir: t.TempDir(), Join: []string{n1.Addr()}, Labels: map[string]string{"zone": "b", "rack": "r1"}})
	n3 := openNode(t, server.Config{Dir: t.TempDir(), Join: []string{n1.Addr()}})
	for _, n := range []*server.Node{n2, n3} {
		if err := n.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
	}
	pool := rpc.NewPool(rpc.PoolConfig{})
	defer pool.Close()
	conn, err := pool.Conn(n3.Addr())
	if err != nil {
		t.Fatal(err)
	}
	pc := flotillapb.NewPlacementClient(conn)
	labelsOf := func() (map[uint64]string, error) {
		resp, err := pc.ListStores(ctx, &flotillapb.ListStoresRequest{})
		if err != nil {
			return nil, err
		}
		out := map[uint64]string{}
		for _, s := range resp.GetStores() {
			out[s.GetNode().GetNodeId()] = flotillapb.FormatLabels(s.GetNode().GetLabels())
		}
		return out, nil
	}
	expect := func(want map[uint64]string) {
		t.Helper()
		testutil.SucceedsWithin(t, 30*time.Second, func() error {
			got, err := labelsOf()
			if err != nil {
				return err
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				return fmt.Errorf("store labels %v; want %v", got, want)
			}
			return nil
		})
	}
	id2 := n2.NodeID()
	want := map[uint64]string{n1.NodeID(): "zone=a", id2: "rack=r1,zone=b", n3.NodeID(): ""}
	expect(want)

	// Each store's part in the placement group: the node that leads it
	// (by its own status) is "leader", the others voters.
	testutil.SucceedsWithin(t, 30*time.Second, func() error {
		leader := placementLeaderOf([]*server.Node{n1, n2, n3})
		resp, err := pc.ListStores(ctx, &flotillapb.ListStoresRequest{})
		if err != nil {
			return err
		}
		roles := map[uint64]string{}
		for _, s := range resp.GetStores() {
			roles[s.GetNode().GetNodeId()] = s.GetPlacementRole()
		}
		want := map[uint64]string{n1.NodeID(): "voter", n2.NodeID(): "voter", n3.NodeID(): "voter"}
		want[leader] = "leader"
		if fmt.Sprint(roles) != fmt.Sprint(want) {
			return fmt.Errorf("placement roles %v; want %v (leader %d)", roles, want, leader)
		}
		return nil
	})

	// A join with malformed labels is refused (InvalidArgument, checked
	// before the request is forwarded or proposed) and the stores' labels
	// stay.
	nc := flotillapb.NewNodeClient(conn)
	for _, bad := range [][]*flotillapb.StoreLabel{
		{{Key: "zone", Value: "a=b"}},
		{{Key: "zone", Value: "b"}, {Key: "rack", Value: "r1"}}, // unsorted
		{{Key: "zone", Value: "a"}, {Key: "zone", Value: "b"}},
		{{Key: "", Value: "a"}},
	} {
		_, err := nc.Join(ctx, &flotillapb.JoinRequest{Address: "127.0.0.1:1", JoinToken: "forged", Labels: bad})
		if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "labels") {
			t.Errorf("join with labels %v: %v; want InvalidArgument naming the labels", bad, err)
		}
	}
	if got, err := labelsOf(); err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after refused joins: %v, %v; want %v", got, err, want)
	}

	// Node 2 restarts at the same addresses with other labels: only its
	// labels changed, and the cluster learns them; then without labels,
	// which clears them.
	id2, dir2, addr2, http2 := n2.NodeID(), n2.Dir(), n2.Addr(), n2.HTTPAddr()
	for _, labels := range []map[string]string{{"zone": "c", "role": "observer"}, nil} {
		if err := n2.Close(); err != nil {
			t.Fatal(err)
		}
		n2 = openNode(t, server.Config{Dir: dir2, ListenAddr: addr2, HTTPAddr: http2, Labels: labels})
		if err := n2.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
		if n2.NodeID() != id2 || n2.Addr() != addr2 {
			t.Fatalf("restarted node 2 is node %d at %s; want node %d at %s", n2.NodeID(), n2.Addr(), id2, addr2)
		}
		want[id2] = ""
		if labels != nil {
			want[id2] = "role=observer,zone=c"
		}
		expect(want)
	}
}
