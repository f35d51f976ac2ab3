// Copyright 2026 The Flotilla Authors. All rights reserved.

// Package layout holds the tests that keep Flotilla's import graph as
// DESIGN.md draws it ("Layout and dependency direction"): imports flow
// downward only, siblings do not import each other, and a client program
// links no storage engine, no raft and no node package. It has no code of
// its own; see layout_test.go (Pebble's TestForbiddenImports is the model).
package layout
