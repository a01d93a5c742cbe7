package blktrace

// The tracer is compiled to a BPF object by bpf2go and the results
// (blktrace_bpfel.go, blktrace_bpfel.o) are committed, so building needs no
// clang. Regenerate with `go generate ./eval/blktrace/` (clang >= 11; no
// libbpf headers or vmlinux.h needed).

//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -target bpfel -no-global-types -go-package blktrace blktrace bpf/blktrace.c -- -O2 -g -Wall -Werror
