/*
 * Exact search over a snapshot. OpenMP threads take vector chunks, read in place from the
 * memory map, each keeping its own top-k heaps, merged at the end. Small query batches use the
 * SIMD distance kernels row by row; larger ones compute dot products for a block of queries
 * against a whole chunk with SGEMM (OpenBLAS) and derive distances from stored squared norms:
 * |q - x|^2 = |q|^2 + |x|^2 - 2<q, x>. That form loses precision when the norms dwarf the
 * distances, so SGEMM keeps 2k + 8 candidates, the exact kernels re-rank them, and a float
 * error bound certifies that no point left out could have entered the top k; a query that
 * cannot be certified is searched again with the exact kernels. Batches thus return exactly
 * what one-query searches return. Selective filters skip the scan and visit only the matching
 * rows.
 */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <roaring/roaring.h>
#include <stdlib.h>
#include <string.h>

#include "engine/distance.h"
#include "engine/engine.h"
#include "engine/gpu/gpu.h"

#define GEMM_MIN_QUERIES  8              /* batches at least this large use SGEMM */
#define GEMM_BLOCK_FLOATS (1u << 20)     /* per-thread SGEMM output block */
#define HEAP_BYTES_MAX    (256ull << 20) /* per query block, all threads' heaps together */

/* What one query block needs: the queries, their squared norms, the heaps. */
typedef struct scan_job {
	const snapshot *s;
	const float *q; /* qn x dim */
	const float *qnorm;
	size_t qn, k;
	size_t kc;        /* heap size: k, or more candidates for re-ranking (SGEMM) */
	bool gemm;        /* SGEMM distances, re-ranked exactly at the end */
	uint64_t row_min; /* rows below are skipped */
	float max_norm;   /* largest squared norm in the snapshot (SGEMM error bound) */
	float unit;       /* rounding unit of the SGEMM inputs: 2^-24, or 2^-10 with TF32 */
	topk *heaps;      /* threads x qn */
	uint8_t *recheck; /* per query of the request: SGEMM result not certified */
} scan_job;

/* Turns a dot product into the metric's distance (l2 from squared norms). */
static inline float to_dist(omen_metric m, float dot, float qn, float xn)
{
	if (m == OMEN_METRIC_L2) {
		float d = qn + xn - 2 * dot;
		return d > 0 ? d : 0;
	}
	return m == OMEN_METRIC_IP ? -dot : 1 - dot;
}

/* Offers count distances of chunk ch (one query) to heap h. */
static void offer(const scan_job *j, size_t ch, const float *d, uint32_t count, topk *h)
{
	const snapshot *s = j->s;
	const chunk_view *v = &s->views[ch];
	uint64_t base = (uint64_t)ch << s->shift;
	uint32_t r0 = j->row_min > base ? (uint32_t)(j->row_min - base) : 0;
	bool check = s->tombs[ch] || s->allow;
	for (uint32_t r = r0; r < count; r++)
		if (topk_may_accept(h, d[r]) && !(check && snap_excluded(s, base + r)))
			topk_push(h, d[r], chunk_id(v, r), (uint32_t)(base + r));
}

/* Scans chunk ch for every query of the job with the SIMD kernels. */
static void scan_kernels(const scan_job *j, size_t ch, topk *heaps, float *buf)
{
	const snapshot *s = j->s;
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
		offer(j, ch, buf, v->count, &heaps[q]);
	}
}

/* Scans chunk ch for every query of the job: SGEMM blocks of queries against the chunk. */
static void scan_gemm(const scan_job *j, size_t ch, topk *heaps, float *buf)
{
	const snapshot *s = j->s;
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
			offer(j, ch, d, (uint32_t)n, &heaps[q0 + q]);
		}
	}
}

/* Scans every chunk from row_min on with nthreads threads into per-thread heaps. */
static int scan_all(const scan_job *j, int nthreads)
{
	const snapshot *s = j->s;
	size_t buf_floats = j->gemm ? GEMM_BLOCK_FLOATS : s->c->cap;
	size_t first = (size_t)(j->row_min >> s->shift);
	int failed = 0;
#pragma omp parallel num_threads(nthreads) reduction(| : failed)
	{
		/* OpenBLAS runs one thread inside an active parallel region, but a team of one is
		 * not active: it would take the process's default again. One thread's SGEMM each.
		 */
		omp_set_num_threads(1);
		float *buf = mem_alloc(buf_floats * sizeof *buf);
		topk *heaps = j->heaps + (size_t)omp_get_thread_num() * j->qn;
		failed = !buf;
#pragma omp for schedule(dynamic, 1)
		for (size_t ch = first; ch < s->nchunks; ch++) {
			if (!buf)
				continue;
			if (j->gemm)
				scan_gemm(j, ch, heaps, buf);
			else
				scan_kernels(j, ch, heaps, buf);
		}
		mem_free(buf);
	}
	return failed ? status_set(OMEN_ENOMEM, "out of memory") : OMEN_OK;
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
static float gemm_error(const scan_job *j, float qnorm)
{
	return 2.0f * ((float)j->s->c->dim + 2) * j->unit * (qnorm + j->max_norm);
}

/* Re-ranks the SGEMM candidates `all` of query q with the exact kernels into fin. Returns false
 * when the result is not certified: a point outside the candidates might, within the error
 * bound, be closer than the k-th result. */
static bool rerank(const scan_job *j, size_t q, topk *all, topk *fin)
{
	const float *qv = j->q + q * j->s->c->dim;
	bool full = all->n == all->k;
	float worst_kept = full ? all->h[0].dist : INFINITY;
	for (uint32_t i = 0; i < all->n; i++)
		topk_push(fin, snap_dist(j->s, qv, all->h[i].row), all->h[i].id, all->h[i].row);
	if (!full || fin->n < fin->k)
		return true;
	float kth = fin->h[0].dist, err = gemm_error(j, j->qnorm[q]);
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

/* How a pass computes distances. */
typedef enum { PASS_KERNELS, PASS_GEMM, PASS_GPU } pass_mode;

/* One block of queries: candidates from the device (one heap per query, nthreads = 1), or
 * from every chunk on the CPU threads. */
static int scan_block(scan_job *j, int nthreads, pass_mode mode)
{
	if (mode != PASS_GPU)
		return scan_all(j, nthreads);
	bool tf32 = false;
	int st = gpu_scan(j->s, j->q, j->qnorm, j->qn, j->kc, j->row_min, j->heaps, &tf32);
	j->unit = tf32 ? 0x1p-10f : 0x1p-24f;
	return st;
}

/* Scans every chunk for the queries of req, in blocks that bound the heaps' memory. With
 * PASS_GEMM or PASS_GPU, queries whose SGEMM results are not certified are marked in recheck
 * (nq bytes) and their output rows are left unwritten. */
static int scan_pass(const snapshot *s, const search_req *req, int nthreads, pass_mode mode,
                     uint8_t *recheck)
{
	bool use_gemm = mode != PASS_KERNELS;
	size_t dim = s->c->dim, k = req->k;
	size_t kc = use_gemm ? 2 * k + 8 : k;
	kc = kc > s->rec.points ? (size_t)s->rec.points : kc;
	kc = kc < k ? k : kc;
	size_t qblock = HEAP_BYTES_MAX / ((size_t)nthreads * kc * sizeof(topk_item));
	qblock = qblock < 1 ? 1 : qblock > req->nq ? req->nq : qblock;
	topk *heaps = mem_calloc((size_t)nthreads * qblock, sizeof *heaps);
	topk_item *items = mem_alloc((size_t)nthreads * qblock * kc * sizeof *items);
	topk_item *tmp = mem_alloc((kc + k) * sizeof *tmp);
	float *qnorm = mem_alloc(qblock * sizeof *qnorm);
	float max_norm = use_gemm ? snap_max_norm(s) : 0;
	int st =
	    heaps && items && tmp && qnorm ? OMEN_OK : status_set(OMEN_ENOMEM, "out of memory");
	for (size_t q0 = 0; q0 < req->nq && st == OMEN_OK; q0 += qblock) {
		scan_job j = {s,        req->queries + q0 * dim,
		              qnorm,    0,
		              k,        kc,
		              use_gemm, req->row_min,
		              max_norm, 0x1p-24f,
		              heaps,    recheck};
		j.qn = req->nq - q0 < qblock ? req->nq - q0 : qblock;
		for (size_t q = 0; q < j.qn; q++)
			qnorm[q] = s->dk->dot(j.q + q * dim, j.q + q * dim, dim);
		for (size_t h = 0; h < (size_t)nthreads * j.qn; h++)
			heaps[h] = (topk){items + h * kc, 0, (uint32_t)kc};
		st = scan_block(&j, nthreads, mode);
		if (st == OMEN_OK)
			merge_out(&j, nthreads, q0, tmp, req);
	}
	mem_free(heaps);
	mem_free(items);
	mem_free(tmp);
	mem_free(qnorm);
	return st;
}

/* Searches again, in one pass with the exact kernels, the queries marked in recheck. */
static int recheck_pass(const snapshot *s, const search_req *req, int nthreads,
                        const uint8_t *recheck)
{
	size_t dim = s->c->dim, k = req->k, n = 0;
	for (size_t q = 0; q < req->nq; q++)
		n += recheck[q];
	if (n == 0)
		return OMEN_OK;
	float *qs = mem_alloc(n * dim * sizeof *qs), *dists = mem_alloc(n * k * sizeof *dists);
	uint64_t *ids = mem_alloc(n * k * sizeof *ids);
	int st = qs && dists && ids ? OMEN_OK : status_set(OMEN_ENOMEM, "out of memory");
	for (size_t q = 0, i = 0; st == OMEN_OK && q < req->nq; q++)
		if (recheck[q])
			memcpy(qs + i++ * dim, req->queries + q * dim, dim * sizeof *qs);
	search_req sub = *req;
	sub.queries = qs;
	sub.nq = n;
	sub.ids_out = ids;
	sub.dists_out = dists;
	if (st == OMEN_OK)
		st = scan_pass(s, &sub, nthreads, PASS_KERNELS, NULL);
	for (size_t q = 0, i = 0; st == OMEN_OK && q < req->nq; q++)
		if (recheck[q]) {
			memcpy(req->ids_out + q * k, ids + i * k, k * sizeof *ids);
			memcpy(req->dists_out + q * k, dists + i++ * k, k * sizeof *dists);
		}
	mem_free(qs);
	mem_free(dists);
	mem_free(ids);
	return st;
}

static int scan_search(const snapshot *s, const search_req *req, int nthreads)
{
	if (req->nq < GEMM_MIN_QUERIES)
		return scan_pass(s, req, nthreads, PASS_KERNELS, NULL);
	uint8_t *recheck = mem_calloc(req->nq, 1);
	if (!recheck)
		return status_set(OMEN_ENOMEM, "out of memory");
	int st = scan_pass(s, req, nthreads, PASS_GEMM, recheck);
	if (st == OMEN_OK)
		st = recheck_pass(s, req, nthreads, recheck);
	mem_free(recheck);
	return st;
}

/* Selective filters: each query visits only the matching rows, threads across queries. */
static int selective_search(const snapshot *s, const search_req *req, int nthreads)
{
	uint64_t card = roaring_bitmap_get_cardinality(s->allow);
	uint32_t *rows = mem_alloc((card ? card : 1) * sizeof *rows);
	if (!rows)
		return status_set(OMEN_ENOMEM, "out of memory");
	roaring_bitmap_to_uint32_array(s->allow, rows);
	size_t dim = s->c->dim, k = req->k;
	int failed = 0;
#pragma omp parallel for num_threads(nthreads) schedule(dynamic, 1) reduction(| : failed)
	for (size_t q = 0; q < req->nq; q++) {
		topk_item *items = mem_alloc(k * sizeof *items);
		if (!items) {
			failed = 1;
			continue;
		}
		topk h = {items, 0, (uint32_t)k};
		const float *qv = req->queries + q * dim;
		for (uint64_t i = 0; i < card; i++)
			if (rows[i] >= req->row_min && !snap_tomb(s, rows[i]))
				topk_push(&h, snap_dist(s, qv, rows[i]), snap_id(s, rows[i]),
				          rows[i]);
		topk_sort(&h);
		write_row(req, q, &h);
		mem_free(items);
	}
	mem_free(rows);
	return failed ? status_set(OMEN_ENOMEM, "out of memory") : OMEN_OK;
}

static int thread_count(int requested, size_t work)
{
	int t = requested > 0 ? requested : omp_get_max_threads();
	if ((size_t)t > work)
		t = work ? (int)work : 1;
	return t;
}

/* Whether the request goes to the GPU: asked for (or large enough under AUTO), k within the
 * device's selection, and a usable device. */
static bool want_gpu(const snapshot *s, const search_req *req)
{
	if (req->device == OMEN_DEVICE_CPU || req->k > GPU_MAX_K)
		return false;
	uint64_t work = (uint64_t)req->nq * s->rec.rows * s->c->dim;
	if (req->device == OMEN_DEVICE_AUTO && work < GPU_AUTO_MIN_WORK)
		return false;
	return gpu_usable();
}

/* The GPU pass: device candidates re-ranked exactly; uncertified queries searched again on
 * the CPU. */
static int search_on_gpu(const snapshot *s, search_req *req)
{
	uint8_t *recheck = mem_calloc(req->nq, 1);
	if (!recheck)
		return status_set(OMEN_ENOMEM, "out of memory");
	int st = scan_pass(s, req, 1, PASS_GPU, recheck);
	if (st == OMEN_OK)
		st = recheck_pass(s, req, thread_count(req->threads, s->nchunks), recheck);
	mem_free(recheck);
	return st;
}

int flat_search(const snapshot *s, search_req *req)
{
	req->used_gpu = false;
	if (s->allow && snap_allowed(s) * 4 < s->rec.rows)
		return selective_search(s, req, thread_count(req->threads, req->nq));
	if (want_gpu(s, req)) {
		int st = search_on_gpu(s, req);
		if (st == OMEN_OK || st == OMEN_ENOMEM) {
			req->used_gpu = st == OMEN_OK;
			return st;
		}
		/* The device failed (out of its memory, say): the CPU serves the request. */
	}
	return scan_search(s, req, thread_count(req->threads, s->nchunks));
}
