package cpu_test

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/lakeos/lake/laked/backend"
)

var sentinels = []error{
	backend.ErrInvalidValue, backend.ErrInvalidHandle, backend.ErrOutOfMemory,
	backend.ErrNotFound, backend.ErrLaunchFailed, backend.ErrContextDestroyed, backend.ErrNotSupported,
}

func checkSentinel(t *testing.T, what string, err error) {
	t.Helper()
	if err == nil {
		return
	}
	for _, s := range sentinels {
		if errors.Is(err, s) {
			return
		}
	}
	t.Fatalf("%s: error %v wraps no backend sentinel", what, err)
}

func FuzzModuleLoad(f *testing.F) {
	f.Add([]byte(testModule))
	f.Fuzz(func(t *testing.T, image []byte) {
		_, c := newCtx(t, backend.Limits{})
		m, err := c.ModuleLoad(image)
		checkSentinel(t, "module load", err)
		if err != nil {
			return
		}
		if _, err := c.ModuleGetFunction(m, "count"); err != nil {
			t.Fatalf("loaded %q but no kernel: %v", image, err)
		}
	})
}

// FuzzContextOps drives a context with an operation sequence decoded
// from the input: every call must either succeed or return an error
// wrapping a sentinel, and the context's bookkeeping must match a model.
func FuzzContextOps(f *testing.F) {
	f.Add([]byte{0, 64, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, prog []byte) {
		_, c := newCtx(t, backend.Limits{MaxBytes: 1 << 16, MaxAllocations: 16, MaxStreams: 4, MaxThreads: 1 << 10})
		m, err := c.ModuleLoad([]byte(testModule))
		if err != nil {
			t.Fatal(err)
		}
		funcs := map[byte]backend.Handle{}
		for i, name := range []string{"scale", "append", "fail", "panic", "count"} {
			h, err := c.ModuleGetFunction(m, name)
			if err != nil {
				t.Fatal(err)
			}
			funcs[byte(i)] = h
		}
		live := map[backend.DevPtr]uint64{}
		var ptrs []backend.DevPtr
		streams := []backend.Handle{0}
		ptr := func(sel uint64) backend.DevPtr {
			if len(ptrs) == 0 || sel&1 == 1 {
				return backend.DevPtr(sel) // arbitrary address
			}
			return ptrs[int(sel>>1)%len(ptrs)] + backend.DevPtr((sel>>8)%600)
		}
		stream := func(sel uint64) backend.Handle {
			if sel&1 == 1 {
				return backend.Handle(sel)
			}
			return streams[int(sel>>1)%len(streams)]
		}
		for len(prog) >= 9 && len(ptrs) < 64 {
			opc, arg := prog[0], binary.LittleEndian.Uint64(prog[1:9])
			prog = prog[9:]
			var err error
			switch opc % 8 {
			case 0:
				var p backend.DevPtr
				p, err = c.MemAlloc(arg % 1024)
				if err == nil {
					live[p] = arg % 1024
					ptrs = append(ptrs, p)
				}
			case 1:
				p := ptr(arg)
				err = c.MemFree(p)
				if err == nil {
					delete(live, p)
				}
			case 2:
				err = c.MemcpyHtoDAsync(ptr(arg), make([]byte, (arg>>16)%512), stream(arg>>32))
			case 3:
				err = c.MemcpyDtoHAsync(make([]byte, (arg>>16)%512), ptr(arg), stream(arg>>32))
			case 4:
				f := funcs[byte(arg>>40)%5]
				params := make([]byte, 8*((arg>>48)%4))
				for i := 0; i+8 <= len(params); i += 8 {
					binary.LittleEndian.PutUint64(params[i:], uint64(ptr(arg>>uint(i))))
				}
				g := backend.Dim3{X: uint32(arg>>8)%40 + 1, Y: 1, Z: uint32(arg>>16) % 3}
				err = c.LaunchKernel(f, g, one, 0, stream(arg>>32), params)
			case 5:
				var s backend.Handle
				s, err = c.StreamCreate()
				if err == nil {
					streams = append(streams, s)
				}
			case 6:
				err = c.StreamSynchronize(stream(arg))
			case 7:
				err = c.Synchronize()
			}
			checkSentinel(t, "op", err)
		}
		checkSentinel(t, "final synchronize", c.Synchronize())
		st := c.Stats()
		var bytes uint64
		for _, n := range live {
			bytes += n
		}
		if st.Allocations != len(live) || st.BytesAllocated != bytes || st.Streams != len(streams)-1 {
			t.Fatalf("stats %+v, model has %d allocations of %d bytes, %d streams", st, len(live), bytes, len(streams)-1)
		}
	})
}
