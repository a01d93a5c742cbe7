package policy

// The shipped policies are compiled to BPF objects by bpf2go and the results
// (*_bpfel.go, *_bpfel.o) are committed, so building laked needs no clang.
// Only little-endian objects are generated (x86-64, arm64, ...). Regenerate
// with `go generate ./policy/` (needs clang >= 11; no libbpf headers needed).
// The ABI header, lake_policy.h, is lakelib/include's: one copy for the
// policies, laked's C clients and the kernel.

//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -target bpfel -no-global-types -go-package policy defaultPolicy bpf/default.c -- -I../lakelib/include -O2 -g -Wall -Werror
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -target bpfel -no-global-types -go-package policy costawarePolicy bpf/costaware.c -- -I../lakelib/include -O2 -g -Wall -Werror
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -target bpfel -no-global-types -go-package policy defaultSyscallPolicy bpf/default.c -- -I../lakelib/include -O2 -g -Wall -Werror -DLAKE_POLICY_SYSCALL
