// Copyright 2026 The Flotilla Authors. All rights reserved.

package flotilla

import (
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

// The checks below are the server's (shard), made before a request is
// split, with the same fields and messages.

func invalidRead(field, msg string) *flotillapb.Error {
	fe := invalidArgument(field, msg)
	fe.Outcome = flotillapb.Outcome_OUTCOME_UNSPECIFIED
	return fe
}

func checkScan(req *flotillapb.ScanRequest) *flotillapb.Error {
	if field, p := flotillapb.CheckSpan("", req.GetStartKey(), req.GetEndKey()); p != "" {
		return invalidRead(field, p)
	}
	if req.GetLimit() < 0 {
		return invalidRead("limit", fmt.Sprintf("negative limit %d", req.GetLimit()))
	}
	return nil
}

func checkDeleteRange(req *flotillapb.DeleteRangeRequest) *flotillapb.Error {
	if field, p := flotillapb.CheckSpan("", req.GetStartKey(), req.GetEndKey()); p != "" {
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
		if field, p := flotillapb.CheckOp(op, fmt.Sprintf("ops[%d].", i), maxValue); p != "" {
			return invalidArgument(field, p)
		}
	}
	return nil
}
