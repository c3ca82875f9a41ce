/*
 * omendb-bench-batch: one batch of queries against the collection "batch", timed --reps times
 * after one warm-up call; prints one JSON line with the times. bench/batch.py runs it in turn
 * with FAISS IndexFlatL2 on the same data so that both are measured in the same run.
 *
 * Usage: omendb-bench-batch --db DIR --queries FILE.fvecs [--build BASE.fvecs] [--nq 1000]
 *                           [--k 10] [--threads 2] [--reps 5] [--ids-out FILE]
 * --build (re)creates the collection from BASE.fvecs with ids equal to row numbers (relaxed
 * durability, then flush). --ids-out writes the result ids of the last call as raw uint64.
 */
#include "bench_util.h"

#include <omendb/omendb.h>

#include <stdlib.h>
#include <string.h>

typedef struct batch_args {
	const char *db, *queries, *build, *ids_out;
	size_t nq, k, reps;
	int threads;
} batch_args;

static void usage(void)
{
	fprintf(stderr, "usage: omendb-bench-batch --db DIR --queries FILE.fvecs [--build "
	                "BASE.fvecs] [--nq 1000] [--k 10] [--threads 2] [--reps 5] [--ids-out "
	                "FILE]\n");
	exit(2);
}

static void parse_args(int argc, char **argv, batch_args *a)
{
	memset(a, 0, sizeof *a);
	a->nq = 1000;
	a->k = 10;
	a->threads = 2;
	a->reps = 5;
	const bu_opt opts[] = {{"--db", BU_STR, &a->db},       {"--queries", BU_STR, &a->queries},
	                       {"--build", BU_STR, &a->build}, {"--ids-out", BU_STR, &a->ids_out},
	                       {"--nq", BU_SIZE, &a->nq},      {"--k", BU_SIZE, &a->k},
	                       {"--reps", BU_SIZE, &a->reps},  {"--threads", BU_INT, &a->threads}};
	bu_parse(argc, argv, opts, sizeof opts / sizeof opts[0], NULL, 0, usage);
	if (!a->db || !a->queries || !a->nq || !a->k || a->threads < 0)
		usage();
}

/* Recreates the collection "batch" in a fresh database at path from the rows of base. */
static void build(const char *path, const char *base)
{
	omen_db *db;
	omen_collection *coll;
	omen_open_options opt;
	size_t n, dim;
	float *x = bu_fvecs_load(base, 0, &n, &dim);
	uint64_t *ids = bu_xmalloc(10000 * sizeof *ids);

	bu_rm_rf(path);
	omen_open_options_init(&opt);
	opt.durability = OMEN_DURABLE_RELAXED;
	bu_check(omen_open(path, &opt, &db), "omen_open");
	bu_check(omen_create_collection(db, "batch", dim, OMEN_METRIC_L2), "create collection");
	bu_check(omen_collection_open(db, "batch", &coll), "open collection");
	for (size_t i = 0; i < n; i += 10000) {
		omen_batch b = {0};
		b.n = n - i < 10000 ? n - i : 10000;
		b.dim = dim;
		for (size_t j = 0; j < b.n; j++)
			ids[j] = i + j;
		b.ids = ids;
		b.vectors = x + i * dim;
		bu_check(omen_upsert(coll, &b, NULL), "upsert");
	}
	omen_collection_close(coll);
	bu_check(omen_flush(db), "flush");
	omen_close(db);
	free(ids), free(x);
}

static void write_ids(const char *path, const uint64_t *ids, size_t n)
{
	FILE *f = bu_open_out(path);
	if (fwrite(ids, sizeof *ids, n, f) != n)
		bu_die(path, "short write");
	bu_close_out(f);
}

int main(int argc, char **argv)
{
	batch_args a;
	omen_db *db;
	omen_collection *coll;
	omen_search_params sp;
	size_t nq, dim;
	float *q, *dists;
	uint64_t *ids;
	double *t;

	parse_args(argc, argv, &a);
	if (a.build)
		build(a.db, a.build);
	q = bu_fvecs_load(a.queries, a.nq, &nq, &dim);
	ids = bu_xmalloc(nq * a.k * sizeof *ids);
	dists = bu_xmalloc(nq * a.k * sizeof *dists);
	t = bu_xmalloc((a.reps ? a.reps : 1) * sizeof *t);
	bu_check(omen_open(a.db, NULL, &db), "omen_open");
	bu_check(omen_collection_open(db, "batch", &coll), "open collection");
	omen_search_params_init(&sp);
	sp.k = a.k;
	sp.threads = a.threads;
	bu_check(omen_search(coll, q, nq, dim, &sp, ids, dists), "search (warm-up)");
	for (size_t r = 0; r < a.reps; r++) {
		double t0 = bu_now();
		bu_check(omen_search(coll, q, nq, dim, &sp, ids, dists), "search");
		t[r] = bu_now() - t0;
	}
	if (a.ids_out)
		write_ids(a.ids_out, ids, nq * a.k);
	printf("{\"nq\": %zu, \"k\": %zu, \"threads\": %d, \"seconds\": ", nq, a.k, a.threads);
	bu_json_doubles(stdout, t, a.reps);
	printf(", \"median_s\": %.9g}\n", a.reps ? bu_median(t, a.reps) : 0.0);
	omen_collection_close(coll);
	omen_close(db);
	free(q), free(ids), free(dists), free(t);
	return 0;
}
