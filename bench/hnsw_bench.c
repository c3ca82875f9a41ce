/*
 * omendb-bench-hnsw: OmenDB's HNSW index over an ef sweep. bench/hnsw.py runs it in turn with
 * hnswlib and FAISS (bench/hnsw_peers.py) on the same data, queries and ground truth.
 *
 * Usage: omendb-bench-hnsw --base BASE.fvecs --query QUERY.fvecs --metric l2|cosine --db DIR
 *            --gt GT.ivecs [--n N] [--nq NQ] [--m 16] [--efc 200] [--threads T]
 *            [--efs 10,16,32,64,128,256,512] [--k 10] [--reps 3] [--min-time S] [--single 0|1]
 *            [--exclude-self] [--reuse] [--int8 0|1] [--json OUT]
 *
 * --int8 1 builds the index with omen_index_params.int8 (int8-quantized traversal, exact
 * re-ranking). Without --reuse: (re)creates the database DIR with one collection "hnsw" (relaxed
 * durability), loads the first N base rows (default all) in batches of 10,000 with ids = row
 * numbers, flushes (timed: load), builds the index with omen_build_index (type HNSW, M, efc,
 * T threads; timed: build; RssAnon sampled every 5 ms meanwhile for its peak), flushes again
 * (timed separately), and runs omen_check (timed).
 * With --reuse: opens DIR as left by an earlier run and checks that its index covers N rows.
 * Then, after one untimed warm-up call, for each ef: --reps timed calls of omen_search with
 * all NQ queries as one batch and T threads, more (up to 200) until they add up to --min-time
 * seconds (default 0); the median is the figure; and, with --single 1,
 * every query alone (one omen_search call with nq = 1 and threads = 1, each timed: latency).
 * Recall@k is measured against GT (rows of row numbers from omendb-bench-gt).
 * --exclude-self: the queries are the first NQ base rows (--query is ignored); k + 1 results
 * are asked and the query's own id is dropped (hnsw_util.h).
 * Prints (or writes to --json) one JSON object.
 */
#include "bench_util.h"
#include "hnsw_util.h"

#include <omendb/omendb.h>

#include <stdlib.h>
#include <string.h>

#define MAX_EFS  64
#define MAX_REPS 200

typedef struct hb_args {
	const char *base, *query, *metric, *db, *gt, *json;
	size_t n, nq, k, reps, nef;
	double min_time;
	size_t efs[MAX_EFS];
	uint32_t m, efc;
	int threads, single, exclude_self, reuse, int8;
} hb_args;

static void usage(void)
{
	fprintf(
	    stderr,
	    "usage: omendb-bench-hnsw --base BASE.fvecs --query QUERY.fvecs --metric l2|cosine "
	    "--db DIR --gt GT.ivecs [--n N] [--nq NQ] [--m 16] [--efc 200] [--threads T] [--efs "
	    "10,16,32,64,128,256,512] [--k 10] [--reps 3] [--single 0|1] [--exclude-self] "
	    "[--min-time S] [--reuse] [--int8 0|1] [--json OUT]\n");
	exit(2);
}

static void parse_args(int argc, char **argv, hb_args *a)
{
	memset(a, 0, sizeof *a);
	a->k = 10;
	a->reps = 3;
	a->m = 16;
	a->efc = 200;
	a->threads = 1;
	a->single = 1;
	const char *efs = "10,16,32,64,128,256,512";
	const bu_opt opts[] = {{"--base", BU_STR, &a->base},
	                       {"--query", BU_STR, &a->query},
	                       {"--metric", BU_STR, &a->metric},
	                       {"--db", BU_STR, &a->db},
	                       {"--gt", BU_STR, &a->gt},
	                       {"--json", BU_STR, &a->json},
	                       {"--n", BU_SIZE, &a->n},
	                       {"--nq", BU_SIZE, &a->nq},
	                       {"--k", BU_SIZE, &a->k},
	                       {"--reps", BU_SIZE, &a->reps},
	                       {"--m", BU_U32, &a->m},
	                       {"--efc", BU_U32, &a->efc},
	                       {"--threads", BU_INT, &a->threads},
	                       {"--single", BU_INT, &a->single},
	                       {"--min-time", BU_DOUBLE, &a->min_time},
	                       {"--int8", BU_INT, &a->int8},
	                       {"--efs", BU_STR, &efs},
	                       {"--exclude-self", BU_FLAG, &a->exclude_self},
	                       {"--reuse", BU_FLAG, &a->reuse}};
	bu_parse(argc, argv, opts, sizeof opts / sizeof opts[0], NULL, 0, usage);
	a->nef = hu_parse_list(efs, a->efs, MAX_EFS, 0);
	if (!a->base || !a->metric || !a->db || !a->gt || (!a->query && !a->exclude_self) ||
	    !a->k || !a->reps || a->reps > MAX_REPS || a->threads < 0 || !a->nef || a->min_time < 0)
		usage();
}

typedef struct ef_result {
	size_t ef;
	double recall, single_recall;
	double *batch_s;
	double batch_median_s, single_total_s, p50_ms, p99_ms;
	size_t nreps;
} ef_result;

int main(int argc, char **argv)
{
	hb_args a;
	omen_db *db = NULL;
	omen_collection *coll = NULL;
	omen_metric metric;
	omen_collection_stats cs;
	omen_search_params sp;
	size_t n, dim, nq, qdim, kres, gt_rows, gt_k;
	float *x = NULL, *q, *dists;
	uint64_t *ids, *gt, mdb_bytes, mdb_alloc;
	double load_s = -1, build_s = -1, flush_s = -1, check_s = -1, open_s = -1, warm_s;
	hu_rss rss;
	int check_rc = -1, built = 0;
	char *check_report = NULL;
	ef_result *er;
	FILE *out;

	parse_args(argc, argv, &a);
	if (omen_metric_parse(a.metric, &metric) != OMEN_OK || metric == OMEN_METRIC_IP)
		usage();
	gt = hu_ivecs_read(a.gt, &gt_rows, &gt_k);
	if (!gt)
		bu_die(a.gt, "no such file (make it with omendb-bench-gt)");

	/* Data: the base rows are needed to load and, with --exclude-self, as queries. */
	if (!a.reuse || a.exclude_self)
		x = bu_fvecs_load(a.base, a.n, &n, &dim);
	else {
		bu_fvecs f;
		bu_fvecs_open(&f, a.base);
		n = a.n && a.n < f.n ? a.n : f.n;
		dim = f.dim;
		bu_fvecs_close(&f);
	}
	if (a.exclude_self) {
		nq = a.nq && a.nq < n ? a.nq : n;
		q = bu_xmalloc(nq * dim * sizeof *q);
		memcpy(q, x, nq * dim * sizeof *q);
	} else {
		q = bu_fvecs_load(a.query, a.nq, &nq, &qdim);
		if (qdim != dim)
			bu_die(a.query, "dimension %zu, base has %zu", qdim, dim);
	}
	if (gt_rows < nq || gt_k < a.k)
		bu_die(a.gt, "%zu rows of %zu ids; %zu queries and k = %zu needed", gt_rows, gt_k,
		       nq, a.k);
	kres = a.k + (a.exclude_self ? 1 : 0);

	if (!a.reuse) {
		omen_index_params ip;
		hu_progress pr = {"omendb-bench-hnsw", bu_now()};

		load_s = hu_load_collection(a.db, "hnsw", x, NULL, n, dim, metric, &db, &coll);
		fprintf(stderr, "omendb-bench-hnsw: loaded %zu x %zu in %.2f s\n", n, dim, load_s);
		omen_index_params_init(&ip);
		ip.type = OMEN_INDEX_HNSW;
		ip.m = a.m;
		ip.ef_construction = a.efc;
		ip.threads = a.threads;
		ip.int8 = a.int8;
		ip.progress = hu_progress_print;
		ip.progress_ctx = &pr;
		build_s = hu_build_index(coll, &ip, &rss);
		built = 1;
		double t0 = bu_now();
		bu_check(omen_flush(db), "flush after build");
		flush_s = bu_now() - t0;
		fprintf(stderr,
		        "omendb-bench-hnsw: index built in %.2f s (+ flush %.2f s), %d threads\n",
		        build_s, flush_s, a.threads);
		t0 = bu_now();
		check_rc = omen_check(coll, &check_report);
		check_s = bu_now() - t0;
		if (check_rc != OMEN_OK)
			fprintf(stderr, "omendb-bench-hnsw: omen_check: %s\n%s\n",
			        omen_strerror(check_rc), check_report ? check_report : "");
	} else {
		open_s = hu_open_collection(a.db, "hnsw", &db, &coll);
	}
	free(x);
	x = NULL;
	bu_check(omen_collection_stats_get(coll, &cs), "collection stats");
	hu_mdb_size(a.db, &mdb_bytes, &mdb_alloc);
	if (cs.points != n || !cs.index || strcmp(cs.index, "hnsw") != 0 || cs.indexed != n)
		fprintf(stderr,
		        "omendb-bench-hnsw: WARNING: %llu points, index \"%s\" covering %llu "
		        "rows; expected hnsw over %zu\n",
		        (unsigned long long)cs.points, cs.index ? cs.index : "(null)",
		        (unsigned long long)cs.indexed, n);

	ids = bu_xmalloc(nq * kres * sizeof *ids);
	dists = bu_xmalloc(nq * kres * sizeof *dists);
	er = bu_xmalloc(a.nef * sizeof *er);
	omen_search_params_init(&sp);
	sp.k = kres;
	sp.threads = a.threads;
	sp.ef = a.efs[0];
	{
		double t0 = bu_now();
		bu_check(omen_search(coll, q, nq, dim, &sp, ids, dists), "search (warm-up)");
		warm_s = bu_now() - t0;
	}
	for (size_t e = 0; e < a.nef; e++) {
		ef_result *r = &er[e];
		memset(r, 0, sizeof *r);
		r->ef = a.efs[e];
		r->batch_s = bu_xmalloc(MAX_REPS * sizeof *r->batch_s);
		sp.ef = r->ef;
		sp.threads = a.threads;
		r->nreps = hu_time_searches(coll, q, nq, dim, &sp, ids, dists, a.reps, a.min_time,
		                            r->batch_s, MAX_REPS);
		r->batch_median_s = bu_median(r->batch_s, r->nreps);
		r->recall = hu_recall(ids, kres, gt, gt_k, nq, a.k, a.exclude_self);
		if (a.single) {
			double *lat = bu_xmalloc(nq * sizeof *lat);
			sp.threads = 1;
			memset(ids, 0xff, nq * kres * sizeof *ids);
			for (size_t i = 0; i < nq; i++) {
				double t0 = bu_now();
				bu_check(omen_search(coll, q + i * dim, 1, dim, &sp, ids + i * kres,
				                     dists + i * kres),
				         "search (one query)");
				lat[i] = bu_now() - t0;
				r->single_total_s += lat[i];
			}
			r->p50_ms = 1e3 * bu_quantile(lat, nq, 0.5);
			r->p99_ms = 1e3 * bu_quantile(lat, nq, 0.99);
			r->single_recall = hu_recall(ids, kres, gt, gt_k, nq, a.k, a.exclude_self);
			free(lat);
		}
		fprintf(stderr,
		        "omendb-bench-hnsw: ef %4zu: recall@%zu %.4f, batch %.0f q/s (%d thr)",
		        r->ef, a.k, r->recall, (double)nq / r->batch_median_s, a.threads);
		if (a.single)
			fprintf(stderr, ", single %.0f q/s, p50 %.3f ms, p99 %.3f ms",
			        nq / r->single_total_s, r->p50_ms, r->p99_ms);
		fputc('\n', stderr);
	}

	out = bu_open_out(a.json);
	fprintf(out, "{\"bench\": \"hnsw\", \"system\": \"%s\", \"version\": \"%s\",\n",
	        cs.hnsw_int8 ? "omendb-int8" : "omendb", OMEN_VERSION_STRING);
	fprintf(out,
	        " \"base\": \"%s\", \"n\": %zu, \"dim\": %zu, \"metric\": \"%s\", \"nq\": %zu, "
	        "\"k\": %zu, \"exclude_self\": %s, \"m\": %u, \"efc\": %u, \"threads\": %d, "
	        "\"reps\": %zu, \"reused\": %s,\n",
	        a.base, n, dim, a.metric, nq, a.k, a.exclude_self ? "true" : "false", a.m, a.efc,
	        a.threads, a.reps, a.reuse ? "true" : "false");
	hu_json_num(out, "load_s", load_s);
	hu_json_num(out, "build_s", build_s);
	hu_json_num(out, "flush_after_build_s", flush_s);
	hu_json_num(out, "check_s", check_s);
	hu_json_num(out, "open_s", open_s);
	fprintf(out, " \"warmup_s\": %.6f,\n", warm_s);
	fprintf(out, " \"check\": %s,\n",
	        check_rc < 0          ? "null"
	        : check_rc == OMEN_OK ? "\"ok\""
	                              : "\"failed\"");
	fprintf(out,
	        " \"index\": {\"kind\": \"%s\", \"points\": %llu, \"indexed\": %llu, "
	        "\"index_bytes\": %llu, \"vector_bytes\": %llu, \"hnsw_m\": %u, "
	        "\"hnsw_ef_construction\": %u, \"hnsw_int8\": %d},\n",
	        cs.index ? cs.index : "", (unsigned long long)cs.points,
	        (unsigned long long)cs.indexed, (unsigned long long)cs.index_bytes,
	        (unsigned long long)cs.vector_bytes, cs.hnsw_m, cs.hnsw_ef_construction,
	        cs.hnsw_int8);
	fprintf(out,
	        " \"bytes\": {\"index_per_vector\": %.3f, \"vectors_per_vector\": %.3f, "
	        "\"file_per_vector\": %.3f, \"file_bytes\": %llu, \"file_allocated_bytes\": %llu",
	        (double)cs.index_bytes / (double)n, (double)cs.vector_bytes / (double)n,
	        (double)mdb_bytes / (double)n, (unsigned long long)mdb_bytes,
	        (unsigned long long)mdb_alloc);
	if (built)
		hu_json_rss_build(out, &rss, n);
	fprintf(out, "},\n \"sweep\": [\n");
	for (size_t e = 0; e < a.nef; e++) {
		ef_result *r = &er[e];
		fprintf(out, "  {\"ef\": %zu, \"recall\": %.6f, \"batch_s\": ", r->ef, r->recall);
		bu_json_doubles(out, r->batch_s, r->nreps);
		fprintf(out, ", \"batch_median_s\": %.9g, \"batch_qps\": %.3f", r->batch_median_s,
		        (double)nq / r->batch_median_s);
		if (a.single)
			fprintf(out,
			        ", \"single_total_s\": %.9g, \"single_qps\": %.3f, "
			        "\"latency_p50_ms\": %.6f, \"latency_p99_ms\": %.6f, "
			        "\"single_recall\": %.6f",
			        r->single_total_s, (double)nq / r->single_total_s, r->p50_ms,
			        r->p99_ms, r->single_recall);
		fprintf(out, "}%s\n", e + 1 < a.nef ? "," : "");
		free(r->batch_s);
	}
	fprintf(out, " ]}\n");
	bu_close_out(out);

	omen_free(check_report);
	omen_collection_close(coll);
	omen_close(db);
	free(q), free(ids), free(dists), free(gt), free(er);
	return check_rc > 0 ? 1 : 0;
}
