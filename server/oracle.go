// Copyright 2026 The Flotilla Authors. All rights reserved.

package server

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/flotilladb/flotilla/multiraft"
	"github.com/flotilladb/flotilla/placement"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"google.golang.org/protobuf/proto"
)

// The revision oracle (docs/REVISIONS.md, "The oracle"): a cluster-wide
// int64 counter served by the placement group's leader. Two halves run on
// every node, each a goroutine of the node's stopper:
//
//   - oracleServer, on the placement group's leader, answers
//     AllocateRevisions batches in rounds, up to oracleLeaderRounds at
//     once: a round serves every batch that arrived before it began, after
//     a leadership check begun then (a ReadIndex round on the group while
//     this replica leads it in one term before and after), and after
//     committing a higher high-water mark if the batches need one. The
//     allocator state is placement.RevisionOracle.
//   - oracleClient batches every revision request of its node: at most one
//     AllocateRevisions call in flight, asking for exactly the revisions
//     of the requests that arrived before it was sent; unused revisions
//     are dropped, never kept (no prefetch).

// oracleRoundTimeout bounds one round of the oracle's leader (its
// leadership check, its wait for its turn and its high-water mark write)
// and one batch of its client, so that a round against a lost quorum ends; a round also ends as
// soon as every request waiting for it gave up.
const oracleRoundTimeout = 5 * time.Second

// oracleMetrics are the oracle's counters (flotilla_oracle_*).
type oracleMetrics struct {
	// Client side.
	batches     *metrics.Counter   // AllocateRevisions batches sent
	batchErrors *metrics.Counter   // batches that failed
	revisions   *metrics.Counter   // revisions handed out to this node
	batchSize   *metrics.Histogram // revisions per batch sent
	// Leader side.
	rounds     *metrics.Counter // rounds served (leadership checks)
	terms      *metrics.Counter // terms started (new-leader steps done)
	hwmRaises  *metrics.Counter // SetRevisionHWM committed
	leaderRevs *metrics.Counter // revisions handed out by this leader
}

func newOracleMetrics(set *metrics.Set) *oracleMetrics {
	return &oracleMetrics{
		batches:     set.NewCounter("flotilla_oracle_batches_total"),
		batchErrors: set.NewCounter("flotilla_oracle_batch_errors_total"),
		revisions:   set.NewCounter("flotilla_oracle_revisions_total"),
		batchSize:   set.NewHistogram("flotilla_oracle_batch_size"),
		rounds:      set.NewCounter("flotilla_oracle_leader_rounds_total"),
		terms:       set.NewCounter("flotilla_oracle_leader_terms_total"),
		hwmRaises:   set.NewCounter("flotilla_oracle_hwm_raises_total"),
		leaderRevs:  set.NewCounter("flotilla_oracle_leader_revisions_total"),
	}
}

// ---- batching ----

// revisionQueue gathers the callers waiting for revisions into batches:
// the pending batch takes every caller that arrives until the serving
// goroutine takes it; the callers of one batch share its done channel,
// so a caller allocates nothing of its own. Both the leader (its rounds)
// and the node's client (its AllocateRevisions calls) queue this way.
type revisionQueue struct {
	// kick wakes the serving goroutine when a caller queues (capacity 1:
	// one pending wake covers any number of callers).
	kick chan struct{}
	mu   struct {
		sync.Mutex
		// pending takes the callers that arrived since the serving
		// goroutine last took a batch; nil if none did.
		pending *revisionBatch
	}
}

// revisionBatch is the callers that queued between two takes.
type revisionBatch struct {
	done chan struct{}
	// slots are the callers in arrival order. Appended to under the
	// queue's mu while pending; once taken, the goroutine that answers it
	// alone writes first and err, then closes done; after that they are
	// read-only.
	slots []revisionSlot
}

// revisionSlot is one caller waiting for count revisions.
type revisionSlot struct {
	ctx   context.Context
	count int64
	first int64
	err   error
}

func newRevisionQueue() *revisionQueue { return &revisionQueue{kick: make(chan struct{}, 1)} }

// wait queues a caller for count revisions and waits for its answer, ctx
// or the node's stop.
func (q *revisionQueue) wait(ctx context.Context, n *Node, count int64) (int64, error) {
	q.mu.Lock()
	b := q.mu.pending
	if b == nil {
		b = &revisionBatch{done: make(chan struct{})}
		q.mu.pending = b
	}
	i := len(b.slots)
	b.slots = append(b.slots, revisionSlot{ctx: ctx, count: count})
	q.mu.Unlock()
	select {
	case q.kick <- struct{}{}:
	default:
	}
	select {
	case <-b.done:
		return b.slots[i].first, b.slots[i].err
	case <-ctx.Done():
		return 0, ctx.Err()
	case <-n.stopCtx.Done():
		return 0, n.notRunningError()
	}
}

// take returns the pending batch, nil if there is none; callers arriving
// from now on join the next.
func (q *revisionQueue) take() *revisionBatch {
	q.mu.Lock()
	defer q.mu.Unlock()
	b := q.mu.pending
	q.mu.pending = nil
	return b
}

// run serves the batches until the node stops, at most inFlight at once
// (1: one at a time, in order): serve hands out total revisions in one
// round (the leader's) or one call (the client's), begun after every
// caller it serves arrived. A batch is taken only when it can be served at
// once, so callers that arrive meanwhile join the next.
func (q *revisionQueue) run(n *Node, inFlight int, serve func(ctx context.Context, total int64) (int64, error)) {
	slots := make(chan struct{}, max(inFlight, 1))
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-n.stopCtx.Done():
			return // waiting callers watch stopCtx too
		case <-q.kick:
		}
		// Let the callers that are runnable queue first: one batch for
		// them rather than one each (a caller still joins only a batch
		// taken after it queued).
		runtime.Gosched()
		for {
			select {
			case slots <- struct{}{}:
			case <-n.stopCtx.Done():
				return
			}
			b := q.take()
			if b == nil {
				<-slots
				break
			}
			if inFlight == 1 {
				answer(n, b, serve)
				<-slots
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				answer(n, b, serve)
				<-slots
			}()
		}
	}
}

// answer serves batch b's callers that are still waiting, consecutive
// revisions in arrival order, in rounds of at most
// placement.MaxRevisionBatch revisions; a caller gone meanwhile gets none.
// It then releases every caller of b.
func answer(n *Node, b *revisionBatch, serve func(ctx context.Context, total int64) (int64, error)) {
	defer close(b.done)
	live := make([]int, 0, len(b.slots))
	for i := range b.slots {
		if err := b.slots[i].ctx.Err(); err != nil {
			b.slots[i].err = err
			continue
		}
		live = append(live, i)
	}
	for len(live) > 0 {
		// Each caller asks for at most MaxRevisionBatch: k ≥ 1.
		var total int64
		k := 0
		for ; k < len(live) && total+b.slots[live[k]].count <= placement.MaxRevisionBatch; k++ {
			total += b.slots[live[k]].count
		}
		part := live[:k]
		live = live[k:]
		ctx, cancel := roundContext(n, b.slots, part)
		first, err := serve(ctx, total)
		cancel()
		for _, i := range part {
			if err != nil {
				b.slots[i].err = err
				continue
			}
			b.slots[i].first = first
			first += b.slots[i].count
		}
	}
}

// roundContext returns the context of a round serving slots[part]: it ends
// with the node, after oracleRoundTimeout, or once every caller of the
// round gave up (never, if one cannot: a context without Done).
func roundContext(n *Node, slots []revisionSlot, part []int) (context.Context, func()) {
	ctx, cancel := context.WithTimeout(n.stopCtx, oracleRoundTimeout)
	for _, i := range part {
		if slots[i].ctx.Done() == nil {
			return ctx, cancel
		}
	}
	var left atomic.Int64
	left.Store(int64(len(part)))
	stops := make([]func() bool, len(part))
	for j, i := range part {
		stops[j] = context.AfterFunc(slots[i].ctx, func() {
			if left.Add(-1) == 0 {
				cancel()
			}
		})
	}
	return ctx, func() {
		for _, stop := range stops {
			stop()
		}
		cancel()
	}
}

// ---- the leader's side ----

// oracleLeaderRounds is how many rounds the oracle's leader runs at once:
// a batch that arrives during a round starts its own leadership check at
// once instead of waiting for that round to end (half a round less, on
// average, for every revision). The placement group's host allows as many
// ReadIndex rounds at once (readRounds).
const oracleLeaderRounds = 2

// oracleServer serves the revision oracle while this node leads the
// placement group: requests queue (allocate) and run serves them in
// rounds, up to oracleLeaderRounds at once. Their leadership checks run
// concurrently; the rest of a round (starting a term before its check,
// raising the high-water mark and taking revisions after it) holds turn,
// one round at a time.
type oracleServer struct {
	n       *Node
	metrics *oracleMetrics
	// skipCheck is TestingKnobs.UnsafeOracleSkipLeadershipCheck.
	skipCheck bool
	queue     *revisionQueue
	// turn (capacity 1) is held by the round that uses alloc. It is a
	// channel, not a mutex, because its holder does raft I/O (a term's
	// start, a high-water mark's commit) and a round waiting for it must
	// be able to give up with its context.
	turn chan struct{}
	// alloc belongs to the holder of turn.
	alloc *placement.RevisionOracle
}

func newOracleServer(n *Node, m *oracleMetrics, window int64, skipCheck bool) (*oracleServer, error) {
	alloc, err := placement.NewRevisionOracle(window)
	if err != nil {
		return nil, err
	}
	return &oracleServer{n: n, metrics: m, skipCheck: skipCheck, queue: newRevisionQueue(),
		turn: make(chan struct{}, 1), alloc: alloc}, nil
}

// takeTurn waits for the use of alloc, or ctx's end; release gives it
// back.
func (s *oracleServer) takeTurn(ctx context.Context) (release func(), err error) {
	select {
	case s.turn <- struct{}{}:
		return func() { <-s.turn }, nil
	case <-ctx.Done():
		return nil, unavailable("revision oracle: waiting for another round: " + ctx.Err().Error())
	}
}

// allocate hands out count revisions after a leadership check begun after
// the call (the caller runs on this node while it leads the placement
// group); callers served by one round get consecutive ranges in arrival
// order, and a round that ends later hands out higher revisions.
func (s *oracleServer) allocate(ctx context.Context, count int64) (int64, error) {
	return s.queue.wait(ctx, s.n, count)
}

// run serves the queued requests in rounds until the node stops.
func (s *oracleServer) run() { s.queue.run(s.n, oracleLeaderRounds, s.serve) }

// serve hands out total revisions in one round, to requests that all
// arrived before it began.
func (s *oracleServer) serve(ctx context.Context, total int64) (int64, error) {
	first, err := s.round(ctx, total)
	if err == nil {
		s.metrics.leaderRevs.Add(int(total))
	}
	return first, err
}

// round hands out total revisions: it starts the term if this replica
// leads a term it does not serve yet, checks the leadership, raises the
// high-water mark if needed, and takes them.
func (s *oracleServer) round(ctx context.Context, total int64) (int64, error) {
	host, meta, ok := s.n.running()
	if !ok || meta == nil {
		return 0, s.n.notRunningError()
	}
	s.metrics.rounds.Inc()
	term, err := s.serveTerm(ctx, host, meta)
	if err != nil {
		return 0, err
	}
	if !s.skipCheck {
		if err := leadershipCheck(ctx, host, term); err != nil {
			return 0, err
		}
	}
	release, err := s.takeTurn(ctx)
	if err != nil {
		return 0, err
	}
	defer release()
	if s.alloc.Term() != term {
		// Another round found the term over meanwhile.
		return 0, unavailable(fmt.Sprintf("revision oracle: no longer serving term %d", term))
	}
	hwm := meta.State().GetRevisionHwm()
	raise, err := s.alloc.RaiseTo(hwm, total)
	if err != nil {
		return 0, unavailable("revision oracle: " + err.Error())
	}
	if raise > 0 {
		if err := s.commitHWM(ctx, host, raise); err != nil {
			return 0, err
		}
		if err := leading(host, term); err != nil {
			return 0, err
		}
		hwm = meta.State().GetRevisionHwm()
	}
	first, err := s.alloc.Take(hwm, total)
	if err != nil {
		return 0, unavailable("revision oracle: " + err.Error())
	}
	return first, nil
}

// serveTerm returns the term this replica serves the oracle in, starting
// it if this replica leads a term it does not serve yet.
func (s *oracleServer) serveTerm(ctx context.Context, host *multiraft.Host, meta *placement.Meta) (uint64, error) {
	release, err := s.takeTurn(ctx)
	if err != nil {
		return 0, err
	}
	defer release()
	st, ok := host.Status(placement.GroupID)
	if !ok || st.Replica == 0 || st.Leader != st.Replica {
		s.alloc.Reset()
		return 0, unavailable("this node does not lead the placement group")
	}
	if s.alloc.Term() != st.Term {
		// A term this replica has not served yet (or it lost its state):
		// the revisions it handed out in an earlier term say nothing about
		// what later leaders handed out.
		s.alloc.Reset()
		if err := s.startTerm(ctx, host, meta, st.Term); err != nil {
			return 0, err
		}
	}
	return s.alloc.Term(), nil
}

// startTerm is a new leader's first step: once its applied state holds
// everything committed before its term (a leadership check: raft serves a
// ReadIndex only after the leader's first entry of its term commits, and
// Host.ReadIndex returns once that index applied), it commits
// SetRevisionHWM(hwm_old + W) and serves from hwm_old + 1.
func (s *oracleServer) startTerm(ctx context.Context, host *multiraft.Host, meta *placement.Meta, term uint64) error {
	if err := leadershipCheck(ctx, host, term); err != nil {
		return err
	}
	hwmOld := meta.State().GetRevisionHwm()
	target, err := s.alloc.StartHWM(hwmOld)
	if err != nil {
		return unavailable("revision oracle: " + err.Error())
	}
	if err := s.commitHWM(ctx, host, target); err != nil {
		return err
	}
	if err := leading(host, term); err != nil {
		return err
	}
	if got := meta.State().GetRevisionHwm(); got < target {
		return unavailable(fmt.Sprintf("revision oracle: high-water mark %d applied, %d committed", got, target))
	}
	s.alloc.Start(term, hwmOld)
	s.metrics.terms.Inc()
	s.n.log.Debug("revision oracle serving", "term", term, "from", hwmOld+1, "hwm", target)
	return nil
}

// commitHWM proposes SetRevisionHWM(hwm) and waits until it applied.
func (s *oracleServer) commitHWM(ctx context.Context, host *multiraft.Host, hwm int64) error {
	data, err := proto.Marshal(&flotillapb.MetaCommand{Command: &flotillapb.MetaCommand_SetRevisionHwm{
		SetRevisionHwm: &flotillapb.SetRevisionHWM{Hwm: hwm}}})
	if err != nil {
		return err
	}
	res, err := host.ProposeAndWait(ctx, placement.GroupID, data)
	if err == nil {
		err = res.Err
	}
	if err != nil {
		// Ambiguous or not: nothing was handed out above the applied mark,
		// and a mark that commits later only wastes revisions.
		return unavailable(fmt.Sprintf("revision oracle: raising the high-water mark to %d: %v", hwm, err))
	}
	s.metrics.hwmRaises.Inc()
	return nil
}

// leadershipCheck proves that this replica led the placement group in term
// at some instant after the call began: a ReadIndex round issued and
// answered while its status showed it leader in term, before and after.
// (A follower's ReadIndex is forwarded to the leader and succeeds too, so
// the round alone proves nothing; a raft replica that leads in a term at
// two instants led in it throughout, as it cannot become leader in a term
// again, so the round was its own, confirmed by a quorum that had not seen
// a later term.)
func leadershipCheck(ctx context.Context, host *multiraft.Host, term uint64) error {
	if err := leading(host, term); err != nil {
		return err
	}
	if _, err := host.ReadIndex(ctx, placement.GroupID); err != nil {
		return unavailable("revision oracle: leadership check: " + err.Error())
	}
	return leading(host, term)
}

// leading reports, as an Unavailable error, that this replica does not
// lead the placement group in term.
func leading(host *multiraft.Host, term uint64) error {
	st, ok := host.Status(placement.GroupID)
	if !ok || st.Replica == 0 || st.Leader != st.Replica || st.Term != term {
		return unavailable(fmt.Sprintf("revision oracle: no longer the placement group's leader in term %d", term))
	}
	return nil
}

// AllocateRevisions serves a node's oracle client: on the placement
// group's leader, count revisions above every revision handed out before
// the request arrived; elsewhere it forwards the request there once.
func (s *placementService) AllocateRevisions(ctx context.Context, req *flotillapb.AllocateRevisionsRequest) (*flotillapb.AllocateRevisionsResponse, error) {
	n := s.node()
	return placementRequest(ctx, n, req, req.GetForwarded(),
		func(r *flotillapb.AllocateRevisionsRequest) { r.Forwarded = true },
		flotillapb.PlacementClient.AllocateRevisions,
		func(*multiraft.Host, *placement.Meta) (*flotillapb.AllocateRevisionsResponse, error) {
			if req.GetCount() == 0 || req.GetCount() > placement.MaxRevisionBatch {
				return nil, invalidArgument("count", fmt.Sprintf("%d revisions asked; want 1 to %d", req.GetCount(), placement.MaxRevisionBatch))
			}
			first, err := n.oracleSrv.allocate(ctx, int64(req.GetCount()))
			if err != nil {
				return nil, err
			}
			return &flotillapb.AllocateRevisionsResponse{BatchId: req.GetBatchId(), First: first, Count: req.GetCount()}, nil
		})
}

// ---- the node's client ----

// oracleClient hands out revisions to this node's callers, batching them:
// one goroutine (run) sends at most one AllocateRevisions call at a time,
// for exactly the revisions of the callers that arrived before it was
// sent and still wait. Callers that arrive while it is in flight wait for
// the next one.
type oracleClient struct {
	n       *Node
	metrics *oracleMetrics
	queue   *revisionQueue
	// seen is the highest revision this client has received: every
	// revision at or below it has been handed out (to some node).
	seen atomic.Int64
}

func newOracleClient(n *Node, m *oracleMetrics) *oracleClient {
	return &oracleClient{n: n, metrics: m, queue: newRevisionQueue()}
}

// Revision returns one revision, above every revision any node's oracle
// client returned before this call began, and returned to no other
// caller. It may be called from any goroutine. Errors: the context's, a
// *flotillapb.Error (Unavailable when the placement group's leader cannot
// be reached or lost its leadership; retry with a new call).
func (o *oracleClient) Revision(ctx context.Context) (int64, error) {
	return o.Revisions(ctx, 1)
}

// Seen returns the highest revision this node has received from the
// oracle (0 if none): every revision at or below it has been handed out.
func (o *oracleClient) Seen() int64 { return o.seen.Load() }

// Revisions returns count consecutive revisions [first, first+count), as
// Revision does one.
func (o *oracleClient) Revisions(ctx context.Context, count int) (first int64, err error) {
	if count < 1 || count > placement.MaxRevisionBatch {
		return 0, invalidArgument("count", fmt.Sprintf("%d revisions asked; want 1 to %d", count, placement.MaxRevisionBatch))
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return o.queue.wait(ctx, o.n, int64(count))
}

// run sends the batches until the node stops.
func (o *oracleClient) run() { o.queue.run(o.n, 1, o.send) }

// send makes one AllocateRevisions attempt for total revisions.
func (o *oracleClient) send(ctx context.Context, total int64) (int64, error) {
	first, err := o.call(ctx, total)
	o.metrics.batches.Inc()
	o.metrics.batchSize.Update(float64(total))
	if err != nil {
		o.metrics.batchErrors.Inc()
	} else {
		o.metrics.revisions.Add(int(total))
		for last := first + total - 1; ; {
			cur := o.seen.Load()
			if last <= cur || o.seen.CompareAndSwap(cur, last) {
				break
			}
		}
	}
	return first, err
}

// errBatchMismatch: an answer that is not for the attempt that asked.
var errBatchMismatch = errors.New("revision oracle: answer to another batch")

// call makes one AllocateRevisions attempt for total revisions: in
// process when this node leads the placement group, else forwarded to the
// leader.
func (o *oracleClient) call(ctx context.Context, total int64) (int64, error) {
	batchID := rand.Uint64() | 1 // never 0
	resp, err := (*placementService)(o.n).AllocateRevisions(ctx, &flotillapb.AllocateRevisionsRequest{
		NodeId: o.n.self.Load(), BatchId: batchID, Count: uint32(total),
	})
	if err != nil {
		return 0, err
	}
	if resp.GetBatchId() != batchID || int64(resp.GetCount()) != total || resp.GetFirst() < 1 ||
		resp.GetFirst() > placement.MaxRevision-total+1 {
		// Dropped: revisions the leader handed out for it are skipped.
		return 0, unavailable(fmt.Sprintf("%v: asked batch %d of %d, answered batch %d of %d from %d",
			errBatchMismatch, batchID, total, resp.GetBatchId(), resp.GetCount(), resp.GetFirst()))
	}
	return resp.GetFirst(), nil
}

// Revision returns one revision from the cluster's revision oracle: above
// every revision handed out (to any node) before this call began, and
// handed out to no other caller. See oracleClient.Revision.
func (n *Node) Revision(ctx context.Context) (int64, error) {
	return n.oracle.Revision(ctx)
}
