/*
 * omendb-bench-ivf: OmenDB's IVF index (RaBitQ codes in inverted lists, exact re-ranking from
 * the float vectors) over an nprobe sweep. bench/ivf.py runs it in turn with FAISS's IVF
 * indexes (bench/ivf_peers.py) on the same data, queries, ground truth and nlist.
 *
 * Usage: omendb-bench-ivf --base BASE.fvecs --query QUERY.fvecs --metric l2|cosine --db DIR
 *            --gt GT.ivecs [--n N] [--nq NQ] [--nlist 0] [--bits 0] [--threads T]
 *            [--nprobes 0,1,2,4,8,16,32,64,128] [--k 10] [--reps 3] [--min-time S]
 *            [--check 0|1] [--reuse] [--json OUT]
 *
 * Without --reuse: (re)creates the database DIR with one collection "ivf" (relaxed
 * durability), loads the first N base rows (default all), read from the file batch by batch,
 * in batches of 10,000 with ids = row numbers, flushes (timed: load, file reads excluded),
 * builds the index with omen_build_index (type IVF, --nlist lists (0: the engine chooses),
 * --bits bits per dimension (0: the engine's default), T threads; timed: build; RssAnon
 * sampled every 5 ms meanwhile for its peak), flushes again (timed separately) and, with
 * --check 1 (default), runs omen_check (timed). One call builds the index; its progress
 * reports split it into "train_s" (the k-means, to the first report past its end) and
 * "add_s" (the rest: rotation, encoding every point, calibrating nprobe, writing the lists).
 * With --reuse: opens DIR as left by an earlier run and checks that its IVF index covers N rows.
 * Prints the index's statistics: nlist, the default nprobe the build calibrated
 * (omen_collection_stats.ivf_nprobe), bits, index_bytes and the size of data.mdb.
 * Then, for each nprobe of --nprobes (0 = the calibrated default, reported with its number;
 * values above nlist are skipped and listed): one untimed warm-up call, then --reps timed
 * calls of omen_search with all NQ queries as one batch and T threads, more (up to 200) until
 * they add up to --min-time seconds (default 0); the median is the figure. Recall@k is
 * measured against GT (rows of row numbers from omendb-bench-gt); omen_search_info's
 * vectors_read (float vectors re-ranked exactly), per query and as a fraction of the
 * collection's rows, is the share of the vector map one query touches.
 * Bytes: "resident_per_vector" is what must stay in RAM to search at this speed, the index's
 * bytes (omen_collection_stats.index_bytes) / N: the float vectors are read only for the few
 * candidates re-ranked. Also the growth of the process's RssAnon over the build (after it and
 * its peak) and of RssAnon and RssFile over the sweep (pages of the memory map the searches
 * touched).
 * Prints (or writes to --json) one JSON object, with the fields of bench/ivf_peers.py.
 */
#include "bench_util.h"
#include "hnsw_util.h"

#include <omendb/omendb.h>

#include <stdlib.h>
#include <string.h>

#define MAX_NPROBES 64
#define MAX_REPS    200

typedef struct ib_args {
	const char *base, *query, *metric, *db, *gt, *json;
	size_t n, nq, k, reps, nnp;
	double min_time;
	size_t nprobes[MAX_NPROBES];
	uint32_t nlist, bits;
	int threads, check, reuse;
} ib_args;

static void usage(void)
{
	fprintf(stderr,
	        "usage: omendb-bench-ivf --base BASE.fvecs --query QUERY.fvecs --metric l2|cosine "
	        "--db DIR --gt GT.ivecs [--n N] [--nq NQ] [--nlist 0] [--bits 0] [--threads T] "
	        "[--nprobes 0,1,2,4,8,16,32,64,128] [--k 10] [--reps 3] [--min-time S] "
	        "[--check 0|1] [--reuse] [--json OUT]\n"
	        "  --nlist 0 and --bits 0: the engine's defaults; nprobe 0: the default nprobe "
	        "the build calibrated\n");
	exit(2);
}

static void parse_args(int argc, char **argv, ib_args *a)
{
	memset(a, 0, sizeof *a);
	a->k = 10;
	a->reps = 3;
	a->threads = 1;
	a->check = 1;
	const char *nprobes = "0,1,2,4,8,16,32,64,128";
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
	                       {"--nlist", BU_U32, &a->nlist},
	                       {"--bits", BU_U32, &a->bits},
	                       {"--threads", BU_INT, &a->threads},
	                       {"--check", BU_INT, &a->check},
	                       {"--min-time", BU_DOUBLE, &a->min_time},
	                       {"--nprobes", BU_STR, &nprobes},
	                       {"--reuse", BU_FLAG, &a->reuse}};
	bu_parse(argc, argv, opts, sizeof opts / sizeof opts[0], NULL, 0, usage);
	a->nnp = hu_parse_list(nprobes, a->nprobes, MAX_NPROBES, 1);
	if (!a->base || !a->query || !a->metric || !a->db || !a->gt || !a->k || !a->reps ||
	    a->reps > MAX_REPS || a->threads < 0 || !a->nnp || a->min_time < 0)
		usage();
}

typedef struct np_result {
	size_t nprobe;     /* the value searched with (the calibrated default's number for 0) */
	int default_probe; /* requested as 0 */
	double recall, warmup_s, batch_median_s, vectors_read;
	double batch_s[MAX_REPS];
	size_t nreps;
	const char *path;
} np_result;

/* The progress of a build: printed every 10 s, and the time of the first report at or past
 * the end of the k-means. The engine counts an IVF build's work as the k-means sample times
 * its iterations, then one unit per point encoded (engine/ivf_build.c), so that report is the
 * training's end, to within one report (about 1% of the work). */
typedef struct ib_progress {
	hu_progress print;
	uint64_t points;
	double start, train_s; /* train_s < 0 until reached */
} ib_progress;

static void ib_progress_fn(void *ctx, uint64_t done, uint64_t total)
{
	ib_progress *p = ctx;
	if (p->train_s < 0 && total > p->points && done >= total - p->points)
		p->train_s = bu_now() - p->start;
	hu_progress_print(&p->print, done, total);
}

/* Builds the IVF index of a freshly loaded collection of n points; fills the timings
 * (train_s: -1 when the progress never showed the training's end). */
static void build(const ib_args *a, omen_db *db, omen_collection *coll, size_t n, hu_rss *rss,
                  double *build_s, double *train_s, double *flush_s)
{
	omen_index_params ip;
	ib_progress pr = {{"omendb-bench-ivf", bu_now()}, n, 0, -1};
	double t0;

	omen_index_params_init(&ip);
	ip.type = OMEN_INDEX_IVF;
	ip.threads = a->threads;
	if (a->nlist)
		ip.nlist = a->nlist;
	if (a->bits)
		ip.bits = a->bits;
	ip.progress = ib_progress_fn;
	ip.progress_ctx = &pr;
	pr.start = bu_now();
	*build_s = hu_build_index(coll, &ip, rss);
	*train_s = pr.train_s;
	t0 = bu_now();
	bu_check(omen_flush(db), "flush after build");
	*flush_s = bu_now() - t0;
	fprintf(stderr,
	        "omendb-bench-ivf: index built in %.2f s (training about %.2f s) (+ flush %.2f s), "
	        "%d threads\n",
	        *build_s, *train_s, *flush_s, a->threads);
}

/* Runs the sweep: per nprobe a warm-up, the timed batches, recall and vectors read. */
static size_t sweep(const ib_args *a, omen_collection *coll, const omen_collection_stats *cs,
                    const float *q, size_t nq, size_t dim, const uint64_t *gt, size_t gt_k,
                    np_result *res)
{
	omen_search_params sp;
	omen_search_info info;
	uint64_t *ids = bu_xmalloc(nq * a->k * sizeof *ids);
	float *dists = bu_xmalloc(nq * a->k * sizeof *dists);
	size_t nres = 0;

	omen_search_params_init(&sp);
	sp.k = a->k;
	sp.threads = a->threads;
	sp.info = &info;
	for (size_t i = 0; i < a->nnp; i++) {
		np_result *r = &res[nres];
		if (a->nprobes[i] > cs->ivf_nlist) {
			fprintf(stderr, "omendb-bench-ivf: nprobe %zu skipped: nlist is %u\n",
			        a->nprobes[i], cs->ivf_nlist);
			continue;
		}
		memset(r, 0, sizeof *r);
		r->default_probe = a->nprobes[i] == 0;
		r->nprobe = r->default_probe ? cs->ivf_nprobe : a->nprobes[i];
		sp.nprobe = a->nprobes[i];
		double t0 = bu_now();
		bu_check(omen_search(coll, q, nq, dim, &sp, ids, dists), "search (warm-up)");
		r->warmup_s = bu_now() - t0;
		memset(&info, 0, sizeof info);
		r->nreps = hu_time_searches(coll, q, nq, dim, &sp, ids, dists, a->reps, a->min_time,
		                            r->batch_s, MAX_REPS);
		r->batch_median_s = bu_median(r->batch_s, r->nreps);
		r->recall = hu_recall(ids, a->k, gt, gt_k, nq, a->k, 0);
		r->vectors_read = (double)info.vectors_read / (double)nq;
		r->path = info.path ? info.path : "";
		if (strcmp(r->path, "cpu-ivf") != 0)
			fprintf(stderr, "omendb-bench-ivf: WARNING: searches served by \"%s\"\n",
			        r->path);
		fprintf(
		    stderr,
		    "omendb-bench-ivf: nprobe %4zu%s: recall@%zu %.4f, batch %.0f q/s (%d thr), "
		    "%.0f vectors re-ranked per query (%.5f of the rows)\n",
		    r->nprobe, r->default_probe ? " (default)" : "", a->k, r->recall,
		    (double)nq / r->batch_median_s, a->threads, r->vectors_read,
		    r->vectors_read / (double)cs->points);
		nres++;
	}
	free(ids);
	free(dists);
	return nres;
}

int main(int argc, char **argv)
{
	ib_args a;
	omen_db *db = NULL;
	omen_collection *coll = NULL;
	omen_metric metric;
	omen_collection_stats cs;
	bu_fvecs f;
	size_t n, dim, nq, qdim, gt_rows, gt_k, nres;
	float *q;
	uint64_t *gt, mdb_bytes, mdb_alloc;
	double load_s = -1, build_s = -1, train_s = -1, flush_s = -1, check_s = -1, open_s = -1;
	long anon0, file0, anon1, file1;
	hu_rss rss;
	int check_rc = -1;
	char *check_report = NULL;
	np_result *res;
	FILE *out;

	parse_args(argc, argv, &a);
	if (omen_metric_parse(a.metric, &metric) != OMEN_OK || metric == OMEN_METRIC_IP)
		usage();
	gt = hu_ivecs_read(a.gt, &gt_rows, &gt_k);
	if (!gt)
		bu_die(a.gt, "no such file (make it with omendb-bench-gt)");
	bu_fvecs_open(&f, a.base);
	n = a.n && a.n < f.n ? a.n : f.n;
	dim = f.dim;
	q = bu_fvecs_load(a.query, a.nq, &nq, &qdim);
	if (qdim != dim)
		bu_die(a.query, "dimension %zu, base has %zu", qdim, dim);
	if (gt_rows < nq || gt_k < a.k)
		bu_die(a.gt, "%zu rows of %zu ids; %zu queries and k = %zu needed", gt_rows, gt_k,
		       nq, a.k);

	if (!a.reuse) {
		load_s = hu_load_collection(a.db, "ivf", NULL, &f, n, dim, metric, &db, &coll);
		fprintf(stderr, "omendb-bench-ivf: loaded %zu x %zu in %.2f s\n", n, dim, load_s);
		build(&a, db, coll, n, &rss, &build_s, &train_s, &flush_s);
		if (a.check) {
			double t0 = bu_now();
			check_rc = omen_check(coll, &check_report);
			check_s = bu_now() - t0;
			if (check_rc != OMEN_OK)
				fprintf(stderr, "omendb-bench-ivf: omen_check: %s\n%s\n",
				        omen_strerror(check_rc), check_report ? check_report : "");
		}
	} else {
		open_s = hu_open_collection(a.db, "ivf", &db, &coll);
	}
	bu_fvecs_close(&f);
	bu_check(omen_collection_stats_get(coll, &cs), "collection stats");
	hu_mdb_size(a.db, &mdb_bytes, &mdb_alloc);
	if (!cs.index || strcmp(cs.index, "ivf") != 0 || !cs.ivf_nlist)
		bu_die("omendb-bench-ivf", "%s: the collection's index is \"%s\", not ivf", a.db,
		       cs.index ? cs.index : "(null)");
	if (cs.points != n || cs.indexed != n)
		fprintf(stderr,
		        "omendb-bench-ivf: WARNING: %llu points, the index covers %llu rows; "
		        "expected %zu\n",
		        (unsigned long long)cs.points, (unsigned long long)cs.indexed, n);
	fprintf(stderr,
	        "omendb-bench-ivf: index: nlist %u, calibrated nprobe %u, %u bit(s), %llu index "
	        "bytes (%.1f per vector), data.mdb %llu bytes (%.1f per vector)\n",
	        cs.ivf_nlist, cs.ivf_nprobe, cs.ivf_bits, (unsigned long long)cs.index_bytes,
	        (double)cs.index_bytes / (double)n, (unsigned long long)mdb_bytes,
	        (double)mdb_bytes / (double)n);

	res = bu_xmalloc(a.nnp * sizeof *res);
	anon0 = bu_proc_status_kb("RssAnon");
	file0 = bu_proc_status_kb("RssFile");
	nres = sweep(&a, coll, &cs, q, nq, dim, gt, gt_k, res);
	anon1 = bu_proc_status_kb("RssAnon");
	file1 = bu_proc_status_kb("RssFile");

	out = bu_open_out(a.json);
	fprintf(out, "{\"bench\": \"ivf\", \"system\": \"omendb\", \"version\": \"%s\",\n",
	        OMEN_VERSION_STRING);
	fprintf(out,
	        " \"base\": \"%s\", \"n\": %zu, \"dim\": %zu, \"metric\": \"%s\", \"nq\": %zu, "
	        "\"k\": %zu, \"threads\": %d, \"reps\": %zu, \"min_time\": %g, \"reused\": %s,\n"
	        " \"nlist_requested\": %u, \"bits_requested\": %u, \"nlist\": %u, "
	        "\"nprobe_default\": %u,\n",
	        a.base, n, dim, a.metric, nq, a.k, a.threads, a.reps, a.min_time,
	        a.reuse ? "true" : "false", a.nlist, a.bits, cs.ivf_nlist, cs.ivf_nprobe);
	hu_json_num(out, "load_s", load_s);
	hu_json_num(out, "build_s", build_s);
	hu_json_num(out, "train_s", train_s);
	hu_json_num(out, "add_s", train_s < 0 ? -1 : build_s - train_s);
	hu_json_num(out, "flush_after_build_s", flush_s);
	hu_json_num(out, "check_s", check_s);
	hu_json_num(out, "open_s", open_s);
	fprintf(out, "\n \"check\": %s,\n",
	        check_rc < 0          ? "null"
	        : check_rc == OMEN_OK ? "\"ok\""
	                              : "\"failed\"");
	fprintf(out,
	        " \"index\": {\"kind\": \"%s\", \"points\": %llu, \"indexed\": %llu, "
	        "\"index_bytes\": %llu, \"vector_bytes\": %llu, \"ivf_nlist\": %u, "
	        "\"ivf_nprobe\": %u, \"ivf_bits\": %u},\n",
	        cs.index, (unsigned long long)cs.points, (unsigned long long)cs.indexed,
	        (unsigned long long)cs.index_bytes, (unsigned long long)cs.vector_bytes,
	        cs.ivf_nlist, cs.ivf_nprobe, cs.ivf_bits);
	fprintf(out,
	        " \"bytes\": {\"resident_per_vector\": %.3f, \"index_per_vector\": %.3f, "
	        "\"vectors_per_vector\": %.3f, \"file_per_vector\": %.3f, \"file_bytes\": %llu, "
	        "\"file_allocated_bytes\": %llu, \"rss_anon_growth_search_per_vector\": %.3f, "
	        "\"rss_file_growth_search_per_vector\": %.3f",
	        (double)cs.index_bytes / (double)n, (double)cs.index_bytes / (double)n,
	        (double)cs.vector_bytes / (double)n, (double)mdb_bytes / (double)n,
	        (unsigned long long)mdb_bytes, (unsigned long long)mdb_alloc,
	        1024.0 * (double)(anon1 - anon0) / (double)n,
	        1024.0 * (double)(file1 - file0) / (double)n);
	if (!a.reuse)
		hu_json_rss_build(out, &rss, n);
	fprintf(out, "},\n \"sweep\": [\n");
	for (size_t i = 0; i < nres; i++) {
		np_result *r = &res[i];
		fprintf(out,
		        "  {\"nprobe\": %zu, \"calibrated_default\": %s, \"recall\": %.6f, "
		        "\"warmup_s\": %.6f, \"batch_s\": ",
		        r->nprobe, r->default_probe ? "true" : "false", r->recall, r->warmup_s);
		bu_json_doubles(out, r->batch_s, r->nreps);
		fprintf(
		    out,
		    ", \"batch_median_s\": %.9g, \"qps\": %.3f, \"vectors_read_per_query\": %.3f, "
		    "\"vectors_read_fraction\": %.9g, \"path\": \"%s\"}%s\n",
		    r->batch_median_s, (double)nq / r->batch_median_s, r->vectors_read,
		    r->vectors_read / (double)cs.points, r->path, i + 1 < nres ? "," : "");
	}
	fprintf(out, " ],\n \"skipped_nprobes\": [");
	for (size_t i = 0, m = 0; i < a.nnp; i++)
		if (a.nprobes[i] > cs.ivf_nlist)
			fprintf(out, "%s%zu", m++ ? ", " : "", a.nprobes[i]);
	fprintf(out, "]}\n");
	bu_close_out(out);

	omen_free(check_report);
	omen_collection_close(coll);
	omen_close(db);
	free(q), free(gt), free(res);
	return check_rc > 0 ? 1 : 0;
}
