/*
 * IVF search (engine/ivf_search.c) on Fashion-MNIST against exact search: recall@10 of 0.95 at
 * the default nprobe the build calibrated (all 60,000 images, indexed once for the program),
 * every list probed, nprobe out of range, filters of 1%, 10% and 50% selectivity, deletes
 * (recall within 0.01 of a fresh build after 20% deleted), points written after the build
 * (searchable at once), the cosine and inner-product metrics, and codes of 1 to 4 bits, on the
 * first 15,000.
 */
#include "index_fixture.h"

static fixture full; /* all of Fashion-MNIST with the default IVF index, built once */

static void build_ivf(omen_collection *c, uint32_t nlist);

static int setup(void **state)
{
	load_data(state);
	fx_make(&full, "ivf", nbase, OMEN_METRIC_L2);
	build_ivf(full.c, 0);
	return 0;
}

static int teardown(void **state)
{
	fx_close(&full);
	return free_data(state);
}

static void build_bits(omen_collection *c, uint32_t nlist, uint32_t bits)
{
	omen_index_params p;
	omen_index_params_init(&p);
	p.type = OMEN_INDEX_IVF;
	p.nlist = nlist;
	p.bits = bits;
	assert_omen_ok(omen_build_index(c, &p));
}

static void build_ivf(omen_collection *c, uint32_t nlist)
{
	build_bits(c, nlist, OMEN_IVF_BITS_DEFAULT);
}

/* Searches with nprobe (0: the default) and returns the info. */
static omen_search_info search_nprobe(omen_collection *c, size_t nprobe, uint64_t *ids)
{
	float d[NQ * K];
	omen_search_info info;
	omen_search_params p;
	omen_search_params_init(&p);
	p.k = K;
	p.nprobe = nprobe;
	p.info = &info;
	assert_omen_ok(omen_search(c, queries, NQ, dim, &p, ids, d));
	for (size_t q = 0; q < NQ; q++)
		for (size_t i = 1; i < K; i++)
			assert_true(d[q * K + i - 1] <= d[q * K + i]);
	return info;
}

/* The whole of Fashion-MNIST: the calibrated default reaches recall 0.95 on the test images,
 * reading a small part of the vectors; probing every list reaches nearly 1. */
static void test_recall_default_nprobe(void **state)
{
	(void)state;
	omen_collection_stats s;
	assert_omen_ok(omen_collection_stats_get(full.c, &s));
	assert_string_equal(s.index, "ivf");
	assert_int_equal(s.ivf_nlist, 1024); /* the default for 60,000 points (docs/IVF.md) */
	assert_true(s.ivf_nprobe >= 1 && s.ivf_nprobe < s.ivf_nlist);
	assert_int_equal(s.ivf_bits, 1);
	assert_int_equal(s.indexed, nbase);
	/* resident: codes and factors, a fraction of the 3,136 bytes of a vector */
	assert_true(s.index_bytes < nbase * 3136 / 8);
	uint64_t got[NQ * K], want[NQ * K];
	search(full.c, 1, NULL, want);
	omen_search_info info = search_nprobe(full.c, 0, got);
	assert_string_equal(info.path, "cpu-ivf");
	double r = recall(got, want);
	print_message("default nprobe %u: recall@10 %.4f, %.1f vectors read per query\n",
	              s.ivf_nprobe, r, (double)info.vectors_read / NQ);
	if (r < 0.95)
		fail_msg("recall@10 %.4f at the default nprobe %u", r, s.ivf_nprobe);
	assert_true(info.vectors_read > 0 && info.vectors_read < NQ * nbase / 20);
	info = search_nprobe(full.c, s.ivf_nlist, got);
	assert_true(recall(got, want) >= 0.995);
}

static void test_nprobe_range(void **state)
{
	(void)state;
	uint64_t got[NQ * K], want[NQ * K];
	float d[NQ * K];
	omen_search_params p;
	omen_search_params_init(&p);
	p.k = K;
	p.nprobe = 1025;
	assert_omen_status(omen_search(full.c, queries, NQ, dim, &p, got, d), OMEN_EINVAL);
	assert_non_null(strstr(omen_errmsg(NULL), "exceeds the index's 1024 lists"));
	search(full.c, 1, NULL, want);
	double last = 0;
	for (size_t np = 1; np <= 1024; np *= 4) { /* more lists, no worse recall */
		search_nprobe(full.c, np, got);
		double r = recall(got, want);
		assert_true(r >= last - 0.005);
		last = r;
	}
	/* exact = 1 still bypasses the index */
	p.nprobe = 0;
	p.exact = 1;
	omen_search_info info;
	p.info = &info;
	assert_omen_ok(omen_search(full.c, queries, NQ, dim, &p, got, d));
	assert_string_equal(info.path, "cpu-exact");
	assert_memory_equal(got, want, sizeof got);
}

/* Filters: 1% and 10% of the points pass to exact search of the matches; 50% is applied
 * inside the list scan. Every result matches. */
static void test_filters(void **state)
{
	(void)state;
	static const struct {
		const char *filter;
		uint64_t below;
		const char *path;
	} cases[] = {{"{\"sel\": {\"$lt\": 1}}", 1, "cpu-exact"},
	             {"{\"sel\": {\"$lt\": 10}}", 10, "cpu-exact"},
	             {"{\"sel\": {\"$lt\": 50}}", 50, "cpu-ivf"}};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		uint64_t got[NQ * K], want[NQ * K];
		float d[NQ * K];
		omen_search_info info;
		omen_search_params p;
		omen_search_params_init(&p);
		p.k = K;
		p.filter = cases[i].filter;
		p.info = &info;
		assert_omen_ok(omen_search(full.c, queries, NQ, dim, &p, got, d));
		assert_string_equal(info.path, cases[i].path);
		for (size_t j = 0; j < NQ * K; j++) /* metadata sel = id % 100 */
			assert_true(got[j] == OMEN_NO_ID || got[j] % 100 < cases[i].below);
		search(full.c, 1, cases[i].filter, want);
		double r = recall(got, want);
		if (r < 0.95)
			fail_msg("filter %s: recall@10 %.4f", cases[i].filter, r);
	}
}

/* After deleting a fifth of the points, recall stays within 0.01 of an index built afresh on
 * the points left, and no deleted id comes back. */
static void test_deletes(void **state)
{
	(void)state;
	fixture f, fresh;
	size_t n = 15000;
	fx_make(&f, "ivf", n, OMEN_METRIC_L2);
	build_ivf(f.c, 128);
	uint64_t *del = malloc(n / 5 * sizeof *del);
	for (size_t i = 0; i < n / 5; i++)
		del[i] = 5 * i + 2;
	size_t deleted;
	assert_omen_ok(omen_delete(f.c, del, n / 5, &deleted));
	assert_int_equal(deleted, n / 5);
	uint64_t got[NQ * K], want[NQ * K];
	search(f.c, 1, NULL, want);
	search_nprobe(f.c, 8, got);
	for (size_t j = 0; j < NQ * K; j++)
		assert_true(got[j] % 5 != 2);
	double after = recall(got, want);
	/* the same points, never deleted, in a fresh collection */
	fx_make(&fresh, "ivf", n, OMEN_METRIC_L2);
	assert_omen_ok(omen_delete(fresh.c, del, n / 5, &deleted));
	build_ivf(fresh.c, 128);
	search_nprobe(fresh.c, 8, got);
	double built = recall(got, want);
	print_message("recall after deleting 20%%: %.4f, fresh build: %.4f\n", after, built);
	assert_true(after >= built - 0.01);
	assert_healthy(f.c);
	free(del);
	fx_close(&fresh);
	fx_close(&f);
}

/* Points written after the build are in their lists at once: found, and recall holds. */
static void test_inserts(void **state)
{
	(void)state;
	fixture f;
	fx_make(&f, "ivf", 15000, OMEN_METRIC_L2);
	build_ivf(f.c, 0);
	uint64_t ids[5000];
	for (size_t at = 15000; at < 20000; at += 1000)
		fx_add(&f, at, 1000, ids + (at - 15000));
	omen_collection_stats s;
	assert_omen_ok(omen_collection_stats_get(f.c, &s));
	assert_int_equal(s.indexed, 20000);
	assert_healthy(f.c);
	/* a new point searched by its own vector comes first, at distance 0 */
	uint64_t one[K];
	float d[K];
	omen_search_params p;
	omen_search_params_init(&p);
	p.k = K;
	assert_omen_ok(omen_search(f.c, base + 17777 * dim, 1, dim, &p, one, d));
	assert_int_equal(one[0], 17777);
	assert_true(d[0] == 0.0f);
	assert_recall(f.c, NULL, 0.95, "after 5,000 inserts");
	fx_close(&f);
}

/* Cosine and inner product: the same recall at the default nprobe. */
static void test_metrics(void **state)
{
	(void)state;
	omen_metric metrics[] = {OMEN_METRIC_COSINE, OMEN_METRIC_IP};
	for (size_t i = 0; i < 2; i++) {
		fixture f;
		fx_make(&f, "ivf", 15000, metrics[i]);
		build_ivf(f.c, 0);
		double r = measure(f.c, NULL);
		print_message("%s: recall@10 %.4f\n", omen_metric_name(metrics[i]), r);
		if (r < 0.95)
			fail_msg("%s: recall@10 %.4f", omen_metric_name(metrics[i]), r);
		assert_healthy(f.c);
		fx_close(&f);
	}
}

/* Multi-bit codes: recall 0.95 at the default nprobe for every width, fewer float vectors read
 * at the same nprobe as bits are added, writes after the build and the check included, and
 * inner products. */
static void test_multibit(void **state)
{
	(void)state;
	uint64_t read1 = 0;
	for (uint32_t bits = 1; bits <= OMEN_IVF_BITS_MAX; bits++) {
		fixture f;
		fx_make(&f, "ivf", 14000, bits == 3 ? OMEN_METRIC_IP : OMEN_METRIC_L2);
		build_bits(f.c, 256, bits);
		uint64_t ids[1000];
		fx_add(&f, 14000, 1000, ids);
		omen_collection_stats s;
		assert_omen_ok(omen_collection_stats_get(f.c, &s));
		assert_int_equal(s.ivf_bits, bits);
		assert_int_equal(s.indexed, 15000);
		double r = measure(f.c, NULL);
		uint64_t got[NQ * K];
		omen_search_info info = search_nprobe(f.c, 16, got);
		print_message("%u bits (%s): recall@10 %.4f at nprobe %u; %.1f vectors read per "
		              "query at nprobe 16; %.1f index bytes per point\n",
		              bits, bits == 3 ? "ip" : "l2", r, s.ivf_nprobe,
		              (double)info.vectors_read / NQ, (double)s.index_bytes / s.points);
		if (r < 0.95)
			fail_msg("%u bits: recall@10 %.4f", bits, r);
		if (bits == 1)
			read1 = info.vectors_read;
		else if (bits == 4)
			assert_true(info.vectors_read < read1);
		assert_healthy(f.c);
		fx_close(&f);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_recall_default_nprobe),
	    cmocka_unit_test(test_nprobe_range),
	    cmocka_unit_test(test_filters),
	    cmocka_unit_test(test_deletes),
	    cmocka_unit_test(test_inserts),
	    cmocka_unit_test(test_metrics),
	    cmocka_unit_test(test_multibit),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
