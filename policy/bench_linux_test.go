//go:build linux

package policy

import (
	"slices"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// BenchmarkDecide measures one decision through the Engine for each
// mechanism, with the pure-Go fallback as the baseline of the same run:
//
//	go-fallback     the Go twin of the default policy
//	null-syscall    getppid(2), the floor for any in-kernel mechanism
//	bpf-raw_tp      BPF_PROG_TEST_RUN of a raw_tp program (what Engine uses)
//	bpf-syscall     BPF_PROG_TEST_RUN of a sleepable syscall program
//	bpf-raw_tp-cilium-Run  the same raw_tp program through ebpf.Program.Run,
//	                showing why Engine calls bpf(2) itself
func BenchmarkDecide(b *testing.B) {
	c := Context{BatchSize: 40, GPUUtilPct: 30, GPUMemFreeMiB: 4096, CPUNsPerItem: 900, GPUNsPerItem: 100}
	decide := func(b *testing.B, e *Engine) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := e.Decide(&c); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("go-fallback", func(b *testing.B) {
		e, err := New(Options{DisableBPF: true})
		if err != nil {
			b.Fatal(err)
		}
		defer e.Close()
		decide(b, e)
	})
	b.Run("null-syscall", func(b *testing.B) {
		for b.Loop() {
			unix.Syscall(unix.SYS_GETPPID, 0, 0, 0)
		}
	})
	b.Run("bpf-raw_tp", func(b *testing.B) {
		requireBPF(b)
		decide(b, kernelEngine(b, ShippedDefault))
	})
	b.Run("bpf-syscall", func(b *testing.B) {
		requireBPF(b)
		decide(b, kernelEngine(b, "syscall"))
	})
	b.Run("bpf-raw_tp-cilium-Run", func(b *testing.B) {
		requireBPF(b)
		e := kernelEngine(b, ShippedDefault)
		prog := e.cur.Load().kernel.prog
		in := c.AppendBinary(nil)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := prog.Run(&ebpf.RunOptions{Context: in}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("bpf-costaware-raw_tp", func(b *testing.B) {
		requireBPF(b)
		decide(b, kernelEngine(b, ShippedCostAware))
	})
}

// BenchmarkDecideParallel measures concurrent decisions on the raw_tp path
// (GOMAXPROCS goroutines), to show Decide does not serialise callers.
func BenchmarkDecideParallel(b *testing.B) {
	requireBPF(b)
	e := kernelEngine(b, ShippedDefault)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		c := Context{BatchSize: 40}
		for pb.Next() {
			if _, err := e.Decide(&c); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkMechanisms interleaves the mechanisms within one loop so that
// load from elsewhere on the machine hits them alike, times every call, and
// reports each mechanism's median cost per decision (robust to preemption)
// and its ratio to the raw_tp path Engine uses. "timer" is an empty step:
// the clock's own overhead, included in every figure.
func BenchmarkMechanisms(b *testing.B) {
	requireBPF(b)
	c := Context{BatchSize: 40, GPUUtilPct: 30, GPUMemFreeMiB: 4096, CPUNsPerItem: 900, GPUNsPerItem: 100}
	fallback, err := New(Options{DisableBPF: true})
	if err != nil {
		b.Fatal(err)
	}
	defer fallback.Close()
	rawtp := kernelEngine(b, ShippedDefault)
	sysprog := kernelEngine(b, "syscall")
	prog := rawtp.cur.Load().kernel.prog
	in := c.AppendBinary(nil)
	steps := []struct {
		name string
		fn   func() error
	}{
		{"timer", func() error { return nil }},
		{"go-fallback", func() error { _, err := fallback.Decide(&c); return err }},
		{"null-syscall", func() error { unix.Syscall(unix.SYS_GETPPID, 0, 0, 0); return nil }},
		{"bpf-raw_tp", func() error { _, err := rawtp.Decide(&c); return err }},
		{"bpf-syscall", func() error { _, err := sysprog.Decide(&c); return err }},
		{"bpf-raw_tp-cilium-Run", func() error { _, err := prog.Run(&ebpf.RunOptions{Context: in}); return err }},
	}
	const base = 3 // bpf-raw_tp
	samples := make([][]time.Duration, len(steps))
	for b.Loop() {
		for i, s := range steps {
			t0 := time.Now()
			if err := s.fn(); err != nil {
				b.Fatal(err)
			}
			samples[i] = append(samples[i], time.Since(t0))
		}
	}
	med := make([]float64, len(steps))
	for i, d := range samples {
		slices.Sort(d)
		med[i] = float64(d[len(d)/2])
	}
	for i, s := range steps {
		b.ReportMetric(med[i], s.name+"-median-ns")
		if i != base && i != 0 {
			b.ReportMetric(med[i]/med[base], s.name+"/raw_tp")
		}
	}
}

// BenchmarkLoadShipped measures one hot swap: loading a shipped policy into
// the kernel, writing its params and retiring the previous one.
func BenchmarkLoadShipped(b *testing.B) {
	requireBPF(b)
	e := kernelEngine(b, ShippedDefault)
	names := []string{ShippedCostAware, ShippedDefault}
	i := 0
	for b.Loop() {
		if err := e.LoadShipped(names[i%2]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
