// lake's built-in GPU kernels, compiled to PTX (lake.ptx, committed) by
// gen.sh. Every kernel takes only 8-byte parameters (device pointers and
// unsigned 64-bit counts), guards its own indices, and so is safe for any
// grid: package cuda checks each launch against the kernel's signature
// (builtin.go), which must match the parameter lists here.
//
// Compiled with clang as CUDA without the CUDA headers, so the few device
// builtins used are spelled out below. Floating point uses explicitly
// rounded multiplies and adds (never fused) so that the float kernels add
// in the same order, with the same roundings, as the Go CPU path.

typedef unsigned long long u64;
typedef long long i64;

#ifdef LAKE_HOST
// Host emulation (host_test.cc, TestKernelsOnHost): every thread of a
// block is a host thread, __syncthreads a barrier, shared memory a static.
#include "host_shim.h"
#else
#define GLOBAL extern "C" __attribute__((global))
#define SHARED __attribute__((shared))
#define DEVICE __attribute__((device))

static DEVICE inline unsigned tid_x(void) { return __nvvm_read_ptx_sreg_tid_x(); }
static DEVICE inline unsigned ntid_x(void) { return __nvvm_read_ptx_sreg_ntid_x(); }
static DEVICE inline unsigned ctaid_x(void) { return __nvvm_read_ptx_sreg_ctaid_x(); }
static DEVICE inline unsigned nctaid_x(void) { return __nvvm_read_ptx_sreg_nctaid_x(); }
static DEVICE inline void sync_threads(void) { __syncthreads(); }
static DEVICE inline float fmul(float a, float b) { return __nvvm_mul_rn_f(a, b); }
static DEVICE inline float fadd(float a, float b) { return __nvvm_add_rn_f(a, b); }
static DEVICE inline double dmul(double a, double b) { return __nvvm_mul_rn_d(a, b); }
static DEVICE inline double dadd(double a, double b) { return __nvvm_add_rn_d(a, b); }
static DEVICE inline double ddiv(double a, double b) { return __nvvm_div_rn_d(a, b); }
static DEVICE inline double bits2d(u64 b) { return __nvvm_bitcast_ll2d((long long)b); }
static DEVICE inline u64 clock64_(void) { return __nvvm_read_ptx_sreg_clock64(); }
#endif

// c[i] = a[i] + b[i] for i < n.
GLOBAL void lake_vector_add(const float *a, const float *b, float *c, u64 n) {
	for (u64 i = (u64)ctaid_x() * ntid_x() + tid_x(); i < n; i += (u64)nctaid_x() * ntid_x())
		c[i] = fadd(a[i], b[i]);
}

// lake_spin busy-waits about cycles clock cycles (the signature caps
// them), then sets *done to 1: a kernel that outlasts the launch timeout,
// for TestGPULaunchTimeout. Trusted contexts only.
GLOBAL void lake_spin(u64 *done, u64 cycles) {
	if (tid_x() == 0 && ctaid_x() == 0) {
		u64 start = clock64_();
		while (clock64_() - start < cycles)
			;
		*done = 1;
	}
}

// lake_fault writes through p: launched with a pointer outside every
// allocation it raises CUDA_ERROR_ILLEGAL_ADDRESS. Only trusted contexts
// can launch it (its signature in builtin.go forbids untrusted launches).
GLOBAL void lake_fault(int *p, u64 v) {
	if (tid_x() == 0 && ctaid_x() == 0)
		*p = (int)v;
}

// LinnOS: 31 int32 input digits, hidden layers of 256 units with ReLU,
// 2 outputs; class 1 (slow) when out0 < out1. params holds every layer
// back to back: weights row-major [out][in], then the bias.
#define LINNOS_IN 31
#define LINNOS_H 256

// Integer LinnOS, bit-exact with linnos.IntModel: int64 arithmetic that
// wraps on overflow (done in u64, where wrapping is defined). One block
// of 256 threads per item, blocks striding over the items.
static DEVICE inline void linnos_int(const i64 *params, const int *in, int *out, u64 n, int extra) {
	SHARED u64 hs[2][LINNOS_H];
	unsigned j = tid_x();
	for (u64 item = ctaid_x(); item < n; item += nctaid_x()) {
		const int *x = in + item * LINNOS_IN;
		const i64 *w = params;
		const i64 *b = w + LINNOS_H * LINNOS_IN;
		u64 *h = hs[0], *h2 = hs[1];
		if (j < LINNOS_H) {
			u64 s = (u64)b[j];
			for (int i = 0; i < LINNOS_IN; i++)
				s += (u64)(i64)x[i] * (u64)w[j * LINNOS_IN + i];
			h[j] = (i64)s < 0 ? 0 : s;
		}
		const i64 *p = b + LINNOS_H;
		sync_threads();
		for (int l = 0; l < extra; l++) {
			w = p;
			b = w + LINNOS_H * LINNOS_H;
			if (j < LINNOS_H) {
				u64 s = (u64)b[j];
				for (int k = 0; k < LINNOS_H; k++)
					s += h[k] * (u64)w[j * LINNOS_H + k];
				h2[j] = (i64)s < 0 ? 0 : s;
			}
			p = b + LINNOS_H;
			u64 *t = h;
			h = h2;
			h2 = t;
			sync_threads();
		}
		w = p;
		b = w + 2 * LINNOS_H;
		if (j < 2) {
			u64 s = (u64)b[j];
			for (int k = 0; k < LINNOS_H; k++)
				s += h[k] * (u64)w[j * LINNOS_H + k];
			h2[j] = s;
		}
		sync_threads();
		if (j == 0)
			out[item] = (i64)h2[0] < (i64)h2[1] ? 1 : 0;
		sync_threads();
	}
}

GLOBAL void lake_linnos_int0(const i64 *params, const int *in, int *out, u64 n) { linnos_int(params, in, out, n, 0); }
GLOBAL void lake_linnos_int1(const i64 *params, const int *in, int *out, u64 n) { linnos_int(params, in, out, n, 1); }
GLOBAL void lake_linnos_int2(const i64 *params, const int *in, int *out, u64 n) { linnos_int(params, in, out, n, 2); }

// Float LinnOS, adding in linnos.FloatModel's order: the first layer over
// the non-zero digits in index order, the extra layers over every unit,
// the output layer over the non-zero hidden units.
static DEVICE inline void linnos_float(const float *params, const int *in, int *out, u64 n, int extra) {
	SHARED float hs[2][LINNOS_H];
	unsigned j = tid_x();
	for (u64 item = ctaid_x(); item < n; item += nctaid_x()) {
		const int *x = in + item * LINNOS_IN;
		const float *w = params;
		const float *b = w + LINNOS_H * LINNOS_IN;
		float *h = hs[0], *h2 = hs[1];
		if (j < LINNOS_H) {
			float s = b[j];
			for (int i = 0; i < LINNOS_IN; i++)
				if (x[i] != 0)
					s = fadd(s, fmul((float)x[i], w[j * LINNOS_IN + i]));
			h[j] = s < 0 ? 0 : s;
		}
		const float *p = b + LINNOS_H;
		sync_threads();
		for (int l = 0; l < extra; l++) {
			w = p;
			b = w + LINNOS_H * LINNOS_H;
			if (j < LINNOS_H) {
				float s = b[j];
				for (int k = 0; k < LINNOS_H; k++)
					s = fadd(s, fmul(h[k], w[j * LINNOS_H + k]));
				h2[j] = s < 0 ? 0 : s;
			}
			p = b + LINNOS_H;
			float *t = h;
			h = h2;
			h2 = t;
			sync_threads();
		}
		w = p;
		b = w + 2 * LINNOS_H;
		if (j < 2) {
			float s = b[j];
			for (int k = 0; k < LINNOS_H; k++)
				if (h[k] != 0)
					s = fadd(s, fmul(h[k], w[j * LINNOS_H + k]));
			h2[j] = s;
		}
		sync_threads();
		if (j == 0)
			out[item] = h2[1] > h2[0] ? 1 : 0;
		sync_threads();
	}
}

GLOBAL void lake_linnos_float0(const float *params, const int *in, int *out, u64 n) { linnos_float(params, in, out, n, 0); }
GLOBAL void lake_linnos_float1(const float *params, const int *in, int *out, u64 n) { linnos_float(params, in, out, n, 1); }
GLOBAL void lake_linnos_float2(const float *params, const int *in, int *out, u64 n) { linnos_float(params, in, out, n, 2); }

// The MLP's tanh and sigmoid: the same sequence of once-rounded double
// operations, with the same constants, as package kernels' expD, tanh32
// and sigmoid32 (laked/backend/kernels/activation.go), so that they give
// the CPU's bits. Keep the two in step.
static DEVICE inline double lake_expd(double x) {
	double t = dmul(x, 0x1.71547652b82fep+00);
	t = t < 0 ? dadd(t, -0.5) : dadd(t, 0.5);
	i64 k = (i64)t;
	double kf = (double)k;
	double r = dadd(x, -dmul(kf, 0x1.62e42feep-01));
	r = dadd(r, -dmul(kf, 0x1.a39ef35793c76p-33));
	double p = 0x1.6124613a86d09p-33;
	p = dadd(dmul(p, r), 0x1.1eed8eff8d898p-29);
	p = dadd(dmul(p, r), 0x1.ae64567f544e4p-26);
	p = dadd(dmul(p, r), 0x1.27e4fb7789f5cp-22);
	p = dadd(dmul(p, r), 0x1.71de3a556c734p-19);
	p = dadd(dmul(p, r), 0x1.a01a01a01a01ap-16);
	p = dadd(dmul(p, r), 0x1.a01a01a01a01ap-13);
	p = dadd(dmul(p, r), 0x1.6c16c16c16c17p-10);
	p = dadd(dmul(p, r), 0x1.1111111111111p-07);
	p = dadd(dmul(p, r), 0x1.5555555555555p-05);
	p = dadd(dmul(p, r), 0x1.5555555555555p-03);
	p = dadd(dmul(p, r), 0x1p-01);
	p = dadd(dmul(p, r), 1.0);
	p = dadd(dmul(p, r), 1.0);
	return dmul(p, bits2d((u64)(k + 1023) << 52));
}

static DEVICE inline float lake_tanhf(float v) {
	double x = v;
	if (x != x || x == 0)
		return v;
	double ax = x < 0 ? -x : x;
	double y;
	if (ax < 0x1p-10) {
		double x2 = dmul(x, x);
		return (float)dadd(x, dmul(x, dmul(x2, -0x1.5555555555555p-02)));
	} else if (ax > 20) {
		y = 1;
	} else {
		double e = lake_expd(dadd(ax, ax));
		y = dadd(1, -ddiv(2, dadd(e, 1)));
	}
	return (float)(x < 0 ? -y : y);
}

static DEVICE inline float lake_sigmoidf(float v) {
	double x = v;
	if (x != x)
		return v;
	if (x >= 40)
		return 1;
	if (x <= -120)
		return 0;
	return (float)ddiv(1, dadd(1, lake_expd(-x)));
}

// A generic float32 MLP (package kernels' blob: dense layers with no
// activation, ReLU, tanh or sigmoid), one thread per item, summing as
// kernels.MLP does: bias first, then the inputs in order, every product
// and sum rounded once; tanh and sigmoid as above.
// table holds nlayers triples (in, out, activation); params every
// layer's weights (out rows of in) then its biases; scratch 2*maxw
// floats per item. Its extents depend on the table's contents in device
// memory, which a launch cannot check: only trusted contexts (laked's
// own model path) may launch it.
GLOBAL void lake_mlp(const unsigned *table, u64 nlayers, const float *params, const float *in,
		     float *out, float *scratch, u64 n, u64 maxw) {
	for (u64 item = (u64)ctaid_x() * ntid_x() + tid_x(); item < n; item += (u64)nctaid_x() * ntid_x()) {
		float *buf[2] = {scratch + item * 2 * maxw, scratch + item * 2 * maxw + maxw};
		const float *x = in + item * table[0];
		const float *w = params;
		for (u64 l = 0; l < nlayers; l++) {
			unsigned lin = table[3 * l], lout = table[3 * l + 1], act = table[3 * l + 2];
			const float *b = w + (u64)lin * lout;
			float *y = l + 1 == nlayers ? out + item * lout : buf[l % 2];
			for (unsigned o = 0; o < lout; o++) {
				float s = b[o];
				for (unsigned i = 0; i < lin; i++)
					s = fadd(s, fmul(w[(u64)o * lin + i], x[i]));
				if (act == 1)
					s = s < 0 ? 0 : s;
				else if (act == 2)
					s = lake_tanhf(s);
				else if (act == 3)
					s = lake_sigmoidf(s);
				y[o] = s;
			}
			w = b + lout;
			x = y;
		}
	}
}

// LiteFlow snapshots, on the one C engine that the kernel module and the
// C library share (lakelib/include/lake_snapshot.h), made host-device.
// lake_snapshot_build validates and builds an image with lake_snap_build
// (one thread; pointers inside the built model are device addresses into
// mem); lake_snapshot_run runs the built model with lake_snap_run on quantized inputs, one thread per item, bit for
// bit what snapshot.RunQuantized computes in Go.
#ifndef LAKE_HOST
#include <stdint.h>
#include <stddef.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#define snprintf(...) 0 /* no error text on the device: build returns the code */
#define memset __builtin_memset
#define memcpy __builtin_memcpy
#pragma clang force_cuda_host_device begin
#include "lake_snapshot.h"
#pragma clang force_cuda_host_device end
#else
#include "lake_snapshot.h"
#endif

// ret[0] = lake_snap_build's return (0 or -errno), ret[1] = the built
// model's offset in mem.
GLOBAL void lake_snapshot_build(const void *img, u64 len, void *mem, u64 memlen, i64 *ret) {
	if (tid_x() == 0 && ctaid_x() == 0) {
		struct lake_snap *s = 0;
		int rc = lake_snap_build(img, len, mem, memlen, &s, 0, 0);
		ret[0] = rc;
		ret[1] = rc == 0 ? (i64)((char *)s - (char *)mem) : -1;
	}
}

// scratch holds 2*LAKE_SNAP_MAX_WIDTH int32s per item.
GLOBAL void lake_snapshot_run(const struct lake_snap *s, const int32_t *in, int32_t *out, int32_t *scratch, u64 n) {
	for (u64 i = (u64)ctaid_x() * ntid_x() + tid_x(); i < n; i += (u64)nctaid_x() * ntid_x())
		lake_snap_run(s, in + i * s->in_dim, out + i * s->out_dim, scratch + i * 2 * LAKE_SNAP_MAX_WIDTH);
}
