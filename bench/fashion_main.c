/*
 * omendb-fashion: the project's end-to-end job on real data. It bulk-loads Fashion-MNIST
 * (60,000 x 784 float32, L2) into a collection through the public API, runs the test queries
 * one at a time and as one batch, and checks the engine's exact search against an independent
 * brute force computed here; then builds the default index (HNSW at this size) and does the same
 * through it. Exit status 1 when recall@10 falls below 0.99 (exact) or 0.95 (HNSW).
 *
 * Usage: omendb-fashion DATADIR DBDIR [--queries N] [--single N] [--k K] [--threads T]
 * DATADIR holds fashion-mnist/{base,query}.{fvecs,labels} (python3 bench/data.py fashion DATADIR).
 */
#include "bench_util.h"
#include "exact.h"

#include <omendb/omendb.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define LOAD_BATCH      10000
#define MIN_RECALL      0.99
#define MIN_RECALL_HNSW 0.95

static const char *const CLASSES[10] = {"T-shirt/top", "Trouser",   "Pullover", "Dress",
                                        "Coat",        "Sandal",    "Shirt",    "Sneaker",
                                        "Bag",         "Ankle boot"};

typedef struct fashion_args {
	const char *data_dir;
	const char *db_dir;
	size_t queries; /* queries used for the batch and for recall (default all 10,000) */
	size_t single;  /* queries run one at a time (default all of the above) */
	size_t k;
	int threads; /* 0 = all cores */
} fashion_args;

typedef struct fashion_data {
	float *base, *query;
	size_t nb, nq, dim;
	uint8_t *base_labels, *query_labels;
} fashion_data;

static void usage(void)
{
	fprintf(stderr, "usage: omendb-fashion DATADIR DBDIR [--queries N] [--single N] [--k K] "
	                "[--threads T]\n");
	exit(2);
}

static void parse_args(int argc, char **argv, fashion_args *a)
{
	memset(a, 0, sizeof *a);
	a->queries = 10000;
	a->single = SIZE_MAX;
	a->k = 10;
	const bu_opt opts[] = {{"--queries", BU_SIZE, &a->queries},
	                       {"--single", BU_SIZE, &a->single},
	                       {"--k", BU_SIZE, &a->k},
	                       {"--threads", BU_INT, &a->threads}};
	const char *pos[2];
	if (bu_parse(argc, argv, opts, sizeof opts / sizeof opts[0], pos, 2, usage) != 2)
		usage();
	a->data_dir = pos[0];
	a->db_dir = pos[1];
	if (a->k == 0 || a->queries == 0 || a->threads < 0)
		usage();
}

/* Loads vectors and labels; exits when the files are missing or disagree. */
static void load_data(const fashion_args *a, fashion_data *d)
{
	char p[4096];
	size_t dq, nlab;

	snprintf(p, sizeof p, "%s/fashion-mnist/base.fvecs", a->data_dir);
	d->base = bu_fvecs_load(p, 0, &d->nb, &d->dim);
	snprintf(p, sizeof p, "%s/fashion-mnist/query.fvecs", a->data_dir);
	d->query = bu_fvecs_load(p, a->queries, &d->nq, &dq);
	if (dq != d->dim)
		bu_die(p, "dimension %zu, base has %zu", dq, d->dim);
	snprintf(p, sizeof p, "%s/fashion-mnist/base.labels", a->data_dir);
	d->base_labels = bu_read_file(p, &nlab);
	if (nlab != d->nb)
		bu_die(p, "%zu labels for %zu base vectors", nlab, d->nb);
	snprintf(p, sizeof p, "%s/fashion-mnist/query.labels", a->data_dir);
	d->query_labels = bu_read_file(p, &nlab);
	if (nlab < d->nq)
		bu_die(p, "%zu labels for %zu queries", nlab, d->nq);
	if (a->k > d->nb)
		bu_die("--k", "%zu is more than the %zu base vectors", a->k, d->nb);
}

/* Recreates the collection and loads the base vectors in batches of LOAD_BATCH with ids equal
 * to their row numbers. Returns the load time in seconds. */
static double load_collection(omen_db *db, const fashion_data *d, omen_collection **out)
{
	omen_collection *coll;
	uint64_t *ids = bu_xmalloc(LOAD_BATCH * sizeof *ids);
	uint64_t count = 0;
	int rc = omen_drop_collection(db, "fashion");
	double t0;

	if (rc != OMEN_OK && rc != OMEN_ENOTFOUND)
		bu_check(rc, "drop collection 'fashion'");
	t0 = bu_now();
	bu_check(omen_create_collection(db, "fashion", d->dim, OMEN_METRIC_L2),
	         "create collection");
	bu_check(omen_collection_open(db, "fashion", &coll), "open collection");
	for (size_t i = 0; i < d->nb; i += LOAD_BATCH) {
		omen_batch b = {0};
		b.n = d->nb - i < LOAD_BATCH ? d->nb - i : LOAD_BATCH;
		b.dim = d->dim;
		for (size_t j = 0; j < b.n; j++)
			ids[j] = i + j;
		b.ids = ids;
		b.vectors = d->base + i * d->dim;
		bu_check(omen_upsert(coll, &b, NULL), "upsert");
		printf("  loaded %zu / %zu vectors (%.1f s)\n", i + b.n, d->nb, bu_now() - t0);
		fflush(stdout);
	}
	t0 = bu_now() - t0;
	bu_check(omen_count(coll, &count), "count");
	if (count != d->nb)
		bu_die("load", "collection holds %llu points, %zu loaded",
		       (unsigned long long)count, d->nb);
	free(ids);
	*out = coll;
	return t0;
}

/* Runs the first n queries one at a time; lat receives each latency in seconds and ids/dists
 * (n x k) the results. */
static void search_single(omen_collection *coll, const fashion_data *d,
                          const omen_search_params *sp, size_t n, double *lat, uint64_t *ids,
                          float *dists)
{
	for (size_t q = 0; q < n; q++) {
		double t = bu_now();
		bu_check(omen_search(coll, d->query + q * d->dim, 1, d->dim, sp, ids + q * sp->k,
		                     dists + q * sp->k),
		         "search (single)");
		lat[q] = bu_now() - t;
	}
}

/* Largest relative difference between the engine's distances and exact double distances of
 * the same ids (a check of the engine's kernels, reported alongside recall). */
static double max_dist_error(const fashion_data *d, const uint64_t *ids, const float *dists,
                             size_t nq, size_t k)
{
	double worst = 0.0;
	for (size_t q = 0; q < nq; q++) {
		for (size_t i = 0; i < k; i++) {
			uint64_t id = ids[q * k + i];
			double e, ref;
			if (id >= d->nb)
				return INFINITY;
			ref = exact_l2sq(d->query + q * d->dim, d->base + id * d->dim, d->dim);
			e = fabs((double)dists[q * k + i] - ref) / (ref > 1.0 ? ref : 1.0);
			worst = e > worst ? e : worst;
		}
	}
	return worst;
}

static void print_example(const fashion_data *d, const uint64_t *ids, const float *dists, size_t k)
{
	printf("example: query 0 (%s):", CLASSES[d->query_labels[0] % 10]);
	for (size_t i = 0; i < k; i++) {
		uint64_t id = ids[i];
		printf("%s %llu %s %.6g", i ? "," : "", (unsigned long long)id,
		       id < d->nb ? CLASSES[d->base_labels[id] % 10] : "?", (double)dists[i]);
	}
	printf("\n");
}

/* Builds the collection's default index (HNSW at this size), then runs the queries one at a
 * time and as one batch through it and reports recall against the exact ground truth. Returns
 * the lower of the two recalls. ids/dists/lat are scratch arrays sized for d->nq queries. */
static double hnsw_phase(omen_collection *coll, const fashion_data *d, const fashion_args *a,
                         const omen_search_params *sp, const uint64_t *gt_i, const double *gt_d,
                         uint64_t *ids, float *dists, double *lat)
{
	omen_index_params ip;
	omen_collection_stats st;
	omen_index_params_init(&ip);
	ip.threads = a->threads;
	double t = bu_now();
	bu_check(omen_build_index(coll, &ip), "build index");
	t = bu_now() - t;
	bu_check(omen_collection_stats_get(coll, &st), "stats");
	printf("index: %s (m=%u, ef_construction=%u) over %llu points in %.1f s, %.0f index "
	       "bytes per point\n",
	       st.index, st.hnsw_m, st.hnsw_ef_construction, (unsigned long long)st.indexed, t,
	       (double)st.index_bytes / (double)(st.indexed ? st.indexed : 1));
	size_t n = a->single < d->nq ? a->single : d->nq;
	t = bu_now();
	search_single(coll, d, sp, n, lat, ids, dists);
	t = bu_now() - t;
	double r_single = n ? exact_recall(ids, gt_i, gt_d, n, a->k, 0, NULL, 0, NULL, 0) : 1.0;
	printf("hnsw single: %zu queries one at a time, ef %d: %.1f queries/s; latency p50 %.3f "
	       "ms, p99 %.3f ms; recall@%zu %.5f\n",
	       n, OMEN_HNSW_EF_DEFAULT, (double)n / t, 1e3 * bu_quantile(lat, n, 0.50),
	       1e3 * bu_quantile(lat, n, 0.99), a->k, r_single);
	t = bu_now();
	bu_check(omen_search(coll, d->query, d->nq, d->dim, sp, ids, dists), "search (hnsw)");
	t = bu_now() - t;
	double r_batch = exact_recall(ids, gt_i, gt_d, d->nq, a->k, 0, NULL, 0, NULL, 0);
	printf("hnsw batch: %zu queries in one call, ef %d: %.1f queries/s; recall@%zu %.5f\n",
	       d->nq, OMEN_HNSW_EF_DEFAULT, (double)d->nq / t, a->k, r_batch);
	print_example(d, ids, dists, a->k);
	return r_single < r_batch ? r_single : r_batch;
}

int main(int argc, char **argv)
{
	fashion_args a;
	fashion_data d;
	omen_db *db;
	omen_collection *coll;
	omen_search_params sp;
	double t_load, t_batch, t_gt, r_batch, r_batch_ties, r_single = 1.0, err;
	double *lat, *gt_d;
	uint64_t *ids_s, *ids_b, *gt_i;
	float *dist_s, *dist_b;
	size_t nsingle, agree = 0;
	int threads;

	parse_args(argc, argv, &a);
	load_data(&a, &d);
	nsingle = a.single < d.nq ? a.single : d.nq;
	threads = a.threads ? a.threads : bu_ncpu();
	printf("omendb-fashion: %zu base x %zu-d, %zu queries, k=%zu, %d threads, db %s\n", d.nb,
	       d.dim, d.nq, a.k, threads, a.db_dir);

	bu_check(omen_open(a.db_dir, NULL, &db), "open database");
	t_load = load_collection(db, &d, &coll);
	printf("load: %zu vectors in %.2f s = %.0f vectors/s (durable: fsync per batch of %d)\n",
	       d.nb, t_load, (double)d.nb / t_load, LOAD_BATCH);

	omen_search_params_init(&sp);
	sp.k = a.k;
	sp.threads = a.threads;
	lat = bu_xmalloc(nsingle * sizeof *lat);
	ids_s = bu_xmalloc(nsingle * a.k * sizeof *ids_s);
	dist_s = bu_xmalloc(nsingle * a.k * sizeof *dist_s);
	ids_b = bu_xmalloc(d.nq * a.k * sizeof *ids_b);
	dist_b = bu_xmalloc(d.nq * a.k * sizeof *dist_b);
	gt_i = bu_xmalloc(d.nq * a.k * sizeof *gt_i);
	gt_d = bu_xmalloc(d.nq * a.k * sizeof *gt_d);

	{
		double t = bu_now();
		search_single(coll, &d, &sp, nsingle, lat, ids_s, dist_s);
		t = bu_now() - t;
		printf("single: %zu queries one at a time in %.2f s = %.1f queries/s, %d threads; "
		       "latency p50 %.3f ms, p99 %.3f ms\n",
		       nsingle, t, (double)nsingle / t, threads,
		       1e3 * bu_quantile(lat, nsingle, 0.50),
		       1e3 * bu_quantile(lat, nsingle, 0.99));
	}
	t_batch = bu_now();
	bu_check(omen_search(coll, d.query, d.nq, d.dim, &sp, ids_b, dist_b), "search (batch)");
	t_batch = bu_now() - t_batch;
	printf("batch: %zu queries in one call in %.2f s = %.1f queries/s, %d threads\n", d.nq,
	       t_batch, (double)d.nq / t_batch, threads);

	t_gt = bu_now();
	exact_knn(d.base, d.nb, d.query, d.nq, d.dim, a.k, gt_i, gt_d);
	t_gt = bu_now() - t_gt;
	r_batch = exact_recall(ids_b, gt_i, gt_d, d.nq, a.k, 0, NULL, 0, NULL, 0);
	r_batch_ties = exact_recall(ids_b, gt_i, gt_d, d.nq, a.k, 1, d.base, d.nb, d.query, d.dim);
	if (nsingle)
		r_single = exact_recall(ids_s, gt_i, gt_d, nsingle, a.k, 0, NULL, 0, NULL, 0);
	for (size_t q = 0; q < nsingle; q++)
		agree += memcmp(ids_s + q * a.k, ids_b + q * a.k, a.k * sizeof *ids_s) == 0;
	err = max_dist_error(&d, ids_b, dist_b, d.nq, a.k);
	printf("ground truth: independent double-precision brute force in %.1f s\n", t_gt);
	printf("recall@%zu: batch %.5f (ties counted: %.5f), single %.5f; single and batch ids "
	       "agree on %zu of %zu queries; largest relative distance error %.2e\n",
	       a.k, r_batch, r_batch_ties, r_single, agree, nsingle, err);
	print_example(&d, ids_b, dist_b, a.k);
	double *lat_all = bu_xmalloc(d.nq * sizeof *lat_all);
	double r_hnsw = hnsw_phase(coll, &d, &a, &sp, gt_i, gt_d, ids_b, dist_b, lat_all);
	free(lat_all);

	omen_collection_close(coll);
	omen_close(db);
	if (r_batch < MIN_RECALL || r_single < MIN_RECALL) {
		printf("FAIL: recall@%zu below %.2f for exact search\n", a.k, MIN_RECALL);
		return 1;
	}
	if (r_hnsw < MIN_RECALL_HNSW) {
		printf("FAIL: recall@%zu below %.2f for the HNSW index\n", a.k, MIN_RECALL_HNSW);
		return 1;
	}
	printf("OK\n");
	free(lat), free(ids_s), free(dist_s), free(ids_b), free(dist_b), free(gt_i), free(gt_d);
	free(d.base), free(d.query), free(d.base_labels), free(d.query_labels);
	return 0;
}
