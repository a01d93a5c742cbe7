package lakelib

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/lakeos/lake/shm"
)

// DevPtr is a device address (CUdeviceptr).
type DevPtr uint64

// Handles returned by laked. They are only meaningful in the context
// that created them.
type (
	// Module is a loaded module (CUmodule).
	Module uint64
	// Function is a kernel (CUfunction).
	Function uint64
	// Stream is a stream (CUstream); 0 is the default stream.
	Stream uint64
)

// Dim3 is a grid or block shape.
type Dim3 struct{ X, Y, Z uint32 }

// HostBuf is a buffer in the client's arena: the "pinned host memory" of
// lake. Async copies and zero-copy predicts read and write it in place.
// It stays valid until Free.
type HostBuf struct {
	c   *Client
	off uint64
	b   []byte
}

// AllocHost allocates n bytes in the arena.
func (c *Client) AllocHost(n int) (*HostBuf, error) {
	if n <= 0 {
		return nil, fmt.Errorf("lakelib: host buffer of %d bytes", n)
	}
	off, err := c.arena.Alloc(uint64(n))
	if err != nil {
		return nil, fmt.Errorf("lakelib: %w", err)
	}
	b, err := c.region.ArenaRange(off, uint64(n))
	if err != nil {
		c.arena.Free(off)
		return nil, fmt.Errorf("lakelib: %w", err)
	}
	return &HostBuf{c: c, off: off, b: b}, nil
}

// Bytes is the buffer's memory.
func (h *HostBuf) Bytes() []byte { return h.b }

// Offset is the buffer's offset in the arena, for raw submissions (Raw,
// Batch) that name arena ranges.
func (h *HostBuf) Offset() uint64 { return h.off }

// Free returns the buffer to the arena. Do not free a buffer an
// unsynchronized async copy still uses.
func (h *HostBuf) Free() error {
	if h.b == nil {
		return fmt.Errorf("lakelib: host buffer freed twice")
	}
	h.b = nil
	return h.c.arena.Free(h.off)
}

// staging copies src into a temporary arena buffer; the returned release
// frees it.
func (c *Client) staging(n int) (uint64, []byte, func(), error) {
	if n <= 0 {
		return 0, nil, nil, fmt.Errorf("lakelib: copy of %d bytes", n)
	}
	off, err := c.arena.Alloc(uint64(n))
	if err != nil {
		return 0, nil, nil, fmt.Errorf("lakelib: staging %d bytes: %w", n, err)
	}
	b, err := c.region.ArenaRange(off, uint64(n))
	if err != nil {
		c.arena.Free(off)
		return 0, nil, nil, fmt.Errorf("lakelib: %w", err)
	}
	return off, b, func() { c.arena.Free(off) }, nil
}

// stagingBlock is staging without the release closure: the caller frees
// off (c.arena.Free) or hands it to doStaged.
func (c *Client) stagingBlock(n int) (uint64, []byte, error) {
	if n <= 0 {
		return 0, nil, fmt.Errorf("lakelib: copy of %d bytes", n)
	}
	off, err := c.arena.Alloc(uint64(n))
	if err != nil {
		return 0, nil, fmt.Errorf("lakelib: staging %d bytes: %w", n, err)
	}
	b, err := c.region.ArenaRange(off, uint64(n))
	if err != nil {
		c.arena.Free(off)
		return 0, nil, fmt.Errorf("lakelib: %w", err)
	}
	return off, b, nil
}

// Nop round-trips an empty operation (for health checks and benchmarks).
func (c *Client) Nop(ctx context.Context) error {
	_, err := c.do(ctx, &shm.SQE{Opcode: shm.OpNop}, nil, nil)
	return err
}

// Init is cuInit; it returns the protocol version laked speaks.
func (c *Client) Init(ctx context.Context) (major, minor uint16, err error) {
	r, err := c.do(ctx, &shm.SQE{Opcode: shm.OpInit}, nil, nil)
	return uint16(r[0] >> 16), uint16(r[0]), err
}

// Context is a device context (CUcontext).
type Context struct {
	c *Client
	h uint64
}

// CtxCreate is cuCtxCreate.
func (c *Client) CtxCreate(ctx context.Context) (*Context, error) {
	r, err := c.do(ctx, &shm.SQE{Opcode: shm.OpCtxCreate}, nil, nil)
	if err != nil {
		return nil, err
	}
	return &Context{c: c, h: r[0]}, nil
}

func (x *Context) op(ctx context.Context, op shm.Opcode, args ...uint64) ([2]uint64, error) {
	e := shm.SQE{Opcode: op}
	e.Args[0] = x.h
	copy(e.Args[1:], args)
	return x.c.do(ctx, &e, nil, nil)
}

// Destroy is cuCtxDestroy.
func (x *Context) Destroy(ctx context.Context) error {
	_, err := x.op(ctx, shm.OpCtxDestroy)
	return err
}

// Synchronize is cuCtxSynchronize.
func (x *Context) Synchronize(ctx context.Context) error {
	_, err := x.op(ctx, shm.OpCtxSynchronize)
	return err
}

// MemAlloc is cuMemAlloc.
func (x *Context) MemAlloc(ctx context.Context, size uint64) (DevPtr, error) {
	r, err := x.op(ctx, shm.OpMemAlloc, size)
	return DevPtr(r[0]), err
}

// MemFree is cuMemFree.
func (x *Context) MemFree(ctx context.Context, p DevPtr) error {
	_, err := x.op(ctx, shm.OpMemFree, uint64(p))
	return err
}

// MemcpyHtoD is cuMemcpyHtoD from ordinary Go memory (staged through the
// arena).
func (x *Context) MemcpyHtoD(ctx context.Context, dst DevPtr, src []byte) error {
	off, b, release, err := x.c.staging(len(src))
	if err != nil {
		return err
	}
	copy(b, src)
	e := shm.SQE{Opcode: shm.OpMemcpyHtoD, Args: [shm.NumArgs]uint64{x.h, uint64(dst), off, uint64(len(src))}}
	_, err = x.c.do(ctx, &e, release, nil)
	return err
}

// MemcpyDtoH is cuMemcpyDtoH into ordinary Go memory.
func (x *Context) MemcpyDtoH(ctx context.Context, dst []byte, src DevPtr) error {
	off, b, release, err := x.c.staging(len(dst))
	if err != nil {
		return err
	}
	e := shm.SQE{Opcode: shm.OpMemcpyDtoH, Args: [shm.NumArgs]uint64{x.h, off, uint64(src), uint64(len(dst))}}
	_, err = x.c.do(ctx, &e, release, func() { copy(dst, b) })
	return err
}

// MemcpyHtoDAsync is cuMemcpyHtoDAsync from a host buffer, which must
// stay unchanged until the stream is synchronized.
func (x *Context) MemcpyHtoDAsync(ctx context.Context, dst DevPtr, src *HostBuf, s Stream) error {
	_, err := x.op(ctx, shm.OpMemcpyHtoDAsync, uint64(dst), src.off, uint64(len(src.b)), uint64(s))
	return err
}

// MemcpyDtoHAsync is cuMemcpyDtoHAsync into a host buffer, valid after
// the stream is synchronized.
func (x *Context) MemcpyDtoHAsync(ctx context.Context, dst *HostBuf, src DevPtr, s Stream) error {
	_, err := x.op(ctx, shm.OpMemcpyDtoHAsync, dst.off, uint64(src), uint64(len(dst.b)), uint64(s))
	return err
}

// ModuleLoadData is cuModuleLoadData. For laked's CPU backend the image
// is a registered module name, e.g. "lake_builtin".
func (x *Context) ModuleLoadData(ctx context.Context, image []byte) (Module, error) {
	off, b, release, err := x.c.staging(len(image))
	if err != nil {
		return 0, err
	}
	copy(b, image)
	e := shm.SQE{Opcode: shm.OpModuleLoad, Args: [shm.NumArgs]uint64{x.h, off, uint64(len(image))}}
	r, err := x.c.do(ctx, &e, release, nil)
	return Module(r[0]), err
}

// ModuleUnload is cuModuleUnload.
func (x *Context) ModuleUnload(ctx context.Context, m Module) error {
	_, err := x.op(ctx, shm.OpModuleUnload, uint64(m))
	return err
}

// ModuleGetFunction is cuModuleGetFunction.
func (x *Context) ModuleGetFunction(ctx context.Context, m Module, name string) (Function, error) {
	off, b, release, err := x.c.staging(len(name))
	if err != nil {
		return 0, err
	}
	copy(b, name)
	e := shm.SQE{Opcode: shm.OpModuleGetFunction, Args: [shm.NumArgs]uint64{x.h, uint64(m), off, uint64(len(name))}}
	r, err := x.c.do(ctx, &e, release, nil)
	return Function(r[0]), err
}

// LaunchKernel is cuLaunchKernel. params are the kernel's parameter
// words (device pointers or scalars), as the kernel documents.
func (x *Context) LaunchKernel(ctx context.Context, f Function, grid, block Dim3, sharedMem uint32, s Stream, params ...uint64) error {
	pb := make([]byte, 8*len(params))
	for i, p := range params {
		binary.LittleEndian.PutUint64(pb[8*i:], p)
	}
	desc := shm.EncodeLaunchDesc(nil, &shm.LaunchDesc{
		Grid: [3]uint32{grid.X, grid.Y, grid.Z}, Block: [3]uint32{block.X, block.Y, block.Z},
		SharedMem: sharedMem, Stream: uint64(s), Params: pb,
	})
	off, b, release, err := x.c.staging(len(desc))
	if err != nil {
		return err
	}
	copy(b, desc)
	e := shm.SQE{Opcode: shm.OpLaunchKernel, Args: [shm.NumArgs]uint64{x.h, uint64(f), off, uint64(len(desc))}}
	_, err = x.c.do(ctx, &e, release, nil)
	return err
}

// StreamCreate is cuStreamCreate.
func (x *Context) StreamCreate(ctx context.Context) (Stream, error) {
	r, err := x.op(ctx, shm.OpStreamCreate)
	return Stream(r[0]), err
}

// StreamDestroy is cuStreamDestroy.
func (x *Context) StreamDestroy(ctx context.Context, s Stream) error {
	_, err := x.op(ctx, shm.OpStreamDestroy, uint64(s))
	return err
}

// StreamSynchronize is cuStreamSynchronize.
func (x *Context) StreamSynchronize(ctx context.Context, s Stream) error {
	_, err := x.op(ctx, shm.OpStreamSynchronize, uint64(s))
	return err
}

// ModelInfo describes a model laked serves.
type ModelInfo struct {
	InputBytes, OutputBytes int
	Version                 uint64
}

// ModelInfo asks laked for a model's record sizes and version.
func (c *Client) ModelInfo(ctx context.Context, model uint32) (ModelInfo, error) {
	r, err := c.do(ctx, &shm.SQE{Opcode: shm.OpModelInfo, Args: [shm.NumArgs]uint64{uint64(model)}}, nil, nil)
	if err != nil {
		return ModelInfo{}, err
	}
	return ModelInfo{InputBytes: int(uint32(r[0])), OutputBytes: int(r[0] >> 32), Version: r[1]}, nil
}

// PredictResult says which model version answered and where it ran.
type PredictResult struct {
	Version uint64
	GPU     bool
}

// Predict runs n records through a served model: in holds n input
// records, out receives n output records (sizes from ModelInfo). laked
// batches it with other clients' requests.
func (c *Client) Predict(ctx context.Context, model uint32, n int, in, out []byte) (PredictResult, error) {
	return c.predict(ctx, model, n, in, out, 0)
}

// PredictWithin is Predict with a deadline: the answer is useful only
// within d from now (0 < d <= shm.MaxDeadlineAhead). laked answers a
// request that cannot finish by then at once with "deadline exceeded"
// (errors.Is(err, ErrDeadline)) instead of running it late.
func (c *Client) PredictWithin(ctx context.Context, model uint32, n int, in, out []byte, d time.Duration) (PredictResult, error) {
	if d <= 0 || d > shm.MaxDeadlineAhead {
		return PredictResult{}, fmt.Errorf("lakelib: predict deadline %v: want (0, %v]", d, shm.MaxDeadlineAhead)
	}
	return c.predict(ctx, model, n, in, out, d)
}

func (c *Client) predict(ctx context.Context, model uint32, n int, in, out []byte, within time.Duration) (PredictResult, error) {
	if n <= 0 {
		return PredictResult{}, fmt.Errorf("lakelib: predict of %d items", n)
	}
	if len(in) == 0 || len(out) == 0 {
		return PredictResult{}, errors.New("lakelib: copy of 0 bytes")
	}
	// One staging block for both: the inputs, then the outputs at the
	// next MinBlock boundary (one arena allocation and one release per
	// call instead of two).
	outAt := (len(in) + shm.MinBlock - 1) &^ (shm.MinBlock - 1)
	off, b, err := c.stagingBlock(outAt + len(out))
	if err != nil {
		return PredictResult{}, err
	}
	inB, outB := b[:len(in)], b[outAt:]
	copy(inB, in)
	e := shm.SQE{Opcode: shm.OpPredict, Args: [shm.NumArgs]uint64{uint64(model), uint64(n), off, uint64(len(in)), off + uint64(outAt), uint64(len(out))}}
	if within > 0 {
		shm.SetDeadline(&e, shm.MonotonicNow()+int64(within))
	}
	r, err := c.doStaged(ctx, &e, off, func() { copy(out, outB) })
	return PredictResult{Version: r[0], GPU: r[1] == 1}, err
}

// PredictBuf is Predict on arena buffers, without copies.
func (c *Client) PredictBuf(ctx context.Context, model uint32, n int, in, out *HostBuf) (PredictResult, error) {
	e := shm.SQE{Opcode: shm.OpPredict, Args: [shm.NumArgs]uint64{uint64(model), uint64(n), in.off, uint64(len(in.b)), out.off, uint64(len(out.b))}}
	r, err := c.do(ctx, &e, nil, nil)
	return PredictResult{Version: r[0], GPU: r[1] == 1}, err
}

// maxFetchTries bounds ModelFetch's retries when the model grows between
// asking its size and fetching it.
const maxFetchTries = 4

// ModelFetch returns the portable integer image of a served model (a
// LinnOS integer weight file, a LiteFlow snapshot; see shm/PROTOCOL.md,
// model_fetch) and the model version it belongs to. It asks laked for the
// size first (a zero-length fetch), then fetches into a staging buffer of
// that size, asking again if the model was replaced by a larger one
// meanwhile. Errors: a *StatusError with StatusNotFound (no such model) or
// StatusNotSupported (no integer image). The image comes from laked: a
// caller that builds a model from it validates it first.
func (c *Client) ModelFetch(ctx context.Context, model uint32) ([]byte, uint64, error) {
	size := uint64(0)
	for try := 0; try < maxFetchTries; try++ {
		data, need, version, err := c.modelFetchOnce(ctx, model, size)
		if err == nil {
			return data, version, nil
		}
		if !errors.Is(err, ErrStatus(shm.StatusBufferTooSmall)) {
			return nil, 0, err
		}
		if need == 0 || need > c.region.Layout().ArenaSize {
			return nil, 0, fmt.Errorf("lakelib: model %d: image of %d bytes does not fit the %d-byte arena", model, need, c.region.Layout().ArenaSize)
		}
		size = need
	}
	return nil, 0, fmt.Errorf("lakelib: model %d: image changed size %d times while fetching", model, maxFetchTries)
}

// modelFetchOnce runs one model_fetch into a buffer of size bytes (0: a
// size query). On "buffer too small" need is the size laked asked for.
func (c *Client) modelFetchOnce(ctx context.Context, model uint32, size uint64) (data []byte, need, version uint64, err error) {
	var off uint64
	var buf []byte
	var release func()
	if size > 0 {
		if off, buf, release, err = c.staging(int(size)); err != nil {
			return nil, 0, 0, err
		}
	}
	e := shm.SQE{Opcode: shm.OpModelFetch, Args: [shm.NumArgs]uint64{uint64(model), off, size}}
	// copy the whole buffer out before it is released; r0 trims it below
	r, err := c.do(ctx, &e, release, func() { data = append([]byte(nil), buf...) })
	if err != nil {
		return nil, r[0], r[1], err
	}
	if r[0] == 0 || r[0] > uint64(len(data)) {
		return nil, 0, 0, fmt.Errorf("lakelib: model_fetch: laked says %d bytes in a %d-byte buffer", r[0], len(data))
	}
	return data[:r[0]], 0, r[1], nil
}
