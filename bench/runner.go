// Copyright 2026 The Flotilla Authors. All rights reserved.

package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Error classes the runner assigns itself. A target implementing
// ErrorClassifier names the classes of its errors; a class it returns as
// "" falls back to ClassTimeout, ClassCanceled or ClassOther.
const (
	// ClassTimeout: the operation's context deadline passed
	// (context.DeadlineExceeded), e.g. Config.OpTimeout.
	ClassTimeout = "timeout"
	// ClassCanceled: the operation's context was canceled
	// (context.Canceled), e.g. the caller interrupted the run.
	ClassCanceled = "canceled"
	// ClassOther: any other error the target did not classify.
	ClassOther = "other"
	// ClassNotFound: a read (or a read-modify-write's read) found no value
	// for a record that should exist; the operation writes nothing.
	ClassNotFound = "not-found"
	// ClassCorrupt: with Config.Verify, a read returned a value that no
	// write to that key made (also listed by Verify).
	ClassCorrupt = "corrupt"
	// ClassNotApplied is the class a target's ErrorClassifier gives a
	// write known not to have been applied; Verify then does not accept
	// its value.
	ClassNotApplied = "not-applied"
)

// Runner drives a workload against targets: Load inserts the records, Run
// issues the mix, Verify re-reads what was written. It keeps what phases
// share: the record numbering (Run's inserts continue after Load's
// records, and after earlier Runs' inserts) and, with Config.Verify, the
// history of writes. Its methods may be called from any goroutine; phases
// run one at a time (a call waits for the running one).
type Runner struct {
	cfg       Config
	clock     Clock
	keys      *keySpace
	scrambled *zipfian  // for Zipfian; nil otherwise
	verifier  *verifier // nil unless cfg.Verify
	// writeSeq numbers writes; the number is in the written value.
	writeSeq atomic.Uint64

	mu struct {
		sync.Mutex
		// phases counts phases started, the generators' stream.
		phases uint64
	}
}

// NewRunner checks cfg (after EnsureDefaults) and returns a Runner. If
// cfg.Seed is 0 it picks one at random; Config() and reports carry it.
func NewRunner(cfg Config) (*Runner, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	for cfg.Seed == 0 {
		cfg.Seed = rand.Uint64()
	}
	r := &Runner{cfg: cfg, clock: cfg.clock(), keys: newKeySpace(cfg.Workload.RecordCount)}
	if cfg.Workload.RequestDistribution == Zipfian {
		z := newZipfian(scrambledZipfianItems, cfg.Workload.ZipfianConstant)
		r.scrambled = &z
	}
	if cfg.Verify {
		r.verifier = newVerifier(&r.cfg.Workload)
	}
	return r, nil
}

// Config returns the configuration in use: defaults filled and the seed
// chosen.
func (r *Runner) Config() Config { return r.cfg }

// Load inserts records 0 … RecordCount-1 with Clients goroutines in a
// closed loop (Rate, Duration, MaxOps and Warmup do not apply: every record
// is attempted once; a failed insert is counted and not retried). It
// stops early if ctx ends, returning the report so far and ctx's error.
func (r *Runner) Load(ctx context.Context, t Target) (*Report, error) {
	return r.phase(ctx, t, "load")
}

// Run issues the workload's mix for Duration and/or MaxOps after Warmup,
// in a closed loop or, with Rate, an open loop (see Config). It stops
// early if ctx ends, returning the report so far and ctx's error. Run
// assumes the RecordCount records exist (loaded by Load, here or by an
// earlier process).
func (r *Runner) Run(ctx context.Context, t Target) (*Report, error) {
	return r.phase(ctx, t, "run")
}

// Verify re-reads every key written by this Runner's phases, with Clients
// goroutines, and checks each holds a value that may be current given the
// writes acknowledged, failed and overlapping (see Config.Verify). It
// returns how many keys it checked, and a *VerifyError listing the
// mismatches (including malformed values read during the phases) if there
// are any. A key whose re-read fails 3 times is a mismatch. It returns
// ErrVerifyDisabled without Config.Verify. Call it between phases.
func (r *Runner) Verify(ctx context.Context, t Target) (int, error) {
	if r.verifier == nil {
		return 0, ErrVerifyDisabled
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.verifier.verify(ctx, t, r.cfg.Clients, r.opContext)
}

func (r *Runner) opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, r.cfg.OpTimeout)
}

// classify names err's class: the target's ErrorClassifier's if it has
// one and names it, else by context error, else ClassOther.
func classify(t Target, err error) string {
	if c, ok := t.(ErrorClassifier); ok {
		if class := c.ClassifyError(err); class != "" {
			return class
		}
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return ClassTimeout
	case errors.Is(err, context.Canceled):
		return ClassCanceled
	default:
		return ClassOther
	}
}

// phase is one Load or Run: its schedule, its clients' shared state and
// what it measured.
type phase struct {
	r      *Runner
	t      Target
	name   string
	stream uint64
	rec    *recorder

	// The schedule, fixed before clients start.
	start        time.Time // clients start
	measureStart time.Time // start + Warmup: operations from here on are measured
	end          time.Time // measureStart + Duration; zero if no Duration
	dropAfter    time.Time // open loop: end + OpTimeout; zero if no Duration
	warmupOps    int64     // open loop: operations scheduled in the warmup
	interval     float64   // open loop: ns between intended starts

	// issued counts operations claimed: in the closed loop the measured
	// ones (bounded by MaxOps), in the open loop the schedule index, and
	// in Load the record number.
	issued atomic.Int64
	// Open loop: measured operations sent more than LateThreshold after
	// their intended start, the greatest lateness in ns, and how many
	// measured operations were sent.
	late    atomic.Int64
	maxLate atomic.Int64
	sent    atomic.Int64

	// Owned by the sampler goroutine until it has stopped.
	timeline   []Sample
	lastSample time.Time // the end of the last sample
	errorsSeen int64
	cpuStart   cpuReading
	// intervalHist is scratch for an interval's latencies; lastHist holds
	// the last sample's, for merging a short final interval into it.
	intervalHist, lastHist *hdrhistogram.Histogram
}

// cpuReading is the CPU seconds used at the start of the measured time.
type cpuReading struct {
	taken           bool
	client          float64
	clientOK        bool
	server          float64
	serverErr       error
	serverSupported bool
}

func (r *Runner) phase(ctx context.Context, t Target, name string) (*Report, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	stream := r.mu.phases << 32
	r.mu.phases++

	cfg := &r.cfg
	p := &phase{r: r, t: t, name: name, stream: stream, rec: newRecorder(cfg.Clients),
		intervalHist: newHistogram(), lastHist: newHistogram()}
	report := &Report{
		Phase:     name,
		GoVersion: goVersion(),
		Config:    *cfg,
	}
	if d, ok := t.(Describer); ok {
		report.Target = d.Describe(ctx)
	}
	openLoop := name == "run" && cfg.Rate > 0

	p.start = r.clock.Now()
	report.Start = p.start
	p.measureStart = p.start
	if name == "run" {
		p.measureStart = p.start.Add(cfg.Warmup)
		if cfg.Duration > 0 {
			p.end = p.measureStart.Add(cfg.Duration)
			p.dropAfter = p.end.Add(cfg.OpTimeout)
		}
		if openLoop {
			p.interval = float64(time.Second) / cfg.Rate
			p.warmupOps = int64(math.Ceil(float64(cfg.Warmup) / p.interval))
		}
	}
	p.lastSample = p.measureStart
	if !p.measureStart.After(p.start) {
		p.readCPU(ctx)
	}

	samplerCtx, stopSampler := context.WithCancel(ctx)
	samplerDone := make(chan struct{})
	go func() {
		defer close(samplerDone)
		p.sample(samplerCtx)
	}()

	var wg sync.WaitGroup
	for c := range cfg.Clients {
		wg.Go(func() {
			cl := p.newClient(c)
			switch {
			case name == "load":
				p.loadClient(ctx, cl)
			case openLoop:
				p.openLoopClient(ctx, cl)
			default:
				p.closedLoopClient(ctx, cl)
			}
		})
	}
	wg.Wait()
	finish := r.clock.Now()
	stopSampler()
	<-samplerDone

	if !finish.Before(p.lastSample) {
		p.takeSample(finish, true) // the last, partial second
	}
	p.fillReport(ctx, report, finish, openLoop)
	return report, ctx.Err()
}

// client is one client goroutine's state.
type client struct {
	id      int
	gen     *generator
	key     []byte
	value   []byte
	scratch []byte
}

func (p *phase) newClient(id int) *client {
	w := &p.r.cfg.Workload
	return &client{
		id:    id,
		gen:   newGenerator(w, p.r.keys, p.r.scrambled, p.r.cfg.Seed, p.stream|uint64(id)),
		key:   make([]byte, 0, w.KeySize),
		value: make([]byte, 0, w.ValueSize),
	}
}

func (p *phase) loadClient(ctx context.Context, cl *client) {
	clock := p.r.clock
	for {
		n := p.issued.Add(1) - 1
		if n >= p.r.cfg.Workload.RecordCount || ctx.Err() != nil {
			return
		}
		o := operation{op: OpInsert, record: n}
		start := clock.Now()
		class := p.execute(ctx, cl, o)
		p.rec.record(cl.id, o.op, clock.Now().Sub(start), class)
	}
}

func (p *phase) closedLoopClient(ctx context.Context, cl *client) {
	clock, maxOps := p.r.clock, p.r.cfg.MaxOps
	for ctx.Err() == nil {
		start := clock.Now()
		if !p.end.IsZero() && !start.Before(p.end) {
			return
		}
		measured := !start.Before(p.measureStart)
		if measured && maxOps > 0 && p.issued.Add(1) > maxOps {
			return
		}
		o := cl.gen.next()
		class := p.execute(ctx, cl, o)
		if o.op == OpInsert {
			p.r.keys.acknowledge(o.record)
		}
		if measured {
			p.rec.record(cl.id, o.op, clock.Now().Sub(start), class)
		}
	}
}

// intended returns the intended start of the open loop's operation i.
func (p *phase) intended(i int64) time.Time {
	return p.start.Add(time.Duration(float64(i) * p.interval))
}

// scheduled reports whether the open loop's operation i is in the
// schedule: within MaxOps and before the end.
func (p *phase) scheduled(i int64) bool {
	if maxOps := p.r.cfg.MaxOps; maxOps > 0 && i >= p.warmupOps+maxOps {
		return false
	}
	return p.end.IsZero() || p.intended(i).Before(p.end)
}

// openLoopClient sends operations at their intended starts. Latency is
// measured from the intended start, not from when the operation was sent,
// so a stall that delays sending (all clients busy) counts against the
// operations it delayed rather than being omitted.
func (p *phase) openLoopClient(ctx context.Context, cl *client) {
	clock := p.r.clock
	for {
		i := p.issued.Add(1) - 1
		if !p.scheduled(i) {
			return
		}
		intended := p.intended(i)
		if err := clock.Sleep(ctx, intended.Sub(clock.Now())); err != nil {
			return
		}
		sent := clock.Now()
		if !p.dropAfter.IsZero() && !sent.Before(p.dropAfter) {
			return // the report counts the rest of the schedule as dropped
		}
		measured := i >= p.warmupOps
		o := cl.gen.next()
		class := p.execute(ctx, cl, o)
		if o.op == OpInsert {
			p.r.keys.acknowledge(o.record)
		}
		if !measured {
			continue
		}
		p.rec.record(cl.id, o.op, clock.Now().Sub(intended), class)
		p.sent.Add(1)
		if late := sent.Sub(intended); late > LateThreshold {
			p.late.Add(1)
			storeMax(&p.maxLate, int64(late))
		}
	}
}

// storeMax sets a to v if v is greater.
func storeMax(a *atomic.Int64, v int64) {
	for {
		m := a.Load()
		if v <= m || a.CompareAndSwap(m, v) {
			return
		}
	}
}

// scheduledMeasured returns how many measured operations the open loop's
// schedule holds (what was sent plus what was dropped).
func (p *phase) scheduledMeasured() int64 {
	if p.end.IsZero() {
		return p.r.cfg.MaxOps
	}
	// The first index not scheduled, by binary search over the same test
	// the clients apply.
	hi := p.warmupOps + int64(math.Ceil(float64(p.end.Sub(p.start))/p.interval)) + 1
	first := int64(sort.Search(int(hi), func(i int) bool { return !p.scheduled(int64(i)) }))
	return max(0, first-p.warmupOps)
}

// execute performs o and returns its error class ("" for success).
func (p *phase) execute(ctx context.Context, cl *client, o operation) string {
	ctx, cancel := p.r.opContext(ctx)
	defer cancel()
	w := &p.r.cfg.Workload
	cl.key = appendKey(cl.key[:0], o.record, w.KeySize)
	switch o.op {
	case OpRead:
		return p.read(ctx, cl)
	case OpUpdate, OpInsert:
		return p.write(ctx, cl, o.record)
	case OpScan:
		if _, err := p.t.Scan(ctx, cl.key, o.scanLength); err != nil {
			return classify(p.t, err)
		}
		return ""
	case OpReadModifyWrite:
		if class := p.read(ctx, cl); class != "" {
			return class
		}
		return p.write(ctx, cl, o.record)
	default:
		panic(fmt.Sprintf("bench: generator chose %v", o.op))
	}
}

func (p *phase) read(ctx context.Context, cl *client) string {
	value, found, err := p.t.Get(ctx, cl.key)
	switch {
	case err != nil:
		return classify(p.t, err)
	case !found:
		return ClassNotFound
	}
	if v := p.r.verifier; v != nil {
		var ok bool
		if ok, cl.scratch = v.checkRead(cl.key, value, cl.scratch); !ok {
			return ClassCorrupt
		}
	}
	return ""
}

func (p *phase) write(ctx context.Context, cl *client, record int64) string {
	seq := p.r.writeSeq.Add(1)
	cl.value = appendValue(cl.value[:0], cl.key, seq, p.r.cfg.Workload.ValueSize)
	v := p.r.verifier
	var start uint64
	if v != nil {
		start = v.begin()
	}
	class := ""
	if err := p.t.Put(ctx, cl.key, cl.value); err != nil {
		class = classify(p.t, err)
	}
	if v != nil {
		v.end(record, seq, start, class)
	}
	return class
}

// readCPU reads the client's and the target's CPU seconds at the start of
// the measured time.
func (p *phase) readCPU(ctx context.Context) {
	c := &p.cpuStart
	c.taken = true
	c.client, c.clientOK = processCPUSeconds()
	if s, ok := p.t.(ServerCPU); ok {
		c.serverSupported = true
		c.server, c.serverErr = s.ServerCPUSeconds(ctx)
	}
}

// sample runs until ctx ends: it reads the CPU at the start of the
// measured time if there is a warmup, then once a second appends a
// timeline sample and writes a progress line.
func (p *phase) sample(ctx context.Context) {
	clock := p.r.clock
	if !p.cpuStart.taken {
		if clock.Sleep(ctx, p.measureStart.Sub(clock.Now())) != nil {
			return
		}
		p.readCPU(ctx)
	}
	for next := p.measureStart.Add(time.Second); ; next = next.Add(time.Second) {
		if clock.Sleep(ctx, next.Sub(clock.Now())) != nil {
			return
		}
		p.takeSample(next, false)
	}
}

// finalSampleMerge is the length below which the final interval of a
// phase is merged into the last sample rather than plotted as a second
// of its own from a few operations.
const finalSampleMerge = 250 * time.Millisecond

// takeSample closes the interval since the last sample at now, appends
// it to the timeline, and writes a progress line. The final interval
// (when the phase ends) is left out if it has no operations, and merged
// into the last sample if it is shorter than finalSampleMerge.
func (p *phase) takeSample(now time.Time, final bool) {
	h := p.intervalHist
	errs := p.rec.takeInterval(h)
	length := now.Sub(p.lastSample)
	p.lastSample = now
	p.errorsSeen += errs
	ops := h.TotalCount() + errs
	if final && ops == 0 {
		return
	}
	start := now.Add(-length).Sub(p.measureStart).Seconds()
	if final && length < finalSampleMerge && len(p.timeline) > 0 {
		last := &p.timeline[len(p.timeline)-1]
		start = 0
		if len(p.timeline) > 1 {
			start = p.timeline[len(p.timeline)-2].Seconds
		}
		p.lastHist.Merge(h)
		h = p.lastHist
		ops += last.Ops
		errs += last.Errors
		p.timeline = p.timeline[:len(p.timeline)-1]
	}
	s := Sample{
		Seconds: now.Sub(p.measureStart).Seconds(),
		Ops:     ops,
		Errors:  errs,
	}
	if secs := s.Seconds - start; secs > 0 {
		s.OpsPerSec = float64(ops) / secs
	}
	if h.TotalCount() > 0 {
		s.P50Micros = float64(h.ValueAtQuantile(50))
		s.P99Micros = float64(h.ValueAtQuantile(99))
	}
	p.timeline = append(p.timeline, s)
	if h == p.intervalHist {
		p.intervalHist, p.lastHist = p.lastHist, p.intervalHist
	}
	if w := p.r.cfg.Progress; w != nil && !final {
		fmt.Fprintf(w, "%s %6.1fs %10.0f ops/s  p99 %9s  errors %d\n",
			p.name, s.Seconds, s.OpsPerSec, formatMicros(s.P99Micros), p.errorsSeen)
	}
}
