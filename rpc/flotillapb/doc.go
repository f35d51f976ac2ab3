// Copyright 2026 The Flotilla Authors. All rights reserved.

// Package flotillapb will hold Flotilla's .proto files and the code
// generated from them (`make proto`). It is a leaf any package may import.
//
// Not built yet: see the cluster issue.
package flotillapb
