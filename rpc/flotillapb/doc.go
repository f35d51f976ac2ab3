// Copyright 2026 The Flotilla Authors. All rights reserved.

// Package flotillapb holds Flotilla's .proto files and the code generated
// from them (`make proto`), and the error method of Error. It is a leaf any
// package may import.
package flotillapb
