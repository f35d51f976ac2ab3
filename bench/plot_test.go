// Copyright 2026 The Flotilla Authors. All rights reserved.

package bench

import (
	"bytes"
	"image/png"
	"testing"
	"time"
)

func TestWritePlot(t *testing.T) {
	a := sampleReport(t, "a", 0, time.Millisecond, 0)
	b := sampleReport(t, "e", 0, 2*time.Millisecond, 0)
	empty := &Report{Phase: "run"}
	for _, reports := range [][]*Report{{a}, {a, b}, {empty}} {
		var buf bytes.Buffer
		if err := WritePlot(&buf, reports...); err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(&buf)
		if err != nil {
			t.Fatalf("the plot is not a PNG: %v", err)
		}
		if r := img.Bounds(); r.Dx() < 500 || r.Dy() < 500 {
			t.Errorf("the plot is %v", r)
		}
	}
	if err := WritePlot(&bytes.Buffer{}); err == nil {
		t.Error("WritePlot without reports succeeded")
	}
}
