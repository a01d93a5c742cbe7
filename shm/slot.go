package shm

import (
	"encoding/binary"
	"fmt"
)

// Submission slot (SQE) field offsets (PROTOCOL.md, "Submission slot").
const (
	sqeOffSeq    = 0  // u32, ring sequence (owned by the ring, not the op)
	sqeOffOpcode = 4  // u8
	sqeOffFlags  = 5  // u8
	sqeOffPad    = 6  // u16, must be zero
	sqeOffTag    = 8  // u64, client-chosen, echoed in the completion
	sqeOffArgs   = 16 // u64[6]
)

// Completion slot (CQE) field offsets (PROTOCOL.md, "Completion slot").
const (
	cqeOffPad     = 0  // u32, zero
	cqeOffStatus  = 4  // i32
	cqeOffTag     = 8  // u64
	cqeOffResults = 16 // u64[2]
)

// NumArgs is the number of u64 arguments in a submission slot.
const NumArgs = 6

// Opcode names an operation. The values are part of the protocol.
type Opcode uint8

// Opcodes (PROTOCOL.md, "Operations").
const (
	OpNop               Opcode = 1
	OpInit              Opcode = 2
	OpCtxCreate         Opcode = 3
	OpCtxDestroy        Opcode = 4
	OpCtxSynchronize    Opcode = 5
	OpMemAlloc          Opcode = 6
	OpMemFree           Opcode = 7
	OpMemcpyHtoD        Opcode = 8
	OpMemcpyDtoH        Opcode = 9
	OpMemcpyHtoDAsync   Opcode = 10
	OpMemcpyDtoHAsync   Opcode = 11
	OpModuleLoad        Opcode = 12
	OpModuleUnload      Opcode = 13
	OpModuleGetFunction Opcode = 14
	OpLaunchKernel      Opcode = 15
	OpStreamCreate      Opcode = 16
	OpStreamDestroy     Opcode = 17
	OpStreamSynchronize Opcode = 18
	OpPredict           Opcode = 19
	OpModelInfo         Opcode = 20
	OpModelFetch        Opcode = 21 // protocol 1.1
	opMax               Opcode = 21
)

var opNames = [...]string{
	OpNop: "nop", OpInit: "init", OpCtxCreate: "ctx_create", OpCtxDestroy: "ctx_destroy",
	OpCtxSynchronize: "ctx_synchronize", OpMemAlloc: "mem_alloc", OpMemFree: "mem_free",
	OpMemcpyHtoD: "memcpy_htod", OpMemcpyDtoH: "memcpy_dtoh", OpMemcpyHtoDAsync: "memcpy_htod_async",
	OpMemcpyDtoHAsync: "memcpy_dtoh_async", OpModuleLoad: "module_load", OpModuleUnload: "module_unload",
	OpModuleGetFunction: "module_get_function", OpLaunchKernel: "launch_kernel",
	OpStreamCreate: "stream_create", OpStreamDestroy: "stream_destroy",
	OpStreamSynchronize: "stream_synchronize", OpPredict: "predict", OpModelInfo: "model_info",
	OpModelFetch: "model_fetch",
}

// Valid reports whether op is an opcode of this protocol version.
func (op Opcode) Valid() bool { return op >= OpNop && op <= opMax }

// String returns the opcode's protocol name.
func (op Opcode) String() string {
	if op.Valid() {
		return opNames[op]
	}
	return fmt.Sprintf("opcode(%d)", uint8(op))
}

// Status is a completion's status code. The values are part of the
// protocol; 0 is success.
type Status int32

// Status codes (PROTOCOL.md, "Status codes").
const (
	StatusOK               Status = 0
	StatusBadOpcode        Status = 1  // unknown opcode
	StatusInvalidValue     Status = 2  // a malformed argument
	StatusOutOfBounds      Status = 3  // an arena range outside the arena
	StatusInvalidHandle    Status = 4  // unknown context, module, function, stream or device pointer
	StatusOutOfMemory      Status = 5  // device memory or a per-client limit exhausted
	StatusNotFound         Status = 6  // unknown module, kernel or model
	StatusLaunchFailed     Status = 7  // a kernel failed while running
	StatusNotSupported     Status = 8  // the backend cannot do this
	StatusBusy             Status = 9  // laked is overloaded; try again
	StatusShutdown         Status = 10 // laked is shutting down; the op did not run
	StatusInternal         Status = 11 // a laked bug; the op may or may not have run
	StatusModelFailed      Status = 12 // the model rejected or failed the batch
	StatusContextDestroyed Status = 13 // the context was destroyed
	StatusBufferTooSmall   Status = 14 // an output buffer is too small; results say the size needed (protocol 1.1)
	StatusDeadline         Status = 15 // the predict's deadline passed (or would have) before it ran; it did not run
	statusMax              Status = 15
)

// NumStatuses is the number of status codes of this protocol version
// (0 .. NumStatuses-1).
const NumStatuses = int(statusMax) + 1

var statusNames = [...]string{
	StatusOK: "ok", StatusBadOpcode: "bad opcode", StatusInvalidValue: "invalid value",
	StatusOutOfBounds: "out of bounds", StatusInvalidHandle: "invalid handle",
	StatusOutOfMemory: "out of memory", StatusNotFound: "not found",
	StatusLaunchFailed: "launch failed", StatusNotSupported: "not supported",
	StatusBusy: "busy", StatusShutdown: "shutting down", StatusInternal: "internal error",
	StatusModelFailed: "model failed", StatusContextDestroyed: "context destroyed",
	StatusBufferTooSmall: "buffer too small",
	StatusDeadline:       "deadline exceeded",
}

// String returns the status's name.
func (s Status) String() string {
	if s >= 0 && s <= statusMax {
		return statusNames[s]
	}
	return fmt.Sprintf("status(%d)", int32(s))
}

// SQE is a decoded submission slot. The ring sequence word is not part of
// it: the ring owns that word.
type SQE struct {
	Opcode Opcode
	Flags  uint8
	Pad    uint16
	Tag    uint64
	Args   [NumArgs]uint64
}

// CQE is a decoded completion slot.
type CQE struct {
	Status  Status
	Tag     uint64
	Results [2]uint64
}

// encodeSQE writes e into a 64-byte slot, leaving the sequence word alone.
func encodeSQE(slot []byte, e *SQE) {
	_ = slot[SlotSize-1]
	slot[sqeOffOpcode] = byte(e.Opcode)
	slot[sqeOffFlags] = e.Flags
	binary.LittleEndian.PutUint16(slot[sqeOffPad:], e.Pad)
	binary.LittleEndian.PutUint64(slot[sqeOffTag:], e.Tag)
	for i, a := range e.Args {
		binary.LittleEndian.PutUint64(slot[sqeOffArgs+8*i:], a)
	}
}

// DecodeSQE decodes a 64-byte slot copy. It never fails: every bit
// pattern is a decodable SQE; whether it is a valid operation is for the
// consumer to check (Opcode.Valid, flags, arguments).
func DecodeSQE(slot []byte, e *SQE) {
	_ = slot[SlotSize-1]
	e.Opcode = Opcode(slot[sqeOffOpcode])
	e.Flags = slot[sqeOffFlags]
	e.Pad = binary.LittleEndian.Uint16(slot[sqeOffPad:])
	e.Tag = binary.LittleEndian.Uint64(slot[sqeOffTag:])
	for i := range e.Args {
		e.Args[i] = binary.LittleEndian.Uint64(slot[sqeOffArgs+8*i:])
	}
}

// EncodeSQE writes e into a 64-byte buffer (sequence word zero). It is the
// inverse of DecodeSQE, for tests and tools.
func EncodeSQE(slot []byte, e *SQE) {
	binary.LittleEndian.PutUint32(slot[sqeOffSeq:], 0)
	encodeSQE(slot, e)
}

func encodeCQE(slot []byte, c *CQE) {
	_ = slot[SlotSize-1]
	binary.LittleEndian.PutUint32(slot[cqeOffPad:], 0)
	binary.LittleEndian.PutUint32(slot[cqeOffStatus:], uint32(c.Status))
	binary.LittleEndian.PutUint64(slot[cqeOffTag:], c.Tag)
	binary.LittleEndian.PutUint64(slot[cqeOffResults:], c.Results[0])
	binary.LittleEndian.PutUint64(slot[cqeOffResults+8:], c.Results[1])
}

func decodeCQE(slot []byte, c *CQE) {
	_ = slot[SlotSize-1]
	c.Status = Status(int32(binary.LittleEndian.Uint32(slot[cqeOffStatus:])))
	c.Tag = binary.LittleEndian.Uint64(slot[cqeOffTag:])
	c.Results[0] = binary.LittleEndian.Uint64(slot[cqeOffResults:])
	c.Results[1] = binary.LittleEndian.Uint64(slot[cqeOffResults+8:])
}

// Launch descriptor layout (PROTOCOL.md, "launch_kernel").
const (
	LaunchDescHeader = 40   // bytes before the parameter words
	MaxLaunchParams  = 4096 // bytes of parameter words at most
)

// LaunchDesc is the decoded launch descriptor that launch_kernel points
// at in the arena.
type LaunchDesc struct {
	Grid, Block [3]uint32
	SharedMem   uint32
	Stream      uint64
	Params      []byte // len is a multiple of 8
}

// EncodeLaunchDesc appends the encoding of d to dst.
func EncodeLaunchDesc(dst []byte, d *LaunchDesc) []byte {
	var h [LaunchDescHeader]byte
	le := binary.LittleEndian
	for i := 0; i < 3; i++ {
		le.PutUint32(h[4*i:], d.Grid[i])
		le.PutUint32(h[12+4*i:], d.Block[i])
	}
	le.PutUint32(h[24:], d.SharedMem)
	le.PutUint32(h[28:], uint32(len(d.Params)))
	le.PutUint64(h[32:], d.Stream)
	dst = append(dst, h[:]...)
	return append(dst, d.Params...)
}

// DecodeLaunchDesc decodes and validates an untrusted launch descriptor.
// The returned Params alias b.
func DecodeLaunchDesc(b []byte, d *LaunchDesc) error {
	if len(b) < LaunchDescHeader {
		return fmt.Errorf("launch descriptor: %d bytes, need at least %d", len(b), LaunchDescHeader)
	}
	le := binary.LittleEndian
	for i := 0; i < 3; i++ {
		d.Grid[i] = le.Uint32(b[4*i:])
		d.Block[i] = le.Uint32(b[12+4*i:])
		if d.Grid[i] == 0 || d.Block[i] == 0 {
			return fmt.Errorf("launch descriptor: zero grid or block dimension %d", i)
		}
	}
	d.SharedMem = le.Uint32(b[24:])
	n := le.Uint32(b[28:])
	d.Stream = le.Uint64(b[32:])
	if n%8 != 0 || n > MaxLaunchParams {
		return fmt.Errorf("launch descriptor: %d parameter bytes: want a multiple of 8 up to %d", n, MaxLaunchParams)
	}
	if uint64(len(b)) != LaunchDescHeader+uint64(n) {
		return fmt.Errorf("launch descriptor: %d bytes, header says %d", len(b), LaunchDescHeader+uint64(n))
	}
	d.Params = b[LaunchDescHeader:]
	return nil
}
