// Copyright 2026 The Flotilla Authors. All rights reserved.

package shard

import (
	"bytes"
	"errors"

	"github.com/flotilladb/flotilla/engine"
)

// overlay is the view of a range's user data during one Apply call. The batch
// multiraft hands to Apply is write-only, and one call may carry many
// commands whose later ops must see the writes of earlier ones (a
// compare-and-swap after a put of the same key, even in another command), so
// the overlay records the call's writes and answers reads from them first,
// falling back to the engine, which holds the state as of the previous Apply
// (committed by the host before this call).
//
// The overlay only models the writes; the caller also writes them into the
// batch, in the same order, so that the batch's effect equals the overlay's.
//
// Invariant: no key of points lies in a span that was deleted after the key
// was written (deleteRange drops them), so a point entry always wins over the
// deleted spans.
type overlay struct {
	r engine.Reader
	// points holds the call's point writes by user key: a value, or a
	// tombstone (deleted).
	points map[string]pointWrite
	// deleted holds the user-key spans removed by delete-ranges of this
	// call; keys written after a delete-range are in points.
	deleted []userSpan
}

type pointWrite struct {
	value     []byte
	tombstone bool
}

// userSpan is [start, end) of user keys; an empty end is the end of the
// keyspace.
type userSpan struct {
	start, end []byte
}

func (s userSpan) contains(key []byte) bool {
	return bytes.Compare(key, s.start) >= 0 && (len(s.end) == 0 || bytes.Compare(key, s.end) < 0)
}

// empty reports whether the span holds no key.
func (s userSpan) empty() bool {
	return len(s.end) > 0 && bytes.Compare(s.start, s.end) >= 0
}

func newOverlay(r engine.Reader) *overlay {
	return &overlay{r: r, points: make(map[string]pointWrite)}
}

// get returns key's value as of the writes so far. The value must not be
// modified.
func (o *overlay) get(key []byte) (value []byte, found bool, err error) {
	if p, ok := o.points[string(key)]; ok {
		return p.value, !p.tombstone, nil
	}
	if o.inDeletedSpan(key) {
		return nil, false, nil
	}
	ek, err := engine.UserKey(key)
	if err != nil {
		return nil, false, err
	}
	v, err := o.r.Get(ek)
	if errors.Is(err, engine.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	return v, true, nil
}

func (o *overlay) inDeletedSpan(key []byte) bool {
	for _, s := range o.deleted {
		if s.contains(key) {
			return true
		}
	}
	return false
}

// set records a put. It keeps value.
func (o *overlay) set(key, value []byte) {
	o.points[string(key)] = pointWrite{value: value}
}

// delete records a point delete.
func (o *overlay) delete(key []byte) {
	o.points[string(key)] = pointWrite{tombstone: true}
}

// deleteRange records the deletion of every key in span and returns what it
// removed: the number of keys present and their key and value bytes. Keys
// present both in the engine and in the overlay are counted once, as the
// overlay has them.
func (o *overlay) deleteRange(span userSpan) (keys, keyBytes, valueBytes int64, err error) {
	if keys, keyBytes, valueBytes, err = o.stats(span); err != nil || span.empty() {
		return keys, keyBytes, valueBytes, err
	}
	for k := range o.points {
		if span.contains([]byte(k)) {
			delete(o.points, k)
		}
	}
	o.deleted = append(o.deleted, userSpan{start: span.start, end: span.end})
	return keys, keyBytes, valueBytes, nil
}

// stats returns the number of keys in span as of the writes so far, and
// their key and value bytes.
func (o *overlay) stats(span userSpan) (keys, keyBytes, valueBytes int64, err error) {
	if span.empty() {
		return 0, 0, 0, nil
	}
	es, err := engine.UserSpan(span.start, span.end)
	if err != nil {
		return 0, 0, 0, err
	}
	it, err := o.r.NewIter(es.Start, es.End)
	if err != nil {
		return 0, 0, 0, err
	}
	for valid := it.First(); valid; valid = it.Next() {
		uk, err := engine.DecodeUserKey(it.Key())
		if err != nil {
			_ = it.Close()
			return 0, 0, 0, err
		}
		if _, ok := o.points[string(uk)]; ok || o.inDeletedSpan(uk) {
			continue // the overlay decides, below
		}
		v, err := it.Value()
		if err != nil {
			_ = it.Close()
			return 0, 0, 0, err
		}
		keys, keyBytes, valueBytes = keys+1, keyBytes+int64(len(uk)), valueBytes+int64(len(v))
	}
	if err := it.Close(); err != nil {
		return 0, 0, 0, err
	}
	for k, p := range o.points {
		if span.contains([]byte(k)) && !p.tombstone {
			keys, keyBytes, valueBytes = keys+1, keyBytes+int64(len(k)), valueBytes+int64(len(p.value))
		}
	}
	return keys, keyBytes, valueBytes, nil
}
