// Copyright 2026 The Flotilla Authors. All rights reserved.

package engine

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"sync"
)

// Multi-version user data (docs/REVISIONS.md, "Storage"). Every write of a
// user key is kept as a version at the revision of the write, under its
// versioned key (keys.go: \x03 <key> \x00 <^rev> \x09, a key's versions
// newest first); a delete writes a tombstone version. Reads at a revision see
// the newest version at or below it; MVCCCompact removes the versions no read
// at or above a revision can see. The plain user keys (\x02) are a separate
// space, untouched by these functions.

// Version is one version of a user key.
type Version struct {
	// Value is the user's value; empty for a tombstone.
	Value []byte
	// CreateRevision is the revision of the put that created the key (the
	// first put after it was absent); 0 for a tombstone.
	CreateRevision int64
	// ModRevision is the version's own revision: the revision of the write,
	// and the revision in its key.
	ModRevision int64
	// Version counts the puts since the key was created: 1 for the creating
	// put; 0 for a tombstone.
	Version int64
	// Lease is the ID of the lease attached to the key, 0 for none.
	Lease int64
	// Deleted marks a tombstone: the key was deleted (delete or delete-range)
	// at ModRevision.
	Deleted bool
}

// ErrBadVersion is returned (wrapped) for a stored version that does not
// decode, and by MVCCPut for a Version that may not be stored.
var ErrBadVersion = errors.New("engine: bad version")

// A version's value is encoded as
//
//	format byte (versionFormat)
//	flags byte (versionFlagDeleted; other bits must be 0)
//	uvarint ModRevision
//	uvarint ModRevision-CreateRevision (mod 2^64: small for recent creates)
//	uvarint Version
//	uvarint Lease
//	the value's bytes, to the end
//
// ModRevision repeats the key's revision so that a value is self-describing
// (snapshots, debugging) and a value under the wrong key is caught. The
// int64 fields are encoded as their uint64 bits, so every Version round-trips.
const (
	versionFormat      = 1
	versionFlagDeleted = 1 << 0
	versionFlagsKnown  = versionFlagDeleted
	// maxVersionHeaderLen is the header's largest size: two bytes and four
	// uvarints of up to 10 bytes.
	maxVersionHeaderLen = 2 + 4*binary.MaxVarintLen64
)

// appendVersionHeader appends everything of v's encoding but its value.
func appendVersionHeader(dst []byte, v Version) []byte {
	var flags byte
	if v.Deleted {
		flags |= versionFlagDeleted
	}
	dst = append(dst, versionFormat, flags)
	dst = binary.AppendUvarint(dst, uint64(v.ModRevision))
	dst = binary.AppendUvarint(dst, uint64(v.ModRevision)-uint64(v.CreateRevision))
	dst = binary.AppendUvarint(dst, uint64(v.Version))
	return binary.AppendUvarint(dst, uint64(v.Lease))
}

// EncodeVersion appends v's encoding to dst and returns the result.
func EncodeVersion(dst []byte, v Version) []byte {
	return append(appendVersionHeader(dst, v), v.Value...)
}

// DecodeVersion decodes a version encoded by EncodeVersion. The returned
// Value aliases b (it is nil for an empty value). It never panics; an error
// wraps ErrBadVersion.
func DecodeVersion(b []byte) (Version, error) {
	if len(b) < 2 {
		return Version{}, fmt.Errorf("%w: %d bytes is too short", ErrBadVersion, len(b))
	}
	if b[0] != versionFormat {
		return Version{}, fmt.Errorf("%w: unknown format %d", ErrBadVersion, b[0])
	}
	flags := b[1]
	if flags&^versionFlagsKnown != 0 {
		return Version{}, fmt.Errorf("%w: unknown flags %#x", ErrBadVersion, flags)
	}
	rest := b[2:]
	var fields [4]uint64
	for i := range fields {
		n, w := binary.Uvarint(rest)
		if w <= 0 {
			return Version{}, fmt.Errorf("%w: truncated or overlong field %d", ErrBadVersion, i)
		}
		fields[i], rest = n, rest[w:]
	}
	v := Version{
		ModRevision:    int64(fields[0]),
		CreateRevision: int64(fields[0] - fields[1]),
		Version:        int64(fields[2]),
		Lease:          int64(fields[3]),
		Deleted:        flags&versionFlagDeleted != 0,
	}
	if len(rest) > 0 {
		v.Value = rest
	}
	return v, nil
}

// decodeStoredVersion decodes the value stored at a version key of revision
// rev, and checks that it is that revision's.
func decodeStoredVersion(b []byte, rev int64) (Version, error) {
	v, err := DecodeVersion(b)
	if err != nil {
		return Version{}, err
	}
	if v.ModRevision != rev {
		return Version{}, fmt.Errorf("%w: the version stored at revision %d says revision %d", ErrBadVersion, rev, v.ModRevision)
	}
	return v, nil
}

// checkVersion reports whether v may be stored.
func checkVersion(v Version) error {
	switch {
	case v.ModRevision <= 0:
		return fmt.Errorf("%w: %w: ModRevision %d", ErrBadVersion, ErrBadRevision, v.ModRevision)
	case v.Deleted && (len(v.Value) > 0 || v.CreateRevision != 0 || v.Version != 0 || v.Lease != 0):
		return fmt.Errorf("%w: a tombstone has no value, create revision, version or lease", ErrBadVersion)
	case !v.Deleted && (v.CreateRevision <= 0 || v.CreateRevision > v.ModRevision):
		return fmt.Errorf("%w: CreateRevision %d not in [1, ModRevision %d]", ErrBadVersion, v.CreateRevision, v.ModRevision)
	case !v.Deleted && v.Version <= 0:
		return fmt.Errorf("%w: Version %d of a put is not positive", ErrBadVersion, v.Version)
	case v.Lease < 0:
		return fmt.Errorf("%w: negative lease %d", ErrBadVersion, v.Lease)
	}
	return nil
}

// MVCCPut stages v as the version of key at v.ModRevision in b (a tombstone
// if v.Deleted). It replaces a version already stored at that revision. It
// fails, writing nothing, for an invalid key (ValidateUserKey) or a Version
// that is not consistent (ErrBadVersion: ModRevision > 0; a put has
// 0 < CreateRevision <= ModRevision and Version > 0; a tombstone has none of
// them, nor a value or lease; Lease >= 0). It reads nothing: the caller
// computes CreateRevision and Version from the key's newest version
// (MVCCGet). The batch copies key and v.Value.
func MVCCPut(b *Batch, key []byte, v Version) error {
	if b.done {
		return ErrBatchDone
	}
	if err := ValidateUserKey(key); err != nil {
		return err
	}
	if err := checkVersion(v); err != nil {
		return err
	}
	var header [maxVersionHeaderLen]byte
	h := appendVersionHeader(header[:0], v)
	op := b.b.SetDeferred(len(key)+versionedKeyOverhead, len(h)+len(v.Value))
	appendMVCCKey(op.Key[:0], key, v.ModRevision)
	copy(op.Value[copy(op.Value, h):], v.Value)
	return op.Finish()
}

// readRevision maps a read's revision to the revision it reads at: rev <= 0
// means the newest.
func readRevision(rev int64) int64 {
	if rev <= 0 {
		return math.MaxInt64
	}
	return rev
}

// MVCCGet returns key's newest version with a revision at or below rev (rev
// <= 0 or math.MaxInt64: the newest version), and found = false if there is
// none. A tombstone is returned with Deleted set and found = true. The
// returned Value is the caller's. It is one bloom-filtered seek.
func MVCCGet(r Reader, key []byte, rev int64) (v Version, found bool, err error) {
	if err := ValidateUserKey(key); err != nil {
		return Version{}, false, err
	}
	it, err := r.NewIter(nil, nil)
	if err != nil {
		return Version{}, false, err
	}
	v, found, err = mvccGet(it, key, readRevision(rev))
	if cerr := it.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return Version{}, false, err
	}
	return v, found, nil
}

// seekKeyPool recycles MVCCGet's seek keys (a *[]byte): a read should not
// allocate for its own key.
var seekKeyPool = sync.Pool{New: func() any { return new([]byte) }}

func mvccGet(it *Iterator, key []byte, rev int64) (Version, bool, error) {
	seek := seekKeyPool.Get().(*[]byte)
	*seek = appendMVCCKey((*seek)[:0], key, rev)
	valid := it.SeekPrefixGE(*seek)
	if cap(*seek) <= 256 {
		seekKeyPool.Put(seek)
	}
	if !valid {
		return Version{}, false, it.Error()
	}
	// Prefix mode only returns key's versions.
	k := it.Key()
	vrev := revisionOf(k)
	raw, err := it.Value()
	if err != nil {
		return Version{}, false, err
	}
	v, err := decodeStoredVersion(raw, vrev)
	if err != nil {
		return Version{}, false, fmt.Errorf("%w (key %s)", err, PrettyKey(k))
	}
	if v.Value != nil {
		v.Value = bytes.Clone(v.Value)
	}
	return v, true, nil
}

// revisionOf returns the revision of a versioned key read from the store's
// versioned span (so known to split).
func revisionOf(k []byte) int64 {
	return int64(^binary.BigEndian.Uint64(k[len(k)-versionSuffixLen:]))
}

// MVCCScanOptions tune MVCCScan.
type MVCCScanOptions struct {
	// Reverse visits the user keys from the end of the span to its start.
	Reverse bool
	// Limit stops the scan after fn was called this many times; 0 means no
	// limit.
	Limit int
	// Tombstones passes keys whose visible version is a tombstone to fn (as a
	// Version with Deleted set); by default they are skipped.
	Tombstones bool
}

// mvccStepsBeforeSeek is how many versions of one key a scan steps over
// with Next or Prev before it seeks instead: a step is much cheaper than a
// seek (tens of nanoseconds against microseconds), but a key may have very
// many versions. CockroachDB's MVCC scanner steps up to 10 times.
const mvccStepsBeforeSeek = 10

// MVCCScan calls fn, for each user key in [start, end) (an empty start: from
// the first key; an empty end: to the last), in key order (or reverse order
// with opts.Reverse), with the key's newest version with a revision at or
// below rev (rev <= 0: the newest), skipping keys that have none and, unless
// opts.Tombstones, keys whose visible version is a tombstone. The key and
// v.Value passed to fn are valid only during the call: they alias the
// iterator's memory or the scan's buffers. An error from fn stops the scan
// and is returned.
//
// Forward, after a key's visible version the scan moves to the next key
// with one NextPrefix; versions newer than rev cost up to
// mvccStepsBeforeSeek steps (Next), then one seek. Reverse, the scan lands
// on a key's oldest version and steps (Prev) towards newer ones, up to
// mvccStepsBeforeSeek visible and as many invisible versions before it
// seeks. So a scan's cost does not grow with the number of versions of its
// keys beyond a bound.
func MVCCScan(r Reader, start, end []byte, rev int64, opts MVCCScanOptions, fn func(key []byte, v Version) error) error {
	span, err := MVCCSpan(start, end)
	if err != nil {
		return err
	}
	it, err := r.NewIter(span.Start, span.End)
	if err != nil {
		return err
	}
	s := mvccScanner{it: it, rev: readRevision(rev), opts: opts, fn: fn}
	if opts.Reverse {
		err = s.reverse()
	} else {
		err = s.forward()
	}
	if cerr := it.Close(); err == nil {
		err = cerr
	}
	return err
}

type mvccScanner struct {
	it   *Iterator
	rev  int64
	opts MVCCScanOptions
	fn   func(key []byte, v Version) error
	n    int // calls of fn

	// prefix is a copy of the current user key's prefix (\x03 <key> \x00);
	// value a copy of its candidate version's value (reverse); seekKey is
	// scratch for seek keys.
	prefix, value, seekKey []byte
}

func (s *mvccScanner) full() bool { return s.opts.Limit > 0 && s.n >= s.opts.Limit }

// decodeScannedKey decodes an iterator's key, which lies in a versioned
// span.
func decodeScannedKey(k []byte) (key []byte, rev int64, err error) {
	key, rev, err = DecodeMVCCKey(k)
	if err != nil {
		return nil, 0, fmt.Errorf("engine: in the versioned keyspace: %w", err)
	}
	return key, rev, nil
}

// sameUserKey reports whether k is a version of the user key whose prefix is
// prefix.
func sameUserKey(k, prefix []byte) bool {
	return splitKey(k) == len(prefix) && bytes.Equal(k[:len(prefix)], prefix)
}

// emit passes the version stored as raw at (key, rev) to fn, unless it is a
// tombstone and tombstones are not wanted.
func (s *mvccScanner) emit(key []byte, rev int64, raw []byte) error {
	v, err := decodeStoredVersion(raw, rev)
	if err != nil {
		return fmt.Errorf("%w (key %q)", err, key)
	}
	if v.Deleted && !s.opts.Tombstones {
		return nil
	}
	s.n++
	return s.fn(key, v)
}

// skipNewer moves the iterator from a version of the user key with prefix
// s.prefix that is newer than s.rev to that key's newest version at or below
// s.rev, or, if it has none, to the next key. It returns whether the
// iterator is valid.
func (s *mvccScanner) skipNewer() bool {
	for range mvccStepsBeforeSeek {
		if !s.it.Next() {
			return false
		}
		k := s.it.Key()
		if !sameUserKey(k, s.prefix) || revisionOf(k) <= s.rev {
			return true
		}
	}
	key := s.prefix[1 : len(s.prefix)-1]
	s.seekKey = appendMVCCKey(s.seekKey[:0], key, s.rev)
	return s.it.SeekGE(s.seekKey)
}

// prevKey moves the iterator from a version of the user key with prefix
// s.prefix to the previous user key (its oldest version), stepping over the
// newer versions up to mvccStepsBeforeSeek times before it seeks. It returns
// whether the iterator is valid.
func (s *mvccScanner) prevKey() bool {
	for range mvccStepsBeforeSeek {
		if !s.it.Prev() {
			return false
		}
		if !sameUserKey(s.it.Key(), s.prefix) {
			return true
		}
	}
	return s.it.SeekLT(s.prefix)
}

func (s *mvccScanner) forward() error {
	ok := s.it.First()
	for ok && !s.full() {
		k := s.it.Key()
		key, rev, err := decodeScannedKey(k)
		if err != nil {
			return err
		}
		if rev > s.rev {
			s.prefix = append(s.prefix[:0], mvccPrefixOf(k)...)
			ok = s.skipNewer()
			continue // at key's visible version, or at the next key
		}
		raw, err := s.it.Value()
		if err != nil {
			return err
		}
		if err := s.emit(key, rev, raw); err != nil {
			return err
		}
		ok = s.it.NextPrefix()
	}
	return s.it.Error()
}

// reverse lands on each user key at its oldest version (coming from the
// right), steps towards newer versions while they are visible, keeping the
// newest so far, and moves on to the previous key.
func (s *mvccScanner) reverse() error {
	ok := s.it.Last()
	for ok && !s.full() {
		k := s.it.Key()
		_, rev, err := decodeScannedKey(k)
		if err != nil {
			return err
		}
		// The iterator moves before the key is passed to fn: use a copy.
		s.prefix = append(s.prefix[:0], mvccPrefixOf(k)...)
		key := s.prefix[1 : len(s.prefix)-1]
		if rev > s.rev {
			// Even the oldest version is too new.
			ok = s.prevKey()
			continue
		}
		raw, err := s.it.Value()
		if err != nil {
			return err
		}
		s.value = append(s.value[:0], raw...)
		for steps := 0; ; steps++ {
			if steps == mvccStepsBeforeSeek {
				// Many visible versions: seek straight to the newest of
				// them, then to the previous key.
				s.seekKey = appendMVCCKey(s.seekKey[:0], key, s.rev)
				if !s.it.SeekGE(s.seekKey) || !sameUserKey(s.it.Key(), s.prefix) {
					return errors.Join(s.it.Error(), fmt.Errorf("engine: the versions of %q vanished from an iterator", key))
				}
				if raw, err = s.it.Value(); err != nil {
					return err
				}
				s.value, rev = append(s.value[:0], raw...), revisionOf(s.it.Key())
				ok = s.prevKey()
				break
			}
			if ok = s.it.Prev(); !ok {
				break
			}
			k = s.it.Key()
			if !sameUserKey(k, s.prefix) {
				break // at the previous key
			}
			newer := revisionOf(k)
			if newer > s.rev {
				ok = s.prevKey()
				break
			}
			if raw, err = s.it.Value(); err != nil {
				return err
			}
			s.value, rev = append(s.value[:0], raw...), newer
		}
		if err := s.it.Error(); err != nil {
			return err
		}
		if err := s.emit(key, rev, s.value); err != nil {
			return err
		}
	}
	return s.it.Error()
}

// mvccRangeDeleteAfter is how many versions of one key MVCCCompact deletes
// one by one before it deletes the rest of them with one range deletion.
const mvccRangeDeleteAfter = 16

// MVCCCompact stages in b the removal of the versions that no read at or
// above rev can see, for the user keys in [start, end) (empty bounds as in
// MVCCScan): for each key, every version older than its newest version at or
// below rev, and that one too if it is a tombstone. Versions above rev stay.
// Reads at rev or later see the same versions afterwards (except that a
// tombstone at or below rev becomes "not found"); reads below rev become
// wrong, and the caller must refuse them (the range's compacted revision).
//
// It visits at most maxKeys user keys (maxKeys <= 0: no limit) and returns
// the user key to resume from, or nil when it reached end, and the number of
// versions it removed. It reads r (an Engine or a Snapshot) and writes b
// only: nothing changes until b commits. A key's versions beyond the first
// mvccRangeDeleteAfter removed go in one range deletion.
func MVCCCompact(r Reader, b *Batch, start, end []byte, rev int64, maxKeys int) (resume []byte, removed int64, err error) {
	if rev <= 0 {
		return nil, 0, fmt.Errorf("%w: compacting at %d", ErrBadRevision, rev)
	}
	if b.done {
		return nil, 0, ErrBatchDone
	}
	span, err := MVCCSpan(start, end)
	if err != nil {
		return nil, 0, err
	}
	it, err := r.NewIter(span.Start, span.End)
	if err != nil {
		return nil, 0, err
	}
	resume, removed, err = mvccCompact(it, b, rev, maxKeys)
	if cerr := it.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, 0, err
	}
	return resume, removed, nil
}

func mvccCompact(it *Iterator, b *Batch, rev int64, maxKeys int) (resume []byte, removed int64, _ error) {
	s := mvccScanner{it: it, rev: rev}
	keys := 0
	ok := it.First()
	for ok {
		k := it.Key()
		key, vrev, err := decodeScannedKey(k)
		if err != nil {
			return nil, 0, err
		}
		if maxKeys > 0 && keys == maxKeys {
			return bytes.Clone(key), removed, nil
		}
		keys++
		s.prefix = append(s.prefix[:0], mvccPrefixOf(k)...)
		if vrev > rev {
			if ok = s.skipNewer(); !ok || !sameUserKey(it.Key(), s.prefix) {
				continue // nothing at or below rev
			}
		}
		// At the newest version at or below rev: it stays unless it is a
		// tombstone; every older one goes.
		raw, err := it.Value()
		if err != nil {
			return nil, 0, err
		}
		v, err := decodeStoredVersion(raw, revisionOf(it.Key()))
		if err != nil {
			return nil, 0, fmt.Errorf("%w (key %s)", err, PrettyKey(it.Key()))
		}
		n := 0
		if !v.Deleted {
			ok = it.Next()
		}
		for ; ok && sameUserKey(it.Key(), s.prefix); ok = it.Next() {
			switch {
			case n < mvccRangeDeleteAfter:
				err = b.Delete(it.Key())
			case n == mvccRangeDeleteAfter:
				key := s.prefix[1 : len(s.prefix)-1]
				end := appendMVCCPrefixEnd(nil, key)
				err = b.DeleteRange(Span{Start: bytes.Clone(it.Key()), End: end})
			}
			if err != nil {
				return nil, 0, err
			}
			n++
		}
		removed += int64(n)
	}
	return nil, removed, it.Error()
}

// MVCCStats are the statistics of a span of versioned keys.
type MVCCStats struct {
	// LiveKeys counts the user keys whose newest version is not a
	// tombstone; LiveKeyBytes and LiveValueBytes add up their user keys'
	// and newest values' lengths.
	LiveKeys, LiveKeyBytes, LiveValueBytes int64
	// Versions counts every version (tombstones included); VersionBytes
	// adds up their engine keys' and encoded values' lengths, as stored.
	Versions, VersionBytes int64
}

// MVCCComputeStats computes the statistics of the user keys in [start, end)
// (empty bounds as in MVCCScan) by reading every version. (It is not named
// MVCCStats, the name of its result's type.)
func MVCCComputeStats(r Reader, start, end []byte) (MVCCStats, error) {
	span, err := MVCCSpan(start, end)
	if err != nil {
		return MVCCStats{}, err
	}
	it, err := r.NewIter(span.Start, span.End)
	if err != nil {
		return MVCCStats{}, err
	}
	st, err := mvccComputeStats(it)
	if cerr := it.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return MVCCStats{}, err
	}
	return st, nil
}

func mvccComputeStats(it *Iterator) (MVCCStats, error) {
	var st MVCCStats
	var prefix []byte
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		key, rev, err := decodeScannedKey(k)
		if err != nil {
			return MVCCStats{}, err
		}
		raw, err := it.Value()
		if err != nil {
			return MVCCStats{}, err
		}
		st.Versions++
		st.VersionBytes += int64(len(k) + len(raw))
		if prefix != nil && sameUserKey(k, prefix) {
			continue // an older version
		}
		prefix = append(prefix[:0], mvccPrefixOf(k)...)
		v, err := decodeStoredVersion(raw, rev)
		if err != nil {
			return MVCCStats{}, fmt.Errorf("%w (key %q)", err, key)
		}
		if !v.Deleted {
			st.LiveKeys++
			st.LiveKeyBytes += int64(len(key))
			st.LiveValueBytes += int64(len(v.Value))
		}
	}
	return st, it.Error()
}
