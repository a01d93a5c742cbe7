/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * blktrace.c - per-request block I/O tracer for lake's evaluation.
 *
 * Attached to the block_rq_issue and block_rq_complete tracepoints as
 * BTF-typed raw tracepoints (tp_btf). Plain (perf) tracepoint programs
 * share one per-CPU "a BPF program is running" flag, so a completion
 * interrupt arriving while the issue program runs was silently skipped
 * (measured: ~1% of completions lost under fio on a loop device); tp_btf
 * programs only exclude themselves, and the kernel counts what they still
 * miss (reported as Stats.Missed). Needs kernel BTF; `go generate` needs
 * only clang.
 *
 * Only devices present in `watch` are traced; the map value is the number
 * of requests in flight on that device (the queue depth at issue). Every
 * issue and every matched completion is sent to user space through the
 * `events` ring buffer; an event that does not fit is counted in
 * `counters[LOST]` instead.
 */
typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef int __s32;
typedef unsigned long long __u64;
typedef long long __s64;

#define SEC(name) __attribute__((section(name), used))
#define __always_inline inline __attribute__((always_inline))
#define __uint(name, val) int(*name)[val]
#define __type(name, val) typeof(val) *name

#define BPF_MAP_TYPE_HASH 1
#define BPF_MAP_TYPE_ARRAY 2
#define BPF_MAP_TYPE_LRU_HASH 9
#define BPF_MAP_TYPE_RINGBUF 27
#define BPF_ANY 0

static void *(*bpf_map_lookup_elem)(void *map, const void *key) = (void *)1;
static long (*bpf_map_update_elem)(void *map, const void *key, const void *value, __u64 flags) = (void *)2;
static long (*bpf_map_delete_elem)(void *map, const void *key) = (void *)3;
static __u64 (*bpf_ktime_get_ns)(void) = (void *)5;
static void *(*bpf_ringbuf_reserve)(void *ringbuf, __u64 size, __u64 flags) = (void *)131;
static void (*bpf_ringbuf_submit)(void *data, __u64 flags) = (void *)132;

/*
 * The few kernel structures read, declared by hand with
 * preserve_access_index: clang emits CO-RE relocations and the loader
 * resolves the real offsets from the running kernel's BTF
 * (/sys/kernel/btf/vmlinux), so no vmlinux.h is needed.
 */
struct gendisk {
	int major;
	int first_minor;
} __attribute__((preserve_access_index));

struct request_queue {
	struct gendisk *disk;
} __attribute__((preserve_access_index));

struct request {
	struct request_queue *q;
	unsigned int cmd_flags;
	unsigned long long __sector;
	unsigned int __data_len;
} __attribute__((preserve_access_index));

#define REQ_OP_MASK 0xff
#define REQ_OP_READ 0
#define REQ_OP_WRITE 1
#define REQ_OP_DISCARD 3

/* Event kinds and ops; mirrored in events.go. */
#define KIND_ISSUE 1
#define KIND_COMPLETE 2
#define OP_OTHER 0
#define OP_READ 1
#define OP_WRITE 2
#define OP_DISCARD 3

/* Counter indexes; mirrored in tracer_linux.go. */
#define CNT_LOST 0      /* events dropped: ring buffer full */
#define CNT_UNMATCHED 1 /* completions with no recorded issue */
#define CNT_ISSUES 2    /* issues seen on watched devices */
#define CNT_COMPLETES 3 /* matched completions */
#define CNT_TRACK_FAIL 4 /* issues that could not be tracked (map full) */
#define CNT_REPLACED 5 /* issues of a request whose previous issue did not complete */
#define CNT_MAX 6

/* One event: 48 bytes, little-endian; decoded by DecodeEvent. */
struct event {
	__u64 issue_ns;
	__u64 done_ns; /* 0 for an issue event */
	__u64 sector;
	__u32 dev;
	__u32 bytes;
	__u32 qd; /* requests in flight on dev when this one was issued (excluding it) */
	__s32 error;
	__u8 kind;
	__u8 op;
	__u8 pad[6];
};

/* In-flight requests are keyed by the struct request address, unique while
 * the request is in flight (two requests to the same sector cannot be
 * confused). */
struct rq_key {
	__u64 rq;
	__u64 pad;
};

struct rq_val {
	__u64 issue_ns;
	__u32 bytes;
	__u32 qd;
	__u8 op;
	__u8 pad[7];
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __s64);
} watch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct rq_key);
	__type(value, struct rq_val);
} inflight SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 22);
} events SEC(".maps");

/* Dummy use so bpf2go emits the Go type. */
struct event *unused_event __attribute__((unused));

static __always_inline void count(__u32 idx)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &idx);

	if (c)
		__sync_fetch_and_add(c, 1);
}

static __always_inline __u8 req_op(unsigned int flags)
{
	switch (flags & REQ_OP_MASK) {
	case REQ_OP_READ:
		return OP_READ;
	case REQ_OP_WRITE:
		return OP_WRITE;
	case REQ_OP_DISCARD:
		return OP_DISCARD;
	}
	return OP_OTHER;
}

static __always_inline __u32 req_dev(struct request *rq)
{
	struct gendisk *d = rq->q->disk;

	if (!d)
		return 0;
	return ((__u32)d->major << 20) | ((__u32)d->first_minor & ((1U << 20) - 1));
}

static __always_inline void emit(__u8 kind, __u32 dev, __u64 sector, struct rq_val *v, __u64 done, __s32 err)
{
	struct event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);

	if (!e) {
		count(CNT_LOST);
		return;
	}
	e->issue_ns = v->issue_ns;
	e->done_ns = done;
	e->sector = sector;
	e->dev = dev;
	e->bytes = v->bytes;
	e->qd = v->qd;
	e->error = err;
	e->kind = kind;
	e->op = v->op;
	for (int i = 0; i < 6; i++)
		e->pad[i] = 0;
	bpf_ringbuf_submit(e, 0);
}

/* block_rq_issue(struct request *rq) */
SEC("tp_btf/block_rq_issue")
int lake_rq_issue(unsigned long long *ctx)
{
	struct request *rq = (struct request *)ctx[0];
	__u32 dev = req_dev(rq);
	__u32 bytes = rq->__data_len;
	__s64 *depth = bpf_map_lookup_elem(&watch, &dev);

	if (!depth || bytes == 0) /* unwatched device, or a flush */
		return 0;
	count(CNT_ISSUES);
	struct rq_key k = { .rq = (__u64)rq };
	__u64 sector = rq->__sector;
	struct rq_val v = {};

	v.issue_ns = bpf_ktime_get_ns();
	v.bytes = bytes;
	v.op = req_op(rq->cmd_flags);
	__s64 q = __sync_fetch_and_add(depth, 1);
	v.qd = q < 0 ? 0 : (__u32)q;
	if (bpf_map_lookup_elem(&inflight, &k)) {
		/* This request was issued before and its completion was not
		 * seen (a requeue, or a missed completion): count it and undo
		 * the earlier issue's depth. */
		count(CNT_REPLACED);
		__sync_fetch_and_add(depth, -1);
		v.qd = v.qd > 0 ? v.qd - 1 : 0;
	}
	if (bpf_map_update_elem(&inflight, &k, &v, BPF_ANY) != 0) {
		__sync_fetch_and_add(depth, -1);
		count(CNT_TRACK_FAIL);
		return 0;
	}
	emit(KIND_ISSUE, dev, sector, &v, 0, 0);
	return 0;
}

/* block_rq_complete(struct request *rq, blk_status_t error, unsigned int nr_bytes) */
SEC("tp_btf/block_rq_complete")
int lake_rq_complete(unsigned long long *ctx)
{
	struct request *rq = (struct request *)ctx[0];
	__s32 err = (__s32)(__u8)ctx[1];
	__u32 dev = req_dev(rq);
	__s64 *depth = bpf_map_lookup_elem(&watch, &dev);

	if (!depth)
		return 0;
	struct rq_key k = { .rq = (__u64)rq };
	__u64 sector = rq->__sector;
	struct rq_val *p = bpf_map_lookup_elem(&inflight, &k);

	if (!p) {
		count(CNT_UNMATCHED);
		return 0;
	}
	struct rq_val v = *p;

	bpf_map_delete_elem(&inflight, &k);
	__sync_fetch_and_add(depth, -1);
	count(CNT_COMPLETES);
	emit(KIND_COMPLETE, dev, sector, &v, bpf_ktime_get_ns(), err);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
