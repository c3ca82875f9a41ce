/*
 * omendb-bench-gt: exact k-nearest-neighbour ground truth for the HNSW benchmark, written as
 * .ivecs (per query an int32 k, then k int32 row numbers, closest first, ties by smaller row).
 * It uses the independent brute force of exact.c (squared L2 in double), never the engine.
 *
 * Usage: omendb-bench-gt --base BASE.fvecs --query QUERY.fvecs --metric l2|cosine --out GT.ivecs
 *                        [--n N] [--nq NQ] [--k 100] [--exclude-self]
 * --n uses the first N base rows (0 = all), --nq the first NQ queries (0 = all). cosine
 * normalises base and queries to unit length (in double) and ranks by squared L2, which orders
 * exactly as 1 - cos. --exclude-self: the queries are the base rows themselves (--query is
 * ignored; the first NQ base rows are the queries): each row's exact k + 1 nearest are
 * computed and the query's own row is removed (or, when a duplicate outranks it, the last).
 */
#include "bench_util.h"
#include "exact.h"
#include "hnsw_util.h"

#include <stdlib.h>
#include <string.h>

typedef struct gt_args {
	const char *base, *query, *metric, *out;
	size_t n, nq, k;
	int exclude_self;
} gt_args;

static void usage(void)
{
	fprintf(stderr, "usage: omendb-bench-gt --base BASE.fvecs --query QUERY.fvecs --metric "
	                "l2|cosine --out GT.ivecs [--n N] [--nq NQ] [--k 100] [--exclude-self]\n");
	exit(2);
}

static void parse_args(int argc, char **argv, gt_args *a)
{
	memset(a, 0, sizeof *a);
	a->k = 100;
	const bu_opt opts[] = {
	    {"--base", BU_STR, &a->base},     {"--query", BU_STR, &a->query},
	    {"--metric", BU_STR, &a->metric}, {"--out", BU_STR, &a->out},
	    {"--n", BU_SIZE, &a->n},          {"--nq", BU_SIZE, &a->nq},
	    {"--k", BU_SIZE, &a->k},          {"--exclude-self", BU_FLAG, &a->exclude_self}};
	bu_parse(argc, argv, opts, sizeof opts / sizeof opts[0], NULL, 0, usage);
	if (!a->base || !a->metric || !a->out || !a->k || (!a->query && !a->exclude_self))
		usage();
}

int main(int argc, char **argv)
{
	gt_args a;
	size_t n, dim, nq, qdim, kk;
	float *base, *q;
	uint64_t *ids, *out;
	double *dists, t0;

	parse_args(argc, argv, &a);
	base = bu_fvecs_load(a.base, a.n, &n, &dim);
	if (a.exclude_self) {
		nq = a.nq && a.nq < n ? a.nq : n;
		q = bu_xmalloc(nq * dim * sizeof *q);
		memcpy(q, base, nq * dim * sizeof *q);
	} else {
		q = bu_fvecs_load(a.query, a.nq, &nq, &qdim);
		if (qdim != dim)
			bu_die(a.query, "dimension %zu, base has %zu", qdim, dim);
	}
	if (strcmp(a.metric, "cosine") == 0) {
		hu_normalize(base, n, dim);
		hu_normalize(q, nq, dim);
	}
	kk = a.k + (a.exclude_self ? 1 : 0);
	if (kk > n)
		bu_die("omendb-bench-gt", "k %zu (+1 for self) exceeds the %zu base rows", a.k, n);
	ids = bu_xmalloc(nq * kk * sizeof *ids);
	dists = bu_xmalloc(nq * kk * sizeof *dists);
	t0 = bu_now();
	exact_knn(base, n, q, nq, dim, kk, ids, dists);
	out = bu_xmalloc(nq * a.k * sizeof *out);
	for (size_t i = 0; i < nq; i++) {
		size_t used = 0, self_seen = 0;
		for (size_t j = 0; j < kk && used < a.k; j++) {
			if (a.exclude_self && !self_seen && ids[i * kk + j] == i) {
				self_seen = 1;
				continue;
			}
			out[i * a.k + used++] = ids[i * kk + j];
		}
	}
	hu_ivecs_write(a.out, out, nq, a.k);
	fprintf(stderr,
	        "omendb-bench-gt: %zu queries x %zu base rows x %zu-d, %s, k=%zu%s: %.1f s -> %s\n",
	        nq, n, dim, a.metric, a.k, a.exclude_self ? ", self excluded" : "", bu_now() - t0,
	        a.out);
	free(base), free(q), free(ids), free(dists), free(out);
	return 0;
}
