// Copyright 2026 The Flotilla Authors. All rights reserved.

package server

import (
	"testing"

	"github.com/flotilladb/flotilla/rpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

func TestReserveFor(t *testing.T) {
	const gib = 1 << 30
	for _, tc := range []struct {
		name    string
		cfg     Config
		total   uint64
		reserve uint64
	}{
		{"default, large disk: 1 %", Config{}, 1000 * gib, 10 * gib},
		{"default, mid disk: 256 MiB", Config{}, 10 * gib, DefaultDiskReserve},
		{"default, small disk: a tenth", Config{}, 1 * gib, gib / 10},
		{"bytes", Config{DiskReserve: 5 * gib}, 1000 * gib, 5 * gib},
		{"percent", Config{DiskReservePercent: 5}, 1000 * gib, 50 * gib},
		{"none", Config{DiskReserve: -1}, 1000 * gib, 0},
	} {
		if got := tc.cfg.reserveFor(tc.total); got != tc.reserve {
			t.Errorf("%s: reserve %d, want %d", tc.name, got, tc.reserve)
		}
	}
	cfg := Config{Dir: "d", DiskReserve: 1, DiskReservePercent: 5}
	cfg.EnsureDefaults()
	if cfg.Validate() == nil {
		t.Error("DiskReserve and DiskReservePercent both set: accepted")
	}
	cfg = Config{Dir: "d", DiskReservePercent: 100}
	cfg.EnsureDefaults()
	if cfg.Validate() == nil {
		t.Error("DiskReservePercent 100: accepted")
	}
}

// TestUnimplementedRangeHeartbeats: a placement leader of an older build
// is recognized, whether its Unimplemented status comes straight or, on a
// forwarded request, made an Error (so that the node falls back to
// per-range reports); other errors are not taken for it.
func TestUnimplementedRangeHeartbeats(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{status.Error(codes.Unimplemented, "unknown method RangeHeartbeats for service flotilla.v1.Placement"), true},
		{rpc.ErrorFromStatus(status.Error(codes.Unimplemented, "unknown method RangeHeartbeats for service flotilla.v1.Placement"), false), true},
		{rpc.ErrorFromStatus(status.Error(codes.Unimplemented, "method RangeHeartbeats not implemented"), false), true},
		{status.Error(codes.Unavailable, "connection refused"), false},
		{nil, false},
	} {
		if got := unimplemented(tc.err); got != tc.want {
			t.Errorf("unimplemented(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}
