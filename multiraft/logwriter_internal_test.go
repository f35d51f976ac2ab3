// Copyright 2026 The Flotilla Authors. All rights reserved.

package multiraft

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/flotilladb/flotilla/engine"
	pb "go.etcd.io/raft/v3/raftpb"
)

var errInjectedSync = errors.New("injected WAL sync failure")

// walFaultFS fails the WAL's syncs once armed: the first sync after arming
// blocks until release is closed, then it and every later one fail.
type walFaultFS struct {
	vfs.FS
	armed   atomic.Bool
	blocked chan struct{} // closed when the first armed sync blocks
	release chan struct{}
	once    sync.Once
}

func newWALFaultFS(fs vfs.FS) *walFaultFS {
	return &walFaultFS{FS: fs, blocked: make(chan struct{}), release: make(chan struct{})}
}

func (fs *walFaultFS) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil || !strings.HasSuffix(name, ".log") {
		return f, err
	}
	return &walFaultFile{File: f, fs: fs}, nil
}

func (fs *walFaultFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, c)
	return fs.wrap(name, f, err)
}

func (fs *walFaultFS) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, c)
	return fs.wrap(newname, f, err)
}

func (fs *walFaultFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := fs.FS.OpenReadWrite(name, c, opts...)
	return fs.wrap(name, f, err)
}

func (fs *walFaultFS) sync() error {
	if !fs.armed.Load() {
		return nil
	}
	fs.once.Do(func() { close(fs.blocked) })
	<-fs.release
	return errInjectedSync
}

type walFaultFile struct {
	vfs.File
	fs *walFaultFS
}

func (f *walFaultFile) Sync() error {
	if err := f.fs.sync(); err != nil {
		return err
	}
	return f.File.Sync()
}

func (f *walFaultFile) SyncData() error {
	if err := f.fs.sync(); err != nil {
		return err
	}
	return f.File.SyncData()
}

func (f *walFaultFile) SyncTo(length int64) (bool, error) {
	if err := f.fs.sync(); err != nil {
		return false, err
	}
	return f.File.SyncTo(length)
}

// recordingTransport records the raft messages a host sends.
type recordingTransport struct {
	mu   sync.Mutex
	msgs []*pb.Message
}

func (rt *recordingTransport) Send(b *MessageBatch) error {
	rt.mu.Lock()
	defer rt.mu.Unlock()
	for _, gm := range b.Messages {
		rt.msgs = append(rt.msgs, gm.Message)
	}
	return nil
}

func (rt *recordingTransport) SendSnapshot(context.Context, NodeID, *SnapshotHeader, func(func([]byte) error) error) error {
	return errors.New("no snapshots here")
}

// TestNoAckAfterFailedSync: once the fsync of a pipelined batch fails, no
// response may be delivered, not even one of a later MsgStorageAppend that
// writes nothing. Raft attaches to such a message (a duplicate MsgApp's
// MsgAppResp, say) acknowledgements of every append queued before it: the
// follower here would tell the leader it holds entries its failed fsync
// lost.
func TestNoAckAfterFailedSync(t *testing.T) {
	quiet := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	fs := newWALFaultFS(vfs.NewMem())
	eng, err := engine.Open(engine.Options{Dir: "store", FS: fs, CacheSize: 1 << 20, MemTableSize: 1 << 20, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = eng.Close() }()
	span, _ := engine.UserSpan([]byte("g7/"), []byte("g7/\xff"))
	rt := &recordingTransport{}
	h, err := NewHost(Config{
		NodeID: 1, Engine: eng, Transport: rt, Logger: quiet,
		NewStateMachine: func(GroupID) (StateMachine, error) { return spanSM{span}, nil },
		Testing:         &TestingKnobs{DisableTicker: true},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop()
	self, leader := MakeReplicaID(1, 1), MakeReplicaID(2, 1)
	if err := h.Bootstrap(7, []Replica{{ID: self}, {ID: leader}}); err != nil {
		t.Fatal(err)
	}
	g := h.group(7)

	// The leader of term 6 appends entries 11 and 12: the follower's append
	// is committed (pipelined) and its fsync hangs, then fails.
	app := func() *MessageBatch {
		return &MessageBatch{From: 2, To: 1, Messages: []GroupMessage{{Group: 7, Message: &pb.Message{
			Type: pb.MsgApp.Enum(), From: new(uint64(leader)), To: new(uint64(self)), Term: new(uint64(6)),
			LogTerm: new(uint64(initialLogTerm)), Index: new(uint64(initialLogIndex)), Commit: new(uint64(initialLogIndex)),
			Entries: []*pb.Entry{
				{Index: new(uint64(11)), Term: new(uint64(6)), Data: []byte("a")},
				{Index: new(uint64(12)), Term: new(uint64(6)), Data: []byte("b")},
			},
		}}}}
	}
	fs.armed.Store(true)
	h.HandleBatch(app())
	select {
	case <-fs.blocked:
	case <-time.After(10 * time.Second):
		t.Fatal("the append's fsync never started")
	}
	// The leader sends the same entries again (a retry): the follower has
	// them (unstably), writes nothing, and raft queues the MsgAppResp for
	// index 12 behind the pending append.
	h.HandleBatch(app())
	deadline := time.Now().Add(10 * time.Second)
	for {
		h.logWriter.mu.Lock()
		queued := len(h.logWriter.mu.queue)
		h.logWriter.mu.Unlock()
		if queued == 0 && g.appendsInFlight.Load() == 2 {
			break // the writer took the second append: it waits for the first
		}
		if time.Now().After(deadline) {
			t.Fatalf("second append not taken by the writer (queued %d, in flight %d)", queued, g.appendsInFlight.Load())
		}
		time.Sleep(time.Millisecond)
	}
	close(fs.release)
	deadline = time.Now().Add(10 * time.Second)
	for h.Err() == nil {
		if time.Now().After(deadline) {
			t.Fatal("host did not fail after the fsync error")
		}
		time.Sleep(time.Millisecond)
	}
	h.Stop()

	var acks []*pb.Message
	rt.mu.Lock()
	acks = append(acks, rt.msgs...)
	rt.mu.Unlock()
	h.outboxMu.Lock()
	for _, ob := range h.outboxes {
		ob.mu.Lock()
		for _, gm := range ob.msgs {
			acks = append(acks, gm.Message)
		}
		ob.mu.Unlock()
	}
	h.outboxMu.Unlock()
	for _, m := range acks {
		if m.GetType() == pb.MsgAppResp && !m.GetReject() && m.GetIndex() > initialLogIndex {
			t.Fatalf("after the failed fsync the follower acknowledged index %d to the leader", m.GetIndex())
		}
	}
}
