// SPDX-License-Identifier: (GPL-2.0 OR MIT)
/*
 * fakelaked - a minimal laked for /dev/lake, in C, for the VM test when
 * the Go laked is not at hand and for checking lake_shm.ko on its own.
 * It plays laked's part of shm/PROTOCOL.md ("Kernel device") with the
 * shared ring code (lakelib/c/lake_ring.h):
 *
 *   open /dev/lake, ioctl(LAKE_IOC_INFO), mmap, lake_ring_init; then loop:
 *   announce in sq_need_wakeup, re-check, poll(POLLIN); consume SQEs,
 *   run them, post CQEs, ioctl(LAKE_IOC_CQ_RING).
 *
 * It serves what lake_selftest.ko uses, on the CPU: contexts, device
 * memory (malloc), memcpy, module "lake_builtin" with kernel "vector_add"
 * (float32 c = a + b), model 1 ("LinnOS": 31 int32 digits in, one int32
 * out: 1 when the current queue length, the first three digits, is at
 * least 100), model_info and model_fetch (model 1's image: a LinnOS
 * weight file of the int64 kind with all-zero weights, built with
 * lake_linnos.h's constants and CRC). Every SQE gets exactly one CQE;
 * malformed ones get an error status.
 *
 * With -evil it is a hostile laked instead, for checking that the kernel
 * treats the region as untrusted: it answers submission k (counting from
 * 0) by
 *   k % 4 == 0: a completion whose tag was never issued,
 *   k % 4 == 1: the right tag with a nonsense status (0x7fffffff),
 *   k % 4 == 2: cq_tail pushed a million entries past cq_head,
 *   k % 4 == 3: scribbling over the header (geometry, ring words), every
 *               submission slot's sequence word and the feature
 *               registry's header,
 * and fills the data arena with 0xAA each time; it stops consuming after
 * k == 3 (the slots are garbage by then). Before that, model_fetch
 * submissions (not counted in k) get answers whose sizes lie: model 1
 * "ok" with one byte more than the buffer, model 2 "buffer too small"
 * asking for no more than the buffer, model 3 "ok" with 0 bytes.
 * lake_selftest.ko mode=hostile checks the error each call gets.
 *
 * With -badpredict it serves everything as usual but answers every predict
 * "ok" with classes 2, 3, ... (out of range), for checking that the
 * dm-linnos target counts them and decides by itself (VM phase-dm.sh).
 *
 * Usage: fakelaked [-v] [-evil | -badpredict] [/dev/lake]
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "lake_dev.h"
#include "lake_ring.h"
#include "lake_linnos.h"

#define MAX_ALLOCS 64
#define DPTR_BASE 0x100000000ull
#define DPTR_STRIDE 0x10000000ull /* each allocation's address space */

struct alloc {
	unsigned char *mem;
	lake_u64 size;
};

static struct lake_ring ring;
static struct alloc allocs[MAX_ALLOCS];
static int verbose;
static int evil;
static int badpredict;
static volatile sig_atomic_t stop;
static lake_u64 next_ctx = 1;
static lake_u64 live_ctx[16];

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

/* dptr_range resolves [p, p+n) to host memory inside one allocation. */
static unsigned char *dptr_range(lake_u64 p, lake_u64 n)
{
	lake_u64 i, off;

	if (p < DPTR_BASE)
		return NULL;
	i = (p - DPTR_BASE) / DPTR_STRIDE;
	off = (p - DPTR_BASE) % DPTR_STRIDE;
	if (i >= MAX_ALLOCS || !allocs[i].mem || off > allocs[i].size || n > allocs[i].size - off)
		return NULL;
	return allocs[i].mem + off;
}

static int ctx_ok(lake_u64 ctx)
{
	unsigned i;

	for (i = 0; i < 16; i++)
		if (ctx && live_ctx[i] == ctx)
			return 1;
	return 0;
}

static int args_zero(const struct lake_sqe *s, int from)
{
	int i;

	for (i = from; i < LAKE_NUM_ARGS; i++)
		if (s->args[i])
			return 0;
	return 1;
}

#define MOD_HANDLE 0x4d4f44ull /* the one module */
#define FN_HANDLE 0x464e31ull  /* vector_add */

static int vector_add(const unsigned char *desc, lake_u64 len)
{
	struct lake_launch_desc d;
	lake_u64 p[4];
	float *a, *b, *c;
	lake_u64 n, i;

	if (len < LAKE_LAUNCH_DESC_HEADER)
		return LAKE_ERR_INVALID_VALUE;
	memcpy(&d, desc, sizeof(d));
	if (d.param_bytes != 32 || len != LAKE_LAUNCH_DESC_HEADER + 32 || !d.grid[0] || !d.block[0])
		return LAKE_ERR_INVALID_VALUE;
	memcpy(p, desc + LAKE_LAUNCH_DESC_HEADER, sizeof(p));
	n = p[3];
	if (n > (1u << 26))
		return LAKE_ERR_INVALID_VALUE;
	a = (float *)dptr_range(p[0], n * 4);
	b = (float *)dptr_range(p[1], n * 4);
	c = (float *)dptr_range(p[2], n * 4);
	if (!a || !b || !c)
		return LAKE_ERR_INVALID_HANDLE;
	for (i = 0; i < n; i++)
		c[i] = a[i] + b[i];
	return LAKE_OK;
}

/* zero_image returns model 1's image: a valid LinnOS int64 weight file
 * with zero weights and no extra layers (built once). */
static const unsigned char *zero_image(size_t *len)
{
	static unsigned char *img;
	static size_t n;

	if (!img) {
		lake_u32 crc, kind = LAKE_LINNOS_KIND_INT64;

		n = lake_linnos_image_size(0);
		img = calloc(1, n);
		if (!img) {
			*len = 0;
			return NULL;
		}
		memcpy(img, LAKE_LINNOS_MAGIC_PREFIX, 7);
		img[7] = '0' + LAKE_LINNOS_FORMAT_VERSION;
		memcpy(img + 8, &kind, 4);
		crc = lake_linnos_crc32(img, n - 4);
		memcpy(img + n - 4, &crc, 4);
	}
	*len = n;
	return img;
}

/* run executes one submission (already copied out of the ring). */
static void run(const struct lake_sqe *s, struct lake_cqe *c)
{
	const lake_u64 *a = s->args;
	unsigned char *d;
	unsigned i;

	memset(c, 0, sizeof(*c));
	c->tag = s->tag;
	c->status = LAKE_OK;
	if (s->opcode == LAKE_OP_PREDICT && (s->flags & LAKE_SQE_F_DEADLINE)) {
		/* as laked: a deadline already past is answered at once */
		struct timespec ts;
		lake_u32 dl = (lake_u32)(s->flags >> 1) << 16 | s->pad, now, d;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		now = (lake_u32)(((lake_u64)ts.tv_sec * 1000000000u + (lake_u64)ts.tv_nsec) / 1000u);
		d = (dl - now) & ((1u << LAKE_DEADLINE_BITS) - 1);
		if (d == 0 || d >= 1u << (LAKE_DEADLINE_BITS - 1)) {
			c->status = LAKE_ERR_DEADLINE;
			return;
		}
	} else if (s->flags || s->pad) {
		c->status = LAKE_ERR_INVALID_VALUE;
		return;
	}
	switch (s->opcode) {
	case LAKE_OP_NOP:
		break;
	case LAKE_OP_INIT:
		c->results[0] = LAKE_VERSION_MAJOR << 16 | LAKE_VERSION_MINOR;
		break;
	case LAKE_OP_CTX_CREATE:
		for (i = 0; i < 16 && live_ctx[i]; i++)
			;
		if (i == 16) {
			c->status = LAKE_ERR_OUT_OF_MEMORY;
			break;
		}
		live_ctx[i] = next_ctx++;
		c->results[0] = live_ctx[i];
		break;
	case LAKE_OP_CTX_DESTROY:
		for (i = 0; i < 16; i++)
			if (a[0] && live_ctx[i] == a[0])
				break;
		if (i == 16)
			c->status = LAKE_ERR_INVALID_HANDLE;
		else
			live_ctx[i] = 0;
		break;
	case LAKE_OP_CTX_SYNCHRONIZE:
		if (!ctx_ok(a[0]))
			c->status = LAKE_ERR_INVALID_HANDLE;
		break;
	case LAKE_OP_MEM_ALLOC:
		if (!ctx_ok(a[0])) {
			c->status = LAKE_ERR_INVALID_HANDLE;
			break;
		}
		if (a[1] == 0 || a[1] > DPTR_STRIDE) {
			c->status = LAKE_ERR_INVALID_VALUE;
			break;
		}
		for (i = 0; i < MAX_ALLOCS && allocs[i].mem; i++)
			;
		if (i == MAX_ALLOCS || !(allocs[i].mem = calloc(1, a[1]))) {
			c->status = LAKE_ERR_OUT_OF_MEMORY;
			break;
		}
		allocs[i].size = a[1];
		c->results[0] = DPTR_BASE + i * DPTR_STRIDE;
		break;
	case LAKE_OP_MEM_FREE:
		if (!ctx_ok(a[0]) || a[1] < DPTR_BASE || (a[1] - DPTR_BASE) % DPTR_STRIDE ||
		    (a[1] - DPTR_BASE) / DPTR_STRIDE >= MAX_ALLOCS ||
		    !allocs[(a[1] - DPTR_BASE) / DPTR_STRIDE].mem) {
			c->status = LAKE_ERR_INVALID_HANDLE;
			break;
		}
		i = (a[1] - DPTR_BASE) / DPTR_STRIDE;
		free(allocs[i].mem);
		allocs[i].mem = NULL;
		break;
	case LAKE_OP_MEMCPY_HTOD:
	case LAKE_OP_MEMCPY_DTOH: {
		int htod = s->opcode == LAKE_OP_MEMCPY_HTOD;
		lake_u64 dev = htod ? a[1] : a[2], off = htod ? a[2] : a[1];

		if (!ctx_ok(a[0]) || !args_zero(s, 4)) {
			c->status = LAKE_ERR_INVALID_HANDLE;
			break;
		}
		if (!lake_arena_ok(&ring, off, a[3])) {
			c->status = LAKE_ERR_OUT_OF_BOUNDS;
			break;
		}
		d = dptr_range(dev, a[3]);
		if (!d) {
			c->status = LAKE_ERR_INVALID_HANDLE;
			break;
		}
		if (htod)
			memcpy(d, ring.arena + off, a[3]);
		else
			memcpy(ring.arena + off, d, a[3]);
		break;
	}
	case LAKE_OP_MODULE_LOAD:
		if (!ctx_ok(a[0]) || !lake_arena_ok(&ring, a[1], a[2])) {
			c->status = LAKE_ERR_INVALID_VALUE;
			break;
		}
		if (a[2] != 12 || memcmp(ring.arena + a[1], "lake_builtin", 12)) {
			c->status = LAKE_ERR_NOT_FOUND;
			break;
		}
		c->results[0] = MOD_HANDLE;
		break;
	case LAKE_OP_MODULE_UNLOAD:
		if (!ctx_ok(a[0]) || a[1] != MOD_HANDLE)
			c->status = LAKE_ERR_INVALID_HANDLE;
		break;
	case LAKE_OP_MODULE_GET_FUNCTION:
		if (!ctx_ok(a[0]) || a[1] != MOD_HANDLE || !lake_arena_ok(&ring, a[2], a[3])) {
			c->status = LAKE_ERR_INVALID_HANDLE;
			break;
		}
		if (a[3] != 10 || memcmp(ring.arena + a[2], "vector_add", 10)) {
			c->status = LAKE_ERR_NOT_FOUND;
			break;
		}
		c->results[0] = FN_HANDLE;
		break;
	case LAKE_OP_LAUNCH_KERNEL:
		if (!ctx_ok(a[0]) || a[1] != FN_HANDLE) {
			c->status = LAKE_ERR_INVALID_HANDLE;
			break;
		}
		if (!lake_arena_ok(&ring, a[2], a[3])) {
			c->status = LAKE_ERR_OUT_OF_BOUNDS;
			break;
		}
		c->status = vector_add(ring.arena + a[2], a[3]);
		break;
	case LAKE_OP_MODEL_INFO:
		if (a[0] != 1) {
			c->status = LAKE_ERR_NOT_FOUND;
			break;
		}
		c->results[0] = 124ull | 4ull << 32;
		c->results[1] = 1;
		break;
	case LAKE_OP_MODEL_FETCH: {
		const unsigned char *img;
		size_t n;

		if (!args_zero(s, 3)) {
			c->status = LAKE_ERR_INVALID_VALUE;
			break;
		}
		if (a[0] != 1) {
			c->status = LAKE_ERR_NOT_FOUND;
			break;
		}
		if (!lake_arena_ok(&ring, a[1], a[2])) {
			c->status = LAKE_ERR_OUT_OF_BOUNDS;
			break;
		}
		img = zero_image(&n);
		if (!img) {
			c->status = LAKE_ERR_OUT_OF_MEMORY;
			break;
		}
		c->results[0] = n;
		c->results[1] = 1;
		if (a[2] < n) {
			c->status = LAKE_ERR_BUFFER_TOO_SMALL;
			break;
		}
		memcpy(ring.arena + a[1], img, n);
		break;
	}
	case LAKE_OP_PREDICT: {
		lake_u64 n = a[1], k;

		if (a[0] != 1) {
			c->status = LAKE_ERR_NOT_FOUND;
			break;
		}
		if (n < 1 || n > 65536 || a[3] != n * 124 || a[5] != n * 4) {
			c->status = LAKE_ERR_INVALID_VALUE;
			break;
		}
		if (!lake_arena_ok(&ring, a[2], a[3]) || !lake_arena_ok(&ring, a[4], a[5])) {
			c->status = LAKE_ERR_OUT_OF_BOUNDS;
			break;
		}
		for (k = 0; k < n; k++) {
			int in[3];
			int out;

			memcpy(in, ring.arena + a[2] + k * 124, sizeof(in));
			out = in[0] * 100 + in[1] * 10 + in[2] >= 100;
			if (badpredict)
				out = (int)(2 + k % 1000);
			memcpy(ring.arena + a[4] + k * 4, &out, 4);
		}
		c->results[0] = 1;
		break;
	}
	default:
		c->status = LAKE_ERR_BAD_OPCODE;
	}
}

/* lie_fetch answers a model_fetch with sizes that do not add up (see the
 * top). */
static void lie_fetch(const struct lake_sqe *s, struct lake_cqe *c)
{
	memset(c, 0, sizeof(*c));
	c->tag = s->tag;
	c->results[1] = 1;
	switch (s->args[0]) {
	case 1:
		c->results[0] = s->args[2] + 1;
		break;
	case 2:
		c->status = LAKE_ERR_BUFFER_TOO_SMALL;
		c->results[0] = s->args[2];
		break;
	default:
		c->results[0] = 0;
	}
}

/* misbehave answers submission number k the hostile way (see the top). */
static void misbehave(lake_u64 k, const struct lake_sqe *s, lake_u32 *cq_tail, int fd)
{
	struct lake_region_header *h = ring.hdr;
	struct lake_cqe c;
	lake_u32 i;

	memset(ring.arena, 0xAA, ring.arena_size);
	memset(&c, 0, sizeof(c));
	switch (k % 4) {
	case 0:
		c.tag = s->tag ^ 0x5a5a5a5a00000000ull;
		(void)lake_cq_post(&ring, cq_tail, &c);
		break;
	case 1:
		c.tag = s->tag;
		c.status = 0x7fffffff;
		(void)lake_cq_post(&ring, cq_tail, &c);
		break;
	case 2:
		__atomic_store_n(&h->cq_tail, __atomic_load_n(&h->cq_head, __ATOMIC_RELAXED) + 1000000,
				 __ATOMIC_RELEASE);
		break;
	default:
		h->sq_entries = 3;
		h->cq_entries = 0;
		h->arena_off = ~0ull;
		h->arena_size = 1ull << 40;
		h->region_size = 7;
		h->magic = 0;
		h->sq_head = 0x12345678;
		h->cq_head = 0x9abcdef0;
		h->cq_tail = 0x0badf00d;
		for (i = 0; i <= ring.sq_mask; i++)
			ring.sqes[i].seq = 0xdeadbeef;
		if (h->features_size && h->features_off)
			memset((unsigned char *)h + h->features_off, 0xee, 128);
		break;
	}
	if (ioctl(fd, LAKE_IOC_CQ_RING) < 0 && verbose)
		fprintf(stderr, "fakelaked: LAKE_IOC_CQ_RING: %s\n", strerror(errno));
}

int main(int argc, char **argv)
{
	const char *path = LAKE_DEV_PATH;
	struct lake_dev_info info;
	struct sigaction sa;
	lake_u32 head, cq_tail;
	lake_u64 evil_k = 0;
	void *mem;
	int fd, i;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-v"))
			verbose = 1;
		else if (!strcmp(argv[i], "-evil"))
			evil = 1;
		else if (!strcmp(argv[i], "-badpredict"))
			badpredict = 1;
		else
			path = argv[i];
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "fakelaked: open %s: %s\n", path, strerror(errno));
		return 1;
	}
	if (ioctl(fd, LAKE_IOC_INFO, &info)) {
		fprintf(stderr, "fakelaked: LAKE_IOC_INFO: %s\n", strerror(errno));
		return 1;
	}
	if (info.region_size < LAKE_HEADER_SIZE || info.region_size > (1ull << 32)) {
		fprintf(stderr, "fakelaked: region size %llu out of range\n",
			(unsigned long long)info.region_size);
		return 1;
	}
	mem = mmap(NULL, info.region_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (mem == MAP_FAILED) {
		fprintf(stderr, "fakelaked: mmap: %s\n", strerror(errno));
		return 1;
	}
	if (lake_ring_init(&ring, mem, info.region_size)) {
		fprintf(stderr, "fakelaked: bad region header\n");
		return 1;
	}
	head = __atomic_load_n(&ring.hdr->sq_head, __ATOMIC_ACQUIRE);
	cq_tail = __atomic_load_n(&ring.hdr->cq_tail, __ATOMIC_ACQUIRE);
	__atomic_add_fetch(&ring.hdr->daemon_epoch, 1, __ATOMIC_SEQ_CST);
	__atomic_store_n(&ring.hdr->daemon_state, LAKE_DAEMON_SERVING, __ATOMIC_SEQ_CST);
	printf("fakelaked: serving %s (%llu bytes, attach %u)\n", path,
	       (unsigned long long)info.region_size, info.attach_count);
	fflush(stdout);

	while (!stop) {
		struct lake_sqe s;
		struct lake_cqe c;
		int n = 0;

		while (lake_sq_consume(&ring, &head, &s)) {
			if (evil && s.opcode == LAKE_OP_MODEL_FETCH) {
				lie_fetch(&s, &c);
				(void)lake_cq_post(&ring, &cq_tail, &c);
				lake_sq_publish_head(&ring, head);
				if (ioctl(fd, LAKE_IOC_CQ_RING) < 0)
					fprintf(stderr, "fakelaked: LAKE_IOC_CQ_RING: %s\n", strerror(errno));
				continue;
			}
			if (evil) {
				/* features_off is read before the scribbling */
				misbehave(evil_k++, &s, &cq_tail, fd);
				if (evil_k == 4)
					break;
				continue;
			}
			run(&s, &c);
			if (verbose)
				printf("fakelaked: op %u tag %llx status %d\n", s.opcode,
				       (unsigned long long)s.tag, c.status);
			/* the kernel keeps at most sq_entries <= cq_entries in
			 * flight and reaps on every ring: wait for space */
			while (lake_cq_post(&ring, &cq_tail, &c)) {
				if (ioctl(fd, LAKE_IOC_CQ_RING) < 0 || stop)
					break;
			}
			n++;
		}
		if (n) {
			lake_sq_publish_head(&ring, head);
			if (ioctl(fd, LAKE_IOC_CQ_RING) < 0)
				fprintf(stderr, "fakelaked: LAKE_IOC_CQ_RING: %s\n", strerror(errno));
			continue;
		}
		/* sleep: announce, re-check, poll (PROTOCOL.md, "Doorbells") */
		lake_sq_publish_head(&ring, head);
		__atomic_add_fetch(&ring.hdr->sq_need_wakeup, 1, __ATOMIC_SEQ_CST);
		if (!lake_sq_ready(&ring)) {
			struct pollfd p = { .fd = fd, .events = POLLIN };

			poll(&p, 1, 100);
		}
		__atomic_sub_fetch(&ring.hdr->sq_need_wakeup, 1, __ATOMIC_SEQ_CST);
	}
	__atomic_store_n(&ring.hdr->daemon_state, LAKE_DAEMON_DETACHED, __ATOMIC_SEQ_CST);
	munmap(mem, info.region_size);
	close(fd);
	return 0;
}
