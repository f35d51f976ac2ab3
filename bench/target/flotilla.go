// Copyright 2026 The Flotilla Authors. All rights reserved.

package target

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/flotilladb/flotilla"
	"github.com/flotilladb/flotilla/bench"
	"github.com/flotilladb/flotilla/rpc"
	"github.com/flotilladb/flotilla/rpc/flotillapb"
)

// FlotillaOptions configure NewFlotilla. The zero value is ready to use.
type FlotillaOptions struct {
	// HTTPAddrs are the nodes' admin HTTP addresses (HOST:PORT), whose
	// /metrics ServerCPUSeconds reads. Default: each node's http_address as
	// the cluster lists it (Node.ClusterStatus), looked up at every call;
	// set it when those addresses are not reachable from here.
	HTTPAddrs []string
	// RequestTimeout bounds an operation whose context has no deadline.
	// Default DefaultRequestTimeout (10 s).
	RequestTimeout time.Duration
	// TLS connects to a secure cluster (flotilla.Config.TLS; also for the
	// nodes' HTTPS /metrics). Default nil: plaintext.
	TLS *tls.Config
	// NoSync tells Describe that the nodes run with fsync off; the client
	// cannot see it. Default false: "fsync" is reported true.
	NoSync bool
	// ReadFrom is the replica that serves reads (flotilla.Config.ReadFrom):
	// the leader by default, or a follower, or the nearest one (Zone).
	ReadFrom flotilla.Replica
	Zone     string
}

// EnsureDefaults fills unset fields with their defaults.
func (o *FlotillaOptions) EnsureDefaults() {
	if o.RequestTimeout == 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
}

// Validate reports every problem at once. It expects EnsureDefaults to have
// run.
func (o *FlotillaOptions) Validate() error {
	var errs []error
	for _, a := range o.HTTPAddrs {
		if _, _, err := net.SplitHostPort(a); err != nil {
			errs = append(errs, fmt.Errorf("HTTPAddrs: %q: want HOST:PORT: %v", a, err))
		}
	}
	if o.RequestTimeout < 0 {
		errs = append(errs, fmt.Errorf("RequestTimeout %v is negative", o.RequestTimeout))
	}
	if len(errs) > 0 {
		return fmt.Errorf("target: invalid Flotilla options: %w", errors.Join(errs...))
	}
	return nil
}

// adminAttemptTimeout bounds one admin RPC (status, ranges) at one node
// before the next node is asked.
const adminAttemptTimeout = 2 * time.Second

// Flotilla is a Flotilla cluster reached through flotilla.Connect. Its
// methods are safe for concurrent use.
type Flotilla struct {
	endpoints []string
	opts      FlotillaOptions
	client    *flotilla.Client
	// admin holds the connections of the admin RPCs (status, ranges); the
	// client keeps its own.
	admin *rpc.Pool
	http  *http.Client

	closeOnce sync.Once
	closeErr  error
}

var (
	_ bench.Target          = (*Flotilla)(nil)
	_ bench.ErrorClassifier = (*Flotilla)(nil)
	_ bench.ServerCPU       = (*Flotilla)(nil)
	_ bench.Describer       = (*Flotilla)(nil)
)

// NewFlotilla connects to the Flotilla cluster whose nodes listen at
// endpoints (gRPC, HOST:PORT, at least one). It fails unless one of them
// answers, within ctx, as a member of an initialized cluster, so that a
// benchmark pointed at the wrong address stops before it starts.
func NewFlotilla(ctx context.Context, endpoints []string, opts FlotillaOptions) (*Flotilla, error) {
	if len(endpoints) == 0 {
		return nil, errors.New("target: Flotilla: no endpoints")
	}
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts.HTTPAddrs = slices.Clone(opts.HTTPAddrs)
	client, err := flotilla.New(flotilla.Config{Endpoints: endpoints, TLS: opts.TLS, ReadFrom: opts.ReadFrom, Zone: opts.Zone})
	if err != nil {
		return nil, fmt.Errorf("target: Flotilla: %w", err)
	}
	f := &Flotilla{endpoints: slices.Clone(endpoints), opts: opts, client: client,
		admin: rpc.NewPool(rpc.PoolConfig{TLS: opts.TLS}), http: newHTTPClient(opts.TLS)}
	if _, err := f.clusterStatus(ctx); err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("target: Flotilla at %s: %w", strings.Join(endpoints, ","), err)
	}
	return f, nil
}

// Get reads key linearizably.
func (f *Flotilla) Get(ctx context.Context, key []byte) ([]byte, bool, error) {
	return kvGet(ctx, f.client, f.opts.RequestTimeout, key)
}

// Put writes key; it returns once a quorum has it.
func (f *Flotilla) Put(ctx context.Context, key, value []byte) error {
	return kvPut(ctx, f.client, f.opts.RequestTimeout, key, value)
}

// Scan reads up to limit pairs from start on (flotilla.KV.Scan with
// ScanOptions.Limit: page after page, each range's part linearizable).
func (f *Flotilla) Scan(ctx context.Context, start []byte, limit int) (int, error) {
	return kvScan(ctx, f.client, f.opts.RequestTimeout, start, limit)
}

// ClassifyError returns the class of an error of Get, Put or Scan: one of
// ClassTimeout, ClassCanceled, ClassInvalid, ClassOutcomeUnknown,
// ClassNotApplied, ClassUnavailable and ClassOther (and "" for nil).
func (f *Flotilla) ClassifyError(err error) string { return classifyFlotilla(err) }

// ServerCPUSeconds returns the sum over the cluster's nodes of the CPU
// seconds each node's process has used (process_cpu_seconds_total on its
// /metrics), at opts.HTTPAddrs or, by default, at the HTTP addresses the
// cluster lists for its nodes that are not decommissioned. It fails if a
// node's page cannot be read, or a node serves no HTTP.
//
// Nodes that share a process (a test's in-process cluster) each report
// that process's whole CPU time: the sum counts it once per node.
func (f *Flotilla) ServerCPUSeconds(ctx context.Context) (float64, error) {
	addrs := f.opts.HTTPAddrs
	if len(addrs) == 0 {
		var err error
		if addrs, err = f.httpAddrs(ctx); err != nil {
			return 0, fmt.Errorf("target: Flotilla CPU: %w", err)
		}
	}
	scheme := "http://"
	if f.opts.TLS != nil {
		scheme = "https://"
	}
	urls := make([]string, len(addrs))
	for i, a := range addrs {
		urls[i] = scheme + a + "/metrics"
	}
	v, err := serverCPUSeconds(ctx, f.http, urls)
	if err != nil {
		return 0, fmt.Errorf("target: Flotilla CPU: %w", err)
	}
	return v, nil
}

// httpAddrs returns the HTTP addresses of the cluster's nodes that are not
// decommissioned.
func (f *Flotilla) httpAddrs(ctx context.Context) ([]string, error) {
	cs, err := f.clusterStatus(ctx)
	if err != nil {
		return nil, err
	}
	var addrs []string
	for _, e := range cs.GetNodes() {
		d := e.GetNode()
		if d.GetState() == flotillapb.StoreState_STORE_DECOMMISSIONED {
			continue
		}
		if d.GetHttpAddress() == "" {
			return nil, fmt.Errorf("node %d (%s) serves no HTTP: its CPU cannot be read", d.GetNodeId(), d.GetAddress())
		}
		addrs = append(addrs, d.GetHttpAddress())
	}
	return addrs, nil
}

// Describe reports "kind": "flotilla", the endpoints, "nodes" (not
// decommissioned), "ranges" (as the placement driver lists them),
// "version" (the nodes' versions, comma-separated if they differ) and
// "fsync"; "describe_error" says why a figure is missing.
func (f *Flotilla) Describe(ctx context.Context) map[string]any {
	d := map[string]any{
		"kind":      "flotilla",
		"endpoints": slices.Clone(f.endpoints),
		"fsync":     !f.opts.NoSync,
		"tls":       f.opts.TLS != nil,
	}
	if rf := f.opts.ReadFrom; rf != flotilla.ReplicaDefault && rf != flotilla.Leader {
		d["read_from"] = rf.String()
	}
	var errs []string
	if cs, err := f.clusterStatus(ctx); err != nil {
		errs = append(errs, "status: "+err.Error())
	} else {
		nodes := 0
		var versions []string
		for _, e := range cs.GetNodes() {
			if e.GetNode().GetState() == flotillapb.StoreState_STORE_DECOMMISSIONED {
				continue
			}
			nodes++
			if v := e.GetStatus().GetVersion(); v != "" && !slices.Contains(versions, v) {
				versions = append(versions, v)
			}
		}
		slices.Sort(versions)
		d["nodes"] = nodes
		d["cluster_id"] = cs.GetClusterId()
		if len(versions) > 0 {
			d["version"] = strings.Join(versions, ",")
		}
	}
	var ranges *flotillapb.ListRangesResponse
	err := f.eachEndpoint(ctx, func(ctx context.Context, ep string) error {
		conn, err := f.admin.Conn(ep)
		if err != nil {
			return err
		}
		ranges, err = flotillapb.NewPlacementClient(conn).ListRanges(ctx, &flotillapb.ListRangesRequest{})
		return err
	})
	if err != nil {
		errs = append(errs, "ranges: "+err.Error())
	} else {
		d["ranges"] = len(ranges.GetRanges())
	}
	if len(errs) > 0 {
		d["describe_error"] = strings.Join(errs, "; ")
	}
	return d
}

// clusterStatus asks the endpoints in turn for Node.ClusterStatus: every
// node the cluster knows, with its HTTP address and, if it answered, its
// status.
func (f *Flotilla) clusterStatus(ctx context.Context) (*flotillapb.ClusterStatusResponse, error) {
	var resp *flotillapb.ClusterStatusResponse
	err := f.eachEndpoint(ctx, func(ctx context.Context, ep string) error {
		conn, err := f.admin.Conn(ep)
		if err != nil {
			return err
		}
		resp, err = flotillapb.NewNodeClient(conn).ClusterStatus(ctx, &flotillapb.ClusterStatusRequest{})
		return err
	})
	return resp, err
}

// eachEndpoint calls fn with each endpoint in turn, each call bounded by
// adminAttemptTimeout, until one succeeds or ctx ends; it returns the
// errors of the calls that failed if none succeeded.
func (f *Flotilla) eachEndpoint(ctx context.Context, fn func(ctx context.Context, endpoint string) error) error {
	var errs []error
	for _, ep := range f.endpoints {
		actx, cancel := context.WithTimeout(ctx, adminAttemptTimeout)
		err := fn(actx, ep)
		cancel()
		if err == nil {
			return nil
		}
		errs = append(errs, fmt.Errorf("%s: %w", ep, err))
		if ctx.Err() != nil {
			break
		}
	}
	return errors.Join(errs...)
}

// Close closes the client and the admin connections. It is idempotent.
func (f *Flotilla) Close() error {
	f.closeOnce.Do(func() {
		f.closeErr = errors.Join(f.client.Close(), f.admin.Close())
		f.http.CloseIdleConnections()
	})
	return f.closeErr
}

// kvGet, kvPut and kvScan run the Target operations on a flotilla.KV,
// bounded by timeout when ctx has no deadline, with the context's error
// kept in a failed operation's error (withContextErr).

func kvGet(ctx context.Context, kv flotilla.KV, timeout time.Duration, key []byte) ([]byte, bool, error) {
	ctx, cancel := withTimeout(ctx, timeout)
	defer cancel()
	v, err := kv.Get(ctx, key)
	switch {
	case errors.Is(err, flotilla.ErrKeyNotFound):
		return nil, false, nil
	case err != nil:
		return nil, false, withContextErr(ctx, err)
	}
	return v, true, nil
}

func kvPut(ctx context.Context, kv flotilla.KV, timeout time.Duration, key, value []byte) error {
	ctx, cancel := withTimeout(ctx, timeout)
	defer cancel()
	return withContextErr(ctx, kv.Put(ctx, key, value))
}

func kvScan(ctx context.Context, kv flotilla.KV, timeout time.Duration, start []byte, limit int) (int, error) {
	switch {
	case limit < 0:
		return 0, fmt.Errorf("%w %d", errNegativeLimit, limit)
	case limit == 0:
		return 0, nil // flotilla's limit 0 means none
	}
	ctx, cancel := withTimeout(ctx, timeout)
	defer cancel()
	kvs, err := kv.Scan(ctx, start, nil, flotilla.ScanOptions{Limit: limit})
	if err != nil {
		return 0, withContextErr(ctx, err)
	}
	return len(kvs), nil
}
