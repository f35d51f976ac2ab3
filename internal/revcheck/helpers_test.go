// Copyright 2026 The Flotilla Authors. All rights reserved.

package revcheck_test

import (
	"testing"

	"github.com/flotilladb/flotilla/internal/revcheck"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// hist builds a history by hand; ops get IDs 1, 2, … in order.
type hist struct{ ops []revcheck.Op }

func (h *hist) add(client int, call, ret int64, in revcheck.Input, out revcheck.Output) *hist {
	h.ops = append(h.ops, revcheck.Op{ID: len(h.ops) + 1, ClientID: client, Call: call, Return: ret, Input: in, Output: out})
	return h
}

func kv(key, value string, create, mod, version int64) *revcheck.KV {
	return &revcheck.KV{Key: key, Value: value, CreateRevision: create, ModRevision: mod, Version: version}
}

func (h *hist) put(client int, call, ret int64, key, value string, rev int64) *hist {
	return h.add(client, call, ret, revcheck.Input{Kind: revcheck.KindPut, Key: key, Value: value}, revcheck.Output{Revision: rev})
}

func (h *hist) groupPut(client int, call, ret int64, group, key, value string, rev int64) *hist {
	return h.add(client, call, ret, revcheck.Input{Kind: revcheck.KindPut, Key: key, Value: value, Group: group}, revcheck.Output{Revision: rev})
}

// putUnknown records a put of unknown outcome, given up on at call+1.
func (h *hist) putUnknown(client int, call int64, key, value string) *hist {
	return h.add(client, call, call+1, revcheck.Input{Kind: revcheck.KindPut, Key: key, Value: value}, revcheck.Output{Outcome: revcheck.Unknown})
}

func (h *hist) del(client int, call, ret int64, key string, rev int64, found bool) *hist {
	return h.add(client, call, ret, revcheck.Input{Kind: revcheck.KindDelete, Key: key}, revcheck.Output{Revision: rev, Found: found})
}

func (h *hist) delUnknown(client int, call int64, key string) *hist {
	return h.add(client, call, call+1, revcheck.Input{Kind: revcheck.KindDelete, Key: key}, revcheck.Output{Outcome: revcheck.Unknown})
}

// get records a latest get served at R that found got (nil: absent).
func (h *hist) get(client int, call, ret int64, key string, R int64, got *revcheck.KV) *hist {
	return h.getAt(client, call, ret, key, 0, R, got)
}

// getAt records a get at revision at (0: latest) served at R.
func (h *hist) getAt(client int, call, ret int64, key string, at, R int64, got *revcheck.KV) *hist {
	out := revcheck.Output{Revision: R}
	if got != nil {
		out.Found, out.KV = true, *got
	}
	return h.add(client, call, ret, revcheck.Input{Kind: revcheck.KindGet, Key: key, AtRevision: at}, out)
}

func (h *hist) scan(client int, call, ret int64, start, end string, at, R int64, got ...*revcheck.KV) *hist {
	out := revcheck.Output{Revision: R}
	for _, g := range got {
		out.KVs = append(out.KVs, *g)
	}
	return h.add(client, call, ret, revcheck.Input{Kind: revcheck.KindScan, Key: start, End: end, AtRevision: at}, out)
}

func (h *hist) txn(client int, call, ret int64, in revcheck.Input, rev int64, succeeded bool, results ...revcheck.TxnResult) *hist {
	in.Kind = revcheck.KindTxn
	return h.add(client, call, ret, in, revcheck.Output{Revision: rev, Succeeded: succeeded, Results: results})
}

func found(k *revcheck.KV) revcheck.TxnResult { return revcheck.TxnResult{Found: true, KV: *k} }

func putOp(key, value string) revcheck.TxnOp {
	return revcheck.TxnOp{Kind: revcheck.KindPut, Key: key, Value: value}
}

func getOp(key string) revcheck.TxnOp { return revcheck.TxnOp{Kind: revcheck.KindGet, Key: key} }
