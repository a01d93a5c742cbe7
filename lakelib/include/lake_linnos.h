/* SPDX-License-Identifier: (GPL-2.0 OR MIT) */
/*
 * lake_linnos.h - the integer LinnOS network in C, shared by the kernel
 * (kernel/dm-linnos, the fast path of the read-steering target) and
 * userspace (the host tests in lakelib/c compile this same file with
 * AddressSanitizer and UndefinedBehaviorSanitizer and compare it bit for bit
 * with Go's linnos.IntModel).
 *
 * The network (linnos/model.go): 31 input digits -> 256 ReLU -> [256 ReLU
 * x extra, extra = 0..2] -> 2 outputs; weights are x10^3 integers, layer i's
 * bias is x10^(3(i+1)); accumulation is int64 and wraps on overflow (done
 * here in uint64 arithmetic, so there is no undefined behaviour); the I/O is
 * slow (revoke) when out[0] < out[1]. The engine takes the 31 digits as
 * given; building them is lake_linnos_features() below.
 *
 * The model image is the LinnOS weight file of linnos/format.go, int64
 * kind (LAKE_LINNOS_KIND_INT64):
 *
 *	0   8  magic "LINNOSW" + format version digit ('2')
 *	8   4  kind (2 = int64)
 *	12  4  extra hidden layers (0..2)
 *	16  4  slow threshold in us the training used (0 = unknown)
 *	20  4  pending unit (0 = I/Os, 1 = 4 KiB pages)
 *	24  .. per layer: W (row-major [out][in]) then B, int64 little-endian
 *	end-4  CRC-32 (IEEE) of every preceding byte
 *
 * lake_linnos_load() treats the image as hostile: exact length for the
 * declared layer count, known kind/version/unit, CRC, and value ranges (every
 * weight must fit in int32 - a trained model's weights are a few thousand;
 * the kernel keeps them as int32, half the memory and cache - and biases are
 * any int64). The image must be private memory (copy it out of shared
 * memory first): it is read more than once.
 *
 * No allocation, no floating point, no sleeping: the caller provides the
 * model memory (lake_linnos_model_size()) and, for inference, a scratch
 * buffer of LAKE_LINNOS_SCRATCH int64 (4 KiB: too big for a kernel stack
 * frame, so the kernel uses a per-CPU buffer).
 */
#ifndef LAKE_LINNOS_H
#define LAKE_LINNOS_H

#ifdef __KERNEL__
#include <linux/types.h>
#include <linux/errno.h>
#include <linux/stddef.h>
#include <linux/string.h>
#else
#include <stdint.h>
#include <stddef.h>
#include <errno.h>
#include <string.h>
#endif

#define LAKE_LINNOS_INPUTS 31
#define LAKE_LINNOS_HIDDEN 256
#define LAKE_LINNOS_CLASSES 2
#define LAKE_LINNOS_MAX_EXTRA 2
#define LAKE_LINNOS_SCRATCH (2 * LAKE_LINNOS_HIDDEN)

/* Weight-file constants (linnos/format.go). LAKE_LINNOS_FORMAT_VERSION is
 * the only version accepted: the feature layout is part of it, and a model
 * trained on another layout would mean something else. */
#define LAKE_LINNOS_MAGIC_PREFIX "LINNOSW"
#define LAKE_LINNOS_FORMAT_VERSION 2
#define LAKE_LINNOS_KIND_FLOAT32 1
#define LAKE_LINNOS_KIND_INT64 2
#define LAKE_LINNOS_HEADER_SIZE 24
#define LAKE_LINNOS_PENDING_IOS 0
#define LAKE_LINNOS_PENDING_PAGES 1
#define LAKE_LINNOS_WEIGHT_MAX 2147483647LL
#define LAKE_LINNOS_WEIGHT_MIN (-2147483647LL - 1)

/* Feature layout (31 decimal digits, most significant first). */
#define LAKE_LINNOS_HISTORY 4
#define LAKE_LINNOS_PENDING_DIGITS 3
#define LAKE_LINNOS_LATENCY_DIGITS 4
#define LAKE_LINNOS_MAX_PENDING 999
#define LAKE_LINNOS_MAX_LATENCY 9999

/*
 * A validated model. Weights are stored transposed ([in][out]) so that
 * inference walks only the non-zero inputs and the hidden units ReLU left
 * non-zero; integer addition (wrapping) is associative, so the result is
 * bit-identical to the row-by-row reference order.
 */
struct lake_linnos_model {
	uint32_t extra;        /* extra hidden layers, 0..2 */
	uint32_t threshold_us; /* the training's slow threshold (metadata) */
	uint32_t pending_unit; /* LAKE_LINNOS_PENDING_* */
	uint32_t format_version;
	int64_t b0[LAKE_LINNOS_HIDDEN];
	int64_t bm[LAKE_LINNOS_MAX_EXTRA][LAKE_LINNOS_HIDDEN];
	int64_t b1[LAKE_LINNOS_CLASSES];
	int32_t w0t[LAKE_LINNOS_INPUTS][LAKE_LINNOS_HIDDEN];
	int32_t w1t[LAKE_LINNOS_HIDDEN][LAKE_LINNOS_CLASSES];
	/* extra x [HIDDEN in][HIDDEN out] */
	int32_t wmt[];
};

/* lake_linnos_model_size returns the bytes a model with extra layers needs
 * (0 for extra > 2). */
static inline size_t lake_linnos_model_size(uint32_t extra)
{
	if (extra > LAKE_LINNOS_MAX_EXTRA)
		return 0;
	return sizeof(struct lake_linnos_model) +
	       (size_t)extra * LAKE_LINNOS_HIDDEN * LAKE_LINNOS_HIDDEN * sizeof(int32_t);
}

/* lake_linnos_image_size returns the exact image length for extra layers
 * of the int64 kind (0 for extra > 2). */
static inline size_t lake_linnos_image_size(uint32_t extra)
{
	size_t n;

	if (extra > LAKE_LINNOS_MAX_EXTRA)
		return 0;
	n = (size_t)LAKE_LINNOS_INPUTS * LAKE_LINNOS_HIDDEN + LAKE_LINNOS_HIDDEN +
	    (size_t)extra * (LAKE_LINNOS_HIDDEN * LAKE_LINNOS_HIDDEN + LAKE_LINNOS_HIDDEN) +
	    (size_t)LAKE_LINNOS_HIDDEN * LAKE_LINNOS_CLASSES + LAKE_LINNOS_CLASSES;
	return LAKE_LINNOS_HEADER_SIZE + n * 8 + 4;
}

static inline uint32_t lake_linnos__le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline int64_t lake_linnos__le64s(const unsigned char *p)
{
	uint64_t v = (uint64_t)lake_linnos__le32(p) | (uint64_t)lake_linnos__le32(p + 4) << 32;

	return (int64_t)v; /* two's complement: gcc and the kernel define it */
}

/* lake_linnos_crc32 is CRC-32 (IEEE 802.3, reflected, as Go's
 * crc32.ChecksumIEEE), with a 16-entry table. */
static inline uint32_t lake_linnos_crc32(const void *data, size_t len)
{
	static const uint32_t t[16] = {
		0x00000000, 0x1db71064, 0x3b6e20c8, 0x26d930ac, 0x76dc4190, 0x6b6b51f4,
		0x4db26158, 0x5005713c, 0xedb88320, 0xf00f9344, 0xd6d6a3e8, 0xcb61b38c,
		0x9b64c2b0, 0x86d3d2d4, 0xa00ae278, 0xbdbdf21c,
	};
	const unsigned char *p = data;
	uint32_t c = 0xffffffffu;
	size_t i;

	for (i = 0; i < len; i++) {
		c ^= p[i];
		c = (c >> 4) ^ t[c & 15];
		c = (c >> 4) ^ t[c & 15];
	}
	return ~c;
}

/*
 * lake_linnos_image_check validates an image's header, length and CRC and
 * returns its layer count in *extra. 0 or -EINVAL (bad image; *why says
 * what, a static string), -EPROTONOSUPPORT (another format version, or the
 * float kind, which the kernel cannot run).
 */
static inline int lake_linnos_image_check(const void *img, size_t len, uint32_t *extra, const char **why)
{
	const unsigned char *p = img;
	uint32_t kind, ex, unit;
	const char *dummy;

	if (!why)
		why = &dummy;
	*why = NULL;
	if (!img || len < LAKE_LINNOS_HEADER_SIZE + 4) {
		*why = "image shorter than the header";
		return -EINVAL;
	}
	if (memcmp(p, LAKE_LINNOS_MAGIC_PREFIX, 7) != 0) {
		*why = "bad magic (not a LinnOS weight file)";
		return -EINVAL;
	}
	if (p[7] != '0' + LAKE_LINNOS_FORMAT_VERSION) {
		*why = p[7] >= '0' && p[7] < '0' + LAKE_LINNOS_FORMAT_VERSION ?
			       "older weight-file version (another feature layout): retrain" :
			       "unknown weight-file version";
		return -EPROTONOSUPPORT;
	}
	kind = lake_linnos__le32(p + 8);
	ex = lake_linnos__le32(p + 12);
	unit = lake_linnos__le32(p + 20);
	if (kind == LAKE_LINNOS_KIND_FLOAT32) {
		*why = "float weights: the kernel runs the integer (quantized) model only";
		return -EPROTONOSUPPORT;
	}
	if (kind != LAKE_LINNOS_KIND_INT64) {
		*why = "unknown weight kind";
		return -EINVAL;
	}
	if (ex > LAKE_LINNOS_MAX_EXTRA) {
		*why = "more than 2 extra layers";
		return -EINVAL;
	}
	if (unit != LAKE_LINNOS_PENDING_IOS && unit != LAKE_LINNOS_PENDING_PAGES) {
		*why = "unknown pending unit";
		return -EINVAL;
	}
	if (len != lake_linnos_image_size(ex)) {
		*why = "image length does not match its layer count";
		return -EINVAL;
	}
	if (lake_linnos_crc32(p, len - 4) != lake_linnos__le32(p + len - 4)) {
		*why = "CRC mismatch";
		return -EINVAL;
	}
	if (extra)
		*extra = ex;
	return 0;
}

/* lake_linnos__weights reads rows x cols int64 weights (row-major
 * [out][in], out = rows) into dst transposed ([in][out]) as int32. */
static inline int lake_linnos__weights(int32_t *dst, const unsigned char **pp, unsigned int out,
				       unsigned int in)
{
	const unsigned char *p = *pp;
	unsigned int o, i;

	for (o = 0; o < out; o++) {
		for (i = 0; i < in; i++, p += 8) {
			int64_t v = lake_linnos__le64s(p);

			if (v < LAKE_LINNOS_WEIGHT_MIN || v > LAKE_LINNOS_WEIGHT_MAX)
				return -ERANGE;
			dst[(size_t)i * out + o] = (int32_t)v;
		}
	}
	*pp = p;
	return 0;
}

static inline void lake_linnos__biases(int64_t *dst, const unsigned char **pp, unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++, *pp += 8)
		dst[i] = lake_linnos__le64s(*pp);
}

/*
 * lake_linnos_load validates img (lake_linnos_image_check plus value
 * ranges) and builds the model in m (msize bytes, at least
 * lake_linnos_model_size(extra)). Returns 0, -EINVAL, -EPROTONOSUPPORT,
 * -ERANGE (a weight outside int32) or -ENOSPC (m too small); *why says
 * what. On error m holds garbage and must not be used.
 */
static inline int lake_linnos_load(struct lake_linnos_model *m, size_t msize, const void *img, size_t len,
				   const char **why)
{
	const unsigned char *p;
	const char *dummy;
	uint32_t ex, l;
	int rc;

	if (!why)
		why = &dummy;
	rc = lake_linnos_image_check(img, len, &ex, why);
	if (rc)
		return rc;
	if (!m || msize < lake_linnos_model_size(ex)) {
		*why = "model buffer too small";
		return -ENOSPC;
	}
	p = img;
	m->extra = ex;
	m->format_version = LAKE_LINNOS_FORMAT_VERSION;
	m->threshold_us = lake_linnos__le32(p + 16);
	m->pending_unit = lake_linnos__le32(p + 20);
	memset(m->bm, 0, sizeof(m->bm));
	p += LAKE_LINNOS_HEADER_SIZE;
	rc = lake_linnos__weights(&m->w0t[0][0], &p, LAKE_LINNOS_HIDDEN, LAKE_LINNOS_INPUTS);
	if (rc)
		goto range;
	lake_linnos__biases(m->b0, &p, LAKE_LINNOS_HIDDEN);
	for (l = 0; l < ex; l++) {
		rc = lake_linnos__weights(m->wmt + (size_t)l * LAKE_LINNOS_HIDDEN * LAKE_LINNOS_HIDDEN, &p,
					  LAKE_LINNOS_HIDDEN, LAKE_LINNOS_HIDDEN);
		if (rc)
			goto range;
		lake_linnos__biases(m->bm[l], &p, LAKE_LINNOS_HIDDEN);
	}
	rc = lake_linnos__weights(&m->w1t[0][0], &p, LAKE_LINNOS_CLASSES, LAKE_LINNOS_HIDDEN);
	if (rc)
		goto range;
	lake_linnos__biases(m->b1, &p, LAKE_LINNOS_CLASSES);
	return 0;
range:
	*why = "a weight is outside the int32 range";
	return rc;
}

/*
 * lake_linnos_logits computes the two outputs for the 31 digits x, with
 * scratch (LAKE_LINNOS_SCRATCH int64, any contents). Never fails, never
 * allocates; the cost is about 256 multiply-adds per non-zero digit plus
 * 65536 per extra layer (skipping zero activations).
 */
static inline void lake_linnos_logits(const struct lake_linnos_model *m, const int32_t *x, int64_t *scratch,
				      int64_t out[LAKE_LINNOS_CLASSES])
{
	uint64_t *h = (uint64_t *)scratch, *h2 = h + LAKE_LINNOS_HIDDEN, *t;
	uint64_t o0, o1;
	unsigned int i, j, l;

	for (j = 0; j < LAKE_LINNOS_HIDDEN; j++)
		h[j] = (uint64_t)m->b0[j];
	for (i = 0; i < LAKE_LINNOS_INPUTS; i++) {
		uint64_t xv = (uint64_t)(int64_t)x[i];
		const int32_t *col = m->w0t[i];

		if (!xv)
			continue;
		for (j = 0; j < LAKE_LINNOS_HIDDEN; j++)
			h[j] += xv * (uint64_t)(int64_t)col[j];
	}
	for (j = 0; j < LAKE_LINNOS_HIDDEN; j++)
		if ((int64_t)h[j] < 0)
			h[j] = 0;
	for (l = 0; l < m->extra && l < LAKE_LINNOS_MAX_EXTRA; l++) {
		const int32_t *wt = m->wmt + (size_t)l * LAKE_LINNOS_HIDDEN * LAKE_LINNOS_HIDDEN;

		for (j = 0; j < LAKE_LINNOS_HIDDEN; j++)
			h2[j] = (uint64_t)m->bm[l][j];
		for (i = 0; i < LAKE_LINNOS_HIDDEN; i++) {
			const int32_t *col = wt + (size_t)i * LAKE_LINNOS_HIDDEN;
			uint64_t v = h[i];

			if (!v)
				continue;
			for (j = 0; j < LAKE_LINNOS_HIDDEN; j++)
				h2[j] += v * (uint64_t)(int64_t)col[j];
		}
		for (j = 0; j < LAKE_LINNOS_HIDDEN; j++)
			if ((int64_t)h2[j] < 0)
				h2[j] = 0;
		t = h;
		h = h2;
		h2 = t;
	}
	o0 = (uint64_t)m->b1[0];
	o1 = (uint64_t)m->b1[1];
	for (i = 0; i < LAKE_LINNOS_HIDDEN; i++) {
		uint64_t v = h[i];

		if (!v)
			continue;
		o0 += v * (uint64_t)(int64_t)m->w1t[i][0];
		o1 += v * (uint64_t)(int64_t)m->w1t[i][1];
	}
	out[0] = (int64_t)o0;
	out[1] = (int64_t)o1;
}

/* lake_linnos_slow returns 1 when the model predicts the I/O slow
 * (out[0] < out[1]), else 0. */
static inline int lake_linnos_slow(const struct lake_linnos_model *m, const int32_t *x, int64_t *scratch)
{
	int64_t o[LAKE_LINNOS_CLASSES];

	lake_linnos_logits(m, x, scratch, o);
	return o[0] < o[1];
}

/* ---- features ---- */

/* lake_linnos__digits writes v (clamped to [0, max]) in n decimal digits,
 * most significant first. */
static inline void lake_linnos__digits(int32_t *d, unsigned int n, int64_t v, int64_t max)
{
	uint64_t u;

	if (v < 0)
		v = 0;
	if (v > max)
		v = max;
	u = (uint64_t)v;
	while (n--) {
		d[n] = (int32_t)(u % 10);
		u /= 10;
	}
}

/*
 * struct lake_linnos_hist is one device's read history: for each of the
 * last 4 completed reads (oldest first), the device's pending count when
 * that read arrived, its latency in us and when it completed (ns on the
 * caller's clock; 0 when recorded without a time). Plain value, not
 * thread-safe.
 */
struct lake_linnos_hist {
	uint32_t pending[LAKE_LINNOS_HISTORY];
	uint32_t latency_us[LAKE_LINNOS_HISTORY];
	uint64_t done_ns[LAKE_LINNOS_HISTORY];
};

/* lake_linnos_hist_complete_at records a completed read that saw pending
 * outstanding I/Os (or pages) at its arrival, took latency_us and
 * completed at now_ns. */
static inline void lake_linnos_hist_complete_at(struct lake_linnos_hist *h, uint32_t pending, uint32_t latency_us,
						uint64_t now_ns)
{
	unsigned int i;

	for (i = 0; i + 1 < LAKE_LINNOS_HISTORY; i++) {
		h->pending[i] = h->pending[i + 1];
		h->latency_us[i] = h->latency_us[i + 1];
		h->done_ns[i] = h->done_ns[i + 1];
	}
	h->pending[LAKE_LINNOS_HISTORY - 1] = pending;
	h->latency_us[LAKE_LINNOS_HISTORY - 1] = latency_us;
	h->done_ns[LAKE_LINNOS_HISTORY - 1] = now_ns;
}

/* lake_linnos_hist_complete is lake_linnos_hist_complete_at without a
 * time (for callers that use no history time-to-live). */
static inline void lake_linnos_hist_complete(struct lake_linnos_hist *h, uint32_t pending, uint32_t latency_us)
{
	lake_linnos_hist_complete_at(h, pending, latency_us, 0);
}

/*
 * lake_linnos_hist_stale returns how many of the history's oldest entries
 * are stale at now_ns with a time-to-live of ttl_ns (0: none is): the
 * newest entry that completed more than ttl_ns before now_ns and every
 * entry older than it (an entry completed "after" now_ns, from another
 * CPU's clock reading, is fresh). Stale entries are read as a device
 * with no history has them, zeros (lake_linnos_features_stale), so that
 * reads long ago do not drive a prediction. linnos/retrain rebuilds the
 * same vector from the count the kernel records (features.LinnOSCompletion
 * Stale, linnos.Extractor.Expire).
 */
static inline unsigned int lake_linnos_hist_stale(const struct lake_linnos_hist *h, uint64_t now_ns, uint64_t ttl_ns)
{
	unsigned int k;

	if (!ttl_ns)
		return 0;
	for (k = LAKE_LINNOS_HISTORY; k > 0; k--)
		if (now_ns > h->done_ns[k - 1] && now_ns - h->done_ns[k - 1] > ttl_ns)
			return k;
	return 0;
}

/*
 * lake_linnos_features_stale writes the 31 digits for a read arriving while
 * pending I/Os (or pages) are outstanding, the read itself included, in
 * the layout of LinnOS and LAKE (format version 2; linnos/README.md lists
 * every digit): the pending counts at the 4 history reads' arrivals,
 * oldest first (3 digits each), the pending count now (3 digits), the 4
 * history reads' latencies, oldest first (4 digits each); the oldest
 * stale entries (lake_linnos_hist_stale) are written as zeros.
 */
static inline void lake_linnos_features_stale(const struct lake_linnos_hist *h, unsigned int stale, uint32_t pending,
					      int32_t *x)
{
	unsigned int i, o = 0;

	for (i = 0; i < LAKE_LINNOS_HISTORY; i++, o += LAKE_LINNOS_PENDING_DIGITS)
		lake_linnos__digits(x + o, LAKE_LINNOS_PENDING_DIGITS, i < stale ? 0 : h->pending[i],
				    LAKE_LINNOS_MAX_PENDING);
	lake_linnos__digits(x + o, LAKE_LINNOS_PENDING_DIGITS, pending, LAKE_LINNOS_MAX_PENDING);
	o += LAKE_LINNOS_PENDING_DIGITS;
	for (i = 0; i < LAKE_LINNOS_HISTORY; i++, o += LAKE_LINNOS_LATENCY_DIGITS)
		lake_linnos__digits(x + o, LAKE_LINNOS_LATENCY_DIGITS, i < stale ? 0 : h->latency_us[i],
				    LAKE_LINNOS_MAX_LATENCY);
}

/* lake_linnos_features is lake_linnos_features_stale with the whole
 * history (no time-to-live). */
static inline void lake_linnos_features(const struct lake_linnos_hist *h, uint32_t pending, int32_t *x)
{
	lake_linnos_features_stale(h, 0, pending, x);
}

#endif /* LAKE_LINNOS_H */
