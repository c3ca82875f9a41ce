/*
 * The search command: every vector of a query file searched in one omen_search call, which is
 * all that is timed (clock_gettime, CLOCK_MONOTONIC): not start-up, not reading the queries,
 * not printing. Results go to stdout as text or JSON, and/or to an .ivecs file of ids.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Above this many queries --json leaves out the per-query results. */
#define JSON_MAX_RESULTS_QUERIES 100
#define SEARCH_MAX_THREADS       4096

typedef struct search_args {
	const char *db, *coll, *queries; /* positional arguments */
	const char *filter;              /* --filter, or NULL */
	const char *out;                 /* --out, or NULL */
	int json;                        /* --json */
	int exact;                       /* --exact */
	int partial;                     /* --partial */
	omen_device device;              /* --device */
	uint64_t k;                      /* --k */
	uint64_t threads;                /* --threads, default 0 = all cores */
	uint64_t ef;                     /* --ef, default 0 = the library's default */
	uint64_t nprobe;                 /* --nprobe, default 0 = the index's default */
} search_args;

/* The results of one search call: nq x k ids and distances, and the time it took. */
typedef struct results {
	size_t nq, k;
	uint64_t *ids;
	float *dists;
	omen_search_info info;
	double seconds;
} results;

/* Parses the command line into *a. Returns 0 or CLI_USAGE. */
static int search_parse(int argc, char **argv, search_args *a)
{
	const char *k_s = NULL, *threads_s = NULL, *ef_s = NULL, *json = NULL, *exact = NULL,
	           *partial = NULL, *device = NULL, *nprobe_s = NULL;
	const cli_opt opts[] = {
	    {"--k", 1, &k_s},          {"--threads", 1, &threads_s}, {"--filter", 1, &a->filter},
	    {"--out", 1, &a->out},     {"--json", 0, &json},         {"--ef", 1, &ef_s},
	    {"--exact", 0, &exact},    {"--partial", 0, &partial},   {"--device", 1, &device},
	    {"--nprobe", 1, &nprobe_s}};
	size_t npos;
	int rc = cli_getopts("search", argc, argv, opts, sizeof(opts) / sizeof(opts[0]), &npos);

	if (rc != 0)
		return rc;
	if (npos != 3)
		return cli_usage_err("search", "DB, COLL and QUERIES expected");
	a->db = argv[0];
	a->coll = argv[1];
	a->queries = argv[2];
	a->json = json != NULL;
	a->exact = exact != NULL;
	a->partial = partial != NULL;
	a->device = OMEN_DEVICE_AUTO;
	if (device && omen_device_parse(device, &a->device) != OMEN_OK)
		return cli_usage_err("search", "--device: %s", omen_errmsg(NULL));
	if (k_s == NULL)
		return cli_usage_err("search", "--k is required");
	if (cli_opt_u64("search", "--k", k_s, 0, UINT64_MAX, &a->k) != 0)
		return CLI_USAGE;
	if (threads_s &&
	    cli_opt_u64("search", "--threads", threads_s, 0, SEARCH_MAX_THREADS, &a->threads))
		return CLI_USAGE;
	/* Any size_t parses; the library refuses an ef above OMEN_HNSW_EF_MAX with its message. */
	if (ef_s && cli_opt_u64("search", "--ef", ef_s, 0, SIZE_MAX, &a->ef))
		return CLI_USAGE;
	/* Likewise an nprobe above the index's lists; 0 is refused (leave it out for the
	 * calibrated default). */
	if (nprobe_s && cli_opt_u64("search", "--nprobe", nprobe_s, 1, SIZE_MAX, &a->nprobe))
		return CLI_USAGE;
	return 0;
}

/* Writes the ids as .ivecs: per query int32 k, then k int32 ids, -1 for OMEN_NO_ID. Ids that
 * int32 cannot hold are refused before the file is created. Returns 0 or -1. */
static int write_ivecs(const char *path, const results *r)
{
	size_t total = r->nq * r->k;
	int32_t *row = malloc((r->k + 1) * sizeof(int32_t));
	FILE *f;
	int ok = 1;

	for (size_t i = 0; i < total; i++) {
		if (r->ids[i] != OMEN_NO_ID && r->ids[i] > INT32_MAX) {
			cli_err("%s: id %llu does not fit in ivecs (int32)", path,
			        (unsigned long long)r->ids[i]);
			free(row);
			return -1;
		}
	}
	f = row ? fopen(path, "wb") : NULL;
	if (f == NULL) {
		cli_err("%s: %s", path, row ? strerror(errno) : "out of memory");
		free(row);
		return -1;
	}
	row[0] = (int32_t)r->k;
	for (size_t q = 0; q < r->nq && ok; q++) {
		for (size_t j = 0; j < r->k; j++) {
			uint64_t id = r->ids[q * r->k + j];

			row[j + 1] = id == OMEN_NO_ID ? -1 : (int32_t)id;
		}
		ok = fwrite(row, sizeof(int32_t), r->k + 1, f) == r->k + 1;
	}
	if (fclose(f) != 0 || !ok) {
		cli_err("%s: write failed: %s", path, strerror(errno));
		ok = 0;
	}
	free(row);
	return ok ? 0 : -1;
}

/* The JSON array of query q's results, padding left out. */
static json_t *row_json(const results *r, size_t q)
{
	json_t *row = json_array();

	for (size_t j = 0; row != NULL && j < r->k; j++) {
		size_t at = q * r->k + j;

		if (r->ids[at] == OMEN_NO_ID)
			break;
		if (json_array_append_new(row,
		                          json_pack("{s:o, s:f}", "id", cli_json_u64(r->ids[at]),
		                                    "distance", (double)r->dists[at])) != 0)
			row = (json_decref(row), NULL);
	}
	return row;
}

/* Prints one JSON object: queries, k, seconds, qps, coverage, path, vectors_read, and results
 * for at most JSON_MAX_RESULTS_QUERIES queries. */
static int print_json(const results *r)
{
	json_t *obj = json_pack(
	    "{s:o, s:o, s:f, s:f, s:{s:i, s:i}, s:s, s:o}", "queries", cli_json_u64(r->nq), "k",
	    cli_json_u64(r->k), "seconds", r->seconds, "qps",
	    r->seconds > 0 ? (double)r->nq / r->seconds : 0.0, "coverage", "answered",
	    (int)r->info.shards_answered, "total", (int)r->info.shards_total, "path",
	    r->info.path ? r->info.path : "?", "vectors_read", cli_json_u64(r->info.vectors_read));
	json_t *all;

	if (obj != NULL && r->nq <= JSON_MAX_RESULTS_QUERIES) {
		all = json_array();
		for (size_t q = 0; all != NULL && q < r->nq; q++)
			if (json_array_append_new(all, row_json(r, q)) != 0)
				all = (json_decref(all), NULL);
		if (json_object_set_new(obj, "results", all) != 0)
			obj = (json_decref(obj), NULL);
	}
	return cli_print_json(obj, 0);
}

/* Prints "QUERY_INDEX: id:distance ..." per query, padding left out. */
static void print_text(const results *r)
{
	for (size_t q = 0; q < r->nq; q++) {
		printf("%zu:", q);
		for (size_t j = 0; j < r->k && r->ids[q * r->k + j] != OMEN_NO_ID; j++)
			printf(" %llu:%g", (unsigned long long)r->ids[q * r->k + j],
			       (double)r->dists[q * r->k + j]);
		putchar('\n');
	}
}

/* Runs the single timed omen_search call of queries vf into *r (which owns the buffers). */
static int run_search(const search_args *a, omen_collection *coll, const vecfile *vf, results *r)
{
	omen_search_params params;
	float *queries = malloc(vf->n * vf->dim * sizeof(float));
	size_t total;
	double t0;
	int rc;

	r->nq = vf->n;
	r->k = (size_t)a->k;
	if (__builtin_mul_overflow(r->nq, r->k, &total) || total > SIZE_MAX / sizeof(uint64_t))
		total = SIZE_MAX / sizeof(uint64_t); /* malloc fails below */
	r->ids = malloc(total ? total * sizeof(uint64_t) : 1);
	r->dists = malloc(total ? total * sizeof(float) : 1);
	if (queries == NULL || r->ids == NULL || r->dists == NULL) {
		cli_err("out of memory for %zu queries x k %zu", r->nq, r->k);
		free(queries);
		return -1;
	}
	vecfile_read(vf, 0, vf->n, queries);
	omen_search_params_init(&params);
	params.k = r->k;
	params.filter = a->filter;
	params.threads = (int)a->threads;
	params.ef = (size_t)a->ef;
	params.nprobe = (size_t)a->nprobe;
	params.exact = a->exact;
	params.partial = a->partial;
	params.device = a->device;
	params.info = &r->info;
	t0 = cli_now();
	rc = omen_search(coll, queries, vf->n, vf->dim, &params, r->ids, r->dists);
	r->seconds = cli_now() - t0;
	free(queries);
	if (rc != OMEN_OK) {
		cli_lib_err(rc, "search '%s'", a->coll);
		return -1;
	}
	return 0;
}

/* Searches and reports. Returns CLI_OK or CLI_FAIL. */
static int search_in_db(const search_args *a, const vecfile *vf)
{
	omen_collection_stats st;
	omen_collection *coll = NULL;
	omen_db *db = NULL;
	results r = {0};
	int rc = CLI_FAIL, lrc;

	if (cli_open_db(a->db, CLI_DB_READONLY, &db) != 0 || cli_open_coll(db, a->coll, &coll))
		goto done;
	/* With --partial a cluster whose shards are not all up still searches: the dimension
	 * is then checked by the search itself. */
	if ((lrc = omen_collection_stats_get(coll, &st)) == OMEN_EUNAVAIL && a->partial)
		st.dim = (uint32_t)vf->dim;
	else if (lrc != OMEN_OK) {
		cli_lib_err(lrc, "collection '%s': statistics", a->coll);
		goto done;
	}
	if (vf->dim != st.dim) {
		cli_err("%s: queries have dimension %zu but collection '%s' has dimension %u",
		        a->queries, vf->dim, a->coll, st.dim);
		goto done;
	}
	if (a->k > OMEN_MAX_K) {
		cli_err("k %llu exceeds the largest k, %d", (unsigned long long)a->k, OMEN_MAX_K);
		goto done;
	}
	if (run_search(a, coll, vf, &r) != 0 || (a->out && write_ivecs(a->out, &r) != 0))
		goto done;
	rc = CLI_OK;
	if (r.info.shards_answered < r.info.shards_total)
		fprintf(stderr, "omendb: partial results: %u of %u shards answered\n",
		        r.info.shards_answered, r.info.shards_total);
	if (a->json)
		rc = print_json(&r);
	else if (a->out)
		printf("searched %zu queries, k %zu, in %.6f s (%.0f queries/s)\n", r.nq, r.k,
		       r.seconds, r.seconds > 0 ? (double)r.nq / r.seconds : 0.0);
	else
		print_text(&r);
done:
	free(r.ids);
	free(r.dists);
	omen_collection_close(coll);
	omen_close(db);
	return rc;
}

int cmd_search(int argc, char **argv)
{
	search_args a = {0};
	vecfile vf = {0};
	int rc = search_parse(argc, argv, &a);

	if (rc != 0)
		return rc;
	if (vecfile_open(a.queries, &vf) != 0)
		return CLI_FAIL;
	rc = search_in_db(&a, &vf);
	vecfile_close(&vf);
	return rc;
}
