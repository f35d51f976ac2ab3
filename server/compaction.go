// Copyright 2026 The Flotilla Authors. All rights reserved.

package server

import (
	"context"
	"time"

	"github.com/flotilladb/flotilla/placement"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"google.golang.org/protobuf/proto"
)

// Automatic compaction modes (Config.AutoCompactionMode), as etcd's.
const (
	CompactionPeriodic = "periodic"
	CompactionRevision = "revision"
	CompactionOff      = "off"
)

// Defaults of automatic compaction.
const (
	DefaultAutoCompactionRetention = time.Hour
	DefaultAutoCompactionRevisions = 10000
)

// compactionLoop runs automatic compaction while this node leads the
// placement group (one node compacts for the cluster). Every interval it
// notes the revision the oracle is at and, for periodic mode, compacts
// every range at the newest noted revision at least the retention old;
// for revision mode at the current revision minus the revisions kept. A
// range that missed a compaction (unreachable) gets it with the next one:
// compacting at a revision at or below a range's compacted one changes
// nothing.
func (n *Node) compactionLoop() {
	cfg := n.cfg
	if cfg.AutoCompactionMode == CompactionOff {
		return
	}
	interval := compactionInterval(cfg)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	type sample struct {
		at  time.Time
		rev int64
	}
	var samples []sample
	var done int64
	for {
		select {
		case <-n.stopCtx.Done():
			return
		case <-tick.C:
		}
		if !n.leadsPlacement() {
			samples, done = nil, 0
			continue
		}
		now := time.Now()
		ctx, cancel := context.WithTimeout(n.stopCtx, interval)
		cur, err := n.oracle.Revision(ctx)
		cancel()
		if err != nil {
			continue
		}
		samples = append(samples, sample{at: now, rev: cur})
		var target int64
		switch cfg.AutoCompactionMode {
		case CompactionPeriodic:
			cut := now.Add(-cfg.AutoCompactionRetention)
			keep := 0
			for i, s := range samples {
				if s.at.After(cut) {
					break
				}
				target, keep = s.rev, i
			}
			samples = samples[keep:]
		case CompactionRevision:
			target = cur - cfg.AutoCompactionRevisions
			samples = samples[len(samples)-1:]
		}
		if target <= done || target <= 0 {
			continue
		}
		if err := n.compactCluster(target); err != nil {
			n.log.Warn("automatic compaction failed; the next one retries", "revision", target, "err", err)
			continue
		}
		done = target
		n.log.Info("compacted", "revision", target, "mode", cfg.AutoCompactionMode)
	}
}

func compactionInterval(cfg Config) time.Duration {
	if k := cfg.Testing; k != nil && k.CompactionInterval > 0 {
		return k.CompactionInterval
	}
	if cfg.AutoCompactionMode == CompactionRevision {
		return 5 * time.Minute
	}
	return min(max(cfg.AutoCompactionRetention/10, time.Second), time.Hour)
}

// leadsPlacement reports whether this node leads the placement group.
func (n *Node) leadsPlacement() bool {
	host, _, ok := n.running()
	if !ok {
		return false
	}
	st, ok := host.Status(placement.GroupID)
	return ok && st.Leader != 0 && st.Leader == st.Replica
}

// compactCluster compacts every range at rev and records rev as the
// cluster's compaction revision in the placement group.
func (n *Node) compactCluster(rev int64) error {
	ctx, cancel := context.WithTimeout(n.stopCtx, time.Minute)
	defer cancel()
	if _, err := n.gw.Compact(ctx, &flotillapb.CompactRequest{Revision: rev}); err != nil {
		return err
	}
	n.metrics.GetOrCreateCounter("flotilla_compactions_total").Inc()
	host, _, ok := n.running()
	if !ok {
		return nil
	}
	data, err := proto.Marshal(&flotillapb.MetaCommand{Command: &flotillapb.MetaCommand_SetCompactedRevision{
		SetCompactedRevision: &flotillapb.SetCompactedRevision{Revision: rev},
	}})
	if err != nil {
		return err
	}
	_, err = host.ProposeAndWait(ctx, placement.GroupID, data)
	return err
}
