/*
 * GPU exact search against the CPU's (docs/BENCHMARKS.md, section GPU), through the public API:
 *
 *   omendb-bench-gpu DIR [--n N] [--dim D] [--rounds R]
 *
 * Loads N clustered points of dimension D into DIR (relaxed durability), then for batches of
 * 1, 100 and 10,000 queries (k = 10, exact) times omen_search on the GPU (after one warm-up
 * call that also uploads the rows) and on the CPU (all cores), R rounds each, alternating; and
 * checks that both return the same ids. Prints one JSON object: seconds per call (median),
 * queries/s, and the path that served each.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_util.h"
#include "omendb/omendb.h"

#define K 10

static uint64_t rng = 0x9E3779B97F4A7C15ull;

static double uniform(void)
{
	rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
	return ((rng >> 11) + 0.5) * (1.0 / 9007199254740992.0);
}

static float *clustered(size_t n, size_t dim, const float *centres)
{
	float *v = bu_xmalloc(n * dim * sizeof *v);
	for (size_t i = 0; i < n; i++) {
		size_t c = (size_t)(uniform() * 256);
		for (size_t d = 0; d < dim; d++)
			v[i * dim + d] =
			    centres[c * dim + d] +
			    (float)(sqrt(-2 * log(uniform())) * cos(6.283185307 * uniform()));
	}
	return v;
}

/* Median seconds of rounds calls on device dev; ids receive the last call's results. */
static double time_search(omen_collection *c, const float *q, size_t nq, size_t dim,
                          omen_device dev, int rounds, uint64_t *ids, float *d, const char **path)
{
	omen_search_params p;
	omen_search_info info;
	omen_search_params_init(&p);
	p.k = K;
	p.exact = 1;
	p.device = dev;
	p.info = &info;
	double *t = bu_xmalloc((size_t)rounds * sizeof *t);
	for (int r = 0; r < rounds; r++) {
		double t0 = bu_now();
		bu_check(omen_search(c, q, nq, dim, &p, ids, d), "search");
		t[r] = bu_now() - t0;
	}
	double m = bu_median(t, (size_t)rounds);
	free(t);
	*path = info.path;
	return m;
}

static void usage(void)
{
	fprintf(stderr, "usage: omendb-bench-gpu DIR [--n N] [--dim D] [--rounds R]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	size_t n = 1000000, dim = 128;
	int rounds = 5;
	const char *dir = NULL;
	const bu_opt opt[] = {
	    {"--n", BU_SIZE, &n}, {"--dim", BU_SIZE, &dim}, {"--rounds", BU_INT, &rounds}};
	bu_parse(argc, argv, opt, sizeof opt / sizeof opt[0], &dir, 1, usage);
	if (!dir || n < 10000 || !dim || rounds < 1)
		usage();
	char name[256];
	if (omen_gpu_info(name, sizeof name) != OMEN_OK)
		bu_die("omendb-bench-gpu", "no GPU: %s", name);
	float *centres = bu_xmalloc(256 * dim * sizeof *centres);
	for (size_t i = 0; i < 256 * dim; i++)
		centres[i] = (float)(10 * (uniform() - 0.5));
	bu_rm_rf(dir);
	omen_open_options o;
	omen_open_options_init(&o);
	o.durability = OMEN_DURABLE_RELAXED;
	o.no_background_index = 1;
	omen_db *db;
	omen_collection *c;
	bu_check(omen_open(dir, &o, &db), "open");
	bu_check(omen_create_collection(db, "g", dim, OMEN_METRIC_L2), "create");
	bu_check(omen_collection_open(db, "g", &c), "open collection");
	for (size_t at = 0; at < n; at += 100000) {
		size_t m = n - at < 100000 ? n - at : 100000;
		float *v = clustered(m, dim, centres);
		omen_batch b = {m, dim, NULL, v, NULL};
		bu_check(omen_upsert(c, &b, NULL), "upsert");
		free(v);
	}
	bu_check(omen_flush(db), "flush");
	printf("{\"device\": \"%s\", \"n\": %zu, \"dim\": %zu, \"k\": %d, \"rounds\": %d, "
	       "\"batches\": [\n",
	       name, n, dim, K, rounds);
	static const size_t batches[] = {1, 100, 10000};
	for (int bi = 0; bi < 3; bi++) {
		size_t nq = batches[bi];
		float *q = clustered(nq, dim, centres);
		uint64_t *ig = bu_xmalloc(nq * K * 8), *ic = bu_xmalloc(nq * K * 8);
		float *d = bu_xmalloc(nq * K * 4);
		const char *pg, *pc;
		time_search(c, q, nq, dim, OMEN_DEVICE_GPU, 1, ig, d, &pg); /* warm-up, upload */
		double tg = time_search(c, q, nq, dim, OMEN_DEVICE_GPU, rounds, ig, d, &pg);
		double tc = time_search(c, q, nq, dim, OMEN_DEVICE_CPU, nq >= 10000 ? 1 : rounds,
		                        ic, d, &pc);
		printf("  {\"queries\": %zu, \"gpu_s\": %.6f, \"gpu_qps\": %.1f, \"gpu_path\": "
		       "\"%s\", "
		       "\"cpu_s\": %.6f, \"cpu_qps\": %.1f, \"cpu_path\": \"%s\", \"same_ids\": "
		       "%s}%s\n",
		       nq, tg, nq / tg, pg, tc, nq / tc, pc,
		       memcmp(ig, ic, nq * K * 8) == 0 ? "true" : "false", bi < 2 ? "," : "");
		free(q), free(ig), free(ic), free(d);
	}
	printf("]}\n");
	omen_collection_close(c);
	omen_close(db);
	bu_rm_rf(dir);
	free(centres);
	return 0;
}
