/*
 * HNSW search (engine/hnsw_search.c) on Fashion-MNIST: recall@10 against exact search at the
 * default ef for l2, cosine and the int8 traversal, the exact tail of rows written after a
 * build, deleted points, filtered search at several selectivities, and the two SEARCH-LAYER
 * loops (sorted array, two heaps) agreeing.
 */
#include "index_fixture.h"

static void test_recall(void **state)
{
	(void)state;
	fixture f;
	fx_make(&f, "fm", 10000, OMEN_METRIC_L2);
	build(f.c, OMEN_INDEX_HNSW);
	assert_recall(f.c, NULL, 0.95, "l2 at the default ef");
	assert_healthy(f.c);
	fx_close(&f);
}

static void test_cosine(void **state)
{
	(void)state;
	fixture f;
	fx_make(&f, "cos", 5000, OMEN_METRIC_COSINE);
	build(f.c, OMEN_INDEX_HNSW);
	assert_recall(f.c, NULL, 0.95, "cosine");
	assert_healthy(f.c);
	fx_close(&f);
}

/* The int8 option: recall at the default ef (candidates re-ranked exactly), healthy graph,
 * persisted flag, and an extension that keeps the quantizer. */
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
	assert_recall(f.c, NULL, 0.95, "int8");
	assert_healthy(f.c);
	fx_add(&f, 8000, 2000, NULL);
	assert_omen_ok(omen_build_index(f.c, &p));
	assert_omen_ok(omen_collection_stats_get(f.c, &s));
	assert_int_equal(s.indexed, 10000);
	assert_true(s.hnsw_int8);
	assert_recall(f.c, NULL, 0.95, "int8 after extending");
	fx_close(&f);
}

/* Points written after the build are found at once: the search scans them exactly (the tail)
 * and merges them with the graph's results. */
static void test_tail(void **state)
{
	(void)state;
	fixture f;
	fx_make(&f, "tail", 8000, OMEN_METRIC_L2);
	build(f.c, OMEN_INDEX_HNSW);
	uint64_t ids[2000];
	fx_add(&f, 8000, 2000, ids);
	omen_collection_stats s;
	assert_omen_ok(omen_collection_stats_get(f.c, &s));
	assert_int_equal(s.indexed, 8000);
	omen_search_params p;
	omen_search_params_init(&p);
	p.k = 1;
	for (size_t i = 0; i < 2000; i += 97) {
		const float *v = base + (8000 + i) * dim;
		uint64_t id;
		float d;
		assert_omen_ok(omen_search(f.c, v, 1, dim, &p, &id, &d));
		assert_true(d == 0.0f); /* exact: the squared distance of a vector to itself */
		assert_true(id == ids[i] || memcmp(base + id * dim, v, dim * sizeof *base) == 0);
	}
	assert_recall(f.c, NULL, 0.95, "graph and tail");
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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_recall),
	    cmocka_unit_test(test_cosine),
	    cmocka_unit_test(test_int8),
	    cmocka_unit_test(test_tail),
	    cmocka_unit_test(test_deletes),
	    cmocka_unit_test(test_filtered),
	    cmocka_unit_test(test_sorted_matches_heaps),
	};
	return cmocka_run_group_tests(tests, load_data, free_data);
}
