// Copyright 2026 The Flotilla Authors. All rights reserved.

package main

import (
	"fmt"
	"io"
	"strconv"
	"unicode"
	"unicode/utf8"

	"github.com/flotilladb/flotilla"
)

// How kv prints keys and values.
//
// Text: a key or value is printed as it is if it is non-empty UTF-8 of
// printable characters (spaces included, tabs and newlines not) that does
// not begin with a double quote; otherwise it is printed Go-quoted
// (strconv.Quote: "a\tb", "\x00", ""). So a printed word that begins with
// " is quoted (strconv.Unquote gives the bytes back), and any other is
// the bytes themselves.
//
// JSON: "key" and "value" are strings when the bytes are valid UTF-8;
// otherwise the field is "key_base64" or "value_base64", the bytes in
// standard base64.

// textBytes prints b for text output (see above).
func textBytes(b []byte) string {
	if len(b) == 0 || b[0] == '"' || !utf8.Valid(b) {
		return strconv.Quote(string(b))
	}
	for _, r := range string(b) {
		if !unicode.IsPrint(r) {
			return strconv.Quote(string(b))
		}
	}
	return string(b)
}

// jsonKV is a key and its version in JSON output.
type jsonKV struct {
	Key            *string `json:"key,omitempty"`
	KeyBase64      []byte  `json:"key_base64,omitempty"`
	Value          *string `json:"value,omitempty"`
	ValueBase64    []byte  `json:"value_base64,omitempty"`
	CreateRevision int64   `json:"create_revision"`
	ModRevision    int64   `json:"mod_revision"`
	Version        int64   `json:"version"`
	Lease          int64   `json:"lease"`
}

// jsonBytes sets *s to b as a string if it is UTF-8, else *b64 to b.
func jsonBytes(b []byte, s **string, b64 *[]byte) {
	if utf8.Valid(b) {
		str := string(b)
		*s = &str
		return
	}
	*b64 = b
}

func newJSONKV(kv flotilla.KeyValue) jsonKV {
	j := jsonKV{CreateRevision: kv.CreateRevision, ModRevision: kv.ModRevision, Version: kv.Version, Lease: kv.Lease}
	jsonBytes(kv.Key, &j.Key, &j.KeyBase64)
	jsonBytes(kv.Value, &j.Value, &j.ValueBase64)
	return j
}

// jsonGet is `kv get --format json`: the key's version and the revision
// read at.
type jsonGet struct {
	jsonKV
	Revision int64 `json:"revision"`
}

// jsonScan is `kv scan --format json`.
type jsonScan struct {
	Revision int64    `json:"revision"`
	KVs      []jsonKV `json:"kvs"`
}

// jsonWrite is `kv put`, `kv del` and `kv compact` with --format json.
type jsonWrite struct {
	Revision int64 `json:"revision"`
	// Found: del only.
	Found *bool `json:"found,omitempty"`
}

// jsonCAS is `kv cas --format json`: found and current describe the key
// when the swap did not happen.
type jsonCAS struct {
	Swapped       bool    `json:"swapped"`
	Found         bool    `json:"found"`
	Current       *string `json:"current,omitempty"`
	CurrentBase64 []byte  `json:"current_base64,omitempty"`
}

// jsonTxn is `kv txn --format json`.
type jsonTxn struct {
	Succeeded bool            `json:"succeeded"`
	Revision  int64           `json:"revision"`
	Results   []jsonTxnResult `json:"results"`
}

// jsonTxnResult is one op's result: op is put, del, delrange, get or scan.
type jsonTxnResult struct {
	Op      string   `json:"op"`
	Found   *bool    `json:"found,omitempty"`
	Deleted *int64   `json:"deleted,omitempty"`
	KV      *jsonKV  `json:"kv,omitempty"`
	KVs     []jsonKV `json:"kvs,omitempty"`
	// More: a scan stopped at the server's size bound; the rest begins
	// at Resume (read it with kv scan --rev).
	More   bool    `json:"more,omitempty"`
	Resume *string `json:"resume,omitempty"`
}

// printTxn prints a txn's outcome; ops are the parsed ops of the branch
// that ran.
func printTxn(out io.Writer, format string, res flotilla.TxnResult, ops []txnOpLine) error {
	if len(ops) != len(res.Results) {
		return fmt.Errorf("the txn at revision %d answered %d results for %d ops", res.Revision, len(res.Results), len(ops))
	}
	if format == "json" {
		j := jsonTxn{Succeeded: res.Succeeded, Revision: res.Revision, Results: []jsonTxnResult{}}
		for i, r := range res.Results {
			jr := jsonTxnResult{Op: ops[i].kind}
			switch {
			case r.Get != nil:
				jr.Found = &r.Get.Found
				if r.Get.Found {
					kv := newJSONKV(r.Get.KV)
					jr.KV = &kv
				}
			case r.Scan != nil:
				jr.KVs = []jsonKV{}
				for _, kv := range r.Scan.KVs {
					jr.KVs = append(jr.KVs, newJSONKV(kv))
				}
				if r.Scan.Resume != nil {
					jr.More = true
					s := textBytes(r.Scan.Resume)
					jr.Resume = &s
				}
			case r.Write != nil && ops[i].kind == "del":
				jr.Found = &r.Write.Found
			case r.Write != nil && ops[i].kind == "delrange":
				jr.Deleted = &r.Write.Deleted
			}
			j.Results = append(j.Results, jr)
		}
		return printJSON(out, j)
	}
	verdict := "SUCCESS"
	if !res.Succeeded {
		verdict = "FAILURE"
	}
	fmt.Fprintf(out, "%s (revision %d)\n", verdict, res.Revision)
	for i, r := range res.Results {
		fmt.Fprintln(out)
		switch {
		case r.Get != nil && r.Get.Found:
			fmt.Fprintf(out, "%s\t%s\n", textBytes(r.Get.KV.Key), textBytes(r.Get.KV.Value))
		case r.Get != nil:
			fmt.Fprintln(out, "not found")
		case r.Scan != nil:
			for _, kv := range r.Scan.KVs {
				fmt.Fprintf(out, "%s\t%s\n", textBytes(kv.Key), textBytes(kv.Value))
			}
			if r.Scan.Resume != nil {
				fmt.Fprintf(out, "(more from %s: kv scan --rev %d)\n", textBytes(r.Scan.Resume), res.Revision)
			}
		case ops[i].kind == "del" && r.Write.Found:
			fmt.Fprintln(out, "deleted")
		case ops[i].kind == "del":
			fmt.Fprintln(out, "not found")
		case ops[i].kind == "delrange":
			fmt.Fprintf(out, "deleted %d\n", r.Write.Deleted)
		default:
			fmt.Fprintln(out, "OK")
		}
	}
	return nil
}
