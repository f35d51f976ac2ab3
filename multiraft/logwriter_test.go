// Copyright 2026 The Flotilla Authors. All rights reserved.

package multiraft_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/flotilladb/flotilla/engine"
	"github.com/flotilladb/flotilla/internal/testcluster"
	"github.com/flotilladb/flotilla/multiraft"
	pb "go.etcd.io/raft/v3/raftpb"
)

// ackCheckingTransport checks, when a host sends an acknowledgement (an
// accepting MsgAppResp or MsgVoteResp), that what it acknowledges is in the
// image its disk would hold if it crashed at that instant.
type ackCheckingTransport struct {
	multiraft.Transport
	node    multiraft.NodeID
	c       *atomic.Pointer[testcluster.Cluster]
	checks  *atomic.Int64 // checks left
	mu      *sync.Mutex   // one image open at a time: they are large
	failure *atomic.Pointer[string]
}

func (tr *ackCheckingTransport) Send(b *multiraft.MessageBatch) error {
	if c := tr.c.Load(); c != nil {
		for _, gm := range b.Messages {
			m := gm.Message
			if m.GetReject() || (m.GetType() != pb.MsgAppResp && m.GetType() != pb.MsgVoteResp) {
				continue
			}
			if tr.checks.Add(-1) < 0 {
				break
			}
			if err := tr.check(c, gm.Group, m); err != nil {
				s := err.Error()
				tr.failure.CompareAndSwap(nil, &s)
			}
		}
	}
	return tr.Transport.Send(b)
}

func (tr *ackCheckingTransport) check(c *testcluster.Cluster, g multiraft.GroupID, m *pb.Message) error {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	image := c.CrashImage(tr.node)
	eng, err := engine.Open(engine.Options{Dir: "store", FS: image, CacheSize: 1 << 20, MemTableSize: 4 << 20, Logger: quietLogger})
	if err != nil {
		return fmt.Errorf("node %d: opening crash image: %w", tr.node, err)
	}
	defer eng.Close()
	st, err := eng.OpenRaftStorage(g)
	if err != nil {
		return err
	}
	defer st.Close()
	hs, _, err := st.InitialState()
	if err != nil {
		return err
	}
	last, err := st.LastIndex()
	if err != nil {
		return err
	}
	switch {
	case hs.GetTerm() < m.GetTerm():
		return fmt.Errorf("node %d group %d: sent %v in term %d; durable term is %d", tr.node, g, m.GetType(), m.GetTerm(), hs.GetTerm())
	case hs.GetTerm() > m.GetTerm():
		// A later term since: the log may have been rewritten.
	case m.GetType() == pb.MsgVoteResp && hs.GetVote() != m.GetTo():
		return fmt.Errorf("node %d group %d: granted a vote to %d in term %d; durable vote is %d", tr.node, g, m.GetTo(), m.GetTerm(), hs.GetVote())
	case m.GetType() == pb.MsgAppResp && last < m.GetIndex():
		// Within one term a follower's acknowledged log only grows.
		return fmt.Errorf("node %d group %d: acknowledged index %d in term %d; durable log ends at %d", tr.node, g, m.GetIndex(), m.GetTerm(), last)
	}
	return nil
}

var quietLogger = slog.New(slog.NewTextHandler(io.Discard, nil))

// slowWALFS makes every WAL sync take a while, as a disk's does, so that
// the log writer has batches committed and not yet durable most of the
// time.
type slowWALFS struct{ vfs.FS }

const walSyncLatency = 2 * time.Millisecond

func (fs slowWALFS) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil || !strings.HasSuffix(name, ".log") {
		return f, err
	}
	return slowSyncFile{f}, nil
}

func (fs slowWALFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.Create(name, c)
	return fs.wrap(name, f, err)
}

func (fs slowWALFS) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := fs.FS.ReuseForWrite(oldname, newname, c)
	return fs.wrap(newname, f, err)
}

type slowSyncFile struct{ vfs.File }

func (f slowSyncFile) Sync() error {
	time.Sleep(walSyncLatency)
	return f.File.Sync()
}

func (f slowSyncFile) SyncData() error {
	time.Sleep(walSyncLatency)
	return f.File.SyncData()
}

func (f slowSyncFile) SyncTo(length int64) (bool, error) {
	time.Sleep(walSyncLatency)
	return f.File.SyncTo(length)
}

// TestAcksAreDurable: every acknowledgement a follower sends (appended
// entries, a granted vote) is durable when it leaves: the crash image of its
// disk taken as it is sent holds it. Appends are pipelined (the log writer
// commits the next batch while the previous one syncs), so this checks that
// responses wait for their own fsync.
func TestAcksAreDurable(t *testing.T) {
	var (
		cp      atomic.Pointer[testcluster.Cluster]
		checks  atomic.Int64
		mu      sync.Mutex
		failure atomic.Pointer[string]
	)
	checks.Store(300)
	c := testcluster.New(t, testcluster.Options{Nodes: 3, Seed: newSeed(t), Storage: testcluster.Crashable,
		WrapFS: func(_ multiraft.NodeID, fs vfs.FS) vfs.FS { return slowWALFS{fs} },
		Configure: func(cfg *multiraft.Config) {
			cfg.Transport = &ackCheckingTransport{Transport: cfg.Transport, node: cfg.NodeID, c: &cp, checks: &checks, mu: &mu, failure: &failure}
		}})
	cp.Store(c)
	groups := groupRange(4)
	for _, g := range groups {
		c.Bootstrap(g, 1, 2, 3)
	}
	p := newProposer(c)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	for _, g := range groups {
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for checks.Load() > 0 && ctx.Err() == nil && failure.Load() == nil {
					_ = p.propose(ctx, g)
				}
			}()
		}
	}
	wg.Wait()
	if f := failure.Load(); f != nil {
		t.Fatal(*f)
	}
	if checks.Load() > 0 {
		t.Fatalf("only %d acknowledgements checked", 300-checks.Load())
	}
	p.checkConverged(t, groups)
}
