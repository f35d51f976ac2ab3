// Copyright 2026 The Flotilla Authors. All rights reserved.

package multiraft_test

import (
	"flag"
	"math/rand/v2"
	"testing"
	"time"

	"go.uber.org/goleak"
)

var seedFlag = flag.Uint64("seed", 0, "seed for randomized tests (0: pick one and print it)")

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// newSeed returns the seed of a randomized test, printed so a failure can be
// rerun with -seed.
func newSeed(t testing.TB) uint64 {
	t.Helper()
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -run '^%s$' -seed %d)", seed, t.Name(), seed)
	return seed
}

func newRand(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, seed^0x5bd1e995)) }
