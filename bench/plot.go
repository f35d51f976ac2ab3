// Copyright 2026 The Flotilla Authors. All rights reserved.

package bench

import (
	"errors"
	"fmt"
	"io"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Plot size: three panels stacked.
const (
	plotWidth       = 10 * vg.Inch
	plotPanelHeight = 3.5 * vg.Inch
)

// percentileNames label the latency panel's x axis.
var percentileNames = []string{"p50", "p95", "p99", "p99.9", "max"}

// WritePlot draws the reports as a PNG of three panels: throughput over
// time, p99 latency over time (both from the timelines), and each
// operation type's latency percentiles (p50, p95, p99, p99.9, max, on a
// log scale). Each report has its colour; operation types have their
// dash patterns. It needs at least one report.
func WritePlot(w io.Writer, reports ...*Report) error {
	if len(reports) == 0 {
		return errors.New("bench: plot: no reports")
	}
	titles := make([]string, len(reports))
	for i, r := range reports {
		titles[i] = r.Title()
		if len(reports) > 1 {
			titles[i] = fmt.Sprintf("%c: %s", 'A'+i%26, titles[i])
		}
	}

	throughput := newPanel("Throughput", "seconds", "ops/s")
	p99 := newPanel("p99 latency over time", "seconds", "ms")
	percentiles := newPanel("Latency percentiles", "", "ms (log scale)")
	percentiles.NominalX(percentileNames...)

	minLatency, maxLatency := math.Inf(1), math.Inf(-1) // ms
	percentileLines := 0
	for i, r := range reports {
		if len(r.Timeline) > 0 {
			ops := make(plotter.XYs, len(r.Timeline))
			lat := make(plotter.XYs, len(r.Timeline))
			for j, s := range r.Timeline {
				ops[j] = plotter.XY{X: s.Seconds, Y: s.OpsPerSec}
				lat[j] = plotter.XY{X: s.Seconds, Y: s.P99Micros / 1e3}
			}
			if err := addLine(throughput, ops, i, 0, titles[i]); err != nil {
				return err
			}
			if err := addLine(p99, lat, i, 0, titles[i]); err != nil {
				return err
			}
		}
		for op, s := range r.Operations {
			if s.Count == 0 {
				continue
			}
			values := []float64{s.P50Micros, s.P95Micros, s.P99Micros, s.P999Micros, s.MaxMicros}
			xys := make(plotter.XYs, len(values))
			for j, v := range values {
				v = max(v, 1) / 1e3 // the log scale needs positive values
				xys[j] = plotter.XY{X: float64(j), Y: v}
				minLatency, maxLatency = min(minLatency, v), max(maxLatency, v)
			}
			if err := addLine(percentiles, xys, i, op, titles[i]+" "+s.Op); err != nil {
				return err
			}
			percentileLines++
		}
	}
	// Room above the lines for the legends, from 0 on the linear panels.
	for _, p := range []*plot.Plot{throughput, p99} {
		if p.Y.Max >= p.Y.Min {
			p.X.Min, p.Y.Min = 0, 0
			p.Y.Max *= 1 + 0.08*float64(len(reports))
		}
	}
	if maxLatency >= minLatency {
		percentiles.Y.Scale = plot.LogScale{}
		if maxLatency/minLatency >= 100 {
			percentiles.Y.Tick.Marker = plot.LogTicks{Prec: -1}
		}
		percentiles.Y.Min = minLatency / 1.5
		percentiles.Y.Max = maxLatency * 1.5 * math.Pow(maxLatency*1.5/percentiles.Y.Min, 0.1*float64(percentileLines))
	}

	img := vgimg.New(plotWidth, 3*plotPanelHeight)
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 3, Cols: 1, PadTop: vg.Points(4), PadBottom: vg.Points(4), PadLeft: vg.Points(4), PadRight: vg.Points(4), PadY: vg.Points(12)}
	panels := [][]*plot.Plot{{throughput}, {p99}, {percentiles}}
	canvases := plot.Align(panels, tiles, dc)
	for j, row := range panels {
		row[0].Draw(canvases[j][0])
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(w); err != nil {
		return fmt.Errorf("bench: plot: %w", err)
	}
	return nil
}

func newPanel(title, x, y string) *plot.Plot {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = x
	p.Y.Label.Text = y
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	return p
}

// addLine adds a line in report's colour and op's dashes.
func addLine(p *plot.Plot, xys plotter.XYs, report, op int, label string) error {
	l, err := plotter.NewLine(xys)
	if err != nil {
		return fmt.Errorf("bench: plot %q: %w", label, err)
	}
	l.Color = plotutil.Color(report)
	l.Dashes = plotutil.Dashes(op)
	l.Width = vg.Points(1.5)
	p.Add(l)
	p.Legend.Add(label, l)
	return nil
}
