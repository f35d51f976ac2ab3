// Copyright 2026 The Flotilla Authors. All rights reserved.

package engine

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/cockroachdb/pebble/v2"
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
//	\x02 <user key>                        user data, one value per key (plain)
//	\x03 <user key> \x00 <^rev BE8> \x09    one version of a user key (versioned)
//	\x03 <user key> \x00                   a versioned key's prefix: a seek key, never stored
//
// Invariants the layout guarantees, and tests check:
//   - all keys of one range ID (replicated, unreplicated and log) share the
//     prefix \x01 r <rangeID BE8> and so sort together, in range ID order;
//   - raft log entries of a range sort by index;
//   - all local (\x01) keys sort before all plain user (\x02) keys, which
//     sort before all versioned (\x03) keys; plain user keys sort in the
//     order of the user's bytes;
//   - versioned keys sort by user key (in the order of the user's bytes), then
//     by revision, newest first, and a user key's prefix sorts before all its
//     versions and after every version of smaller user keys.
//
// The order is not bytewise: the store's Pebble runs with Comparer (see
// "Versioned keys and the comparer" below), and code comparing engine keys
// must use CompareKeys.

// RangeID identifies a range (flotillapb.RangeID). Range IDs are never
// reused; 0 is invalid.
type RangeID = flotillapb.RangeID

// MaxUserKeySize is the largest user key Flotilla accepts, in bytes
// (flotillapb.MaxKeySize).
const MaxUserKeySize = flotillapb.MaxKeySize

const (
	localPrefixByte     = '\x01'
	userPrefixByte      = '\x02'
	versionedPrefixByte = '\x03'

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
	revisionsSuffix    = 'v' // RangeRevisions: last, closed and compacted revisions

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

// RangeRevisionsKey holds the range's revision state (last, closed and
// compacted revisions).
func RangeRevisionsKey(rangeID RangeID) []byte {
	return rangeStateKey(rangeID, replicatedInfix, revisionsSuffix)
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

// ---- Versioned keys and the comparer -------------------------------------
//
// A version of a user key is stored at
//
//	\x03 <user key> \x00 <^revision, 8 bytes big-endian> \x09
//	'----- prefix ------' '------------- suffix -------------'
//
// Pebble's Comparer.Split cuts a key into a prefix and a suffix; bloom
// filters hold prefixes, and SeekPrefixGE reads only keys with the seek key's
// prefix. Here the prefix, \x03 <user key> \x00, names the user key and the
// suffix names the version. The prefix alone is a valid key (a seek key, or a
// span bound); it is never stored.
//
// Why the split is unambiguous. Split (splitKey) cuts a key only if it starts
// with \x03, is at least minVersionedKeyLen bytes long, ends in \x09 (the
// suffix's length, as CockroachDB's engine keys end in their version's) and
// has the \x00 sentinel just before the suffix. It looks at both ends of the
// key only, never inside the user key, so \x00 and \x09 bytes in a user key
// do not matter:
//   - every versioned key passes, and is cut right before its 9-byte suffix;
//   - a prefix ends in \x00, not \x09, so it is never cut: Split(prefix) =
//     len(prefix), as Pebble requires (a prefix sorts before every key with
//     that prefix, and SeekPrefixGE on a prefix and on any of its versions
//     probe the same bloom filter entry);
//   - local (\x01) and plain user (\x02) keys do not start with \x03 and are
//     never cut, whatever their bytes: they keep their bytewise order, and
//     their bloom filters hold whole keys, as before.
//
// The encoding without the sentinel (\x03 <user key> <^rev BE8>, split 8
// bytes from the end) is not sound: a seek key \x03 <user key> of 9 or more
// bytes would be cut as if it had a revision, so a prefix would not be its
// own prefix.
//
// The order (CompareKeys). Every byte string has exactly one split, and keys
// compare by prefix, bytewise, then by suffix, bytewise: a total order on all
// byte strings (the map key -> (prefix, suffix) is one-to-one), which Pebble
// needs since it also compares span bounds and the separators it makes for
// its index blocks. Keys outside \x03 are never cut, so among themselves and
// against \x03 keys they compare bytewise. For versioned keys:
//   - user keys keep their order: bytes.Compare(a+"\x00", b+"\x00") =
//     bytes.Compare(a, b). If neither of a, b is a prefix of the other, the
//     first differing byte decides both; if a is a proper prefix of b, a+"\x00"
//     either differs from b+"\x00" at b[len(a)] > 0 (a+"\x00" is smaller), or
//     is a proper prefix of it (smaller again);
//   - the revision is stored inverted, so a user key's versions sort newest
//     first, and the empty suffix (the prefix) sorts before all of them.
//
// One thing Pebble documents and this comparer does not give: that removing
// leading bytes from a prefix leaves a valid prefix. Pebble needs that only
// for synthetic prefixes (of external files and virtual SSTs), which Flotilla
// never uses.

// KeyFormat names the on-disk key format of this build: the name of its
// Pebble comparer. Pebble records it in the store and refuses to open a
// store written with another; Open reports that as ErrIncompatibleStore.
// Stores written before versioned keys used Pebble's bytewise comparer,
// "leveldb.BytewiseComparator" (format 1).
const KeyFormat = "flotilla.keys.v2"

const (
	versionSentinel  = '\x00'
	revisionLen      = 8
	versionSuffixLen = revisionLen + 1 // <^rev BE8> <versionMarker>
	// versionMarker is the last byte of every versioned key: the length of
	// its suffix.
	versionMarker = versionSuffixLen
	// minVersionedKeyLen is the length of a versioned key of a one-byte
	// user key.
	minVersionedKeyLen = 1 + 1 + 1 + versionSuffixLen
	// versionedKeyOverhead is what a versioned key adds to its user key.
	versionedKeyOverhead = 1 + 1 + versionSuffixLen
)

// ErrBadRevision is returned (wrapped) for a revision that is not positive
// where a version's revision is required.
var ErrBadRevision = errors.New("engine: revision must be positive")

// MVCCKey returns the engine key of user key's version at rev, or an error if
// the user key is not valid (see ValidateUserKey) or rev is not positive.
func MVCCKey(key []byte, rev int64) ([]byte, error) {
	if err := ValidateUserKey(key); err != nil {
		return nil, err
	}
	if rev <= 0 {
		return nil, fmt.Errorf("%w: %d", ErrBadRevision, rev)
	}
	return appendMVCCKey(make([]byte, 0, len(key)+versionedKeyOverhead), key, rev), nil
}

// appendMVCCKey appends the versioned key of (key, rev) to dst. The caller has
// validated both.
func appendMVCCKey(dst, key []byte, rev int64) []byte {
	dst = appendMVCCPrefix(dst, key)
	dst = binary.BigEndian.AppendUint64(dst, ^uint64(rev))
	return append(dst, versionMarker)
}

// appendMVCCPrefix appends the prefix of key's versions, \x03 <key> \x00, to
// dst: it sorts before all of key's versions and after those of every
// smaller user key.
func appendMVCCPrefix(dst, key []byte) []byte {
	dst = append(dst, versionedPrefixByte)
	dst = append(dst, key...)
	return append(dst, versionSentinel)
}

// appendMVCCPrefixEnd appends the smallest prefix after every version of
// key: the prefix of key+"\x00", the next user key.
func appendMVCCPrefixEnd(dst, key []byte) []byte {
	return append(appendMVCCPrefix(dst, key), versionSentinel)
}

// DecodeMVCCKey returns the user key and revision of a versioned key. The
// user key aliases k. It never panics; an error wraps ErrMalformedKey.
func DecodeMVCCKey(k []byte) (key []byte, rev int64, err error) {
	if splitKey(k) == len(k) {
		return nil, 0, fmt.Errorf("%w: not a versioned key: %q", ErrMalformedKey, k)
	}
	key = k[1 : len(k)-versionSuffixLen-1]
	if len(key) > MaxUserKeySize {
		return nil, 0, fmt.Errorf("%w: versioned key of %d bytes", ErrMalformedKey, len(key))
	}
	rev = int64(^binary.BigEndian.Uint64(k[len(k)-versionSuffixLen:]))
	if rev <= 0 {
		return nil, 0, fmt.Errorf("%w: revision %d in %q", ErrMalformedKey, rev, k)
	}
	return key, rev, nil
}

// mvccPrefixOf returns the prefix part of a versioned key k (as DecodeMVCCKey
// accepts), aliasing k.
func mvccPrefixOf(k []byte) []byte { return k[:len(k)-versionSuffixLen] }

// MVCCSpan returns the engine span of every version of the user keys in
// [start, end). An empty start means the first user key, an empty end the end
// of the versioned keyspace. The same bounds are errors as for UserSpan.
func MVCCSpan(start, end []byte) (Span, error) {
	if len(start) > MaxUserKeySize || len(end) > MaxUserKeySize {
		return Span{}, fmt.Errorf("%w: span bound longer than %d bytes", ErrKeyTooLarge, MaxUserKeySize)
	}
	if len(end) > 0 && bytes.Compare(start, end) >= 0 {
		return Span{}, fmt.Errorf("engine: empty or inverted user span [%q, %q)", start, end)
	}
	s := Span{Start: []byte{versionedPrefixByte}}
	if len(start) > 0 {
		s.Start = appendMVCCPrefix(make([]byte, 0, len(start)+2), start)
	}
	if len(end) == 0 {
		s.End = []byte{versionedPrefixByte + 1}
	} else {
		s.End = appendMVCCPrefix(make([]byte, 0, len(end)+2), end)
	}
	return s, nil
}

// splitKey is the comparer's Split: the length of k's prefix (see above).
func splitKey(k []byte) int {
	n := len(k)
	if n >= minVersionedKeyLen && k[0] == versionedPrefixByte && k[n-1] == versionMarker &&
		k[n-versionSuffixLen-1] == versionSentinel {
		return n - versionSuffixLen
	}
	return n
}

// CompareKeys compares two engine keys in the store's order (see
// "Versioned keys and the comparer" in keys.go): bytewise, except that a
// versioned key's prefix and suffix compare separately. Use it, not
// bytes.Compare, to compare engine keys.
func CompareKeys(a, b []byte) int {
	if len(a) == 0 || len(b) == 0 || a[0] != versionedPrefixByte || b[0] != versionedPrefixByte {
		return bytes.Compare(a, b) // at most one is cut, and the first byte decides
	}
	an, bn := splitKey(a), splitKey(b)
	if c := bytes.Compare(a[:an], b[:bn]); c != 0 {
		return c
	}
	return bytes.Compare(a[an:], b[bn:])
}

// abbreviatedKey is the comparer's AbbreviatedKey: the first 8 bytes of the
// prefix, big-endian, zero-padded. Keys compare by prefix first, bytewise, so
// a smaller abbreviation means a smaller key.
func abbreviatedKey(k []byte) uint64 {
	return pebble.DefaultComparer.AbbreviatedKey(k[:splitKey(k)])
}

// separator is the comparer's Separator: a short key k with a <= k < b for
// Pebble's index blocks. It shortens the prefixes bytewise, and falls back to
// a itself whenever the short key would not lie in [a, b) in the store's
// order (a and b with one prefix, for one).
func separator(dst, a, b []byte) []byte {
	n := len(dst)
	dst = pebble.DefaultComparer.Separator(dst, a[:splitKey(a)], b[:splitKey(b)])
	if k := dst[n:]; CompareKeys(a, k) <= 0 && CompareKeys(k, b) < 0 {
		return dst
	}
	return append(dst[:n], a...)
}

// successor is the comparer's Successor: a short key k >= a, the bytewise
// successor of a's prefix, or a itself if that is not after a.
func successor(dst, a []byte) []byte {
	n := len(dst)
	dst = pebble.DefaultComparer.Successor(dst, a[:splitKey(a)])
	if CompareKeys(a, dst[n:]) <= 0 {
		return dst
	}
	return append(dst[:n], a...)
}

// immediateSuccessor is the comparer's ImmediateSuccessor: for a prefix a
// (never cut), a+"\x00" is never cut either (it ends in \x00), and uncut keys
// compare bytewise, so it is the next prefix. For a versioned prefix it is
// the prefix of the next user key.
func immediateSuccessor(dst, a []byte) []byte {
	return append(append(dst, a...), 0)
}

// prettyFormatter prints a key for Pebble's logs and errors.
type prettyFormatter []byte

func (k prettyFormatter) Format(s fmt.State, _ rune) { _, _ = io.WriteString(s, PrettyKey(k)) }

// keyComparer orders every key of the store (see above). Open installs it.
var keyComparer = &pebble.Comparer{
	Compare:              CompareKeys,
	Equal:                bytes.Equal, // keys compare equal only when equal: the split is one-to-one
	AbbreviatedKey:       abbreviatedKey,
	Separator:            separator,
	Successor:            successor,
	ImmediateSuccessor:   immediateSuccessor,
	Split:                splitKey,
	ComparePointSuffixes: bytes.Compare,
	CompareRangeSuffixes: bytes.Compare,
	FormatKey:            func(k []byte) fmt.Formatter { return prettyFormatter(k) },
	Name:                 KeyFormat,
}

// maxEngineKeyLen bounds the length of key, by its kind: a Batch and a
// snapshot's ingestion refuse longer keys. A versioned key has room for a
// user key of MaxUserKeySize; every other key, for one with its one-byte
// prefix.
func maxEngineKeyLen(key []byte) int {
	if len(key) > 0 && key[0] == versionedPrefixByte {
		return MaxUserKeySize + versionedKeyOverhead
	}
	return MaxUserKeySize + 1
}

// ---- Spans ---------------------------------------------------------------

// Span is a half-open interval [Start, End) of engine keys.
type Span struct {
	Start, End []byte
}

// Contains reports whether key lies in the span, in the store's order.
func (s Span) Contains(key []byte) bool {
	return CompareKeys(key, s.Start) >= 0 && CompareKeys(key, s.End) < 0
}

// Valid reports whether the span is non-empty.
func (s Span) Valid() bool { return CompareKeys(s.Start, s.End) < 0 }

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
	// KindVersioned is a version of a user key (Revision > 0) or, with
	// Revision 0, the prefix of a user key's versions (a seek key or span
	// bound, never stored).
	KindVersioned
)

// DecodedKey is an engine key taken apart by DecodeKey. Byte slices alias the
// decoded key.
type DecodedKey struct {
	Kind     KeyKind
	RangeID  RangeID // for range-local kinds
	Suffix   []byte  // store-local, replicated and unreplicated kinds
	Index    uint64  // KindRaftLog
	UserKey  []byte  // KindUser, KindVersioned
	Revision int64   // KindVersioned: the version's revision, 0 for a prefix
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
	case versionedPrefixByte:
		return decodeVersionedKey(key)
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

// decodeVersionedKey decodes a versioned key or a versioned prefix.
func decodeVersionedKey(key []byte) (DecodedKey, error) {
	if splitKey(key) < len(key) {
		uk, rev, err := DecodeMVCCKey(key)
		if err != nil {
			return DecodedKey{}, err
		}
		return DecodedKey{Kind: KindVersioned, UserKey: uk, Revision: rev}, nil
	}
	// A prefix: \x03 <user key> \x00.
	if len(key) < 3 || key[len(key)-1] != versionSentinel {
		return DecodedKey{}, fmt.Errorf("%w: not a versioned key or prefix: %q", ErrMalformedKey, key)
	}
	if len(key)-2 > MaxUserKeySize {
		return DecodedKey{}, fmt.Errorf("%w: versioned prefix of %d bytes", ErrMalformedKey, len(key))
	}
	return DecodedKey{Kind: KindVersioned, UserKey: key[1 : len(key)-1]}, nil
}

var suffixNames = map[[2]byte]string{
	{replicatedInfix, appliedStateSuffix}:     "AppliedState",
	{replicatedInfix, confStateSuffix}:        "ConfState",
	{replicatedInfix, descriptorSuffix}:       "RangeDescriptor",
	{replicatedInfix, leaseSuffix}:            "Lease",
	{replicatedInfix, statsSuffix}:            "RangeStats",
	{replicatedInfix, placementSuffix}:        "PlacementState",
	{replicatedInfix, revisionsSuffix}:        "RangeRevisions",
	{unreplicatedInfix, hardStateSuffix}:      "HardState",
	{unreplicatedInfix, replicaIDSuffix}:      "ReplicaID",
	{unreplicatedInfix, snapshotMetaSuffix}:   "SnapshotMeta",
	{unreplicatedInfix, truncatedStateSuffix}: "TruncatedState",
	{unreplicatedInfix, tombstoneSuffix}:      "Tombstone",
}

// PrettyKey renders an engine key for logs and debugging, e.g.
// "/Range/7/Raft/Log/42", "/User/\"apple\"", "/Versioned/\"apple\"/42" (the
// version at revision 42) or "/Versioned/\"apple\"" (the prefix of apple's
// versions). Keys that do not decode are
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
	case KindVersioned:
		if d.Revision == 0 {
			return "/Versioned/" + strconv.Quote(string(d.UserKey))
		}
		return fmt.Sprintf("/Versioned/%s/%d", strconv.Quote(string(d.UserKey)), d.Revision)
	default:
		return "/User/" + strconv.Quote(string(d.UserKey))
	}
}

// UserDataSpan is the span of all user data, plain (\x02) and versioned
// (\x03): what a state machine's data spans (a snapshot's) may cover.
func UserDataSpan() Span {
	return Span{Start: []byte{userPrefixByte}, End: []byte{versionedPrefixByte + 1}}
}
