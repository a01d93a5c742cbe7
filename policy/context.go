package policy

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ContextSize is the size in bytes of Context and of struct lake_policy_ctx.
const ContextSize = 56

// ParamsSize is the size in bytes of the params map value
// (struct lake_policy_params).
const ParamsSize = 32

// Names every policy object must provide.
const (
	// ProgramName is the name of the decision program in a policy object.
	ProgramName = "lake_decide"
	// ParamsMapName is the name of the tunables map in a policy object.
	ParamsMapName = "lake_params"
)

// Documented defaults of the shipped policies.
const (
	// DefaultGPUMinBatch is the default smallest batch sent to the GPU:
	// the batch from which one GPU round trip (an assumed 30 µs of launch,
	// copies and synchronisation, until one is measured) costs less than
	// the vectorised CPU path (about 0.125 µs per LinnOS item), 30/0.125 =
	// 240, rounded up to a power of two. docs/PERFORMANCE.md (issue 15)
	// has the derivation.
	DefaultGPUMinBatch = 256
	// DefaultGPUMaxUtilPct is the default GPU utilisation (%) at and above
	// which no batch is sent to the GPU.
	DefaultGPUMaxUtilPct = 80
)

// Context is what a policy sees for one batch. Its memory layout is exactly
// that of struct lake_policy_ctx in lakelib/include/lake_policy.h (56 bytes, no padding,
// little-endian); TestLayoutMatchesBTF checks it against the compiled object.
type Context struct {
	ModelID       uint32 // model the batch is for
	BatchSize     uint32 // requests in the batch
	QueueDepth    uint32 // requests still waiting behind it
	GPUUtilPct    uint32 // GPU utilisation, 0..100
	GPUMemFreeMiB uint32 // free GPU memory in MiB
	CPUUtilPct    uint32 // CPU utilisation, 0..100
	CPUNsPerItem  uint64 // recent CPU latency per item in ns, 0 = unknown
	GPUNsPerItem  uint64 // recent GPU latency per item in ns, 0 = unknown
	// GPUOtherProcs counts other processes using the GPU (NVML), 0 when
	// none or unknown.
	GPUOtherProcs uint32
	// GPUSelfUtilPct is laked's own part of GPUUtilPct (its GPU busy
	// time), 0..100.
	GPUSelfUtilPct uint32
	// KernelItems counts the batch's items from kernel clients.
	KernelItems uint32
	Reserved    uint32 // 0
}

// AppendBinary appends the C wire form (little-endian) of c to b.
func (c *Context) AppendBinary(b []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, c.ModelID)
	b = binary.LittleEndian.AppendUint32(b, c.BatchSize)
	b = binary.LittleEndian.AppendUint32(b, c.QueueDepth)
	b = binary.LittleEndian.AppendUint32(b, c.GPUUtilPct)
	b = binary.LittleEndian.AppendUint32(b, c.GPUMemFreeMiB)
	b = binary.LittleEndian.AppendUint32(b, c.CPUUtilPct)
	b = binary.LittleEndian.AppendUint64(b, c.CPUNsPerItem)
	b = binary.LittleEndian.AppendUint64(b, c.GPUNsPerItem)
	b = binary.LittleEndian.AppendUint32(b, c.GPUOtherProcs)
	b = binary.LittleEndian.AppendUint32(b, c.GPUSelfUtilPct)
	b = binary.LittleEndian.AppendUint32(b, c.KernelItems)
	b = binary.LittleEndian.AppendUint32(b, c.Reserved)
	return b
}

// Params are the tunables laked writes into the policy's "lake_params" map.
// Layout: struct lake_policy_params (32 bytes).
type Params struct {
	GPUMinBatch   uint32 // GPU only for batches >= this
	GPUMaxUtilPct uint32 // GPU only while utilisation < this, 0..100
	GPUMinMemMiB  uint32 // GPU only with at least this much free memory
	// KernelGPUSharePct reserves a GPU share for kernel batches, 0..100
	// (0: none); see EffectiveUtilPct.
	KernelGPUSharePct uint32
	GPUBatchNs        uint64 // cost-aware policy: fixed GPU cost per batch in ns
	_                 uint64 // reserved, 0
}

// DefaultParams returns the documented defaults (256 items, 80 %).
func DefaultParams() Params {
	return Params{GPUMinBatch: DefaultGPUMinBatch, GPUMaxUtilPct: DefaultGPUMaxUtilPct}
}

// MaxGPUBatchNs is the largest accepted Params.GPUBatchNs (policies clamp
// costs to it so products fit in 64 bits).
const MaxGPUBatchNs = 0xffffffff

// ErrInvalidParams is wrapped by Params.Validate errors.
var ErrInvalidParams = errors.New("invalid policy params")

// Validate reports whether p can be written to a policy.
func (p Params) Validate() error {
	if p.GPUMaxUtilPct > 100 {
		return fmt.Errorf("%w: GPUMaxUtilPct %d > 100", ErrInvalidParams, p.GPUMaxUtilPct)
	}
	if p.KernelGPUSharePct > 100 {
		return fmt.Errorf("%w: KernelGPUSharePct %d > 100", ErrInvalidParams, p.KernelGPUSharePct)
	}
	if p.GPUBatchNs > MaxGPUBatchNs {
		return fmt.Errorf("%w: GPUBatchNs %d > %d", ErrInvalidParams, p.GPUBatchNs, uint64(MaxGPUBatchNs))
	}
	return nil
}

// AppendBinary appends the C wire form (little-endian) of p to b.
func (p Params) AppendBinary(b []byte) []byte {
	b = binary.LittleEndian.AppendUint32(b, p.GPUMinBatch)
	b = binary.LittleEndian.AppendUint32(b, p.GPUMaxUtilPct)
	b = binary.LittleEndian.AppendUint32(b, p.GPUMinMemMiB)
	b = binary.LittleEndian.AppendUint32(b, p.KernelGPUSharePct)
	b = binary.LittleEndian.AppendUint64(b, p.GPUBatchNs)
	b = binary.LittleEndian.AppendUint64(b, 0)
	return b
}

// Side is where a batch runs.
type Side uint8

const (
	// CPU runs the batch on the CPU backend (LAKE_SIDE_CPU).
	CPU Side = 0
	// GPU runs the batch on the GPU backend (LAKE_SIDE_GPU).
	GPU Side = 1
)

// String returns "cpu" or "gpu".
func (s Side) String() string {
	switch s {
	case CPU:
		return "cpu"
	case GPU:
		return "gpu"
	}
	return fmt.Sprintf("side(%d)", uint8(s))
}

// MaxBatchHint is the largest batch size hint a policy can return.
const MaxBatchHint = 0xffffff

// Decision is a policy's answer for one batch.
type Decision struct {
	Side Side
	// BatchHint, when non-zero, is the batch size at which the policy would
	// change its mind (e.g. the smallest batch for which the GPU wins); the
	// batcher may use it to wait for more requests. 0 means no hint.
	BatchHint uint32
}

// Encode returns the program return value for d (LAKE_DECISION in C).
func (d Decision) Encode() uint32 {
	return uint32(d.Side) | (d.BatchHint&MaxBatchHint)<<8
}

// ErrBadDecision is wrapped when a policy returns an invalid value.
var ErrBadDecision = errors.New("policy returned an invalid decision")

// DecodeDecision decodes a program return value. Sides other than 0 and 1
// are an error wrapping ErrBadDecision.
func DecodeDecision(v uint32) (Decision, error) {
	side := v & 0xff
	if side > uint32(GPU) {
		return Decision{}, fmt.Errorf("%w: return value %#x has side %d (want 0 or 1)", ErrBadDecision, v, side)
	}
	return Decision{Side: Side(side), BatchHint: v >> 8}, nil
}
