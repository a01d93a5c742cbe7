/* SPDX-License-Identifier: (GPL-2.0 OR MIT) */
/*
 * lake_snapshot.h - the C LiteFlow snapshot engine, shared by the kernel
 * (kernel/liteflow) and userspace. It reads the snapshot codec bytes of the
 * Go package github.com/lakeos/lake/liteflow/snapshot (format version 1,
 * specified in liteflow/SNAPSHOT.md) and runs them bit-exactly like the Go
 * scalar engine (Snapshot.RunQuantized): int8 weights, int32 accumulation,
 * TFLite's MultiplyByQuantizedMultiplier with a saturating left shift, and
 * 1024-entry tanh/sigmoid tables. No floating point is used anywhere (scales
 * are checked on their bit patterns), nothing is allocated, nothing sleeps;
 * the same file compiles in the kernel (__KERNEL__) and on the host, where
 * liteflow/snapshot/c_engine_test.go holds it to the Go engine with ASan
 * and UBSan.
 *
 * A snapshot image is untrusted (it comes from laked through the shared
 * region): lake_snap_check() applies every rule of SNAPSHOT.md's
 * "Validation" and accepts exactly the images the Go decoder accepts.
 * lake_snap_build() then copies the image into the caller's memory as a
 * private, precomputed model (struct lake_snap) that never points back
 * into the image, so the image may be overwritten afterwards.
 *
 * Usage:
 *	size_t need;
 *	char why[128];
 *	struct lake_snap *s;
 *	if (lake_snap_check(img, len, &need, why, sizeof(why)) == 0) {
 *		mem = alloc(need);
 *		lake_snap_build(img, len, mem, need, &s, why, sizeof(why));
 *		int32_t scratch[2 * s->max_width];   (or lake_snap_scratch_words(s))
 *		lake_snap_run(s, q_in, q_out, scratch);
 *	}
 *
 * Return values are 0 or a negative errno: -EINVAL the image breaks a rule
 * (the message says which), -EBADMSG its CRC-32C does not match, -ENOSPC
 * the memory given to lake_snap_build is too small.
 */
#ifndef LAKE_SNAPSHOT_H
#define LAKE_SNAPSHOT_H

#ifdef __KERNEL__
#include <linux/types.h>
#include <linux/errno.h>
#include <linux/kernel.h>
#include <linux/string.h>
#else
#include <stdint.h>
#include <stddef.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#endif

#define LAKE_SNAP_VERSION 1u
#define LAKE_SNAP_HEADER_SIZE 48u
#define LAKE_SNAP_LAYER_HEADER 32u
#define LAKE_SNAP_TRAILER 4u
#define LAKE_SNAP_MAX_SIZE (64u << 20)
#define LAKE_SNAP_MAX_LAYERS 16u
#define LAKE_SNAP_MAX_WIDTH 1024u
#define LAKE_SNAP_TABLE_SIZE 1024u
#define LAKE_SNAP_TABLE_LO (-512)
#define LAKE_SNAP_TABLE_HI 511
/* |w * (q - zero)| <= 128 * 255 for one input (the bias bound uses it). */
#define LAKE_SNAP_MAX_ABS_PRODUCT (128 * 255)

/* Activation types (dtype). */
enum lake_snap_dtype {
	LAKE_SNAP_INT8 = 0,
	LAKE_SNAP_UINT8 = 1,
};

/* Layer activations (liteflow/model.Activation). */
enum lake_snap_act {
	LAKE_SNAP_IDENTITY = 0,
	LAKE_SNAP_RELU = 1,
	LAKE_SNAP_TANH = 2,
	LAKE_SNAP_SIGMOID = 3,
};

/* One layer of a built snapshot; every pointer is into the build memory. */
struct lake_snap_layer {
	uint32_t in, out;
	uint32_t act;
	int32_t pre_zero;   /* added to the requantized accumulator */
	int32_t vlo, vhi;   /* clamp of the requantized value */
	int32_t out_zero;
	uint32_t out_scale_bits; /* binary32 bits of the output scale */
	const int8_t *w;         /* out*in, row-major */
	const int64_t *folded;   /* bias[o] - in_zero * sum(w[o*in ..]) */
	const int32_t *mult;     /* per output */
	const uint8_t *left;     /* max(shift, 0) per output */
	const uint8_t *right;    /* max(-shift, 0) per output */
	const int16_t *lut;      /* LAKE_SNAP_TABLE_SIZE entries, or NULL */
};

/* A built snapshot: a private, validated copy of an image. Read-only after
 * lake_snap_build; safe to run from any number of threads at once. */
struct lake_snap {
	uint64_t generation; /* the producer's counter (header field) */
	uint32_t image_crc;  /* CRC-32C of the image: names the image */
	uint32_t image_len;
	uint32_t dtype;
	uint32_t nlayers;
	uint32_t in_dim, out_dim;
	uint32_t max_width; /* widest stage, inputs included */
	int32_t lo, hi;     /* activation range of dtype */
	uint32_t in_scale_bits;  /* binary32 bits of the input scale */
	int32_t in_zero;
	uint32_t out_scale_bits; /* binary32 bits of the output scale */
	int32_t out_zero;
	struct lake_snap_layer layers[LAKE_SNAP_MAX_LAYERS];
};

#define LAKE_SNAP__ERR(msg, msglen, ...)                                      \
	do {                                                                  \
		if ((msg) && (msglen))                                        \
			snprintf((msg), (msglen), __VA_ARGS__);               \
	} while (0)

static inline uint32_t lake_snap__le16(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8;
}

static inline uint32_t lake_snap__le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static inline uint64_t lake_snap__le64(const uint8_t *p)
{
	return (uint64_t)lake_snap__le32(p) |
	       (uint64_t)lake_snap__le32(p + 4) << 32;
}

/* lake_snap_crc32c returns the CRC-32C (Castagnoli, reflected, init and
 * final xor 0xFFFFFFFF) of buf, as Go's crc32.Checksum(buf, Castagnoli). */
static inline uint32_t lake_snap_crc32c(const void *buf, size_t len)
{
	static const uint32_t t[16] = {
		0x00000000u, 0x105ec76fu, 0x20bd8edeu, 0x30e349b1u,
		0x417b1dbcu, 0x5125dad3u, 0x61c69362u, 0x7198540du,
		0x82f63b78u, 0x92a8fc17u, 0xa24bb5a6u, 0xb21572c9u,
		0xc38d26c4u, 0xd3d3e1abu, 0xe330a81au, 0xf36e6f75u,
	};
	const uint8_t *p = (const uint8_t *)buf;
	uint32_t c = 0xFFFFFFFFu;
	size_t i;

	for (i = 0; i < len; i++) {
		c ^= p[i];
		c = (c >> 4) ^ t[c & 15];
		c = (c >> 4) ^ t[c & 15];
	}
	return c ^ 0xFFFFFFFFu;
}

/* A binary32 scale is usable when finite and > 0: sign clear, exponent not
 * all ones, not +0 (positive subnormals are > 0, as in Go). */
static inline int lake_snap__scale_ok(uint32_t bits)
{
	return !(bits & 0x80000000u) && ((bits >> 23) & 0xFFu) != 0xFFu &&
	       bits != 0;
}

static inline uint32_t lake_snap__pad4(uint32_t n)
{
	return (n + 3u) & ~3u;
}

static inline uint32_t lake_snap__record_len(uint32_t in, uint32_t out,
					     uint32_t nch, int table)
{
	return LAKE_SNAP_LAYER_HEADER + 12u * nch + 4u * out +
	       lake_snap__pad4(in * out) + (table ? LAKE_SNAP_TABLE_SIZE : 0u);
}

/* Bytes of build memory a layer needs (each array 8-byte aligned). */
static inline size_t lake_snap__layer_mem(uint32_t in, uint32_t out, int table)
{
	size_t n = 0;

	n += ((size_t)out * 8u);                        /* folded */
	n += (((size_t)out * 4u + 7u) & ~(size_t)7u);   /* mult */
	n += (((size_t)out + 7u) & ~(size_t)7u) * 2u;   /* left, right */
	n += (((size_t)in * out + 7u) & ~(size_t)7u);   /* w */
	if (table)
		n += (size_t)LAKE_SNAP_TABLE_SIZE * 2u; /* lut */
	return n;
}

/*
 * lake_snap_check validates an image against every rule of SNAPSHOT.md
 * (the Go decoder's rules) without building anything. On success *need
 * (if not NULL) is the number of bytes lake_snap_build needs. On failure
 * msg (if not NULL) says why.
 */
static inline int lake_snap_check(const void *img, size_t len, size_t *need,
				  char *msg, size_t msglen)
{
	const uint8_t *b = (const uint8_t *)img;
	uint32_t end, off, nl, li, prev_out, in_dim, out_dim, dtype;
	int32_t lo, hi, zero;
	uint32_t stored, crc;
	size_t mem = sizeof(struct lake_snap) + 8u;

	if (!img && len) {
		LAKE_SNAP__ERR(msg, msglen, "no image");
		return -EINVAL;
	}
	if (len < LAKE_SNAP_HEADER_SIZE + LAKE_SNAP_TRAILER) {
		LAKE_SNAP__ERR(msg, msglen, "%zu bytes is shorter than header and trailer (%u)",
			       len, LAKE_SNAP_HEADER_SIZE + LAKE_SNAP_TRAILER);
		return -EINVAL;
	}
	if (len > LAKE_SNAP_MAX_SIZE) {
		LAKE_SNAP__ERR(msg, msglen, "%zu bytes exceeds the limit %u", len,
			       LAKE_SNAP_MAX_SIZE);
		return -EINVAL;
	}
	if (b[0] != 'L' || b[1] != 'K' || b[2] != 'S' || b[3] != 'N') {
		LAKE_SNAP__ERR(msg, msglen, "bad magic %02x%02x%02x%02x", b[0], b[1], b[2], b[3]);
		return -EINVAL;
	}
	if (lake_snap__le16(b + 4) != LAKE_SNAP_VERSION) {
		LAKE_SNAP__ERR(msg, msglen, "unsupported format version %u (want %u)",
			       lake_snap__le16(b + 4), LAKE_SNAP_VERSION);
		return -EINVAL;
	}
	if (lake_snap__le16(b + 6) != LAKE_SNAP_HEADER_SIZE) {
		LAKE_SNAP__ERR(msg, msglen, "header size %u (want %u)", lake_snap__le16(b + 6),
			       LAKE_SNAP_HEADER_SIZE);
		return -EINVAL;
	}
	if ((size_t)lake_snap__le32(b + 8) != len) {
		LAKE_SNAP__ERR(msg, msglen, "total length field %u but %zu bytes given",
			       lake_snap__le32(b + 8), len);
		return -EINVAL;
	}
	end = (uint32_t)len - LAKE_SNAP_TRAILER;
	stored = lake_snap__le32(b + end);
	crc = lake_snap_crc32c(b, end);
	if (stored != crc) {
		LAKE_SNAP__ERR(msg, msglen, "checksum mismatch: stored %#08x, computed %#08x",
			       stored, crc);
		return -EBADMSG;
	}
	if (lake_snap__le32(b + 12) != 0) {
		LAKE_SNAP__ERR(msg, msglen, "unknown flags %#x", lake_snap__le32(b + 12));
		return -EINVAL;
	}
	if (lake_snap__le16(b + 38) != 0 || lake_snap__le64(b + 40) != 0) {
		LAKE_SNAP__ERR(msg, msglen, "reserved header bytes not zero");
		return -EINVAL;
	}
	dtype = b[24];
	if (dtype != LAKE_SNAP_INT8 && dtype != LAKE_SNAP_UINT8) {
		LAKE_SNAP__ERR(msg, msglen, "unknown activation type %u", dtype);
		return -EINVAL;
	}
	lo = dtype == LAKE_SNAP_UINT8 ? 0 : -128;
	hi = dtype == LAKE_SNAP_UINT8 ? 255 : 127;
	nl = b[25];
	if (nl < 1 || nl > LAKE_SNAP_MAX_LAYERS) {
		LAKE_SNAP__ERR(msg, msglen, "%u layers outside [1, %u]", nl, LAKE_SNAP_MAX_LAYERS);
		return -EINVAL;
	}
	in_dim = lake_snap__le16(b + 26);
	out_dim = lake_snap__le16(b + 36);
	zero = (int32_t)lake_snap__le32(b + 32);
	if (!lake_snap__scale_ok(lake_snap__le32(b + 28)) || zero < lo || zero > hi) {
		LAKE_SNAP__ERR(msg, msglen, "input quantization scale bits %#x zero %d",
			       lake_snap__le32(b + 28), zero);
		return -EINVAL;
	}
	off = LAKE_SNAP_HEADER_SIZE;
	prev_out = in_dim;
	for (li = 0; li < nl; li++) {
		const uint8_t *h = b + off;
		uint32_t in, out, act, nch, rec, c, o, p;
		int32_t pre_zero, out_zero;
		int table;
		int64_t bound;

		if (end - off < LAKE_SNAP_LAYER_HEADER) {
			LAKE_SNAP__ERR(msg, msglen, "layer %u header at offset %u runs past the data end %u",
				       li, off, end);
			return -EINVAL;
		}
		in = lake_snap__le16(h);
		out = lake_snap__le16(h + 2);
		act = h[4];
		if (in < 1 || in > LAKE_SNAP_MAX_WIDTH || out < 1 || out > LAKE_SNAP_MAX_WIDTH) {
			LAKE_SNAP__ERR(msg, msglen, "layer %u shape %ux%u outside [1, %u]", li, in,
				       out, LAKE_SNAP_MAX_WIDTH);
			return -EINVAL;
		}
		if (in != prev_out) {
			LAKE_SNAP__ERR(msg, msglen, "layer %u has %u inputs, previous stage has %u outputs",
				       li, in, prev_out);
			return -EINVAL;
		}
		if (act > LAKE_SNAP_SIGMOID) {
			LAKE_SNAP__ERR(msg, msglen, "layer %u: unknown activation %u", li, act);
			return -EINVAL;
		}
		if (h[5] > 1) {
			LAKE_SNAP__ERR(msg, msglen, "layer %u: unknown weight granularity %u", li, h[5]);
			return -EINVAL;
		}
		if (lake_snap__le16(h + 6) != 0 || lake_snap__le32(h + 28) != 0) {
			LAKE_SNAP__ERR(msg, msglen, "layer %u: reserved bytes not zero", li);
			return -EINVAL;
		}
		table = act == LAKE_SNAP_TANH || act == LAKE_SNAP_SIGMOID;
		nch = h[5] ? out : 1u;
		rec = lake_snap__record_len(in, out, nch, table);
		if (lake_snap__le32(h + 24) != rec) {
			LAKE_SNAP__ERR(msg, msglen, "layer %u: record length %u, shape implies %u", li,
				       lake_snap__le32(h + 24), rec);
			return -EINVAL;
		}
		if (end - off < rec) {
			LAKE_SNAP__ERR(msg, msglen,
				       "layer %u record (%u bytes at offset %u) runs past the data end %u",
				       li, rec, off, end);
			return -EINVAL;
		}
		pre_zero = (int32_t)lake_snap__le32(h + 12);
		out_zero = (int32_t)lake_snap__le32(h + 20);
		if (!lake_snap__scale_ok(lake_snap__le32(h + 8)) ||
		    !lake_snap__scale_ok(lake_snap__le32(h + 16)) ||
		    (table ? (pre_zero < LAKE_SNAP_TABLE_LO || pre_zero > LAKE_SNAP_TABLE_HI)
			   : (pre_zero < lo || pre_zero > hi)) ||
		    out_zero < lo || out_zero > hi) {
			LAKE_SNAP__ERR(msg, msglen, "layer %u: bad quantization parameters", li);
			return -EINVAL;
		}
		if (!table && (lake_snap__le32(h + 8) != lake_snap__le32(h + 16) ||
			       pre_zero != out_zero)) {
			LAKE_SNAP__ERR(msg, msglen,
				       "layer %u: activation %u layer must have equal pre and output quantization",
				       li, act);
			return -EINVAL;
		}
		p = off + LAKE_SNAP_LAYER_HEADER;
		for (c = 0; c < nch; c++) {
			uint32_t ws = lake_snap__le32(b + p + 4 * c);
			int32_t mult = (int32_t)lake_snap__le32(b + p + 4 * nch + 4 * c);
			int32_t shift = (int32_t)lake_snap__le32(b + p + 8 * nch + 4 * c);

			if (!lake_snap__scale_ok(ws)) {
				LAKE_SNAP__ERR(msg, msglen, "layer %u channel %u: weight scale bits %#x",
					       li, c, ws);
				return -EINVAL;
			}
			if (shift < -31 || shift > 30 || (mult != 0 && mult < (1 << 30))) {
				LAKE_SNAP__ERR(msg, msglen, "layer %u channel %u: multiplier %d shift %d",
					       li, c, mult, shift);
				return -EINVAL;
			}
		}
		p += 12 * nch;
		bound = (int64_t)0x7FFFFFFF - (int64_t)in * LAKE_SNAP_MAX_ABS_PRODUCT;
		for (o = 0; o < out; o++) {
			int64_t bias = (int32_t)lake_snap__le32(b + p + 4 * o);

			if (bias > bound || bias < -bound) {
				LAKE_SNAP__ERR(msg, msglen,
					       "layer %u: bias %lld of output %u exceeds +-%lld (accumulator could overflow)",
					       li, (long long)bias, o, (long long)bound);
				return -EINVAL;
			}
		}
		p += 4 * out;
		for (c = in * out; c < lake_snap__pad4(in * out); c++) {
			if (b[p + c]) {
				LAKE_SNAP__ERR(msg, msglen, "layer %u: weight padding not zero", li);
				return -EINVAL;
			}
		}
		/* Table entries are bytes of the activation type: always in
		 * [lo, hi], so there is nothing more to check. */
		mem += lake_snap__layer_mem(in, out, table);
		off += rec;
		prev_out = out;
	}
	if (off != end) {
		LAKE_SNAP__ERR(msg, msglen, "%u trailing bytes after the last layer", end - off);
		return -EINVAL;
	}
	if (out_dim != prev_out) {
		LAKE_SNAP__ERR(msg, msglen, "header output dimension %u, last layer has %u outputs",
			       out_dim, prev_out);
		return -EINVAL;
	}
	if (need)
		*need = mem;
	return 0;
}

/*
 * lake_snap_build validates img (as lake_snap_check) and builds the
 * private model in mem (memlen bytes, at least what lake_snap_check said;
 * any alignment). *out points into mem and stays valid as long as mem
 * does; it never refers to img.
 */
static inline int lake_snap_build(const void *img, size_t len, void *mem, size_t memlen,
				  struct lake_snap **out, char *msg, size_t msglen)
{
	const uint8_t *b = (const uint8_t *)img;
	size_t need, skew;
	uint8_t *cur;
	struct lake_snap *s;
	uint32_t li, off, max_width;
	int32_t in_zero;
	int rc;

	rc = lake_snap_check(img, len, &need, msg, msglen);
	if (rc)
		return rc;
	if (!mem || memlen < need) {
		LAKE_SNAP__ERR(msg, msglen, "build memory %zu bytes, need %zu", memlen, need);
		return -ENOSPC;
	}
	skew = (size_t)(-(uintptr_t)mem & 7u);
	s = (struct lake_snap *)((uint8_t *)mem + skew);
	memset(s, 0, sizeof(*s));
	cur = (uint8_t *)(s + 1);
	s->generation = lake_snap__le64(b + 16);
	s->image_len = (uint32_t)len;
	s->image_crc = lake_snap__le32(b + len - LAKE_SNAP_TRAILER);
	s->dtype = b[24];
	s->nlayers = b[25];
	s->in_dim = lake_snap__le16(b + 26);
	s->out_dim = lake_snap__le16(b + 36);
	s->lo = s->dtype == LAKE_SNAP_UINT8 ? 0 : -128;
	s->hi = s->dtype == LAKE_SNAP_UINT8 ? 255 : 127;
	s->in_scale_bits = lake_snap__le32(b + 28);
	s->in_zero = (int32_t)lake_snap__le32(b + 32);
	max_width = s->in_dim;
	in_zero = s->in_zero;
	off = LAKE_SNAP_HEADER_SIZE;
	for (li = 0; li < s->nlayers; li++) {
		const uint8_t *h = b + off;
		struct lake_snap_layer *l = &s->layers[li];
		uint32_t nch, p, o, i;
		int table;
		int64_t *folded;
		int32_t *mult;
		uint8_t *left, *right;
		int8_t *w;

		l->in = lake_snap__le16(h);
		l->out = lake_snap__le16(h + 2);
		l->act = h[4];
		nch = h[5] ? l->out : 1u;
		table = l->act == LAKE_SNAP_TANH || l->act == LAKE_SNAP_SIGMOID;
		l->pre_zero = (int32_t)lake_snap__le32(h + 12);
		l->out_scale_bits = lake_snap__le32(h + 16);
		l->out_zero = (int32_t)lake_snap__le32(h + 20);
		l->vlo = s->lo;
		l->vhi = s->hi;
		if (l->act == LAKE_SNAP_RELU && l->out_zero > s->lo)
			l->vlo = l->out_zero;
		if (table) {
			l->vlo = LAKE_SNAP_TABLE_LO;
			l->vhi = LAKE_SNAP_TABLE_HI;
		}
		if (l->out > max_width)
			max_width = l->out;

		folded = (int64_t *)cur;
		cur += (size_t)l->out * 8u;
		mult = (int32_t *)cur;
		cur += ((size_t)l->out * 4u + 7u) & ~(size_t)7u;
		left = cur;
		cur += ((size_t)l->out + 7u) & ~(size_t)7u;
		right = cur;
		cur += ((size_t)l->out + 7u) & ~(size_t)7u;
		w = (int8_t *)cur;
		cur += ((size_t)l->in * l->out + 7u) & ~(size_t)7u;

		p = off + LAKE_SNAP_LAYER_HEADER + 4 * nch; /* past weight scales */
		for (o = 0; o < l->out; o++) {
			uint32_t c = h[5] ? o : 0u;
			int32_t shift = (int32_t)lake_snap__le32(b + p + 4 * nch + 4 * c);

			mult[o] = (int32_t)lake_snap__le32(b + p + 4 * c);
			left[o] = shift > 0 ? (uint8_t)shift : 0;
			right[o] = shift > 0 ? 0 : (uint8_t)(-shift);
		}
		p += 8 * nch;
		for (i = 0; i < l->in * l->out; i++)
			w[i] = (int8_t)b[p + 4 * l->out + i];
		for (o = 0; o < l->out; o++) {
			int64_t sum = 0;

			for (i = 0; i < l->in; i++)
				sum += w[o * l->in + i];
			folded[o] = (int64_t)(int32_t)lake_snap__le32(b + p + 4 * o) -
				    (int64_t)in_zero * sum;
		}
		p += 4 * l->out + lake_snap__pad4(l->in * l->out);
		l->lut = NULL;
		if (table) {
			int16_t *lut = (int16_t *)cur;

			cur += (size_t)LAKE_SNAP_TABLE_SIZE * 2u;
			for (i = 0; i < LAKE_SNAP_TABLE_SIZE; i++)
				lut[i] = s->dtype == LAKE_SNAP_UINT8 ? (int16_t)b[p + i]
								    : (int16_t)(int8_t)b[p + i];
			l->lut = lut;
		}
		l->folded = folded;
		l->mult = mult;
		l->left = left;
		l->right = right;
		l->w = w;
		in_zero = l->out_zero;
		off += lake_snap__le32(h + 24);
	}
	s->max_width = max_width;
	s->out_scale_bits = s->layers[s->nlayers - 1].out_scale_bits;
	s->out_zero = s->layers[s->nlayers - 1].out_zero;
	*out = s;
	return 0;
}

/* lake_snap_scratch_words is the int32 scratch lake_snap_run needs. */
static inline uint32_t lake_snap_scratch_words(const struct lake_snap *s)
{
	return 2u * s->max_width;
}

/* TFLite's MultiplyByQuantizedMultiplier (liteflow/fixedpoint) with the
 * shift split in advance: saturating left shift, rounding doubling high
 * multiply, rounding divide by a power of two. */
static inline int32_t lake_snap_mbqm(int32_t acc, int32_t mult, uint32_t left, uint32_t right)
{
	int64_t x = (int64_t)acc * ((int64_t)1 << (left > 31 ? 31 : left));
	int64_t ab, v, mask, rem, thr;
	int32_t h, r;

	if (x > 0x7FFFFFFFLL)
		x = 0x7FFFFFFFLL;
	if (x < -0x7FFFFFFFLL - 1)
		x = -0x7FFFFFFFLL - 1;
	if (x == -0x7FFFFFFFLL - 1 && mult == (int32_t)(-0x7FFFFFFFLL - 1)) {
		h = 0x7FFFFFFF;
	} else {
		ab = x * (int64_t)mult;
		v = ab + (ab >= 0 ? ((int64_t)1 << 30) : (1 - ((int64_t)1 << 30)));
		/* division by 2^31 truncating toward zero, as C's and Go's / */
		h = (int32_t)(v >= 0 ? v / ((int64_t)1 << 31) : -((-v) / ((int64_t)1 << 31)));
	}
	if (right == 0)
		return h;
	if (right > 31)
		right = 31;
	mask = ((int64_t)1 << right) - 1;
	rem = (int64_t)h & mask;
	thr = (mask >> 1) + (h < 0 ? 1 : 0);
	r = (int32_t)((int64_t)h >> right);
	return r + (rem > thr ? 1 : 0);
}

/*
 * lake_snap_run runs s on quantized inputs q_in (s->in_dim values in the
 * input's integer domain; out-of-range values are clamped, as in Go's
 * RunQuantized) and writes s->out_dim quantized outputs to q_out. scratch
 * holds lake_snap_scratch_words(s) int32s. It never fails, allocates or
 * sleeps; it only reads s.
 */
static inline void lake_snap_run(const struct lake_snap *s, const int32_t *q_in,
				 int32_t *q_out, int32_t *scratch)
{
	int32_t *cur = scratch, *next = scratch + s->max_width, *t;
	uint32_t li, i, o;

	for (i = 0; i < s->in_dim; i++) {
		int32_t v = q_in[i];

		cur[i] = v < s->lo ? s->lo : v > s->hi ? s->hi : v;
	}
	for (li = 0; li < s->nlayers; li++) {
		const struct lake_snap_layer *l = &s->layers[li];

		for (o = 0; o < l->out; o++) {
			const int8_t *w = l->w + (size_t)o * l->in;
			int32_t dot = 0, acc, r;
			int64_t q;

			for (i = 0; i < l->in; i++)
				dot += (int32_t)w[i] * cur[i];
			/* validation bounds the true accumulator to int32 */
			acc = (int32_t)((int64_t)dot + l->folded[o]);
			r = lake_snap_mbqm(acc, l->mult[o], l->left[o], l->right[o]);
			q = (int64_t)r + l->pre_zero;
			if (q < l->vlo)
				q = l->vlo;
			if (q > l->vhi)
				q = l->vhi;
			next[o] = l->lut ? l->lut[q - LAKE_SNAP_TABLE_LO] : (int32_t)q;
		}
		t = cur;
		cur = next;
		next = t;
	}
	for (o = 0; o < s->out_dim; o++)
		q_out[o] = cur[o];
}

/*
 * Fixed-point conversions for kernel callers, which have real-valued
 * features in fixed point (x_fx = x * 2^frac) and no FPU. A tensor's
 * (scale, zero) pair has its scale as binary32 bits (in_scale_bits,
 * out_scale_bits); scale = m * 2^e exactly, m < 2^24.
 */
static inline void lake_snap__scale_parts(uint32_t bits, uint64_t *m, int32_t *e)
{
	uint32_t ex = (bits >> 23) & 0xFFu, fr = bits & 0x7FFFFFu;

	if (ex == 0) {
		*m = fr;
		*e = -149;
	} else {
		*m = fr | 0x800000u;
		*e = (int32_t)ex - 150;
	}
}

/*
 * lake_snap_quantize_fx returns clamp(zero + round_half_away(x / scale),
 * lo, hi) for the real x = x_fx / 2^frac (frac <= 62), computed exactly in
 * integers. It agrees with Go's snapshot.QuantizeValue except where Go's
 * binary32 division rounds x / scale across a half-way point, and except
 * for scales above 2^(38-frac) (approximate there). scale_bits must be a
 * valid scale (finite, > 0), as every scale of a built snapshot is.
 */
static inline int32_t lake_snap_quantize_fx(uint32_t scale_bits, int32_t zero, int32_t lo,
					    int32_t hi, int64_t x_fx, uint32_t frac)
{
	uint64_t m, ax, num, den, q;
	int32_t e, k;
	int neg = x_fx < 0;
	int64_t v;

	lake_snap__scale_parts(scale_bits, &m, &e);
	if (m == 0 || frac > 62)
		return zero;
	ax = neg ? (uint64_t)0 - (uint64_t)x_fx : (uint64_t)x_fx;
	if (ax == 0)
		return zero < lo ? lo : zero > hi ? hi : zero;
	/* x / scale = ax * 2^k / m */
	k = -(e + (int32_t)frac);
	if (k >= 0) {
		if (k >= 62 || ax >= ((uint64_t)1 << (62 - k)))
			return neg ? lo : hi; /* |x / scale| >= 2^62 / 2^24: saturated */
		num = ax << k;
		den = m;
	} else {
		uint32_t sh = (uint32_t)(-k);

		if (sh > 38) {
			ax >>= (sh - 38 > 63 ? 63 : sh - 38);
			sh = 38;
		}
		num = ax;
		den = m << sh; /* < 2^62 */
	}
	/* round half away from zero: floor((2 num + den) / (2 den)); num < 2^63 */
	if (num > (((uint64_t)1 << 63) - 1 - den) / 2)
		q = num / den + ((num % den) * 2 >= den ? 1 : 0);
	else
		q = (2 * num + den) / (2 * den);
	if (q > (uint64_t)1 << 20)
		q = (uint64_t)1 << 20;
	v = (int64_t)zero + (neg ? -(int64_t)q : (int64_t)q);
	return v < lo ? lo : v > hi ? hi : (int32_t)v;
}

/*
 * lake_snap_dequantize_fx returns round_half_away(scale * (q - zero) *
 * 2^frac), the real value of q in fixed point with frac fractional bits
 * (frac <= 62), saturated to +-2^62.
 */
static inline int64_t lake_snap_dequantize_fx(uint32_t scale_bits, int32_t zero, int32_t q,
					      uint32_t frac)
{
	uint64_t m, a, r;
	int32_t e, t;
	int64_t d = (int64_t)q - zero;
	int neg = d < 0;

	lake_snap__scale_parts(scale_bits, &m, &e);
	if (frac > 62)
		frac = 62;
	a = (uint64_t)(neg ? -d : d) * m; /* < 2^33 * 2^24 */
	t = e + (int32_t)frac;
	if (a == 0)
		return 0;
	if (t >= 0) {
		if (t >= 62 || a >= ((uint64_t)1 << (62 - t)))
			r = (uint64_t)1 << 62;
		else
			r = a << t;
	} else if (-t >= 63) {
		r = 0;
	} else {
		r = (a + ((uint64_t)1 << (-t - 1))) >> -t;
	}
	return neg ? -(int64_t)r : (int64_t)r;
}

/*
 * lake_snap_fx_to_f32 returns the binary32 bits of x_fx / 2^frac (frac <=
 * 126), rounding toward zero when x_fx has more than 24 significant bits:
 * how a kernel producer without an FPU writes float fields (feature
 * records laked reads as float32).
 */
static inline uint32_t lake_snap_fx_to_f32(int64_t x_fx, uint32_t frac)
{
	uint64_t a = x_fx < 0 ? (uint64_t)0 - (uint64_t)x_fx : (uint64_t)x_fx;
	uint32_t sign = x_fx < 0 ? 0x80000000u : 0u, top = 63;
	int32_t exp;

	if (a == 0)
		return 0;
	while (!(a >> top))
		top--;
	/* a = 1.m * 2^top; value = a * 2^-frac */
	exp = (int32_t)top - (int32_t)frac + 127;
	if (exp <= 0 || frac > 126)
		return sign; /* below the normal range: flushed to zero */
	if (top > 23)
		a >>= top - 23;
	else
		a <<= 23 - top;
	return sign | (uint32_t)exp << 23 | ((uint32_t)a & 0x7FFFFFu);
}

/*
 * lake_snap_f32_to_fx converts the binary32 value with bits to fixed
 * point with frac fractional bits (frac <= 62): round_half_away(x *
 * 2^frac), saturated to +-2^62. Returns 0, or -1 (and leaves *out alone)
 * for NaN and infinities: how a kernel consumer without an FPU reads a
 * float answer from laked (untrusted: check the result).
 */
static inline int lake_snap_f32_to_fx(uint32_t bits, uint32_t frac, int64_t *out)
{
	uint32_t ex = (bits >> 23) & 0xFFu;
	uint64_t m, r;
	int32_t e, t;

	if (ex == 0xFFu)
		return -1;
	lake_snap__scale_parts(bits & 0x7FFFFFFFu, &m, &e);
	if (frac > 62)
		frac = 62;
	t = e + (int32_t)frac;
	if (m == 0) {
		r = 0;
	} else if (t >= 0) {
		if (t >= 62 || m >= ((uint64_t)1 << (62 - t)))
			r = (uint64_t)1 << 62;
		else
			r = m << t;
	} else if (-t >= 63) {
		r = 0;
	} else {
		r = (m + ((uint64_t)1 << (-t - 1))) >> -t;
	}
	*out = (bits >> 31) ? -(int64_t)r : (int64_t)r;
	return 0;
}

#endif /* LAKE_SNAPSHOT_H */
