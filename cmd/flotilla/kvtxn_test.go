// Copyright 2026 The Flotilla Authors. All rights reserved.

package main

import (
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// TestParseTxn: every compare target (and its etcdctl alias) and
// operator, ops of both branches, quoting, and sections ended by the end
// of input.
func TestParseTxn(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     txnSpec
	}{
		{
			name: "every compare kind, both branches",
			in: `value("k") = "v"
val("k") != "w x"
mod("k") > "5"
m("k") < 7
create("k") = "0"
c("a\x00b") > "1"
version("k") != "2"
ver("k") = "3"

put k v
put "k 2" 'two words'
del k
del a c
get k
get a ""

put k "line1\nline2"
`,
			want: txnSpec{
				cmps: []txnCmp{
					{line: 1, target: "value", key: "k", op: "=", value: "v"},
					{line: 2, target: "value", key: "k", op: "!=", value: "w x"},
					{line: 3, target: "mod", key: "k", op: ">", number: 5},
					{line: 4, target: "mod", key: "k", op: "<", number: 7},
					{line: 5, target: "create", key: "k", op: "=", number: 0},
					{line: 6, target: "create", key: "a\x00b", op: ">", number: 1},
					{line: 7, target: "version", key: "k", op: "!=", number: 2},
					{line: 8, target: "version", key: "k", op: "=", number: 3},
				},
				then: []txnOpLine{
					{line: 10, kind: "put", key: "k", arg: "v"},
					{line: 11, kind: "put", key: "k 2", arg: "two words"},
					{line: 12, kind: "del", key: "k"},
					{line: 13, kind: "delrange", key: "a", arg: "c"},
					{line: 14, kind: "get", key: "k"},
					{line: 15, kind: "scan", key: "a", arg: ""},
				},
				els: []txnOpLine{{line: 17, kind: "put", key: "k", arg: "line1\nline2"}},
			},
		},
		{
			name: "no compares, success only, no final newline",
			in:   "\nput k v\r\ndelete k",
			want: txnSpec{then: []txnOpLine{{line: 2, kind: "put", key: "k", arg: "v"}, {line: 3, kind: "del", key: "k"}}},
		},
		{
			name: "failure only, spaces around",
			in:   "  value( \"k\" )=\"\"  \n\n\n  get   k  \n\n",
			want: txnSpec{
				cmps: []txnCmp{{line: 1, target: "value", key: "k", op: "=", value: ""}},
				els:  []txnOpLine{{line: 4, kind: "get", key: "k"}},
			},
		},
		{
			name: "compares only",
			in:   `mod("k") = "0"`,
			want: txnSpec{cmps: []txnCmp{{line: 1, target: "mod", key: "k", op: "=", number: 0}}},
		},
	} {
		got, err := parseTxn(strings.NewReader(tc.in))
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: parsed\n%+v\nwant\n%+v", tc.name, got, tc.want)
		}
	}
}

// TestParseTxnErrors: malformed input fails, naming the line and what is
// wrong.
func TestParseTxnErrors(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"", "an empty txn"},
		{"\n\n\n", "an empty txn"},
		{`lease("k") = "1"`, `line 1: compare "lease(\"k\") = \"1\"": lease compares are not supported`},
		{`value("k") = "v"` + "\nfoo(\"k\") = \"v\"", `line 2: compare "foo(\"k\") = \"v\"": unknown compare target "foo"`},
		{`value "k" = "v"`, "line 1: malformed compare"},
		{`value(k) = "v"`, "line 1: compare \"value(k) = \\\"v\\\"\": the key: want a quoted string"},
		{`value("k" = "v"`, "line 1: compare \"value(\\\"k\\\" = \\\"v\\\"\": no ) after the key"},
		{`value("k") == "v"`, "line 1: compare \"value(\\\"k\\\") == \\\"v\\\"\": the value must be quoted"},
		{`value("k") <= "v"`, "the value must be quoted"},
		{`value("k") ~ "v"`, "unknown or missing compare operator"},
		{`value("k") = v`, "the value must be quoted"},
		{`value("k") = "v" extra`, `unexpected "extra" after the value`},
		{`mod("k") > "x"`, `a mod compare takes a revision or version, a whole number ≥ 0, not "x"`},
		{`version("k") > "-1"`, `not "-1"`},
		{`create("k") = "1`, "the value: want a quoted string"},
		{"\nput k", `line 2: op "put k": put takes KEY VALUE`},
		{"\nput k v w", "line 2: op \"put k v w\": put takes KEY VALUE"},
		{"\nget", `line 2: op "get": get takes KEY [END]`},
		{"\nget a b c", "line 2: op \"get a b c\": get takes KEY [END]"},
		{"\n\ndel", `line 3: op "del": del takes KEY [END]`},
		{"\ncompact 5", `line 2: op "compact 5": unknown op "compact" (want put, get or del)`},
		{"\nput 'k v", "line 2: op \"put 'k v\": an unterminated single-quoted word"},
		{"\nput \"k v", "line 2: op \"put \\\"k v\": a bad double-quoted word"},
		{"\nput \"k\"v w", "no space after the quoted word \"k\""},
		{"\nput k v\n\nget k\n\nget k", `line 6: "get k" after the failure ops`},
	} {
		_, err := parseTxn(strings.NewReader(tc.in))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("parseTxn(%q) = %v, want an error containing %q", tc.in, err, tc.want)
		}
	}
	long := "\nput k " + strings.Repeat("x", maxTxnLine)
	if _, err := parseTxn(strings.NewReader(long)); err == nil || !strings.Contains(err.Error(), "line 2: longer than") {
		t.Errorf("a line over the bound: %v", err)
	}
}

// TestTextBytes: printed keys and values are unambiguous: as they are, or
// quoted when they could be misread, and the quoted ones unquote to the
// bytes.
func TestTextBytes(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"red", "red"},
		{"dark red", "dark red"},
		{"日本", "日本"},
		{"", `""`},
		{"a\nb", `"a\nb"`},
		{"a\tb", `"a\tb"`},
		{"\x00\xff", `"\x00\xff"`},
		{`"quoted"`, `"\"quoted\""`},
		{`it's "x"`, `it's "x"`},
	} {
		got := textBytes([]byte(tc.in))
		if got != tc.want {
			t.Errorf("textBytes(%q) = %s, want %s", tc.in, got, tc.want)
		}
		if strings.HasPrefix(got, `"`) {
			if u, err := strconv.Unquote(got); err != nil || u != tc.in {
				t.Errorf("textBytes(%q) = %s does not unquote to it: %q, %v", tc.in, got, u, err)
			}
		}
	}
}
