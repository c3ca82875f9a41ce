/*
 * IVF builds and appends. A build samples the live points, trains the coarse quantizer
 * (ivf_train.c), draws the rotation, assigns and encodes every live point in batches, and
 * writes the whole index in one write transaction, which also takes the rows written while it
 * ran, and the default nprobe calibrated on a sample of the collection's own points against
 * their exact neighbours (docs/IVF.md). Points written after a build are assigned to their lists in
 * the write's own transaction (ivf_append), so the index always covers every row.
 */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "engine/ivf.h"

#define ENCODE_FLOATS (1u << 22) /* floats of a batch gathered, assigned and encoded at once */
#define CALIB_QUERIES 200        /* collection points used as calibration queries */
#define CALIB_K       10
#define CALIB_TARGET  0.95

/* The default number of lists for n points: the power of two nearest (in log scale) to
 * 4 sqrt(n), at most n / 32 (lists of 32 points on average at least) and 16..65536. */
static uint32_t default_nlist(uint64_t n)
{
	double want = 4 * sqrt((double)n);
	uint32_t nl = 16;
	while (nl < OMEN_IVF_NLIST_MAX && (double)nl * M_SQRT2 < want)
		nl *= 2;
	while (nl > 16 && (uint64_t)nl * 32 > n)
		nl /= 2;
	return nl;
}

/* The live rows of the snapshot (not tombstoned), ascending. */
static int live_rows(const snapshot *s, uint32_t **out, size_t *n)
{
	uint32_t *rows = mem_alloc((s->rec.rows ? s->rec.rows : 1) * sizeof *rows);
	if (!rows)
		return status_set(OMEN_ENOMEM, "out of memory");
	size_t m = 0;
	for (uint64_t r = 0; r < s->rec.rows; r++)
		if (!snap_tomb(s, r))
			rows[m++] = (uint32_t)r;
	*out = rows;
	*n = m;
	return OMEN_OK;
}

static void gather(const snapshot *s, const uint32_t *rows, size_t n, float *dst)
{
	size_t dim = s->c->dim;
	for (size_t i = 0; i < n; i++)
		memcpy(dst + i * dim, snap_vec(s, rows[i]), dim * sizeof *dst);
}

/* splitmix64 */
static uint64_t mix(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/* A random sample of m of the rows, in random order (a partial Fisher-Yates shuffle of a
 * copy). */
static uint32_t *sample_rows(const uint32_t *rows, size_t n, size_t m, uint64_t seed)
{
	uint32_t *s = mem_alloc((n ? n : 1) * sizeof *s);
	if (!s)
		return NULL;
	memcpy(s, rows, n * sizeof *s);
	for (size_t i = 0; i < m; i++) {
		size_t j = i + mix(&seed) % (n - i);
		uint32_t t = s[i];
		s[i] = s[j];
		s[j] = t;
	}
	return s;
}

/* Checks the parameters against the collection; *nlist receives the lists to build. */
static int params_check(const eng_coll *c, const omen_index_params *p, size_t live, uint32_t *nlist)
{
	if (c->dim > OMEN_IVF_MAX_DIM)
		return status_set(OMEN_EINVAL,
		                  "collection '%s': IVF supports at most %d dimensions", c->name,
		                  OMEN_IVF_MAX_DIM);
	if (p->bits < 1 || p->bits > OMEN_IVF_BITS_MAX)
		return status_set(OMEN_EINVAL,
		                  "IVF codes of %u bits per dimension are not "
		                  "supported (1 to %d)",
		                  p->bits, OMEN_IVF_BITS_MAX);
	if (live < OMEN_IVF_MIN_POINTS)
		return status_set(OMEN_EINVAL,
		                  "collection '%s': an IVF index needs at least %d live points, it "
		                  "has %zu",
		                  c->name, OMEN_IVF_MIN_POINTS, live);
	if (p->nlist > OMEN_IVF_NLIST_MAX || p->nlist > live)
		return status_set(OMEN_EINVAL, "nlist %u exceeds %s (%zu)", p->nlist,
		                  p->nlist > OMEN_IVF_NLIST_MAX ? "the maximum" : "the live points",
		                  p->nlist > OMEN_IVF_NLIST_MAX ? (size_t)OMEN_IVF_NLIST_MAX
		                                                : live);
	*nlist = p->nlist ? p->nlist : default_nlist(live);
	return OMEN_OK;
}

/* An index being built: its parameters and trained parts, and the codes of every point. */
typedef struct built {
	ivf_index ix;
	float *centroids, *rot, *rcent;
	ivf_code *codes;
	uint8_t *bits;
	size_t n;
	int threads;
} built;

static void built_free(built *b)
{
	mem_free(b->centroids);
	mem_free(b->rot);
	mem_free(b->rcent);
	mem_free(b->codes);
	mem_free(b->bits);
}

/* Assigns and encodes the rows (vectors gathered from s, or given in vecs) as codes[0..n). */
static int encode_rows(built *b, const snapshot *s, const uint32_t *rows, const float *vecs,
                       size_t n, ivf_code *codes, uint8_t *bits, ivf_progress *pr)
{
	uint32_t dim = b->ix.dim;
	size_t batch = ENCODE_FLOATS / dim, cb = ivf_code_size(&b->ix); /* 16 MiB a buffer */
	batch = batch < 1024 ? 1024 : batch;
	batch = n < batch ? n : batch;
	float *x = mem_alloc((batch ? batch : 1) * dim * sizeof *x);
	float *tmp = mem_alloc((batch ? batch : 1) * 2 * dim * sizeof *tmp);
	uint32_t *lists = mem_alloc((batch ? batch : 1) * sizeof *lists);
	int st = x && tmp && lists ? OMEN_OK : status_set(OMEN_ENOMEM, "out of memory");
	for (size_t at = 0; st == OMEN_OK && at < n; at += batch) {
		size_t m = n - at < batch ? n - at : batch;
		const float *v = vecs ? vecs + at * dim : x;
		if (!vecs)
			gather(s, rows + at, m, x);
		st = ivf_assign(v, m, dim, b->ix.centroids, b->ix.nlist, s->c->metric, b->threads,
		                lists);
		for (size_t i = 0; st == OMEN_OK && i < m; i++) {
			codes[at + i].list = lists[i];
			codes[at + i].row = rows[at + i];
		}
		if (st == OMEN_OK)
			ivf_encode(&b->ix, v, m, codes + at, bits + at * cb, tmp);
		ivf_progress_add(pr, m);
	}
	mem_free(x);
	mem_free(tmp);
	mem_free(lists);
	return st;
}

/* Trains the centroids on a sample of the live rows and draws the rotation. */
static int train(built *b, const snapshot *s, const uint32_t *live, size_t n, ivf_progress *pr)
{
	uint32_t dim = b->ix.dim, k = b->ix.nlist;
	size_t m = (size_t)k * IVF_TRAIN_PER_LIST < n ? (size_t)k * IVF_TRAIN_PER_LIST : n;
	uint32_t *pick = sample_rows(live, n, m, b->ix.seed);
	float *x = mem_alloc(m * dim * sizeof *x);
	b->centroids = mem_alloc((size_t)k * dim * sizeof *b->centroids);
	b->rot = mem_alloc((size_t)dim * dim * sizeof *b->rot);
	b->rcent = mem_alloc((size_t)k * dim * sizeof *b->rcent);
	int st = pick && x && b->centroids && b->rot && b->rcent
	             ? OMEN_OK
	             : status_set(OMEN_ENOMEM, "out of memory training %u lists", k);
	if (st == OMEN_OK) {
		gather(s, pick, m, x);
		st = ivf_kmeans(x, m, dim, k, b->ix.seed, b->threads, b->centroids, pr);
	}
	if (st == OMEN_OK)
		st = ivf_rotation(dim, b->ix.seed ^ 0x5bd1e995u, b->rot);
	if (st == OMEN_OK)
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)k, (int)dim, (int)dim,
		            1.0f, b->centroids, (int)dim, b->rot, (int)dim, 0.0f, b->rcent,
		            (int)dim);
	b->ix.centroids = b->centroids;
	b->ix.rot = b->rot;
	b->ix.rcent = b->rcent;
	mem_free(pick);
	mem_free(x);
	return st;
}

/* ---- calibration of the default nprobe ---- */

/* The calibration's queries (collection points) and their exact neighbours, drawn from the
 * build's snapshot; the searches run in the publishing transaction. */
typedef struct calib {
	float *queries;
	uint64_t *self, *exact, *ids;
	float *dists;
	size_t nq;
	int threads;
} calib;

static void calib_free(calib *k)
{
	mem_free(k->queries), mem_free(k->self), mem_free(k->exact), mem_free(k->ids);
	mem_free(k->dists);
}

/* Draws the queries from the live rows and computes their exact CALIB_K + 1 neighbours. */
static int calib_prepare(const snapshot *s, const uint32_t *live, size_t n, uint64_t seed, calib *k)
{
	k->nq = n < CALIB_QUERIES ? n : CALIB_QUERIES;
	size_t rk = k->nq * (CALIB_K + 1), dim = s->c->dim;
	uint32_t *pick = sample_rows(live, n, k->nq, seed ^ 0xca11b);
	k->queries = mem_alloc(k->nq * dim * sizeof *k->queries);
	k->self = mem_alloc(k->nq * sizeof *k->self);
	k->exact = mem_alloc(rk * sizeof *k->exact);
	k->ids = mem_alloc(rk * sizeof *k->ids);
	k->dists = mem_alloc(rk * sizeof *k->dists);
	int st = pick && k->queries && k->self && k->exact && k->ids && k->dists
	             ? OMEN_OK
	             : status_set(OMEN_ENOMEM, "out of memory");
	if (st == OMEN_OK) {
		gather(s, pick, k->nq, k->queries);
		for (size_t q = 0; q < k->nq; q++)
			k->self[q] = snap_id(s, pick[q]);
		search_req ex = {.queries = k->queries,
		                 .nq = k->nq,
		                 .k = CALIB_K + 1,
		                 .threads = k->threads,
		                 .ids_out = k->exact,
		                 .dists_out = k->dists,
		                 .device = OMEN_DEVICE_CPU};
		st = flat_search(s, &ex);
	}
	mem_free(pick);
	return st;
}

/* Recall@CALIB_K of ids (nq x (k + 1), the query's own id left out) against exact. */
static double recall_of(const calib *k)
{
	size_t hit = 0, total = 0;
	for (size_t q = 0; q < k->nq; q++) {
		const uint64_t *e = k->exact + q * (CALIB_K + 1), *g = k->ids + q * (CALIB_K + 1);
		for (size_t i = 0, taken = 0; i <= CALIB_K && taken < CALIB_K; i++) {
			if (e[i] == k->self[q] || e[i] == OMEN_NO_ID)
				continue;
			taken++;
			total++;
			for (size_t j = 0; j <= CALIB_K; j++)
				hit += g[j] == e[i];
		}
	}
	return total ? (double)hit / (double)total : 1;
}

/* Recall of an IVF search of the calibration queries at nprobe, in s. */
static int try_nprobe(calib *k, const snapshot *s, MDB_txn *txn, uint32_t nprobe, double *recall)
{
	search_req req = {.queries = k->queries,
	                  .nq = k->nq,
	                  .k = CALIB_K + 1,
	                  .threads = k->threads,
	                  .ids_out = k->ids,
	                  .dists_out = k->dists,
	                  .nprobe = nprobe};
	int st = ivf_search(s, txn, &req);
	if (st == OMEN_OK)
		*recall = recall_of(k);
	return st;
}

/* The smallest nprobe (a power of two, then refined by bisection) whose recall reaches the
 * target; the index's nlist when none does. Searches the index as written in txn. */
static int calibrate(eng_coll *c, MDB_txn *txn, calib *k, uint32_t nlist, uint32_t *best, float *at)
{
	snapshot s;
	int st = snap_open(c, txn, NULL, &s);
	if (st != OMEN_OK)
		return st;
	uint32_t lo = 0, hi = 1;
	double r = 0;
	while ((st = try_nprobe(k, &s, txn, hi, &r)) == OMEN_OK && r < CALIB_TARGET && hi < nlist) {
		lo = hi;
		hi = hi * 2 < nlist ? hi * 2 : nlist;
	}
	*at = (float)r;
	while (st == OMEN_OK && hi - lo > 1 && r >= CALIB_TARGET) {
		uint32_t mid = lo + (hi - lo) / 2;
		double rm;
		st = try_nprobe(k, &s, txn, mid, &rm);
		if (st == OMEN_OK && rm >= CALIB_TARGET)
			hi = mid, *at = (float)rm;
		else
			lo = mid;
	}
	*best = hi;
	snap_close(&s);
	return st;
}

/* ---- persistence, with the rows written meanwhile ---- */

typedef struct persist_ctx {
	eng_coll *c;
	built *b;
	calib *k;
	uint64_t rows; /* rows the build covered */
} persist_ctx;

/* Encodes and writes the rows [from, to) of the collection as they are in txn. */
static int encode_tail(eng_coll *c, MDB_txn *txn, built *b, uint64_t from)
{
	snapshot s;
	int st = snap_open(c, txn, NULL, &s);
	if (st != OMEN_OK)
		return st;
	size_t n = (size_t)(s.rec.rows - from), cb = ivf_code_size(&b->ix);
	uint32_t *rows = mem_alloc((n ? n : 1) * sizeof *rows);
	ivf_code *codes = mem_alloc((n ? n : 1) * sizeof *codes);
	uint8_t *bits = mem_alloc((n ? n : 1) * cb);
	st = rows && codes && bits ? OMEN_OK : status_set(OMEN_ENOMEM, "out of memory");
	for (size_t i = 0; st == OMEN_OK && i < n; i++)
		rows[i] = (uint32_t)(from + i);
	if (st == OMEN_OK && n)
		st = encode_rows(b, &s, rows, NULL, n, codes, bits, NULL);
	if (st == OMEN_OK && n)
		st = ivf_write_codes(c, txn, &b->ix, codes, bits, n);
	mem_free(rows);
	mem_free(codes);
	mem_free(bits);
	snap_close(&s);
	return st;
}

/* Writes the index, the rows written meanwhile and the calibrated nprobe in one transaction:
 * a failure anywhere publishes nothing. */
static int persist_fn(MDB_txn *txn, void *arg)
{
	persist_ctx *x = arg;
	catalog_rec r;
	int st = coll_catalog(x->c, txn, &r);
	if (st == OMEN_OK)
		st = ivf_write_index(x->c, txn, &x->b->ix);
	if (st == OMEN_OK)
		st = ivf_write_codes(x->c, txn, &x->b->ix, x->b->codes, x->b->bits, x->b->n);
	if (st == OMEN_OK && r.rows > x->rows)
		st = encode_tail(x->c, txn, x->b, x->rows);
	uint32_t nprobe = 0;
	float recall = 0;
	if (st == OMEN_OK)
		st = calibrate(x->c, txn, x->k, x->b->ix.nlist, &nprobe, &recall);
	if (st == OMEN_OK)
		st = ivf_write_nprobe(x->c, txn, nprobe, recall);
	return st;
}

/* ---- omen_build_index for IVF ---- */

/* Trains, encodes and prepares the calibration from one snapshot; the caller persists. */
static int build_from(eng_coll *c, const omen_index_params *p, built *b, calib *k, uint64_t *rows)
{
	MDB_txn *txn;
	snapshot s;
	int st = store_read_begin(c->db->st, &txn);
	if (st != OMEN_OK)
		return st;
	uint32_t *live = NULL;
	st = snap_open(c, txn, NULL, &s);
	if (st == OMEN_OK)
		st = live_rows(&s, &live, &b->n);
	if (st == OMEN_OK)
		st = params_check(c, p, b->n, &b->ix.nlist);
	ivf_progress pr = {p->progress, p->progress_ctx, 0, 0, 0};
	if (st == OMEN_OK) {
		size_t m = (size_t)b->ix.nlist * IVF_TRAIN_PER_LIST;
		pr.total = (uint64_t)(m < b->n ? m : b->n) * IVF_KMEANS_ITERS + b->n;
		b->ix.dim = c->dim;
		b->ix.dpad = (c->dim + 7) / 8 * 8;
		b->ix.bits = p->bits;
		b->ix.nprobe = b->ix.nlist < 16 ? b->ix.nlist : 16; /* until calibrated */
		b->ix.seed = 0x1f1fu + c->coll_id;
		b->ix.rows_built = s.rec.rows;
		st = train(b, &s, live, b->n, &pr);
	}
	size_t cb = ivf_code_size(&b->ix);
	if (st == OMEN_OK &&
	    (!(b->codes = mem_alloc(b->n * sizeof *b->codes)) || !(b->bits = mem_alloc(b->n * cb))))
		st = status_set(OMEN_ENOMEM, "out of memory for %zu codes", b->n);
	if (st == OMEN_OK)
		st = encode_rows(b, &s, live, NULL, b->n, b->codes, b->bits, &pr);
	if (st == OMEN_OK)
		st = calib_prepare(&s, live, b->n, b->ix.seed, k);
	*rows = s.rec.rows;
	mem_free(live);
	if (s.c)
		snap_close(&s);
	store_read_end(c->db->st, txn);
	return st;
}

int ivf_build(eng_coll *c, const omen_index_params *p)
{
	built b = {.threads = p->threads > 0 ? p->threads : omp_get_max_threads()};
	calib k = {.threads = b.threads};
	persist_ctx x = {c, &b, &k, 0};
	/* This thread's OpenMP default: the parallel loops without a thread count and OpenBLAS's
	 * calls outside a parallel region (it takes this many threads) keep to the build's. */
	int saved = omp_get_max_threads();
	omp_set_num_threads(b.threads);
	int st = build_from(c, p, &b, &k, &x.rows);
	if (st == OMEN_OK)
		st = store_write(c->db->st, persist_fn, &x, (uint64_t)b.n * 64);
	omp_set_num_threads(saved);
	built_free(&b);
	calib_free(&k);
	return st;
}

int ivf_append(eng_coll *c, MDB_txn *txn, uint64_t first_row, const float *vecs, size_t n)
{
	built b = {.threads = 1};
	int st = ivf_map(c, txn, &b.ix);
	if (st == OMEN_ENOTFOUND)
		return OMEN_OK; /* no IVF index */
	size_t cb = ivf_code_size(&b.ix);
	uint32_t *rows = mem_alloc((n ? n : 1) * sizeof *rows);
	b.codes = mem_alloc((n ? n : 1) * sizeof *b.codes);
	b.bits = mem_alloc((n ? n : 1) * cb);
	if (st == OMEN_OK && !(rows && b.codes && b.bits))
		st = status_set(OMEN_ENOMEM, "out of memory");
	for (size_t i = 0; st == OMEN_OK && i < n; i++)
		rows[i] = (uint32_t)(first_row + i);
	snapshot none = {.c = c};
	if (st == OMEN_OK)
		st = encode_rows(&b, &none, rows, vecs, n, b.codes, b.bits, NULL);
	if (st == OMEN_OK)
		st = ivf_write_codes(c, txn, &b.ix, b.codes, b.bits, n);
	mem_free(rows);
	ivf_unmap(&b.ix);
	built_free(&b);
	return st;
}
