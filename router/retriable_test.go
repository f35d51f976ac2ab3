// Copyright 2026 The Flotilla Authors. All rights reserved.

package router

import (
	"testing"

	"github.com/flotilladb/flotilla/rpc/flotillapb"
)

// TestRetriable: a request refused for itself — bad input, a full disk, a
// revision compacted away or not handed out yet, a txn across ranges — is
// not sent again (it would be refused alike until the deadline); one
// refused by where it was sent is, unless it is a write that may have
// applied.
func TestRetriable(t *testing.T) {
	for _, tc := range []struct {
		name   string
		detail any
		retry  bool
	}{
		{"invalid argument", &flotillapb.Error_InvalidArgument{InvalidArgument: &flotillapb.InvalidArgument{}}, false},
		{"no space", &flotillapb.Error_NoSpace{NoSpace: &flotillapb.NoSpace{}}, false},
		{"compacted", &flotillapb.Error_Compacted{Compacted: &flotillapb.Compacted{CompactRevision: 5}}, false},
		{"future revision", &flotillapb.Error_FutureRevision{FutureRevision: &flotillapb.FutureRevision{CurrentRevision: 5}}, false},
		{"cross range", &flotillapb.Error_CrossRange{CrossRange: &flotillapb.CrossRange{RangeIds: []uint64{2, 3}}}, false},
		{"not leader", &flotillapb.Error_NotLeader{NotLeader: &flotillapb.NotLeader{}}, true},
		{"unavailable", &flotillapb.Error_Unavailable{Unavailable: &flotillapb.Unavailable{}}, true},
		{"server busy", &flotillapb.Error_ServerBusy{ServerBusy: &flotillapb.ServerBusy{}}, true},
	} {
		for _, write := range []bool{false, true} {
			fe := &flotillapb.Error{Message: tc.name, Outcome: flotillapb.Outcome_NOT_APPLIED}
			if !write {
				fe.Outcome = flotillapb.Outcome_OUTCOME_UNSPECIFIED
			}
			switch d := tc.detail.(type) {
			case *flotillapb.Error_InvalidArgument:
				fe.Detail = d
			case *flotillapb.Error_NoSpace:
				fe.Detail = d
			case *flotillapb.Error_Compacted:
				fe.Detail = d
			case *flotillapb.Error_FutureRevision:
				fe.Detail = d
			case *flotillapb.Error_CrossRange:
				fe.Detail = d
			case *flotillapb.Error_NotLeader:
				fe.Detail = d
			case *flotillapb.Error_Unavailable:
				fe.Detail = d
			case *flotillapb.Error_ServerBusy:
				fe.Detail = d
			}
			if got := Retriable(fe, write); got != tc.retry {
				t.Errorf("Retriable(%s, write %v) = %v, want %v", tc.name, write, got, tc.retry)
			}
			if got := Permanent(fe); got == tc.retry {
				t.Errorf("Permanent(%s) = %v", tc.name, got)
			}
		}
	}
}
