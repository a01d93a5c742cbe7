/* SPDX-License-Identifier: (GPL-2.0 OR MIT) */
/*
 * lake_features.h - C view of the LAKE feature registry (Go package
 * github.com/lakeos/lake/features). The layout, the key-slot protocol and
 * the record seqlock are specified in shm/PROTOCOL.md, "Feature registry area"; this header
 * declares the same layout (checked by _Static_assert here and by
 * features/layout_c_test.go against the Go constants) and lets a C
 * producer (the kernel module, a userspace client) record samples.
 *
 * Layout is little-endian (x86-64). The registry memory is shared with
 * other processes and must be treated as untrusted: lake_feat_attach() and
 * lake_feat_schema_get() validate everything and copy the schema geometry
 * into a private struct lake_feat_sdesc; all later offsets derive from that
 * copy, so a corrupt region cannot make the producer access memory outside
 * it.
 *
 * Usage:
 *	struct lake_feat_view v;
 *	struct lake_feat_sdesc s;
 *	if (lake_feat_attach(&v, mem, len) == 0 &&
 *	    lake_feat_schema_find(&v, "linnos.arrival", &s) == 0)
 *		rc = lake_feat_record(&v, &s, dev, payload, s.record_size);
 *
 * Return values are 0 or a negative errno: -EINVAL bad argument or width,
 * -EPROTO corrupt region, -ENOENT unknown schema, -ENOSPC key capacity
 * exhausted, -EBUSY a key slot stuck mid-insertion, -EAGAIN sample lost
 * because the ring record was still being written by an older writer
 * (counted in the slot's lost counter; writers never wait), -EPERM the key
 * is owned by a single writer (Go's Registry.Own) and only it records.
 */
#ifndef LAKE_FEATURES_H
#define LAKE_FEATURES_H

#ifdef __KERNEL__
#include <linux/types.h>
#include <linux/errno.h>
#include <linux/stddef.h>
#include <linux/string.h>
#include <asm/processor.h>
#define LAKE_FEAT_RELAX() cpu_relax()
/* Claims made in the kernel carry pid 0: never cleared as abandoned. */
#define LAKE_FEAT_PID() 0u
#else
#include <stdint.h>
#include <stddef.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>
#define LAKE_FEAT_PID() ((uint32_t)getpid())
#if defined(__x86_64__) || defined(__i386__)
#define LAKE_FEAT_RELAX() __builtin_ia32_pause()
#else
#define LAKE_FEAT_RELAX() do { } while (0)
#endif
#endif

#ifndef EPROTO
#define EPROTO 71
#endif

#define LAKE_FEAT_MAGIC 0x54414546454B414CULL /* "LAKEFEAT" little-endian */
#define LAKE_FEAT_VERSION 2u
#define LAKE_FEAT_HEADER_SIZE 128u
#define LAKE_FEAT_MAX_FIELDS 16u
#define LAKE_FEAT_NAME_LEN 32u
#define LAKE_FEAT_FIELD_NAME_LEN 24u
#define LAKE_FEAT_SCHEMA_ENTRY_SIZE 640u
#define LAKE_FEAT_SLOT_SIZE 64u
#define LAKE_FEAT_REC_HDR_SIZE 16u

/* Upper limits a valid header respects (same as the Go package). */
#define LAKE_FEAT_LIMIT_SCHEMAS 4096u
#define LAKE_FEAT_LIMIT_KEYS (1u << 24)
#define LAKE_FEAT_LIMIT_HISTORY (1u << 20)
#define LAKE_FEAT_LIMIT_RECORD (1u << 16)

/* Field types. */
enum lake_feat_type {
	LAKE_FEAT_U8 = 1,
	LAKE_FEAT_U16 = 2,
	LAKE_FEAT_U32 = 3,
	LAKE_FEAT_U64 = 4,
	LAKE_FEAT_I32 = 5,
	LAKE_FEAT_I64 = 6,
	LAKE_FEAT_F32 = 7,
	LAKE_FEAT_F64 = 8,
};

/* Key slot states: low 3 bits of lake_feat_slot.state; generation above. */
enum lake_feat_slot_state {
	LAKE_FEAT_ST_EMPTY = 0,
	LAKE_FEAT_ST_BUSY = 1,
	LAKE_FEAT_ST_CLAIMED = 2,
	LAKE_FEAT_ST_LIVE = 3,
	LAKE_FEAT_ST_DEAD = 4,
	LAKE_FEAT_ST_OWNED = 5, /* live, written by its owner only (Go: Registry.Own) */
};
#define LAKE_FEAT_ST_MASK 7ull
#define LAKE_FEAT_GEN_SHIFT 3

#define LAKE_FEAT_SCHEMA_READY 1u

struct lake_feat_header {
	uint64_t magic;
	uint32_t version;
	uint32_t header_size;
	uint64_t total_size;
	uint32_t max_schemas;
	uint32_t max_fields;
	uint32_t max_keys;
	uint32_t max_history;
	uint32_t max_record;
	uint32_t schema_entry_size;
	uint64_t schema_table_off;
	uint64_t arena_off;
	uint64_t arena_size;
	uint64_t arena_used;   /* atomic */
	uint32_t schema_count; /* atomic */
	uint32_t reg_lock;     /* atomic: 0 or holder pid */
	uint8_t reserved[40];
};

struct lake_feat_field {
	char name[LAKE_FEAT_FIELD_NAME_LEN];
	uint8_t type;
	uint8_t reserved;
	uint16_t count;
	uint32_t offset;
};

struct lake_feat_schema {
	uint32_t state; /* atomic: 0 free, 1 ready */
	uint32_t id;
	char name[LAKE_FEAT_NAME_LEN];
	uint32_t nfields;
	uint32_t history;
	uint32_t ring_len;
	uint32_t record_size;
	uint32_t record_stride;
	uint32_t key_capacity;
	uint32_t table_size;
	uint32_t live_keys; /* atomic */
	uint64_t key_table_off;
	uint64_t ring_off;
	uint8_t reserved[40];
	struct lake_feat_field fields[LAKE_FEAT_MAX_FIELDS];
};

struct lake_feat_slot {
	uint64_t state;     /* atomic: generation << 3 | state */
	uint64_t key;       /* atomic */
	uint64_t write_idx; /* atomic fetch-add */
	uint64_t base_idx;  /* atomic */
	uint64_t lost;      /* atomic */
	uint64_t owner;     /* atomic: pid << 32 | low 32 bits of the generation of the claimer (busy, claimed) or owner (owned) */
	uint64_t own_base;  /* atomic: first record index of the ownership while owned */
	uint64_t reserved[1];
};

struct lake_feat_rec {
	uint64_t seq;  /* 0 never, 2n+1 index n in progress, 2n+2 index n complete */
	uint64_t lost; /* n+1 of the highest index n whose writer gave up here */
	uint64_t payload[];
};

_Static_assert(sizeof(struct lake_feat_header) == LAKE_FEAT_HEADER_SIZE, "header size");
_Static_assert(offsetof(struct lake_feat_header, total_size) == 16, "total_size");
_Static_assert(offsetof(struct lake_feat_header, schema_table_off) == 48, "schema_table_off");
_Static_assert(offsetof(struct lake_feat_header, arena_used) == 72, "arena_used");
_Static_assert(offsetof(struct lake_feat_header, reg_lock) == 84, "reg_lock");
_Static_assert(sizeof(struct lake_feat_field) == 32, "field size");
_Static_assert(offsetof(struct lake_feat_field, offset) == 28, "field offset");
_Static_assert(sizeof(struct lake_feat_schema) == LAKE_FEAT_SCHEMA_ENTRY_SIZE, "schema size");
_Static_assert(offsetof(struct lake_feat_schema, live_keys) == 68, "live_keys");
_Static_assert(offsetof(struct lake_feat_schema, ring_off) == 80, "ring_off");
_Static_assert(offsetof(struct lake_feat_schema, fields) == 128, "fields");
_Static_assert(sizeof(struct lake_feat_slot) == LAKE_FEAT_SLOT_SIZE, "slot size");
_Static_assert(offsetof(struct lake_feat_slot, lost) == 32, "slot lost");
_Static_assert(sizeof(struct lake_feat_rec) == LAKE_FEAT_REC_HDR_SIZE, "record header");

/* An attached registry. */
struct lake_feat_view {
	unsigned char *base;
	uint64_t size; /* validated total_size */
	uint32_t max_schemas, max_keys, max_history, max_record;
	uint64_t table_off, arena_off, arena_size;
};

/* Validated private copy of a schema's geometry. */
struct lake_feat_sdesc {
	uint32_t id;
	uint32_t nfields;
	uint32_t history;
	uint32_t record_size;
	uint64_t ring_len;
	uint64_t stride;
	uint64_t table_size;
	uint32_t key_capacity;
	uint64_t entry_off;
	uint64_t key_table_off;
	uint64_t ring_off;
	struct lake_feat_field fields[LAKE_FEAT_MAX_FIELDS];
};

/* Spin budget while a key slot is mid-insertion (three stores by a live
 * inserter) before giving up with -EBUSY. */
#define LAKE_FEAT_SPIN_LIMIT (1u << 16)
/* Retries of an insertion that finds the schema full while other claims
 * are in flight (see features/keys.go). */
#define LAKE_FEAT_CAPACITY_RETRIES (1u << 16)

static inline uint64_t lake_feat_hash(uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdULL;
	k ^= k >> 33;
	k *= 0xc4ceb9fe1a85ec53ULL;
	k ^= k >> 33;
	return k;
}

static inline unsigned lake_feat_type_size(uint8_t t)
{
	switch (t) {
	case LAKE_FEAT_U8: return 1;
	case LAKE_FEAT_U16: return 2;
	case LAKE_FEAT_U32: case LAKE_FEAT_I32: case LAKE_FEAT_F32: return 4;
	case LAKE_FEAT_U64: case LAKE_FEAT_I64: case LAKE_FEAT_F64: return 8;
	}
	return 0;
}

static inline uint64_t lake_feat__pow2(uint64_t v)
{
	uint64_t p = 1;
	while (p < v)
		p <<= 1;
	return p;
}

static inline int lake_feat__name_ok(const char *n, unsigned max)
{
	unsigned i, len = 0;
	while (len < max && n[len])
		len++;
	if (len == 0)
		return 0;
	for (i = 0; i < len; i++)
		if ((unsigned char)n[i] < 0x21 || (unsigned char)n[i] > 0x7e)
			return 0;
	return 1;
}

/* lake_feat_attach validates the header of the registry at mem (len bytes,
 * 8-byte aligned) and fills v. */
static inline int lake_feat_attach(struct lake_feat_view *v, void *mem, uint64_t len)
{
	const struct lake_feat_header *h = (const struct lake_feat_header *)mem;
	uint64_t total, table_end;

	if (!mem || ((uintptr_t)mem & 7) || len < LAKE_FEAT_HEADER_SIZE)
		return -EINVAL;
	if (h->magic != LAKE_FEAT_MAGIC || h->version != LAKE_FEAT_VERSION ||
	    h->header_size != LAKE_FEAT_HEADER_SIZE || h->max_fields != LAKE_FEAT_MAX_FIELDS ||
	    h->schema_entry_size != LAKE_FEAT_SCHEMA_ENTRY_SIZE)
		return -EPROTO;
	total = h->total_size;
	if (total < LAKE_FEAT_HEADER_SIZE || total > len)
		return -EPROTO;
	v->base = (unsigned char *)mem;
	v->size = total;
	v->max_schemas = h->max_schemas;
	v->max_keys = h->max_keys;
	v->max_history = h->max_history;
	v->max_record = h->max_record;
	if (v->max_schemas < 1 || v->max_schemas > LAKE_FEAT_LIMIT_SCHEMAS ||
	    v->max_keys < 1 || v->max_keys > LAKE_FEAT_LIMIT_KEYS ||
	    v->max_history < 1 || v->max_history > LAKE_FEAT_LIMIT_HISTORY ||
	    v->max_record < 1 || v->max_record > LAKE_FEAT_LIMIT_RECORD)
		return -EPROTO;
	v->table_off = h->schema_table_off;
	table_end = v->table_off + (uint64_t)v->max_schemas * LAKE_FEAT_SCHEMA_ENTRY_SIZE;
	if (v->table_off < LAKE_FEAT_HEADER_SIZE || (v->table_off & 63) || v->table_off > total || table_end > total)
		return -EPROTO;
	v->arena_off = h->arena_off;
	v->arena_size = h->arena_size;
	if (v->arena_off < table_end || (v->arena_off & 63) || v->arena_off > total ||
	    v->arena_size > total - v->arena_off)
		return -EPROTO;
	return 0;
}

/* lake_feat_schema_get validates schema entry id and copies its geometry
 * into s. Only ready entries are returned (-ENOENT otherwise). */
static inline int lake_feat_schema_get(const struct lake_feat_view *v, uint32_t id, struct lake_feat_sdesc *s)
{
	const struct lake_feat_schema *e;
	uint64_t arena_end = v->arena_off + v->arena_size, ring_bytes, max_ring, max_table;
	uint32_t i;

	if (id >= v->max_schemas)
		return -ENOENT;
	s->entry_off = v->table_off + (uint64_t)id * LAKE_FEAT_SCHEMA_ENTRY_SIZE;
	e = (const struct lake_feat_schema *)(v->base + s->entry_off);
	if (__atomic_load_n(&e->state, __ATOMIC_ACQUIRE) != LAKE_FEAT_SCHEMA_READY)
		return -ENOENT;
	__builtin_memcpy(s->fields, e->fields, sizeof(s->fields));
	s->id = e->id;
	s->nfields = e->nfields;
	s->history = e->history;
	s->record_size = e->record_size;
	s->ring_len = e->ring_len;
	s->stride = e->record_stride;
	s->table_size = e->table_size;
	s->key_capacity = e->key_capacity;
	s->key_table_off = e->key_table_off;
	s->ring_off = e->ring_off;
	if (s->id != id || !lake_feat__name_ok(e->name, LAKE_FEAT_NAME_LEN))
		return -EPROTO;
	if (s->record_size == 0 || (s->record_size & 7) || s->record_size > v->max_record ||
	    s->stride != LAKE_FEAT_REC_HDR_SIZE + (uint64_t)s->record_size)
		return -EPROTO;
	if (s->nfields < 1 || s->nfields > LAKE_FEAT_MAX_FIELDS)
		return -EPROTO;
	for (i = 0; i < s->nfields; i++) {
		const struct lake_feat_field *f = &s->fields[i];
		unsigned sz = lake_feat_type_size(f->type);
		if (!lake_feat__name_ok(f->name, LAKE_FEAT_FIELD_NAME_LEN) || sz == 0 || f->count < 1 ||
		    f->offset % sz || (uint64_t)f->offset + (uint64_t)sz * f->count > s->record_size)
			return -EPROTO;
	}
	max_ring = lake_feat__pow2(v->max_history);
	max_table = 2 * lake_feat__pow2(v->max_keys);
	if (s->history < 1 || s->history > v->max_history || s->ring_len < s->history ||
	    (s->ring_len & (s->ring_len - 1)) || s->ring_len > max_ring)
		return -EPROTO;
	if (s->key_capacity < 1 || s->key_capacity > v->max_keys || s->table_size < s->key_capacity ||
	    (s->table_size & (s->table_size - 1)) || s->table_size > max_table)
		return -EPROTO;
	if ((s->key_table_off & 63) || s->key_table_off < v->arena_off || s->key_table_off > arena_end ||
	    s->table_size * LAKE_FEAT_SLOT_SIZE > arena_end - s->key_table_off)
		return -EPROTO;
	ring_bytes = s->table_size * s->ring_len * s->stride;
	if ((s->ring_off & 7) || s->ring_off < v->arena_off || s->ring_off > arena_end ||
	    ring_bytes > arena_end - s->ring_off)
		return -EPROTO;
	return 0;
}

/* lake_feat_schema_find looks a ready schema up by name. */
static inline int lake_feat_schema_find(const struct lake_feat_view *v, const char *name, struct lake_feat_sdesc *s)
{
	const struct lake_feat_header *h = (const struct lake_feat_header *)v->base;
	uint32_t n = __atomic_load_n(&h->schema_count, __ATOMIC_ACQUIRE), i;

	if (n > v->max_schemas)
		n = v->max_schemas;
	for (i = 0; i < n; i++) {
		const struct lake_feat_schema *e = (const struct lake_feat_schema *)
			(v->base + v->table_off + (uint64_t)i * LAKE_FEAT_SCHEMA_ENTRY_SIZE);
		if (__builtin_strncmp(e->name, name, LAKE_FEAT_NAME_LEN) == 0)
			return lake_feat_schema_get(v, i, s);
	}
	return -ENOENT;
}

/* lake_feat_field_index returns the index of the named field or -1. */
static inline int lake_feat_field_index(const struct lake_feat_sdesc *s, const char *name)
{
	uint32_t i;
	for (i = 0; i < s->nfields; i++)
		if (__builtin_strncmp(s->fields[i].name, name, LAKE_FEAT_FIELD_NAME_LEN) == 0)
			return (int)i;
	return -1;
}

static inline struct lake_feat_slot *lake_feat__slot(const struct lake_feat_view *v, const struct lake_feat_sdesc *s, uint64_t p)
{
	return (struct lake_feat_slot *)(v->base + s->key_table_off + p * LAKE_FEAT_SLOT_SIZE);
}

/* Key table operations use sequentially consistent atomics, as Go's
 * sync/atomic does: the duplicate check after a claim relies on
 * store->load ordering (a later claimer always sees an earlier claim). */
#define LAKE_FEAT_SC __ATOMIC_SEQ_CST

/* lake_feat__lookup: see features/keys.go lookup(). Returns 1 found (p,
 * st), 0 not found (free/fp/fst: first empty or dead slot), <0 error. */
static inline int lake_feat__lookup(const struct lake_feat_view *v, const struct lake_feat_sdesc *s, uint64_t key,
				    uint64_t *p, uint64_t *st, int *free, uint64_t *fp, uint64_t *fst)
{
	uint64_t mask = s->table_size - 1, h = lake_feat_hash(key) & mask, i;
	unsigned spins = 0;

	*free = 0;
	for (i = 0; i < s->table_size; i++) {
		uint64_t q = (h + i) & mask;
		struct lake_feat_slot *sl = lake_feat__slot(v, s, q);
		uint64_t w = __atomic_load_n(&sl->state, LAKE_FEAT_SC);
		switch (w & LAKE_FEAT_ST_MASK) {
		case LAKE_FEAT_ST_EMPTY:
			if (!*free) {
				*free = 1;
				*fp = q;
				*fst = w;
			}
			return 0;
		case LAKE_FEAT_ST_LIVE:
		case LAKE_FEAT_ST_OWNED:
			if (__atomic_load_n(&sl->key, LAKE_FEAT_SC) == key) {
				*p = q;
				*st = w;
				return 1;
			}
			break;
		case LAKE_FEAT_ST_CLAIMED:
		case LAKE_FEAT_ST_BUSY:
			if ((w & LAKE_FEAT_ST_MASK) == LAKE_FEAT_ST_CLAIMED &&
			    __atomic_load_n(&sl->key, LAKE_FEAT_SC) != key)
				break;
			/* busy, or a claim of this key settling: wait, look again */
			if (++spins > LAKE_FEAT_SPIN_LIMIT)
				return -EBUSY;
			LAKE_FEAT_RELAX();
			i--;
			break;
		case LAKE_FEAT_ST_DEAD:
			if (!*free) {
				*free = 1;
				*fp = q;
				*fst = w;
			}
			break;
		default:
			break;
		}
	}
	return 0;
}

/* lake_feat__resolve: see features/keys.go resolveClaim(). */
static inline int lake_feat__resolve(const struct lake_feat_view *v, const struct lake_feat_sdesc *s, uint64_t key, uint64_t mine)
{
	uint64_t mask = s->table_size - 1, h = lake_feat_hash(key) & mask, my_dist = (mine - h) & mask, i;
	unsigned spins = 0;

	for (i = 0; i < s->table_size; i++) {
		uint64_t q = (h + i) & mask, w, t;
		struct lake_feat_slot *sl;
		if (q == mine)
			continue;
		sl = lake_feat__slot(v, s, q);
		w = __atomic_load_n(&sl->state, LAKE_FEAT_SC);
		t = w & LAKE_FEAT_ST_MASK;
		if (t == LAKE_FEAT_ST_EMPTY)
			return 1;
		if (t == LAKE_FEAT_ST_BUSY) {
			if (++spins > LAKE_FEAT_SPIN_LIMIT)
				return 0;
			LAKE_FEAT_RELAX();
			i--;
			continue;
		}
		if (t != LAKE_FEAT_ST_LIVE && t != LAKE_FEAT_ST_OWNED && t != LAKE_FEAT_ST_CLAIMED)
			continue;
		if (__atomic_load_n(&sl->key, LAKE_FEAT_SC) != key)
			continue;
		if (__atomic_load_n(&sl->state, LAKE_FEAT_SC) != w) {
			if (++spins > LAKE_FEAT_SPIN_LIMIT)
				return 0;
			i--;
			continue;
		}
		if (t != LAKE_FEAT_ST_CLAIMED || i < my_dist)
			return 0;
		{
			uint64_t exp = w;
			if (!__atomic_compare_exchange_n(&sl->state, &exp, (w & ~LAKE_FEAT_ST_MASK) | LAKE_FEAT_ST_DEAD,
							 0, LAKE_FEAT_SC, LAKE_FEAT_SC)) {
				if (++spins > LAKE_FEAT_SPIN_LIMIT)
					return 0;
				i--;
			}
		}
	}
	return 1;
}

/* lake_feat__claims_in_flight: is any slot of s being claimed? */
static inline int lake_feat__claims_in_flight(const struct lake_feat_view *v, const struct lake_feat_sdesc *s)
{
	uint64_t p;
	for (p = 0; p < s->table_size; p++) {
		uint64_t t = __atomic_load_n(&lake_feat__slot(v, s, p)->state, LAKE_FEAT_SC) & LAKE_FEAT_ST_MASK;
		if (t == LAKE_FEAT_ST_BUSY || t == LAKE_FEAT_ST_CLAIMED)
			return 1;
	}
	return 0;
}

/* lake_feat__find_or_insert: see features/keys.go findOrInsert(). */
static inline int lake_feat__find_or_insert(const struct lake_feat_view *v, const struct lake_feat_sdesc *s,
					    uint64_t key, uint64_t *pp, uint64_t *genp)
{
	uint32_t *live = (uint32_t *)(v->base + s->entry_off + offsetof(struct lake_feat_schema, live_keys));
	unsigned attempt, full_tries = 0;

	for (attempt = 0; attempt <= LAKE_FEAT_SPIN_LIMIT; attempt++) {
		uint64_t p = 0, st = 0, fp = 0, fst = 0, gen, exp, busy, claimed;
		struct lake_feat_slot *sl;
		int free = 0, rc = lake_feat__lookup(v, s, key, &p, &st, &free, &fp, &fst);

		if (rc < 0)
			return rc;
		if (rc == 1) {
			*pp = p;
			*genp = st >> LAKE_FEAT_GEN_SHIFT;
			return 0;
		}
		if (!free)
			return -ENOSPC;
		gen = (fst >> LAKE_FEAT_GEN_SHIFT) + 1;
		sl = lake_feat__slot(v, s, fp);
		exp = fst;
		busy = gen << LAKE_FEAT_GEN_SHIFT | LAKE_FEAT_ST_BUSY;
		if (!__atomic_compare_exchange_n(&sl->state, &exp, busy, 0, LAKE_FEAT_SC, LAKE_FEAT_SC))
			continue;
		/* The claimer's token: lets a Go reader clear the claim if this
		 * process dies before finishing it. */
		__atomic_store_n(&sl->owner, (uint64_t)LAKE_FEAT_PID() << 32 | (gen & 0xffffffffull), LAKE_FEAT_SC);
		__atomic_store_n(&sl->key, key, LAKE_FEAT_SC);
		__atomic_store_n(&sl->base_idx, __atomic_load_n(&sl->write_idx, LAKE_FEAT_SC), LAKE_FEAT_SC);
		claimed = gen << LAKE_FEAT_GEN_SHIFT | LAKE_FEAT_ST_CLAIMED;
		exp = busy;
		if (!__atomic_compare_exchange_n(&sl->state, &exp, claimed, 0, LAKE_FEAT_SC, LAKE_FEAT_SC))
			continue; /* cleared as abandoned: start again */
		if (!lake_feat__resolve(v, s, key, fp)) {
			exp = claimed;
			__atomic_compare_exchange_n(&sl->state, &exp, gen << LAKE_FEAT_GEN_SHIFT | LAKE_FEAT_ST_DEAD,
						    0, LAKE_FEAT_SC, LAKE_FEAT_SC);
			continue;
		}
		/* Only a claim that won the duplicate check reserves capacity. */
		if (__atomic_add_fetch(live, 1, LAKE_FEAT_SC) > s->key_capacity) {
			__atomic_sub_fetch(live, 1, LAKE_FEAT_SC);
			exp = claimed;
			__atomic_compare_exchange_n(&sl->state, &exp, gen << LAKE_FEAT_GEN_SHIFT | LAKE_FEAT_ST_DEAD,
						    0, LAKE_FEAT_SC, LAKE_FEAT_SC);
			/* Claims in flight may release a reservation a moment later:
			 * look again (bounded) before calling the schema full. */
			if (lake_feat__claims_in_flight(v, s) && ++full_tries <= LAKE_FEAT_CAPACITY_RETRIES) {
				LAKE_FEAT_RELAX();
				continue;
			}
			return -ENOSPC;
		}
		exp = claimed;
		if (__atomic_compare_exchange_n(&sl->state, &exp, gen << LAKE_FEAT_GEN_SHIFT | LAKE_FEAT_ST_LIVE,
						0, LAKE_FEAT_SC, LAKE_FEAT_SC)) {
			*pp = fp;
			*genp = gen;
			return 0;
		}
		__atomic_sub_fetch(live, 1, LAKE_FEAT_SC); /* killed by a nearer claim */
	}
	return -EBUSY;
}

static inline void lake_feat__mark_hole(struct lake_feat_rec *rec, uint64_t n)
{
	uint64_t m = __atomic_load_n(&rec->lost, LAKE_FEAT_SC);
	while (m < n + 1 && !__atomic_compare_exchange_n(&rec->lost, &m, n + 1, 0, LAKE_FEAT_SC, LAKE_FEAT_SC))
		;
}

/* lake_feat__publish stores the payload of record index n (whose sequence
 * is already 2n+1) and then marks it complete (2n+2, release). */
static inline void lake_feat__publish(struct lake_feat_rec *rec, uint64_t n, const void *payload, uint32_t size)
{
	uint32_t i;

	/* Order the "in progress" sequence before the payload stores. */
	__atomic_thread_fence(__ATOMIC_RELEASE);
	for (i = 0; i < size / 8; i++) {
		uint64_t w;
		__builtin_memcpy(&w, (const unsigned char *)payload + 8 * i, 8);
		__atomic_store_n(&rec->payload[i], w, __ATOMIC_RELAXED);
	}
	__atomic_store_n(&rec->seq, 2 * n + 2, __ATOMIC_RELEASE);
}

/* lake_feat_record appends one sample (size == s->record_size bytes) for
 * key. Never waits on another writer. See features/record.go. */
static inline int lake_feat_record(const struct lake_feat_view *v, const struct lake_feat_sdesc *s,
				   uint64_t key, const void *payload, uint32_t size)
{
	unsigned try;

	if (!payload || size != s->record_size)
		return -EINVAL;
	for (try = 0; try <= LAKE_FEAT_SPIN_LIMIT; try++) {
		struct lake_feat_slot *sl;
		struct lake_feat_rec *rec;
		uint64_t p, gen, n, old;
		int rc = lake_feat__find_or_insert(v, s, key, &p, &gen);

		if (rc)
			return rc;
		sl = lake_feat__slot(v, s, p);
		/* An owned key takes records from its owner only. */
		if (__atomic_load_n(&sl->state, LAKE_FEAT_SC) == (gen << LAKE_FEAT_GEN_SHIFT | LAKE_FEAT_ST_OWNED))
			return -EPERM;
		n = __atomic_fetch_add(&sl->write_idx, 1, LAKE_FEAT_SC);
		rec = (struct lake_feat_rec *)(v->base + s->ring_off +
					       (p * s->ring_len + (n & (s->ring_len - 1))) * s->stride);
		/* n belongs to generation gen only if the slot is still live in it. */
		if (__atomic_load_n(&sl->state, LAKE_FEAT_SC) != (gen << LAKE_FEAT_GEN_SHIFT | LAKE_FEAT_ST_LIVE)) {
			lake_feat__mark_hole(rec, n);
			continue; /* the key was dropped: look it up again */
		}
		old = __atomic_load_n(&rec->seq, __ATOMIC_ACQUIRE);
		for (;;) {
			if ((old & 1) || old >= 2 * n + 1) {
				lake_feat__mark_hole(rec, n);
				__atomic_fetch_add(&sl->lost, 1, LAKE_FEAT_SC);
				return -EAGAIN;
			}
			if (__atomic_compare_exchange_n(&rec->seq, &old, 2 * n + 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
				break;
		}
		lake_feat__publish(rec, n, payload, size);
		return 0;
	}
	return -EBUSY;
}

/*
 * Owned keys (shm/PROTOCOL.md, "Owned keys"; Go: Registry.Own, Writer).
 * A producer that is a key's only writer owns it and records with plain
 * stores once every ring record carries a sequence of its own. A struct
 * lake_feat_owner is used by one thread at a time.
 */
struct lake_feat_owner {
	const struct lake_feat_view *v;
	const struct lake_feat_sdesc *s;
	struct lake_feat_slot *slot;
	uint64_t p;         /* slot index */
	uint64_t state;     /* the owned state word; 0 once closed */
	uint64_t base;      /* first record index of this ownership */
	uint64_t next;      /* next record index (the owner's own count) */
	uint64_t fast_from; /* from this index on every ring record is the owner's */
};

/* lake_feat_own makes the caller the only writer of key (inserting it if
 * needed) and fills o. pid goes into the owner token: the caller's pid in
 * userspace (a Go process may take the key over once that pid is gone),
 * 0 in the kernel (never taken over). Returns 0, -EPERM if the key is
 * already owned, or an error of the key lookup. */
static inline int lake_feat_own(const struct lake_feat_view *v, const struct lake_feat_sdesc *s, uint64_t key,
				uint32_t pid, struct lake_feat_owner *o)
{
	unsigned try;

	for (try = 0; try <= LAKE_FEAT_SPIN_LIMIT; try++) {
		uint64_t p, gen, st, owned;
		struct lake_feat_slot *sl;
		int rc = lake_feat__find_or_insert(v, s, key, &p, &gen);

		if (rc)
			return rc;
		sl = lake_feat__slot(v, s, p);
		st = __atomic_load_n(&sl->state, LAKE_FEAT_SC);
		if (st == (gen << LAKE_FEAT_GEN_SHIFT | LAKE_FEAT_ST_OWNED))
			return -EPERM;
		if (st != (gen << LAKE_FEAT_GEN_SHIFT | LAKE_FEAT_ST_LIVE))
			continue; /* dropped or reused meanwhile */
		owned = (gen + 1) << LAKE_FEAT_GEN_SHIFT | LAKE_FEAT_ST_OWNED;
		if (!__atomic_compare_exchange_n(&sl->state, &st, owned, 0, LAKE_FEAT_SC, LAKE_FEAT_SC))
			continue;
		o->v = v;
		o->s = s;
		o->slot = sl;
		o->p = p;
		o->state = owned;
		o->base = __atomic_load_n(&sl->write_idx, LAKE_FEAT_SC);
		o->next = o->base;
		o->fast_from = o->base + s->ring_len;
		__atomic_store_n(&sl->own_base, o->base, LAKE_FEAT_SC);
		__atomic_store_n(&sl->owner, (uint64_t)pid << 32 | ((gen + 1) & 0xffffffffull), LAKE_FEAT_SC);
		return 0;
	}
	return -EBUSY;
}

/* lake_feat_owner_record appends one sample (size == record_size bytes) to
 * the owned key. Returns 0, -EINVAL (bad size), -EPERM (closed, or the
 * ownership was taken away), or -EAGAIN (lost: a writer from before the
 * ownership still held the ring record; counted in the slot's lost). */
static inline int lake_feat_owner_record(struct lake_feat_owner *o, const void *payload, uint32_t size)
{
	const struct lake_feat_sdesc *s = o->s;
	struct lake_feat_rec *rec;
	uint64_t n = o->next, old;

	if (!payload || size != s->record_size)
		return -EINVAL;
	if (!o->state || __atomic_load_n(&o->slot->state, __ATOMIC_ACQUIRE) != o->state)
		return -EPERM;
	rec = (struct lake_feat_rec *)(o->v->base + s->ring_off + (o->p * s->ring_len + (n & (s->ring_len - 1))) * s->stride);
	o->next = n + 1;
	old = __atomic_load_n(&rec->seq, __ATOMIC_ACQUIRE);
	if (n < o->fast_from && !((old & 1) == 0 && old >= 2 * o->base + 2 && old < 2 * n + 1)) {
		/* Not this ownership's record yet: claim it as shared writers do. */
		if ((old & 1) || old >= 2 * n + 1 ||
		    !__atomic_compare_exchange_n(&rec->seq, &old, 2 * n + 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
			lake_feat__mark_hole(rec, n);
			__atomic_fetch_add(&o->slot->lost, 1, LAKE_FEAT_SC);
			__atomic_store_n(&o->slot->write_idx, n + 1, __ATOMIC_RELEASE);
			if (o->fast_from < n + s->ring_len + 1)
				o->fast_from = n + s->ring_len + 1;
			return -EAGAIN;
		}
	} else {
		/* Only this owner touches the record: a plain (relaxed) store. */
		__atomic_store_n(&rec->seq, 2 * n + 1, __ATOMIC_RELAXED);
	}
	lake_feat__publish(rec, n, payload, size);
	__atomic_store_n(&o->slot->write_idx, n + 1, __ATOMIC_RELEASE);
	return 0;
}

/* lake_feat_owner_close gives the key back to shared writers (its history
 * stays). Returns 0 or -EPERM if the ownership had been taken away. */
static inline int lake_feat_owner_close(struct lake_feat_owner *o)
{
	uint64_t st = o->state;

	if (!st)
		return 0;
	o->state = 0;
	if (!__atomic_compare_exchange_n(&o->slot->state, &st,
					 ((st >> LAKE_FEAT_GEN_SHIFT) + 1) << LAKE_FEAT_GEN_SHIFT | LAKE_FEAT_ST_LIVE, 0,
					 LAKE_FEAT_SC, LAKE_FEAT_SC))
		return -EPERM;
	return 0;
}

#endif /* LAKE_FEATURES_H */
