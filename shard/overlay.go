// Copyright 2026 The Flotilla Authors. All rights reserved.

package shard

import (
	"bytes"
	"slices"

	"github.com/flotilladb/flotilla/engine"
)

// overlay is the view of a range's versioned user data during one Apply
// call. The batch multiraft hands to Apply is write-only, and one call may
// carry many commands whose later ops must see the writes of earlier ones (a
// compare after a put of the same key, even in another command), so the
// overlay records the newest version the call wrote of each key and answers
// reads from it first, falling back to the engine, which holds the state as
// of the previous Apply (committed by the host before this call).
//
// Every write goes through the overlay, which stages it in the batch too, so
// that the batch's effect equals the overlay's.
type overlay struct {
	r engine.Reader
	b *engine.Batch
	// points holds the newest version this call wrote of each key (puts and
	// tombstones).
	points map[string]engine.Version
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

func newOverlay(r engine.Reader, b *engine.Batch) *overlay {
	return &overlay{r: r, b: b, points: make(map[string]engine.Version)}
}

// get returns key's newest version as of the writes so far if the key
// exists (its newest version is not a tombstone). The value must not be
// modified.
func (o *overlay) get(key []byte) (engine.Version, bool, error) {
	if v, ok := o.points[string(key)]; ok {
		if v.Deleted {
			return engine.Version{}, false, nil
		}
		return v, true, nil
	}
	v, found, err := engine.MVCCGet(o.r, key, 0)
	if err != nil || !found || v.Deleted {
		return engine.Version{}, false, err
	}
	return v, true, nil
}

// put writes value as key's version at rev and returns the version it
// replaced, if the key existed. It keeps value.
func (o *overlay) put(key, value []byte, rev int64) (old engine.Version, existed bool, _ error) {
	old, existed, err := o.get(key)
	if err != nil {
		return engine.Version{}, false, err
	}
	v := engine.Version{Value: value, ModRevision: rev, CreateRevision: rev, Version: 1}
	if existed {
		v.CreateRevision, v.Version = old.CreateRevision, old.Version+1
	}
	if err := engine.MVCCPut(o.b, key, v); err != nil {
		return engine.Version{}, false, err
	}
	o.points[string(key)] = v
	return old, existed, nil
}

// delete writes a tombstone for key at rev if the key exists, and returns
// the version it deleted.
func (o *overlay) delete(key []byte, rev int64) (old engine.Version, existed bool, _ error) {
	old, existed, err := o.get(key)
	if err != nil || !existed {
		return engine.Version{}, false, err
	}
	v := engine.Version{ModRevision: rev, Deleted: true}
	if err := engine.MVCCPut(o.b, key, v); err != nil {
		return engine.Version{}, false, err
	}
	o.points[string(key)] = v
	return old, true, nil
}

// keyVersion is a key with one of its versions.
type keyVersion struct {
	key []byte
	v   engine.Version
}

// live returns the keys in span that exist as of the writes so far, in key
// order, with their newest versions.
func (o *overlay) live(span userSpan) ([]keyVersion, error) {
	if span.empty() {
		return nil, nil
	}
	var out []keyVersion
	err := engine.MVCCScan(o.r, span.start, span.end, 0, engine.MVCCScanOptions{}, func(key []byte, v engine.Version) error {
		if _, ok := o.points[string(key)]; ok {
			return nil // the overlay decides, below
		}
		v.Value = bytes.Clone(v.Value)
		out = append(out, keyVersion{key: bytes.Clone(key), v: v})
		return nil
	})
	if err != nil {
		return nil, err
	}
	n := len(out)
	for k, v := range o.points {
		if !v.Deleted && span.contains([]byte(k)) {
			out = append(out, keyVersion{key: []byte(k), v: v})
		}
	}
	if len(out) > n {
		slices.SortFunc(out, func(a, b keyVersion) int { return bytes.Compare(a.key, b.key) })
	}
	return out, nil
}

// stats returns the number of keys in span as of the writes so far, and
// their key and value bytes.
func (o *overlay) stats(span userSpan) (keys, keyBytes, valueBytes int64, err error) {
	kvs, err := o.live(span)
	if err != nil {
		return 0, 0, 0, err
	}
	for _, kv := range kvs {
		keys, keyBytes, valueBytes = keys+1, keyBytes+int64(len(kv.key)), valueBytes+int64(len(kv.v.Value))
	}
	return keys, keyBytes, valueBytes, nil
}
