// Copyright 2026 The Flotilla Authors. All rights reserved.

package server_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flotilladb/flotilla/internal/revcheck"
	"github.com/flotilladb/flotilla/internal/testutil"
	"github.com/flotilladb/flotilla/server"
)

// TestBankRevisions is the bank test of docs/REVISIONS.md (TESTING.md
// scenario 20): eight accounts in four ranges, two per range; transfers
// move money between the two accounts of one range by an etcd-style
// optimistic txn (read both, then "if both mod revisions (or values) are
// still those, put both"); readers scan every account at the latest
// revision, then scan again at the revision the first scan reported, and
// later at revisions of older scans, or read every account by one
// read-only txn (gets in four ranges at the txn's revision). Under partitions and node restarts,
// every scan must sum to the initial total (revcheck.CheckBank), scans at
// one revision must return the same pairs, and revisions must follow real
// time (revcheck.CheckRealTime); with no write of unknown outcome, every
// read must be the snapshot of the writes at or below its revision
// (revcheck.CheckSnapshots: balances repeat, so an unknown transfer a scan
// saw cannot be told from another by its values).
func TestBankRevisions(t *testing.T) {
	seed := revTestSeed(t)
	workload := rvDuration(10 * time.Second)
	groups := [][]string{{"a0", "a1"}, {"b0", "b1"}, {"c0", "c1"}, {"d0", "d1"}}
	var accounts []string
	for _, g := range groups {
		accounts = append(accounts, g...)
	}
	const (
		initial    = 100
		transfers  = 4 // goroutines
		readers    = 2
		maxOps     = 20000 // per goroutine
		scanStart  = "a"
		scanEnd    = "e"
		minScans   = 4
		minApplied = 5
	)
	total := int64(initial * len(accounts))
	c := startRVCluster(t, &server.TestingKnobs{RevisionWindow: 1024}, []string{"b", "c", "d"})
	rec := revcheck.NewRecorder()

	setup := c.client(rec, 0, 0, 1, 2)
	for _, a := range accounts {
		testutil.SucceedsSoon(t, func() error { _, err := setup.put(a, strconv.Itoa(initial)); return err })
	}

	var (
		stop    = make(chan struct{})
		wg      sync.WaitGroup
		applied atomic.Int64 // transfers that moved money
		scans   atomic.Int64
	)
	for ti := range transfers {
		cl := c.client(rec, 1+ti, ti%lzNodes, (ti+1)%lzNodes, (ti+2)%lzNodes)
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(cl.id)))
			for range maxOps {
				select {
				case <-stop:
					return
				default:
				}
				g := groups[rng.IntN(len(groups))]
				if transfer(cl, rng, g[0], g[1]) {
					applied.Add(1)
				}
			}
		}()
	}
	var (
		mu       sync.Mutex
		problems []string
	)
	for ri := range readers {
		cl := c.client(rec, 1+transfers+ri, (ri+1)%lzNodes, (ri+2)%lzNodes, ri%lzNodes)
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, uint64(cl.id)))
			var older []revcheck.Output // scans done, to read again at their revision
			for range maxOps {
				select {
				case <-stop:
					return
				default:
				}
				if rng.IntN(4) == 0 {
					// All accounts by one read-only txn: gets in four
					// ranges, read at the txn's revision.
					if problem := sumByTxn(cl, accounts, total); problem != "" {
						mu.Lock()
						problems = append(problems, problem)
						mu.Unlock()
					}
					continue
				}
				first, err := cl.scan(scanStart, scanEnd, 0)
				if err != nil {
					continue
				}
				scans.Add(1)
				again := []revcheck.Output{first}
				if len(older) > 0 && rng.IntN(3) == 0 {
					again = append(again, older[rng.IntN(len(older))])
				}
				for _, want := range again {
					got, err := cl.scan(scanStart, scanEnd, want.Revision)
					if err != nil {
						continue
					}
					if !slices.Equal(got.KVs, want.KVs) {
						mu.Lock()
						problems = append(problems, fmt.Sprintf("scan at revision %d returned %v, earlier %v", want.Revision, got.KVs, want.KVs))
						mu.Unlock()
					}
				}
				older = append(older, first)
			}
		}()
	}

	// The nemesis: isolate a node (the placement leader's, a range
	// leader's, a random one) or restart one, alternately.
	var partitions, restarts atomic.Int64
	nemesisDone := make(chan struct{})
	go func() {
		defer close(nemesisDone)
		rng := rand.New(rand.NewPCG(seed, 0))
		pause := func(d time.Duration) bool {
			tm := time.NewTimer(d)
			defer tm.Stop()
			select {
			case <-stop:
				return false
			case <-tm.C:
				return true
			}
		}
		for round := 0; pause(time.Duration(500+rng.IntN(700)) * time.Millisecond); round++ {
			victim := rng.IntN(lzNodes)
			if round%2 == 0 {
				switch rng.IntN(3) {
				case 0:
					victim = max(placementLeader(c.lzCluster), 0)
				case 1:
					victim = max(c.leader(0, 1, 2), 0)
				}
				t.Logf("nemesis: isolating node %d", victim+1)
				c.isolate(victim)
				partitions.Add(1)
				ok := pause(time.Duration(500+rng.IntN(700)) * time.Millisecond)
				c.heal()
				t.Logf("nemesis: healed")
				if !ok {
					return
				}
				continue
			}
			t.Logf("nemesis: stopping node %d", victim+1)
			if err := c.stop(victim); err != nil {
				t.Error(err)
			}
			restarts.Add(1)
			pause(time.Duration(100+rng.IntN(400)) * time.Millisecond)
			t.Logf("nemesis: restarting node %d", victim+1)
			if err := c.open(victim); err != nil {
				t.Error(err)
				return
			}
		}
	}()

	tm := time.NewTimer(workload)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-tm.C:
	case <-done:
		tm.Stop()
	}
	close(stop)
	<-nemesisDone
	<-done
	c.heal()

	final := c.client(rec, 1+transfers+readers, 0, 1, 2)
	testutil.SucceedsWithin(t, 20*time.Second, func() error { _, err := final.scan(scanStart, scanEnd, 0); return err })

	h := rec.History()
	n := countOps(h)
	t.Logf("workload: %s; %s; %d transfers applied, %d scans; %d partitions, %d restarts",
		rec, n, applied.Load(), scans.Load(), partitions.Load(), restarts.Load())
	for _, p := range problems {
		t.Errorf("a scan at a revision read differently: %s", p)
	}
	if err := revcheck.CheckBank(h, accounts, total); err != nil {
		t.Errorf("the balances do not sum to %d: %v", total, err)
	}
	if err := revcheck.CheckRealTime(h); err != nil {
		t.Errorf("revisions out of real-time order: %v", err)
	}
	if n.unknown == 0 {
		if err := revcheck.CheckSnapshots(h); err != nil {
			t.Errorf("reads are not snapshots: %v", err)
		}
	} else {
		t.Logf("%d writes of unknown outcome: CheckSnapshots skipped", n.unknown)
	}
	if scans.Load() < minScans || applied.Load() < minApplied {
		t.Errorf("only %d scans and %d transfers applied, want at least %d and %d", scans.Load(), applied.Load(), minScans, minApplied)
	}
	if partitions.Load() == 0 || restarts.Load() == 0 {
		t.Errorf("the nemesis made %d partitions and %d restarts, want at least one of each", partitions.Load(), restarts.Load())
	}
}

// sumByTxn reads every account by a read-only txn (gets, no compares)
// and says what is wrong with the balances it read ("" if nothing, or if
// the txn failed).
func sumByTxn(cl *rvClient, accounts []string, total int64) string {
	in := revcheck.Input{Kind: revcheck.KindTxn}
	for _, a := range accounts {
		in.Then = append(in.Then, revcheck.TxnOp{Kind: revcheck.KindGet, Key: a})
	}
	out, err := cl.txn(in)
	if err != nil {
		return ""
	}
	var sum int64
	for i, r := range out.Results {
		n, err := strconv.ParseInt(r.KV.Value, 10, 64)
		if !r.Found || err != nil {
			return fmt.Sprintf("a read-only txn at revision %d read account %s as %v", out.Revision, accounts[i], r)
		}
		sum += n
	}
	if sum != total {
		return fmt.Sprintf("a read-only txn at revision %d found a total of %d", out.Revision, sum)
	}
	return ""
}

// transfer moves a random amount between accounts a and b of one range,
// etcd's way: it reads both (a read-only txn), then puts both new
// balances in a txn that runs only if both are unchanged (their mod
// revisions, or their values). It reports whether the money moved.
func transfer(cl *rvClient, rng *rand.Rand, a, b string) bool {
	read, err := cl.txn(revcheck.Input{Kind: revcheck.KindTxn, Then: []revcheck.TxnOp{{Kind: revcheck.KindGet, Key: a}, {Kind: revcheck.KindGet, Key: b}}})
	if err != nil || len(read.Results) != 2 || !read.Results[0].Found || !read.Results[1].Found {
		return false
	}
	ka, kb := read.Results[0].KV, read.Results[1].KV
	va, errA := strconv.ParseInt(ka.Value, 10, 64)
	vb, errB := strconv.ParseInt(kb.Value, 10, 64)
	if errA != nil || errB != nil {
		return false
	}
	from, to, vf, vt := a, b, va, vb
	if va < vb {
		from, to, vf, vt = b, a, vb, va
	}
	amount := 1 + rng.Int64N(max(1, vf/2))
	var compares []revcheck.Compare
	if rng.IntN(2) == 0 {
		compares = []revcheck.Compare{
			{Key: a, Target: revcheck.TargetMod, Cmp: revcheck.CmpEqual, Operand: ka.ModRevision},
			{Key: b, Target: revcheck.TargetMod, Cmp: revcheck.CmpEqual, Operand: kb.ModRevision},
		}
	} else {
		compares = []revcheck.Compare{
			{Key: a, Target: revcheck.TargetValue, Cmp: revcheck.CmpEqual, Value: ka.Value},
			{Key: b, Target: revcheck.TargetValue, Cmp: revcheck.CmpEqual, Value: kb.Value},
		}
	}
	out, err := cl.txn(revcheck.Input{
		Kind:     revcheck.KindTxn,
		Compares: compares,
		Then: []revcheck.TxnOp{
			{Kind: revcheck.KindPut, Key: from, Value: strconv.FormatInt(vf-amount, 10)},
			{Kind: revcheck.KindPut, Key: to, Value: strconv.FormatInt(vt+amount, 10)},
		},
		Else: []revcheck.TxnOp{{Kind: revcheck.KindGet, Key: a}, {Kind: revcheck.KindGet, Key: b}},
	})
	return err == nil && out.Succeeded
}
