/*
 * Tests of the wire protocol codec: round trips of every request and reply with bit-exact
 * arrays, and refusal (never a crash) of malformed and hostile bytes: truncation at every
 * offset, wrong versions and types, sizes that disagree, limits, huge declared headers, deep
 * nesting, trailing bytes, and random mutations of valid messages.
 */
#include <math.h>

#include <msgpack.h>

#define OMEN_TEST_INTERNAL
#include "helpers.h"
#include "wire/wire.h"

#define N   3
#define DIM 4
#define K   2

static uint64_t g_ids[N * K] = {0, 42, UINT64_MAX, 1ull << 63, 7, OMEN_NO_ID - 1};
static float g_vec[N * DIM];
static float g_dists[N * K];
static uint8_t g_found[N] = {1, 0, 1};
static char g_meta0[] = "{\"a\":1}", g_meta2[] = "{\"s\":\"\xc3\xa9t\xc3\xa9\"}";
static char *g_meta[N] = {g_meta0, NULL, g_meta2};
static char g_addr[] = "tcp://10.0.0.7:7701";
static char *g_copies[] = {"tcp://10.0.0.8:7701", "tcp://10.0.0.9:7701"};
static char g_tok[] = "s3cret", g_filter[] = "{\"a\":{\"$gt\":1}}";
static char g_n0[] = "a", g_n1[] = "b.c", g_n2[] = "Z-9_x";
static char *g_names[3] = {g_n0, g_n1, g_n2};
static char g_msg[] = "collection 'x': dimension 128 expected, got 100";
static char g_report[] = "levels: ok\nreachable: 10/10\n";

/* Floats whose bits must survive: NaN payloads, signed zero, infinities, subnormals. */
static void fill_floats(void)
{
	uint32_t bits[] = {0x7fc00001u, 0xffc12345u, 0x80000000u, 0x00000001u};
	for (size_t i = 0; i < N * DIM; i++)
		g_vec[i] = (float)i * 0.25f - 1.0f;
	memcpy(&g_vec[0], &bits[0], 4);
	memcpy(&g_vec[5], &bits[1], 4);
	memcpy(&g_vec[6], &bits[2], 4);
	memcpy(&g_vec[11], &bits[3], 4);
	for (size_t i = 0; i < N * K; i++)
		g_dists[i] = (float)i * 0.5f;
	g_dists[N * K - 1] = INFINITY;
	memcpy(&g_dists[1], &bits[0], 4);
}

/* A request of op with every field set. */
static void req_full(wire_req *r, wire_op op)
{
	wire_req_init(r);
	r->op = op;
	r->token = g_tok;
	r->epoch = UINT64_MAX - 1;
	r->shard = 5;
	strcpy(r->name, "docs.v1-test_A");
	r->dim = DIM;
	r->metric = OMEN_METRIC_COSINE;
	r->nshards = WIRE_MAX_SHARDS;
	r->replicas = WIRE_MAX_REPLICAS;
	r->n = N;
	r->ids = g_ids;
	r->vectors = g_vec;
	r->meta = g_meta;
	r->k = K;
	r->ef = 100;
	r->exact = 1;
	r->partial = 1;
	r->deadline_ms = 250;
	r->filter = g_filter;
	r->index_type = OMEN_INDEX_IVF;
	r->m = 32;
	r->ef_construction = 400;
	r->int8 = 1;
	r->nlist = OMEN_IVF_NLIST_MAX;
	r->bits = OMEN_IVF_BITS_MAX;
	r->ram_budget = UINT64_MAX - 5;
	r->nprobe = OMEN_IVF_NLIST_MAX - 1;
	r->start = UINT64_MAX - 7;
	r->mode = WIRE_IDS_TRACKED;
	r->node = UINT64_MAX - 3;
	r->addr = g_addr;
	r->copies = g_copies;
	r->ncopies = 2;
}

/* A request of op with only the fields its op requires. */
static void req_min(wire_req *r, wire_op op)
{
	wire_req_init(r);
	r->op = op;
	if (op == WIRE_HEALTH || op == WIRE_LIST || op == WIRE_DBSTATS || op == WIRE_FLUSH)
		return;
	if (op == WIRE_JOIN) {
		r->node = 1u << 20;
		r->addr = "tcp://127.0.0.1:7701";
		return;
	}
	strcpy(r->name, "c");
	if (op == WIRE_IDS)
		r->n = N;
	if (op == WIRE_CREATE || op == WIRE_UPSERT || op == WIRE_SEARCH)
		r->dim = DIM;
	if (op == WIRE_UPSERT || op == WIRE_SEARCH || op == WIRE_GET || op == WIRE_DELETE ||
	    op == WIRE_COPYFAIL)
		r->n = N;
	if (op == WIRE_UPSERT || op == WIRE_SEARCH)
		r->vectors = g_vec;
	if (op == WIRE_GET || op == WIRE_DELETE || op == WIRE_COPYFAIL)
		r->ids = g_ids;
	if (op == WIRE_SEARCH)
		r->k = K;
}

enum {
	REP_ALL,
	REP_SEARCH,
	REP_GET,
	REP_UPSERT,
	REP_LIST,
	REP_STATS,
	REP_DB,
	REP_ERROR,
	REP_CHECK,
	REP_HEALTH,
	REP_EMPTY,
	REP_KINDS
};

static void rep_make(wire_rep *r, int kind)
{
	wire_rep_init(r);
	bool all = kind == REP_ALL;
	if (all || kind == REP_SEARCH || kind == REP_GET || kind == REP_UPSERT)
		r->n = N;
	if (all || kind == REP_SEARCH) {
		r->k = K;
		r->ids = g_ids;
		r->dists = g_dists;
		r->count = 1000;
		r->shards_total = 8;
		r->shards_answered = 7;
		r->failed = 5;
	}
	if (kind == REP_UPSERT)
		r->ids = g_ids;
	if (all || kind == REP_GET) {
		r->dim = DIM;
		r->found = g_found;
		r->vectors = g_vec;
		r->meta = g_meta;
	}
	if (all || kind == REP_LIST) {
		r->nnames = 3;
		r->names = g_names;
	}
	if (all || kind == REP_STATS) {
		r->has_stats = 1;
		omen_collection_stats *s = &r->stats;
		strcpy(s->name, "docs");
		s->dim = 768;
		s->metric = OMEN_METRIC_IP;
		s->points = 1000000;
		s->deleted = 3;
		s->next_id = 1000003;
		s->segments = 1;
		s->vector_bytes = 3ull << 30;
		s->index = "hnsw";
		s->indexed = 999999;
		s->index_bytes = 1ull << 33;
		s->hnsw_m = 16;
		s->hnsw_ef_construction = 200;
		s->hnsw_int8 = 1;
		s->ivf_nlist = OMEN_IVF_NLIST_MAX;
		s->ivf_nprobe = 300;
		s->ivf_bits = OMEN_IVF_BITS_MAX;
		s->replicas = WIRE_MAX_REPLICAS;
		s->copies_stale = 7;
	}
	if (all || kind == REP_DB) {
		r->has_dbstats = 1;
		r->dbstats = (omen_db_stats){12, 1ull << 40, (1ull << 40) + 4096};
	}
	if (all || kind == REP_ERROR) {
		r->status = all ? OMEN_EAUTH : OMEN_ENOTFOUND;
		r->message = g_msg;
	}
	if (all || kind == REP_CHECK) {
		r->status = OMEN_ECORRUPT;
		r->report = g_report;
	}
	if (kind == REP_HEALTH)
		r->count = 4;
}

/* ---- comparison ---- */

static void assert_str_eq(const char *a, const char *b)
{
	if (!a || !b)
		assert_ptr_equal(a, b);
	else
		assert_string_equal(a, b);
}

static void assert_strs_eq(char *const *a, char *const *b, uint64_t n)
{
	if (!a || !b || n == 0) {
		assert_true((!a || n == 0) == (!b || n == 0));
		return;
	}
	for (uint64_t i = 0; i < n; i++)
		assert_str_eq(a[i], b[i]);
}

/* Bit-exact comparison of two arrays of bytes bytes, either NULL when empty. */
static void assert_mem_eq(const void *a, const void *b, uint64_t bytes)
{
	if (bytes == 0)
		return;
	assert_non_null(a);
	assert_non_null(b);
	assert_memory_equal(a, b, bytes);
}

static void assert_req_eq(const wire_req *a, const wire_req *b)
{
	assert_int_equal(a->op, b->op);
	assert_str_eq(a->token, b->token);
	assert_true(a->epoch == b->epoch);
	assert_int_equal(a->shard, b->shard);
	assert_string_equal(a->name, b->name);
	assert_int_equal(a->dim, b->dim);
	assert_int_equal(a->metric, b->metric);
	assert_int_equal(a->nshards, b->nshards);
	assert_int_equal(a->replicas, b->replicas);
	assert_true(a->n == b->n);
	assert_int_equal(a->ids != NULL, b->ids != NULL);
	assert_int_equal(a->vectors != NULL, b->vectors != NULL);
	if (a->ids)
		assert_mem_eq(a->ids, b->ids, a->n * 8);
	if (a->vectors)
		assert_mem_eq(a->vectors, b->vectors, a->n * a->dim * 4);
	assert_strs_eq(a->meta, b->meta, a->n);
	assert_int_equal(a->k, b->k);
	assert_int_equal(a->ef, b->ef);
	assert_int_equal(!!a->exact, !!b->exact);
	assert_int_equal(!!a->partial, !!b->partial);
	assert_int_equal(a->deadline_ms, b->deadline_ms);
	assert_str_eq(a->filter, b->filter);
	assert_int_equal(a->index_type, b->index_type);
	assert_int_equal(a->m, b->m);
	assert_int_equal(a->ef_construction, b->ef_construction);
	assert_int_equal(!!a->int8, !!b->int8);
	assert_int_equal(a->nlist, b->nlist);
	assert_int_equal(a->bits, b->bits);
	assert_true(a->ram_budget == b->ram_budget);
	assert_int_equal(a->nprobe, b->nprobe);
	assert_true(a->start == b->start && a->node == b->node);
	assert_int_equal(a->mode, b->mode);
	assert_str_eq(a->addr, b->addr);
	assert_int_equal(a->ncopies, b->ncopies);
	assert_strs_eq(a->copies, b->copies, a->ncopies);
}

static void assert_stats_eq(const omen_collection_stats *a, const omen_collection_stats *b)
{
	assert_string_equal(a->name, b->name);
	assert_int_equal(a->dim, b->dim);
	assert_int_equal(a->metric, b->metric);
	assert_true(a->points == b->points && a->deleted == b->deleted);
	assert_true(a->next_id == b->next_id && a->segments == b->segments);
	assert_true(a->vector_bytes == b->vector_bytes && a->indexed == b->indexed);
	assert_true(a->index_bytes == b->index_bytes);
	assert_str_eq(a->index, b->index);
	assert_int_equal(a->hnsw_m, b->hnsw_m);
	assert_int_equal(a->hnsw_ef_construction, b->hnsw_ef_construction);
	assert_int_equal(!!a->hnsw_int8, !!b->hnsw_int8);
	assert_int_equal(a->ivf_nlist, b->ivf_nlist);
	assert_int_equal(a->ivf_nprobe, b->ivf_nprobe);
	assert_int_equal(a->ivf_bits, b->ivf_bits);
	assert_int_equal(a->replicas, b->replicas);
	assert_int_equal(a->copies_stale, b->copies_stale);
}

static void assert_rep_eq(const wire_rep *a, const wire_rep *b)
{
	assert_int_equal(a->status, b->status);
	assert_str_eq(a->message, b->message);
	assert_true(a->n == b->n);
	assert_int_equal(a->k, b->k);
	assert_int_equal(a->dim, b->dim);
	assert_int_equal(a->ids != NULL, b->ids != NULL);
	if (a->ids)
		assert_mem_eq(a->ids, b->ids, a->n * (a->k ? a->k : 1) * 8);
	assert_int_equal(a->dists != NULL, b->dists != NULL);
	if (a->dists)
		assert_mem_eq(a->dists, b->dists, a->n * a->k * 4);
	assert_int_equal(a->found != NULL, b->found != NULL);
	if (a->found)
		assert_mem_eq(a->found, b->found, a->n);
	assert_int_equal(a->vectors != NULL, b->vectors != NULL);
	if (a->vectors)
		assert_mem_eq(a->vectors, b->vectors, a->n * a->dim * 4);
	assert_strs_eq(a->meta, b->meta, a->n);
	assert_true(a->count == b->count);
	assert_int_equal(a->shards_total, b->shards_total);
	assert_int_equal(a->shards_answered, b->shards_answered);
	assert_int_equal(a->failed, b->failed);
	assert_true(a->nnames == b->nnames);
	assert_strs_eq(a->names, b->names, a->nnames);
	assert_str_eq(a->report, b->report);
	assert_int_equal(a->has_stats, b->has_stats);
	if (a->has_stats)
		assert_stats_eq(&a->stats, &b->stats);
	assert_int_equal(a->has_dbstats, b->has_dbstats);
	assert_true(!a->has_dbstats || memcmp(&a->dbstats, &b->dbstats, sizeof a->dbstats) == 0);
}

/* ---- encode / decode helpers ---- */

typedef struct msg {
	uint8_t *p;
	size_t len;
} msg;

static msg enc_req(const wire_req *r)
{
	void *p = NULL;
	msg m = {0};
	assert_int_equal(wire_req_encode(r, &p, &m.len), OMEN_OK);
	m.p = p;
	return m;
}

static msg enc_rep(const wire_rep *r)
{
	void *p = NULL;
	msg m = {0};
	assert_int_equal(wire_rep_encode(r, &p, &m.len), OMEN_OK);
	m.p = p;
	return m;
}

static bool req_is_empty(const wire_req *r)
{
	wire_req e;
	wire_req_init(&e);
	return memcmp(r, &e, sizeof e) == 0;
}

static bool rep_is_empty(const wire_rep *r)
{
	wire_rep e;
	wire_rep_init(&e);
	return memcmp(r, &e, sizeof e) == 0;
}

/* Decodes m as a request, expecting status want; on failure checks the one-line reason and
 * that the request was left empty. */
static void want_req(msg m, int want)
{
	wire_req r;
	char err[WIRE_ERRLEN] = "";
	int rc = wire_req_decode(m.p, m.len, WIRE_MAX_MSG_DEFAULT, &r, err);
	if (rc != want)
		fail_msg("request decode: got %d, want %d (%s)", rc, want, err);
	if (rc != OMEN_OK) {
		assert_true(req_is_empty(&r));
		assert_true(strlen(err) > 0 && !strchr(err, '\n'));
	}
	wire_req_free(&r);
}

static void want_rep(msg m, int want)
{
	wire_rep r;
	char err[WIRE_ERRLEN] = "";
	int rc = wire_rep_decode(m.p, m.len, WIRE_MAX_MSG_DEFAULT, &r, err);
	if (rc != want)
		fail_msg("reply decode: got %d, want %d (%s)", rc, want, err);
	if (rc != OMEN_OK) {
		assert_true(rep_is_empty(&r));
		assert_true(strlen(err) > 0 && !strchr(err, '\n'));
	}
	wire_rep_free(&r);
}

static void req_roundtrip(const wire_req *in)
{
	wire_req out;
	char err[WIRE_ERRLEN];
	msg m = enc_req(in);
	int rc = wire_req_decode(m.p, m.len, m.len, &out, err);
	if (rc != OMEN_OK)
		fail_msg("%s: %s", wire_op_name(in->op), err);
	assert_req_eq(in, &out);
	wire_req_free(&out);
	assert_true(req_is_empty(&out));
	free(m.p);
}

static void rep_roundtrip(const wire_rep *in)
{
	wire_rep out;
	char err[WIRE_ERRLEN];
	msg m = enc_rep(in);
	int rc = wire_rep_decode(m.p, m.len, m.len, &out, err);
	if (rc != OMEN_OK)
		fail_msg("%s", err);
	assert_rep_eq(in, &out);
	wire_rep_free(&out);
	assert_true(rep_is_empty(&out));
	free(m.p);
}

/* ---- message surgery: re-encode a valid map with one key replaced, removed or added ---- */

enum { REPLACE, APPEND };

/* Returns m's map with key's value replaced by the raw msgpack bytes val (NULL: key removed),
 * or with key and val appended (APPEND, or REPLACE of an absent key). key NULL appends val as
 * a raw key-value pair. Caller frees .p. */
static msg edit_raw(msg m, const char *key, const void *val, size_t vlen, int mode)
{
	msgpack_unpacked up;
	msgpack_sbuffer sb;
	msgpack_packer pk;
	size_t off = 0;
	msgpack_unpacked_init(&up);
	assert_int_equal(msgpack_unpack_next(&up, (const char *)m.p, m.len, &off),
	                 MSGPACK_UNPACK_SUCCESS);
	const msgpack_object_map *map = &up.data.via.map;
	uint32_t hit = map->size;
	for (uint32_t i = 0; key && mode == REPLACE && i < map->size; i++)
		if (map->ptr[i].key.type == MSGPACK_OBJECT_STR &&
		    map->ptr[i].key.via.str.size == strlen(key) &&
		    memcmp(map->ptr[i].key.via.str.ptr, key, strlen(key)) == 0)
			hit = i;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	uint32_t count = map->size + (hit == map->size ? 1 : 0) - (hit < map->size && !val ? 1 : 0);
	msgpack_pack_map(&pk, count);
	for (uint32_t i = 0; i < map->size; i++) {
		if (i == hit && !val)
			continue;
		msgpack_pack_object(&pk, map->ptr[i].key);
		if (i == hit)
			msgpack_sbuffer_write(&sb, val, vlen);
		else
			msgpack_pack_object(&pk, map->ptr[i].val);
	}
	if (hit == map->size) {
		if (key)
			msgpack_pack_str_with_body(&pk, key, strlen(key));
		msgpack_sbuffer_write(&sb, val, vlen);
	}
	msgpack_unpacked_destroy(&up);
	msg out = {(uint8_t *)sb.data, sb.size};
	return out;
}

/* The same with a msgpack object as the new value. */
static msg edit(msg m, const char *key, msgpack_object val, int mode)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	msgpack_pack_object(&pk, val);
	msg out = edit_raw(m, key, sb.data, sb.size, mode);
	msgpack_sbuffer_destroy(&sb);
	return out;
}

static msgpack_object o_uint(uint64_t v)
{
	msgpack_object o = {.type = MSGPACK_OBJECT_POSITIVE_INTEGER, .via.u64 = v};
	return o;
}

static msgpack_object o_int(int64_t v)
{
	msgpack_object o = {.type = MSGPACK_OBJECT_NEGATIVE_INTEGER, .via.i64 = v};
	return o;
}

static msgpack_object o_strn(const char *s, uint32_t n)
{
	msgpack_object o = {.type = MSGPACK_OBJECT_STR, .via.str = {n, s}};
	return o;
}

static msgpack_object o_str(const char *s)
{
	return o_strn(s, (uint32_t)strlen(s));
}

static msgpack_object o_bin(const void *p, uint32_t n)
{
	msgpack_object o = {.type = MSGPACK_OBJECT_BIN, .via.bin = {n, p}};
	return o;
}

static msgpack_object o_bool(bool v)
{
	msgpack_object o = {.type = MSGPACK_OBJECT_BOOLEAN, .via.boolean = v};
	return o;
}

static msgpack_object o_nil(void)
{
	msgpack_object o = {.type = MSGPACK_OBJECT_NIL};
	return o;
}

static msgpack_object o_float(double v)
{
	msgpack_object o = {.type = MSGPACK_OBJECT_FLOAT64, .via.f64 = v};
	return o;
}

static msgpack_object o_arr(msgpack_object *items, uint32_t n)
{
	msgpack_object o = {.type = MSGPACK_OBJECT_ARRAY, .via.array = {n, items}};
	return o;
}

/* Decodes edit(m, key, val) as a request (is_req) or reply, expecting status want. */
static void want_edit(msg m, bool is_req, const char *key, msgpack_object val, int want)
{
	msg e = edit(m, key, val, REPLACE);
	if (is_req)
		want_req(e, want);
	else
		want_rep(e, want);
	free(e.p);
}

/* ---- tests ---- */

static void test_op_names(void **state)
{
	(void)state;
	const char *want[] = {"health", "create", "drop",   "list",  "stats",  "dbstats",
	                      "upsert", "get",    "delete", "count", "search", "build",
	                      "check",  "flush",  "ids",    "fence", "join",   "copyfail"};
	assert_int_equal(sizeof want / sizeof *want, WIRE_OP_COUNT);
	for (int i = 0; i < WIRE_OP_COUNT; i++)
		assert_string_equal(wire_op_name((wire_op)i), want[i]);
	assert_null(wire_op_name(WIRE_OP_COUNT));
	assert_null(wire_op_name((wire_op)-1));
}

static void test_req_roundtrip(void **state)
{
	(void)state;
	wire_req r;
	for (int op = 0; op < WIRE_OP_COUNT; op++) {
		req_full(&r, (wire_op)op);
		req_roundtrip(&r);
		req_min(&r, (wire_op)op);
		req_roundtrip(&r);
	}
	/* shard 0 differs from "none" (-1); metric 0 and false flags are omitted */
	req_min(&r, WIRE_COUNT);
	r.shard = 0;
	req_roundtrip(&r);
	req_min(&r, WIRE_UPSERT);
	r.meta = g_meta;
	req_roundtrip(&r);
}

static void test_rep_roundtrip(void **state)
{
	(void)state;
	wire_rep r;
	for (int kind = 0; kind < REP_KINDS; kind++) {
		rep_make(&r, kind);
		rep_roundtrip(&r);
	}
}

/* Decoded replies name the index through a static string: "flat", "hnsw" and "ivf" read as
 * themselves, unknown kinds as "?". */
static void test_stats_index(void **state)
{
	(void)state;
	const char *sent[] = {"flat", "hnsw", "ivf", "pq", "ivf2", ""};
	const char *want[] = {"flat", "hnsw", "ivf", "?", "?", "?"};
	for (size_t i = 0; i < sizeof sent / sizeof *sent; i++) {
		wire_rep r, out;
		char err[WIRE_ERRLEN];
		rep_make(&r, REP_STATS);
		r.stats.index = sent[i];
		msg m = enc_rep(&r);
		assert_int_equal(wire_rep_decode(m.p, m.len, m.len, &out, err), OMEN_OK);
		assert_string_equal(out.stats.index, want[i]);
		wire_rep_free(&out);
		free(m.p);
	}
}

/* IVF's fields are optional: a build, a search or statistics from a peer that predates them
 * decode with 0 (the defaults), everything else intact. */
static void test_ivf_fields_optional(void **state)
{
	(void)state;
	const char *req_ivf[] = {"nlist", "bits", "ram", "nprobe"};
	wire_req r, out;
	char err[WIRE_ERRLEN];
	for (int op = WIRE_SEARCH; op <= WIRE_BUILD; op++) {
		req_full(&r, (wire_op)op);
		msg m = enc_req(&r);
		for (size_t i = 0; i < sizeof req_ivf / sizeof *req_ivf; i++) {
			msg e = edit_raw(m, req_ivf[i], NULL, 0, REPLACE);
			free(m.p);
			m = e;
		}
		assert_int_equal(wire_req_decode(m.p, m.len, m.len, &out, err), OMEN_OK);
		assert_true(out.nlist == 0 && out.bits == 0 && out.ram_budget == 0 &&
		            out.nprobe == 0);
		r.nlist = r.bits = r.nprobe = 0, r.ram_budget = 0;
		assert_req_eq(&r, &out);
		wire_req_free(&out);
		free(m.p);
	}
	wire_rep p, pout;
	rep_make(&p, REP_STATS);
	p.stats.ivf_nlist = p.stats.ivf_nprobe = p.stats.ivf_bits = 0;
	msg m = enc_rep(&p); /* zeros are omitted: what an older shard sends */
	assert_null(memmem(m.p, m.len, "nlist", 5));
	assert_null(memmem(m.p, m.len, "bits", 4));
	assert_int_equal(wire_rep_decode(m.p, m.len, m.len, &pout, err), OMEN_OK);
	assert_rep_eq(&p, &pout);
	wire_rep_free(&pout);
	free(m.p);
}

static void test_encode_refuses(void **state)
{
	(void)state;
	wire_req r;
	wire_rep p;
	void *buf = NULL;
	size_t len = 0;
#define REQ_BAD(stmt)                                                                              \
	do {                                                                                       \
		req_full(&r, WIRE_SEARCH);                                                         \
		stmt;                                                                              \
		assert_int_equal(wire_req_encode(&r, &buf, &len), OMEN_EINVAL);                    \
	} while (0)
	REQ_BAD(r.op = WIRE_OP_COUNT);
	REQ_BAD(r.vectors = NULL);
	REQ_BAD(r.n = 0);
	REQ_BAD(r.k = 0);
	REQ_BAD(r.k = OMEN_MAX_K + 1);
	REQ_BAD(r.dim = OMEN_MAX_DIM + 1);
	REQ_BAD(r.n = OMEN_MAX_BATCH + 1);
	REQ_BAD(r.name[0] = '\0');
	REQ_BAD(strcpy(r.name, "bad name"));
	REQ_BAD(memset(r.name, 'a', sizeof r.name));
	REQ_BAD(r.shard = -2);
	REQ_BAD(r.shard = WIRE_MAX_SHARDS);
	REQ_BAD(r.metric = (omen_metric)3);
	REQ_BAD(r.index_type = (omen_index_type)(OMEN_INDEX_IVF + 1));
	REQ_BAD(r.nlist = OMEN_IVF_NLIST_MAX + 1);
	REQ_BAD(r.nprobe = OMEN_IVF_NLIST_MAX + 1);
	REQ_BAD(r.bits = OMEN_IVF_BITS_MAX + 1);
	REQ_BAD(r.nshards = WIRE_MAX_SHARDS + 1);
	REQ_BAD(r.replicas = WIRE_MAX_REPLICAS + 1);
	REQ_BAD((r.op = WIRE_GET, r.ids = NULL));
	assert_int_equal(wire_req_encode(NULL, &buf, &len), OMEN_EINVAL);
	req_full(&r, WIRE_HEALTH);
	assert_int_equal(wire_req_encode(&r, NULL, &len), OMEN_EINVAL);
#define REP_BAD(stmt)                                                                              \
	do {                                                                                       \
		rep_make(&p, REP_ALL);                                                             \
		stmt;                                                                              \
		assert_int_equal(wire_rep_encode(&p, &buf, &len), OMEN_EINVAL);                    \
	} while (0)
	REP_BAD(p.status = -1);
	REP_BAD(p.names = NULL);
	char *holes[3] = {g_n0, NULL, g_n2};
	REP_BAD(p.names = holes);
	uint8_t bad_found[N] = {1, 2, 0};
	REP_BAD(p.found = bad_found);
	REP_BAD(p.stats.metric = (omen_metric)5);
	REP_BAD(p.stats.ivf_nlist = OMEN_IVF_NLIST_MAX + 1);
	REP_BAD(p.stats.ivf_nprobe = OMEN_IVF_NLIST_MAX + 1);
	REP_BAD(p.stats.ivf_bits = OMEN_IVF_BITS_MAX + 1);
	REP_BAD(p.k = OMEN_MAX_K + 1);
	char *big = malloc(WIRE_MAX_STRING + 2);
	memset(big, 'x', WIRE_MAX_STRING + 1);
	big[WIRE_MAX_STRING + 1] = '\0';
	REP_BAD(p.message = big);
	REQ_BAD(r.filter = big);
	big[WIRE_MAX_STRING] = '\0'; /* exactly the limit is fine */
	rep_make(&p, REP_ERROR);
	p.message = big;
	rep_roundtrip(&p);
	free(big);
	assert_null(buf);
}

/* Every message and every prefix of it, decoded as a request and as a reply. */
typedef struct corpus {
	msg m[2 * WIRE_OP_COUNT + REP_KINDS];
	bool is_req[2 * WIRE_OP_COUNT + REP_KINDS];
	size_t n;
} corpus;

static void corpus_make(corpus *c)
{
	wire_req r;
	wire_rep p;
	c->n = 0;
	for (int op = 0; op < WIRE_OP_COUNT; op++) {
		req_full(&r, (wire_op)op);
		c->is_req[c->n] = true;
		c->m[c->n++] = enc_req(&r);
		req_min(&r, (wire_op)op);
		c->is_req[c->n] = true;
		c->m[c->n++] = enc_req(&r);
	}
	for (int kind = 0; kind < REP_KINDS; kind++) {
		rep_make(&p, kind);
		c->is_req[c->n] = false;
		c->m[c->n++] = enc_rep(&p);
	}
}

static void corpus_free(corpus *c)
{
	for (size_t i = 0; i < c->n; i++)
		free(c->m[i].p);
}

static void test_truncated(void **state)
{
	(void)state;
	corpus c;
	corpus_make(&c);
	size_t tried = 0;
	for (size_t i = 0; i < c.n; i++) {
		for (size_t cut = 0; cut < c.m[i].len; cut++) {
			/* a copy of exactly cut bytes, so that ASan sees any read past the end */
			uint8_t *p = malloc(cut ? cut : 1);
			memcpy(p, c.m[i].p, cut);
			msg t = {p, cut};
			want_req(t, OMEN_EPROTO);
			want_rep(t, OMEN_EPROTO);
			free(p);
			tried++;
		}
	}
	assert_true(tried > 1000);
	corpus_free(&c);
}

static void test_version(void **state)
{
	(void)state;
	wire_req r, out;
	char err[WIRE_ERRLEN];
	req_full(&r, WIRE_SEARCH);
	msg m = enc_req(&r);
	msg e = edit(m, "v", o_uint(2), REPLACE);
	assert_int_equal(wire_req_decode(e.p, e.len, e.len, &out, err), OMEN_EPROTO);
	assert_string_equal(err, "protocol version 2 not supported (this node speaks 1)");
	free(e.p);
	e = edit_raw(m, "v", NULL, 0, REPLACE);
	want_req(e, OMEN_EPROTO);
	free(e.p);
	want_edit(m, true, "v", o_str("1"), OMEN_EPROTO);
	want_edit(m, true, "v", o_uint(0), OMEN_EPROTO);
	free(m.p);
	wire_rep p;
	rep_make(&p, REP_ALL);
	m = enc_rep(&p);
	want_edit(m, false, "v", o_uint(1000), OMEN_EPROTO);
	free(m.p);
}

/* Every known key with a value of every wrong type. */
typedef struct keytype {
	const char *key;
	msgpack_object_type type;
} keytype;

static const keytype req_types[] = {
    {"op", MSGPACK_OBJECT_STR},
    {"tok", MSGPACK_OBJECT_STR},
    {"epoch", MSGPACK_OBJECT_POSITIVE_INTEGER},
    {"shard", MSGPACK_OBJECT_POSITIVE_INTEGER},
    {"name", MSGPACK_OBJECT_STR},
    {"dim", MSGPACK_OBJECT_POSITIVE_INTEGER},
    {"metric", MSGPACK_OBJECT_POSITIVE_INTEGER},
    {"nshards", MSGPACK_OBJECT_POSITIVE_INTEGER},
    {"n", MSGPACK_OBJECT_POSITIVE_INTEGER},
    {"ids", MSGPACK_OBJECT_BIN},
    {"vec", MSGPACK_OBJECT_BIN},
    {"meta", MSGPACK_OBJECT_ARRAY},
    {"k", MSGPACK_OBJECT_POSITIVE_INTEGER},
    {"ef", MSGPACK_OBJECT_POSITIVE_INTEGER},
    {"exact", MSGPACK_OBJECT_BOOLEAN},
    {"partial", MSGPACK_OBJECT_BOOLEAN},
    {"dl_ms", MSGPACK_OBJECT_POSITIVE_INTEGER},
    {"filter", MSGPACK_OBJECT_STR},
    {"itype", MSGPACK_OBJECT_POSITIVE_INTEGER},
    {"m", MSGPACK_OBJECT_POSITIVE_INTEGER},
    {"efc", MSGPACK_OBJECT_POSITIVE_INTEGER},
    {"int8", MSGPACK_OBJECT_BOOLEAN},
    {"nlist", MSGPACK_OBJECT_POSITIVE_INTEGER},
    {"bits", MSGPACK_OBJECT_POSITIVE_INTEGER},
    {"ram", MSGPACK_OBJECT_POSITIVE_INTEGER},
    {"nprobe", MSGPACK_OBJECT_POSITIVE_INTEGER},
    {"start", MSGPACK_OBJECT_POSITIVE_INTEGER},
    {"mode", MSGPACK_OBJECT_POSITIVE_INTEGER},
    {"node", MSGPACK_OBJECT_POSITIVE_INTEGER},
    {"addr", MSGPACK_OBJECT_STR},
    {"replicas", MSGPACK_OBJECT_POSITIVE_INTEGER},
};

static const keytype rep_types[] = {
    {"st", MSGPACK_OBJECT_POSITIVE_INTEGER},
    {"msg", MSGPACK_OBJECT_STR},
    {"n", MSGPACK_OBJECT_POSITIVE_INTEGER},
    {"k", MSGPACK_OBJECT_POSITIVE_INTEGER},
    {"dim", MSGPACK_OBJECT_POSITIVE_INTEGER},
    {"ids", MSGPACK_OBJECT_BIN},
    {"dists", MSGPACK_OBJECT_BIN},
    {"found", MSGPACK_OBJECT_BIN},
    {"vec", MSGPACK_OBJECT_BIN},
    {"meta", MSGPACK_OBJECT_ARRAY},
    {"count", MSGPACK_OBJECT_POSITIVE_INTEGER},
    {"sh_total", MSGPACK_OBJECT_POSITIVE_INTEGER},
    {"sh_ok", MSGPACK_OBJECT_POSITIVE_INTEGER},
    {"names", MSGPACK_OBJECT_ARRAY},
    {"report", MSGPACK_OBJECT_STR},
    {"stats", MSGPACK_OBJECT_MAP},
    {"dbstats", MSGPACK_OBJECT_MAP},
};

static void wrong_types(msg m, bool is_req, const keytype *kt, size_t n)
{
	msgpack_object one = o_uint(1);
	msgpack_object wrong[] = {o_uint(1), o_int(-5), o_str("x"),   o_bin("xy", 2),
	                          o_bool(1), o_nil(),   o_float(1.0), o_arr(&one, 1)};
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < sizeof wrong / sizeof *wrong; j++)
			if (wrong[j].type != kt[i].type)
				want_edit(m, is_req, kt[i].key, wrong[j], OMEN_EPROTO);
}

static void test_wrong_types(void **state)
{
	(void)state;
	wire_req r;
	wire_rep p;
	req_full(&r, WIRE_SEARCH);
	msg m = enc_req(&r);
	wrong_types(m, true, req_types, sizeof req_types / sizeof *req_types);
	free(m.p);
	rep_make(&p, REP_ALL);
	m = enc_rep(&p);
	wrong_types(m, false, rep_types, sizeof rep_types / sizeof *rep_types);
	/* inside the nested maps */
	msgpack_object_kv kv[] = {{o_str("dim"), o_str("768")}};
	msgpack_object smap = {.type = MSGPACK_OBJECT_MAP, .via.map = {1, kv}};
	want_edit(m, false, "stats", smap, OMEN_EPROTO);
	kv[0] = (msgpack_object_kv){o_str("index"), o_uint(1)};
	want_edit(m, false, "stats", smap, OMEN_EPROTO);
	kv[0] = (msgpack_object_kv){o_str("name"), o_str("no/slash")};
	want_edit(m, false, "stats", smap, OMEN_EPROTO);
	kv[0] = (msgpack_object_kv){o_str("nlist"), o_str("64")};
	want_edit(m, false, "stats", smap, OMEN_EPROTO);
	kv[0] = (msgpack_object_kv){o_str("bits"), o_bool(1)};
	want_edit(m, false, "stats", smap, OMEN_EPROTO);
	kv[0] = (msgpack_object_kv){o_str("colls"), o_int(-1)};
	want_edit(m, false, "dbstats", smap, OMEN_EPROTO);
	kv[0] = (msgpack_object_kv){o_str("colls"), o_uint(3)};
	want_edit(m, false, "dbstats", smap, OMEN_OK);
	free(m.p);
}

/* Requests with a field beyond its limit or inconsistent with the others. */
static void test_req_limits(void **state)
{
	(void)state;
	wire_req r;
	req_full(&r, WIRE_SEARCH);
	msg m = enc_req(&r);
	struct {
		const char *key;
		msgpack_object val;
		int want;
	} cases[] = {
	    {"n", o_uint(OMEN_MAX_BATCH + 1), OMEN_EPROTO},
	    {"n", o_uint(N + 1), OMEN_EPROTO}, /* arrays no longer n long */
	    {"dim", o_uint(OMEN_MAX_DIM + 1), OMEN_EPROTO},
	    {"dim", o_uint(DIM / 2), OMEN_EPROTO},
	    {"k", o_uint(0), OMEN_EPROTO},
	    {"k", o_uint(OMEN_MAX_K + 1), OMEN_EPROTO},
	    {"k", o_uint(OMEN_MAX_K), OMEN_OK},
	    {"nshards", o_uint(WIRE_MAX_SHARDS + 1), OMEN_EPROTO},
	    {"replicas", o_uint(WIRE_MAX_REPLICAS + 1), OMEN_EPROTO},
	    {"replicas", o_uint(WIRE_MAX_REPLICAS), OMEN_OK},
	    {"replicas", o_uint(0), OMEN_OK},
	    {"metric", o_uint(3), OMEN_EPROTO},
	    {"itype", o_uint(OMEN_INDEX_IVF + 1), OMEN_EPROTO},
	    {"itype", o_uint(OMEN_INDEX_IVF), OMEN_OK},
	    {"nlist", o_uint(OMEN_IVF_NLIST_MAX + 1), OMEN_EPROTO},
	    {"nlist", o_uint(OMEN_IVF_NLIST_MAX), OMEN_OK},
	    {"nlist", o_uint(0), OMEN_OK},
	    {"nprobe", o_uint(OMEN_IVF_NLIST_MAX + 1), OMEN_EPROTO},
	    {"nprobe", o_uint(OMEN_IVF_NLIST_MAX), OMEN_OK},
	    {"bits", o_uint(OMEN_IVF_BITS_MAX + 1), OMEN_EPROTO},
	    {"bits", o_uint(0), OMEN_OK},
	    {"ram", o_uint(UINT64_MAX), OMEN_OK},
	    {"shard", o_uint(WIRE_MAX_SHARDS), OMEN_EPROTO},
	    {"shard", o_int(-2), OMEN_EPROTO},
	    {"shard", o_int(-1), OMEN_OK},
	    {"shard", o_uint(0), OMEN_OK},
	    {"ids", o_bin(g_ids, N * 8 - 1), OMEN_EPROTO},
	    {"ids", o_bin(g_ids, (N - 1) * 8), OMEN_EPROTO},
	    {"ids", o_bin(g_ids, 0), OMEN_EPROTO}, /* present means n ids */
	    {"vec", o_bin(g_vec, N * DIM * 4 - 4), OMEN_EPROTO},
	    {"vec", o_bin(g_vec, 0), OMEN_EPROTO}, /* search needs vectors */
	    {"op", o_str("serch"), OMEN_EPROTO},
	    {"op", o_strn("search\0", 7), OMEN_EPROTO},
	    {"tok", o_strn("a\0b", 3), OMEN_EPROTO},
	    {"filter", o_str(""), OMEN_OK},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
		want_edit(m, true, cases[i].key, cases[i].val, cases[i].want);
	float big[N * DIM + 1] = {0};
	want_edit(m, true, "vec", o_bin(big, sizeof big), OMEN_EPROTO);
	char *huge = calloc(1, WIRE_MAX_STRING + 1);
	memset(huge, 'x', WIRE_MAX_STRING + 1);
	want_edit(m, true, "filter", o_strn(huge, WIRE_MAX_STRING), OMEN_OK);
	want_edit(m, true, "filter", o_strn(huge, WIRE_MAX_STRING + 1), OMEN_EPROTO);
	free(huge);
	msgpack_object items[N] = {o_str("{}"), o_nil(), o_str("{}")};
	want_edit(m, true, "meta", o_arr(items, N), OMEN_OK);
	want_edit(m, true, "meta", o_arr(items, N - 1), OMEN_EPROTO);
	items[1] = o_uint(1);
	want_edit(m, true, "meta", o_arr(items, N), OMEN_EPROTO);
	items[1] = o_strn("{\0}", 3);
	want_edit(m, true, "meta", o_arr(items, N), OMEN_EPROTO);
	free(m.p);
	/* a required field missing, op by op */
	const char *need[][2] = {{"upsert", "vec"}, {"upsert", "dim"}, {"upsert", "name"},
	                         {"get", "ids"},    {"delete", "n"},   {"search", "k"},
	                         {"create", "dim"}, {"drop", "name"},  {"build", "name"}};
	for (size_t i = 0; i < sizeof need / sizeof *need; i++) {
		int op = 0;
		while (strcmp(wire_op_name((wire_op)op), need[i][0]) != 0)
			op++;
		req_min(&r, (wire_op)op);
		m = enc_req(&r);
		want_req(m, OMEN_OK);
		msg e = edit_raw(m, need[i][1], NULL, 0, REPLACE);
		want_req(e, OMEN_EPROTO);
		free(e.p);
		free(m.p);
	}
}

static void test_bad_names(void **state)
{
	(void)state;
	wire_req r;
	req_min(&r, WIRE_COUNT);
	msg m = enc_req(&r);
	char longest[OMEN_MAX_NAME + 2];
	memset(longest, 'n', sizeof longest);
	const char *bad[] = {"", "a b", "a/b", "caf\xc3\xa9", "x\n", "\x7f"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		want_edit(m, true, "name", o_str(bad[i]), OMEN_EPROTO);
	want_edit(m, true, "name", o_strn(longest, OMEN_MAX_NAME + 1), OMEN_EPROTO);
	want_edit(m, true, "name", o_strn("ab\0", 3), OMEN_EPROTO);
	want_edit(m, true, "name", o_strn(longest, OMEN_MAX_NAME), OMEN_OK);
	want_edit(m, true, "name", o_str("A-z_0.9"), OMEN_OK);
	free(m.p);
	wire_rep p;
	rep_make(&p, REP_LIST);
	m = enc_rep(&p);
	msgpack_object items[2] = {o_str("ok"), o_str("not ok")};
	want_edit(m, false, "names", o_arr(items, 2), OMEN_EPROTO);
	items[1] = o_nil();
	want_edit(m, false, "names", o_arr(items, 2), OMEN_EPROTO);
	items[1] = o_str("ok2");
	want_edit(m, false, "names", o_arr(items, 2), OMEN_OK);
	want_edit(m, false, "names", o_arr(items, 0), OMEN_OK);
	free(m.p);
}

static void test_rep_limits(void **state)
{
	(void)state;
	wire_rep p;
	rep_make(&p, REP_ALL);
	msg m = enc_rep(&p);
	uint8_t two[N] = {1, 2, 0};
	float more[N * K + 1] = {0};
	struct {
		const char *key;
		msgpack_object val;
		int want;
	} cases[] = {
	    {"st", o_int(-1), OMEN_EPROTO},
	    {"st", o_uint((uint64_t)INT32_MAX + 1), OMEN_EPROTO},
	    {"st", o_uint(OMEN_EUNAVAIL), OMEN_OK},
	    {"n", o_uint(OMEN_MAX_BATCH + 1), OMEN_EPROTO},
	    {"k", o_uint(OMEN_MAX_K + 1), OMEN_EPROTO},
	    {"k", o_uint(0), OMEN_EPROTO}, /* ids and dists no longer n x k */
	    {"dim", o_uint(OMEN_MAX_DIM + 1), OMEN_EPROTO},
	    {"ids", o_bin(g_ids, N * 8), OMEN_EPROTO}, /* n, not n x k */
	    {"dists", o_bin(more, sizeof more), OMEN_EPROTO},
	    {"found", o_bin(g_found, N - 1), OMEN_EPROTO},
	    {"found", o_bin(two, N), OMEN_EPROTO},
	    {"vec", o_bin(g_vec, N * DIM * 4 - 1), OMEN_EPROTO},
	    {"msg", o_strn("a\0", 2), OMEN_EPROTO},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
		want_edit(m, false, cases[i].key, cases[i].val, cases[i].want);
	/* IVF's figures inside stats: the ranges of omendb.h */
	struct {
		const char *key;
		uint64_t val;
		int want;
	} stats[] = {
	    {"nlist", OMEN_IVF_NLIST_MAX + 1, OMEN_EPROTO},  {"nlist", OMEN_IVF_NLIST_MAX, OMEN_OK},
	    {"nprobe", OMEN_IVF_NLIST_MAX + 1, OMEN_EPROTO}, {"nprobe", 7, OMEN_OK},
	    {"bits", OMEN_IVF_BITS_MAX + 1, OMEN_EPROTO},    {"bits", OMEN_IVF_BITS_MAX, OMEN_OK},
	};
	for (size_t i = 0; i < sizeof stats / sizeof *stats; i++) {
		msgpack_object_kv kv[] = {{o_str(stats[i].key), o_uint(stats[i].val)}};
		msgpack_object smap = {.type = MSGPACK_OBJECT_MAP, .via.map = {1, kv}};
		want_edit(m, false, "stats", smap, stats[i].want);
	}
	free(m.p);
}

/* Headers that declare far more than the message holds must be refused before any allocation
 * (under ASan a multi-gigabyte allocation would abort the test). */
static void test_huge_headers(void **state)
{
	(void)state;
	static const uint8_t prefix[] = {0x82, 0xa1, 'v', 0x01, 0xa1, 'x'};
	static const uint8_t tails[][5] = {
	    {0xdf, 0xff, 0xff, 0xff, 0xff}, {0xdd, 0xff, 0xff, 0xff, 0xff},
	    {0xdb, 0xff, 0xff, 0xff, 0xff}, {0xc6, 0xff, 0xff, 0xff, 0xff},
	    {0xc9, 0xff, 0xff, 0xff, 0xff}, {0xde, 0xff, 0xff, 0x00, 0x00},
	    {0xdc, 0xff, 0xff, 0x00, 0x00}, {0xda, 0xff, 0xff, 0x00, 0x00},
	    {0xc5, 0xff, 0xff, 0x00, 0x00}, {0xd9, 0xff, 0x00, 0x00, 0x00},
	    {0xc1, 0x00, 0x00, 0x00, 0x00}, {0xd8, 0x01, 0x00, 0x00, 0x00},
	};
	uint8_t buf[sizeof prefix + 5];
	memcpy(buf, prefix, sizeof prefix);
	for (size_t i = 0; i < sizeof tails / sizeof *tails; i++) {
		memcpy(buf + sizeof prefix, tails[i], 5);
		msg m = {buf, sizeof buf};
		want_req(m, OMEN_EPROTO);
		want_rep(m, OMEN_EPROTO);
	}
	uint8_t top[] = {0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 'v', 0x01};
	want_rep((msg){top, sizeof top}, OMEN_EPROTO);
	/* a map of more entries than allowed, whose bytes are all present */
	size_t n = 1025, len = 3 + 2 * n;
	uint8_t *big = calloc(1, len);
	big[0] = 0xde;
	big[1] = (uint8_t)(n >> 8);
	big[2] = (uint8_t)n;
	want_rep((msg){big, len}, OMEN_EPROTO);
	free(big);
}

/* Appends an array32 header of n entries and n nils at p; returns the bytes written. */
static size_t nils(uint8_t *p, uint32_t n)
{
	p[0] = 0xdd;
	for (int i = 0; i < 4; i++)
		p[1 + i] = (uint8_t)(n >> (24 - 8 * i));
	memset(p + 5, 0xc0, n);
	return 5 + (size_t)n;
}

/* The entries of all containers together are capped (2 x OMEN_MAX_BATCH + 65,536), so that a
 * message of nils cannot make msgpack-c allocate 24 bytes per byte without bound. */
static void test_object_budget(void **state)
{
	(void)state;
	uint32_t big = OMEN_MAX_BATCH, rest = 65536 - 8;
	size_t cap = 64 + 2 * (5 + (size_t)big) + 5 + rest + 1;
	uint8_t *p = malloc(cap);
	size_t len = 0;
	p[len++] = 0x84; /* v, a, b, c: 8 entries */
	memcpy(p + len, "\xa1v\x01\xa1\x61", 5);
	len += 5;
	len += nils(p + len, big);
	memcpy(p + len, "\xa1\x62", 2);
	len += 2;
	len += nils(p + len, big);
	memcpy(p + len, "\xa1\x63", 2);
	len += 2;
	size_t at = len;
	len += nils(p + len, rest);
	want_rep((msg){p, len}, OMEN_OK); /* exactly at the cap */
	len = at + nils(p + at, rest + 1);
	want_rep((msg){p, len}, OMEN_EPROTO);
	free(p);
}

/* An unknown key whose value nests depth containers; the top-level map counts as one. */
static msg nested(int depth, bool maps)
{
	static uint8_t buf[64];
	static const uint8_t prefix[] = {0x82, 0xa1, 'v', 0x01, 0xa1, 'x'};
	size_t len = sizeof prefix;
	memcpy(buf, prefix, len);
	for (int i = 0; i < depth; i++) {
		bool last = i == depth - 1;
		if (maps) {
			buf[len++] = last ? 0x80 : 0x81;
			if (!last)
				buf[len++] = 0x00; /* integer key */
		} else {
			buf[len++] = last ? 0x90 : 0x91;
		}
	}
	return (msg){buf, len};
}

static void test_nesting(void **state)
{
	(void)state;
	want_rep(nested(7, false), OMEN_OK);
	want_rep(nested(8, false), OMEN_EPROTO);
	want_rep(nested(7, true), OMEN_OK);
	want_rep(nested(8, true), OMEN_EPROTO);
	want_rep(nested(20, false), OMEN_EPROTO);
}

static void test_trailing_and_cap(void **state)
{
	(void)state;
	wire_req r, out;
	char err[WIRE_ERRLEN];
	req_full(&r, WIRE_UPSERT);
	msg m = enc_req(&r);
	uint8_t *p = malloc(2 * m.len);
	memcpy(p, m.p, m.len);
	p[m.len] = 0;
	want_req((msg){p, m.len + 1}, OMEN_EPROTO);
	memcpy(p + m.len, m.p, m.len);
	want_req((msg){p, 2 * m.len}, OMEN_EPROTO);
	free(p);
	assert_int_equal(wire_req_decode(m.p, m.len, m.len - 1, &out, err), OMEN_ELIMIT);
	assert_true(req_is_empty(&out));
	assert_int_equal(wire_req_decode(m.p, m.len, m.len, &out, err), OMEN_OK);
	wire_req_free(&out);
	assert_int_equal(wire_req_decode(NULL, 0, 100, &out, err), OMEN_EPROTO);
	static const uint8_t not_map[][2] = {{0x90}, {0x01}, {0xc0}, {0xa1, 'v'}, {0xc1}};
	for (size_t i = 0; i < sizeof not_map / sizeof *not_map; i++)
		want_rep((msg){(uint8_t *)not_map[i], not_map[i][0] == 0xa1 ? 2 : 1}, OMEN_EPROTO);
	free(m.p);
}

/* Unknown keys of any type are ignored; known keys may not repeat. */
static void test_unknown_and_duplicate(void **state)
{
	(void)state;
	wire_req r, out;
	char err[WIRE_ERRLEN];
	req_full(&r, WIRE_SEARCH);
	msg m = enc_req(&r);
	msgpack_object one = o_uint(1);
	msg e1 = edit(m, "future", o_arr(&one, 1), APPEND);
	msg e2 = edit(e1, "zz", o_float(-2.5), APPEND);
	static const uint8_t ext[] = {0x07, 0xd4, 0x01, 0x02}; /* int key 7 -> fixext1 */
	msg e3 = edit_raw(e2, NULL, ext, sizeof ext, APPEND);
	assert_int_equal(wire_req_decode(e3.p, e3.len, e3.len, &out, err), OMEN_OK);
	assert_req_eq(&r, &out);
	wire_req_free(&out);
	msg d = edit(m, "name", o_str("other"), APPEND);
	want_req(d, OMEN_EPROTO);
	free(d.p);
	d = edit(m, "v", o_uint(1), APPEND);
	want_req(d, OMEN_EPROTO);
	free(d.p);
	free(e1.p);
	free(e2.p);
	free(e3.p);
	free(m.p);
	/* the smallest reply: just the version, status OK */
	static const uint8_t tiny[] = {0x81, 0xa1, 'v', 0x01};
	want_rep((msg){(uint8_t *)tiny, sizeof tiny}, OMEN_OK);
	want_req((msg){(uint8_t *)tiny, sizeof tiny}, OMEN_EPROTO); /* no op */
}

/* The example of docs/WIRE.md: what the encoder writes, byte for byte. */
static void test_doc_example(void **state)
{
	(void)state;
	static const uint8_t doc[] = {
	    0x87, 0xa1, 0x76, 0x01, 0xa2, 0x6f, 0x70, 0xa6, 0x73, 0x65, 0x61, 0x72, 0x63,
	    0x68, 0xa4, 0x6e, 0x61, 0x6d, 0x65, 0xa4, 0x64, 0x6f, 0x63, 0x73, 0xa3, 0x64,
	    0x69, 0x6d, 0x02, 0xa1, 0x6e, 0x01, 0xa3, 0x76, 0x65, 0x63, 0xc4, 0x08, 0x00,
	    0x00, 0x80, 0x3f, 0x00, 0x00, 0x00, 0x3f, 0xa1, 0x6b, 0x03,
	};
	float q[2] = {1.0f, 0.5f};
	wire_req r;
	wire_req_init(&r);
	r.op = WIRE_SEARCH;
	strcpy(r.name, "docs");
	r.dim = 2;
	r.n = 1;
	r.vectors = q;
	r.k = 3;
	msg m = enc_req(&r);
	assert_int_equal(m.len, sizeof doc);
	assert_memory_equal(m.p, doc, sizeof doc);
	free(m.p);
	uint64_t ids[3] = {7, 2, 9};
	float d[3] = {0.0f, 0.25f, 1.5f};
	wire_rep p;
	wire_rep_init(&p);
	p.n = 1;
	p.k = 3;
	p.ids = ids;
	p.dists = d;
	p.count = 10;
	m = enc_rep(&p);
	assert_int_equal(m.len, 67);
	assert_memory_equal(m.p, "\x86\xa1v\x01\xa1n\x01\xa1k\x03\xa3ids\xc4\x18\x07", 15);
	free(m.p);
}

/* Any valid msgpack encoding is accepted, not only the shortest: a peer written in another
 * language may use wider integer and string formats and another key order. */
static void test_foreign_encoding(void **state)
{
	(void)state;
	static const uint8_t doc[] = {
	    0x87, 0xa1, 'k',  0x03,                                          /* "k": 3 */
	    0xa1, 0x76, 0xce, 0x00, 0x00, 0x00, 0x01,                        /* "v": uint32 1 */
	    0xa2, 0x6f, 0x70, 0xd9, 0x06, 's',  'e',  'a',  'r',  'c',  'h', /* "op": str8 */
	    0xa4, 'n',  'a',  'm',  'e',  0xa4, 'd',  'o',  'c',  's',       /* "name": "docs" */
	    0xa3, 'd',  'i',  'm',  0xcd, 0x00, 0x02,                        /* "dim": uint16 2 */
	    0xa1, 'n',  0xd0, 0x01,                                          /* "n": int8 1 */
	    0xa3, 'v',  'e',  'c',  0xc5, 0x00, 0x08, 0x00, 0x00, 0x80,      /* "vec": bin16 */
	    0x3f, 0x00, 0x00, 0x00, 0x3f,
	};
	wire_req out;
	char err[WIRE_ERRLEN];
	int rc = wire_req_decode(doc, sizeof doc, sizeof doc, &out, err);
	if (rc != OMEN_OK)
		fail_msg("%s", err);
	assert_int_equal(out.op, WIRE_SEARCH);
	assert_string_equal(out.name, "docs");
	assert_true(out.n == 1 && out.dim == 2 && out.k == 3 && out.shard == -1);
	assert_true(out.vectors[0] == 1.0f && out.vectors[1] == 0.5f);
	wire_req_free(&out);
}

/* A reply must carry the arrays its request's sizes promise before a caller indexes them. */
static void test_rep_expect(void **state)
{
	(void)state;
	wire_req q;
	wire_rep p;
	char err[WIRE_ERRLEN];
	req_full(&q, WIRE_SEARCH);
	rep_make(&p, REP_SEARCH);
	assert_int_equal(wire_rep_expect(&q, &p, err), OMEN_OK);
	p.k = K + 1;
	assert_int_equal(wire_rep_expect(&q, &p, err), OMEN_EPROTO);
	assert_non_null(strstr(err, "search"));
	rep_make(&p, REP_SEARCH);
	p.n = N - 1;
	assert_int_equal(wire_rep_expect(&q, &p, NULL), OMEN_EPROTO);
	rep_make(&p, REP_SEARCH);
	p.dists = NULL;
	assert_int_equal(wire_rep_expect(&q, &p, err), OMEN_EPROTO);
	p.status = OMEN_EUNAVAIL; /* errors promise nothing */
	assert_int_equal(wire_rep_expect(&q, &p, err), OMEN_OK);
	req_full(&q, WIRE_GET);
	rep_make(&p, REP_GET);
	assert_int_equal(wire_rep_expect(&q, &p, err), OMEN_OK);
	p.found = NULL;
	assert_int_equal(wire_rep_expect(&q, &p, err), OMEN_EPROTO);
	req_full(&q, WIRE_UPSERT);
	rep_make(&p, REP_UPSERT);
	assert_int_equal(wire_rep_expect(&q, &p, err), OMEN_OK);
	p.ids = NULL;
	assert_int_equal(wire_rep_expect(&q, &p, err), OMEN_EPROTO);
	req_full(&q, WIRE_STATS);
	rep_make(&p, REP_DB);
	assert_int_equal(wire_rep_expect(&q, &p, err), OMEN_EPROTO);
	req_full(&q, WIRE_DBSTATS);
	assert_int_equal(wire_rep_expect(&q, &p, err), OMEN_OK);
	req_full(&q, WIRE_COUNT);
	assert_int_equal(wire_rep_expect(&q, &p, err), OMEN_OK);
}

/* A reply filled by a server with malloc'd arrays is released whole (ASan checks leaks). */
static void test_free_server_reply(void **state)
{
	(void)state;
	wire_rep r;
	wire_rep_init(&r);
	r.message = strdup("m");
	r.n = 2;
	r.k = 1;
	r.dim = 1;
	r.ids = calloc(2, 8);
	r.dists = calloc(2, 4);
	r.found = calloc(2, 1);
	r.vectors = calloc(2, 4);
	r.meta = calloc(2, sizeof *r.meta);
	r.meta[1] = strdup("{}");
	r.nnames = 2;
	r.names = calloc(2, sizeof *r.names);
	r.names[0] = strdup("a");
	r.names[1] = strdup("b");
	r.report = strdup("ok");
	r.has_stats = 1;
	r.stats.index = "flat";
	wire_rep_free(&r);
	assert_true(rep_is_empty(&r));
	wire_rep_free(NULL);
	wire_req_free(NULL);
	wire_req q;
	wire_req_init(&q);
	assert_int_equal(q.shard, -1);
	wire_req_free(&q);
}

/* Decodes bytes as both kinds; whatever decodes must re-encode and decode to the same. */
static int decode_both(const uint8_t *p, size_t len)
{
	int ok = 0;
	wire_req r, r2;
	wire_rep s, s2;
	char err[WIRE_ERRLEN];
	if (wire_req_decode(p, len, WIRE_MAX_MSG_DEFAULT, &r, err) == OMEN_OK) {
		msg m = enc_req(&r);
		assert_int_equal(wire_req_decode(m.p, m.len, m.len, &r2, err), OMEN_OK);
		assert_req_eq(&r, &r2);
		wire_req_free(&r2);
		free(m.p);
		ok++;
	}
	wire_req_free(&r);
	if (wire_rep_decode(p, len, WIRE_MAX_MSG_DEFAULT, &s, err) == OMEN_OK) {
		msg m = enc_rep(&s);
		assert_int_equal(wire_rep_decode(m.p, m.len, m.len, &s2, err), OMEN_OK);
		assert_rep_eq(&s, &s2);
		wire_rep_free(&s2);
		free(m.p);
		ok++;
	}
	wire_rep_free(&s);
	return ok;
}

/* Applies one random edit to buf (len bytes, capacity cap): flip a bit, overwrite a byte
 * (often with a msgpack header byte), insert or delete a byte. */
static size_t mutate(uint8_t *buf, size_t len, size_t cap, uint64_t *s)
{
	static const uint8_t hot[] = {0x00, 0x01, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf,
	                              0xc0, 0xc1, 0xc2, 0xc4, 0xc6, 0xca, 0xcf, 0xd3, 0xd9,
	                              0xdb, 0xdc, 0xdd, 0xde, 0xdf, 0xe0, 0xff};
	size_t pos = len ? rnd_next(s) % len : 0;
	uint8_t v = (uint8_t)rnd_next(s);
	if (rnd_next(s) % 2)
		v = hot[rnd_next(s) % sizeof hot];
	switch (rnd_next(s) % 4) {
	case 0:
		if (len)
			buf[pos] ^= (uint8_t)(1u << (rnd_next(s) % 8));
		return len;
	case 1:
		if (len)
			buf[pos] = v;
		return len;
	case 2:
		if (len == cap)
			return len;
		memmove(buf + pos + 1, buf + pos, len - pos);
		buf[pos] = v;
		return len + 1;
	default:
		if (!len)
			return len;
		memmove(buf + pos, buf + pos + 1, len - pos - 1);
		return len - 1;
	}
}

static void test_mutations(void **state)
{
	(void)state;
	corpus c;
	corpus_make(&c);
	uint64_t s = 0x5eed0f0e11dbull;
	size_t decoded = 0, iters = 20000;
	for (size_t it = 0; it < iters; it++) {
		msg src = c.m[rnd_next(&s) % c.n];
		size_t cap = src.len + 16, len = src.len;
		uint8_t *buf = malloc(cap);
		memcpy(buf, src.p, len);
		for (int e = 1 + (int)(rnd_next(&s) % 4); e > 0; e--)
			len = mutate(buf, len, cap, &s);
		uint8_t *exact = malloc(len ? len : 1); /* ASan sees reads past len */
		memcpy(exact, buf, len);
		decoded += decode_both(exact, len) > 0;
		free(exact);
		free(buf);
	}
	/* the mutations must exercise both outcomes to mean anything */
	assert_true(decoded > iters / 20 && decoded < iters);
	corpus_free(&c);
}

/* Every allocation of a decode fails in turn (base's mem_fault_after): each run gives
 * OMEN_ENOMEM with a reason and leaves the message empty, so that freeing it is safe; the run
 * with no failure left decodes the message whole. */
static void test_decode_allocation_failures(void **state)
{
	(void)state;
	wire_req q;
	wire_rep r;
	req_full(&q, WIRE_UPSERT);
	rep_make(&r, REP_ALL);
	msg mq = enc_req(&q), mr = enc_rep(&r);
	for (int is_req = 0; is_req < 2; is_req++) {
		long n = 0;
		for (;; n++) {
			wire_req dq;
			wire_rep dr;
			char err[WIRE_ERRLEN] = "";
			mem_fault_after(n);
			int rc = is_req ? wire_req_decode(mq.p, mq.len, mq.len, &dq, err)
			                : wire_rep_decode(mr.p, mr.len, mr.len, &dr, err);
			bool failed = mem_fault_count() > 0;
			mem_fault_clear();
			if (!failed) {
				assert_int_equal(rc, OMEN_OK);
				if (is_req)
					assert_req_eq(&q, &dq);
				else
					assert_rep_eq(&r, &dr);
			} else {
				if (rc != OMEN_ENOMEM)
					fail_msg("allocation %ld failed: status %d (%s)", n, rc,
					         err);
				assert_true(strlen(err) > 0);
				assert_true(is_req ? req_is_empty(&dq) : rep_is_empty(&dr));
			}
			if (is_req)
				wire_req_free(&dq);
			else
				wire_rep_free(&dr);
			if (!failed)
				break;
		}
		print_message("%s decode: %ld allocations, each failed in turn\n",
		              is_req ? "request" : "reply", n);
		assert_true(n >= 3); /* ids, vectors, metadata strings at least */
	}
	free(mq.p);
	free(mr.p);
}

int main(void)
{
	fill_floats();
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_op_names),
	    cmocka_unit_test(test_req_roundtrip),
	    cmocka_unit_test(test_rep_roundtrip),
	    cmocka_unit_test(test_stats_index),
	    cmocka_unit_test(test_ivf_fields_optional),
	    cmocka_unit_test(test_encode_refuses),
	    cmocka_unit_test(test_truncated),
	    cmocka_unit_test(test_version),
	    cmocka_unit_test(test_wrong_types),
	    cmocka_unit_test(test_req_limits),
	    cmocka_unit_test(test_bad_names),
	    cmocka_unit_test(test_rep_limits),
	    cmocka_unit_test(test_huge_headers),
	    cmocka_unit_test(test_nesting),
	    cmocka_unit_test(test_object_budget),
	    cmocka_unit_test(test_trailing_and_cap),
	    cmocka_unit_test(test_unknown_and_duplicate),
	    cmocka_unit_test(test_foreign_encoding),
	    cmocka_unit_test(test_doc_example),
	    cmocka_unit_test(test_rep_expect),
	    cmocka_unit_test(test_free_server_reply),
	    cmocka_unit_test(test_mutations),
	    cmocka_unit_test(test_decode_allocation_failures),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
