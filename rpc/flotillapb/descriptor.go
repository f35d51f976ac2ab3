// Copyright 2026 The Flotilla Authors. All rights reserved.

package flotillapb

import (
	"bytes"

	"google.golang.org/protobuf/proto"
)

// Descriptor helpers every layer shares: the router's cache, the replicas'
// checks, the placement driver and the gateway all ask the same questions
// of a RangeDescriptor. A range holds the keys [start_key, end_key); an
// empty end_key is +∞.

// ContainsKey reports whether d's range holds key.
func (d *RangeDescriptor) ContainsKey(key []byte) bool {
	if bytes.Compare(key, d.GetStartKey()) < 0 {
		return false
	}
	end := d.GetEndKey()
	return len(end) == 0 || bytes.Compare(key, end) < 0
}

// ContainsKeyBefore reports whether d's range holds the keys just below key
// (key exclusive): start < key <= end. An empty key stands for +∞, so only
// the last range holds the keys below it. A reverse scan's part that ends
// at key is routed this way.
func (d *RangeDescriptor) ContainsKeyBefore(key []byte) bool {
	end := d.GetEndKey()
	if len(key) == 0 {
		return len(end) == 0
	}
	if bytes.Compare(d.GetStartKey(), key) >= 0 {
		return false
	}
	return len(end) == 0 || bytes.Compare(key, end) <= 0
}

// ContainsSpan reports whether d's range holds every key of [start, end)
// (an empty end is the end of the keyspace), as a replica checks a scan or
// delete-range: an empty span at the range's end key counts as inside.
func (d *RangeDescriptor) ContainsSpan(start, end []byte) bool {
	if bytes.Compare(start, d.GetStartKey()) < 0 {
		return false
	}
	re := d.GetEndKey()
	if len(re) == 0 {
		return true
	}
	return len(end) > 0 && bytes.Compare(end, re) <= 0 && bytes.Compare(start, re) <= 0
}

// ContainsOps reports whether d's range holds every key of ops (a
// delete-range's whole span).
func (d *RangeDescriptor) ContainsOps(ops []*Op) bool {
	for _, op := range ops {
		if dr := op.GetDeleteRange(); dr != nil {
			if !d.ContainsSpan(dr.GetStartKey(), dr.GetEndKey()) {
				return false
			}
		} else if !d.ContainsKey(op.RouteKey()) {
			return false
		}
	}
	return true
}

// Overlaps reports whether the ranges of d and o share a key.
func (d *RangeDescriptor) Overlaps(o *RangeDescriptor) bool {
	// d starts before o ends, and o starts before d ends.
	dEnd, oEnd := d.GetEndKey(), o.GetEndKey()
	return (len(oEnd) == 0 || bytes.Compare(d.GetStartKey(), oEnd) < 0) &&
		(len(dEnd) == 0 || bytes.Compare(o.GetStartKey(), dEnd) < 0)
}

// ReplicaOnStore returns d's replica on store, or nil.
func (d *RangeDescriptor) ReplicaOnStore(store StoreID) *ReplicaDescriptor {
	for _, r := range d.GetReplicas() {
		if StoreID(r.GetStoreId()) == store {
			return r
		}
	}
	return nil
}

// Replica returns d's replica id, or nil.
func (d *RangeDescriptor) Replica(id ReplicaID) *ReplicaDescriptor {
	for _, r := range d.GetReplicas() {
		if ReplicaID(r.GetReplicaId()) == id {
			return r
		}
	}
	return nil
}

// Clone returns a deep copy of d (nil for nil): descriptors are shared
// read-only between a replica, the router's cache and responses, so whoever
// keeps or changes one takes a copy.
func (d *RangeDescriptor) Clone() *RangeDescriptor {
	if d == nil {
		return nil
	}
	return proto.Clone(d).(*RangeDescriptor)
}

// Clone returns a deep copy of r (nil for nil).
func (r *ReplicaDescriptor) Clone() *ReplicaDescriptor {
	if r == nil {
		return nil
	}
	return proto.Clone(r).(*ReplicaDescriptor)
}

// Newer reports whether epoch e is newer than o: a later version (split or
// merge), or the same version and a later configuration. It orders any two
// epochs; the placement driver keeps the newest descriptor by it.
func (e *RangeEpoch) Newer(o *RangeEpoch) bool {
	if e.GetVersion() != o.GetVersion() {
		return e.GetVersion() > o.GetVersion()
	}
	return e.GetConfVer() > o.GetConfVer()
}

// Dominates reports whether epoch e is strictly newer than o in the
// stricter sense: older in neither component and newer in one. Each change
// of a range bumps one component, so two epochs of one range are always
// ordered this way; the router's cache never replaces an entry by one it
// dominates (an older descriptor of the range).
func (e *RangeEpoch) Dominates(o *RangeEpoch) bool {
	if e.GetVersion() < o.GetVersion() || e.GetConfVer() < o.GetConfVer() {
		return false
	}
	return e.GetVersion() > o.GetVersion() || e.GetConfVer() > o.GetConfVer()
}
