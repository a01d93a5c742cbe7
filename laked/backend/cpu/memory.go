package cpu

import (
	"fmt"
	"math"
	"unsafe"

	"github.com/lakeos/lake/laked/backend"
)

// allocation is one live device allocation.
type allocation struct {
	base uint64 // device address, allocAlign-aligned
	size uint64 // requested bytes
	span uint64 // address space reserved: size rounded up plus guard
	data []byte // len(data) == size; 8-byte aligned host memory
}

// hostLittleEndian reports whether typed views of device memory (which
// clients fill with little-endian words) can alias host memory directly.
var hostLittleEndian = func() bool {
	x := uint16(1)
	return *(*byte)(unsafe.Pointer(&x)) == 1
}()

func roundUp(n, a uint64) uint64 { return (n + a - 1) &^ (a - 1) }

// MemAlloc allocates size bytes of zeroed device memory. Size zero is
// backend.ErrInvalidValue; exceeding the context's byte or allocation
// limit (or its address window) is backend.ErrOutOfMemory.
func (c *Context) MemAlloc(size uint64) (backend.DevPtr, error) {
	if err := c.enter("mem alloc"); err != nil {
		return 0, err
	}
	defer c.leave()
	if size == 0 {
		return 0, fmt.Errorf("cpu: mem alloc: size 0: %w", backend.ErrInvalidValue)
	}
	window := c.end - c.base
	if size > c.maxBytes || size > window-guardGap-allocAlign {
		return 0, fmt.Errorf("cpu: mem alloc %d bytes: over the %d-byte context limit: %w",
			size, c.maxBytes, backend.ErrOutOfMemory)
	}
	// Cheap early check so a client at its limit does not make us zero
	// memory we will throw away; re-checked under the lock below.
	c.mu.RLock()
	full := len(c.allocs) >= c.maxAllocs || c.bytes+size > c.maxBytes
	c.mu.RUnlock()
	if full {
		return 0, c.allocLimitErr(size)
	}
	// The backend's total is charged before the memory is allocated, so
	// all contexts together never hold more than limits.TotalBytes.
	if !c.b.takeBytes(size) {
		return 0, fmt.Errorf("cpu: mem alloc %d bytes: the backend's %d-byte total is taken: %w",
			size, c.b.limits.TotalBytes, backend.ErrOutOfMemory)
	}
	// Allocate outside the lock: zeroing a large buffer takes a while.
	words := make([]uint64, (size+7)/8)
	data := unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(words))), size)

	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.allocs) >= c.maxAllocs || c.bytes+size > c.maxBytes {
		c.b.giveBytes(size)
		return 0, c.allocLimitErr(size)
	}
	span := roundUp(size, allocAlign) + guardGap
	addr, idx, ok := c.place(span)
	if !ok {
		c.b.giveBytes(size)
		return 0, fmt.Errorf("cpu: mem alloc %d bytes: device address space exhausted: %w", size, backend.ErrOutOfMemory)
	}
	a := &allocation{base: addr, size: size, span: span, data: data}
	c.allocs = append(c.allocs, nil)
	copy(c.allocs[idx+1:], c.allocs[idx:])
	c.allocs[idx] = a
	c.bytes += size
	return backend.DevPtr(addr), nil
}

// allocLimitErr describes which limit a MemAlloc hit; c.mu must be held.
func (c *Context) allocLimitErr(size uint64) error {
	if len(c.allocs) >= c.maxAllocs {
		return fmt.Errorf("cpu: mem alloc: %d allocations is the context limit: %w", c.maxAllocs, backend.ErrOutOfMemory)
	}
	return fmt.Errorf("cpu: mem alloc %d bytes: %d of %d bytes already allocated: %w",
		size, c.bytes, c.maxBytes, backend.ErrOutOfMemory)
}

// place finds room for span bytes of address space, searching forward
// from the cursor and wrapping to the window start once, so recently
// freed addresses are reused as late as possible. It returns the address
// and the index at which the allocation must be inserted into c.allocs.
// c.mu must be held for writing.
func (c *Context) place(span uint64) (addr uint64, idx int, ok bool) {
	start := c.cursor
	for pass := 0; pass < 2; pass++ {
		addr = start
		idx = c.firstAtOrAfter(addr)
		if idx > 0 {
			if prev := c.allocs[idx-1]; prev.base+prev.span > addr {
				addr = prev.base + prev.span
			}
		}
		for addr <= c.end && c.end-addr >= span {
			if idx == len(c.allocs) || addr+span <= c.allocs[idx].base {
				c.cursor = addr + span
				return addr, idx, true
			}
			addr = c.allocs[idx].base + c.allocs[idx].span
			idx++
		}
		start = c.base
	}
	return 0, 0, false
}

// firstAtOrAfter returns the index of the first allocation whose base is
// >= addr. c.mu must be held.
func (c *Context) firstAtOrAfter(addr uint64) int {
	lo, hi := 0, len(c.allocs)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if c.allocs[m].base < addr {
			lo = m + 1
		} else {
			hi = m
		}
	}
	return lo
}

// find returns the allocation containing addr, or nil. c.mu must be held.
func (c *Context) find(addr uint64) *allocation {
	i := c.firstAtOrAfter(addr + 1) // first base > addr
	if i == 0 {
		if addr == math.MaxUint64 && len(c.allocs) > 0 {
			i = len(c.allocs) // addr+1 wrapped; every base is <= addr
		} else {
			return nil
		}
	}
	a := c.allocs[i-1]
	if addr-a.base < a.size {
		return a
	}
	return nil
}

// MemFree frees the allocation based at p. A pointer that is in no live
// allocation of this context (never allocated, already freed, or from
// another context) is backend.ErrInvalidHandle; a pointer inside an
// allocation but not at its base is backend.ErrInvalidValue. Work already
// queued on streams that uses the allocation fails when it runs.
func (c *Context) MemFree(p backend.DevPtr) error {
	if err := c.enter("mem free"); err != nil {
		return err
	}
	defer c.leave()
	c.mu.Lock()
	defer c.mu.Unlock()
	a := c.find(uint64(p))
	if a == nil {
		return fmt.Errorf("cpu: mem free %#x: not a live allocation of this context: %w", uint64(p), backend.ErrInvalidHandle)
	}
	if a.base != uint64(p) {
		return fmt.Errorf("cpu: mem free %#x: inside allocation %#x, not its base: %w", uint64(p), a.base, backend.ErrInvalidValue)
	}
	i := c.firstAtOrAfter(a.base)
	copy(c.allocs[i:], c.allocs[i+1:])
	c.allocs[len(c.allocs)-1] = nil
	c.allocs = c.allocs[:len(c.allocs)-1]
	c.bytes -= a.size
	c.b.giveBytes(a.size)
	return nil
}

// resolve returns the host bytes behind [p, p+n), which must lie inside
// one live allocation. n must be > 0.
func (c *Context) resolve(p backend.DevPtr, n uint64) ([]byte, error) {
	c.mu.RLock()
	a := c.find(uint64(p))
	c.mu.RUnlock()
	if a == nil {
		return nil, fmt.Errorf("device pointer %#x is in no live allocation of this context: %w", uint64(p), backend.ErrInvalidHandle)
	}
	off := uint64(p) - a.base
	if n > a.size-off {
		return nil, fmt.Errorf("%d bytes at %#x overrun allocation %#x of %d bytes: %w",
			n, uint64(p), a.base, a.size, backend.ErrInvalidValue)
	}
	return a.data[off : off+n : off+n], nil
}

// Memory is the bounds-checked view of a context's device memory that a
// kernel receives. Every method checks that the requested range lies
// inside one live allocation and returns an error (never panics)
// otherwise. Views alias device memory: writes through them are writes to
// device memory. A view stays safe to use after the allocation is freed
// (it then no longer aliases device memory), but a kernel should not keep
// one past its return.
type Memory struct{ c *Context }

// Bytes returns a view of n bytes at p. n == 0 returns an empty view.
func (m Memory) Bytes(p backend.DevPtr, n uint64) ([]byte, error) {
	if n == 0 {
		return []byte{}, nil
	}
	return m.c.resolve(p, n)
}

// view returns the bytes of n elements of size sz at p, p aligned to sz.
func (m Memory) view(p backend.DevPtr, n, sz uint64, what string) ([]byte, error) {
	if !hostLittleEndian {
		return nil, fmt.Errorf("%s view: big-endian host: %w", what, backend.ErrNotSupported)
	}
	if uint64(p)%sz != 0 {
		return nil, fmt.Errorf("%s view at %#x: misaligned: %w", what, uint64(p), backend.ErrInvalidValue)
	}
	if n > math.MaxUint64/sz {
		return nil, fmt.Errorf("%s view of %d elements: too large: %w", what, n, backend.ErrInvalidValue)
	}
	return m.c.resolve(p, n*sz)
}

// Float32s returns a view of n float32 values at p, which must be
// 4-byte aligned. n == 0 returns an empty view.
func (m Memory) Float32s(p backend.DevPtr, n uint64) ([]float32, error) {
	if n == 0 {
		return []float32{}, nil
	}
	b, err := m.view(p, n, 4, "float32")
	if err != nil {
		return nil, err
	}
	return unsafe.Slice((*float32)(unsafe.Pointer(unsafe.SliceData(b))), n), nil
}

// Int32s returns a view of n int32 values at p, which must be 4-byte
// aligned. n == 0 returns an empty view.
func (m Memory) Int32s(p backend.DevPtr, n uint64) ([]int32, error) {
	if n == 0 {
		return []int32{}, nil
	}
	b, err := m.view(p, n, 4, "int32")
	if err != nil {
		return nil, err
	}
	return unsafe.Slice((*int32)(unsafe.Pointer(unsafe.SliceData(b))), n), nil
}

// Read copies len(dst) bytes at p into dst.
func (m Memory) Read(p backend.DevPtr, dst []byte) error {
	src, err := m.Bytes(p, uint64(len(dst)))
	if err != nil {
		return err
	}
	copy(dst, src)
	return nil
}

// Write copies src to device memory at p.
func (m Memory) Write(p backend.DevPtr, src []byte) error {
	dst, err := m.Bytes(p, uint64(len(src)))
	if err != nil {
		return err
	}
	copy(dst, src)
	return nil
}
