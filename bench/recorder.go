// Copyright 2026 The Flotilla Authors. All rights reserved.

package bench

import (
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Histogram bounds: latencies are recorded in µs from 1 µs to an hour
// (longer ones as an hour) with 3 significant digits.
const (
	histLowestMicros  = 1
	histHighestMicros = int64(time.Hour / time.Microsecond)
	histDigits        = 3
)

func newHistogram() *hdrhistogram.Histogram {
	return hdrhistogram.New(histLowestMicros, histHighestMicros, histDigits)
}

func micros(d time.Duration) int64 {
	return max(0, min(d.Microseconds(), histHighestMicros))
}

// recorderShards bounds how many shards a recorder has: each holds a
// histogram per operation type of ~200 KB, and 8 shards keep clients from
// contending on a lock even at hundreds of thousands of operations a second.
const recorderShards = 8

// recorder collects a phase's measured operations: latencies of successful
// operations per type, errors per type and class, and the latencies and
// errors since the last timeline sample. Clients record concurrently, each
// into the shard of its number.
type recorder struct {
	shards []*recorderShard
}

type recorderShard struct {
	mu struct {
		sync.Mutex
		// ops holds successful operations' latencies per type; nil until
		// one is recorded.
		ops    [numOps]*hdrhistogram.Histogram
		errors [numOps]int64
		// classes counts errors by class.
		classes map[string]int64
		// interval holds every successful operation's latency since the
		// last sample, and intervalErrors the errors.
		interval       *hdrhistogram.Histogram
		intervalErrors int64
	}
}

func newRecorder(clients int) *recorder {
	r := &recorder{}
	for range min(clients, recorderShards) {
		s := &recorderShard{}
		s.mu.classes = make(map[string]int64)
		s.mu.interval = newHistogram()
		r.shards = append(r.shards, s)
	}
	return r
}

// record notes client's operation of type op that took latency and failed
// with class (or succeeded if class is "").
func (r *recorder) record(client int, op Op, latency time.Duration, class string) {
	us := micros(latency)
	s := r.shards[client%len(r.shards)]
	s.mu.Lock()
	defer s.mu.Unlock()
	if class != "" {
		s.mu.errors[op]++
		s.mu.classes[class]++
		s.mu.intervalErrors++
		return
	}
	h := s.mu.ops[op]
	if h == nil {
		h = newHistogram()
		s.mu.ops[op] = h
	}
	_ = h.RecordValue(us) // in range by micros
	_ = s.mu.interval.RecordValue(us)
}

// takeInterval sets into to the successful operations' latencies since
// the last call, returns the errors since then, and starts a new interval.
func (r *recorder) takeInterval(into *hdrhistogram.Histogram) (errs int64) {
	into.Reset()
	for _, s := range r.shards {
		s.mu.Lock()
		into.Merge(s.mu.interval)
		s.mu.interval.Reset()
		errs += s.mu.intervalErrors
		s.mu.intervalErrors = 0
		s.mu.Unlock()
	}
	return errs
}

// totals returns the histograms (nil for types never successful), error
// counts per type, and error counts per class, merged over the shards.
func (r *recorder) totals() (ops [numOps]*hdrhistogram.Histogram, errs [numOps]int64, classes map[string]int64) {
	classes = make(map[string]int64)
	for _, s := range r.shards {
		s.mu.Lock()
		for op, h := range s.mu.ops {
			if h == nil {
				continue
			}
			if ops[op] == nil {
				ops[op] = newHistogram()
			}
			ops[op].Merge(h)
		}
		for op, n := range s.mu.errors {
			errs[op] += n
		}
		for c, n := range s.mu.classes {
			classes[c] += n
		}
		s.mu.Unlock()
	}
	return ops, errs, classes
}
