//go:build cuda

package main

import (
	"testing"

	"github.com/lakeos/lake/laked/backend/cuda"
)

// fakeInject sets one of the fake CUDA driver's injections
// (cuda.FakeDriverControl) until the test ends; an empty val clears it.
func fakeInject(t *testing.T, key, val string) {
	t.Helper()
	if err := cuda.FakeDriverControl(key, val); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cuda.FakeDriverControl(key, "") })
}
