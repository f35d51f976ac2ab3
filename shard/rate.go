// Copyright 2026 The Flotilla Authors. All rights reserved.

package shard

import (
	"sync"
	"time"
)

// rateWindow is the span over which read and write rates are averaged.
const rateWindow = 10 // seconds

// rateCounter counts events into one-second buckets and reports the average
// rate over the last rateWindow whole seconds plus the current one. It is
// safe for concurrent use; it is in memory only (rates are not replicated).
type rateCounter struct {
	mu struct {
		sync.Mutex
		// counts[i] holds the events of second seconds[i] (unix time), for
		// the seconds with seconds[i] % len == i.
		counts  [rateWindow + 1]int64
		seconds [rateWindow + 1]int64
	}
}

func (c *rateCounter) add(now time.Time, n int64) {
	sec := now.Unix()
	i := int(uint64(sec) % uint64(len(c.mu.counts)))
	c.mu.Lock()
	if c.mu.seconds[i] != sec {
		c.mu.seconds[i], c.mu.counts[i] = sec, 0
	}
	c.mu.counts[i] += n
	c.mu.Unlock()
}

// rate returns events per second over the window ending at now.
func (c *rateCounter) rate(now time.Time) float64 {
	sec := now.Unix()
	var total int64
	c.mu.Lock()
	for i, s := range c.mu.seconds {
		if s > sec-int64(len(c.mu.counts)) && s <= sec {
			total += c.mu.counts[i]
		}
	}
	c.mu.Unlock()
	return float64(total) / float64(len(c.mu.counts))
}

// reset forgets every event counted: they were counted for a range whose
// span has changed (a split).
func (c *rateCounter) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.counts, c.mu.seconds = [rateWindow + 1]int64{}, [rateWindow + 1]int64{}
}
