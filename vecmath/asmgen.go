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
	for _, g := range []int{s.group, 1} {
		lbl := fmt.Sprintf("g%d", g)
		p("dp%s%s:", s.name, lbl)
		p("\tCMPQ CX, $%d", g)
		if g == 1 {
			p("\tJB dp%sdone", s.name)
		} else {
			p("\tJB dp%sg1", s.name)
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
			if s.vnni {
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
	p("\tMOVQ X0, AX")
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
	p("\tMOVQ X0, AX")
	p("\tMOVQ AX, s0+32(FP)")
	p("\tMOVQ X2, AX")
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
		mulAddColsF32(s)
	}
	if err := os.WriteFile(*out, b.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}
}
