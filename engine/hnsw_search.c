/*
 * HNSW search on the graph mapped from LMDB: K-NN-SEARCH (Algorithm 5 of Yu. A. Malkov and
 * D. A. Yashunin, "Efficient and robust approximate nearest neighbor search using Hierarchical
 * Navigable Small World graphs", IEEE TPAMI 42(4), 2020), a greedy descent through the upper
 * levels, then SEARCH-LAYER (Algorithm 2) on level 0, exactly or on int8 codes; the rows
 * written after the build (the tail) are scanned exactly and merged. This is the hot path:
 * docs/HNSW.md says why it computes four distances at a time and what it prefetches.
 */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "engine/hnsw.h"

qctx hnsw_qctx_make(const snapshot *s)
{
	qctx q = {s, s->c->metric == OMEN_METRIC_L2 ? s->dk->l2sq : s->dk->dot, s->c->metric,
	          s->c->dim, s->allow != NULL};
	for (size_t i = 0; i < s->nchunks && !q.excl; i++)
		q.excl = s->tombs[i] != NULL;
	return q;
}

/* One query's distance function: exact on the float vectors, or on int8 codes
 * (hnsw_quant_query prepared qp and konst). */
typedef struct sctx {
	const hnsw_mapped *g;
	const qctx *q;
	const float *qv; /* the query */
	const float *qp; /* its int8 form, or NULL for exact distances */
	float konst;
} sctx;

static inline float sdist(const sctx *x, uint64_t node)
{
	if (!x->qp)
		return qdist(x->q, x->qv, node);
	const dist_kernels *dk = x->q->s->dk;
	const uint8_t *c = code_of(x->g, node);
	if (x->q->metric == OMEN_METRIC_L2)
		return dk->sq8_l2(x->qp, x->g->quant.w, c, x->g->dim);
	return from_dot(x->q->metric, x->konst + dk->sq8_dot(x->qp, c, x->g->dim));
}

PREFETCH_FN void sprefetch(const sctx *x, uint64_t node)
{
	__builtin_prefetch(x->qp ? (const void *)code_of(x->g, node)
	                         : (const void *)snap_vec(x->q->s, node));
}

/* d[i] = the query's distance to nodes ids[i], i < n, as qdist_many computes them: four at a
 * time, the rest bounded by bound. */
static void sdist_many(const sctx *x, const uint32_t *ids, uint32_t n, float *d, float bound)
{
	if (!x->qp) {
		qdist_many(x->q, x->qv, ids, n, d, bound);
		return;
	}
	const dist_kernels *dk = x->q->s->dk;
	omen_metric m = x->q->metric;
	uint32_t i = 0;
	for (; i + 4 <= n; i += 4) {
		const uint8_t *c[4] = {code_of(x->g, ids[i]), code_of(x->g, ids[i + 1]),
		                       code_of(x->g, ids[i + 2]), code_of(x->g, ids[i + 3])};
		if (m == OMEN_METRIC_L2) {
			dk->sq8_l2_x4(x->qp, x->g->quant.w, c, x->g->dim, d + i);
			continue;
		}
		dk->sq8_dot_x4(x->qp, c, x->g->dim, d + i);
		for (int k = 0; k < 4; k++)
			d[i + k] = from_dot(m, x->konst + d[i + k]);
	}
	for (; i < n; i++)
		d[i] = sdist(x, ids[i]);
}

/* Greedy descent through the upper levels (SEARCH-LAYER with ef = 1). */
static uint64_t descend(const hnsw_mapped *g, const sctx *q, uint64_t ep, float *dep)
{
	for (uint32_t lc = g->max_level; lc >= 1; lc--) {
		for (bool changed = true; changed;) {
			changed = false;
			uint32_t n, nv = 0, ids[OMEN_HNSW_M_MAX];
			float d[OMEN_HNSW_M_MAX];
			const unsigned char *l = links_at(g, ep, lc, &n);
			for (uint32_t i = 0; i < n && i < g->m; i++) {
				uint32_t nb = ld32(l + 4 * i);
				if (nb < g->n)
					ids[nv++] = nb;
			}
			sdist_many(q, ids, nv, d, INFINITY);
			for (uint32_t i = 0; i < nv; i++) {
				if (d[i] < *dep) {
					*dep = d[i];
					ep = ids[i];
					changed = true;
				}
			}
		}
	}
	return ep;
}

/* Node's level-0 neighbours not yet visited, into fresh (marked visited, vectors prefetched);
 * returns how many. */
static inline uint32_t l0_fresh(const hnsw_mapped *g, const sctx *q, hnsw_scratch *x, uint64_t node,
                                uint32_t *fresh)
{
	uint32_t n, nf = 0;
	const unsigned char *l = l0_links(g, node, &n);
	for (uint32_t i = 0; i < n && i < g->m0; i++) {
		uint32_t nb = link_id(g, 0, l, i);
		if (nb < g->n && visit(x, nb)) {
			fresh[nf++] = nb;
			sprefetch(q, nb);
		}
	}
	return nf;
}

/* SEARCH-LAYER (Algorithm 2) on level 0 with ef and two heaps, collecting only rows allowed
 * into x->top. Excluded rows (deleted, filtered out) are still expanded, so the graph stays
 * navigable, but never counted among the ef best. */
static bool search_l0(const hnsw_mapped *g, const sctx *q, uint64_t ep, float dep, size_t ef,
                      hnsw_scratch *x)
{
	const snapshot *s = q->q->s;
	visit(x, ep);
	bool ok = heap_push(&x->cand, dep, (uint32_t)ep);
	if (!snap_excluded(s, ep))
		ok = ok && heap_push(&x->top, dep, (uint32_t)ep);
	float bound = x->top.n ? dep : INFINITY;
	uint32_t fresh[4 * OMEN_HNSW_M_MAX];
	float fd[4 * OMEN_HNSW_M_MAX];
	while (ok && x->cand.n) {
		if (x->cand.a[0].d > bound && x->top.n >= ef)
			break;
		hitem c = heap_pop(&x->cand);
		if (x->cand.n) /* likely the next node to expand */
			l0_prefetch(g, x->cand.a[0].id);
		uint32_t nf = l0_fresh(g, q, x, c.id, fresh);
		sdist_many(q, fresh, nf, fd, x->top.n >= ef ? bound : INFINITY);
		for (uint32_t i = 0; i < nf && ok; i++) {
			if (x->top.n >= ef && fd[i] >= bound)
				continue;
			ok = heap_push(&x->cand, fd[i], fresh[i]);
			l0_prefetch_off(g, fresh[i]);
			if (snap_excluded(s, fresh[i]))
				continue;
			ok = ok && heap_push_bounded(&x->top, ef, fd[i], fresh[i]);
			bound = x->top.a[0].d;
		}
	}
	return ok;
}

/* search_l0 when no row is excluded: the same nodes expanded in the same order, with one
 * array instead of two heaps. x->top.a holds the best ef found so far sorted by distance; the
 * next node to expand is the closest not yet expanded, and the search ends when all are
 * (Algorithm 2 stops at the same point: every candidate it would still expand is among them).
 * Leaves them in x->top.a[0..x->top.n), closest first. */
static bool search_l0_sorted(const hnsw_mapped *g, const sctx *q, uint64_t ep, float dep, size_t ef,
                             hnsw_scratch *x)
{
	if (!hnsw_heap_reserve(&x->top, ef + 1))
		return false;
	hitem *r = x->top.a;
	size_t size = 1, k = 0;
	r[0] = (hitem){dep, (uint32_t)ep};
	visit(x, ep);
	uint32_t fresh[4 * OMEN_HNSW_M_MAX];
	float fd[4 * OMEN_HNSW_M_MAX];
	while (k < size) {
		size_t nk = size;
		if (!(r[k].id & HNSW_EXPANDED)) {
			uint32_t node = r[k].id;
			r[k].id |= HNSW_EXPANDED;
			if (k + 1 < size &&
			    !(r[k + 1].id & HNSW_EXPANDED)) /* likely the next to expand */
				l0_prefetch(g, r[k + 1].id);
			uint32_t nf = l0_fresh(g, q, x, node, fresh);
			sdist_many(q, fresh, nf, fd, size == ef ? r[size - 1].d : INFINITY);
			for (uint32_t i = 0; i < nf; i++) {
				if (size == ef && fd[i] >= r[size - 1].d)
					continue;
				sorted_insert(r, &size, ef, fd[i], fresh[i], &nk);
				l0_prefetch_off(g, fresh[i]);
			}
		}
		k = nk <= k ? nk : k + 1;
	}
	sorted_unmark(r, size);
	x->top.n = size;
	return true;
}

static int hitem_cmp(const void *a, const void *b)
{
	float x = ((const hitem *)a)->d, y = ((const hitem *)b)->d;
	return x < y ? -1 : x > y;
}

/* K-NN-SEARCH (Algorithm 5) for one query into t (k best allowed rows, unsorted). With int8
 * codes the best max(4k, 40) candidates by quantized distance are re-ranked with exact
 * distances. */
static int knn_one(const hnsw_mapped *g, const qctx *q, const float *qv, size_t ef, hnsw_scratch *x,
                   topk *t)
{
	if (g->n == 0)
		return OMEN_OK;
	if (!hnsw_scratch_begin(x, g->n) || (g->int8 && !hnsw_scratch_qbuf(x, g->dim)))
		return status_set(OMEN_ENOMEM, "out of memory");
	sctx sc = {g, q, qv, NULL, 0};
	if (g->int8) {
		sc.konst = hnsw_quant_query(&g->quant, g->dim, q->metric, qv, x->qbuf);
		sc.qp = x->qbuf;
	}
	float dep = sdist(&sc, g->entry);
	uint64_t ep = descend(g, &sc, g->entry, &dep);
	bool ok =
	    q->excl ? search_l0(g, &sc, ep, dep, ef, x) : search_l0_sorted(g, &sc, ep, dep, ef, x);
	if (!ok)
		return status_set(OMEN_ENOMEM, "out of memory");
	size_t n = x->top.n;
	if (g->int8) { /* re-rank the best max(4k, 40) by quantized distance exactly */
		size_t keep = 4 * (size_t)t->k < 40 ? 40 : 4 * (size_t)t->k;
		if (keep < n) {
			qsort(x->top.a, n, sizeof *x->top.a, hitem_cmp);
			n = keep;
		}
	}
	for (size_t i = 0; i < n; i++) {
		uint32_t row = x->top.a[i].id;
		float d = g->int8 ? qdist(q, qv, row) : x->top.a[i].d;
		topk_push(t, d, snap_id(q->s, row), row);
	}
	return OMEN_OK;
}

/* Exact search of the rows from `from` on (the tail the graph does not cover yet), k results
 * per query into *ids and *dists (the caller frees both; NULL when there is no tail). */
static int tail_search(const snapshot *s, const search_req *req, uint64_t from, uint64_t **ids,
                       float **dists)
{
	*ids = NULL;
	*dists = NULL;
	if (from >= s->rec.rows)
		return OMEN_OK;
	*ids = mem_alloc(req->nq * req->k * sizeof **ids);
	*dists = mem_alloc(req->nq * req->k * sizeof **dists);
	if (!*ids || !*dists)
		return status_set(OMEN_ENOMEM, "out of memory");
	search_req tail = *req;
	tail.row_min = from;
	tail.ids_out = *ids;
	tail.dists_out = *dists;
	return flat_search(s, &tail);
}

/* Merges query i's tail results (tids, tdists: k each, or NULL) into t, and writes t's k best
 * to the request's outputs, padded with OMEN_NO_ID / INFINITY. */
static void finish_query(const search_req *req, size_t i, const uint64_t *tids, const float *tdists,
                         topk *t)
{
	size_t k = req->k;
	for (size_t j = 0; tids && j < k && tids[i * k + j] != OMEN_NO_ID; j++)
		topk_push(t, tdists[i * k + j], tids[i * k + j], 0);
	topk_sort(t);
	for (size_t j = 0; j < k; j++) {
		req->ids_out[i * k + j] = j < t->n ? t->h[j].id : OMEN_NO_ID;
		req->dists_out[i * k + j] = j < t->n ? t->h[j].dist : INFINITY;
	}
}

/* Searches every query of req on g in parallel, each thread with a pooled scratch. */
static int search_all(const snapshot *s, const hnsw_mapped *g, const search_req *req,
                      const uint64_t *tids, const float *tdists)
{
	int nthreads = req->threads > 0 ? req->threads : omp_get_max_threads();
	if ((size_t)nthreads > req->nq)
		nthreads = (int)req->nq;
	qctx q = hnsw_qctx_make(s);
	size_t k = req->k, dim = s->c->dim;
	int failed = 0;
#pragma omp parallel num_threads(nthreads) reduction(| : failed)
	{
		hnsw_scratch *x = hnsw_scratch_take(s->c);
		topk_item *items = mem_alloc(k * sizeof *items);
		failed = !x || !items;
#pragma omp for schedule(dynamic, 1)
		for (size_t i = 0; i < req->nq; i++) {
			if (failed)
				continue;
			topk t = {items, 0, (uint32_t)k};
			failed |= knn_one(g, &q, req->queries + i * dim, req->ef, x, &t) != 0;
			finish_query(req, i, tids, tdists, &t);
		}
		mem_free(items);
		hnsw_scratch_give(s->c, x);
	}
	return failed ? status_set(OMEN_ENOMEM, "out of memory") : OMEN_OK;
}

int hnsw_search(const snapshot *s, MDB_txn *txn, const search_req *req)
{
	hnsw_mapped g = {0};
	uint64_t *tids = NULL;
	float *tdists = NULL;
	int st = hnsw_map(s->c, txn, &g);
	if (st == OMEN_OK)
		st = tail_search(s, req, g.n, &tids, &tdists);
	if (st == OMEN_OK)
		st = search_all(s, &g, req, tids, tdists);
	mem_free(tids);
	mem_free(tdists);
	hnsw_mapped_free(&g);
	return st;
}
