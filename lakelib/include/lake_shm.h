/* SPDX-License-Identifier: (GPL-2.0 OR MIT) */
/*
 * lake_shm.h - the lake shared-memory region, as specified in
 * shm/PROTOCOL.md. Go (package shm) and C (the kernel module and the C
 * userspace library) both follow this layout; shm's tests compile a
 * program against this header and compare every offset with Go's.
 *
 * Little-endian, 64-byte cache lines. Ring counters are free-running
 * u32s. Builds in the kernel (with __KERNEL__) and in userspace.
 */
#ifndef LAKE_SHM_H
#define LAKE_SHM_H

#ifdef __KERNEL__
#include <linux/types.h>
#include <linux/stddef.h>
typedef u8 lake_u8;
typedef u16 lake_u16;
typedef u32 lake_u32;
typedef s32 lake_s32;
typedef u64 lake_u64;
#else
#include <stdint.h>
#include <stddef.h>
typedef uint8_t lake_u8;
typedef uint16_t lake_u16;
typedef uint32_t lake_u32;
typedef int32_t lake_s32;
typedef uint64_t lake_u64;
#endif

#define LAKE_MAGIC 0x454B414Cu /* "LAKE" */
#define LAKE_VERSION_MAJOR 1
#define LAKE_VERSION_MINOR 1
#define LAKE_HEADER_SIZE 4096u
#define LAKE_SLOT_SIZE 64u
#define LAKE_PAGE_SIZE 4096u
#define LAKE_NUM_ARGS 6

#define LAKE_MIN_ENTRIES 8u
#define LAKE_MAX_SQ_ENTRIES (1u << 14)
#define LAKE_MAX_CQ_ENTRIES (1u << 15)
#define LAKE_MAX_ARENA_SIZE (1ull << 30)
#define LAKE_MAX_FEATURES_SIZE (1ull << 30)

/* header flags */
#define LAKE_FLAG_KERNEL_CLIENT (1u << 0)
#define LAKE_FLAG_FEATURES (1u << 1)

/* daemon_state values */
#define LAKE_DAEMON_DETACHED 0u
#define LAKE_DAEMON_SERVING 1u
#define LAKE_DAEMON_DRAINING 2u

struct lake_region_header {
	lake_u32 magic;          /* 0x000 */
	lake_u16 version_major;  /* 0x004 */
	lake_u16 version_minor;  /* 0x006 */
	lake_u32 header_size;    /* 0x008 */
	lake_u32 flags;          /* 0x00C */
	lake_u64 region_size;    /* 0x010 */
	lake_u32 sq_entries;     /* 0x018 */
	lake_u32 cq_entries;     /* 0x01C */
	lake_u32 slot_size;      /* 0x020 */
	lake_u32 client_id;      /* 0x024 */
	lake_u64 sqes_off;       /* 0x028 */
	lake_u64 cqes_off;       /* 0x030 */
	lake_u64 arena_off;      /* 0x038 */
	lake_u64 arena_size;     /* 0x040 */
	lake_u64 features_off;   /* 0x048 */
	lake_u64 features_size;  /* 0x050 */
	lake_u32 daemon_epoch;   /* 0x058 */
	lake_u32 daemon_state;   /* 0x05C */
	lake_u8 _pad0[0x80 - 0x60];
	lake_u32 sq_tail;        /* 0x080: producers reserve (CAS) */
	lake_u8 _pad1[60];
	lake_u32 sq_head;        /* 0x0C0: consumer (laked) */
	lake_u8 _pad2[60];
	lake_u32 sq_wake_seq;    /* 0x100: futex word laked sleeps on */
	lake_u32 sq_need_wakeup; /* 0x104: laked sleepers */
	lake_u8 _pad3[56];
	lake_u32 cq_tail;        /* 0x140: producer (laked) */
	lake_u8 _pad4[60];
	lake_u32 cq_head;        /* 0x180: consumer (client) */
	lake_u8 _pad5[60];
	lake_u32 cq_wake_seq;    /* 0x1C0: futex word clients sleep on */
	lake_u32 cq_waiters;     /* 0x1C4: client sleepers */
	lake_u8 _pad6[LAKE_HEADER_SIZE - 0x1C8];
};

/* opcodes */
enum lake_opcode {
	LAKE_OP_NOP = 1,
	LAKE_OP_INIT = 2,
	LAKE_OP_CTX_CREATE = 3,
	LAKE_OP_CTX_DESTROY = 4,
	LAKE_OP_CTX_SYNCHRONIZE = 5,
	LAKE_OP_MEM_ALLOC = 6,
	LAKE_OP_MEM_FREE = 7,
	LAKE_OP_MEMCPY_HTOD = 8,
	LAKE_OP_MEMCPY_DTOH = 9,
	LAKE_OP_MEMCPY_HTOD_ASYNC = 10,
	LAKE_OP_MEMCPY_DTOH_ASYNC = 11,
	LAKE_OP_MODULE_LOAD = 12,
	LAKE_OP_MODULE_UNLOAD = 13,
	LAKE_OP_MODULE_GET_FUNCTION = 14,
	LAKE_OP_LAUNCH_KERNEL = 15,
	LAKE_OP_STREAM_CREATE = 16,
	LAKE_OP_STREAM_DESTROY = 17,
	LAKE_OP_STREAM_SYNCHRONIZE = 18,
	LAKE_OP_PREDICT = 19,
	LAKE_OP_MODEL_INFO = 20,
	LAKE_OP_MODEL_FETCH = 21, /* protocol 1.1 */
};

/* completion status codes */
enum lake_status {
	LAKE_OK = 0,
	LAKE_ERR_BAD_OPCODE = 1,
	LAKE_ERR_INVALID_VALUE = 2,
	LAKE_ERR_OUT_OF_BOUNDS = 3,
	LAKE_ERR_INVALID_HANDLE = 4,
	LAKE_ERR_OUT_OF_MEMORY = 5,
	LAKE_ERR_NOT_FOUND = 6,
	LAKE_ERR_LAUNCH_FAILED = 7,
	LAKE_ERR_NOT_SUPPORTED = 8,
	LAKE_ERR_BUSY = 9,
	LAKE_ERR_SHUTDOWN = 10,
	LAKE_ERR_INTERNAL = 11,
	LAKE_ERR_MODEL_FAILED = 12,
	LAKE_ERR_CONTEXT_DESTROYED = 13,
	LAKE_ERR_BUFFER_TOO_SMALL = 14, /* protocol 1.1: results[0] = bytes needed */
	LAKE_ERR_DEADLINE = 15, /* a predict's deadline passed before it ran */
};

/* submission slot */
struct lake_sqe {
	lake_u32 seq;    /* 0: ring sequence word */
	lake_u8 opcode;  /* 4 */
	lake_u8 flags;   /* 5: 0, or LAKE_SQE_F_DEADLINE on predict */
	lake_u16 pad;    /* 6: 0, or the deadline's low bits on predict */
	lake_u64 tag;    /* 8: echoed in the completion */
	lake_u64 args[LAKE_NUM_ARGS]; /* 16 */
};

/* Predict deadlines (PROTOCOL.md, "Deadlines"): with LAKE_SQE_F_DEADLINE
 * in flags, a predict carries the low LAKE_DEADLINE_BITS bits of
 * CLOCK_MONOTONIC in microseconds (bits 22..16 in flags 7..1, 15..0 in
 * pad); laked answers LAKE_ERR_DEADLINE instead of running it late. At
 * most LAKE_MAX_DEADLINE_AHEAD_US into the future. */
#define LAKE_SQE_F_DEADLINE 0x1u
#define LAKE_DEADLINE_BITS 23
#define LAKE_MAX_DEADLINE_AHEAD_US ((1u << (LAKE_DEADLINE_BITS - 1)) - 1)

/* lake_sqe_set_deadline sets the deadline of a predict submission;
 * mono_ns is CLOCK_MONOTONIC in ns (ktime_get_ns() in the kernel). */
static inline void lake_sqe_set_deadline(struct lake_sqe *e, lake_u64 mono_ns)
{
	lake_u32 us = (lake_u32)(mono_ns / 1000u) & ((1u << LAKE_DEADLINE_BITS) - 1);

	e->flags = (lake_u8)(LAKE_SQE_F_DEADLINE | ((us >> 16) << 1));
	e->pad = (lake_u16)(us & 0xffffu);
}

/* completion slot */
struct lake_cqe {
	lake_u32 pad;       /* 0 */
	lake_s32 status;    /* 4: enum lake_status */
	lake_u64 tag;       /* 8 */
	lake_u64 results[2]; /* 16 */
	lake_u8 reserved[32]; /* 32 */
};

/* launch_kernel descriptor, in the arena, followed by param_bytes bytes of
 * 8-byte little-endian parameter words */
#define LAKE_LAUNCH_DESC_HEADER 40u
#define LAKE_MAX_LAUNCH_PARAMS 4096u
struct lake_launch_desc {
	lake_u32 grid[3];     /* 0 */
	lake_u32 block[3];    /* 12 */
	lake_u32 shared_mem;  /* 24 */
	lake_u32 param_bytes; /* 28 */
	lake_u64 stream;      /* 32 */
};

/* unix-socket handshake (userspace clients) */
#define LAKE_HELLO_MAGIC 0x484B414Cu /* "LAKH" */
#define LAKE_REPLY_MAGIC 0x524B414Cu /* "LAKR" */
#define LAKE_HELLO_NEW 1u
#define LAKE_HELLO_REATTACH 2u
struct lake_hello {
	lake_u32 magic;         /* 0 */
	lake_u16 version_major; /* 4 */
	lake_u16 version_minor; /* 6 */
	lake_u32 kind;          /* 8 */
	lake_u32 sq_entries;    /* 12 */
	lake_u32 cq_entries;    /* 16 */
	lake_u32 flags;         /* 20 */
	lake_u64 arena_size;    /* 24 */
	lake_u64 features_size; /* 32 */
	lake_u8 reserved[24];   /* 40: zero */
};
struct lake_reply {
	lake_u32 magic;       /* 0 */
	lake_s32 status;      /* 4 */
	lake_u32 client_id;   /* 8 */
	lake_u32 resume_head; /* 12: re-attach: submissions before it were consumed */
	lake_u64 region_size; /* 16 */
	lake_u8 reserved1[8]; /* 24 */
	char message[32];     /* 32: NUL-padded reason */
};

#define LAKE_STATIC_ASSERT(c, m) _Static_assert(c, m)
LAKE_STATIC_ASSERT(sizeof(struct lake_region_header) == LAKE_HEADER_SIZE, "header size");
LAKE_STATIC_ASSERT(offsetof(struct lake_region_header, sq_tail) == 0x080, "sq_tail");
LAKE_STATIC_ASSERT(offsetof(struct lake_region_header, sq_head) == 0x0C0, "sq_head");
LAKE_STATIC_ASSERT(offsetof(struct lake_region_header, sq_wake_seq) == 0x100, "sq_wake_seq");
LAKE_STATIC_ASSERT(offsetof(struct lake_region_header, cq_tail) == 0x140, "cq_tail");
LAKE_STATIC_ASSERT(offsetof(struct lake_region_header, cq_head) == 0x180, "cq_head");
LAKE_STATIC_ASSERT(offsetof(struct lake_region_header, cq_wake_seq) == 0x1C0, "cq_wake_seq");
LAKE_STATIC_ASSERT(sizeof(struct lake_sqe) == LAKE_SLOT_SIZE, "sqe size");
LAKE_STATIC_ASSERT(sizeof(struct lake_cqe) == LAKE_SLOT_SIZE, "cqe size");
LAKE_STATIC_ASSERT(sizeof(struct lake_launch_desc) == LAKE_LAUNCH_DESC_HEADER, "launch desc");
LAKE_STATIC_ASSERT(sizeof(struct lake_hello) == 64, "hello size");
LAKE_STATIC_ASSERT(sizeof(struct lake_reply) == 64, "reply size");

/*
 * Ring helpers: the same algorithm as shm/ring.go, with the orderings
 * PROTOCOL.md names. The geometry is validated once and cached in a
 * struct lake_ring in the caller's private memory: the header page is
 * writable by the other side, so a consumer or producer never re-reads
 * offsets or sizes from it after attaching.
 */
struct lake_ring {
	struct lake_region_header *hdr;
	struct lake_sqe *sqes;
	struct lake_cqe *cqes;
	unsigned char *arena;
	lake_u64 arena_size;
	lake_u32 sq_mask;
	lake_u32 cq_mask;
};

#define READ_ONCE_LAKE(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)

static inline int lake_is_pow2(lake_u32 v) { return v && !(v & (v - 1)); }

/* lake_ring_init validates the header of a region of len bytes and fills
 * r. Returns 0, or -1 if the header is not a valid lake region. The
 * layout is fully determined by the sizes (PROTOCOL.md, "Layout"). */
static inline int lake_ring_init(struct lake_ring *r, void *region, lake_u64 len)
{
	struct lake_region_header *h = (struct lake_region_header *)region;
	/* read each shared field exactly once into private memory */
	lake_u32 sq = READ_ONCE_LAKE(h->sq_entries), cq = READ_ONCE_LAKE(h->cq_entries);
	lake_u64 arena = READ_ONCE_LAKE(h->arena_size), feat = READ_ONCE_LAKE(h->features_size);
	lake_u64 sqes_off, cqes_off, arena_off, end;
	if (len < LAKE_HEADER_SIZE || READ_ONCE_LAKE(h->magic) != LAKE_MAGIC ||
	    READ_ONCE_LAKE(h->version_major) != LAKE_VERSION_MAJOR ||
	    READ_ONCE_LAKE(h->header_size) != LAKE_HEADER_SIZE ||
	    READ_ONCE_LAKE(h->slot_size) != LAKE_SLOT_SIZE)
		return -1;
	if (!lake_is_pow2(sq) || sq < LAKE_MIN_ENTRIES || sq > LAKE_MAX_SQ_ENTRIES ||
	    !lake_is_pow2(cq) || cq < sq || cq > LAKE_MAX_CQ_ENTRIES ||
	    arena == 0 || arena % LAKE_PAGE_SIZE || arena > LAKE_MAX_ARENA_SIZE ||
	    feat % LAKE_PAGE_SIZE || feat > LAKE_MAX_FEATURES_SIZE)
		return -1;
	sqes_off = LAKE_HEADER_SIZE;
	cqes_off = sqes_off + (((lake_u64)sq * LAKE_SLOT_SIZE + LAKE_PAGE_SIZE - 1) & ~(lake_u64)(LAKE_PAGE_SIZE - 1));
	arena_off = cqes_off + (((lake_u64)cq * LAKE_SLOT_SIZE + LAKE_PAGE_SIZE - 1) & ~(lake_u64)(LAKE_PAGE_SIZE - 1));
	end = arena_off + arena + feat;
	if (READ_ONCE_LAKE(h->sqes_off) != sqes_off || READ_ONCE_LAKE(h->cqes_off) != cqes_off ||
	    READ_ONCE_LAKE(h->arena_off) != arena_off ||
	    READ_ONCE_LAKE(h->features_off) != (feat ? arena_off + arena : 0) ||
	    READ_ONCE_LAKE(h->region_size) != end || end > len)
		return -1;
	/* every pointer below comes from the locals just validated */
	r->hdr = h;
	r->sqes = (struct lake_sqe *)((unsigned char *)region + sqes_off);
	r->cqes = (struct lake_cqe *)((unsigned char *)region + cqes_off);
	r->arena = (unsigned char *)region + arena_off;
	r->arena_size = arena;
	r->sq_mask = sq - 1;
	r->cq_mask = cq - 1;
	return 0;
}

/* LAKE_SQ_SUBMIT_MAX_TRIES bounds lake_sq_submit's retries under
 * contention, so that a hostile consumer can never make it spin forever. */
#define LAKE_SQ_SUBMIT_MAX_TRIES (1u << 16)

/* lake_sq_submit publishes one submission; many producers may call it
 * concurrently. Returns 0, -1 if the ring is full, or -2 if the ring's
 * words are corrupt (the tail stands still while a slot says it was
 * taken) or it lost LAKE_SQ_SUBMIT_MAX_TRIES races in a row. sqe->seq is
 * ignored. */
static inline int lake_sq_submit(struct lake_ring *r, const struct lake_sqe *sqe)
{
	lake_u32 t = __atomic_load_n(&r->hdr->sq_tail, __ATOMIC_SEQ_CST), tries;

	for (tries = 0; tries < LAKE_SQ_SUBMIT_MAX_TRIES; tries++) {
		struct lake_sqe *s = &r->sqes[t & r->sq_mask];
		lake_u32 seq = __atomic_load_n(&s->seq, __ATOMIC_ACQUIRE);
		lake_s32 d = (lake_s32)(seq - t);
		if (d == 0) {
			if (__atomic_compare_exchange_n(&r->hdr->sq_tail, &t, t + 1, 0,
							__ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
				int i;
				s->opcode = sqe->opcode;
				s->flags = sqe->flags;
				s->pad = sqe->pad;
				s->tag = sqe->tag;
				for (i = 0; i < LAKE_NUM_ARGS; i++)
					s->args[i] = sqe->args[i];
				/* publish; seq-cst so that the doorbell check after it
				 * cannot be reordered before it */
				__atomic_store_n(&s->seq, t + 1, __ATOMIC_SEQ_CST);
				return 0;
			}
			/* the failed CAS reloaded t */
		} else if (d < 0) {
			return -1;
		} else {
			/* Another producer took t, so the tail must have moved.
			 * If it has not, the words are corrupt: fail rather than
			 * spin forever. */
			lake_u32 nt = __atomic_load_n(&r->hdr->sq_tail, __ATOMIC_SEQ_CST);
			if (nt == t)
				return -2;
			t = nt;
		}
	}
	return -2;
}

/* lake_sq_doorbell_needed reports whether laked announced that it may
 * sleep; the producer then increments sq_wake_seq and wakes it (futex in
 * userspace, the device's doorbell in the kernel). */
static inline int lake_sq_doorbell_needed(struct lake_ring *r)
{
	return __atomic_load_n(&r->hdr->sq_need_wakeup, __ATOMIC_SEQ_CST) != 0;
}

/* lake_cq_reap copies at most max completions out (single consumer;
 * callers serialise). */
static inline unsigned lake_cq_reap(struct lake_ring *r, struct lake_cqe *out, unsigned max)
{
	lake_u32 head = __atomic_load_n(&r->hdr->cq_head, __ATOMIC_RELAXED);
	lake_u32 avail = __atomic_load_n(&r->hdr->cq_tail, __ATOMIC_ACQUIRE) - head;
	unsigned n = 0;
	if (avail > r->cq_mask + 1)
		avail = r->cq_mask + 1;
	while (n < max && n < avail) {
		out[n] = r->cqes[(head + n) & r->cq_mask];
		n++;
	}
	if (n)
		__atomic_store_n(&r->hdr->cq_head, head + n, __ATOMIC_RELEASE);
	return n;
}

/* lake_arena_ok reports whether [off, off+n) lies inside the arena. */
static inline int lake_arena_ok(const struct lake_ring *r, lake_u64 off, lake_u64 n)
{
	return off <= r->arena_size && n <= r->arena_size - off;
}

#endif /* LAKE_SHM_H */
