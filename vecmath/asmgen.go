//go:build ignore

// asmgen writes kernels_amd64.s, the amd64 assembly of package vecmath.
// Run it with `go generate ./vecmath` (see gen.go). Each kernel exists once
// per vector width; the text below unrolls the register-blocked loops
// that would be tedious and error-prone to write by hand.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"log"
	"os"
	"strings"
)

var b bytes.Buffer

func p(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }

// isa describes one vector width: the register prefix, the register size
// in bytes and how many accumulators a register-blocked group holds.
type isa struct {
	name  string // function suffix
	reg   string // "Z" or "Y"
	bytes int
	group int // accumulators per group
	vnni  bool
}

// mov is the unaligned integer vector move for the width.
func (s isa) mov() string {
	if s.reg == "Z" {
		return "VMOVDQU32"
	}
	return "VMOVDQU"
}

// xor is the integer vector XOR for the width (registers 16-31 need EVEX).
func (s isa) xor() string {
	if s.reg == "Z" {
		return "VPXORD"
	}
	return "VPXOR"
}

func r(s isa, i int) string { return fmt.Sprintf("%s%d", s.reg, i) }

// dotPairs16 emits
//
//	func dotPairs16<name>(acc *int32, w *int32, x *int32, blocks, stride, pairs int, relu bool)
//
// For each of blocks vectors of int32 accumulators at acc it adds, for every
// pair p with x[p] != 0, the two-lane int16 dot products of the weight
// vector at w+p*stride with x[p] broadcast (VPDPWSSD, or VPMADDWD+VPADDD),
// and with relu stores max(sum, 0).
func dotPairs16(s isa) {
	p("// func dotPairs16%s(acc *int32, w *int32, x *int32, blocks, stride, pairs int, relu bool)", s.name)
	p("TEXT ·dotPairs16%s(SB), NOSPLIT, $0-49", s.name)
	p("\tMOVQ acc+0(FP), DI")
	p("\tMOVQ w+8(FP), SI")
	p("\tMOVQ blocks+24(FP), CX")
	p("\tMOVQ stride+32(FP), R8")
	bx, tmp := r(s, s.group), r(s, s.group+1)
	// Groups of s.group accumulators, then 4, 2 and 1. Only the full group
	// uses VPDPWSSD: in a small group its 5-cycle accumulator chain is the
	// bottleneck, while VPMADDWD products are independent and VPADDD's
	// chain takes one cycle.
	groups := []int{s.group, 4, 2, 1}
	for gi, g := range groups {
		lbl := fmt.Sprintf("g%d", g)
		vnni := s.vnni && g == s.group
		p("dp%s%s:", s.name, lbl)
		p("\tCMPQ CX, $%d", g)
		if g == 1 {
			p("\tJB dp%sdone", s.name)
		} else {
			p("\tJB dp%sg%d", s.name, groups[gi+1])
		}
		for i := 0; i < g; i++ {
			p("\t%s %d(DI), %s", s.mov(), i*s.bytes, r(s, i))
		}
		p("\tMOVQ SI, R10")
		p("\tMOVQ x+16(FP), R11")
		p("\tMOVQ pairs+40(FP), R12")
		p("dp%s%sloop:", s.name, lbl)
		p("\tTESTQ R12, R12")
		p("\tJZ dp%s%sstore", s.name, lbl)
		p("\tMOVL (R11), AX")
		p("\tTESTL AX, AX")
		p("\tJZ dp%s%snext", s.name, lbl)
		p("\tVPBROADCASTD (R11), %s", bx)
		for i := 0; i < g; i++ {
			if vnni {
				p("\tVPDPWSSD %d(R10), %s, %s", i*s.bytes, bx, r(s, i))
			} else {
				p("\tVPMADDWD %d(R10), %s, %s", i*s.bytes, bx, tmp)
				p("\tVPADDD %s, %s, %s", tmp, r(s, i), r(s, i))
			}
		}
		p("dp%s%snext:", s.name, lbl)
		p("\tADDQ $4, R11")
		p("\tADDQ R8, R10")
		p("\tDECQ R12")
		p("\tJMP dp%s%sloop", s.name, lbl)
		p("dp%s%sstore:", s.name, lbl)
		p("\tCMPB relu+48(FP), $0")
		p("\tJZ dp%s%snorelu", s.name, lbl)
		zero := r(s, s.group+2)
		p("\t%s %s, %s, %s", s.xor(), zero, zero, zero)
		for i := 0; i < g; i++ {
			p("\tVPMAXSD %s, %s, %s", zero, r(s, i), r(s, i))
		}
		p("dp%s%snorelu:", s.name, lbl)
		for i := 0; i < g; i++ {
			p("\t%s %s, %d(DI)", s.mov(), r(s, i), i*s.bytes)
		}
		p("\tADDQ $%d, DI", g*s.bytes)
		p("\tADDQ $%d, SI", g*s.bytes)
		p("\tSUBQ $%d, CX", g)
		p("\tJMP dp%s%s", s.name, lbl)
	}
	p("dp%sdone:", s.name)
	p("\tVZEROUPPER")
	p("\tRET")
	p("")
}

// mulAccI64 emits
//
//	func mulAccI64<name>(acc *int64, w *int64, x *int32, blocks, stride, n int)
//
// For each of blocks vectors of int64 accumulators at acc it adds, for every
// k with x[k] != 0, int64(x[k]) * int64(int32(w[k*stride+o])) (VPMULDQ uses
// the low, signed 32 bits of each quadword).
func mulAccI64(s isa) {
	p("// func mulAccI64%s(acc *int64, w *int64, x *int32, blocks, stride, n int)", s.name)
	p("TEXT ·mulAccI64%s(SB), NOSPLIT, $0-48", s.name)
	p("\tMOVQ acc+0(FP), DI")
	p("\tMOVQ w+8(FP), SI")
	p("\tMOVQ blocks+24(FP), CX")
	p("\tMOVQ stride+32(FP), R8")
	bx := r(s, s.group)
	for _, g := range []int{s.group, 1} {
		lbl := fmt.Sprintf("g%d", g)
		p("ma%s%s:", s.name, lbl)
		p("\tCMPQ CX, $%d", g)
		if g == 1 {
			p("\tJB ma%sdone", s.name)
		} else {
			p("\tJB ma%sg1", s.name)
		}
		for i := 0; i < g; i++ {
			p("\t%s %d(DI), %s", s.mov(), i*s.bytes, r(s, i))
		}
		p("\tMOVQ SI, R10")
		p("\tMOVQ x+16(FP), R11")
		p("\tMOVQ n+40(FP), R12")
		p("ma%s%sloop:", s.name, lbl)
		p("\tTESTQ R12, R12")
		p("\tJZ ma%s%sstore", s.name, lbl)
		p("\tMOVL (R11), AX")
		p("\tTESTL AX, AX")
		p("\tJZ ma%s%snext", s.name, lbl)
		p("\tVPBROADCASTD (R11), %s", bx)
		for i := 0; i < g; i++ {
			t := r(s, s.group+1+i%2)
			p("\tVPMULDQ %d(R10), %s, %s", i*s.bytes, bx, t)
			p("\tVPADDQ %s, %s, %s", t, r(s, i), r(s, i))
		}
		p("ma%s%snext:", s.name, lbl)
		p("\tADDQ $4, R11")
		p("\tADDQ R8, R10")
		p("\tDECQ R12")
		p("\tJMP ma%s%sloop", s.name, lbl)
		p("ma%s%sstore:", s.name, lbl)
		for i := 0; i < g; i++ {
			p("\t%s %s, %d(DI)", s.mov(), r(s, i), i*s.bytes)
		}
		p("\tADDQ $%d, DI", g*s.bytes)
		p("\tADDQ $%d, SI", g*s.bytes)
		p("\tSUBQ $%d, CX", g)
		p("\tJMP ma%s%s", s.name, lbl)
	}
	p("ma%sdone:", s.name)
	p("\tVZEROUPPER")
	p("\tRET")
	p("")
}

// dotI64 emits
//
//	func dotI64<name>(x *int32, w *int64, blocks int) int64
//
// the sum over blocks*lanes elements of int64(x[k]) * int64(int32(w[k])),
// with lanes = register bytes / 8.
func dotI64(s isa) {
	lanes := s.bytes / 8
	half := "Y"
	if s.reg == "Y" {
		half = "X"
	}
	p("// func dotI64%s(x *int32, w *int64, blocks int) int64", s.name)
	p("TEXT ·dotI64%s(SB), NOSPLIT, $0-32", s.name)
	p("\tMOVQ x+0(FP), SI")
	p("\tMOVQ w+8(FP), DI")
	p("\tMOVQ blocks+16(FP), CX")
	p("\tVPXOR %s0, %s0, %s0", half, half, half) // zeroes the full register
	p("\tVPXOR %s1, %s1, %s1", half, half, half)
	p("di%sloop2:", s.name)
	p("\tCMPQ CX, $2")
	p("\tJB di%sloop1", s.name)
	p("\tVPMOVSXDQ (SI), %s", r(s, 2))
	p("\tVPMOVSXDQ %d(SI), %s", lanes*4, r(s, 3))
	p("\tVPMULDQ (DI), %s, %s", r(s, 2), r(s, 2))
	p("\tVPMULDQ %d(DI), %s, %s", s.bytes, r(s, 3), r(s, 3))
	p("\tVPADDQ %s, %s, %s", r(s, 2), r(s, 0), r(s, 0))
	p("\tVPADDQ %s, %s, %s", r(s, 3), r(s, 1), r(s, 1))
	p("\tADDQ $%d, SI", 2*lanes*4)
	p("\tADDQ $%d, DI", 2*s.bytes)
	p("\tSUBQ $2, CX")
	p("\tJMP di%sloop2", s.name)
	p("di%sloop1:", s.name)
	p("\tTESTQ CX, CX")
	p("\tJZ di%ssum", s.name)
	p("\tVPMOVSXDQ (SI), %s", r(s, 2))
	p("\tVPMULDQ (DI), %s, %s", r(s, 2), r(s, 2))
	p("\tVPADDQ %s, %s, %s", r(s, 2), r(s, 0), r(s, 0))
	p("di%ssum:", s.name)
	p("\tVPADDQ %s, %s, %s", r(s, 1), r(s, 0), r(s, 0))
	if s.reg == "Z" {
		p("\tVEXTRACTI64X4 $1, Z0, Y1")
		p("\tVPADDQ Y1, Y0, Y0")
	}
	p("\tVEXTRACTI128 $1, Y0, X1")
	p("\tVPADDQ X1, X0, X0")
	p("\tVPSHUFD $0x4e, X0, X1")
	p("\tVPADDQ X1, X0, X0")
	p("\tVMOVQ X0, AX")
	p("\tMOVQ AX, ret+24(FP)")
	p("\tVZEROUPPER")
	p("\tRET")
	p("")
}

// dotI64x2 emits
//
//	func dotI64x2<name>(x *int32, w0, w1 *int64, blocks int) (s0, s1 int64)
//
// the two sums over blocks*lanes elements of int64(x[k]) * int64(int32(wj[k])),
// loading each x once.
func dotI64x2(s isa) {
	lanes := s.bytes / 8
	p("// func dotI64x2%s(x *int32, w0, w1 *int64, blocks int) (s0, s1 int64)", s.name)
	p("TEXT ·dotI64x2%s(SB), NOSPLIT, $0-48", s.name)
	p("\tMOVQ x+0(FP), SI")
	p("\tMOVQ w0+8(FP), DI")
	p("\tMOVQ w1+16(FP), DX")
	p("\tMOVQ blocks+24(FP), CX")
	for i := 0; i < 4; i++ {
		p("\tVPXOR %s, %s, %s", halfReg(s, i), halfReg(s, i), halfReg(s, i))
	}
	p("dx%sloop2:", s.name)
	p("\tCMPQ CX, $2")
	p("\tJB dx%sloop1", s.name)
	p("\tVPMOVSXDQ (SI), %s", r(s, 4))
	p("\tVPMOVSXDQ %d(SI), %s", lanes*4, r(s, 5))
	p("\tVPMULDQ (DI), %s, %s", r(s, 4), r(s, 6))
	p("\tVPMULDQ %d(DI), %s, %s", s.bytes, r(s, 5), r(s, 7))
	p("\tVPMULDQ (DX), %s, %s", r(s, 4), r(s, 8))
	p("\tVPMULDQ %d(DX), %s, %s", s.bytes, r(s, 5), r(s, 9))
	p("\tVPADDQ %s, %s, %s", r(s, 6), r(s, 0), r(s, 0))
	p("\tVPADDQ %s, %s, %s", r(s, 7), r(s, 1), r(s, 1))
	p("\tVPADDQ %s, %s, %s", r(s, 8), r(s, 2), r(s, 2))
	p("\tVPADDQ %s, %s, %s", r(s, 9), r(s, 3), r(s, 3))
	p("\tADDQ $%d, SI", 2*lanes*4)
	p("\tADDQ $%d, DI", 2*s.bytes)
	p("\tADDQ $%d, DX", 2*s.bytes)
	p("\tSUBQ $2, CX")
	p("\tJMP dx%sloop2", s.name)
	p("dx%sloop1:", s.name)
	p("\tTESTQ CX, CX")
	p("\tJZ dx%ssum", s.name)
	p("\tVPMOVSXDQ (SI), %s", r(s, 4))
	p("\tVPMULDQ (DI), %s, %s", r(s, 4), r(s, 6))
	p("\tVPMULDQ (DX), %s, %s", r(s, 4), r(s, 8))
	p("\tVPADDQ %s, %s, %s", r(s, 6), r(s, 0), r(s, 0))
	p("\tVPADDQ %s, %s, %s", r(s, 8), r(s, 2), r(s, 2))
	p("dx%ssum:", s.name)
	p("\tVPADDQ %s, %s, %s", r(s, 1), r(s, 0), r(s, 0))
	p("\tVPADDQ %s, %s, %s", r(s, 3), r(s, 2), r(s, 2))
	for _, a := range []int{0, 2} {
		if s.reg == "Z" {
			p("\tVEXTRACTI64X4 $1, Z%d, Y%d", a, a+1)
			p("\tVPADDQ Y%d, Y%d, Y%d", a+1, a, a)
		}
		p("\tVEXTRACTI128 $1, Y%d, X%d", a, a+1)
		p("\tVPADDQ X%d, X%d, X%d", a+1, a, a)
		p("\tVPSHUFD $0x4e, X%d, X%d", a, a+1)
		p("\tVPADDQ X%d, X%d, X%d", a+1, a, a)
	}
	p("\tVMOVQ X0, AX")
	p("\tMOVQ AX, s0+32(FP)")
	p("\tVMOVQ X2, AX")
	p("\tMOVQ AX, s1+40(FP)")
	p("\tVZEROUPPER")
	p("\tRET")
	p("")
}

// halfReg names register i at half the width; a VEX write to it zeroes
// the whole register.
func halfReg(s isa, i int) string {
	if s.reg == "Z" {
		return fmt.Sprintf("Y%d", i)
	}
	return fmt.Sprintf("X%d", i)
}

// mulAddColsF32 emits
//
//	func mulAddColsF32<name>(y *float32, w *float32, x *float32, blocks, stride, n int, skipZero bool)
//
// For each of blocks vectors of float32 sums at y it adds, for k = 0..n-1
// in order (skipping x[k] == ±0 when skipZero), the float32 product
// x[k]*w[k*stride+o], rounded before the addition (no FMA).
func mulAddColsF32(s isa) {
	p("// func mulAddColsF32%s(y *float32, w *float32, x *float32, blocks, stride, n int, skipZero bool)", s.name)
	p("TEXT ·mulAddColsF32%s(SB), NOSPLIT, $0-49", s.name)
	p("\tMOVQ y+0(FP), DI")
	p("\tMOVQ w+8(FP), SI")
	p("\tMOVQ blocks+24(FP), CX")
	p("\tMOVQ stride+32(FP), R8")
	p("\tMOVBLZX skipZero+48(FP), R13")
	bx := r(s, s.group)
	for _, g := range []int{s.group, 1} {
		lbl := fmt.Sprintf("g%d", g)
		p("mf%s%s:", s.name, lbl)
		p("\tCMPQ CX, $%d", g)
		if g == 1 {
			p("\tJB mf%sdone", s.name)
		} else {
			p("\tJB mf%sg1", s.name)
		}
		for i := 0; i < g; i++ {
			p("\tVMOVUPS %d(DI), %s", i*s.bytes, r(s, i))
		}
		p("\tMOVQ SI, R10")
		p("\tMOVQ x+16(FP), R11")
		p("\tMOVQ n+40(FP), R12")
		p("mf%s%sloop:", s.name, lbl)
		p("\tTESTQ R12, R12")
		p("\tJZ mf%s%sstore", s.name, lbl)
		p("\tTESTQ R13, R13")
		p("\tJZ mf%s%sgo", s.name, lbl)
		p("\tMOVL (R11), AX")
		p("\tANDL $0x7fffffff, AX")
		p("\tJZ mf%s%snext", s.name, lbl)
		p("mf%s%sgo:", s.name, lbl)
		p("\tVBROADCASTSS (R11), %s", bx)
		for i := 0; i < g; i++ {
			t := r(s, s.group+1+i%2)
			p("\tVMULPS %d(R10), %s, %s", i*s.bytes, bx, t)
			p("\tVADDPS %s, %s, %s", t, r(s, i), r(s, i))
		}
		p("mf%s%snext:", s.name, lbl)
		p("\tADDQ $4, R11")
		p("\tADDQ R8, R10")
		p("\tDECQ R12")
		p("\tJMP mf%s%sloop", s.name, lbl)
		p("mf%s%sstore:", s.name, lbl)
		for i := 0; i < g; i++ {
			p("\tVMOVUPS %s, %d(DI)", r(s, i), i*s.bytes)
		}
		p("\tADDQ $%d, DI", g*s.bytes)
		p("\tADDQ $%d, SI", g*s.bytes)
		p("\tSUBQ $%d, CX", g)
		p("\tJMP mf%s%s", s.name, lbl)
	}
	p("mf%sdone:", s.name)
	p("\tVZEROUPPER")
	p("\tRET")
	p("")
}

// requant emits
//
//	func requant<name>(dst, acc, mult, left, right *int32, blocks int, zero, clo, chi int32)
//
// TFLite's requantization of blocks vectors of int32 accumulators:
// SaturatingLeftShift by left (clamped to [0, 31]), SaturatingRoundingDoublingHighMul
// by mult, RoundingDivideByPOT by right (clamped to [0, 31]), then
// min(max(r, clo), chi) + zero. See Requant for the exact semantics.
func requant(s isa) {
	p("// func requant%s(dst, acc, mult, left, right *int32, blocks int, zero, clo, chi int32)", s.name)
	p("TEXT ·requant%s(SB), NOSPLIT, $0-60", s.name)
	p("\tMOVQ dst+0(FP), DI")
	p("\tMOVQ acc+8(FP), SI")
	p("\tMOVQ mult+16(FP), DX")
	p("\tMOVQ left+24(FP), R8")
	p("\tMOVQ right+32(FP), R9")
	p("\tMOVQ blocks+40(FP), CX")
	z := s.reg == "Z"
	// Constants. AVX-512 broadcasts from a general register; AVX2 goes
	// through X0.
	bd := func(val string, reg int, q bool) {
		op := "VPBROADCASTD"
		mv := "MOVL"
		if q {
			op, mv = "VPBROADCASTQ", "MOVQ"
		}
		p("\t%s %s, AX", mv, val)
		if z {
			p("\t%s AX, %s", op, r(s, reg))
		} else {
			p("\tVMOVQ AX, X0")
			p("\t%s X0, %s", op, r(s, reg))
		}
	}
	// AVX2: Y7..Y15 constants, Y0..Y6 work. AVX-512: Z16..Z26 constants.
	c := map[string]int{"c31": 7, "zero": 8, "min": 9, "nudge": 10, "clo": 13, "chi": 14, "zp": 15}
	if z {
		c = map[string]int{"c31": 16, "zero": 17, "min": 18, "nudge": 19, "clo": 22, "chi": 23, "zp": 24, "ones": 25, "max": 26}
	}
	bd("$31", c["c31"], false)
	p("\t%s %s, %s, %s", s.xor(), r(s, c["zero"]), r(s, c["zero"]), r(s, c["zero"]))
	bd("$0x80000000", c["min"], false)
	bd("$0x40000000", c["nudge"], true)
	bd("clo+52(FP)", c["clo"], false)
	bd("chi+56(FP)", c["chi"], false)
	bd("zero+48(FP)", c["zp"], false)
	if z {
		bd("$-1", c["ones"], false)
		bd("$0x7fffffff", c["max"], false)
		p("\tMOVW $0xaaaa, AX")
		p("\tKMOVW AX, K2")
	}
	C := func(n string) string { return r(s, c[n]) }
	R := func(i int) string { return r(s, i) }
	mov := s.mov()
	p("rq%sloop:", s.name)
	p("\tTESTQ CX, CX")
	p("\tJZ rq%sdone", s.name)
	requantMath(s, R, C, "(SI)", "(DX)", "(R8)", "(R9)")
	p("\t%s %s, (DI)", mov, R(2))
	for _, reg := range []string{"DI", "SI", "DX", "R8", "R9"} {
		p("\tADDQ $%d, %s", s.bytes, reg)
	}
	p("\tDECQ CX")
	p("\tJMP rq%sloop", s.name)
	p("rq%sdone:", s.name)
	p("\tVZEROUPPER")
	p("\tRET")
	p("")
}

// requantMath emits the requantization of one vector: acc (a memory
// operand or register) with mult, left and right memory operands; the
// result is left in R(2). R(0..6) are work registers, C the constants
// requant documents.
func requantMath(s isa, R func(int) string, C func(string) string, acc, mult, left, right string) {
	z := s.reg == "Z"
	mov := s.mov()
	// ld loads an operand; "B:mem" broadcasts the int32 at mem.
	ld := func(src, dst string) {
		if m, ok := strings.CutPrefix(src, "B:"); ok {
			p("\tVPBROADCASTD %s, %s", m, dst)
			return
		}
		p("\t%s %s, %s", mov, src, dst)
	}
	if strings.HasPrefix(acc, "Z") || strings.HasPrefix(acc, "Y") {
		mov0 := "VMOVDQA"
		if z {
			mov0 = "VMOVDQA32"
		}
		p("\t%s %s, %s", mov0, acc, R(0))
	} else {
		p("\t%s %s, %s", mov, acc, R(0))
	}
	// left == "": no left shift (SaturatingLeftShift by 0 is x).
	if left != "" {
		// x = acc, l = clamp(left)
		ld(left, R(1))
		p("\tVPMAXSD %s, %s, %s", C("zero"), R(1), R(1))
		p("\tVPMINSD %s, %s, %s", C("c31"), R(1), R(1))
		// SaturatingLeftShift: v = x<<l; keep v where v>>l == x, else x<0 ? MIN : MAX.
		p("\tVPSLLVD %s, %s, %s", R(1), R(0), R(2))
		p("\tVPSRAVD %s, %s, %s", R(1), R(2), R(3))
		p("\tVPSRAD $31, %s, %s", R(0), R(4))
		if z {
			p("\tVPCMPEQD %s, %s, K1", R(3), R(0))
			p("\tVPXORD %s, %s, %s", C("max"), R(4), R(4))
			p("\tVPBLENDMD %s, %s, K1, %s", R(2), R(4), R(0))
		} else {
			p("\tVPCMPEQD %s, %s, %s", R(3), R(0), R(3))
			p("\tVPXOR %s, %s, %s", C("min"), R(4), R(4))
			p("\tVPCMPEQD %s, %s, %s", R(5), R(5), R(5))
			p("\tVPXOR %s, %s, %s", R(5), R(4), R(4))
			p("\tVPBLENDVB %s, %s, %s, %s", R(3), R(2), R(4), R(0))
		}
	}
	// SaturatingRoundingDoublingHighMul(a = R0, b = mult): 64-bit products p
	// of the even (R2) and odd (R3) lanes. The reference computes
	// trunc((p + (p < 0 ? 1-2^30 : 2^30)) / 2^31); p + 1-2^30 < 0 whenever
	// p < 0, and trunc(t/2^31) = floor((t + 2^31-1)/2^31) for t < 0, so both
	// cases are floor((p + 2^30) / 2^31): bits 31..62 of p + 2^30 (no
	// overflow: |p| <= 2^62). The even lanes take them with a right shift
	// by 31 (low half), the odd lanes with a left shift by 1 (high half).
	ld(mult, R(1))
	p("\tVPMULDQ %s, %s, %s", R(1), R(0), R(2))
	p("\tVPSRLQ $32, %s, %s", R(0), R(3))
	p("\tVPSRLQ $32, %s, %s", R(1), R(4))
	p("\tVPMULDQ %s, %s, %s", R(4), R(3), R(3))
	p("\tVPADDQ %s, %s, %s", C("nudge"), R(2), R(2))
	p("\tVPSRLQ $31, %s, %s", R(2), R(2))
	p("\tVPADDQ %s, %s, %s", C("nudge"), R(3), R(3))
	p("\tVPSLLQ $1, %s, %s", R(3), R(3))
	if z {
		p("\tVPBLENDMD %s, %s, K2, %s", R(3), R(2), R(2))
		// a == b == MinInt32 saturates to MaxInt32 (the sum gave MinInt32).
		p("\tVPCMPEQD %s, %s, K3", C("min"), R(0))
		p("\tVPCMPEQD %s, %s, K3, K3", C("min"), R(1))
		p("\tVPXORD %s, %s, K3, %s", C("ones"), R(2), R(2))
	} else {
		p("\tVPBLENDD $0xaa, %s, %s, %s", R(3), R(2), R(2))
		p("\tVPCMPEQD %s, %s, %s", C("min"), R(0), R(4))
		p("\tVPCMPEQD %s, %s, %s", C("min"), R(1), R(5))
		p("\tVPAND %s, %s, %s", R(5), R(4), R(4))
		p("\tVPXOR %s, %s, %s", R(4), R(2), R(2))
	}
	// RoundingDivideByPOT(x = R2, e = clamp(right)).
	ld(right, R(1))
	p("\tVPMAXSD %s, %s, %s", C("zero"), R(1), R(1))
	p("\tVPMINSD %s, %s, %s", C("c31"), R(1), R(1))
	ones := R(6)
	if z {
		ones = C("ones")
	} else {
		p("\tVPCMPEQD %s, %s, %s", R(6), R(6), R(6))
	}
	p("\tVPSLLVD %s, %s, %s", R(1), ones, R(3))                                                // -1 << e
	p("\t%s %s, %s, %s", s.xor(), ones, R(3), R(3))                                            // mask
	p("\t%s %s, %s, %s", map[bool]string{true: "VPANDD", false: "VPAND"}[z], R(2), R(3), R(4)) // remainder
	p("\tVPSRLD $1, %s, %s", R(3), R(3))
	p("\tVPSRAD $31, %s, %s", R(2), R(5))
	p("\tVPSUBD %s, %s, %s", R(5), R(3), R(3)) // threshold
	p("\tVPSRAVD %s, %s, %s", R(1), R(2), R(2))
	if z {
		p("\tVPCMPGTD %s, %s, K4", R(3), R(4))
		p("\tVPSUBD %s, %s, K4, %s", ones, R(2), R(2))
	} else {
		p("\tVPCMPGTD %s, %s, %s", R(3), R(4), R(4))
		p("\tVPSUBD %s, %s, %s", R(4), R(2), R(2))
	}
	p("\tVPMAXSD %s, %s, %s", C("clo"), R(2), R(2))
	p("\tVPMINSD %s, %s, %s", C("chi"), R(2), R(2))
	p("\tVPADDD %s, %s, %s", C("zp"), R(2), R(2))
}

// mulAddLanesF32 emits
//
//	func mulAddLanesF32<name>(y *float32, w *float32, x *float32, outs, in int, skipZero, relu bool)
//
// For 16 interleaved items (lanes): y[o*16+l] += w[o*in+i] * x[i*16+l] for
// i in order, skipping (per lane) x == ±0 when skipZero, products rounded
// before the addition; with relu, then y = y < 0 ? +0 : y. Four outputs
// run side by side to hide the addition latency.
func mulAddLanesF32(s isa) {
	z := s.reg == "Z"
	p("// func mulAddLanesF32%s(y *float32, w *float32, x *float32, outs, in int, skipZero, relu bool)", s.name)
	p("TEXT ·mulAddLanesF32%s(SB), NOSPLIT, $0-42", s.name)
	p("\tMOVQ outs+24(FP), CX")
	p("\tMOVQ in+32(FP), R8")
	p("\tMOVQ R8, R13")
	p("\tSHLQ $2, R13") // row stride of w in bytes
	p("\tMOVBLZX skipZero+40(FP), R14")
	p("\tMOVBLZX relu+41(FP), R15")
	zero := r(s, 15)
	p("\t%s %s, %s, %s", map[bool]string{true: "VXORPS", false: "VXORPS"}[z], zero, zero, zero)
	halves := []int{0}
	if !z {
		halves = []int{0, 32}
	}
	for _, h := range halves {
		lbl := fmt.Sprintf("%s%d", s.name, h)
		p("\tMOVQ y+0(FP), DI")
		p("\tMOVQ w+8(FP), SI")
		p("\tMOVQ outs+24(FP), CX")
		for _, g := range []int{4, 1} {
			gl := fmt.Sprintf("%sg%d", lbl, g)
			p("ml%s:", gl)
			p("\tCMPQ CX, $%d", g)
			if g == 1 {
				p("\tJB ml%sdone", lbl)
			} else {
				p("\tJB ml%sg1", lbl)
			}
			for a := 0; a < g; a++ {
				p("\tVMOVUPS %d(DI), %s", a*64+h, r(s, a))
			}
			p("\tMOVQ x+16(FP), R11")
			p("\tADDQ $%d, R11", h)
			p("\tMOVQ SI, R10")
			p("\tMOVQ R8, R12")
			if z {
				p("\tKXNORW K1, K1, K1")
			}
			p("ml%sloop:", gl)
			p("\tTESTQ R12, R12")
			p("\tJZ ml%send", gl)
			p("\tVMOVUPS (R11), %s", r(s, 4))
			if z {
				p("\tTESTQ R14, R14")
				p("\tJZ ml%sgo", gl)
				p("\tVCMPPS $4, %s, %s, K1", zero, r(s, 4)) // x != 0 (NaN counts)
				p("ml%sgo:", gl)
				for a := 0; a < g; a++ {
					off := "(R10)"
					if a > 0 {
						p("\tLEAQ (R10)(R13*%d), R9", 1)
						off = "(R9)"
						if a > 1 {
							p("\tADDQ R13, R9")
						}
						if a > 2 {
							p("\tADDQ R13, R9")
						}
					}
					p("\tVMULPS.BCST %s, %s, %s", off, r(s, 4), r(s, 5))
					p("\tVADDPS %s, %s, K1, %s", r(s, 5), r(s, a), r(s, a))
				}
			} else {
				p("\tVCMPPS $4, %s, %s, %s", zero, r(s, 4), r(s, 6)) // x != 0
				p("\tTESTQ R14, R14")
				p("\tJNZ ml%sgo", gl)
				p("\tVPCMPEQD %s, %s, %s", r(s, 6), r(s, 6), r(s, 6))
				p("ml%sgo:", gl)
				for a := 0; a < g; a++ {
					off := "(R10)"
					if a > 0 {
						p("\tLEAQ (R10)(R13*%d), R9", 1)
						off = "(R9)"
						if a > 1 {
							p("\tADDQ R13, R9")
						}
						if a > 2 {
							p("\tADDQ R13, R9")
						}
					}
					p("\tVBROADCASTSS %s, %s", off, r(s, 5))
					p("\tVMULPS %s, %s, %s", r(s, 5), r(s, 4), r(s, 5))
					p("\tVADDPS %s, %s, %s", r(s, 5), r(s, a), r(s, 7))
					p("\tVBLENDVPS %s, %s, %s, %s", r(s, 6), r(s, 7), r(s, a), r(s, a))
				}
			}
			p("\tADDQ $64, R11")
			p("\tADDQ $4, R10")
			p("\tDECQ R12")
			p("\tJMP ml%sloop", gl)
			p("ml%send:", gl)
			p("\tTESTQ R15, R15")
			p("\tJZ ml%sstore", gl)
			for a := 0; a < g; a++ {
				if z {
					p("\tVCMPPS $1, %s, %s, K2", zero, r(s, a)) // y < 0
					p("\tVMOVUPS %s, K2, %s", zero, r(s, a))
				} else {
					p("\tVCMPPS $1, %s, %s, %s", zero, r(s, a), r(s, 6))
					p("\tVANDNPS %s, %s, %s", r(s, a), r(s, 6), r(s, a))
				}
			}
			p("ml%sstore:", gl)
			for a := 0; a < g; a++ {
				p("\tVMOVUPS %s, %d(DI)", r(s, a), a*64+h)
			}
			p("\tADDQ $%d, DI", g*64)
			p("\tLEAQ (SI)(R13*%d), SI", g)
			p("\tSUBQ $%d, CX", g)
			p("\tJMP ml%s", gl)
		}
		p("ml%sdone:", lbl)
	}
	p("\tVZEROUPPER")
	p("\tRET")
	p("")
}

// mullq emits t = a*b mod 2^64 per quadword (a, b registers; t, u, v
// scratch): VPMULLQ on AVX-512, three VPMULUDQ on AVX2.
func mullq(s isa, a, b, t, u, v string) {
	if s.reg == "Z" {
		p("\tVPMULLQ %s, %s, %s", b, a, t)
		return
	}
	p("\tVPMULUDQ %s, %s, %s", b, a, t) // lo*lo
	p("\tVPSRLQ $32, %s, %s", a, u)
	p("\tVPMULUDQ %s, %s, %s", b, u, u) // hi(a)*lo(b)
	p("\tVPSRLQ $32, %s, %s", b, v)
	p("\tVPMULUDQ %s, %s, %s", v, a, v) // lo(a)*hi(b)
	p("\tVPADDQ %s, %s, %s", v, u, u)
	p("\tVPSLLQ $32, %s, %s", u, u)
	p("\tVPADDQ %s, %s, %s", u, t, t)
}

// mulAccWide emits
//
//	func mulAccWide<name>(acc *int64, w *int64, x *int64, blocks, stride, n int)
//
// For each of blocks vectors of int64 accumulators at acc it adds, for every
// k with x[k] != 0, x[k] * w[k*stride+o] wrapping at 64 bits.
func mulAccWide(s isa) {
	g := 8
	if s.reg == "Y" {
		g = 4
	}
	p("// func mulAccWide%s(acc *int64, w *int64, x *int64, blocks, stride, n int)", s.name)
	p("TEXT ·mulAccWide%s(SB), NOSPLIT, $0-48", s.name)
	p("\tMOVQ acc+0(FP), DI")
	p("\tMOVQ w+8(FP), SI")
	p("\tMOVQ blocks+24(FP), CX")
	p("\tMOVQ stride+32(FP), R8")
	bx := r(s, g)
	for _, gg := range []int{g, 1} {
		lbl := fmt.Sprintf("g%d", gg)
		p("mw%s%s:", s.name, lbl)
		p("\tCMPQ CX, $%d", gg)
		if gg == 1 {
			p("\tJB mw%sdone", s.name)
		} else {
			p("\tJB mw%sg1", s.name)
		}
		for i := 0; i < gg; i++ {
			p("\t%s %d(DI), %s", s.mov(), i*s.bytes, r(s, i))
		}
		p("\tMOVQ SI, R10")
		p("\tMOVQ x+16(FP), R11")
		p("\tMOVQ n+40(FP), R12")
		p("mw%s%sloop:", s.name, lbl)
		p("\tTESTQ R12, R12")
		p("\tJZ mw%s%sstore", s.name, lbl)
		p("\tMOVQ (R11), AX")
		p("\tTESTQ AX, AX")
		p("\tJZ mw%s%snext", s.name, lbl)
		p("\tVPBROADCASTQ (R11), %s", bx)
		for i := 0; i < gg; i++ {
			wr := r(s, g+1)
			p("\t%s %d(R10), %s", s.mov(), i*s.bytes, wr)
			mullq(s, bx, wr, r(s, g+2), r(s, g+3), r(s, g+4))
			p("\tVPADDQ %s, %s, %s", r(s, g+2), r(s, i), r(s, i))
		}
		p("mw%s%snext:", s.name, lbl)
		p("\tADDQ $8, R11")
		p("\tADDQ R8, R10")
		p("\tDECQ R12")
		p("\tJMP mw%s%sloop", s.name, lbl)
		p("mw%s%sstore:", s.name, lbl)
		for i := 0; i < gg; i++ {
			p("\t%s %s, %d(DI)", s.mov(), r(s, i), i*s.bytes)
		}
		p("\tADDQ $%d, DI", gg*s.bytes)
		p("\tADDQ $%d, SI", gg*s.bytes)
		p("\tSUBQ $%d, CX", gg)
		p("\tJMP mw%s%s", s.name, lbl)
	}
	p("mw%sdone:", s.name)
	p("\tVZEROUPPER")
	p("\tRET")
	p("")
}

// dotWide emits
//
//	func dotWide<name>(x *int64, w *int64, blocks int) int64
//
// Σ x[k]*w[k] over blocks*lanes elements, wrapping at 64 bits.
func dotWide(s isa) {
	p("// func dotWide%s(x *int64, w *int64, blocks int) int64", s.name)
	p("TEXT ·dotWide%s(SB), NOSPLIT, $0-32", s.name)
	p("\tMOVQ x+0(FP), SI")
	p("\tMOVQ w+8(FP), DI")
	p("\tMOVQ blocks+16(FP), CX")
	p("\tVPXOR %s, %s, %s", halfReg(s, 0), halfReg(s, 0), halfReg(s, 0))
	p("dw%sloop:", s.name)
	p("\tTESTQ CX, CX")
	p("\tJZ dw%ssum", s.name)
	p("\t%s (SI), %s", s.mov(), r(s, 1))
	p("\t%s (DI), %s", s.mov(), r(s, 2))
	mullq(s, r(s, 1), r(s, 2), r(s, 3), r(s, 4), r(s, 5))
	p("\tVPADDQ %s, %s, %s", r(s, 3), r(s, 0), r(s, 0))
	p("\tADDQ $%d, SI", s.bytes)
	p("\tADDQ $%d, DI", s.bytes)
	p("\tDECQ CX")
	p("\tJMP dw%sloop", s.name)
	p("dw%ssum:", s.name)
	if s.reg == "Z" {
		p("\tVEXTRACTI64X4 $1, Z0, Y1")
		p("\tVPADDQ Y1, Y0, Y0")
	}
	p("\tVEXTRACTI128 $1, Y0, X1")
	p("\tVPADDQ X1, X0, X0")
	p("\tVPSHUFD $0x4e, X0, X1")
	p("\tVPADDQ X1, X0, X0")
	p("\tVMOVQ X0, AX")
	p("\tMOVQ AX, ret+24(FP)")
	p("\tVZEROUPPER")
	p("\tRET")
	p("")
}

// quantizeF32 emits
//
//	func quantizeF32<name>(dst *int32, x *float32, blocks int, scale float32, zero, lo, hi int32)
//
// For blocks*lanes inputs: v = x/scale (float32 division); NaN gives zero;
// otherwise clamp(round_half_away(v) + zero, lo, hi), computed in float64
// (where v + copysign(0.5, v) is exact whenever it matters) and truncated.
// lanes is 16 (AVX-512) or 8 (AVX2); both convert 8 floats at a time
// (AVX2 in two halves of 4).
func quantizeF32(s isa) {
	z := s.reg == "Z"
	p("// func quantizeF32%s(dst *int32, x *float32, blocks int, scale float32, zero, lo, hi int32)", s.name)
	p("TEXT ·quantizeF32%s(SB), NOSPLIT, $0-40", s.name)
	p("\tMOVQ dst+0(FP), DI")
	p("\tMOVQ x+8(FP), SI")
	p("\tMOVQ blocks+16(FP), CX")
	// Constants: scale (float32 bcast), zero/lo/hi as float64 bcast, 0.5,
	// sign mask (float64), zero-point int32 bcast.
	wide := "Z" // float64 vectors of 8
	half := "Y" // the 8 floats / int32 results
	if !z {
		wide, half = "Y", "X"
	}
	R := func(pre string, i int) string { return fmt.Sprintf("%s%d", pre, i) }
	p("\tVBROADCASTSS scale+24(FP), %s", R(half, 10))
	for i, name := range []string{"zero+28(FP)", "lo+32(FP)", "hi+36(FP)"} {
		p("\tVCVTSI2SDL %s, X%d, X%d", name, 11+i, 11+i)
		p("\tVBROADCASTSD X%d, %s", 11+i, R(wide, 11+i))
	}
	p("\tMOVQ $0x3fe0000000000000, AX") // 0.5
	p("\tVMOVQ AX, X14")
	p("\tVBROADCASTSD X14, %s", R(wide, 14))
	p("\tMOVQ $0x8000000000000000, AX")
	p("\tVMOVQ AX, X15")
	p("\tVBROADCASTSD X15, %s", R(wide, 15))
	p("\tMOVL zero+28(FP), AX")
	p("\tVMOVD AX, X9")
	p("\tVPBROADCASTD X9, %s", R(half, 9))
	per := 8 // floats per step
	if !z {
		per = 4
	}
	p("qf%sloop:", s.name)
	p("\tTESTQ CX, CX")
	p("\tJZ qf%sdone", s.name)
	steps := 2 // 16 floats per block on AVX-512 (two steps of 8), 8 on AVX2 (two of 4)
	for st := 0; st < steps; st++ {
		off := st * per * 4
		p("\tVMOVUPS %d(SI), %s", off, R(half, 0))
		p("\tVDIVPS %s, %s, %s", R(half, 10), R(half, 0), R(half, 0)) // v = x / scale
		p("\tVCVTPS2PD %s, %s", R(half, 0), R(wide, 1))
		p("\tVANDPD %s, %s, %s", R(wide, 15), R(wide, 1), R(wide, 2)) // sign
		p("\tVORPD %s, %s, %s", R(wide, 14), R(wide, 2), R(wide, 2))  // ±0.5
		p("\tVADDPD %s, %s, %s", R(wide, 2), R(wide, 1), R(wide, 1))
		if z {
			p("\tVRNDSCALEPD $3, %s, %s", R(wide, 1), R(wide, 1))
		} else {
			p("\tVROUNDPD $3, %s, %s", R(wide, 1), R(wide, 1))
		}
		p("\tVADDPD %s, %s, %s", R(wide, 11), R(wide, 1), R(wide, 1))
		p("\tVMAXPD %s, %s, %s", R(wide, 12), R(wide, 1), R(wide, 1))
		p("\tVMINPD %s, %s, %s", R(wide, 13), R(wide, 1), R(wide, 1))
		cvt := "VCVTTPD2DQ"
		if !z {
			cvt = "VCVTTPD2DQY" // Go's name for the ymm-source form
		}
		p("\t%s %s, %s", cvt, R(wide, 1), R(half, 3))
		// NaN lanes (v unordered with itself) get zero.
		if z {
			p("\tVCMPPS $3, %s, %s, K1", R(half, 0), R(half, 0))
			p("\tVMOVDQA32 %s, K1, %s", R(half, 9), R(half, 3))
		} else {
			p("\tVCMPPS $3, %s, %s, %s", R(half, 0), R(half, 0), R(half, 4))
			p("\tVBLENDVPS %s, %s, %s, %s", R(half, 4), R(half, 9), R(half, 3), R(half, 3))
		}
		p("\tVMOVDQU %s, %d(DI)", R(half, 3), off)
	}
	p("\tADDQ $%d, SI", 2*per*4)
	p("\tADDQ $%d, DI", 2*per*4)
	p("\tDECQ CX")
	p("\tJMP qf%sloop", s.name)
	p("qf%sdone:", s.name)
	p("\tVZEROUPPER")
	p("\tRET")
	p("")
}

// net8 emits
//
//	func net8AVX512(desc *net8Desc, n int, act *int32, xp *int32)
//
// a whole small int8 network (Net8): per layer, act (int32 activations)
// is packed to int16 pairs in xp, up to four blocks of 16 accumulators
// run from Acc0 over the pairs (VPMADDWD+VPADDD: the chains are short and
// VPDPWSSD's latency would dominate), then requantMath, the table lookup
// (VPGATHERDD) when the layer has one, and the results go back to act.
// The descriptor layout is net8Desc's (net8.go).
func net8() {
	s := isa{name: "AVX512", reg: "Z", bytes: 64, group: 16}
	p("// func net8AVX512(desc *net8Desc, n int, act *int32, xp *int32, lo, hi int32, in *int32, inMask uint64)")
	p("TEXT ·net8AVX512(SB), NOSPLIT, $0-56")
	p("\tMOVQ desc+0(FP), BX")
	p("\tMOVQ act+16(FP), DI")
	c := map[string]int{"c31": 16, "zero": 17, "min": 18, "nudge": 19, "clo": 22, "chi": 23, "zp": 24, "ones": 25, "max": 26}
	bd := func(val string, reg int, q bool) {
		op, mv := "VPBROADCASTD", "MOVL"
		if q {
			op, mv = "VPBROADCASTQ", "MOVQ"
		}
		p("\t%s %s, AX", mv, val)
		p("\t%s AX, Z%d", op, reg)
	}
	bd("$31", c["c31"], false)
	p("\tVPXORD Z17, Z17, Z17")
	bd("$0x80000000", c["min"], false)
	bd("$0x40000000", c["nudge"], true)
	bd("$-1", c["ones"], false)
	bd("$0x7fffffff", c["max"], false)
	p("\tMOVW $0xaaaa, AX")
	p("\tKMOVW AX, K2")
	C := func(n string) string { return fmt.Sprintf("Z%d", c[n]) }
	R := func(i int) string { return fmt.Sprintf("Z%d", 9+i) }
	// The first layer's input is read from in (the last block through
	// inMask, the other lanes zero) and clamped to [lo, hi] as it is packed
	// (n >= 1).
	bd("lo+32(FP)", 28, false)
	bd("hi+36(FP)", 29, false)
	p("\tMOVQ 64(BX), CX")
	p("\tMOVQ in+40(FP), SI")
	p("\tMOVQ xp+24(FP), DX")
	p("\tMOVQ inMask+48(FP), AX")
	p("\tKMOVW AX, K6")
	p("\tKXNORW K7, K7, K7")
	p("n8pack0:")
	p("\tCMPQ CX, $1")
	p("\tJNE n8pack0full")
	p("\tKMOVW K6, K7")
	p("n8pack0full:")
	p("\tVMOVDQU32.Z (SI), K7, Z4")
	p("\tVPMAXSD Z4, Z28, Z4")
	p("\tVPMINSD Z29, Z4, Z4")
	p("\tVPMOVDW Z4, Y4")
	p("\tVMOVDQU Y4, (DX)")
	p("\tADDQ $64, SI")
	p("\tADDQ $32, DX")
	p("\tDECQ CX")
	p("\tJNZ n8pack0")
	p("\tJMP n8packed")
	p("n8layer:")
	p("\tCMPQ n+8(FP), $0")
	p("\tJEQ n8done")
	// Pack InBlocks blocks of 16 activations into int16.
	p("\tMOVQ 64(BX), CX")
	p("\tMOVQ DI, SI")
	p("\tMOVQ xp+24(FP), DX")
	p("n8pack:")
	p("\tVMOVDQU32 (SI), Z4")
	p("\tVPMOVDW Z4, Y4")
	p("\tVMOVDQU Y4, (DX)")
	p("\tADDQ $64, SI")
	p("\tADDQ $32, DX")
	p("\tDECQ CX")
	p("\tJNZ n8pack")
	p("n8packed:")
	bd("72(BX)", c["zp"], false)
	bd("80(BX)", c["clo"], false)
	bd("88(BX)", c["chi"], false)
	bd("96(BX)", 27, false)
	p("\tMOVQ 16(BX), R8")
	p("\tMOVQ 24(BX), R9")
	p("\tMOVQ 32(BX), R13")
	p("\tMOVQ 56(BX), CX")
	for nb := 1; nb <= 3; nb++ {
		p("\tCMPQ CX, $%d", nb)
		p("\tJEQ n8b%d", nb)
	}
	p("\tJMP n8b4")
	for nb := 1; nb <= 4; nb++ {
		p("n8b%d:", nb)
		p("\tMOVQ 8(BX), AX")
		for i := 0; i < nb; i++ {
			p("\tVMOVDQU32 %d(AX), Z%d", 64*i, i)
		}
		p("\tMOVQ 0(BX), R10")
		p("\tMOVQ xp+24(FP), R11")
		p("\tMOVQ 48(BX), R12")
		// Four pairs per step, then one at a time.
		p("n8b%dloop4:", nb)
		p("\tCMPQ R12, $4")
		p("\tJB n8b%dloop", nb)
		for u, br := range []string{"Z4", "Z28", "Z29", "Z30"} {
			p("\tVPBROADCASTD %d(R11), %s", 4*u, br)
			for i := 0; i < nb; i++ {
				p("\tVPMADDWD %d(R10), %s, Z%d", 64*(u*nb+i), br, 5+i)
				p("\tVPADDD Z%d, Z%d, Z%d", 5+i, i, i)
			}
		}
		p("\tADDQ $16, R11")
		p("\tADDQ $%d, R10", 4*64*nb)
		p("\tSUBQ $4, R12")
		p("\tJMP n8b%dloop4", nb)
		p("n8b%dloop:", nb)
		p("\tTESTQ R12, R12")
		p("\tJZ n8b%dreq", nb)
		p("\tVPBROADCASTD (R11), Z4")
		for i := 0; i < nb; i++ {
			p("\tVPMADDWD %d(R10), Z4, Z%d", 64*i, 5+i)
			p("\tVPADDD Z%d, Z%d, Z%d", 5+i, i, i)
		}
		p("\tADDQ $4, R11")
		p("\tADDQ $%d, R10", 64*nb)
		p("\tDECQ R12")
		p("\tJMP n8b%dloop", nb)
		// Requantization with (desc.noLeft == 0) and without the left shift.
		p("n8b%dreq:", nb)
		p("\tCMPQ 104(BX), $0")
		p("\tJNE n8b%dreqnl", nb)
		for _, nl := range []bool{false, true} {
			sfx := ""
			if nl {
				sfx = "nl"
				p("n8b%dreqnl:", nb)
			}
			for i := 0; i < nb; i++ {
				left := fmt.Sprintf("%d(R9)", 64*i)
				if nl {
					left = ""
				}
				requantMath(s, R, C, fmt.Sprintf("Z%d", i), fmt.Sprintf("%d(R8)", 64*i), left, fmt.Sprintf("%d(R13)", 64*i))
				p("\tMOVQ 40(BX), AX")
				p("\tTESTQ AX, AX")
				p("\tJZ n8b%dnolut%d%s", nb, i, sfx)
				p("\tVPSUBD Z27, %s, %s", R(2), R(3))
				p("\tKXNORW K5, K5, K5")
				p("\tVPGATHERDD (AX)(%s*4), K5, %s", R(3), R(2))
				p("n8b%dnolut%d%s:", nb, i, sfx)
				p("\tVMOVDQU32 %s, %d(DI)", R(2), 64*i)
			}
			p("\tJMP n8next")
		}
	}
	p("n8next:")
	p("\tADDQ $120, BX")
	p("\tDECQ n+8(FP)")
	p("\tJMP n8layer")
	p("n8done:")
	p("\tVZEROUPPER")
	p("\tRET")
	p("")
}

// net8Lanes emits
//
//	func net8Lanes<name>(desc *net8Desc, n int, act *int32, xp *int32, lo, hi int32)
//
// a whole int8 network (Net8) on L = 8 (AVX2) or 16 (AVX-512) items side
// by side, a lane per item: act holds rows of L int32s, row f the items'
// activation f. Per layer: the input rows are packed as int16 pairs
// (rows 2p and 2p+1 into xp row p; the first layer's input clamped to
// [lo, hi] first); for groups of 8 outputs (then single outputs), each
// accumulator starts from Acc0[o] broadcast and adds, per pair row, the
// VPMADDWD of the row with the weight pair of o broadcast; the raw sums
// go to act rows 0..Out-1, which are then requantized in place (requantMath
// with mult, left and right broadcast) and looked up in the table when the
// layer has one. Every lane computes what DotPairs16 and Requant compute
// for one item. The descriptor layout is net8Desc's (net8.go).
func net8Lanes(s isa) {
	z := s.reg == "Z"
	name := "net8Lanes" + s.name
	rb := s.bytes // bytes per row
	mov := s.mov()
	R := func(i int) string { return r(s, i) }
	p("// func %s(desc *net8Desc, n int, act *int32, xp *int32, lo, hi int32)", name)
	p("TEXT ·%s(SB), NOSPLIT, $0-40", name)
	p("\tMOVQ desc+0(FP), BX")
	p("\tMOVQ act+16(FP), DI")
	bd := func(val string, reg string, q bool) {
		op, mv := "VPBROADCASTD", "MOVL"
		if q {
			op, mv = "VPBROADCASTQ", "MOVQ"
		}
		p("\t%s %s, AX", mv, val)
		if z {
			p("\t%s AX, %s", op, reg)
		} else {
			p("\tVMOVQ AX, X15")
			p("\t%s X15, %s", op, reg)
		}
	}
	if z {
		p("\tMOVL $0xaaaaaaaa, AX")
		p("\tKMOVD AX, K6")
	}
	p("%slayer:", name)
	p("\tCMPQ n+8(FP), $0")
	p("\tJEQ %sdone", name)
	// Pack: rows 2p and 2p+1 of act, clamped to [lo, hi], into xp row p:
	// the low int16 from row 2p, the high from row 2p+1.
	bd("lo+32(FP)", R(2), false)
	bd("hi+36(FP)", R(3), false)
	p("\tMOVQ 48(BX), CX")
	p("\tMOVQ DI, SI")
	p("\tMOVQ xp+24(FP), DX")
	p("%spack:", name)
	p("\tVPMAXSD (SI), %s, %s", R(2), R(0))
	p("\tVPMINSD %s, %s, %s", R(3), R(0), R(0))
	p("\tVPMAXSD %d(SI), %s, %s", rb, R(2), R(1))
	p("\tVPMINSD %s, %s, %s", R(3), R(1), R(1))
	p("\tVPSLLD $16, %s, %s", R(1), R(1))
	if z {
		p("\tVPBLENDMW %s, %s, K6, %s", R(1), R(0), R(0))
	} else {
		p("\tVPBLENDW $0xaa, %s, %s, %s", R(1), R(0), R(0))
	}
	p("\t%s %s, (DX)", mov, R(0))
	p("\tADDQ $%d, SI", 2*rb)
	p("\tADDQ $%d, DX", rb)
	p("\tDECQ CX")
	p("\tJNZ %spack", name)
	// Later layers' inputs fit int16 already: clamp to its range.
	p("\tMOVL $-32768, lo+32(FP)")
	p("\tMOVL $32767, hi+36(FP)")
	// Accumulate: R8 weight column, R9 acc0, R10 weight row stride, CX
	// outputs left, DX output row.
	p("\tMOVQ 0(BX), R8")
	p("\tMOVQ 8(BX), R9")
	p("\tMOVQ 56(BX), R10")
	p("\tSHLQ $6, R10")
	p("\tMOVQ 112(BX), CX")
	p("\tMOVQ DI, DX")
	x, w, t := R(8), R(9), R(10)
	for _, g := range []int{8, 1} {
		lbl := fmt.Sprintf("%sg%d", name, g)
		p("%s:", lbl)
		p("\tCMPQ CX, $%d", g)
		if g == 1 {
			p("\tJB %sreq", name)
		} else {
			p("\tJB %sg1", name)
		}
		for i := 0; i < g; i++ {
			p("\tVPBROADCASTD %d(R9), %s", 4*i, R(i))
		}
		p("\tMOVQ R8, R11")
		p("\tMOVQ xp+24(FP), R12")
		p("\tMOVQ 48(BX), R13")
		p("%sloop:", lbl)
		p("\t%s (R12), %s", mov, x)
		for i := 0; i < g; i++ {
			p("\tVPBROADCASTD %d(R11), %s", 4*i, w)
			p("\tVPMADDWD %s, %s, %s", w, x, t)
			p("\tVPADDD %s, %s, %s", t, R(i), R(i))
		}
		p("\tADDQ R10, R11")
		p("\tADDQ $%d, R12", rb)
		p("\tDECQ R13")
		p("\tJNZ %sloop", lbl)
		for i := 0; i < g; i++ {
			p("\t%s %s, %d(DX)", mov, R(i), i*rb)
		}
		p("\tADDQ $%d, R8", 4*g)
		p("\tADDQ $%d, R9", 4*g)
		p("\tADDQ $%d, DX", g*rb)
		p("\tSUBQ $%d, CX", g)
		p("\tJMP %s", lbl)
	}
	// Requantize act rows 0..Out-1 in place.
	p("%sreq:", name)
	var c map[string]int
	if z {
		c = map[string]int{"c31": 16, "zero": 17, "min": 18, "nudge": 19, "clo": 22, "chi": 23, "zp": 24, "ones": 25, "max": 26, "base": 27}
	} else {
		c = map[string]int{"c31": 7, "zero": 8, "min": 9, "nudge": 10, "base": 11, "clo": 13, "chi": 14, "zp": 15}
	}
	C := func(n string) string { return r(s, c[n]) }
	bd("$31", C("c31"), false)
	p("\t%s %s, %s, %s", s.xor(), C("zero"), C("zero"), C("zero"))
	bd("$0x80000000", C("min"), false)
	bd("$0x40000000", C("nudge"), true)
	if z {
		bd("$-1", C("ones"), false)
		bd("$0x7fffffff", C("max"), false)
		p("\tMOVW $0xaaaa, AX")
		p("\tKMOVW AX, K2")
	}
	bd("80(BX)", C("clo"), false)
	bd("88(BX)", C("chi"), false)
	bd("96(BX)", C("base"), false)
	bd("72(BX)", C("zp"), false) // last: AVX2 broadcasts through X15 (zp)
	p("\tMOVQ 112(BX), CX")
	p("\tMOVQ DI, DX")
	p("\tMOVQ 16(BX), R8")
	p("\tMOVQ 24(BX), R9")
	p("\tMOVQ 32(BX), R13")
	p("\tMOVQ 40(BX), AX")
	p("\tCMPQ 104(BX), $0")
	p("\tJNE %sreqnl", name)
	for _, nl := range []bool{false, true} {
		lbl := name + "rq"
		left := "B:(R9)"
		if nl {
			lbl, left = name+"rqnl", ""
			p("%sreqnl:", name)
		}
		p("%s:", lbl)
		requantMath(s, R, C, "(DX)", "B:(R8)", left, "B:(R13)")
		p("\tTESTQ AX, AX")
		p("\tJZ %snolut", lbl)
		p("\tVPSUBD %s, %s, %s", C("base"), R(2), R(3))
		if z {
			p("\tKXNORW K5, K5, K5")
			p("\tVPGATHERDD (AX)(%s*4), K5, %s", R(3), R(2))
		} else {
			p("\tVPCMPEQD %s, %s, %s", R(4), R(4), R(4))
			p("\tVPGATHERDD %s, (AX)(%s*4), %s", R(4), R(3), R(2))
		}
		p("%snolut:", lbl)
		p("\t%s %s, (DX)", mov, R(2))
		p("\tADDQ $%d, DX", rb)
		p("\tADDQ $4, R8")
		p("\tADDQ $4, R9")
		p("\tADDQ $4, R13")
		p("\tDECQ CX")
		p("\tJNZ %s", lbl)
		p("\tJMP %snext", name)
	}
	p("%snext:", name)
	p("\tADDQ $120, BX")
	p("\tDECQ n+8(FP)")
	p("\tJMP %slayer", name)
	p("%sdone:", name)
	p("\tVZEROUPPER")
	p("\tRET")
	p("")
}

// reluF32 emits
//
//	func reluF32<name>(y *float32, blocks int)
//
// y = y < 0 ? +0 : y on blocks vectors (an ordered compare: NaN and -0
// stay), as the scalar `if v < 0 { v = 0 }`.
func reluF32(s isa) {
	z := s.reg == "Z"
	p("// func reluF32%s(y *float32, blocks int)", s.name)
	p("TEXT ·reluF32%s(SB), NOSPLIT, $0-16", s.name)
	p("\tMOVQ y+0(FP), DI")
	p("\tMOVQ blocks+8(FP), CX")
	zero := r(s, 15)
	p("\tVXORPS %s, %s, %s", zero, zero, zero)
	p("rf%sloop:", s.name)
	p("\tVMOVUPS (DI), %s", r(s, 0))
	if z {
		p("\tVCMPPS $0x11, %s, %s, K1", zero, r(s, 0)) // y < 0, ordered, quiet
		p("\tVMOVAPS %s, K1, %s", zero, r(s, 0))
	} else {
		p("\tVCMPPS $0x11, %s, %s, %s", zero, r(s, 0), r(s, 1))
		p("\tVANDNPS %s, %s, %s", r(s, 0), r(s, 1), r(s, 0)) // ^mask & y
	}
	p("\tVMOVUPS %s, (DI)", r(s, 0))
	p("\tADDQ $%d, DI", s.bytes)
	p("\tDECQ CX")
	p("\tJNZ rf%sloop", s.name)
	p("\tVZEROUPPER")
	p("\tRET")
	p("")
}

// mulCompress2F32 emits
//
//	func mulCompress2F32AVX512(x, w0, w1 *float32, blocks int, d0, d1 *float32) int
//
// For each of blocks vectors of 16: the products x*w0 and x*w1 (rounded)
// of the lanes with x != 0 (unordered compare, as Go's != : NaN counts),
// in order, are written back to back at d0 and d1 (VCOMPRESSPS; each
// block stores 16 values, of which the next block overwrites those past
// its count, so d0 and d1 need 15 spare values). It returns the count.
func mulCompress2F32() {
	p("// func mulCompress2F32AVX512(x, w0, w1 *float32, blocks int, d0, d1 *float32) int")
	p("TEXT ·mulCompress2F32AVX512(SB), NOSPLIT, $0-56")
	p("\tMOVQ x+0(FP), SI")
	p("\tMOVQ w0+8(FP), R8")
	p("\tMOVQ w1+16(FP), R9")
	p("\tMOVQ blocks+24(FP), CX")
	p("\tMOVQ d0+32(FP), DI")
	p("\tMOVQ d1+40(FP), DX")
	p("\tXORQ R10, R10")
	p("\tVXORPS Z15, Z15, Z15")
	p("mc2loop:")
	p("\tVMOVUPS (SI), Z0")
	p("\tVCMPPS $4, Z15, Z0, K1") // NEQ_UQ: x != 0 or NaN
	p("\tVMULPS (R8), Z0, Z1")
	p("\tVMULPS (R9), Z0, Z2")
	p("\tVCOMPRESSPS Z1, K1, Z3")
	p("\tVCOMPRESSPS Z2, K1, Z4")
	p("\tVMOVUPS Z3, (DI)")
	p("\tVMOVUPS Z4, (DX)")
	p("\tKMOVW K1, AX")
	p("\tPOPCNTL AX, AX")
	p("\tADDQ AX, R10")
	p("\tSHLQ $2, AX")
	p("\tADDQ AX, DI")
	p("\tADDQ AX, DX")
	p("\tADDQ $64, SI")
	p("\tADDQ $64, R8")
	p("\tADDQ $64, R9")
	p("\tDECQ CX")
	p("\tJNZ mc2loop")
	p("\tMOVQ R10, ret+48(FP)")
	p("\tVZEROUPPER")
	p("\tRET")
	p("")
}

// mulAccIdx emits
//
//	func mulAccIdx<B>AVX512(acc *int64, w *int32, idx *int32, hv *int32, cnt, blocks, rowBytes, accStride int)
//
// MulAccPackedIdx for B items: for each listed row k = idx[j] (j < cnt) the
// packed weight row at w + k*rowBytes is read once, 16 outputs at a time
// (VPMULDQ of the block for the first eight, of the block shifted by 32
// bits for the last eight, as mulAccP), and multiplied with every item's
// value hv[j*B+b] broadcast, into item b's int64 accumulators at
// acc + b*accStride. Groups of G blocks (G*B*2 accumulators in registers)
// make one pass over the list each.
func mulAccIdx(items int) {
	name := fmt.Sprintf("mulAccIdx%dAVX512", items)
	G := 16 / (2 * items) // 8, 4, 2
	p("// func %s(acc *int64, w *int32, idx *int32, hv *int32, cnt, blocks, rowBytes, accStride int)", name)
	p("TEXT ·%s(SB), NOSPLIT, $0-64", name)
	p("\tMOVQ acc+0(FP), DI")
	p("\tMOVQ w+8(FP), SI")
	p("\tMOVQ blocks+40(FP), CX")
	p("\tMOVQ rowBytes+48(FP), R8")
	p("\tMOVQ accStride+56(FP), R9")
	// item b's accumulators: (DI), (DI)(R9*1), (DI)(R9*2), (R13)(R9*1)
	addr := func(b, off int) string {
		switch b {
		case 0:
			return fmt.Sprintf("%d(DI)", off)
		case 1:
			return fmt.Sprintf("%d(DI)(R9*1)", off)
		case 2:
			return fmt.Sprintf("%d(DI)(R9*2)", off)
		}
		return fmt.Sprintf("%d(R13)(R9*1)", off)
	}
	for _, g := range []int{G, 1} {
		lbl := fmt.Sprintf("%sg%d", name, g)
		p("%s:", lbl)
		p("\tCMPQ CX, $%d", g)
		if g == 1 {
			p("\tJB %sdone", name)
		} else {
			p("\tJB %sg1", name)
		}
		p("\tLEAQ (DI)(R9*2), R13")
		accReg := func(b, blk, part int) string { return fmt.Sprintf("Z%d", (b*g+blk)*2+part) }
		for b := 0; b < items; b++ {
			for blk := 0; blk < g; blk++ {
				for part := 0; part < 2; part++ {
					p("\tVMOVDQU64 %s, %s", addr(b, 128*blk+64*part), accReg(b, blk, part))
				}
			}
		}
		p("\tMOVQ idx+16(FP), R10")
		p("\tMOVQ hv+24(FP), R11")
		p("\tMOVQ cnt+32(FP), R12")
		p("\tTESTQ R12, R12")
		p("\tJZ %sstore", lbl)
		p("%sloop:", lbl)
		p("\tMOVLQZX (R10), AX")
		p("\tIMULQ R8, AX")
		p("\tADDQ SI, AX")
		for b := 0; b < items; b++ {
			p("\tVPBROADCASTD %d(R11), Z%d", 4*b, 16+b)
		}
		for blk := 0; blk < g; blk++ {
			p("\tVMOVDQU32 %d(AX), Z20", 64*blk)
			p("\tVPSHUFD $0xb1, Z20, Z21") // odd dwords to the even places (port 5, not 0 as a shift)
			for b := 0; b < items; b++ {
				t := fmt.Sprintf("Z%d", 22+b%2*2)
				u := fmt.Sprintf("Z%d", 23+b%2*2)
				p("\tVPMULDQ Z20, Z%d, %s", 16+b, t)
				p("\tVPADDQ %s, %s, %s", t, accReg(b, blk, 0), accReg(b, blk, 0))
				p("\tVPMULDQ Z21, Z%d, %s", 16+b, u)
				p("\tVPADDQ %s, %s, %s", u, accReg(b, blk, 1), accReg(b, blk, 1))
			}
		}
		p("\tADDQ $4, R10")
		p("\tADDQ $%d, R11", 4*items)
		p("\tDECQ R12")
		p("\tJNZ %sloop", lbl)
		p("%sstore:", lbl)
		for b := 0; b < items; b++ {
			for blk := 0; blk < g; blk++ {
				for part := 0; part < 2; part++ {
					p("\tVMOVDQU64 %s, %s", accReg(b, blk, part), addr(b, 128*blk+64*part))
				}
			}
		}
		p("\tADDQ $%d, DI", 128*g)
		p("\tADDQ $%d, SI", 64*g)
		p("\tSUBQ $%d, CX", g)
		p("\tJMP %s", lbl)
	}
	p("%sdone:", name)
	p("\tVZEROUPPER")
	p("\tRET")
	p("")
}

// mulAccP emits
//
//	func mulAccP<name>(acc *int64, w *int32, x *int32, blocks, stride, n int)
//
// MulAccPacked on blocks blocks of 16 outputs: each 64-byte weight block
// holds, for outputs 16b+i and 16b+8+i (i < 8), the int32 pair (w[16b+i],
// w[16b+8+i]); VPMULDQ of the block gives the first eight outputs' products
// and, after a 32-bit shift, the last eight's. AVX2 does a block as two
// 32-byte halves (outputs 16b+4h+i and 16b+8+4h+i, i < 4).
func mulAccP(s isa) {
	z := s.reg == "Z"
	p("// func mulAccP%s(acc *int64, w *int32, x *int32, blocks, stride, n int)", s.name)
	p("TEXT ·mulAccP%s(SB), NOSPLIT, $0-48", s.name)
	p("\tMOVQ acc+0(FP), DI")
	p("\tMOVQ w+8(FP), SI")
	p("\tMOVQ blocks+24(FP), CX")
	p("\tMOVQ stride+32(FP), R8")
	// Per 16-output block: AVX-512 one weight vector, accumulators A (+0)
	// and B (+64 bytes); AVX2 two halves h, accumulators at +32h and
	// +64+32h. Groups of G blocks.
	G := 8
	if !z {
		G = 2
	}
	halves := 1
	if !z {
		halves = 2
	}
	for _, g := range []int{G, 1} {
		lbl := fmt.Sprintf("g%d", g)
		p("mp%s%s:", s.name, lbl)
		p("\tCMPQ CX, $%d", g)
		if g == 1 {
			p("\tJB mp%sdone", s.name)
		} else {
			p("\tJB mp%sg1", s.name)
		}
		// accumulator registers: block b, half h, part (0 = A, 1 = B)
		accReg := func(b, h, part int) string { return r(s, (b*halves+h)*2+part) }
		accOff := func(b, h, part int) int { return b*128 + part*64 + h*32 }
		nacc := g * halves * 2
		for b := 0; b < g; b++ {
			for h := 0; h < halves; h++ {
				for part := 0; part < 2; part++ {
					p("\t%s %d(DI), %s", s.mov(), accOff(b, h, part), accReg(b, h, part))
				}
			}
		}
		bx, wr, t := r(s, nacc), r(s, nacc+1), r(s, nacc+2)
		p("\tMOVQ SI, R10")
		p("\tMOVQ x+16(FP), R11")
		p("\tMOVQ n+40(FP), R12")
		p("mp%s%sloop:", s.name, lbl)
		p("\tTESTQ R12, R12")
		p("\tJZ mp%s%sstore", s.name, lbl)
		p("\tMOVL (R11), AX")
		p("\tTESTL AX, AX")
		p("\tJZ mp%s%snext", s.name, lbl)
		p("\tVPBROADCASTD (R11), %s", bx)
		for b := 0; b < g; b++ {
			for h := 0; h < halves; h++ {
				p("\t%s %d(R10), %s", s.mov(), b*64+h*32, wr)
				p("\tVPMULDQ %s, %s, %s", wr, bx, t)
				p("\tVPADDQ %s, %s, %s", t, accReg(b, h, 0), accReg(b, h, 0))
				p("\tVPSRLQ $32, %s, %s", wr, wr)
				p("\tVPMULDQ %s, %s, %s", wr, bx, t)
				p("\tVPADDQ %s, %s, %s", t, accReg(b, h, 1), accReg(b, h, 1))
			}
		}
		p("mp%s%snext:", s.name, lbl)
		p("\tADDQ $4, R11")
		p("\tADDQ R8, R10")
		p("\tDECQ R12")
		p("\tJMP mp%s%sloop", s.name, lbl)
		p("mp%s%sstore:", s.name, lbl)
		for b := 0; b < g; b++ {
			for h := 0; h < halves; h++ {
				for part := 0; part < 2; part++ {
					p("\t%s %s, %d(DI)", s.mov(), accReg(b, h, part), accOff(b, h, part))
				}
			}
		}
		p("\tADDQ $%d, DI", g*128)
		p("\tADDQ $%d, SI", g*64)
		p("\tSUBQ $%d, CX", g)
		p("\tJMP mp%s%s", s.name, lbl)
	}
	p("mp%sdone:", s.name)
	p("\tVZEROUPPER")
	p("\tRET")
	p("")
}

func main() {
	out := flag.String("out", "kernels_amd64.s", "output file")
	flag.Parse()
	p("// Code generated by asmgen.go (go generate ./vecmath); DO NOT EDIT.")
	p("")
	p("//go:build !purego")
	p("")
	p("#include \"textflag.h\"")
	p("")
	avx2 := isa{name: "AVX2", reg: "Y", bytes: 32, group: 8}
	avx512 := isa{name: "AVX512", reg: "Z", bytes: 64, group: 16}
	vnni := isa{name: "VNNI", reg: "Z", bytes: 64, group: 16, vnni: true}
	dotPairs16(avx2)
	dotPairs16(avx512)
	dotPairs16(vnni)
	for _, s := range []isa{avx2, avx512} {
		mulAccI64(s)
		dotI64(s)
		dotI64x2(s)
		requant(s)
		mulAddLanesF32(s)
		mulAccWide(s)
		dotWide(s)
		quantizeF32(s)
		mulAccP(s)
		mulAddColsF32(s)
		reluF32(s)
	}
	net8()
	mulCompress2F32()
	for _, items := range []int{1, 2, 4} {
		mulAccIdx(items)
	}
	net8Lanes(avx2)
	net8Lanes(avx512)
	if err := os.WriteFile(*out, b.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}
}
