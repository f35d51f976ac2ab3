// Copyright 2026 The Flotilla Authors. All rights reserved.

package bench

import (
	"math"
	"strings"
	"testing"
)

func TestStandardWorkloads(t *testing.T) {
	for _, tc := range []struct {
		name         string
		readFraction float64
		want         [numOps]float64
		dist         Distribution
		maxScan      int
	}{
		{"a", 0, [numOps]float64{OpRead: 0.5, OpUpdate: 0.5}, Zipfian, DefaultMaxScanLength},
		{"b", 0, [numOps]float64{OpRead: 0.95, OpUpdate: 0.05}, Zipfian, DefaultMaxScanLength},
		{"c", 0, [numOps]float64{OpRead: 1}, Zipfian, DefaultMaxScanLength},
		{"d", 0, [numOps]float64{OpRead: 0.95, OpInsert: 0.05}, Latest, DefaultMaxScanLength},
		{"e", 0, [numOps]float64{OpScan: 0.95, OpInsert: 0.05}, Zipfian, 100},
		{"f", 0, [numOps]float64{OpRead: 0.5, OpReadModifyWrite: 0.5}, Zipfian, DefaultMaxScanLength},
		{"write", 0.7, [numOps]float64{OpUpdate: 1}, Uniform, DefaultMaxScanLength},
		{"kv", 0.8, [numOps]float64{OpRead: 0.8, OpUpdate: 0.2}, Uniform, DefaultMaxScanLength},
		{"kv", 0, [numOps]float64{OpUpdate: 1}, Uniform, DefaultMaxScanLength},
	} {
		w, err := StandardWorkload(tc.name, tc.readFraction)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if err := w.Validate(); err != nil {
			t.Errorf("%s: %v", tc.name, err)
		}
		for op, p := range w.proportions() {
			if math.Abs(p-tc.want[op]) > 1e-12 {
				t.Errorf("%s: proportions %v, want %v", tc.name, w.proportions(), tc.want)
			}
		}
		if w.RequestDistribution != tc.dist || w.MaxScanLength != tc.maxScan || w.Name != tc.name {
			t.Errorf("%s: got %+v", tc.name, w)
		}
		if w.RecordCount != DefaultRecordCount || w.KeySize != DefaultKeySize || w.ValueSize != DefaultValueSize || w.ZipfianConstant != 0.99 {
			t.Errorf("%s: sizes not the defaults: %+v", tc.name, w)
		}
	}
	for _, bad := range []struct {
		name string
		rf   float64
	}{{"g", 0}, {"", 0}, {"kv", 1.5}, {"kv", -0.1}, {"kv", math.NaN()}} {
		if _, err := StandardWorkload(bad.name, bad.rf); err == nil {
			t.Errorf("StandardWorkload(%q, %v) succeeded", bad.name, bad.rf)
		}
	}
}

func TestWorkloadValidateReportsEveryProblem(t *testing.T) {
	w := Workload{
		Name:                "bad",
		ReadProportion:      -1,
		UpdateProportion:    math.Inf(1),
		RequestDistribution: "pareto",
		RecordCount:         -5,
		KeySize:             10,
		ValueSize:           -1,
		MaxScanLength:       -1,
		ZipfianConstant:     1,
	}
	err := w.Validate()
	if err == nil {
		t.Fatal("Validate accepted a bad workload")
	}
	for _, want := range []string{"ReadProportion", "UpdateProportion", "every proportion is zero", "RequestDistribution",
		"RecordCount", "KeySize", "ValueSize", "MaxScanLength", "ZipfianConstant"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate's error does not mention %s:\n%v", want, err)
		}
	}
}

func TestWorkloadDescribe(t *testing.T) {
	w, _ := StandardWorkload("e", 0)
	got := w.Describe()
	want := "workload e: insert 0.05 scan 0.95; zipfian 0.99; 100000 records, key 23 B, value 1000 B, scans of 1..100"
	if got != want {
		t.Errorf("Describe() = %q, want %q", got, want)
	}
}
