// Copyright 2026 The Flotilla Authors. All rights reserved.

package flotilla

import (
	"bytes"
	"fmt"

	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"github.com/flotilladb/flotilla/shard"
)

// Requests over many ranges (a scan, delete-range or batch whose keys cross
// range boundaries) are split per range by the router (router.Scan,
// router.DeleteRange, router.Batch), in the client (client.go) and in each
// node's gateway (gateway.go) alike. A request whose keys lie in one range,
// as far as the router's cache or the gateway's own replica tell, is sent
// as before, as one request; if that turns out to reach past its range (the
// range split since), it is split then. Bad input is refused here before
// any part is sent, since a part refused after others were applied would
// leave the request half done.

// maxScanResponseBytes bounds the keys and values of a scan response
// gathered from many ranges: no further range is asked once it is reached
// (each range's part is bounded by its server's MaxScanBytes too).
const maxScanResponseBytes = shard.DefaultMaxScanBytes

// spanFits reports whether desc's range holds every key of [start, end)
// (an empty end is the end of the keyspace), as the server checks it.
func spanFits(desc *flotillapb.RangeDescriptor, start, end []byte) bool {
	if bytes.Compare(start, desc.GetStartKey()) < 0 {
		return false
	}
	re := desc.GetEndKey()
	if len(re) == 0 {
		return true
	}
	return len(end) > 0 && bytes.Compare(end, re) <= 0 && bytes.Compare(start, re) <= 0
}

// keyFits reports whether desc's range holds key.
func keyFits(desc *flotillapb.RangeDescriptor, key []byte) bool {
	if bytes.Compare(key, desc.GetStartKey()) < 0 {
		return false
	}
	re := desc.GetEndKey()
	return len(re) == 0 || bytes.Compare(key, re) < 0
}

// opsFit reports whether desc's range holds every key of ops.
func opsFit(desc *flotillapb.RangeDescriptor, ops []*flotillapb.Op) bool {
	for _, op := range ops {
		if dr := op.GetDeleteRange(); dr != nil {
			if !spanFits(desc, dr.GetStartKey(), dr.GetEndKey()) {
				return false
			}
		} else if !keyFits(desc, op.RouteKey()) {
			return false
		}
	}
	return true
}

// The checks below are the server's (shard), made before a request is
// split, with the same fields and messages.

func invalidRead(field, msg string) *flotillapb.Error {
	fe := invalidArgument(field, msg)
	fe.Outcome = flotillapb.Outcome_OUTCOME_UNSPECIFIED
	return fe
}

// checkSpan returns the field and problem of a bad span, or "".
func checkSpan(prefix string, start, end []byte) (field, problem string) {
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

// checkKey returns what is wrong with a key, or "".
func checkKey(key []byte) string {
	switch {
	case len(key) == 0:
		return "empty key"
	case len(key) > MaxKeySize:
		return fmt.Sprintf("key of %d bytes, more than the limit of %d", len(key), MaxKeySize)
	}
	return ""
}

func checkScan(req *flotillapb.ScanRequest) *flotillapb.Error {
	if field, p := checkSpan("", req.GetStartKey(), req.GetEndKey()); p != "" {
		return invalidRead(field, p)
	}
	if req.GetLimit() < 0 {
		return invalidRead("limit", fmt.Sprintf("negative limit %d", req.GetLimit()))
	}
	return nil
}

func checkDeleteRange(req *flotillapb.DeleteRangeRequest) *flotillapb.Error {
	if field, p := checkSpan("", req.GetStartKey(), req.GetEndKey()); p != "" {
		return invalidArgument(field, p)
	}
	return nil
}

// checkBatch checks a batch's ops; values are checked against maxValue
// unless it is negative (a client does not know the cluster's limit: the
// router sends the part with the largest value first instead).
func checkBatch(req *flotillapb.BatchRequest, maxValue int) *flotillapb.Error {
	ops := req.GetOps()
	if len(ops) == 0 {
		return invalidArgument("ops", "no operations")
	}
	for i, op := range ops {
		if field, p := checkOp(op, fmt.Sprintf("ops[%d].", i), maxValue); p != "" {
			return invalidArgument(field, p)
		}
	}
	return nil
}

// checkOp returns the offending field and the problem, or "" for a good
// op; prefix names the op ("ops[2].").
func checkOp(op *flotillapb.Op, prefix string, maxValue int) (field, problem string) {
	checkValue := func(field string, v []byte) (string, string) {
		if maxValue >= 0 && len(v) > maxValue {
			return field, fmt.Sprintf("%d bytes, more than the limit of %d", len(v), maxValue)
		}
		return "", ""
	}
	switch o := op.GetOp().(type) {
	case *flotillapb.Op_Put:
		if p := checkKey(o.Put.GetKey()); p != "" {
			return prefix + "put.key", p
		}
		return checkValue(prefix+"put.value", o.Put.GetValue())
	case *flotillapb.Op_Delete:
		if p := checkKey(o.Delete.GetKey()); p != "" {
			return prefix + "delete.key", p
		}
		return "", ""
	case *flotillapb.Op_DeleteRange:
		return checkSpan(prefix+"delete_range.", o.DeleteRange.GetStartKey(), o.DeleteRange.GetEndKey())
	case *flotillapb.Op_Cas:
		if p := checkKey(o.Cas.GetKey()); p != "" {
			return prefix + "cas.key", p
		}
		if f, p := checkValue(prefix+"cas.expected", o.Cas.GetExpected()); p != "" {
			return f, p
		}
		return checkValue(prefix+"cas.value", o.Cas.GetValue())
	}
	return prefix + "op", "no operation set"
}
