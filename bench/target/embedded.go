// Copyright 2026 The Flotilla Authors. All rights reserved.

package target

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/flotilladb/flotilla/bench"
	"github.com/flotilladb/flotilla/server"
)

// EmbeddedOptions configure NewEmbedded. The zero value is ready to use.
type EmbeddedOptions struct {
	// Node is the node's configuration. NewEmbedded sets Dir (its dir
	// argument), Bootstrap (true) and Join (none); of the rest, zero fields
	// take flotilla's defaults except:
	//   - ListenAddr: default 127.0.0.1:0 (a free loopback port);
	//   - HTTPAddr: default "off";
	//   - ReplicationFactor and PlacementReplicationFactor: default 1, as
	//     the one node can hold only one replica of each range (with more,
	//     the placement driver would count every range under-replicated).
	Node server.Config
	// RequestTimeout bounds an operation whose context has no deadline.
	// Default DefaultRequestTimeout (10 s).
	RequestTimeout time.Duration
}

// EnsureDefaults fills unset fields with their defaults.
func (o *EmbeddedOptions) EnsureDefaults() {
	if o.Node.ListenAddr == "" {
		o.Node.ListenAddr = "127.0.0.1:0"
	}
	if o.Node.HTTPAddr == "" {
		o.Node.HTTPAddr = "off"
	}
	if o.Node.ReplicationFactor == 0 {
		o.Node.ReplicationFactor = 1
	}
	if o.Node.PlacementReplicationFactor == 0 {
		o.Node.PlacementReplicationFactor = 1
	}
	if o.RequestTimeout == 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
}

// Validate reports the options' problems; server.Open checks Node's.
func (o *EmbeddedOptions) Validate() error {
	if o.RequestTimeout < 0 {
		return fmt.Errorf("target: invalid Embedded options: RequestTimeout %v is negative", o.RequestTimeout)
	}
	return nil
}

// Embedded is one Flotilla node running in this process (server.Open),
// its own single-node cluster. Operations go through the node's gateway:
// no network hop between the benchmark's clients and the store. Its
// methods are safe for concurrent use.
//
// It does not implement bench.ServerCPU: the server is this process, so
// its CPU time is the benchmark's clients' too, and no counter separates
// the two. Compare the whole process's CPU instead.
type Embedded struct {
	node *server.Node
	opts EmbeddedOptions
}

var (
	_ bench.Target          = (*Embedded)(nil)
	_ bench.ErrorClassifier = (*Embedded)(nil)
	_ bench.Describer       = (*Embedded)(nil)
)

// NewEmbedded opens a node over dir (created if missing; a store there from
// an earlier run is reopened with its data) as a single-node cluster, and
// returns once it serves, or fails when ctx ends first. Close stops it.
func NewEmbedded(ctx context.Context, dir string, opts EmbeddedOptions) (*Embedded, error) {
	if dir == "" {
		return nil, errors.New("target: Embedded: no directory")
	}
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts.Node.Dir = dir
	opts.Node.Bootstrap = true
	opts.Node.Join = nil
	n, err := server.Open(ctx, opts.Node)
	if err != nil {
		return nil, fmt.Errorf("target: Embedded: %w", err)
	}
	if err := n.WaitReady(ctx); err != nil {
		_ = n.Close()
		return nil, fmt.Errorf("target: Embedded: waiting for the node in %s: %w", dir, err)
	}
	return &Embedded{node: n, opts: opts}, nil
}

// Node returns the node, e.g. for its address or status.
func (e *Embedded) Node() *server.Node { return e.node }

// Get reads key linearizably.
func (e *Embedded) Get(ctx context.Context, key []byte) ([]byte, bool, error) {
	return kvGet(ctx, e.node, e.opts.RequestTimeout, key)
}

// Put writes key; it returns once it is durable on the node.
func (e *Embedded) Put(ctx context.Context, key, value []byte) error {
	return kvPut(ctx, e.node, e.opts.RequestTimeout, key, value)
}

// Scan reads up to limit pairs from start on.
func (e *Embedded) Scan(ctx context.Context, start []byte, limit int) (int, error) {
	return kvScan(ctx, e.node, e.opts.RequestTimeout, start, limit)
}

// ClassifyError classes errors as Flotilla.ClassifyError does.
func (e *Embedded) ClassifyError(err error) string { return classifyFlotilla(err) }

// Describe reports "kind": "flotilla-embedded", "nodes": 1, "ranges" (the
// node's replicas of ranges), "version", "fsync" and "dir".
func (e *Embedded) Describe(ctx context.Context) map[string]any {
	ranges := 0
	for _, r := range e.node.Status(false).GetReplicas() {
		if r.GetKind() == "range" {
			ranges++
		}
	}
	return map[string]any{
		"kind":    "flotilla-embedded",
		"nodes":   1,
		"ranges":  ranges,
		"version": server.Version,
		"fsync":   e.opts.Node.Testing == nil || !e.opts.Node.Testing.DisableSync,
		"dir":     e.node.Dir(),
	}
}

// Close stops the node. It is idempotent.
func (e *Embedded) Close() error { return e.node.Close() }
