// Copyright 2026 The Flotilla Authors. All rights reserved.

// Package badinput says, independently of the checks the code under test
// applies (flotillapb.Check*), which requests must be refused: the oracle
// of the fuzz targets of router and server.
package badinput

import (
	"bytes"

	"github.com/flotilladb/flotilla/rpc/flotillapb"
)

// Key reports whether k is not a valid key: empty or over the key limit.
func Key(k []byte) bool { return len(k) == 0 || len(k) > flotillapb.MaxKeySize }

// Span reports whether a span is invalid: an end before the start, or a
// bound over the key limit (an empty start is the beginning of the
// keyspace, an empty end its end).
func Span(start, end []byte) bool {
	return len(start) > flotillapb.MaxKeySize || len(end) > flotillapb.MaxKeySize ||
		len(end) > 0 && bytes.Compare(start, end) > 0
}

// Op reports whether a batch op is invalid with values limited to
// maxValue bytes, or has no op set.
func Op(op *flotillapb.Op, maxValue int) bool {
	switch o := op.GetOp().(type) {
	case *flotillapb.Op_Put:
		return Key(o.Put.GetKey()) || len(o.Put.GetValue()) > maxValue
	case *flotillapb.Op_Delete:
		return Key(o.Delete.GetKey())
	case *flotillapb.Op_DeleteRange:
		return Span(o.DeleteRange.GetStartKey(), o.DeleteRange.GetEndKey())
	case *flotillapb.Op_Cas:
		return Key(o.Cas.GetKey()) || len(o.Cas.GetExpected()) > maxValue || len(o.Cas.GetValue()) > maxValue
	}
	return true // no op set
}
