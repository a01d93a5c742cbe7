package policy

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"os"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
)

// decisionCase is one row of the policy tables shared by the Go and kernel
// tests.
type decisionCase struct {
	name   string
	params Params
	ctx    Context
	want   Decision
}

func params(minBatch, maxUtil, minMem uint32, batchNs uint64) Params {
	return Params{GPUMinBatch: minBatch, GPUMaxUtilPct: maxUtil, GPUMinMemMiB: minMem, GPUBatchNs: batchNs}
}

var (
	cpu = Decision{Side: CPU}
	gpu = Decision{Side: GPU}
)

func cpuHint(h uint32) Decision { return Decision{Side: CPU, BatchHint: h} }

// shared returns p with KernelGPUSharePct set.
func shared(p Params, pct uint32) Params { p.KernelGPUSharePct = pct; return p }

// policyTables holds, per shipped policy, contexts with hand-computed answers.
var policyTables = map[string][]decisionCase{
	ShippedDefault: {
		{"small batch", DefaultParams(), Context{BatchSize: DefaultGPUMinBatch - 1}, cpu},
		{"threshold batch", DefaultParams(), Context{BatchSize: DefaultGPUMinBatch}, gpu},
		{"empty batch", DefaultParams(), Context{}, cpu},
		{"util just below cap", DefaultParams(), Context{BatchSize: DefaultGPUMinBatch, GPUUtilPct: 79}, gpu},
		{"util at cap", DefaultParams(), Context{BatchSize: DefaultGPUMinBatch, GPUUtilPct: 80}, cpu},
		{"busy gpu big batch", DefaultParams(), Context{BatchSize: 4096, GPUUtilPct: 100}, cpu},
		{"latencies ignored", DefaultParams(), Context{BatchSize: 8, CPUNsPerItem: 1e9, GPUNsPerItem: 1}, cpu},
		{"custom threshold below", params(8, 80, 0, 0), Context{BatchSize: 7}, cpu},
		{"custom threshold at", params(8, 80, 0, 0), Context{BatchSize: 8, ModelID: 3, QueueDepth: 100}, gpu},
		{"min batch 0 empty batch", params(0, 50, 0, 0), Context{GPUUtilPct: 49}, gpu},
		{"util cap 0 never gpu", params(0, 0, 0, 0), Context{BatchSize: 1000}, cpu},
		{"short of memory", params(32, 80, 1024, 0), Context{BatchSize: 64, GPUMemFreeMiB: 1023}, cpu},
		{"enough memory", params(32, 80, 1024, 0), Context{BatchSize: 64, GPUMemFreeMiB: 1024}, gpu},
		// The kernel's reserved share: userspace fills the GPU (95 %),
		// laked itself uses 10 %.
		{"kernel batch within its share", shared(DefaultParams(), 50), Context{BatchSize: DefaultGPUMinBatch, GPUUtilPct: 95, GPUSelfUtilPct: 10, KernelItems: 1, GPUOtherProcs: 3}, gpu},
		{"userspace batch same load", shared(DefaultParams(), 50), Context{BatchSize: DefaultGPUMinBatch, GPUUtilPct: 95, GPUSelfUtilPct: 10, GPUOtherProcs: 3}, cpu},
		{"kernel batch no share", DefaultParams(), Context{BatchSize: DefaultGPUMinBatch, GPUUtilPct: 95, GPUSelfUtilPct: 10, KernelItems: DefaultGPUMinBatch}, cpu},
		{"kernel batch share used up", shared(DefaultParams(), 50), Context{BatchSize: DefaultGPUMinBatch, GPUUtilPct: 95, GPUSelfUtilPct: 50, KernelItems: DefaultGPUMinBatch}, cpu},
		{"kernel batch self over cap", shared(params(32, 40, 0, 0), 60), Context{BatchSize: 64, GPUUtilPct: 95, GPUSelfUtilPct: 45, KernelItems: 64}, cpu},
		{"kernel batch self above total", shared(DefaultParams(), 50), Context{BatchSize: DefaultGPUMinBatch, GPUUtilPct: 20, GPUSelfUtilPct: 90, KernelItems: DefaultGPUMinBatch}, gpu},
		{"kernel batch too small", shared(DefaultParams(), 50), Context{BatchSize: DefaultGPUMinBatch - 1, GPUUtilPct: 95, GPUSelfUtilPct: 0, KernelItems: DefaultGPUMinBatch - 1}, cpu},
		{"max values", params(32, 80, 0, 0), Context{^uint32(0), ^uint32(0), ^uint32(0), 0, ^uint32(0), ^uint32(0), ^uint64(0), ^uint64(0), ^uint32(0), ^uint32(0), ^uint32(0), 0}, gpu},
	},
	ShippedCostAware: {
		{"unknown latencies large batch", params(32, 80, 0, 10000), Context{BatchSize: 40, GPUUtilPct: 10}, gpu},
		{"unknown latencies small batch", params(32, 80, 0, 10000), Context{BatchSize: 10}, cpu},
		{"unknown gpu latency", params(32, 80, 0, 10000), Context{BatchSize: 40, CPUNsPerItem: 1}, gpu},
		{"gpu not yet worth it", params(32, 80, 0, 10000), Context{BatchSize: 10, CPUNsPerItem: 1000, GPUNsPerItem: 100}, cpuHint(12)},
		{"just below break-even", params(32, 80, 0, 10000), Context{BatchSize: 11, CPUNsPerItem: 1000, GPUNsPerItem: 100}, cpuHint(12)},
		{"at break-even", params(32, 80, 0, 10000), Context{BatchSize: 12, CPUNsPerItem: 1000, GPUNsPerItem: 100}, gpu},
		{"small batch cheap gpu", params(32, 80, 0, 0), Context{BatchSize: 2, CPUNsPerItem: 1000, GPUNsPerItem: 100}, gpu},
		{"gpu slower per item", params(32, 80, 0, 0), Context{BatchSize: 1000, CPUNsPerItem: 100, GPUNsPerItem: 1000}, cpu},
		{"tie goes to cpu", params(32, 80, 0, 0), Context{BatchSize: 64, CPUNsPerItem: 500, GPUNsPerItem: 500}, cpu},
		{"busy gpu", params(32, 80, 0, 0), Context{BatchSize: 64, GPUUtilPct: 90, CPUNsPerItem: 1000, GPUNsPerItem: 1}, cpu},
		{"busy gpu unknown latencies", params(32, 80, 0, 0), Context{BatchSize: 64, GPUUtilPct: 80}, cpu},
		{"short of memory", params(32, 80, 512, 0), Context{BatchSize: 64, GPUMemFreeMiB: 100, CPUNsPerItem: 1000, GPUNsPerItem: 1}, cpu},
		{"empty batch", params(32, 80, 0, 100), Context{CPUNsPerItem: 3, GPUNsPerItem: 1}, cpuHint(51)},
		{"clamped latencies", params(32, 80, 0, 10000), Context{BatchSize: 1, CPUNsPerItem: 1 << 40, GPUNsPerItem: 1}, gpu},
		{"hint clamped", params(32, 80, 0, MaxGPUBatchNs), Context{BatchSize: 1, CPUNsPerItem: 2, GPUNsPerItem: 1}, cpuHint(MaxBatchHint)},
		{"kernel batch within its share", shared(params(32, 80, 0, 0), 30), Context{BatchSize: 64, GPUUtilPct: 100, GPUSelfUtilPct: 20, KernelItems: 2, CPUNsPerItem: 1000, GPUNsPerItem: 1}, gpu},
		{"userspace batch same load", shared(params(32, 80, 0, 0), 30), Context{BatchSize: 64, GPUUtilPct: 100, GPUSelfUtilPct: 20, CPUNsPerItem: 1000, GPUNsPerItem: 1}, cpu},
		{"max values", params(32, 80, 0, MaxGPUBatchNs), Context{^uint32(0), ^uint32(0), ^uint32(0), 0, ^uint32(0), ^uint32(0), ^uint64(0), ^uint64(0), ^uint32(0), ^uint32(0), ^uint32(0), 0}, cpu},
	},
}

func TestGoPoliciesTable(t *testing.T) {
	for name, table := range policyTables {
		fn := GoPolicy(name)
		if fn == nil {
			t.Fatalf("GoPolicy(%q) = nil", name)
		}
		for _, tc := range table {
			p := tc.params
			if got := fn(&tc.ctx, &p); got != tc.want {
				t.Errorf("%s/%s: got %+v, want %+v", name, tc.name, got, tc.want)
			}
		}
	}
	if GoPolicy("nope") != nil {
		t.Error("GoPolicy of an unknown name is not nil")
	}
	if got := Shipped(); !reflect.DeepEqual(got, []string{ShippedCostAware, ShippedDefault}) {
		t.Errorf("Shipped() = %v", got)
	}
}

func TestDecisionEncoding(t *testing.T) {
	for _, d := range []Decision{cpu, gpu, cpuHint(1), {Side: GPU, BatchHint: MaxBatchHint}} {
		got, err := DecodeDecision(d.Encode())
		if err != nil || got != d {
			t.Errorf("round trip of %+v: got %+v, %v", d, got, err)
		}
	}
	if v := (Decision{Side: GPU, BatchHint: 12}).Encode(); v != 12<<8|1 {
		t.Errorf("Encode = %#x, want %#x", v, 12<<8|1)
	}
	for _, v := range []uint32{2, 0xff, 0x1ff, 0xffffffff} {
		if _, err := DecodeDecision(v); !errors.Is(err, ErrBadDecision) {
			t.Errorf("DecodeDecision(%#x) error = %v, want ErrBadDecision", v, err)
		}
	}
	if CPU.String() != "cpu" || GPU.String() != "gpu" || Side(7).String() != "side(7)" {
		t.Error("Side.String wrong")
	}
}

func TestParamsValidate(t *testing.T) {
	if err := DefaultParams().Validate(); err != nil {
		t.Fatal(err)
	}
	if DefaultParams().GPUMinBatch != 256 || DefaultParams().GPUMaxUtilPct != 80 {
		t.Errorf("defaults = %+v", DefaultParams())
	}
	for _, p := range []Params{params(1, 101, 0, 0), params(1, 50, 0, MaxGPUBatchNs+1), {GPUMaxUtilPct: 50, KernelGPUSharePct: 101}} {
		if err := p.Validate(); !errors.Is(err, ErrInvalidParams) {
			t.Errorf("Validate(%+v) = %v, want ErrInvalidParams", p, err)
		}
	}
}

// TestWireEncoding checks the explicit little-endian encoders against the
// in-memory layout the kernel path passes to bpf(2).
func TestWireEncoding(t *testing.T) {
	c := Context{1, 2, 3, 4, 5, 6, 0x0807060504030201, 0x100f0e0d0c0b0a09, 7, 8, 9, 10}
	b := c.AppendBinary(nil)
	if len(b) != ContextSize || unsafe.Sizeof(c) != ContextSize {
		t.Fatalf("context sizes: wire %d, memory %d, want %d", len(b), unsafe.Sizeof(c), ContextSize)
	}
	mem := unsafe.Slice((*byte)(unsafe.Pointer(&c)), ContextSize)
	if !bytes.Equal(b, mem) {
		t.Errorf("wire form %x differs from memory %x", b, mem)
	}
	p := params(7, 8, 9, 0x1122334455)
	p.KernelGPUSharePct = 10
	pb := p.AppendBinary(nil)
	if len(pb) != ParamsSize || unsafe.Sizeof(p) != ParamsSize {
		t.Fatalf("params sizes: wire %d, memory %d, want %d", len(pb), unsafe.Sizeof(p), ParamsSize)
	}
	want := []byte{7, 0, 0, 0, 8, 0, 0, 0, 9, 0, 0, 0, 10, 0, 0, 0, 0x55, 0x44, 0x33, 0x22, 0x11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}
	if !bytes.Equal(pb, want) {
		t.Errorf("params wire %x, want %x", pb, want)
	}
}

// TestLayoutMatchesBTF compares the Go structs with the C structs as clang
// laid them out in the committed objects (from their BTF).
func TestLayoutMatchesBTF(t *testing.T) {
	if defaultSyscallSpec == nil {
		t.Skip("no BPF objects are built for this architecture")
	}
	for name, sp := range shipped {
		spec, err := sp.spec()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		checkBTFLayout(t, spec.Types, "lake_policy_ctx", reflect.TypeFor[Context](), []string{
			"model_id", "batch_size", "queue_depth", "gpu_util_pct", "gpu_mem_free_mib", "cpu_util_pct", "cpu_ns_per_item", "gpu_ns_per_item",
			"gpu_other_procs", "gpu_self_util_pct", "kernel_items", "reserved"})
		checkBTFLayout(t, spec.Types, "lake_policy_params", reflect.TypeFor[Params](), []string{
			"gpu_min_batch", "gpu_max_util_pct", "gpu_min_mem_mib", "kernel_gpu_share_pct", "gpu_batch_ns", "reserved2"})
	}
}

func checkBTFLayout(t *testing.T, types *btf.Spec, cname string, gotype reflect.Type, cfields []string) {
	t.Helper()
	var st *btf.Struct
	if err := types.TypeByName(cname, &st); err != nil {
		t.Fatalf("BTF struct %s: %v", cname, err)
	}
	if int(st.Size) != int(gotype.Size()) {
		t.Errorf("%s: C size %d, Go size %d", cname, st.Size, gotype.Size())
	}
	if len(st.Members) != gotype.NumField() || len(cfields) != len(st.Members) {
		t.Fatalf("%s: C has %d members, Go %d fields", cname, len(st.Members), gotype.NumField())
	}
	for i, m := range st.Members {
		f := gotype.Field(i)
		size, err := btf.Sizeof(m.Type)
		if err != nil {
			t.Fatal(err)
		}
		if m.Name != cfields[i] || uint32(m.Offset.Bytes()) != uint32(f.Offset) || uintptr(size) != f.Type.Size() {
			t.Errorf("%s member %d: C %s@%d (%d bytes), Go %s@%d (%d bytes), want C name %s",
				cname, i, m.Name, m.Offset.Bytes(), size, f.Name, f.Offset, f.Type.Size(), cfields[i])
		}
	}
}

func TestParseObjectShipped(t *testing.T) {
	requireObjects(t)
	for _, o := range []string{"defaultpolicy_bpfel.o", "costawarepolicy_bpfel.o", "defaultsyscallpolicy_bpfel.o"} {
		data, err := os.ReadFile(o)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ParseObject(data); err != nil {
			t.Errorf("%s: %v", o, err)
		}
	}
}

// requireObjects skips tests of the committed little-endian objects where
// they are not built.
func requireObjects(t *testing.T) {
	if defaultSyscallSpec == nil {
		t.Skip("no BPF objects are built for this architecture (little-endian only)")
	}
}

// shippedObject returns the bytes of the committed default policy object.
func shippedObject(t testing.TB) []byte {
	data, err := os.ReadFile("defaultpolicy_bpfel.o")
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestParseObjectRejects feeds broken objects and checks each error names
// the problem. Name changes are made by patching the string tables.
func TestParseObjectRejects(t *testing.T) {
	requireObjects(t)
	good := shippedObject(t)
	patch := func(old, new string) []byte {
		if len(old) != len(new) {
			t.Fatal("patch must keep lengths")
		}
		if !bytes.Contains(good, []byte(old)) {
			t.Fatalf("object has no %q", old)
		}
		return bytes.ReplaceAll(good, []byte(old), []byte(new))
	}
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "parse ELF"},
		{"garbage", []byte("this is not an ELF file at all, just text"), "parse ELF"},
		{"truncated header", good[:32], "parse ELF"},
		{"truncated body", good[:len(good)/2], "parse ELF"},
		{"wrong program name", patch("lake_decide\x00", "lake_choose\x00"), `no program named "lake_decide"`},
		{"wrong program type", patch("raw_tp\x00", "xdp\x00\x00\x00\x00"), "has type XDP"},
		{"missing map", patch("lake_params\x00", "lake_paramz\x00"), `no map named "lake_params"`},
	}
	for _, tc := range cases {
		_, err := ParseObject(tc.data)
		if !errors.Is(err, ErrBadObject) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want ErrBadObject containing %q", tc.name, err, tc.want)
		}
	}
}

// TestCheckSpecRejects covers map shapes that need a different C definition.
func TestCheckSpecRejects(t *testing.T) {
	requireObjects(t)
	base, err := ParseObject(shippedObject(t))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		mutate func(*ebpf.CollectionSpec)
		want   string
	}{
		{"key size", func(s *ebpf.CollectionSpec) { s.Maps[ParamsMapName].KeySize = 8 }, "key/value size 8/32"},
		{"value size", func(s *ebpf.CollectionSpec) { s.Maps[ParamsMapName].ValueSize = 16 }, "key/value size 4/16"},
		{"map type", func(s *ebpf.CollectionSpec) { s.Maps[ParamsMapName].Type = ebpf.Hash }, "has type Hash"},
		{"no entries", func(s *ebpf.CollectionSpec) { s.Maps[ParamsMapName].MaxEntries = 0 }, "no entries"},
		{"program type", func(s *ebpf.CollectionSpec) { s.Programs[ProgramName].Type = ebpf.Kprobe }, "has type Kprobe"},
		{"byte order", func(s *ebpf.CollectionSpec) { s.ByteOrder = nil }, "byte order"},
	}
	for _, tc := range cases {
		s := base.Copy()
		tc.mutate(s)
		if _, err := checkSpec(s); !errors.Is(err, ErrBadObject) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want ErrBadObject containing %q", tc.name, err, tc.want)
		}
	}
}

func TestReadObjectLimits(t *testing.T) {
	if _, err := readObject(t.TempDir() + "/missing.o"); err == nil || !strings.Contains(err.Error(), "open policy object") {
		t.Errorf("missing file: %v", err)
	}
	big := t.TempDir() + "/big.o"
	f, err := os.Create(big)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(MaxObjectSize + 1); err != nil { // sparse: cheap
		t.Fatal(err)
	}
	f.Close()
	if _, err := readObject(big); !errors.Is(err, ErrBadObject) {
		t.Errorf("oversized file: %v", err)
	}
	// Not regular files: refused at once (a FIFO without a writer would
	// block the open, /dev/zero never ends).
	fifo := t.TempDir() + "/fifo"
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/dev/zero", fifo, t.TempDir()} {
		if _, err := readObject(p); !errors.Is(err, ErrBadObject) || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("%s: %v", p, err)
		}
	}
}

// FuzzParseObject: any bytes give a spec or an error, never a panic, and an
// accepted spec has what laked needs.
func FuzzParseObject(f *testing.F) {
	f.Add(shippedObject(f))
	f.Fuzz(func(t *testing.T, data []byte) {
		spec, err := ParseObject(data)
		if err != nil {
			if !errors.Is(err, ErrBadObject) {
				t.Fatalf("error does not wrap ErrBadObject: %v", err)
			}
			return
		}
		if spec.Programs[ProgramName] == nil || spec.Maps[ParamsMapName] == nil {
			t.Fatal("accepted object lacks program or map")
		}
	})
}

// FuzzDecodeDecision: decoding never panics and round-trips valid values.
func FuzzDecodeDecision(f *testing.F) {
	f.Add(uint32(0))
	f.Add(uint32(1 | 12<<8))
	f.Add(uint32(2))
	f.Fuzz(func(t *testing.T, v uint32) {
		d, err := DecodeDecision(v)
		if err != nil {
			if v&0xff <= 1 {
				t.Fatalf("valid value %#x rejected: %v", v, err)
			}
			return
		}
		if d.Encode() != v {
			t.Fatalf("%#x decodes to %+v which encodes to %#x", v, d, d.Encode())
		}
	})
}

func TestEngineFallback(t *testing.T) {
	e, err := New(Options{DisableBPF: true})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	st := e.Status()
	if st.Kernel || st.Active != ShippedDefault || !strings.Contains(st.Note, "pure-Go fallback") {
		t.Fatalf("status %+v", st)
	}
	runTable(t, e, ShippedDefault)
	if err := e.LoadShipped(ShippedCostAware); err != nil {
		t.Fatal(err)
	}
	if e.Active() != ShippedCostAware {
		t.Fatalf("active %q", e.Active())
	}
	runTable(t, e, ShippedCostAware)
	err = e.LoadFile("defaultpolicy_bpfel.o")
	var le *LoadError
	if !errors.Is(err, ErrNoBPF) || !errors.As(err, &le) || le.Kept != ShippedCostAware {
		t.Errorf("LoadFile without BPF: %v", err)
	}
	if e.Active() != ShippedCostAware {
		t.Errorf("active after failed load: %q", e.Active())
	}
	if d, err := e.Decide(nil); err == nil || d != cpu {
		t.Errorf("Decide(nil) = %+v, %v", d, err)
	}
	if err := e.LoadShipped("nope"); err == nil || !strings.Contains(err.Error(), "unknown shipped policy") {
		t.Errorf("LoadShipped(nope): %v", err)
	}
}

func TestEngineOptions(t *testing.T) {
	if _, err := New(Options{Policy: "nope", DisableBPF: true}); err == nil {
		t.Error("unknown policy accepted")
	}
	bad := params(1, 200, 0, 0)
	if _, err := New(Options{Params: &bad, DisableBPF: true}); !errors.Is(err, ErrInvalidParams) {
		t.Errorf("bad params: %v", err)
	}
	e, err := New(Options{DisableBPF: true, File: "/nonexistent/policy.o"})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if e.Active() != ShippedDefault || !strings.Contains(e.Status().Note, "file:/nonexistent/policy.o rejected") {
		t.Errorf("status %+v", e.Status())
	}
}

// runTable checks e answers the named policy's table, setting each row's
// params, and that the per-side counters follow.
func runTable(t *testing.T, e *Engine, name string) {
	t.Helper()
	before := e.Counts()
	var nCPU, nGPU uint64
	for _, tc := range policyTables[name] {
		if err := e.SetParams(tc.params); err != nil {
			t.Fatal(err)
		}
		c := tc.ctx
		got, err := e.Decide(&c)
		if err != nil {
			t.Fatalf("%s/%s: %v", name, tc.name, err)
		}
		if got != tc.want {
			t.Errorf("%s/%s (%s): got %+v, want %+v", name, tc.name, e.Active(), got, tc.want)
		}
		if c != tc.ctx {
			t.Errorf("%s/%s: Decide changed the context", name, tc.name)
		}
		if tc.want.Side == GPU {
			nGPU++
		} else {
			nCPU++
		}
	}
	after := e.Counts()
	if after.CPU-before.CPU != nCPU || after.GPU-before.GPU != nGPU || after.Errors != before.Errors {
		t.Errorf("counts went from %+v to %+v, want +%d cpu +%d gpu", before, after, nCPU, nGPU)
	}
}

func TestEngineClose(t *testing.T) {
	e, err := New(Options{DisableBPF: true})
	if err != nil {
		t.Fatal(err)
	}
	in := e.cur.Load()
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if !in.closed.Load() {
		t.Error("instance not closed")
	}
	d, err := e.Decide(&Context{BatchSize: DefaultGPUMinBatch})
	if !errors.Is(err, ErrClosed) || d != gpu {
		t.Errorf("Decide after Close: %+v, %v", d, err)
	}
	if err := e.SetParams(DefaultParams()); !errors.Is(err, ErrClosed) {
		t.Errorf("SetParams after Close: %v", err)
	}
	if err := e.LoadShipped(ShippedDefault); !errors.Is(err, ErrClosed) {
		t.Errorf("LoadShipped after Close: %v", err)
	}
	if e.Active() != "" {
		t.Errorf("Active after Close = %q", e.Active())
	}
}

// TestInstanceRetire checks an instance in use is closed by its last user,
// not by the swap.
func TestInstanceRetire(t *testing.T) {
	in := &instance{name: "x", goFn: DefaultPolicy}
	if !in.acquire() {
		t.Fatal("fresh instance refused")
	}
	in.retire()
	if in.closed.Load() {
		t.Fatal("closed while in use")
	}
	if in.acquire() {
		t.Fatal("retired instance acquired")
	}
	in.release()
	if !in.closed.Load() {
		t.Fatal("not closed by last user")
	}
}

// TestSwapUnderLoad swaps policies while goroutines decide; every decision
// must come from one of the two policies and none may fail.
func TestSwapUnderLoad(t *testing.T) {
	swapUnderLoad(t, Options{DisableBPF: true})
}

func swapUnderLoad(t *testing.T, opts Options) {
	e, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	p := params(16, 80, 0, 1000)
	if err := e.SetParams(p); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 4)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, 1))
			for {
				select {
				case <-stop:
					return
				default:
				}
				c := randomContext(r)
				d, err := e.Decide(&c)
				if err != nil {
					errs <- err
					return
				}
				if d != DefaultPolicy(&c, &p) && d != CostAwarePolicy(&c, &p) {
					errs <- errors.New("decision from neither policy")
					return
				}
			}
		}(uint64(g))
	}
	old := []*instance{}
	for i := 0; i < 20; i++ {
		old = append(old, e.cur.Load())
		name := []string{ShippedCostAware, ShippedDefault}[i%2]
		if err := e.LoadShipped(name); err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i, in := range old {
		if !in.closed.Load() {
			t.Errorf("swapped-out instance %d not closed", i)
		}
	}
}

// randomContext draws contexts around the interesting thresholds and, now
// and then, extreme values.
func randomContext(r *rand.Rand) Context {
	pick32 := func(small uint32) uint32 {
		switch r.IntN(8) {
		case 0:
			return r.Uint32()
		case 1:
			return ^uint32(0)
		default:
			return r.Uint32N(small)
		}
	}
	pick64 := func(small uint64) uint64 {
		switch r.IntN(8) {
		case 0:
			return r.Uint64()
		case 1:
			return 0
		default:
			return r.Uint64N(small)
		}
	}
	return Context{
		ModelID:       r.Uint32(),
		BatchSize:     pick32(128),
		QueueDepth:    pick32(1024),
		GPUUtilPct:    pick32(101),
		GPUMemFreeMiB: pick32(4096),
		CPUUtilPct:    pick32(101),
		CPUNsPerItem:  pick64(20000),
		GPUNsPerItem:  pick64(20000),
		GPUOtherProcs: pick32(8),
		// Mostly at or below the total, as real samples are.
		GPUSelfUtilPct: pick32(101),
		KernelItems:    pick32(128),
	}
}

func randomParams(r *rand.Rand) Params {
	return Params{
		GPUMinBatch:       r.Uint32N(128),
		GPUMaxUtilPct:     r.Uint32N(101),
		GPUMinMemMiB:      r.Uint32N(4096),
		GPUBatchNs:        r.Uint64N(MaxGPUBatchNs + 1),
		KernelGPUSharePct: r.Uint32N(101),
	}
}
