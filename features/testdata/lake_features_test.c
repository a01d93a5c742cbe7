/* Test program for lakelib/include/lake_features.h, built and run by
 * features/layout_c_test.go.
 *
 *   lake_features_test layout
 *	prints "NAME VALUE" for every offset, size and constant of the header
 *   lake_features_test record FILE SCHEMA NKEYS PERKEY [KEYBASE]
 *	maps FILE (a registry created by Go), records PERKEY samples for each
 *	of the keys KEYBASE+1..KEYBASE+NKEYS (KEYBASE defaults to 0) in schema
 *	SCHEMA and prints "recorded N lost L"
 *
 * Record payload (fields looked up by name in the schema): writer u32 = 1,
 * key u64 = key, i u32 = sample number, sq i32[2] = {-i, i*i}, x f64 = i/2.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lake_features.h"

#define P(name, val) printf("%s %llu\n", name, (unsigned long long)(val))
#define OFF(s, f) P(#s "." #f, offsetof(struct s, f))

static void layout(void)
{
	P("magic", LAKE_FEAT_MAGIC);
	P("version", LAKE_FEAT_VERSION);
	P("header_size", sizeof(struct lake_feat_header));
	P("max_fields", LAKE_FEAT_MAX_FIELDS);
	P("name_len", LAKE_FEAT_NAME_LEN);
	P("field_name_len", LAKE_FEAT_FIELD_NAME_LEN);
	P("schema_entry_size", sizeof(struct lake_feat_schema));
	P("field_size", sizeof(struct lake_feat_field));
	P("slot_size", sizeof(struct lake_feat_slot));
	P("rec_hdr_size", sizeof(struct lake_feat_rec));
	P("st_mask", LAKE_FEAT_ST_MASK);
	P("gen_shift", LAKE_FEAT_GEN_SHIFT);
	P("st_empty", LAKE_FEAT_ST_EMPTY);
	P("st_busy", LAKE_FEAT_ST_BUSY);
	P("st_claimed", LAKE_FEAT_ST_CLAIMED);
	P("st_live", LAKE_FEAT_ST_LIVE);
	P("st_dead", LAKE_FEAT_ST_DEAD);
	P("st_owned", LAKE_FEAT_ST_OWNED);
	P("type_u8", LAKE_FEAT_U8);
	P("type_u16", LAKE_FEAT_U16);
	P("type_u32", LAKE_FEAT_U32);
	P("type_u64", LAKE_FEAT_U64);
	P("type_i32", LAKE_FEAT_I32);
	P("type_i64", LAKE_FEAT_I64);
	P("type_f32", LAKE_FEAT_F32);
	P("type_f64", LAKE_FEAT_F64);
	P("hash_1", lake_feat_hash(1));
	P("hash_deadbeef", lake_feat_hash(0xdeadbeefULL));
	OFF(lake_feat_header, magic);
	OFF(lake_feat_header, version);
	OFF(lake_feat_header, header_size);
	OFF(lake_feat_header, total_size);
	OFF(lake_feat_header, max_schemas);
	OFF(lake_feat_header, max_fields);
	OFF(lake_feat_header, max_keys);
	OFF(lake_feat_header, max_history);
	OFF(lake_feat_header, max_record);
	OFF(lake_feat_header, schema_entry_size);
	OFF(lake_feat_header, schema_table_off);
	OFF(lake_feat_header, arena_off);
	OFF(lake_feat_header, arena_size);
	OFF(lake_feat_header, arena_used);
	OFF(lake_feat_header, schema_count);
	OFF(lake_feat_header, reg_lock);
	OFF(lake_feat_header, reserved);
	OFF(lake_feat_schema, state);
	OFF(lake_feat_schema, id);
	OFF(lake_feat_schema, name);
	OFF(lake_feat_schema, nfields);
	OFF(lake_feat_schema, history);
	OFF(lake_feat_schema, ring_len);
	OFF(lake_feat_schema, record_size);
	OFF(lake_feat_schema, record_stride);
	OFF(lake_feat_schema, key_capacity);
	OFF(lake_feat_schema, table_size);
	OFF(lake_feat_schema, live_keys);
	OFF(lake_feat_schema, key_table_off);
	OFF(lake_feat_schema, ring_off);
	OFF(lake_feat_schema, reserved);
	OFF(lake_feat_schema, fields);
	OFF(lake_feat_field, name);
	OFF(lake_feat_field, type);
	OFF(lake_feat_field, reserved);
	OFF(lake_feat_field, count);
	OFF(lake_feat_field, offset);
	OFF(lake_feat_slot, state);
	OFF(lake_feat_slot, key);
	OFF(lake_feat_slot, write_idx);
	OFF(lake_feat_slot, base_idx);
	OFF(lake_feat_slot, lost);
	OFF(lake_feat_slot, owner);
	OFF(lake_feat_slot, own_base);
	OFF(lake_feat_slot, reserved);
	OFF(lake_feat_rec, seq);
	OFF(lake_feat_rec, lost);
	OFF(lake_feat_rec, payload);
}

static int field(const struct lake_feat_sdesc *s, const char *name, uint8_t type)
{
	int i = lake_feat_field_index(s, name);
	if (i < 0 || s->fields[i].type != type) {
		fprintf(stderr, "schema has no %s field of type %u\n", name, type);
		exit(2);
	}
	return (int)s->fields[i].offset;
}

/* start_payload zeroes a record of s and sets its writer, key and i fields. */
static void start_payload(unsigned char *payload, const struct lake_feat_sdesc *s, uint32_t writer, uint64_t key,
			  uint32_t i)
{
	memset(payload, 0, s->record_size);
	memcpy(payload + field(s, "writer", LAKE_FEAT_U32), &writer, 4);
	memcpy(payload + field(s, "key", LAKE_FEAT_U64), &key, 8);
	memcpy(payload + field(s, "i", LAKE_FEAT_U32), &i, 4);
}

/* open_schema maps the registry file at path, attaches it and finds
 * schema. Returns 0, or the exit status for the failure (reported). */
static int open_schema(const char *path, const char *schema, struct lake_feat_view *v, struct lake_feat_sdesc *s)
{
	struct stat st;
	void *mem;
	int fd, rc;

	fd = open(path, O_RDWR);
	if (fd < 0 || fstat(fd, &st) < 0) {
		perror(path);
		return 2;
	}
	mem = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (mem == MAP_FAILED) {
		perror("mmap");
		return 2;
	}
	rc = lake_feat_attach(v, mem, (uint64_t)st.st_size);
	if (rc) {
		fprintf(stderr, "attach: %d\n", rc);
		return 3;
	}
	rc = lake_feat_schema_find(v, schema, s);
	if (rc) {
		fprintf(stderr, "schema %s: %d\n", schema, rc);
		return 3;
	}
	return 0;
}

static int record(const char *path, const char *schema, unsigned nkeys, unsigned perkey, uint64_t keybase)
{
	struct lake_feat_view v;
	struct lake_feat_sdesc s;
	unsigned char payload[LAKE_FEAT_LIMIT_RECORD];
	unsigned long recorded = 0, lost = 0;
	int rc, o_sq, o_x;

	rc = open_schema(path, schema, &v, &s);
	if (rc)
		return rc;
	o_sq = field(&s, "sq", LAKE_FEAT_I32);
	o_x = field(&s, "x", LAKE_FEAT_F64);
	for (unsigned i = 0; i < perkey; i++) {
		for (uint64_t key = keybase + 1; key <= keybase + nkeys; key++) {
			int32_t sq[2] = {-(int32_t)i, (int32_t)(i * i)};
			double x = i / 2.0;
			start_payload(payload, &s, 1, key, i);
			memcpy(payload + o_sq, sq, 8);
			memcpy(payload + o_x, &x, 8);
			rc = lake_feat_record(&v, &s, key, payload, s.record_size);
			if (rc == -EAGAIN) {
				lost++;
			} else if (rc) {
				fprintf(stderr, "record key %llu: %d\n", (unsigned long long)key, rc);
				return 4;
			} else {
				recorded++;
			}
		}
	}
	/* Error paths: wrong width, unknown schema, key beyond capacity. */
	if (lake_feat_record(&v, &s, 1, payload, s.record_size - 8) != -EINVAL) {
		fprintf(stderr, "wrong width accepted\n");
		return 5;
	}
	if (lake_feat_schema_get(&v, v.max_schemas, &s) != -ENOENT) {
		fprintf(stderr, "unknown schema accepted\n");
		return 5;
	}
	printf("recorded %lu lost %lu\n", recorded, lost);
	return 0;
}

/* own: own key of schema in the registry file, record n samples through
 * the owner (writer 3, i = 1..n) and, if close_it, give the key back.
 * Prints "owned recorded N lost L"; exits 6 if the key is owned already. */
static int own(const char *path, const char *schema, uint64_t key, unsigned n, int close_it)
{
	struct lake_feat_view v;
	struct lake_feat_sdesc s;
	struct lake_feat_owner o;
	unsigned char payload[LAKE_FEAT_LIMIT_RECORD];
	unsigned long recorded = 0, lost = 0;
	int rc;

	rc = open_schema(path, schema, &v, &s);
	if (rc)
		return rc;
	rc = lake_feat_own(&v, &s, key, (uint32_t)getpid(), &o);
	if (rc == -EPERM) {
		printf("owned by another writer\n");
		return 6;
	}
	if (rc) {
		fprintf(stderr, "own key %llu: %d\n", (unsigned long long)key, rc);
		return 4;
	}
	for (uint32_t i = 1; i <= n; i++) {
		start_payload(payload, &s, 3, key, i);
		rc = lake_feat_owner_record(&o, payload, s.record_size);
		if (rc == -EAGAIN) {
			lost++;
		} else if (rc) {
			fprintf(stderr, "owner record %u: %d\n", i, rc);
			return 4;
		} else {
			recorded++;
		}
	}
	if (lake_feat_owner_record(&o, payload, s.record_size - 8) != -EINVAL) {
		fprintf(stderr, "wrong width accepted\n");
		return 5;
	}
	if (lake_feat_record(&v, &s, key, payload, s.record_size) != -EPERM) {
		fprintf(stderr, "shared record of an owned key accepted\n");
		return 5;
	}
	if (close_it && (lake_feat_owner_close(&o) || lake_feat_owner_record(&o, payload, s.record_size) != -EPERM)) {
		fprintf(stderr, "close failed\n");
		return 5;
	}
	printf("owned recorded %lu lost %lu\n", recorded, lost);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "layout") == 0) {
		layout();
		return 0;
	}
	if ((argc == 6 || argc == 7) && strcmp(argv[1], "record") == 0)
		return record(argv[2], argv[3], (unsigned)atoi(argv[4]), (unsigned)atoi(argv[5]),
			      argc == 7 ? strtoull(argv[6], NULL, 10) : 0);
	if (argc == 7 && strcmp(argv[1], "own") == 0)
		return own(argv[2], argv[3], strtoull(argv[4], NULL, 10), (unsigned)atoi(argv[5]), atoi(argv[6]));
	fprintf(stderr, "usage: %s layout | record FILE SCHEMA NKEYS PERKEY [KEYBASE] | own FILE SCHEMA KEY N CLOSE\n", argv[0]);
	return 1;
}
