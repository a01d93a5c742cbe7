// SPDX-License-Identifier: (GPL-2.0 OR MIT)
/*
 * lake_linnos_test.c - host driver for lakelib/include/lake_linnos.h, run by
 * lakelib/c/linnos_test.go (built with ASan and UBSan).
 *
 *   eval IMAGE VECTORS    load IMAGE, then for each 31 x int32 vector in
 *                         VECTORS write out[0], out[1] (int64 LE) to stdout
 *   check IMAGES          IMAGES is a sequence of (u32 LE length, bytes);
 *                         print "ok EXTRA" or "err RC WHY" per image, each
 *                         loaded from its own exactly-sized heap copy into
 *                         an exactly-sized model
 *   features CASES        CASES is a sequence of 9 u32 (pending now, then
 *                         4 x (pending at arrival, latency us), oldest
 *                         first); write the 31 int32 digits of each
 *   ttl CASES             CASES is a sequence of (u64 now ns, u64 ttl ns, u32
 *                         pending now, 4 x (u32 pending at arrival, u32
 *                         latency us, u64 completion ns), oldest first);
 *                         write lake_linnos_hist_stale (u32), then the 31
 *                         int32 digits of lake_linnos_features_stale
 *   mutate IMAGE N SEED   N random mutations of a valid IMAGE (byte flips,
 *                         truncations, extensions, header fields; half
 *                         with the CRC fixed up so the value checks run):
 *                         none may crash; prints "ok mutate accepted=A rejected=R"
 *   small IMAGE           a model buffer one byte short is refused
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "lake_linnos.h"

static unsigned char *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf = NULL;
	size_t cap = 0, n = 0;

	if (!f) {
		perror(path);
		exit(2);
	}
	for (;;) {
		if (n == cap) {
			cap = cap ? cap * 2 : 65536;
			buf = realloc(buf, cap);
			if (!buf)
				exit(2);
		}
		size_t r = fread(buf + n, 1, cap - n, f);
		if (r == 0)
			break;
		n += r;
	}
	fclose(f);
	*len = n;
	return buf;
}

static uint32_t rd32(const unsigned char *p)
{
	return lake_linnos__le32(p);
}

static struct lake_linnos_model *load_or_die(const unsigned char *img, size_t len)
{
	uint32_t extra;
	const char *why;
	int rc = lake_linnos_image_check(img, len, &extra, &why);

	if (rc) {
		fprintf(stderr, "image: %d %s\n", rc, why);
		exit(1);
	}
	size_t ms = lake_linnos_model_size(extra);
	struct lake_linnos_model *m = malloc(ms);
	if (!m)
		exit(2);
	rc = lake_linnos_load(m, ms, img, len, &why);
	if (rc) {
		fprintf(stderr, "load: %d %s\n", rc, why);
		exit(1);
	}
	return m;
}

static int do_eval(const char *ipath, const char *vpath)
{
	size_t ilen, vlen, n, i;
	unsigned char *img = slurp(ipath, &ilen);
	unsigned char *vec = slurp(vpath, &vlen);
	struct lake_linnos_model *m = load_or_die(img, ilen);
	int64_t *scratch = malloc(LAKE_LINNOS_SCRATCH * sizeof(int64_t));
	int32_t x[LAKE_LINNOS_INPUTS];

	if (!scratch)
		return 2;
	/* garbage in the scratch must not matter */
	memset(scratch, 0xa5, LAKE_LINNOS_SCRATCH * sizeof(int64_t));
	if (vlen % (LAKE_LINNOS_INPUTS * 4)) {
		fprintf(stderr, "vectors: %zu bytes\n", vlen);
		return 2;
	}
	n = vlen / (LAKE_LINNOS_INPUTS * 4);
	for (i = 0; i < n; i++) {
		int64_t o[2];
		unsigned char b[16];
		int k;

		for (k = 0; k < LAKE_LINNOS_INPUTS; k++)
			x[k] = (int32_t)rd32(vec + (i * LAKE_LINNOS_INPUTS + k) * 4);
		lake_linnos_logits(m, x, scratch, o);
		if (lake_linnos_slow(m, x, scratch) != (o[0] < o[1])) {
			fprintf(stderr, "slow disagrees with logits at %zu\n", i);
			return 1;
		}
		for (k = 0; k < 8; k++) {
			b[k] = (unsigned char)((uint64_t)o[0] >> (8 * k));
			b[8 + k] = (unsigned char)((uint64_t)o[1] >> (8 * k));
		}
		fwrite(b, 1, 16, stdout);
	}
	free(scratch);
	free(m);
	free(img);
	free(vec);
	return 0;
}

/* check_one loads img[0:len] from an exact heap copy into an exact model
 * buffer; returns rc and prints the verdict. */
static int check_one(const unsigned char *src, size_t len, int print)
{
	unsigned char *img = malloc(len ? len : 1);
	uint32_t extra = 0;
	const char *why = NULL;
	int rc;

	if (!img)
		exit(2);
	memcpy(img, src, len);
	rc = lake_linnos_image_check(img, len, &extra, &why);
	if (!rc) {
		size_t ms = lake_linnos_model_size(extra);
		struct lake_linnos_model *m = malloc(ms);

		if (!m)
			exit(2);
		rc = lake_linnos_load(m, ms, img, len, &why);
		if (!rc) {
			int64_t scratch[LAKE_LINNOS_SCRATCH], o[2];
			int32_t x[LAKE_LINNOS_INPUTS] = { 1, 2, 3, 4, 5, 6, 7, 8, 9 };

			lake_linnos_logits(m, x, scratch, o); /* a loaded model runs */
		}
		free(m);
	}
	if (print) {
		if (rc)
			printf("err %d %s\n", rc, why ? why : "(no reason)");
		else
			printf("ok %u\n", extra);
	}
	if (rc && !why) {
		fprintf(stderr, "error %d without a reason\n", rc);
		exit(1);
	}
	free(img);
	return rc;
}

static int do_check(const char *path)
{
	size_t len, off = 0;
	unsigned char *buf = slurp(path, &len);

	while (off + 4 <= len) {
		uint32_t n = rd32(buf + off);

		off += 4;
		if (n > len - off) {
			fprintf(stderr, "truncated image list\n");
			return 2;
		}
		check_one(buf + off, n, 1);
		off += n;
	}
	free(buf);
	return 0;
}

static int do_features(const char *path)
{
	size_t len, i, n;
	unsigned char *buf = slurp(path, &len);

	if (len % 36)
		return 2;
	n = len / 36;
	for (i = 0; i < n; i++) {
		const unsigned char *p = buf + i * 36;
		struct lake_linnos_hist h;
		int32_t x[LAKE_LINNOS_INPUTS];
		int k;

		memset(&h, 0, sizeof(h));
		for (k = 0; k < LAKE_LINNOS_HISTORY; k++)
			lake_linnos_hist_complete(&h, rd32(p + 4 + 8 * k), rd32(p + 8 + 8 * k));
		memset(x, 0x7f, sizeof(x));
		lake_linnos_features(&h, rd32(p), x);
		fwrite(x, 4, LAKE_LINNOS_INPUTS, stdout); /* little-endian host */
	}
	free(buf);
	return 0;
}

static uint64_t rd64(const unsigned char *p)
{
	return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static int do_ttl(const char *path)
{
	size_t len, i, n;
	unsigned char *buf = slurp(path, &len);

	if (len % 84)
		return 2;
	n = len / 84;
	for (i = 0; i < n; i++) {
		const unsigned char *p = buf + i * 84;
		struct lake_linnos_hist h;
		int32_t x[LAKE_LINNOS_INPUTS];
		uint32_t stale;
		int k;

		memset(&h, 0x5a, sizeof(h)); /* every entry is overwritten */
		for (k = 0; k < LAKE_LINNOS_HISTORY; k++)
			lake_linnos_hist_complete_at(&h, rd32(p + 20 + 16 * k), rd32(p + 24 + 16 * k), rd64(p + 28 + 16 * k));
		stale = lake_linnos_hist_stale(&h, rd64(p), rd64(p + 8));
		memset(x, 0x7f, sizeof(x));
		lake_linnos_features_stale(&h, stale, rd32(p + 16), x);
		fwrite(&stale, 4, 1, stdout);
		fwrite(x, 4, LAKE_LINNOS_INPUTS, stdout); /* little-endian host */
	}
	free(buf);
	return 0;
}

static uint64_t rng = 88172645463325252ull;

static uint64_t next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static void fix_crc(unsigned char *p, size_t len)
{
	uint32_t c;

	if (len < 4)
		return;
	c = lake_linnos_crc32(p, len - 4);
	p[len - 4] = (unsigned char)c;
	p[len - 3] = (unsigned char)(c >> 8);
	p[len - 2] = (unsigned char)(c >> 16);
	p[len - 1] = (unsigned char)(c >> 24);
}

static int do_mutate(const char *path, long count, unsigned long long seed)
{
	size_t len;
	unsigned char *img = slurp(path, &len);
	unsigned char *buf = malloc(len + 64);
	long i, acc = 0, rej = 0;

	if (!buf)
		return 2;
	rng ^= seed * 0x9e3779b97f4a7c15ull;
	if (check_one(img, len, 0) != 0) {
		fprintf(stderr, "the valid image is refused\n");
		return 1;
	}
	for (i = 0; i < count; i++) {
		size_t n = len, k;
		uint64_t r = next();

		memcpy(buf, img, len);
		switch (r % 6) {
		case 0: /* flip a few bytes anywhere */
			for (k = 0; k < 1 + next() % 4; k++)
				buf[next() % n] ^= (unsigned char)(1 + next() % 255);
			break;
		case 1: /* truncate */
			n = next() % len;
			break;
		case 2: /* extend */
			n = len + 1 + next() % 63;
			memset(buf + len, (int)(next() & 0xff), n - len);
			break;
		case 3: /* header field */
			k = 8 + 4 * (next() % 4);
			buf[k + next() % 4] = (unsigned char)next();
			break;
		case 4: { /* one weight or bias to an extreme value */
			size_t slot = (n - LAKE_LINNOS_HEADER_SIZE - 4) / 8;
			uint64_t v = (next() & 1) ? 0x8000000000000000ull : (uint64_t)0x7fffffffffffffffull;
			k = LAKE_LINNOS_HEADER_SIZE + 8 * (next() % slot);
			if (next() & 1)
				v = (next() & 1) ? 0x80000000ull : 0xffffffff7fffffffull;
			memcpy(buf + k, &v, 8);
			break;
		}
		case 5: /* magic / version */
			buf[next() % 8] = (unsigned char)next();
			break;
		}
		if (next() & 1)
			fix_crc(buf, n);
		if (check_one(buf, n, 0))
			rej++;
		else
			acc++;
	}
	printf("ok mutate accepted=%ld rejected=%ld\n", acc, rej);
	free(buf);
	free(img);
	return 0;
}

static int do_small(const char *path)
{
	size_t len;
	unsigned char *img = slurp(path, &len);
	uint32_t extra;
	const char *why;
	size_t ms;
	struct lake_linnos_model *m;
	int rc;

	if (lake_linnos_image_check(img, len, &extra, &why))
		return 1;
	ms = lake_linnos_model_size(extra);
	m = malloc(ms);
	if (!m)
		return 2;
	rc = lake_linnos_load(m, ms - 1, img, len, &why);
	printf("small %d %s\n", rc, why ? why : "");
	free(m);
	free(img);
	return rc == -ENOSPC ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "eval"))
		return do_eval(argv[2], argv[3]);
	if (argc == 3 && !strcmp(argv[1], "check"))
		return do_check(argv[2]);
	if (argc == 3 && !strcmp(argv[1], "features"))
		return do_features(argv[2]);
	if (argc == 3 && !strcmp(argv[1], "ttl"))
		return do_ttl(argv[2]);
	if (argc == 5 && !strcmp(argv[1], "mutate"))
		return do_mutate(argv[2], atol(argv[3]), strtoull(argv[4], NULL, 10));
	if (argc == 3 && !strcmp(argv[1], "small"))
		return do_small(argv[2]);
	fprintf(stderr, "usage: see the comment at the top of lake_linnos_test.c\n");
	return 2;
}
