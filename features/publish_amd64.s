//go:build amd64 && !race

#include "textflag.h"

// COPY_WORDS copies CX 8-byte words from (SI) to (DI) with plain MOVs
// (clobbers CX, DX, SI, DI; CX may be 0). Its labels are local to the
// function that uses it.
#define COPY_WORDS \
	TESTQ CX, CX; \
	JZ    copied; \
copy: \
	MOVQ  (SI), DX; \
	MOVQ  DX, (DI); \
	ADDQ  $8, SI; \
	ADDQ  $8, DI; \
	DECQ  CX; \
	JNZ   copy; \
copied:

// func publishRecord(seq *uint64, val uint64, dst, src unsafe.Pointer, words uintptr)
//
// Copies words 8-byte words from src to dst with plain MOVs, then stores
// val to *seq with a plain MOV. On x86-64 both are release stores and are
// seen by other CPUs in program order (see publish.go).
TEXT ·publishRecord(SB), NOSPLIT, $0-40
	MOVQ seq+0(FP), AX
	MOVQ val+8(FP), BX
	MOVQ dst+16(FP), DI
	MOVQ src+24(FP), SI
	MOVQ words+32(FP), CX
	COPY_WORDS
	MOVQ BX, (AX)
	RET

// func writerRecord(w *Writer, payload []byte) error
//
// Writer.Record (owner.go). w.hot is the Writer's first field, so w is
// also &w.hot. If the payload has the schema's size, the slot is still in
// the owned state h.want and n = h.next >= h.fastFrom (every ring record is
// the owner's), write record n (*seq = 2n+1, the payload, *seq = 2n+2,
// *widx = n+1), advance h.next and return nil. Otherwise write nothing and
// jump to writerRecordSlow with the same arguments. h.want is 0 after
// Close or Drop, so a closed Writer always takes the slow path.
TEXT ·writerRecord(SB), NOSPLIT, $0-48
	MOVQ w+0(FP), R8
	MOVQ payload_base+8(FP), SI
	MOVQ payload_len+16(FP), AX
	CMPQ AX, 72(R8)         // len == size?
	JNE slow
	MOVQ 0(R8), AX          // state pointer
	MOVQ (AX), AX
	CMPQ AX, 24(R8)         // == want?
	JNE slow
	MOVQ 48(R8), R10        // n = next
	CMPQ R10, 56(R8)        // n >= fastFrom?
	JB slow
	MOVQ R10, R11
	ANDQ 32(R8), R11        // n & mask
	IMULQ 40(R8), R11       // * stride
	ADDQ 16(R8), R11        // record address
	LEAQ 1(R10)(R10*1), BX  // 2n+1
	MOVQ BX, (R11)          // in progress
	LEAQ 16(R11), DI        // payload (recHdrSize)
	MOVQ 64(R8), CX         // words
	COPY_WORDS
	INCQ BX
	MOVQ BX, (R11)          // complete
	INCQ R10
	MOVQ 8(R8), R9
	MOVQ R10, (R9)          // write index n+1, for readers
	MOVQ R10, 48(R8)        // next = n+1
	MOVQ $0, ret_itable+32(FP)
	MOVQ $0, ret_data+40(FP)
	RET
slow:
	JMP ·writerRecordSlow(SB)
