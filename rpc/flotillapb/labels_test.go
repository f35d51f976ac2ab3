// Copyright 2026 The Flotilla Authors. All rights reserved.

package flotillapb_test

import (
	"maps"
	"strings"
	"testing"

	"github.com/flotilladb/flotilla/rpc/flotillapb"
)

func TestParseLabels(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want map[string]string
		err  string // a substring of the error; "" for none
	}{
		{in: "", want: nil},
		{in: "  ", want: nil},
		{in: "zone=a", want: map[string]string{"zone": "a"}},
		{in: "zone=a,rack=r1,role=observer", want: map[string]string{"zone": "a", "rack": "r1", "role": "observer"}},
		{in: " zone=a , rack=r1 ", want: map[string]string{"zone": "a", "rack": "r1"}},
		{in: "topology.kubernetes.io/zone=eu-west-1a", want: map[string]string{"topology.kubernetes.io/zone": "eu-west-1a"}},
		{in: "zone", err: `"zone" is not key=value`},
		{in: "zone=a,,rack=b", err: `"" is not key=value`},
		{in: "zone=a,zone=b", err: `"zone" given twice`},
		{in: "=a", err: "empty label key"},
		{in: "zone=", err: "label zone: empty label value"},
		{in: "zone=a=b", err: `holds '='`},
		{in: "zone!=a", err: `holds '!'`},
		{in: "zo ne=a", err: `holds ' '`},
		{in: "-zone=a", err: "must begin with a letter or digit"},
		{in: "zone=ä", err: `holds 'ä'`},
		{in: strings.Repeat("k", 64) + "=a", err: "more than 63"},
		{in: "k=" + strings.Repeat("v", 64), err: "more than 63"},
	} {
		got, err := flotillapb.ParseLabels(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseLabels(%q) = %v, %v; want an error with %q", tc.in, got, err, tc.err)
			}
			continue
		}
		if err != nil || !maps.Equal(got, tc.want) {
			t.Errorf("ParseLabels(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
	var many []string
	for i := range flotillapb.MaxLabels + 1 {
		many = append(many, "k"+strings.Repeat("x", i)+"=v")
	}
	if _, err := flotillapb.ParseLabels(strings.Join(many, ",")); err == nil || !strings.Contains(err.Error(), "more than 32") {
		t.Errorf("ParseLabels of %d labels: %v; want too many", len(many), err)
	}
}

func TestNormalizeLabels(t *testing.T) {
	got, err := flotillapb.NormalizeLabels(map[string]string{"zone": "a", "rack": "r1", "role": "observer"})
	if err != nil {
		t.Fatal(err)
	}
	if s := flotillapb.FormatLabels(got); s != "rack=r1,role=observer,zone=a" {
		t.Errorf("FormatLabels = %q; want sorted by key", s)
	}
	if p := flotillapb.CheckLabels(got); p != "" {
		t.Errorf("CheckLabels of normalized labels: %s", p)
	}
	back, err := flotillapb.ParseLabels(flotillapb.FormatLabels(got))
	if err != nil || !maps.Equal(back, flotillapb.LabelsMap(got)) {
		t.Errorf("ParseLabels(FormatLabels) = %v, %v; want %v", back, err, flotillapb.LabelsMap(got))
	}
	if !flotillapb.EqualLabels(got, []*flotillapb.StoreLabel{{Key: "rack", Value: "r1"}, {Key: "role", Value: "observer"}, {Key: "zone", Value: "a"}}) {
		t.Errorf("EqualLabels of the same labels is false")
	}
	if flotillapb.EqualLabels(got, got[:2]) {
		t.Errorf("EqualLabels of different labels is true")
	}
	for _, bad := range [][]*flotillapb.StoreLabel{
		{{Key: "zone", Value: "a"}, {Key: "rack", Value: "r1"}}, // unsorted
		{{Key: "zone", Value: "a"}, {Key: "zone", Value: "b"}},  // duplicate
		{{Key: "zone"}},
		{{Value: "a"}},
	} {
		if p := flotillapb.CheckLabels(bad); p == "" {
			t.Errorf("CheckLabels(%v) passes; want refused", bad)
		}
	}
	if none, err := flotillapb.NormalizeLabels(nil); none != nil || err != nil {
		t.Errorf("NormalizeLabels(nil) = %v, %v", none, err)
	}
}
