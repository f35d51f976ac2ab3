// Copyright 2026 The Flotilla Authors. All rights reserved.

// Command client is the smallest Flotilla client program: it puts a key,
// reads it back, scans a prefix and increments a counter with a
// transaction that holds only if nobody wrote it since it was read. It imports only the root package, so
// it links no storage engine and no raft (internal/layout checks this).
//
//	make run                                    # a local, secure cluster, in another terminal
//	FLOTILLA_CERTS_DIR=.demo-certs go run ./examples/client 127.0.0.1:7400
//
// With FLOTILLA_CERTS_DIR set it connects securely with the certificates
// there (ca.crt and client.root.crt/.key); without it, in plaintext.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/flotilladb/flotilla"
)

func main() {
	endpoints := os.Args[1:]
	if len(endpoints) == 0 {
		endpoints = []string{"127.0.0.1:7400"}
	}
	if err := run(endpoints); err != nil {
		fmt.Fprintln(os.Stderr, "client:", err)
		os.Exit(1)
	}
}

func run(endpoints []string) error {
	cfg := flotilla.Config{Endpoints: endpoints, DialTimeout: 2 * time.Second}
	if dir := os.Getenv("FLOTILLA_CERTS_DIR"); dir != "" {
		tlsConfig, err := flotilla.LoadClientTLS(dir, "root")
		if err != nil {
			return err
		}
		cfg.TLS = tlsConfig
	}
	c, err := flotilla.New(cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	if err := c.Put(ctx, []byte("example/hello"), []byte("world")); err != nil {
		if flotilla.NotApplied(err) {
			return fmt.Errorf("put was not applied, safe to retry: %w", err)
		}
		return err
	}
	v, err := c.Get(ctx, []byte("example/hello"))
	if errors.Is(err, flotilla.ErrKeyNotFound) {
		return errors.New("the key vanished")
	} else if err != nil {
		return err
	}
	fmt.Printf("example/hello = %s\n", v)
	kvs, err := c.Scan(ctx, []byte("example/"), []byte("example0"), flotilla.ScanOptions{Limit: 10})
	if err != nil {
		return err
	}
	for _, kv := range kvs {
		fmt.Printf("%s\t%s\n", kv.Key, kv.Value)
	}
	return increment(ctx, c, []byte("example/counter"))
}

// increment adds one to the decimal counter at key: it reads the counter
// and writes the new value only if its mod revision is still the one read
// (a missing key has mod revision 0), trying again if another client got
// there first.
func increment(ctx context.Context, c *flotilla.Client, key []byte) error {
	for {
		cur, err := c.GetAt(ctx, key, 0)
		if err != nil {
			return err
		}
		n := 0
		if cur.Found {
			if n, err = strconv.Atoi(string(cur.KV.Value)); err != nil {
				return fmt.Errorf("%s holds %q, not a number", key, cur.KV.Value)
			}
		}
		res, err := c.Txn().
			If(flotilla.Compare(flotilla.ModRevision(key), "=", cur.KV.ModRevision)).
			Then(flotilla.PutOp(key, []byte(strconv.Itoa(n+1)))).
			Commit(ctx)
		if err != nil {
			return err
		}
		if res.Succeeded {
			fmt.Printf("%s = %d at revision %d\n", key, n+1, res.Revision)
			return nil
		}
	}
}
