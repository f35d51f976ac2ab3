// Copyright 2026 The Flotilla Authors. All rights reserved.

package revcheck

import (
	"errors"
	"time"
)

// CheckAll runs CheckLinearizable (within timeout), CheckRealTime and
// CheckSnapshots over history and joins their errors: nil means every
// check passed.
func CheckAll(history []Op, timeout time.Duration) error {
	return errors.Join(
		CheckLinearizable(history, timeout),
		CheckRealTime(history),
		CheckSnapshots(history),
	)
}
