// Copyright 2026 The Flotilla Authors. All rights reserved.

package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"time"
)

// Defaults of Config's fields.
const (
	// DefaultClients is Config.Clients' default.
	DefaultClients = 16
	// DefaultDuration is Config.Duration's default when MaxOps is zero too.
	DefaultDuration = 30 * time.Second
	// DefaultOpTimeout is Config.OpTimeout's default.
	DefaultOpTimeout = 10 * time.Second
	// LateThreshold is how far past its intended start an open-loop
	// operation may be sent before it counts as late.
	LateThreshold = time.Millisecond
)

// Config configures a Runner: the workload and how it is driven. Leave
// fields zero for their defaults; NewRunner calls EnsureDefaults and
// Validate, and reports carry the result (with the seed chosen).
type Config struct {
	// Workload is what to issue. Its zero sizes take their defaults too.
	Workload Workload `json:"workload"`
	// Clients is how many goroutines issue operations, each one at a time.
	// In the closed loop (Rate 0) it is the concurrency; in the open loop
	// it bounds the operations in flight: when every client is busy,
	// operations start late (counted in the report) but their latency is
	// still measured from the intended start. Default DefaultClients.
	Clients int `json:"clients"`
	// Rate is the open loop's target rate in operations per second over all
	// clients: operation i is intended to start at i/Rate seconds after
	// the phase starts. 0 (the default) runs a closed loop: each client
	// issues its next operation as soon as the last one returns. Load
	// always runs a closed loop.
	Rate float64 `json:"rate"`
	// Duration bounds a run's measured time (after Warmup). Default
	// DefaultDuration if MaxOps is 0 too, else 0: no bound but MaxOps.
	Duration time.Duration `json:"duration_ns"`
	// MaxOps bounds a run's measured operations (after Warmup); 0 (the
	// default) for no bound but Duration. A run ends at whichever bound
	// comes first.
	MaxOps int64 `json:"max_ops"`
	// Warmup is run before the measured time and left out of the report.
	// Default 0.
	Warmup time.Duration `json:"warmup_ns"`
	// OpTimeout bounds each operation (its context's deadline); an
	// operation past it fails with class "timeout". Default
	// DefaultOpTimeout.
	OpTimeout time.Duration `json:"op_timeout_ns"`
	// Seed seeds the clients' generators: client c of a phase draws from
	// PCG(Seed, phase<<32|c), so a run repeats with the same seed (except
	// where clients interleave: insert numbers and Latest's picks). 0 (the
	// default) picks one from the clock; reports record the seed used.
	Seed uint64 `json:"seed"`
	// Verify tracks every write so that Runner.Verify can re-read the keys
	// and check each holds a value that may be current, and checks every
	// value read is well-formed for its key. It needs Workload.ValueSize
	// of at least KeySize+18 and memory per record written. Default false.
	Verify bool `json:"verify"`
	// Progress receives a line a second while a phase runs: elapsed time,
	// ops/s and p99 over the last second, errors so far. nil (the
	// default) is quiet; the caller decides, e.g. only on a terminal.
	Progress io.Writer `json:"-"`
	// Testing holds knobs for tests; nil in production.
	Testing *TestingKnobs `json:"-"`
}

// TestingKnobs change a Runner's behaviour in tests.
type TestingKnobs struct {
	// Clock replaces the real clock for scheduling and timing. (Tests may
	// instead run under testing/synctest, whose fake time the real clock
	// follows.)
	Clock Clock
}

// Clock is the time a Runner measures and waits by. Its methods are called
// concurrently by every client.
type Clock interface {
	// Now returns the current time; differences of readings must be
	// monotonic.
	Now() time.Time
	// Sleep waits for d (returning at once if d <= 0) or until ctx is
	// done, in which case it returns ctx's error.
	Sleep(ctx context.Context, d time.Duration) error
}

// realClock is the time package's clock.
type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// EnsureDefaults fills unset fields, and the workload's, with their
// defaults. It leaves Seed 0 for NewRunner to pick.
func (c *Config) EnsureDefaults() {
	c.Workload.EnsureDefaults()
	if c.Clients == 0 {
		c.Clients = DefaultClients
	}
	if c.Duration == 0 && c.MaxOps == 0 {
		c.Duration = DefaultDuration
	}
	if c.OpTimeout == 0 {
		c.OpTimeout = DefaultOpTimeout
	}
}

// Validate reports every problem, the workload's included, at once,
// joined. It expects EnsureDefaults to have run.
func (c *Config) Validate() error {
	var errs []error
	if err := c.Workload.Validate(); err != nil {
		errs = append(errs, err)
	}
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("bench: config: "+format, args...))
	}
	if c.Clients < 1 {
		bad("Clients is %d; it must be at least 1", c.Clients)
	}
	if !(c.Rate >= 0) || math.IsInf(c.Rate, 0) {
		bad("Rate is %v; it must be finite and not negative (0 for a closed loop)", c.Rate)
	}
	if c.Duration < 0 {
		bad("Duration is %v; it must not be negative", c.Duration)
	}
	if c.MaxOps < 0 {
		bad("MaxOps is %d; it must not be negative", c.MaxOps)
	}
	if c.Duration == 0 && c.MaxOps == 0 {
		bad("Duration and MaxOps are both 0: a run would not end")
	}
	if c.Warmup < 0 {
		bad("Warmup is %v; it must not be negative", c.Warmup)
	}
	if c.OpTimeout <= 0 {
		bad("OpTimeout is %v; it must be positive", c.OpTimeout)
	}
	if c.Verify && c.Workload.ValueSize < valueHeaderSize(c.Workload.KeySize) {
		bad("Verify needs values of at least %d bytes (KeySize+18) to hold the key and a sequence number; ValueSize is %d",
			valueHeaderSize(c.Workload.KeySize), c.Workload.ValueSize)
	}
	return errors.Join(errs...)
}

func (c *Config) clock() Clock {
	if c.Testing != nil && c.Testing.Clock != nil {
		return c.Testing.Clock
	}
	return realClock{}
}
