// Copyright 2026 The Flotilla Authors. All rights reserved.

package testcluster

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flotilladb/flotilla/multiraft"
)

// Network is an in-memory network between hosts that can lose, delay,
// reorder and partition messages. Every batch is marshaled on send and
// unmarshaled on delivery, as a real transport would: hosts share no
// pointers.
type Network struct {
	mu struct {
		sync.Mutex
		links map[multiraft.NodeID]*link
		// cut holds directed (from, to) pairs that drop everything.
		cut      map[[2]multiraft.NodeID]bool
		dropRate float64
		minDelay time.Duration
		maxDelay time.Duration
		reorder  float64
		rng      *rand.Rand
	}

	// Counters of batches and snapshots, for tests.
	sent, delivered, dropped, snapshots atomic.Int64
	// counts are per directed link.
	countMu sync.Mutex
	counts  map[[2]multiraft.NodeID]*LinkCounts
}

// LinkCounts are what was sent over one directed link.
type LinkCounts struct {
	// Batches counts every batch, pings included; Messages the raft
	// messages in them (heartbeats sent uncoalesced included).
	Batches, Messages int64
	// Beats counts coalesced heartbeats and responses; BeatBatches the
	// batches that carried any heartbeat, coalesced or not.
	Beats, BeatBatches int64
}

// maxQueued bounds the batches waiting for one destination.
const maxQueued = 4096

// ErrQueueFull is returned by Send when the destination's queue is full.
var ErrQueueFull = errors.New("testcluster: destination queue full")

// NewNetwork returns a network with no faults; seed makes its randomness
// reproducible.
func NewNetwork(seed uint64) *Network {
	n := &Network{counts: make(map[[2]multiraft.NodeID]*LinkCounts)}
	n.mu.links = make(map[multiraft.NodeID]*link)
	n.mu.cut = make(map[[2]multiraft.NodeID]bool)
	n.mu.rng = rand.New(rand.NewPCG(seed, seed+1))
	return n
}

// Receiver is what a host offers the network: *multiraft.Host.
type Receiver interface {
	HandleBatch(*multiraft.MessageBatch)
	HandleSnapshot(ctx context.Context, header *multiraft.SnapshotHeader, next func() ([]byte, error)) error
}

// link delivers batches to one host in order (unless reordering is on).
type link struct {
	to    multiraft.NodeID
	recv  Receiver
	mu    sync.Mutex
	queue []queued
	wake  chan struct{}
	stop  chan struct{}
	done  chan struct{}
}

type queued struct {
	data      []byte
	deliverAt time.Time
}

// Attach connects a host's inbound side: batches and snapshots for node are
// unmarshaled and passed to recv. Attach again (after Detach) when a host
// restarts.
func (n *Network) Attach(node multiraft.NodeID, recv Receiver) {
	l := &link{to: node, recv: recv, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	n.mu.Lock()
	old := n.mu.links[node]
	n.mu.links[node] = l
	n.mu.Unlock()
	if old != nil {
		old.close()
	}
	go l.run()
}

// Detach disconnects node: batches to and from it are dropped until it is
// attached again. It waits for deliveries in progress to finish.
func (n *Network) Detach(node multiraft.NodeID) {
	n.mu.Lock()
	l := n.mu.links[node]
	delete(n.mu.links, node)
	n.mu.Unlock()
	if l != nil {
		l.close()
	}
}

// Close detaches every node.
func (n *Network) Close() {
	n.mu.Lock()
	links := n.mu.links
	n.mu.links = make(map[multiraft.NodeID]*link)
	n.mu.Unlock()
	for _, l := range links {
		l.close()
	}
}

func (l *link) close() {
	close(l.stop)
	<-l.done
}

func (l *link) run() {
	defer close(l.done)
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		l.mu.Lock()
		var next *queued
		if len(l.queue) > 0 {
			next = &l.queue[0]
		}
		var wait time.Duration
		if next != nil {
			wait = time.Until(next.deliverAt)
		}
		if next != nil && wait <= 0 {
			data := next.data
			l.queue = l.queue[1:]
			l.mu.Unlock()
			batch, err := multiraft.UnmarshalBatch(data)
			if err != nil {
				panic("testcluster: a batch the network marshaled does not unmarshal: " + err.Error())
			}
			l.recv.HandleBatch(batch)
			continue
		}
		l.mu.Unlock()
		var timerC <-chan time.Time
		if next != nil {
			timer.Reset(wait)
			timerC = timer.C
		}
		select {
		case <-l.stop:
			return
		case <-l.wake:
		case <-timerC:
		}
	}
}

// Endpoint returns the transport a host on node sends with.
func (n *Network) Endpoint(node multiraft.NodeID) multiraft.Transport {
	return endpoint{n: n, from: node}
}

type endpoint struct {
	n    *Network
	from multiraft.NodeID
}

func (e endpoint) Send(batch *multiraft.MessageBatch) error {
	return e.n.send(e.from, batch)
}

// ErrUnreachable is returned by SendSnapshot when the link is cut or down.
var ErrUnreachable = errors.New("testcluster: node unreachable")

// SendSnapshot streams a snapshot to node through the network: the header
// and every chunk are copied across, the link's faults apply, and the
// receiver runs in the sender's goroutine.
func (e endpoint) SendSnapshot(ctx context.Context, node multiraft.NodeID, header *multiraft.SnapshotHeader,
	chunks func(emit func([]byte) error) error) error {
	n := e.n
	n.mu.Lock()
	l := n.mu.links[node]
	_, attached := n.mu.links[e.from]
	cut := n.mu.cut[[2]multiraft.NodeID{e.from, node}] || n.mu.cut[[2]multiraft.NodeID{node, e.from}]
	n.mu.Unlock()
	if l == nil || !attached || cut {
		return ErrUnreachable
	}
	data, err := header.Marshal()
	if err != nil {
		return err
	}
	copied, err := multiraft.UnmarshalSnapshotHeader(data)
	if err != nil {
		return err
	}
	var buffered [][]byte
	if err := chunks(func(c []byte) error {
		buffered = append(buffered, bytes.Clone(c))
		return nil
	}); err != nil {
		return err
	}
	n.snapshots.Add(1)
	i := 0
	return l.recv.HandleSnapshot(ctx, copied, func() ([]byte, error) {
		if i == len(buffered) {
			return nil, io.EOF
		}
		i++
		return buffered[i-1], nil
	})
}

// Snapshots returns how many snapshots crossed the network.
func (n *Network) Snapshots() int64 { return n.snapshots.Load() }

func (n *Network) send(from multiraft.NodeID, batch *multiraft.MessageBatch) error {
	data, err := batch.Marshal()
	if err != nil {
		return err
	}
	n.count(from, batch)
	n.sent.Add(1)
	n.mu.Lock()
	l := n.mu.links[batch.To]
	// A detached sender is stopped or crashed: nothing it sends after that
	// may arrive (a crashed host must not acknowledge writes the crash lost).
	_, attached := n.mu.links[from]
	drop := l == nil || !attached || n.mu.cut[[2]multiraft.NodeID{from, batch.To}] ||
		(n.mu.dropRate > 0 && n.mu.rng.Float64() < n.mu.dropRate)
	delay := n.mu.minDelay
	if n.mu.maxDelay > n.mu.minDelay {
		delay += time.Duration(n.mu.rng.Int64N(int64(n.mu.maxDelay - n.mu.minDelay)))
	}
	reorder := n.mu.reorder > 0 && n.mu.rng.Float64() < n.mu.reorder
	n.mu.Unlock()
	if drop {
		// A lost message is not an error: the network swallows it.
		n.dropped.Add(1)
		return nil
	}
	l.mu.Lock()
	if len(l.queue) >= maxQueued {
		l.mu.Unlock()
		n.dropped.Add(1)
		return ErrQueueFull
	}
	q := queued{data: data, deliverAt: time.Now().Add(delay)}
	l.queue = append(l.queue, q)
	if reorder && len(l.queue) > 1 {
		i := len(l.queue) - 1
		l.queue[i], l.queue[i-1] = l.queue[i-1], l.queue[i]
		// Keep delivery times in queue order so the earlier one goes first.
		l.queue[i-1].deliverAt, l.queue[i].deliverAt = l.queue[i].deliverAt, l.queue[i-1].deliverAt
	}
	l.mu.Unlock()
	n.delivered.Add(1)
	select {
	case l.wake <- struct{}{}:
	default:
	}
	return nil
}

func (n *Network) count(from multiraft.NodeID, batch *multiraft.MessageBatch) {
	n.countMu.Lock()
	defer n.countMu.Unlock()
	key := [2]multiraft.NodeID{from, batch.To}
	c := n.counts[key]
	if c == nil {
		c = &LinkCounts{}
		n.counts[key] = c
	}
	c.Batches++
	c.Messages += int64(len(batch.Messages))
	beats := len(batch.Heartbeats) + len(batch.HeartbeatResps)
	c.Beats += int64(beats)
	for _, m := range batch.Messages {
		if t := m.Message.GetType().String(); t == "MsgHeartbeat" || t == "MsgHeartbeatResp" {
			beats++
		}
	}
	if beats > 0 {
		c.BeatBatches++
	}
}

// Counts returns what crossed from → to so far.
func (n *Network) Counts(from, to multiraft.NodeID) LinkCounts {
	n.countMu.Lock()
	defer n.countMu.Unlock()
	if c := n.counts[[2]multiraft.NodeID{from, to}]; c != nil {
		return *c
	}
	return LinkCounts{}
}

// Partition cuts every link between the two sets of nodes, both ways.
func (n *Network) Partition(a, b []multiraft.NodeID) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, x := range a {
		for _, y := range b {
			n.mu.cut[[2]multiraft.NodeID{x, y}] = true
			n.mu.cut[[2]multiraft.NodeID{y, x}] = true
		}
	}
}

// Cut drops everything sent from → to (one direction).
func (n *Network) Cut(from, to multiraft.NodeID) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.mu.cut[[2]multiraft.NodeID{from, to}] = true
}

// Heal restores every cut link.
func (n *Network) Heal() {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.mu.cut = make(map[[2]multiraft.NodeID]bool)
}

// SetDropRate makes the network lose each batch with probability p.
func (n *Network) SetDropRate(p float64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.mu.dropRate = p
}

// SetDelay delays each batch by a random duration in [min, max].
func (n *Network) SetDelay(minDelay, maxDelay time.Duration) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.mu.minDelay, n.mu.maxDelay = minDelay, maxDelay
}

// SetReorder makes each batch overtake the one queued before it with
// probability p.
func (n *Network) SetReorder(p float64) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.mu.reorder = p
}
