// Copyright 2026 The Flotilla Authors. All rights reserved.

package server_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"github.com/flotilladb/flotilla/internal/badinput"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/flotilladb/flotilla/internal/testutil"
	"github.com/flotilladb/flotilla/router"
	"github.com/flotilladb/flotilla/rpc"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"github.com/flotilladb/flotilla/server"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// FuzzGatewayRequest sends arbitrary bytes as the request message of a KV
// method, or of the Placement methods that take a key (SplitRange,
// LookupRange), to a running single-node cluster over gRPC, as a foreign
// client could (TESTING.md scenario 17). The node decodes them as gRPC
// does and serves them with its gateway and store. Nothing may panic (it
// would kill the test); bytes that do not decode are refused by gRPC; a
// request that breaks a limit (checked here independently of the node's
// checks) is refused with InvalidArgument naming the field, not applied;
// a good one that the router has not addressed to a range succeeds.
//
// Seeds live in testdata/fuzz/FuzzGatewayRequest; go test runs them. Write
// them again with: go test ./server -run '^TestGatewayFuzzSeeds$' -write-fuzz-seeds

var writeFuzzSeeds = flag.Bool("write-fuzz-seeds", false, "write FuzzGatewayRequest's seed corpus to testdata/fuzz")

// fuzzMaxValue is the node's value limit: small, so that a seed can break it.
const fuzzMaxValue = 64

// fuzzMethod is a method the target sends: its name, a new request
// message, whether it writes, and whether a request breaks a limit.
type fuzzMethod struct {
	name  string
	req   func() proto.Message
	write bool
	bad   func(proto.Message) bool
}

// fuzzMethods are indexed by the target's first argument, modulo their
// number.
var fuzzMethods = []fuzzMethod{
	{flotillapb.KV_Get_FullMethodName, func() proto.Message { return &flotillapb.GetRequest{} }, false,
		func(m proto.Message) bool {
			r := m.(*flotillapb.GetRequest)
			return badinput.Key(r.GetKey()) || badinput.Revision(r.GetRevision())
		}},
	{flotillapb.KV_Put_FullMethodName, func() proto.Message { return &flotillapb.PutRequest{} }, true,
		func(m proto.Message) bool {
			r := m.(*flotillapb.PutRequest)
			return badinput.Key(r.GetKey()) || len(r.GetValue()) > fuzzMaxValue
		}},
	{flotillapb.KV_Delete_FullMethodName, func() proto.Message { return &flotillapb.DeleteRequest{} }, true,
		func(m proto.Message) bool { return badinput.Key(m.(*flotillapb.DeleteRequest).GetKey()) }},
	{flotillapb.KV_DeleteRange_FullMethodName, func() proto.Message { return &flotillapb.DeleteRangeRequest{} }, true,
		func(m proto.Message) bool {
			r := m.(*flotillapb.DeleteRangeRequest)
			return badinput.Span(r.GetStartKey(), r.GetEndKey())
		}},
	{flotillapb.KV_Scan_FullMethodName, func() proto.Message { return &flotillapb.ScanRequest{} }, false,
		func(m proto.Message) bool {
			r := m.(*flotillapb.ScanRequest)
			return badinput.Span(r.GetStartKey(), r.GetEndKey()) || r.GetLimit() < 0 || badinput.Revision(r.GetRevision())
		}},
	{flotillapb.KV_CompareAndSwap_FullMethodName, func() proto.Message { return &flotillapb.CompareAndSwapRequest{} }, true,
		func(m proto.Message) bool {
			r := m.(*flotillapb.CompareAndSwapRequest)
			return badinput.Key(r.GetKey()) || len(r.GetExpected()) > fuzzMaxValue || len(r.GetValue()) > fuzzMaxValue
		}},
	{flotillapb.KV_Batch_FullMethodName, func() proto.Message { return &flotillapb.BatchRequest{} }, true,
		func(m proto.Message) bool {
			ops := m.(*flotillapb.BatchRequest).GetOps()
			return len(ops) == 0 || slices.ContainsFunc(ops, func(op *flotillapb.Op) bool { return badinput.Op(op, fuzzMaxValue) })
		}},
	{flotillapb.Placement_SplitRange_FullMethodName, func() proto.Message { return &flotillapb.SplitRangeRequest{} }, true,
		func(m proto.Message) bool { return badinput.Key(m.(*flotillapb.SplitRangeRequest).GetKey()) }},
	{flotillapb.Placement_LookupRange_FullMethodName, func() proto.Message { return &flotillapb.LookupRangeRequest{} }, false,
		func(proto.Message) bool { return false }},
	{flotillapb.KV_Txn_FullMethodName, func() proto.Message { return &flotillapb.TxnRequest{} }, true,
		func(m proto.Message) bool {
			return badinput.Txn(m.(*flotillapb.TxnRequest), fuzzMaxValue, fuzzMaxTxnOps)
		}},
	{flotillapb.KV_Compact_FullMethodName, func() proto.Message { return &flotillapb.CompactRequest{} }, true,
		func(m proto.Message) bool {
			return badinput.CompactRevision(m.(*flotillapb.CompactRequest).GetRevision())
		}},
}

// fuzzMaxTxnOps is the node's bound on a txn's ops: small, so that a seed
// can break it.
const fuzzMaxTxnOps = 4

// revisionRefusal reports whether fe refuses a good request for its
// revision or its ranges, as it may: a revision compacted away or not
// handed out yet (a read or compaction at a revision), a txn across the
// ranges a split seed made.
func revisionRefusal(req proto.Message, fe *flotillapb.Error) bool {
	switch r := req.(type) {
	case *flotillapb.GetRequest:
		return r.GetRevision() > 0 && (fe.GetCompacted() != nil || fe.GetFutureRevision() != nil)
	case *flotillapb.ScanRequest:
		return r.GetRevision() > 0 && (fe.GetCompacted() != nil || fe.GetFutureRevision() != nil)
	case *flotillapb.CompactRequest:
		return fe.GetFutureRevision() != nil && fe.GetOutcome() == flotillapb.Outcome_NOT_APPLIED
	case *flotillapb.TxnRequest:
		return fe.GetCrossRange() != nil && fe.GetOutcome() == flotillapb.Outcome_NOT_APPLIED
	}
	return false
}

// fuzzDump is everything the node holds, with revisions, as a string.
func fuzzDump(ctx context.Context, kv flotillapb.KVClient) (string, error) {
	resp, err := kv.Scan(ctx, &flotillapb.ScanRequest{})
	if err != nil {
		return "", err
	}
	var b strings.Builder
	for _, p := range resp.GetKvs() {
		fmt.Fprintf(&b, "%q=%q@%d/%d/%d ", p.GetKey(), p.GetValue(), p.GetModRevision(), p.GetCreateRevision(), p.GetVersion())
	}
	return b.String(), nil
}

// rawCodec sends a request's bytes as they are and returns the response's
// undecoded. Named "proto", it makes the server decode them as a protobuf
// request.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *v.(*[]byte), nil }

func (rawCodec) Unmarshal(data []byte, v any) error {
	*v.(*[]byte) = bytes.Clone(data)
	return nil
}

func (rawCodec) Name() string { return "proto" }

// routedHeader reports whether req carries a header that routes it (a
// range ID or version, or forwarded): such a request may fail with the
// routing errors (RangeNotFound, EpochNotMatch, KeyNotInRange).
func routedHeader(req proto.Message) bool {
	r, ok := req.(interface {
		GetHeader() *flotillapb.RequestHeader
	})
	return ok && router.Routed(r.GetHeader())
}

func FuzzGatewayRequest(f *testing.F) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	n := openNode(f, server.Config{Dir: f.TempDir(), Bootstrap: true, MaxValueSize: fuzzMaxValue, MaxTxnOps: fuzzMaxTxnOps,
		HTTPAddr: "off", AutoCompactionMode: server.CompactionOff, Testing: &server.TestingKnobs{DisableSync: true}})
	if err := n.WaitReady(ctx); err != nil {
		f.Fatal(err)
	}
	pool := rpc.NewPool(rpc.PoolConfig{})
	f.Cleanup(func() { _ = pool.Close() })
	conn, err := pool.Ready(ctx, n.Addr(), 10*time.Second)
	if err != nil {
		f.Fatal(err)
	}
	// WaitReady says the first range serves; the placement group may not
	// have elected its leader yet.
	testutil.SucceedsSoon(f, func() error {
		_, err := flotillapb.NewPlacementClient(conn).LookupRange(ctx, &flotillapb.LookupRangeRequest{Key: []byte("a")})
		return err
	})
	kv := flotillapb.NewKVClient(conn)
	f.Fuzz(func(t *testing.T, method byte, data []byte) {
		m := fuzzMethods[int(method)%len(fuzzMethods)]
		req := m.req()
		decodeErr := proto.Unmarshal(data, req)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		bad := decodeErr == nil && m.bad(req)
		var before string
		if bad {
			var err error
			if before, err = fuzzDump(ctx, kv); err != nil {
				t.Fatal(err)
			}
		}
		var resp []byte
		err := conn.Invoke(ctx, m.name, &data, &resp, grpc.ForceCodec(rawCodec{}))
		st, _ := status.FromError(err)
		if decodeErr != nil {
			// gRPC refuses it before any handler runs.
			if st.Code() != codes.Internal || !strings.Contains(st.Message(), "unmarshal") {
				t.Fatalf("%s of undecodable bytes (%v) = %v, want gRPC's refusal", m.name, decodeErr, err)
			}
			return
		}
		if bad {
			fe := rpc.ErrorFromStatus(err, m.write)
			want := flotillapb.Outcome_OUTCOME_UNSPECIFIED
			if m.write {
				want = flotillapb.Outcome_NOT_APPLIED
			}
			if st.Code() != codes.InvalidArgument || fe.GetInvalidArgument().GetField() == "" || fe.GetMessage() == "" || fe.GetOutcome() != want {
				t.Fatalf("%s(%v) = %v; want InvalidArgument naming a field, with a message, outcome %v", m.name, brief(req), err, want)
			}
			// Nothing changed.
			after, err := fuzzDump(ctx, kv)
			if err != nil {
				t.Fatal(err)
			}
			if after != before {
				t.Fatalf("%s(%v), refused, changed the data:\nbefore %s\nafter  %s", m.name, brief(req), before, after)
			}
			return
		}
		if err == nil {
			return
		}
		fe := rpc.ErrorFromStatus(err, m.write)
		switch {
		case st.Code() == codes.DeadlineExceeded:
			// A healthy node answers at once: this one retried a request
			// that cannot succeed until the deadline.
			t.Fatalf("%s(%v) timed out: %v", m.name, brief(req), err)
		case fe.GetMessage() == "":
			t.Fatalf("%s(%v) failed without a message: %v", m.name, brief(req), err)
		case revisionRefusal(req, fe):
			// A good request at a revision compacted away or in the
			// future, or a txn across ranges: refused, as it should be.
		case fe.GetInvalidArgument() != nil && m.name != flotillapb.Placement_SplitRange_FullMethodName:
			// (A split key may be a range's start already.)
			t.Fatalf("%s(%v) refused good input: %v", m.name, brief(req), err)
		case routedHeader(req) || m.name == flotillapb.Placement_SplitRange_FullMethodName:
			// The routing errors; a split in progress.
		default:
			t.Fatalf("%s(%v) = %v, want success", m.name, brief(req), err)
		}
	})
}

// brief describes a request in at most a few hundred bytes.
func brief(req proto.Message) string {
	s := fmt.Sprint(req)
	if len(s) > 300 {
		s = fmt.Sprintf("%s… (%d bytes)", s[:300], len(s))
	}
	return s
}

// gatewayFuzzSeeds are FuzzGatewayRequest's seeds by name: for each method,
// a good request, empty and oversize keys, oversize values, spans that end
// before they start, ops with nothing set, huge and negative limits, a
// routed header and undecodable bytes.
func gatewayFuzzSeeds() map[string]struct {
	method int
	msg    proto.Message
	raw    []byte // if msg is nil
} {
	big := bytes.Repeat([]byte("k"), flotillapb.MaxKeySize+1)
	bigValue := bytes.Repeat([]byte("v"), fuzzMaxValue+1)
	b := func(s string) []byte { return []byte(s) }
	routed := &flotillapb.RequestHeader{RangeId: 99, Version: 3, Forwarded: true}
	putOp := func(k, v []byte) *flotillapb.Op {
		return &flotillapb.Op{Op: &flotillapb.Op_Put{Put: &flotillapb.PutOp{Key: k, Value: v}}}
	}
	delRangeOp := func(s, e []byte) *flotillapb.Op {
		return &flotillapb.Op{Op: &flotillapb.Op_DeleteRange{DeleteRange: &flotillapb.DeleteRangeOp{StartKey: s, EndKey: e}}}
	}
	casOp := func(k, exp, v []byte) *flotillapb.Op {
		return &flotillapb.Op{Op: &flotillapb.Op_Cas{Cas: &flotillapb.CompareAndSwapOp{Key: k, Expected: exp, Value: v}}}
	}
	type seed = struct {
		method int
		msg    proto.Message
		raw    []byte
	}
	const (
		get = iota
		put
		del
		delRange
		scan
		cas
		batch
		split
		lookup
		txn
		compactM
	)
	tput := func(k, v []byte) *flotillapb.TxnOp {
		return &flotillapb.TxnOp{Op: &flotillapb.TxnOp_Put{Put: &flotillapb.PutOp{Key: k, Value: v}}}
	}
	tget := func(k []byte) *flotillapb.TxnOp {
		return &flotillapb.TxnOp{Op: &flotillapb.TxnOp_Get{Get: &flotillapb.GetOp{Key: k}}}
	}
	tscan := func(s, e []byte, limit int64) *flotillapb.TxnOp {
		return &flotillapb.TxnOp{Op: &flotillapb.TxnOp_Scan{Scan: &flotillapb.ScanOp{StartKey: s, EndKey: e, Limit: limit}}}
	}
	tdelRange := func(s, e []byte) *flotillapb.TxnOp {
		return &flotillapb.TxnOp{Op: &flotillapb.TxnOp_DeleteRange{DeleteRange: &flotillapb.DeleteRangeOp{StartKey: s, EndKey: e}}}
	}
	valueIs := func(k, v []byte) *flotillapb.Compare {
		return &flotillapb.Compare{Key: k, Target: flotillapb.Compare_VALUE, TargetUnion: &flotillapb.Compare_Value{Value: v}}
	}
	return map[string]seed{
		"get":                   {get, &flotillapb.GetRequest{Key: b("a")}, nil},
		"get-empty-key":         {get, &flotillapb.GetRequest{}, nil},
		"get-oversize-key":      {get, &flotillapb.GetRequest{Key: big}, nil},
		"get-routed":            {get, &flotillapb.GetRequest{Header: routed, Key: b("a")}, nil},
		"get-version-only":      {get, &flotillapb.GetRequest{Header: &flotillapb.RequestHeader{Version: 5}, Key: b("a")}, nil},
		"put":                   {put, &flotillapb.PutRequest{Key: b("a"), Value: b("1")}, nil},
		"put-empty-key":         {put, &flotillapb.PutRequest{Value: b("1")}, nil},
		"put-oversize-key":      {put, &flotillapb.PutRequest{Key: big, Value: b("1")}, nil},
		"put-oversize-value":    {put, &flotillapb.PutRequest{Key: b("a"), Value: bigValue}, nil},
		"put-routed":            {put, &flotillapb.PutRequest{Header: routed, Key: b("a"), Value: b("1")}, nil},
		"put-truncated":         {put, nil, b("\x12\x05ab")},
		"delete":                {del, &flotillapb.DeleteRequest{Key: b("a")}, nil},
		"delete-empty-key":      {del, &flotillapb.DeleteRequest{}, nil},
		"delete-range":          {delRange, &flotillapb.DeleteRangeRequest{StartKey: b("a"), EndKey: b("c")}, nil},
		"delete-range-all":      {delRange, &flotillapb.DeleteRangeRequest{}, nil},
		"delete-range-reversed": {delRange, &flotillapb.DeleteRangeRequest{StartKey: b("z"), EndKey: b("a")}, nil},
		"delete-range-oversize": {delRange, &flotillapb.DeleteRangeRequest{EndKey: big}, nil},
		"scan":                  {scan, &flotillapb.ScanRequest{StartKey: b("a"), EndKey: b("z"), Limit: 10}, nil},
		"scan-reverse":          {scan, &flotillapb.ScanRequest{Reverse: true, Limit: 1<<63 - 1}, nil},
		"scan-negative-limit":   {scan, &flotillapb.ScanRequest{Limit: -1 << 63}, nil},
		"scan-reversed":         {scan, &flotillapb.ScanRequest{StartKey: b("b"), EndKey: b("a")}, nil},
		"scan-oversize":         {scan, &flotillapb.ScanRequest{StartKey: big}, nil},
		"cas":                   {cas, &flotillapb.CompareAndSwapRequest{Key: b("a"), ExpectAbsent: true, Value: b("1")}, nil},
		"cas-empty-key":         {cas, &flotillapb.CompareAndSwapRequest{Value: b("1")}, nil},
		"cas-oversize-expected": {cas, &flotillapb.CompareAndSwapRequest{Key: b("a"), Expected: bigValue}, nil},
		"batch":                 {batch, &flotillapb.BatchRequest{Ops: []*flotillapb.Op{putOp(b("a"), b("1")), delRangeOp(b("b"), nil), casOp(b("a"), b("1"), b("2"))}}, nil},
		"batch-no-ops":          {batch, &flotillapb.BatchRequest{}, nil},
		"batch-nil-op":          {batch, &flotillapb.BatchRequest{Ops: []*flotillapb.Op{putOp(b("a"), b("1")), {}}}, nil},
		"batch-empty-key":       {batch, &flotillapb.BatchRequest{Ops: []*flotillapb.Op{putOp(nil, b("1"))}}, nil},
		"batch-oversize-value":  {batch, &flotillapb.BatchRequest{Ops: []*flotillapb.Op{putOp(b("a"), bigValue)}}, nil},
		"batch-oversize-cas":    {batch, &flotillapb.BatchRequest{Ops: []*flotillapb.Op{casOp(b("a"), nil, bigValue)}}, nil},
		"batch-reversed-span":   {batch, &flotillapb.BatchRequest{Ops: []*flotillapb.Op{delRangeOp(b("z"), b("a"))}}, nil},
		"batch-routed":          {batch, &flotillapb.BatchRequest{Header: routed, Ops: []*flotillapb.Op{putOp(b("a"), b("1"))}}, nil},
		"split":                 {split, &flotillapb.SplitRangeRequest{Key: b("m")}, nil},
		"split-empty-key":       {split, &flotillapb.SplitRangeRequest{}, nil},
		"split-oversize-key":    {split, &flotillapb.SplitRangeRequest{Key: big}, nil},
		"lookup":                {lookup, &flotillapb.LookupRangeRequest{Key: b("a")}, nil},
		"lookup-empty-before":   {lookup, &flotillapb.LookupRangeRequest{Before: true}, nil},
		"lookup-oversize-key":   {lookup, &flotillapb.LookupRangeRequest{Key: big, Forwarded: true}, nil},
		"lookup-garbage":        {lookup, nil, b("\xff\xff\xff")},
		"get-at-revision":       {get, &flotillapb.GetRequest{Key: b("a"), Revision: 1}, nil},
		"get-negative-revision": {get, &flotillapb.GetRequest{Key: b("a"), Revision: -1}, nil},
		"get-future-revision":   {get, &flotillapb.GetRequest{Key: b("a"), Revision: 1<<63 - 1}, nil},
		"scan-at-revision":      {scan, &flotillapb.ScanRequest{Revision: 2}, nil},
		"scan-negative-rev":     {scan, &flotillapb.ScanRequest{Revision: -1 << 63}, nil},
		"scan-future-revision":  {scan, &flotillapb.ScanRequest{StartKey: b("a"), Revision: 1 << 40}, nil},
		"txn":                   {txn, &flotillapb.TxnRequest{Compares: []*flotillapb.Compare{valueIs(b("a"), b("1"))}, Success: []*flotillapb.TxnOp{tput(b("a"), b("2")), tget(b("a"))}, Failure: []*flotillapb.TxnOp{tscan(nil, nil, 0)}}, nil},
		"txn-reads-only":        {txn, &flotillapb.TxnRequest{Success: []*flotillapb.TxnOp{tget(b("a")), tscan(b("a"), b("z"), 3)}}, nil},
		"txn-compares-only":     {txn, &flotillapb.TxnRequest{Compares: []*flotillapb.Compare{{Key: b("a"), Target: flotillapb.Compare_CREATE}}}, nil},
		"txn-across-split":      {txn, &flotillapb.TxnRequest{Success: []*flotillapb.TxnOp{tput(b("a"), b("1")), tput(b("z"), b("1"))}}, nil},
		"txn-delete-range-all":  {txn, &flotillapb.TxnRequest{Success: []*flotillapb.TxnOp{tdelRange(b("x"), nil)}}, nil},
		"txn-empty":             {txn, &flotillapb.TxnRequest{}, nil},
		"txn-too-many-ops":      {txn, &flotillapb.TxnRequest{Success: []*flotillapb.TxnOp{tput(b("a"), b("1")), tput(b("b"), b("1")), tput(b("c"), b("1"))}, Failure: []*flotillapb.TxnOp{tget(b("a")), tget(b("b"))}}, nil},
		"txn-unknown-target":    {txn, &flotillapb.TxnRequest{Compares: []*flotillapb.Compare{{Key: b("a"), Target: 9}}, Success: []*flotillapb.TxnOp{tput(b("a"), b("x"))}}, nil},
		"txn-unknown-result":    {txn, &flotillapb.TxnRequest{Compares: []*flotillapb.Compare{{Key: b("a"), Result: 4}}, Success: []*flotillapb.TxnOp{tput(b("a"), b("x"))}}, nil},
		"txn-wrong-operand":     {txn, &flotillapb.TxnRequest{Compares: []*flotillapb.Compare{{Key: b("a"), Target: flotillapb.Compare_MOD, TargetUnion: &flotillapb.Compare_Version{Version: 1}}}, Success: []*flotillapb.TxnOp{tput(b("a"), b("x"))}}, nil},
		"txn-oversize-compare":  {txn, &flotillapb.TxnRequest{Compares: []*flotillapb.Compare{valueIs(b("a"), bigValue)}, Success: []*flotillapb.TxnOp{tput(b("a"), b("x"))}}, nil},
		"txn-nil-op":            {txn, &flotillapb.TxnRequest{Success: []*flotillapb.TxnOp{tput(b("a"), b("1")), {}}}, nil},
		"txn-negative-limit":    {txn, &flotillapb.TxnRequest{Success: []*flotillapb.TxnOp{tput(b("a"), b("1")), tscan(nil, nil, -1)}}, nil},
		"txn-routed":            {txn, &flotillapb.TxnRequest{Header: routed, Success: []*flotillapb.TxnOp{tput(b("a"), b("1"))}}, nil},
		"compact":               {compactM, &flotillapb.CompactRequest{Revision: 1}, nil},
		"compact-zero":          {compactM, &flotillapb.CompactRequest{}, nil},
		"compact-negative":      {compactM, &flotillapb.CompactRequest{Revision: -1 << 63}, nil},
		"compact-future":        {compactM, &flotillapb.CompactRequest{Revision: 1<<63 - 1}, nil},
		"compact-routed":        {compactM, &flotillapb.CompactRequest{Header: routed, Revision: 1}, nil},
	}
}

// TestGatewayFuzzSeeds checks that FuzzGatewayRequest's seed corpus is
// gatewayFuzzSeeds, or writes it with -write-fuzz-seeds.
func TestGatewayFuzzSeeds(t *testing.T) {
	for name, s := range gatewayFuzzSeeds() {
		data := s.raw
		if s.msg != nil {
			var err error
			if data, err = (proto.MarshalOptions{Deterministic: true}).Marshal(s.msg); err != nil {
				t.Fatal(err)
			}
			if got := fuzzMethods[s.method].req(); got.ProtoReflect().Descriptor() != s.msg.ProtoReflect().Descriptor() {
				t.Fatalf("seed %s: a %T for %s", name, s.msg, fuzzMethods[s.method].name)
			}
		}
		path := filepath.Join("testdata", "fuzz", "FuzzGatewayRequest", name)
		want := fmt.Sprintf("go test fuzz v1\nbyte(%q)\n[]byte(%q)\n", byte(s.method), data)
		if *writeFuzzSeeds {
			if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, []byte(want), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if got, err := os.ReadFile(path); err != nil || string(got) != want {
			t.Errorf("seed %s is missing or out of date (%v): run go test ./server -run '^TestGatewayFuzzSeeds$' -write-fuzz-seeds", path, err)
		}
	}
}
