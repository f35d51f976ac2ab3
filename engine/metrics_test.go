// Copyright 2026 The Flotilla Authors. All rights reserved.

package engine

import (
	"bytes"
	"regexp"
	"strconv"
	"testing"

	"github.com/VictoriaMetrics/metrics"
	pb "go.etcd.io/raft/v3/raftpb"
)

func TestMetrics(t *testing.T) {
	set := metrics.NewSet()
	e := openMem(t, nil, func(o *Options) { o.Metrics = set })
	s := openStorage(t, e, 1)
	defer s.Close()
	for i := uint64(1); i <= 20; i++ {
		b := e.NewBatch()
		_ = s.Append(b, []*pb.Entry{entry(i, 1, make([]byte, 256))})
		mustCommit(t, b, true)
	}
	if err := e.Flush(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Entries(1, 21, 1<<20); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	set.WritePrometheus(&buf)
	out := buf.String()
	value := func(name string) float64 {
		t.Helper()
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("metric %s missing from:\n%s", name, out)
		}
		v, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for name, atLeast := range map[string]float64{
		"flotilla_engine_wal_fsync_duration_seconds_count":             20,
		`flotilla_engine_wal_fsync_duration_seconds_bucket{le="+Inf"}`: 20,
		"flotilla_engine_wal_bytes_written_total":                      20 * 256,
		"flotilla_engine_flushes_total":                                1,
		"flotilla_engine_disk_usage_bytes":                             1,
		"flotilla_raft_entry_cache_hits_total":                         20,
		"flotilla_raft_entry_cache_bytes":                              20 * 256,
	} {
		if v := value(name); v < atLeast {
			t.Errorf("%s = %v, want >= %v", name, v, atLeast)
		}
	}
	for _, name := range []string{"flotilla_engine_read_amplification", "flotilla_engine_compactions_total",
		"flotilla_engine_compaction_debt_bytes", "flotilla_engine_l0_sublevels", "flotilla_engine_memtable_bytes"} {
		value(name)
	}
	// A closed engine writes nothing (and does not crash the scrape).
	_ = e.Close()
	buf.Reset()
	set.WritePrometheus(&buf)
	if bytes.Contains(buf.Bytes(), []byte("flotilla_engine_")) {
		t.Fatal("closed engine still reports metrics")
	}
}
