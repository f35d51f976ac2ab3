// Copyright 2026 The Flotilla Authors. All rights reserved.

package engine

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"slices"
	"sort"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// trickyUserKeys are user keys that stress the versioned encoding: \x00
// and \x09 bytes, keys that are prefixes of others, and one whose versioned
// prefix ends in bytes that look like a version suffix.
var trickyUserKeys = []string{
	"\x00", "\x00\x00", "\x09", "\x09\x00", "a", "a\x00", "a\x00\x00", "a\x00\x09", "a\x01", "ab",
	"x\x00\xff\xff\xff\xff\xff\xff\xff\xff\x09", "x\x00\x7f\xff\xff\xff\xff\xff\xff\xfe\x09",
	"\xff", "\xff\xff", "zzzzzzzzzzzz",
}

func mustMVCCKey(t testing.TB, key string, rev int64) []byte {
	t.Helper()
	k, err := MVCCKey([]byte(key), rev)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestMVCCKeyRoundTrip(t *testing.T) {
	keys := append(slices.Clone(trickyUserKeys), string(bytes.Repeat([]byte{9}, MaxUserKeySize)))
	for _, uk := range keys {
		for _, rev := range []int64{1, 9, 255, 256, 1 << 40, math.MaxInt64} {
			k := mustMVCCKey(t, uk, rev)
			if len(k) != len(uk)+versionedKeyOverhead || splitKey(k) != len(uk)+2 {
				t.Fatalf("MVCCKey(%q, %d) = %q: length %d, split %d", uk, rev, k, len(k), splitKey(k))
			}
			gotKey, gotRev, err := DecodeMVCCKey(k)
			if err != nil || string(gotKey) != uk || gotRev != rev {
				t.Fatalf("DecodeMVCCKey(MVCCKey(%q, %d)) = %q, %d, %v", uk, rev, gotKey, gotRev, err)
			}
			d, err := DecodeKey(k)
			if err != nil || d.Kind != KindVersioned || string(d.UserKey) != uk || d.Revision != rev {
				t.Fatalf("DecodeKey(MVCCKey(%q, %d)) = %+v, %v", uk, rev, d, err)
			}
			span, err := MVCCSpan([]byte(uk), nil)
			if err != nil || !span.Contains(k) {
				t.Fatalf("MVCCSpan(%q, nil) = %s, %v: does not contain %s", uk, span, err, PrettyKey(k))
			}
		}
		// The prefix is its own prefix, and decodes as a revision-0 key.
		p := appendMVCCPrefix(nil, []byte(uk))
		if splitKey(p) != len(p) {
			t.Fatalf("the prefix of %q is split at %d", uk, splitKey(p))
		}
		if d, err := DecodeKey(p); err != nil || d.Kind != KindVersioned || string(d.UserKey) != uk || d.Revision != 0 {
			t.Fatalf("DecodeKey(prefix of %q) = %+v, %v", uk, d, err)
		}
		if _, _, err := DecodeMVCCKey(p); !errors.Is(err, ErrMalformedKey) {
			t.Fatalf("DecodeMVCCKey(prefix of %q): %v", uk, err)
		}
	}
}

func TestMVCCKeyBadInput(t *testing.T) {
	if _, err := MVCCKey(nil, 1); !errors.Is(err, ErrEmptyKey) {
		t.Fatalf("empty key: %v", err)
	}
	if _, err := MVCCKey(make([]byte, MaxUserKeySize+1), 1); !errors.Is(err, ErrKeyTooLarge) {
		t.Fatalf("oversized key: %v", err)
	}
	for _, rev := range []int64{0, -1, math.MinInt64} {
		if _, err := MVCCKey([]byte("k"), rev); !errors.Is(err, ErrBadRevision) {
			t.Fatalf("revision %d: %v", rev, err)
		}
	}
	if _, err := MVCCSpan([]byte("b"), []byte("a")); err == nil {
		t.Fatal("inverted span accepted")
	}
	good := mustMVCCKey(t, "k", 5)
	zeroRev := slices.Clone(good)
	copy(zeroRev[len(zeroRev)-versionSuffixLen:], bytes.Repeat([]byte{0xff}, revisionLen)) // ^0
	negRev := slices.Clone(good)
	negRev[len(negRev)-versionSuffixLen] = 0x7f // top bit clear: negative
	uk, _ := UserKey([]byte("k"))
	for _, k := range [][]byte{
		nil, {}, {versionedPrefixByte}, good[:len(good)-1], append(slices.Clone(good), 0),
		zeroRev, negRev, uk, RaftLogKey(1, 1),
		append([]byte{versionedPrefixByte, versionSentinel}, good[len(good)-versionSuffixLen:]...), // empty user key
		append(append([]byte{versionedPrefixByte}, make([]byte, MaxUserKeySize+1)...), good[len(good)-versionSuffixLen-1:]...),
	} {
		if _, _, err := DecodeMVCCKey(k); !errors.Is(err, ErrMalformedKey) {
			t.Errorf("DecodeMVCCKey(%q): %v, want ErrMalformedKey", k, err)
		}
	}
	for _, k := range [][]byte{{versionedPrefixByte}, {versionedPrefixByte, 0}, {versionedPrefixByte, 'a'}, zeroRev,
		append(append([]byte{versionedPrefixByte}, make([]byte, MaxUserKeySize+1)...), 0)} {
		if _, err := DecodeKey(k); !errors.Is(err, ErrMalformedKey) {
			t.Errorf("DecodeKey(%q): %v, want ErrMalformedKey", k, err)
		}
	}
}

// modelKey is what TestMVCCKeyOrdering knows of a key: its kind, and for a
// versioned key its user key and revision (0 for a prefix).
type modelKey struct {
	key  []byte
	kind int // 0 local, 1 plain user, 2 versioned
	user []byte
	rev  int64
}

// modelCompare is the documented order, computed from the parts.
func modelCompare(a, b modelKey) int {
	if a.kind != b.kind {
		return a.kind - b.kind
	}
	if a.kind != 2 {
		return bytes.Compare(a.key, b.key)
	}
	if c := bytes.Compare(a.user, b.user); c != 0 {
		return c
	}
	switch {
	case a.rev == b.rev:
		return 0
	case a.rev == 0: // the prefix first
		return -1
	case b.rev == 0:
		return 1
	case a.rev > b.rev: // then newest first
		return -1
	default:
		return 1
	}
}

func randomUserKey(rng *rand.Rand) []byte {
	alphabet := []byte{0, 1, 9, 'a', 0x7f, 0xfe, 0xff}
	k := make([]byte, 1+rng.IntN(12))
	for i := range k {
		k[i] = alphabet[rng.IntN(len(alphabet))]
	}
	return k
}

func randomRevision(rng *rand.Rand) int64 {
	switch rng.IntN(4) {
	case 0:
		return 1 + rng.Int64N(10)
	case 1:
		return math.MaxInt64 - rng.Int64N(10)
	default:
		return 1 + rng.Int64N(math.MaxInt64)
	}
}

// TestMVCCKeyOrdering sorts random keys of every kind with CompareKeys and
// checks the result against the order the layout documents.
func TestMVCCKeyOrdering(t *testing.T) {
	rng := newRand(t)
	var keys []modelKey
	for range 2000 {
		uk := randomUserKey(rng)
		switch rng.IntN(6) {
		case 0:
			keys = append(keys, modelKey{key: RaftLogKey(RangeID(1+rng.IntN(3)), rng.Uint64()), kind: 0})
		case 1:
			k, _ := UserKey(uk)
			keys = append(keys, modelKey{key: k, kind: 1})
		case 2:
			keys = append(keys, modelKey{key: appendMVCCPrefix(nil, uk), kind: 2, user: uk})
		default:
			rev := randomRevision(rng)
			k, _ := MVCCKey(uk, rev)
			keys = append(keys, modelKey{key: k, kind: 2, user: uk, rev: rev})
		}
	}
	rng.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
	got := slices.Clone(keys)
	slices.SortStableFunc(got, func(a, b modelKey) int { return CompareKeys(a.key, b.key) })
	for i := 1; i < len(got); i++ {
		a, b := got[i-1], got[i]
		if c := modelCompare(a, b); c > 0 || (c == 0) != bytes.Equal(a.key, b.key) {
			t.Fatalf("sorted %s before %s (model says %d)", PrettyKey(a.key), PrettyKey(b.key), c)
		}
	}
	// Spans: a key is in MVCCSpan(s, e) exactly when its user key is in
	// [s, e).
	for range 200 {
		s, e := randomUserKey(rng), randomUserKey(rng)
		if bytes.Compare(s, e) >= 0 {
			continue
		}
		span, err := MVCCSpan(s, e)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			want := k.kind == 2 && bytes.Compare(k.user, s) >= 0 && bytes.Compare(k.user, e) < 0
			if got := span.Contains(k.key); got != want {
				t.Fatalf("MVCCSpan(%q, %q).Contains(%s) = %v", s, e, PrettyKey(k.key), got)
			}
		}
	}
}

// randomEngineKey returns a key of any kind, or junk from the versioned
// space (span bounds, separators): the comparer orders all byte strings.
func randomEngineKey(rng *rand.Rand) []byte {
	uk := randomUserKey(rng)
	switch rng.IntN(6) {
	case 0:
		k, _ := UserKey(uk)
		return k
	case 1:
		return appendMVCCPrefix(nil, uk)
	case 2:
		k := append([]byte{versionedPrefixByte}, uk...)
		if rng.IntN(2) == 0 {
			k = append(k, randomUserKey(rng)...)
		}
		return k
	case 3:
		return RaftLogKey(1, rng.Uint64())
	default:
		k, _ := MVCCKey(uk, randomRevision(rng))
		return k
	}
}

// TestComparer checks what Pebble requires of a Comparer (base/comparer.go)
// on random keys of every kind and on junk. pebble.CheckComparer is not
// used: it also checks that a prefix with its leading bytes removed is still
// a prefix (for synthetic prefixes, which Flotilla does not use), and this
// comparer's Split looks at the leading \x03 (see keys.go).
func TestComparer(t *testing.T) {
	rng := newRand(t)
	c := keyComparer
	var keys [][]byte
	for range 600 {
		keys = append(keys, randomEngineKey(rng))
	}
	keys = append(keys, []byte{versionedPrefixByte}, []byte{versionedPrefixByte + 1}, []byte{0xff, 0xff})
	for _, a := range keys {
		n := c.Split(a)
		prefix, suffix := a[:n], a[n:]
		if c.Split(prefix) != len(prefix) {
			t.Fatalf("Split(prefix of %s) = %d, want %d", PrettyKey(a), c.Split(prefix), len(prefix))
		}
		if len(suffix) > 0 && c.Compare(prefix, a) >= 0 {
			t.Fatalf("prefix of %s does not sort before it", PrettyKey(a))
		}
		if got := c.Successor(nil, a); c.Compare(a, got) > 0 {
			t.Fatalf("Successor(%s) = %s, before it", PrettyKey(a), PrettyKey(got))
		}
		if len(suffix) == 0 {
			is := c.ImmediateSuccessor(nil, a)
			if c.Split(is) != len(is) || c.Compare(a, is) >= 0 {
				t.Fatalf("ImmediateSuccessor(%s) = %s: not a greater prefix", PrettyKey(a), PrettyKey(is))
			}
			for _, p := range keys {
				if c.Split(p) == len(p) && c.Compare(a, p) < 0 && c.Compare(p, is) < 0 {
					t.Fatalf("prefix %s lies between %s and its ImmediateSuccessor %s", PrettyKey(p), PrettyKey(a), PrettyKey(is))
				}
			}
		}
		for _, b := range keys {
			m := c.Split(b)
			res := c.Compare(a, b)
			want := bytes.Compare(prefix, b[:m])
			if want == 0 {
				want = c.ComparePointSuffixes(suffix, b[m:])
			}
			if res != want {
				t.Fatalf("Compare(%s, %s) = %d, but prefixes and suffixes say %d", PrettyKey(a), PrettyKey(b), res, want)
			}
			if c.Equal(a, b) != (res == 0) || c.Compare(b, a) != -res {
				t.Fatalf("Equal or Compare(%s, %s) inconsistent", PrettyKey(a), PrettyKey(b))
			}
			if aa, ab := c.AbbreviatedKey(a), c.AbbreviatedKey(b); (aa < ab && res >= 0) || (aa > ab && res <= 0) {
				t.Fatalf("AbbreviatedKey disagrees with Compare(%s, %s) = %d", PrettyKey(a), PrettyKey(b), res)
			}
			if res < 0 {
				sep := c.Separator(nil, a, b)
				if c.Compare(a, sep) > 0 || c.Compare(sep, b) >= 0 {
					t.Fatalf("Separator(%s, %s) = %s, not in [a, b)", PrettyKey(a), PrettyKey(b), PrettyKey(sep))
				}
			}
		}
	}
	// The suffixes of one prefix sort newest first, after the empty suffix.
	suffixes := [][]byte{nil}
	for _, rev := range []int64{math.MaxInt64, 1 << 40, 300, 2, 1} {
		k := mustMVCCKey(t, "k", rev)
		suffixes = append(suffixes, k[splitKey(k):])
	}
	if !slices.IsSortedFunc(suffixes, c.ComparePointSuffixes) || !slices.IsSortedFunc(suffixes, c.CompareRangeSuffixes) {
		t.Fatalf("suffixes out of order: %q", suffixes)
	}
}

func TestVersionEncoding(t *testing.T) {
	for _, v := range []Version{
		{ModRevision: 1, CreateRevision: 1, Version: 1},
		{Value: []byte("v"), ModRevision: 1 << 40, CreateRevision: 7, Version: 3, Lease: 99},
		{ModRevision: 5, Deleted: true},
		{Value: []byte{0}, ModRevision: math.MaxInt64, CreateRevision: math.MinInt64, Version: -1, Lease: math.MaxInt64},
	} {
		b := EncodeVersion([]byte("prefix"), v)
		got, err := DecodeVersion(b[len("prefix"):])
		if err != nil || !reflect.DeepEqual(got, v) {
			t.Fatalf("DecodeVersion(EncodeVersion(%+v)) = %+v, %v", v, got, err)
		}
	}
	if n := len(EncodeVersion(nil, Version{Value: []byte("v"), ModRevision: 1000, CreateRevision: 1000, Version: 1})); n != 8 {
		t.Errorf("a fresh one-byte put takes %d bytes, want 8", n)
	}
	good := EncodeVersion(nil, Version{Value: []byte("v"), ModRevision: 300, CreateRevision: 1, Version: 2})
	for _, b := range [][]byte{nil, {versionFormat}, {2, 0, 1, 1, 1, 1}, {versionFormat, 2, 1, 1, 1, 1}, good[:3],
		{versionFormat, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01, 0, 0, 0}} {
		if _, err := DecodeVersion(b); !errors.Is(err, ErrBadVersion) {
			t.Errorf("DecodeVersion(%x): %v, want ErrBadVersion", b, err)
		}
	}
}

func TestMVCCPutBadInput(t *testing.T) {
	e := openMem(t, nil)
	b := e.NewBatch()
	defer b.Close()
	for _, v := range []Version{
		{},
		{ModRevision: -1, CreateRevision: 1, Version: 1},
		{ModRevision: 5, CreateRevision: 6, Version: 1},
		{ModRevision: 5, CreateRevision: 0, Version: 1},
		{ModRevision: 5, CreateRevision: 5, Version: 0},
		{ModRevision: 5, CreateRevision: 5, Version: 1, Lease: -1},
		{ModRevision: 5, Deleted: true, Value: []byte("v")},
		{ModRevision: 5, Deleted: true, CreateRevision: 5, Version: 1},
	} {
		if err := MVCCPut(b, []byte("k"), v); !errors.Is(err, ErrBadVersion) {
			t.Errorf("MVCCPut(%+v): %v, want ErrBadVersion", v, err)
		}
	}
	if err := MVCCPut(b, nil, Version{ModRevision: 1, Deleted: true}); !errors.Is(err, ErrEmptyKey) {
		t.Errorf("empty key: %v", err)
	}
	if !b.Empty() {
		t.Fatal("rejected puts reached the batch")
	}
	mustCommit(t, b, false)
	if err := MVCCPut(b, []byte("k"), Version{ModRevision: 1, Deleted: true}); !errors.Is(err, ErrBatchDone) {
		t.Fatalf("put after commit: %v", err)
	}
}

// mvccModel is the reference: each user key's versions in revision order.
type mvccModel map[string][]Version

func (m mvccModel) get(key string, rev int64) (Version, bool) {
	rev = readRevision(rev)
	vs := m[key]
	for i := len(vs) - 1; i >= 0; i-- {
		if vs[i].ModRevision <= rev {
			return vs[i], true
		}
	}
	return Version{}, false
}

type keyVersion struct {
	Key string
	V   Version
}

func (m mvccModel) scan(start, end string, rev int64, opts MVCCScanOptions) []keyVersion {
	var keys []string
	for k := range m {
		if k >= start && (end == "" || k < end) {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	if opts.Reverse {
		slices.Reverse(keys)
	}
	var out []keyVersion
	for _, k := range keys {
		if opts.Limit > 0 && len(out) == opts.Limit {
			break
		}
		if v, ok := m.get(k, rev); ok && (!v.Deleted || opts.Tombstones) {
			out = append(out, keyVersion{k, v})
		}
	}
	return out
}

// compact applies MVCCCompact's rule to the model and returns how many
// versions it removed.
func (m mvccModel) compact(rev int64) int64 {
	var removed int64
	for k, vs := range m {
		i := len(vs) - 1
		for i >= 0 && vs[i].ModRevision > rev {
			i--
		}
		if i < 0 {
			continue
		}
		keepFrom := i
		if vs[i].Deleted {
			keepFrom = i + 1
		}
		removed += int64(keepFrom)
		if keepFrom == len(vs) {
			delete(m, k)
		} else {
			m[k] = slices.Clone(vs[keepFrom:])
		}
	}
	return removed
}

func (m mvccModel) versions() (n int64) {
	for _, vs := range m {
		n += int64(len(vs))
	}
	return n
}

// writeHistory writes ops random puts and deletes of keys at increasing
// revisions (with gaps), committing and sometimes flushing as it goes, and
// returns the model and the last revision. keys[0] gets a third of the
// writes, so that it has many versions.
func writeHistory(t testing.TB, rng *rand.Rand, e *Engine, keys []string, ops int) (mvccModel, int64) {
	t.Helper()
	m := mvccModel{}
	var rev int64
	b := e.NewBatch()
	for range ops {
		rev += 1 + rng.Int64N(3)
		key := keys[rng.IntN(len(keys))]
		if rng.IntN(3) == 0 {
			key = keys[0]
		}
		v := Version{ModRevision: rev, Deleted: true}
		if rng.IntN(4) != 0 {
			v = Version{Value: []byte(fmt.Sprintf("v%d", rev)), ModRevision: rev, CreateRevision: rev, Version: 1, Lease: rng.Int64N(3)}
			if rng.IntN(8) == 0 {
				v.Value = nil
			}
			if newest, ok := m.get(key, 0); ok && !newest.Deleted {
				v.CreateRevision, v.Version = newest.CreateRevision, newest.Version+1
			}
		}
		if err := MVCCPut(b, []byte(key), v); err != nil {
			t.Fatal(err)
		}
		m[key] = append(m[key], v)
		if rng.IntN(8) == 0 {
			mustCommit(t, b, false)
			b = e.NewBatch()
			if rng.IntN(8) == 0 {
				if err := e.Flush(); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	mustCommit(t, b, false)
	return m, rev
}

func collectScan(t testing.TB, r Reader, start, end string, rev int64, opts MVCCScanOptions) []keyVersion {
	t.Helper()
	var out []keyVersion
	err := MVCCScan(r, []byte(start), []byte(end), rev, opts, func(key []byte, v Version) error {
		v.Value = bytes.Clone(v.Value)
		out = append(out, keyVersion{string(key), v})
		return nil
	})
	if err != nil {
		t.Fatalf("MVCCScan(%q, %q, %d, %+v): %v", start, end, rev, opts, err)
	}
	return out
}

// checkReads compares random MVCCGet and MVCCScan calls at revisions in
// [minRev, lastRev+2] against the model; with live, tombstones count as
// absent (what compaction keeps).
func checkReads(t *testing.T, rng *rand.Rand, r Reader, m mvccModel, keys []string, minRev, lastRev int64, live bool) {
	t.Helper()
	randRev := func() int64 {
		switch rng.IntN(8) {
		case 0:
			return 0
		case 1:
			return math.MaxInt64
		default:
			return minRev + rng.Int64N(max(lastRev+3-minRev, 3))
		}
	}
	for range 300 {
		key, rev := keys[rng.IntN(len(keys))], randRev()
		got, found, err := MVCCGet(r, []byte(key), rev)
		if err != nil {
			t.Fatal(err)
		}
		want, wantFound := m.get(key, rev)
		if live {
			found, wantFound = found && !got.Deleted, wantFound && !want.Deleted
		}
		if found != wantFound || (found && !reflect.DeepEqual(got, want)) {
			t.Fatalf("MVCCGet(%q, %d) = %+v, %v; want %+v, %v", key, rev, got, found, want, wantFound)
		}
	}
	bounds := append([]string{""}, keys...)
	bounds = append(bounds, "a\x00\x00\x00", "b", "\x05")
	for range 300 {
		start, end := bounds[rng.IntN(len(bounds))], bounds[rng.IntN(len(bounds))]
		if end != "" && start >= end {
			continue
		}
		opts := MVCCScanOptions{Reverse: rng.IntN(2) == 0, Tombstones: !live && rng.IntN(2) == 0}
		if rng.IntN(3) == 0 {
			opts.Limit = 1 + rng.IntN(4)
		}
		rev := randRev()
		got := collectScan(t, r, start, end, rev, opts)
		want := m.scan(start, end, rev, opts)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("MVCCScan(%q, %q, %d, %+v):\n got %+v\nwant %+v", start, end, rev, opts, got, want)
		}
	}
}

// TestMVCCReads checks MVCCGet and MVCCScan at random revisions against the
// model, on the engine and on a snapshot, before and after a flush.
func TestMVCCReads(t *testing.T) {
	rng := newRand(t)
	e := openMem(t, nil)
	m, last := writeHistory(t, rng, e, trickyUserKeys, 600)
	checkReads(t, rng, e, m, trickyUserKeys, 1, last, false)
	snap, err := e.NewSnapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	// Writes after the snapshot are not in it.
	b := e.NewBatch()
	if err := MVCCPut(b, []byte("a"), Version{ModRevision: last + 1, Deleted: true}); err != nil {
		t.Fatal(err)
	}
	mustCommit(t, b, false)
	if err := e.Flush(); err != nil {
		t.Fatal(err)
	}
	checkReads(t, rng, snap, m, trickyUserKeys, 1, last, false)
	m["a"] = append(m["a"], Version{ModRevision: last + 1, Deleted: true})
	checkReads(t, rng, e, m, trickyUserKeys, 1, last+1, false)
}

// TestMVCCDeleteRecreate: a tombstone hides the older versions from reads
// at its revision and later, not from reads before it; a later put
// recreates the key.
func TestMVCCDeleteRecreate(t *testing.T) {
	e := openMem(t, nil)
	b := e.NewBatch()
	for _, v := range []Version{
		{Value: []byte("one"), ModRevision: 10, CreateRevision: 10, Version: 1},
		{Value: []byte("two"), ModRevision: 11, CreateRevision: 10, Version: 2},
		{ModRevision: 12, Deleted: true},
		{Value: []byte("three"), ModRevision: 14, CreateRevision: 14, Version: 1},
	} {
		if err := MVCCPut(b, []byte("k"), v); err != nil {
			t.Fatal(err)
		}
	}
	mustCommit(t, b, false)
	for _, tc := range []struct {
		rev     int64
		value   string
		found   bool
		deleted bool
	}{{9, "", false, false}, {10, "one", true, false}, {11, "two", true, false}, {12, "", true, true}, {13, "", true, true}, {14, "three", true, false}, {0, "three", true, false}} {
		v, found, err := MVCCGet(e, []byte("k"), tc.rev)
		if err != nil || found != tc.found || v.Deleted != tc.deleted || string(v.Value) != tc.value {
			t.Errorf("MVCCGet(k, %d) = %+v, %v, %v", tc.rev, v, found, err)
		}
		n := len(collectScan(t, e, "", "", tc.rev, MVCCScanOptions{}))
		if want := map[bool]int{true: 1}[tc.found && !tc.deleted]; n != want {
			t.Errorf("MVCCScan at %d: %d keys, want %d", tc.rev, n, want)
		}
	}
}

// TestMVCCCompact compacts a random history at random revisions, a few keys
// per call, and checks reads at or above the revision, the versions left,
// and the count of versions removed.
func TestMVCCCompact(t *testing.T) {
	rng := newRand(t)
	for round := range 4 {
		e := openMem(t, nil)
		m, last := writeHistory(t, rng, e, trickyUserKeys, 800) // keys[0]: ~300 versions, past mvccRangeDeleteAfter
		rev := 1 + rng.Int64N(last+2)
		if round == 0 {
			rev = last + 5 // everything: only live newest versions stay
		}
		maxKeys := 1 + rng.IntN(4)
		var resume []byte
		var removed int64
		calls := 0
		for {
			b := e.NewBatch()
			next, n, err := MVCCCompact(e, b, resume, nil, rev, maxKeys)
			if err != nil {
				t.Fatal(err)
			}
			mustCommit(t, b, false)
			removed += n
			calls++
			if next == nil {
				break
			}
			if resume != nil && bytes.Compare(next, resume) <= 0 {
				t.Fatalf("resume key %q does not advance past %q", next, resume)
			}
			resume = next
		}
		if want := (len(m) + maxKeys - 1) / maxKeys; calls != want && calls != want+1 {
			t.Errorf("%d calls of at most %d keys for %d keys", calls, maxKeys, len(m))
		}
		if want := m.compact(rev); removed != want {
			t.Fatalf("compacting at %d removed %d versions, model %d", rev, removed, want)
		}
		st, err := MVCCComputeStats(e, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if st.Versions != m.versions() {
			t.Fatalf("%d versions left after compacting at %d, model %d", st.Versions, rev, m.versions())
		}
		checkReads(t, rng, e, m, trickyUserKeys, rev, last, true)
		if err := e.Flush(); err != nil {
			t.Fatal(err)
		}
		checkReads(t, rng, e, m, trickyUserKeys, rev, last, true)
	}
}

func TestMVCCCompactBadInput(t *testing.T) {
	e := openMem(t, nil)
	b := e.NewBatch()
	defer b.Close()
	if _, _, err := MVCCCompact(e, b, nil, nil, 0, 0); !errors.Is(err, ErrBadRevision) {
		t.Fatalf("revision 0: %v", err)
	}
	if _, _, err := MVCCCompact(e, b, []byte("b"), []byte("a"), 1, 0); err == nil {
		t.Fatal("inverted span accepted")
	}
}

func TestMVCCStats(t *testing.T) {
	rng := newRand(t)
	e := openMem(t, nil)
	m, _ := writeHistory(t, rng, e, trickyUserKeys, 300)
	var want MVCCStats
	for k, vs := range m {
		want.Versions += int64(len(vs))
		for _, v := range vs {
			want.VersionBytes += int64(len(k) + versionedKeyOverhead + len(EncodeVersion(nil, v)))
		}
		if newest := vs[len(vs)-1]; !newest.Deleted {
			want.LiveKeys++
			want.LiveKeyBytes += int64(len(k))
			want.LiveValueBytes += int64(len(newest.Value))
		}
	}
	got, err := MVCCComputeStats(e, nil, nil)
	if err != nil || got != want {
		t.Fatalf("MVCCComputeStats = %+v, %v; want %+v", got, err, want)
	}
	// A plain key is not counted.
	b := e.NewBatch()
	if err := b.Set(userKey(t, "a"), []byte("plain")); err != nil {
		t.Fatal(err)
	}
	mustCommit(t, b, false)
	if got, err := MVCCComputeStats(e, []byte("a"), []byte("b")); err != nil || got.Versions != int64(len(m["a"])+len(m["a\x00"])+len(m["a\x00\x00"])+len(m["a\x00\x09"])+len(m["a\x01"])+len(m["ab"])) {
		t.Fatalf("MVCCComputeStats([a, b)) = %+v, %v", got, err)
	}
}

// TestMVCCFlushReopen: versions survive a flush and a reopen, and reads of
// absent keys from SSTs are answered by the bloom filters, which hold user
// key prefixes.
func TestMVCCFlushReopen(t *testing.T) {
	fs := vfs.NewMem()
	e := openMem(t, fs)
	b := e.NewBatch()
	for i := range 1000 {
		for rev := int64(1); rev <= 3; rev++ {
			v := Version{Value: []byte(fmt.Sprintf("%d@%d", i, rev)), ModRevision: 10*int64(i) + rev, CreateRevision: 10*int64(i) + 1, Version: rev}
			if err := MVCCPut(b, []byte(fmt.Sprintf("key-%04d", 2*i)), v); err != nil {
				t.Fatal(err)
			}
		}
	}
	mustCommit(t, b, false)
	if err := e.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	e = openMem(t, fs)
	before := e.db.Metrics().Filter.Hits
	for i := range 1000 {
		if _, found, err := MVCCGet(e, []byte(fmt.Sprintf("key-%04d", 2*i+1)), 0); err != nil || found {
			t.Fatalf("absent key %d: found %v, %v", 2*i+1, found, err)
		}
	}
	if hits := e.db.Metrics().Filter.Hits - before; hits < 900 {
		t.Fatalf("bloom filter hits = %d for 1000 reads of absent keys; want most of them", hits)
	}
	for i := range 1000 {
		key := []byte(fmt.Sprintf("key-%04d", 2*i))
		for rev := int64(1); rev <= 3; rev++ {
			v, found, err := MVCCGet(e, key, 10*int64(i)+rev)
			if err != nil || !found || string(v.Value) != fmt.Sprintf("%d@%d", i, rev) {
				t.Fatalf("MVCCGet(%s, %d) = %+v, %v, %v", key, 10*int64(i)+rev, v, found, err)
			}
		}
	}
}

// TestIncompatibleStore: a store written with Pebble's bytewise comparer
// (key format 1) is refused with ErrIncompatibleStore, naming both formats.
func TestIncompatibleStore(t *testing.T) {
	fs := vfs.NewMem()
	db, err := pebble.Open("store", &pebble.Options{FS: fs, Logger: pebbleLogger{l: quietLogger}})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = Open(Options{Dir: "store", FS: fs, Logger: quietLogger})
	if !errors.Is(err, ErrIncompatibleStore) {
		t.Fatalf("Open of a bytewise store: %v, want ErrIncompatibleStore", err)
	}
	for _, name := range []string{"leveldb.BytewiseComparator", KeyFormat} {
		if !bytes.Contains([]byte(err.Error()), []byte(name)) {
			t.Errorf("error %q does not name %q", err, name)
		}
	}
}

// FuzzDecodeMVCC checks that the versioned key and version decoders never
// panic, that what decodes re-encodes to the same thing, and that
// CompareKeys agrees with the comparer's split on any pair of byte strings.
func FuzzDecodeMVCC(f *testing.F) {
	k, _ := MVCCKey([]byte("k"), 42)
	for _, s := range [][]byte{
		k, appendMVCCPrefix(nil, []byte("k")), {}, {versionedPrefixByte}, []byte("\x03a\x00\x7f\xff\xff\xff\xff\xff\xff\xff\x09"),
		EncodeVersion(nil, Version{Value: []byte("v"), ModRevision: 300, CreateRevision: 1, Version: 2, Lease: 7}),
		EncodeVersion(nil, Version{ModRevision: 5, Deleted: true}),
		{versionFormat, 0xff},
	} {
		f.Add(s, k)
	}
	f.Fuzz(func(t *testing.T, a, b []byte) {
		if key, rev, err := DecodeMVCCKey(a); err == nil {
			again, err := MVCCKey(key, rev)
			if err != nil || !bytes.Equal(again, a) {
				t.Fatalf("%q decoded to %q@%d, re-encoded to %q (%v)", a, key, rev, again, err)
			}
		} else if !errors.Is(err, ErrMalformedKey) {
			t.Fatalf("DecodeMVCCKey(%q): %v", a, err)
		}
		if v, err := DecodeVersion(a); err == nil {
			again, err := DecodeVersion(EncodeVersion(nil, v))
			if err != nil || !reflect.DeepEqual(again, v) {
				t.Fatalf("%x decoded to %+v, re-encoded and decoded to %+v (%v)", a, v, again, err)
			}
		} else if !errors.Is(err, ErrBadVersion) {
			t.Fatalf("DecodeVersion(%x): %v", a, err)
		}
		_ = PrettyKey(a)
		an, bn := splitKey(a), splitKey(b)
		want := bytes.Compare(a[:an], b[:bn])
		if want == 0 {
			want = bytes.Compare(a[an:], b[bn:])
		}
		if got := CompareKeys(a, b); got != want || CompareKeys(b, a) != -want {
			t.Fatalf("CompareKeys(%q, %q) = %d, want %d", a, b, got, want)
		}
		if splitKey(a[:an]) != an {
			t.Fatalf("the prefix of %q is not its own prefix", a)
		}
	})
}

// TestMVCCSnapshotTransfer: versions move between stores through a snapshot
// (export, then ingestion as SSTs written with the store's comparer), and
// the ingestion replaces what the target held in the span.
func TestMVCCSnapshotTransfer(t *testing.T) {
	rng := newRand(t)
	src, dst := openMem(t, nil), openMem(t, nil)
	m, last := writeHistory(t, rng, src, trickyUserKeys, 400)
	writeHistory(t, rng, dst, trickyUserKeys, 100) // replaced by the ingestion
	span, err := MVCCSpan(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ingestAll(t, dst, []Span{span}, exportAll(t, src, []Span{span}))
	checkReads(t, rng, dst, m, trickyUserKeys, 1, last, false)
}
