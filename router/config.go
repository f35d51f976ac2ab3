// Copyright 2026 The Flotilla Authors. All rights reserved.

package router

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
)

// Defaults for Config.
const (
	DefaultTTL                = 10 * time.Second
	DefaultMinBackoff         = 10 * time.Millisecond
	DefaultMaxBackoff         = time.Second
	DefaultTimeout            = 10 * time.Second
	DefaultReadAttemptTimeout = 2 * time.Second
	// DefaultMaxImmediateRetries bounds the retries in a row that skip the
	// backoff (leader hints, new descriptors), so that replicas that keep
	// pointing at each other cannot make a request spin.
	DefaultMaxImmediateRetries = 3
)

// Config configures a Router. Fill what is required, leave the rest zero for
// the defaults; New calls EnsureDefaults and Validate.
type Config struct {
	// Resolver answers cache misses. Required.
	Resolver Resolver

	// TTL is how long a cached range is used before it is looked up again.
	// An expired entry is still used when the lookup fails. Default 10 s.
	TTL time.Duration
	// MinBackoff is the first backoff of a request. Each backoff doubles it,
	// up to MaxBackoff, and sleeps a uniformly random fraction of it (full
	// jitter). Default 10 ms.
	MinBackoff time.Duration
	// MaxBackoff caps the backoff. Default 1 s.
	MaxBackoff time.Duration
	// DefaultTimeout is the total deadline of a request whose context has
	// none. Default 10 s.
	DefaultTimeout time.Duration
	// ReadAttemptTimeout bounds one attempt of a read at one replica, so
	// that a replica cut off from its peers does not hold a read for its
	// whole deadline when another could answer. Writes get no per-attempt
	// bound: an attempt cut short would make their outcome unknown.
	// Default 2 s.
	ReadAttemptTimeout time.Duration
	// MaxImmediateRetries is the number of retries in a row sent without a
	// backoff (after a leader hint, a new descriptor or an invalidated
	// entry); the next one backs off. Default 3.
	MaxImmediateRetries int

	// Local, if set, says which stores a read that allows any replica
	// (READ_FROM_FOLLOWER, READ_FROM_NEAREST) goes to first when they hold
	// a replica of its range: the gateway's own node, the client's
	// endpoints.
	Local func(store flotillapb.NodeID) bool

	// Metrics receives the router's metrics if set.
	Metrics *metrics.Set

	// Testing holds knobs for tests; nil in production.
	Testing *TestingKnobs
}

// TestingKnobs replace the router's time and randomness in tests. Each is
// called from the goroutine of the request that needs it, possibly from many
// goroutines at once.
type TestingKnobs struct {
	// Clock replaces time.Now for cache expiry.
	Clock func() time.Time
	// Sleep replaces the backoff's sleep: it waits for d or until ctx is
	// done, returning ctx's error in that case.
	Sleep func(ctx context.Context, d time.Duration) error
	// Jitter returns a duration in [0, d]; it replaces the uniformly random
	// choice of the full-jitter backoff.
	Jitter func(d time.Duration) time.Duration
}

// EnsureDefaults fills unset fields with their defaults.
func (c *Config) EnsureDefaults() {
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.MinBackoff == 0 {
		c.MinBackoff = DefaultMinBackoff
	}
	if c.MaxBackoff == 0 {
		c.MaxBackoff = DefaultMaxBackoff
	}
	if c.DefaultTimeout == 0 {
		c.DefaultTimeout = DefaultTimeout
	}
	if c.ReadAttemptTimeout == 0 {
		c.ReadAttemptTimeout = DefaultReadAttemptTimeout
	}
	if c.MaxImmediateRetries == 0 {
		c.MaxImmediateRetries = DefaultMaxImmediateRetries
	}
}

// Validate reports every problem at once. It expects EnsureDefaults to have
// run.
func (c *Config) Validate() error {
	var errs []error
	if c.Resolver == nil {
		errs = append(errs, errors.New("no Resolver given"))
	}
	if c.TTL < 0 {
		errs = append(errs, fmt.Errorf("TTL %v is negative", c.TTL))
	}
	if c.MinBackoff < 0 {
		errs = append(errs, fmt.Errorf("MinBackoff %v is negative", c.MinBackoff))
	}
	if c.MaxBackoff < c.MinBackoff {
		errs = append(errs, fmt.Errorf("MaxBackoff %v is below MinBackoff %v", c.MaxBackoff, c.MinBackoff))
	}
	if c.DefaultTimeout < 0 {
		errs = append(errs, fmt.Errorf("DefaultTimeout %v is negative", c.DefaultTimeout))
	}
	if c.ReadAttemptTimeout < 0 {
		errs = append(errs, fmt.Errorf("ReadAttemptTimeout %v is negative", c.ReadAttemptTimeout))
	}
	if c.MaxImmediateRetries < 0 {
		errs = append(errs, fmt.Errorf("MaxImmediateRetries %d is negative", c.MaxImmediateRetries))
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("router: invalid config: %w", errors.Join(errs...))
}
