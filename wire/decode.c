/*
 * Decoding of wire requests and replies (wire.h, docs/WIRE.md): a bounded structural pre-scan
 * of the raw bytes before msgpack-c allocates, then every field checked for type, range and
 * size.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "base/base.h"
#include "wire/codec.h"
#include "wire/wire.h"

/* ---- structural pre-scan ---- */

/* Checks that buf holds exactly one msgpack object whose containers fit the bytes present,
 * nest at most SCAN_MAX_DEPTH deep, whose maps hold at most SCAN_MAX_MAP entries, and that
 * holds at most SCAN_MAX_OBJECTS container entries in all. Linear in len; allocates nothing. */
static int prescan(const void *buf, size_t len, char *err)
{
	mpc c = mpc_make(buf, len);
	uint64_t budget = SCAN_MAX_OBJECTS;
	mpc_limits lim = {SCAN_MAX_DEPTH, SCAN_MAX_MAP, &budget};
	TRY(mpc_skip(&c, &lim, err, WIRE_ERRLEN));
	if (c.pos != len)
		return fail(err, OMEN_EPROTO, "%zu trailing bytes after the message", len - c.pos);
	return OMEN_OK;
}

/* Pre-scans and unpacks one message into up, which the caller destroys on success only. The
 * objects point into buf. */
static int unpack(const void *buf, size_t len, size_t max_len, msgpack_unpacked *up, char *err)
{
	if (len > max_len)
		return fail(err, OMEN_ELIMIT, "message of %zu bytes exceeds the limit of %zu", len,
		            max_len);
	if (!buf || len == 0)
		return fail(err, OMEN_EPROTO, "empty message");
	TRY(prescan(buf, len, err));
	size_t off = 0;
	msgpack_unpacked_init(up);
	msgpack_unpack_return ret = msgpack_unpack_next(up, buf, len, &off);
	int rc = OMEN_OK;
	if (ret == MSGPACK_UNPACK_NOMEM_ERROR)
		rc = fail(err, OMEN_ENOMEM, "out of memory unpacking a message");
	else if (ret != MSGPACK_UNPACK_SUCCESS || off != len)
		rc = fail(err, OMEN_EPROTO, "malformed msgpack");
	else if (up->data.type != MSGPACK_OBJECT_MAP)
		rc = fail(err, OMEN_EPROTO, "message is not a map");
	if (rc != OMEN_OK)
		msgpack_unpacked_destroy(up);
	return rc;
}

/* ---- field extraction ---- */

static bool key_is(const msgpack_object *k, const char *key)
{
	size_t n = strlen(key);
	return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
	       memcmp(k->via.str.ptr, key, n) == 0;
}

/* Checks the map's protocol version before anything else is read. */
static int check_version(const msgpack_object_map *m, char *err)
{
	for (uint32_t i = 0; i < m->size; i++) {
		const msgpack_object *v = &m->ptr[i].val;
		if (!key_is(&m->ptr[i].key, "v"))
			continue;
		if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
			return fail(err, OMEN_EPROTO,
			            "protocol version is not an unsigned integer");
		if (v->via.u64 != WIRE_VERSION)
			return fail(err, OMEN_EPROTO,
			            "protocol version %llu not supported (this node speaks %d)",
			            (ull)v->via.u64, WIRE_VERSION);
		return OMEN_OK;
	}
	return fail(err, OMEN_EPROTO, "message carries no protocol version");
}

/* Points slots[i] at the value of keys[i] for every known key; unknown keys are ignored and a
 * known key given twice is refused. */
static int collect(const msgpack_object_map *m, const char *const *keys, size_t nkeys,
                   const msgpack_object **slots, char *err)
{
	for (uint32_t i = 0; i < m->size; i++) {
		for (size_t j = 0; j < nkeys; j++) {
			if (!key_is(&m->ptr[i].key, keys[j]))
				continue;
			if (slots[j])
				return fail(err, OMEN_EPROTO, "duplicate key '%s'", keys[j]);
			slots[j] = &m->ptr[i].val;
			break;
		}
	}
	return OMEN_OK;
}

/* Reads an unsigned integer of at most max into *out; an absent field leaves *out alone. */
static int get_u64(const msgpack_object *o, const char *key, uint64_t max, uint64_t *out, char *err)
{
	if (!o)
		return OMEN_OK;
	if (o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
		return fail(err, OMEN_EPROTO, "'%s' is not an unsigned integer", key);
	if (o->via.u64 > max)
		return fail(err, OMEN_EPROTO, "'%s' = %llu is beyond its limit %llu", key,
		            (ull)o->via.u64, (ull)max);
	*out = o->via.u64;
	return OMEN_OK;
}

static int get_u32(const msgpack_object *o, const char *key, uint32_t max, uint32_t *out, char *err)
{
	uint64_t v = *out;
	TRY(get_u64(o, key, max, &v, err));
	*out = (uint32_t)v;
	return OMEN_OK;
}

static int get_bool(const msgpack_object *o, const char *key, int *out, char *err)
{
	if (!o)
		return OMEN_OK;
	if (o->type != MSGPACK_OBJECT_BOOLEAN)
		return fail(err, OMEN_EPROTO, "'%s' is not a boolean", key);
	*out = o->via.boolean ? 1 : 0;
	return OMEN_OK;
}

/* Copies a string of at most WIRE_MAX_STRING bytes without NUL into a malloc'd C string. */
static int copy_str(const msgpack_object *o, const char *key, char **out, char *err)
{
	if (o->type != MSGPACK_OBJECT_STR)
		return fail(err, OMEN_EPROTO, "'%s' is not a string", key);
	uint32_t n = o->via.str.size;
	if (n > WIRE_MAX_STRING)
		return fail(err, OMEN_EPROTO, "'%s' is longer than %u bytes", key, WIRE_MAX_STRING);
	if (memchr(o->via.str.ptr, 0, n))
		return fail(err, OMEN_EPROTO, "'%s' contains a NUL byte", key);
	char *s = mem_alloc((size_t)n + 1);
	if (!s)
		return fail(err, OMEN_ENOMEM, "out of memory");
	memcpy(s, o->via.str.ptr, n);
	s[n] = '\0';
	*out = s;
	return OMEN_OK;
}

static int get_str(const msgpack_object *o, const char *key, char **out, char *err)
{
	return o ? copy_str(o, key, out, err) : OMEN_OK;
}

/* Reads a collection name into out (OMEN_MAX_NAME + 1 bytes). */
static int get_name(const msgpack_object *o, const char *key, char *out, char *err)
{
	if (!o)
		return OMEN_OK;
	if (o->type != MSGPACK_OBJECT_STR || !name_valid(o->via.str.ptr, o->via.str.size))
		return fail(err, OMEN_EPROTO, "'%s' is not 1..%d bytes of [A-Za-z0-9_.-]", key,
		            OMEN_MAX_NAME);
	memcpy(out, o->via.str.ptr, o->via.str.size);
	out[o->via.str.size] = '\0';
	return OMEN_OK;
}

/* Copies a bin of exactly count little-endian values of width bytes into a malloc'd host-order
 * array; an empty bin gives NULL. */
static int get_bin(const msgpack_object *o, const char *key, uint64_t count, size_t width,
                   void **out, char *err)
{
	uint64_t want;
	if (!o)
		return OMEN_OK;
	if (o->type != MSGPACK_OBJECT_BIN)
		return fail(err, OMEN_EPROTO, "'%s' is not a bin", key);
	uint32_t have = o->via.bin.size;
	if (__builtin_mul_overflow(count, (uint64_t)width, &want) || want != have)
		return fail(err, OMEN_EPROTO, "'%s' holds %u bytes, expected %llu values of %zu",
		            key, have, (ull)count, width);
	if (have == 0)
		return OMEN_OK;
	void *p = mem_alloc(have);
	if (!p)
		return fail(err, OMEN_ENOMEM, "out of memory");
	memcpy(p, o->via.bin.ptr, have);
	wire_swap_le(p, count, width);
	*out = p;
	return OMEN_OK;
}

/* Copies an array of exactly count entries, each a string (a collection name when names is
 * set) or, unless names is set, nil. An empty array gives NULL. */
static int get_strs(const msgpack_object *o, const char *key, uint64_t count, bool names,
                    char ***out, char *err)
{
	if (!o)
		return OMEN_OK;
	if (o->type != MSGPACK_OBJECT_ARRAY || o->via.array.size != count)
		return fail(err, OMEN_EPROTO, "'%s' is not an array of %llu entries", key,
		            (ull)count);
	if (count > OMEN_MAX_BATCH)
		return fail(err, OMEN_EPROTO, "'%s' has more than %d entries", key, OMEN_MAX_BATCH);
	if (count == 0)
		return OMEN_OK;
	char **v = mem_calloc((size_t)count, sizeof *v);
	if (!v)
		return fail(err, OMEN_ENOMEM, "out of memory");
	for (uint32_t i = 0; i < count; i++) {
		const msgpack_object *x = &o->via.array.ptr[i];
		int rc = OMEN_OK;
		bool is_str = x->type == MSGPACK_OBJECT_STR;
		if (names && (!is_str || !name_valid(x->via.str.ptr, x->via.str.size)))
			rc = fail(err, OMEN_EPROTO, "'%s'[%u] is not a collection name", key, i);
		else if (x->type != MSGPACK_OBJECT_NIL)
			rc = copy_str(x, key, &v[i], err);
		if (rc != OMEN_OK) {
			wire_free_strs(v, i);
			return rc;
		}
	}
	*out = v;
	return OMEN_OK;
}

/* The product of n and m, or UINT64_MAX when it overflows (no bin holds that many). */
static uint64_t mul_sat(uint64_t n, uint64_t m)
{
	uint64_t r;
	return __builtin_mul_overflow(n, m, &r) ? UINT64_MAX : r;
}

/* ---- request decoding ---- */

static int get_op(const msgpack_object *o, wire_op *out, char *err)
{
	if (!o)
		return fail(err, OMEN_EPROTO, "request carries no op");
	if (o->type != MSGPACK_OBJECT_STR)
		return fail(err, OMEN_EPROTO, "'op' is not a string");
	for (int i = 0; i < WIRE_OP_COUNT; i++) {
		if (key_is(o, op_names[i])) {
			*out = (wire_op)i;
			return OMEN_OK;
		}
	}
	char shown[33];
	size_t n = o->via.str.size < 32 ? o->via.str.size : 32;
	for (size_t i = 0; i < n; i++) {
		char c = o->via.str.ptr[i];
		shown[i] = c >= 0x20 && c < 0x7f ? c : '?';
	}
	shown[n] = '\0';
	return fail(err, OMEN_EPROTO, "unknown op '%s'", shown);
}

static int get_shard(const msgpack_object *o, int32_t *out, char *err)
{
	if (!o)
		return OMEN_OK;
	if (o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER && o->via.i64 == -1) {
		*out = -1;
		return OMEN_OK;
	}
	uint32_t v = 0;
	TRY(get_u32(o, "shard", WIRE_MAX_SHARDS - 1, &v, err));
	*out = (int32_t)v;
	return OMEN_OK;
}

static int req_scalars(const msgpack_object **f, wire_req *r, char *err)
{
	const char *const *K = req_keys;
	uint32_t metric = 0, itype = 0;
	TRY(get_op(f[RQ_OP], &r->op, err));
	TRY(get_str(f[RQ_TOKEN], K[RQ_TOKEN], &r->token, err));
	TRY(get_u64(f[RQ_EPOCH], K[RQ_EPOCH], UINT64_MAX, &r->epoch, err));
	TRY(get_shard(f[RQ_SHARD], &r->shard, err));
	TRY(get_name(f[RQ_NAME], K[RQ_NAME], r->name, err));
	TRY(get_u32(f[RQ_DIM], K[RQ_DIM], OMEN_MAX_DIM, &r->dim, err));
	TRY(get_u32(f[RQ_METRIC], K[RQ_METRIC], OMEN_METRIC_COSINE, &metric, err));
	TRY(get_u32(f[RQ_NSHARDS], K[RQ_NSHARDS], WIRE_MAX_SHARDS, &r->nshards, err));
	TRY(get_u64(f[RQ_N], K[RQ_N], OMEN_MAX_BATCH, &r->n, err));
	TRY(get_u32(f[RQ_K], K[RQ_K], OMEN_MAX_K, &r->k, err));
	TRY(get_u32(f[RQ_EF], K[RQ_EF], UINT32_MAX, &r->ef, err));
	TRY(get_bool(f[RQ_EXACT], K[RQ_EXACT], &r->exact, err));
	TRY(get_bool(f[RQ_PARTIAL], K[RQ_PARTIAL], &r->partial, err));
	TRY(get_u32(f[RQ_DEADLINE], K[RQ_DEADLINE], UINT32_MAX, &r->deadline_ms, err));
	TRY(get_str(f[RQ_FILTER], K[RQ_FILTER], &r->filter, err));
	TRY(get_u32(f[RQ_ITYPE], K[RQ_ITYPE], OMEN_INDEX_IVF, &itype, err));
	TRY(get_u32(f[RQ_M], K[RQ_M], UINT32_MAX, &r->m, err));
	TRY(get_u32(f[RQ_EFC], K[RQ_EFC], UINT32_MAX, &r->ef_construction, err));
	TRY(get_bool(f[RQ_INT8], K[RQ_INT8], &r->int8, err));
	TRY(get_u32(f[RQ_NLIST], K[RQ_NLIST], OMEN_IVF_NLIST_MAX, &r->nlist, err));
	TRY(get_u32(f[RQ_BITS], K[RQ_BITS], OMEN_IVF_BITS_MAX, &r->bits, err));
	TRY(get_u64(f[RQ_RAM], K[RQ_RAM], UINT64_MAX, &r->ram_budget, err));
	TRY(get_u32(f[RQ_NPROBE], K[RQ_NPROBE], OMEN_IVF_NLIST_MAX, &r->nprobe, err));
	TRY(get_u64(f[RQ_START], K[RQ_START], UINT64_MAX, &r->start, err));
	TRY(get_u32(f[RQ_MODE], K[RQ_MODE], FENCE_MODES - 1, &r->mode, err));
	TRY(get_u64(f[RQ_NODE], K[RQ_NODE], UINT64_MAX, &r->node, err));
	TRY(get_str(f[RQ_ADDR], K[RQ_ADDR], &r->addr, err));
	TRY(get_u32(f[RQ_REPLICAS], K[RQ_REPLICAS], WIRE_MAX_REPLICAS, &r->replicas, err));
	r->metric = (omen_metric)metric;
	r->index_type = (omen_index_type)itype;
	return OMEN_OK;
}

/* Reads the arrays, whose sizes follow from n and dim (read before). */
static int req_arrays(const msgpack_object **f, wire_req *r, char *err)
{
	void *ids = NULL, *vec = NULL;
	TRY(get_bin(f[RQ_IDS], req_keys[RQ_IDS], r->n, 8, &ids, err));
	r->ids = ids;
	TRY(get_bin(f[RQ_VEC], req_keys[RQ_VEC], mul_sat(r->n, r->dim), 4, &vec, err));
	r->vectors = vec;
	TRY(get_strs(f[RQ_META], req_keys[RQ_META], r->n, false, &r->meta, err));
	const msgpack_object *copies = f[RQ_COPIES];
	uint64_t nc = copies && copies->type == MSGPACK_OBJECT_ARRAY ? copies->via.array.size : 0;
	if (nc > WIRE_MAX_REPLICAS - 1)
		return fail(err, OMEN_EPROTO, "'copies' has more than %d entries",
		            WIRE_MAX_REPLICAS - 1);
	TRY(get_strs(copies, req_keys[RQ_COPIES], nc, false, &r->copies, err));
	r->ncopies = r->copies ? (uint32_t)nc : 0;
	return OMEN_OK;
}

/* Fills r from an unpacked map. r may be half filled on failure (wire_req_free cleans up). */
static int req_from_map(const msgpack_object_map *m, wire_req *r, char *err)
{
	const msgpack_object *f[RQ_NKEYS] = {0};
	TRY(check_version(m, err));
	TRY(collect(m, req_keys, RQ_NKEYS, f, err));
	TRY(req_scalars(f, r, err));
	TRY(req_arrays(f, r, err));
	return wire_req_check(r, err);
}

int wire_req_decode(const void *buf, size_t len, size_t max_len, wire_req *r, char *err)
{
	msgpack_unpacked up;
	wire_req d;
	wire_req_init(&d);
	int rc = unpack(buf, len, max_len, &up, err);
	if (rc == OMEN_OK) {
		rc = req_from_map(&up.data.via.map, &d, err);
		msgpack_unpacked_destroy(&up);
	}
	if (rc != OMEN_OK)
		wire_req_free(&d);
	*r = d;
	return rc;
}

/* ---- reply decoding ---- */

static const char *index_static(const msgpack_object *o)
{
	for (size_t i = 0; i < sizeof index_names / sizeof *index_names; i++)
		if (key_is(o, index_names[i]))
			return index_names[i];
	return "?";
}

static int get_stats(const msgpack_object *o, omen_collection_stats *s, char *err)
{
	const msgpack_object *f[CS_NKEYS] = {0};
	const char *const *K = stats_keys;
	uint32_t metric = 0;
	if (o->type != MSGPACK_OBJECT_MAP)
		return fail(err, OMEN_EPROTO, "'stats' is not a map");
	TRY(collect(&o->via.map, K, CS_NKEYS, f, err));
	TRY(get_name(f[CS_NAME], "stats.name", s->name, err));
	TRY(get_u32(f[CS_DIM], "stats.dim", OMEN_MAX_DIM, &s->dim, err));
	TRY(get_u32(f[CS_METRIC], "stats.metric", OMEN_METRIC_COSINE, &metric, err));
	TRY(get_u64(f[CS_POINTS], "stats.points", UINT64_MAX, &s->points, err));
	TRY(get_u64(f[CS_DELETED], "stats.deleted", UINT64_MAX, &s->deleted, err));
	TRY(get_u64(f[CS_NEXT_ID], "stats.next_id", UINT64_MAX, &s->next_id, err));
	TRY(get_u64(f[CS_SEGMENTS], "stats.segments", UINT64_MAX, &s->segments, err));
	TRY(get_u64(f[CS_VBYTES], "stats.vec_bytes", UINT64_MAX, &s->vector_bytes, err));
	TRY(get_u64(f[CS_INDEXED], "stats.indexed", UINT64_MAX, &s->indexed, err));
	TRY(get_u64(f[CS_IBYTES], "stats.idx_bytes", UINT64_MAX, &s->index_bytes, err));
	TRY(get_u32(f[CS_M], "stats.m", UINT32_MAX, &s->hnsw_m, err));
	TRY(get_u32(f[CS_EFC], "stats.efc", UINT32_MAX, &s->hnsw_ef_construction, err));
	TRY(get_bool(f[CS_INT8], "stats.int8", &s->hnsw_int8, err));
	TRY(get_u32(f[CS_NLIST], "stats.nlist", OMEN_IVF_NLIST_MAX, &s->ivf_nlist, err));
	TRY(get_u32(f[CS_NPROBE], "stats.nprobe", OMEN_IVF_NLIST_MAX, &s->ivf_nprobe, err));
	TRY(get_u32(f[CS_BITS], "stats.bits", OMEN_IVF_BITS_MAX, &s->ivf_bits, err));
	TRY(get_u32(f[CS_REPLICAS], "stats.replicas", WIRE_MAX_REPLICAS, &s->replicas, err));
	TRY(get_u32(f[CS_STALE], "stats.stale", UINT32_MAX, &s->copies_stale, err));
	if (f[CS_INDEX]) {
		if (f[CS_INDEX]->type != MSGPACK_OBJECT_STR)
			return fail(err, OMEN_EPROTO, "'stats.index' is not a string");
		s->index = index_static(f[CS_INDEX]);
	}
	s->metric = (omen_metric)metric;
	return OMEN_OK;
}

static int get_dbstats(const msgpack_object *o, omen_db_stats *s, char *err)
{
	const msgpack_object *f[DS_NKEYS] = {0};
	if (o->type != MSGPACK_OBJECT_MAP)
		return fail(err, OMEN_EPROTO, "'dbstats' is not a map");
	TRY(collect(&o->via.map, dbstats_keys, DS_NKEYS, f, err));
	TRY(get_u64(f[DS_COLLS], "dbstats.colls", UINT64_MAX, &s->collections, err));
	TRY(get_u64(f[DS_FBYTES], "dbstats.file_bytes", UINT64_MAX, &s->file_bytes, err));
	return get_u64(f[DS_MBYTES], "dbstats.map_bytes", UINT64_MAX, &s->map_bytes, err);
}

static int rep_scalars(const msgpack_object **f, wire_rep *r, char *err)
{
	const char *const *K = rep_keys;
	uint32_t st = 0;
	TRY(get_u32(f[RP_ST], K[RP_ST], INT32_MAX, &st, err));
	r->status = (int)st;
	TRY(get_str(f[RP_MSG], K[RP_MSG], &r->message, err));
	TRY(get_u64(f[RP_N], K[RP_N], OMEN_MAX_BATCH, &r->n, err));
	TRY(get_u32(f[RP_K], K[RP_K], OMEN_MAX_K, &r->k, err));
	TRY(get_u32(f[RP_DIM], K[RP_DIM], OMEN_MAX_DIM, &r->dim, err));
	TRY(get_u64(f[RP_COUNT], K[RP_COUNT], UINT64_MAX, &r->count, err));
	TRY(get_u32(f[RP_SHT], K[RP_SHT], UINT32_MAX, &r->shards_total, err));
	TRY(get_u32(f[RP_SHA], K[RP_SHA], UINT32_MAX, &r->shards_answered, err));
	TRY(get_u32(f[RP_FAILED], K[RP_FAILED], (1u << (WIRE_MAX_REPLICAS - 1)) - 1, &r->failed,
	            err));
	TRY(get_str(f[RP_REPORT], K[RP_REPORT], &r->report, err));
	if (f[RP_STATS]) {
		TRY(get_stats(f[RP_STATS], &r->stats, err));
		r->has_stats = 1;
	}
	if (f[RP_DBSTATS]) {
		TRY(get_dbstats(f[RP_DBSTATS], &r->dbstats, err));
		r->has_dbstats = 1;
	}
	return OMEN_OK;
}

static int rep_arrays(const msgpack_object **f, wire_rep *r, char *err)
{
	const char *const *K = rep_keys;
	const msgpack_object *names = f[RP_NAMES];
	void *ids = NULL, *dists = NULL, *found = NULL, *vec = NULL;
	TRY(get_bin(f[RP_IDS], K[RP_IDS], mul_sat(r->n, r->k ? r->k : 1), 8, &ids, err));
	r->ids = ids;
	TRY(get_bin(f[RP_DISTS], K[RP_DISTS], mul_sat(r->n, r->k), 4, &dists, err));
	r->dists = dists;
	TRY(get_bin(f[RP_FOUND], K[RP_FOUND], r->n, 1, &found, err));
	r->found = found;
	TRY(get_bin(f[RP_VEC], K[RP_VEC], mul_sat(r->n, r->dim), 4, &vec, err));
	r->vectors = vec;
	TRY(get_strs(f[RP_META], K[RP_META], r->n, false, &r->meta, err));
	uint64_t nn = names && names->type == MSGPACK_OBJECT_ARRAY ? names->via.array.size : 0;
	TRY(get_strs(names, K[RP_NAMES], nn, true, &r->names, err));
	r->nnames = r->names ? nn : 0;
	return OMEN_OK;
}

/* Fills r from an unpacked map. r may be half filled on failure (wire_rep_free cleans up). */
static int rep_from_map(const msgpack_object_map *m, wire_rep *r, char *err)
{
	const msgpack_object *f[RP_NKEYS] = {0};
	TRY(check_version(m, err));
	TRY(collect(m, rep_keys, RP_NKEYS, f, err));
	TRY(rep_scalars(f, r, err));
	TRY(rep_arrays(f, r, err));
	return wire_rep_check(r, err);
}

int wire_rep_decode(const void *buf, size_t len, size_t max_len, wire_rep *r, char *err)
{
	msgpack_unpacked up;
	wire_rep d;
	wire_rep_init(&d);
	int rc = unpack(buf, len, max_len, &up, err);
	if (rc == OMEN_OK) {
		rc = rep_from_map(&up.data.via.map, &d, err);
		msgpack_unpacked_destroy(&up);
	}
	if (rc != OMEN_OK)
		wire_rep_free(&d);
	*r = d;
	return rc;
}

int wire_rep_expect(const wire_req *req, const wire_rep *rep, char *err)
{
	const char *op = wire_op_name(req->op);
	bool has = true;
	if (rep->status != OMEN_OK || !op)
		return OMEN_OK;
	if (req->op == WIRE_UPSERT)
		has = rep->n == req->n && rep->k == 0 && rep->ids;
	else if (req->op == WIRE_GET)
		has = rep->n == req->n && rep->found && (!rep->vectors || rep->dim > 0);
	else if (req->op == WIRE_SEARCH)
		has = rep->n == req->n && rep->k == req->k && rep->ids && rep->dists;
	else if (req->op == WIRE_STATS)
		has = rep->has_stats;
	else if (req->op == WIRE_DBSTATS)
		has = rep->has_dbstats;
	else if (req->op == WIRE_IDS)
		has = rep->n <= req->n && rep->k == 0 && (rep->n == 0 || rep->ids);
	else if (req->op == WIRE_FENCE && req->mode == FENCE_QUERY)
		has = rep->k == 0 && rep->nnames == rep->n &&
		      (rep->n == 0 || (rep->ids && rep->found));
	if (!has)
		return fail(err, OMEN_EPROTO, "%s: the reply lacks results of the request's size",
		            op);
	return OMEN_OK;
}
