package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/lakeos/lake/laked"
	"github.com/lakeos/lake/lakelib"
	"github.com/lakeos/lake/linnos"
	lfmodel "github.com/lakeos/lake/liteflow/model"
	"github.com/lakeos/lake/liteflow/quant"
	"github.com/lakeos/lake/liteflow/router"
	"github.com/lakeos/lake/liteflow/snapshot"
	"github.com/lakeos/lake/policy"
)

// randomLinnOS is a LinnOS integer model with random weights whose
// classes are mixed on random inputs.
func randomLinnOS(t *testing.T) *linnos.IntModel {
	t.Helper()
	f, err := linnos.NewFloatModel(0)
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(4, 2))
	for i := range f.W {
		for k := range f.W[i] {
			f.W[i][k] = float32(r.NormFloat64()) * 0.2
		}
		for k := range f.B[i] {
			f.B[i][k] = float32(r.NormFloat64()) * 0.3
		}
	}
	q, err := linnos.Quantize(f)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// TestLoadSourcesFeedThePolicy: laked's placer reads the sources it was
// given (the CPU from /proc/stat here; NVML where a driver exists), and
// the GPU path's busy time becomes laked's own utilisation.
func TestLoadSourcesFeedThePolicy(t *testing.T) {
	src := newLoadSources(0, zerolog.Nop())
	defer src.close()
	if src.cpu == nil {
		t.Skip("no /proc/stat")
	}
	if u := src.cpu(); u > 100 {
		t.Fatalf("cpu %d%%", u)
	}
	if _, err := os.Stat("/dev/nvidiactl"); err != nil && src.nvml != nil {
		t.Fatal("NVML opened without a GPU")
	}
	f := timed(src.self, func(in, out []byte, n int) error { time.Sleep(30 * time.Millisecond); return nil })
	for i := 0; i < 5; i++ {
		if err := f(nil, nil, 1); err != nil {
			t.Fatal(err)
		}
	}
	if l, _ := src.self.Sample(); l.GPUUtilPct < 10 {
		t.Fatalf("self utilisation %d%% after 150 ms of GPU work in the last second", l.GPUUtilPct)
	}
	var got policy.Context
	eng, err := policy.New(policy.Options{DisableBPF: true})
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	p := &laked.PolicyPlacer{Engine: eng, Load: policy.NewStaticLoad(policy.Load{GPUUtilPct: 55, GPUMemFreeMiB: 10, GPUOtherProcs: 2}), SelfLoad: src.self, CPUUtil: func() uint32 { return 42 }, Log: zerolog.Nop()}
	p.Observe = func(c *policy.Context) { got = *c }
	p.Place(laked.BatchInfo{Items: 3, KernelItems: 2})
	if got.CPUUtilPct != 42 || got.GPUUtilPct != 55 || got.GPUOtherProcs != 2 || got.KernelItems != 2 || got.GPUSelfUtilPct < 10 {
		t.Fatalf("policy context %+v", got)
	}
}

// configWithGPU loads laked's configuration from yaml with the socket
// sock (no admin socket, metrics, device or BPF) and opens its GPU,
// skipping the test when there is no GPU backend. The caller closes it.
func configWithGPU(t *testing.T, yaml, sock string) (*Config, *gpuSetup) {
	t.Helper()
	cfg, _, err := loadConfig([]string{"--config", writeConfig(t, yaml), "--socket", sock,
		"--admin-socket", "", "--metrics-addr", "", "--device", "", "--no-bpf"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	gpu, err := openGPU(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	if gpu == nil {
		t.Skip("no GPU backend (needs the cuda build tag and a GPU)")
	}
	return cfg, gpu
}

// startGPULaked starts laked in-process on its GPU backend
// (configWithGPU) with the configuration yaml and the LinnOS model m,
// stopped when the test ends; connect dials a client to it within ctx,
// closed when the test ends.
func startGPULaked(t *testing.T, yaml string, m *linnos.IntModel) (d *daemon, connect func(ctx context.Context) *lakelib.Client) {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "s.sock")
	cfg, gpu := configWithGPU(t, yaml, sock)
	gpu.close()
	d, err := start(context.Background(), cfg, zerolog.Nop(), m, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.stop(context.Background()) })
	connect = func(ctx context.Context) *lakelib.Client {
		t.Helper()
		c, err := lakelib.Dial(ctx, sock, lakelib.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	return d, connect
}

// linnosRound sends one request of n LinnOS records with random
// features (0 to 9, from r) to laked's LinnOS model through c, fails the
// test (saying what) unless laked answers every record as the CPU model
// m does, and returns the classes, the request's result and how long it
// took.
func linnosRound(t *testing.T, ctx context.Context, c *lakelib.Client, m *linnos.IntModel, r *rand.Rand, n int, what string) ([]int32, lakelib.PredictResult, time.Duration) {
	t.Helper()
	feat := make([]int32, n*linnos.NumInputs)
	for i := range feat {
		feat[i] = int32(r.IntN(10))
	}
	in := make([]byte, 4*len(feat))
	for i, v := range feat {
		binary.LittleEndian.PutUint32(in[4*i:], uint32(v))
	}
	out := make([]byte, 4*n)
	begin := time.Now()
	res, err := c.Predict(ctx, modelLinnOS, n, in, out)
	took := time.Since(begin)
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
	want := make([]int32, n)
	if err := m.PredictBatch(feat, want); err != nil {
		t.Fatal(err)
	}
	classes := make([]int32, n)
	for i := range want {
		classes[i] = int32(binary.LittleEndian.Uint32(out[4*i:]))
		if classes[i] != want[i] {
			t.Fatalf("%s: item %d: laked %d, CPU model %d", what, i, classes[i], want[i])
		}
	}
	return classes, res, took
}

// TestGPULinnOSThroughLaked runs laked (cuda build, on a GPU) with the
// LinnOS model and sends batches the policy places on the GPU: they run
// there (no fallbacks) and answer exactly what the CPU model answers; so
// do the demo MLP's.
func TestGPULinnOSThroughLaked(t *testing.T) {
	m := randomLinnOS(t)
	d, connect := startGPULaked(t, "policy:\n  gpu_min_batch: 8\n  gpu_max_util_pct: 100\n", m)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := connect(ctx)
	r := rand.New(rand.NewPCG(1, 1))
	slow := 0
	for round := 0; round < 20; round++ {
		classes, _, _ := linnosRound(t, ctx, c, m, r, 64, fmt.Sprintf("round %d", round))
		for _, got := range classes {
			slow += int(got)
		}
	}
	// The demo MLP (ReLU, linear) runs on the GPU too, bit-exact.
	cpuMLP, err := laked.NewMLPModel("mlp-demo", laked.DemoMLPBlob(1, 8, 16, 2))
	if err != nil {
		t.Fatal(err)
	}
	for round := 0; round < 5; round++ {
		n := 64
		in := make([]float32, 8*n)
		for i := range in {
			in[i] = float32(r.NormFloat64())
		}
		inb := laked.Float32sToBytes(in)
		out, want := make([]byte, 8*n), make([]byte, 8*n)
		if _, err := c.Predict(ctx, modelDemoMLP, n, inb, out); err != nil {
			t.Fatal(err)
		}
		if err := cpuMLP.Predict(inb, want, n); err != nil {
			t.Fatal(err)
		}
		if string(out) != string(want) {
			t.Fatalf("MLP round %d: laked's answer differs from the CPU model's", round)
		}
	}
	st := d.srv.Stats()
	t.Logf("stats: gpu decisions %d, fallbacks %d, %d slow of 1280", st.DecisionsGPU, st.GPUFallbacks, slow)
	if st.DecisionsGPU < 25 || st.GPUFallbacks != 0 {
		t.Fatalf("GPU decisions %d, fallbacks %d", st.DecisionsGPU, st.GPUFallbacks)
	}
	// The client's region is registered with the GPU: its records went
	// straight between its arena and the GPU, none through laked.
	t.Logf("GPU items: %d direct from the registered arena, %d staged", st.GPUDirectItems, st.GPUStagedItems)
	if st.GPUDirectItems == 0 || st.GPUStagedItems != 0 {
		t.Fatalf("GPU items: %d direct, %d staged", st.GPUDirectItems, st.GPUStagedItems)
	}
}

// TestGPULiteFlowPath runs a LiteFlow model's GPU path (laked.GPUPath
// with the CUDA snapshot runner) on a GPU: a batch mixing flows pinned
// to two snapshot versions answers exactly what Predict answers.
func TestGPULiteFlowPath(t *testing.T) {
	_, gpu := configWithGPU(t, "", filepath.Join(t.TempDir(), "s"))
	defer gpu.close()
	r, err := router.New(router.Config{InputDim: 4, OutputDim: 2, FlowTTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	lm, err := laked.NewLiteFlowModel("cc", r, 4, 2)
	if err != nil {
		t.Fatal(err)
	}
	path := lm.GPUPath(gpu.snapshot)
	rng := rand.New(rand.NewPCG(5, 5))
	quantized := func(seed uint64) *snapshot.Snapshot {
		m, err := lfmodel.NewMLP([]int{4, 16, 2}, []lfmodel.Activation{lfmodel.Tanh, lfmodel.Identity}, seed)
		if err != nil {
			t.Fatal(err)
		}
		calib := make([][]float32, 64)
		for i := range calib {
			calib[i] = []float32{float32(rng.NormFloat64()), float32(rng.NormFloat64()), float32(rng.NormFloat64()), float32(rng.NormFloat64())}
		}
		s, err := quant.Quantize(m, calib, quant.Options{PerChannel: true})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	batch := func(n int) []byte {
		var b []byte
		for i := 0; i < n; i++ {
			b = binary.LittleEndian.AppendUint64(b, uint64(i%7))
			for d := 0; d < 4; d++ {
				b = binary.LittleEndian.AppendUint32(b, math.Float32bits(float32(rng.NormFloat64())))
			}
		}
		return b
	}
	if _, err := r.Install(quantized(1)); err != nil {
		t.Fatal(err)
	}
	if err := path(batch(3), make([]byte, 24), 3); err != nil { // flows 0..2 pin v1
		t.Fatal(err)
	}
	if _, err := r.Install(quantized(2)); err != nil {
		t.Fatal(err)
	}
	const n = 500
	in := batch(n)
	got, want := make([]byte, 8*n), make([]byte, 8*n)
	if err := path(in, got, n); err != nil {
		t.Fatal(err)
	}
	if err := lm.Predict(in, want, n); err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Fatal("the GPU path's answers differ from Predict's")
	}
}

// TestLoadSourcesReadInTheBackground: the policy's view of the GPU and
// CPU load is the samplers' last reading, refreshed by a goroutine of
// its own: while a sampler is stuck (a slow NVML call, a slow
// /proc/stat read), a decision still gets the last values at once.
func TestLoadSourcesReadInTheBackground(t *testing.T) {
	var calls atomic.Int32
	block := make(chan struct{})
	gpuSample := func() (policy.Load, error) {
		if calls.Add(1) > 1 {
			<-block // every reading after the first hangs
		}
		return policy.Load{GPUUtilPct: 33, GPUMemFreeMiB: 7}, nil
	}
	cpuSample := func() uint32 { return 61 }
	src := startLoadSources(gpuSample, cpuSample, time.Millisecond)
	defer src.close()
	defer close(block)
	for calls.Load() < 2 { // the background reader is now stuck
		time.Sleep(time.Millisecond)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; i < 1000; i++ {
			l, err := src.gpu.Sample()
			if err != nil || l.GPUUtilPct != 33 || l.GPUMemFreeMiB != 7 || src.cpu() != 61 {
				t.Errorf("load %+v %v, cpu %d", l, err, src.cpu())
				return
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("a decision waited for a stuck load sampler")
	}
	if n := calls.Load(); n != 2 {
		t.Fatalf("%d samples: the decisions sampled themselves", n)
	}
}

// TestGPUFaultsThroughLaked runs laked's GPU path against the fake CUDA
// driver (make cuda-check) with its faults injected: while every LinnOS
// launch faults, and then while every launch hangs past
// limits.launch_timeout, each request is still answered, right (on the
// CPU: PredictResult.GPU false) and counted as a fallback; once the
// driver behaves, the model's rebuilt GPU context serves again.
func TestGPUFaultsThroughLaked(t *testing.T) {
	if os.Getenv("LAKE_CUDA_FAKE_DRIVER") != "1" {
		t.Skip("needs the fake CUDA driver's fault injection (make cuda-check)")
	}
	const timeout = 300 * time.Millisecond
	m := randomLinnOS(t)
	d, connect := startGPULaked(t, "policy:\n  gpu_min_batch: 8\n  gpu_max_util_pct: 100\nlimits:\n  launch_timeout: 300ms\n", m)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c := connect(ctx)
	r := rand.New(rand.NewPCG(3, 3))
	// round sends one request of 64 items, checks the answer against the
	// CPU model and reports whether it ran on the GPU.
	round := func(what string) (gpu bool, took time.Duration) {
		t.Helper()
		_, res, took := linnosRound(t, ctx, c, m, r, 64, what)
		return res.GPU, took
	}
	if g, _ := round("healthy"); !g {
		t.Fatal("the first batch did not run on the GPU")
	}
	fb := d.srv.Stats().GPUFallbacks
	fakeInject(t, "fault", "lake_linnos_int0")
	for i := 0; i < 3; i++ {
		if g, _ := round("faulting"); g {
			t.Fatal("a batch whose kernel faulted is reported as run on the GPU")
		}
	}
	fakeInject(t, "fault", "")
	if got := d.srv.Stats().GPUFallbacks - fb; got < 3 {
		t.Fatalf("%d fallbacks for 3 faulted batches", got)
	}
	fakeInject(t, "hang", "lake_linnos_int0")
	for i := 0; i < 2; i++ {
		g, took := round("hanging")
		if g || took < timeout {
			t.Fatalf("hung batch: on the GPU %v after %v (timeout %v)", g, took, timeout)
		}
	}
	fakeInject(t, "hang", "")
	ranGPU := 0
	for i := 0; i < 5; i++ {
		if g, _ := round("recovered"); g {
			ranGPU++
		}
	}
	if ranGPU == 0 {
		t.Fatal("no batch ran on the GPU after the faults ended")
	}
}

// TestGPUContextsThroughLaked runs clients' device operations through
// laked on the GPU backend (gpu.contexts: true): a client creates a
// context, loads the built-in module and runs vector_add, synchronously
// and on a stream with its arena's host buffers (registered with the
// GPU); a launch naming another client's memory is refused with the
// client's context intact; as a trusted client (root), a faulting kernel
// fails that client's launch alone and its context serves again. On the
// fake CUDA driver in CI, on the GPU with make gpu-check.
func TestGPUContextsThroughLaked(t *testing.T) {
	_, connect := startGPULaked(t, "gpu:\n  contexts: true\n", randomLinnOS(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c1, c2 := connect(ctx), connect(ctx)
	x1, err := c1.CtxCreate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	x2, err := c2.CtxCreate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	fn := func(x *lakelib.Context, name string) lakelib.Function {
		t.Helper()
		m, err := x.ModuleLoadData(ctx, []byte("lake"))
		if err != nil {
			t.Fatal(err)
		}
		f, err := x.ModuleGetFunction(ctx, m, name)
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	alloc := func(x *lakelib.Context, n uint64) lakelib.DevPtr {
		t.Helper()
		p, err := x.MemAlloc(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	const n = 3000
	a := make([]byte, 4*n)
	for i := 0; i < n; i++ {
		binary.LittleEndian.PutUint32(a[4*i:], math.Float32bits(float32(i)*0.25))
	}
	check := func(what string, out []byte) {
		t.Helper()
		for i := 0; i < n; i++ {
			if got, want := math.Float32frombits(binary.LittleEndian.Uint32(out[4*i:])), float32(i)*0.5; got != want {
				t.Fatalf("%s: c[%d] = %v, want %v", what, i, got, want)
			}
		}
	}
	grid, block := lakelib.Dim3{X: (n + 255) / 256, Y: 1, Z: 1}, lakelib.Dim3{X: 256, Y: 1, Z: 1}
	out := make([]byte, 4*n)
	// addSync copies a to in on x, runs vector_add (f) in + in to dst and
	// checks what it copies back from dst, all synchronous.
	addSync := func(what string, x *lakelib.Context, f lakelib.Function, in, dst lakelib.DevPtr) {
		t.Helper()
		if err := x.MemcpyHtoD(ctx, in, a); err != nil {
			t.Fatal(err)
		}
		if err := x.LaunchKernel(ctx, f, grid, block, 0, 0, uint64(in), uint64(in), uint64(dst), n); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if err := x.MemcpyDtoH(ctx, out, dst); err != nil {
			t.Fatal(err)
		}
		check(what, out)
	}
	va := fn(x1, "lake_vector_add")
	pa, pc := alloc(x1, 4*n), alloc(x1, 4*n)
	addSync("synchronous", x1, va, pa, pc)
	// On a stream, from and to host buffers in the client's arena.
	hin, err := c1.AllocHost(4 * n)
	if err != nil {
		t.Fatal(err)
	}
	hout, err := c1.AllocHost(4 * n)
	if err != nil {
		t.Fatal(err)
	}
	copy(hin.Bytes(), a)
	s, err := x1.StreamCreate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pb := alloc(x1, 4*n)
	if err := x1.MemcpyHtoDAsync(ctx, pb, hin, s); err != nil {
		t.Fatal(err)
	}
	if err := x1.LaunchKernel(ctx, va, grid, block, 0, s, uint64(pb), uint64(pb), uint64(pc), n); err != nil {
		t.Fatal(err)
	}
	if err := x1.MemcpyDtoHAsync(ctx, hout, pc, s); err != nil {
		t.Fatal(err)
	}
	if err := x1.StreamSynchronize(ctx, s); err != nil {
		t.Fatal(err)
	}
	check("stream, arena buffers", hout.Bytes())
	// Another client's memory is refused; the context goes on.
	q := alloc(x2, 4*n)
	if err := x1.LaunchKernel(ctx, va, grid, block, 0, 0, uint64(pa), uint64(pa), uint64(q), n); err == nil {
		t.Fatal("a launch writing another client's memory ran")
	}
	if err := x1.LaunchKernel(ctx, va, grid, block, 0, 0, uint64(pa), uint64(pa), uint64(pc), n); err != nil {
		t.Fatalf("after a refused launch: %v", err)
	}
	if os.Geteuid() != 0 {
		t.Log("not root: laked's client is untrusted, the fault part needs a trusted one")
		return
	}
	fault := fn(x1, "lake_fault")
	if err := x1.LaunchKernel(ctx, fault, lakelib.Dim3{X: 1, Y: 1, Z: 1}, lakelib.Dim3{X: 1, Y: 1, Z: 1}, 0, 0, 0x10, 1); err == nil {
		t.Fatal("a faulting kernel succeeded")
	}
	// The other client's context never noticed; the faulted one was
	// rebuilt empty and serves again.
	addSync("other client after the fault", x2, fn(x2, "lake_vector_add"), q, q)
	if err := x1.MemcpyDtoH(ctx, out, pc); err == nil {
		t.Fatal("an allocation survived the faulted context's rebuild")
	}
	addSync("rebuilt context", x1, fn(x1, "lake_vector_add"), alloc(x1, 4*n), alloc(x1, 4*n))
}

// TestLoadSourcesIdleWhenUnread: the slow load sources are read only
// while decisions read the load; an idle laked (no batches, no
// decisions) samples nothing after its first tick, and the first read
// after the idle spell brings a fresh sample within a tick or two.
func TestLoadSourcesIdleWhenUnread(t *testing.T) {
	var cpuCalls atomic.Int32
	cpuSample := func() uint32 { cpuCalls.Add(1); return 40 }
	src := startLoadSources(nil, cpuSample, time.Millisecond)
	defer src.close()
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: %d samples", what, cpuCalls.Load())
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitFor("the first tick's sample", func() bool { return cpuCalls.Load() >= 2 })
	time.Sleep(10 * time.Millisecond) // let a tick in flight finish
	idle := cpuCalls.Load()
	time.Sleep(100 * time.Millisecond) // ~100 ticks with nobody reading
	if n := cpuCalls.Load(); n != idle {
		t.Fatalf("%d samples while no decision read the load (%d before)", n-idle, idle)
	}
	if got := src.cpu(); got != 40 {
		t.Fatalf("cpu %d, want the last reading 40", got)
	}
	waitFor("a sample after a decision read the load", func() bool { return cpuCalls.Load() > idle })
}
