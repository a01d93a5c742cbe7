// host_test.c: runs lake.cu's kernels on the host (see host_shim.h) for
// TestKernelsOnHost, which compares them with the Go CPU models.
//
//   host_test KERNEL GRID N PARAMS IN OUT
//
// KERNEL is a lake.cu kernel name; PARAMS, IN and OUT are files (OUT is
// written). For lake_snapshot, PARAMS is a snapshot image: it is built
// with lake_snapshot_build (one thread), then run with lake_snapshot_run
// on IN (n × in_dim int32) into OUT (n × out_dim int32). For lake_mlp, PARAMS is u32 nlayers, maxw, outw, the layer
// table (3 u32 per layer), then the float parameters. Each block runs as blockDim host threads (256 for LinnOS,
// 64 for vector_add); blocks run one after another.
#define LAKE_HOST 1
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__thread unsigned lake_host_tid, lake_host_ctaid;
unsigned lake_host_ntid, lake_host_nctaid;
pthread_barrier_t lake_host_barrier;

#include "lake.cu"

struct args {
	const char *kernel;
	void *params, *in, *out;
	u64 n;
	// lake_mlp
	unsigned *table;
	float *weights, *scratch;
	u64 nlayers, maxw;
	// lake_snapshot: build, then run
	u64 plen, memlen;
	void *mem;
	i64 ret[2];
	const struct lake_snap *snap;
	int32_t *iscratch;
};

struct thread {
	struct args *a;
	unsigned tid, ctaid;
};

static void *body(void *p)
{
	struct thread *t = p;
	struct args *a = t->a;
	lake_host_tid = t->tid;
	lake_host_ctaid = t->ctaid;
	const char *k = a->kernel;
	if (!strcmp(k, "lake_vector_add")) {
		float *x = a->in;
		lake_vector_add(x, x + a->n, a->out, a->n);
	} else if (!strcmp(k, "lake_snapshot_build")) {
		lake_snapshot_build(a->params, a->plen, a->mem, a->memlen, a->ret);
	} else if (!strcmp(k, "lake_snapshot_run")) {
		lake_snapshot_run(a->snap, a->in, a->out, a->iscratch, a->n);
	} else if (!strcmp(k, "lake_mlp")) {
		lake_mlp(a->table, a->nlayers, a->weights, a->in, a->out, a->scratch, a->n, a->maxw);
	} else if (!strcmp(k, "lake_linnos_int0")) {
		lake_linnos_int0(a->params, a->in, a->out, a->n);
	} else if (!strcmp(k, "lake_linnos_int1")) {
		lake_linnos_int1(a->params, a->in, a->out, a->n);
	} else if (!strcmp(k, "lake_linnos_int2")) {
		lake_linnos_int2(a->params, a->in, a->out, a->n);
	} else if (!strcmp(k, "lake_linnos_float0")) {
		lake_linnos_float0(a->params, a->in, a->out, a->n);
	} else if (!strcmp(k, "lake_linnos_float1")) {
		lake_linnos_float1(a->params, a->in, a->out, a->n);
	} else if (!strcmp(k, "lake_linnos_float2")) {
		lake_linnos_float2(a->params, a->in, a->out, a->n);
	}
	return NULL;
}

// launch runs grid blocks of block threads, one block after another.
static int launch(struct args *a, unsigned grid, unsigned block, struct thread *ts, pthread_t *th)
{
	lake_host_ntid = block;
	lake_host_nctaid = grid;
	for (unsigned b = 0; b < grid; b++) {
		pthread_barrier_init(&lake_host_barrier, NULL, block);
		for (unsigned t = 0; t < block; t++) {
			ts[t] = (struct thread){.a = a, .tid = t, .ctaid = b};
			if (pthread_create(&th[t], NULL, body, &ts[t]))
				return 1;
		}
		for (unsigned t = 0; t < block; t++)
			pthread_join(th[t], NULL);
		pthread_barrier_destroy(&lake_host_barrier);
	}
	return 0;
}

static void *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		perror(path);
		exit(2);
	}
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	void *b = malloc(n > 0 ? (size_t)n : 1);
	if (!b || fread(b, 1, (size_t)n, f) != (size_t)n) {
		fprintf(stderr, "read %s\n", path);
		exit(2);
	}
	fclose(f);
	*len = (size_t)n;
	return b;
}

int main(int argc, char **argv)
{
	if (argc != 7) {
		fprintf(stderr, "usage: host_test KERNEL GRID N PARAMS IN OUT\n");
		return 2;
	}
	struct args a = {.kernel = argv[1]};
	unsigned grid = (unsigned)strtoul(argv[2], NULL, 10);
	a.n = strtoull(argv[3], NULL, 10);
	size_t plen, inlen;
	a.params = slurp(argv[4], &plen);
	a.in = slurp(argv[5], &inlen);
	unsigned block = strncmp(a.kernel, "lake_linnos", 11) ? 64 : LINNOS_H;
	size_t outlen = a.n * 4;
	if (!strcmp(a.kernel, "lake_mlp")) {
		unsigned *h = a.params;
		if (plen < 12)
			return 2;
		a.nlayers = h[0];
		a.maxw = h[1];
		outlen = a.n * h[2] * 4;
		a.table = h + 3;
		a.weights = (float *)(h + 3 + 3 * a.nlayers);
		a.scratch = calloc(a.n * 2 * a.maxw + 1, sizeof(float));
	}
	a.out = calloc(outlen ? outlen : 1, 1);
	struct thread *ts = calloc(block, sizeof *ts);
	pthread_t *th = calloc(block, sizeof *th);
	if (!a.out || !ts || !th || grid == 0)
		return 2;
	if (!strcmp(a.kernel, "lake_snapshot")) {
		a.plen = plen;
		a.memlen = 16 * plen + 65536;
		a.mem = calloc(a.memlen, 1);
		a.kernel = "lake_snapshot_build";
		if (!a.mem || launch(&a, 1, 1, ts, th))
			return 3;
		if (a.ret[0] != 0) {
			fprintf(stderr, "lake_snap_build: %lld\n", (long long)a.ret[0]);
			return 5;
		}
		a.snap = (const struct lake_snap *)((char *)a.mem + a.ret[1]);
		a.iscratch = calloc(a.n * 2 * LAKE_SNAP_MAX_WIDTH + 1, sizeof(int32_t));
		outlen = a.n * a.snap->out_dim * 4;
		free(a.out);
		a.out = calloc(outlen ? outlen : 1, 1);
		a.kernel = "lake_snapshot_run";
		if (!a.iscratch || !a.out)
			return 3;
	}
	if (launch(&a, grid, block, ts, th))
		return 3;
	FILE *f = fopen(argv[6], "wb");
	if (!f || fwrite(a.out, 1, outlen, f) != outlen || fclose(f))
		return 4;
	free(a.params);
	free(a.in);
	free(a.out);
	free(a.scratch);
	free(a.mem);
	free(a.iscratch);
	free(ts);
	free(th);
	return 0;
}
