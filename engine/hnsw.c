/*
 * HNSW: Hierarchical Navigable Small World graphs, after Yu. A. Malkov and D. A. Yashunin,
 * "Efficient and robust approximate nearest neighbor search using Hierarchical Navigable Small
 * World graphs", IEEE TPAMI 42(4), 2020. INSERT is their Algorithm 1, SEARCH-LAYER Algorithm 2,
 * SELECT-NEIGHBORS-HEURISTIC Algorithm 4 (without extendCandidates and keepPrunedConnections,
 * as in their reference implementation), K-NN-SEARCH Algorithm 5.
 *
 * A node is a row of the collection, so the graph needs no vectors of its own: it reads them
 * from the vector chunks in the memory map. The graph is built in memory (OpenMP threads insert
 * nodes concurrently, each node's links guarded by a striped spinlock), then persisted in the
 * collection's graph sub-database in one write transaction, and searched straight from the map
 * without loading anything. Layout (docs/FORMAT.md):
 *   "H"            header
 *   "L" + u64 BE   level-0 links of 4096 consecutive nodes (fewer in the last record),
 *                  packed: nodes + 1 u32 offsets, then each node's ids, u16 in graphs of
 *                  at most 65,536 nodes, else u32 (graphs written before packing: per node
 *                  u32 count and 2M u32 ids; still read)
 *   "U"            upper levels: sorted node ids, offsets, and per level u32 count + M u32 ids
 *   "S", "Q" + u64 with the int8 option: per-dimension minimum and step (f32 each), and the
 *                  uint8 codes of 4096 consecutive nodes
 * Deleted points stay in the graph as waypoints and never enter results; rows written after
 * the build are searched exactly until the index is extended to them.
 */
#include <math.h>
#include <omp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/distance.h"
#include "engine/engine.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the graph's hot path reads little-endian u32 with memcpy"
#endif

#define HDR_MAGIC      "OMHN"
#define L0_MAGIC       "OMHL" /* level-0 links, fixed slots (graphs written before packing) */
#define L0P_MAGIC      "OMHP" /* level-0 links, packed */
#define L0N_MAGIC      "OMH2" /* level-0 links, packed, u16 ids */
#define UP_MAGIC       "OMHU"
#define SQ_MAGIC       "OMHS"
#define CODES_MAGIC    "OMHQ"
#define FLAG_INT8      1u
#define FLAG_L0_PACKED 2u
#define FLAG_L0_NARROW 4u /* level-0 ids are u16 (with FLAG_L0_PACKED) */
#define FLAGS_KNOWN    (FLAG_INT8 | FLAG_L0_PACKED | FLAG_L0_NARROW)
#define NARROW_MAX     65536u /* most nodes a graph with u16 level-0 ids may have */
#define HDR_SIZE       64
#define GREC_HEADER    16 /* the record header (base.h) and 8 bytes of the record's own */
#define L0_SHIFT       12 /* 4096 nodes per level-0 link chunk */
#define L0_NODES       (1u << L0_SHIFT)
#define MAX_LEVEL      16
#define LOCK_STRIPES   (1u << 16)
#define MAX_NODES      0x7fffffffu /* node ids leave their top bit to EXPANDED */

static inline uint32_t ld32(const unsigned char *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

/* Bytes per level-0 id a graph of n nodes is written with. */
static inline size_t l0_id_bytes(uint64_t n)
{
	return n <= NARROW_MAX ? 2 : 4;
}

/* The magic of a packed level-0 record whose ids take idw bytes. */
static inline const char *l0_packed_magic(size_t idw)
{
	return idw == 2 ? L0N_MAGIC : L0P_MAGIC;
}

/* ---- distance to a query ---- */

typedef struct qctx {
	const snapshot *s;
	float (*kern)(const float *, const float *, size_t);
	omen_metric metric;
	size_t dim;
	bool excl; /* some rows are excluded from results (tombstones, a filter) */
} qctx;

static qctx qctx_make(const snapshot *s)
{
	qctx q = {s, s->c->metric == OMEN_METRIC_L2 ? s->dk->l2sq : s->dk->dot, s->c->metric,
	          s->c->dim, s->allow != NULL};
	for (size_t i = 0; i < s->nchunks && !q.excl; i++)
		q.excl = s->tombs[i] != NULL;
	return q;
}

/* The metric's distance from a dot product: -dot (ip), 1 - dot (cosine). */
static inline float from_dot(omen_metric m, float dot)
{
	return m == OMEN_METRIC_IP ? -dot : 1 - dot;
}

static inline float qdist(const qctx *q, const float *a, uint64_t row)
{
	float d = q->kern(a, snap_vec(q->s, row), q->dim);
	return q->metric == OMEN_METRIC_L2 ? d : from_dot(q->metric, d);
}

/* qdist, or (l2) any value >= bound once the distance is known to reach it. */
static inline float qdist_below(const qctx *q, const float *a, uint64_t row, float bound)
{
	if (q->metric != OMEN_METRIC_L2)
		return qdist(q, a, row);
	return q->s->dk->l2sq_bounded(a, snap_vec(q->s, row), q->dim, bound);
}

/* d[i] = qdist(q, a, rows[i]) for i < n, the first n - n % 4 four at a time so that their rows
 * are read side by side (bit for bit the same values); the rest through the bounded kernel
 * (l2): any value >= bound once a distance is known to reach it. */
static void qdist_many(const qctx *q, const float *a, const uint32_t *rows, uint32_t n, float *d,
                       float bound)
{
	const snapshot *s = q->s;
	uint32_t i = 0;
	for (; i + 4 <= n; i += 4) {
		const float *r[4] = {snap_vec(s, rows[i]), snap_vec(s, rows[i + 1]),
		                     snap_vec(s, rows[i + 2]), snap_vec(s, rows[i + 3])};
		if (q->metric == OMEN_METRIC_L2) {
			s->dk->l2sq_x4(a, r, q->dim, d + i);
			continue;
		}
		s->dk->dot_x4(a, r, q->dim, d + i);
		for (int k = 0; k < 4; k++)
			d[i + k] = from_dot(q->metric, d[i + k]);
	}
	for (; i < n; i++)
		d[i] = qdist_below(q, a, rows[i], bound);
}

/* ---- heaps of (distance, node) ---- */

typedef struct hitem {
	float d;
	uint32_t id;
} hitem;

typedef struct heap {
	hitem *a;
	size_t n, cap;
	int max; /* 1: max-heap (results), 0: min-heap (candidates) */
} heap;

static inline bool above(const heap *h, hitem x, hitem y)
{
	return h->max ? x.d > y.d : x.d < y.d;
}

static bool heap_reserve(heap *h, size_t n)
{
	if (h->cap >= n)
		return true;
	size_t cap = h->cap ? 2 * h->cap : 64;
	if (cap < n)
		cap = n;
	hitem *a = realloc(h->a, cap * sizeof *a);
	if (!a)
		return false;
	h->a = a;
	h->cap = cap;
	return true;
}

static bool heap_push(heap *h, float d, uint32_t id)
{
	if (h->n == h->cap && !heap_reserve(h, h->n + 1))
		return false;
	hitem x = {d, id};
	size_t i = h->n++;
	while (i > 0 && above(h, x, h->a[(i - 1) / 2])) {
		h->a[i] = h->a[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	h->a[i] = x;
	return true;
}

/* Puts x in place of the top and sifts it down. */
static void heap_sift_down(heap *h, hitem x)
{
	size_t i = 0;
	for (;;) {
		size_t l = 2 * i + 1, r = l + 1, m = l;
		if (l >= h->n)
			break;
		if (r < h->n && above(h, h->a[r], h->a[l]))
			m = r;
		if (!above(h, h->a[m], x))
			break;
		h->a[i] = h->a[m];
		i = m;
	}
	h->a[i] = x;
}

static hitem heap_pop(heap *h)
{
	hitem top = h->a[0], x = h->a[--h->n];
	if (h->n)
		heap_sift_down(h, x);
	return top;
}

/* Adds (d, id) to a heap kept at most ef long: when full, (d, id) must rank below its top,
 * which it replaces (one sift instead of a push and a pop). */
static bool heap_push_bounded(heap *h, size_t ef, float d, uint32_t id)
{
	if (h->n < ef)
		return heap_push(h, d, id);
	heap_sift_down(h, (hitem){d, id});
	return true;
}

/* ---- per-thread scratch: visited marks and heaps, pooled on the collection handle ---- */

typedef struct hnsw_scratch {
	uint64_t *visited; /* bit node: node visited in the current search */
	uint32_t *touched; /* indices of the words of visited that are not zero, ntouched */
	size_t nwords, ntouched;
	heap cand, top;
	hitem *sel; /* neighbour selection buffer */
	size_t selcap;
	float *qbuf; /* the query's int8 form */
	size_t qbufcap;
	struct hnsw_scratch *next;
} hnsw_scratch;

/* A buffer p of *cap elements of size bytes, replaced (contents dropped) when under n. */
static void *scratch_buf(void *p, size_t *cap, size_t n, size_t size)
{
	if (*cap >= n)
		return p;
	free(p);
	p = malloc(n * size);
	*cap = p ? n : 0;
	return p;
}

static bool scratch_qbuf(hnsw_scratch *x, size_t dim)
{
	x->qbuf = scratch_buf(x->qbuf, &x->qbufcap, dim, sizeof *x->qbuf);
	return x->qbuf != NULL;
}

static bool scratch_sel(hnsw_scratch *x, size_t n)
{
	x->sel = scratch_buf(x->sel, &x->selcap, n, sizeof *x->sel);
	return x->sel != NULL;
}

static void scratch_free(hnsw_scratch *x)
{
	if (!x)
		return;
	free(x->visited);
	free(x->touched);
	free(x->cand.a);
	free(x->top.a);
	free(x->sel);
	free(x->qbuf);
	free(x);
}

/* Starts a search over n nodes with no node visited: the words a search set are cleared one by
 * one, or all at once when it set many. One bit per node keeps the marks of a million nodes in
 * 125 KB, which stay in the core's L2 cache (2 bytes per node spilled to memory). */
static bool scratch_begin(hnsw_scratch *x, uint64_t n)
{
	size_t words = (size_t)((n + 63) / 64);
	if (x->nwords < words) {
		free(x->visited);
		free(x->touched);
		x->visited = calloc(words, sizeof *x->visited);
		x->touched = malloc((words + 1) * sizeof *x->touched); /* visit() writes one past */
		x->nwords = x->visited && x->touched ? words : 0;
		x->ntouched = 0;
		if (!x->nwords)
			return false;
	}
	if (x->ntouched > x->nwords / 8)
		memset(x->visited, 0, x->nwords * sizeof *x->visited);
	else
		for (size_t i = 0; i < x->ntouched; i++)
			x->visited[x->touched[i]] = 0;
	x->ntouched = 0;
	x->cand.n = x->top.n = 0;
	x->cand.max = 0;
	x->top.max = 1;
	return true;
}

/* Marks node visited; true when it was not yet. */
static inline bool visit(hnsw_scratch *x, uint64_t node)
{
	uint64_t *w = &x->visited[node >> 6], bit = (uint64_t)1 << (node & 63);
	if (*w & bit)
		return false;
	x->touched[x->ntouched] = (uint32_t)(node >> 6);
	x->ntouched += *w == 0;
	*w |= bit;
	return true;
}

static hnsw_scratch *scratch_take(eng_coll *c)
{
	pthread_mutex_lock(&c->scratch_mu);
	hnsw_scratch *x = c->scratch;
	if (x)
		c->scratch = x->next;
	pthread_mutex_unlock(&c->scratch_mu);
	return x ? x : calloc(1, sizeof *x);
}

static void scratch_give(eng_coll *c, hnsw_scratch *x)
{
	if (!x)
		return;
	pthread_mutex_lock(&c->scratch_mu);
	x->next = c->scratch;
	c->scratch = x;
	pthread_mutex_unlock(&c->scratch_mu);
}

void hnsw_scratch_release_all(eng_coll *c)
{
	while (c->scratch) {
		hnsw_scratch *x = c->scratch;
		c->scratch = x->next;
		scratch_free(x);
	}
}

/* ---- the graph, as read from the map (search) or held in memory (build) ---- */

/* A mapped level-0 record of up to 4096 nodes. Packed: off[j], off[j + 1] (u32, counted in
 * ids) bound node j's neighbour ids in ids[], words = off[nodes]. Fixed slots: ids = the
 * record's body, off unused. */
typedef struct l0rec {
	const unsigned char *off, *ids;
	uint32_t words;
} l0rec;

typedef struct graph {
	uint32_t m, m0, efc, max_level;
	uint64_t entry, n; /* n: nodes = rows 0..n-1 */
	/* In memory (build): */
	uint32_t *l0;   /* n x (1 + m0) */
	uint8_t *level; /* n */
	uint32_t **up;  /* n: level x (1 + m) u32, or NULL */
	/* From the map (search): */
	l0rec *l0r;   /* level-0 link records */
	bool packed;  /* l0r in the packed layout (else fixed slots: count + m0 ids per node) */
	uint32_t idw; /* bytes per level-0 id in l0r: 2 (packed, at most NARROW_MAX nodes) or 4 */
	const unsigned char *up_ids, *up_off, *up_links;
	uint32_t n_up;
	size_t up_words; /* u32 words of upper-level links */
	uint64_t bytes;
	/* int8 scalar quantization: x[d] ~ qmin[d] + code[d] * qstep[d] */
	bool int8;
	uint32_t dim;
	float *qmin, *qstep, *qw; /* qw[d] = qstep[d]^2 */
	const unsigned char **qc; /* mapped code records (search) */
	uint8_t *codes;           /* n x dim (build) */
} graph;

static inline const uint8_t *code_of(const graph *g, uint64_t node)
{
	return g->qc[node >> L0_SHIFT] + GREC_HEADER + (node & (L0_NODES - 1)) * (size_t)g->dim;
}

/* Level-0 neighbour ids of node; *n: their count, which a damaged record can make exceed m0
 * (read at most m0 of them) but never makes run past the record. */
static inline const unsigned char *l0_links(const graph *g, uint64_t node, uint32_t *n)
{
	const l0rec *r = &g->l0r[node >> L0_SHIFT];
	size_t j = node & (L0_NODES - 1);
	if (!g->packed) {
		const unsigned char *l = r->ids + j * (4 + 4 * (size_t)g->m0);
		*n = ld32(l);
		return l + 4;
	}
	uint32_t lo = ld32(r->off + 4 * j), hi = ld32(r->off + 4 * j + 4);
	*n = lo <= hi && hi <= r->words ? hi - lo : 0;
	return r->ids + g->idw * (size_t)(*n ? lo : 0);
}

/* Id i of a link list of level lc (from l0_links or links_at). */
static inline uint32_t link_id(const graph *g, uint32_t lc, const unsigned char *l, uint32_t i)
{
	return lc == 0 && g->idw == 2 ? le16_get(l + 2 * (size_t)i) : ld32(l + 4 * (size_t)i);
}

/* Helpers that only prefetch are always inlined: GCC 12 at -O1 and above deleted every call to
 * them from this file (its mod-ref analysis finds that they change nothing; -fno-ipa-modref
 * brought them back), so no search issued a single prefetch. */
#define PREFETCH_FN static inline __attribute__((always_inline))

/* Prefetches node's level-0 offset (packed layout), read when node is expanded. */
PREFETCH_FN void l0_prefetch_off(const graph *g, uint64_t node)
{
	if (g->packed)
		__builtin_prefetch(g->l0r[node >> L0_SHIFT].off + 4 * (node & (L0_NODES - 1)));
}

/* Prefetches the start of node's level-0 links (packed: reads its offset). */
PREFETCH_FN void l0_prefetch(const graph *g, uint64_t node)
{
	const l0rec *r = &g->l0r[node >> L0_SHIFT];
	size_t j = node & (L0_NODES - 1);
	if (!g->packed) {
		__builtin_prefetch(r->ids + j * (4 + 4 * (size_t)g->m0));
		return;
	}
	uint32_t lo = ld32(r->off + 4 * j);
	if (lo < r->words)
		__builtin_prefetch(r->ids + g->idw * (size_t)lo);
}

/* Links of node at upper level lc >= 1: count, then ids. */
static inline const unsigned char *map_links(const graph *g, uint64_t node, uint32_t lc)
{
	uint32_t lo = 0, hi = g->n_up; /* binary search of the sorted upper node ids */
	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2;
		if (ld32(g->up_ids + 4 * (size_t)mid) < node)
			lo = mid + 1;
		else
			hi = mid;
	}
	static const unsigned char none[4]; /* an empty list, for ids the record lacks */
	if (lo == g->n_up || ld32(g->up_ids + 4 * (size_t)lo) != node)
		return none;
	size_t off = ld32(g->up_off + 4 * (size_t)lo), end = ld32(g->up_off + 4 * (size_t)(lo + 1));
	size_t at = off + (size_t)(lc - 1) * (1 + g->m);
	return at + 1 + g->m <= end && end <= g->up_words ? g->up_links + 4 * at : none;
}

/* Neighbour ids of node at level lc, *n of them: a damaged record may claim more than the
 * level's cap (m0 or m), so read at most the cap; that much always lies within the record. */
static inline const unsigned char *links_at(const graph *g, uint64_t node, uint32_t lc, uint32_t *n)
{
	if (lc == 0)
		return l0_links(g, node, n);
	const unsigned char *l = map_links(g, node, lc);
	*n = ld32(l);
	return l + 4;
}

static inline uint32_t *mem_links(const graph *g, uint64_t node, uint32_t lc)
{
	return lc == 0 ? g->l0 + node * (1 + g->m0) : g->up[node] + (size_t)(lc - 1) * (1 + g->m);
}

static void graph_free(graph *g)
{
	if (g->up)
		for (uint64_t i = 0; i < g->n; i++)
			free(g->up[i]);
	free(g->up);
	free(g->l0);
	free(g->level);
	free(g->l0r);
	free((void *)g->qc);
	free(g->qmin);
	free(g->qstep);
	free(g->qw);
	free(g->codes);
	memset(g, 0, sizeof *g);
}

static void key1(unsigned char *kb, char tag, uint64_t n)
{
	kb[0] = (unsigned char)tag;
	be64_put(kb + 1, n);
}

static bool rec_ok(const MDB_val *v, const char *magic, size_t min)
{
	return rec_check(v->mv_data, v->mv_size, magic, min);
}

/* Reads the header into g (sizes only). OMEN_ENOTFOUND without a message when absent. */
static int header_read(eng_coll *c, MDB_txn *txn, graph *g)
{
	unsigned char kb[9];
	key1(kb, 'H', 0);
	MDB_val k = {1, kb}, v;
	int rc = mdb_get(txn, c->graph_dbi, &k, &v);
	if (rc == MDB_NOTFOUND)
		return OMEN_ENOTFOUND;
	if (rc != 0)
		return status_from_mdb(rc, "index header");
	const unsigned char *p = v.mv_data;
	if (!rec_ok(&v, HDR_MAGIC, HDR_SIZE))
		return status_set(OMEN_ECORRUPT, "collection '%s': index header is corrupt",
		                  c->name);
	g->m = le32_get(p + 8);
	g->m0 = le32_get(p + 12);
	g->efc = le32_get(p + 16);
	g->max_level = le32_get(p + 20);
	g->entry = le64_get(p + 24);
	g->n = le64_get(p + 32);
	uint32_t flags = le32_get(p + 44);
	if (flags & ~FLAGS_KNOWN)
		return status_set(OMEN_EVERSION,
		                  "collection '%s': index written by a newer OmenDB (flags %#x)",
		                  c->name, flags);
	g->int8 = (flags & FLAG_INT8) != 0;
	g->packed = (flags & FLAG_L0_PACKED) != 0;
	g->idw = flags & FLAG_L0_NARROW ? 2 : 4;
	g->bytes = le64_get(p + 48);
	g->dim = c->dim;
	if (g->m < OMEN_HNSW_M_MIN || g->m > OMEN_HNSW_M_MAX || g->m0 != 2 * g->m ||
	    g->max_level >= MAX_LEVEL || (g->n && g->entry >= g->n) || g->n > MAX_NODES ||
	    (g->idw == 2 && (!g->packed || g->n > NARROW_MAX)))
		return status_set(OMEN_ECORRUPT, "collection '%s': index header is invalid",
		                  c->name);
	return OMEN_OK;
}

int hnsw_info_get(eng_coll *c, MDB_txn *txn, hnsw_info *out)
{
	graph g = {0};
	int st = header_read(c, txn, &g);
	if (st != OMEN_OK)
		return st;
	out->m = g.m;
	out->efc = g.efc;
	out->int8 = g.int8;
	out->rows = g.n;
	out->bytes = g.bytes;
	return OMEN_OK;
}

/* Allocates the quantizer's arrays (min, step, step squared) for dim dimensions. */
static int quant_alloc(graph *g)
{
	g->qmin = malloc(g->dim * sizeof *g->qmin);
	g->qstep = malloc(g->dim * sizeof *g->qstep);
	g->qw = malloc(g->dim * sizeof *g->qw);
	return g->qmin && g->qstep && g->qw ? OMEN_OK : status_set(OMEN_ENOMEM, "out of memory");
}

/* Maps the int8 code records and copies the quantizer (min and step per dimension). */
static int map_codes(eng_coll *c, MDB_txn *txn, graph *g)
{
	unsigned char kb[9];
	MDB_val k = {1, kb}, v;
	key1(kb, 'S', 0);
	int rc = mdb_get(txn, c->graph_dbi, &k, &v);
	size_t want = GREC_HEADER + 8 * (size_t)g->dim;
	if (rc != 0 || !rec_ok(&v, SQ_MAGIC, want) || v.mv_size != want)
		return status_set(OMEN_ECORRUPT, "collection '%s': index quantizer corrupt",
		                  c->name);
	int st = quant_alloc(g);
	if (st != OMEN_OK)
		return st;
	const unsigned char *p = (const unsigned char *)v.mv_data + GREC_HEADER;
	memcpy(g->qmin, p, 4 * (size_t)g->dim);
	memcpy(g->qstep, p + 4 * (size_t)g->dim, 4 * (size_t)g->dim);
	for (uint32_t d = 0; d < g->dim; d++)
		g->qw[d] = g->qstep[d] * g->qstep[d];
	size_t nq = (size_t)((g->n + L0_NODES - 1) >> L0_SHIFT);
	g->qc = calloc(nq ? nq : 1, sizeof *g->qc);
	if (!g->qc)
		return status_set(OMEN_ENOMEM, "out of memory");
	k.mv_size = 9;
	for (size_t i = 0; i < nq; i++) {
		uint64_t nodes = g->n - ((uint64_t)i << L0_SHIFT);
		size_t bytes = GREC_HEADER + (size_t)(nodes < L0_NODES ? nodes : L0_NODES) * g->dim;
		key1(kb, 'Q', i);
		rc = mdb_get(txn, c->graph_dbi, &k, &v);
		if (rc != 0 || !rec_ok(&v, CODES_MAGIC, bytes) || v.mv_size != bytes)
			return status_set(OMEN_ECORRUPT, "collection '%s': index codes %zu corrupt",
			                  c->name, i);
		g->qc[i] = v.mv_data;
	}
	return OMEN_OK;
}

/* Maps the persisted graph of txn into g (zero copy). */
static int graph_map(eng_coll *c, MDB_txn *txn, graph *g)
{
	int st = header_read(c, txn, g);
	if (st != OMEN_OK)
		return st;
	size_t nl0 = (size_t)((g->n + L0_NODES - 1) >> L0_SHIFT);
	g->l0r = calloc(nl0 ? nl0 : 1, sizeof *g->l0r);
	if (!g->l0r)
		return status_set(OMEN_ENOMEM, "out of memory");
	unsigned char kb[9];
	MDB_val k = {9, kb}, v;
	for (size_t i = 0; i < nl0; i++) {
		uint64_t left = g->n - ((uint64_t)i << L0_SHIFT);
		size_t nodes = left < L0_NODES ? (size_t)left : L0_NODES;
		key1(kb, 'L', i);
		int rc = mdb_get(txn, c->graph_dbi, &k, &v);
		const unsigned char *p = v.mv_data;
		l0rec *r = &g->l0r[i];
		bool ok = false;
		if (rc == 0 && g->packed) { /* offsets start at 0 and end at the ids' length */
			size_t head = GREC_HEADER + 4 * (nodes + 1), w = g->idw;
			ok = rec_ok(&v, l0_packed_magic(w), head) && (v.mv_size - head) % w == 0 &&
			     ld32(p + GREC_HEADER) == 0 &&
			     ld32(p + GREC_HEADER + 4 * nodes) == (v.mv_size - head) / w;
			r->off = p + GREC_HEADER;
			r->ids = p + head;
			r->words = (uint32_t)((v.mv_size - head) / w);
		} else if (rc == 0) {
			size_t bytes = GREC_HEADER + nodes * (4 + 4 * (size_t)g->m0);
			ok = rec_ok(&v, L0_MAGIC, bytes) && v.mv_size == bytes;
			r->ids = p + GREC_HEADER;
		}
		if (!ok)
			return status_set(OMEN_ECORRUPT, "collection '%s': index links %zu corrupt",
			                  c->name, i);
	}
	k.mv_size = 1;
	key1(kb, 'U', 0);
	int rc = mdb_get(txn, c->graph_dbi, &k, &v);
	if (rc != 0 || !rec_ok(&v, UP_MAGIC, GREC_HEADER))
		return status_set(OMEN_ECORRUPT, "collection '%s': index levels corrupt", c->name);
	const unsigned char *p = v.mv_data;
	g->n_up = le32_get(p + 8);
	size_t need = GREC_HEADER + 8 * (size_t)g->n_up + 4;
	if (v.mv_size < need)
		return status_set(OMEN_ECORRUPT, "collection '%s': index levels truncated",
		                  c->name);
	g->up_ids = p + GREC_HEADER;
	g->up_off = g->up_ids + 4 * (size_t)g->n_up;
	g->up_links = g->up_off + 4 * ((size_t)g->n_up + 1);
	size_t words = ld32(g->up_off + 4 * (size_t)g->n_up);
	g->up_words = words;
	if (v.mv_size != need + 4 * words)
		return status_set(OMEN_ECORRUPT, "collection '%s': index levels truncated",
		                  c->name);
	return g->int8 ? map_codes(c, txn, g) : OMEN_OK;
}

/* ---- search (Algorithms 2 and 5) on the mapped graph ---- */

/* One query's distance function: exact on the float vectors, or on int8 codes, where for l2
 * |q - x|^2 ~ sum w[d] (qp[d] - code[d])^2 with qp[d] = (q[d] - min[d]) / step[d], and
 * <q, x> ~ konst + sum qp[d] code[d] with qp[d] = q[d] step[d], konst = <q, min>. */
typedef struct sctx {
	const graph *g;
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
		return dk->sq8_l2(x->qp, x->g->qw, c, x->g->dim);
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
			dk->sq8_l2_x4(x->qp, x->g->qw, c, x->g->dim, d + i);
			continue;
		}
		dk->sq8_dot_x4(x->qp, c, x->g->dim, d + i);
		for (int k = 0; k < 4; k++)
			d[i + k] = from_dot(m, x->konst + d[i + k]);
	}
	for (; i < n; i++)
		d[i] = sdist(x, ids[i]);
}

/* Prepares the int8 form of query qv into qp (dim floats). */
static float quantize_query(const graph *g, omen_metric m, const float *qv, float *qp)
{
	float konst = 0;
	for (uint32_t d = 0; d < g->dim; d++) {
		if (m == OMEN_METRIC_L2) {
			qp[d] = (qv[d] - g->qmin[d]) / g->qstep[d];
		} else {
			qp[d] = qv[d] * g->qstep[d];
			konst += qv[d] * g->qmin[d];
		}
	}
	return konst;
}

/* Greedy descent through the upper levels (SEARCH-LAYER with ef = 1). */
static uint64_t descend(const graph *g, const sctx *q, uint64_t ep, float *dep)
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
static inline uint32_t l0_fresh(const graph *g, const sctx *q, hnsw_scratch *x, uint64_t node,
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

/* SEARCH-LAYER on level 0 with ef, collecting only rows allowed into x->top. Excluded rows
 * (deleted, filtered out) are still expanded, so the graph stays navigable. */
static bool search_l0(const graph *g, const sctx *q, uint64_t ep, float dep, size_t ef,
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

#define EXPANDED 0x80000000u /* in a sorted result array: the node's links were followed */

/* Inserts (d, id) into r[0..*size), sorted by distance, after its equals; when *size is ef the
 * last entry falls off, else *size grows. Lowers *next (the first entry to expand) to its
 * position when it lands before. */
static inline void sorted_insert(hitem *r, size_t *size, size_t ef, float d, uint32_t id,
                                 size_t *next)
{
	bool full = *size == ef;
	size_t lo = 0, hi = *size;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (r[mid].d > d)
			hi = mid;
		else
			lo = mid + 1;
	}
	memmove(r + lo + 1, r + lo, (*size - lo - full) * sizeof *r);
	r[lo] = (hitem){d, id};
	*size += !full;
	if (lo < *next)
		*next = lo;
}

/* Clears the EXPANDED marks of r[0..n). */
static inline void sorted_unmark(hitem *r, size_t n)
{
	for (size_t i = 0; i < n; i++)
		r[i].id &= ~EXPANDED;
}

/* search_l0 when no row is excluded: the same nodes expanded in the same order,
 * with one array instead of two heaps. x->top.a holds the best ef found so far sorted by
 * distance; the next node to expand is the closest not yet expanded, and the search ends when
 * all are (Algorithm 2 stops at the same point: every candidate it would still expand is among
 * them). Leaves them in x->top.a[0..x->top.n), closest first. */
static bool search_l0_sorted(const graph *g, const sctx *q, uint64_t ep, float dep, size_t ef,
                             hnsw_scratch *x)
{
	if (!heap_reserve(&x->top, ef + 1))
		return false;
	hitem *r = x->top.a;
	size_t size = 1, k = 0;
	r[0] = (hitem){dep, (uint32_t)ep};
	visit(x, ep);
	uint32_t fresh[4 * OMEN_HNSW_M_MAX];
	float fd[4 * OMEN_HNSW_M_MAX];
	while (k < size) {
		size_t nk = size;
		if (!(r[k].id & EXPANDED)) {
			uint32_t node = r[k].id;
			r[k].id |= EXPANDED;
			if (k + 1 < size &&
			    !(r[k + 1].id & EXPANDED)) /* likely the next to expand */
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

/* K-NN-SEARCH for one query into t (k best allowed rows, unsorted). With int8 codes the best
 * max(4k, 40) candidates by quantized distance are re-ranked with exact distances. */
static int knn_one(const graph *g, const qctx *q, const float *qv, size_t ef, hnsw_scratch *x,
                   topk *t)
{
	if (g->n == 0)
		return OMEN_OK;
	if (!scratch_begin(x, g->n) || (g->int8 && !scratch_qbuf(x, g->dim)))
		return status_set(OMEN_ENOMEM, "out of memory");
	sctx sc = {g, q, qv, NULL, 0};
	if (g->int8) {
		sc.konst = quantize_query(g, q->metric, qv, x->qbuf);
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

/* Merges the tail's exact results (ids, dists: k each) into t. */
static void merge_tail(topk *t, const uint64_t *ids, const float *dists, size_t k)
{
	for (size_t i = 0; i < k && ids[i] != OMEN_NO_ID; i++)
		topk_push(t, dists[i], ids[i], 0);
}

static int tail_search(const snapshot *s, const search_req *req, uint64_t from, uint64_t **ids,
                       float **dists)
{
	*ids = NULL;
	*dists = NULL;
	if (from >= s->rec.rows)
		return OMEN_OK;
	*ids = malloc(req->nq * req->k * sizeof **ids);
	*dists = malloc(req->nq * req->k * sizeof **dists);
	if (!*ids || !*dists)
		return status_set(OMEN_ENOMEM, "out of memory");
	search_req tail = *req;
	tail.row_min = from;
	tail.ids_out = *ids;
	tail.dists_out = *dists;
	return flat_search(s, &tail);
}

int hnsw_search(const snapshot *s, MDB_txn *txn, const search_req *req)
{
	graph g = {0};
	uint64_t *tids = NULL;
	float *tdists = NULL;
	int st = graph_map(s->c, txn, &g);
	if (st == OMEN_OK)
		st = tail_search(s, req, g.n, &tids, &tdists);
	int nthreads = req->threads > 0 ? req->threads : omp_get_max_threads();
	if ((size_t)nthreads > req->nq)
		nthreads = (int)req->nq;
	qctx q = qctx_make(s);
	size_t k = req->k, dim = s->c->dim;
	int failed = 0;
	if (st != OMEN_OK)
		goto out;
#pragma omp parallel num_threads(nthreads) reduction(| : failed)
	{
		hnsw_scratch *x = scratch_take(s->c);
		topk_item *items = malloc(k * sizeof *items);
		failed = !x || !items;
#pragma omp for schedule(dynamic, 1)
		for (size_t i = 0; i < req->nq; i++) {
			if (failed)
				continue;
			topk t = {items, 0, (uint32_t)k};
			failed |= knn_one(&g, &q, req->queries + i * dim, req->ef, x, &t) != 0;
			if (tids)
				merge_tail(&t, tids + i * k, tdists + i * k, k);
			topk_sort(&t);
			for (size_t j = 0; j < k; j++) {
				req->ids_out[i * k + j] = j < t.n ? t.h[j].id : OMEN_NO_ID;
				req->dists_out[i * k + j] = j < t.n ? t.h[j].dist : INFINITY;
			}
		}
		free(items);
		scratch_give(s->c, x);
	}
	if (failed)
		st = status_set(OMEN_ENOMEM, "out of memory");
out:
	free(tids);
	free(tdists);
	graph_free(&g);
	return st;
}

/* ---- build (Algorithms 1 and 4) in memory ---- */

typedef struct builder {
	graph g;
	const snapshot *s;
	qctx q;
	atomic_flag *locks;       /* LOCK_STRIPES spinlocks, node & (LOCK_STRIPES - 1) */
	pthread_mutex_t entry_mu; /* guards g.entry and g.max_level */
	bool empty;               /* no node inserted yet */
	double ml;                /* level multiplier 1 / ln(M) */
} builder;

static inline void node_lock(builder *b, uint64_t n)
{
	while (atomic_flag_test_and_set_explicit(&b->locks[n & (LOCK_STRIPES - 1)],
	                                         memory_order_acquire))
		__builtin_ia32_pause();
}

static inline void node_unlock(builder *b, uint64_t n)
{
	atomic_flag_clear_explicit(&b->locks[n & (LOCK_STRIPES - 1)], memory_order_release);
}

/* A node's level, drawn as floor(-ln(U) mL) from a hash of its row, so builds repeat. */
static uint32_t draw_level(uint64_t row, double ml)
{
	uint64_t z = row * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull;
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	z ^= z >> 31;
	double u = ((double)(z >> 11) + 0.5) * 0x1p-53;
	double l = -log(u) * ml;
	return l < MAX_LEVEL - 1 ? (uint32_t)l : MAX_LEVEL - 1;
}

/* Copies node's links at level lc into buf (1 + cap words) under its lock. */
static uint32_t links_copy(builder *b, uint64_t node, uint32_t lc, uint32_t *buf)
{
	uint32_t cap = lc ? b->g.m : b->g.m0;
	node_lock(b, node);
	const uint32_t *l = mem_links(&b->g, node, lc);
	uint32_t n = l[0] < cap ? l[0] : cap;
	memcpy(buf, l + 1, n * sizeof *buf);
	node_unlock(b, node);
	return n;
}

/* SEARCH-LAYER (Algorithm 2) at level lc from ep, as search_l0_sorted does it: leaves the ef
 * nearest found in x->sel[0..*n), closest first. */
static bool layer_search(builder *b, hnsw_scratch *x, const float *qv, uint32_t ep, float dep,
                         uint32_t ef, uint32_t lc, size_t *n_out)
{
	uint32_t buf[4 * OMEN_HNSW_M_MAX];
	float d[4 * OMEN_HNSW_M_MAX];
	if (!scratch_begin(x, b->g.n) || !scratch_sel(x, ef + 1))
		return false;
	hitem *r = x->sel;
	size_t size = 1, k = 0;
	r[0] = (hitem){dep, ep};
	visit(x, ep);
	while (k < size) {
		size_t nk = size;
		if (!(r[k].id & EXPANDED)) {
			uint32_t n = links_copy(b, r[k].id, lc, buf), nf = 0;
			r[k].id |= EXPANDED;
			for (uint32_t i = 0; i < n;
			     i++) { /* the unvisited ones, their vectors fetched */
				uint32_t nb = buf[i];
				if (!visit(x, nb))
					continue;
				buf[nf++] = nb;
				__builtin_prefetch(snap_vec(b->s, nb));
			}
			qdist_many(&b->q, qv, buf, nf, d, size == ef ? r[size - 1].d : INFINITY);
			for (uint32_t i = 0; i < nf; i++) {
				if (size == ef && d[i] >= r[size - 1].d)
					continue;
				sorted_insert(r, &size, ef, d[i], buf[i], &nk);
			}
		}
		k = nk <= k ? nk : k + 1;
	}
	sorted_unmark(r, size);
	*n_out = size;
	return true;
}

/* SELECT-NEIGHBORS-HEURISTIC (Algorithm 4): keeps a candidate only when it is closer to the
 * base than to every neighbour already kept. c: n candidates sorted closest first (distances to
 * the base). Writes up to m ids to out; returns how many. */
static uint32_t select_heuristic(builder *b, const hitem *c, size_t n, uint32_t m, uint32_t *out)
{
	uint32_t kept = 0;
	for (size_t i = 0; i < n && kept < m; i++) {
		const float *cv = snap_vec(b->s, c[i].id);
		bool good = true;
		for (uint32_t j = 0; j < kept && good; j++)
			good = qdist_below(&b->q, cv, out[j], c[i].d) >= c[i].d;
		if (good)
			out[kept++] = c[i].id;
	}
	return kept;
}

/* Adds node to e's links at level lc, shrinking them with the heuristic when full. */
static void link_back(builder *b, uint32_t e, uint32_t node, uint32_t lc)
{
	uint32_t cap = lc ? b->g.m : b->g.m0;
	hitem c[4 * OMEN_HNSW_M_MAX + 1];
	const float *ev = snap_vec(b->s, e);
	node_lock(b, e);
	uint32_t *l = mem_links(&b->g, e, lc);
	if (l[0] < cap) {
		l[1 + l[0]++] = node;
	} else {
		uint32_t ids[4 * OMEN_HNSW_M_MAX + 1];
		float d[4 * OMEN_HNSW_M_MAX + 1];
		memcpy(ids, l + 1, cap * sizeof *ids);
		ids[cap] = node;
		qdist_many(&b->q, ev, ids, cap + 1, d, INFINITY);
		for (uint32_t i = 0; i <= cap; i++)
			c[i] = (hitem){d[i], ids[i]};
		for (uint32_t i = 1; i <= cap; i++) /* insertion sort: cap is small */
			for (uint32_t j = i; j > 0 && c[j].d < c[j - 1].d; j--) {
				hitem t = c[j];
				c[j] = c[j - 1];
				c[j - 1] = t;
			}
		l[0] = select_heuristic(b, c, cap + 1, cap, l + 1);
	}
	node_unlock(b, e);
}

/* Greedy descent (ef = 1) from ep through levels top..stop+1, reading links under locks. */
static uint32_t greedy(builder *b, const float *qv, uint32_t ep, float *dep, uint32_t top,
                       uint32_t stop)
{
	uint32_t buf[OMEN_HNSW_M_MAX];
	float d[OMEN_HNSW_M_MAX];
	for (uint32_t lc = top; lc > stop; lc--)
		for (bool changed = true; changed;) {
			changed = false;
			uint32_t n = links_copy(b, ep, lc, buf);
			qdist_many(&b->q, qv, buf, n, d, INFINITY);
			for (uint32_t i = 0; i < n; i++) {
				if (d[i] < *dep) {
					*dep = d[i];
					ep = buf[i];
					changed = true;
				}
			}
		}
	return ep;
}

/* INSERT (Algorithm 1) of one node. */
static bool insert(builder *b, hnsw_scratch *x, uint32_t node)
{
	graph *g = &b->g;
	uint32_t level = g->level[node], sel[OMEN_HNSW_M_MAX];
	const float *qv = snap_vec(b->s, node);
	pthread_mutex_lock(&b->entry_mu);
	if (b->empty) {
		g->entry = node;
		g->max_level = level;
		b->empty = false;
		pthread_mutex_unlock(&b->entry_mu);
		return true;
	}
	uint32_t ep = (uint32_t)g->entry, top = g->max_level;
	bool raise = level > top; /* keep the lock: this node becomes the entry point */
	if (!raise)
		pthread_mutex_unlock(&b->entry_mu);
	float dep = qdist(&b->q, qv, ep);
	ep = greedy(b, qv, ep, &dep, top, level);
	bool ok = true;
	for (uint32_t lc = level < top ? level : top; ok; lc--) {
		size_t n;
		ok = layer_search(b, x, qv, ep, dep, g->efc, lc, &n);
		if (!ok)
			break;
		uint32_t kept = select_heuristic(b, x->sel, n, g->m, sel);
		node_lock(b, node);
		uint32_t *l = mem_links(g, node, lc);
		memcpy(l + 1, sel, kept * sizeof *sel);
		l[0] = kept;
		node_unlock(b, node);
		for (uint32_t i = 0; i < kept; i++)
			link_back(b, sel[i], node, lc);
		ep = x->sel[0].id;
		dep = x->sel[0].d;
		if (lc == 0)
			break;
	}
	if (raise) {
		g->entry = node;
		g->max_level = level;
		pthread_mutex_unlock(&b->entry_mu);
	}
	return ok;
}

/* Sizes the in-memory graph for n nodes, keeping what rows below old_n already hold. */
static int graph_alloc(graph *g, uint64_t n, double ml)
{
	uint64_t old = g->l0 ? g->n : 0;
	uint32_t *l0 = realloc(g->l0, n * (1 + g->m0) * sizeof *l0);
	uint8_t *level = l0 ? realloc(g->level, n) : NULL;
	uint32_t **up = level ? realloc(g->up, n * sizeof *up) : NULL;
	if (l0)
		g->l0 = l0;
	if (level)
		g->level = level;
	if (up)
		g->up = up;
	if (!up)
		return status_set(OMEN_ENOMEM, "out of memory for the index");
	memset(l0 + old * (1 + g->m0), 0, (n - old) * (1 + g->m0) * sizeof *l0);
	for (uint64_t i = old; i < n; i++) {
		level[i] = (uint8_t)draw_level(i, ml);
		up[i] = level[i] ? calloc((size_t)level[i] * (1 + g->m), sizeof **up) : NULL;
		if (level[i] && !up[i]) {
			g->n = i;
			return status_set(OMEN_ENOMEM, "out of memory for the index");
		}
	}
	g->n = n;
	return OMEN_OK;
}

/* Copies the mapped graph (m) into the in-memory graph g. */
static int graph_load(const graph *m, graph *g)
{
	g->m = m->m;
	g->m0 = m->m0;
	g->efc = m->efc;
	g->entry = m->entry;
	g->max_level = m->max_level;
	size_t rec = 1 + m->m0;
	g->n = 0;
	g->l0 = malloc(m->n * rec * sizeof *g->l0);
	g->level = calloc(m->n ? m->n : 1, 1);
	g->up = calloc(m->n ? m->n : 1, sizeof *g->up);
	if (!g->l0 || !g->level || !g->up)
		return status_set(OMEN_ENOMEM, "out of memory for the index");
	g->n = m->n;
	for (uint64_t i = 0; i < m->n; i++) {
		uint32_t n;
		const unsigned char *l = l0_links(m, i, &n);
		if (n > m->m0)
			return status_set(OMEN_ECORRUPT,
			                  "index links of node %llu are inconsistent",
			                  (unsigned long long)i);
		uint32_t *to = g->l0 + i * rec;
		memset(to, 0, rec * 4);
		to[0] = n;
		for (uint32_t j = 0; j < n; j++)
			to[1 + j] = link_id(m, 0, l, j);
	}
	for (uint32_t u = 0; u < m->n_up; u++) {
		uint32_t node = ld32(m->up_ids + 4 * (size_t)u);
		size_t off = ld32(m->up_off + 4 * (size_t)u), end = ld32(m->up_off + 4 * (u + 1));
		size_t words = end - off, levels = words / (1 + m->m);
		if (node >= m->n || levels == 0 || levels >= MAX_LEVEL)
			return status_set(OMEN_ECORRUPT, "index levels are inconsistent");
		g->level[node] = (uint8_t)levels;
		g->up[node] = malloc(words * 4);
		if (!g->up[node])
			return status_set(OMEN_ENOMEM, "out of memory for the index");
		memcpy(g->up[node], m->up_links + 4 * off, words * 4);
	}
	return OMEN_OK;
}

/* Inserts rows first..n-1 that are live in the snapshot, in parallel, reporting progress. */
static int insert_all(builder *b, uint64_t first, const omen_index_params *p)
{
	uint64_t n = b->g.n, total = n - first;
	_Atomic uint64_t done = 0;
	uint64_t start = first;
	for (; b->empty && start < n; start++) /* the first node alone: it becomes the entry */
		if (!snap_tomb(b->s, start))
			insert(b, NULL, (uint32_t)start);
	int nthreads = p->threads > 0 ? p->threads : omp_get_max_threads(), failed = 0;
#pragma omp parallel num_threads(nthreads) reduction(| : failed)
	{
		hnsw_scratch *x = calloc(1, sizeof *x);
		failed = !x;
		uint64_t next_report = 0;
#pragma omp for schedule(dynamic, 64)
		for (uint64_t r = start; r < n; r++) {
			if (!failed &&
			    atomic_load_explicit(&b->s->c->db->cancel, memory_order_relaxed))
				failed = 2;
			if (!failed && !snap_tomb(b->s, r))
				failed = !insert(b, x, (uint32_t)r);
			uint64_t d = atomic_fetch_add_explicit(&done, 1, memory_order_relaxed) + 1;
			if (p->progress && omp_get_thread_num() == 0 && d >= next_report) {
				p->progress(p->progress_ctx, d + (start - first), total);
				next_report = d + total / 100 + 1;
			}
		}
		scratch_free(x);
	}
	if (p->progress)
		p->progress(p->progress_ctx, total, total);
	if (failed & 2)
		return status_set(OMEN_EBUSY, "index build cancelled: the database is closing");
	return failed ? status_set(OMEN_ENOMEM, "out of memory while building the index") : OMEN_OK;
}

/* Marks in seen[] every node reachable from `from` over all levels (breadth first). */
static void mark_reach(const graph *g, uint32_t from, uint8_t *seen, uint32_t *queue)
{
	uint64_t head = 0, tail = 0;
	if (seen[from])
		return;
	seen[from] = 1;
	queue[tail++] = from;
	while (head < tail) {
		uint32_t node = queue[head++];
		for (uint32_t lc = 0; lc <= g->level[node]; lc++) {
			const uint32_t *l = mem_links(g, node, lc);
			for (uint32_t i = 0; i < l[0]; i++)
				if (!seen[l[1 + i]]) {
					seen[l[1 + i]] = 1;
					queue[tail++] = l[1 + i];
				}
		}
	}
}

/* Gives node an in-link on level 0 from the closest reachable node with a free slot, found by a
 * search for node's own vector; the farthest link of the closest one when none has room. */
static bool adopt(builder *b, hnsw_scratch *x, uint32_t node, const uint8_t *seen)
{
	graph *g = &b->g;
	const float *qv = snap_vec(b->s, node);
	float d = qdist(&b->q, qv, g->entry);
	uint32_t ep = greedy(b, qv, (uint32_t)g->entry, &d, g->max_level, 0);
	size_t n;
	if (!layer_search(b, x, qv, ep, d, g->efc, 0, &n))
		return false;
	uint32_t parent = UINT32_MAX;
	for (size_t i = 0; i < n && parent == UINT32_MAX; i++) {
		uint32_t c = x->sel[i].id;
		if (c != node && seen[c] && mem_links(g, c, 0)[0] < g->m0)
			parent = c;
	}
	for (size_t i = 0; i < n && parent == UINT32_MAX; i++)
		if (x->sel[i].id != node && seen[x->sel[i].id])
			parent = x->sel[i].id;
	if (parent == UINT32_MAX)
		return true; /* nothing reachable near it: left for check to report */
	uint32_t *l = mem_links(g, parent, 0);
	if (l[0] < g->m0)
		l[1 + l[0]++] = node;
	else
		l[g->m0] = node;
	return true;
}

/* Heuristic pruning can leave a node without in-links, unreachable from the entry point. This
 * pass finds such live nodes and links each from a reachable neighbour, so that every live
 * point can be found (and omen_check passes). Runs single-threaded; few nodes need it. */
static int repair(builder *b)
{
	graph *g = &b->g;
	uint8_t *seen = calloc(g->n ? g->n : 1, 1);
	uint32_t *queue = malloc((g->n ? g->n : 1) * sizeof *queue);
	hnsw_scratch *x = calloc(1, sizeof *x);
	int st = seen && queue && x ? OMEN_OK : status_set(OMEN_ENOMEM, "out of memory");
	if (st == OMEN_OK && !b->empty)
		mark_reach(g, (uint32_t)g->entry, seen, queue);
	for (uint64_t i = 0; st == OMEN_OK && !b->empty && i < g->n; i++) {
		if (seen[i] || snap_tomb(b->s, i))
			continue;
		if (!adopt(b, x, (uint32_t)i, seen))
			st = status_set(OMEN_ENOMEM, "out of memory");
		mark_reach(g, (uint32_t)i, seen, queue);
	}
	free(seen);
	free(queue);
	scratch_free(x);
	return st;
}

/* ---- persistence ---- */

typedef struct persist_ctx {
	eng_coll *c;
	const graph *g;
	uint64_t bytes;
} persist_ctx;

/* Reserves size bytes for a record under key kb; NULL (with *st set) on failure. */
static unsigned char *put_rec(MDB_txn *txn, MDB_dbi dbi, const unsigned char *kb, size_t klen,
                              size_t size, int *st)
{
	MDB_val k = {klen, (void *)kb}, v = {size, NULL};
	int rc = mdb_put(txn, dbi, &k, &v, MDB_RESERVE);
	*st = rc ? status_from_mdb(rc, "index") : OMEN_OK;
	return rc ? NULL : v.mv_data;
}

/* Writes level 0 in packed records: per node only the links it has (18 of m0 = 32 on
 * average on the benchmark sets), found through an offset table; ids in 2 bytes when the
 * graph has at most NARROW_MAX nodes. */
static int persist_l0(persist_ctx *x, MDB_txn *txn)
{
	const graph *g = x->g;
	size_t idw = l0_id_bytes(g->n);
	for (uint64_t c0 = 0; c0 < g->n; c0 += L0_NODES) {
		unsigned char kb[9];
		int st;
		size_t cnt = g->n - c0 < L0_NODES ? (size_t)(g->n - c0) : L0_NODES, words = 0;
		for (size_t j = 0; j < cnt; j++)
			words += mem_links(g, c0 + j, 0)[0];
		size_t head = GREC_HEADER + 4 * (cnt + 1), size = head + idw * words;
		key1(kb, 'L', c0 >> L0_SHIFT);
		unsigned char *p = put_rec(txn, x->c->graph_dbi, kb, 9, size, &st);
		if (!p)
			return st;
		memset(p, 0, GREC_HEADER);
		rec_stamp(p, l0_packed_magic(idw));
		unsigned char *off = p + GREC_HEADER, *ids = p + head;
		uint32_t w = 0;
		for (size_t j = 0; j < cnt; j++) {
			const uint32_t *l = mem_links(g, c0 + j, 0);
			le32_put(off + 4 * j, w);
			for (uint32_t i = 0; i < l[0]; i++, w++) {
				if (idw == 2)
					le16_put(ids + 2 * (size_t)w, (uint16_t)l[1 + i]);
				else
					le32_put(ids + 4 * (size_t)w, l[1 + i]);
			}
		}
		le32_put(off + 4 * cnt, w);
		x->bytes += size;
	}
	return OMEN_OK;
}

static int persist_upper(persist_ctx *x, MDB_txn *txn)
{
	const graph *g = x->g;
	size_t n_up = 0, words = 0;
	for (uint64_t i = 0; i < g->n; i++)
		if (g->level[i]) {
			n_up++;
			words += (size_t)g->level[i] * (1 + g->m);
		}
	size_t size = GREC_HEADER + 8 * n_up + 4 + 4 * words;
	unsigned char kb[9];
	int st;
	key1(kb, 'U', 0);
	unsigned char *p = put_rec(txn, x->c->graph_dbi, kb, 1, size, &st);
	if (!p)
		return st;
	memset(p, 0, GREC_HEADER);
	rec_stamp(p, UP_MAGIC);
	le32_put(p + 8, (uint32_t)n_up);
	unsigned char *ids = p + GREC_HEADER, *off = ids + 4 * n_up, *links = off + 4 * (n_up + 1);
	size_t u = 0, w = 0;
	for (uint64_t i = 0; i < g->n; i++) {
		if (!g->level[i])
			continue;
		size_t nw = (size_t)g->level[i] * (1 + g->m);
		le32_put(ids + 4 * u, (uint32_t)i);
		le32_put(off + 4 * u++, (uint32_t)w);
		memcpy(links + 4 * w, g->up[i], nw * 4);
		w += nw;
	}
	le32_put(off + 4 * u, (uint32_t)w);
	x->bytes += size;
	return OMEN_OK;
}

/* Writes the quantizer ("S") and the codes ("Q" records of 4096 nodes). */
static int persist_codes(persist_ctx *x, MDB_txn *txn)
{
	const graph *g = x->g;
	unsigned char kb[9];
	int st;
	key1(kb, 'S', 0);
	size_t size = GREC_HEADER + 8 * (size_t)g->dim;
	unsigned char *p = put_rec(txn, x->c->graph_dbi, kb, 1, size, &st);
	if (!p)
		return st;
	memset(p, 0, GREC_HEADER);
	rec_stamp(p, SQ_MAGIC);
	memcpy(p + GREC_HEADER, g->qmin, 4 * (size_t)g->dim);
	memcpy(p + GREC_HEADER + 4 * (size_t)g->dim, g->qstep, 4 * (size_t)g->dim);
	x->bytes += size;
	for (uint64_t c0 = 0; c0 < g->n; c0 += L0_NODES) {
		uint64_t cnt = g->n - c0 < L0_NODES ? g->n - c0 : L0_NODES;
		size = GREC_HEADER + cnt * g->dim;
		key1(kb, 'Q', c0 >> L0_SHIFT);
		p = put_rec(txn, x->c->graph_dbi, kb, 9, size, &st);
		if (!p)
			return st;
		memset(p, 0, GREC_HEADER);
		rec_stamp(p, CODES_MAGIC);
		memcpy(p + GREC_HEADER, g->codes + c0 * g->dim, cnt * g->dim);
		x->bytes += size;
	}
	return OMEN_OK;
}

static int persist_fn(MDB_txn *txn, void *arg)
{
	persist_ctx *x = arg;
	const graph *g = x->g;
	catalog_rec r;
	int st = coll_catalog(x->c, txn, &r);
	int rc = st == OMEN_OK ? mdb_drop(txn, x->c->graph_dbi, 0) : 0;
	if (rc != 0)
		return status_from_mdb(rc, "index");
	x->bytes = HDR_SIZE;
	if (st == OMEN_OK)
		st = persist_l0(x, txn);
	if (st == OMEN_OK)
		st = persist_upper(x, txn);
	if (st == OMEN_OK && g->int8)
		st = persist_codes(x, txn);
	unsigned char kb[9], *p = NULL;
	key1(kb, 'H', 0);
	if (st == OMEN_OK)
		p = put_rec(txn, x->c->graph_dbi, kb, 1, HDR_SIZE, &st);
	if (!p)
		return st;
	memset(p, 0, HDR_SIZE);
	rec_stamp(p, HDR_MAGIC);
	le32_put(p + 8, g->m);
	le32_put(p + 12, g->m0);
	le32_put(p + 16, g->efc);
	le32_put(p + 20, g->max_level);
	le64_put(p + 24, g->entry);
	le64_put(p + 32, g->n);
	le32_put(p + 40, L0_NODES);
	le32_put(p + 44, (g->int8 ? FLAG_INT8 : 0) | FLAG_L0_PACKED |
	                     (l0_id_bytes(g->n) == 2 ? FLAG_L0_NARROW : 0));
	le64_put(p + 48, x->bytes);
	return OMEN_OK;
}

static int drop_fn(MDB_txn *txn, void *arg)
{
	eng_coll *c = arg;
	int rc = mdb_drop(txn, c->graph_dbi, 0);
	return rc ? status_from_mdb(rc, "index") : OMEN_OK;
}

int hnsw_drop(eng_coll *c)
{
	return store_write(c->db->st, drop_fn, c, 4096);
}

/* ---- omen_build_index for HNSW ---- */

/* Trains the int8 quantizer: per dimension, the range of the live vectors over 255 steps. */
static int quant_train(builder *b)
{
	graph *g = &b->g;
	int st = quant_alloc(g);
	if (st != OMEN_OK)
		return st;
	float *max = malloc(g->dim * sizeof *max);
	if (!max)
		return status_set(OMEN_ENOMEM, "out of memory");
	for (uint32_t d = 0; d < g->dim; d++) {
		g->qmin[d] = INFINITY;
		max[d] = -INFINITY;
	}
	for (uint64_t r = 0; r < g->n; r++) {
		if (snap_tomb(b->s, r))
			continue;
		const float *x = snap_vec(b->s, r);
		for (uint32_t d = 0; d < g->dim; d++) {
			g->qmin[d] = x[d] < g->qmin[d] ? x[d] : g->qmin[d];
			max[d] = x[d] > max[d] ? x[d] : max[d];
		}
	}
	for (uint32_t d = 0; d < g->dim; d++) {
		if (!(g->qmin[d] <= max[d])) /* no live rows */
			g->qmin[d] = max[d] = 0;
		g->qstep[d] = max[d] > g->qmin[d] ? (max[d] - g->qmin[d]) / 255.0f : 1.0f;
	}
	free(max);
	return OMEN_OK;
}

/* Encodes every node's vector into g->codes with the quantizer (clamped to 0..255). */
static int quant_encode(builder *b)
{
	graph *g = &b->g;
	g->codes = malloc(g->n * g->dim + 1);
	if (!g->codes)
		return status_set(OMEN_ENOMEM, "out of memory for the index codes");
	for (uint64_t r = 0; r < g->n; r++) {
		const float *x = snap_vec(b->s, r);
		uint8_t *c = g->codes + r * g->dim;
		for (uint32_t d = 0; d < g->dim; d++) {
			float v = rintf((x[d] - g->qmin[d]) / g->qstep[d]);
			c[d] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
		}
	}
	return OMEN_OK;
}

/* Keeps the quantizer of the graph being extended. */
static int quant_keep(const graph *from, graph *g)
{
	int st = quant_alloc(g);
	if (st == OMEN_OK) {
		memcpy(g->qmin, from->qmin, g->dim * sizeof *g->qmin);
		memcpy(g->qstep, from->qstep, g->dim * sizeof *g->qstep);
	}
	return st;
}

/* Builds or extends the graph over the snapshot's rows into b->g. */
static int build_graph(builder *b, MDB_txn *txn, const omen_index_params *p)
{
	graph mapped = {0};
	uint64_t first = 0, n = b->s->rec.rows;
	if (n > MAX_NODES)
		return status_set(OMEN_EINVAL,
		                  "collection '%s': %llu rows, an HNSW index holds at most %u "
		                  "(spread the collection over shards)",
		                  b->s->c->name, (unsigned long long)n, MAX_NODES);
	int st = graph_map(b->s->c, txn, &mapped);
	b->g.dim = b->s->c->dim;
	b->g.int8 = p->int8 != 0;
	if (st == OMEN_OK && mapped.m == p->m && mapped.efc == p->ef_construction &&
	    mapped.int8 == b->g.int8 && mapped.n <= n) {
		st = graph_load(&mapped, &b->g); /* extend the existing graph */
		if (st == OMEN_OK && b->g.int8)
			st = quant_keep(&mapped, &b->g);
		first = mapped.n;
		b->empty = mapped.n == 0;
	} else if (st == OMEN_OK || st == OMEN_ENOTFOUND) {
		st = OMEN_OK;
		b->g.m = p->m;
		b->g.m0 = 2 * p->m;
		b->g.efc = p->ef_construction;
		b->empty = true;
	}
	graph_free(&mapped);
	if (st == OMEN_OK)
		st = graph_alloc(&b->g, n, b->ml);
	if (st == OMEN_OK)
		st = insert_all(b, first, p);
	if (st == OMEN_OK)
		st = repair(b);
	if (st == OMEN_OK && b->g.int8 && !b->g.qmin)
		st = quant_train(b);
	if (st == OMEN_OK && b->g.int8)
		st = quant_encode(b);
	return st;
}

int hnsw_build(eng_coll *c, const omen_index_params *p)
{
	builder b = {.ml = 1.0 / log((double)p->m)};
	b.locks = calloc(LOCK_STRIPES, sizeof *b.locks);
	if (!b.locks)
		return status_set(OMEN_ENOMEM, "out of memory");
	pthread_mutex_init(&b.entry_mu, NULL);
	MDB_txn *txn;
	snapshot s;
	int st = store_read_begin(c->db->st, &txn);
	if (st == OMEN_OK) {
		st = snap_open(c, txn, NULL, &s);
		if (st == OMEN_OK) {
			b.s = &s;
			b.q = qctx_make(&s);
			st = build_graph(&b, txn, p);
			snap_close(&s);
		}
		store_read_end(c->db->st, txn);
	}
	if (st == OMEN_OK) {
		persist_ctx x = {c, &b.g, 0};
		st = store_write(c->db->st, persist_fn, &x, b.g.n * (4 + 4 * (uint64_t)b.g.m0));
	}
	graph_free(&b.g);
	pthread_mutex_destroy(&b.entry_mu);
	free(b.locks);
	return st;
}

/* ---- integrity check ---- */

typedef struct check_ctx {
	const graph *g;
	const snapshot *s;
	char *report;
	size_t len, cap;
	uint64_t errors;
} check_ctx;

static void say(check_ctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(check_ctx *x, const char *fmt, ...)
{
	va_list ap;
	for (int pass = 0; pass < 2; pass++) {
		va_start(ap, fmt);
		int n = vsnprintf(x->report ? x->report + x->len : NULL,
		                  x->report ? x->cap - x->len : 0, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if (x->report && x->len + (size_t)n < x->cap) {
			x->len += (size_t)n;
			return;
		}
		size_t cap = (x->cap + (size_t)n + 1) * 2;
		char *r = realloc(x->report, cap);
		if (!r)
			return;
		x->report = r;
		x->cap = cap;
	}
}

/* Checks one link list (n ids at l): count within cap, ids valid, no self links, levels
 * consistent. */
static void check_list(check_ctx *x, uint64_t node, uint32_t lc, const unsigned char *l, uint32_t n,
                       uint32_t cap, const uint8_t *levels)
{
	if (n > cap) {
		if (x->errors++ < 20)
			say(x, "node %llu level %u: %u links, at most %u allowed\n",
			    (unsigned long long)node, lc, n, cap);
		return;
	}
	for (uint32_t i = 0; i < n; i++) {
		uint32_t nb = link_id(x->g, lc, l, i);
		const char *bad = nb >= x->g->n     ? "points past the last node"
		                  : nb == node      ? "links to itself"
		                  : levels[nb] < lc ? "links to a node absent from that level"
		                                    : NULL;
		if (bad && x->errors++ < 20)
			say(x, "node %llu level %u: link %u (%u) %s\n", (unsigned long long)node,
			    lc, i, nb, bad);
	}
}

/* Reads every node's level from the upper-level record, checking its order and sizes. */
static uint8_t *check_levels(check_ctx *x)
{
	const graph *g = x->g;
	uint8_t *levels = calloc(g->n ? g->n : 1, 1);
	if (!levels)
		return NULL;
	for (uint32_t u = 0; u < g->n_up; u++) {
		uint32_t node = ld32(g->up_ids + 4 * (size_t)u);
		uint32_t w = ld32(g->up_off + 4 * (u + 1)) - ld32(g->up_off + 4 * (size_t)u);
		bool sorted = u == 0 || node > ld32(g->up_ids + 4 * (size_t)(u - 1));
		if (node >= g->n || !sorted || w == 0 || w % (1 + g->m) ||
		    w / (1 + g->m) > g->max_level) {
			if (x->errors++ < 20)
				say(x, "upper levels: entry %u (node %u) is inconsistent\n", u,
				    node);
			continue;
		}
		levels[node] = (uint8_t)(w / (1 + g->m));
	}
	if (g->n && levels[g->entry] != g->max_level && x->errors++ < 20)
		say(x, "entry point %llu has level %u, the graph's top level is %u\n",
		    (unsigned long long)g->entry, levels[g->entry], g->max_level);
	return levels;
}

/* Breadth-first search from the entry point over every level: reached[node] set. Returns the
 * number of live (not tombstoned) nodes not reached. */
static uint64_t check_reach(check_ctx *x, const uint8_t *levels)
{
	const graph *g = x->g;
	uint8_t *seen = calloc(g->n ? g->n : 1, 1);
	uint32_t *queue = malloc((g->n ? g->n : 1) * sizeof *queue);
	uint64_t head = 0, tail = 0, lost = 0;
	if (!seen || !queue) {
		x->errors++;
		say(x, "out of memory for the reachability check\n");
		free(seen), free(queue);
		return 0;
	}
	if (g->n) {
		seen[g->entry] = 1;
		queue[tail++] = (uint32_t)g->entry;
	}
	while (head < tail) {
		uint32_t node = queue[head++];
		for (uint32_t lc = 0; lc <= levels[node]; lc++) {
			uint32_t n, cap = lc ? g->m : g->m0;
			const unsigned char *l = links_at(g, node, lc, &n);
			for (uint32_t i = 0; i < n && i < cap; i++) {
				uint32_t nb = link_id(g, lc, l, i);
				if (nb < g->n && !seen[nb]) {
					seen[nb] = 1;
					queue[tail++] = nb;
				}
			}
		}
	}
	for (uint64_t i = 0; i < g->n; i++)
		if (!seen[i] && !snap_tomb(x->s, i) && lost++ < 10)
			say(x, "live node %llu (id %llu) is unreachable from the entry point\n",
			    (unsigned long long)i, (unsigned long long)snap_id(x->s, i));
	free(seen);
	free(queue);
	return lost;
}

static void check_graph(check_ctx *x)
{
	const graph *g = x->g;
	uint8_t *levels = check_levels(x);
	if (!levels) {
		x->errors++;
		say(x, "out of memory\n");
		return;
	}
	uint64_t links = 0;
	for (uint64_t i = 0; i < g->n; i++) {
		const l0rec *r = &g->l0r[i >> L0_SHIFT];
		const unsigned char *o = g->packed ? r->off + 4 * (i & (L0_NODES - 1)) : NULL;
		if (o && (ld32(o) > ld32(o + 4) || ld32(o + 4) > r->words) && x->errors++ < 20)
			say(x, "node %llu level 0: link offsets %u..%u outside 0..%u\n",
			    (unsigned long long)i, ld32(o), ld32(o + 4), r->words);
		for (uint32_t lc = 0; lc <= levels[i]; lc++) {
			uint32_t n, cap = lc ? g->m : g->m0;
			const unsigned char *l = links_at(g, i, lc, &n);
			check_list(x, i, lc, l, n, cap, levels);
			links += lc == 0 && n <= cap ? n : 0;
		}
	}
	uint64_t lost = x->errors ? 0 : check_reach(x, levels);
	x->errors += lost;
	say(x,
	    "hnsw: %llu nodes, m=%u, ef_construction=%u, %u levels above 0 (%u nodes), "
	    "%.1f links per node on level 0\n",
	    (unsigned long long)g->n, g->m, g->efc, g->max_level, g->n_up,
	    g->n ? (double)links / (double)g->n : 0.0);
	say(x, "reachability: %llu live nodes unreachable\n", (unsigned long long)lost);
	free(levels);
}

int hnsw_check(eng_coll *c, char **report)
{
	check_ctx x = {0};
	graph g = {0};
	MDB_txn *txn;
	snapshot s;
	int st = store_read_begin(c->db->st, &txn);
	if (st != OMEN_OK)
		return st;
	st = snap_open(c, txn, NULL, &s);
	if (st == OMEN_OK) {
		x.s = &s;
		int gs = graph_map(c, txn, &g);
		if (gs == OMEN_ENOTFOUND) {
			say(&x, "collection '%s': no index (flat): nothing to check\n", c->name);
		} else if (gs != OMEN_OK) {
			x.errors++;
			say(&x, "collection '%s': %s\n", c->name, status_msg());
		} else {
			x.g = &g;
			check_graph(&x);
		}
		snap_close(&s);
	}
	store_read_end(c->db->st, txn);
	graph_free(&g);
	if (st == OMEN_OK && x.errors)
		st = status_set(OMEN_ECORRUPT, "collection '%s': index check found %llu problems",
		                c->name, (unsigned long long)x.errors);
	if (report && st != OMEN_OK && st != OMEN_ECORRUPT) {
		free(x.report);
		return st;
	}
	if (report)
		*report = x.report ? x.report : strdup("");
	else
		free(x.report);
	return st;
}
