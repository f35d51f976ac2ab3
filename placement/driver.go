// Copyright 2026 The Flotilla Authors. All rights reserved.

package placement

import (
	"cmp"
	"slices"
	"sync"
	"time"

	"github.com/flotilladb/flotilla/multiraft"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"google.golang.org/protobuf/proto"
)

// Defaults for DriverConfig.
const (
	DefaultLivenessWindow   = 5 * time.Second
	DefaultStoreDownTimeout = 60 * time.Second
)

// DriverConfig configures a Driver.
type DriverConfig struct {
	// LivenessWindow: a store that heartbeated within it is live. Default
	// 5 s.
	LivenessWindow time.Duration
	// StoreDownTimeout: a store silent for longer is down, and its
	// replicas are to be rebuilt elsewhere. Default 60 s.
	StoreDownTimeout time.Duration
	// ReplicationFactor is the number of voters of each range. Default 3.
	ReplicationFactor int
	// PlacementReplicationFactor is the number of voters of the placement
	// group. Default 3.
	PlacementReplicationFactor int
	// MaxSnapshotsPerStore bounds the replicas being added to one store at
	// once. Default 2.
	MaxSnapshotsPerStore int
	// MaxBalanceOperators bounds the balance operators running at once.
	// Default 8.
	MaxBalanceOperators int
	// OperatorTimeout expires an operator none of whose steps finished for
	// that long. Default 2 min.
	OperatorTimeout time.Duration
	// Clock returns the time; default time.Now (tests inject one).
	Clock func() time.Time
}

// Defaults for the scheduling fields of DriverConfig.
const (
	DefaultReplicationFactor    = 3
	DefaultMaxSnapshotsPerStore = 2
	// SmallSnapshotBytes and SmallSnapshotShare: a move of a range whose
	// keys and values take less than SmallSnapshotBytes counts as
	// 1/SmallSnapshotShare of a snapshot towards MaxSnapshotsPerStore.
	SmallSnapshotBytes         = 1 << 20
	SmallSnapshotShare         = 16
	DefaultMaxBalanceOperators = 8
	DefaultOperatorTimeout     = 2 * time.Minute
)

// Driver is what the placement group's leader observes: the latest store
// and range heartbeats. It is not replicated: a new leader starts with
// nothing (Reset) and waits a liveness window before calling any store
// dead, and StoreDownTimeout before calling one down. It is safe for
// concurrent use.
type Driver struct {
	cfg DriverConfig
	mu  struct {
		sync.Mutex
		// since is when this view started (Reset).
		since  time.Time
		stores map[multiraft.NodeID]storeObservation
		ranges map[multiraft.GroupID]rangeObservation
		// placement is the placement group's latest report.
		placement rangeObservation
		// pendingSince is, by range, when each replica now reported
		// pending was first reported so (since it last was not).
		pendingSince map[multiraft.GroupID]map[multiraft.ReplicaID]time.Time

		// ops are the running operators by range; history the last
		// ended ones; counts the ended ones by state.
		ops      map[multiraft.GroupID]*trackedOp
		history  []*trackedOp
		counts   map[string]uint64
		nextOpID uint64
		// [seqNext, seqEnd) are replica sequence numbers allocated
		// through the placement group and not handed out yet.
		seqNext, seqEnd uint64
		// [rangeNext, rangeEnd) are range IDs allocated likewise.
		rangeNext, rangeEnd uint64

		// gen counts the changes views depend on; views caches the last
		// view built without and with operator influence (viewLocked).
		gen   uint64
		views [2]cachedView
		// rules are meta's rules compiled (rulesOf), rulesMeta the meta
		// they are of.
		rules     []Rule
		rulesMeta *flotillapb.ClusterMeta
		// idle records the last Balance round that found no replica to
		// move: at gen idleGen over idleMeta, at idleAt. Until one of
		// them changes (or idleRecheck passes) the replica balancers are
		// not run again: with rules that keep stores unequal they may
		// scan every range for every pair of stores.
		idleGen  uint64
		idleMeta *flotillapb.ClusterMeta
		idleLive string
		idleAt   time.Time
		// scanned records, per node, the view ScheduleLedBy last checked
		// all of the node's ranges on (scanRecord): it is not done again
		// until something changed or idleRecheck passed.
		scanned map[multiraft.NodeID]scanRecord
	}
}

type scanRecord struct {
	gen  uint64
	meta *flotillapb.ClusterMeta
	at   time.Time
	live string
}

// idleRecheck bounds how long Balance trusts that nothing can move.
const idleRecheck = 30 * time.Second

type storeObservation struct {
	at    time.Time
	stats *flotillapb.StoreStats
}

type rangeObservation struct {
	at time.Time
	hb *flotillapb.RangeHeartbeatRequest
}

// NewDriver returns an empty Driver.
func NewDriver(cfg DriverConfig) *Driver {
	if cfg.LivenessWindow == 0 {
		cfg.LivenessWindow = DefaultLivenessWindow
	}
	if cfg.StoreDownTimeout == 0 {
		cfg.StoreDownTimeout = DefaultStoreDownTimeout
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	if cfg.ReplicationFactor == 0 {
		cfg.ReplicationFactor = DefaultReplicationFactor
	}
	if cfg.PlacementReplicationFactor == 0 {
		cfg.PlacementReplicationFactor = DefaultReplicationFactor
	}
	if cfg.MaxSnapshotsPerStore == 0 {
		cfg.MaxSnapshotsPerStore = DefaultMaxSnapshotsPerStore
	}
	if cfg.MaxBalanceOperators == 0 {
		cfg.MaxBalanceOperators = DefaultMaxBalanceOperators
	}
	if cfg.OperatorTimeout == 0 {
		cfg.OperatorTimeout = DefaultOperatorTimeout
	}
	d := &Driver{cfg: cfg}
	d.Reset()
	return d
}

// Reset forgets every observation: the node just became the group's
// leader, and what it saw before may be stale.
func (d *Driver) Reset() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.mu.since = d.cfg.Clock()
	d.mu.stores = map[multiraft.NodeID]storeObservation{}
	d.mu.ranges = map[multiraft.GroupID]rangeObservation{}
	d.mu.placement = rangeObservation{}
	d.mu.pendingSince = map[multiraft.GroupID]map[multiraft.ReplicaID]time.Time{}
	d.mu.ops = map[multiraft.GroupID]*trackedOp{}
	d.mu.history = nil
	d.mu.counts = map[string]uint64{}
	// Sequence numbers left from an earlier term are dropped: another
	// leader may have allocated and used higher ones since, and a store
	// refuses a replica ID below one it already removed (its tombstone).
	d.mu.seqNext, d.mu.seqEnd = 0, 0
	d.mu.rangeNext, d.mu.rangeEnd = 0, 0
	d.mu.gen++
	d.mu.views = [2]cachedView{}
}

// ObserveStore records a store heartbeat.
func (d *Driver) ObserveStore(req *flotillapb.StoreHeartbeatRequest) {
	now := d.cfg.Clock()
	d.mu.Lock()
	defer d.mu.Unlock()
	id := multiraft.NodeID(req.GetNodeId())
	if live, _, _ := d.storeLivenessLocked(id, now); !live {
		d.mu.gen++ // a store comes (back) to life
	}
	d.mu.stores[id] = storeObservation{at: now, stats: req.GetStats()}
}

// ObserveRange records a range leader's heartbeat (or the placement
// group's: range ID 1). A heartbeat older (by epoch, then term) than the
// one held is ignored, so a deposed leader's late report cannot hide the
// current one.
func (d *Driver) ObserveRange(req *flotillapb.RangeHeartbeatRequest) {
	id := multiraft.GroupID(req.GetDescriptor_().GetRangeId())
	d.mu.Lock()
	defer d.mu.Unlock()
	old, ok := d.mu.ranges[id]
	if id == GroupID {
		old, ok = d.mu.placement, d.mu.placement.hb != nil
	}
	if ok {
		oe, ne := old.hb.GetDescriptor_().GetEpoch(), req.GetDescriptor_().GetEpoch()
		if oe.Newer(ne) || (proto.Equal(oe, ne) && old.hb.GetTerm() > req.GetTerm()) {
			return
		}
	}
	if id != GroupID && (!ok || !proto.Equal(old.hb.GetDescriptor_().GetEpoch(), req.GetDescriptor_().GetEpoch())) {
		// A range over the same keys at a later version means this report
		// predates a split; one at an earlier version was split since.
		// (A report at the epoch already held changes no bounds: the
		// scan, over every range, is skipped.)
		desc := req.GetDescriptor_()
		for oid, o := range d.mu.ranges {
			od := o.hb.GetDescriptor_()
			if oid == id || !od.Overlaps(desc) {
				continue
			}
			if od.GetEpoch().GetVersion() >= desc.GetEpoch().GetVersion() {
				return
			}
			delete(d.mu.ranges, oid)
			d.mu.gen++
		}
	}
	if !ok || !proto.Equal(old.hb.GetDescriptor_(), req.GetDescriptor_()) || old.hb.GetLeaderReplicaId() != req.GetLeaderReplicaId() ||
		!slices.Equal(old.hb.GetPendingReplicas(), req.GetPendingReplicas()) {
		d.mu.gen++
	}
	obs := rangeObservation{at: d.cfg.Clock(), hb: proto.Clone(req).(*flotillapb.RangeHeartbeatRequest)}
	since := map[multiraft.ReplicaID]time.Time{}
	for _, p := range req.GetPendingReplicas() {
		rid := multiraft.ReplicaID(p)
		if t, ok := d.mu.pendingSince[id][rid]; ok {
			since[rid] = t
		} else {
			since[rid] = obs.at
		}
	}
	d.mu.pendingSince[id] = since
	if id == GroupID {
		d.mu.placement = obs
		return
	}
	d.mu.ranges[id] = obs
}

// storeLiveness returns whether a store is live and down, and the seconds
// since its last heartbeat (-1 if none since Reset).
func (d *Driver) storeLivenessLocked(id multiraft.NodeID, now time.Time) (live, down bool, age float64) {
	obs, ok := d.mu.stores[id]
	if !ok {
		// Nothing heard since this view began: not live, and down only
		// once the view is older than the down timeout.
		return false, now.Sub(d.mu.since) > d.cfg.StoreDownTimeout, -1
	}
	silent := now.Sub(obs.at)
	return silent <= d.cfg.LivenessWindow, silent > d.cfg.StoreDownTimeout, silent.Seconds()
}

// Stores returns every member store of meta with its liveness, latest
// statistics, and the replicas and leaders the ranges' latest reports put
// on it (the placement group not included), by node ID.
func (d *Driver) Stores(meta *flotillapb.ClusterMeta) []*flotillapb.StoreStatus {
	now := d.cfg.Clock()
	d.mu.Lock()
	defer d.mu.Unlock()
	cv, _ := d.viewLocked(meta, now, false)
	var out []*flotillapb.StoreStatus
	for _, n := range meta.GetNodes() {
		id := multiraft.NodeID(n.GetNodeId())
		live, _, age := d.storeLivenessLocked(id, now)
		node := proto.Clone(n).(*flotillapb.NodeDescriptor)
		node.JoinToken = ""
		st := &flotillapb.StoreStatus{Node: node, Live: live, SecondsSinceHeartbeat: age, Stats: d.mu.stores[id].stats}
		if v := cv.Stores[id]; v != nil {
			st.Replicas, st.Leaders = uint32(v.Ranges), uint32(v.Leaders)
		}
		out = append(out, st)
	}
	slices.SortFunc(out, func(a, b *flotillapb.StoreStatus) int {
		return cmp.Compare(a.GetNode().GetNodeId(), b.GetNode().GetNodeId())
	})
	return out
}

// Ranges returns every range: the newest descriptor among meta's and the
// latest heartbeat's, with the leader and statistics heartbeats reported,
// by start key.
func (d *Driver) Ranges(meta *flotillapb.ClusterMeta) []*flotillapb.RangeStatus {
	now := d.cfg.Clock()
	d.mu.Lock()
	defer d.mu.Unlock()
	byID := map[multiraft.GroupID]*flotillapb.RangeStatus{}
	for _, desc := range meta.GetRanges() {
		byID[multiraft.GroupID(desc.GetRangeId())] = &flotillapb.RangeStatus{Descriptor_: desc, SecondsSinceHeartbeat: -1}
	}
	for id, obs := range d.mu.ranges {
		rs := byID[id]
		if rs == nil || obs.hb.GetDescriptor_().GetEpoch().Newer(rs.GetDescriptor_().GetEpoch()) {
			rs = &flotillapb.RangeStatus{Descriptor_: obs.hb.GetDescriptor_()}
			byID[id] = rs
		}
		rs.Stats = obs.hb.GetStats()
		rs.ReadsPerSecond, rs.WritesPerSecond = obs.hb.GetReadsPerSecond(), obs.hb.GetWritesPerSecond()
		rs.SecondsSinceHeartbeat = now.Sub(obs.at).Seconds()
		for _, r := range rs.GetDescriptor_().GetReplicas() {
			if r.GetReplicaId() == obs.hb.GetLeaderReplicaId() {
				rs.Leader = r
			}
		}
	}
	descs := make([]*flotillapb.RangeDescriptor, 0, len(byID))
	for _, rs := range byID {
		descs = append(descs, rs.GetDescriptor_())
	}
	descs = DropOverlapped(descs)
	out := make([]*flotillapb.RangeStatus, 0, len(descs))
	for _, desc := range descs {
		out = append(out, byID[multiraft.GroupID(desc.GetRangeId())])
	}
	return out
}

// Lookup returns the range holding key, or with before the range holding
// the keys just below key (RangeDescriptor.ContainsKeyBefore), and its last
// reported leader.
func (d *Driver) Lookup(meta *flotillapb.ClusterMeta, key []byte, before bool) (*flotillapb.RangeStatus, bool) {
	for _, rs := range d.Ranges(meta) {
		desc := rs.GetDescriptor_()
		if before && desc.ContainsKeyBefore(key) || !before && desc.ContainsKey(key) {
			return rs, true
		}
	}
	return nil, false
}

// DeadStoreCheck reports what stands in the way of removing store as dead
// (remove-store), from one view of the cluster: warming, while this view
// is younger than the liveness window (it may not have heard from every
// store yet, so a live store may look dead); whether the store is live;
// and the groups among the ranges and the placement group that have a
// voter on it and too few voters on other live stores to change their
// membership (RangesWithoutQuorum).
func (d *Driver) DeadStoreCheck(meta *flotillapb.ClusterMeta, store uint64) (warming, live bool, lost []uint64) {
	now := d.cfg.Clock()
	d.mu.Lock()
	defer d.mu.Unlock()
	if now.Sub(d.mu.since) < d.cfg.LivenessWindow {
		return true, false, nil
	}
	cv, pg := d.viewLocked(meta, now, false)
	if s := cv.Stores[multiraft.NodeID(store)]; s != nil {
		live = s.Live
	}
	var descs []*flotillapb.RangeDescriptor
	if pg != nil {
		descs = append(descs, pg.Desc)
	}
	for _, r := range cv.Ranges {
		descs = append(descs, r.Desc)
	}
	lost = RangesWithoutQuorum(descs, store, func(s uint64) bool {
		v := cv.Stores[multiraft.NodeID(s)]
		return v != nil && v.Live
	})
	return false, live, lost
}
