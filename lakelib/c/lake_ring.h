/* SPDX-License-Identifier: (GPL-2.0 OR MIT) */
/*
 * lake_ring.h - ring code shared by the kernel module (kernel/shm/lake_shm.c,
 * built with __KERNEL__) and the C userspace library (lakelib/c), on top
 * of the layout in lakelib/include/lake_shm.h (shm/PROTOCOL.md).
 *
 * What lake_shm.h leaves out and both sides need:
 *   - lake_region_size / lake_region_format: create a region (the kernel
 *     module creates /dev/lake's region; tests and tools create regions
 *     in ordinary memory);
 *   - lake_sq_submit_sp: a bounded submission for a producer that
 *     serialises its own writers (the kernel, under its lock). Unlike the
 *     lock-free lake_sq_submit it never reads sq_tail from the shared
 *     header and never loops, so a hostile consumer cannot make it spin;
 *   - lake_sq_consume / lake_sq_ready / lake_cq_post: the consumer side of
 *     the submission ring and the producer side of the completion ring
 *     (laked's part; used by the C test daemon and the host tests);
 *   - lake_ring_reset: put both rings back to their initial state (the
 *     kernel does this when laked detaches, with no other party mapped).
 *
 * Every function works on a struct lake_ring filled by lake_ring_init,
 * i.e. on geometry validated once and cached in private memory.
 */
#ifndef LAKE_RING_H
#define LAKE_RING_H

#include "lake_shm.h"

/* lake_page_up rounds v up to a multiple of LAKE_PAGE_SIZE. */
static inline lake_u64 lake_page_up(lake_u64 v)
{
	return (v + LAKE_PAGE_SIZE - 1) & ~(lake_u64)(LAKE_PAGE_SIZE - 1);
}

/* lake_region_size returns the size of a region with these sizes, or 0 if
 * they are outside the limits of PROTOCOL.md ("Layout"). */
static inline lake_u64 lake_region_size(lake_u32 sq, lake_u32 cq, lake_u64 arena, lake_u64 feat)
{
	if (!lake_is_pow2(sq) || sq < LAKE_MIN_ENTRIES || sq > LAKE_MAX_SQ_ENTRIES ||
	    !lake_is_pow2(cq) || cq < sq || cq > LAKE_MAX_CQ_ENTRIES ||
	    arena == 0 || arena % LAKE_PAGE_SIZE || arena > LAKE_MAX_ARENA_SIZE ||
	    feat % LAKE_PAGE_SIZE || feat > LAKE_MAX_FEATURES_SIZE)
		return 0;
	return LAKE_HEADER_SIZE + lake_page_up((lake_u64)sq * LAKE_SLOT_SIZE) +
	       lake_page_up((lake_u64)cq * LAKE_SLOT_SIZE) + arena + feat;
}

/* lake_region_format writes a fresh header and slot sequence words into
 * mem (len bytes, zero-filled by the caller, 64-byte aligned). Returns 0,
 * or -1 if the sizes are invalid or the region does not fit in len. */
static inline int lake_region_format(void *mem, lake_u64 len, lake_u32 sq, lake_u32 cq,
				     lake_u64 arena, lake_u64 feat, lake_u32 flags)
{
	struct lake_region_header *h = (struct lake_region_header *)mem;
	struct lake_sqe *sqes;
	lake_u64 size = lake_region_size(sq, cq, arena, feat);
	lake_u32 i;

	if (size == 0 || size > len)
		return -1;
	h->magic = LAKE_MAGIC;
	h->version_major = LAKE_VERSION_MAJOR;
	h->version_minor = LAKE_VERSION_MINOR;
	h->header_size = LAKE_HEADER_SIZE;
	h->flags = flags;
	h->region_size = size;
	h->sq_entries = sq;
	h->cq_entries = cq;
	h->slot_size = LAKE_SLOT_SIZE;
	h->client_id = 0;
	h->sqes_off = LAKE_HEADER_SIZE;
	h->cqes_off = h->sqes_off + lake_page_up((lake_u64)sq * LAKE_SLOT_SIZE);
	h->arena_off = h->cqes_off + lake_page_up((lake_u64)cq * LAKE_SLOT_SIZE);
	h->arena_size = arena;
	h->features_off = feat ? h->arena_off + arena : 0;
	h->features_size = feat;
	sqes = (struct lake_sqe *)((unsigned char *)mem + h->sqes_off);
	for (i = 0; i < sq; i++)
		__atomic_store_n(&sqes[i].seq, i, __ATOMIC_RELAXED);
	return 0;
}

/* lake_ring_reset puts both rings back to their initial state: counters
 * zero, submission slot i holding seq = i, completion slots zero. Only
 * when no other party can touch the region (the kernel, after laked
 * unmapped it). */
static inline void lake_ring_reset(struct lake_ring *r)
{
	struct lake_region_header *h = r->hdr;
	lake_u32 i;

	for (i = 0; i <= r->sq_mask; i++) {
		struct lake_sqe *s = &r->sqes[i];
		s->opcode = 0;
		s->flags = 0;
		s->pad = 0;
		s->tag = 0;
		__atomic_store_n(&s->seq, i, __ATOMIC_RELAXED);
	}
	for (i = 0; i <= r->cq_mask; i++) {
		struct lake_cqe zero = { 0 };
		r->cqes[i] = zero;
	}
	__atomic_store_n(&h->sq_tail, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&h->sq_head, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&h->sq_need_wakeup, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&h->cq_tail, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&h->cq_head, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&h->cq_waiters, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&h->daemon_state, LAKE_DAEMON_DETACHED, __ATOMIC_RELAXED);
}

/* lake_sq_submit_sp publishes one submission at the producer's private
 * position *tail (one producer, or producers serialised by the caller).
 * Bounded: reads one shared word. Returns 0, or -1 if the slot is not
 * free (ring full, or the consumer corrupted the slot). sqe->seq is
 * ignored. sq_tail in the header is a published copy of *tail. */
static inline int lake_sq_submit_sp(struct lake_ring *r, lake_u32 *tail, const struct lake_sqe *sqe)
{
	lake_u32 t = *tail;
	struct lake_sqe *s = &r->sqes[t & r->sq_mask];
	int i;

	if (__atomic_load_n(&s->seq, __ATOMIC_ACQUIRE) != t)
		return -1;
	s->opcode = sqe->opcode;
	s->flags = sqe->flags;
	s->pad = 0;
	s->tag = sqe->tag;
	for (i = 0; i < LAKE_NUM_ARGS; i++)
		s->args[i] = sqe->args[i];
	*tail = t + 1;
	__atomic_store_n(&r->hdr->sq_tail, t + 1, __ATOMIC_SEQ_CST);
	/* publish; seq-cst so that the doorbell check after it cannot be
	 * reordered before it (PROTOCOL.md, "Doorbells") */
	__atomic_store_n(&s->seq, t + 1, __ATOMIC_SEQ_CST);
	return 0;
}

/* lake_sq_ready reports whether the slot at the published sq_head holds a
 * submission (the /dev/lake poll condition). */
static inline int lake_sq_ready(struct lake_ring *r)
{
	lake_u32 h = __atomic_load_n(&r->hdr->sq_head, __ATOMIC_ACQUIRE);
	return __atomic_load_n(&r->sqes[h & r->sq_mask].seq, __ATOMIC_ACQUIRE) == h + 1;
}

/* lake_sq_consume copies the submission at the consumer's private position
 * *head into out and frees its slot. Returns 1, or 0 if none is ready.
 * The caller publishes *head with lake_sq_publish_head after a batch. */
static inline int lake_sq_consume(struct lake_ring *r, lake_u32 *head, struct lake_sqe *out)
{
	lake_u32 h = *head;
	struct lake_sqe *s = &r->sqes[h & r->sq_mask];

	if (__atomic_load_n(&s->seq, __ATOMIC_ACQUIRE) != h + 1)
		return 0;
	*out = *s;
	__atomic_store_n(&s->seq, h + r->sq_mask + 1, __ATOMIC_RELEASE);
	*head = h + 1;
	return 1;
}

/* lake_sq_publish_head stores the consumer position for producers' tools,
 * the kernel's poll and a restarted consumer. */
static inline void lake_sq_publish_head(struct lake_ring *r, lake_u32 head)
{
	__atomic_store_n(&r->hdr->sq_head, head, __ATOMIC_SEQ_CST);
}

/* lake_cq_post writes one completion at the producer's private position
 * *tail and publishes it. Returns 0, or -1 if the ring has no space (or
 * the consumer corrupted cq_head, which reads as no space). */
static inline int lake_cq_post(struct lake_ring *r, lake_u32 *tail, const struct lake_cqe *cqe)
{
	lake_u32 t = *tail;
	lake_u32 used = t - __atomic_load_n(&r->hdr->cq_head, __ATOMIC_ACQUIRE);

	if (used >= r->cq_mask + 1)
		return -1;
	r->cqes[t & r->cq_mask] = *cqe;
	r->cqes[t & r->cq_mask].pad = 0;
	*tail = t + 1;
	__atomic_store_n(&r->hdr->cq_tail, t + 1, __ATOMIC_SEQ_CST);
	return 0;
}

#endif /* LAKE_RING_H */
