/*
 * Cluster benchmarks (docs/BENCHMARKS.md, section Cluster), through the public API only.
 *
 *   omendb-bench-cluster latency URL DIR [--n N] [--dim D] [--queries Q] [--rounds R]
 *       Loads the same clustered points into a collection of the cluster at URL and into an
 *       embedded database in DIR, then runs Q single queries (k = 10) against each, in
 *       alternating rounds, exact and through HNSW, and prints p50/p99 of both and the
 *       microseconds the coordinator adds.
 *   omendb-bench-cluster throughput URL [DIR] [--n N] [--dim D] [--threads T] [--seconds S]
 *       Loads N points in batches of 1,000 from T client threads (timed: points/s), then
 *       searches single queries (k = 10, exact) from T threads for S seconds (queries/s); with
 *       DIR, does the same first on an embedded database there, for reference.
 *
 * Output: one JSON object on stdout.
 */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "omendb/omendb.h"

#define K 10

typedef struct opts {
	const char *mode, *url, *dir;
	size_t n, dim, queries, rounds;
	int threads;
	double seconds;
} opts;

/* Clustered Gaussian points: 64 centres (sd 10), unit noise; deterministic per seed. */
static uint64_t rng_state;
static double uniform(void)
{
	rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
	return ((rng_state >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

static double gauss(void)
{
	return sqrt(-2 * log(uniform())) * cos(2 * M_PI * uniform());
}

static float *clustered(size_t n, size_t dim, uint64_t seed)
{
	rng_state = seed;
	float *c = bu_xmalloc(64 * dim * sizeof *c), *v = bu_xmalloc(n * dim * sizeof *v);
	for (size_t i = 0; i < 64 * dim; i++)
		c[i] = (float)(10 * gauss());
	for (size_t i = 0; i < n; i++) {
		size_t k = (size_t)(uniform() * 64);
		for (size_t d = 0; d < dim; d++)
			v[i * dim + d] = c[k * dim + d] + (float)gauss();
	}
	free(c);
	return v;
}

static omen_collection *fresh(omen_db *db, const char *name, size_t dim)
{
	omen_drop_collection(db, name);
	bu_check(omen_create_collection(db, name, dim, OMEN_METRIC_L2), "create");
	omen_collection *c;
	bu_check(omen_collection_open(db, name, &c), "open collection");
	return c;
}

static void load(omen_collection *c, const float *v, size_t n, size_t dim)
{
	for (size_t at = 0; at < n; at += 10000) {
		size_t m = n - at < 10000 ? n - at : 10000;
		uint64_t *ids = bu_xmalloc(m * sizeof *ids);
		for (size_t i = 0; i < m; i++)
			ids[i] = at + i;
		omen_batch b = {m, dim, ids, v + at * dim, NULL};
		bu_check(omen_upsert(c, &b, NULL), "upsert");
		free(ids);
	}
}

/* Times each single query; lat receives seconds per query. */
static void time_queries(omen_collection *c, const float *q, size_t nq, size_t dim, int exact,
                         double *lat)
{
	omen_search_params p;
	omen_search_params_init(&p);
	p.k = K;
	p.exact = exact;
	p.threads = 1;
	uint64_t ids[K];
	float d[K];
	for (size_t i = 0; i < nq; i++) {
		double t0 = bu_now();
		bu_check(omen_search(c, q + i * dim, 1, dim, &p, ids, d), "search");
		lat[i] = bu_now() - t0;
	}
}

static void print_side(const char *name, double *lat, size_t n, int last)
{
	printf("    \"%s\": {\"p50_us\": %.1f, \"p99_us\": %.1f}%s\n", name,
	       1e6 * bu_quantile(lat, n, 0.5), 1e6 * bu_quantile(lat, n, 0.99), last ? "" : ",");
}

static int latency(const opts *o)
{
	omen_db *remote, *local;
	bu_check(omen_connect(o->url, NULL, &remote), "connect");
	bu_rm_rf(o->dir);
	bu_check(omen_open(o->dir, NULL, &local), "open");
	float *v = clustered(o->n, o->dim, 1), *q = clustered(o->queries, o->dim, 2);
	omen_collection *cr = fresh(remote, "lat", o->dim), *cl = fresh(local, "lat", o->dim);
	load(cr, v, o->n, o->dim);
	load(cl, v, o->n, o->dim);
	omen_index_params ip;
	omen_index_params_init(&ip);
	ip.type = OMEN_INDEX_HNSW;
	bu_check(omen_build_index(cr, &ip), "index");
	bu_check(omen_build_index(cl, &ip), "index");
	size_t total = o->queries * o->rounds;
	printf("{\"n\": %zu, \"dim\": %zu, \"k\": %d, \"queries\": %zu, \"rounds\": %zu,\n", o->n,
	       o->dim, K, o->queries, o->rounds);
	for (int exact = 1; exact >= 0; exact--) {
		double *lr = bu_xmalloc(total * sizeof *lr), *ll = bu_xmalloc(total * sizeof *ll);
		time_queries(cl, q, o->queries, o->dim, exact, ll); /* warm-up */
		time_queries(cr, q, o->queries, o->dim, exact, lr);
		for (size_t r = 0; r < o->rounds; r++) { /* alternate, so that noise hits both */
			time_queries(cl, q, o->queries, o->dim, exact, ll + r * o->queries);
			time_queries(cr, q, o->queries, o->dim, exact, lr + r * o->queries);
		}
		double added = bu_quantile(lr, total, 0.5) - bu_quantile(ll, total, 0.5);
		printf("  \"%s\": {\n", exact ? "exact" : "hnsw");
		print_side("embedded", ll, total, 0);
		print_side("cluster", lr, total, 0);
		printf("    \"added_p50_us\": %.1f, \"added_p99_us\": %.1f\n  }%s\n", 1e6 * added,
		       1e6 * (bu_quantile(lr, total, 0.99) - bu_quantile(ll, total, 0.99)),
		       exact ? "," : "");
		free(lr);
		free(ll);
	}
	printf("}\n");
	omen_collection_close(cr);
	omen_collection_close(cl);
	omen_close(remote);
	omen_close(local);
	free(v);
	free(q);
	return 0;
}

typedef struct worker {
	const opts *o;
	omen_collection *c;
	const float *v;
	int id;
	double until;
	size_t done; /* points upserted or queries answered */
} worker;

/* Each thread upserts its share of the n points, 1,000 per batch. */
static void *upserter(void *arg)
{
	worker *w = arg;
	size_t dim = w->o->dim, m = 1000, nt = (size_t)w->o->threads;
	uint64_t ids[1000];
	for (size_t at = (size_t)(w->id - 1) * m; at < w->o->n; at += nt * m) {
		size_t cnt = w->o->n - at < m ? w->o->n - at : m;
		for (size_t i = 0; i < cnt; i++)
			ids[i] = at + i;
		omen_batch b = {cnt, dim, ids, w->v + at * dim, NULL};
		bu_check(omen_upsert(w->c, &b, NULL), "upsert");
		w->done += cnt;
	}
	return NULL;
}

static void *searcher(void *arg)
{
	worker *w = arg;
	omen_search_params p;
	omen_search_params_init(&p);
	p.k = K;
	p.exact = 1;
	p.threads = 1;
	uint64_t ids[K];
	float d[K];
	for (size_t i = (size_t)w->id * 7919; bu_now() < w->until; i++, w->done++)
		bu_check(
		    omen_search(w->c, w->v + (i % w->o->n) * w->o->dim, 1, w->o->dim, &p, ids, d),
		    "search");
	return NULL;
}

/* Runs fn on o->threads threads for o->seconds; returns operations per second. */
static double run_threads(const opts *o, omen_collection *c, const float *v, void *(*fn)(void *))
{
	pthread_t t[256];
	worker w[256];
	double t0 = bu_now();
	for (int i = 0; i < o->threads; i++) {
		w[i] = (worker){o, c, v, i + 1, t0 + o->seconds, 0};
		pthread_create(&t[i], NULL, fn, &w[i]);
	}
	size_t done = 0;
	for (int i = 0; i < o->threads; i++) {
		pthread_join(t[i], NULL);
		done += w[i].done;
	}
	return (double)done / (bu_now() - t0);
}

/* Loads n points (timed) and searches for o->seconds, in db; prints one JSON member. */
static void throughput_on(const opts *o, omen_db *db, const char *name, const float *v, int last)
{
	omen_collection *c = fresh(db, "tput", o->dim);
	double ups = run_threads(o, c, v, upserter);
	double qps = run_threads(o, c, v, searcher);
	uint64_t points;
	bu_check(omen_count(c, &points), "count");
	if (points != o->n)
		bu_die("throughput", "%llu points after loading %zu", (unsigned long long)points,
		       o->n);
	printf("  \"%s\": {\"upsert_points_per_s\": %.0f, \"search_queries_per_s\": %.1f}%s\n",
	       name, ups, qps, last ? "" : ",");
	omen_collection_close(c);
	bu_check(omen_drop_collection(db, "tput"), "drop");
}

static int throughput(const opts *o)
{
	omen_db *remote, *local = NULL;
	bu_check(omen_connect(o->url, NULL, &remote), "connect");
	if (o->dir) {
		bu_rm_rf(o->dir);
		omen_open_options oo;
		omen_open_options_init(&oo);
		oo.no_background_index = 1; /* as the shards: nothing indexes behind the load */
		bu_check(omen_open(o->dir, &oo, &local), "open");
	}
	float *v = clustered(o->n, o->dim, 1);
	printf("{\"n\": %zu, \"dim\": %zu, \"k\": %d, \"client_threads\": %d, \"seconds\": %.1f,\n",
	       o->n, o->dim, K, o->threads, o->seconds);
	if (local)
		throughput_on(o, local, "embedded", v, 0);
	throughput_on(o, remote, "cluster", v, 1);
	printf("}\n");
	omen_close(remote);
	omen_close(local);
	free(v);
	return 0;
}

static void usage(void)
{
	fprintf(stderr, "usage: omendb-bench-cluster latency URL DIR [--n N] [--dim D] "
	                "[--queries Q] [--rounds R]\n"
	                "       omendb-bench-cluster throughput URL [DIR] [--n N] [--dim D] "
	                "[--threads T] [--seconds S]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	opts o = {
	    .n = 100000, .dim = 128, .queries = 1000, .rounds = 5, .threads = 4, .seconds = 10};
	const bu_opt opt[] = {{"--n", BU_SIZE, &o.n},
	                      {"--dim", BU_SIZE, &o.dim},
	                      {"--queries", BU_SIZE, &o.queries},
	                      {"--rounds", BU_SIZE, &o.rounds},
	                      {"--threads", BU_INT, &o.threads},
	                      {"--seconds", BU_DOUBLE, &o.seconds}};
	const char *pos[3] = {NULL, NULL, NULL};
	bu_parse(argc, argv, opt, sizeof opt / sizeof opt[0], pos, 3, usage);
	o.mode = pos[0], o.url = pos[1], o.dir = pos[2];
	if (o.threads < 1 || o.threads > 256 || o.n < 2000 || o.dim < 1 || !o.queries || !o.rounds)
		usage();
	if (o.mode && strcmp(o.mode, "latency") == 0 && o.url && o.dir)
		return latency(&o);
	if (o.mode && strcmp(o.mode, "throughput") == 0 && o.url)
		return throughput(&o);
	usage();
}
