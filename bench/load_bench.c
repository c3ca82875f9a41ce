/*
 * omendb-bench-load: durable bulk load through the public API against a plain LMDB append of
 * the same bytes, alternating the two in one run. Both sides start from an empty directory,
 * commit durably once per batch (OmenDB: OMEN_DURABLE_SYNC, one omen_upsert per batch; LMDB:
 * default flags, one transaction per batch) and are timed from open to close. One untimed
 * warm-up run of every side comes first. "ratio" is the ratio of the medians; "ratio_best" that
 * of the fastest runs (this disk is shared, and other work on it makes some runs of either side
 * two or three times slower).
 *
 * The LMDB side stores each batch as values of P vectors under 8-byte big-endian keys with
 * MDB_APPEND; a batch that is not a multiple of P ends with one shorter value (a batch of
 * 10,000 at P = 256 is 39 values of 256 and one of 16). --per-value takes a comma-separated
 * list of P, each an LMDB variant run in turn with the engine; "ratio" in the output is
 * against the first.
 *
 * Usage: omendb-bench-load --data FILE.fvecs --dir SCRATCH [--runs 3] [--batch 10000]
 *                          [--per-value 256[,P2...]] [--json OUT]
 */
#include "bench_util.h"

#include <omendb/omendb.h>

#include <lmdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_VARIANTS 4

typedef struct load_args {
	const char *data, *dir, *json;
	size_t runs, batch;
	size_t per_value[MAX_VARIANTS]; /* LMDB variants: vectors per value */
	size_t nvar;
} load_args;

static void usage(void)
{
	fprintf(stderr, "usage: omendb-bench-load --data FILE.fvecs --dir SCRATCH [--runs 3] "
	                "[--batch 10000] [--per-value 256[,P2...]] [--json OUT]\n");
	exit(2);
}

/* Parses "256,2000" into a->per_value. */
static void parse_list(const char *s, load_args *a)
{
	char *end;
	a->nvar = 0;
	do {
		size_t v = strtoull(s, &end, 10);
		if (v == 0 || a->nvar == MAX_VARIANTS || (*end && *end != ','))
			usage();
		a->per_value[a->nvar++] = v;
		s = end + 1;
	} while (*end == ',');
}

static void parse_args(int argc, char **argv, load_args *a)
{
	memset(a, 0, sizeof *a);
	a->runs = 3;
	a->batch = 10000;
	a->per_value[0] = 256;
	a->nvar = 1;
	const char *per_value = NULL;
	const bu_opt opts[] = {
	    {"--data", BU_STR, &a->data},    {"--dir", BU_STR, &a->dir},
	    {"--json", BU_STR, &a->json},    {"--runs", BU_SIZE, &a->runs},
	    {"--batch", BU_SIZE, &a->batch}, {"--per-value", BU_STR, &per_value}};
	bu_parse(argc, argv, opts, sizeof opts / sizeof opts[0], NULL, 0, usage);
	if (per_value)
		parse_list(per_value, a);
	if (!a->data || !a->dir || !a->runs || !a->batch)
		usage();
}

/* Loads x (n x dim) into a fresh database at path; returns the seconds from omen_open to the
 * end of omen_close. */
static double load_omendb(const char *path, const float *x, size_t n, size_t dim, size_t batch)
{
	omen_db *db;
	omen_collection *coll;
	omen_open_options opt;
	double t;

	bu_rm_rf(path);
	sync(); /* start from a clean page cache: no earlier writes left to flush */
	omen_open_options_init(&opt); /* OMEN_DURABLE_SYNC */
	t = bu_now();
	bu_check(omen_open(path, &opt, &db), "omen_open");
	bu_check(omen_create_collection(db, "load", dim, OMEN_METRIC_L2), "create collection");
	bu_check(omen_collection_open(db, "load", &coll), "open collection");
	for (size_t i = 0; i < n; i += batch) {
		omen_batch b = {0};
		b.n = n - i < batch ? n - i : batch;
		b.dim = dim;
		b.vectors = x + i * dim;
		bu_check(omen_upsert(coll, &b, NULL), "upsert");
	}
	omen_collection_close(coll);
	omen_close(db);
	return bu_now() - t;
}

static void lmdb_check(int rc, const char *what)
{
	if (rc != MDB_SUCCESS)
		bu_die(what, "%s", mdb_strerror(rc));
}

/* Appends one batch as values of per_value vectors, keys continuing from *key. */
static void lmdb_append_batch(MDB_txn *txn, MDB_dbi dbi, const float *x, size_t n, size_t dim,
                              size_t per_value, uint64_t *key)
{
	for (size_t j = 0; j < n; j += per_value) {
		size_t m = n - j < per_value ? n - j : per_value;
		uint8_t kb[8];
		MDB_val k = {8, kb}, v = {m * dim * sizeof(float), (void *)(x + j * dim)};
		for (int s = 0; s < 8; s++)
			kb[s] = (uint8_t)(*key >> (56 - 8 * s));
		lmdb_check(mdb_put(txn, dbi, &k, &v, MDB_APPEND), "mdb_put");
		(*key)++;
	}
}

/* Appends x to a fresh LMDB environment at path, one durable commit per batch; returns the
 * seconds from mdb_env_create to the end of mdb_env_close. */
static double load_lmdb(const char *path, const float *x, size_t n, size_t dim, size_t batch,
                        size_t per_value)
{
	MDB_env *env;
	MDB_dbi dbi;
	uint64_t key = 0;
	size_t bytes = n * dim * sizeof(float);
	double t;

	bu_rm_rf(path);
	if (mkdir(path, 0755) != 0)
		bu_die(path, "mkdir failed");
	sync(); /* as for the engine */
	t = bu_now();
	lmdb_check(mdb_env_create(&env), "mdb_env_create");
	lmdb_check(mdb_env_set_mapsize(env, bytes + bytes / 2 + (64u << 20)),
	           "mdb_env_set_mapsize");
	lmdb_check(mdb_env_open(env, path, 0, 0644), "mdb_env_open");
	for (size_t i = 0; i < n; i += batch) {
		MDB_txn *txn;
		size_t m = n - i < batch ? n - i : batch;
		lmdb_check(mdb_txn_begin(env, NULL, 0, &txn), "mdb_txn_begin");
		lmdb_check(mdb_dbi_open(txn, NULL, 0, &dbi), "mdb_dbi_open");
		lmdb_append_batch(txn, dbi, x + i * dim, m, dim, per_value, &key);
		lmdb_check(mdb_txn_commit(txn), "mdb_txn_commit");
	}
	mdb_env_close(env);
	return bu_now() - t;
}

/* Times of one run: the engine, and each LMDB variant. */
typedef struct load_times {
	double *omendb;
	double *lmdb[MAX_VARIANTS];
	uint64_t omendb_bytes, lmdb_bytes[MAX_VARIANTS];
} load_times;

static void write_json(const load_args *a, size_t n, size_t dim, const load_times *t)
{
	FILE *f = bu_open_out(a->json);
	double me = bu_median(t->omendb, a->runs), be = bu_quantile(t->omendb, a->runs, 0.0);

	fprintf(f, "{\"bench\": \"load\", \"data\": \"%s\", \"n\": %zu, \"dim\": %zu, ", a->data, n,
	        dim);
	fprintf(f, "\"batch\": %zu, \"runs\": %zu,\n \"omendb_seconds\": ", a->batch, a->runs);
	bu_json_doubles(f, t->omendb, a->runs);
	fprintf(f,
	        ", \"omendb_vps\": %.1f, \"omendb_best_vps\": %.1f, \"omendb_dir_bytes\": %llu,\n "
	        "\"lmdb\": [",
	        (double)n / me, (double)n / be, (unsigned long long)t->omendb_bytes);
	for (size_t v = 0; v < a->nvar; v++) {
		double ml = bu_median(t->lmdb[v], a->runs),
		       bl = bu_quantile(t->lmdb[v], a->runs, 0.0);
		fprintf(f, "%s\n  {\"vectors_per_value\": %zu, \"seconds\": ", v ? "," : "",
		        a->per_value[v]);
		bu_json_doubles(f, t->lmdb[v], a->runs);
		fprintf(
		    f,
		    ", \"vps\": %.1f, \"best_vps\": %.1f, \"dir_bytes\": %llu, \"ratio\": %.4f, "
		    "\"ratio_best\": %.4f}",
		    (double)n / ml, (double)n / bl, (unsigned long long)t->lmdb_bytes[v], ml / me,
		    bl / be);
	}
	fprintf(f, "],\n \"ratio\": %.4f}\n", bu_median(t->lmdb[0], a->runs) / me);
	bu_close_out(f);
}

/* One run: the engine and every LMDB variant, starting at a different one each run so that
 * none always meets the disk in the same state. Times go to slot r; warm marks the untimed
 * warm-up run (written to slot 0, then overwritten). */
static void run_once(const load_args *a, size_t r, int warm, const float *x, size_t n, size_t dim,
                     load_times *t)
{
	const char *tag = warm ? "warm-up" : "run";
	char pe[4096], pl[4096];
	snprintf(pe, sizeof pe, "%s/omendb", a->dir);
	snprintf(pl, sizeof pl, "%s/lmdb", a->dir);
	for (size_t s = 0; s <= a->nvar; s++) {
		size_t side = (s + r) % (a->nvar + 1); /* 0: engine, v + 1: LMDB variant v */
		if (side == 0) {
			t->omendb[r] = load_omendb(pe, x, n, dim, a->batch);
			t->omendb_bytes = bu_dir_bytes(pe, NULL);
			bu_rm_rf(pe);
			fprintf(stderr, "  %s %zu: omendb %.2f s (%.0f vec/s)\n", tag, r + 1,
			        t->omendb[r], (double)n / t->omendb[r]);
		} else {
			size_t v = side - 1;
			t->lmdb[v][r] = load_lmdb(pl, x, n, dim, a->batch, a->per_value[v]);
			t->lmdb_bytes[v] = bu_dir_bytes(pl, NULL);
			bu_rm_rf(pl);
			fprintf(stderr,
			        "  %s %zu: lmdb, %zu vectors per value, %.2f s (%.0f vec/s)\n", tag,
			        r + 1, a->per_value[v], t->lmdb[v][r], (double)n / t->lmdb[v][r]);
		}
	}
}

int main(int argc, char **argv)
{
	load_args a;
	load_times t;
	size_t n, dim;
	float *x;

	parse_args(argc, argv, &a);
	x = bu_fvecs_load(a.data, 0, &n, &dim);
	memset(&t, 0, sizeof t);
	t.omendb = bu_xmalloc(a.runs * sizeof(double));
	for (size_t v = 0; v < a.nvar; v++)
		t.lmdb[v] = bu_xmalloc(a.runs * sizeof(double));
	mkdir(a.dir, 0755);
	fprintf(stderr, "load: %zu x %zu float32 (%.0f MB), batches of %zu, %zu runs\n", n, dim,
	        (double)n * dim * 4 / 1e6, a.batch, a.runs);
	run_once(&a, 0, 1, x, n, dim, &t); /* warm-up: first writes of a fresh file are slower */
	for (size_t r = 0; r < a.runs; r++)
		run_once(&a, r, 0, x, n, dim, &t);
	write_json(&a, n, dim, &t);
	free(t.omendb);
	for (size_t v = 0; v < a.nvar; v++)
		free(t.lmdb[v]);
	free(x);
	return 0;
}
