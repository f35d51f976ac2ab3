// Copyright 2026 The Flotilla Authors. All rights reserved.

package flotillapb

import (
	"bytes"
	"fmt"
)

// The limits on keys and values, and the checks of request input against
// them. The client, every node's gateway and each replica check requests
// with these same functions (the replica again, as the last word), so a bad
// request gets the same field and message wherever it is refused.

// MaxKeySize is the largest key, in bytes.
const MaxKeySize = 4 << 10

// DefaultMaxValueSize is the largest value unless a node is configured
// otherwise.
const DefaultMaxValueSize = 8 << 20

// DefaultMaxScanBytes bounds the keys and values of one scan response, by
// default: a replica stops its part there, and a scan gathered from many
// ranges asks no further range once it is reached.
const DefaultMaxScanBytes = 4 << 20

// CheckKey returns what is wrong with a key (empty, or longer than
// MaxKeySize), or "".
func CheckKey(key []byte) string {
	switch {
	case len(key) == 0:
		return "empty key"
	case len(key) > MaxKeySize:
		return fmt.Sprintf("key of %d bytes, more than the limit of %d", len(key), MaxKeySize)
	}
	return ""
}

// CheckValue returns what is wrong with a value longer than maxValue, or
// "". A negative maxValue means the limit is not known here (a client's):
// the server checks it.
func CheckValue(v []byte, maxValue int) string {
	if maxValue >= 0 && len(v) > maxValue {
		return fmt.Sprintf("%d bytes, more than the limit of %d", len(v), maxValue)
	}
	return ""
}

// CheckSpan returns the offending field (prefix + "start_key" or
// "end_key") and what is wrong with the span [start, end) of a scan or
// delete-range, or "". An empty start is the start of the keyspace, an
// empty end its end; start == end is an empty span.
func CheckSpan(prefix string, start, end []byte) (field, problem string) {
	switch {
	case len(start) > MaxKeySize:
		return prefix + "start_key", fmt.Sprintf("key of %d bytes, more than the limit of %d", len(start), MaxKeySize)
	case len(end) > MaxKeySize:
		return prefix + "end_key", fmt.Sprintf("key of %d bytes, more than the limit of %d", len(end), MaxKeySize)
	case len(end) > 0 && bytes.Compare(start, end) > 0:
		return prefix + "end_key", fmt.Sprintf("end key %q before start key %q", end, start)
	}
	return "", ""
}

// CheckOp returns the offending field and what is wrong with op, or "" for
// a good op. Values are checked against maxValue (see CheckValue). prefix
// names the op in a batch ("ops[2].") and is then followed by the op's
// kind ("ops[2].put.key"); with an empty prefix the op is a request of its
// own, whose fields are named as the request's ("key").
func CheckOp(op *Op, prefix string, maxValue int) (field, problem string) {
	kind := func(k string) string {
		if prefix == "" {
			return ""
		}
		return prefix + k + "."
	}
	switch o := op.GetOp().(type) {
	case *Op_Put:
		p := kind("put")
		if pr := CheckKey(o.Put.GetKey()); pr != "" {
			return p + "key", pr
		}
		if pr := CheckValue(o.Put.GetValue(), maxValue); pr != "" {
			return p + "value", pr
		}
		return "", ""
	case *Op_Delete:
		if pr := CheckKey(o.Delete.GetKey()); pr != "" {
			return kind("delete") + "key", pr
		}
		return "", ""
	case *Op_DeleteRange:
		return CheckSpan(kind("delete_range"), o.DeleteRange.GetStartKey(), o.DeleteRange.GetEndKey())
	case *Op_Cas:
		p := kind("cas")
		if pr := CheckKey(o.Cas.GetKey()); pr != "" {
			return p + "key", pr
		}
		if pr := CheckValue(o.Cas.GetExpected(), maxValue); pr != "" {
			return p + "expected", pr
		}
		if pr := CheckValue(o.Cas.GetValue(), maxValue); pr != "" {
			return p + "value", pr
		}
		return "", ""
	}
	return prefix + "op", "no operation set"
}
