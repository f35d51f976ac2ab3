// Copyright 2026 The Flotilla Authors. All rights reserved.

package target

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// cpuMetric is the counter of CPU seconds (user and system) a process has
// used since it started, in the Prometheus text format: Flotilla's nodes
// (VictoriaMetrics' process metrics) and etcd (client_golang's process
// collector) both publish it.
const cpuMetric = "process_cpu_seconds_total"

// maxMetricsBytes bounds the /metrics page read: etcd's is a few hundred
// KiB.
const maxMetricsBytes = 64 << 20

// newHTTPClient returns the client the targets read /metrics with. Keep-
// alives are off: the pages are read twice a phase, and no idle connection
// (nor its goroutines) outlives the target. tlsConfig (nil for plaintext)
// is for a secure cluster's HTTPS.
func newHTTPClient(tlsConfig *tls.Config) *http.Client {
	return &http.Client{Transport: &http.Transport{DisableKeepAlives: true, Proxy: http.ProxyFromEnvironment, TLSClientConfig: tlsConfig}}
}

// serverCPUSeconds returns the sum of the CPU counter over the /metrics
// pages at urls. It fails if any page cannot be read: a sum missing a
// server would make the CPU per operation wrong, not absent.
func serverCPUSeconds(ctx context.Context, hc *http.Client, urls []string) (float64, error) {
	if len(urls) == 0 {
		return 0, errors.New("no servers to read the CPU of")
	}
	var sum float64
	for _, u := range urls {
		v, err := readMetric(ctx, hc, u, cpuMetric)
		if err != nil {
			return 0, err
		}
		sum += v
	}
	return sum, nil
}

// readMetric fetches a Prometheus text page and returns the sum of the
// named metric's samples on it.
func readMetric(ctx context.Context, hc *http.Client, url, name string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	v, err := parseMetric(io.LimitReader(resp.Body, maxMetricsBytes), name)
	if err != nil {
		return 0, fmt.Errorf("GET %s: %w", url, err)
	}
	return v, nil
}

// parseMetric returns the sum of the samples of the metric name (an
// untyped, counter or gauge metric: one value per sample line) in a
// Prometheus text exposition, and an error if there is none.
//
// It scans for the one metric rather than parsing the whole page with
// prometheus/common's expfmt: the pages come from two exporters
// (VictoriaMetrics, client_golang), and only this metric's lines need to
// be well formed, not every line of both.
func parseMetric(r io.Reader, name string) (float64, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	var sum float64
	found := false
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		rest, ok := strings.CutPrefix(line, name)
		if !ok {
			continue // another metric, or a comment
		}
		switch {
		case rest == "":
			return 0, fmt.Errorf("%s: no value in %q", name, line)
		case rest[0] == ' ', rest[0] == '\t':
		case rest[0] == '{':
			// Labels: the value follows the set. The value and timestamp
			// hold no brace, so the last closing brace closes the set,
			// whatever the label values hold.
			end := strings.LastIndexByte(rest, '}')
			if end < 0 {
				return 0, fmt.Errorf("%s: unterminated labels in %q", name, line)
			}
			rest = rest[end+1:]
		default:
			continue // a metric whose name starts with name
		}
		fields := strings.Fields(rest) // value [timestamp]
		if len(fields) == 0 {
			return 0, fmt.Errorf("%s: no value in %q", name, line)
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return 0, fmt.Errorf("%s: value in %q: %w", name, line, err)
		}
		sum += v
		found = true
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	if !found {
		return 0, fmt.Errorf("no %s on the page", name)
	}
	return sum, nil
}
