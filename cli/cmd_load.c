/*
 * The load command: vectors from a file (and optional JSON-lines metadata) into a collection,
 * with ids START, START+1, ... in file order, in batches through omen_upsert. Everything that
 * could make a batch fail on account of the input (format, dimension, finiteness, zero vectors
 * in cosine collections, metadata, id range) is checked before the first batch is written, so
 * bad input leaves the database as it was.
 */
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"

#define LOAD_BATCH_DEFAULT 10000

typedef struct load_args {
	const char *db, *coll, *file; /* positional arguments */
	const char *meta_path;        /* --metadata, or NULL */
	int relaxed;                  /* --relaxed */
	int have_start;               /* --start-id given */
	uint64_t start;               /* --start-id */
	uint64_t batch;               /* --batch, default LOAD_BATCH_DEFAULT */
} load_args;

/* Parses the command line into *a. Returns 0 or CLI_USAGE. */
static int load_parse(int argc, char **argv, load_args *a)
{
	const char *start_s = NULL, *batch_s = NULL, *relaxed = NULL;
	const cli_opt opts[] = {{"--start-id", 1, &start_s},
	                        {"--batch", 1, &batch_s},
	                        {"--metadata", 1, &a->meta_path},
	                        {"--relaxed", 0, &relaxed}};
	size_t npos;
	int rc = cli_getopts("load", argc, argv, opts, 4, &npos);

	if (rc != 0)
		return rc;
	if (npos != 3)
		return cli_usage_err("load", "DB, COLL and FILE expected");
	a->db = argv[0];
	a->coll = argv[1];
	a->file = argv[2];
	a->relaxed = relaxed != NULL;
	a->have_start = start_s != NULL;
	a->batch = LOAD_BATCH_DEFAULT;
	if (start_s && cli_opt_u64("load", "--start-id", start_s, 0, OMEN_NO_ID - 1, &a->start))
		return CLI_USAGE;
	if (batch_s && cli_opt_u64("load", "--batch", batch_s, 1, OMEN_MAX_BATCH, &a->batch))
		return CLI_USAGE;
	return 0;
}

/* Checks the input against the collection and picks the first id. Returns 0 or -1. */
static int load_check(const load_args *a, const omen_collection_stats *st, const vecfile *vf,
                      uint64_t *start)
{
	uint64_t first = a->have_start ? a->start : st->next_id;

	if (vf->dim != st->dim) {
		cli_err("%s: vectors have dimension %zu but collection '%s' has dimension %u",
		        a->file, vf->dim, a->coll, st->dim);
		return -1;
	}
	if (st->metric == OMEN_METRIC_COSINE) {
		size_t zero = vecfile_find_zero(vf);

		if (zero < vf->n) {
			cli_err("%s: vector %zu is all zeros, which a cosine collection refuses",
			        a->file, zero);
			return -1;
		}
	}
	if (first >= OMEN_NO_ID || vf->n > OMEN_NO_ID - first) {
		cli_err("ids from %llu for %zu vectors would reach the reserved id %llu",
		        (unsigned long long)first, vf->n, (unsigned long long)OMEN_NO_ID);
		return -1;
	}
	*start = first;
	return 0;
}

/* Reports a failed batch: what was written before it. */
static void load_failed(int rc, const load_args *a, uint64_t start, size_t done)
{
	if (done == 0)
		cli_lib_err(rc, "load into '%s' failed, nothing written", a->coll);
	else
		cli_lib_err(rc, "load into '%s' stopped after %zu vectors (ids %llu..%llu written)",
		            a->coll, done, (unsigned long long)start,
		            (unsigned long long)(start + done - 1));
}

/* Writes all of vf (with metadata mf when it has lines) to coll in batches of a->batch ids
 * from start, drawing progress. Returns 0 or -1 after reporting. */
static int load_batches(const load_args *a, omen_collection *coll, const vecfile *vf,
                        const metafile *mf, uint64_t start)
{
	size_t bsize = a->batch < vf->n ? (size_t)a->batch : vf->n;
	uint64_t *ids = malloc(bsize * sizeof(*ids));
	float *vecs = malloc(bsize * vf->dim * sizeof(*vecs));
	progress bar;
	size_t done = 0;
	int rc = OMEN_OK;

	if (ids == NULL || vecs == NULL) {
		cli_err("out of memory for batches of %zu vectors (try a smaller --batch)", bsize);
		rc = -1;
	}
	progress_start(&bar, vf->n);
	while (rc == OMEN_OK && done < vf->n) {
		omen_batch b = {.n = vf->n - done < bsize ? vf->n - done : bsize, .dim = vf->dim};

		for (size_t i = 0; i < b.n; i++)
			ids[i] = start + done + i;
		vecfile_read(vf, done, b.n, vecs);
		b.ids = ids;
		b.vectors = vecs;
		b.metadata = mf->n ? mf->lines + done : NULL;
		rc = omen_upsert(coll, &b, NULL);
		if (rc == OMEN_OK)
			done += b.n;
		progress_update(&bar, done);
	}
	progress_end(&bar);
	if (rc > 0)
		load_failed(rc, a, start, done);
	free(ids);
	free(vecs);
	return rc == OMEN_OK ? 0 : -1;
}

/* Opens the database and collection and loads vf; prints the summary line. */
static int load_into_db(const load_args *a, const vecfile *vf, const metafile *mf)
{
	omen_collection_stats st;
	omen_collection *coll = NULL;
	omen_db *db = NULL;
	uint64_t start;
	double t0, secs;
	int rc = -1, lrc;

	if (cli_open_db(a->db, a->relaxed ? CLI_DB_RELAXED : 0, &db) != 0 ||
	    cli_open_coll(db, a->coll, &coll) != 0)
		goto done;
	if ((lrc = omen_collection_stats_get(coll, &st)) != OMEN_OK) {
		cli_lib_err(lrc, "collection '%s': statistics", a->coll);
		goto done;
	}
	if (load_check(a, &st, vf, &start) != 0)
		goto done;
	t0 = cli_now();
	if (load_batches(a, coll, vf, mf, start) != 0)
		goto done;
	if (a->relaxed && (lrc = omen_flush(db)) != OMEN_OK) {
		cli_lib_err(lrc, "flush after loading into '%s'", a->coll);
		goto done;
	}
	secs = cli_now() - t0;
	printf("loaded %zu vectors into %s (ids %llu..%llu) in %.3f s, %.0f vectors/s\n", vf->n,
	       a->coll, (unsigned long long)start, (unsigned long long)(start + vf->n - 1), secs,
	       secs > 0 ? (double)vf->n / secs : 0.0);
	rc = 0;
done:
	omen_collection_close(coll);
	omen_close(db);
	return rc;
}

int cmd_load(int argc, char **argv)
{
	load_args a = {0};
	vecfile vf = {0};
	metafile mf = {0};
	int rc = load_parse(argc, argv, &a);

	if (rc != 0)
		return rc;
	rc = CLI_FAIL;
	if (vecfile_open(a.file, &vf) != 0)
		goto done;
	if (a.meta_path && metafile_open(a.meta_path, &mf) != 0)
		goto done;
	if (a.meta_path && mf.n != vf.n) {
		cli_err("%s: %zu metadata lines for %zu vectors in %s", a.meta_path, mf.n, vf.n,
		        a.file);
		goto done;
	}
	if (load_into_db(&a, &vf, &mf) == 0)
		rc = CLI_OK;
done:
	metafile_close(&mf);
	vecfile_close(&vf);
	return rc;
}
