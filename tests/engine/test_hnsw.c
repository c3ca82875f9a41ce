/*
 * HNSW tests on real data: Fashion-MNIST (Debian's dataset-fashion-mnist, converted by
 * bench/data.py; ops/test prepares it). Recall@10 against exact search at the default ef,
 * persistence, incremental inserts, deletes, filtered search at several selectivities, the
 * automatic choice of index, parameter checks, omen_check on healthy and damaged graphs, and
 * graphs in earlier level-0 layouts or from a newer version.
 */
#include <lmdb.h>
#include <math.h>

#include "helpers.h"

#define NQ 200
#define K  10

static float *base, *queries;
static size_t nbase, dim;

static int load_data(void **state)
{
	(void)state;
	size_t nq;
	load_fashion(&base, &nbase, &queries, &nq, &dim);
	assert_true(nq >= NQ);
	return 0;
}

static int free_data(void **state)
{
	(void)state;
	free(base);
	free(queries);
	return 0;
}

typedef struct fixture {
	char dir[512];
	omen_db *db;
	omen_collection *c;
} fixture;

/* A collection of the first n base vectors (ids = rows), metadata {"sel": i % 100}. */
static void fx_make(fixture *f, const char *name, size_t n, omen_metric m)
{
	tmp_dir(f->dir, sizeof f->dir, "hnsw");
	omen_open_options o;
	omen_open_options_init(&o);
	o.durability = OMEN_DURABLE_RELAXED;
	assert_omen_ok(omen_open(f->dir, &o, &f->db));
	assert_omen_ok(omen_create_collection(f->db, name, dim, m));
	assert_omen_ok(omen_collection_open(f->db, name, &f->c));
	const char **meta = malloc(n * sizeof *meta);
	char(*mb)[32] = malloc(n * sizeof *mb);
	for (size_t i = 0; i < n; i++) {
		snprintf(mb[i], sizeof mb[i], "{\"sel\": %zu}", i % 100);
		meta[i] = mb[i];
	}
	omen_batch b = {n, dim, NULL, base, meta};
	assert_omen_ok(omen_upsert(f->c, &b, NULL));
	free(meta);
	free(mb);
}

static void fx_close(fixture *f)
{
	omen_close(f->db);
	rm_tree(f->dir);
}

static void build(omen_collection *c, omen_index_type type)
{
	omen_index_params p;
	omen_index_params_init(&p);
	p.type = type;
	assert_omen_ok(omen_build_index(c, &p));
}

/* Searches NQ queries (approximate, or exact) with an optional filter. */
static void search(omen_collection *c, int exact, const char *filter, uint64_t *ids)
{
	float d[NQ * K];
	omen_search_params p;
	omen_search_params_init(&p);
	p.k = K;
	p.exact = exact;
	p.filter = filter;
	assert_omen_ok(omen_search(c, queries, NQ, dim, &p, ids, d));
}

static double recall(const uint64_t *got, const uint64_t *want)
{
	size_t hit = 0, total = 0;
	for (size_t q = 0; q < NQ; q++)
		for (size_t i = 0; i < K; i++) {
			if (want[q * K + i] == OMEN_NO_ID)
				continue;
			total++;
			for (size_t j = 0; j < K; j++)
				hit += got[q * K + j] == want[q * K + i];
		}
	return total ? (double)hit / (double)total : 1.0;
}

static double measure(omen_collection *c, const char *filter)
{
	uint64_t got[NQ * K], want[NQ * K];
	search(c, 1, filter, want);
	search(c, 0, filter, got);
	return recall(got, want);
}

static void assert_healthy(omen_collection *c)
{
	char *report;
	int st = omen_check(c, &report);
	if (st != OMEN_OK)
		fail_msg("check: %s\n%s", omen_errmsg(NULL), report);
	omen_free(report);
}

static void test_recall_persist(void **state)
{
	(void)state;
	fixture f;
	fx_make(&f, "fm", 10000, OMEN_METRIC_L2);
	build(f.c, OMEN_INDEX_HNSW);
	omen_collection_stats s;
	assert_omen_ok(omen_collection_stats_get(f.c, &s));
	assert_string_equal(s.index, "hnsw");
	assert_int_equal(s.indexed, 10000);
	assert_int_equal(s.hnsw_m, OMEN_HNSW_M_DEFAULT);
	/* level 0 packed: an offset and the links each node has (at least one, at most 2m) */
	assert_true(s.index_bytes > 10000 * 8);
	assert_true(s.index_bytes < 10000 * (8 + 8 * OMEN_HNSW_M_DEFAULT));
	double r = measure(f.c, NULL);
	if (r < 0.95)
		fail_msg("recall@10 at the default ef: %.4f < 0.95", r);
	assert_healthy(f.c);
	uint64_t before[NQ * K], after[NQ * K];
	search(f.c, 0, NULL, before);
	omen_close(f.db);
	assert_omen_ok(omen_open(f.dir, NULL, &f.db));
	assert_omen_ok(omen_collection_open(f.db, "fm", &f.c));
	assert_omen_ok(omen_collection_stats_get(f.c, &s));
	assert_string_equal(s.index, "hnsw");
	search(f.c, 0, NULL, after);
	assert_memory_equal(before, after, sizeof before);
	fx_close(&f);
}

static void test_cosine(void **state)
{
	(void)state;
	fixture f;
	fx_make(&f, "cos", 5000, OMEN_METRIC_COSINE);
	build(f.c, OMEN_INDEX_HNSW);
	double r = measure(f.c, NULL);
	if (r < 0.95)
		fail_msg("cosine recall@10: %.4f < 0.95", r);
	assert_healthy(f.c);
	fx_close(&f);
}

/* The int8 option: recall at the default ef, healthy graph, persisted flag, and extension
 * keeping the quantizer. */
static void test_int8(void **state)
{
	(void)state;
	fixture f;
	fx_make(&f, "q8", 8000, OMEN_METRIC_L2);
	omen_index_params p;
	omen_index_params_init(&p);
	p.type = OMEN_INDEX_HNSW;
	p.int8 = 1;
	assert_omen_ok(omen_build_index(f.c, &p));
	omen_collection_stats s;
	assert_omen_ok(omen_collection_stats_get(f.c, &s));
	assert_true(s.hnsw_int8);
	assert_true(s.index_bytes > 8000 * dim);
	double r = measure(f.c, NULL);
	if (r < 0.95)
		fail_msg("int8 recall@10: %.4f < 0.95", r);
	assert_healthy(f.c);
	omen_batch b = {2000, dim, NULL, base + 8000 * dim, NULL};
	assert_omen_ok(omen_upsert(f.c, &b, NULL));
	assert_omen_ok(omen_build_index(f.c, &p));
	assert_omen_ok(omen_collection_stats_get(f.c, &s));
	assert_int_equal(s.indexed, 10000);
	r = measure(f.c, NULL);
	if (r < 0.95)
		fail_msg("int8 recall@10 after extending: %.4f < 0.95", r);
	fx_close(&f);
}

/* Points written after the build are found at once (exact tail) and indexed on the next
 * build, which extends the graph. */
static void test_incremental(void **state)
{
	(void)state;
	fixture f;
	fx_make(&f, "inc", 8000, OMEN_METRIC_L2);
	build(f.c, OMEN_INDEX_HNSW);
	omen_batch b = {2000, dim, NULL, base + 8000 * dim, NULL};
	uint64_t ids[2000];
	assert_omen_ok(omen_upsert(f.c, &b, ids));
	omen_collection_stats s;
	assert_omen_ok(omen_collection_stats_get(f.c, &s));
	assert_int_equal(s.indexed, 8000);
	omen_search_params p;
	omen_search_params_init(&p);
	p.k = 1;
	for (size_t i = 0; i < 2000; i += 97) {
		uint64_t id;
		float d;
		assert_omen_ok(omen_search(f.c, base + (8000 + i) * dim, 1, dim, &p, &id, &d));
		assert_int_equal(d, 0);
		assert_true(id == ids[i] || memcmp(base + id * dim, base + (8000 + i) * dim,
		                                   dim * sizeof *base) == 0);
	}
	build(f.c, OMEN_INDEX_HNSW);
	assert_omen_ok(omen_collection_stats_get(f.c, &s));
	assert_int_equal(s.indexed, 10000);
	double r = measure(f.c, NULL);
	if (r < 0.95)
		fail_msg("recall@10 after extending: %.4f < 0.95", r);
	assert_healthy(f.c);
	fx_close(&f);
}

/* The background indexer extends the graph once the tail reaches its threshold (10,000 rows
 * here), without any call from the user; searches keep working meanwhile. */
static void test_background(void **state)
{
	(void)state;
	fixture f;
	fx_make(&f, "bg", 10000, OMEN_METRIC_L2);
	build(f.c, OMEN_INDEX_HNSW);
	omen_batch b = {10000, dim, NULL, base + 10000 * dim, NULL};
	assert_omen_ok(omen_upsert(f.c, &b, NULL));
	omen_collection_stats s;
	for (int i = 0; i < 600; i++) {
		assert_omen_ok(omen_collection_stats_get(f.c, &s));
		if (s.indexed == 20000)
			break;
		uint64_t got[NQ * K];
		search(f.c, 0, NULL, got);
		usleep(200000);
	}
	assert_int_equal(s.indexed, 20000);
	double r = measure(f.c, NULL);
	if (r < 0.95)
		fail_msg("recall@10 after background extension: %.4f < 0.95", r);
	assert_healthy(f.c);
	fx_close(&f);
}

/* Closing the database while the indexer extends a graph cancels the build: the close is
 * prompt and the old index stays valid. */
static void test_close_cancels(void **state)
{
	(void)state;
	fixture f;
	fx_make(&f, "cc", 10000, OMEN_METRIC_L2);
	build(f.c, OMEN_INDEX_HNSW);
	omen_batch b = {10000, dim, NULL, base + 10000 * dim, NULL};
	assert_omen_ok(omen_upsert(f.c, &b, NULL));
	usleep(300000); /* let the indexer start */
	omen_close(f.db);
	assert_omen_ok(omen_open(f.dir, NULL, &f.db));
	assert_omen_ok(omen_collection_open(f.db, "cc", &f.c));
	omen_collection_stats s;
	assert_omen_ok(omen_collection_stats_get(f.c, &s));
	assert_true(s.indexed == 10000 || s.indexed == 20000);
	assert_healthy(f.c);
	fx_close(&f);
}

/* After deleting 20%, deleted points never appear and recall stays within 0.01 of a fresh
 * build over the remaining points. */
static void test_deletes(void **state)
{
	(void)state;
	fixture f, g;
	size_t n = 10000, nd = 0;
	fx_make(&f, "del", n, OMEN_METRIC_L2);
	build(f.c, OMEN_INDEX_HNSW);
	uint64_t *del = malloc(n / 5 * sizeof *del);
	for (size_t i = 0; i < n; i += 5)
		del[nd++] = i;
	size_t removed;
	assert_omen_ok(omen_delete(f.c, del, nd, &removed));
	assert_int_equal(removed, nd);
	uint64_t got[NQ * K];
	search(f.c, 0, NULL, got);
	for (size_t i = 0; i < NQ * K; i++)
		assert_true(got[i] % 5 != 0);
	double r_del = measure(f.c, NULL);
	assert_healthy(f.c);
	/* A fresh build over the same 80%. */
	tmp_dir(g.dir, sizeof g.dir, "hnsw");
	assert_omen_ok(omen_open(g.dir, NULL, &g.db));
	assert_omen_ok(omen_create_collection(g.db, "fresh", dim, OMEN_METRIC_L2));
	assert_omen_ok(omen_collection_open(g.db, "fresh", &g.c));
	uint64_t *keep = malloc(n * sizeof *keep);
	float *kv = malloc(n * dim * sizeof *kv);
	size_t nk = 0;
	for (size_t i = 0; i < n; i++)
		if (i % 5) {
			memcpy(kv + nk * dim, base + i * dim, dim * sizeof *kv);
			keep[nk++] = i;
		}
	omen_batch b = {nk, dim, keep, kv, NULL};
	assert_omen_ok(omen_upsert(g.c, &b, NULL));
	free(keep);
	free(kv);
	build(g.c, OMEN_INDEX_HNSW);
	double r_fresh = measure(g.c, NULL);
	if (r_del < r_fresh - 0.01)
		fail_msg("recall after 20%% deletes %.4f, fresh build %.4f", r_del, r_fresh);
	free(del);
	fx_close(&f);
	fx_close(&g);
}

/* Filtered search returns only matching points, k of them, with high recall at 1%, 10% and
 * 50% selectivity. */
/* With no row excluded the search runs on one sorted array, otherwise on two heaps (Algorithm 2
 * as written); both must expand the same nodes and return the same neighbours. A filter that
 * allows every row takes the heap path over the same graph. */
static void test_sorted_matches_heaps(void **state)
{
	(void)state;
	fixture f;
	fx_make(&f, "two", 10000, OMEN_METRIC_L2);
	build(f.c, OMEN_INDEX_HNSW);
	omen_search_params p;
	omen_search_params_init(&p);
	p.k = K;
	for (uint32_t ef = 10; ef <= 160; ef *= 4) {
		uint64_t a[NQ * K], b[NQ * K];
		float da[NQ * K], db[NQ * K];
		p.ef = ef;
		p.filter = NULL;
		assert_omen_ok(omen_search(f.c, queries, NQ, dim, &p, a, da));
		p.filter = "{\"sel\": {\"$gte\": 0}}";
		assert_omen_ok(omen_search(f.c, queries, NQ, dim, &p, b, db));
		assert_memory_equal(a, b, sizeof a);
		assert_memory_equal(da, db, sizeof da);
	}
	fx_close(&f);
}

static void test_filtered(void **state)
{
	(void)state;
	fixture f;
	fx_make(&f, "flt", 10000, OMEN_METRIC_L2);
	build(f.c, OMEN_INDEX_HNSW);
	const char *filters[3] = {"{\"sel\": 7}", "{\"sel\": {\"$lt\": 10}}",
	                          "{\"sel\": {\"$gte\": 50}}"};
	for (int i = 0; i < 3; i++) {
		uint64_t got[NQ * K];
		search(f.c, 0, filters[i], got);
		for (size_t j = 0; j < NQ * K; j++) {
			assert_true(got[j] != OMEN_NO_ID);
			uint64_t sel = got[j] % 100;
			assert_true(i == 0 ? sel == 7 : i == 1 ? sel < 10 : sel >= 50);
		}
		double r = measure(f.c, filters[i]);
		print_message("filter %s: recall@10 %.4f\n", filters[i], r);
		if (r < 0.9)
			fail_msg("filter %s: recall@10 %.4f < 0.9", filters[i], r);
	}
	fx_close(&f);
}

static void test_auto_and_params(void **state)
{
	(void)state;
	fixture f;
	fx_make(&f, "auto", OMEN_INDEX_AUTO_HNSW_MIN - 1, OMEN_METRIC_L2);
	omen_collection_stats s;
	build(f.c, OMEN_INDEX_AUTO);
	assert_omen_ok(omen_collection_stats_get(f.c, &s));
	assert_string_equal(s.index, "flat");
	omen_batch b = {1, dim, NULL, base + 20000 * dim, NULL};
	assert_omen_ok(omen_upsert(f.c, &b, NULL));
	build(f.c, OMEN_INDEX_AUTO);
	assert_omen_ok(omen_collection_stats_get(f.c, &s));
	assert_string_equal(s.index, "hnsw");
	build(f.c, OMEN_INDEX_FLAT);
	assert_omen_ok(omen_collection_stats_get(f.c, &s));
	assert_string_equal(s.index, "flat");
	omen_index_params p;
	omen_index_params_init(&p);
	p.m = OMEN_HNSW_M_MIN - 1;
	assert_omen_status(omen_build_index(f.c, &p), OMEN_EINVAL);
	p.m = OMEN_HNSW_M_MAX + 1;
	assert_omen_status(omen_build_index(f.c, &p), OMEN_EINVAL);
	omen_index_params_init(&p);
	p.ef_construction = OMEN_HNSW_EFC_MIN - 1;
	assert_omen_status(omen_build_index(f.c, &p), OMEN_EINVAL);
	omen_index_params_init(&p);
	p.type = (omen_index_type)9;
	assert_omen_status(omen_build_index(f.c, &p), OMEN_EINVAL);
	omen_search_params sp;
	omen_search_params_init(&sp);
	sp.ef = OMEN_HNSW_EF_MAX + 1;
	uint64_t id;
	float d;
	assert_omen_status(omen_search(f.c, queries, 1, dim, &sp, &id, &d), OMEN_EINVAL);
	fx_close(&f);
}

/* Rewrites the graph records of collection 1 of the closed database in dir through LMDB
 * directly: fn(key, value, ctx) edits a copy of each record (value->mv_size may change). */
typedef void graph_edit(const MDB_val *key, MDB_val *val, void *ctx);

static void edit_graph(const char *dir, graph_edit *fn, void *ctx)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_cursor *cur;
	assert_int_equal(mdb_env_create(&env), 0);
	mdb_env_set_maxdbs(env, 16);
	assert_int_equal(mdb_env_open(env, dir, 0, 0644), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "c1.g", 0, &dbi), 0);
	assert_int_equal(mdb_cursor_open(txn, dbi, &cur), 0);
	MDB_val k, v;
	size_t nrec = 0;
	struct {
		unsigned char key[16];
		size_t klen;
		MDB_val v;
	} rec[64];
	for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		assert_true(nrec < 64 && k.mv_size <= 16);
		memcpy(rec[nrec].key, k.mv_data, k.mv_size);
		rec[nrec].klen = k.mv_size;
		rec[nrec].v.mv_size = v.mv_size;
		rec[nrec].v.mv_data = malloc(v.mv_size + 4096 * 4 * 2 * OMEN_HNSW_M_MAX);
		memcpy(rec[nrec++].v.mv_data, v.mv_data, v.mv_size);
	}
	mdb_cursor_close(cur);
	for (size_t i = 0; i < nrec; i++) {
		MDB_val key = {rec[i].klen, rec[i].key};
		fn(&key, &rec[i].v, ctx);
		assert_int_equal(mdb_put(txn, dbi, &key, &rec[i].v, 0), 0);
		free(rec[i].v.mv_data);
	}
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

static uint32_t get32(const unsigned char *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

static void put32(unsigned char *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

/* The first level-0 record (nodes 0..n-1, packed, u16 ids as in every graph of at most 65,536
 * nodes): its node 0's first link, or its offset of node 1, set to value. */
typedef struct damage {
	size_t nodes;
	int offset; /* 0: a link, 1: an offset */
	uint32_t value;
} damage;

static void damage_l0(const MDB_val *key, MDB_val *val, void *ctx)
{
	const damage *d = ctx;
	const unsigned char *k = key->mv_data;
	if (key->mv_size != 9 || k[0] != 'L' || k[8] != 0)
		return;
	unsigned char *p = val->mv_data;
	assert_memory_equal(p, "OMH2", 4);
	assert_true(get32(p + 16 + 4) > 0); /* node 0 has links */
	if (d->offset) {
		put32(p + 16 + 4, d->value);
	} else {
		uint16_t v = (uint16_t)d->value;
		memcpy(p + 16 + 4 * (d->nodes + 1), &v, 2);
	}
}

/* Damages a level-0 record through LMDB directly: a link past the last node, or an offset past
 * the record. Check must say so, and a search must neither crash nor return a bad row. */
static void damaged(const char *what, int offset, uint32_t value, const char *says)
{
	fixture f;
	fx_make(&f, "dmg", 2000, OMEN_METRIC_L2);
	build(f.c, OMEN_INDEX_HNSW);
	assert_healthy(f.c);
	omen_close(f.db);
	damage d = {2000, offset, value};
	edit_graph(f.dir, damage_l0, &d);
	assert_omen_ok(omen_open(f.dir, NULL, &f.db));
	assert_omen_ok(omen_collection_open(f.db, "dmg", &f.c));
	char *report;
	assert_omen_status(omen_check(f.c, &report), OMEN_ECORRUPT);
	if (!strstr(report, says))
		fail_msg("%s: the check report lacks \"%s\":\n%s", what, says, report);
	omen_free(report);
	uint64_t got[NQ * K];
	search(f.c, 0, NULL, got);
	for (size_t i = 0; i < NQ * K; i++)
		assert_true(got[i] < 2000);
	fx_close(&f);
}

static void test_check_damaged(void **state)
{
	(void)state;
	damaged("link", 0, 0xffff, "past the last node");
	damaged("offset", 1, 1u << 30, "link offsets");
}

/* Rewrites the packed level-0 records with u16 ids (OMH2) in an earlier layout, with the
 * header's flags to match: packed with u32 ids (OMHP, as graphs of more than 65,536 nodes and
 * those written before u16 ids are), or fixed slots (OMHL: per node a count and m0 u32 ids,
 * as graphs written before packing). The header (key H) comes first in key order and gives m0
 * and the node count. */
typedef struct relayout {
	int fixed; /* 1: to OMHL, 0: to OMHP */
	uint32_t m0;
	uint64_t n;
} relayout;

static void relayout_l0(const MDB_val *key, MDB_val *val, void *ctx)
{
	relayout *u = ctx;
	const unsigned char *k = key->mv_data;
	unsigned char *p = val->mv_data;
	if (k[0] == 'H') {
		u->m0 = get32(p + 12);
		memcpy(&u->n, p + 32, 8);
		assert_int_equal(get32(p + 44) & 6u, 6u); /* packed, u16 ids */
		put32(p + 44, get32(p + 44) & (u->fixed ? ~6u : ~4u));
		return;
	}
	if (k[0] != 'L')
		return;
	assert_memory_equal(p, "OMH2", 4);
	uint64_t first = (uint64_t)k[7] << 20 | (uint64_t)k[8] << 12; /* record number * 4096 */
	size_t nodes = u->n - first < 4096 ? (size_t)(u->n - first) : 4096;
	uint32_t m0 = u->m0, words = get32(p + 16 + 4 * nodes);
	assert_int_equal(16 + 4 * (nodes + 1) + 2 * (size_t)words, val->mv_size);
	size_t size = u->fixed ? 16 + nodes * 4 * (1 + (size_t)m0) : 16 + 4 * (nodes + 1 + words);
	unsigned char *q = calloc(1, size);
	memcpy(q, p, 16);
	memcpy(q, u->fixed ? "OMHL" : "OMHP", 4);
	if (!u->fixed)
		memcpy(q + 16, p + 16, 4 * (nodes + 1)); /* the same offsets */
	const unsigned char *ids = p + 16 + 4 * (nodes + 1);
	for (size_t j = 0; j < nodes; j++) {
		uint32_t lo = get32(p + 16 + 4 * j), n = get32(p + 16 + 4 * (j + 1)) - lo;
		assert_true(n <= m0);
		unsigned char *to = u->fixed ? q + 16 + j * 4 * (1 + m0) + 4
		                             : q + 16 + 4 * (nodes + 1) + 4 * (size_t)lo;
		if (u->fixed)
			put32(to - 4, n);
		for (uint32_t i = 0; i < n; i++) {
			uint16_t id;
			memcpy(&id, ids + 2 * ((size_t)lo + i), 2);
			put32(to + 4 * i, id);
		}
	}
	memcpy(p, q, size);
	val->mv_size = size;
	free(q);
}

/* Asserts that every level-0 record is packed with u16 ids. */
static void expect_narrow(const MDB_val *key, MDB_val *val, void *ctx)
{
	(void)ctx;
	const unsigned char *k = key->mv_data;
	if (k[0] == 'L')
		assert_memory_equal(val->mv_data, "OMH2", 4);
}

/* A graph in an earlier level-0 layout (fixed slots, or packed u32 ids) is still searched,
 * with the same results, checked and extended; the extension writes it packed with u16 ids. */
static void earlier_layout(int fixed)
{
	fixture f;
	fx_make(&f, "old", 6000, OMEN_METRIC_L2);
	build(f.c, OMEN_INDEX_HNSW);
	uint64_t before[NQ * K], after[NQ * K];
	search(f.c, 0, NULL, before);
	omen_collection_stats s;
	assert_omen_ok(omen_collection_stats_get(f.c, &s));
	omen_close(f.db);
	relayout u = {fixed, 0, 0};
	edit_graph(f.dir, relayout_l0, &u);
	assert_int_equal(u.n, 6000);
	omen_open_options o;
	omen_open_options_init(&o);
	o.no_background_index = 1;
	assert_omen_ok(omen_open(f.dir, &o, &f.db));
	assert_omen_ok(omen_collection_open(f.db, "old", &f.c));
	search(f.c, 0, NULL, after);
	assert_memory_equal(before, after, sizeof before);
	assert_healthy(f.c);
	omen_batch b = {2000, dim, NULL, base + 6000 * dim, NULL};
	assert_omen_ok(omen_upsert(f.c, &b, NULL));
	build(f.c, OMEN_INDEX_HNSW);
	assert_omen_ok(omen_collection_stats_get(f.c, &s));
	assert_int_equal(s.indexed, 8000);
	assert_healthy(f.c);
	double r = measure(f.c, NULL);
	if (r < 0.95)
		fail_msg("recall@10 after extending a %s graph: %.4f < 0.95",
		         fixed ? "fixed-slot" : "u32-id", r);
	omen_close(f.db);
	edit_graph(f.dir, expect_narrow, NULL);
	rm_tree(f.dir);
}

static void test_fixed_slot_graph(void **state)
{
	(void)state;
	earlier_layout(1);
}

static void test_wide_id_graph(void **state)
{
	(void)state;
	earlier_layout(0);
}

/* Sets a header flag bit this version does not know. */
static void future_flag(const MDB_val *key, MDB_val *val, void *ctx)
{
	(void)ctx;
	unsigned char *p = val->mv_data;
	if (((const unsigned char *)key->mv_data)[0] == 'H')
		put32(p + 44, get32(p + 44) | 1u << 7);
}

/* An index written by a newer version (an unknown flag) is refused with OMEN_EVERSION, not
 * misread; the collection's vectors are untouched, so exact search still works. */
static void test_newer_index(void **state)
{
	(void)state;
	fixture f;
	fx_make(&f, "new", 2000, OMEN_METRIC_L2);
	build(f.c, OMEN_INDEX_HNSW);
	omen_close(f.db);
	edit_graph(f.dir, future_flag, NULL);
	assert_omen_ok(omen_open(f.dir, NULL, &f.db));
	assert_omen_ok(omen_collection_open(f.db, "new", &f.c));
	uint64_t ids[NQ * K];
	float d[NQ * K];
	omen_search_params p;
	omen_search_params_init(&p);
	p.k = K;
	assert_omen_status(omen_search(f.c, queries, NQ, dim, &p, ids, d), OMEN_EVERSION);
	if (!strstr(omen_errmsg(NULL), "newer"))
		fail_msg("message: %s", omen_errmsg(NULL));
	search(f.c, 1, NULL, ids);
	fx_close(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_recall_persist),
	    cmocka_unit_test(test_cosine),
	    cmocka_unit_test(test_int8),
	    cmocka_unit_test(test_incremental),
	    cmocka_unit_test(test_background),
	    cmocka_unit_test(test_close_cancels),
	    cmocka_unit_test(test_deletes),
	    cmocka_unit_test(test_filtered),
	    cmocka_unit_test(test_sorted_matches_heaps),
	    cmocka_unit_test(test_auto_and_params),
	    cmocka_unit_test(test_check_damaged),
	    cmocka_unit_test(test_fixed_slot_graph),
	    cmocka_unit_test(test_wide_id_graph),
	    cmocka_unit_test(test_newer_index),
	};
	return cmocka_run_group_tests(tests, load_data, free_data);
}
