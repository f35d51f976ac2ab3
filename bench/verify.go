// Copyright 2026 The Flotilla Authors. All rights reserved.

package bench

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// ErrVerifyDisabled is returned by Runner.Verify when Config.Verify is off:
// nothing was tracked.
var ErrVerifyDisabled = errors.New("bench: verify: Config.Verify is off, so writes were not tracked")

// maxMismatchesListed bounds the mismatches a VerifyError lists.
const maxMismatchesListed = 100

// verifyAttempts is how many times Verify reads a key whose read fails.
const verifyAttempts = 3

// Mismatch is a key whose value is not one that may be current, or a value
// read during a phase that was not well-formed for its key.
type Mismatch struct {
	// Key is the key, as text (keys are printable).
	Key string `json:"key"`
	// Got describes what was read: "absent", "write 0x…" (the sequence
	// number of the write whose value it is), "malformed value of N
	// bytes: …", or "read failed: …".
	Got string `json:"got"`
	// Want describes what was acceptable.
	Want string `json:"want"`
}

func (m Mismatch) String() string { return fmt.Sprintf("%s: got %s, want %s", m.Key, m.Got, m.Want) }

// VerifyError is Runner.Verify's failure: the mismatches found.
type VerifyError struct {
	// Checked is how many keys were re-read.
	Checked int
	// Total is how many mismatches were found, re-reads and reads during
	// the phases together.
	Total int
	// Mismatches lists up to 100 of them, sorted by key.
	Mismatches []Mismatch
}

func (e *VerifyError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "bench: verify: %d mismatches (%d keys re-read)", e.Total, e.Checked)
	for _, m := range e.Mismatches {
		b.WriteString("\n  ")
		b.WriteString(m.String())
	}
	if e.Total > len(e.Mismatches) {
		fmt.Fprintf(&b, "\n  … and %d more", e.Total-len(e.Mismatches))
	}
	return b.String()
}

// verifier tracks, for every record written, which values may be current,
// so that a re-read can be checked even though clients write the same keys
// concurrently and some writes fail with an unknown outcome.
//
// Writes are ordered by a logical clock (tick) read before a Put is sent
// and after it returns. For a linearizable store, once every write has
// returned, a key may hold the value of write X if:
//   - X was acknowledged and no acknowledged write started after X
//     returned (otherwise that later write overwrote X); or
//   - X failed with an unknown outcome (it may take effect at any time);
//   - or the key may be absent if no write to it was acknowledged.
//
// So per key it suffices to keep the latest start of an acknowledged write,
// the acknowledged writes that returned after it, and the failed writes.
type verifier struct {
	keySize, valueSize int
	tick               atomic.Uint64
	shards             [64]verifyShard
	// online holds the mismatches seen by reads during the phases.
	online mismatches
}

// mismatches counts mismatches and keeps the first maxMismatchesListed.
type mismatches struct {
	mu struct {
		sync.Mutex
		total  int
		listed []Mismatch
	}
}

func (m *mismatches) note(x Mismatch) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.mu.total++
	if len(m.mu.listed) < maxMismatchesListed {
		m.mu.listed = append(m.mu.listed, x)
	}
}

// get returns the count and the list.
func (m *mismatches) get() (int, []Mismatch) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.mu.total, slices.Clone(m.mu.listed)
}

type verifyShard struct {
	mu struct {
		sync.Mutex
		records map[int64]*keyHistory
	}
}

// keyHistory is what a key may hold. Invariant: every write in acked
// returned at or after latestAckedStart.
type keyHistory struct {
	// latestAckedStart is the greatest tick at which an acknowledged write
	// started; 0 if none was acknowledged.
	latestAckedStart uint64
	acked            []ackedWrite
	// unknown holds the sequence numbers of failed writes that may have
	// been applied.
	unknown []uint64
}

type ackedWrite struct {
	seq uint64
	end uint64 // tick after it returned
}

func newVerifier(w *Workload) *verifier {
	v := &verifier{keySize: w.KeySize, valueSize: w.ValueSize}
	for i := range v.shards {
		v.shards[i].mu.records = make(map[int64]*keyHistory)
	}
	return v
}

func (v *verifier) shard(record int64) *verifyShard {
	return &v.shards[uint64(record)%uint64(len(v.shards))]
}

// begin returns the tick before a write is sent.
func (v *verifier) begin() uint64 { return v.tick.Add(1) }

// end notes that write seq of record, begun at start, returned with class
// ("" if acknowledged). Class "not-applied" means the target knows the
// write was not applied.
func (v *verifier) end(record int64, seq, start uint64, class string) {
	end := v.tick.Add(1)
	if class == ClassNotApplied {
		return
	}
	s := v.shard(record)
	s.mu.Lock()
	defer s.mu.Unlock()
	h := s.mu.records[record]
	if h == nil {
		h = &keyHistory{}
		s.mu.records[record] = h
	}
	if class != "" {
		h.unknown = append(h.unknown, seq)
		return
	}
	h.latestAckedStart = max(h.latestAckedStart, start)
	h.acked = append(h.acked, ackedWrite{seq: seq, end: end})
	h.acked = slices.DeleteFunc(h.acked, func(a ackedWrite) bool { return a.end < h.latestAckedStart })
}

// checkRead checks a value read from key during a phase is well-formed
// (made by some write to that key) and notes a mismatch if not.
func (v *verifier) checkRead(key, value []byte, scratch []byte) (ok bool, _ []byte) {
	_, ok, scratch = parseValue(key, value, v.valueSize, scratch)
	if !ok {
		v.online.note(Mismatch{Key: string(key), Got: describeMalformed(value), Want: "a value written to this key"})
	}
	return ok, scratch
}

func describeMalformed(value []byte) string {
	const show = 64
	if len(value) > show {
		return fmt.Sprintf("malformed value of %d bytes: %q…", len(value), value[:show])
	}
	return fmt.Sprintf("malformed value of %d bytes: %q", len(value), value)
}

// check returns what is wrong with reading (value, found) from key, or ""
// if it may be current.
func (v *verifier) check(h *keyHistory, key, value []byte, found bool, scratch []byte) (string, []byte) {
	if !found {
		if h.latestAckedStart == 0 {
			return "", scratch
		}
		return "absent", scratch
	}
	seq, ok, scratch := parseValue(key, value, v.valueSize, scratch)
	if !ok {
		return describeMalformed(value), scratch
	}
	for _, a := range h.acked {
		if a.seq == seq {
			return "", scratch
		}
	}
	if slices.Contains(h.unknown, seq) {
		return "", scratch
	}
	return fmt.Sprintf("write %#x", seq), scratch
}

// describe lists what the key may hold, the first few alternatives of
// each kind.
func (h *keyHistory) describe() string {
	const most = 5
	var alternatives []string
	if h.latestAckedStart == 0 {
		alternatives = append(alternatives, "absent")
	}
	for i, a := range h.acked {
		if i == most {
			alternatives = append(alternatives, fmt.Sprintf("%d more writes", len(h.acked)-most))
			break
		}
		alternatives = append(alternatives, fmt.Sprintf("write %#x", a.seq))
	}
	for i, seq := range h.unknown {
		if i == most {
			alternatives = append(alternatives, fmt.Sprintf("%d more failed writes", len(h.unknown)-most))
			break
		}
		alternatives = append(alternatives, fmt.Sprintf("failed write %#x", seq))
	}
	return strings.Join(alternatives, " or ")
}

// verify re-reads every tracked key with clients goroutines and returns
// how many it checked and a *VerifyError listing the mismatches, if any.
// No writes may be in flight.
func (v *verifier) verify(ctx context.Context, t Target, clients int, opCtx func(context.Context) (context.Context, context.CancelFunc)) (int, error) {
	type item struct {
		record int64
		h      *keyHistory
	}
	var items []item
	for i := range v.shards {
		s := &v.shards[i]
		s.mu.Lock()
		for rec, h := range s.mu.records {
			items = append(items, item{rec, h})
		}
		s.mu.Unlock()
	}
	slices.SortFunc(items, func(a, b item) int { return cmp.Compare(a.record, b.record) })

	var (
		next    atomic.Int64
		checked atomic.Int64
		wg      sync.WaitGroup
		found   mismatches
	)
	for range min(clients, max(1, len(items))) {
		wg.Go(func() {
			var key, scratch []byte
			for {
				i := next.Add(1) - 1
				if i >= int64(len(items)) || ctx.Err() != nil {
					return
				}
				it := items[i]
				key = appendKey(key[:0], it.record, v.keySize)
				var (
					value  []byte
					exists bool
					err    error
				)
				for range verifyAttempts {
					c, cancel := opCtx(ctx)
					value, exists, err = t.Get(c, key)
					cancel()
					if err == nil || ctx.Err() != nil {
						break
					}
				}
				if err != nil {
					found.note(Mismatch{Key: string(key), Got: "read failed: " + err.Error(), Want: it.h.describe()})
					continue
				}
				checked.Add(1)
				var got string
				if got, scratch = v.check(it.h, key, value, exists, scratch); got != "" {
					found.note(Mismatch{Key: string(key), Got: got, Want: it.h.describe()})
				}
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return int(checked.Load()), fmt.Errorf("bench: verify: interrupted after %d of %d keys: %w", checked.Load(), len(items), err)
	}
	n := int(checked.Load())
	total, listed := found.get()
	onlineTotal, onlineListed := v.online.get()
	total += onlineTotal
	if total == 0 {
		return n, nil
	}
	listed = append(listed, onlineListed...)
	slices.SortFunc(listed, func(a, b Mismatch) int { return cmp.Compare(a.Key, b.Key) })
	if len(listed) > maxMismatchesListed {
		listed = listed[:maxMismatchesListed]
	}
	return n, &VerifyError{Checked: n, Total: total, Mismatches: listed}
}
