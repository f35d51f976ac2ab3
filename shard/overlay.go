// Copyright 2026 The Flotilla Authors. All rights reserved.

package shard

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/flotilladb/flotilla/engine"
	"github.com/flotilladb/flotilla/internal/invariants"
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
	// versions answers what a put or delete needs to know of a key's
	// newest version, before the engine is asked; every write updates it.
	versions *versionCache
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

func newOverlay(r engine.Reader, b *engine.Batch, versions *versionCache) *overlay {
	return &overlay{r: r, b: b, versions: versions, points: make(map[string]engine.Version)}
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

// newest returns what a write needs of key's newest version as of the
// writes so far: from the overlay, the version cache, or the engine (whose
// answer the cache then keeps).
func (o *overlay) newest(key []byte) (cachedVersion, error) {
	if v, ok := o.points[string(key)]; ok {
		return cachedOf(v, true), nil
	}
	if v, ok := o.versions.get(key); ok {
		if invariants.Enabled {
			e, found, err := engine.MVCCGet(o.r, key, 0)
			if err == nil && cachedOf(e, found) != v {
				panic(fmt.Sprintf("shard: the version cache has %+v for %q, the engine %+v", v, key, cachedOf(e, found)))
			}
		}
		return v, nil
	}
	v, found, err := engine.MVCCGet(o.r, key, 0)
	if err != nil {
		return cachedVersion{}, err
	}
	c := cachedOf(v, found)
	o.versions.put(key, c)
	return c, nil
}

// write stages v as key's newest version.
func (o *overlay) write(key []byte, v engine.Version) error {
	if err := engine.MVCCPut(o.b, key, v); err != nil {
		return err
	}
	o.points[string(key)] = v
	o.versions.put(key, cachedOf(v, true))
	return nil
}

// put writes value as key's version at rev and returns the length of the
// value it replaced and whether the key existed. It keeps value.
func (o *overlay) put(key, value []byte, rev int64) (oldLen int, existed bool, _ error) {
	old, err := o.newest(key)
	if err != nil {
		return 0, false, err
	}
	v := engine.Version{Value: value, ModRevision: rev, CreateRevision: rev, Version: 1}
	if !old.absent {
		v.CreateRevision, v.Version = old.createRev, old.version+1
	}
	if err := o.write(key, v); err != nil {
		return 0, false, err
	}
	return old.valueLen, !old.absent, nil
}

// delete writes a tombstone for key at rev if the key exists, and returns
// the length of the value it deleted.
func (o *overlay) delete(key []byte, rev int64) (oldLen int, existed bool, _ error) {
	old, err := o.newest(key)
	if err != nil || old.absent {
		return 0, false, err
	}
	if err := o.write(key, engine.Version{ModRevision: rev, Deleted: true}); err != nil {
		return 0, false, err
	}
	return old.valueLen, true, nil
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
