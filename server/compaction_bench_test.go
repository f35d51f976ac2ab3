// Copyright 2026 The Flotilla Authors. All rights reserved.

package server_test

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"testing"
	"time"

	"github.com/flotilladb/flotilla"
	"github.com/flotilladb/flotilla/server"
)

// dirBytes is the size of the files under dir.
func dirBytes(tb testing.TB, dir string) int64 {
	tb.Helper()
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			n += info.Size()
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

// BenchmarkCompactionSpace: 1M updates (batches of 100 puts of 100-byte
// values) over 10k keys on one node, then the store's bytes on disk before
// and after compacting away every version but those of the last 10k
// updates (the last 100 revisions: a batch is one revision), and a manual
// Pebble compaction, so that the removed versions stop taking space).
// Run it once: go test -run '^$' -bench BenchmarkCompactionSpace -benchtime 1x ./server/
func BenchmarkCompactionSpace(b *testing.B) {
	const (
		keys    = 10_000
		updates = 1_000_000
		batch   = 100
	)
	for range b.N {
		dir := b.TempDir()
		n := openNode(b, server.Config{Dir: dir, Bootstrap: true, HTTPAddr: "off", AutoCompactionMode: server.CompactionOff,
			Testing: &server.TestingKnobs{DisableSync: true}})
		ctx := context.Background()
		if err := n.WaitReady(ctx); err != nil {
			b.Fatal(err)
		}
		value := make([]byte, 100)
		for i := 0; i < updates; i += batch {
			ops := make([]flotilla.Op, batch)
			for j := range ops {
				ops[j] = flotilla.PutOp(fmt.Appendf(nil, "k%05d", (i+j)%keys), value)
			}
			if _, err := n.Batch(ctx, ops...); err != nil {
				b.Fatal(err)
			}
		}
		if err := n.CompactEngine(); err != nil {
			b.Fatal(err)
		}
		before := dirBytes(b, dir)
		versionsBefore, vbBefore, err := n.VersionBytes()
		if err != nil {
			b.Fatal(err)
		}
		cur, err := n.Revision(ctx)
		if err != nil {
			b.Fatal(err)
		}
		cctx, cancel := context.WithTimeout(ctx, time.Minute)
		err = n.CompactAt(cctx, cur-keys/batch)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		if err := n.CompactEngine(); err != nil {
			b.Fatal(err)
		}
		after := dirBytes(b, dir)
		versionsAfter, vbAfter, err := n.VersionBytes()
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(before), "disk-bytes-before")
		b.ReportMetric(float64(after), "disk-bytes-after")
		b.ReportMetric(float64(versionsBefore), "versions-before")
		b.ReportMetric(float64(versionsAfter), "versions-after")
		b.ReportMetric(float64(vbBefore), "version-bytes-before")
		b.ReportMetric(float64(vbAfter), "version-bytes-after")
		if testing.Verbose() {
			logFiles(b, dir)
		}
	}
}

// logFiles logs the bytes of dir's files by extension.
func logFiles(b *testing.B, dir string) {
	by := map[string]int64{}
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				by[filepath.Ext(p)] += info.Size()
			}
		}
		return nil
	})
	b.Logf("files by extension: %v", by)
}
