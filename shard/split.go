// Copyright 2026 The Flotilla Authors. All rights reserved.

package shard

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/flotilladb/flotilla/engine"
	"github.com/flotilladb/flotilla/multiraft"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"google.golang.org/protobuf/proto"
)

// Split proposes splitting range id, which this store must lead, as sc
// says, if the range is still at version (the version the caller chose the
// split key and allocated the IDs at). It returns the descriptors of the
// left and right ranges after the split.
func (s *Store) Split(ctx context.Context, id multiraft.GroupID, version uint64, sc *flotillapb.SplitCommand) ([]*flotillapb.RangeDescriptor, error) {
	host := s.raftHost()
	if host == nil {
		return nil, unavailable(writeOutcome, "the store is not running yet")
	}
	r, desc, e := s.resolve(&flotillapb.RequestHeader{RangeId: uint64(id), Version: version}, nil, writeOutcome)
	if e != nil {
		return nil, e
	}
	if _, e := splitDescriptors(desc, sc, writeOutcome); e != nil {
		return nil, e
	}
	st, ok := host.Status(r.id)
	if !ok {
		return nil, rangeNotFound(writeOutcome, r.id, "range %d has no replica on this store", r.id)
	}
	if st.Leader != st.Replica {
		return nil, notLeader(writeOutcome, r.id, st.Leader)
	}
	cmd, err := proto.Marshal(&flotillapb.KVCommand{RangeId: uint64(r.id), Version: version, Split: sc})
	if err != nil {
		return nil, invalidArgument(writeOutcome, "split", "%v", err)
	}
	kv, _, e := proposeCommand(ctx, host, r.id, cmd)
	if e != nil {
		return nil, e
	}
	return kv.GetSplitDescriptors(), nil
}

// SizeSplitKey returns the key that splits range id's data in two halves
// by size (keys and values), read from this store's replica; nil if the
// range holds too little to split (one key, or none).
func (s *Store) SizeSplitKey(id multiraft.GroupID) ([]byte, error) {
	r, ok := s.Replica(id)
	if !ok || !r.initialized() {
		return nil, rangeNotFound(readOutcome, id, "range %d has no replica on this store", id)
	}
	desc := r.descriptor()
	st := r.Stats()
	half := (st.KeyBytes + st.ValueBytes) / 2
	var key []byte
	var sum int64
	errStop := errors.New("stop")
	err := engine.MVCCScan(s.eng, desc.GetStartKey(), desc.GetEndKey(), 0, engine.MVCCScanOptions{}, func(uk []byte, v engine.Version) error {
		if sum >= half && sum > 0 && !bytes.Equal(uk, desc.GetStartKey()) {
			key = bytes.Clone(uk)
			return errStop
		}
		sum += int64(len(uk) + len(v.Value))
		return nil
	})
	if err != nil && !errors.Is(err, errStop) {
		return nil, err
	}
	return key, nil
}

// LoadSplitKey returns the key that splits the requests served by range
// id's replica here in two halves, by a sample of the keys they touched
// lately; nil if there are too few samples or every sample is one key.
func (s *Store) LoadSplitKey(id multiraft.GroupID) []byte {
	r, ok := s.Replica(id)
	if !ok || !r.initialized() {
		return nil
	}
	span := spanOf(r.descriptor())
	// Only the samples inside the range count: a split resets the sample,
	// but requests routed by the old bounds may still have added some.
	keys := slices.DeleteFunc(r.load.keys(time.Now()), func(k []byte) bool { return !span.contains(k) })
	if len(keys) < minLoadSamples {
		return nil
	}
	return medianKey(keys, span)
}

// medianKey returns the median of keys (all inside span), or the nearest
// key above it that can start a range (not span's start); nil if none.
func medianKey(keys [][]byte, span userSpan) []byte {
	slices.SortFunc(keys, bytes.Compare)
	for _, k := range keys[len(keys)/2:] {
		if !bytes.Equal(k, span.start) {
			return bytes.Clone(k)
		}
	}
	return nil
}

// resetLoad forgets the replica's load: the rates and the key sample
// describe a span the range no longer has. Without it, a range just split
// by load would still report its old load for the rate's window, and the
// old sample, whose keys lie mostly beyond its new end, would pull the next
// split key towards that end: in a run, one range was split 58 times in a
// row, each time at a key nearer its end.
func (r *Replica) resetLoad() {
	r.reads.reset()
	r.writes.reset()
	r.load.reset()
}

// Load sampling: each replica keeps a uniform sample (reservoir) of the
// keys of the requests it served in the current and the previous window,
// from which LoadSplitKey picks the median.
const (
	loadSampleSize   = 256
	minLoadSamples   = 32
	loadSampleWindow = 10 * time.Second
)

type keySampler struct {
	mu struct {
		sync.Mutex
		start     time.Time
		seen      int
		cur, prev [][]byte
	}
}

// sample records the key of one request.
func (ks *keySampler) sample(now time.Time, key []byte) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	ks.rollLocked(now)
	ks.mu.seen++
	if len(ks.mu.cur) < loadSampleSize {
		ks.mu.cur = append(ks.mu.cur, bytes.Clone(key))
		return
	}
	if i := rand.IntN(ks.mu.seen); i < loadSampleSize {
		ks.mu.cur[i] = bytes.Clone(key)
	}
}

func (ks *keySampler) rollLocked(now time.Time) {
	if now.Sub(ks.mu.start) < loadSampleWindow {
		return
	}
	if now.Sub(ks.mu.start) < 2*loadSampleWindow {
		ks.mu.prev = ks.mu.cur
	} else {
		ks.mu.prev = nil
	}
	ks.mu.cur, ks.mu.seen, ks.mu.start = nil, 0, now
}

// reset forgets every sample.
func (ks *keySampler) reset() {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	ks.mu.cur, ks.mu.prev, ks.mu.seen, ks.mu.start = nil, nil, 0, time.Time{}
}

// keys returns the samples of the previous window and the current one.
func (ks *keySampler) keys(now time.Time) [][]byte {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	ks.rollLocked(now)
	return append(slices.Clone(ks.mu.prev), ks.mu.cur...)
}
