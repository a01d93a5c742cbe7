/* SPDX-License-Identifier: (GPL-2.0 OR MIT) */
/*
 * lake_feat_create.h - create a feature registry and register schemas from
 * C, with exactly the layout of Go's features.Create and
 * features.Registry.Register (shm/PROTOCOL.md, "Feature registry area", C view in
 * lakelib/include/lake_features.h). The kernel module uses it to format
 * the features area of /dev/lake's region at load and to register the
 * LinnOS schemas, so that kernel producers can record before any laked
 * runs; laked attaches with features.Attach and finds the schemas.
 * lakelib/c's host test checks the result with the Go package.
 *
 * Return values: 0 or a negative errno (-EINVAL bad argument, -ENOSPC no
 * room, -EEXIST name taken, -EBUSY registration lock held, -EPROTO the
 * area is corrupt).
 */
#ifndef LAKE_FEAT_CREATE_H
#define LAKE_FEAT_CREATE_H

#include "lake_features.h"

#ifndef EEXIST
#define EEXIST 17
#endif

/* the registration lock owner kernel code uses (no process has this pid) */
#define LAKE_FEAT_KERNEL_OWNER 0x7fffffffu

/* struct lake_feat_config mirrors features.Config (zero: Go's default). */
struct lake_feat_config {
	uint32_t max_schemas;
	uint32_t max_keys;
	uint32_t max_history;
	uint32_t max_record;
	uint64_t arena_bytes;
};

/* struct lake_feat_field_def is one field of a schema to register. */
struct lake_feat_field_def {
	const char *name;
	uint8_t type;   /* enum lake_feat_type */
	uint16_t count; /* 0 means 1 */
};

static inline uint64_t lake_feat__align(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

static inline void lake_feat__defaults(struct lake_feat_config *c)
{
	if (!c->max_schemas)
		c->max_schemas = 16;
	if (!c->max_keys)
		c->max_keys = 4096;
	if (!c->max_history)
		c->max_history = 1024;
	if (!c->max_record)
		c->max_record = 512;
	if (!c->arena_bytes)
		c->arena_bytes = 4u << 20;
}

/* lake_feat_size_for returns the bytes a registry with cfg needs (Go's
 * features.SizeFor), or 0 if cfg is outside the limits. */
static inline uint64_t lake_feat_size_for(struct lake_feat_config cfg)
{
	lake_feat__defaults(&cfg);
	if (cfg.max_schemas > LAKE_FEAT_LIMIT_SCHEMAS || cfg.max_keys > LAKE_FEAT_LIMIT_KEYS ||
	    cfg.max_history > LAKE_FEAT_LIMIT_HISTORY || cfg.max_record > LAKE_FEAT_LIMIT_RECORD ||
	    cfg.arena_bytes > (1ull << 30))
		return 0;
	return lake_feat__align(LAKE_FEAT_HEADER_SIZE + (uint64_t)cfg.max_schemas * LAKE_FEAT_SCHEMA_ENTRY_SIZE, 64) +
	       lake_feat__align(cfg.arena_bytes, 64);
}

/* lake_feat_create zeroes and formats a registry at mem (len bytes,
 * 8-byte aligned). Nobody else may use mem meanwhile. */
static inline int lake_feat_create(void *mem, uint64_t len, struct lake_feat_config cfg)
{
	struct lake_feat_header *h = (struct lake_feat_header *)mem;
	uint64_t need = lake_feat_size_for(cfg);

	lake_feat__defaults(&cfg);
	if (!mem || ((uintptr_t)mem & 7) || need == 0 || need > len)
		return -EINVAL;
	memset(mem, 0, need);
	h->magic = LAKE_FEAT_MAGIC;
	h->version = LAKE_FEAT_VERSION;
	h->header_size = LAKE_FEAT_HEADER_SIZE;
	h->total_size = need;
	h->max_schemas = cfg.max_schemas;
	h->max_fields = LAKE_FEAT_MAX_FIELDS;
	h->max_keys = cfg.max_keys;
	h->max_history = cfg.max_history;
	h->max_record = cfg.max_record;
	h->schema_entry_size = LAKE_FEAT_SCHEMA_ENTRY_SIZE;
	h->schema_table_off = LAKE_FEAT_HEADER_SIZE;
	h->arena_off = lake_feat__align(LAKE_FEAT_HEADER_SIZE + (uint64_t)cfg.max_schemas * LAKE_FEAT_SCHEMA_ENTRY_SIZE, 64);
	h->arena_size = lake_feat__align(cfg.arena_bytes, 64);
	return 0;
}

static inline unsigned lake_feat__strnlen(const char *s, unsigned max)
{
	unsigned n = 0;

	while (n < max && s[n])
		n++;
	return n;
}

/* lake_feat_register adds a schema to the registry attached as v (see
 * lake_feat_attach) and returns its id in *id, like Go's Register. owner
 * is written to the registration lock word while registering (a pid in
 * userspace; the kernel uses 0x7fffffff, which no process has). */
static inline int lake_feat_register(const struct lake_feat_view *v, const char *name,
				     const struct lake_feat_field_def *fields, unsigned nfields,
				     uint32_t history, uint32_t max_keys, uint32_t owner, uint32_t *id)
{
	struct lake_feat_header *h = (struct lake_feat_header *)v->base;
	struct lake_feat_schema *e;
	uint32_t offs[LAKE_FEAT_MAX_FIELDS], count, exp = 0, i, j;
	uint64_t off = 0, rec, ring_len, table, stride, table_bytes, need, used, at;
	unsigned nlen = lake_feat__strnlen(name, LAKE_FEAT_NAME_LEN + 1);
	int rc = 0;

	if (!lake_feat__name_ok(name, LAKE_FEAT_NAME_LEN) || nlen > LAKE_FEAT_NAME_LEN ||
	    nfields < 1 || nfields > LAKE_FEAT_MAX_FIELDS || !owner)
		return -EINVAL;
	for (i = 0; i < nfields; i++) {
		unsigned sz = lake_feat_type_size(fields[i].type), cnt = fields[i].count ? fields[i].count : 1;

		if (!fields[i].name || !lake_feat__name_ok(fields[i].name, LAKE_FEAT_FIELD_NAME_LEN) ||
		    lake_feat__strnlen(fields[i].name, LAKE_FEAT_FIELD_NAME_LEN + 1) > LAKE_FEAT_FIELD_NAME_LEN ||
		    sz == 0)
			return -EINVAL;
		for (j = 0; j < i; j++)
			if (__builtin_strncmp(fields[j].name, fields[i].name, LAKE_FEAT_FIELD_NAME_LEN) == 0)
				return -EINVAL;
		off = lake_feat__align(off, sz);
		offs[i] = (uint32_t)off;
		off += (uint64_t)sz * cnt;
		if (off > LAKE_FEAT_LIMIT_RECORD)
			return -ENOSPC;
	}
	rec = lake_feat__align(off, 8);
	if (rec > v->max_record || history < 1 || history > v->max_history || max_keys < 1 ||
	    max_keys > v->max_keys)
		return history < 1 || max_keys < 1 ? -EINVAL : -ENOSPC;
	ring_len = lake_feat__pow2(history);
	table = lake_feat__pow2(max_keys);
	stride = LAKE_FEAT_REC_HDR_SIZE + rec;
	table_bytes = table * LAKE_FEAT_SLOT_SIZE;
	need = lake_feat__align(table_bytes + table * ring_len * stride, 64);

	if (!__atomic_compare_exchange_n(&h->reg_lock, &exp, owner, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
		return -EBUSY;
	count = __atomic_load_n(&h->schema_count, __ATOMIC_SEQ_CST);
	if (count > v->max_schemas) {
		rc = -EPROTO;
		goto out;
	}
	for (i = 0; i < count; i++) {
		e = (struct lake_feat_schema *)(v->base + v->table_off + (uint64_t)i * LAKE_FEAT_SCHEMA_ENTRY_SIZE);
		if (__builtin_strncmp(e->name, name, LAKE_FEAT_NAME_LEN) == 0) {
			rc = -EEXIST;
			goto out;
		}
	}
	if (count == v->max_schemas) {
		rc = -ENOSPC;
		goto out;
	}
	used = __atomic_load_n(&h->arena_used, __ATOMIC_SEQ_CST);
	if (used > v->arena_size || need > v->arena_size - used) {
		rc = -ENOSPC;
		goto out;
	}
	at = v->arena_off + used;
	memset(v->base + at, 0, need);
	e = (struct lake_feat_schema *)(v->base + v->table_off + (uint64_t)count * LAKE_FEAT_SCHEMA_ENTRY_SIZE);
	memset((unsigned char *)e + 4, 0, LAKE_FEAT_SCHEMA_ENTRY_SIZE - 4);
	e->id = count;
	memcpy(e->name, name, nlen);
	e->nfields = nfields;
	e->history = history;
	e->ring_len = (uint32_t)ring_len;
	e->record_size = (uint32_t)rec;
	e->record_stride = (uint32_t)stride;
	e->key_capacity = max_keys;
	e->table_size = (uint32_t)table;
	e->key_table_off = at;
	e->ring_off = at + table_bytes;
	for (i = 0; i < nfields; i++) {
		struct lake_feat_field *f = &e->fields[i];

		memcpy(f->name, fields[i].name, lake_feat__strnlen(fields[i].name, LAKE_FEAT_FIELD_NAME_LEN));
		f->type = fields[i].type;
		f->count = fields[i].count ? fields[i].count : 1;
		f->offset = offs[i];
	}
	__atomic_store_n(&h->arena_used, used + need, __ATOMIC_SEQ_CST);
	__atomic_store_n(&e->state, LAKE_FEAT_SCHEMA_READY, __ATOMIC_SEQ_CST);
	__atomic_store_n(&h->schema_count, count + 1, __ATOMIC_SEQ_CST);
	*id = count;
out:
	__atomic_store_n(&h->reg_lock, 0, __ATOMIC_SEQ_CST);
	return rc;
}

/* LinnOS schemas, as features.NewLinnOS registers them. */
#define LAKE_FEAT_LINNOS_ARRIVAL "linnos.arrival"
#define LAKE_FEAT_LINNOS_COMPLETION "linnos.completion"
#define LAKE_FEAT_LINNOS_HISTORY 16u
#define LAKE_FEAT_LINNOS_COMPLETION_HISTORY 32u /* features.LinnOSCompletionHistory */

/*
 * struct lake_feat_linnos_completion is one linnos.completion record: a
 * completed read (reads only) of the key's device (features/linnos.go,
 * LinnOSCompletion). pending is the device's pending count at the read's
 * arrival, the read included (its "pending now" input); done_seq is the
 * read's completion ordinal on the device (1, 2, ...; 0 = not counted)
 * and arrive_seq the done_seq of the last read completed when this one
 * arrived (0 = none), so a trainer can rebuild each read's input vector:
 * its history is the reads with done_seq in (arrive_seq-4, arrive_seq],
 * of which the oldest stale were read as zeros (past the history's
 * time-to-live, lake_linnos_hist_stale).
 */
struct lake_feat_linnos_completion {
	uint32_t latency_us; /* 0 */
	uint32_t pending;    /* 4 */
	uint32_t arrive_seq; /* 8 */
	uint32_t done_seq;   /* 12 */
	uint32_t stale;      /* 16: oldest history entries past the TTL at arrival (lake_linnos_hist_stale) */
	uint32_t zero;       /* 20: padding (records are multiples of 8 bytes), 0 */
};
_Static_assert(sizeof(struct lake_feat_linnos_completion) == 24, "linnos completion record");

/* lake_feat_register_linnos registers the two LinnOS schemas
 * (linnos.arrival: field "pending" u32; linnos.completion: the five u32 of
 * struct lake_feat_linnos_completion; history 16 and 32) for up to max_devices
 * devices; an existing schema of the same name is accepted. */
static inline int lake_feat_register_linnos(const struct lake_feat_view *v, uint32_t max_devices, uint32_t owner)
{
	static const struct lake_feat_field_def arr = { "pending", LAKE_FEAT_U32, 1 };
	static const struct lake_feat_field_def comp[5] = {
		{ "latency_us", LAKE_FEAT_U32, 1 },
		{ "pending", LAKE_FEAT_U32, 1 },
		{ "arrive_seq", LAKE_FEAT_U32, 1 },
		{ "done_seq", LAKE_FEAT_U32, 1 },
		{ "stale", LAKE_FEAT_U32, 1 },
	};
	uint32_t id;
	int rc;

	rc = lake_feat_register(v, LAKE_FEAT_LINNOS_ARRIVAL, &arr, 1, LAKE_FEAT_LINNOS_HISTORY, max_devices, owner, &id);
	if (rc && rc != -EEXIST)
		return rc;
	rc = lake_feat_register(v, LAKE_FEAT_LINNOS_COMPLETION, comp, 5, LAKE_FEAT_LINNOS_COMPLETION_HISTORY, max_devices, owner, &id);
	if (rc && rc != -EEXIST)
		return rc;
	return 0;
}

/*
 * Kernel statistics of the dm-linnos target (shm/PROTOCOL.md, "Kernel
 * statistics"; laked/kernelstats exports every field on /metrics as
 * lake_kernel_stat{schema, key, field}). The target records, once a
 * second, one stats.dm_linnos record keyed by its mapped device's number
 * (MAJOR << 20 | MINOR) and one stats.dm_linnos_dev record per replica
 * keyed by the replica's device number. Field names are the counter names
 * of the target's `dmsetup status`, so the two can be compared.
 */
#define LAKE_FEAT_DM_LINNOS_STATS "stats.dm_linnos"
#define LAKE_FEAT_DM_LINNOS_DEV_STATS "stats.dm_linnos_dev"
#define LAKE_FEAT_DM_LINNOS_STATS_HISTORY 2u

struct lake_feat_dm_linnos_stats {
	uint64_t reads;         /* 0 */
	uint64_t predictions;   /* 8 */
	uint64_t revokes;       /* 16 */
	uint64_t capped;        /* 24: revokes refused by the revoke cap */
	uint64_t bypassed;      /* 32: revokes refused by the accuracy bypass */
	uint64_t all_slow;      /* 40 */
	uint64_t fallbacks;     /* 48: laked path decided by the fast path */
	uint64_t deadline_miss; /* 56 */
	uint64_t laked_ok;      /* 64 */
	uint64_t laked_err;     /* 72 */
	uint64_t laked_bad;     /* 80 */
	uint64_t read_errors;   /* 88 */
	uint64_t write_errors;  /* 96 */
	uint64_t failovers;     /* 104 */
	int32_t accuracy;       /* 112: per mille on the last window, -1 = none yet */
	uint32_t bypass;        /* 116: 1 while the accuracy bypass is on */
};

struct lake_feat_dm_linnos_dev_stats {
	uint64_t reads;   /* 0 */
	uint64_t errors;  /* 8 */
	uint64_t version; /* 16: laked's version of the installed model (0 = none) */
	uint32_t pending; /* 24 */
	uint32_t model;   /* 28: laked model id installed (0 = none) */
};

_Static_assert(sizeof(struct lake_feat_dm_linnos_stats) == 120, "dm_linnos stats size");
_Static_assert(sizeof(struct lake_feat_dm_linnos_dev_stats) == 32, "dm_linnos dev stats size");

/* lake_feat_register_dm_linnos_stats registers the two dm-linnos
 * statistics schemas (the fields in struct order: the registry lays them
 * out at the struct's offsets, each aligned to its size) for up to
 * max_keys targets and max_keys replica devices; an existing schema of the
 * same name is accepted. */
static inline int lake_feat_register_dm_linnos_stats(const struct lake_feat_view *v, uint32_t max_keys, uint32_t owner)
{
	static const struct lake_feat_field_def tf[16] = {
		{ "reads", LAKE_FEAT_U64, 1 },	       { "predictions", LAKE_FEAT_U64, 1 },
		{ "revokes", LAKE_FEAT_U64, 1 },       { "capped", LAKE_FEAT_U64, 1 },
		{ "bypassed", LAKE_FEAT_U64, 1 },      { "all_slow", LAKE_FEAT_U64, 1 },
		{ "fallbacks", LAKE_FEAT_U64, 1 },     { "deadline_miss", LAKE_FEAT_U64, 1 },
		{ "laked_ok", LAKE_FEAT_U64, 1 },      { "laked_err", LAKE_FEAT_U64, 1 },
		{ "laked_bad", LAKE_FEAT_U64, 1 },     { "read_errors", LAKE_FEAT_U64, 1 },
		{ "write_errors", LAKE_FEAT_U64, 1 }, { "failovers", LAKE_FEAT_U64, 1 },
		{ "accuracy", LAKE_FEAT_I32, 1 },      { "bypass", LAKE_FEAT_U32, 1 },
	};
	static const struct lake_feat_field_def df[5] = {
		{ "reads", LAKE_FEAT_U64, 1 },	 { "errors", LAKE_FEAT_U64, 1 }, { "version", LAKE_FEAT_U64, 1 },
		{ "pending", LAKE_FEAT_U32, 1 }, { "model", LAKE_FEAT_U32, 1 },
	};
	uint32_t id;
	int rc;

	rc = lake_feat_register(v, LAKE_FEAT_DM_LINNOS_STATS, tf, 16, LAKE_FEAT_DM_LINNOS_STATS_HISTORY, max_keys,
				owner, &id);
	if (rc && rc != -EEXIST)
		return rc;
	rc = lake_feat_register(v, LAKE_FEAT_DM_LINNOS_DEV_STATS, df, 5, LAKE_FEAT_DM_LINNOS_STATS_HISTORY, max_keys,
				owner, &id);
	if (rc && rc != -EEXIST)
		return rc;
	return 0;
}

#endif /* LAKE_FEAT_CREATE_H */
