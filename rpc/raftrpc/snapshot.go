// Copyright 2026 The Flotilla Authors. All rights reserved.

package raftrpc

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/flotilladb/flotilla/engine"
	"github.com/flotilladb/flotilla/multiraft"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// snapshotBurst is the most snapshot bytes the rate limiter lets through
// at once; larger chunks wait in pieces of this size.
const snapshotBurst = 1 << 20

// bytesLimiter paces bytes: *rate.Limiter, or a test's wrapper.
type bytesLimiter interface {
	WaitN(ctx context.Context, n int) error
	Burst() int
}

// waitBytes waits until l lets n bytes through, in pieces no larger than
// its burst (WaitN refuses more than the burst at once). A nil l lets
// everything through.
func waitBytes(ctx context.Context, l bytesLimiter, n int) error {
	if l == nil {
		return nil
	}
	burst := max(l.Burst(), 1)
	for n > 0 {
		piece := min(n, burst)
		if err := l.WaitN(ctx, piece); err != nil {
			return err
		}
		n -= piece
	}
	return nil
}

// errSnapshotStreamEnded marks a Send that failed because the receiver
// ended the stream; its reason comes with CloseAndRecv.
var errSnapshotStreamEnded = errors.New("raftrpc: receiver ended the snapshot stream")

// SendSnapshot implements multiraft.Transport: it streams header and the
// chunks that chunks emits to node on a Snapshot RPC, compressing large
// chunks and pacing them by SnapshotBytesPerSecond, and returns nil once
// the receiver's Handler.HandleSnapshot returned nil. Otherwise its error
// carries the receiver's reason (a gRPC status) or the local one. ctx, or
// Close, cancels the stream.
func (t *Transport) SendSnapshot(ctx context.Context, node multiraft.NodeID, header *multiraft.SnapshotHeader,
	chunks func(emit func(chunk []byte) error) error) (err error) {
	id := t.id.Load()
	if id == nil {
		return ErrTransportNotStarted
	}
	t.mu.Lock()
	closed := t.mu.closed
	addr, ok := t.mu.addrs[node]
	t.mu.Unlock()
	if closed {
		return ErrTransportClosed
	}
	if !ok {
		return fmt.Errorf("%w %d", ErrUnknownPeer, node)
	}
	// The send runs on a goroutine of the transport's, which Close waits
	// for (having cancelled it); the caller waits for it here.
	done := make(chan error, 1)
	if !t.stopper.RunWorker(func() { done <- t.sendSnapshot(ctx, id, node, addr, header, chunks) }) {
		return ErrTransportClosed
	}
	return <-done
}

// sendSnapshot is SendSnapshot's body, on a goroutine of the transport.
func (t *Transport) sendSnapshot(ctx context.Context, id *identity, node multiraft.NodeID, addr string, header *multiraft.SnapshotHeader,
	chunks func(emit func(chunk []byte) error) error) (err error) {
	defer func() {
		if err != nil {
			t.metrics.snapshotsFailed.Inc()
			err = fmt.Errorf("raftrpc: snapshot of group %d to node %d at %s: %w", header.Group, node, addr, err)
		} else {
			t.metrics.snapshotsSent.Inc()
		}
	}()
	headerBytes, err := header.Marshal()
	if err != nil {
		return err
	}
	conn, err := t.cfg.Pool.Conn(addr)
	if err != nil {
		return err
	}
	ctx, cancel := t.withStop(ctx)
	// Cancelling tells the receiver to abort, if the stream has not ended.
	defer cancel()
	stream, err := flotillapb.NewRaftClient(conn).Snapshot(ctx)
	if err != nil {
		return err
	}
	first := &flotillapb.SnapshotFrame{
		Header: &flotillapb.PeerHeader{
			ClusterId:   id.cluster,
			FromNode:    uint64(id.node),
			FromAddress: id.addr,
			ToNode:      uint64(node),
			Class:       flotillapb.StreamClass_DEFAULT,
		},
		SnapshotHeader: headerBytes,
	}
	send := func(f *flotillapb.SnapshotFrame) error {
		if err := stream.Send(f); err != nil {
			if errors.Is(err, io.EOF) {
				return errSnapshotStreamEnded
			}
			return err
		}
		return nil
	}
	err = send(first)
	if err == nil {
		err = chunks(func(chunk []byte) error {
			payload, compression := compressPayload(chunk, t.cfg.CompressThreshold)
			if compression == flotillapb.Compression_NONE {
				// gRPC may look at a sent message after Send returns (stats
				// handlers); the caller reuses chunk.
				payload = bytes.Clone(chunk)
			}
			if err := waitBytes(ctx, t.snapLimiter, len(payload)); err != nil {
				return err
			}
			if err := send(&flotillapb.SnapshotFrame{Chunk: payload, Compression: compression}); err != nil {
				return err
			}
			t.metrics.snapBytesSent.Add(len(payload))
			if compression != flotillapb.Compression_NONE {
				t.metrics.compressedFrames.Inc()
			}
			return nil
		})
	}
	if err != nil && !errors.Is(err, errSnapshotStreamEnded) {
		if cause := context.Cause(ctx); errors.Is(cause, ErrTransportClosed) && !errors.Is(err, cause) {
			err = fmt.Errorf("%w: %w", cause, err)
		}
		return err
	}
	// Either every chunk went (half-close and wait for the outcome), or the
	// stream ended early (collect the receiver's reason).
	if _, rerr := stream.CloseAndRecv(); rerr != nil {
		if cause := context.Cause(ctx); cause != nil {
			return fmt.Errorf("%w (%v)", cause, rerr)
		}
		return fmt.Errorf("not applied: %w", rerr)
	}
	// The receiver ended the stream early and yet reported success: its
	// handler returned before reading every chunk. Not what Host does;
	// report the stream as failed, to be safe.
	return err
}

// Snapshot receives one snapshot and returns once the handler applied it.
func (s raftService) Snapshot(stream flotillapb.Raft_SnapshotServer) error {
	id := s.t.id.Load()
	if id == nil {
		return errNotStartedStatus
	}
	if err := s.t.serve(func() error { return s.t.receiveSnapshot(stream, id) }); err != nil {
		return err
	}
	return stream.SendAndClose(&flotillapb.SnapshotResponse{})
}

func (t *Transport) receiveSnapshot(stream flotillapb.Raft_SnapshotServer, id *identity) error {
	frame, err := stream.Recv()
	if err != nil {
		if errors.Is(err, io.EOF) {
			err = status.Error(codes.InvalidArgument, "raftrpc: empty snapshot stream")
			t.rejected("snapshot", err)
		}
		return err
	}
	from, err := t.checkPeerHeader(frame.GetHeader(), id)
	if err != nil {
		t.rejected("snapshot", err)
		return err
	}
	if len(frame.GetSnapshotHeader()) == 0 {
		err := status.Error(codes.InvalidArgument, "raftrpc: snapshot stream's first frame has no snapshot header")
		t.rejected("snapshot", err)
		return err
	}
	header, err := multiraft.UnmarshalSnapshotHeader(frame.GetSnapshotHeader())
	if err != nil {
		err = status.Error(codes.InvalidArgument, err.Error())
		t.rejected("snapshot", err)
		return err
	}
	if sender := multiraft.ReplicaID(header.Message.GetFrom()).Node(); sender != from {
		// As for batches: a node speaks only for its own replicas.
		err = status.Errorf(codes.InvalidArgument, "raftrpc: snapshot from replica %v on a stream from node %d",
			multiraft.ReplicaID(header.Message.GetFrom()), from)
		t.rejected("snapshot", err)
		return err
	}

	// The first frame may carry a chunk too.
	pending := frame
	var badFrame error
	next := func() ([]byte, error) {
		f := pending
		pending = nil
		if f == nil || len(f.GetChunk()) == 0 {
			var err error
			if f, err = stream.Recv(); err != nil {
				return nil, err // io.EOF at the end
			}
		}
		if t.stopping() {
			return nil, ErrTransportClosed
		}
		chunk, err := decompressPayload(f.GetChunk(), f.GetCompression())
		if err != nil {
			badFrame = err
			return nil, err
		}
		t.metrics.snapBytesReceived.Add(len(f.GetChunk()))
		return chunk, nil
	}
	if err := id.handler.HandleSnapshot(stream.Context(), header, next); err != nil {
		if badFrame != nil {
			t.rejected("snapshot chunk", badFrame)
		}
		return snapshotStatusError(err)
	}
	t.metrics.snapshotsReceived.Inc()
	return nil
}

// snapshotStatusError turns the reason a snapshot was not applied into a
// gRPC status the sender reports: InvalidArgument for a malformed stream,
// Unavailable when the receiver is stopping, the context's code when the
// stream was cancelled, FailedPrecondition when the receiver declined it
// (raft did not take it, the replica is gone or another one).
func snapshotStatusError(err error) error {
	if _, ok := status.FromError(err); ok {
		return err
	}
	code := codes.FailedPrecondition
	switch {
	case errors.Is(err, errBadCompression), errors.Is(err, multiraft.ErrBadSnapshot), errors.Is(err, engine.ErrBadChunk):
		code = codes.InvalidArgument
	case errors.Is(err, multiraft.ErrStopped), errors.Is(err, ErrTransportClosed):
		code = codes.Unavailable
	case errors.Is(err, context.Canceled):
		code = codes.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		code = codes.DeadlineExceeded
	}
	return status.Error(code, err.Error())
}
