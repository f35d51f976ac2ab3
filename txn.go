// Copyright 2026 The Flotilla Authors. All rights reserved.

package flotilla

import (
	"bytes"
	"context"
	"fmt"

	"github.com/flotilladb/flotilla/rpc"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
)

// Txn is an etcd-style transaction, built by KV.Txn:
//
//	res, err := kv.Txn().
//		If(flotilla.Compare(flotilla.Value([]byte("k")), "=", "v")).
//		Then(flotilla.PutOp([]byte("k"), []byte("w")), flotilla.GetOp([]byte("k"))).
//		Else(flotilla.GetOp([]byte("k"))).
//		Commit(ctx)
//
// If every compare holds, the Then ops run, else the Else ops; the
// compares and the branch that ran are one write, applied atomically at one
// revision (TxnResult.Revision). The compares and the writes of both
// branches must lie in one range, else Commit fails with ErrCrossRange and
// nothing is applied; the reads (GetOp, ScanOp) may lie anywhere and see
// the span as of the txn's revision, its own writes included. A txn that
// writes in neither branch is a read at the latest revision and takes no
// revision of its own. At most 128 ops (both branches together) and 128
// compares, unless the cluster is configured otherwise.
//
// Unlike etcd's, If, Then and Else may be called in any order and more
// than once: each appends. The context goes to Commit, which does the I/O.
// A Txn is not safe for concurrent use; Commit may be called again (it
// sends the txn again).
type Txn struct {
	h         rpc.KVHandler
	cmps      []Cmp
	then, els []Op
}

// If adds compares: all must hold for the Then branch to run.
func (t *Txn) If(cmps ...Cmp) *Txn {
	t.cmps = append(t.cmps, cmps...)
	return t
}

// Then adds ops to the branch run when every compare holds.
func (t *Txn) Then(ops ...Op) *Txn {
	t.then = append(t.then, ops...)
	return t
}

// Else adds ops to the branch run when a compare does not hold.
func (t *Txn) Else(ops ...Op) *Txn {
	t.els = append(t.els, ops...)
	return t
}

// TxnResult is the outcome of a committed txn.
type TxnResult struct {
	// Succeeded says every compare held: the Then branch ran, else the
	// Else branch.
	Succeeded bool
	// Revision is the txn's revision: its writes' if it wrote, else the
	// revision its compares and reads were served at.
	Revision int64
	// Results has one entry per op of the branch that ran, in order.
	Results []TxnOpResult
}

// TxnOpResult is the outcome of one op of a txn: exactly one field is set.
type TxnOpResult struct {
	// Write is set for a PutOp, DeleteOp or DeleteRangeOp: Found for a
	// delete, Deleted for a delete-range.
	Write *OpResult
	// Get is set for a GetOp, read at the txn's revision.
	Get *GetResult
	// Scan is set for a ScanOp, read at the txn's revision. It is one page
	// (see ScanAt): if Resume is set, read the rest with ScanAt at
	// Revision.
	Scan *ScanResult
}

// GetOp reads key in a Txn (not valid in a Batch).
func GetOp(key []byte) Op {
	return Op{read: &flotillapb.TxnOp{Op: &flotillapb.TxnOp_Get{Get: &flotillapb.GetOp{Key: key}}}}
}

// ScanOp reads the pairs in [start, end) (an empty end: to the end of the
// keyspace) in a Txn (not valid in a Batch), with opts.Limit and
// opts.Reverse; opts.Revision must be 0 (the txn's revision is used).
func ScanOp(start, end []byte, opts ScanOptions) Op {
	if opts.Revision != 0 || opts.Limit < 0 {
		// Refused by Commit: an op with nothing set.
		return Op{read: &flotillapb.TxnOp{}}
	}
	return Op{read: &flotillapb.TxnOp{Op: &flotillapb.TxnOp_Scan{Scan: &flotillapb.ScanOp{
		StartKey: start, EndKey: end, Limit: int64(opts.Limit), Reverse: opts.Reverse,
	}}}}
}

// Cmp is one compare of a txn. Build it with a target (Value, Version,
// CreateRevision, ModRevision) and Compare, as with etcd's clientv3:
//
//	flotilla.Compare(flotilla.ModRevision(key), "<", 42)
//	flotilla.Compare(flotilla.CreateRevision(key), "=", 0) // key absent
//
// A key that does not exist has version, create and mod revision 0, and
// no value: a Value compare on it does not hold, whatever the result
// operator.
type Cmp struct {
	pb *flotillapb.Compare
	// err is the problem with the compare, reported by Commit.
	err string
}

func target(key []byte, t flotillapb.Compare_Target) Cmp {
	return Cmp{pb: &flotillapb.Compare{Key: key, Target: t}}
}

// Value is the target "key's value" (compared with a string or []byte).
func Value(key []byte) Cmp { return target(key, flotillapb.Compare_VALUE) }

// Version is the target "key's version": the number of puts since it was
// created, 0 if it does not exist (compared with an integer).
func Version(key []byte) Cmp { return target(key, flotillapb.Compare_VERSION) }

// CreateRevision is the target "key's create revision", 0 if it does not
// exist (compared with an integer).
func CreateRevision(key []byte) Cmp { return target(key, flotillapb.Compare_CREATE) }

// ModRevision is the target "key's mod revision", 0 if it does not exist
// (compared with an integer).
func ModRevision(key []byte) Cmp { return target(key, flotillapb.Compare_MOD) }

// Compare makes the compare "target result v": result is one of "=",
// "!=", "<" and ">"; v is a string or []byte for Value, an int or int64
// for the others. A compare that is not so fails Commit with
// ErrInvalidArgument.
func Compare(cmp Cmp, result string, v any) Cmp {
	if cmp.pb == nil {
		return Cmp{err: "a compare without a target (use Value, Version, CreateRevision or ModRevision)"}
	}
	pb := &flotillapb.Compare{Key: cmp.pb.GetKey(), Target: cmp.pb.GetTarget()}
	out := Cmp{pb: pb}
	switch result {
	case "=":
		pb.Result = flotillapb.Compare_EQUAL
	case "!=":
		pb.Result = flotillapb.Compare_NOT_EQUAL
	case "<":
		pb.Result = flotillapb.Compare_LESS
	case ">":
		pb.Result = flotillapb.Compare_GREATER
	default:
		out.err = fmt.Sprintf("unknown compare result %q (want =, !=, < or >)", result)
		return out
	}
	if pb.Target == flotillapb.Compare_VALUE {
		switch v := v.(type) {
		case string:
			pb.TargetUnion = &flotillapb.Compare_Value{Value: []byte(v)}
		case []byte:
			pb.TargetUnion = &flotillapb.Compare_Value{Value: nonNil(bytes.Clone(v))}
		default:
			out.err = fmt.Sprintf("a value compare takes a string or []byte, not %T", v)
		}
		return out
	}
	var n int64
	switch v := v.(type) {
	case int:
		n = int64(v)
	case int64:
		n = v
	default:
		out.err = fmt.Sprintf("a %s compare takes an int or int64, not %T", targetName(pb.Target), v)
		return out
	}
	switch pb.Target {
	case flotillapb.Compare_VERSION:
		pb.TargetUnion = &flotillapb.Compare_Version{Version: n}
	case flotillapb.Compare_CREATE:
		pb.TargetUnion = &flotillapb.Compare_CreateRevision{CreateRevision: n}
	case flotillapb.Compare_MOD:
		pb.TargetUnion = &flotillapb.Compare_ModRevision{ModRevision: n}
	}
	return out
}

func targetName(t flotillapb.Compare_Target) string {
	switch t {
	case flotillapb.Compare_VERSION:
		return "version"
	case flotillapb.Compare_CREATE:
		return "create revision"
	case flotillapb.Compare_MOD:
		return "mod revision"
	}
	return "value"
}

// txnOp converts an op of a txn's branch; field names it in errors.
func txnOp(op Op, field string) (*flotillapb.TxnOp, *flotillapb.Error) {
	if op.read != nil {
		if op.read.GetOp() == nil {
			return nil, invalidOp(field, "a scan with a revision or a negative limit (a txn reads at its own revision)")
		}
		return op.read, nil
	}
	switch o := op.pb.GetOp().(type) {
	case *flotillapb.Op_Put:
		return &flotillapb.TxnOp{Op: &flotillapb.TxnOp_Put{Put: o.Put}}, nil
	case *flotillapb.Op_Delete:
		return &flotillapb.TxnOp{Op: &flotillapb.TxnOp_Delete{Delete: o.Delete}}, nil
	case *flotillapb.Op_DeleteRange:
		return &flotillapb.TxnOp{Op: &flotillapb.TxnOp_DeleteRange{DeleteRange: o.DeleteRange}}, nil
	case *flotillapb.Op_Cas:
		return nil, invalidOp(field, "a compare-and-swap is only valid in a Batch: give a txn compares instead")
	}
	return nil, invalidOp(field, "no operation set (the zero Op)")
}

// Commit sends the txn and returns its outcome. Its errors are those of a
// write (ErrNotApplied, ErrOutcomeUnknown) when a branch writes, else
// those of a read; a txn whose writes applied but whose reads then failed
// fails with ErrOutcomeUnknown (and says the revision it applied at).
func (t *Txn) Commit(ctx context.Context) (TxnResult, error) {
	req := &flotillapb.TxnRequest{}
	write := false
	for i, c := range t.cmps {
		if c.err != "" || c.pb == nil {
			problem := c.err
			if c.pb == nil && problem == "" {
				problem = "the zero Cmp: build compares with Compare"
			}
			return TxnResult{}, wrapErr(ctx, "txn", true, invalidOp(fmt.Sprintf("compares[%d]", i), problem))
		}
		req.Compares = append(req.Compares, c.pb)
	}
	for _, b := range []struct {
		name string
		ops  []Op
		out  *[]*flotillapb.TxnOp
	}{{"success", t.then, &req.Success}, {"failure", t.els, &req.Failure}} {
		for i, op := range b.ops {
			pb, fe := txnOp(op, fmt.Sprintf("%s[%d]", b.name, i))
			if fe != nil {
				return TxnResult{}, wrapErr(ctx, "txn", true, fe)
			}
			write = write || !pb.IsRead()
			*b.out = append(*b.out, pb)
		}
	}
	resp, err := request(ctx, t.h, "txn", write, req, rpc.KVHandler.Txn)
	if err != nil {
		return TxnResult{}, err
	}
	res := TxnResult{Succeeded: resp.GetSucceeded(), Revision: resp.GetHeader().GetRevision()}
	branch := req.GetSuccess()
	if !res.Succeeded {
		branch = req.GetFailure()
	}
	results := resp.GetResults()
	if len(results) != len(branch) {
		return TxnResult{}, wrapErr(ctx, "txn", write, fmt.Errorf(
			"the txn at revision %d answered %d results for the %d ops of its branch", res.Revision, len(results), len(branch)))
	}
	res.Results = make([]TxnOpResult, len(branch))
	for i, op := range branch {
		r, err := txnOpResult(op, results[i], res.Revision)
		if err != nil {
			return TxnResult{}, wrapErr(ctx, "txn", write, fmt.Errorf("the txn at revision %d: result %d: %w", res.Revision, i, err))
		}
		res.Results[i] = r
	}
	return res, nil
}

// txnOpResult converts the result of op, read at rev.
func txnOpResult(op *flotillapb.TxnOp, r *flotillapb.TxnOpResult, rev int64) (TxnOpResult, error) {
	switch x := r.GetResult().(type) {
	case *flotillapb.TxnOpResult_Write:
		if op.IsRead() {
			break
		}
		w := x.Write
		return TxnOpResult{Write: &OpResult{Found: w.GetFound(), Deleted: w.GetDeleted()}}, nil
	case *flotillapb.TxnOpResult_Get:
		g := op.GetGet()
		if g == nil {
			break
		}
		gr := getResult(g.GetKey(), x.Get, rev)
		return TxnOpResult{Get: &gr}, nil
	case *flotillapb.TxnOpResult_Scan:
		s := op.GetScan()
		if s == nil {
			break
		}
		sr, err := scanResult(s.GetStartKey(), s.GetEndKey(), s.GetReverse(), x.Scan, rev)
		if err != nil {
			return TxnOpResult{}, err
		}
		return TxnOpResult{Scan: &sr}, nil
	}
	return TxnOpResult{}, fmt.Errorf("a %T answers a %T", r.GetResult(), op.GetOp())
}
