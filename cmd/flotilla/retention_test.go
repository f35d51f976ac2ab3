// Copyright 2026 The Flotilla Authors. All rights reserved.

package main

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/flotilladb/flotilla/server"
)

// TestParseRetention: --auto-compaction-retention is read by the mode, as
// etcd reads it: a duration or a number of hours for periodic compaction,
// a number of revisions for revision compaction; anything else, negative
// or overflowing values included, is refused naming the flag.
func TestParseRetention(t *testing.T) {
	for _, tc := range []struct {
		mode, value string
		retention   time.Duration // periodic: the retention set
		revisions   int64         // revision: the revisions set
		bad         bool
	}{
		{mode: server.CompactionPeriodic, value: ""},
		{mode: server.CompactionPeriodic, value: "30m", retention: 30 * time.Minute},
		{mode: server.CompactionPeriodic, value: "2", retention: 2 * time.Hour},
		{mode: server.CompactionPeriodic, value: "1.5", retention: 90 * time.Minute},
		{mode: server.CompactionPeriodic, value: "1h30m", retention: 90 * time.Minute},
		{mode: server.CompactionPeriodic, value: "-1h", bad: true},
		{mode: server.CompactionPeriodic, value: "-2", bad: true},
		{mode: server.CompactionPeriodic, value: "week", bad: true},
		{mode: server.CompactionPeriodic, value: "NaN", bad: true},
		{mode: server.CompactionPeriodic, value: "Inf", bad: true},
		{mode: server.CompactionPeriodic, value: "3000000", bad: true}, // hours past a Duration
		{mode: server.CompactionPeriodic, value: "1e300", bad: true},
		{mode: server.CompactionPeriodic, value: "2562047", retention: 2562047 * time.Hour},
		{mode: server.CompactionRevision, value: ""},
		{mode: server.CompactionRevision, value: "500", revisions: 500},
		{mode: server.CompactionRevision, value: "9223372036854775807", revisions: math.MaxInt64},
		{mode: server.CompactionRevision, value: "9223372036854775808", bad: true},
		{mode: server.CompactionRevision, value: "-1", bad: true},
		{mode: server.CompactionRevision, value: "1h", bad: true},
		{mode: server.CompactionRevision, value: "1.5", bad: true},
		{mode: server.CompactionOff, value: "anything"}, // unused
	} {
		cfg := server.Config{AutoCompactionMode: tc.mode}
		err := parseRetention(&cfg, tc.value)
		if tc.bad {
			if err == nil || !strings.Contains(err.Error(), "--auto-compaction-retention") {
				t.Errorf("%s %q: %v (retention %v, revisions %d); want refused naming the flag", tc.mode, tc.value, err,
					cfg.AutoCompactionRetention, cfg.AutoCompactionRevisions)
			}
			continue
		}
		if err != nil || cfg.AutoCompactionRetention != tc.retention || cfg.AutoCompactionRevisions != tc.revisions {
			t.Errorf("%s %q: retention %v, revisions %d, %v; want %v, %d", tc.mode, tc.value,
				cfg.AutoCompactionRetention, cfg.AutoCompactionRevisions, err, tc.retention, tc.revisions)
		}
	}
	// 0 disables automatic compaction, as in etcd.
	for _, mode := range []string{server.CompactionPeriodic, server.CompactionRevision} {
		for _, v := range []string{"0", "0s"} {
			if mode == server.CompactionRevision && v == "0s" {
				continue
			}
			cfg := server.Config{AutoCompactionMode: mode}
			if err := parseRetention(&cfg, v); err != nil || cfg.AutoCompactionMode != server.CompactionOff {
				t.Errorf("%s %q: mode %q, %v; want off", mode, v, cfg.AutoCompactionMode, err)
			}
		}
	}
}

// TestStartCompactionFlags: `flotilla start` refuses a retention its mode
// cannot read, and a mode it does not know, before it opens a store.
func TestStartCompactionFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--auto-compaction-mode", "revision", "--auto-compaction-retention", "1h"}, "revision mode keeps a number of revisions"},
		{[]string{"--auto-compaction-retention", "soon"}, "periodic mode keeps a duration"},
		{[]string{"--auto-compaction-mode", "weekly"}, `AutoCompactionMode "weekly"`},
	} {
		dir := t.TempDir()
		args := append([]string{"start", "--store", dir, "--listen-addr", "127.0.0.1:0", "--http-addr", "off", "--log-level", "error"}, tc.args...)
		out, err := run(t, args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("flotilla %v: %v (output %q); want an error saying %q", args, err, out, tc.want)
		}
	}
}
