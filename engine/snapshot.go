// Copyright 2026 The Flotilla Authors. All rights reserved.

package engine

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Snapshot data moves between stores as a stream of chunks. A chunk is
//
//	version byte (chunkVersion)
//	repeated: uvarint len(key) | key | uvarint len(value) | value
//	crc32c of everything before, 4 bytes little-endian
//
// Keys are engine keys in strictly increasing order across the whole stream.
// The format is independent of Pebble's; the receiver validates every chunk
// (it may come off the network) before anything reaches its engine.

const chunkVersion = 1

// ErrBadChunk is returned (wrapped) for a snapshot chunk that does not
// decode or whose keys break the stream's rules.
var ErrBadChunk = errors.New("engine: bad snapshot chunk")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// chunkBuilder accumulates pairs into one chunk.
type chunkBuilder struct {
	buf []byte
}

func (c *chunkBuilder) reset() { c.buf = append(c.buf[:0], chunkVersion) }

func (c *chunkBuilder) add(key, value []byte) {
	c.buf = binary.AppendUvarint(c.buf, uint64(len(key)))
	c.buf = append(c.buf, key...)
	c.buf = binary.AppendUvarint(c.buf, uint64(len(value)))
	c.buf = append(c.buf, value...)
}

func (c *chunkBuilder) finish() []byte {
	return binary.LittleEndian.AppendUint32(c.buf, crc32.Checksum(c.buf, castagnoli))
}

// decodeChunk calls fn for each pair in chunk, after checking its checksum.
// Keys and values passed to fn alias chunk.
func decodeChunk(chunk []byte, fn func(key, value []byte) error) error {
	if len(chunk) < 5 {
		return fmt.Errorf("%w: %d bytes is too short", ErrBadChunk, len(chunk))
	}
	body, sum := chunk[:len(chunk)-4], binary.LittleEndian.Uint32(chunk[len(chunk)-4:])
	if crc32.Checksum(body, castagnoli) != sum {
		return fmt.Errorf("%w: checksum mismatch", ErrBadChunk)
	}
	if body[0] != chunkVersion {
		return fmt.Errorf("%w: unknown version %d", ErrBadChunk, body[0])
	}
	for b := body[1:]; len(b) > 0; {
		var key, value []byte
		var err error
		if key, b, err = consumeBytes(b); err != nil {
			return err
		}
		if value, b, err = consumeBytes(b); err != nil {
			return err
		}
		if err := fn(key, value); err != nil {
			return err
		}
	}
	return nil
}

func consumeBytes(b []byte) (field, rest []byte, _ error) {
	n, w := binary.Uvarint(b)
	if w <= 0 || n > uint64(len(b)-w) {
		return nil, nil, fmt.Errorf("%w: truncated", ErrBadChunk)
	}
	return b[w : w+int(n)], b[w+int(n):], nil
}

// validateSpans checks that spans are non-empty, sorted and disjoint, and
// start at a possible key (engine keys are never empty).
func validateSpans(spans []Span) error {
	if len(spans) == 0 {
		return errors.New("engine: no spans")
	}
	for i, s := range spans {
		if len(s.Start) == 0 {
			return fmt.Errorf("engine: span %d starts at the empty key", i)
		}
		if !s.Valid() {
			return fmt.Errorf("engine: span %d %s is empty", i, s)
		}
		if i > 0 && CompareKeys(spans[i-1].End, s.Start) > 0 {
			return fmt.Errorf("engine: spans %s and %s overlap or are out of order", spans[i-1], s)
		}
	}
	return nil
}

// Export streams every pair of the snapshot in spans (sorted and disjoint)
// to emit, as chunks of about Options.SnapshotChunkSize bytes. The chunk
// passed to emit is valid only during the call. An error from emit or ctx
// stops the export.
func (s *Snapshot) Export(ctx context.Context, spans []Span, emit func(chunk []byte) error) error {
	if err := validateSpans(spans); err != nil {
		return err
	}
	limit := s.e.opts.SnapshotChunkSize
	var c chunkBuilder
	c.reset()
	flush := func() error {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := emit(c.finish()); err != nil {
			return err
		}
		c.reset()
		return nil
	}
	for _, span := range spans {
		err := Scan(s, span, ScanOptions{}, func(key, value []byte) error {
			c.add(key, value)
			if len(c.buf) >= limit {
				return flush()
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if len(c.buf) > 1 {
		return flush()
	}
	return nil
}

// Ingester writes a snapshot stream into SSTs and ingests them atomically:
// after Finish the engine holds, in the ingester's spans, exactly the pairs
// of the stream, and nothing else there; before Finish (or after a crash
// during it) the engine is as it was. Keys outside the spans are never
// touched. An Ingester is not safe for concurrent use.
type Ingester struct {
	e     *Engine
	spans []Span
	dir   string
	wopts sstable.WriterOptions

	files []string
	// w writes the current SST; fileStart is the first key it covers.
	w         *sstable.Writer
	fileStart []byte
	// spanIdx is the span the last key fell in; lastKey the last key added,
	// if haveLast.
	spanIdx  int
	lastKey  []byte
	haveLast bool
	pairs    uint64
	err      error // sticky: the first error
	done     bool
}

// NewIngester prepares to ingest a stream covering spans, which must be
// sorted and disjoint. Call Add for each chunk, then Finish; or Abort.
func (e *Engine) NewIngester(spans []Span) (*Ingester, error) {
	if err := e.checkOpen(); err != nil {
		return nil, err
	}
	if e.opts.ReadOnly {
		return nil, ErrReadOnly
	}
	if err := e.Err(); err != nil {
		return nil, err // a failed store takes no snapshot (Pebble's ingest could be fatal)
	}
	if err := validateSpans(spans); err != nil {
		return nil, err
	}
	fs := e.opts.FS
	dir := fs.PathJoin(e.opts.Dir, ingestDir, fmt.Sprintf("%d", e.ingestSeq.Add(1)))
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	ing := &Ingester{
		e:     e,
		spans: spans,
		dir:   dir,
		wopts: e.pebbleOpts.MakeWriterOptions(0, e.db.FormatMajorVersion().MaxTableFormat()),
	}
	if err := ing.startFile(spans[0].Start); err != nil {
		ing.Abort()
		return nil, err
	}
	return ing, nil
}

func (i *Ingester) startFile(start []byte) error {
	path := i.e.opts.FS.PathJoin(i.dir, fmt.Sprintf("%06d.sst", len(i.files)))
	f, err := i.e.opts.FS.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	i.files = append(i.files, path)
	i.w = sstable.NewWriter(objstorageprovider.NewFileWritable(f), i.wopts)
	i.fileStart = bytes.Clone(start)
	return nil
}

// finishFile writes the range deletions that clear the current file's part
// of the spans, [fileStart, end), and closes it.
func (i *Ingester) finishFile(end []byte) error {
	var err error
	for _, s := range i.spans {
		start, stop := maxKey(s.Start, i.fileStart), minKey(s.End, end)
		if CompareKeys(start, stop) < 0 {
			if err = i.w.DeleteRange(start, stop); err != nil {
				break
			}
		}
	}
	if cerr := i.w.Close(); err == nil {
		err = cerr
	}
	i.w = nil
	return err
}

func maxKey(a, b []byte) []byte {
	if CompareKeys(a, b) >= 0 {
		return a
	}
	return b
}

func minKey(a, b []byte) []byte {
	if CompareKeys(a, b) <= 0 {
		return a
	}
	return b
}

// Add writes one chunk of the stream. Keys must lie in the spans and
// increase strictly across the stream; a chunk that breaks this, or does not
// decode, is an error, after which only Abort is useful.
func (i *Ingester) Add(chunk []byte) error {
	if i.err != nil {
		return i.err
	}
	if i.done {
		return errors.New("engine: ingester finished")
	}
	i.err = decodeChunk(chunk, i.addPair)
	return i.err
}

func (i *Ingester) addPair(key, value []byte) error {
	if err := checkKey(key); err != nil {
		return fmt.Errorf("%w: %v", ErrBadChunk, err)
	}
	if i.haveLast && CompareKeys(key, i.lastKey) <= 0 {
		return fmt.Errorf("%w: key %s not after %s", ErrBadChunk, PrettyKey(key), PrettyKey(i.lastKey))
	}
	for i.spanIdx < len(i.spans) && CompareKeys(key, i.spans[i.spanIdx].End) >= 0 {
		i.spanIdx++
	}
	if i.spanIdx == len(i.spans) || !i.spans[i.spanIdx].Contains(key) {
		return fmt.Errorf("%w: key %s outside the snapshot's spans", ErrBadChunk, PrettyKey(key))
	}
	if i.w.Raw().EstimatedSize() >= uint64(i.e.opts.IngestFileSize) {
		if err := i.finishFile(key); err != nil {
			return err
		}
		if err := i.startFile(key); err != nil {
			return err
		}
	}
	if err := i.w.Set(key, value); err != nil {
		return err
	}
	i.lastKey, i.haveLast = append(i.lastKey[:0], key...), true
	i.pairs++
	return nil
}

// Finish ingests everything added, atomically, and removes the temporary
// files. It returns the number of pairs ingested.
func (i *Ingester) Finish(ctx context.Context) (pairs uint64, _ error) {
	if i.err != nil {
		return 0, i.err
	}
	if i.done {
		return 0, errors.New("engine: ingester finished")
	}
	if err := i.e.checkOpen(); err != nil {
		return 0, err
	}
	if err := i.e.Err(); err != nil {
		return 0, err
	}
	i.done = true
	defer i.removeFiles()
	if err := i.finishFile(i.spans[len(i.spans)-1].End); err != nil {
		i.err = err
		return 0, err
	}
	if err := i.e.db.Ingest(ctx, i.files); err != nil {
		return 0, fmt.Errorf("engine: ingesting snapshot: %w", err)
	}
	return i.pairs, nil
}

// Abort discards everything added. It is idempotent and safe after Finish.
func (i *Ingester) Abort() {
	if i.w != nil {
		_ = i.w.Close()
		i.w = nil
	}
	i.done = true
	i.removeFiles()
}

func (i *Ingester) removeFiles() {
	_ = i.e.opts.FS.RemoveAll(i.dir)
	i.files = nil
}
