//go:build !cuda

package main

import "testing"

// fakeInject: without the cuda build there is no GPU backend, and no
// fake driver to inject faults into.
func fakeInject(t *testing.T, key, val string) {
	t.Helper()
	t.Skip("fault injection needs the cuda build and the fake CUDA driver")
}
