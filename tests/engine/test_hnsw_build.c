/*
 * HNSW build (engine/hnsw_build.c) on Fashion-MNIST: extending a graph over the rows written
 * after it, the background indexer doing so by itself, a close cancelling a build, the
 * automatic choice of index and the parameter checks. Recall is measured against exact search.
 */
#include "index_fixture.h"

/* A build with the same parameters extends the graph over the rows written after it. */
static void test_extend(void **state)
{
	(void)state;
	fixture f;
	fx_make(&f, "inc", 8000, OMEN_METRIC_L2);
	build(f.c, OMEN_INDEX_HNSW);
	fx_add(&f, 8000, 2000, NULL);
	omen_collection_stats s;
	assert_omen_ok(omen_collection_stats_get(f.c, &s));
	assert_int_equal(s.indexed, 8000);
	build(f.c, OMEN_INDEX_HNSW);
	assert_omen_ok(omen_collection_stats_get(f.c, &s));
	assert_int_equal(s.indexed, 10000);
	assert_recall(f.c, NULL, 0.95, "after extending");
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
	fx_add(&f, 10000, 10000, NULL);
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
	assert_recall(f.c, NULL, 0.95, "after background extension");
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
	fx_add(&f, 10000, 10000, NULL);
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

static void test_auto_and_params(void **state)
{
	(void)state;
	fixture f;
	fx_make(&f, "auto", OMEN_INDEX_AUTO_HNSW_MIN - 1, OMEN_METRIC_L2);
	omen_collection_stats s;
	build(f.c, OMEN_INDEX_AUTO);
	assert_omen_ok(omen_collection_stats_get(f.c, &s));
	assert_string_equal(s.index, "flat");
	fx_add(&f, 20000, 1, NULL);
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

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_extend),
	    cmocka_unit_test(test_background),
	    cmocka_unit_test(test_close_cancels),
	    cmocka_unit_test(test_auto_and_params),
	};
	return cmocka_run_group_tests(tests, load_data, free_data);
}
