// Copyright 2026 The Flotilla Authors. All rights reserved.

// Package revcheck holds the test oracles of issue 16 (docs/REVISIONS.md,
// "What the tests must show"; TESTING.md scenarios 19 and 20): checkers
// for histories of a store with etcd's data model, where every write gets
// a cluster-wide revision (unique, increasing in real-time order, with
// gaps), each key has a create revision, a mod revision and a version,
// linearizable reads return the revision R they were served at, reads at
// a revision return the state as of it, and txns apply at one revision.
// It is used by the tests of other packages (server's, bench's) and runs
// nothing of Flotilla's: it imports only porcupine.
//
// # Recording
//
// A test makes one Recorder, and each client goroutine (one op at a time
// per ClientID) records every op it runs:
//
//	rec := revcheck.NewRecorder()
//	out := rec.Do(client, revcheck.Input{Kind: revcheck.KindPut, Key: k, Value: v}, func() revcheck.Output {
//		resp, err := kv.Put(ctx, k, v)
//		switch {
//		case errors.Is(err, flotilla.ErrNotApplied):
//			return revcheck.Output{Outcome: revcheck.NotApplied}
//		case err != nil: // ErrOutcomeUnknown, a timeout, anything that does not say
//			return revcheck.Output{Outcome: revcheck.Unknown}
//		}
//		return revcheck.Output{Revision: resp.Revision} // the write's revision, from the response header
//	})
//
// Do (or Now before the call, Now after the answer, then Record) takes the
// times from one monotonic clock. Rules: a read that failed is recorded as
// NotApplied (it observed nothing); a write that failed with anything but
// a certain "not applied" is Unknown; a get records Found and the KV with
// its create/mod revision and version, a scan its KVs, a txn Succeeded,
// its Revision and one TxnResult per op of the branch it ran; every write
// puts a value no other write puts to the same key (the checkers identify
// an unknown-outcome write by its value, e.g. "c3-17"); a multi-key write
// recorded as one op per key gives them one Group. After the workload,
// heal the faults and read every key once more (what a lost or undone
// write left is then read), and check rec.History().
//
// # Checks
//
// CheckAll runs the first three; each can run alone, and each returns an
// error naming the ops at fault (*ViolationsError or
// *LinearizabilityError).
//
// CheckLinearizable (porcupine, NewModel): the writes and linearizable
// reads are linearizable with revisions: there is one order of them,
// within their call and return times, in which writes' revisions increase,
// each read's R is at or above every revision before it and every write
// after it is above R, and every read returns the state the writes before
// it made (value, create and mod revision, version; txn compares and
// branches; gets inside txns). Unknown-outcome writes may apply anywhere
// after their call or not at all; one whose value a read returned is
// applied at the mod revision that read reported; one nobody saw has a
// revision bounded by the ops around it (see modelState). Partitioned by
// key (a txn's keys together) for speed, which gives up the order of
// revisions across partitions: CheckRealTime covers it. Bounded by a
// timeout: porcupine giving up (Unknown) is a failure to tune, not a
// pass (many unknown outcomes on one key are what make it slow).
//
// CheckRealTime: over the whole history, for completed ops A before B in
// real time, revisions do not go back (writes strictly increase, reads'
// R never falls below an earlier write or read) and no two writes share
// a revision outside a Group. It cannot see what reads return.
//
// CheckSnapshots: every completed read with a revision (reads at a
// revision, linearizable reads, txn gets) returns exactly the state made
// by the acknowledged writes at or below its R, in revision order, with
// the unknown ones a read saw, leaving room only for unknown writes nobody
// saw; a scan at R is one snapshot across keys; reads at one R agree. It
// catches reads at R that did not wait for writes at or below R, and
// ranges that applied a write below their last revision, including in
// reads at a past revision, which the model does not check.
//
// CheckBank: every scan covering all the accounts sums to the total.
package revcheck
