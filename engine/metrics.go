// Copyright 2026 The Flotilla Authors. All rights reserved.

package engine

import (
	"fmt"
	"io"
	"time"

	"github.com/VictoriaMetrics/metrics"
	prometheusgo "github.com/prometheus/client_model/go"
)

// The engine's metrics, all gauges and counters read from Pebble and the
// entry cache when the set is scraped (one db.Metrics() call per scrape):
//
//	flotilla_engine_wal_fsync_duration_seconds   histogram of WAL fsync latency
//	flotilla_engine_wal_bytes_written_total      bytes written to the WAL
//	flotilla_engine_flushes_total                memtable flushes
//	flotilla_engine_compactions_total            compactions
//	flotilla_engine_compaction_debt_bytes        estimated bytes left to compact
//	flotilla_engine_read_amplification           sublevels a read may visit
//	flotilla_engine_l0_sublevels                 sublevels in L0
//	flotilla_engine_ingestions_total             SST ingestions (snapshots)
//	flotilla_engine_disk_usage_bytes             bytes on disk (SSTs, WAL, ...)
//	flotilla_engine_memtable_bytes               bytes in memtables
//	flotilla_engine_block_cache_bytes            bytes in the block cache
//	flotilla_engine_block_cache_hits_total       block cache hits
//	flotilla_engine_block_cache_misses_total     block cache misses
//	flotilla_raft_entry_cache_bytes              bytes in the raft entry cache
//	flotilla_raft_entry_cache_ranges             ranges with cached entries
//	flotilla_raft_entry_cache_hits_total         entries read from the cache
//	flotilla_raft_entry_cache_misses_total       entries read from Pebble

// fsyncBuckets are the upper bounds, in seconds, of the exported WAL fsync
// histogram. Pebble's own histogram is finer (100 buckets, in nanoseconds);
// each exported bucket counts the observations of Pebble's buckets that lie
// entirely below its bound, so counts are exact at Pebble's bounds and
// conservative between them.
var fsyncBuckets = []float64{
	0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
}

// registerMetrics adds e's metrics to set. A closed engine writes none (a
// metrics.Set cannot unregister a writer).
func registerMetrics(set *metrics.Set, e *Engine) {
	set.RegisterMetricsWriter(func(w io.Writer) {
		if e.closed.Load() {
			return
		}
		writeEngineMetrics(w, e)
	})
}

func writeEngineMetrics(w io.Writer, e *Engine) {
	m := e.db.Metrics()
	writeFsyncHistogram(w, "flotilla_engine_wal_fsync_duration_seconds", m.LogWriter.FsyncLatency)
	metrics.WriteCounterUint64(w, "flotilla_engine_wal_bytes_written_total", m.WAL.BytesWritten)
	metrics.WriteCounterUint64(w, "flotilla_engine_flushes_total", uint64(m.Flush.Count))
	metrics.WriteCounterUint64(w, "flotilla_engine_compactions_total", uint64(m.Compact.Count))
	metrics.WriteGaugeUint64(w, "flotilla_engine_compaction_debt_bytes", m.Compact.EstimatedDebt)
	metrics.WriteGaugeUint64(w, "flotilla_engine_read_amplification", uint64(m.ReadAmp()))
	metrics.WriteGaugeUint64(w, "flotilla_engine_l0_sublevels", uint64(max(m.Levels[0].Sublevels, 0)))
	metrics.WriteCounterUint64(w, "flotilla_engine_ingestions_total", m.Ingest.Count)
	metrics.WriteGaugeUint64(w, "flotilla_engine_disk_usage_bytes", m.DiskSpaceUsage())
	metrics.WriteGaugeUint64(w, "flotilla_engine_memtable_bytes", m.MemTable.Size)
	metrics.WriteGaugeUint64(w, "flotilla_engine_block_cache_bytes", uint64(max(m.BlockCache.Size, 0)))
	metrics.WriteCounterUint64(w, "flotilla_engine_block_cache_hits_total", uint64(max(m.BlockCache.Hits, 0)))
	metrics.WriteCounterUint64(w, "flotilla_engine_block_cache_misses_total", uint64(max(m.BlockCache.Misses, 0)))

	bytes, ranges := e.entryCache.stats()
	metrics.WriteGaugeUint64(w, "flotilla_raft_entry_cache_bytes", uint64(bytes))
	metrics.WriteGaugeUint64(w, "flotilla_raft_entry_cache_ranges", uint64(ranges))
	metrics.WriteCounterUint64(w, "flotilla_raft_entry_cache_hits_total", e.entryCache.hits.Load())
	metrics.WriteCounterUint64(w, "flotilla_raft_entry_cache_misses_total", e.entryCache.misses.Load())
}

// histogramSource is what Pebble's Prometheus histogram offers.
type histogramSource interface {
	Write(*prometheusgo.Metric) error
}

// writeFsyncHistogram re-buckets Pebble's nanosecond fsync histogram into
// fsyncBuckets and writes it in Prometheus text format.
func writeFsyncHistogram(w io.Writer, name string, h histogramSource) {
	if h == nil {
		return
	}
	var pm prometheusgo.Metric
	if err := h.Write(&pm); err != nil || pm.Histogram == nil {
		return
	}
	src := pm.Histogram
	for _, bound := range fsyncBuckets {
		boundNanos := bound * float64(time.Second)
		var cum uint64
		for _, b := range src.Bucket {
			if b.GetUpperBound() <= boundNanos {
				cum = b.GetCumulativeCount()
			}
		}
		fmt.Fprintf(w, "%s_bucket{le=\"%g\"} %d\n", name, bound, cum)
	}
	fmt.Fprintf(w, "%s_bucket{le=\"+Inf\"} %d\n", name, src.GetSampleCount())
	fmt.Fprintf(w, "%s_sum %g\n", name, src.GetSampleSum()/float64(time.Second))
	fmt.Fprintf(w, "%s_count %d\n", name, src.GetSampleCount())
}
