// Copyright 2026 The Flotilla Authors. All rights reserved.

package server

import (
	"time"

	"github.com/flotilladb/flotilla/rpc/flotillapb"
)

// Timeouts of the node's own calls to other nodes.
const (
	// lookupTimeout bounds one LookupRange call made for the gateway's
	// router, so that a placement driver that cannot answer costs a request
	// at most this long before the router falls back to a stale entry, or
	// the gateway to guessing.
	lookupTimeout = 2 * time.Second
	// connectWait bounds the wait for a connection to a node before a
	// request moves on to another node.
	connectWait = time.Second
)

// unavailable is the error of a request this node could not serve or
// send: it was certainly not applied.
func unavailable(msg string) *flotillapb.Error {
	return &flotillapb.Error{
		Message: msg,
		Outcome: flotillapb.Outcome_NOT_APPLIED,
		Detail:  &flotillapb.Error_Unavailable{Unavailable: &flotillapb.Unavailable{}},
	}
}

// invalidArgument is the error of a malformed request: not applied.
func invalidArgument(field, msg string) *flotillapb.Error {
	return &flotillapb.Error{
		Message: msg,
		Outcome: flotillapb.Outcome_NOT_APPLIED,
		Detail:  &flotillapb.Error_InvalidArgument{InvalidArgument: &flotillapb.InvalidArgument{Field: field}},
	}
}
