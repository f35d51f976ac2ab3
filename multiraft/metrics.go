// Copyright 2026 The Flotilla Authors. All rights reserved.

package multiraft

import (
	"fmt"
	"time"

	"github.com/VictoriaMetrics/metrics"
	pb "go.etcd.io/raft/v3/raftpb"
)

// hostMetrics are the host's metrics. With no Config.Metrics they are kept
// on a private set that nothing exports.
//
//	flotilla_raft_scheduler_queue_seconds         histogram: time groups wait for a worker
//	flotilla_raft_ready_seconds                   histogram: time to process a group
//	flotilla_raft_log_write_seconds               histogram: log writer batch write + fsync
//	flotilla_raft_log_write_groups                histogram: appends per log writer batch
//	flotilla_raft_log_writes_total                log writer batches (fsyncs)
//	flotilla_raft_entries_applied_total           entries applied
//	flotilla_raft_groups                          groups on the host
//	flotilla_raft_unquiesced_groups               groups ticking (not quiescent)
//	flotilla_raft_group_ticks_total               ticks delivered to groups
//	flotilla_raft_heartbeats_coalesced_total      heartbeats and responses sent coalesced
//	flotilla_raft_read_index_rounds_total         ReadIndex rounds (each serves a batch of reads)
//	flotilla_raft_snapshots_sent_total            snapshots started to followers
//	flotilla_raft_snapshots_failed_total          snapshots that failed to send
//	flotilla_raft_snapshots_applied_total         snapshots applied here
//	flotilla_raft_replicas_created_total          uninitialized replicas created by messages
//	flotilla_raft_replicas_destroyed_total        replicas removed from their group
//	flotilla_raft_log_truncations_total           log truncations proposed
//	flotilla_raft_message_batches_sent_total      batches handed to the transport
//	flotilla_raft_message_batches_received_total  batches received
//	flotilla_raft_messages_dropped_total{reason=...} messages dropped, by reason (dropReason)
//	flotilla_raft_replicas_collected_total        idle uninitialized replicas collected
//	flotilla_raft_uninitialized_replicas          uninitialized replicas on the host
//	flotilla_raft_messages_sent_total{type=...}   raft messages sent, by type
//	flotilla_raft_messages_received_total{type=...}
//	flotilla_raft_proposal_seconds{stage=...}     a proposal's time on its leader, by stage:
//	                                              wait (inbox and scheduler, until raft takes it),
//	                                              commit (log writes, replication, commit),
//	                                              apply (the state machine's apply)
type hostMetrics struct {
	set    *metrics.Set
	gauges []string

	queueLatency        *metrics.PrometheusHistogram
	readyLatency        *metrics.PrometheusHistogram
	logWriteLatency     *metrics.PrometheusHistogram
	logWriteGroups      *metrics.PrometheusHistogram
	proposalWait        *metrics.PrometheusHistogram
	proposalCommit      *metrics.PrometheusHistogram
	proposalApply       *metrics.PrometheusHistogram
	logWrites           *metrics.Counter
	entriesApplied      *metrics.Counter
	batchesSent         *metrics.Counter
	heartbeatsCoalesced *metrics.Counter
	readRounds          *metrics.Counter
	snapshotsSent       *metrics.Counter
	snapshotsFailed     *metrics.Counter
	snapshotsApplied    *metrics.Counter
	// snapshotsRefusedEarly counts snapshots refused from their header,
	// before their data was read.
	snapshotsRefusedEarly *metrics.Counter
	replicasCreated       *metrics.Counter
	replicasDestroyed     *metrics.Counter
	truncationsProposed   *metrics.Counter
	ticks                 *metrics.Counter
	batchesReceived       *metrics.Counter
	replicasCollected     *metrics.Counter
	// dropped counts dropped messages by reason, indexed by dropReason.
	dropped        [numDropReasons]*metrics.Counter
	sentByType     []*metrics.Counter
	receivedByType []*metrics.Counter
}

var groupCountBuckets = []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096}

func newHostMetrics(set *metrics.Set, h *Host) *hostMetrics {
	if set == nil {
		set = metrics.NewSet()
	}
	m := &hostMetrics{
		queueLatency:          set.GetOrCreatePrometheusHistogram("flotilla_raft_scheduler_queue_seconds"),
		readyLatency:          set.GetOrCreatePrometheusHistogram("flotilla_raft_ready_seconds"),
		logWriteLatency:       set.GetOrCreatePrometheusHistogram("flotilla_raft_log_write_seconds"),
		logWriteGroups:        set.GetOrCreatePrometheusHistogramExt("flotilla_raft_log_write_groups", groupCountBuckets),
		proposalWait:          set.GetOrCreatePrometheusHistogram(`flotilla_raft_proposal_seconds{stage="wait"}`),
		proposalCommit:        set.GetOrCreatePrometheusHistogram(`flotilla_raft_proposal_seconds{stage="commit"}`),
		proposalApply:         set.GetOrCreatePrometheusHistogram(`flotilla_raft_proposal_seconds{stage="apply"}`),
		logWrites:             set.GetOrCreateCounter("flotilla_raft_log_writes_total"),
		entriesApplied:        set.GetOrCreateCounter("flotilla_raft_entries_applied_total"),
		batchesSent:           set.GetOrCreateCounter("flotilla_raft_message_batches_sent_total"),
		heartbeatsCoalesced:   set.GetOrCreateCounter("flotilla_raft_heartbeats_coalesced_total"),
		readRounds:            set.GetOrCreateCounter("flotilla_raft_read_index_rounds_total"),
		snapshotsSent:         set.GetOrCreateCounter("flotilla_raft_snapshots_sent_total"),
		snapshotsFailed:       set.GetOrCreateCounter("flotilla_raft_snapshots_failed_total"),
		snapshotsApplied:      set.GetOrCreateCounter("flotilla_raft_snapshots_applied_total"),
		snapshotsRefusedEarly: set.GetOrCreateCounter("flotilla_raft_snapshots_refused_early_total"),
		replicasCreated:       set.GetOrCreateCounter("flotilla_raft_replicas_created_total"),
		replicasDestroyed:     set.GetOrCreateCounter("flotilla_raft_replicas_destroyed_total"),
		truncationsProposed:   set.GetOrCreateCounter("flotilla_raft_log_truncations_total"),
		ticks:                 set.GetOrCreateCounter("flotilla_raft_group_ticks_total"),
		batchesReceived:       set.GetOrCreateCounter("flotilla_raft_message_batches_received_total"),
		replicasCollected:     set.GetOrCreateCounter("flotilla_raft_replicas_collected_total"),
	}
	for r := dropReason(1); r < numDropReasons; r++ {
		m.dropped[r] = set.GetOrCreateCounter(fmt.Sprintf(`flotilla_raft_messages_dropped_total{reason=%q}`, r.String()))
	}
	for t := range pb.MessageType_name {
		typ := pb.MessageType(t)
		for len(m.sentByType) <= int(t) {
			m.sentByType = append(m.sentByType, nil)
			m.receivedByType = append(m.receivedByType, nil)
		}
		m.sentByType[t] = set.GetOrCreateCounter(fmt.Sprintf(`flotilla_raft_messages_sent_total{type=%q}`, typ.String()))
		m.receivedByType[t] = set.GetOrCreateCounter(fmt.Sprintf(`flotilla_raft_messages_received_total{type=%q}`, typ.String()))
	}
	// Gauges read the host; a host restarted on the same set replaces them
	// (and Stop removes them, so a stopped host is not kept alive).
	m.set = set
	m.gauge("flotilla_raft_unquiesced_groups", func() float64 {
		h.activeMu.Lock()
		defer h.activeMu.Unlock()
		return float64(len(h.active))
	})
	m.gauge("flotilla_raft_uninitialized_replicas", func() float64 {
		h.uninit.Lock()
		defer h.uninit.Unlock()
		return float64(len(h.uninit.groups))
	})
	m.gauge("flotilla_raft_groups", func() float64 {
		h.groupsMu.RLock()
		defer h.groupsMu.RUnlock()
		return float64(len(h.groups))
	})
	return m
}

func (m *hostMetrics) gauge(name string, f func() float64) {
	m.set.UnregisterMetric(name)
	m.set.NewGauge(name, f)
	m.gauges = append(m.gauges, name)
}

// unregister removes the metrics that refer to the host.
func (m *hostMetrics) unregister() {
	for _, name := range m.gauges {
		m.set.UnregisterMetric(name)
	}
}

func (m *hostMetrics) observeQueueLatency(d time.Duration) { m.queueLatency.Update(d.Seconds()) }
func (m *hostMetrics) observeProcessing(d time.Duration)   { m.readyLatency.Update(d.Seconds()) }

// observeProposal records the stages of a proposal applied on its leader:
// from raft taking it to the start of the apply that holds it (log writes,
// replication, commit), and from there to now (the state machine's apply).
func (m *hostMetrics) observeProposal(proposed, applyStart time.Time) {
	if proposed.IsZero() {
		return
	}
	m.proposalCommit.Update(applyStart.Sub(proposed).Seconds())
	m.proposalApply.Update(time.Since(applyStart).Seconds())
}

func (m *hostMetrics) observeLogWrite(groups int, d time.Duration) {
	m.logWrites.Inc()
	m.logWriteGroups.Update(float64(groups))
	m.logWriteLatency.Update(d.Seconds())
}

func (m *hostMetrics) countSent(t pb.MessageType) {
	if t >= 0 && int(t) < len(m.sentByType) && m.sentByType[t] != nil {
		m.sentByType[t].Inc()
	}
}

func (m *hostMetrics) countReceived(t pb.MessageType) {
	if t >= 0 && int(t) < len(m.receivedByType) && m.receivedByType[t] != nil {
		m.receivedByType[t].Inc()
	}
}

// drop counts n messages dropped for reason.
func (m *hostMetrics) drop(reason dropReason, n int) {
	if reason > 0 && reason < numDropReasons && n > 0 {
		m.dropped[reason].Add(n)
	}
}
