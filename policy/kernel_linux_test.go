//go:build linux

package policy

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// probeBPF reports why this process cannot load and run a trivial raw_tp
// program, or nil if it can.
func probeBPF() error {
	if defaultSyscallSpec == nil {
		return errors.New("no BPF objects are built for this architecture")
	}
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Type:         ebpf.RawTracepoint,
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 1), asm.Return()},
		License:      "GPL",
	})
	if err != nil {
		return fmt.Errorf("BPF unavailable (needs root/CAP_BPF): %w", err)
	}
	defer prog.Close()
	k := &kernelProg{prog: prog, fd: uint32(prog.FD())}
	if v, err := k.run(&Context{}); err != nil || v != 1 {
		return fmt.Errorf("BPF_PROG_TEST_RUN unavailable: %v (ret %d)", err, v)
	}
	return nil
}

// requireBPF skips the test, with the reason, unless BPF works here.
func requireBPF(t testing.TB) {
	t.Helper()
	if err := probeBPF(); err != nil {
		t.Skip(err)
	}
}

// TestNewReportsMode runs everywhere: with BPF the engine must use the
// kernel, without it the fallback, saying why.
func TestNewReportsMode(t *testing.T) {
	e, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	st := e.Status()
	t.Logf("status: %+v", st)
	if probeBPF() == nil {
		if !st.Kernel || st.Note != "" {
			t.Errorf("BPF works but status is %+v", st)
		}
	} else if st.Kernel || !strings.Contains(st.Note, "pure-Go fallback") || !strings.Contains(st.Note, "load into kernel") {
		t.Errorf("no BPF but status is %+v", st)
	}
	runTable(t, e, ShippedDefault)
}

// kernelEngine returns an engine running the named shipped policy in the
// kernel, or the default policy built as a syscall program for "syscall".
func kernelEngine(t testing.TB, name string) *Engine {
	t.Helper()
	e, err := New(Options{Policy: ShippedDefault})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	if st := e.Status(); !st.Kernel || st.Note != "" {
		t.Fatalf("BPF works but the engine did not load it: %+v", st)
	}
	switch name {
	case ShippedDefault:
	case "syscall":
		spec, err := defaultSyscallSpec()
		if err != nil {
			t.Fatal(err)
		}
		if spec.Programs[ProgramName].Type != ebpf.Syscall {
			t.Fatalf("syscall object has type %s", spec.Programs[ProgramName].Type)
		}
		k, err := e.loadSpec(spec)
		if err != nil {
			t.Fatal(err)
		}
		e.mu.Lock()
		e.swap(&instance{name: "default-syscall", kernel: k, goFn: DefaultPolicy})
		e.mu.Unlock()
	default:
		if err := e.LoadShipped(name); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// TestKernelPoliciesTable loads each shipped policy into the kernel and checks
// its answers on the hand-computed tables.
func TestKernelPoliciesTable(t *testing.T) {
	requireBPF(t)
	for _, name := range []string{ShippedDefault, ShippedCostAware} {
		e := kernelEngine(t, name)
		if st := e.Status(); !st.Kernel || st.Active != name {
			t.Fatalf("status %+v", st)
		}
		runTable(t, e, name)
	}
	runTable(t, kernelEngine(t, "syscall"), ShippedDefault)
}

// TestKernelMatchesGo checks the kernel programs and their Go twins agree on
// random contexts and params.
func TestKernelMatchesGo(t *testing.T) {
	requireBPF(t)
	r := rand.New(rand.NewPCG(4, 2))
	for _, name := range []string{ShippedDefault, ShippedCostAware, "syscall"} {
		e := kernelEngine(t, name)
		fn := GoPolicy(name)
		if fn == nil {
			fn = DefaultPolicy
		}
		for round := 0; round < 20; round++ {
			p := randomParams(r)
			if round == 0 {
				p = DefaultParams()
			}
			if err := e.SetParams(p); err != nil {
				t.Fatal(err)
			}
			for i := 0; i < 100; i++ {
				c := randomContext(r)
				got, err := e.Decide(&c)
				if err != nil {
					t.Fatal(err)
				}
				if want := fn(&c, &p); got != want {
					t.Fatalf("%s: params %+v ctx %+v: kernel %+v, Go %+v", name, p, c, got, want)
				}
			}
		}
		if n := e.Counts(); n.CPU+n.GPU != 2000 || n.Errors != 0 || n.CPU == 0 || n.GPU == 0 {
			t.Errorf("%s: counts %+v", name, n)
		}
	}
}

// FuzzKernelMatchesGo extends TestKernelMatchesGo with fuzzed inputs.
func FuzzKernelMatchesGo(f *testing.F) {
	f.Add(uint32(32), uint32(0), uint64(0), uint64(0), uint32(32), uint32(80), uint64(0))
	f.Add(uint32(11), uint32(5), uint64(1000), uint64(100), uint32(32), uint32(80), uint64(10000))
	f.Fuzz(func(t *testing.T, batch, util uint32, cpuNs, gpuNs uint64, minBatch, maxUtil uint32, batchNs uint64) {
		requireBPF(t)
		p := Params{GPUMinBatch: minBatch, GPUMaxUtilPct: maxUtil % 101, GPUBatchNs: batchNs % (MaxGPUBatchNs + 1)}
		c := Context{BatchSize: batch, GPUUtilPct: util, CPUNsPerItem: cpuNs, GPUNsPerItem: gpuNs}
		for _, name := range []string{ShippedDefault, ShippedCostAware} {
			e := kernelEngine(t, name)
			if err := e.SetParams(p); err != nil {
				t.Fatal(err)
			}
			got, err := e.Decide(&c)
			if err != nil {
				t.Fatal(err)
			}
			if want := GoPolicy(name)(&c, &p); got != want {
				t.Fatalf("%s: kernel %+v, Go %+v", name, got, want)
			}
		}
	})
}

func TestKernelSwapUnderLoad(t *testing.T) {
	requireBPF(t)
	swapUnderLoad(t, Options{})
}

// compileC builds a BPF object from C source with clang, or skips.
func compileC(t *testing.T, src string) string {
	t.Helper()
	clang, err := exec.LookPath("clang")
	if err != nil {
		t.Skip("clang not found: needed to build test policy objects")
	}
	dir := t.TempDir()
	abs, err := filepath.Abs("bpf")
	if err != nil {
		t.Fatal(err)
	}
	inc, err := filepath.Abs("../lakelib/include")
	if err != nil {
		t.Fatal(err)
	}
	c := filepath.Join(dir, "p.c")
	if err := os.WriteFile(c, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	obj := filepath.Join(dir, "p.o")
	out, err := exec.Command(clang, "-O2", "-g", "-target", "bpf", "-I", abs, "-I", inc, "-c", c, "-o", obj).CombinedOutput()
	if err != nil {
		t.Fatalf("clang: %v\n%s", err, out)
	}
	return obj
}

const testPolicyPrologue = `#include "policy_common.h"
char LICENSE[] SEC("license") = "GPL";
`

// TestLoadFile loads user objects: good ones become active, bad ones are
// rejected with a clear error and the previous policy keeps answering.
func TestLoadFile(t *testing.T) {
	requireBPF(t)
	e := kernelEngine(t, ShippedDefault)

	// A valid custom policy: GPU for odd model ids, hint 7.
	good := compileC(t, testPolicyPrologue+`
SEC("raw_tp") int lake_decide(struct lake_policy_ctx *c) {
	return LAKE_DECISION(c->model_id & 1, 7);
}`)
	if err := e.LoadFile(good); err != nil {
		t.Fatal(err)
	}
	if e.Active() != "file:"+good || !e.Status().Kernel {
		t.Fatalf("status %+v", e.Status())
	}
	for id, want := range []Decision{{CPU, 7}, {GPU, 7}} {
		if d, err := e.Decide(&Context{ModelID: uint32(id)}); err != nil || d != want {
			t.Errorf("custom policy model %d: %+v %v, want %+v", id, d, err, want)
		}
	}

	// An invalid side (always, or only for some batches) is refused at
	// load, naming the problem, and the previous policy stays.
	for _, src := range []string{
		`SEC("raw_tp") int lake_decide(struct lake_policy_ctx *c) { return 5; }`,
		`SEC("raw_tp") int lake_decide(struct lake_policy_ctx *c) { return c->batch_size > 1000 ? 2 : 0; }`,
	} {
		badRet := compileC(t, testPolicyPrologue+src)
		err := e.LoadFile(badRet)
		if !errors.Is(err, ErrBadDecision) || !strings.Contains(err.Error(), "trial batch") {
			t.Errorf("policy returning an invalid side: load error %v, want ErrBadDecision on a trial batch", err)
		}
		if e.Active() != "file:"+good {
			t.Errorf("refused policy replaced the active one: %s", e.Active())
		}
	}
	if err := e.LoadShipped(ShippedDefault); err != nil {
		t.Fatal(err)
	}

	rejects := []struct {
		name, src, want string
		verifier        bool
	}{
		{"wrong program name", testPolicyPrologue + `
SEC("raw_tp") int decide(struct lake_policy_ctx *c) { return lake_params.max_entries ? 0 : 1; }`,
			`no program named "lake_decide"`, false},
		{"wrong program type", testPolicyPrologue + `
SEC("xdp") int lake_decide(void *c) { return 0; }`, "has type XDP", false},
		{"missing map", `#include "lake_policy.h"
#define SEC(n) __attribute__((section(n), used))
char LICENSE[] SEC("license") = "GPL";
SEC("raw_tp") int lake_decide(struct lake_policy_ctx *c) { return 0; }`, `no map named "lake_params"`, false},
		{"wrong key size", `#include "policy_common.h"
char LICENSE[] SEC("license") = "GPL";
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, __u64); __type(value, struct lake_policy_params); } lake_params2 SEC(".maps");
`, "", false},
		{"wrong value size", `#define lake_params lake_params_unused
#include "policy_common.h"
#undef lake_params
char LICENSE[] SEC("license") = "GPL";
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, __u32); __type(value, __u64); } lake_params SEC(".maps");
SEC("raw_tp") int lake_decide(struct lake_policy_ctx *c) { return 0; }`, "key/value size 4/8", false},
		{"verifier: ctx out of bounds", testPolicyPrologue + `
SEC("raw_tp") int lake_decide(struct lake_policy_ctx *c) { return ((__u64 *)c)[20] & 1; }`,
			"invalid bpf_context access", true},
		{"verifier: unbounded loop", testPolicyPrologue + `
SEC("raw_tp") int lake_decide(struct lake_policy_ctx *c) {
	volatile __u32 n = c->batch_size;
	while (n != 7) n = n * 3 + 1;
	return 0;
}`, "", true},
	}
	for _, tc := range rejects {
		if tc.name == "wrong key size" {
			// Build it as a key-size problem on the real name.
			tc.src = `#define lake_params lake_params_unused
#include "policy_common.h"
#undef lake_params
char LICENSE[] SEC("license") = "GPL";
struct { __uint(type, BPF_MAP_TYPE_ARRAY); __uint(max_entries, 1); __type(key, __u64); __type(value, struct lake_policy_params); } lake_params SEC(".maps");
SEC("raw_tp") int lake_decide(struct lake_policy_ctx *c) { return 0; }`
			tc.want = "key/value size 8/32"
		}
		obj := compileC(t, tc.src)
		err := e.LoadFile(obj)
		t.Logf("%s: %v", tc.name, err)
		var le *LoadError
		if !errors.As(err, &le) {
			t.Errorf("%s: error %v, want *LoadError", tc.name, err)
			continue
		}
		if le.Kept != ShippedDefault || !strings.Contains(err.Error(), "file:"+obj+" rejected, keeping default") {
			t.Errorf("%s: %v", tc.name, err)
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q does not contain %q", tc.name, err, tc.want)
		}
		if tc.verifier {
			if len(le.VerifierLog()) == 0 || !strings.Contains(err.Error(), "verifier log:") {
				t.Errorf("%s: no verifier log in %v", tc.name, err)
			}
			if n := strings.Count(err.Error(), "\n"); n > maxLogLines+3 {
				t.Errorf("%s: error has %d lines", tc.name, n)
			}
		} else if !errors.Is(err, ErrBadObject) {
			t.Errorf("%s: %v does not wrap ErrBadObject", tc.name, err)
		}
		if e.Active() != ShippedDefault {
			t.Fatalf("%s: active policy changed to %q", tc.name, e.Active())
		}
		runTable(t, e, ShippedDefault)
	}
}

// TestNewWithFile starts an engine on a user object, and on a broken one.
func TestNewWithFile(t *testing.T) {
	requireBPF(t)
	e, err := New(Options{File: "costawarepolicy_bpfel.o"})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if st := e.Status(); st.Active != "file:costawarepolicy_bpfel.o" || !st.Kernel || st.Note != "" {
		t.Fatalf("status %+v", st)
	}
	runTable(t, e, ShippedCostAware)

	broken := filepath.Join(t.TempDir(), "broken.o")
	if err := os.WriteFile(broken, []byte("\x7fELF garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	e2, err := New(Options{Policy: ShippedCostAware, File: broken})
	if err != nil {
		t.Fatal(err)
	}
	defer e2.Close()
	if st := e2.Status(); st.Active != ShippedCostAware || !st.Kernel || !strings.Contains(st.Note, "bad policy object") {
		t.Fatalf("status %+v", st)
	}
}

// TestReadmeExample compiles and loads the custom policy shown in
// bpf/README.md, so the documentation stays true.
func TestReadmeExample(t *testing.T) {
	requireBPF(t)
	md, err := os.ReadFile("bpf/README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(md), "```c\n")
	src, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("no C block in bpf/README.md")
	}
	e := kernelEngine(t, ShippedDefault)
	if err := e.LoadFile(compileC(t, src)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		c    Context
		want Decision
	}{
		{Context{ModelID: 7, BatchSize: 8}, gpu},
		{Context{ModelID: 7, BatchSize: 7}, cpu},
		{Context{ModelID: 6, BatchSize: 100}, cpu},
	} {
		if d, err := e.Decide(&tc.c); err != nil || d != tc.want {
			t.Errorf("%+v: %+v %v, want %+v", tc.c, d, err, tc.want)
		}
	}
}
