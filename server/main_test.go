// Copyright 2026 The Flotilla Authors. All rights reserved.

package server_test

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
