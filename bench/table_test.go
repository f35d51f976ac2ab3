// Copyright 2026 The Flotilla Authors. All rights reserved.

package bench

import (
	"bytes"
	"strings"
	"testing"
)

// tableReports returns hand-made reports covering what a table shows: a
// closed and an open loop, a load phase, a target read back from JSON
// (numbers as float64), missing CPU figures and a missing target.
func tableReports(t *testing.T) []*Report {
	t.Helper()
	etcd := &Report{
		Phase:  "run",
		Config: Config{Workload: Workload{Name: "write", UpdateProportion: 1}, Clients: 16},
		Target: map[string]any{"kind": "etcd", "nodes": 3, "members": 3, "fsync": true, "version": "3.6.16"},
		Ops:    104_128, Throughput: 5206.4,
		Operations: []OpStats{{Op: "update", Count: 104_128, P50Micros: 10_500, P99Micros: 41_200}},
		ServerCPU:  &CPUCost{MicrosPerOp: 280.2}, ClientCPU: &CPUCost{MicrosPerOp: 95.5},
	}
	flotilla := &Report{
		Phase:  "run",
		Config: Config{Workload: Workload{Name: "a", ReadProportion: 0.5, UpdateProportion: 0.5}, Clients: 64},
		Target: map[string]any{"kind": "flotilla", "nodes": 3, "ranges": 16, "fsync": true},
		Ops:    250_003, Errors: 3, Throughput: 12_500.04,
		Operations: []OpStats{
			{Op: "read", Count: 125_000, P50Micros: 850, P99Micros: 4_100},
			{Op: "update", Count: 125_000, Errors: 3, P50Micros: 6_020, P99Micros: 1_250_000},
		},
		ServerCPU: &CPUCost{MicrosPerOp: 150}, ClientCPU: &CPUCost{MicrosPerOp: 40.4},
	}
	// Through JSON, as `flotilla bench table` reads reports.
	var buf bytes.Buffer
	if err := flotilla.WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	flotilla, err := ReadReport(&buf)
	if err != nil {
		t.Fatal(err)
	}
	load := &Report{
		Phase:  "load",
		Config: Config{Workload: Workload{Name: "a"}, Clients: 32},
		Target: map[string]any{"kind": "flotilla-embedded", "nodes": 1, "ranges": 1, "fsync": false},
		Ops:    2_000, Throughput: 999.5,
		Operations: []OpStats{{Op: "insert", Count: 2_000, P50Micros: 310, P99Micros: 2_400}},
		ClientCPU:  &CPUCost{MicrosPerOp: 61.7},
	}
	open := &Report{
		Phase:       "run",
		Config:      Config{Workload: Workload{Name: "kv", ReadProportion: 0.9, UpdateProportion: 0.1}, Clients: 32, Rate: 5000},
		OpenLoop:    &OpenLoopStats{RequestedRate: 5000},
		Interrupted: true,
		Ops:         900, Throughput: 4_998,
		Operations: []OpStats{
			{Op: "read", Count: 810, P50Micros: 95, P99Micros: 700},
			// Every update failed: no latencies.
			{Op: "update", Errors: 90},
		},
		Errors: 90,
	}
	return []*Report{etcd, flotilla, load, open}
}

func TestWriteTable(t *testing.T) {
	reports := tableReports(t)
	for _, tc := range []struct {
		format TableFormat
		want   string
	}{
		{TableMarkdown, `
| target | workload | clients | ops/s | read p50 / p99 | update p50 / p99 | insert p50 / p99 | server CPU µs/op | client CPU µs/op | errors |
| --- | --- | --: | --: | --: | --: | --: | --: | --: | --: |
| etcd, 3 nodes, fsync | write | 16 | 5,206 | - | 10.50ms / 41.20ms | - | 280 | 96 | 0 |
| flotilla, 3 nodes, 16 ranges, fsync | a | 64 | 12,500 | 850µs / 4.10ms | 6.02ms / 1.25s | - | 150 | 40 | 3 |
| flotilla-embedded, 1 node, 1 range, no fsync | load | 32 | 1,000 | - | - | 310µs / 2.40ms | - | 62 | 0 |
| - | kv (read 0.9) (interrupted) | 5,000/s (≤32) | 4,998 | 95µs / 700µs | - | - | - | - | 90 |
`},
		{TableTSV, `
target	workload	clients	rate	throughput	read_p50_us	read_p99_us	update_p50_us	update_p99_us	insert_p50_us	insert_p99_us	server_cpu_us_per_op	client_cpu_us_per_op	errors
etcd, 3 nodes, fsync	write	16	0.0	5206.4			10500.0	41200.0			280.2	95.5	0
flotilla, 3 nodes, 16 ranges, fsync	a	64	0.0	12500.0	850.0	4100.0	6020.0	1250000.0			150.0	40.4	3
flotilla-embedded, 1 node, 1 range, no fsync	load	32	0.0	999.5					310.0	2400.0		61.7	0
-	kv (read 0.9) (interrupted)	32	5000.0	4998.0	95.0	700.0							90
`},
	} {
		var out bytes.Buffer
		if err := WriteTable(&out, reports, tc.format); err != nil {
			t.Fatal(err)
		}
		if want := strings.TrimPrefix(tc.want, "\n"); out.String() != want {
			t.Errorf("%s table:\n%s\nwant:\n%s", tc.format, out.String(), want)
		}
	}
}

func TestWriteTableEdges(t *testing.T) {
	// A pipe in a cell is escaped, so the Markdown table keeps its columns.
	r := &Report{Phase: "run", Config: Config{Workload: Workload{Name: "x|y"}, Clients: 1}, Target: map[string]any{"kind": "k|v"}}
	var out bytes.Buffer
	if err := WriteTable(&out, []*Report{r}, TableMarkdown); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), `| k\|v | x\|y | 1 |`) {
		t.Errorf("pipes not escaped:\n%s", out.String())
	}
	if err := WriteTable(&out, nil, TableMarkdown); err == nil {
		t.Error("WriteTable without reports succeeded")
	}
	if err := WriteTable(&out, []*Report{r}, "html"); err == nil {
		t.Error("WriteTable in an unknown format succeeded")
	}
}
