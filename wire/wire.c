/*
 * The wire protocol codec (wire.h): every request and every reply is one msgpack map of short
 * string keys, listed in docs/WIRE.md. Decoding runs a bounded structural pre-scan over the raw
 * bytes before msgpack-c sees them, because msgpack-c allocates by the container sizes a message
 * declares; after unpacking, every field is checked for type, range and size.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>

#include "base/base.h"
#include "wire/wire.h"

/* Limits of the structural pre-scan (docs/WIRE.md, "Limits"). */
#define SCAN_MAX_DEPTH   8    /* nested containers, the top-level map included */
#define SCAN_MAX_MAP     1024 /* entries of one map */
#define SCAN_MAX_OBJECTS (2ull * OMEN_MAX_BATCH + 65536) /* container entries per message */
#define MAX_INDEX_NAME   32                              /* bytes of stats.index */

#define TRY(expr)                                                                                  \
	do {                                                                                       \
		int rc_ = (expr);                                                                  \
		if (rc_ != OMEN_OK)                                                                \
			return rc_;                                                                \
	} while (0)

typedef unsigned long long ull;

/* Writes a one-line reason into err (WIRE_ERRLEN bytes; NULL is fine) and returns status. */
#define fail(err, status, ...) err_set(err, WIRE_ERRLEN, status, __VA_ARGS__)

/* ---- keys ---- */

enum {
	RQ_V,
	RQ_OP,
	RQ_TOKEN,
	RQ_EPOCH,
	RQ_SHARD,
	RQ_NAME,
	RQ_DIM,
	RQ_METRIC,
	RQ_NSHARDS,
	RQ_N,
	RQ_IDS,
	RQ_VEC,
	RQ_META,
	RQ_K,
	RQ_EF,
	RQ_EXACT,
	RQ_PARTIAL,
	RQ_DEADLINE,
	RQ_FILTER,
	RQ_ITYPE,
	RQ_M,
	RQ_EFC,
	RQ_INT8,
	RQ_NLIST,
	RQ_BITS,
	RQ_RAM,
	RQ_NPROBE,
	RQ_START,
	RQ_MODE,
	RQ_NODE,
	RQ_ADDR,
	RQ_NKEYS
};
static const char *const req_keys[RQ_NKEYS] = {
    [RQ_V] = "v",
    [RQ_OP] = "op",
    [RQ_TOKEN] = "tok",
    [RQ_EPOCH] = "epoch",
    [RQ_SHARD] = "shard",
    [RQ_NAME] = "name",
    [RQ_DIM] = "dim",
    [RQ_METRIC] = "metric",
    [RQ_NSHARDS] = "nshards",
    [RQ_N] = "n",
    [RQ_IDS] = "ids",
    [RQ_VEC] = "vec",
    [RQ_META] = "meta",
    [RQ_K] = "k",
    [RQ_EF] = "ef",
    [RQ_EXACT] = "exact",
    [RQ_PARTIAL] = "partial",
    [RQ_DEADLINE] = "dl_ms",
    [RQ_FILTER] = "filter",
    [RQ_ITYPE] = "itype",
    [RQ_M] = "m",
    [RQ_EFC] = "efc",
    [RQ_INT8] = "int8",
    [RQ_NLIST] = "nlist",
    [RQ_BITS] = "bits",
    [RQ_RAM] = "ram",
    [RQ_NPROBE] = "nprobe",
    [RQ_START] = "start",
    [RQ_MODE] = "mode",
    [RQ_NODE] = "node",
    [RQ_ADDR] = "addr",
};

enum {
	RP_V,
	RP_ST,
	RP_MSG,
	RP_N,
	RP_K,
	RP_DIM,
	RP_IDS,
	RP_DISTS,
	RP_FOUND,
	RP_VEC,
	RP_META,
	RP_COUNT,
	RP_SHT,
	RP_SHA,
	RP_NAMES,
	RP_REPORT,
	RP_STATS,
	RP_DBSTATS,
	RP_NKEYS
};
static const char *const rep_keys[RP_NKEYS] = {
    [RP_V] = "v",          [RP_ST] = "st",           [RP_MSG] = "msg",     [RP_N] = "n",
    [RP_K] = "k",          [RP_DIM] = "dim",         [RP_IDS] = "ids",     [RP_DISTS] = "dists",
    [RP_FOUND] = "found",  [RP_VEC] = "vec",         [RP_META] = "meta",   [RP_COUNT] = "count",
    [RP_SHT] = "sh_total", [RP_SHA] = "sh_ok",       [RP_NAMES] = "names", [RP_REPORT] = "report",
    [RP_STATS] = "stats",  [RP_DBSTATS] = "dbstats",
};

enum {
	CS_NAME,
	CS_DIM,
	CS_METRIC,
	CS_POINTS,
	CS_DELETED,
	CS_NEXT_ID,
	CS_SEGMENTS,
	CS_VBYTES,
	CS_INDEX,
	CS_INDEXED,
	CS_IBYTES,
	CS_M,
	CS_EFC,
	CS_INT8,
	CS_NLIST,
	CS_NPROBE,
	CS_BITS,
	CS_NKEYS
};
static const char *const stats_keys[CS_NKEYS] = {
    [CS_NAME] = "name",         [CS_DIM] = "dim",          [CS_METRIC] = "metric",
    [CS_POINTS] = "points",     [CS_DELETED] = "deleted",  [CS_NEXT_ID] = "next_id",
    [CS_SEGMENTS] = "segments", [CS_VBYTES] = "vec_bytes", [CS_INDEX] = "index",
    [CS_INDEXED] = "indexed",   [CS_IBYTES] = "idx_bytes", [CS_M] = "m",
    [CS_EFC] = "efc",           [CS_INT8] = "int8",        [CS_NLIST] = "nlist",
    [CS_NPROBE] = "nprobe",     [CS_BITS] = "bits",
};

enum { DS_COLLS, DS_FBYTES, DS_MBYTES, DS_NKEYS };
static const char *const dbstats_keys[DS_NKEYS] = {"colls", "file_bytes", "map_bytes"};

static const char *const op_names[WIRE_OP_COUNT] = {
    "health", "create", "drop",  "list",  "stats", "dbstats", "upsert", "get",  "delete",
    "count",  "search", "build", "check", "flush", "ids",     "fence",  "join",
};

/* What each op requires of a request. */
enum {
	NEED_NAME = 1,
	NEED_N = 2,
	NEED_DIM = 4,
	NEED_K = 8,
	NEED_IDS = 16,
	NEED_VEC = 32,
	NEED_ADDR = 64
};
static const unsigned op_needs[WIRE_OP_COUNT] = {
    [WIRE_CREATE] = NEED_NAME | NEED_DIM,
    [WIRE_DROP] = NEED_NAME,
    [WIRE_STATS] = NEED_NAME,
    [WIRE_UPSERT] = NEED_NAME | NEED_N | NEED_DIM | NEED_VEC,
    [WIRE_GET] = NEED_NAME | NEED_N | NEED_IDS,
    [WIRE_DELETE] = NEED_NAME | NEED_N | NEED_IDS,
    [WIRE_COUNT] = NEED_NAME,
    [WIRE_SEARCH] = NEED_NAME | NEED_N | NEED_DIM | NEED_K | NEED_VEC,
    [WIRE_BUILD] = NEED_NAME,
    [WIRE_CHECK] = NEED_NAME,
    [WIRE_IDS] = NEED_NAME | NEED_N,
    [WIRE_JOIN] = NEED_ADDR,
};

/* Index kinds a stats reply may name; anything else decodes as "?". */
static const char *const index_names[] = {"flat", "hnsw", "ivf"};

const char *wire_op_name(wire_op op)
{
	return (unsigned)op < WIRE_OP_COUNT ? op_names[op] : NULL;
}

void wire_req_init(wire_req *r)
{
	memset(r, 0, sizeof *r);
	r->shard = -1;
}

void wire_rep_init(wire_rep *r)
{
	memset(r, 0, sizeof *r);
}

static void free_strs(char **v, uint64_t n)
{
	if (!v)
		return;
	for (uint64_t i = 0; i < n; i++)
		mem_free(v[i]);
	mem_free(v);
}

void wire_req_free(wire_req *r)
{
	if (!r)
		return;
	mem_free(r->token);
	mem_free(r->ids);
	mem_free(r->vectors);
	free_strs(r->meta, r->n);
	mem_free(r->filter);
	mem_free(r->addr);
	wire_req_init(r);
}

void wire_rep_free(wire_rep *r)
{
	if (!r)
		return;
	mem_free(r->message);
	mem_free(r->ids);
	mem_free(r->dists);
	mem_free(r->found);
	mem_free(r->vectors);
	free_strs(r->meta, r->n);
	free_strs(r->names, r->nnames);
	mem_free(r->report);
	wire_rep_init(r);
}

/* ---- shared checks (the encoder refuses what the decoder would refuse) ---- */

/* True when the fixed-size name field holds "" or a valid name. */
static bool name_field_ok(const char *name)
{
	size_t len = strnlen(name, OMEN_MAX_NAME + 1);
	return len == 0 || name_valid(name, len);
}

static bool too_long(const char *s)
{
	return s && strnlen(s, WIRE_MAX_STRING + 1) > WIRE_MAX_STRING;
}

static bool strs_too_long(char *const *v, uint64_t n)
{
	for (uint64_t i = 0; v && i < n; i++)
		if (too_long(v[i]))
			return true;
	return false;
}

/* True when count values of width bytes fit one msgpack bin (32-bit length). */
static bool bin_fits(uint64_t count, uint64_t width)
{
	uint64_t bytes;
	return !__builtin_mul_overflow(count, width, &bytes) && bytes <= UINT32_MAX;
}

static int req_check_needs(const wire_req *r, char *err)
{
	unsigned need = op_needs[r->op];
	const char *op = op_names[r->op];
	if ((need & NEED_NAME) && !r->name[0])
		return fail(err, OMEN_EPROTO, "%s: 'name' missing", op);
	if ((need & NEED_N) && r->n == 0)
		return fail(err, OMEN_EPROTO, "%s: 'n' must be 1..%d", op, OMEN_MAX_BATCH);
	if ((need & NEED_DIM) && r->dim == 0)
		return fail(err, OMEN_EPROTO, "%s: 'dim' must be 1..%d", op, OMEN_MAX_DIM);
	if ((need & NEED_K) && r->k == 0)
		return fail(err, OMEN_EPROTO, "%s: 'k' must be 1..%d", op, OMEN_MAX_K);
	if ((need & NEED_IDS) && !r->ids)
		return fail(err, OMEN_EPROTO, "%s: 'ids' missing", op);
	if ((need & NEED_VEC) && !r->vectors)
		return fail(err, OMEN_EPROTO, "%s: 'vec' missing", op);
	if ((need & NEED_ADDR) && (!r->addr || !r->addr[0] || r->node == 0))
		return fail(err, OMEN_EPROTO, "%s: 'node' and 'addr' required", op);
	return OMEN_OK;
}

/* Checks a request's ranges and what its op requires. OMEN_OK or OMEN_EPROTO with a reason. */
static int req_check(const wire_req *r, char *err)
{
	if ((unsigned)r->op >= WIRE_OP_COUNT)
		return fail(err, OMEN_EPROTO, "op %d out of range", (int)r->op);
	if (r->shard < -1 || r->shard >= WIRE_MAX_SHARDS)
		return fail(err, OMEN_EPROTO, "'shard' %d out of range", (int)r->shard);
	if (!name_field_ok(r->name))
		return fail(err, OMEN_EPROTO, "'name' is not 1..%d bytes of [A-Za-z0-9_.-]",
		            OMEN_MAX_NAME);
	if (r->n > OMEN_MAX_BATCH || r->dim > OMEN_MAX_DIM || r->k > OMEN_MAX_K ||
	    r->nshards > WIRE_MAX_SHARDS)
		return fail(err, OMEN_EPROTO, "'n', 'dim', 'k' or 'nshards' beyond its limit");
	if (r->mode >= FENCE_MODES || (r->op == WIRE_IDS && r->mode > WIRE_IDS_TRACKED) ||
	    (r->op == WIRE_BUILD && r->mode > WIRE_BUILD_BACKGROUND))
		return fail(err, OMEN_EPROTO, "'mode' %u out of range", r->mode);
	if (r->addr && strnlen(r->addr, WIRE_MAX_ADDR + 1) > WIRE_MAX_ADDR)
		return fail(err, OMEN_EPROTO, "'addr' is longer than %d bytes", WIRE_MAX_ADDR);
	if (too_long(r->token) || too_long(r->filter) || strs_too_long(r->meta, r->n))
		return fail(err, OMEN_EPROTO, "a string is longer than %u bytes", WIRE_MAX_STRING);
	if ((unsigned)r->metric > OMEN_METRIC_COSINE || (unsigned)r->index_type > OMEN_INDEX_IVF)
		return fail(err, OMEN_EPROTO, "'metric' or 'itype' out of range");
	if (r->nlist > OMEN_IVF_NLIST_MAX || r->nprobe > OMEN_IVF_NLIST_MAX ||
	    r->bits > OMEN_IVF_BITS_MAX)
		return fail(err, OMEN_EPROTO, "'nlist', 'nprobe' or 'bits' beyond its limit");
	if (!bin_fits(r->n * r->dim, 4))
		return fail(err, OMEN_EPROTO, "'vec' exceeds 4 GiB");
	return req_check_needs(r, err);
}

static int stats_check(const omen_collection_stats *s, char *err)
{
	if (!name_field_ok(s->name) || s->dim > OMEN_MAX_DIM ||
	    (unsigned)s->metric > OMEN_METRIC_COSINE)
		return fail(err, OMEN_EPROTO, "'stats': bad name, dim or metric");
	if (s->index && strnlen(s->index, MAX_INDEX_NAME + 1) > MAX_INDEX_NAME)
		return fail(err, OMEN_EPROTO, "'stats': index name too long");
	if (s->ivf_nlist > OMEN_IVF_NLIST_MAX || s->ivf_nprobe > OMEN_IVF_NLIST_MAX ||
	    s->ivf_bits > OMEN_IVF_BITS_MAX)
		return fail(err, OMEN_EPROTO, "'stats': nlist, nprobe or bits beyond its limit");
	return OMEN_OK;
}

static int rep_check_arrays(const wire_rep *r, char *err)
{
	if (r->n > OMEN_MAX_BATCH || r->k > OMEN_MAX_K || r->dim > OMEN_MAX_DIM ||
	    r->nnames > OMEN_MAX_BATCH)
		return fail(err, OMEN_EPROTO, "'n', 'k', 'dim' or 'names' beyond its limit");
	if (!bin_fits(r->n * (r->k ? r->k : 1), 8) || !bin_fits(r->n * r->dim, 4))
		return fail(err, OMEN_EPROTO, "'ids', 'dists' or 'vec' exceeds 4 GiB");
	if (r->nnames && !r->names)
		return fail(err, OMEN_EPROTO, "'names' missing");
	for (uint64_t i = 0; i < r->nnames; i++)
		if (!r->names[i] ||
		    !name_valid(r->names[i], strnlen(r->names[i], OMEN_MAX_NAME + 1)))
			return fail(err, OMEN_EPROTO, "'names'[%llu] is not a collection name",
			            (ull)i);
	for (uint64_t i = 0; r->found && i < r->n; i++)
		if (r->found[i] > 1)
			return fail(err, OMEN_EPROTO, "'found' holds a value other than 0 or 1");
	return OMEN_OK;
}

/* Checks a reply's ranges. OMEN_OK or OMEN_EPROTO with a reason. */
static int rep_check(const wire_rep *r, char *err)
{
	if (r->status < 0)
		return fail(err, OMEN_EPROTO, "'st' %d is negative", r->status);
	TRY(rep_check_arrays(r, err));
	if (too_long(r->message) || too_long(r->report) || strs_too_long(r->meta, r->n))
		return fail(err, OMEN_EPROTO, "a string is longer than %u bytes", WIRE_MAX_STRING);
	return r->has_stats ? stats_check(&r->stats, err) : OMEN_OK;
}

/* ---- little-endian arrays ---- */

/* Converts count values of width bytes between little-endian and host order, in place. */
static void swap_le(void *p, uint64_t count, size_t width)
{
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	uint8_t *b = p;
	for (uint64_t i = 0; i < count; i++, b += width)
		for (size_t j = 0; j < width / 2; j++) {
			uint8_t t = b[j];
			b[j] = b[width - 1 - j];
			b[width - 1 - j] = t;
		}
#else
	(void)p;
	(void)count;
	(void)width;
#endif
}

/* ---- encoding ---- */

/* An encoding pass: the first pass only counts the fields of a map, the second packs them. */
typedef struct enc {
	msgpack_packer pk;
	bool counting;
	uint32_t count;
	bool failed;
} enc;

static void ok(enc *e, int rc)
{
	if (rc != 0)
		e->failed = true;
}

/* Counts a field, or packs its key. True when the caller must pack the value. */
static bool field(enc *e, const char *key)
{
	if (e->counting) {
		e->count++;
		return false;
	}
	ok(e, msgpack_pack_str_with_body(&e->pk, key, strlen(key)));
	return true;
}

static void put_uint(enc *e, const char *key, uint64_t v)
{
	if (v && field(e, key))
		ok(e, msgpack_pack_uint64(&e->pk, v));
}

static void put_bool(enc *e, const char *key, int v)
{
	if (v && field(e, key))
		ok(e, msgpack_pack_true(&e->pk));
}

static void put_str(enc *e, const char *key, const char *s)
{
	if (s && field(e, key))
		ok(e, msgpack_pack_str_with_body(&e->pk, s, strlen(s)));
}

/* Packs count values of width bytes as a bin of little-endian values; nothing when empty. */
static void put_bin(enc *e, const char *key, const void *p, uint64_t count, size_t width)
{
	size_t bytes = (size_t)(count * width);
	if (!p || bytes == 0 || !field(e, key))
		return;
	ok(e, msgpack_pack_bin(&e->pk, bytes));
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
	void *tmp = mem_alloc(bytes);
	if (!tmp) {
		e->failed = true;
		return;
	}
	memcpy(tmp, p, bytes);
	swap_le(tmp, count, width);
	ok(e, msgpack_pack_bin_body(&e->pk, tmp, bytes));
	mem_free(tmp);
#else
	ok(e, msgpack_pack_bin_body(&e->pk, p, bytes));
#endif
}

/* Packs n strings (NULL entries as nil) as an array; nothing when empty. */
static void put_strs(enc *e, const char *key, char *const *v, uint64_t n)
{
	if (!v || n == 0 || !field(e, key))
		return;
	ok(e, msgpack_pack_array(&e->pk, (size_t)n));
	for (uint64_t i = 0; i < n; i++)
		if (v[i])
			ok(e, msgpack_pack_str_with_body(&e->pk, v[i], strlen(v[i])));
		else
			ok(e, msgpack_pack_nil(&e->pk));
}

typedef void (*emit_fn)(enc *e, const void *msg);

/* Packs a nested map whose fields emit writes. */
static void put_map(enc *e, const char *key, emit_fn emit, const void *arg)
{
	if (!field(e, key))
		return;
	enc sub = {.counting = true};
	emit(&sub, arg);
	ok(e, msgpack_pack_map(&e->pk, sub.count));
	emit(e, arg);
}

static void emit_req(enc *e, const void *msg)
{
	const wire_req *r = msg;
	const char *const *K = req_keys;
	put_uint(e, K[RQ_V], WIRE_VERSION);
	put_str(e, K[RQ_OP], op_names[r->op]);
	put_str(e, K[RQ_TOKEN], r->token);
	put_uint(e, K[RQ_EPOCH], r->epoch);
	if (r->shard != -1 && field(e, K[RQ_SHARD]))
		ok(e, msgpack_pack_int32(&e->pk, r->shard));
	put_str(e, K[RQ_NAME], r->name[0] ? r->name : NULL);
	put_uint(e, K[RQ_DIM], r->dim);
	put_uint(e, K[RQ_METRIC], (uint64_t)r->metric);
	put_uint(e, K[RQ_NSHARDS], r->nshards);
	put_uint(e, K[RQ_N], r->n);
	put_bin(e, K[RQ_IDS], r->ids, r->n, 8);
	put_bin(e, K[RQ_VEC], r->vectors, r->n * r->dim, 4);
	put_strs(e, K[RQ_META], r->meta, r->n);
	put_uint(e, K[RQ_K], r->k);
	put_uint(e, K[RQ_EF], r->ef);
	put_bool(e, K[RQ_EXACT], r->exact);
	put_bool(e, K[RQ_PARTIAL], r->partial);
	put_uint(e, K[RQ_DEADLINE], r->deadline_ms);
	put_str(e, K[RQ_FILTER], r->filter);
	put_uint(e, K[RQ_ITYPE], (uint64_t)r->index_type);
	put_uint(e, K[RQ_M], r->m);
	put_uint(e, K[RQ_EFC], r->ef_construction);
	put_bool(e, K[RQ_INT8], r->int8);
	put_uint(e, K[RQ_NLIST], r->nlist);
	put_uint(e, K[RQ_BITS], r->bits);
	put_uint(e, K[RQ_RAM], r->ram_budget);
	put_uint(e, K[RQ_NPROBE], r->nprobe);
	put_uint(e, K[RQ_START], r->start);
	put_uint(e, K[RQ_MODE], r->mode);
	put_uint(e, K[RQ_NODE], r->node);
	put_str(e, K[RQ_ADDR], r->addr);
}

static void emit_stats(enc *e, const void *msg)
{
	const omen_collection_stats *s = msg;
	const char *const *K = stats_keys;
	put_str(e, K[CS_NAME], s->name[0] ? s->name : NULL);
	put_uint(e, K[CS_DIM], s->dim);
	put_uint(e, K[CS_METRIC], (uint64_t)s->metric);
	put_uint(e, K[CS_POINTS], s->points);
	put_uint(e, K[CS_DELETED], s->deleted);
	put_uint(e, K[CS_NEXT_ID], s->next_id);
	put_uint(e, K[CS_SEGMENTS], s->segments);
	put_uint(e, K[CS_VBYTES], s->vector_bytes);
	put_str(e, K[CS_INDEX], s->index);
	put_uint(e, K[CS_INDEXED], s->indexed);
	put_uint(e, K[CS_IBYTES], s->index_bytes);
	put_uint(e, K[CS_M], s->hnsw_m);
	put_uint(e, K[CS_EFC], s->hnsw_ef_construction);
	put_bool(e, K[CS_INT8], s->hnsw_int8);
	put_uint(e, K[CS_NLIST], s->ivf_nlist);
	put_uint(e, K[CS_NPROBE], s->ivf_nprobe);
	put_uint(e, K[CS_BITS], s->ivf_bits);
}

static void emit_dbstats(enc *e, const void *msg)
{
	const omen_db_stats *s = msg;
	put_uint(e, dbstats_keys[DS_COLLS], s->collections);
	put_uint(e, dbstats_keys[DS_FBYTES], s->file_bytes);
	put_uint(e, dbstats_keys[DS_MBYTES], s->map_bytes);
}

static void emit_rep(enc *e, const void *msg)
{
	const wire_rep *r = msg;
	const char *const *K = rep_keys;
	put_uint(e, K[RP_V], WIRE_VERSION);
	put_uint(e, K[RP_ST], (uint64_t)r->status);
	put_str(e, K[RP_MSG], r->message);
	put_uint(e, K[RP_N], r->n);
	put_uint(e, K[RP_K], r->k);
	put_uint(e, K[RP_DIM], r->dim);
	put_bin(e, K[RP_IDS], r->ids, r->n * (r->k ? r->k : 1), 8);
	put_bin(e, K[RP_DISTS], r->dists, r->n * r->k, 4);
	put_bin(e, K[RP_FOUND], r->found, r->n, 1);
	put_bin(e, K[RP_VEC], r->vectors, r->n * r->dim, 4);
	put_strs(e, K[RP_META], r->meta, r->n);
	put_uint(e, K[RP_COUNT], r->count);
	put_uint(e, K[RP_SHT], r->shards_total);
	put_uint(e, K[RP_SHA], r->shards_answered);
	put_strs(e, K[RP_NAMES], r->names, r->nnames);
	put_str(e, K[RP_REPORT], r->report);
	if (r->has_stats)
		put_map(e, K[RP_STATS], emit_stats, &r->stats);
	if (r->has_dbstats)
		put_map(e, K[RP_DBSTATS], emit_dbstats, &r->dbstats);
}

/* Packs the map that emit describes into a malloc'd buffer. OMEN_OK or OMEN_ENOMEM. */
static int encode(emit_fn emit, const void *msg, void **out, size_t *len)
{
	msgpack_sbuffer sb;
	enc e = {.counting = true};
	emit(&e, msg);
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&e.pk, &sb, msgpack_sbuffer_write);
	e.counting = false;
	ok(&e, msgpack_pack_map(&e.pk, e.count));
	if (!e.failed)
		emit(&e, msg);
	if (e.failed) {
		msgpack_sbuffer_destroy(&sb);
		return OMEN_ENOMEM;
	}
	*len = sb.size;
	*out = msgpack_sbuffer_release(&sb);
	return OMEN_OK;
}

int wire_req_encode(const wire_req *r, void **out, size_t *len)
{
	if (!r || !out || !len || req_check(r, NULL) != OMEN_OK)
		return OMEN_EINVAL;
	return encode(emit_req, r, out, len);
}

int wire_rep_encode(const wire_rep *r, void **out, size_t *len)
{
	if (!r || !out || !len || rep_check(r, NULL) != OMEN_OK)
		return OMEN_EINVAL;
	return encode(emit_rep, r, out, len);
}

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
	swap_le(p, count, width);
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
			free_strs(v, i);
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
	return get_strs(f[RQ_META], req_keys[RQ_META], r->n, false, &r->meta, err);
}

/* Fills r from an unpacked map. r may be half filled on failure (wire_req_free cleans up). */
static int req_from_map(const msgpack_object_map *m, wire_req *r, char *err)
{
	const msgpack_object *f[RQ_NKEYS] = {0};
	TRY(check_version(m, err));
	TRY(collect(m, req_keys, RQ_NKEYS, f, err));
	TRY(req_scalars(f, r, err));
	TRY(req_arrays(f, r, err));
	return req_check(r, err);
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
	return rep_check(r, err);
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
