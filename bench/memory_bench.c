/*
 * omendb-bench-memory: peak heap while loading and searching a collection, to show that the
 * engine's memory is bounded by batch size and thread count, not by the data size (the
 * vectors live in the memory-mapped database file, which is page cache, not heap).
 *
 * Heap is counted exactly: this program replaces malloc and friends with wrappers around
 * glibc's own allocator (__libc_malloc...) that add and subtract malloc_usable_size(), so
 * every allocation of the program, the library, LMDB and libgomp is seen, and the peak cannot
 * fall between samples. mallinfo2() (arena bytes in use plus mmapped chunks) after each batch
 * and VmHWM / RssAnon from /proc/self/status are reported beside it for context.
 *
 * Usage: omendb-bench-memory --data FILE.fvecs --query FILE.fvecs --db DIR [--n N]
 *                            [--batch 10000] [--nq 1000] [--threads 2] [--json OUT]
 * Loads the first N rows (default all) in batches read one at a time from the file (the
 * program holds one batch, never the data set), then runs 20 single queries and one batch of
 * --nq queries.
 */
#include "bench_util.h"

#include <omendb/omendb.h>

#include <errno.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

/* --- Counting allocator ------------------------------------------------------------------- */

extern void *__libc_malloc(size_t size);
extern void __libc_free(void *p);
extern void *__libc_calloc(size_t n, size_t size);
extern void *__libc_realloc(void *p, size_t size);
extern void *__libc_memalign(size_t align, size_t size);

static int64_t heap_now, heap_peak;

static void *counted(void *p)
{
	if (p) {
		int64_t now =
		    __atomic_add_fetch(&heap_now, (int64_t)malloc_usable_size(p), __ATOMIC_RELAXED);
		int64_t peak = __atomic_load_n(&heap_peak, __ATOMIC_RELAXED);
		while (now > peak &&
		       !__atomic_compare_exchange_n(&heap_peak, &peak, now, 1, __ATOMIC_RELAXED,
		                                    __ATOMIC_RELAXED))
			;
	}
	return p;
}

static void uncount(void *p)
{
	if (p)
		__atomic_sub_fetch(&heap_now, (int64_t)malloc_usable_size(p), __ATOMIC_RELAXED);
}

void *malloc(size_t size)
{
	return counted(__libc_malloc(size));
}

void free(void *p)
{
	uncount(p);
	__libc_free(p);
}

void *calloc(size_t n, size_t size)
{
	return counted(__libc_calloc(n, size));
}

void *realloc(void *p, size_t size)
{
	void *q;
	if (!p)
		return malloc(size);
	if (size == 0) {
		free(p);
		return NULL;
	}
	uncount(p);
	q = __libc_realloc(p, size);
	if (!q) {
		counted(p); /* the old block is still there */
		return NULL;
	}
	return counted(q);
}

void *reallocarray(void *p, size_t n, size_t size)
{
	size_t bytes;
	if (__builtin_mul_overflow(n, size, &bytes)) {
		errno = ENOMEM;
		return NULL;
	}
	return realloc(p, bytes);
}

void *memalign(size_t align, size_t size)
{
	return counted(__libc_memalign(align, size));
}

void *aligned_alloc(size_t align, size_t size)
{
	return memalign(align, size);
}

int posix_memalign(void **out, size_t align, size_t size)
{
	void *p;
	if (align < sizeof(void *) || (align & (align - 1)) != 0)
		return EINVAL;
	p = memalign(align, size);
	if (!p)
		return ENOMEM;
	*out = p;
	return 0;
}

void *valloc(size_t size)
{
	return memalign(4096, size);
}

void *pvalloc(size_t size)
{
	return memalign(4096, (size + 4095) & ~(size_t)4095);
}

/* Starts a phase: the peak restarts from the bytes in use now. */
static void peak_reset(void)
{
	__atomic_store_n(&heap_peak, __atomic_load_n(&heap_now, __ATOMIC_RELAXED),
	                 __ATOMIC_RELAXED);
}

static int64_t peak_get(void)
{
	return __atomic_load_n(&heap_peak, __ATOMIC_RELAXED);
}

/* mallinfo2's view: bytes in use in the arenas plus bytes in mmapped chunks. */
static int64_t mallinfo_bytes(void)
{
	struct mallinfo2 mi = mallinfo2();
	return (int64_t)(mi.uordblks + mi.hblkhd);
}

/* --- Benchmark ---------------------------------------------------------------------------- */

typedef struct mem_args {
	const char *data, *query, *db, *json;
	size_t n, batch, nq;
	int threads;
} mem_args;

typedef struct mem_phase {
	int64_t start, peak, mallinfo_max;
} mem_phase;

static void usage(void)
{
	fprintf(stderr, "usage: omendb-bench-memory --data FILE.fvecs --query FILE.fvecs --db DIR "
	                "[--n N] [--batch 10000] [--nq 1000] [--threads 2] [--json OUT]\n");
	exit(2);
}

static void parse_args(int argc, char **argv, mem_args *a)
{
	memset(a, 0, sizeof *a);
	a->batch = 10000;
	a->nq = 1000;
	a->threads = 2;
	const bu_opt opts[] = {{"--data", BU_STR, &a->data}, {"--query", BU_STR, &a->query},
	                       {"--db", BU_STR, &a->db},     {"--json", BU_STR, &a->json},
	                       {"--n", BU_SIZE, &a->n},      {"--batch", BU_SIZE, &a->batch},
	                       {"--nq", BU_SIZE, &a->nq},    {"--threads", BU_INT, &a->threads}};
	bu_parse(argc, argv, opts, sizeof opts / sizeof opts[0], NULL, 0, usage);
	if (!a->data || !a->query || !a->db || !a->batch || !a->nq || a->threads < 1)
		usage();
}

/* Loads n rows of f into coll, one batch buffer at a time. */
static void load(const mem_args *a, bu_fvecs *f, size_t n, omen_collection *coll, mem_phase *ph)
{
	float *buf = bu_xmalloc(a->batch * f->dim * sizeof(float));
	ph->start = heap_now;
	peak_reset();
	ph->mallinfo_max = mallinfo_bytes();
	for (size_t i = 0; i < n; i += a->batch) {
		omen_batch b = {0};
		int64_t mi;
		b.n = n - i < a->batch ? n - i : a->batch;
		b.dim = f->dim;
		bu_fvecs_read(f, i, b.n, buf);
		b.vectors = buf;
		bu_check(omen_upsert(coll, &b, NULL), "upsert");
		mi = mallinfo_bytes();
		ph->mallinfo_max = mi > ph->mallinfo_max ? mi : ph->mallinfo_max;
	}
	ph->peak = peak_get();
	free(buf);
}

/* Runs 20 single queries, then one batch of nq queries; peaks go to single and batch. */
static void search(const mem_args *a, omen_collection *coll, const float *q, size_t nq, size_t dim,
                   mem_phase *single, mem_phase *batch)
{
	omen_search_params sp;
	uint64_t *ids = bu_xmalloc(nq * 10 * sizeof *ids);
	float *d = bu_xmalloc(nq * 10 * sizeof *d);

	omen_search_params_init(&sp);
	sp.k = 10;
	sp.threads = a->threads;
	single->start = heap_now;
	peak_reset();
	for (size_t i = 0; i < 20; i++)
		bu_check(omen_search(coll, q + (i % nq) * dim, 1, dim, &sp, ids, d), "search");
	single->peak = peak_get();
	single->mallinfo_max = mallinfo_bytes();
	batch->start = heap_now;
	peak_reset();
	bu_check(omen_search(coll, q, nq, dim, &sp, ids, d), "search (batch)");
	batch->peak = peak_get();
	batch->mallinfo_max = mallinfo_bytes();
	free(ids), free(d);
}

static void phase_json(FILE *f, const char *name, const mem_phase *p, int last)
{
	fprintf(
	    f,
	    " \"%s\": {\"heap_at_start\": %lld, \"heap_peak\": %lld, \"heap_peak_above_start\": "
	    "%lld, \"mallinfo_max\": %lld}%s\n",
	    name, (long long)p->start, (long long)p->peak, (long long)(p->peak - p->start),
	    (long long)p->mallinfo_max, last ? "" : ",");
}

int main(int argc, char **argv)
{
	mem_args a;
	bu_fvecs f;
	omen_db *db;
	omen_collection *coll;
	mem_phase ph_load, ph_single, ph_batch;
	size_t n, nq, dq;
	float *q;
	FILE *out;
	int64_t heap_base;

	parse_args(argc, argv, &a);
	bu_fvecs_open(&f, a.data);
	n = a.n && a.n < f.n ? a.n : f.n;
	q = bu_fvecs_load(a.query, a.nq, &nq, &dq);
	if (dq != f.dim)
		bu_die(a.query, "dimension %zu, data has %zu", dq, f.dim);
	bu_rm_rf(a.db);
	heap_base = heap_now;
	bu_check(omen_open(a.db, NULL, &db), "omen_open");
	bu_check(omen_create_collection(db, "mem", f.dim, OMEN_METRIC_L2), "create collection");
	bu_check(omen_collection_open(db, "mem", &coll), "open collection");
	load(&a, &f, n, coll, &ph_load);
	search(&a, coll, q, nq, f.dim, &ph_single, &ph_batch);

	out = bu_open_out(a.json);
	fprintf(out, "{\"bench\": \"memory\", \"data\": \"%s\", \"n\": %zu, \"dim\": %zu, ", a.data,
	        n, f.dim);
	fprintf(out, "\"batch\": %zu, \"nq\": %zu, \"threads\": %d, \"vector_bytes\": %zu,\n",
	        a.batch, nq, a.threads, n * f.dim * sizeof(float));
	fprintf(out,
	        " \"program_query_bytes\": %zu, \"program_batch_buffer_bytes\": %zu, "
	        "\"heap_before_open\": %lld,\n",
	        nq * f.dim * sizeof(float), a.batch * f.dim * sizeof(float), (long long)heap_base);
	phase_json(out, "load", &ph_load, 0);
	phase_json(out, "search_single", &ph_single, 0);
	phase_json(out, "search_batch", &ph_batch, 0);
	fprintf(out,
	        " \"VmHWM_kB\": %ld, \"VmRSS_kB\": %ld, \"RssAnon_kB\": %ld, \"RssFile_kB\": "
	        "%ld}\n",
	        bu_proc_status_kb("VmHWM"), bu_proc_status_kb("VmRSS"),
	        bu_proc_status_kb("RssAnon"), bu_proc_status_kb("RssFile"));
	bu_close_out(out);
	omen_collection_close(coll);
	omen_close(db);
	bu_fvecs_close(&f);
	free(q);
	bu_rm_rf(a.db);
	return 0;
}
