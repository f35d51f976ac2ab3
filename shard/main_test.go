// Copyright 2026 The Flotilla Authors. All rights reserved.

package shard

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

// newRand returns a seeded generator for a randomized test and logs the seed
// so that a failure can be rerun with -seed.
func newRand(t testing.TB) (*rand.Rand, uint64) {
	t.Helper()
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("seed %d (rerun with -run '^%s$' -seed %d)", seed, t.Name(), seed)
	return rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), seed
}
