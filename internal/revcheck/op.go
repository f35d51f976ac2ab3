// Copyright 2026 The Flotilla Authors. All rights reserved.

package revcheck

import (
	"fmt"
	"strings"
)

// Kind says what an operation does.
type Kind uint8

const (
	// KindPut writes Input.Value to Input.Key; its Output.Revision is the
	// write's revision.
	KindPut Kind = iota + 1
	// KindDelete deletes Input.Key; Output.Revision is the write's revision
	// and Output.Found whether the key existed.
	KindDelete
	// KindGet reads Input.Key at Input.AtRevision (0: the latest,
	// linearizable); Output.Revision is the revision it was served at.
	KindGet
	// KindScan reads the span [Input.Key, Input.End) (an empty End: the end
	// of the keyspace) like KindGet, without a limit; Output.KVs are the
	// pairs found, in key order.
	KindScan
	// KindTxn is an etcd-style transaction in one range: if every one of
	// Input.Compares holds, Input.Then runs, else Input.Else, at one
	// revision. A txn with a put or delete in either branch is a write (it
	// takes a revision even if the branch run writes nothing); one without
	// is a read at the revision R it returns (docs/REVISIONS.md, "etcd
	// contract").
	KindTxn
)

func (k Kind) String() string {
	switch k {
	case KindPut:
		return "put"
	case KindDelete:
		return "delete"
	case KindGet:
		return "get"
	case KindScan:
		return "scan"
	case KindTxn:
		return "txn"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// Outcome says what a client knows of an operation's effect.
type Outcome uint8

const (
	// OK: the operation completed and Output holds its answer.
	OK Outcome = iota
	// Unknown: a write whose outcome is unknown (a timeout, a lost
	// connection, ErrOutcomeUnknown): it may have been applied, at a
	// revision nobody told the client. Output is ignored.
	Unknown
	// NotApplied: the operation certainly had no effect and observed
	// nothing (a write refused with ErrNotApplied, a read that failed).
	// The Recorder counts it and leaves it out of the history.
	NotApplied
)

func (o Outcome) String() string {
	switch o {
	case OK:
		return "ok"
	case Unknown:
		return "unknown"
	case NotApplied:
		return "not applied"
	}
	return fmt.Sprintf("Outcome(%d)", uint8(o))
}

// KV is one version of a key as a read returns it.
type KV struct {
	Key   string
	Value string
	// CreateRevision is the revision of the put that created the key
	// (after its last delete), ModRevision that of its latest write,
	// Version the number of puts since it was created (1 for a new key).
	CreateRevision int64
	ModRevision    int64
	Version        int64
}

func (kv KV) String() string {
	return fmt.Sprintf("%s=%s(c%d,m%d,v%d)", kv.Key, kv.Value, kv.CreateRevision, kv.ModRevision, kv.Version)
}

// Target is what a Compare looks at.
type Target uint8

const (
	TargetVersion Target = iota + 1
	TargetCreate
	TargetMod
	TargetValue
)

func (t Target) String() string {
	switch t {
	case TargetVersion:
		return "version"
	case TargetCreate:
		return "create"
	case TargetMod:
		return "mod"
	case TargetValue:
		return "value"
	}
	return fmt.Sprintf("Target(%d)", uint8(t))
}

// Cmp is a Compare's relation: the key's target Cmp the operand.
type Cmp uint8

const (
	CmpEqual Cmp = iota + 1
	CmpNotEqual
	CmpLess
	CmpGreater
)

func (c Cmp) String() string {
	switch c {
	case CmpEqual:
		return "="
	case CmpNotEqual:
		return "!="
	case CmpLess:
		return "<"
	case CmpGreater:
		return ">"
	}
	return fmt.Sprintf("Cmp(%d)", uint8(c))
}

// Compare is one condition of a txn, etcd's shape: Key's Target Cmp
// Value (TargetValue) or Operand (the others). An absent key has version,
// create and mod revision 0, and every comparison of its value fails (as
// in etcd).
type Compare struct {
	Key     string
	Target  Target
	Cmp     Cmp
	Value   string
	Operand int64
}

func (c Compare) String() string {
	if c.Target == TargetValue {
		return fmt.Sprintf("%s(%s)%s%q", c.Target, c.Key, c.Cmp, c.Value)
	}
	return fmt.Sprintf("%s(%s)%s%d", c.Target, c.Key, c.Cmp, c.Operand)
}

// TxnOp is one op of a txn branch: KindPut, KindDelete or KindGet of Key.
// (Range ops, delete-range and scan, are not modelled.)
type TxnOp struct {
	Kind  Kind
	Key   string
	Value string // put
}

func (o TxnOp) String() string {
	if o.Kind == KindPut {
		return fmt.Sprintf("put(%s,%s)", o.Key, o.Value)
	}
	return fmt.Sprintf("%s(%s)", o.Kind, o.Key)
}

// TxnResult is the result of one TxnOp of the branch a txn ran, in order.
// Only a get's is checked: Found and KV are the key as of the txn's
// revision after the whole branch applied (docs/REVISIONS.md: get ops "are
// read at the txn's revision after it applied").
type TxnResult struct {
	Found bool
	KV    KV
}

// Input is an operation's request.
type Input struct {
	Kind Kind
	// Key is the key of a put, delete or get; the start of a scan.
	Key string
	// End is a scan's end (exclusive; "" for the end of the keyspace).
	End string
	// Value is a put's value. The checkers identify the write an
	// unknown-outcome put or txn made by its value: give every write a
	// value no other write to the same key uses.
	Value string
	// AtRevision is the revision a get or scan reads at; 0 reads the
	// latest (linearizably). Reads at a revision are checked by
	// CheckSnapshots only: they are not linearizable operations.
	AtRevision int64
	// Compares, Then and Else make a txn.
	Compares []Compare
	Then     []TxnOp
	Else     []TxnOp
	// Group, when not empty, names one multi-key write recorded as
	// several ops (one per key) that share one revision: ops of one group
	// may share a revision, no others may.
	Group string

	// id is the Op's ID, set by Operations: an unknown write's id names
	// its unknown revision in the model's state.
	id int
}

// IsWrite reports whether in takes a revision of its own: a put, a delete,
// or a txn with a put or delete in either branch.
func (in Input) IsWrite() bool {
	switch in.Kind {
	case KindPut, KindDelete:
		return true
	case KindTxn:
		for _, ops := range [][]TxnOp{in.Then, in.Else} {
			for _, o := range ops {
				if o.Kind == KindPut || o.Kind == KindDelete {
					return true
				}
			}
		}
	}
	return false
}

// IsLatestRead reports whether in is a linearizable read: a get or scan at
// revision 0, or a txn that writes in neither branch.
func (in Input) IsLatestRead() bool {
	switch in.Kind {
	case KindGet, KindScan:
		return in.AtRevision == 0
	case KindTxn:
		return !in.IsWrite()
	}
	return false
}

// covers reports whether the scan in covers key.
func (in Input) covers(key string) bool {
	return key >= in.Key && (in.End == "" || key < in.End)
}

// keys returns the keys a put, delete, get or txn names (not a scan's).
func (in Input) keys() []string {
	switch in.Kind {
	case KindPut, KindDelete, KindGet:
		return []string{in.Key}
	case KindTxn:
		var ks []string
		for _, c := range in.Compares {
			ks = append(ks, c.Key)
		}
		for _, ops := range [][]TxnOp{in.Then, in.Else} {
			for _, o := range ops {
				ks = append(ks, o.Key)
			}
		}
		return ks
	}
	return nil
}

func (in Input) String() string {
	var s string
	switch in.Kind {
	case KindPut:
		s = fmt.Sprintf("put(%s,%s)", in.Key, in.Value)
	case KindDelete, KindGet:
		s = fmt.Sprintf("%s(%s)", in.Kind, in.Key)
	case KindScan:
		s = fmt.Sprintf("scan[%s,%s)", in.Key, in.End)
	case KindTxn:
		s = fmt.Sprintf("txn(if %s then %s else %s)", join(in.Compares), join(in.Then), join(in.Else))
	default:
		s = in.Kind.String()
	}
	if in.AtRevision != 0 {
		s += fmt.Sprintf("@%d", in.AtRevision)
	}
	if in.Group != "" {
		s += " group " + in.Group
	}
	return s
}

func join[T fmt.Stringer](xs []T) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = x.String()
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// Output is an operation's answer.
type Output struct {
	Outcome Outcome
	// Revision is a write's revision, or the revision R a read (a txn
	// without writes included) was served at.
	Revision int64
	// Found: a get found the key; a delete found the key to delete.
	Found bool
	// KV is a get's answer, when Found.
	KV KV
	// KVs are a scan's pairs, in key order.
	KVs []KV
	// Succeeded says a txn's compares held (Then ran); Results are the
	// results of the ops of the branch it ran, in order.
	Succeeded bool
	Results   []TxnResult

	// claimed, set by resolveUnknown on an Unknown write, says that a read
	// saw one of its values: it was applied, at Revision, running the
	// branch Succeeded says.
	claimed bool
}

func (out Output) describe(in Input) string {
	switch out.Outcome {
	case Unknown:
		if out.claimed {
			return fmt.Sprintf("unknown, seen at rev %d", out.Revision)
		}
		return "unknown"
	case NotApplied:
		return "not applied"
	}
	var s string
	switch in.Kind {
	case KindDelete:
		s = fmt.Sprintf("found=%v", out.Found)
	case KindGet:
		s = "absent"
		if out.Found {
			s = out.KV.String()
		}
	case KindScan:
		s = join(out.KVs)
	case KindTxn:
		s = fmt.Sprintf("succeeded=%v", out.Succeeded)
		if len(out.Results) > 0 {
			var parts []string
			for i, r := range out.Results {
				ops := in.Else
				if out.Succeeded {
					ops = in.Then
				}
				if i >= len(ops) || ops[i].Kind != KindGet {
					continue
				}
				if r.Found {
					parts = append(parts, r.KV.String())
				} else {
					parts = append(parts, ops[i].Key+" absent")
				}
			}
			if len(parts) > 0 {
				s += " " + strings.Join(parts, " ")
			}
		}
	}
	if s == "" {
		return fmt.Sprintf("rev %d", out.Revision)
	}
	return fmt.Sprintf("rev %d %s", out.Revision, s)
}

// Op is one recorded operation.
type Op struct {
	// ID identifies the op in its history: unique, > 0 (the Recorder
	// numbers ops from 1).
	ID int
	// ClientID is the client (a goroutine doing one op at a time) that ran
	// it; porcupine's visualization draws one line per client.
	ClientID int
	// Call and Return are when the op was invoked and answered, from one
	// monotonic clock (Recorder.Now). An unknown write's Return is
	// whenever its caller gave up; the checkers treat it as never.
	Call, Return int64
	Input        Input
	Output       Output
}

func (op Op) String() string {
	return fmt.Sprintf("#%d c%d [%d,%d] %s → %s", op.ID, op.ClientID, op.Call, op.Return, op.Input, op.Output.describe(op.Input))
}

// branch returns the ops of the branch a txn ran.
func (op Op) branch() []TxnOp {
	if op.Output.Succeeded {
		return op.Input.Then
	}
	return op.Input.Else
}
