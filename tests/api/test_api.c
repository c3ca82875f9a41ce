/*
 * Tests of the embedded engine through the public API: collections, upserts, gets, deletes,
 * persistence across reopen, and exact search checked against an independent brute force in
 * double precision, for every metric, with and without filters and tombstones.
 */
#include <math.h>
#include <pthread.h>
#include <sys/mman.h>

#include "helpers.h"

/* ---- brute force reference ---- */

static double ref_dist(omen_metric m, const float *q, const float *x, size_t dim)
{
	double s = 0, qq = 0, xx = 0;
	for (size_t i = 0; i < dim; i++) {
		if (m == OMEN_METRIC_L2)
			s += ((double)q[i] - x[i]) * ((double)q[i] - x[i]);
		else
			s += (double)q[i] * x[i];
		qq += (double)q[i] * q[i];
		xx += (double)x[i] * x[i];
	}
	if (m == OMEN_METRIC_L2)
		return s;
	if (m == OMEN_METRIC_IP)
		return -s;
	return 1 - s / sqrt(qq * xx);
}

/* Top-k ids of q among the n points (ids[i], vecs row i) where live[i] (NULL = all). */
static void ref_topk(omen_metric m, const float *q, const float *vecs, const uint64_t *ids,
                     const uint8_t *live, size_t n, size_t dim, size_t k, uint64_t *out)
{
	double *best = malloc(k * sizeof *best);
	for (size_t j = 0; j < k; j++) {
		best[j] = INFINITY;
		out[j] = OMEN_NO_ID;
	}
	for (size_t i = 0; i < n; i++) {
		if (live && !live[i])
			continue;
		double d = ref_dist(m, q, vecs + i * dim, dim);
		if (d >= best[k - 1])
			continue;
		size_t j = k - 1;
		while (j > 0 && best[j - 1] > d) {
			best[j] = best[j - 1];
			out[j] = out[j - 1];
			j--;
		}
		best[j] = d;
		out[j] = ids[i];
	}
	free(best);
}

typedef struct fixture {
	char dir[512];
	omen_db *db;
	omen_collection *c;
} fixture;

static void fx_open(fixture *f, const char *coll, size_t dim, omen_metric m)
{
	tmp_dir(f->dir, sizeof f->dir, "api");
	assert_omen_ok(omen_open(f->dir, NULL, &f->db));
	assert_omen_ok(omen_create_collection(f->db, coll, dim, m));
	assert_omen_ok(omen_collection_open(f->db, coll, &f->c));
}

static void fx_close(fixture *f)
{
	omen_collection_close(f->c);
	omen_close(f->db);
	rm_tree(f->dir);
}

static size_t index_of(const uint64_t *ids, size_t n, uint64_t id)
{
	for (size_t i = 0; i < n; i++)
		if (ids[i] == id)
			return i;
	return n;
}

/* Checks omen_search against the reference for nq queries, k, threads. */
static void check_search(omen_collection *c, omen_metric m, const float *vecs, const uint64_t *ids,
                         const uint8_t *live, size_t n, size_t dim, size_t nq, size_t k,
                         int threads, const char *filter)
{
	float *q = rnd_vectors(nq, dim, 777 + nq);
	uint64_t *got = malloc(nq * k * sizeof *got), *want = malloc(k * sizeof *want);
	float *dist = malloc(nq * k * sizeof *dist);
	omen_search_params p;
	omen_search_params_init(&p);
	p.k = k;
	p.threads = threads;
	p.filter = filter;
	assert_omen_ok(omen_search(c, q, nq, dim, &p, got, dist));
	for (size_t i = 0; i < nq; i++) {
		ref_topk(m, q + i * dim, vecs, ids, live, n, dim, k, want);
		for (size_t j = 0; j < k; j++) {
			uint64_t g = got[i * k + j];
			if (j > 0)
				assert_true(dist[i * k + j] >= dist[i * k + j - 1]);
			if (g == want[j])
				continue;
			/* A different id is right only at a float near-tie: its true distance must
			 * equal the reference's at this rank within float rounding. */
			size_t gi = index_of(ids, n, g), wi = index_of(ids, n, want[j]);
			if (gi == n || (live && !live[gi]))
				fail_msg("query %zu rank %zu: id %llu is not a live point", i, j,
				         (unsigned long long)g);
			double dg = ref_dist(m, q + i * dim, vecs + gi * dim, dim);
			double dw = ref_dist(m, q + i * dim, vecs + wi * dim, dim);
			if (fabs(dg - dw) > 1e-5 * (1 + fabs(dw)))
				fail_msg("query %zu rank %zu: got id %llu (%.9g), want %llu (%.9g)",
				         i, j, (unsigned long long)g, dg,
				         (unsigned long long)want[j], dw);
		}
	}
	free(q);
	free(got);
	free(want);
	free(dist);
}

static void test_collections(void **state)
{
	(void)state;
	fixture f;
	fx_open(&f, "docs", 16, OMEN_METRIC_L2);
	assert_omen_status(omen_create_collection(f.db, "docs", 16, OMEN_METRIC_L2), OMEN_EEXIST);
	assert_omen_ok(omen_create_collection(f.db, "a.b-c_1", 4, OMEN_METRIC_COSINE));
	char **names;
	size_t n;
	assert_omen_ok(omen_list_collections(f.db, &names, &n));
	assert_int_equal(n, 2);
	assert_string_equal(names[0], "a.b-c_1");
	assert_string_equal(names[1], "docs");
	omen_free_strings(names, n);
	assert_omen_status(omen_drop_collection(f.db, "docs"), OMEN_EBUSY);
	assert_omen_ok(omen_drop_collection(f.db, "a.b-c_1"));
	assert_omen_status(omen_drop_collection(f.db, "a.b-c_1"), OMEN_ENOTFOUND);
	omen_collection *c2;
	assert_omen_status(omen_collection_open(f.db, "a.b-c_1", &c2), OMEN_ENOTFOUND);
	omen_collection_stats s;
	assert_omen_ok(omen_collection_stats_get(f.c, &s));
	assert_int_equal(s.dim, 16);
	assert_string_equal(s.index, "flat");
	assert_int_equal(s.points, 0);
	fx_close(&f);
}

static void test_upsert_get_persist(void **state)
{
	(void)state;
	fixture f;
	size_t n = 3000, dim = 256; /* several chunks: 1008 rows each at d=256 */
	fx_open(&f, "v", dim, OMEN_METRIC_L2);
	float *v = rnd_vectors(n, dim, 1);
	uint64_t *ids = malloc(n * sizeof *ids);
	const char **meta = calloc(n, sizeof *meta);
	char(*mbuf)[64] = malloc(n * sizeof *mbuf);
	for (size_t i = 0; i < n; i++) {
		snprintf(mbuf[i], sizeof mbuf[i], "{\"i\": %zu, \"odd\": %s}", i,
		         i % 2 ? "true" : "false");
		meta[i] = i % 3 ? mbuf[i] : NULL;
	}
	/* Batches of 777 with assigned ids cross chunk boundaries. */
	for (size_t off = 0; off < n; off += 777) {
		size_t b = n - off < 777 ? n - off : 777;
		omen_batch batch = {b, dim, NULL, v + off * dim, meta + off};
		assert_omen_ok(omen_upsert(f.c, &batch, ids + off));
	}
	for (size_t i = 0; i < n; i++)
		assert_int_equal(ids[i], i);
	omen_collection_close(f.c);
	omen_close(f.db);
	assert_omen_ok(omen_open(f.dir, NULL, &f.db));
	assert_omen_ok(omen_collection_open(f.db, "v", &f.c));
	uint64_t cnt;
	assert_omen_ok(omen_count(f.c, &cnt));
	assert_int_equal(cnt, n);
	float *got = malloc(n * dim * sizeof *got);
	char **gm = malloc(n * sizeof *gm);
	uint8_t *found = malloc(n);
	assert_omen_ok(omen_get(f.c, ids, n, got, gm, found));
	assert_memory_equal(got, v, n * dim * sizeof *v);
	for (size_t i = 0; i < n; i++) {
		assert_true(found[i]);
		if (i % 3 == 0) {
			assert_null(gm[i]);
			continue;
		}
		char want[64];
		snprintf(want, sizeof want, "{\"i\":%zu,\"odd\":%s}", i, i % 2 ? "true" : "false");
		assert_string_equal(gm[i], want);
		omen_free(gm[i]);
	}
	uint64_t missing = 99999;
	assert_omen_ok(omen_get(f.c, &missing, 1, got, NULL, found));
	assert_false(found[0]);
	omen_collection_stats s;
	assert_omen_ok(omen_collection_stats_get(f.c, &s));
	assert_int_equal(s.next_id, n);
	assert_int_equal(s.segments, 1);
	check_search(f.c, OMEN_METRIC_L2, v, ids, NULL, n, dim, 3, 10, 2, NULL);
	check_search(f.c, OMEN_METRIC_L2, v, ids, NULL, n, dim, 40, 10, 2, NULL);
	free(v), free(ids), free(meta), free(mbuf), free(got), free(gm), free(found);
	fx_close(&f);
}

/* Exact search for every metric, single queries and SGEMM batches, 1 and 2 threads. */
static void test_search_metrics(void **state)
{
	(void)state;
	omen_metric ms[3] = {OMEN_METRIC_L2, OMEN_METRIC_IP, OMEN_METRIC_COSINE};
	for (int mi = 0; mi < 3; mi++) {
		fixture f;
		size_t n = 5000, dim = 33;
		fx_open(&f, "m", dim, ms[mi]);
		float *v = rnd_vectors(n, dim, 2 + mi);
		uint64_t *ids = malloc(n * sizeof *ids);
		for (size_t i = 0; i < n; i++)
			ids[i] = 1000 + (i * 7919) % 100003; /* distinct, unordered */
		omen_batch b = {n, dim, ids, v, NULL};
		assert_omen_ok(omen_upsert(f.c, &b, NULL));
		for (int t = 1; t <= 2; t++) {
			check_search(f.c, ms[mi], v, ids, NULL, n, dim, 1, 10, t, NULL);
			check_search(f.c, ms[mi], v, ids, NULL, n, dim, 5, 1, t, NULL);
			check_search(f.c, ms[mi], v, ids, NULL, n, dim, 64, 10, t, NULL);
			check_search(f.c, ms[mi], v, ids, NULL, n, dim, 9, 100, t, NULL);
		}
		free(v);
		free(ids);
		fx_close(&f);
	}
}

/* Batches (SGEMM, re-ranked) give exactly the ids and distances of one-query searches, also
 * when the norms dwarf the distances (a large common offset), where norms-plus-dot-products
 * alone loses the order of near neighbours. */
static void test_batch_equals_single(void **state)
{
	(void)state;
	omen_metric ms[3] = {OMEN_METRIC_L2, OMEN_METRIC_IP, OMEN_METRIC_COSINE};
	for (int mi = 0; mi < 3; mi++) {
		fixture f;
		size_t n = 3000, dim = 64, nq = 40, k = 10;
		fx_open(&f, "b", dim, ms[mi]);
		float *v = rnd_vectors(n, dim, 21), *q = rnd_vectors(nq, dim, 22);
		for (size_t i = 0; i < n * dim; i++)
			v[i] = 300 + v[i];
		for (size_t i = 0; i < nq * dim; i++)
			q[i] = 300 + q[i];
		omen_batch b = {n, dim, NULL, v, NULL};
		assert_omen_ok(omen_upsert(f.c, &b, NULL));
		uint64_t *bi = malloc(nq * k * sizeof *bi), si[10];
		float *bd = malloc(nq * k * sizeof *bd), sd[10];
		omen_search_params p;
		omen_search_params_init(&p);
		assert_omen_ok(omen_search(f.c, q, nq, dim, &p, bi, bd));
		for (size_t i = 0; i < nq; i++) {
			assert_omen_ok(omen_search(f.c, q + i * dim, 1, dim, &p, si, sd));
			if (memcmp(bi + i * k, si, sizeof si) != 0)
				fail_msg("metric %d query %zu: batch and single ids differ", mi, i);
			assert_memory_equal(bd + i * k, sd, sizeof sd);
		}
		free(v), free(q), free(bi), free(bd);
		fx_close(&f);
	}
}

/* Upserting an existing id replaces it; deleted points never come back. */
static void test_replace_delete(void **state)
{
	(void)state;
	fixture f;
	size_t n = 2000, dim = 8;
	fx_open(&f, "r", dim, OMEN_METRIC_L2);
	float *v = rnd_vectors(n, dim, 5);
	uint64_t *ids = malloc(n * sizeof *ids);
	uint8_t *live = malloc(n);
	omen_batch b = {n, dim, NULL, v, NULL};
	assert_omen_ok(omen_upsert(f.c, &b, ids));
	memset(live, 1, n);
	/* Replace every 10th point with a new vector. */
	float *nv = rnd_vectors(n / 10, dim, 6);
	uint64_t *rid = malloc(n / 10 * sizeof *rid);
	for (size_t i = 0; i < n / 10; i++) {
		rid[i] = ids[i * 10];
		memcpy(v + i * 10 * dim, nv + i * dim, dim * sizeof *v);
	}
	omen_batch rb = {n / 10, dim, rid, nv, NULL};
	assert_omen_ok(omen_upsert(f.c, &rb, NULL));
	uint64_t cnt;
	assert_omen_ok(omen_count(f.c, &cnt));
	assert_int_equal(cnt, n);
	/* Delete every 7th point (and an unknown id). */
	uint64_t *del = malloc((n / 7 + 2) * sizeof *del);
	size_t nd = 0;
	for (size_t i = 0; i < n; i += 7) {
		del[nd++] = ids[i];
		live[i] = 0;
	}
	del[nd++] = 123456789;
	size_t deleted;
	assert_omen_ok(omen_delete(f.c, del, nd, &deleted));
	assert_int_equal(deleted, nd - 1);
	assert_omen_ok(omen_count(f.c, &cnt));
	assert_int_equal(cnt, n - (nd - 1));
	uint8_t found;
	assert_omen_ok(omen_get(f.c, &del[0], 1, NULL, NULL, &found));
	assert_false(found);
	check_search(f.c, OMEN_METRIC_L2, v, ids, live, n, dim, 1, 20, 2, NULL);
	check_search(f.c, OMEN_METRIC_L2, v, ids, live, n, dim, 50, 20, 2, NULL);
	omen_collection_stats s;
	assert_omen_ok(omen_collection_stats_get(f.c, &s));
	assert_int_equal(s.deleted, n / 10 + nd - 1);
	free(v), free(ids), free(live), free(nv), free(rid), free(del);
	fx_close(&f);
}

/* The id map stores runs of consecutive ids; random upserts of ranges and scattered ids, and
 * deletes that split runs, must agree with a model after every step and across a reopen. */
static void check_model(omen_collection *c, const uint32_t *model, size_t range, size_t dim)
{
	uint64_t *ids = malloc(range * sizeof *ids);
	float *got = malloc(range * dim * sizeof *got);
	uint8_t *found = malloc(range);
	uint64_t live = 0, cnt, page_none[1];
	for (size_t i = 0; i < range; i++)
		ids[i] = i;
	assert_omen_ok(omen_get(c, ids, range, got, NULL, found));
	for (size_t i = 0; i < range; i++) {
		if (!model[i]) {
			if (found[i])
				fail_msg("id %zu found but deleted", i);
			continue;
		}
		live++;
		if (!found[i] || got[i * dim] != (float)model[i])
			fail_msg("id %zu: found %d value %g, want %u", i, found[i], got[i * dim],
			         model[i]);
	}
	assert_omen_ok(omen_count(c, &cnt));
	assert_int_equal(cnt, live);
	free(ids), free(got), free(found);
	/* the listed ids are the live ones, ascending, page by page from any start */
	for (size_t from = 0; from < range; from += range / 3 + 1) {
		size_t at = from, n;
		uint64_t start = from, page[7];
		do {
			assert_omen_ok(omen_list_ids(c, start, 7, page, &n));
			for (size_t j = 0; j < n; at++, j++) {
				while (at < range && !model[at])
					at++;
				assert_int_equal(page[j], at);
			}
			start = n ? page[n - 1] + 1 : start;
		} while (n == 7);
		while (at < range && !model[at])
			at++;
		assert_int_equal(at, range);
	}
	size_t none;
	assert_int_equal(omen_list_ids(c, 0, 0, page_none, &none), OMEN_EINVAL);
}

static void test_idmap_model(void **state)
{
	(void)state;
	fixture f;
	size_t range = 600, dim = 2;
	fx_open(&f, "idm", dim, OMEN_METRIC_L2);
	uint32_t *model = calloc(range, sizeof *model), version = 0;
	uint64_t seed = 99, ids[64];
	float v[64 * 2];
	for (int step = 0; step < 300; step++) {
		size_t n = 1 + rnd_next(&seed) % 40, start = rnd_next(&seed) % (range - n);
		int kind = (int)(rnd_next(&seed) % 4);
		for (size_t i = 0; i < n; i++) /* 0, 1: a range; 2, 3: scattered */
			ids[i] = kind < 2 ? start + i : rnd_next(&seed) % range;
		if (kind >= 2) { /* make scattered ids distinct */
			for (size_t i = 1; i < n; i++)
				for (size_t j = 0; j < i; j++)
					if (ids[j] == ids[i])
						ids[i] = (ids[i] + 1) % range, j = (size_t)-1;
		}
		if (kind == 1 || kind == 3) {
			size_t del;
			assert_omen_ok(omen_delete(f.c, ids, n, &del));
			for (size_t i = 0; i < n; i++)
				model[ids[i]] = 0;
		} else {
			version++;
			for (size_t i = 0; i < n; i++) {
				v[i * dim] = (float)version;
				v[i * dim + 1] = (float)i;
				model[ids[i]] = version;
			}
			omen_batch b = {n, dim, ids, v, NULL};
			assert_omen_ok(omen_upsert(f.c, &b, NULL));
		}
		if (step % 10 == 0)
			check_model(f.c, model, range, dim);
	}
	check_model(f.c, model, range, dim);
	omen_collection_close(f.c);
	omen_close(f.db);
	assert_omen_ok(omen_open(f.dir, NULL, &f.db));
	assert_omen_ok(omen_collection_open(f.db, "idm", &f.c));
	check_model(f.c, model, range, dim);
	free(model);
	fx_close(&f);
}

/* Filtered search returns the true top-k among the matching points, at any selectivity. */
static void test_filtered(void **state)
{
	(void)state;
	fixture f;
	size_t n = 4000, dim = 12;
	fx_open(&f, "f", dim, OMEN_METRIC_L2);
	float *v = rnd_vectors(n, dim, 9);
	uint64_t *ids = malloc(n * sizeof *ids);
	const char **meta = calloc(n, sizeof *meta);
	char(*mb)[80] = malloc(n * sizeof *mb);
	for (size_t i = 0; i < n; i++) {
		snprintf(mb[i], sizeof mb[i], "{\"year\": %zu, \"lang\": \"%s\", \"i\": %zu}",
		         2000 + i % 25,
		         i % 3 == 0   ? "en"
		         : i % 3 == 1 ? "de"
		                      : "fr",
		         i);
		meta[i] = i % 50 == 49 ? NULL : mb[i]; /* some points without metadata */
	}
	omen_batch b = {n, dim, NULL, v, meta};
	assert_omen_ok(omen_upsert(f.c, &b, ids));
	uint8_t *live = malloc(n);
	struct {
		const char *filter;
		int (*pred)(size_t i);
	} cases[] = {
	    {"{\"year\": {\"$gte\": 2020}, \"lang\": {\"$in\": [\"en\", \"de\"]}}", NULL},
	    {"{\"year\": 2024, \"lang\": \"en\"}", NULL},
	    {"{\"lang\": {\"$ne\": \"fr\"}}", NULL},
	};
	for (size_t ci = 0; ci < 3; ci++) {
		for (size_t i = 0; i < n; i++) {
			int has = i % 50 != 49, year = 2000 + (int)(i % 25), l = (int)(i % 3);
			if (ci == 0)
				live[i] = has && year >= 2020 && l != 2;
			else if (ci == 1)
				live[i] = has && year == 2024 && l == 0;
			else
				live[i] = !has || l != 2;
		}
		check_search(f.c, OMEN_METRIC_L2, v, ids, live, n, dim, 1, 10, 2, cases[ci].filter);
		check_search(f.c, OMEN_METRIC_L2, v, ids, live, n, dim, 16, 10, 2,
		             cases[ci].filter);
	}
	/* Fewer matches than k: padded with OMEN_NO_ID. */
	float q[12] = {0};
	uint64_t out[10];
	float d[10];
	omen_search_params p;
	omen_search_params_init(&p);
	p.filter = "{\"i\": {\"$lt\": 20}, \"$or\": [{\"lang\": \"en\"}, {\"year\": 2099}]}";
	assert_omen_ok(omen_search(f.c, q, 1, dim, &p, out, d));
	size_t matches = 0;
	for (size_t i = 0; i < 20; i++)
		matches += i % 3 == 0;
	assert_true(matches < 10);
	for (size_t j = 0; j < 10; j++)
		assert_true(j < matches ? out[j] != OMEN_NO_ID : out[j] == OMEN_NO_ID);
	free(v), free(ids), free(meta), free(mb), free(live);
	fx_close(&f);
}

/* Relaxed durability: writes are visible at once and durable after flush and reopen. */
static void test_relaxed(void **state)
{
	(void)state;
	char dir[512];
	tmp_dir(dir, sizeof dir, "relaxed");
	omen_open_options o;
	omen_open_options_init(&o);
	o.durability = OMEN_DURABLE_RELAXED;
	omen_db *db;
	omen_collection *c;
	assert_omen_ok(omen_open(dir, &o, &db));
	assert_omen_ok(omen_create_collection(db, "x", 4, OMEN_METRIC_IP));
	assert_omen_ok(omen_collection_open(db, "x", &c));
	float *v = rnd_vectors(100, 4, 3);
	omen_batch b = {100, 4, NULL, v, NULL};
	assert_omen_ok(omen_upsert(c, &b, NULL));
	assert_omen_ok(omen_flush(db));
	omen_close(db);
	assert_omen_ok(omen_open(dir, NULL, &db));
	assert_omen_ok(omen_collection_open(db, "x", &c));
	uint64_t cnt;
	assert_omen_ok(omen_count(c, &cnt));
	assert_int_equal(cnt, 100);
	omen_close(db); /* closes the open collection handle too */
	free(v);
	rm_tree(dir);
}

/* Searches from several threads while another thread writes batches: every search answers
 * the exact top k of the points of some prefix of the batches (a consistent snapshot), never a
 * mix of two, a torn batch or an error. */
#define RACE_N     2000
#define RACE_BATCH 100
#define RACE_K     5

typedef struct race {
	omen_collection *c;
	size_t dim;
	const float *q;
	uint64_t want[RACE_N / RACE_BATCH][RACE_K]; /* exact top k after each batch */
	int errors, wrong, searches;
} race;

static void *searcher(void *arg)
{
	race *r = arg;
	uint64_t ids[RACE_K];
	float d[RACE_K];
	omen_search_params p;
	omen_search_params_init(&p);
	p.k = RACE_K;
	p.threads = 1;
	for (int i = 0; i < 200; i++) {
		if (omen_search(r->c, r->q, 1, r->dim, &p, ids, d) != OMEN_OK) {
			__atomic_add_fetch(&r->errors, 1, __ATOMIC_RELAXED);
			continue;
		}
		int match = 0;
		for (size_t b = 0; b < RACE_N / RACE_BATCH && !match; b++)
			match = memcmp(ids, r->want[b], sizeof ids) == 0;
		for (size_t j = 1; j < RACE_K; j++)
			match &= d[j - 1] <= d[j];
		if (!match)
			__atomic_add_fetch(&r->wrong, 1, __ATOMIC_RELAXED);
		__atomic_add_fetch(&r->searches, 1, __ATOMIC_RELAXED);
	}
	return NULL;
}

static void test_concurrent(void **state)
{
	(void)state;
	fixture f;
	size_t dim = 32;
	fx_open(&f, "c", dim, OMEN_METRIC_L2);
	float *v = rnd_vectors(RACE_N, dim, 11), *q = rnd_vectors(1, dim, 42);
	uint64_t all_ids[RACE_N];
	for (size_t i = 0; i < RACE_N; i++)
		all_ids[i] = i; /* ids are assigned in order from 0 */
	race r = {f.c, dim, q, {{0}}, 0, 0, 0};
	for (size_t b = 0; b < RACE_N / RACE_BATCH; b++)
		ref_topk(OMEN_METRIC_L2, q, v, all_ids, NULL, (b + 1) * RACE_BATCH, dim, RACE_K,
		         r.want[b]);
	omen_batch first = {RACE_BATCH, dim, NULL, v, NULL};
	assert_omen_ok(omen_upsert(f.c, &first, NULL));
	pthread_t th[3];
	for (int i = 0; i < 3; i++)
		pthread_create(&th[i], NULL, searcher, &r);
	for (size_t off = RACE_BATCH; off < RACE_N; off += RACE_BATCH) {
		omen_batch wb = {RACE_BATCH, dim, NULL, v + off * dim, NULL};
		assert_omen_ok(omen_upsert(f.c, &wb, NULL));
	}
	for (int i = 0; i < 3; i++)
		pthread_join(th[i], NULL);
	assert_int_equal(r.errors, 0);
	assert_int_equal(r.wrong, 0);
	assert_int_equal(r.searches, 600);
	/* After the writer: the answer of all the points. */
	uint64_t ids[RACE_K];
	float d[RACE_K];
	omen_search_params p;
	omen_search_params_init(&p);
	p.k = RACE_K;
	assert_omen_ok(omen_search(f.c, q, 1, dim, &p, ids, d));
	assert_memory_equal(ids, r.want[RACE_N / RACE_BATCH - 1], sizeof ids);
	free(q);
	free(v);
	fx_close(&f);
}

/* 1 when the mapping of dir/data.mdb carries the huge-page advice (VmFlags "hg" in
 * /proc/self/smaps), 0 when it does not, -1 when no such mapping exists. */
static int map_hugepage_advised(const char *dir)
{
	char want[600], line[1024];
	snprintf(want, sizeof want, "%s/data.mdb", dir);
	FILE *f = fopen("/proc/self/smaps", "r");
	assert_non_null(f);
	int found = -1, in = 0;
	while (fgets(line, sizeof line, f)) {
		line[strcspn(line, "\n")] = 0;
		size_t n = strlen(line), w = strlen(want);
		unsigned long lo,
		    hi; /* a mapping's first line starts "lo-hi "; field lines do not */
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2)
			in = n >= w && strcmp(line + n - w, want) == 0;
		else if (in && strncmp(line, "VmFlags:", 8) == 0)
			found = strstr(line, " hg") != NULL;
	}
	fclose(f);
	return found;
}

/* The database map is advised to huge pages (random vector reads, docs/DECISIONS.md), and
 * OMEN_HUGEPAGES=0 turns that off. */
static void test_huge_pages(void **state)
{
	(void)state;
	void *probe = mmap(NULL, 4 << 20, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(probe != MAP_FAILED);
	int thp = madvise(probe, 4 << 20, MADV_HUGEPAGE) == 0;
	munmap(probe, 4 << 20);
	if (!thp)
		skip(); /* a kernel without transparent huge pages takes no such advice */
	fixture f;
	fx_open(&f, "v", 8, OMEN_METRIC_L2);
	assert_int_equal(map_hugepage_advised(f.dir), 1);
	omen_collection_close(f.c);
	omen_close(f.db);
	setenv("OMEN_HUGEPAGES", "0", 1);
	assert_omen_ok(omen_open(f.dir, NULL, &f.db));
	unsetenv("OMEN_HUGEPAGES");
	assert_omen_ok(omen_collection_open(f.db, "v", &f.c));
	assert_int_equal(map_hugepage_advised(f.dir), 0);
	fx_close(&f);
}

/* A database holds OMEN_MAX_COLLECTIONS collections, every one of them openable at once; one
 * more is OMEN_ELIMIT. */
static void test_collection_limit(void **state)
{
	(void)state;
	char dir[512];
	omen_db *db;
	omen_collection **open = calloc(OMEN_MAX_COLLECTIONS, sizeof *open);
	tmp_dir(dir, sizeof dir, "limit");
	assert_omen_ok(omen_open(dir, NULL, &db));
	for (int i = 0; i < OMEN_MAX_COLLECTIONS; i++) {
		char name[32];
		snprintf(name, sizeof name, "c%d", i);
		assert_omen_ok(omen_create_collection(db, name, 4, OMEN_METRIC_L2));
		assert_omen_ok(omen_collection_open(db, name, &open[i]));
	}
	assert_omen_status(omen_create_collection(db, "one-more", 4, OMEN_METRIC_L2), OMEN_ELIMIT);
	omen_close(db); /* closes the handles left open */
	assert_omen_ok(omen_open(dir, NULL, &db));
	omen_collection *c;
	assert_omen_ok(omen_collection_open(db, "c999", &c));
	omen_close(db);
	free(open);
	rm_tree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_collections),    cmocka_unit_test(test_upsert_get_persist),
	    cmocka_unit_test(test_search_metrics), cmocka_unit_test(test_batch_equals_single),
	    cmocka_unit_test(test_replace_delete), cmocka_unit_test(test_idmap_model),
	    cmocka_unit_test(test_filtered),       cmocka_unit_test(test_relaxed),
	    cmocka_unit_test(test_concurrent),     cmocka_unit_test(test_collection_limit),
	    cmocka_unit_test(test_huge_pages),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
