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

// Revision reports whether a read's revision is invalid: negative (0 is
// the latest; a positive revision may be compacted or in the future, which
// are not input errors).
func Revision(rev int64) bool { return rev < 0 }

// CompactRevision reports whether a compaction's revision is invalid: not
// positive (one above the current revision is refused as in the future).
func CompactRevision(rev int64) bool { return rev <= 0 }

// Compare reports whether a txn's compare is invalid with values limited
// to maxValue bytes: missing, a bad key, an unknown result or target, or
// an operand of another target's kind (none at all compares with zero).
func Compare(c *flotillapb.Compare, maxValue int) bool {
	if c == nil || Key(c.GetKey()) {
		return true
	}
	switch c.GetResult() {
	case flotillapb.Compare_EQUAL, flotillapb.Compare_NOT_EQUAL, flotillapb.Compare_LESS, flotillapb.Compare_GREATER:
	default:
		return true
	}
	u := c.GetTargetUnion()
	switch c.GetTarget() {
	case flotillapb.Compare_VERSION:
		_, ok := u.(*flotillapb.Compare_Version)
		return u != nil && !ok
	case flotillapb.Compare_CREATE:
		_, ok := u.(*flotillapb.Compare_CreateRevision)
		return u != nil && !ok
	case flotillapb.Compare_MOD:
		_, ok := u.(*flotillapb.Compare_ModRevision)
		return u != nil && !ok
	case flotillapb.Compare_VALUE:
		v, ok := u.(*flotillapb.Compare_Value)
		return u != nil && !ok || ok && len(v.Value) > maxValue
	}
	return true // unknown target
}

// TxnOp reports whether a txn's op is invalid with values limited to
// maxValue bytes, or has no op set.
func TxnOp(op *flotillapb.TxnOp, maxValue int) bool {
	switch o := op.GetOp().(type) {
	case *flotillapb.TxnOp_Put:
		return Key(o.Put.GetKey()) || len(o.Put.GetValue()) > maxValue
	case *flotillapb.TxnOp_Delete:
		return Key(o.Delete.GetKey())
	case *flotillapb.TxnOp_DeleteRange:
		return Span(o.DeleteRange.GetStartKey(), o.DeleteRange.GetEndKey())
	case *flotillapb.TxnOp_Get:
		return Key(o.Get.GetKey())
	case *flotillapb.TxnOp_Scan:
		return Span(o.Scan.GetStartKey(), o.Scan.GetEndKey()) || o.Scan.GetLimit() < 0
	}
	return true // no op set
}

// Txn reports whether a txn is invalid with values limited to maxValue
// bytes and at most maxOps ops (both branches together) and maxOps
// compares: nothing in it, too many ops or compares, or a bad compare or
// op.
func Txn(req *flotillapb.TxnRequest, maxValue, maxOps int) bool {
	ops := len(req.GetSuccess()) + len(req.GetFailure())
	if ops == 0 && len(req.GetCompares()) == 0 || ops > maxOps || len(req.GetCompares()) > maxOps {
		return true
	}
	for _, c := range req.GetCompares() {
		if Compare(c, maxValue) {
			return true
		}
	}
	for _, branch := range [][]*flotillapb.TxnOp{req.GetSuccess(), req.GetFailure()} {
		for _, op := range branch {
			if TxnOp(op, maxValue) {
				return true
			}
		}
	}
	return false
}
