/*
 * Exact search. One read transaction gives a consistent snapshot; the vector chunks are scanned
 * straight from the memory map, OpenMP threads taking chunks, each keeping its own top-k heaps,
 * merged at the end. Small query batches use the SIMD distance kernels row by row; larger ones
 * compute dot products for a block of queries against a whole chunk with SGEMM (OpenBLAS) and
 * derive distances from stored squared norms: |q - x|^2 = |q|^2 + |x|^2 - 2<q, x>. That form
 * loses precision when the norms dwarf the distances, so SGEMM keeps 2k + 8 candidates, the
 * exact kernels re-rank them, and a float error bound certifies that no point left out could
 * have entered the top k; a query that cannot be certified is searched again with the exact
 * kernels. Batches thus return exactly what one-query searches return. Selective filters skip
 * the scan and visit only the matching rows.
 */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <roaring/roaring.h>
#include <stdlib.h>
#include <string.h>

#include "engine/distance.h"
#include "engine/engine.h"
#include "engine/filter.h"

#define GEMM_MIN_QUERIES 8             /* batches at least this large use SGEMM */
#define GEMM_BLOCK_FLOATS (1u << 20)   /* per-thread SGEMM output block */
#define HEAP_BYTES_MAX (256ull << 20)  /* per query block, all threads' heaps together */

/* The snapshot being searched: every chunk's view and tombstone bitset. */
typedef struct scan_set {
	omen_collection *c;
	size_t nchunks;
	chunk_view *views;
	uint64_t **tombs;      /* per chunk: cap bits, or NULL when the chunk has no tombstones */
	roaring_bitmap_t *allow; /* filter matches, or NULL for no filter */
	uint64_t points;         /* live points in the snapshot */
	float max_norm;          /* largest stored squared norm, for SGEMM error bounds */
	const dist_kernels *dk;
} scan_set;

/* What one query block needs: the queries, their squared norms, the heaps. */
typedef struct scan_job {
	const scan_set *set;
	const float *q; /* qn x dim */
	const float *qnorm;
	size_t qn, k;
	size_t kc;   /* heap size: k, or more candidates for re-ranking (SGEMM) */
	bool gemm;   /* SGEMM distances, re-ranked exactly at the end */
	topk *heaps; /* threads x qn */
	uint8_t *recheck; /* per query of the request: SGEMM result not certified */
} scan_job;

static void scan_set_free(scan_set *s)
{
	for (size_t i = 0; i < s->nchunks; i++) {
		chunk_view_release(&s->views[i]);
		if (s->tombs)
			free(s->tombs[i]);
	}
	free(s->views);
	free(s->tombs);
	if (s->allow)
		roaring_bitmap_free(s->allow);
}

/* Loads the views of all chunks, which must be numbered 0..n-1. */
static int load_chunks(scan_set *s, MDB_txn *txn, uint64_t rows)
{
	omen_collection *c = s->c;
	size_t n = (size_t)((rows + c->cap - 1) / c->cap);
	s->views = calloc(n ? n : 1, sizeof *s->views);
	s->tombs = calloc(n ? n : 1, sizeof *s->tombs);
	if (!s->views || !s->tombs)
		return status_set(OMEN_ENOMEM, "out of memory");
	MDB_cursor *cur;
	int rc = mdb_cursor_open(txn, c->vec_dbi, &cur);
	if (rc != 0)
		return status_from_mdb(rc, "vector chunks");
	MDB_val k, v;
	int st = OMEN_OK;
	for (size_t i = 0; i < n && st == OMEN_OK; i++) {
		rc = mdb_cursor_get(cur, &k, &v, i ? MDB_NEXT : MDB_FIRST);
		if (rc != 0 || k.mv_size != 8 || be64_get(k.mv_data) != i)
			st = status_set(OMEN_ECORRUPT, "collection '%s': vector chunk %zu is missing",
			                c->name, i);
		else
			st = chunk_view_init(&s->views[i], v.mv_data, v.mv_size, c->dim, c->cap);
		s->nchunks = i + 1;
	}
	mdb_cursor_close(cur);
	if (st == OMEN_OK && n && (uint64_t)(n - 1) * c->cap + s->views[n - 1].count != rows)
		st = status_set(OMEN_ECORRUPT, "collection '%s': row count disagrees with chunks",
		                c->name);
	for (size_t i = 0; st == OMEN_OK && i < n; i++)
		for (uint32_t r = 0; r < s->views[i].count; r++)
			if (!(s->views[i].norms[r] <= s->max_norm)) /* also takes an infinite norm */
				s->max_norm = s->views[i].norms[r];
	return st;
}

static int load_tombs(scan_set *s, MDB_txn *txn)
{
	omen_collection *c = s->c;
	MDB_cursor *cur;
	int rc = mdb_cursor_open(txn, c->tomb_dbi, &cur);
	if (rc != 0)
		return status_from_mdb(rc, "tombstones");
	MDB_val k, v;
	int st = OMEN_OK;
	size_t nw = ((size_t)c->cap + 63) / 64;
	for (int op = MDB_FIRST; st == OMEN_OK && mdb_cursor_get(cur, &k, &v, op) == 0;
	     op = MDB_NEXT) {
		uint64_t chunk = k.mv_size == 8 ? be64_get(k.mv_data) : UINT64_MAX;
		if (chunk >= s->nchunks) {
			st = status_set(OMEN_ECORRUPT, "tombstone record for a missing chunk");
			break;
		}
		s->tombs[chunk] = malloc(nw * 8);
		st = s->tombs[chunk] ? tomb_load(v.mv_data, v.mv_size, c->cap, s->tombs[chunk])
		                     : status_set(OMEN_ENOMEM, "out of memory");
	}
	mdb_cursor_close(cur);
	return st;
}

/* Builds the set of rows whose metadata matches the filter. Rows without metadata match when
 * the filter matches an empty map (e.g. $ne). */
static int load_filter(scan_set *s, MDB_txn *txn, const char *json, uint64_t rows)
{
	char err[256];
	filter *f;
	int st = filter_compile(json, &f, err, sizeof err);
	if (st != OMEN_OK)
		return status_set(st, "filter: %s", err);
	roaring_bitmap_t *with_meta = roaring_bitmap_create();
	s->allow = roaring_bitmap_create();
	MDB_cursor *cur;
	int rc = mdb_cursor_open(txn, s->c->meta_dbi, &cur);
	st = rc ? status_from_mdb(rc, "metadata") : OMEN_OK;
	MDB_val k, v;
	for (int op = MDB_FIRST; st == OMEN_OK && mdb_cursor_get(cur, &k, &v, op) == 0;
	     op = MDB_NEXT) {
		const unsigned char *mp;
		size_t len;
		uint64_t row = k.mv_size == 8 ? be64_get(k.mv_data) : UINT64_MAX;
		st = row < rows ? meta_rec_body(v.mv_data, v.mv_size, &mp, &len)
		                : status_set(OMEN_ECORRUPT, "metadata record for a missing row");
		if (st != OMEN_OK)
			break;
		roaring_bitmap_add(with_meta, (uint32_t)row);
		if (filter_match(f, mp, len))
			roaring_bitmap_add(s->allow, (uint32_t)row);
	}
	if (rc == 0)
		mdb_cursor_close(cur);
	if (st == OMEN_OK && rows && filter_match(f, NULL, 0)) {
		roaring_bitmap_t *bare = roaring_bitmap_create();
		roaring_bitmap_add_range(bare, 0, rows);
		roaring_bitmap_andnot_inplace(bare, with_meta);
		roaring_bitmap_or_inplace(s->allow, bare);
		roaring_bitmap_free(bare);
	}
	roaring_bitmap_free(with_meta);
	filter_free(f);
	return st;
}

static inline bool row_dead(const scan_set *s, size_t chunk, uint32_t slot)
{
	const uint64_t *t = s->tombs[chunk];
	if (t && (t[slot / 64] >> (slot % 64) & 1))
		return true;
	return s->allow &&
	       !roaring_bitmap_contains(s->allow, (uint32_t)(chunk * s->c->cap + slot));
}

/* Turns a dot product (or, for l2 with exact kernels, a distance) into the metric's distance. */
static inline float to_dist(omen_metric m, float dot, float qn, float xn)
{
	if (m == OMEN_METRIC_L2) {
		float d = qn + xn - 2 * dot;
		return d > 0 ? d : 0;
	}
	return m == OMEN_METRIC_IP ? -dot : 1 - dot;
}

/* Offers count distances of chunk ch (one query) to heap h. */
static void offer(const scan_set *s, size_t ch, const float *d, uint32_t count, topk *h)
{
	const chunk_view *v = &s->views[ch];
	bool check = s->tombs[ch] || s->allow;
	uint32_t base = (uint32_t)(ch * s->c->cap);
	for (uint32_t r = 0; r < count; r++)
		if (topk_may_accept(h, d[r]) && !(check && row_dead(s, ch, r)))
			topk_push(h, d[r], chunk_id(v, r), base + r);
}

/* Scans chunk ch for every query of the job with the SIMD kernels. */
static void scan_kernels(const scan_job *j, size_t ch, topk *heaps, float *buf)
{
	const scan_set *s = j->set;
	const chunk_view *v = &s->views[ch];
	omen_metric m = s->c->metric;
	size_t dim = s->c->dim;
	for (size_t q = 0; q < j->qn; q++) {
		const float *qv = j->q + q * dim;
		if (m == OMEN_METRIC_L2) {
			s->dk->l2sq_many(qv, v->vecs, v->count, dim, buf);
		} else {
			s->dk->dot_many(qv, v->vecs, v->count, dim, buf);
			for (uint32_t r = 0; r < v->count; r++)
				buf[r] = to_dist(m, buf[r], 0, 0);
		}
		offer(s, ch, buf, v->count, &heaps[q]);
	}
}

/* Scans chunk ch for every query of the job: SGEMM blocks of queries against the chunk. */
static void scan_gemm(const scan_job *j, size_t ch, topk *heaps, float *buf)
{
	const scan_set *s = j->set;
	const chunk_view *v = &s->views[ch];
	omen_metric m = s->c->metric;
	int dim = (int)s->c->dim, n = (int)v->count;
	size_t qs = GEMM_BLOCK_FLOATS / s->c->cap;
	for (size_t q0 = 0; q0 < j->qn; q0 += qs) {
		size_t qb = j->qn - q0 < qs ? j->qn - q0 : qs;
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)qb, n, dim, 1.0f,
		            j->q + q0 * dim, dim, v->vecs, dim, 0.0f, buf, n);
		for (size_t q = 0; q < qb; q++) {
			float *d = buf + q * n, qn = j->qnorm[q0 + q];
			for (int r = 0; r < n; r++)
				d[r] = to_dist(m, d[r], qn, v->norms[r]);
			offer(s, ch, d, (uint32_t)n, &heaps[q0 + q]);
		}
	}
}

/* Scans every chunk with nthreads threads into per-thread heaps. */
static int scan_all(const scan_job *j, int nthreads)
{
	const scan_set *s = j->set;
	bool gemm = j->gemm;
	size_t buf_floats = gemm ? GEMM_BLOCK_FLOATS : s->c->cap;
	int failed = 0;
#pragma omp parallel num_threads(nthreads) reduction(| : failed)
	{
		float *buf = malloc(buf_floats * sizeof *buf);
		topk *heaps = j->heaps + (size_t)omp_get_thread_num() * j->qn;
		failed = !buf;
#pragma omp for schedule(dynamic, 1)
		for (size_t ch = 0; ch < s->nchunks; ch++) {
			if (!buf)
				continue;
			if (gemm)
				scan_gemm(j, ch, heaps, buf);
			else
				scan_kernels(j, ch, heaps, buf);
		}
		free(buf);
	}
	return failed ? status_set(OMEN_ENOMEM, "out of memory") : OMEN_OK;
}

/* Exact distance of query qv to the point at row. */
static float exact_dist(const scan_set *s, const float *qv, uint32_t row)
{
	size_t dim = s->c->dim;
	const float *x = s->views[row / s->c->cap].vecs + (size_t)(row % s->c->cap) * dim;
	if (s->c->metric == OMEN_METRIC_L2)
		return s->dk->l2sq(qv, x, dim);
	return to_dist(s->c->metric, s->dk->dot(qv, x, dim), 0, 0);
}

/* Writes a query's final results (sorted heap t, padded to k) into output row q. */
static void write_row(const search_req *req, size_t q, const topk *t)
{
	uint64_t *ids = req->ids_out + q * req->k;
	float *dists = req->dists_out + q * req->k;
	for (size_t i = 0; i < req->k; i++) {
		ids[i] = i < t->n ? t->h[i].id : OMEN_NO_ID;
		dists[i] = i < t->n ? t->h[i].dist : INFINITY;
	}
}

/* Bound on the float error of an SGEMM-derived distance: |q|^2 + |x|^2 - 2<q, x> computed in
 * float with dim-term sums errs by at most about 2 (dim + 2) u (|q|^2 + |x|^2), u = 2^-24 (the
 * dot product's error is at most gamma_dim |q| |x| <= gamma_dim (|q|^2 + |x|^2) / 2; the norms
 * and the final additions add the rest). The same bound covers -<q, x> and 1 - <q, x>. */
static float gemm_error(const scan_set *s, float qnorm)
{
	return 2.0f * ((float)s->c->dim + 2) * 0x1p-24f * (qnorm + s->max_norm);
}

/* Re-ranks the SGEMM candidates `all` of query q with the exact kernels into fin. Returns false
 * when the result is not certified: a point outside the candidates might, within the error
 * bound, be closer than the k-th result. */
static bool rerank(const scan_job *j, size_t q, topk *all, topk *fin)
{
	const float *qv = j->q + q * j->set->c->dim;
	bool full = all->n == all->k;
	float worst_kept = full ? all->h[0].dist : INFINITY;
	for (uint32_t i = 0; i < all->n; i++)
		topk_push(fin, exact_dist(j->set, qv, all->h[i].row), all->h[i].id, all->h[i].row);
	if (!full || fin->n < fin->k)
		return true;
	float kth = fin->h[0].dist, err = gemm_error(j->set, j->qnorm[q]);
	return worst_kept - kth > 2 * err;
}

/* Merges the threads' heaps of each query, re-ranks SGEMM candidates with the exact kernels,
 * and writes rows q0.. of the outputs (or marks them for an exact re-check). tmp holds kc + k
 * items. */
static void merge_out(const scan_job *j, int nthreads, size_t q0, topk_item *tmp,
                      const search_req *req)
{
	for (size_t q = 0; q < j->qn; q++) {
		topk all = {tmp, 0, (uint32_t)j->kc};
		for (int t = 0; t < nthreads; t++) {
			const topk *h = &j->heaps[(size_t)t * j->qn + q];
			for (uint32_t i = 0; i < h->n; i++)
				topk_push(&all, h->h[i].dist, h->h[i].id, h->h[i].row);
		}
		topk *out = &all;
		topk fin = {tmp + j->kc, 0, (uint32_t)j->k};
		if (j->gemm) {
			if (!rerank(j, q, &all, &fin)) {
				j->recheck[q0 + q] = 1;
				continue;
			}
			out = &fin;
		}
		topk_sort(out);
		write_row(req, q0 + q, out);
	}
}

/* Scans every chunk for the queries of req, in blocks that bound the heaps' memory. With
 * use_gemm, queries whose SGEMM results are not certified are marked in recheck (nq bytes)
 * and their output rows are left unwritten. */
static int scan_pass(const scan_set *s, const search_req *req, int nthreads, bool use_gemm,
                     uint8_t *recheck)
{
	size_t dim = s->c->dim, k = req->k;
	size_t kc = use_gemm ? 2 * k + 8 : k;
	kc = kc > s->points ? (size_t)s->points : kc;
	size_t qblock = HEAP_BYTES_MAX / ((size_t)nthreads * kc * sizeof(topk_item));
	qblock = qblock < 1 ? 1 : qblock > req->nq ? req->nq : qblock;
	topk *heaps = calloc((size_t)nthreads * qblock, sizeof *heaps);
	topk_item *items = malloc((size_t)nthreads * qblock * kc * sizeof *items);
	topk_item *tmp = malloc((kc + k) * sizeof *tmp);
	float *qnorm = malloc(qblock * sizeof *qnorm);
	int st = heaps && items && tmp && qnorm ? OMEN_OK : status_set(OMEN_ENOMEM, "out of memory");
	for (size_t q0 = 0; q0 < req->nq && st == OMEN_OK; q0 += qblock) {
		scan_job j = {s, req->queries + q0 * dim, qnorm, 0, k, kc, use_gemm, heaps, recheck};
		j.qn = req->nq - q0 < qblock ? req->nq - q0 : qblock;
		for (size_t q = 0; q < j.qn; q++)
			qnorm[q] = s->dk->dot(j.q + q * dim, j.q + q * dim, dim);
		for (size_t h = 0; h < (size_t)nthreads * j.qn; h++)
			heaps[h] = (topk){items + h * kc, 0, (uint32_t)kc};
		st = scan_all(&j, nthreads);
		if (st == OMEN_OK)
			merge_out(&j, nthreads, q0, tmp, req);
	}
	free(heaps);
	free(items);
	free(tmp);
	free(qnorm);
	return st;
}

/* Searches again, in one pass with the exact kernels, the queries marked in recheck. */
static int recheck_pass(const scan_set *s, const search_req *req, int nthreads,
                        const uint8_t *recheck)
{
	size_t dim = s->c->dim, k = req->k, n = 0;
	for (size_t q = 0; q < req->nq; q++)
		n += recheck[q];
	if (n == 0)
		return OMEN_OK;
	float *qs = malloc(n * dim * sizeof *qs), *dists = malloc(n * k * sizeof *dists);
	uint64_t *ids = malloc(n * k * sizeof *ids);
	int st = qs && dists && ids ? OMEN_OK : status_set(OMEN_ENOMEM, "out of memory");
	for (size_t q = 0, i = 0; st == OMEN_OK && q < req->nq; q++)
		if (recheck[q])
			memcpy(qs + i++ * dim, req->queries + q * dim, dim * sizeof *qs);
	search_req sub = {qs, n, k, req->threads, req->filter, ids, dists};
	if (st == OMEN_OK)
		st = scan_pass(s, &sub, nthreads, false, NULL);
	for (size_t q = 0, i = 0; st == OMEN_OK && q < req->nq; q++)
		if (recheck[q]) {
			memcpy(req->ids_out + q * k, ids + i * k, k * sizeof *ids);
			memcpy(req->dists_out + q * k, dists + i++ * k, k * sizeof *dists);
		}
	free(qs);
	free(dists);
	free(ids);
	return st;
}

static int scan_search(const scan_set *s, const search_req *req, int nthreads)
{
	if (req->nq < GEMM_MIN_QUERIES)
		return scan_pass(s, req, nthreads, false, NULL);
	uint8_t *recheck = calloc(req->nq, 1);
	if (!recheck)
		return status_set(OMEN_ENOMEM, "out of memory");
	int st = scan_pass(s, req, nthreads, true, recheck);
	if (st == OMEN_OK)
		st = recheck_pass(s, req, nthreads, recheck);
	free(recheck);
	return st;
}

/* Selective filters: each query visits only the matching rows, threads across queries. */
static int selective_search(const scan_set *s, const search_req *req, int nthreads)
{
	uint64_t card = roaring_bitmap_get_cardinality(s->allow);
	uint32_t *rows = malloc((card ? card : 1) * sizeof *rows);
	if (!rows)
		return status_set(OMEN_ENOMEM, "out of memory");
	roaring_bitmap_to_uint32_array(s->allow, rows);
	size_t dim = s->c->dim, k = req->k, cap = s->c->cap;
	int failed = 0;
#pragma omp parallel for num_threads(nthreads) schedule(dynamic, 1) reduction(| : failed)
	for (size_t q = 0; q < req->nq; q++) {
		topk_item *items = malloc(k * sizeof *items);
		if (!items) {
			failed = 1;
			continue;
		}
		topk h = {items, 0, (uint32_t)k};
		const float *qv = req->queries + q * dim;
		for (uint64_t i = 0; i < card; i++) {
			size_t ch = rows[i] / cap;
			uint32_t slot = rows[i] % cap;
			const uint64_t *t = s->tombs[ch];
			if (t && (t[slot / 64] >> (slot % 64) & 1))
				continue;
			topk_push(&h, exact_dist(s, qv, rows[i]), chunk_id(&s->views[ch], slot),
			          rows[i]);
		}
		topk_sort(&h);
		write_row(req, q, &h);
		free(items);
	}
	free(rows);
	return failed ? status_set(OMEN_ENOMEM, "out of memory") : OMEN_OK;
}

static int thread_count(int requested, size_t work)
{
	int t = requested > 0 ? requested : omp_get_max_threads();
	if ((size_t)t > work)
		t = work ? (int)work : 1;
	return t;
}

int flat_search(omen_collection *c, const search_req *req)
{
	MDB_txn *txn;
	int st = store_read_begin(c->db->st, &txn);
	if (st != OMEN_OK)
		return st;
	scan_set s = {.c = c, .dk = dist_best()};
	catalog_rec r;
	st = coll_catalog(c, txn, &r);
	s.points = r.points;
	if (st == OMEN_OK && req->k > r.points)
		st = status_set(OMEN_EINVAL, "k=%zu exceeds the %llu points of collection '%s'",
		                req->k, (unsigned long long)r.points, c->name);
	if (st == OMEN_OK)
		st = load_chunks(&s, txn, r.rows);
	if (st == OMEN_OK && r.deleted)
		st = load_tombs(&s, txn);
	if (st == OMEN_OK && req->filter)
		st = load_filter(&s, txn, req->filter, r.rows);
	if (st == OMEN_OK) {
		if (s.allow && roaring_bitmap_get_cardinality(s.allow) * 16 < r.rows)
			st = selective_search(&s, req, thread_count(req->threads, req->nq));
		else
			st = scan_search(&s, req, thread_count(req->threads, s.nchunks));
	}
	scan_set_free(&s);
	store_read_end(c->db->st, txn);
	return st;
}

/* Validates the queries and, for cosine, normalises them into *copy. */
static int check_queries(omen_collection *c, const float *qs, size_t nq, float **copy)
{
	size_t dim = c->dim;
	*copy = NULL;
	if (c->metric == OMEN_METRIC_COSINE && !(*copy = malloc(nq * dim * sizeof **copy)))
		return status_set(OMEN_ENOMEM, "out of memory");
	for (size_t i = 0; i < nq; i++) {
		double ss = 0;
		for (size_t j = 0; j < dim; j++) {
			float x = qs[i * dim + j];
			if (!isfinite(x))
				return status_set(OMEN_EINVAL, "query %zu component %zu is %s", i, j,
				                  isnan(x) ? "NaN" : "infinite");
			ss += (double)x * x;
		}
		if (*copy) {
			if (ss == 0)
				return status_set(OMEN_EINVAL, "query %zu is a zero vector", i);
			for (size_t j = 0; j < dim; j++)
				(*copy)[i * dim + j] = (float)(qs[i * dim + j] / sqrt(ss));
		}
	}
	return OMEN_OK;
}

int omen_search(omen_collection *c, const float *queries, size_t nq, size_t dim,
                const omen_search_params *params, uint64_t *ids_out, float *dists_out)
{
	omen_search_params defaults;
	if (!params) {
		omen_search_params_init(&defaults);
		params = &defaults;
	}
	if (!c || !queries || !ids_out || !dists_out)
		return status_set(OMEN_EINVAL, "NULL argument");
	if (nq < 1 || nq > OMEN_MAX_BATCH)
		return status_set(OMEN_EINVAL, "query count must be 1 to %d, got %zu",
		                  OMEN_MAX_BATCH, nq);
	if (dim != c->dim)
		return status_set(OMEN_EINVAL, "collection '%s': dimension %u expected, got %zu",
		                  c->name, c->dim, dim);
	if (params->k < 1 || params->k > OMEN_MAX_K)
		return status_set(OMEN_EINVAL, "k must be 1 to %d, got %zu", OMEN_MAX_K,
		                  params->k);
	if (params->threads < 0 || params->threads > 1024)
		return status_set(OMEN_EINVAL, "threads must be 0 to 1024, got %d", params->threads);
	float *copy;
	int st = check_queries(c, queries, nq, &copy);
	if (st == OMEN_OK) {
		search_req req = {copy ? copy : queries, nq, params->k, params->threads,
		                  params->filter, ids_out, dists_out};
		st = flat_search(c, &req);
	}
	free(copy);
	return st;
}
