//go:build amd64 && !race

#include "textflag.h"

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
	TESTQ CX, CX
	JZ publish
copy:
	MOVQ (SI), DX
	MOVQ DX, (DI)
	ADDQ $8, SI
	ADDQ $8, DI
	DECQ CX
	JNZ copy
publish:
	MOVQ BX, (AX)
	RET

// func publishOwned(seq *uint64, odd uint64, dst, src unsafe.Pointer, words uintptr, widx *uint64, next uint64)
//
// The owner's whole record write: *seq = odd (in progress), the payload
// words, *seq = odd+1 (complete), *widx = next. Plain MOVs, seen by other
// CPUs in this order (x86-64 TSO; see publish.go).
TEXT ·publishOwned(SB), NOSPLIT, $0-56
	MOVQ seq+0(FP), AX
	MOVQ odd+8(FP), BX
	MOVQ dst+16(FP), DI
	MOVQ src+24(FP), SI
	MOVQ words+32(FP), CX
	MOVQ BX, (AX)
	TESTQ CX, CX
	JZ publish
copy:
	MOVQ (SI), DX
	MOVQ DX, (DI)
	ADDQ $8, SI
	ADDQ $8, DI
	DECQ CX
	JNZ copy
publish:
	INCQ BX
	MOVQ BX, (AX)
	MOVQ widx+40(FP), AX
	MOVQ next+48(FP), BX
	MOVQ BX, (AX)
	RET

// func writerRecord(w *Writer, payload []byte) error
//
// Writer.Record (owner.go). w.hot is the Writer's first field, so w is
// also &w.hot. If the payload has the schema's size, the slot is still in
// the owned state h.want and n = h.next >= h.fastFrom (every ring record is
// the owner's), write record n as publishOwned does, advance h.next and
// return nil. Otherwise write nothing and jump to writerRecordSlow with the
// same arguments. h.want is 0 after Close or Drop, so a closed Writer
// always takes the slow path.
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
	TESTQ CX, CX
	JZ done
copy:
	MOVQ (SI), DX
	MOVQ DX, (DI)
	ADDQ $8, SI
	ADDQ $8, DI
	DECQ CX
	JNZ copy
done:
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
