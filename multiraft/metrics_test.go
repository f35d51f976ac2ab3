// Copyright 2026 The Flotilla Authors. All rights reserved.

package multiraft_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/flotilladb/flotilla/internal/testcluster"
)

// TestHostMetrics: the host exports the metrics the issue names.
func TestHostMetrics(t *testing.T) {
	c, sets := metricsCluster(t, testcluster.Options{Nodes: 3, Seed: newSeed(t)})
	c.Bootstrap(1, 1, 2, 3)
	leadFrom(t, c, 1, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := newProposer(c).proposeUntilAcked(ctx, 1, 5); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	sets[1].WritePrometheus(&buf)
	out := buf.String()
	for _, name := range []string{
		"flotilla_raft_scheduler_queue_seconds_count", "flotilla_raft_ready_seconds_count",
		"flotilla_raft_log_write_seconds_count", "flotilla_raft_log_write_groups_count",
		"flotilla_raft_log_writes_total", "flotilla_raft_unquiesced_groups", "flotilla_raft_groups",
		`flotilla_raft_messages_sent_total{type="MsgApp"}`, `flotilla_raft_messages_received_total{type="MsgAppResp"}`,
		"flotilla_raft_heartbeats_coalesced_total", "flotilla_raft_snapshots_sent_total",
		"flotilla_raft_snapshots_applied_total", "flotilla_raft_entries_applied_total",
	} {
		if !strings.Contains(out, name+" ") {
			t.Errorf("metric %s missing", name)
		}
	}
	if counterValue(t, sets[1], `flotilla_raft_messages_sent_total{type="MsgApp"}`) == 0 {
		t.Error("no MsgApp counted as sent by the leader")
	}
}
