//go:build 386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64 || wasm

package policy

func init() {
	defaultSyscallSpec = loadDefaultSyscallPolicy
	shipped[ShippedDefault].spec = loadDefaultPolicy
	shipped[ShippedCostAware].spec = loadCostawarePolicy
}
