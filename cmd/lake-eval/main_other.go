//go:build !linux

package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "lake-eval: Linux only (eBPF block tracer)")
	os.Exit(2)
}
