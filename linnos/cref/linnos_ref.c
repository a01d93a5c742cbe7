/*
 * Reference LinnOS integer inference, written for lake from the published
 * description of LinnOS (OSDI'20) and its kernel implementation: inputs are the
 * 31 feature digits, weights are x1000 integers stored as C `long` arrays in a
 * header (weight_0_T [256][31], bias_0 [256], weight_1_T [2][256],
 * bias_1 [2], and weight_M_k / bias_M_k for the +1/+2 variants), accumulation
 * is in long (int64), hidden layers use ReLU and the I/O is slow (revoke) when
 * out[0] < out[1].
 *
 * Build:  gcc -O2 -fwrapv -DN_EXTRA=0 -I<dir with weights.h> linnos_ref.c
 *         (the benchmarks build it with -O3 -march=native -fwrapv)
 * Usage:  linnos_ref eval        < vectors   prints "o0 o1" per vector
 *         linnos_ref bench B T   < vectors   times batches of B vectors for
 *                                            about T ms, prints
 *                                            "ns_per_io <x> ios <n> cpu_ns_per_io <y>"
 *                                            (wall and process CPU time)
 * vectors: first the count n, then n*31 integers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "weights.h"

#ifndef N_EXTRA
#define N_EXTRA 0
#endif

#define LEN_INPUT 31
#define LEN_LAYER_0 256
#define LEN_LAYER_M 256
#define LEN_LAYER_1 2

static void prediction(const long *input_vec_i, long *final_res_i)
{
	long mid_res_i[LEN_LAYER_0];
#if N_EXTRA >= 1
	long mid_res_m_1[LEN_LAYER_M];
#endif
#if N_EXTRA >= 2
	long mid_res_m_2[LEN_LAYER_M];
#endif
	const long *last;
	int i, j, k, offset;

	for (j = 0, offset = 0; j < LEN_LAYER_0; j++, offset += LEN_INPUT) {
		mid_res_i[j] = 0;
		for (i = 0; i < LEN_INPUT; i++)
			mid_res_i[j] += (input_vec_i[i] == 0 || weight_0_T[offset + i] == 0) ?
				0 : input_vec_i[i] * weight_0_T[offset + i];
		mid_res_i[j] += bias_0[j];
		if (mid_res_i[j] < 0)
			mid_res_i[j] = 0;
	}
	last = mid_res_i;
#if N_EXTRA >= 1
	for (j = 0; j < LEN_LAYER_M; j++) {
		mid_res_m_1[j] = 0;
		for (k = 0; k < LEN_LAYER_0; k++)
			mid_res_m_1[j] += mid_res_i[k] * weight_M_1[j * LEN_LAYER_0 + k];
		mid_res_m_1[j] += bias_M_1[j];
		if (mid_res_m_1[j] < 0)
			mid_res_m_1[j] = 0;
	}
	last = mid_res_m_1;
#endif
#if N_EXTRA >= 2
	for (j = 0; j < LEN_LAYER_M; j++) {
		mid_res_m_2[j] = 0;
		for (k = 0; k < LEN_LAYER_M; k++)
			mid_res_m_2[j] += mid_res_m_1[k] * weight_M_2[j * LEN_LAYER_M + k];
		mid_res_m_2[j] += bias_M_2[j];
		if (mid_res_m_2[j] < 0)
			mid_res_m_2[j] = 0;
	}
	last = mid_res_m_2;
#endif
	for (j = 0; j < LEN_LAYER_1; j++) {
		final_res_i[j] = 0;
		for (k = 0; k < LEN_LAYER_0; k++)
			final_res_i[j] += (last[k] == 0 || weight_1_T[j * LEN_LAYER_0 + k] == 0) ?
				0 : last[k] * weight_1_T[j * LEN_LAYER_0 + k];
		final_res_i[j] += bias_1[j];
	}
}

static long *read_vectors(long *n)
{
	long *v;
	long i;
	if (scanf("%ld", n) != 1 || *n <= 0 || *n > 10000000) {
		fprintf(stderr, "bad vector count\n");
		exit(2);
	}
	v = malloc(sizeof(long) * LEN_INPUT * *n);
	if (!v) {
		fprintf(stderr, "out of memory\n");
		exit(2);
	}
	for (i = 0; i < LEN_INPUT * *n; i++) {
		if (scanf("%ld", &v[i]) != 1) {
			fprintf(stderr, "short vector input at %ld\n", i);
			exit(2);
		}
	}
	return v;
}

static double clock_ns(clockid_t id)
{
	struct timespec ts;
	clock_gettime(id, &ts);
	return ts.tv_sec * 1e9 + ts.tv_nsec;
}

static double now_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

int main(int argc, char **argv)
{
	long n, i, out[LEN_LAYER_1];
	long *v;

	if (argc >= 2 && strcmp(argv[1], "eval") == 0) {
		v = read_vectors(&n);
		for (i = 0; i < n; i++) {
			prediction(v + i * LEN_INPUT, out);
			printf("%ld %ld\n", out[0], out[1]);
		}
		return 0;
	}
	if (argc >= 4 && strcmp(argv[1], "bench") == 0) {
		long batch = atol(argv[2]), ms = atol(argv[3]), done = 0, pos = 0, b;
		volatile long sink = 0;
		double start, end, budget, cpu0;
		if (batch <= 0 || ms <= 0) {
			fprintf(stderr, "bad bench arguments\n");
			return 2;
		}
		v = read_vectors(&n);
		budget = ms * 1e6;
		cpu0 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
		start = now_ns();
		end = start;
		do {
			for (b = 0; b < batch; b++) {
				prediction(v + pos * LEN_INPUT, out);
				sink += out[0] < out[1];
				if (++pos == n)
					pos = 0;
			}
			done += batch;
			if (done % 1024 < batch || batch >= 1024)
				end = now_ns();
		} while (end - start < budget);
		printf("ns_per_io %.3f ios %ld cpu_ns_per_io %.3f\n", (end - start) / done, done,
		       (clock_ns(CLOCK_PROCESS_CPUTIME_ID) - cpu0) / done);
		return 0;
	}
	fprintf(stderr, "usage: linnos_ref eval | bench BATCH MS  < vectors\n");
	return 2;
}
