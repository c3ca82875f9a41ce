/*
 * The GPU path of exact search. `test_gpu device` compares GPU results with the CPU's exact
 * results on real data (Fashion-MNIST, l2, ip and cosine, k from 1 to 1,024, filters,
 * tombstones, writes after the device copy was made, an index's exact tail) and exits 77
 * (skipped) where no device is usable. `test_gpu fallback` runs everywhere: asking for the GPU
 * where none is usable serves the search on the CPU, with the same results and no error.
 */
#include "helpers.h"

#include <math.h>

#define NBASE 20000
#define NQ    200

static float *base, *queries;
static size_t nbase, dim;
static int have_gpu;

static int load(void **state)
{
	(void)state;
	size_t nq;
	load_fashion(&base, &nbase, &queries, &nq, &dim);
	assert_true(nbase >= NBASE && nq >= NQ);
	return 0;
}

static int unload(void **state)
{
	(void)state;
	free(base);
	free(queries);
	return 0;
}

typedef struct fx {
	char dir[512];
	omen_db *db;
	omen_collection *c;
} fx;

/* A database with NBASE Fashion-MNIST points in metric m; even points carry {"even": true}. */
static void fx_open(fx *f, omen_metric m)
{
	tmp_dir(f->dir, sizeof f->dir, "gpu");
	assert_omen_ok(omen_open(f->dir, NULL, &f->db));
	assert_omen_ok(omen_create_collection(f->db, "fm", dim, m));
	assert_omen_ok(omen_collection_open(f->db, "fm", &f->c));
	const char **meta = calloc(NBASE, sizeof *meta);
	for (size_t i = 0; i < NBASE; i++)
		meta[i] = i % 2 ? "{\"even\": false}" : "{\"even\": true}";
	omen_batch b = {NBASE, dim, NULL, base, meta};
	assert_omen_ok(omen_upsert(f->c, &b, NULL));
	free(meta);
}

static void fx_close(fx *f)
{
	omen_collection_close(f->c);
	omen_close(f->db);
	rm_tree(f->dir);
}

/* Searches nq queries on device dev; returns the path that served. */
static const char *search(fx *f, omen_device dev, size_t nq, size_t k, const char *filter,
                          int exact, uint64_t *ids, float *d)
{
	omen_search_params p;
	omen_search_info info;
	omen_search_params_init(&p);
	p.k = k;
	p.filter = filter;
	p.exact = exact;
	p.device = dev;
	p.info = &info;
	assert_omen_ok(omen_search(f->c, queries, nq, dim, &p, ids, d));
	return info.path;
}

/* The GPU's answer must be the CPU's: the same ids in the same order, the same distances
 * (the GPU's candidates are re-ranked with the CPU's exact kernels). */
static void compare(fx *f, size_t nq, size_t k, const char *filter, int exact)
{
	uint64_t *ic = malloc(nq * k * sizeof *ic), *ig = malloc(nq * k * sizeof *ig);
	float *dc = malloc(nq * k * sizeof *dc), *dg = malloc(nq * k * sizeof *dg);
	const char *pc = search(f, OMEN_DEVICE_CPU, nq, k, filter, exact, ic, dc);
	const char *pg = search(f, OMEN_DEVICE_GPU, nq, k, filter, exact, ig, dg);
	assert_string_not_equal(pc, "gpu-exact");
	if (exact)
		assert_string_equal(pg, have_gpu ? "gpu-exact" : "cpu-exact");
	for (size_t i = 0; i < nq * k; i++) {
		if (ic[i] != ig[i])
			fail_msg("query %zu rank %zu: cpu id %llu, gpu id %llu (k %zu, filter %s)",
			         i / k, i % k, (unsigned long long)ic[i], (unsigned long long)ig[i],
			         k, filter ? filter : "none");
		assert_true(dc[i] == dg[i] || (isinf(dc[i]) && isinf(dg[i])));
	}
	free(ic), free(ig), free(dc), free(dg);
}

static void test_metrics_and_k(void **state)
{
	(void)state;
	static const omen_metric metrics[] = {OMEN_METRIC_L2, OMEN_METRIC_IP, OMEN_METRIC_COSINE};
	static const size_t ks[] = {1, 10, 100, 1024};
	for (int m = 0; m < 3; m++) {
		fx f;
		fx_open(&f, metrics[m]);
		for (int i = 0; i < 4; i++)
			compare(&f, NQ, ks[i], NULL, 1);
		compare(&f, 1, 10, NULL, 1); /* one query */
		fx_close(&f);
	}
}

static void test_filters_and_writes(void **state)
{
	(void)state;
	fx f;
	fx_open(&f, OMEN_METRIC_L2);
	compare(&f, NQ, 10, "{\"even\": true}", 1);
	compare(&f, NQ, 10, NULL, 1); /* the device copy now exists */
	uint64_t del[1000];
	for (int i = 0; i < 1000; i++)
		del[i] = (uint64_t)i * 7;
	assert_omen_ok(omen_delete(f.c, del, 1000, NULL)); /* tombstones */
	omen_batch b = {2000, dim, NULL, base + (size_t)NBASE * dim, NULL};
	assert_omen_ok(omen_upsert(f.c, &b, NULL)); /* rows the device copy lacks */
	uint64_t re[500];
	for (int i = 0; i < 500; i++)
		re[i] = (uint64_t)i * 3 + 1;
	omen_batch rb = {500, dim, re, base + 30000 * dim, NULL};
	assert_omen_ok(omen_upsert(f.c, &rb, NULL)); /* replaced points: new rows, old tombstoned */
	compare(&f, NQ, 10, NULL, 1);
	compare(&f, NQ, 50, "{\"even\": false}", 1);
	fx_close(&f);
}

static void test_index_tail(void **state)
{
	(void)state;
	fx f;
	fx_open(&f, OMEN_METRIC_L2);
	omen_index_params ip;
	omen_index_params_init(&ip);
	ip.type = OMEN_INDEX_HNSW;
	assert_omen_ok(omen_build_index(f.c, &ip));
	omen_batch b = {3000, dim, NULL, base + (size_t)NBASE * dim, NULL};
	assert_omen_ok(omen_upsert(f.c, &b, NULL)); /* an exact tail after the index */
	compare(&f, NQ, 10, NULL, 0);
	compare(&f, NQ, 10, NULL, 1);
	fx_close(&f);
}

static void test_fallback(void **state)
{
	(void)state;
	char why[256];
	int st = omen_gpu_info(why, sizeof why);
	assert_true(strlen(why) > 0);
	if (st != OMEN_OK)
		assert_int_equal(st, OMEN_ENOTSUP);
	fx f;
	fx_open(&f, OMEN_METRIC_COSINE);
	compare(&f, 50, 10, NULL, 1); /* asserts the path: gpu-exact only with a device */
	fx_close(&f);
}

int main(int argc, char **argv)
{
	char name[256];
	have_gpu = omen_gpu_info(name, sizeof name) == OMEN_OK;
	if (argc > 1 && strcmp(argv[1], "fallback") == 0) {
		const struct CMUnitTest t[] = {cmocka_unit_test(test_fallback)};
		return cmocka_run_group_tests(t, load, unload);
	}
	if (!have_gpu) {
		printf("skipped: %s\n", name);
		return 77;
	}
	printf("device: %s\n", name);
	const struct CMUnitTest t[] = {
	    cmocka_unit_test(test_metrics_and_k),
	    cmocka_unit_test(test_filters_and_writes),
	    cmocka_unit_test(test_index_tail),
	};
	return cmocka_run_group_tests(t, load, unload);
}
