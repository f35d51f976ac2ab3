// Copyright 2026 The Flotilla Authors. All rights reserved.

package main

import "testing"

func TestDiskReserveFlag(t *testing.T) {
	for _, tc := range []struct {
		in      string
		bytes   int64
		percent float64
		bad     bool
	}{
		{in: "1GiB", bytes: 1 << 30},
		{in: "512MB", bytes: 512e6},
		{in: "-1", bytes: -1},
		{in: "0", bytes: 0},
		{in: "5%", percent: 5},
		{in: " 2.5 %", percent: 2.5},
		{in: "0%", bad: true},
		{in: "100%", bad: true},
		{in: "x%", bad: true},
		{in: "-2", bad: true},
		{in: "lots", bad: true},
	} {
		var bytes int64 = 7
		var percent float64 = 7
		err := diskReserveFlag{&bytes, &percent}.Set(tc.in)
		if tc.bad {
			if err == nil {
				t.Errorf("%q: accepted as %d bytes, %v %%", tc.in, bytes, percent)
			}
			continue
		}
		if err != nil || bytes != tc.bytes || percent != tc.percent {
			t.Errorf("%q: %d bytes, %v %%, %v; want %d bytes, %v %%", tc.in, bytes, percent, err, tc.bytes, tc.percent)
		}
	}
}
