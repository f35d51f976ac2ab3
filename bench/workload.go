// Copyright 2026 The Flotilla Authors. All rights reserved.

package bench

import (
	"errors"
	"fmt"
	"math"

	"github.com/flotilladb/flotilla/rpc/flotillapb"
)

// Op is a kind of operation a workload issues.
type Op int

// The operations, with YCSB's meanings.
const (
	// OpRead gets one existing record.
	OpRead Op = iota
	// OpUpdate puts a new value to one existing record.
	OpUpdate
	// OpInsert puts a record with a new key (the next record number).
	OpInsert
	// OpScan reads a run of records in key order from an existing record on.
	OpScan
	// OpReadModifyWrite gets one existing record, then puts a new value to
	// the same key; its latency covers both.
	OpReadModifyWrite

	numOps = iota
)

var opNames = [numOps]string{"read", "update", "insert", "scan", "read-modify-write"}

// String returns the operation's name as reports print it: "read",
// "update", "insert", "scan", "read-modify-write".
func (o Op) String() string {
	if o < 0 || o >= numOps {
		return fmt.Sprintf("Op(%d)", int(o))
	}
	return opNames[o]
}

// Distribution is how a workload picks the existing record an operation
// works on.
type Distribution string

// The request distributions.
const (
	// Uniform picks each of the RecordCount loaded records equally often.
	Uniform Distribution = "uniform"
	// Zipfian picks the loaded records with a scrambled Zipfian popularity
	// as YCSB does: a rank is drawn from a Zipfian distribution over 10^10
	// items (constant Workload.ZipfianConstant) and the record is the FNV-64
	// hash of the rank modulo RecordCount, so the popular records are
	// spread over the key space rather than clustered.
	Zipfian Distribution = "zipfian"
	// Latest picks by recency: a Zipfian rank over the records inserted and
	// acknowledged so far, counted back from the newest (YCSB's
	// SkewedLatestGenerator). The newest record is the most popular.
	Latest Distribution = "latest"
)

// Limits and defaults of a Workload's sizes.
const (
	// KeyPrefix starts every key, as in YCSB.
	KeyPrefix = "user"
	// MinKeySize is the shortest key: the prefix and the 19 decimal digits
	// of a hashed record number (a non-negative int64).
	MinKeySize = len(KeyPrefix) + 19
	// MaxKeySize is the longest key a workload may use (Flotilla's limit).
	MaxKeySize = flotillapb.MaxKeySize
	// MaxValueSize is the largest value a workload may use.
	MaxValueSize = 64 << 20

	// DefaultRecordCount is Workload.RecordCount's default.
	DefaultRecordCount = 100_000
	// DefaultKeySize is Workload.KeySize's default: MinKeySize.
	DefaultKeySize = MinKeySize
	// DefaultValueSize is Workload.ValueSize's default: YCSB's record of 10
	// fields of 100 bytes, so that figures are comparable with YCSB's.
	DefaultValueSize = 1000
	// DefaultMaxScanLength is Workload.MaxScanLength's default (YCSB's).
	DefaultMaxScanLength = 1000
	// DefaultZipfianConstant is Workload.ZipfianConstant's default (YCSB's).
	DefaultZipfianConstant = 0.99
)

// Workload says what operations a benchmark issues and on which records.
// The proportions are relative weights: each operation is drawn with
// probability its proportion divided by their sum (as YCSB normalizes
// them). Leave sizes zero for their defaults; StandardWorkload fills every
// field.
//
// Records are numbered 0, 1, 2, … in insertion order; record n's key is
// KeyPrefix followed by the FNV-64 hash of n in decimal, zero-padded to
// KeySize bytes (YCSB's hashed keys), so records inserted in order are
// scattered over the key space.
type Workload struct {
	// Name names the workload in reports ("a" … "f", "write", "kv", or
	// anything for a custom mix).
	Name string `json:"name"`

	// ReadProportion weighs OpRead.
	ReadProportion float64 `json:"read_proportion"`
	// UpdateProportion weighs OpUpdate.
	UpdateProportion float64 `json:"update_proportion"`
	// InsertProportion weighs OpInsert. Inserted records take the numbers
	// after the loaded ones, shared by all clients.
	InsertProportion float64 `json:"insert_proportion"`
	// ScanProportion weighs OpScan.
	ScanProportion float64 `json:"scan_proportion"`
	// ReadModifyWriteProportion weighs OpReadModifyWrite.
	ReadModifyWriteProportion float64 `json:"read_modify_write_proportion"`

	// RequestDistribution picks the record of a read, update, scan start or
	// read-modify-write. Default Uniform (YCSB's default).
	RequestDistribution Distribution `json:"request_distribution"`
	// RecordCount is how many records Load inserts, and how many Uniform
	// and Zipfian choose among. Default DefaultRecordCount.
	RecordCount int64 `json:"record_count"`
	// KeySize is every key's length in bytes, from MinKeySize to
	// MaxKeySize. Default DefaultKeySize.
	KeySize int `json:"key_size"`
	// ValueSize is every value's length in bytes, from 1 to MaxValueSize;
	// with Config.Verify it must hold the key and a sequence number
	// (KeySize+18 bytes). Default DefaultValueSize.
	ValueSize int `json:"value_size"`
	// MaxScanLength bounds a scan: its length is uniform in
	// 1..MaxScanLength. Default DefaultMaxScanLength.
	MaxScanLength int `json:"max_scan_length"`
	// ZipfianConstant is the Zipfian distributions' skew, in (0, 1).
	// Default DefaultZipfianConstant.
	ZipfianConstant float64 `json:"zipfian_constant"`
}

// StandardWorkloads lists the names StandardWorkload knows, in order.
var StandardWorkloads = []string{"a", "b", "c", "d", "e", "f", "write", "kv"}

// StandardWorkload returns a named workload with every field set:
//
//	a      50% read, 50% update, zipfian (YCSB core workload A)
//	b      95% read, 5% update, zipfian (B)
//	c      100% read, zipfian (C)
//	d      95% read, 5% insert, latest (D)
//	e      95% scan (length uniform in 1..100), 5% insert, zipfian (E)
//	f      50% read, 50% read-modify-write, zipfian (F)
//	write  100% update, uniform: puts only, spread evenly over the records
//	kv     readFraction read, the rest update, uniform
//
// readFraction is used by "kv" only and must be in [0, 1]; the others
// ignore it. Sizes are the defaults; change them on the result and call
// Validate.
func StandardWorkload(name string, readFraction float64) (Workload, error) {
	w := Workload{Name: name}
	switch name {
	case "a":
		w.ReadProportion, w.UpdateProportion = 0.5, 0.5
		w.RequestDistribution = Zipfian
	case "b":
		w.ReadProportion, w.UpdateProportion = 0.95, 0.05
		w.RequestDistribution = Zipfian
	case "c":
		w.ReadProportion = 1
		w.RequestDistribution = Zipfian
	case "d":
		w.ReadProportion, w.InsertProportion = 0.95, 0.05
		w.RequestDistribution = Latest
	case "e":
		w.ScanProportion, w.InsertProportion = 0.95, 0.05
		w.RequestDistribution = Zipfian
		w.MaxScanLength = 100
	case "f":
		w.ReadProportion, w.ReadModifyWriteProportion = 0.5, 0.5
		w.RequestDistribution = Zipfian
	case "write":
		w.UpdateProportion = 1
		w.RequestDistribution = Uniform
	case "kv":
		if !(readFraction >= 0 && readFraction <= 1) { // also rejects NaN
			return Workload{}, fmt.Errorf("bench: workload kv: read fraction %v is not in [0, 1]", readFraction)
		}
		w.ReadProportion, w.UpdateProportion = readFraction, 1-readFraction
		w.RequestDistribution = Uniform
	default:
		return Workload{}, fmt.Errorf("bench: unknown workload %q (known: %v)", name, StandardWorkloads)
	}
	w.EnsureDefaults()
	return w, nil
}

// EnsureDefaults fills unset sizes and the distribution with their
// defaults. It leaves the proportions alone.
func (w *Workload) EnsureDefaults() {
	if w.RequestDistribution == "" {
		w.RequestDistribution = Uniform
	}
	if w.RecordCount == 0 {
		w.RecordCount = DefaultRecordCount
	}
	if w.KeySize == 0 {
		w.KeySize = DefaultKeySize
	}
	if w.ValueSize == 0 {
		w.ValueSize = DefaultValueSize
	}
	if w.MaxScanLength == 0 {
		w.MaxScanLength = DefaultMaxScanLength
	}
	if w.ZipfianConstant == 0 {
		w.ZipfianConstant = DefaultZipfianConstant
	}
}

// Validate reports every problem at once, joined. It expects
// EnsureDefaults to have run.
func (w *Workload) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, fmt.Errorf("bench: workload %q: "+format, append([]any{w.Name}, args...)...))
	}
	sum := 0.0
	for _, p := range []struct {
		name string
		v    float64
	}{
		{"ReadProportion", w.ReadProportion},
		{"UpdateProportion", w.UpdateProportion},
		{"InsertProportion", w.InsertProportion},
		{"ScanProportion", w.ScanProportion},
		{"ReadModifyWriteProportion", w.ReadModifyWriteProportion},
	} {
		if !(p.v >= 0) || math.IsInf(p.v, 0) {
			bad("%s is %v; it must be finite and not negative", p.name, p.v)
			continue
		}
		sum += p.v
	}
	if !(sum > 0) {
		bad("every proportion is zero: no operations to issue")
	}
	switch w.RequestDistribution {
	case Uniform, Zipfian, Latest:
	default:
		bad("RequestDistribution %q is not %q, %q or %q", w.RequestDistribution, Uniform, Zipfian, Latest)
	}
	if w.RecordCount < 1 {
		bad("RecordCount is %d; it must be at least 1", w.RecordCount)
	}
	if w.KeySize < MinKeySize || w.KeySize > MaxKeySize {
		bad("KeySize is %d; it must be in [%d, %d]", w.KeySize, MinKeySize, MaxKeySize)
	}
	if w.ValueSize < 1 || w.ValueSize > MaxValueSize {
		bad("ValueSize is %d; it must be in [1, %d]", w.ValueSize, MaxValueSize)
	}
	if w.MaxScanLength < 1 {
		bad("MaxScanLength is %d; it must be at least 1", w.MaxScanLength)
	}
	if !(w.ZipfianConstant > 0 && w.ZipfianConstant < 1) {
		bad("ZipfianConstant is %v; it must be in (0, 1)", w.ZipfianConstant)
	}
	return errors.Join(errs...)
}

// proportions returns the operations' weights indexed by Op.
func (w *Workload) proportions() [numOps]float64 {
	return [numOps]float64{
		OpRead:            w.ReadProportion,
		OpUpdate:          w.UpdateProportion,
		OpInsert:          w.InsertProportion,
		OpScan:            w.ScanProportion,
		OpReadModifyWrite: w.ReadModifyWriteProportion,
	}
}

// Describe returns a one-line description: the name, the mix, the
// distribution and the sizes.
func (w *Workload) Describe() string {
	s := fmt.Sprintf("workload %s:", w.Name)
	for op, p := range w.proportions() {
		if p > 0 {
			s += fmt.Sprintf(" %s %.3g", Op(op), p)
		}
	}
	s += fmt.Sprintf("; %s", w.RequestDistribution)
	if w.RequestDistribution != Uniform {
		s += fmt.Sprintf(" %.3g", w.ZipfianConstant)
	}
	s += fmt.Sprintf("; %d records, key %d B, value %d B", w.RecordCount, w.KeySize, w.ValueSize)
	if w.ScanProportion > 0 {
		s += fmt.Sprintf(", scans of 1..%d", w.MaxScanLength)
	}
	return s
}
