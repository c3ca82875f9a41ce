/*
 * Fixtures shared by the index tests (test_hnsw_*.c, test_ivf_*.c): Fashion-MNIST loaded once
 * per program (Debian's dataset-fashion-mnist, converted by bench/data.py; ops/test prepares
 * it), collections of its first rows, recall against exact search, and ways to rewrite a
 * closed database's index records through LMDB directly.
 */
#ifndef OMEN_TEST_INDEX_FIXTURE_H
#define OMEN_TEST_INDEX_FIXTURE_H

#include <lmdb.h>
#include <math.h>

#include "helpers.h"

#define NQ 200
#define K  10

static float *base, *queries;
static size_t nbase, dim;

static inline int load_data(void **state)
{
	(void)state;
	size_t nq;
	load_fashion(&base, &nbase, &queries, &nq, &dim);
	assert_true(nq >= NQ);
	return 0;
}

static inline int free_data(void **state)
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

/* Opens the database in f->dir and its collection name; no_bg: without the background
 * indexer. */
static inline void fx_open(fixture *f, const char *name, int no_bg)
{
	omen_open_options o;
	omen_open_options_init(&o);
	o.durability = OMEN_DURABLE_RELAXED;
	o.no_background_index = no_bg;
	assert_omen_ok(omen_open(f->dir, &o, &f->db));
	assert_omen_ok(omen_collection_open(f->db, name, &f->c));
}

/* A collection of the first n base vectors (ids = rows), metadata {"sel": i % 100}. */
static inline void fx_make(fixture *f, const char *name, size_t n, omen_metric m)
{
	tmp_dir(f->dir, sizeof f->dir, "index");
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

static inline void fx_close(fixture *f)
{
	omen_close(f->db);
	rm_tree(f->dir);
}

/* Upserts base rows from..from+n-1 (new ids). */
static inline void fx_add(fixture *f, size_t from, size_t n, uint64_t *ids)
{
	omen_batch b = {n, dim, NULL, base + from * dim, NULL};
	assert_omen_ok(omen_upsert(f->c, &b, ids));
}

static inline void build(omen_collection *c, omen_index_type type)
{
	omen_index_params p;
	omen_index_params_init(&p);
	p.type = type;
	assert_omen_ok(omen_build_index(c, &p));
}

/* Searches NQ queries (approximate, or exact) with an optional filter. */
static inline void search(omen_collection *c, int exact, const char *filter, uint64_t *ids)
{
	float d[NQ * K];
	omen_search_params p;
	omen_search_params_init(&p);
	p.k = K;
	p.exact = exact;
	p.filter = filter;
	assert_omen_ok(omen_search(c, queries, NQ, dim, &p, ids, d));
}

static inline double recall(const uint64_t *got, const uint64_t *want)
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

/* Recall@K of the approximate search against the exact one, with an optional filter. */
static inline double measure(omen_collection *c, const char *filter)
{
	uint64_t got[NQ * K], want[NQ * K];
	search(c, 1, filter, want);
	search(c, 0, filter, got);
	return recall(got, want);
}

/* Fails with a message naming what and the recall when it is under min. */
static inline void assert_recall(omen_collection *c, const char *filter, double min,
                                 const char *what)
{
	double r = measure(c, filter);
	if (r < min)
		fail_msg("%s: recall@%d %.4f < %.2f", what, K, r, min);
}

static inline void assert_healthy(omen_collection *c)
{
	char *report;
	int st = omen_check(c, &report);
	if (st != OMEN_OK)
		fail_msg("check: %s\n%s", omen_errmsg(NULL), report);
	omen_free(report);
}

static inline uint32_t get32(const unsigned char *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

static inline void put32(unsigned char *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

/* Rewrites the graph records of collection 1 of the closed database in dir through LMDB
 * directly, in key order ("H" first, then "L", "Q", "S", "U"): fn(key, value, ctx) edits a copy
 * of each record, which has room for 4096 * 8 * OMEN_HNSW_M_MAX bytes more (value->mv_size
 * may change). */
typedef void graph_edit(const MDB_val *key, MDB_val *val, void *ctx);

static inline void edit_graph(const char *dir, graph_edit *fn, void *ctx)
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

/* Opens collection 1's index sub-database of the closed database in dir for writing. */
static inline void index_dbi_open(const char *dir, MDB_env **env, MDB_txn **txn, MDB_dbi *dbi)
{
	assert_int_equal(mdb_env_create(env), 0);
	mdb_env_set_maxdbs(*env, 16);
	assert_int_equal(mdb_env_open(*env, dir, 0, 0644), 0);
	assert_int_equal(mdb_txn_begin(*env, NULL, 0, txn), 0);
	assert_int_equal(mdb_dbi_open(*txn, "c1.g", 0, dbi), 0);
}

static inline void index_dbi_close(MDB_env *env, MDB_txn *txn)
{
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

/* Edits one index record (key of klen bytes) of the closed database in dir: fn changes a copy
 * of its value in place (same size), or, with fn NULL, the record is deleted. */
typedef void record_edit(MDB_val *val, void *ctx);

static inline void edit_record(const char *dir, const void *key, size_t klen, record_edit *fn,
                               void *ctx)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	index_dbi_open(dir, &env, &txn, &dbi);
	MDB_val k = {klen, (void *)key}, v;
	assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
	if (fn) {
		MDB_val copy = {v.mv_size, malloc(v.mv_size)};
		memcpy(copy.mv_data, v.mv_data, v.mv_size);
		fn(&copy, ctx);
		assert_int_equal(mdb_put(txn, dbi, &k, &copy, 0), 0);
		free(copy.mv_data);
	} else {
		assert_int_equal(mdb_del(txn, dbi, &k, NULL), 0);
	}
	index_dbi_close(env, txn);
}

#endif
