/*
 * IVF search (ivf.h): for each query, the nprobe lists whose centroids are nearest; in each,
 * the RaBitQ estimates of 32 codes at a time (FastScan), each with its error bound. A code is a
 * candidate while its lower bound (estimate minus bound) is below the k-th smallest upper bound
 * seen so far (k codes are at least that close, with the bound's confidence); after the scan
 * the candidates are read from the collection's float vectors in the order of their lower
 * bounds, until the next lower bound cannot beat the k-th exact distance: the re-ranking rule
 * of Gao and Long (SIGMOD 2024, Section 4), applied to the candidates best first so that few
 * vectors are read. Tombstoned rows and rows a filter refuses are skipped in the scan.
 * The blocks of the lists a batch probes are looked up once, by the calling thread; the
 * queries then run on OpenMP threads reading only the map.
 */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "engine/ivf.h"

/* The blocks of the lists a batch probes: list_first[L] .. list_first[L] + list_count[L] - 1
 * index blocks[]; lists not probed have no blocks here. */
typedef struct directory {
	uint32_t *first, *count; /* per list */
	ivf_block *blocks;
	size_t nblocks, cap;
} directory;

static void dir_free(directory *d)
{
	mem_free(d->first);
	mem_free(d->count);
	mem_free(d->blocks);
}

/* Adds the blocks of list to d, read with cursor cur. */
static int dir_add(eng_coll *c, MDB_cursor *cur, const ivf_index *ix, uint32_t list, directory *d)
{
	unsigned char kb[9];
	ivf_block_key(kb, list, 0);
	MDB_val k = {9, kb}, v;
	d->first[list] = (uint32_t)d->nblocks;
	int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		const unsigned char *kp = k.mv_data;
		if (k.mv_size != 9 || kp[0] != IVF_TAG_LIST || be32_get(kp + 1) != list)
			break;
		if (d->nblocks == d->cap) {
			size_t cap = d->cap ? 2 * d->cap : 1024;
			ivf_block *b = mem_realloc(d->blocks, cap * sizeof *b);
			if (!b)
				return status_set(OMEN_ENOMEM, "out of memory");
			d->blocks = b;
			d->cap = cap;
		}
		if (!ivf_block_view(v.mv_data, v.mv_size, ix->dpad, ix->bits,
		                    &d->blocks[d->nblocks]))
			return status_set(OMEN_ECORRUPT, "collection '%s': IVF list %u is corrupt",
			                  c->name, list);
		d->nblocks++;
	}
	if (rc != 0 && rc != MDB_NOTFOUND)
		return status_from_mdb(rc, "index");
	d->count[list] = (uint32_t)(d->nblocks - d->first[list]);
	return OMEN_OK;
}

/* Looks up the blocks of every list in probes (n entries) once. */
static int dir_load(eng_coll *c, MDB_txn *txn, const ivf_index *ix, const uint32_t *probes,
                    size_t n, directory *d)
{
	memset(d, 0, sizeof *d);
	d->first = mem_alloc((size_t)ix->nlist * sizeof *d->first);
	d->count = mem_calloc(ix->nlist, sizeof *d->count);
	uint8_t *seen = mem_calloc(ix->nlist, 1);
	MDB_cursor *cur = NULL;
	int rc = 0,
	    st = d->first && d->count && seen ? OMEN_OK : status_set(OMEN_ENOMEM, "out of memory");
	if (st == OMEN_OK && (rc = mdb_cursor_open(txn, c->graph_dbi, &cur)) != 0)
		st = status_from_mdb(rc, "index");
	for (size_t i = 0; st == OMEN_OK && i < n; i++)
		if (!seen[probes[i]]) {
			seen[probes[i]] = 1;
			st = dir_add(c, cur, ix, probes[i], d);
		}
	if (cur)
		mdb_cursor_close(cur);
	mem_free(seen);
	return st;
}

/* ---- one query ---- */

/* What one thread needs for its queries. */
typedef struct scratch {
	float *cdist; /* nlist */
	float *rq;    /* dim: the rotated query */
	float *qr;    /* dpad: a rotated residual */
	uint8_t *lut; /* dpad / 4 x 16 */
	float *ftab;  /* dpad / 4 x 16, for multi-bit codes */
	topk_item *items;
	topk_item *ub;   /* k: the smallest upper bounds */
	topk_item *cand; /* candidates: lower bound and row */
	size_t ncand, cap;
	bool failed;
	uint64_t read;
} scratch;

typedef struct job {
	const snapshot *s;
	const ivf_index *ix;
	const search_req *req;
	const directory *dir;
	uint32_t nprobe;
	uint32_t *probes; /* nq x nprobe */
} job;

/* The nprobe lists nearest to query qv, nearest first, into out. h holds nprobe items. */
static void pick_lists(const job *j, const float *qv, scratch *x, topk_item *h, uint32_t *out)
{
	const ivf_index *ix = j->ix;
	const dist_kernels *dk = j->s->dk;
	if (j->s->c->metric == OMEN_METRIC_IP) {
		dk->dot_many(qv, ix->centroids, ix->nlist, ix->dim, x->cdist);
		for (uint32_t l = 0; l < ix->nlist; l++)
			x->cdist[l] = -x->cdist[l];
	} else {
		dk->l2sq_many(qv, ix->centroids, ix->nlist, ix->dim, x->cdist);
	}
	topk t = {h, 0, j->nprobe};
	for (uint32_t l = 0; l < ix->nlist; l++)
		if (topk_may_accept(&t, x->cdist[l]))
			topk_push(&t, x->cdist[l], l, l);
	topk_sort(&t);
	for (uint32_t i = 0; i < t.n; i++)
		out[i] = (uint32_t)t.h[i].id;
}

/* Prepares q for list l of query qv (rotated: x->rq). */
static void prepare_list(const job *j, const float *qv, uint32_t l, scratch *x, uint64_t seed,
                         ivf_query *q)
{
	const ivf_index *ix = j->ix;
	omen_metric m = j->s->c->metric;
	const float *rc = ix->rcent + (size_t)l * ix->dim;
	double n2 = 0;
	for (uint32_t d = 0; d < ix->dim; d++) {
		x->qr[d] = m == OMEN_METRIC_IP ? x->rq[d] : x->rq[d] - rc[d];
		n2 += (double)x->qr[d] * x->qr[d];
	}
	q->lut = x->lut;
	q->ftab = x->ftab;
	ivf_query_prepare(ix, x->qr, seed, q);
	float half = m == OMEN_METRIC_COSINE ? 0.5f : 1.0f;
	if (m == OMEN_METRIC_IP) {
		q->base = -j->s->dk->dot(qv, ix->centroids + (size_t)l * ix->dim, ix->dim);
		q->sa = 0;
		q->sb = 0.5f;
		q->se = 0.5f * (float)sqrt(n2);
	} else {
		q->base = half * (float)n2;
		q->sa = half;
		q->sb = half;
		q->se = half * (float)sqrt(n2);
	}
}

static inline float ld_f32(const unsigned char *p)
{
	float v;
	memcpy(&v, p, 4);
	return v;
}

/* Scans block b for the query: the codes whose lower bound is below the k-th upper bound
 * (ub) join the candidates; with multi-bit codes, those the 1-bit bound keeps are estimated
 * again from all their bits first. */
static void scan_block(const job *j, const ivf_query *q, const ivf_block *b, topk *ub, scratch *x)
{
	const snapshot *s = j->s;
	uint16_t ip[IVF_BLOCK];
	float est1[IVF_BLOCK], err1[IVF_BLOCK];
	ivf_scan_block(q, b->codes, j->ix->dpad, ip);
	ivf_block_estimates(q, b, ip, est1, err1);
	bool check = s->allow != NULL || s->rec.deleted != 0;
	for (uint32_t i = 0; i < b->count; i++) {
		float est = est1[i], err = err1[i];
		if (!topk_may_accept(ub, est - err))
			continue;
		if (b->fb2) {
			est = q->base + q->sa * ld_f32(b->fa + 4 * i) +
			      q->sb * ld_f32(b->fb2 + 4 * i) * ivf_ex_dot(j->ix, q, b, i);
			err = q->se * ld_f32(b->fe2 + 4 * i);
			if (!topk_may_accept(ub, est - err))
				continue;
		}
		uint32_t row = le32_get(b->rows + 4 * i);
		if (check && snap_excluded(s, row))
			continue;
		if (topk_may_accept(ub, est + err))
			topk_push(ub, est + err, row, row);
		if (x->ncand == x->cap) {
			size_t cap = x->cap ? 2 * x->cap : 1024;
			topk_item *c = mem_realloc(x->cand, cap * sizeof *c);
			if (!c) {
				x->failed = true;
				return;
			}
			x->cand = c;
			x->cap = cap;
		}
		x->cand[x->ncand++] = (topk_item){.dist = est - err, .row = row};
	}
}

/* A min-heap of candidates by lower bound: the rerank takes them best first and usually stops
 * long before the last, so a heap (linear to build) beats sorting them all. */
static void sift_down(topk_item *c, size_t n, size_t i)
{
	topk_item t = c[i];
	for (;;) {
		size_t l = 2 * i + 1, m = l;
		if (l >= n)
			break;
		if (l + 1 < n && c[l + 1].dist < c[l].dist)
			m = l + 1;
		if (!(c[m].dist < t.dist))
			break;
		c[i] = c[m];
		i = m;
	}
	c[i] = t;
}

static void heapify(topk_item *c, size_t n)
{
	for (size_t i = n / 2; i-- > 0;)
		sift_down(c, n, i);
}

/* Removes and returns the heap's smallest. */
static topk_item heap_pop(topk_item *c, size_t *n)
{
	topk_item top = c[0];
	c[0] = c[--*n];
	if (*n)
		sift_down(c, *n, 0);
	return top;
}

#define PREFETCH_AHEAD 8 /* candidates whose vectors are fetched while one is compared */

/* Asks for the cache lines of row's vector. */
static inline void prefetch_vec(const snapshot *s, uint32_t row)
{
	const char *v = (const char *)snap_vec(s, row);
	for (size_t off = 0; off < s->c->dim * sizeof(float); off += 64)
		__builtin_prefetch(v + off);
}

/* Reads the candidates, lowest lower bound first, into h until none left can beat its k-th;
 * the vectors of the next candidates are prefetched (they lie anywhere in the map). */
static void rerank(const job *j, const float *qv, const topk *ub, topk *h, scratch *x)
{
	const snapshot *s = j->s;
	size_t keep = 0; /* those whose lower bound is above the final k-th upper bound are out */
	for (size_t i = 0; i < x->ncand; i++)
		if (topk_may_accept(ub, x->cand[i].dist))
			x->cand[keep++] = x->cand[i];
	x->ncand = keep;
	heapify(x->cand, x->ncand);
	/* the next candidates, popped ahead so that their vectors are on their way */
	topk_item ring[PREFETCH_AHEAD];
	size_t have = 0, at = 0;
	while (have < PREFETCH_AHEAD && x->ncand) {
		ring[have] = heap_pop(x->cand, &x->ncand);
		prefetch_vec(s, ring[have++].row);
	}
	for (; have && topk_may_accept(h, ring[at].dist); have--) {
		uint32_t row = ring[at].row;
		if (x->ncand) { /* refill the slot just taken */
			ring[at] = heap_pop(x->cand, &x->ncand);
			prefetch_vec(s, ring[at].row);
			have++;
		}
		at = (at + 1) % PREFETCH_AHEAD;
		x->read++;
		topk_push(h, snap_dist(s, qv, row), snap_id(s, row), row);
	}
}

/* Searches query qi into its output row. */
static void one_query(const job *j, size_t qi, scratch *x)
{
	const search_req *req = j->req;
	const ivf_index *ix = j->ix;
	const float *qv = req->queries + qi * ix->dim;
	const uint32_t *probes = j->probes + qi * j->nprobe;
	j->s->dk->dot_many(qv, ix->rot, ix->dim, ix->dim, x->rq); /* R q */
	memset(x->qr, 0, ix->dpad * sizeof *x->qr);
	topk h = {x->items, 0, (uint32_t)req->k}, ub = {x->ub, 0, (uint32_t)req->k};
	x->ncand = 0;
	for (uint32_t p = 0; p < j->nprobe; p++) {
		uint32_t l = probes[p];
		ivf_query q;
		prepare_list(j, qv, l, x, qi * 0x9E3779B97F4A7C15ull + l, &q);
		for (uint32_t b = 0; b < j->dir->count[l]; b++)
			scan_block(j, &q, &j->dir->blocks[j->dir->first[l] + b], &ub, x);
	}
	rerank(j, qv, &ub, &h, x);
	topk_sort(&h);
	uint64_t *ids = req->ids_out + qi * req->k;
	float *dists = req->dists_out + qi * req->k;
	for (size_t i = 0; i < req->k; i++) {
		ids[i] = i < h.n ? h.h[i].id : OMEN_NO_ID;
		dists[i] = i < h.n ? h.h[i].dist : INFINITY;
	}
}

static bool scratch_init(scratch *x, const ivf_index *ix, size_t k, uint32_t nprobe)
{
	memset(x, 0, sizeof *x);
	x->cdist = mem_alloc((size_t)ix->nlist * sizeof *x->cdist);
	x->rq = mem_alloc(ix->dpad * sizeof *x->rq);
	x->qr = mem_alloc(ix->dpad * sizeof *x->qr);
	x->lut = mem_alloc((size_t)ix->dpad / 4 * 16 + 32);
	x->ftab = ix->bits > 1 ? mem_alloc((size_t)ix->dpad / 4 * 16 * sizeof *x->ftab) : NULL;
	x->items = mem_alloc((k > nprobe ? k : nprobe) * sizeof *x->items);
	x->ub = mem_alloc(k * sizeof *x->ub);
	return x->cdist && x->rq && x->qr && x->lut && x->items && x->ub &&
	       (ix->bits == 1 || x->ftab);
}

static void scratch_free(scratch *x)
{
	mem_free(x->cdist);
	mem_free(x->rq);
	mem_free(x->qr);
	mem_free(x->lut);
	mem_free(x->ftab);
	mem_free(x->items);
	mem_free(x->ub);
	mem_free(x->cand);
}

/* Runs fn for every query of the job on threads threads, each with its scratch; the
 * vectors read are added to *read. */
static int each_query(const job *j, int threads, bool pick, uint64_t *read)
{
	int failed = 0;
	uint64_t total = 0;
#pragma omp parallel num_threads(threads) reduction(| : failed) reduction(+ : total)
	{
		scratch x;
		failed = !scratch_init(&x, j->ix, j->req->k, j->nprobe);
#pragma omp for schedule(dynamic, 1)
		for (size_t qi = 0; qi < j->req->nq; qi++) {
			if (failed || x.failed)
				continue;
			if (pick)
				pick_lists(j, j->req->queries + qi * j->ix->dim, &x, x.items,
				           j->probes + qi * j->nprobe);
			else
				one_query(j, qi, &x);
		}
		total += x.read;
		failed |= x.failed;
		scratch_free(&x);
	}
	*read += total;
	return failed ? status_set(OMEN_ENOMEM, "out of memory") : OMEN_OK;
}

int ivf_search(const snapshot *s, MDB_txn *txn, search_req *req)
{
	ivf_index ix;
	int st = ivf_map(s->c, txn, &ix);
	if (st != OMEN_OK)
		return st;
	if (req->nprobe > ix.nlist) {
		ivf_unmap(&ix);
		return status_set(OMEN_EINVAL, "nprobe %zu exceeds the index's %u lists",
		                  req->nprobe, ix.nlist);
	}
	uint32_t nprobe = req->nprobe ? (uint32_t)req->nprobe : ix.nprobe;
	int threads = req->threads > 0 ? req->threads : omp_get_max_threads();
	threads = (size_t)threads > req->nq ? (int)req->nq : threads;
	job j = {s, &ix, req, NULL, nprobe, mem_alloc(req->nq * nprobe * sizeof(uint32_t))};
	directory dir = {0};
	req->vectors_read = 0;
	st = j.probes ? each_query(&j, threads, true, &req->vectors_read)
	              : status_set(OMEN_ENOMEM, "out of memory");
	if (st == OMEN_OK)
		st = dir_load(s->c, txn, &ix, j.probes, req->nq * nprobe, &dir);
	j.dir = &dir;
	if (st == OMEN_OK)
		st = each_query(&j, threads, false, &req->vectors_read);
	dir_free(&dir);
	mem_free(j.probes);
	ivf_unmap(&ix);
	return st;
}
