// Copyright 2026 The Flotilla Authors. All rights reserved.

package engine

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"

	"github.com/flotilladb/flotilla/rpc/flotillapb"
)

// This file owns every byte of Flotilla's key layout in the one Pebble
// instance of a store (see DESIGN.md, "Storage layout"). No other file may
// build or parse engine keys by hand.
//
//	\x01 s <suffix>                        store-local: store ident, cluster id
//	\x01 r <rangeID BE8> r <suffix>        replicated per-range state
//	\x01 r <rangeID BE8> u <suffix>        unreplicated per-range state
//	\x01 r <rangeID BE8> u l <index BE8>   raft log entries
//	\x02 <user key>                        user data
//
// Invariants the layout guarantees, and tests check:
//   - all keys of one range ID (replicated, unreplicated and log) share the
//     prefix \x01 r <rangeID BE8> and so sort together, in range ID order;
//   - raft log entries of a range sort by index;
//   - all local (\x01) keys sort before all user (\x02) keys, and user keys
//     sort in the order of the user's bytes.

// RangeID identifies a range (flotillapb.RangeID). Range IDs are never
// reused; 0 is invalid.
type RangeID = flotillapb.RangeID

// MaxUserKeySize is the largest user key Flotilla accepts, in bytes
// (flotillapb.MaxKeySize).
const MaxUserKeySize = flotillapb.MaxKeySize

const (
	localPrefixByte = '\x01'
	userPrefixByte  = '\x02'

	storeLocalInfix     = 's'
	rangeLocalInfix     = 'r'
	replicatedInfix     = 'r'
	unreplicatedInfix   = 'u'
	raftLogSuffixByte   = 'l'
	rangeIDLen          = 8
	logIndexLen         = 8
	rangePrefixLen      = 2 + rangeIDLen          // \x01 r <id>
	rangeStatePrefixLen = rangePrefixLen + 1      // \x01 r <id> {r|u}
	raftLogPrefixLen    = rangeStatePrefixLen + 1 // \x01 r <id> u l
	raftLogKeyLen       = raftLogPrefixLen + logIndexLen
)

// Suffixes of store-local keys.
const (
	storeIdentSuffix = "ident"
	clusterIDSuffix  = "clusterid"
	joinTokenSuffix  = "jointoken"
	nodesSuffix      = "nodes"
)

// Suffixes of per-range keys. A suffix is one byte; replicated and
// unreplicated suffixes live in separate spaces. The unreplicated suffix 'l'
// is reserved for the raft log.
const (
	// Replicated.
	appliedStateSuffix = 'a' // applied index (and what the state machine keeps with it)
	confStateSuffix    = 'c' // raft ConfState as of the applied index
	descriptorSuffix   = 'd' // RangeDescriptor
	leaseSuffix        = 'e' // leader lease
	statsSuffix        = 'm' // RangeStats: the range's key and byte counts
	placementSuffix    = 'p' // the placement group's state (ClusterMeta)

	// Unreplicated.
	hardStateSuffix      = 'h' // raft HardState
	replicaIDSuffix      = 'i' // this store's replica ID in the range
	snapshotMetaSuffix   = 's' // raft SnapshotMetadata of the newest snapshot
	truncatedStateSuffix = 't' // index and term of the last truncated entry
	tombstoneSuffix      = 'z' // replica removed; stale messages must not revive it
)

// ErrMalformedKey is returned (wrapped) by every decoder in this file when its
// input is not a key of the expected kind.
var ErrMalformedKey = errors.New("engine: malformed key")

// ErrKeyTooLarge is returned (wrapped) for a user key longer than
// MaxUserKeySize.
var ErrKeyTooLarge = errors.New("engine: key too large")

// ErrEmptyKey is returned (wrapped) for an empty user key where one is not
// allowed.
var ErrEmptyKey = errors.New("engine: empty key")

// ---- Store-local keys ----------------------------------------------------

func storeLocalKey(suffix string) []byte {
	k := make([]byte, 0, 2+len(suffix))
	k = append(k, localPrefixByte, storeLocalInfix)
	return append(k, suffix...)
}

// StoreIdentKey holds the store's identity (cluster ID, node ID, store ID).
func StoreIdentKey() []byte { return storeLocalKey(storeIdentSuffix) }

// ClusterIDKey holds the ID of the cluster the store belongs to.
func ClusterIDKey() []byte { return storeLocalKey(clusterIDSuffix) }

// StoreJoinTokenKey holds the token the store joins its cluster with, so
// that a join retried after a restart gets the same node ID.
func StoreJoinTokenKey() []byte { return storeLocalKey(joinTokenSuffix) }

// StoreNodesKey holds the cluster's nodes as the store last learned them.
func StoreNodesKey() []byte { return storeLocalKey(nodesSuffix) }

// ---- Per-range keys ------------------------------------------------------

// RangePrefix returns \x01 r <rangeID>: the prefix of every local key of
// rangeID. RangeSpan(rangeID) is the span of all of them.
func RangePrefix(rangeID RangeID) []byte {
	k := make([]byte, rangePrefixLen, raftLogKeyLen)
	k[0], k[1] = localPrefixByte, rangeLocalInfix
	binary.BigEndian.PutUint64(k[2:], uint64(rangeID))
	return k
}

// RangeSpan is the span of all local keys (replicated, unreplicated and raft
// log) of rangeID.
func RangeSpan(rangeID RangeID) Span {
	p := RangePrefix(rangeID)
	return Span{Start: p, End: prefixEnd(p)}
}

// allRangesSpan is the span of every range's local keys.
var allRangesSpan = Span{Start: []byte{localPrefixByte, rangeLocalInfix}, End: []byte{localPrefixByte, rangeLocalInfix + 1}}

func rangeStatePrefix(rangeID RangeID, infix byte) []byte {
	return append(RangePrefix(rangeID), infix)
}

// RangeReplicatedSpan is the span of rangeID's replicated state: what a
// snapshot carries besides user data.
func RangeReplicatedSpan(rangeID RangeID) Span {
	p := rangeStatePrefix(rangeID, replicatedInfix)
	return Span{Start: p, End: prefixEnd(p)}
}

// RangeUnreplicatedSpan is the span of rangeID's unreplicated state,
// including its raft log.
func RangeUnreplicatedSpan(rangeID RangeID) Span {
	p := rangeStatePrefix(rangeID, unreplicatedInfix)
	return Span{Start: p, End: prefixEnd(p)}
}

func rangeStateKey(rangeID RangeID, infix, suffix byte) []byte {
	return append(rangeStatePrefix(rangeID, infix), suffix)
}

// RangeAppliedStateKey holds the range's applied index and the state written
// with it.
func RangeAppliedStateKey(rangeID RangeID) []byte {
	return rangeStateKey(rangeID, replicatedInfix, appliedStateSuffix)
}

// RangeConfStateKey holds the raft ConfState as of the applied index.
func RangeConfStateKey(rangeID RangeID) []byte {
	return rangeStateKey(rangeID, replicatedInfix, confStateSuffix)
}

// RangeDescriptorKey holds the range's descriptor.
func RangeDescriptorKey(rangeID RangeID) []byte {
	return rangeStateKey(rangeID, replicatedInfix, descriptorSuffix)
}

// RangeLeaseKey holds the range's leader lease.
func RangeLeaseKey(rangeID RangeID) []byte {
	return rangeStateKey(rangeID, replicatedInfix, leaseSuffix)
}

// RangeStatsKey holds the range's replicated statistics (keys and bytes).
func RangeStatsKey(rangeID RangeID) []byte {
	return rangeStateKey(rangeID, replicatedInfix, statsSuffix)
}

// PlacementStateKey holds the placement group's replicated state; rangeID is
// the placement group's ID.
func PlacementStateKey(rangeID RangeID) []byte {
	return rangeStateKey(rangeID, replicatedInfix, placementSuffix)
}

// RaftHardStateKey holds the replica's raft HardState.
func RaftHardStateKey(rangeID RangeID) []byte {
	return rangeStateKey(rangeID, unreplicatedInfix, hardStateSuffix)
}

// RaftReplicaIDKey holds this store's replica ID in the range.
func RaftReplicaIDKey(rangeID RangeID) []byte {
	return rangeStateKey(rangeID, unreplicatedInfix, replicaIDSuffix)
}

// RaftSnapshotMetaKey holds the metadata of the replica's newest raft
// snapshot.
func RaftSnapshotMetaKey(rangeID RangeID) []byte {
	return rangeStateKey(rangeID, unreplicatedInfix, snapshotMetaSuffix)
}

// RaftTruncatedStateKey holds the index and term of the last entry removed
// from the front of the raft log.
func RaftTruncatedStateKey(rangeID RangeID) []byte {
	return rangeStateKey(rangeID, unreplicatedInfix, truncatedStateSuffix)
}

// RangeTombstoneKey marks a replica that was removed from the store.
func RangeTombstoneKey(rangeID RangeID) []byte {
	return rangeStateKey(rangeID, unreplicatedInfix, tombstoneSuffix)
}

// RaftLogPrefix is the prefix of every raft log entry key of rangeID.
func RaftLogPrefix(rangeID RangeID) []byte {
	return append(rangeStatePrefix(rangeID, unreplicatedInfix), raftLogSuffixByte)
}

// RaftLogKey is the key of rangeID's raft log entry at index.
func RaftLogKey(rangeID RangeID, index uint64) []byte {
	return AppendRaftLogKey(make([]byte, 0, raftLogKeyLen), rangeID, index)
}

// AppendRaftLogKey appends RaftLogKey(rangeID, index) to dst and returns the
// result; use it to build keys without allocating.
func AppendRaftLogKey(dst []byte, rangeID RangeID, index uint64) []byte {
	dst = append(dst, localPrefixByte, rangeLocalInfix)
	dst = binary.BigEndian.AppendUint64(dst, uint64(rangeID))
	dst = append(dst, unreplicatedInfix, raftLogSuffixByte)
	return binary.BigEndian.AppendUint64(dst, index)
}

// RaftLogSpan is the span of rangeID's raft log entries with index in
// [lo, hi). hi == 0 means no upper bound.
func RaftLogSpan(rangeID RangeID, lo, hi uint64) Span {
	if hi == 0 {
		return Span{Start: RaftLogKey(rangeID, lo), End: prefixEnd(RaftLogPrefix(rangeID))}
	}
	return Span{Start: RaftLogKey(rangeID, lo), End: RaftLogKey(rangeID, hi)}
}

// DecodeRaftLogKey returns the range ID and index of a raft log key.
func DecodeRaftLogKey(key []byte) (RangeID, uint64, error) {
	if len(key) != raftLogKeyLen || key[0] != localPrefixByte || key[1] != rangeLocalInfix ||
		key[rangePrefixLen] != unreplicatedInfix || key[rangeStatePrefixLen] != raftLogSuffixByte {
		return 0, 0, fmt.Errorf("%w: not a raft log key: %q", ErrMalformedKey, key)
	}
	rangeID := RangeID(binary.BigEndian.Uint64(key[2:rangePrefixLen]))
	return rangeID, binary.BigEndian.Uint64(key[raftLogPrefixLen:]), nil
}

// ---- User keys -----------------------------------------------------------

// ValidateUserKey reports whether key may be stored: non-empty and at most
// MaxUserKeySize bytes.
func ValidateUserKey(key []byte) error {
	if len(key) == 0 {
		return ErrEmptyKey
	}
	if len(key) > MaxUserKeySize {
		return fmt.Errorf("%w: %d bytes, the limit is %d", ErrKeyTooLarge, len(key), MaxUserKeySize)
	}
	return nil
}

// UserKey returns the engine key of a user key, or an error if the user key
// is not valid (see ValidateUserKey).
func UserKey(key []byte) ([]byte, error) {
	if err := ValidateUserKey(key); err != nil {
		return nil, err
	}
	return appendUserKey(make([]byte, 0, 1+len(key)), key), nil
}

func appendUserKey(dst, key []byte) []byte {
	return append(append(dst, userPrefixByte), key...)
}

// DecodeUserKey returns the user key inside an engine key. The result aliases
// engineKey.
func DecodeUserKey(engineKey []byte) ([]byte, error) {
	if len(engineKey) < 2 || engineKey[0] != userPrefixByte {
		return nil, fmt.Errorf("%w: not a user key: %q", ErrMalformedKey, engineKey)
	}
	if len(engineKey)-1 > MaxUserKeySize {
		return nil, fmt.Errorf("%w: user key of %d bytes", ErrMalformedKey, len(engineKey)-1)
	}
	return engineKey[1:], nil
}

// UserSpan returns the engine span of the user keys in [start, end). An empty
// start means the first user key, an empty end the end of the user keyspace,
// as in a RangeDescriptor. It is an error for a bound to exceed
// MaxUserKeySize or for start to be at or after a non-empty end.
func UserSpan(start, end []byte) (Span, error) {
	if len(start) > MaxUserKeySize || len(end) > MaxUserKeySize {
		return Span{}, fmt.Errorf("%w: span bound longer than %d bytes", ErrKeyTooLarge, MaxUserKeySize)
	}
	if len(end) > 0 && bytes.Compare(start, end) >= 0 {
		return Span{}, fmt.Errorf("engine: empty or inverted user span [%q, %q)", start, end)
	}
	s := Span{Start: appendUserKey(make([]byte, 0, 1+len(start)), start)}
	if len(end) == 0 {
		s.End = []byte{userPrefixByte + 1}
	} else {
		s.End = appendUserKey(make([]byte, 0, 1+len(end)), end)
	}
	return s, nil
}

// ---- Spans ---------------------------------------------------------------

// Span is a half-open interval [Start, End) of engine keys.
type Span struct {
	Start, End []byte
}

// Contains reports whether key lies in the span.
func (s Span) Contains(key []byte) bool {
	return bytes.Compare(key, s.Start) >= 0 && bytes.Compare(key, s.End) < 0
}

// Valid reports whether the span is non-empty.
func (s Span) Valid() bool { return bytes.Compare(s.Start, s.End) < 0 }

func (s Span) String() string { return "[" + PrettyKey(s.Start) + ", " + PrettyKey(s.End) + ")" }

// prefixEnd returns the smallest key greater than every key with the given
// prefix. The local prefixes passed here always contain a byte below 0xff
// (the leading \x01), so an end always exists.
func prefixEnd(prefix []byte) []byte {
	end := append([]byte(nil), prefix...)
	for i := len(end) - 1; i >= 0; i-- {
		end[i]++
		if end[i] != 0 {
			return end[:i+1]
		}
	}
	panic("engine: prefixEnd of an all-0xff prefix") // unreachable for our prefixes
}

// ---- Decoding and printing -----------------------------------------------

// KeyKind says which part of the layout a key belongs to.
type KeyKind int

// Key kinds.
const (
	KindStoreLocal KeyKind = iota + 1
	KindRangeReplicated
	KindRangeUnreplicated
	KindRaftLog
	KindUser
)

// DecodedKey is an engine key taken apart by DecodeKey. Byte slices alias the
// decoded key.
type DecodedKey struct {
	Kind    KeyKind
	RangeID RangeID // for range-local kinds
	Suffix  []byte  // store-local, replicated and unreplicated kinds
	Index   uint64  // KindRaftLog
	UserKey []byte  // KindUser
}

// DecodeKey takes any engine key apart, or returns an error wrapping
// ErrMalformedKey. It never panics.
func DecodeKey(key []byte) (DecodedKey, error) {
	if len(key) == 0 {
		return DecodedKey{}, fmt.Errorf("%w: empty", ErrMalformedKey)
	}
	switch key[0] {
	case userPrefixByte:
		uk, err := DecodeUserKey(key)
		if err != nil {
			return DecodedKey{}, err
		}
		return DecodedKey{Kind: KindUser, UserKey: uk}, nil
	case localPrefixByte:
	default:
		return DecodedKey{}, fmt.Errorf("%w: unknown prefix %#x", ErrMalformedKey, key[0])
	}
	if len(key) < 3 {
		return DecodedKey{}, fmt.Errorf("%w: local key too short: %q", ErrMalformedKey, key)
	}
	switch key[1] {
	case storeLocalInfix:
		return DecodedKey{Kind: KindStoreLocal, Suffix: key[2:]}, nil
	case rangeLocalInfix:
	default:
		return DecodedKey{}, fmt.Errorf("%w: unknown local infix %q", ErrMalformedKey, key[1])
	}
	if len(key) < rangeStatePrefixLen+1 {
		return DecodedKey{}, fmt.Errorf("%w: range-local key too short: %q", ErrMalformedKey, key)
	}
	rangeID := RangeID(binary.BigEndian.Uint64(key[2:rangePrefixLen]))
	suffix := key[rangeStatePrefixLen:]
	switch key[rangePrefixLen] {
	case replicatedInfix:
		if len(suffix) != 1 {
			return DecodedKey{}, fmt.Errorf("%w: bad replicated suffix %q", ErrMalformedKey, suffix)
		}
		return DecodedKey{Kind: KindRangeReplicated, RangeID: rangeID, Suffix: suffix}, nil
	case unreplicatedInfix:
		if suffix[0] == raftLogSuffixByte {
			_, index, err := DecodeRaftLogKey(key)
			if err != nil {
				return DecodedKey{}, err
			}
			return DecodedKey{Kind: KindRaftLog, RangeID: rangeID, Index: index}, nil
		}
		if len(suffix) != 1 {
			return DecodedKey{}, fmt.Errorf("%w: bad unreplicated suffix %q", ErrMalformedKey, suffix)
		}
		return DecodedKey{Kind: KindRangeUnreplicated, RangeID: rangeID, Suffix: suffix}, nil
	default:
		return DecodedKey{}, fmt.Errorf("%w: unknown range-local infix %q", ErrMalformedKey, key[rangePrefixLen])
	}
}

var suffixNames = map[[2]byte]string{
	{replicatedInfix, appliedStateSuffix}:     "AppliedState",
	{replicatedInfix, confStateSuffix}:        "ConfState",
	{replicatedInfix, descriptorSuffix}:       "RangeDescriptor",
	{replicatedInfix, leaseSuffix}:            "Lease",
	{replicatedInfix, statsSuffix}:            "RangeStats",
	{replicatedInfix, placementSuffix}:        "PlacementState",
	{unreplicatedInfix, hardStateSuffix}:      "HardState",
	{unreplicatedInfix, replicaIDSuffix}:      "ReplicaID",
	{unreplicatedInfix, snapshotMetaSuffix}:   "SnapshotMeta",
	{unreplicatedInfix, truncatedStateSuffix}: "TruncatedState",
	{unreplicatedInfix, tombstoneSuffix}:      "Tombstone",
}

// PrettyKey renders an engine key for logs and debugging, e.g.
// "/Range/7/Raft/Log/42" or "/User/\"apple\"". Keys that do not decode are
// printed quoted with a "/Malformed" prefix; span bounds such as prefix ends
// fall in that class.
func PrettyKey(key []byte) string {
	d, err := DecodeKey(key)
	if err != nil {
		return "/Malformed/" + strconv.Quote(string(key))
	}
	switch d.Kind {
	case KindStoreLocal:
		return "/Store/" + strconv.Quote(string(d.Suffix))
	case KindRangeReplicated, KindRangeUnreplicated:
		infix := byte(replicatedInfix)
		part := "Replicated"
		if d.Kind == KindRangeUnreplicated {
			infix, part = unreplicatedInfix, "Unreplicated"
		}
		name, ok := suffixNames[[2]byte{infix, d.Suffix[0]}]
		if !ok {
			name = strconv.Quote(string(d.Suffix))
		}
		return fmt.Sprintf("/Range/%d/%s/%s", d.RangeID, part, name)
	case KindRaftLog:
		return fmt.Sprintf("/Range/%d/Raft/Log/%d", d.RangeID, d.Index)
	default:
		return "/User/" + strconv.Quote(string(d.UserKey))
	}
}
