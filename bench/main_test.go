// Copyright 2026 The Flotilla Authors. All rights reserved.

package bench

import (
	"flag"
	"math/rand/v2"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

var seedFlag = flag.Uint64("seed", 0, "seed for the randomized tests (0: a random one, logged)")

// testSeed returns the seed for a randomized test and logs it.
func testSeed(t *testing.T) uint64 {
	t.Helper()
	seed := *seedFlag
	for seed == 0 {
		seed = rand.Uint64()
	}
	t.Logf("seed %d (rerun with: go test ./bench -run '^%s$' -args -seed=%d)", seed, t.Name(), seed)
	return seed
}
