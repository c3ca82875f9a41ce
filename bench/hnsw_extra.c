/*
 * omendb-bench-hnsw-extra: two HNSW measurements the recall/QPS sweep does not cover.
 *
 *   filter  BASE.fvecs QUERY.fvecs DBDIR [--threads T]
 *       Loads BASE with metadata {"sel": i % 100}, builds the default HNSW index, and for
 *       filters matching 1%, 10% and 50% of the points reports recall@10 of the default search
 *       against the exact filtered search, and both paths' queries/s (1,000 queries, one call).
 *   open    DBDIR COLL QUERY.fvecs
 *       Times omen_open + omen_collection_open + the first omen_search (k=10) of a database whose
 *       collection already has an index, then the next 100 single queries (median). Run it right
 *       after dropping the page cache for a cold figure.
 */
#include "bench_util.h"

#include <omendb/omendb.h>

#include <stdlib.h>
#include <string.h>

#define NQ 1000
#define K  10

static double recall(const uint64_t *got, const uint64_t *want, size_t nq)
{
	size_t hit = 0, total = 0;
	for (size_t q = 0; q < nq; q++)
		for (size_t i = 0; i < K; i++) {
			if (want[q * K + i] == OMEN_NO_ID)
				continue;
			total++;
			for (size_t j = 0; j < K; j++)
				hit += got[q * K + j] == want[q * K + i];
		}
	return total ? (double)hit / (double)total : 1.0;
}

/* Runs the queries (one call) and returns the seconds it took. */
static double timed(omen_collection *c, const float *q, size_t nq, size_t dim,
                    const omen_search_params *p, uint64_t *ids, float *d)
{
	double t = bu_now();
	bu_check(omen_search(c, q, nq, dim, p, ids, d), "search");
	return bu_now() - t;
}

static void load_with_sel(omen_collection *c, const float *base, size_t n, size_t dim)
{
	const char **meta = bu_xmalloc(10000 * sizeof *meta);
	char(*mb)[24] = bu_xmalloc(10000 * sizeof *mb);
	for (size_t off = 0; off < n; off += 10000) {
		size_t b = n - off < 10000 ? n - off : 10000;
		for (size_t i = 0; i < b; i++) {
			snprintf(mb[i], sizeof mb[i], "{\"sel\": %zu}", (off + i) % 100);
			meta[i] = mb[i];
		}
		omen_batch batch = {b, dim, NULL, base + off * dim, meta};
		bu_check(omen_upsert(c, &batch, NULL), "upsert");
	}
	free(meta);
	free(mb);
}

static int run_filter(int argc, char **argv)
{
	if (argc < 5)
		bu_die("usage", "filter BASE QUERY DBDIR [--threads T]");
	int threads = argc > 6 && !strcmp(argv[5], "--threads") ? atoi(argv[6]) : 0;
	size_t n, nq, dim, dq;
	float *base = bu_fvecs_load(argv[2], 0, &n, &dim);
	float *q = bu_fvecs_load(argv[3], NQ, &nq, &dq);
	omen_open_options o;
	omen_open_options_init(&o);
	o.durability = OMEN_DURABLE_RELAXED;
	o.no_background_index = 1;
	omen_db *db;
	omen_collection *c;
	bu_rm_rf(argv[4]);
	bu_check(omen_open(argv[4], &o, &db), "open");
	bu_check(omen_create_collection(db, "f", dim, OMEN_METRIC_L2), "create");
	bu_check(omen_collection_open(db, "f", &c), "open collection");
	load_with_sel(c, base, n, dim);
	bu_check(omen_build_index(c, NULL), "build index");
	const char *filters[3] = {"{\"sel\": 42}", "{\"sel\": {\"$lt\": 10}}",
	                          "{\"sel\": {\"$lt\": 50}}"};
	const char *names[3] = {"1%", "10%", "50%"};
	uint64_t *want = bu_xmalloc(nq * K * 8), *got = bu_xmalloc(nq * K * 8);
	float *d = bu_xmalloc(nq * K * 4);
	printf(
	    "{\"bench\": \"hnsw-filter\", \"n\": %zu, \"dim\": %zu, \"nq\": %zu, \"threads\": %d, "
	    "\"results\": [",
	    n, dim, nq, threads);
	for (int i = 0; i < 3; i++) {
		omen_search_params p;
		omen_search_params_init(&p);
		p.threads = threads;
		p.filter = filters[i];
		p.exact = 1;
		double te = timed(c, q, nq, dim, &p, want, d);
		p.exact = 0;
		double ta = timed(c, q, nq, dim, &p, got, d);
		printf("%s{\"selectivity\": \"%s\", \"recall\": %.5f, \"qps\": %.1f, "
		       "\"exact_qps\": %.1f}",
		       i ? ", " : "", names[i], recall(got, want, nq), nq / ta, nq / te);
		fprintf(stderr, "filter %s: recall@10 %.5f, %.0f q/s (exact %.0f q/s)\n", names[i],
		        recall(got, want, nq), nq / ta, nq / te);
	}
	printf("]}\n");
	omen_close(db);
	free(base), free(q), free(want), free(got), free(d);
	return 0;
}

static int run_open(int argc, char **argv)
{
	if (argc < 5)
		bu_die("usage", "open DBDIR COLL QUERY");
	size_t nq, dim;
	float *q = bu_fvecs_load(argv[4], 101, &nq, &dim);
	uint64_t ids[K];
	float d[K];
	omen_db *db;
	omen_collection *c;
	omen_collection_stats st;
	omen_search_params p;
	omen_search_params_init(&p);
	p.threads = 1;
	double t0 = bu_now();
	bu_check(omen_open(argv[2], NULL, &db), "open");
	bu_check(omen_collection_open(db, argv[3], &c), "open collection");
	double t1 = bu_now();
	bu_check(omen_search(c, q, 1, dim, &p, ids, d), "first search");
	double t2 = bu_now();
	double lat[100];
	for (size_t i = 1; i < nq && i <= 100; i++) {
		double t = bu_now();
		bu_check(omen_search(c, q + i * dim, 1, dim, &p, ids, d), "search");
		lat[i - 1] = bu_now() - t;
	}
	bu_check(omen_collection_stats_get(c, &st), "stats");
	printf("{\"bench\": \"hnsw-open\", \"points\": %llu, \"index\": \"%s\", \"indexed\": %llu, "
	       "\"open_ms\": %.3f, \"first_query_ms\": %.3f, \"next_query_median_ms\": %.3f}\n",
	       (unsigned long long)st.points, st.index, (unsigned long long)st.indexed,
	       1e3 * (t1 - t0), 1e3 * (t2 - t1), 1e3 * bu_median(lat, nq > 100 ? 100 : nq - 1));
	omen_close(db);
	free(q);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "filter"))
		return run_filter(argc, argv);
	if (argc > 1 && !strcmp(argv[1], "open"))
		return run_open(argc, argv);
	bu_die("usage", "omendb-bench-hnsw-extra filter|open ...");
}
