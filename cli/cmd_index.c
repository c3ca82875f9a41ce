/*
 * Commands that manage a collection's approximate index: index builds (or extends, or drops)
 * it through omen_build_index, drawing the library's progress reports as a bar; check runs
 * omen_check, the index's integrity check, and prints its report. Index parameters are parsed
 * strictly here but their ranges are the library's to enforce, so that its limits and messages
 * are stated in one place.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

#define INDEX_MAX_THREADS 4096

typedef struct index_args {
	const char *db, *coll;    /* positional arguments */
	omen_index_params params; /* from omen_index_params_init and the options */
} index_args;

/* Parses option opt's value s (when given) as a number that fits a uint32_t field into *out.
 * Returns 0 or CLI_USAGE. */
static int opt_u32(const char *opt, const char *s, uint32_t *out)
{
	uint64_t v;

	if (s == NULL)
		return 0;
	if (cli_opt_u64("index", opt, s, 0, UINT32_MAX, &v) != 0)
		return CLI_USAGE;
	*out = (uint32_t)v;
	return 0;
}

/* Parses the command line into *a. Only the syntax of the numbers is checked here (digits
 * that fit the field); whether m, ef_construction, nlist or bits lies in its range is
 * omen_build_index's to say. Returns 0 or CLI_USAGE. */
static int index_parse(int argc, char **argv, index_args *a)
{
	const char *type_s = NULL, *m_s = NULL, *efc_s = NULL, *threads_s = NULL, *int8 = NULL,
	           *nlist_s = NULL, *bits_s = NULL, *budget_s = NULL;
	const cli_opt opts[] = {{"--type", 1, &type_s},
	                        {"--m", 1, &m_s},
	                        {"--ef-construction", 1, &efc_s},
	                        {"--threads", 1, &threads_s},
	                        {"--int8", 0, &int8},
	                        {"--nlist", 1, &nlist_s},
	                        {"--bits", 1, &bits_s},
	                        {"--ram-budget", 1, &budget_s}};
	uint64_t v;
	size_t npos;
	int rc = cli_getopts("index", argc, argv, opts, sizeof(opts) / sizeof(opts[0]), &npos);

	if (rc != 0)
		return rc;
	if (npos != 2)
		return cli_usage_err("index", "DB and COLL expected");
	a->db = argv[0];
	a->coll = argv[1];
	omen_index_params_init(&a->params);
	if (type_s && omen_index_type_parse(type_s, &a->params.type) != OMEN_OK)
		return cli_usage_err("index", "--type: %s", omen_errmsg(NULL));
	/* --nlist 0 is refused: leave it out for the number chosen from the points */
	if (nlist_s && cli_opt_u64("index", "--nlist", nlist_s, 1, UINT32_MAX, &v) != 0)
		return CLI_USAGE;
	if (opt_u32("--m", m_s, &a->params.m) || opt_u32("--nlist", nlist_s, &a->params.nlist) ||
	    opt_u32("--ef-construction", efc_s, &a->params.ef_construction) ||
	    opt_u32("--bits", bits_s, &a->params.bits))
		return CLI_USAGE;
	if (budget_s &&
	    cli_opt_u64("index", "--ram-budget", budget_s, 0, UINT64_MAX, &a->params.ram_budget))
		return CLI_USAGE;
	a->params.int8 = int8 != NULL;
	if (threads_s) {
		if (cli_opt_u64("index", "--threads", threads_s, 0, INDEX_MAX_THREADS, &v) != 0)
			return CLI_USAGE;
		a->params.threads = (int)v;
	}
	return 0;
}

/* omen_index_params.progress: the library reports from its building thread, so the bar needs
 * no lock. The total is known only once the build starts, so it is taken from each report. */
static void index_progress(void *ctx, uint64_t done, uint64_t total)
{
	progress *bar = ctx;

	bar->total = total;
	progress_update(bar, done);
}

/* Prints the summary line of a finished build from the collection's statistics after it. The
 * HNSW and IVF count is of the live points the index covers. The statistics give live points
 * and indexed rows; rows include deleted and replaced ones, and points may include ones
 * written while the index was built, which it does not cover. The smaller of the two is exact
 * when neither happened, and never more than the index covers. */
static void index_summary(const char *coll, const omen_collection_stats *st, double secs)
{
	uint64_t covered = st->points < st->indexed ? st->points : st->indexed;
	const char *kind = st->index ? st->index : "?";

	if (strcmp(kind, "hnsw") == 0)
		printf("indexed %s: hnsw m=%u ef_construction=%u over %llu points in %.3f s\n",
		       coll, st->hnsw_m, st->hnsw_ef_construction, (unsigned long long)covered,
		       secs);
	else if (strcmp(kind, "ivf") == 0)
		printf("indexed %s: ivf nlist=%u nprobe=%u bits=%u over %llu points in %.3f s\n",
		       coll, st->ivf_nlist, st->ivf_nprobe, st->ivf_bits,
		       (unsigned long long)covered, secs);
	else
		printf("indexed %s: %s over %llu points in %.3f s\n", coll, kind,
		       (unsigned long long)st->points, secs);
}

int cmd_index(int argc, char **argv)
{
	index_args a;
	omen_collection_stats st;
	omen_collection *coll = NULL;
	omen_db *db = NULL;
	progress bar;
	double t0, secs;
	int rc = index_parse(argc, argv, &a), lrc;

	if (rc != 0)
		return rc;
	rc = CLI_FAIL;
	if (cli_open_db(a.db, 0, &db) != 0 || cli_open_coll(db, a.coll, &coll) != 0)
		goto done;
	progress_start(&bar, 0);
	a.params.progress = index_progress;
	a.params.progress_ctx = &bar;
	t0 = cli_now();
	lrc = omen_build_index(coll, &a.params);
	secs = cli_now() - t0;
	progress_end(&bar);
	if (lrc != OMEN_OK) {
		cli_lib_err(lrc, "index '%s'", a.coll);
		goto done;
	}
	if ((lrc = omen_collection_stats_get(coll, &st)) != OMEN_OK) {
		cli_lib_err(lrc, "collection '%s': statistics", a.coll);
		goto done;
	}
	index_summary(a.coll, &st, secs);
	rc = CLI_OK;
done:
	omen_collection_close(coll);
	omen_close(db);
	return rc;
}

int cmd_check(int argc, char **argv)
{
	omen_collection *coll = NULL;
	omen_db *db = NULL;
	char *report = NULL;
	size_t npos, len;
	int rc = cli_getopts("check", argc, argv, NULL, 0, &npos), lrc;

	if (rc != 0)
		return rc;
	if (npos != 2)
		return cli_usage_err("check", "DB and COLL expected");
	rc = CLI_FAIL;
	if (cli_open_db(argv[0], CLI_DB_READONLY, &db) != 0 || cli_open_coll(db, argv[1], &coll))
		goto done;
	lrc = omen_check(coll, &report);
	/* The report says what is wrong, so it is printed whatever the verdict. */
	if (report != NULL && (len = strlen(report)) > 0) {
		fputs(report, stdout);
		if (report[len - 1] != '\n')
			putchar('\n');
	}
	if (lrc != OMEN_OK)
		cli_lib_err(lrc, "check '%s'", argv[1]);
	else
		rc = CLI_OK;
done:
	omen_free(report);
	omen_collection_close(coll);
	omen_close(db);
	return rc;
}
