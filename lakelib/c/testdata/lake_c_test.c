// SPDX-License-Identifier: (GPL-2.0 OR MIT)
/*
 * lake_c_test.c - host tests of the shared C ring code (lake_ring.h over
 * lake_shm.h), the userspace library (lake_client.c) and the C registry
 * creator (lake_feat_create.h). Run by lakelib/c/c_test.go:
 *
 *   lake_c_test unit             single-threaded ring and layout tests
 *   lake_c_test threads          many producers, one consumer, futex doorbells
 *   lake_c_test features FILE    create a registry, record LinnOS samples,
 *                                write the area to FILE (Go checks it)
 *   lake_c_test connect SOCKET   handshake with a laked, one nop call
 *   lake_c_test fuzz FILE        treat FILE's bytes as a hostile region
 *   lake_c_test bench N          time N single-threaded round trips
 *
 * Every check prints "FAIL file:line: expr" and exits 1.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lake_client.h"
#include "lake_feat_create.h"

#define CHECK(e)                                                              \
	do {                                                                  \
		if (!(e)) {                                                   \
			fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #e); \
			exit(1);                                              \
		}                                                             \
	} while (0)

/* new_region allocates and formats a region. */
static void *new_region(lake_u32 sq, lake_u32 cq, lake_u64 arena, lake_u64 feat, lake_u64 *len)
{
	lake_u64 n = lake_region_size(sq, cq, arena, feat);
	void *mem;

	CHECK(n != 0);
	CHECK(posix_memalign(&mem, 4096, n) == 0);
	memset(mem, 0, n);
	CHECK(lake_region_format(mem, n, sq, cq, arena, feat, 0) == 0);
	*len = n;
	return mem;
}

static void test_layout(void)
{
	struct lake_ring r;
	lake_u64 len;
	void *mem = new_region(8, 16, 4096, 4096, &len);
	struct lake_region_header *h = mem;
	struct lake_region_header saved = *h;

	/* PROTOCOL.md: header page, sq 8*64 -> one page, cq 16*64 -> one page */
	CHECK(len == 4096 * 5);
	CHECK(h->sqes_off == 4096 && h->cqes_off == 8192 && h->arena_off == 12288);
	CHECK(h->features_off == 16384 && h->region_size == len);
	CHECK(lake_ring_init(&r, mem, len) == 0);
	CHECK(r.sq_mask == 7 && r.cq_mask == 15 && r.arena_size == 4096);
	CHECK(lake_ring_init(&r, mem, len - 1) == -1);

	/* invalid sizes */
	CHECK(lake_region_size(7, 16, 4096, 0) == 0);
	CHECK(lake_region_size(16, 8, 4096, 0) == 0);
	CHECK(lake_region_size(8, 16, 0, 0) == 0);
	CHECK(lake_region_size(8, 16, 4097, 0) == 0);
	CHECK(lake_region_size(8, 16, 4096, 100) == 0);
	CHECK(lake_region_size(1u << 15, 1u << 15, 4096, 0) == 0);
	CHECK(lake_region_format(mem, 4096, 8, 16, 4096, 0, 0) == -1);

	/* every corrupted geometry field is rejected */
#define CORRUPT(field, val)                                  \
	do {                                                 \
		*h = saved;                                  \
		h->field = val;                              \
		CHECK(lake_ring_init(&r, mem, len) == -1);   \
	} while (0)
	CORRUPT(magic, 0);
	CORRUPT(version_major, 2);
	CORRUPT(header_size, 8192);
	CORRUPT(slot_size, 128);
	CORRUPT(sq_entries, 12);
	CORRUPT(sq_entries, 32);
	CORRUPT(cq_entries, 4);
	CORRUPT(arena_size, 8192);
	CORRUPT(sqes_off, 0);
	CORRUPT(cqes_off, 4096);
	CORRUPT(arena_off, 0);
	CORRUPT(features_off, 0);
	CORRUPT(features_size, 8192);
	CORRUPT(region_size, len + 4096);
#undef CORRUPT
	*h = saved;
	CHECK(lake_ring_init(&r, mem, len) == 0);
	free(mem);
	printf("ok layout\n");
}

static struct lake_sqe mk_sqe(lake_u8 op, lake_u64 tag)
{
	struct lake_sqe s;

	memset(&s, 0, sizeof(s));
	s.opcode = op;
	s.tag = tag;
	s.args[0] = tag * 3;
	s.args[5] = ~tag;
	return s;
}

static void test_rings(void)
{
	struct lake_ring r;
	lake_u64 len;
	void *mem = new_region(8, 16, 4096, 0, &len);
	lake_u32 sq_tail = 0, sq_head = 0, cq_tail = 0, i, round;
	struct lake_sqe s, got;
	struct lake_cqe c, out[32];

	CHECK(lake_ring_init(&r, mem, len) == 0);
	CHECK(!lake_sq_ready(&r));
	CHECK(lake_sq_consume(&r, &sq_head, &got) == 0);

	/* several rounds across the wrap: fill, drain, complete, reap */
	for (round = 0; round < 5; round++) {
		lake_u64 base = round * 100;

		for (i = 0; i < 8; i++) {
			s = mk_sqe(LAKE_OP_NOP, base + i);
			CHECK(lake_sq_submit_sp(&r, &sq_tail, &s) == 0);
		}
		s = mk_sqe(LAKE_OP_NOP, 999);
		CHECK(lake_sq_submit_sp(&r, &sq_tail, &s) == -1); /* full */
		CHECK(lake_sq_submit(&r, &s) == -1);              /* full for MPSC too */
		CHECK(r.hdr->sq_tail == sq_tail);
		CHECK(lake_sq_ready(&r));
		for (i = 0; i < 8; i++) {
			CHECK(lake_sq_consume(&r, &sq_head, &got) == 1);
			CHECK(got.tag == base + i && got.opcode == LAKE_OP_NOP);
			CHECK(got.args[0] == (base + i) * 3 && got.args[5] == ~(base + i));
			CHECK(got.seq == sq_head); /* the copy holds the published seq */
			memset(&c, 0, sizeof(c));
			c.tag = got.tag;
			c.status = (lake_s32)i;
			c.results[0] = got.tag + 1;
			CHECK(lake_cq_post(&r, &cq_tail, &c) == 0);
		}
		CHECK(lake_sq_consume(&r, &sq_head, &got) == 0);
		lake_sq_publish_head(&r, sq_head);
		CHECK(!lake_sq_ready(&r));
		CHECK(lake_cq_reap(&r, out, 3) == 3);
		CHECK(lake_cq_reap(&r, out + 3, 32) == 5);
		for (i = 0; i < 8; i++)
			CHECK(out[i].tag == base + i && out[i].status == (lake_s32)i &&
			      out[i].results[0] == base + i + 1 && out[i].pad == 0);
		CHECK(lake_cq_reap(&r, out, 32) == 0);
	}

	/* completion ring full: 16 posts fit, the 17th does not */
	for (i = 0; i < 16; i++)
		CHECK(lake_cq_post(&r, &cq_tail, &c) == 0);
	CHECK(lake_cq_post(&r, &cq_tail, &c) == -1);
	CHECK(lake_cq_reap(&r, out, 32) == 16);
	free(mem);
	printf("ok rings\n");
}

/* The consumer is untrusted: whatever it writes, the kernel's producer
 * and the client's reaper stay bounded and inside the region. */
static void test_hostile_consumer(void)
{
	struct lake_ring r;
	lake_u64 len;
	void *mem = new_region(8, 16, 4096, 0, &len);
	lake_u32 sq_tail = 0, cq_tail = 0, i;
	struct lake_sqe s = mk_sqe(LAKE_OP_NOP, 1);
	struct lake_cqe out[64], c;

	CHECK(lake_ring_init(&r, mem, len) == 0);
	/* garbage sequence word: the bounded submit refuses at once */
	r.sqes[0].seq = 0xdeadbeef;
	CHECK(lake_sq_submit_sp(&r, &sq_tail, &s) == -1);
	CHECK(sq_tail == 0);
	/* the lock-free submit gives up instead of spinning (the garbage
	 * sequence reads as a slot not yet freed: "full") */
	r.hdr->sq_tail = 0;
	CHECK(lake_sq_submit(&r, &s) == -1);
	r.sqes[0].seq = 0;
	/* a producer never reads sq_tail back from the header */
	r.hdr->sq_tail = 12345;
	CHECK(lake_sq_submit_sp(&r, &sq_tail, &s) == 0 && sq_tail == 1);
	/* cq_tail far ahead of cq_head: a reap returns at most cq_entries */
	r.hdr->cq_tail = r.hdr->cq_head + 100000;
	CHECK(lake_cq_reap(&r, out, 64) == 16);
	/* cq_head ahead of the producer reads as "no space" */
	r.hdr->cq_head = cq_tail + 5;
	memset(&c, 0, sizeof(c));
	CHECK(lake_cq_post(&r, &cq_tail, &c) == -1);
	/* lake_arena_ok is overflow-safe */
	CHECK(lake_arena_ok(&r, 0, 4096));
	CHECK(!lake_arena_ok(&r, 1, 4096));
	CHECK(!lake_arena_ok(&r, 4097, 0));
	CHECK(!lake_arena_ok(&r, ~0ull, 2));
	CHECK(!lake_arena_ok(&r, 2, ~0ull));

	/* reset puts everything back */
	lake_ring_reset(&r);
	sq_tail = 0;
	cq_tail = 0;
	CHECK(r.hdr->sq_tail == 0 && r.hdr->sq_head == 0 && r.hdr->cq_head == 0 && r.hdr->cq_tail == 0);
	for (i = 0; i < 8; i++)
		CHECK(r.sqes[i].seq == i);
	for (i = 0; i < 8; i++)
		CHECK(lake_sq_submit_sp(&r, &sq_tail, &s) == 0);
	CHECK(lake_sq_submit_sp(&r, &sq_tail, &s) == -1);
	free(mem);
	printf("ok hostile-consumer\n");
}

static void test_client_attach(void)
{
	struct lake_client c;
	lake_u64 len;
	void *mem = new_region(8, 16, 4096, 0, &len);

	CHECK(lake_client_attach(&c, (char *)mem + 8, len - 64) == -EINVAL);
	((struct lake_region_header *)mem)->magic ^= 1;
	CHECK(lake_client_attach(&c, mem, len) == -EPROTO);
	((struct lake_region_header *)mem)->magic ^= 1;
	CHECK(lake_client_attach(&c, mem, len) == 0);
	CHECK(lake_client_wait_cq(&c, 1) == -ETIMEDOUT);
	CHECK(lake_server_wait_sq(&c, 0, 1) == -ETIMEDOUT);
	lake_client_detach(&c);
	CHECK(lake_client_map_fd(&c, -1, 0) == -EBADF);
	free(mem);
	printf("ok client-attach\n");
}

/* ---- threads: producers -> consumer (laked's part) -> reaper ---- */

#define PRODUCERS 4
#define PER_PRODUCER 20000

struct stress {
	struct lake_client c;
	unsigned char *seen;
	lake_u64 total;
};

static void *producer(void *arg)
{
	struct stress *st = arg;
	static int next_id;
	int id = __atomic_fetch_add(&next_id, 1, __ATOMIC_SEQ_CST);
	lake_u64 i;

	for (i = 0; i < PER_PRODUCER; i++) {
		struct lake_sqe s = mk_sqe(LAKE_OP_NOP, (lake_u64)id * PER_PRODUCER + i);

		while (lake_client_submit(&st->c, &s) == -EAGAIN)
			sched_yield();
	}
	return NULL;
}

static void *consumer(void *arg)
{
	struct stress *st = arg;
	lake_u32 head = 0, cq_tail = 0;
	lake_u64 done = 0;

	while (done < st->total) {
		struct lake_sqe s;
		int n = 0;

		while (lake_sq_consume(&st->c.ring, &head, &s)) {
			struct lake_cqe c;

			memset(&c, 0, sizeof(c));
			c.tag = s.tag;
			c.results[0] = s.args[0];
			while (lake_cq_post(&st->c.ring, &cq_tail, &c)) {
				lake_server_ring_cq(&st->c);
				sched_yield();
			}
			n++;
			done++;
		}
		if (n) {
			lake_sq_publish_head(&st->c.ring, head);
			lake_server_ring_cq(&st->c);
			continue;
		}
		/* no limit: a lost wake-up hangs the test (and Go's timeout
		 * fails it) instead of being hidden by a timeout */
		lake_server_wait_sq(&st->c, head, -1);
	}
	return NULL;
}

static void test_threads(void)
{
	struct stress st;
	pthread_t p[PRODUCERS], cons;
	lake_u64 len, got = 0, i;
	void *mem = new_region(64, 128, 4096, 0, &len);
	int k;

	CHECK(lake_client_attach(&st.c, mem, len) == 0);
	st.total = (lake_u64)PRODUCERS * PER_PRODUCER;
	st.seen = calloc(st.total, 1);
	CHECK(st.seen);
	CHECK(pthread_create(&cons, NULL, consumer, &st) == 0);
	for (k = 0; k < PRODUCERS; k++)
		CHECK(pthread_create(&p[k], NULL, producer, &st) == 0);
	while (got < st.total) {
		struct lake_cqe out[64];
		unsigned n = lake_client_reap(&st.c, out, 64), j;

		for (j = 0; j < n; j++) {
			CHECK(out[j].tag < st.total);
			CHECK(out[j].results[0] == out[j].tag * 3);
			CHECK(st.seen[out[j].tag] == 0);
			st.seen[out[j].tag] = 1;
		}
		got += n;
		if (!n)
			CHECK(lake_client_wait_cq(&st.c, -1) == 0);
	}
	for (k = 0; k < PRODUCERS; k++)
		pthread_join(p[k], NULL);
	pthread_join(cons, NULL);
	for (i = 0; i < st.total; i++)
		CHECK(st.seen[i] == 1);
	lake_client_detach(&st.c);
	free(st.seen);
	free(mem);
	printf("ok threads %llu\n", (unsigned long long)got);
}

/* ---- features: C creates and records, Go reads ---- */

static void test_features(const char *path)
{
	struct lake_feat_config cfg = { .max_schemas = 8, .arena_bytes = 256 << 10 };
	lake_u64 size = lake_feat_size_for(cfg);
	struct lake_feat_view v;
	struct lake_feat_sdesc arr, comp;
	static const struct lake_feat_field_def f2[2] = { { "a", LAKE_FEAT_U8, 3 }, { "b", LAKE_FEAT_F64, 2 } };
	static const struct lake_feat_field_def bad = { "x", 99, 1 };
	lake_u32 id;
	void *mem;
	FILE *f;
	int i;

	CHECK(size > 0);
	CHECK(posix_memalign(&mem, 4096, size) == 0);
	CHECK(lake_feat_create(mem, size - 8, cfg) == -EINVAL);
	CHECK(lake_feat_create(mem, size, cfg) == 0);
	CHECK(lake_feat_attach(&v, mem, size) == 0);
	CHECK(lake_feat_register_linnos(&v, 8, 4242) == 0);
	CHECK(lake_feat_register_linnos(&v, 8, 4242) == 0); /* idempotent */
	CHECK(lake_feat_register(&v, LAKE_FEAT_LINNOS_ARRIVAL, f2, 2, 4, 4, 1, &id) == -EEXIST);
	CHECK(lake_feat_register(&v, "bad", &bad, 1, 4, 4, 1, &id) == -EINVAL);
	CHECK(lake_feat_register(&v, "big", f2, 2, 4, 1u << 20, 1, &id) == -ENOSPC);
	CHECK(lake_feat_register(&v, "c.two", f2, 2, 5, 3, 1, &id) == 0 && id == 2);
	CHECK(lake_feat_schema_find(&v, LAKE_FEAT_LINNOS_ARRIVAL, &arr) == 0);
	CHECK(lake_feat_schema_find(&v, LAKE_FEAT_LINNOS_COMPLETION, &comp) == 0);
	CHECK(arr.record_size == 8 && arr.history == 16);
	CHECK(comp.record_size == sizeof(struct lake_feat_linnos_completion));
	/* device 7: reads with pending 1..6 at arrival, latency 100..600;
	 * device 9: one arrival */
	for (i = 1; i <= 6; i++) {
		lake_u64 p = (lake_u64)i;
		struct lake_feat_linnos_completion c = {
			.latency_us = (uint32_t)i * 100, .pending = (uint32_t)i,
			.arrive_seq = (uint32_t)i - 1, .done_seq = (uint32_t)i,
		};

		CHECK(lake_feat_record(&v, &arr, 7, &p, 8) == 0);
		CHECK(lake_feat_record(&v, &comp, 7, &c, sizeof(c)) == 0);
	}
	{
		lake_u64 p = 42;

		CHECK(lake_feat_record(&v, &arr, 9, &p, 8) == 0);
	}
	/* the dm-linnos statistics, as the target publishes them: two
	 * reports for the target (the second is current), one per replica */
	{
		struct lake_feat_sdesc st, sd;
		struct lake_feat_dm_linnos_stats ts;
		struct lake_feat_dm_linnos_dev_stats ds = { .reads = 11, .errors = 2, .version = 5, .pending = 3, .model = 1 };
		uint64_t *u = &ts.reads;

		CHECK(lake_feat_register_dm_linnos_stats(&v, 4, 4242) == 0);
		CHECK(lake_feat_register_dm_linnos_stats(&v, 4, 4242) == 0); /* idempotent */
		CHECK(lake_feat_schema_find(&v, LAKE_FEAT_DM_LINNOS_STATS, &st) == 0);
		CHECK(lake_feat_schema_find(&v, LAKE_FEAT_DM_LINNOS_DEV_STATS, &sd) == 0);
		CHECK(st.record_size == sizeof(ts) && sd.record_size == sizeof(ds));
		for (i = 0; i < 2; i++) {
			int k;

			memset(&ts, 0, sizeof(ts));
			for (k = 0; k < 14; k++) /* reads=1000 (+1 the second time), predictions=1001, ... */
				u[k] = 1000u + (uint64_t)k + (uint64_t)i;
			ts.accuracy = i ? 937 : -1;
			ts.bypass = (uint32_t)i;
			CHECK(lake_feat_record(&v, &st, (253ull << 20) | 2, &ts, sizeof(ts)) == 0);
		}
		CHECK(lake_feat_record(&v, &sd, (253ull << 20) | 0, &ds, sizeof(ds)) == 0);
	}
	f = fopen(path, "wb");
	CHECK(f);
	CHECK(fwrite(mem, 1, size, f) == size);
	CHECK(fclose(f) == 0);
	free(mem);
	printf("ok features %llu\n", (unsigned long long)size);
}

/* ---- connect: the handshake against a laked ---- */

static void test_connect(const char *path)
{
	struct lake_client c;
	struct lake_sqe s = mk_sqe(LAKE_OP_NOP, 77);
	struct lake_cqe cqe;
	int err;

	s.args[0] = 0;
	s.args[5] = 0;
	err = lake_client_connect(&c, path, 8, 16, 4096, 0);
	if (err) {
		fprintf(stderr, "FAIL connect: %s\n", strerror(-err));
		exit(1);
	}
	CHECK(c.ring.sq_mask == 7 && c.ring.cq_mask == 15 && c.ring.arena_size == 4096);
	CHECK(lake_client_call(&c, &s, &cqe, 10000) == 0);
	CHECK(cqe.tag == 77);
	printf("ok connect client=%u status=%d r0=%llu\n", c.client_id, cqe.status,
	       (unsigned long long)cqe.results[0]);
	lake_client_detach(&c);
}

/* ---- fetch: model_fetch against a laked serving a LinnOS model ---- */

static void test_fetch(const char *path, const char *outpath)
{
	struct lake_client c;
	lake_u64 need = 0, got = 0, ver = 0;
	FILE *f;
	int err;

	err = lake_client_connect(&c, path, 8, 16, 256 << 10, 0);
	if (err) {
		fprintf(stderr, "FAIL connect: %s\n", strerror(-err));
		exit(1);
	}
	CHECK(lake_client_model_fetch(&c, 7, 0, 0, &need, &ver, 10000) == -EMSGSIZE && need > 24 && ver == 1);
	CHECK(lake_client_model_fetch(&c, 7, 0, need - 1, &got, &ver, 10000) == -EMSGSIZE && got == need);
	CHECK(lake_client_model_fetch(&c, 99, 0, need, &got, &ver, 10000) == -ENOENT);
	CHECK(lake_client_model_fetch(&c, 7, c.ring.arena_size - 8, need, &got, &ver, 10000) == -ERANGE);
	got = 0;
	CHECK(lake_client_model_fetch(&c, 7, 4096, need, &got, &ver, 10000) == 0 && got == need && ver == 1);
	f = fopen(outpath, "wb");
	CHECK(f);
	CHECK(fwrite((const unsigned char *)c.ring.arena + 4096, 1, got, f) == got);
	CHECK(fclose(f) == 0);
	printf("ok fetch %llu bytes version %llu\n", (unsigned long long)got, (unsigned long long)ver);
	lake_client_detach(&c);
}

/* ---- bench: single-threaded submit/consume/post/reap round trips ---- */

static void bench(long n)
{
	struct lake_client c;
	lake_u64 len;
	void *mem = new_region(256, 512, 4096, 0, &len);
	lake_u32 head = 0, cq_tail = 0;
	struct lake_sqe s = mk_sqe(LAKE_OP_NOP, 0), got;
	struct lake_cqe cqe, out;
	struct timespec t0, t1;
	long i;

	CHECK(lake_client_attach(&c, mem, len) == 0);
	memset(&cqe, 0, sizeof(cqe));
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < n; i++) {
		s.tag = (lake_u64)i;
		CHECK(lake_client_submit(&c, &s) == 0);
		CHECK(lake_sq_consume(&c.ring, &head, &got) == 1);
		lake_sq_publish_head(&c.ring, head);
		cqe.tag = got.tag;
		CHECK(lake_cq_post(&c.ring, &cq_tail, &cqe) == 0);
		lake_server_ring_cq(&c);
		CHECK(lake_client_reap(&c, &out, 1) == 1 && out.tag == (lake_u64)i);
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	printf("ns_per_roundtrip %.2f\n",
	       ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / (double)(n ? n : 1));
	lake_client_detach(&c);
	free(mem);
}

/* ---- fuzz: a hostile header and slots ---- */

static void test_fuzz(const char *path)
{
	lake_u64 len = 64 << 10, i;
	unsigned char *mem;
	struct lake_ring r;
	size_t n;
	FILE *f = fopen(path, "rb");

	CHECK(f);
	CHECK(posix_memalign((void **)&mem, 4096, len) == 0);
	memset(mem, 0, len);
	n = fread(mem, 1, len, f);
	fclose(f);
	if (lake_ring_init(&r, mem, len) == 0) {
		lake_u32 sq_tail = 0, head = 0, cq_tail = 0;
		struct lake_sqe s = mk_sqe(LAKE_OP_NOP, 1), got;
		struct lake_cqe c, out[16];

		/* everything the ring hands out stays inside the region */
		CHECK((unsigned char *)r.sqes >= mem && (unsigned char *)(r.sqes + r.sq_mask + 1) <= mem + len);
		CHECK((unsigned char *)r.cqes >= mem && (unsigned char *)(r.cqes + r.cq_mask + 1) <= mem + len);
		CHECK(r.arena >= mem && r.arena + r.arena_size <= mem + len);
		memset(&c, 0, sizeof(c));
		for (i = 0; i < 64; i++) {
			(void)lake_sq_submit_sp(&r, &sq_tail, &s);
			(void)lake_sq_submit(&r, &s);
			(void)lake_sq_ready(&r);
			(void)lake_sq_consume(&r, &head, &got);
			(void)lake_cq_post(&r, &cq_tail, &c);
			CHECK(lake_cq_reap(&r, out, 16) <= 16);
		}
		printf("ok fuzz accepted %zu\n", n);
	} else {
		printf("ok fuzz rejected %zu\n", n);
	}
	free(mem);
}

int main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc == 2 && !strcmp(argv[1], "unit")) {
		test_layout();
		test_rings();
		test_hostile_consumer();
		test_client_attach();
		return 0;
	}
	if (argc == 2 && !strcmp(argv[1], "threads")) {
		test_threads();
		return 0;
	}
	if (argc == 3 && !strcmp(argv[1], "features")) {
		test_features(argv[2]);
		return 0;
	}
	if (argc == 3 && !strcmp(argv[1], "connect")) {
		test_connect(argv[2]);
		return 0;
	}
	if (argc == 4 && !strcmp(argv[1], "fetch")) {
		test_fetch(argv[2], argv[3]);
		return 0;
	}
	if (argc == 3 && !strcmp(argv[1], "bench")) {
		bench(atol(argv[2]));
		return 0;
	}
	if (argc == 3 && !strcmp(argv[1], "fuzz")) {
		test_fuzz(argv[2]);
		return 0;
	}
	fprintf(stderr, "usage: %s unit|threads|features FILE|connect SOCKET|fuzz FILE\n", argv[0]);
	return 2;
}
