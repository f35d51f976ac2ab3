// Copyright 2026 The Flotilla Authors. All rights reserved.

package raftrpc

import (
	"context"
	"errors"
	"fmt"
	"github.com/flotilladb/flotilla/rpc"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/VictoriaMetrics/metrics"
	"github.com/flotilladb/flotilla/internal/stopper"
	"github.com/flotilladb/flotilla/multiraft"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"golang.org/x/time/rate"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Errors Transport.Send and Transport.SendSnapshot return (wrapped) when
// they cannot take their input; the host then reports the peer unreachable.
var (
	// ErrTransportNotStarted: Start has not been called yet (the node does
	// not know its ID).
	ErrTransportNotStarted = errors.New("raftrpc: raft transport not started")
	// ErrTransportClosed: Close was called.
	ErrTransportClosed = errors.New("raftrpc: raft transport closed")
	// ErrUnknownPeer: no address is known for the node (SetAddress).
	ErrUnknownPeer = errors.New("raftrpc: no address known for node")
	// ErrSendQueueFull: the node's send queue is full (the peer is slow or
	// unreachable).
	ErrSendQueueFull = errors.New("raftrpc: send queue full")
)

// errAddressChanged ends a stream whose peer's address changed.
var errAddressChanged = errors.New("raftrpc: peer address changed")

// Handler receives a transport's inbound traffic: implemented by
// *multiraft.Host. The transport calls it from its own goroutines, several
// at once.
type Handler interface {
	HandleBatch(batch *multiraft.MessageBatch)
	HandleSnapshot(ctx context.Context, header *multiraft.SnapshotHeader, next func() ([]byte, error)) error
}

// Defaults for TransportConfig.
const (
	DefaultSnapshotBytesPerSecond = 32 << 20
	DefaultCompressThreshold      = 64 << 10
	DefaultMaxQueuedBatches       = 1024
)

// TransportConfig configures a Transport. Fill what is required, leave the
// rest zero for the defaults; NewTransport calls EnsureDefaults and
// Validate.
type TransportConfig struct {
	// Pool provides the connections to peers. Required; the transport does
	// not close it.
	Pool *rpc.Pool
	// SnapshotBytesPerSecond rate-limits the snapshot data this transport
	// sends, all snapshots together, in bytes on the wire. Default 32 MiB/s;
	// negative: unlimited.
	SnapshotBytesPerSecond int64
	// CompressThreshold: batches and snapshot chunks at least this large
	// are s2-compressed. Default 64 KiB; negative: never compress.
	CompressThreshold int
	// MaxQueuedBatches bounds each (peer, class) send queue; when it is full
	// Send returns ErrSendQueueFull. Default 1024.
	MaxQueuedBatches int
	// Metrics receives the transport's metrics if set.
	Metrics *metrics.Set
	// Logger receives the transport's log lines. Default slog.Default().
	Logger *slog.Logger
}

// EnsureDefaults fills unset fields with their defaults.
func (c *TransportConfig) EnsureDefaults() {
	if c.SnapshotBytesPerSecond == 0 {
		c.SnapshotBytesPerSecond = DefaultSnapshotBytesPerSecond
	}
	if c.CompressThreshold == 0 {
		c.CompressThreshold = DefaultCompressThreshold
	}
	if c.MaxQueuedBatches == 0 {
		c.MaxQueuedBatches = DefaultMaxQueuedBatches
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// Validate reports every problem at once. It expects EnsureDefaults to have
// run.
func (c *TransportConfig) Validate() error {
	var errs []error
	if c.Pool == nil {
		errs = append(errs, errors.New("no Pool given"))
	}
	if c.MaxQueuedBatches < 0 {
		errs = append(errs, fmt.Errorf("MaxQueuedBatches %d is negative", c.MaxQueuedBatches))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("raftrpc: invalid transport config: %w", err)
	}
	return nil
}

// Backoff between attempts to open a stream to a peer.
const (
	minReconnectDelay = 50 * time.Millisecond
	maxReconnectDelay = time.Second
)

// maxBatchBytes bounds one marshaled batch, leaving room in a gRPC message
// for the frame around it; a larger batch is split by messages.
const maxBatchBytes = rpc.MaxMessageSize - 64<<10

// identity is who the transport is, fixed by Start.
type identity struct {
	node    multiraft.NodeID
	cluster string
	addr    string
	handler Handler
}

// Transport carries multiraft's traffic over gRPC: one bidi RaftStream per
// (peer node, class), fed from a bounded queue by one sender goroutine, and
// one Snapshot stream per snapshot. It implements multiraft.Transport; the
// Raft service it registers delivers inbound traffic to a Handler.
type Transport struct {
	cfg     TransportConfig
	logger  *slog.Logger
	metrics *transportMetrics
	// snapLimiter paces outgoing snapshot bytes; nil: unlimited. Tests
	// replace it before Start.
	snapLimiter bytesLimiter
	// maxBatchBytes bounds a marshaled batch (the constant maxBatchBytes;
	// tests lower it).
	maxBatchBytes int
	// sendLog and recvLog throttle the logging of errors that may repeat
	// fast (failing streams, garbage input).
	sendLog, recvLog *rate.Sometimes

	// id is nil until Start.
	id atomic.Pointer[identity]
	// stopper owns every goroutine of the transport: the sender of each
	// (peer, class) queue, the receivers of inbound streams, and the body
	// of each SendSnapshot call in progress. Close stops it after marking
	// the transport closed under mu, and Send starts senders under mu only
	// while it is not closed, so no sender is ever refused.
	stopper *stopper.Stopper
	// stopCtx ends when Close begins, with cause ErrTransportClosed:
	// streams and snapshot sends are derived from it (withStop).
	stopCtx    context.Context
	stopCancel context.CancelCauseFunc

	// Lock order: Transport.mu before peerQueue.mu.
	mu struct {
		sync.Mutex
		closed bool
		// addrs holds each peer's advertised address.
		addrs map[multiraft.NodeID]string
		// queues holds the send queue of each (peer, class); each has one
		// sender goroutine, started with the queue.
		queues map[queueKey]*peerQueue
	}
}

var _ multiraft.Transport = (*Transport)(nil)

type queueKey struct {
	node  multiraft.NodeID
	class flotillapb.StreamClass
}

// peerQueue is the send queue of one (peer, class) and the handle on the
// stream its sender goroutine runs.
type peerQueue struct {
	key     queueKey
	batches chan *multiraft.MessageBatch

	mu struct {
		sync.Mutex
		// stopped is set by Close: no stream may start after.
		stopped bool
		// cancelStream ends the current stream (nil between streams).
		cancelStream context.CancelCauseFunc
	}
}

// NewTransport returns a transport that sends nothing and refuses inbound
// streams until Start.
func NewTransport(cfg TransportConfig) (*Transport, error) {
	cfg.EnsureDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	t := &Transport{
		cfg:     cfg,
		logger:  cfg.Logger,
		metrics: newTransportMetrics(cfg.Metrics),
		sendLog: &rate.Sometimes{Interval: 10 * time.Second},
		recvLog: &rate.Sometimes{Interval: 10 * time.Second},
		stopper: stopper.New(),

		maxBatchBytes: maxBatchBytes,
	}
	t.stopCtx, t.stopCancel = context.WithCancelCause(context.Background())
	if bps := cfg.SnapshotBytesPerSecond; bps > 0 {
		t.snapLimiter = rate.NewLimiter(rate.Limit(bps), int(min(bps, snapshotBurst)))
	}
	t.mu.addrs = make(map[multiraft.NodeID]string)
	t.mu.queues = make(map[queueKey]*peerQueue)
	return t, nil
}

// Register registers the Raft gRPC service on s. Call it once, when the
// server is built, before or after Start: until Start, inbound streams are
// refused with codes.Unavailable.
func (t *Transport) Register(s *grpc.Server) {
	flotillapb.RegisterRaftServer(s, raftService{t: t})
}

// Start makes the transport live as node nodeID of cluster clusterID,
// advertised to peers at addr, delivering inbound traffic to h. It may be
// called once.
func (t *Transport) Start(nodeID multiraft.NodeID, clusterID, addr string, h Handler) error {
	if nodeID == 0 || nodeID > multiraft.MaxNodeID {
		return fmt.Errorf("raftrpc: node ID %d out of range [1, %d]", nodeID, multiraft.MaxNodeID)
	}
	if h == nil {
		return errors.New("raftrpc: Start needs a Handler")
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.mu.closed {
		return ErrTransportClosed
	}
	if t.id.Load() != nil {
		return errors.New("raftrpc: transport already started")
	}
	t.id.Store(&identity{node: nodeID, cluster: clusterID, addr: addr, handler: h})
	return nil
}

// SetAddress records (or changes) the advertised address of a peer node;
// an empty addr forgets it. Streams open to the peer's old address are
// ended, so the next batches go to the new one. It is the only way a
// peer's address changes: its caller learns addresses from the cluster's
// membership records. A stream's peer header names its sender's address
// too, but anyone can send a header: the receiver ignores it.
func (t *Transport) SetAddress(node multiraft.NodeID, addr string) {
	t.mu.Lock()
	old, had := t.mu.addrs[node]
	if old == addr && (had || addr == "") {
		t.mu.Unlock()
		return
	}
	if addr == "" {
		delete(t.mu.addrs, node)
	} else {
		t.mu.addrs[node] = addr
	}
	var reset []*peerQueue
	if had {
		for _, class := range streamClasses {
			if q := t.mu.queues[queueKey{node, class}]; q != nil {
				reset = append(reset, q)
			}
		}
	}
	t.mu.Unlock()
	for _, q := range reset {
		q.endStream(errAddressChanged)
	}
}

// Address returns the advertised address recorded for a peer node.
func (t *Transport) Address(node multiraft.NodeID) (string, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	addr, ok := t.mu.addrs[node]
	return addr, ok
}

var streamClasses = []flotillapb.StreamClass{flotillapb.StreamClass_DEFAULT, flotillapb.StreamClass_SYSTEM}

// classOf puts batches without raft messages (coalesced heartbeats and
// their responses, liveness pings) on the system stream, so they never wait
// behind bulk appends.
func classOf(b *multiraft.MessageBatch) flotillapb.StreamClass {
	if len(b.Messages) == 0 {
		return flotillapb.StreamClass_SYSTEM
	}
	return flotillapb.StreamClass_DEFAULT
}

// Send implements multiraft.Transport: it queues batch on the stream of
// (batch.To, class) and returns at once. It returns an error, and drops the
// batch, if the transport is not started or closed, no address is known
// for the node, or the queue is full.
func (t *Transport) Send(batch *multiraft.MessageBatch) error {
	id := t.id.Load()
	if id == nil {
		return ErrTransportNotStarted
	}
	if batch.To == 0 || batch.To == id.node {
		return fmt.Errorf("raftrpc: cannot send a batch to node %d from node %d", batch.To, id.node)
	}
	key := queueKey{batch.To, classOf(batch)}
	t.mu.Lock()
	if t.mu.closed {
		t.mu.Unlock()
		return ErrTransportClosed
	}
	if _, ok := t.mu.addrs[batch.To]; !ok {
		t.mu.Unlock()
		t.metrics.droppedNoAddress.Inc()
		return fmt.Errorf("%w %d", ErrUnknownPeer, batch.To)
	}
	q := t.mu.queues[key]
	if q == nil {
		q = &peerQueue{key: key, batches: make(chan *multiraft.MessageBatch, t.cfg.MaxQueuedBatches)}
		if !t.stopper.RunWorker(func() { t.runQueue(q, id) }) {
			// Not reached while not closed (see Transport.stopper).
			t.mu.Unlock()
			return ErrTransportClosed
		}
		t.mu.queues[key] = q
	}
	t.mu.Unlock()
	select {
	case q.batches <- batch:
		return nil
	default:
		t.metrics.droppedQueueFull.Inc()
		return fmt.Errorf("%w: node %d, %s class", ErrSendQueueFull, batch.To, key.class)
	}
}

// Close stops every goroutine of the transport and waits for them: sender
// goroutines end their streams, inbound streams end with codes.Unavailable,
// SendSnapshot calls in progress are cancelled. Close is idempotent.
func (t *Transport) Close() error {
	t.mu.Lock()
	if t.mu.closed {
		t.mu.Unlock()
		t.stopper.Stop() // waits like the first Close
		return nil
	}
	t.mu.closed = true
	queues := make([]*peerQueue, 0, len(t.mu.queues))
	for _, q := range t.mu.queues {
		queues = append(queues, q)
	}
	t.mu.Unlock()
	t.stopCancel(ErrTransportClosed)
	for _, q := range queues {
		q.stop()
	}
	t.stopper.Stop()
	return nil
}

// withStop returns a context that ends with parent, or when the transport
// closes (its cause then ErrTransportClosed). The caller must cancel it.
func (t *Transport) withStop(parent context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancelCause(parent)
	stop := context.AfterFunc(t.stopCtx, func() { cancel(ErrTransportClosed) })
	return ctx, func() {
		stop()
		cancel(nil)
	}
}

// stopping reports whether Close has begun.
func (t *Transport) stopping() bool { return t.stopper.Stopping() }

// ---- Sending ---------------------------------------------------------------

// startStream records the cancel function of the queue's new stream. It
// returns false once the transport is closing.
func (q *peerQueue) startStream(cancel context.CancelCauseFunc) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.mu.stopped {
		return false
	}
	q.mu.cancelStream = cancel
	return true
}

func (q *peerQueue) streamEnded() {
	q.mu.Lock()
	q.mu.cancelStream = nil
	q.mu.Unlock()
}

// endStream ends the queue's current stream, if any, with cause.
func (q *peerQueue) endStream(cause error) {
	q.mu.Lock()
	cancel := q.mu.cancelStream
	q.mu.Unlock()
	if cancel != nil {
		cancel(cause)
	}
}

// stop ends the current stream and prevents new ones.
func (q *peerQueue) stop() {
	q.mu.Lock()
	q.mu.stopped = true
	cancel := q.mu.cancelStream
	q.mu.Unlock()
	if cancel != nil {
		cancel(ErrTransportClosed)
	}
}

// runQueue is the sender goroutine of one (peer, class): it waits for a
// batch, opens a stream, and sends on it everything queued until the stream
// fails; then it backs off (50 ms doubling to 1 s, reset after a stream
// that lived that long) and starts over. The batch being sent when a stream
// fails is lost; raft resends.
func (t *Transport) runQueue(q *peerQueue, id *identity) {
	var delay time.Duration
	for {
		var first *multiraft.MessageBatch
		select {
		case <-t.stopper.ShouldStop():
			return
		case first = <-q.batches:
		}
		began := time.Now()
		err := t.runStream(q, id, first)
		if t.stopping() {
			return
		}
		if errors.Is(err, errAddressChanged) {
			delay = 0
			continue
		}
		if errors.Is(err, ErrUnknownPeer) {
			// The peer's address was forgotten: nothing queued can go.
			t.dropQueued(q, t.metrics.droppedNoAddress)
		}
		t.metrics.streamErrors.Inc()
		t.sendLog.Do(func() {
			t.logger.Warn("raftrpc: raft stream to peer failed", "node", q.key.node, "class", q.key.class, "err", err)
		})
		if time.Since(began) >= maxReconnectDelay {
			delay = 0
		}
		delay = min(max(2*delay, minReconnectDelay), maxReconnectDelay)
		timer := time.NewTimer(delay)
		select {
		case <-t.stopper.ShouldStop():
			timer.Stop()
			return
		case <-timer.C:
		}
	}
}

// dropQueued drops every batch queued on q, counting them on dropped.
func (t *Transport) dropQueued(q *peerQueue, dropped *metrics.Counter) {
	for {
		select {
		case <-q.batches:
			dropped.Inc()
		default:
			return
		}
	}
}

// runStream opens a stream to the queue's peer and sends first and
// everything queued after it, until the stream fails or is ended. It
// returns why it ended.
func (t *Transport) runStream(q *peerQueue, id *identity, first *multiraft.MessageBatch) error {
	addr, ok := t.Address(q.key.node)
	if !ok {
		t.metrics.droppedNoAddress.Inc()
		return fmt.Errorf("%w %d", ErrUnknownPeer, q.key.node)
	}
	conn, err := t.cfg.Pool.Conn(addr)
	if err != nil {
		t.metrics.droppedStream.Inc()
		return err
	}
	ctx, cancel := context.WithCancelCause(context.Background())
	defer cancel(nil)
	if !q.startStream(cancel) {
		return ErrTransportClosed
	}
	defer q.streamEnded()

	stream, err := flotillapb.NewRaftClient(conn).RaftStream(ctx)
	if err != nil {
		t.metrics.droppedStream.Inc()
		if cause := context.Cause(ctx); cause != nil {
			return cause
		}
		return fmt.Errorf("opening stream to node %d at %s: %w", q.key.node, addr, err)
	}
	t.metrics.streamsOpened.Inc()
	// The server sends nothing: Recv returns when it ends the stream (with
	// its reason), which ends the stream here at once rather than at the
	// next Send.
	recvErr := make(chan error, 1)
	go func() {
		_, err := stream.Recv()
		if err == nil || errors.Is(err, io.EOF) {
			err = fmt.Errorf("node %d at %s ended the stream", q.key.node, addr)
		} else {
			err = fmt.Errorf("stream to node %d at %s: %w", q.key.node, addr, err)
		}
		recvErr <- err
		cancel(err)
	}()
	defer func() {
		cancel(nil)
		<-recvErr
	}()

	header := &flotillapb.PeerHeader{
		ClusterId:   id.cluster,
		FromNode:    uint64(id.node),
		FromAddress: id.addr, // informational: receivers do not take it
		ToNode:      uint64(q.key.node),
		Class:       q.key.class,
	}
	var frames []*flotillapb.RaftFrame
	for batch := first; ; {
		frames = t.encodeBatch(batch, frames[:0])
		for i, f := range frames {
			if header != nil {
				f.Header, header = header, nil
			}
			if err := stream.Send(f); err != nil {
				t.metrics.droppedStream.Add(len(frames) - i)
				if cause := context.Cause(ctx); cause != nil {
					return cause
				}
				if errors.Is(err, io.EOF) {
					// The stream ended; its status comes through Recv.
					err = <-recvErr
					recvErr <- err
				}
				return err
			}
			t.metrics.batchesSent[q.key.class].Inc()
			t.metrics.bytesSent.Add(len(f.Batch))
			if f.Compression != flotillapb.Compression_NONE {
				t.metrics.compressedFrames.Inc()
			}
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case batch = <-q.batches:
		}
	}
}

// encodeBatch appends batch's frames to frames: one, or several if the
// batch is too large for one gRPC message (split by messages). A message
// too large on its own is dropped: raft will resend it (it cannot be
// sent anyway).
func (t *Transport) encodeBatch(b *multiraft.MessageBatch, frames []*flotillapb.RaftFrame) []*flotillapb.RaftFrame {
	data, err := b.Marshal()
	if err != nil {
		t.metrics.droppedTooLarge.Inc()
		t.sendLog.Do(func() { t.logger.Error("raftrpc: cannot marshal batch", "to", b.To, "err", err) })
		return frames
	}
	if len(data) > t.maxBatchBytes {
		if len(b.Messages) < 2 {
			t.metrics.droppedTooLarge.Inc()
			t.sendLog.Do(func() {
				t.logger.Error("raftrpc: dropping a batch too large to send", "to", b.To, "bytes", len(data))
			})
			return frames
		}
		half := len(b.Messages) / 2
		frames = t.encodeBatch(&multiraft.MessageBatch{From: b.From, To: b.To, Messages: b.Messages[:half],
			Heartbeats: b.Heartbeats, HeartbeatResps: b.HeartbeatResps}, frames)
		return t.encodeBatch(&multiraft.MessageBatch{From: b.From, To: b.To, Messages: b.Messages[half:]}, frames)
	}
	payload, compression := compressPayload(data, t.cfg.CompressThreshold)
	return append(frames, &flotillapb.RaftFrame{Batch: payload, Compression: compression})
}

// ---- Receiving -------------------------------------------------------------

// raftService is the Raft gRPC service, delivering to the transport's
// Handler.
type raftService struct {
	flotillapb.UnimplementedRaftServer
	t *Transport
}

var (
	errNotStartedStatus = status.Error(codes.Unavailable, ErrTransportNotStarted.Error())
	errClosedStatus     = status.Error(codes.Unavailable, ErrTransportClosed.Error())
)

// serve runs fn on a goroutine the transport owns and returns its error;
// if the transport closes first it returns at once, which makes gRPC
// cancel the stream, so that fn's Recv fails and fn ends (Close waits for
// it).
func (t *Transport) serve(fn func() error) error {
	done := make(chan error, 1)
	if !t.stopper.RunWorker(func() { done <- fn() }) {
		return errClosedStatus
	}
	select {
	case err := <-done:
		return err
	case <-t.stopper.ShouldStop():
		return errClosedStatus
	}
}

// RaftStream receives the batches of one (peer, class) stream.
func (s raftService) RaftStream(stream flotillapb.Raft_RaftStreamServer) error {
	id := s.t.id.Load()
	if id == nil {
		return errNotStartedStatus
	}
	return s.t.serve(func() error { return s.t.receiveBatches(stream, id) })
}

func (t *Transport) receiveBatches(stream flotillapb.Raft_RaftStreamServer, id *identity) error {
	frame, err := stream.Recv()
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return err
	}
	from, err := t.checkPeerHeader(frame.GetHeader(), id)
	if err != nil {
		t.rejected("raft stream", err)
		return err
	}
	if len(frame.GetBatch()) == 0 {
		// A header alone opens the stream; no batch encodes to nothing.
		if frame, err = stream.Recv(); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
	for {
		if t.stopping() {
			return errClosedStatus
		}
		if err := t.deliverFrame(frame, from, id); err != nil {
			t.rejected("raft frame", err)
			return err
		}
		frame, err = stream.Recv()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
	}
}

// deliverFrame decodes one frame from node from and hands it to the
// handler. Its errors are gRPC status errors.
func (t *Transport) deliverFrame(frame *flotillapb.RaftFrame, from multiraft.NodeID, id *identity) error {
	data, err := decompressPayload(frame.GetBatch(), frame.GetCompression())
	if err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	batch, err := multiraft.UnmarshalBatch(data)
	if err != nil {
		return status.Error(codes.InvalidArgument, err.Error())
	}
	if batch.From != from || batch.To != id.node {
		return status.Errorf(codes.InvalidArgument,
			"raftrpc: batch from node %d to node %d on a stream from node %d to node %d", batch.From, batch.To, from, id.node)
	}
	t.metrics.batchesReceived.Inc()
	t.metrics.bytesReceived.Add(len(frame.GetBatch()))
	id.handler.HandleBatch(batch)
	return nil
}

// checkPeerHeader checks the header leading an inbound stream and returns
// the sending node. Its errors are gRPC status errors: InvalidArgument for
// a malformed header, FailedPrecondition for a stream meant for another
// cluster or node (a stale address, a misconfigured peer).
func (t *Transport) checkPeerHeader(h *flotillapb.PeerHeader, id *identity) (multiraft.NodeID, error) {
	if h == nil {
		return 0, status.Error(codes.InvalidArgument, "raftrpc: stream's first frame has no peer header")
	}
	from := multiraft.NodeID(h.GetFromNode())
	if from == 0 || from > multiraft.MaxNodeID {
		return 0, status.Errorf(codes.InvalidArgument, "raftrpc: peer header names invalid sender node %d", from)
	}
	if h.GetClusterId() != "" && id.cluster != "" && h.GetClusterId() != id.cluster {
		return 0, status.Errorf(codes.FailedPrecondition,
			"raftrpc: stream from node %d of cluster %q reached a node of cluster %q", from, h.GetClusterId(), id.cluster)
	}
	if to := multiraft.NodeID(h.GetToNode()); to != id.node {
		return 0, status.Errorf(codes.FailedPrecondition,
			"raftrpc: stream from node %d for node %d reached node %d", from, to, id.node)
	}
	if from == id.node {
		return 0, status.Errorf(codes.FailedPrecondition, "raftrpc: stream from node %d to itself", from)
	}
	return from, nil
}

// rejected counts and (rarely) logs inbound input refused.
func (t *Transport) rejected(what string, err error) {
	t.metrics.rejected.Inc()
	t.recvLog.Do(func() { t.logger.Warn("raftrpc: rejected inbound "+what, "err", err) })
}

// ---- Metrics ---------------------------------------------------------------

// transportMetrics are the transport's metrics. With no Config.Metrics they
// are kept on a private set that nothing exports.
//
//	flotilla_rpc_raft_batches_sent_total{class=...}      batches sent, by stream class
//	flotilla_rpc_raft_bytes_sent_total                   batch bytes sent (on the wire)
//	flotilla_rpc_raft_batches_received_total             batches received and delivered
//	flotilla_rpc_raft_bytes_received_total               batch bytes received (on the wire)
//	flotilla_rpc_raft_batches_dropped_total{reason=...}  batches dropped: queue_full, no_address,
//	                                                     stream (lost with a failed stream), too_large
//	flotilla_rpc_raft_inbound_rejected_total             inbound streams and snapshots refused as malformed
//	flotilla_rpc_raft_streams_opened_total               outbound raft streams opened
//	flotilla_rpc_raft_stream_errors_total                outbound raft streams that failed
//	flotilla_rpc_compressed_frames_total                 batches and snapshot chunks sent s2-compressed
//	flotilla_rpc_snapshots_sent_total                    snapshots sent and applied by the receiver
//	flotilla_rpc_snapshots_failed_total                  snapshots that failed to send or apply
//	flotilla_rpc_snapshots_received_total                snapshots received and applied
//	flotilla_rpc_snapshot_bytes_sent_total               snapshot chunk bytes sent (on the wire)
//	flotilla_rpc_snapshot_bytes_received_total           snapshot chunk bytes received (on the wire)
type transportMetrics struct {
	batchesSent       map[flotillapb.StreamClass]*metrics.Counter
	bytesSent         *metrics.Counter
	batchesReceived   *metrics.Counter
	bytesReceived     *metrics.Counter
	droppedQueueFull  *metrics.Counter
	droppedNoAddress  *metrics.Counter
	droppedStream     *metrics.Counter
	droppedTooLarge   *metrics.Counter
	rejected          *metrics.Counter
	streamsOpened     *metrics.Counter
	streamErrors      *metrics.Counter
	compressedFrames  *metrics.Counter
	snapshotsSent     *metrics.Counter
	snapshotsFailed   *metrics.Counter
	snapshotsReceived *metrics.Counter
	snapBytesSent     *metrics.Counter
	snapBytesReceived *metrics.Counter
}

func newTransportMetrics(set *metrics.Set) *transportMetrics {
	if set == nil {
		set = metrics.NewSet()
	}
	dropped := func(reason string) *metrics.Counter {
		return set.GetOrCreateCounter(`flotilla_rpc_raft_batches_dropped_total{reason="` + reason + `"}`)
	}
	return &transportMetrics{
		batchesSent: map[flotillapb.StreamClass]*metrics.Counter{
			flotillapb.StreamClass_DEFAULT: set.GetOrCreateCounter(`flotilla_rpc_raft_batches_sent_total{class="default"}`),
			flotillapb.StreamClass_SYSTEM:  set.GetOrCreateCounter(`flotilla_rpc_raft_batches_sent_total{class="system"}`),
		},
		bytesSent:         set.GetOrCreateCounter("flotilla_rpc_raft_bytes_sent_total"),
		batchesReceived:   set.GetOrCreateCounter("flotilla_rpc_raft_batches_received_total"),
		bytesReceived:     set.GetOrCreateCounter("flotilla_rpc_raft_bytes_received_total"),
		droppedQueueFull:  dropped("queue_full"),
		droppedNoAddress:  dropped("no_address"),
		droppedStream:     dropped("stream"),
		droppedTooLarge:   dropped("too_large"),
		rejected:          set.GetOrCreateCounter("flotilla_rpc_raft_inbound_rejected_total"),
		streamsOpened:     set.GetOrCreateCounter("flotilla_rpc_raft_streams_opened_total"),
		streamErrors:      set.GetOrCreateCounter("flotilla_rpc_raft_stream_errors_total"),
		compressedFrames:  set.GetOrCreateCounter("flotilla_rpc_compressed_frames_total"),
		snapshotsSent:     set.GetOrCreateCounter("flotilla_rpc_snapshots_sent_total"),
		snapshotsFailed:   set.GetOrCreateCounter("flotilla_rpc_snapshots_failed_total"),
		snapshotsReceived: set.GetOrCreateCounter("flotilla_rpc_snapshots_received_total"),
		snapBytesSent:     set.GetOrCreateCounter("flotilla_rpc_snapshot_bytes_sent_total"),
		snapBytesReceived: set.GetOrCreateCounter("flotilla_rpc_snapshot_bytes_received_total"),
	}
}
