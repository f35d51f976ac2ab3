// Copyright 2026 The Flotilla Authors. All rights reserved.

package router

import (
	"testing"

	"github.com/flotilladb/flotilla/rpc/flotillapb"
)

// TestRouted: a header with a range ID, a version or the forwarded mark
// routes its request; a version alone too, since only its sender can route
// the request anew when the version is wrong.
func TestRouted(t *testing.T) {
	for _, tc := range []struct {
		h    *flotillapb.RequestHeader
		want bool
	}{
		{nil, false},
		{&flotillapb.RequestHeader{}, false},
		{&flotillapb.RequestHeader{RangeId: 2}, true},
		{&flotillapb.RequestHeader{Version: 5}, true},
		{&flotillapb.RequestHeader{Forwarded: true}, true},
	} {
		if got := Routed(tc.h); got != tc.want {
			t.Errorf("Routed(%v) = %v, want %v", tc.h, got, tc.want)
		}
	}
}
