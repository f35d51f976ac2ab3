// Copyright 2026 The Flotilla Authors. All rights reserved.

package engine

import (
	"bytes"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"
)

func TestKeyRoundTrip(t *testing.T) {
	rangeIDs := []RangeID{1, 2, 255, 256, 1 << 32, math.MaxUint64}
	for _, id := range rangeIDs {
		for _, tc := range []struct {
			key    []byte
			kind   KeyKind
			suffix byte
		}{
			{RangeAppliedStateKey(id), KindRangeReplicated, appliedStateSuffix},
			{RangeConfStateKey(id), KindRangeReplicated, confStateSuffix},
			{RangeDescriptorKey(id), KindRangeReplicated, descriptorSuffix},
			{RangeLeaseKey(id), KindRangeReplicated, leaseSuffix},
			{RaftHardStateKey(id), KindRangeUnreplicated, hardStateSuffix},
			{RaftReplicaIDKey(id), KindRangeUnreplicated, replicaIDSuffix},
			{RaftSnapshotMetaKey(id), KindRangeUnreplicated, snapshotMetaSuffix},
			{RaftTruncatedStateKey(id), KindRangeUnreplicated, truncatedStateSuffix},
			{RangeTombstoneKey(id), KindRangeUnreplicated, tombstoneSuffix},
		} {
			d, err := DecodeKey(tc.key)
			if err != nil {
				t.Fatalf("DecodeKey(%q): %v", tc.key, err)
			}
			if d.Kind != tc.kind || d.RangeID != id || !bytes.Equal(d.Suffix, []byte{tc.suffix}) {
				t.Fatalf("DecodeKey(%q) = %+v", tc.key, d)
			}
			if !RangeSpan(id).Contains(tc.key) {
				t.Fatalf("%s not in %s", PrettyKey(tc.key), RangeSpan(id))
			}
		}
		for _, index := range []uint64{0, 1, 255, 256, 1 << 40, math.MaxUint64} {
			k := RaftLogKey(id, index)
			gotID, gotIndex, err := DecodeRaftLogKey(k)
			if err != nil || gotID != id || gotIndex != index {
				t.Fatalf("DecodeRaftLogKey(RaftLogKey(%d, %d)) = %d, %d, %v", id, index, gotID, gotIndex, err)
			}
			d, err := DecodeKey(k)
			if err != nil || d.Kind != KindRaftLog || d.RangeID != id || d.Index != index {
				t.Fatalf("DecodeKey(RaftLogKey(%d, %d)) = %+v, %v", id, index, d, err)
			}
			if !RangeUnreplicatedSpan(id).Contains(k) || RangeReplicatedSpan(id).Contains(k) {
				t.Fatalf("log key %s in the wrong span", PrettyKey(k))
			}
		}
	}
	for _, uk := range [][]byte{{0}, []byte("a"), []byte("\xff\xff"), bytes.Repeat([]byte("k"), MaxUserKeySize)} {
		k, err := UserKey(uk)
		if err != nil {
			t.Fatal(err)
		}
		got, err := DecodeUserKey(k)
		if err != nil || !bytes.Equal(got, uk) {
			t.Fatalf("DecodeUserKey(UserKey(%q)) = %q, %v", uk, got, err)
		}
		if d, err := DecodeKey(k); err != nil || d.Kind != KindUser || !bytes.Equal(d.UserKey, uk) {
			t.Fatalf("DecodeKey(UserKey(%q)) = %+v, %v", uk, d, err)
		}
	}
	for _, k := range [][]byte{StoreIdentKey(), ClusterIDKey()} {
		if d, err := DecodeKey(k); err != nil || d.Kind != KindStoreLocal {
			t.Fatalf("DecodeKey(%q) = %+v, %v", k, d, err)
		}
	}
}

// TestKeyOrdering checks the layout's ordering promises on a shuffled mix of
// every kind of key.
func TestKeyOrdering(t *testing.T) {
	rng := newRand(t)
	type tagged struct {
		key     []byte
		kind    KeyKind
		rangeID RangeID
		index   uint64
		user    []byte
	}
	var keys []tagged
	rangeIDs := []RangeID{1, 2, 3, 255, 256, 257, 1 << 16, math.MaxUint64 - 1, math.MaxUint64}
	for _, id := range rangeIDs {
		for _, k := range [][]byte{RangeAppliedStateKey(id), RangeDescriptorKey(id), RaftHardStateKey(id),
			RaftTruncatedStateKey(id), RangeTombstoneKey(id)} {
			d, _ := DecodeKey(k)
			keys = append(keys, tagged{key: k, kind: d.Kind, rangeID: id})
		}
		for range 20 {
			index := rng.Uint64N(1 << 20)
			if rng.IntN(4) == 0 {
				index = rng.Uint64()
			}
			keys = append(keys, tagged{key: RaftLogKey(id, index), kind: KindRaftLog, rangeID: id, index: index})
		}
	}
	for range 200 {
		uk := make([]byte, 1+rng.IntN(8))
		for i := range uk {
			uk[i] = byte(rng.IntN(256))
		}
		k, _ := UserKey(uk)
		keys = append(keys, tagged{key: k, kind: KindUser, user: uk})
	}
	keys = append(keys, tagged{key: StoreIdentKey(), kind: KindStoreLocal}, tagged{key: ClusterIDKey(), kind: KindStoreLocal})
	rng.Shuffle(len(keys), func(i, j int) { keys[i], keys[j] = keys[j], keys[i] })
	slices.SortFunc(keys, func(a, b tagged) int { return CompareKeys(a.key, b.key) })

	seenRange := map[RangeID]bool{}
	var prev *tagged
	for i := range keys {
		k := &keys[i]
		if prev != nil {
			if prev.kind == KindUser && k.kind != KindUser {
				t.Fatalf("%s sorts after user key %s", PrettyKey(k.key), PrettyKey(prev.key))
			}
			if prev.kind == KindUser && k.kind == KindUser && bytes.Compare(prev.user, k.user) > 0 {
				t.Fatalf("user keys out of order: %q before %q", prev.user, k.user)
			}
			if prev.kind == KindRaftLog && k.kind == KindRaftLog && prev.rangeID == k.rangeID && prev.index > k.index {
				t.Fatalf("log entries out of order: %d before %d", prev.index, k.index)
			}
			if prev.rangeID != 0 && k.rangeID != 0 && prev.rangeID > k.rangeID {
				t.Fatalf("range %d's key sorts after range %d's", k.rangeID, prev.rangeID)
			}
		}
		// A range's keys sort together: once we leave a range ID, it never
		// comes back.
		if k.rangeID != 0 && (prev == nil || prev.rangeID != k.rangeID) {
			if seenRange[k.rangeID] {
				t.Fatalf("keys of range %d are not contiguous", k.rangeID)
			}
			seenRange[k.rangeID] = true
		}
		for _, id := range rangeIDs {
			if in := RangeSpan(id).Contains(k.key); in != (k.rangeID == id) {
				t.Fatalf("RangeSpan(%d).Contains(%s) = %v", id, PrettyKey(k.key), in)
			}
		}
		prev = k
	}
}

func TestKeyBadInput(t *testing.T) {
	if _, err := UserKey(bytes.Repeat([]byte("x"), MaxUserKeySize+1)); !errors.Is(err, ErrKeyTooLarge) {
		t.Fatalf("oversized user key: got %v, want ErrKeyTooLarge", err)
	}
	if _, err := UserKey(nil); !errors.Is(err, ErrEmptyKey) {
		t.Fatalf("empty user key: got %v, want ErrEmptyKey", err)
	}
	if _, err := UserSpan(nil, bytes.Repeat([]byte("x"), MaxUserKeySize+1)); !errors.Is(err, ErrKeyTooLarge) {
		t.Fatalf("oversized span bound: got %v", err)
	}
	if _, err := UserSpan([]byte("b"), []byte("a")); err == nil {
		t.Fatal("inverted span: no error")
	}
	malformed := [][]byte{
		nil, {}, {0}, {0x03}, {0x01}, {0x01, 'r'}, {0x01, 'x', 'y'},
		append(RangePrefix(1), 'q', 'a'),                        // unknown infix
		append(RangeDescriptorKey(1), 'x'),                      // long replicated suffix
		append(RaftHardStateKey(1), 'x'),                        // long unreplicated suffix
		RaftLogPrefix(1),                                        // log key without index
		append(RaftLogKey(1, 1), 0),                             // log key too long
		RaftLogKey(1, 1)[:raftLogKeyLen-1],                      // truncated log key
		{0x02},                                                  // user prefix, no key
		append([]byte{0x02}, make([]byte, MaxUserKeySize+1)...), // oversized user key
	}
	for _, k := range malformed {
		if d, err := DecodeKey(k); err == nil {
			// A store-local key may have any suffix; nothing else may pass.
			if d.Kind != KindStoreLocal {
				t.Errorf("DecodeKey(%q) = %+v, want an error", k, d)
			}
		} else if !errors.Is(err, ErrMalformedKey) {
			t.Errorf("DecodeKey(%q): %v does not wrap ErrMalformedKey", k, err)
		}
		if !strings.HasPrefix(PrettyKey(k), "/") {
			t.Errorf("PrettyKey(%q) = %q", k, PrettyKey(k))
		}
	}
	if _, _, err := DecodeRaftLogKey(RaftHardStateKey(1)); !errors.Is(err, ErrMalformedKey) {
		t.Fatalf("DecodeRaftLogKey of a HardState key: %v", err)
	}
	if _, err := DecodeUserKey(RaftHardStateKey(1)); !errors.Is(err, ErrMalformedKey) {
		t.Fatalf("DecodeUserKey of a HardState key: %v", err)
	}
}

func TestPrettyKey(t *testing.T) {
	uk, _ := UserKey([]byte("apple"))
	for _, tc := range []struct {
		key  []byte
		want string
	}{
		{RaftLogKey(7, 42), "/Range/7/Raft/Log/42"},
		{RaftHardStateKey(7), "/Range/7/Unreplicated/HardState"},
		{RangeDescriptorKey(3), "/Range/3/Replicated/RangeDescriptor"},
		{uk, `/User/"apple"`},
		{StoreIdentKey(), `/Store/"ident"`},
		{mustMVCCKey(t, "apple", 42), `/Versioned/"apple"/42`},
		{appendMVCCPrefix(nil, []byte("apple")), `/Versioned/"apple"`},
		{[]byte{9}, `/Malformed/"\t"`},
	} {
		if got := PrettyKey(tc.key); got != tc.want {
			t.Errorf("PrettyKey(%q) = %q, want %q", tc.key, got, tc.want)
		}
	}
}

// FuzzDecodeKey checks that no input makes the decoders panic and that what
// decodes re-encodes to the same bytes.
func FuzzDecodeKey(f *testing.F) {
	uk, _ := UserKey([]byte("k"))
	vk, _ := MVCCKey([]byte("k"), 7)
	for _, k := range [][]byte{RaftLogKey(1, 2), RaftHardStateKey(3), RangeDescriptorKey(4), uk, StoreIdentKey(), {}, vk, appendMVCCPrefix(nil, []byte("k"))} {
		f.Add(k)
	}
	f.Fuzz(func(t *testing.T, key []byte) {
		_ = PrettyKey(key)
		d, err := DecodeKey(key)
		if err != nil {
			return
		}
		var again []byte
		switch d.Kind {
		case KindRaftLog:
			again = RaftLogKey(d.RangeID, d.Index)
		case KindUser:
			again, err = UserKey(d.UserKey)
		case KindVersioned:
			if d.Revision == 0 {
				again = appendMVCCPrefix(nil, d.UserKey)
			} else {
				again, err = MVCCKey(d.UserKey, d.Revision)
			}
		case KindRangeReplicated:
			again = rangeStateKey(d.RangeID, replicatedInfix, d.Suffix[0])
		case KindRangeUnreplicated:
			again = rangeStateKey(d.RangeID, unreplicatedInfix, d.Suffix[0])
		case KindStoreLocal:
			again = storeLocalKey(string(d.Suffix))
		}
		if err != nil || !bytes.Equal(again, key) {
			t.Fatalf("%q decoded to %+v, re-encoded to %q (%v)", key, d, again, err)
		}
	})
}
