/*
 * omendb-bench-flat: latency of one exact query over a whole collection against the memory
 * bandwidth of the same machine, measured in the same run on the same bytes: a STREAM-like sum
 * over a malloc'd copy of the vectors, over a second copy advised to use transparent huge pages
 * (fewer TLB misses: the faster of the two here), and over the database file mapped read-only
 * (the page cache pages that LMDB maps). The four are interleaved, --runs times each, and
 * medians are reported. ratio = (vector bytes / query time) / the highest of the three read
 * bandwidths; ratio_vs_copy, ratio_vs_huge and ratio_vs_mapped give each one alone.
 *
 * Usage: omendb-bench-flat --data FILE.fvecs --query FILE.fvecs --db DIR [--runs 101]
 *                          [--threads 2] [--k 10] [--json OUT]
 * The collection "flat" in DIR is built on the first run (relaxed durability) and reused when
 * it already holds the same number of points.
 */
#include "bench_util.h"
#include "stream.h"

#include <omendb/omendb.h>

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

typedef struct flat_args {
	const char *data, *query, *db, *json;
	size_t runs, k;
	int threads;
} flat_args;

static void usage(void)
{
	fprintf(stderr, "usage: omendb-bench-flat --data FILE.fvecs --query FILE.fvecs --db DIR "
	                "[--runs 101] [--threads 2] [--k 10] [--json OUT]\n");
	exit(2);
}

static void parse_args(int argc, char **argv, flat_args *a)
{
	memset(a, 0, sizeof *a);
	a->runs = 101;
	a->threads = 2;
	a->k = 10;
	const bu_opt opts[] = {{"--data", BU_STR, &a->data},      {"--query", BU_STR, &a->query},
	                       {"--db", BU_STR, &a->db},          {"--json", BU_STR, &a->json},
	                       {"--runs", BU_SIZE, &a->runs},     {"--k", BU_SIZE, &a->k},
	                       {"--threads", BU_INT, &a->threads}};
	bu_parse(argc, argv, opts, sizeof opts / sizeof opts[0], NULL, 0, usage);
	if (!a->data || !a->query || !a->db || !a->runs || !a->k || a->threads < 1)
		usage();
}

/* True when the database at path already has collection "flat" with n points of dim. */
static int collection_ready(const char *path, size_t n, size_t dim)
{
	omen_db *db;
	omen_collection *coll;
	omen_collection_stats st;
	int ok = 0;

	if (omen_open(path, NULL, &db) != OMEN_OK)
		return 0;
	if (omen_collection_open(db, "flat", &coll) == OMEN_OK) {
		ok = omen_collection_stats_get(coll, &st) == OMEN_OK && st.points == n &&
		     st.dim == dim;
		omen_collection_close(coll);
	}
	omen_close(db);
	return ok;
}

/* Builds the collection "flat" from x (n x dim) in a fresh database at path. */
static void build(const char *path, const float *x, size_t n, size_t dim)
{
	omen_db *db;
	omen_collection *coll;
	omen_open_options opt;
	double t = bu_now();

	bu_rm_rf(path);
	omen_open_options_init(&opt);
	opt.durability = OMEN_DURABLE_RELAXED;
	bu_check(omen_open(path, &opt, &db), "omen_open");
	bu_check(omen_create_collection(db, "flat", dim, OMEN_METRIC_L2), "create collection");
	bu_check(omen_collection_open(db, "flat", &coll), "open collection");
	for (size_t i = 0; i < n; i += 10000) {
		omen_batch b = {0};
		b.n = n - i < 10000 ? n - i : 10000;
		b.dim = dim;
		b.vectors = x + i * dim;
		bu_check(omen_upsert(coll, &b, NULL), "upsert");
	}
	omen_collection_close(coll);
	bu_check(omen_flush(db), "flush");
	omen_close(db);
	fprintf(stderr, "flat: built %s (%zu x %zu) in %.1f s\n", path, n, dim, bu_now() - t);
}

/* Maps the database's largest file read-only with its pages populated; *len receives its
 * size. */
static const float *map_db_file(const char *dir, size_t *len, char *name)
{
	int fd;
	void *p;
	uint64_t bytes = 0;

	bu_dir_bytes(dir, name);
	fd = open(name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		bu_die(name, "cannot open");
	bytes = (uint64_t)lseek(fd, 0, SEEK_END);
	p = mmap(NULL, bytes, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		bu_die(name, "mmap failed");
	*len = bytes;
	return p;
}

typedef struct flat_times {
	double *query, *copy, *huge, *mapped;
} flat_times;

/* The buffers read by the bandwidth measurements. */
typedef struct flat_bufs {
	const float *copy; /* malloc'd */
	const float *huge; /* 2 MiB aligned, MADV_HUGEPAGE */
	size_t nfloats;
	const float *map; /* the database file */
	size_t map_bytes;
} flat_bufs;

/* A copy of x in 2 MiB-aligned memory advised to use transparent huge pages. */
static float *huge_copy(const float *x, size_t nfloats)
{
	size_t bytes = (nfloats * sizeof(float) + (2u << 20) - 1) & ~(size_t)((2u << 20) - 1);
	float *p = aligned_alloc(2u << 20, bytes);
	if (!p)
		bu_die("aligned_alloc", "%zu bytes: out of memory", bytes);
	madvise(p, bytes, MADV_HUGEPAGE);
	memcpy(p, x, nfloats * sizeof(float));
	return p;
}

/* Runs the query and the three reads in turn, a->runs times, after a warm-up. */
static void measure(const flat_args *a, omen_collection *coll, const float *q, size_t dim,
                    const flat_bufs *b, flat_times *t)
{
	const size_t nmap = b->map_bytes / sizeof(float);
	omen_search_params sp;
	uint64_t *ids = bu_xmalloc(a->k * sizeof *ids);
	float *d = bu_xmalloc(a->k * sizeof *d);
	volatile double sink = 0.0;

	omen_search_params_init(&sp);
	sp.k = a->k;
	sp.threads = a->threads;
	for (int w = 0; w < 3; w++) {
		bu_check(omen_search(coll, q, 1, dim, &sp, ids, d), "search");
		sink += stream_sum(b->copy, b->nfloats, a->threads);
		sink += stream_sum(b->huge, b->nfloats, a->threads);
		sink += stream_sum(b->map, nmap, a->threads);
	}
	for (size_t r = 0; r < a->runs; r++) {
		double t0 = bu_now();
		bu_check(omen_search(coll, q, 1, dim, &sp, ids, d), "search");
		t->query[r] = bu_now() - t0;
		t0 = bu_now();
		sink += stream_sum(b->copy, b->nfloats, a->threads);
		t->copy[r] = bu_now() - t0;
		t0 = bu_now();
		sink += stream_sum(b->huge, b->nfloats, a->threads);
		t->huge[r] = bu_now() - t0;
		t0 = bu_now();
		sink += stream_sum(b->map, nmap, a->threads);
		t->mapped[r] = bu_now() - t0;
	}
	(void)sink;
	free(ids), free(d);
}

static void report(const flat_args *a, size_t n, size_t dim, size_t map_bytes, const flat_times *t)
{
	FILE *f = bu_open_out(a->json);
	double bytes = (double)n * (double)dim * 4.0;
	double tq = bu_median(t->query, a->runs), tc = bu_median(t->copy, a->runs);
	double th = bu_median(t->huge, a->runs), tm = bu_median(t->mapped, a->runs);
	double bwq = bytes / tq, bwc = bytes / tc, bwh = bytes / th, bwm = (double)map_bytes / tm;
	double best = bwc > bwh ? bwc : bwh;

	best = best > bwm ? best : bwm;
	fprintf(f, "{\"bench\": \"flat\", \"data\": \"%s\", \"n\": %zu, \"dim\": %zu, ", a->data, n,
	        dim);
	fprintf(f, "\"k\": %zu, \"threads\": %d, \"runs\": %zu, \"vector_bytes\": %.0f, ", a->k,
	        a->threads, a->runs, bytes);
	fprintf(f,
	        "\"db_file_bytes\": %zu,\n \"query_s_median\": %.6g, \"query_s_p10\": %.6g, "
	        "\"query_s_p90\": %.6g,\n",
	        map_bytes, tq, bu_quantile(t->query, a->runs, 0.1),
	        bu_quantile(t->query, a->runs, 0.9));
	fprintf(f,
	        " \"copy_read_s_median\": %.6g, \"huge_read_s_median\": %.6g, "
	        "\"mapped_read_s_median\": %.6g,\n",
	        tc, th, tm);
	fprintf(f,
	        " \"query_gbps\": %.4f, \"copy_read_gbps\": %.4f, \"huge_read_gbps\": %.4f, "
	        "\"mapped_read_gbps\": %.4f, \"limit_gbps\": %.4f,\n",
	        bwq / 1e9, bwc / 1e9, bwh / 1e9, bwm / 1e9, best / 1e9);
	fprintf(f,
	        " \"ratio\": %.4f, \"ratio_vs_copy\": %.4f, \"ratio_vs_huge\": %.4f, "
	        "\"ratio_vs_mapped\": %.4f}\n",
	        bwq / best, bwq / bwc, bwq / bwh, bwq / bwm);
	bu_close_out(f);
}

int main(int argc, char **argv)
{
	flat_args a;
	size_t n, dim, nq, dq, map_bytes;
	float *x, *q;
	const float *map;
	char name[4096];
	omen_db *db;
	omen_collection *coll;
	flat_times t;
	flat_bufs b;

	parse_args(argc, argv, &a);
	x = bu_fvecs_load(a.data, 0, &n, &dim);
	q = bu_fvecs_load(a.query, 1, &nq, &dq);
	if (dq != dim)
		bu_die(a.query, "dimension %zu, data has %zu", dq, dim);
	if (!collection_ready(a.db, n, dim))
		build(a.db, x, n, dim);
	bu_check(omen_open(a.db, NULL, &db), "omen_open");
	bu_check(omen_collection_open(db, "flat", &coll), "open collection");
	map = map_db_file(a.db, &map_bytes, name);
	b.copy = x;
	b.huge = huge_copy(x, n * dim);
	b.nfloats = n * dim;
	b.map = map;
	b.map_bytes = map_bytes;
	fprintf(stderr,
	        "flat: %zu x %zu, one query, k=%zu, %d threads, %zu runs; mapped %s (%zu "
	        "bytes)\n",
	        n, dim, a.k, a.threads, a.runs, name, map_bytes);
	t.query = bu_xmalloc(a.runs * sizeof(double));
	t.copy = bu_xmalloc(a.runs * sizeof(double));
	t.huge = bu_xmalloc(a.runs * sizeof(double));
	t.mapped = bu_xmalloc(a.runs * sizeof(double));
	measure(&a, coll, q, dim, &b, &t);
	report(&a, n, dim, map_bytes, &t);
	munmap((void *)map, map_bytes);
	omen_collection_close(coll);
	omen_close(db);
	free(t.query), free(t.copy), free(t.huge), free(t.mapped), free(x), free(q);
	free((void *)b.huge);
	return 0;
}
