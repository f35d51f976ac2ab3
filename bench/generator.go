// Copyright 2026 The Flotilla Authors. All rights reserved.

package bench

import (
	"bytes"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
)

// keySpace is the record numbering shared by a Runner's clients: how many
// records were loaded, the next number an insert takes, and how far inserts
// are acknowledged, which bounds what Latest may pick (YCSB's
// AcknowledgedCounterGenerator: a record is picked only once it and every
// record before it have been written).
type keySpace struct {
	recordCount int64
	// next is the number the next insert takes. Starts at recordCount.
	next atomic.Int64
	// acked is the count of acknowledged records: every record below it
	// has been inserted (or its insert has failed; either way it is done).
	// Starts at recordCount (Load is assumed). Written under mu.
	acked atomic.Int64
	mu    struct {
		sync.Mutex
		// pending holds acknowledged records above acked, waiting for the
		// gap below them to close.
		pending map[int64]struct{}
	}
}

func newKeySpace(recordCount int64) *keySpace {
	k := &keySpace{recordCount: recordCount}
	k.next.Store(recordCount)
	k.acked.Store(recordCount)
	k.mu.pending = make(map[int64]struct{})
	return k
}

// claim returns the record number for a new insert.
func (k *keySpace) claim() int64 { return k.next.Add(1) - 1 }

// acknowledge marks record n's insert done (successful or not).
func (k *keySpace) acknowledge(n int64) {
	k.mu.Lock()
	defer k.mu.Unlock()
	acked := k.acked.Load()
	if n != acked {
		k.mu.pending[n] = struct{}{}
		return
	}
	acked++
	for {
		if _, ok := k.mu.pending[acked]; !ok {
			break
		}
		delete(k.mu.pending, acked)
		acked++
	}
	k.acked.Store(acked)
}

// operation is one operation a generator chose.
type operation struct {
	op Op
	// record is the record worked on (for an insert, the number claimed,
	// which the caller must acknowledge when the insert is done).
	record int64
	// scanLength is a scan's limit, in 1..MaxScanLength.
	scanLength int
}

// generator chooses one client's operations. With the same seed and
// stream it chooses the same operations and records, except where the
// records depend on other clients: insert numbers and Latest's picks
// follow the shared keySpace. It is owned by one goroutine.
type generator struct {
	w    *Workload
	keys *keySpace
	rng  *rand.Rand
	// ops are the operations of positive weight, and cumulative their
	// cumulative normalized weights (the last is 1).
	ops        []Op
	cumulative []float64
	// scrambled draws Zipfian ranks over scrambledZipfianItems; shared
	// read-only between generators.
	scrambled *zipfian
	// latest draws recency ranks; this generator's own, grown as records
	// are acknowledged.
	latest zipfian
}

// newGenerator returns the generator for one client. scrambled may be nil
// unless w.RequestDistribution is Zipfian.
func newGenerator(w *Workload, keys *keySpace, scrambled *zipfian, seed, stream uint64) *generator {
	g := &generator{w: w, keys: keys, scrambled: scrambled, rng: rand.New(rand.NewPCG(seed, stream))}
	props := w.proportions()
	sum := 0.0
	for _, p := range props {
		sum += p
	}
	acc := 0.0
	for op, p := range props {
		if p > 0 {
			acc += p
			g.ops = append(g.ops, Op(op))
			g.cumulative = append(g.cumulative, acc/sum)
		}
	}
	if w.RequestDistribution == Latest {
		g.latest = newZipfian(max(1, keys.acked.Load()), w.ZipfianConstant)
	}
	return g
}

// next chooses the next operation.
func (g *generator) next() operation {
	u := g.rng.Float64()
	i := 0
	for i < len(g.ops)-1 && u >= g.cumulative[i] {
		i++
	}
	o := operation{op: g.ops[i]}
	switch o.op {
	case OpInsert:
		o.record = g.keys.claim()
	case OpScan:
		o.record = g.chooseRecord()
		o.scanLength = 1 + g.rng.IntN(g.w.MaxScanLength)
	default:
		o.record = g.chooseRecord()
	}
	return o
}

// chooseRecord picks an existing record by the request distribution.
func (g *generator) chooseRecord() int64 {
	switch g.w.RequestDistribution {
	case Zipfian:
		rank := g.scrambled.next(g.rng.Float64())
		return int64(fnvHash64(rank) % uint64(g.w.RecordCount))
	case Latest:
		acked := g.keys.acked.Load()
		if acked < 1 {
			return 0
		}
		g.latest.grow(acked)
		return acked - 1 - g.latest.next(g.rng.Float64())
	default:
		return g.rng.Int64N(g.w.RecordCount)
	}
}

// appendKey appends record n's key of keySize bytes: KeyPrefix and the
// decimal FNV hash of n, zero-padded (keySize >= MinKeySize).
func appendKey(dst []byte, n int64, keySize int) []byte {
	return appendHashKey(dst, fnvHash64(n), keySize)
}

// appendHashKey appends the key of keySize bytes of the record whose hash
// is h. Keys of one size order as their hashes do: they share the prefix
// and the zero-padded digits have the same length (keySize >= MinKeySize
// leaves room for a hash's 19 digits).
func appendHashKey(dst []byte, h uint64, keySize int) []byte {
	var digits [20]byte
	d := strconv.AppendUint(digits[:0], h, 10)
	dst = append(dst, KeyPrefix...)
	for range keySize - len(KeyPrefix) - len(d) {
		dst = append(dst, '0')
	}
	return append(dst, d...)
}

// valueHeaderSize is the size of a value's header for a key of keySize
// bytes: the key, '/', the sequence number in 16 hex digits, '/'.
func valueHeaderSize(keySize int) int { return keySize + 18 }

// fillerAlphabet makes values printable, with 6 random bits per byte as
// YCSB's random values have, so compression gains little.
const fillerAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

// appendValue appends the value of size bytes that write number seq puts
// to key: the header (key/seq/) and filler derived from seq alone, so the
// value can be rebuilt from key and seq to check it. If size is smaller
// than the header, the header is cut (such values cannot be verified).
func appendValue(dst, key []byte, seq uint64, size int) []byte {
	start := len(dst)
	dst = append(dst, key...)
	dst = append(dst, '/')
	var hex [16]byte
	for i := range hex {
		hex[i] = "0123456789abcdef"[(seq>>(60-4*i))&0xf]
	}
	dst = append(dst, hex[:]...)
	dst = append(dst, '/')
	if len(dst)-start >= size {
		return dst[:start+size]
	}
	// splitmix64 seeded by seq: cheap, allocation-free, deterministic.
	x := seq
	for len(dst)-start < size {
		x += 0x9E3779B97F4A7C15
		z := x
		z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9
		z = (z ^ (z >> 27)) * 0x94D049BB133111EB
		z ^= z >> 31
		for i := 0; i < 8 && len(dst)-start < size; i++ {
			dst = append(dst, fillerAlphabet[z&63])
			z >>= 8
		}
	}
	return dst
}

// parseValue checks that value is one appendValue made for key at size
// bytes and returns its sequence number. scratch is reused for the rebuilt
// value and returned for reuse.
func parseValue(key, value []byte, size int, scratch []byte) (seq uint64, ok bool, _ []byte) {
	h := valueHeaderSize(len(key))
	if len(value) != size || size < h || !bytes.HasPrefix(value, key) || value[len(key)] != '/' || value[h-1] != '/' {
		return 0, false, scratch
	}
	seq, err := strconv.ParseUint(string(value[len(key)+1:h-1]), 16, 64)
	if err != nil {
		return 0, false, scratch
	}
	scratch = appendValue(scratch[:0], key, seq, size)
	return seq, bytes.Equal(scratch, value), scratch
}
