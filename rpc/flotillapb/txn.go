// Copyright 2026 The Flotilla Authors. All rights reserved.

package flotillapb

import "fmt"

// DefaultMaxTxnOps is the default bound on the ops of a txn, both branches
// together (etcd's --max-txn-ops).
const DefaultMaxTxnOps = 128

// WriteOp returns the Op of a write (put, delete, delete-range), or nil for
// a read or an op with nothing set.
func (x *TxnOp) WriteOp() *Op {
	switch o := x.GetOp().(type) {
	case *TxnOp_Put:
		return &Op{Op: &Op_Put{Put: o.Put}}
	case *TxnOp_Delete:
		return &Op{Op: &Op_Delete{Delete: o.Delete}}
	case *TxnOp_DeleteRange:
		return &Op{Op: &Op_DeleteRange{DeleteRange: o.DeleteRange}}
	}
	return nil
}

// IsRead reports whether the op is a get or a scan.
func (x *TxnOp) IsRead() bool {
	switch x.GetOp().(type) {
	case *TxnOp_Get, *TxnOp_Scan:
		return true
	}
	return false
}

// Span returns the keys the op touches: [key, key+\x00) for a single key,
// the span of a scan or delete-range (an empty end: to the end of the
// keyspace).
func (x *TxnOp) Span() (start, end []byte) {
	switch o := x.GetOp().(type) {
	case *TxnOp_Put:
		return o.Put.GetKey(), append(append([]byte{}, o.Put.GetKey()...), 0)
	case *TxnOp_Delete:
		return o.Delete.GetKey(), append(append([]byte{}, o.Delete.GetKey()...), 0)
	case *TxnOp_DeleteRange:
		return o.DeleteRange.GetStartKey(), o.DeleteRange.GetEndKey()
	case *TxnOp_Get:
		return o.Get.GetKey(), append(append([]byte{}, o.Get.GetKey()...), 0)
	case *TxnOp_Scan:
		return o.Scan.GetStartKey(), o.Scan.GetEndKey()
	}
	return nil, nil
}

// CheckTxnOp is CheckOp for a txn's op; prefix names it ("success[2].").
func CheckTxnOp(op *TxnOp, prefix string, maxValue int) (field, problem string) {
	switch o := op.GetOp().(type) {
	case *TxnOp_Get:
		if p := CheckKey(o.Get.GetKey()); p != "" {
			return prefix + "get.key", p
		}
		return "", ""
	case *TxnOp_Scan:
		if o.Scan.GetLimit() < 0 {
			return prefix + "scan.limit", fmt.Sprintf("negative limit %d", o.Scan.GetLimit())
		}
		return CheckSpan(prefix+"scan.", o.Scan.GetStartKey(), o.Scan.GetEndKey())
	}
	w := op.WriteOp()
	if w == nil {
		return prefix + "op", "no operation set"
	}
	return CheckOp(w, prefix, maxValue)
}

// CheckCompare checks a txn's compare: a valid key, a known target and
// result, and a target_union, if set, of the target's kind.
func CheckCompare(c *Compare, prefix string, maxValue int) (field, problem string) {
	if c == nil {
		return prefix + "compare", "nil compare"
	}
	if p := CheckKey(c.GetKey()); p != "" {
		return prefix + "key", p
	}
	if _, ok := Compare_Result_name[int32(c.GetResult())]; !ok {
		return prefix + "result", fmt.Sprintf("unknown compare result %d", c.GetResult())
	}
	var ok bool
	switch c.GetTarget() {
	case Compare_VERSION:
		_, ok = c.GetTargetUnion().(*Compare_Version)
	case Compare_CREATE:
		_, ok = c.GetTargetUnion().(*Compare_CreateRevision)
	case Compare_MOD:
		_, ok = c.GetTargetUnion().(*Compare_ModRevision)
	case Compare_VALUE:
		_, ok = c.GetTargetUnion().(*Compare_Value)
		if ok {
			if p := CheckValue(c.GetValue(), maxValue); p != "" {
				return prefix + "value", p
			}
		}
	default:
		return prefix + "target", fmt.Sprintf("unknown compare target %d", c.GetTarget())
	}
	if !ok && c.GetTargetUnion() != nil {
		return prefix + "target_union", fmt.Sprintf("a compare on %s carries a %T", c.GetTarget(), c.GetTargetUnion())
	}
	return "", ""
}

// RouteKey is the key that picks a txn's range: its first compare's key,
// else its first write's, else its first read's; nil for an empty txn.
func (x *TxnRequest) RouteKey() []byte {
	if cs := x.GetCompares(); len(cs) > 0 {
		return cs[0].GetKey()
	}
	var read []byte
	for _, ops := range [][]*TxnOp{x.GetSuccess(), x.GetFailure()} {
		for _, op := range ops {
			start, _ := op.Span()
			if !op.IsRead() {
				return start
			}
			if read == nil {
				read = start
			}
		}
	}
	return read
}

// CheckTxn checks a txn for malformed input: nothing to do, more than
// maxOps ops (both branches together) or compares (unless maxOps is
// negative), bad compares or ops.
func CheckTxn(req *TxnRequest, maxValue, maxOps int) (field, problem string) {
	n := len(req.GetSuccess()) + len(req.GetFailure())
	if n == 0 && len(req.GetCompares()) == 0 {
		return "success", "an empty txn: no compares and no ops"
	}
	if maxOps >= 0 && (n > maxOps || len(req.GetCompares()) > maxOps) {
		return "success", fmt.Sprintf("too many ops in the txn: %d compares and %d ops, the limit is %d",
			len(req.GetCompares()), n, maxOps)
	}
	for i, c := range req.GetCompares() {
		if field, p := CheckCompare(c, fmt.Sprintf("compares[%d].", i), maxValue); p != "" {
			return field, p
		}
	}
	for _, branch := range []struct {
		name string
		ops  []*TxnOp
	}{{"success", req.GetSuccess()}, {"failure", req.GetFailure()}} {
		for i, op := range branch.ops {
			if field, p := CheckTxnOp(op, fmt.Sprintf("%s[%d].", branch.name, i), maxValue); p != "" {
				return field, p
			}
		}
	}
	return "", ""
}
