// Copyright 2026 The Flotilla Authors. All rights reserved.

package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"

	"github.com/flotilladb/flotilla"
)

// The text `kv txn` reads, etcdctl txn's format: compare lines, a blank
// line, the success ops, a blank line, the failure ops (end of input ends
// a section too):
//
//	mod("k") > "5"
//	value("k") = "v"
//
//	put k "new value"
//	get k
//
//	get k
//
// A compare is target("key") op "value": target is value (val), version
// (ver), create (c) or mod (m); op is =, !=, < or >; the key and value are
// Go double-quoted strings, and a number may be given bare. An op is
// `put KEY VALUE`, `get KEY [END]` (a scan of [KEY, END) with END) or
// `del KEY [END]` (a delete-range with END; an empty END, "", is the end of
// the keyspace). An op's words are separated by spaces; a word may be
// double-quoted (Go syntax: "a b", "\n", "\x00") or single-quoted
// (literally: 'a b').

// txnCmp is a parsed compare line.
type txnCmp struct {
	line   int
	target string // value, version, create, mod
	key    string
	op     string // =, !=, <, >
	value  string // for value
	number int64  // for the others
}

// txnOpLine is a parsed op line.
type txnOpLine struct {
	line int
	// kind is put, del, delrange, get or scan.
	kind     string
	key, arg string // arg: put's value, delrange's and scan's end
}

// txnSpec is a parsed txn.
type txnSpec struct {
	cmps      []txnCmp
	then, els []txnOpLine
}

// maxTxnLine bounds a line of txn input: a put of the largest value, quoted.
const maxTxnLine = 4*flotilla.DefaultMaxValueSize + 64*1024

// parseTxn reads a txn in etcdctl's format from r. Its errors name the
// line.
func parseTxn(r io.Reader) (txnSpec, error) {
	var spec txnSpec
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), maxTxnLine)
	section := 0 // 0: compares, 1: success, 2: failure, 3: done
	n := 0
	for sc.Scan() {
		n++
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			if section < 3 {
				section++
			}
			continue
		}
		switch section {
		case 0:
			c, err := parseCompare(line)
			if err != nil {
				return txnSpec{}, fmt.Errorf("line %d: %w", n, err)
			}
			c.line = n
			spec.cmps = append(spec.cmps, c)
		case 1, 2:
			op, err := parseTxnOp(line)
			if err != nil {
				return txnSpec{}, fmt.Errorf("line %d: %w", n, err)
			}
			op.line = n
			if section == 1 {
				spec.then = append(spec.then, op)
			} else {
				spec.els = append(spec.els, op)
			}
		default:
			return txnSpec{}, fmt.Errorf("line %d: %q after the failure ops: a txn is compares, a blank line, success ops, a blank line, failure ops", n, line)
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return txnSpec{}, fmt.Errorf("line %d: longer than %d bytes", n+1, maxTxnLine)
		}
		return txnSpec{}, fmt.Errorf("reading the txn: %w", err)
	}
	if len(spec.cmps)+len(spec.then)+len(spec.els) == 0 {
		return txnSpec{}, errors.New("an empty txn: no compares and no ops (give compares, a blank line, success ops, a blank line, failure ops)")
	}
	return spec, nil
}

var cmpTargets = map[string]string{
	"value": "value", "val": "value",
	"version": "version", "ver": "version",
	"create": "create", "c": "create",
	"mod": "mod", "m": "mod",
}

// parseCompare parses `target("key") op "value"`.
func parseCompare(line string) (txnCmp, error) {
	const form = `want target("key") op "value", e.g. mod("k") > "5"`
	name, rest, ok := strings.Cut(line, "(")
	if !ok {
		return txnCmp{}, fmt.Errorf("malformed compare %q: %s", line, form)
	}
	name = strings.TrimSpace(name)
	c := txnCmp{target: cmpTargets[name]}
	switch {
	case name == "lease":
		return txnCmp{}, fmt.Errorf("compare %q: lease compares are not supported (there are no leases)", line)
	case c.target == "":
		return txnCmp{}, fmt.Errorf("compare %q: unknown compare target %q (want value, version, create or mod)", line, name)
	}
	key, rest, err := unquotePrefix(strings.TrimSpace(rest))
	if err != nil {
		return txnCmp{}, fmt.Errorf("compare %q: the key: %v: %s", line, err, form)
	}
	c.key = key
	rest, ok = strings.CutPrefix(strings.TrimSpace(rest), ")")
	if !ok {
		return txnCmp{}, fmt.Errorf("compare %q: no ) after the key: %s", line, form)
	}
	rest = strings.TrimSpace(rest)
	for _, op := range []string{"!=", "=", "<", ">"} {
		if r, ok := strings.CutPrefix(rest, op); ok {
			c.op, rest = op, strings.TrimSpace(r)
			break
		}
	}
	if c.op == "" {
		return txnCmp{}, fmt.Errorf("compare %q: unknown or missing compare operator (want =, !=, < or >)", line)
	}
	var val string
	if strings.HasPrefix(rest, `"`) || strings.HasPrefix(rest, "`") {
		val, rest, err = unquotePrefix(rest)
		if err != nil {
			return txnCmp{}, fmt.Errorf("compare %q: the value: %v", line, err)
		}
		if strings.TrimSpace(rest) != "" {
			return txnCmp{}, fmt.Errorf("compare %q: unexpected %q after the value", line, strings.TrimSpace(rest))
		}
	} else if c.target == "value" {
		return txnCmp{}, fmt.Errorf("compare %q: the value must be quoted: %s", line, form)
	} else {
		val = rest
	}
	if c.target == "value" {
		c.value = val
		return c, nil
	}
	c.number, err = strconv.ParseInt(val, 10, 64)
	if err != nil || c.number < 0 {
		return txnCmp{}, fmt.Errorf("compare %q: a %s compare takes a revision or version, a whole number ≥ 0, not %q", line, c.target, val)
	}
	return c, nil
}

// unquotePrefix unquotes the Go quoted string s begins with and returns
// the rest.
func unquotePrefix(s string) (string, string, error) {
	q, err := strconv.QuotedPrefix(s)
	if err != nil {
		return "", "", errors.New("want a quoted string")
	}
	v, err := strconv.Unquote(q)
	if err != nil {
		return "", "", err
	}
	return v, s[len(q):], nil
}

// splitWords splits an op line into words: separated by white space,
// double-quoted (Go syntax) or single-quoted (literal).
func splitWords(line string) ([]string, error) {
	var words []string
	for {
		line = strings.TrimLeftFunc(line, unicode.IsSpace)
		if line == "" {
			return words, nil
		}
		var w string
		switch line[0] {
		case '"':
			var err error
			if w, line, err = unquotePrefix(line); err != nil {
				return nil, fmt.Errorf("a bad double-quoted word at %q: %v", line, err)
			}
		case '\'':
			end := strings.IndexByte(line[1:], '\'')
			if end < 0 {
				return nil, fmt.Errorf("an unterminated single-quoted word at %q", line)
			}
			w, line = line[1:1+end], line[2+end:]
		default:
			end := strings.IndexFunc(line, unicode.IsSpace)
			if end < 0 {
				end = len(line)
			}
			w, line = line[:end], line[end:]
		}
		if line != "" && !unicode.IsSpace(rune(line[0])) {
			return nil, fmt.Errorf("no space after the quoted word %q", w)
		}
		words = append(words, w)
	}
}

// parseTxnOp parses `put KEY VALUE`, `get KEY [END]` or `del KEY [END]`.
func parseTxnOp(line string) (txnOpLine, error) {
	words, err := splitWords(line)
	if err != nil {
		return txnOpLine{}, fmt.Errorf("op %q: %v", line, err)
	}
	args := words[1:]
	switch words[0] {
	case "put":
		if len(args) != 2 {
			return txnOpLine{}, fmt.Errorf("op %q: put takes KEY VALUE", line)
		}
		return txnOpLine{kind: "put", key: args[0], arg: args[1]}, nil
	case "get", "del", "delete":
		kind := words[0]
		if kind == "delete" {
			kind = "del"
		}
		switch len(args) {
		case 1:
			return txnOpLine{kind: kind, key: args[0]}, nil
		case 2:
			if kind == "get" {
				return txnOpLine{kind: "scan", key: args[0], arg: args[1]}, nil
			}
			return txnOpLine{kind: "delrange", key: args[0], arg: args[1]}, nil
		}
		return txnOpLine{}, fmt.Errorf("op %q: %s takes KEY [END]", line, kind)
	}
	return txnOpLine{}, fmt.Errorf("op %q: unknown op %q (want put, get or del)", line, words[0])
}

// build turns the parsed txn into a flotilla.Txn.
func (s txnSpec) build(t *flotilla.Txn) *flotilla.Txn {
	for _, c := range s.cmps {
		var target flotilla.Cmp
		var v any = c.number
		switch c.target {
		case "value":
			target, v = flotilla.Value([]byte(c.key)), c.value
		case "version":
			target = flotilla.Version([]byte(c.key))
		case "create":
			target = flotilla.CreateRevision([]byte(c.key))
		case "mod":
			target = flotilla.ModRevision([]byte(c.key))
		}
		t.If(flotilla.Compare(target, c.op, v))
	}
	for _, op := range s.then {
		t.Then(op.op())
	}
	for _, op := range s.els {
		t.Else(op.op())
	}
	return t
}

func (o txnOpLine) op() flotilla.Op {
	switch o.kind {
	case "put":
		return flotilla.PutOp([]byte(o.key), []byte(o.arg))
	case "del":
		return flotilla.DeleteOp([]byte(o.key))
	case "delrange":
		return flotilla.DeleteRangeOp([]byte(o.key), []byte(o.arg))
	case "get":
		return flotilla.GetOp([]byte(o.key))
	case "scan":
		return flotilla.ScanOp([]byte(o.key), []byte(o.arg), flotilla.ScanOptions{})
	}
	return flotilla.Op{}
}
