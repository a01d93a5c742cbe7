/*
 * snap_harness.c - drives lakelib/include/lake_snapshot.h for
 * liteflow/snapshot/c_engine_test.go. Line protocol on stdin/stdout:
 *
 *   S <hex image>        -> "ok <need> <crc> <gen> <in> <out> <max_width>"
 *                           or "err <errno> <message>"
 *   R <q_in...>          -> "o <q_out...>" (runs the last snapshot built)
 *   F <scale_bits> <zero> <lo> <hi> <x_fx> <frac>
 *                        -> "f <lake_snap_quantize_fx>"
 *   D <scale_bits> <zero> <q> <frac>
 *                        -> "d <lake_snap_dequantize_fx>"
 *   B <x_fx> <frac>      -> "b <lake_snap_fx_to_f32 bits>"
 *   T <n> <q_in...>      -> "t <total ns>": n runs of the last snapshot
 *                           on q_in (the benchmark)
 *   Q                    -> exits
 *
 * Every image is built into exactly the memory lake_snap_check asks for,
 * at a deliberately odd address, then the image buffer is overwritten, so
 * ASan catches a read past the build memory and the tests catch a model
 * that still refers to its image.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <time.h>
#include "lake_snapshot.h"

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int main(void)
{
	size_t cap = 1 << 16;
	char *line = malloc(cap);
	uint8_t *mem = NULL, *img = NULL;
	struct lake_snap *s = NULL;
	int32_t *scratch = NULL;

	if (!line)
		return 2;
	for (;;) {
		size_t n = 0;
		int c;

		while ((c = getchar()) != EOF && c != '\n') {
			if (n + 1 >= cap) {
				cap *= 2;
				line = realloc(line, cap);
				if (!line)
					return 2;
			}
			line[n++] = (char)c;
		}
		line[n] = 0;
		if (c == EOF && n == 0)
			break;
		if (line[0] == 'Q')
			break;
		if (line[0] == 'S') {
			size_t len = 0, need = 0, i;
			char why[256];
			int rc;

			free(mem);
			free(img);
			free(scratch);
			mem = img = NULL;
			scratch = NULL;
			s = NULL;
			if (n >= 2) {
				len = (n - 2) / 2;
				img = malloc(len ? len : 1);
				for (i = 0; i < len; i++)
					img[i] = (uint8_t)(hexval(line[2 + 2 * i]) << 4 | hexval(line[3 + 2 * i]));
			}
			why[0] = 0;
			rc = lake_snap_check(img, len, &need, why, sizeof(why));
			if (rc == 0) {
				/* one byte short must be refused */
				mem = malloc(need + 1);
				rc = lake_snap_build(img, len, mem + 1, need - 1, &s, why, sizeof(why));
				if (rc != -ENOSPC) {
					printf("err %d build with short memory returned %d\n", -EFAULT, rc);
					fflush(stdout);
					continue;
				}
				rc = lake_snap_build(img, len, mem + 1, need, &s, why, sizeof(why));
			}
			if (rc) {
				printf("err %d %s\n", -rc, why);
			} else {
				memset(img, 0xA5, len);
				scratch = malloc(sizeof(int32_t) * lake_snap_scratch_words(s));
				printf("ok %zu %u %llu %u %u %u\n", need, s->image_crc,
				       (unsigned long long)s->generation, s->in_dim, s->out_dim,
				       s->max_width);
			}
			fflush(stdout);
			continue;
		}
		if (line[0] == 'R') {
			int32_t in[LAKE_SNAP_MAX_WIDTH], out[LAKE_SNAP_MAX_WIDTH];
			char *p = line + 1, *e;
			uint32_t k = 0, i;

			if (!s) {
				printf("err %d no snapshot\n", EINVAL);
				fflush(stdout);
				continue;
			}
			while (k < LAKE_SNAP_MAX_WIDTH) {
				long v = strtol(p, &e, 10);

				if (e == p)
					break;
				in[k++] = (int32_t)v;
				p = e;
			}
			if (k != s->in_dim) {
				printf("err %d %u inputs, want %u\n", EINVAL, k, s->in_dim);
				fflush(stdout);
				continue;
			}
			lake_snap_run(s, in, out, scratch);
			printf("o");
			for (i = 0; i < s->out_dim; i++)
				printf(" %d", out[i]);
			printf("\n");
			fflush(stdout);
			continue;
		}
		if (line[0] == 'F') {
			unsigned long bits;
			long zero, lo, hi, frac;
			long long x;

			if (sscanf(line + 1, "%lu %ld %ld %ld %lld %ld", &bits, &zero, &lo, &hi, &x, &frac) == 6) {
				printf("f %d\n", lake_snap_quantize_fx((uint32_t)bits, (int32_t)zero, (int32_t)lo,
									(int32_t)hi, (int64_t)x, (uint32_t)frac));
				fflush(stdout);
				continue;
			}
		}
		if (line[0] == 'D') {
			unsigned long bits;
			long zero, q, frac;

			if (sscanf(line + 1, "%lu %ld %ld %ld", &bits, &zero, &q, &frac) == 4) {
				printf("d %lld\n", (long long)lake_snap_dequantize_fx((uint32_t)bits, (int32_t)zero,
										   (int32_t)q, (uint32_t)frac));
				fflush(stdout);
				continue;
			}
		}
		if (line[0] == 'T' && s) {
			int32_t in[LAKE_SNAP_MAX_WIDTH], out[LAKE_SNAP_MAX_WIDTH];
			char *p = line + 1, *e;
			long n = strtol(p, &e, 10), k;
			uint32_t i = 0;
			struct timespec t0, t1;
			volatile int32_t sink = 0;

			p = e;
			while (i < s->in_dim) {
				long v = strtol(p, &e, 10);

				if (e == p)
					break;
				in[i++] = (int32_t)v;
				p = e;
			}
			if (i == s->in_dim && n > 0) {
				clock_gettime(CLOCK_MONOTONIC, &t0);
				for (k = 0; k < n; k++) {
					in[k % s->in_dim] ^= 1; /* the input changes every run */
					lake_snap_run(s, in, out, scratch);
					sink += out[0];
				}
				clock_gettime(CLOCK_MONOTONIC, &t1);
				printf("t %lld\n", (long long)(t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec));
				fflush(stdout);
				continue;
			}
		}
		if (line[0] == 'X') {
			unsigned long bits;
			long frac;
			int64_t v = 0;

			if (sscanf(line + 1, "%lu %ld", &bits, &frac) == 2) {
				if (lake_snap_f32_to_fx((uint32_t)bits, (uint32_t)frac, &v))
					printf("x nan\n");
				else
					printf("x %lld\n", (long long)v);
				fflush(stdout);
				continue;
			}
		}
		if (line[0] == 'B') {
			long long x;
			long frac;

			if (sscanf(line + 1, "%lld %ld", &x, &frac) == 2) {
				printf("b %u\n", lake_snap_fx_to_f32((int64_t)x, (uint32_t)frac));
				fflush(stdout);
				continue;
			}
		}
		printf("err %d unknown command\n", EINVAL);
		fflush(stdout);
	}
	free(mem);
	free(img);
	free(scratch);
	free(line);
	return 0;
}
