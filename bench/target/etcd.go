// Copyright 2026 The Flotilla Authors. All rights reserved.

package target

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/flotilladb/flotilla/bench"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// EtcdOptions configure NewEtcd. The zero value is ready to use.
type EtcdOptions struct {
	// DialTimeout bounds each connection attempt to an endpoint. Default
	// 5 s.
	DialTimeout time.Duration
	// RequestTimeout bounds an operation whose context has no deadline.
	// Default DefaultRequestTimeout (10 s).
	RequestTimeout time.Duration
	// MetricsURLs are the members' /metrics URLs, which ServerCPUSeconds
	// reads. Default: each member's first client URL (as MemberList
	// reports it, looked up at every call) with the path /metrics, where
	// etcd serves its metrics unless told otherwise; set it when those
	// URLs are not reachable from here or metrics are served elsewhere
	// (--listen-metrics-urls).
	MetricsURLs []string
	// NoSync tells Describe that the members run with
	// --unsafe-no-fsync; the client cannot see it. Default false: "fsync"
	// is reported true.
	NoSync bool
}

// EnsureDefaults fills unset fields with their defaults.
func (o *EtcdOptions) EnsureDefaults() {
	if o.DialTimeout == 0 {
		o.DialTimeout = 5 * time.Second
	}
	if o.RequestTimeout == 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
}

// Validate reports every problem at once. It expects EnsureDefaults to have
// run.
func (o *EtcdOptions) Validate() error {
	var errs []error
	if o.DialTimeout < 0 {
		errs = append(errs, fmt.Errorf("DialTimeout %v is negative", o.DialTimeout))
	}
	if o.RequestTimeout < 0 {
		errs = append(errs, fmt.Errorf("RequestTimeout %v is negative", o.RequestTimeout))
	}
	for _, u := range o.MetricsURLs {
		if p, err := url.Parse(u); err != nil || p.Scheme == "" || p.Host == "" {
			errs = append(errs, fmt.Errorf("MetricsURLs: %q is not an absolute URL", u))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("target: invalid etcd options: %w", errors.Join(errs...))
	}
	return nil
}

// Etcd is an etcd cluster reached through etcd's Go client (v3 API). Its
// methods are safe for concurrent use.
type Etcd struct {
	endpoints []string
	opts      EtcdOptions
	client    *clientv3.Client
	http      *http.Client

	closeOnce sync.Once
	closeErr  error
}

var (
	_ bench.Target          = (*Etcd)(nil)
	_ bench.ErrorClassifier = (*Etcd)(nil)
	_ bench.ServerCPU       = (*Etcd)(nil)
	_ bench.Describer       = (*Etcd)(nil)
)

// NewEtcd connects to the etcd cluster at endpoints (HOST:PORT or
// http://HOST:PORT, at least one). It fails unless the cluster answers a
// MemberList within ctx, so that a benchmark pointed at the wrong address
// stops before it starts. The client's own logging is off.
func NewEtcd(ctx context.Context, endpoints []string, opts EtcdOptions) (*Etcd, error) {
	if len(endpoints) == 0 {
		return nil, errors.New("target: etcd: no endpoints")
	}
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts.MetricsURLs = slices.Clone(opts.MetricsURLs)
	client, err := clientv3.New(clientv3.Config{
		Endpoints:   slices.Clone(endpoints),
		DialTimeout: opts.DialTimeout,
		// The client logs every retry; the benchmark counts errors itself.
		Logger: zap.NewNop(),
	})
	if err != nil {
		return nil, fmt.Errorf("target: etcd at %s: %w", strings.Join(endpoints, ","), err)
	}
	e := &Etcd{endpoints: slices.Clone(endpoints), opts: opts, client: client, http: newHTTPClient(nil)}
	if _, err := client.MemberList(ctx); err != nil {
		_ = e.Close()
		return nil, fmt.Errorf("target: etcd at %s: %w", strings.Join(endpoints, ","), err)
	}
	return e, nil
}

// Get reads key linearizably (etcd's default range request, not
// serializable).
func (e *Etcd) Get(ctx context.Context, key []byte) ([]byte, bool, error) {
	ctx, cancel := withTimeout(ctx, e.opts.RequestTimeout)
	defer cancel()
	resp, err := e.client.Get(ctx, string(key))
	if err != nil {
		return nil, false, withContextErr(ctx, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, false, nil
	}
	v := resp.Kvs[0].Value
	if v == nil {
		v = []byte{}
	}
	return v, true, nil
}

// Put writes key; it returns once a quorum has it.
func (e *Etcd) Put(ctx context.Context, key, value []byte) error {
	ctx, cancel := withTimeout(ctx, e.opts.RequestTimeout)
	defer cancel()
	_, err := e.client.Put(ctx, string(key), string(value))
	return withContextErr(ctx, err)
}

// Scan reads up to limit pairs from start on: one linearizable range
// request from start to the end of the keyspace (WithFromKey) with
// WithLimit.
func (e *Etcd) Scan(ctx context.Context, start []byte, limit int) (int, error) {
	switch {
	case limit < 0:
		return 0, fmt.Errorf("%w %d", errNegativeLimit, limit)
	case limit == 0:
		return 0, nil // etcd's limit 0 means none
	}
	ctx, cancel := withTimeout(ctx, e.opts.RequestTimeout)
	defer cancel()
	resp, err := e.client.Get(ctx, string(start), clientv3.WithFromKey(), clientv3.WithLimit(int64(limit)))
	if err != nil {
		return 0, withContextErr(ctx, err)
	}
	return len(resp.Kvs), nil
}

// ClassifyError returns the class of an error of Get, Put or Scan: one of
// ClassTimeout, ClassCanceled, ClassInvalid, ClassUnavailable and
// ClassOther (and "" for nil). etcd's errors do not say whether a failed
// write was applied: a write that timed out is ClassTimeout, one refused
// for want of a leader ClassUnavailable.
func (e *Etcd) ClassifyError(err error) string { return classifyEtcd(err) }

// ServerCPUSeconds returns the sum over the cluster's members of the CPU
// seconds each member's process has used (process_cpu_seconds_total on its
// /metrics), at opts.MetricsURLs or, by default, at each member's first
// client URL. It fails if a member's page cannot be read.
func (e *Etcd) ServerCPUSeconds(ctx context.Context) (float64, error) {
	urls := e.opts.MetricsURLs
	if len(urls) == 0 {
		var err error
		if urls, err = e.metricsURLs(ctx); err != nil {
			return 0, fmt.Errorf("target: etcd CPU: %w", err)
		}
	}
	v, err := serverCPUSeconds(ctx, e.http, urls)
	if err != nil {
		return 0, fmt.Errorf("target: etcd CPU: %w", err)
	}
	return v, nil
}

// metricsURLs returns each member's first client URL with the path
// /metrics.
func (e *Etcd) metricsURLs(ctx context.Context) ([]string, error) {
	resp, err := e.client.MemberList(ctx)
	if err != nil {
		return nil, err
	}
	var urls []string
	for _, m := range resp.Members {
		if len(m.ClientURLs) == 0 {
			return nil, fmt.Errorf("member %s (%x) has no client URL (not started?)", m.Name, m.ID)
		}
		u, err := url.Parse(m.ClientURLs[0])
		if err != nil {
			return nil, fmt.Errorf("member %s: client URL %q: %w", m.Name, m.ClientURLs[0], err)
		}
		u.Path = "/metrics"
		urls = append(urls, u.String())
	}
	return urls, nil
}

// Describe reports "kind": "etcd", the endpoints, "members" (MemberList;
// also as "nodes"), "version" (of the member at the first endpoint that answers Status),
// "fsync" and "db_size" (that member's database size in bytes);
// "describe_error" says why a figure is missing.
func (e *Etcd) Describe(ctx context.Context) map[string]any {
	d := map[string]any{
		"kind":      "etcd",
		"endpoints": slices.Clone(e.endpoints),
		"fsync":     !e.opts.NoSync,
	}
	var errs []string
	if resp, err := e.client.MemberList(ctx); err != nil {
		errs = append(errs, "members: "+err.Error())
	} else {
		d["members"] = len(resp.Members)
		d["nodes"] = len(resp.Members) // as the other targets name it
	}
	var statusErrs []error
	for _, ep := range e.endpoints {
		sctx, cancel := context.WithTimeout(ctx, adminAttemptTimeout)
		st, err := e.client.Status(sctx, ep)
		cancel()
		if err != nil {
			statusErrs = append(statusErrs, fmt.Errorf("%s: %w", ep, err))
			continue
		}
		d["version"] = st.Version
		d["db_size"] = st.DbSize
		statusErrs = nil
		break
	}
	if len(statusErrs) > 0 {
		errs = append(errs, "status: "+errors.Join(statusErrs...).Error())
	}
	if len(errs) > 0 {
		d["describe_error"] = strings.Join(errs, "; ")
	}
	return d
}

// Close closes the client. It is idempotent.
func (e *Etcd) Close() error {
	e.closeOnce.Do(func() {
		e.closeErr = e.client.Close()
		e.http.CloseIdleConnections()
	})
	return e.closeErr
}
