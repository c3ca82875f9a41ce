/*
 * HNSW persistence (engine/hnsw_persist.c, layout in engine/hnsw.h): the records a build
 * writes (one level-0 magic, the id width in the header), a reopened database searching the
 * same graph, a graph written with 4-byte ids read alike at any size, and headers this version
 * does not know refused with OMEN_EVERSION rather than misread.
 */
#include "index_fixture.h"

/* Asserts the layout of a graph of at most 65,536 nodes: the header gives 2-byte ids, and every
 * level-0 record is OMH0, its offsets starting at 0 and ending at its length. The header (key
 * H) comes first in key order and gives the node count (into ctx). */
static void expect_narrow(const MDB_val *key, MDB_val *val, void *ctx)
{
	uint64_t *n = ctx;
	const unsigned char *k = key->mv_data, *p = val->mv_data;
	if (k[0] == 'H') {
		assert_int_equal(val->mv_size, 64);
		assert_memory_equal(p, "OMHN", 4);
		assert_int_equal(get32(p + 56), 2);
		memcpy(n, p + 32, 8);
		assert_true(*n <= 65536);
		return;
	}
	if (k[0] != 'L')
		return;
	assert_memory_equal(p, "OMH0", 4);
	uint64_t first = (uint64_t)k[7] << 20 | (uint64_t)k[8] << 12; /* record number * 4096 */
	size_t nodes = *n - first < 4096 ? (size_t)(*n - first) : 4096;
	size_t head = 16 + 4 * (nodes + 1);
	assert_int_equal(get32(p + 16), 0);
	assert_int_equal(head + 2 * (size_t)get32(p + 16 + 4 * nodes), val->mv_size);
}

/* Stats, the records' layout, and the same results from the graph after closing and
 * reopening the database. */
static void test_reopen(void **state)
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
	/* level 0: an offset and the links each node has (at least one, at most 2m), 2 bytes each
	 */
	assert_true(s.index_bytes > 10000 * 6);
	assert_true(s.index_bytes < 10000 * (8 + 4 * OMEN_HNSW_M_DEFAULT));
	uint64_t before[NQ * K], after[NQ * K];
	search(f.c, 0, NULL, before);
	omen_close(f.db);
	uint64_t n = 0;
	edit_graph(f.dir, expect_narrow, &n);
	assert_int_equal(n, 10000);
	fx_open(&f, "fm", 0);
	assert_omen_ok(omen_collection_stats_get(f.c, &s));
	assert_string_equal(s.index, "hnsw");
	assert_int_equal(s.indexed, 10000);
	search(f.c, 0, NULL, after);
	assert_memory_equal(before, after, sizeof before);
	fx_close(&f);
}

/* Rewrites a graph's level-0 ids from 2 bytes to 4 (the width of graphs of more than 65,536
 * nodes), the header's width to match; the offsets, counted in ids, stay. The header (key H)
 * comes first in key order and gives the node count. */
static void widen_ids(const MDB_val *key, MDB_val *val, void *ctx)
{
	uint64_t *n = ctx;
	const unsigned char *k = key->mv_data;
	unsigned char *p = val->mv_data;
	if (k[0] == 'H') {
		memcpy(n, p + 32, 8);
		assert_int_equal(get32(p + 56), 2);
		put32(p + 56, 4);
		return;
	}
	if (k[0] != 'L')
		return;
	uint64_t first = (uint64_t)k[7] << 20 | (uint64_t)k[8] << 12; /* record number * 4096 */
	size_t nodes = *n - first < 4096 ? (size_t)(*n - first) : 4096;
	size_t head = 16 + 4 * (nodes + 1), words = get32(p + 16 + 4 * nodes);
	assert_int_equal(head + 2 * words, val->mv_size);
	for (size_t i = words; i-- > 0;) { /* last first: the wider ids overlap the narrow ones */
		uint16_t id;
		memcpy(&id, p + head + 2 * i, 2);
		put32(p + head + 4 * i, id);
	}
	val->mv_size = head + 4 * words;
}

/* A graph with 4-byte level-0 ids (written for more than 65,536 nodes, accepted at any size)
 * gives the same results, passes the check and is extended; the extension writes it with
 * 2-byte ids again, as its size calls for. */
static void test_wide_ids(void **state)
{
	(void)state;
	fixture f;
	fx_make(&f, "wide", 6000, OMEN_METRIC_L2);
	build(f.c, OMEN_INDEX_HNSW);
	uint64_t before[NQ * K], after[NQ * K], n = 0;
	search(f.c, 0, NULL, before);
	omen_close(f.db);
	edit_graph(f.dir, widen_ids, &n);
	assert_int_equal(n, 6000);
	fx_open(&f, "wide", 1);
	search(f.c, 0, NULL, after);
	assert_memory_equal(before, after, sizeof before);
	assert_healthy(f.c);
	fx_add(&f, 6000, 2000, NULL);
	build(f.c, OMEN_INDEX_HNSW);
	omen_collection_stats s;
	assert_omen_ok(omen_collection_stats_get(f.c, &s));
	assert_int_equal(s.indexed, 8000);
	assert_healthy(f.c);
	assert_recall(f.c, NULL, 0.95, "after extending a graph with 4-byte ids");
	omen_close(f.db);
	edit_graph(f.dir, expect_narrow, &n);
	assert_int_equal(n, 8000);
	rm_tree(f.dir);
}

/* Header edits a newer version might make: a flag bit this one does not know, an id width it
 * does not know. */
static void future_flag(const MDB_val *key, MDB_val *val, void *ctx)
{
	(void)ctx;
	unsigned char *p = val->mv_data;
	if (((const unsigned char *)key->mv_data)[0] == 'H')
		put32(p + 44, get32(p + 44) | 1u << 7);
}

static void future_width(const MDB_val *key, MDB_val *val, void *ctx)
{
	(void)ctx;
	unsigned char *p = val->mv_data;
	if (((const unsigned char *)key->mv_data)[0] == 'H')
		put32(p + 56, 8);
}

/* An index whose header this version does not know is refused with OMEN_EVERSION, not
 * misread; the collection's vectors are untouched, so exact search still works, and dropping
 * the index (a flat build) lets a new one be built. */
static void refused(graph_edit *edit)
{
	fixture f;
	fx_make(&f, "new", 2000, OMEN_METRIC_L2);
	build(f.c, OMEN_INDEX_HNSW);
	omen_close(f.db);
	edit_graph(f.dir, edit, NULL);
	fx_open(&f, "new", 1);
	uint64_t ids[NQ * K];
	float d[NQ * K];
	omen_search_params p;
	omen_search_params_init(&p);
	p.k = K;
	assert_omen_status(omen_search(f.c, queries, NQ, dim, &p, ids, d), OMEN_EVERSION);
	if (!strstr(omen_errmsg(NULL), "newer"))
		fail_msg("message: %s", omen_errmsg(NULL));
	search(f.c, 1, NULL, ids);
	build(f.c, OMEN_INDEX_FLAT);
	build(f.c, OMEN_INDEX_HNSW);
	assert_healthy(f.c);
	search(f.c, 0, NULL, ids);
	fx_close(&f);
}

static void test_newer_index(void **state)
{
	(void)state;
	refused(future_flag);
	refused(future_width);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_reopen),
	    cmocka_unit_test(test_wide_ids),
	    cmocka_unit_test(test_newer_index),
	};
	return cmocka_run_group_tests(tests, load_data, free_data);
}
