// Copyright 2026 The Flotilla Authors. All rights reserved.

package flotillapb

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
)

// Store labels (flotilla start --labels zone=a,rack=r1) describe where a
// store is and what it is for. Today they are shown (cluster status);
// placement rules, to come, will choose stores by them with constraints
// such as zone=a or role!=observer. So a key or value holds none of '=',
// '!' or ',': letters, digits and ._/- only, beginning with a letter or
// digit (TiKV's and Kubernetes' label keys fit, e.g.
// topology.kubernetes.io/zone). The placement group checks them when it
// applies a node's join, so changing these rules changes what replaying
// old log entries gives: it needs a cluster version gate.

// Limits on store labels.
const (
	MaxLabels         = 32
	MaxLabelKeySize   = 63
	MaxLabelValueSize = 63
)

// checkLabelPart returns what is wrong with a label's key or value
// (what: "key" or "value"), or "".
func checkLabelPart(what, s string, max int) string {
	switch {
	case s == "":
		return "empty " + what
	case len(s) > max:
		// Quote only the start: a hostile request's label may be huge.
		return fmt.Sprintf("%s %q... is %d bytes, more than %d", what, s[:16], len(s), max)
	}
	for i, r := range s {
		alnum := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
		if !alnum && r != '.' && r != '_' && r != '/' && r != '-' {
			return fmt.Sprintf("%s %q holds %q: use letters, digits and . _ / - only", what, s, r)
		}
		if i == 0 && !alnum {
			return fmt.Sprintf("%s %q must begin with a letter or digit", what, s)
		}
	}
	return ""
}

// CheckLabels returns what is wrong with a store's labels, or "": each
// key and value well-formed, at most MaxLabels, keys sorted and unique
// (NormalizeLabels makes them so).
func CheckLabels(labels []*StoreLabel) string {
	if len(labels) > MaxLabels {
		return fmt.Sprintf("%d labels, more than %d", len(labels), MaxLabels)
	}
	for i, l := range labels {
		if p := checkLabelPart("label key", l.GetKey(), MaxLabelKeySize); p != "" {
			return p
		}
		if p := checkLabelPart("label value", l.GetValue(), MaxLabelValueSize); p != "" {
			return fmt.Sprintf("label %s: %s", l.GetKey(), p)
		}
		if i > 0 {
			switch c := strings.Compare(labels[i-1].GetKey(), l.GetKey()); {
			case c == 0:
				return fmt.Sprintf("label key %q given twice", l.GetKey())
			case c > 0:
				return fmt.Sprintf("labels not sorted by key (%q before %q)", labels[i-1].GetKey(), l.GetKey())
			}
		}
	}
	return ""
}

// NormalizeLabels returns a map's labels sorted by key, checked by
// CheckLabels (nil for none).
func NormalizeLabels(m map[string]string) ([]*StoreLabel, error) {
	if len(m) == 0 {
		return nil, nil
	}
	out := make([]*StoreLabel, 0, len(m))
	for k, v := range m {
		out = append(out, &StoreLabel{Key: k, Value: v})
	}
	slices.SortFunc(out, func(a, b *StoreLabel) int { return cmp.Compare(a.GetKey(), b.GetKey()) })
	if p := CheckLabels(out); p != "" {
		return nil, fmt.Errorf("labels: %s", p)
	}
	return out, nil
}

// ParseLabels parses "key=value,key=value" (flotilla start --labels) into
// a map, checked by CheckLabels; "" gives none.
func ParseLabels(s string) (map[string]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	m := map[string]string{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		k, v, ok := strings.Cut(part, "=")
		if !ok || part == "" {
			return nil, fmt.Errorf("labels: %q is not key=value", part)
		}
		if _, dup := m[k]; dup {
			return nil, fmt.Errorf("labels: label key %q given twice", k)
		}
		m[k] = v
	}
	if _, err := NormalizeLabels(m); err != nil {
		return nil, err
	}
	return m, nil
}

// LabelsMap returns labels as a map (nil for none).
func LabelsMap(labels []*StoreLabel) map[string]string {
	if len(labels) == 0 {
		return nil
	}
	m := make(map[string]string, len(labels))
	for _, l := range labels {
		m[l.GetKey()] = l.GetValue()
	}
	return m
}

// FormatLabels renders labels as ParseLabels reads them: "zone=a,rack=r1"
// ("" for none).
func FormatLabels(labels []*StoreLabel) string {
	parts := make([]string, len(labels))
	for i, l := range labels {
		parts[i] = l.GetKey() + "=" + l.GetValue()
	}
	return strings.Join(parts, ",")
}

// EqualLabels reports whether two label lists are the same.
func EqualLabels(a, b []*StoreLabel) bool {
	return slices.EqualFunc(a, b, func(x, y *StoreLabel) bool {
		return x.GetKey() == y.GetKey() && x.GetValue() == y.GetValue()
	})
}

// LabelConstraint is a placement rule's condition on a store's labels:
// "key=value" (the store has the label with that value) or "key!=value"
// (it has not: another value, or no such label).
type LabelConstraint struct {
	Key, Value string
	Not        bool
}

// ParseConstraint parses "key=value" or "key!=value"; key and value follow
// the rules of store labels.
func ParseConstraint(s string) (LabelConstraint, error) {
	var c LabelConstraint
	k, v, ok := strings.Cut(s, "!=")
	if ok {
		c.Not = true
	} else if k, v, ok = strings.Cut(s, "="); !ok {
		return c, fmt.Errorf("constraint %s is not key=value or key!=value", quoteStart(s))
	}
	if p := checkLabelPart("label key", k, MaxLabelKeySize); p != "" {
		return c, fmt.Errorf("constraint %s: %s", quoteStart(s), p)
	}
	if p := checkLabelPart("label value", v, MaxLabelValueSize); p != "" {
		return c, fmt.Errorf("constraint %s: %s", quoteStart(s), p)
	}
	c.Key, c.Value = k, v
	return c, nil
}

// quoteStart quotes s, or its first bytes if it is long (hostile input may
// be huge).
func quoteStart(s string) string {
	if len(s) > 80 {
		return fmt.Sprintf("%q... (%d bytes)", s[:80], len(s))
	}
	return fmt.Sprintf("%q", s)
}

func (c LabelConstraint) String() string {
	if c.Not {
		return c.Key + "!=" + c.Value
	}
	return c.Key + "=" + c.Value
}

// Matches reports whether a store with labels satisfies the constraint.
func (c LabelConstraint) Matches(labels map[string]string) bool {
	v, ok := labels[c.Key]
	if c.Not {
		return !ok || v != c.Value
	}
	return ok && v == c.Value
}
