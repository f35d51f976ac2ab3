// Copyright 2026 The Flotilla Authors. All rights reserved.

package bench

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/btree"
)

// Errors for fakeTarget's injected failures: fakeClassifyingTarget
// classes errNotApplied as ClassNotApplied and errInjected as
// "unavailable".
var (
	errInjected   = errors.New("fake: injected failure")
	errNotApplied = errors.New("fake: injected failure, not applied")
)

// fakeTarget is an in-memory Target: a sorted map under a mutex, with
// injectable latency and failures. Set the knobs before use.
type fakeTarget struct {
	// latency, if set, returns how long an operation ("get", "put",
	// "scan") takes; the call sleeps that long (or until its context
	// ends, failing with the context's error).
	latency func(op string, key []byte) time.Duration
	// fail, if set, returns an error for an operation; applied reports
	// whether a failing put still writes (an outcome-unknown failure).
	fail func(op string, key []byte) (err error, applied bool)
	// corruptRead, if set, may change the value a Get returns.
	corruptRead func(key, value []byte) []byte
	// cpuPerOp is the server CPU time ServerCPUSeconds accounts per
	// operation, if the target is wrapped by fakeCPUTarget.
	cpuPerOp time.Duration

	ops    atomic.Int64
	closed atomic.Bool
	mu     struct {
		sync.Mutex
		data *btree.BTreeG[fakeItem]
	}
}

type fakeItem struct {
	key, value []byte
}

func newFakeTarget() *fakeTarget {
	f := &fakeTarget{}
	f.mu.data = btree.NewG(8, func(a, b fakeItem) bool { return bytes.Compare(a.key, b.key) < 0 })
	return f
}

func (f *fakeTarget) wait(ctx context.Context, op string, key []byte) error {
	f.ops.Add(1)
	if f.closed.Load() {
		return errors.New("fake: closed")
	}
	if f.latency == nil {
		return ctx.Err()
	}
	d := f.latency(op, key)
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (f *fakeTarget) Get(ctx context.Context, key []byte) ([]byte, bool, error) {
	if err := f.wait(ctx, "get", key); err != nil {
		return nil, false, err
	}
	if f.fail != nil {
		if err, _ := f.fail("get", key); err != nil {
			return nil, false, err
		}
	}
	f.mu.Lock()
	it, ok := f.mu.data.Get(fakeItem{key: key})
	f.mu.Unlock()
	if !ok {
		return nil, false, nil
	}
	value := bytes.Clone(it.value)
	if f.corruptRead != nil {
		value = f.corruptRead(key, value)
	}
	return value, true, nil
}

func (f *fakeTarget) Put(ctx context.Context, key, value []byte) error {
	if err := f.wait(ctx, "put", key); err != nil {
		return err
	}
	var failure error
	if f.fail != nil {
		var applied bool
		if failure, applied = f.fail("put", key); failure != nil && !applied {
			return failure
		}
	}
	f.set(key, value)
	return failure
}

func (f *fakeTarget) Scan(ctx context.Context, start []byte, limit int) (int, error) {
	if err := f.wait(ctx, "scan", start); err != nil {
		return 0, err
	}
	if f.fail != nil {
		if err, _ := f.fail("scan", start); err != nil {
			return 0, err
		}
	}
	n := 0
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mu.data.AscendGreaterOrEqual(fakeItem{key: start}, func(fakeItem) bool {
		n++
		return n < limit
	})
	return n, nil
}

func (f *fakeTarget) Close() error {
	f.closed.Store(true)
	return nil
}

func (f *fakeTarget) Describe(context.Context) map[string]any {
	return map[string]any{"kind": "fake", "nodes": 1, "fsync": false}
}

// set writes key directly, as a test's tampering.
func (f *fakeTarget) set(key, value []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mu.data.ReplaceOrInsert(fakeItem{key: bytes.Clone(key), value: bytes.Clone(value)})
}

// remove deletes key directly, as a test's tampering.
func (f *fakeTarget) remove(key []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.mu.data.Delete(fakeItem{key: key})
}

func (f *fakeTarget) get(key []byte) ([]byte, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	it, ok := f.mu.data.Get(fakeItem{key: key})
	return it.value, ok
}

func (f *fakeTarget) len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.mu.data.Len()
}

// fakeCPUTarget adds ServerCPU to a fakeTarget: cpuPerOp per operation.
type fakeCPUTarget struct{ *fakeTarget }

func (f fakeCPUTarget) ServerCPUSeconds(context.Context) (float64, error) {
	return (time.Duration(f.ops.Load()) * f.cpuPerOp).Seconds(), nil
}

// fakeClassifyingTarget adds an ErrorClassifier to a fakeTarget.
type fakeClassifyingTarget struct{ *fakeTarget }

func (fakeClassifyingTarget) ClassifyError(err error) string {
	switch {
	case errors.Is(err, errNotApplied):
		return ClassNotApplied
	case errors.Is(err, errInjected):
		return "unavailable"
	}
	return ""
}

var (
	_ Target          = (*fakeTarget)(nil)
	_ Describer       = (*fakeTarget)(nil)
	_ ServerCPU       = fakeCPUTarget{}
	_ ErrorClassifier = fakeClassifyingTarget{}
)
