// Copyright 2026 The Flotilla Authors. All rights reserved.

package revcheck_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flotilladb/flotilla/internal/revcheck"
)

// memStore is a correct store with revisions, for the Recorder's tests:
// every op takes effect under one mutex, at a revision from a counter
// with gaps.
type memStore struct {
	mu struct {
		sync.Mutex
		rev  int64
		keys map[string]revcheck.KV
	}
}

func newMemStore() *memStore {
	s := &memStore{}
	s.mu.keys = map[string]revcheck.KV{}
	return s
}

func (s *memStore) put(key, value string) revcheck.Output {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.rev += 3
	kv, ok := s.mu.keys[key]
	if !ok {
		kv = revcheck.KV{Key: key, CreateRevision: s.mu.rev}
	}
	kv.Value, kv.ModRevision = value, s.mu.rev
	kv.Version++
	s.mu.keys[key] = kv
	return revcheck.Output{Revision: s.mu.rev}
}

func (s *memStore) get(key string) revcheck.Output {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.rev++
	kv, ok := s.mu.keys[key]
	return revcheck.Output{Revision: s.mu.rev, Found: ok, KV: kv}
}

// TestRecorderConcurrent: ops recorded from many goroutines get unique
// IDs in recording order and call ≤ return times; not-applied ones are
// counted and left out; the history of a correct store passes every check.
func TestRecorderConcurrent(t *testing.T) {
	rec := revcheck.NewRecorder()
	store := newMemStore()
	const clients, perClient = 8, 50
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for i := range perClient {
				key := fmt.Sprintf("k%d", i%3)
				value := fmt.Sprintf("c%d-%d", c, i)
				switch i % 5 {
				case 0:
					// Refused: recorded, then dropped.
					rec.Do(c, revcheck.Input{Kind: revcheck.KindPut, Key: key, Value: value}, func() revcheck.Output {
						return revcheck.Output{Outcome: revcheck.NotApplied}
					})
				case 1:
					// Applied, but the client never heard back.
					rec.Do(c, revcheck.Input{Kind: revcheck.KindPut, Key: key, Value: value}, func() revcheck.Output {
						store.put(key, value)
						return revcheck.Output{Outcome: revcheck.Unknown}
					})
				case 2, 3:
					rec.Do(c, revcheck.Input{Kind: revcheck.KindPut, Key: key, Value: value}, func() revcheck.Output { return store.put(key, value) })
				default:
					call := rec.Now()
					out := store.get(key)
					rec.Record(c, revcheck.Input{Kind: revcheck.KindGet, Key: key}, call, rec.Now(), out)
				}
			}
		})
	}
	wg.Wait()
	h := rec.History()
	if want := clients * perClient * 4 / 5; len(h) != want {
		t.Fatalf("%d ops recorded, want %d", len(h), want)
	}
	for i, op := range h {
		if op.ID != i+1 || op.Call > op.Return || op.Output.Outcome == revcheck.NotApplied {
			t.Fatalf("op %d: %s", i, op)
		}
	}
	if s := rec.String(); !strings.Contains(s, fmt.Sprintf("%d not applied", clients*perClient/5)) {
		t.Errorf("String() = %q", s)
	}
	if err := revcheck.CheckAll(h, checkTimeout); err != nil {
		t.Fatal(err)
	}
}

// Example records a history from concurrent clients and checks it.
func Example() {
	rec := revcheck.NewRecorder()
	store := newMemStore()
	var wg sync.WaitGroup
	for c := range 3 {
		wg.Go(func() {
			for i := range 5 {
				// Unique values: the checkers tell writes apart by them.
				v := fmt.Sprintf("c%d-%d", c, i)
				rec.Do(c, revcheck.Input{Kind: revcheck.KindPut, Key: "k", Value: v}, func() revcheck.Output { return store.put("k", v) })
				rec.Do(c, revcheck.Input{Kind: revcheck.KindGet, Key: "k"}, func() revcheck.Output { return store.get("k") })
			}
		})
	}
	wg.Wait()
	fmt.Println(revcheck.CheckAll(rec.History(), time.Second))
	// Output: <nil>
}
