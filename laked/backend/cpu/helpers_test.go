package cpu_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lakeos/lake/laked/backend"
	"github.com/lakeos/lake/laked/backend/cpu"
)

const testModule = "cpu_test"

var (
	gates    sync.Map // uint64 -> chan struct{}
	gateSeq  atomic.Uint64
	runCount atomic.Int64
)

// newGate returns an id for the "gate" kernel and a function opening it.
func newGate() (uint64, func()) {
	id := gateSeq.Add(1)
	ch := make(chan struct{})
	gates.Store(id, ch)
	var once sync.Once
	return id, func() { once.Do(func() { close(ch) }) }
}

func init() {
	err := cpu.RegisterModule(testModule, map[string]cpu.KernelFunc{
		// append(ptr, v): int32 array [count, v0, v1, ...]; appends v.
		"append": func(k *cpu.KernelContext) error {
			if err := k.CheckParams(2); err != nil {
				return err
			}
			hdr, err := k.Mem.Int32s(k.Ptr(0), 1)
			if err != nil {
				return err
			}
			n := uint64(hdr[0])
			arr, err := k.Mem.Int32s(k.Ptr(0), n+2)
			if err != nil {
				return err
			}
			arr[n+1] = int32(k.Params[1])
			arr[0]++
			return nil
		},
		"fail": func(k *cpu.KernelContext) error {
			return errors.New("deliberate failure")
		},
		"panic": func(k *cpu.KernelContext) error {
			panic("deliberate panic")
		},
		"nilderef": func(k *cpu.KernelContext) error {
			var p *int
			return fmt.Errorf("%d", *p)
		},
		// gate(id, ptr): waits for gate id to open, then stores 42 at ptr
		// (int32) unless ptr is 0.
		"gate": func(k *cpu.KernelContext) error {
			if err := k.CheckParams(2); err != nil {
				return err
			}
			ch, ok := gates.Load(k.Params[0])
			if !ok {
				return errors.New("no such gate")
			}
			<-ch.(chan struct{})
			if k.Params[1] != 0 {
				v, err := k.Mem.Int32s(k.Ptr(1), 1)
				if err != nil {
					return err
				}
				v[0] = 42
			}
			return nil
		},
		"count": func(k *cpu.KernelContext) error {
			runCount.Add(1)
			return nil
		},
		// scale(ptr, n, f): x[i] = x[i]*f + 1 for float32 x[0:n].
		"scale": func(k *cpu.KernelContext) error {
			if err := k.CheckParams(3); err != nil {
				return err
			}
			x, err := k.Mem.Float32s(k.Ptr(0), k.Params[1])
			if err != nil {
				return err
			}
			f := float32(k.Params[2])
			for i := range x {
				x[i] = x[i]*f + 1
			}
			return nil
		},
	})
	if err != nil {
		panic(err)
	}
}

func pack(words ...uint64) []byte {
	b := make([]byte, 8*len(words))
	for i, w := range words {
		binary.LittleEndian.PutUint64(b[8*i:], w)
	}
	return b
}

func newCtx(t testing.TB, lim backend.Limits) (*cpu.Backend, backend.Context) {
	t.Helper()
	b := cpu.New(lim)
	c, err := b.NewContext()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Destroy(); err != nil && !errors.Is(err, backend.ErrContextDestroyed) {
			t.Errorf("destroy: %v", err)
		}
	})
	return b, c
}

// fn loads the test module and returns the handle of kernel name.
func fn(t testing.TB, c backend.Context, name string) backend.Handle {
	t.Helper()
	m, err := c.ModuleLoad([]byte(testModule))
	if err != nil {
		t.Fatal(err)
	}
	f, err := c.ModuleGetFunction(m, name)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func mustAlloc(t testing.TB, c backend.Context, n uint64) backend.DevPtr {
	t.Helper()
	p, err := c.MemAlloc(n)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func wantErr(t testing.TB, err, target error, what string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want %v", what, err, target)
	}
}

func i32s(b []byte) []int32 {
	out := make([]int32, len(b)/4)
	for i := range out {
		out[i] = int32(binary.LittleEndian.Uint32(b[4*i:]))
	}
	return out
}

var one = backend.Dim3{X: 1, Y: 1, Z: 1}

// waitGoroutines waits (bounded) for the goroutine count to drop to at
// most want, returning the last count seen.
func waitGoroutines(want int) int {
	n := runtime.NumGoroutine()
	for i := 0; i < 500 && n > want; i++ {
		time.Sleep(10 * time.Millisecond)
		n = runtime.NumGoroutine()
	}
	return n
}

func newBackendLimits() backend.Limits { return cpu.New(backend.Limits{MaxAllocations: -1}).Limits() }
