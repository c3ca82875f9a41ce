/*
 * The HNSW index's internal header, shared by engine/hnsw_*.c and by nothing else (engine.h
 * declares what the rest of the engine calls). It holds the persisted layout, the constants,
 * the two graph types (the in-memory graph a build writes, the graph a search reads mapped from
 * LMDB), the per-thread scratch, and the helpers the search loop calls per neighbour, which
 * stay static inline here so that splitting the files added no call to the hot path.
 *
 * Persisted layout, in the collection's graph sub-database (c<ID>.g; docs/FORMAT.md). Integers
 * are little-endian; keys are a one-byte tag, followed for numbered records by a u64
 * big-endian record number r. Every record starts with base's 8-byte record header (magic, u16
 * REC_VERSION, u16 zero). The header record is 64 bytes of fields; every other record has a
 * 16-byte header (HNSW_REC_HEADER): the record header and 8 bytes of its own.
 *
 *   key "H", magic OMHN, 64 bytes (HNSW_HDR_SIZE):
 *     off size field
 *       0    8 record header
 *       8    4 m, links per node on levels >= 1 (OMEN_HNSW_M_MIN..OMEN_HNSW_M_MAX)
 *      12    4 m0 = 2m, links per node on level 0
 *      16    4 ef_construction
 *      20    4 top level (< HNSW_MAX_LEVEL)
 *      24    8 entry point (a node on the top level)
 *      32    8 n: nodes, the rows 0..n-1 (at most HNSW_MAX_NODES)
 *      40    4 nodes per level-0 record (HNSW_L0_NODES)
 *      44    4 flags: HNSW_FLAG_INT8 ("S" and "Q" records present); any other bit set:
 *              OMEN_EVERSION
 *      48    8 bytes of all the graph's records
 *      56    4 level-0 id width in bytes: 2 when n <= HNSW_NARROW_MAX, else 4 (a reader also
 *              takes 4 at any n); any other value: OMEN_EVERSION
 *      60    4 reserved, zero
 *
 *   key "L" + r, magic OMH0: level 0 of nodes r * 4096 .. r * 4096 + c - 1, where
 *   c = min(4096, n - r * 4096); w is the header's id width:
 *     off                size          field
 *       0                16            header (8..15 zero)
 *      16                4 (c + 1)     offsets off[0..c], u32, counted in ids into the id area:
 *                                      node j's neighbours are ids off[j]..off[j+1]-1;
 *                                      off[0] = 0, off[c] = the area's length in ids
 *      16 + 4 (c + 1)    w off[c]      id area: neighbour ids, u16 (w = 2) or u32 (w = 4)
 *
 *   key "U", magic OMHU: the upper levels of the u nodes whose level is at least 1:
 *     off                size          field
 *       0                16            header: u at offset 8 (u32), 12..15 zero
 *      16                4 u           node ids, u32, ascending
 *      16 + 4 u          4 (u + 1)     offsets, u32, in words into the link area; the last is
 *                                      its length
 *      20 + 8 u          4 words       link area: per node, per level 1..L, a u32 count and m
 *                                      u32 ids (unused ones zero); L = its words / (m + 1)
 *
 *   key "S", magic OMHS (with HNSW_FLAG_INT8): 16 + 8 dim bytes: the header (8..15 zero),
 *   dim f32 minima, dim f32 steps; x[d] ~ min[d] + code[d] * step[d].
 *
 *   key "Q" + r, magic OMHQ (with HNSW_FLAG_INT8): 16 + c dim bytes: the header (8..15 zero),
 *   then dim uint8 codes per node for the nodes of "L" + r.
 */
#ifndef OMEN_HNSW_H
#define OMEN_HNSW_H

#include <string.h>

#include "engine/distance.h"
#include "engine/engine.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the graph's hot path reads little-endian u32 with memcpy"
#endif

#define HNSW_MAGIC_HDR   "OMHN"
#define HNSW_MAGIC_L0    "OMH0"
#define HNSW_MAGIC_UP    "OMHU"
#define HNSW_MAGIC_QUANT "OMHS"
#define HNSW_MAGIC_CODES "OMHQ"
#define HNSW_FLAG_INT8   1u
#define HNSW_FLAGS_KNOWN HNSW_FLAG_INT8
#define HNSW_HDR_SIZE    64
#define HNSW_REC_HEADER  16 /* base's record header (REC_HEADER) and 8 bytes of the record's */
#define HNSW_L0_SHIFT    12 /* 4096 nodes per level-0 record (and per code record) */
#define HNSW_L0_NODES    (1u << HNSW_L0_SHIFT)
#define HNSW_NARROW_MAX  65536u /* most nodes a graph with u16 level-0 ids may have */
#define HNSW_MAX_LEVEL   16
#define HNSW_MAX_NODES   0x7fffffffu /* node ids leave their top bit to HNSW_EXPANDED */
#define HNSW_EXPANDED    0x80000000u /* in a sorted result array: the node's links followed */

static inline uint32_t ld32(const unsigned char *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

/* Bytes per level-0 id a graph of n nodes is written with. */
static inline uint32_t hnsw_id_width(uint64_t n)
{
	return n <= HNSW_NARROW_MAX ? 2 : 4;
}

/* ---- the int8 quantizer (hnsw_quant.c) ---- */

/* Per dimension x[d] ~ min[d] + code[d] * step[d]; w[d] = step[d]^2 for the l2 distance. The
 * arrays are owned (hnsw_quant_free). */
typedef struct hnsw_quant {
	float *min, *step, *w;
} hnsw_quant;

/* Sets q (empty) to dim minima and steps read from min and step (any alignment), allocating
 * its arrays. OMEN_OK or OMEN_ENOMEM. */
int hnsw_quant_set(hnsw_quant *q, uint32_t dim, const void *min, const void *step);

/* Trains q (empty): per dimension, the range of the snapshot's live rows below n cut into 255
 * steps. OMEN_OK or OMEN_ENOMEM. */
int hnsw_quant_train(hnsw_quant *q, const snapshot *s, uint64_t n);

/* The codes of the snapshot's rows below n, n x dim bytes, clamped to 0..255, into *codes
 * (the caller frees it). OMEN_OK or OMEN_ENOMEM. */
int hnsw_quant_encode(const hnsw_quant *q, const snapshot *s, uint64_t n, uint8_t **codes);

/* Writes the int8 form of query qv (dim floats) to qp and returns the constant term: for l2
 * qp[d] = (qv[d] - min[d]) / step[d]; for dot products qp[d] = qv[d] step[d] and the constant
 * is <qv, min>. */
float hnsw_quant_query(const hnsw_quant *q, uint32_t dim, omen_metric m, const float *qv,
                       float *qp);

void hnsw_quant_free(hnsw_quant *q);

/* ---- the two graphs ---- */

/* A mapped level-0 record: off[j], off[j + 1] (u32, counted in ids) bound node j's
 * neighbour ids in ids[]; words = off[c], the length of the id area. */
typedef struct hnsw_l0rec {
	const unsigned char *off, *ids;
	uint32_t words;
} hnsw_l0rec;

/* The persisted graph as a search reads it: the header's fields, and pointers into LMDB's map
 * valid while the read transaction that mapped it lives (hnsw_map). Only l0r, qc and quant
 * are allocated (hnsw_mapped_free). */
typedef struct hnsw_mapped {
	uint32_t m, m0, efc, max_level;
	uint64_t entry, n; /* n: nodes = rows 0..n-1 */
	bool int8;
	uint32_t idw;   /* bytes per level-0 id: 2 or 4 */
	uint64_t bytes; /* persisted size */
	uint32_t dim;
	hnsw_l0rec *l0r;                                 /* level-0 records, ceil(n / 4096) */
	const unsigned char *up_ids, *up_off, *up_links; /* the "U" record's three arrays */
	uint32_t n_up;
	size_t up_words;          /* u32 words of upper-level links */
	hnsw_quant quant;         /* int8: the quantizer */
	const unsigned char **qc; /* int8: the code records, ceil(n / 4096) */
} hnsw_mapped;

/* The graph a build writes, in memory: every node has 2m slots on level 0 (the persisted
 * records keep only the links it has). A list at a level is a u32 count, then its slots. */
typedef struct hnsw_build_graph {
	uint32_t m, m0, efc, max_level;
	uint64_t entry, n; /* n: nodes = rows 0..n-1 */
	bool int8;
	uint32_t dim;
	uint32_t *l0;     /* n x (1 + m0) */
	uint8_t *level;   /* n */
	uint32_t **up;    /* n: level x (1 + m) u32, or NULL on level 0 only */
	hnsw_quant quant; /* int8: the quantizer */
	uint8_t *codes;   /* int8: n x dim */
} hnsw_build_graph;

/* ---- persistence (hnsw_persist.c) ---- */

/* Maps the persisted graph of txn into g (zero copy; g must be zeroed). OMEN_ENOTFOUND without
 * a message when there is no index, OMEN_EVERSION for a header this code does not know,
 * OMEN_ECORRUPT for records that do not fit together. g needs hnsw_mapped_free in every
 * case. */
int hnsw_map(eng_coll *c, MDB_txn *txn, hnsw_mapped *g);
void hnsw_mapped_free(hnsw_mapped *g);

/* Replaces the collection's persisted graph by g in one write transaction. */
int hnsw_persist(eng_coll *c, const hnsw_build_graph *g);

/* ---- reading a mapped graph (search, check, extension) ---- */

/* Helpers that only prefetch are always inlined: GCC 12 at -O1 and above deleted every call to
 * them (its mod-ref analysis finds that they change nothing; -fno-ipa-modref brought them
 * back), so no search issued a single prefetch. A new prefetch helper must be a PREFETCH_FN. */
#define PREFETCH_FN static inline __attribute__((always_inline))

static inline const uint8_t *code_of(const hnsw_mapped *g, uint64_t node)
{
	return g->qc[node >> HNSW_L0_SHIFT] + HNSW_REC_HEADER +
	       (node & (HNSW_L0_NODES - 1)) * (size_t)g->dim;
}

/* Level-0 neighbour ids of node; *n: their count, which a damaged record can make exceed m0
 * (read at most m0 of them) but never makes run past the record. */
static inline const unsigned char *l0_links(const hnsw_mapped *g, uint64_t node, uint32_t *n)
{
	const hnsw_l0rec *r = &g->l0r[node >> HNSW_L0_SHIFT];
	size_t j = node & (HNSW_L0_NODES - 1);
	uint32_t lo = ld32(r->off + 4 * j), hi = ld32(r->off + 4 * j + 4);
	*n = lo <= hi && hi <= r->words ? hi - lo : 0;
	return r->ids + g->idw * (size_t)(*n ? lo : 0);
}

/* Id i of a link list of level lc (from l0_links or links_at): the one reader of level-0 ids,
 * whose width is the graph's. */
static inline uint32_t link_id(const hnsw_mapped *g, uint32_t lc, const unsigned char *l,
                               uint32_t i)
{
	return lc == 0 && g->idw == 2 ? le16_get(l + 2 * (size_t)i) : ld32(l + 4 * (size_t)i);
}

/* Writes id as entry i of a level-0 id area of width idw: the one writer, read by link_id. */
static inline void link_id_put(unsigned char *l, uint32_t idw, size_t i, uint32_t id)
{
	if (idw == 2)
		le16_put(l + 2 * i, (uint16_t)id);
	else
		le32_put(l + 4 * i, id);
}

/* Prefetches node's level-0 offset, read when node is expanded. */
PREFETCH_FN void l0_prefetch_off(const hnsw_mapped *g, uint64_t node)
{
	__builtin_prefetch(g->l0r[node >> HNSW_L0_SHIFT].off + 4 * (node & (HNSW_L0_NODES - 1)));
}

/* Prefetches the start of node's level-0 links (reads its offset). */
PREFETCH_FN void l0_prefetch(const hnsw_mapped *g, uint64_t node)
{
	const hnsw_l0rec *r = &g->l0r[node >> HNSW_L0_SHIFT];
	uint32_t lo = ld32(r->off + 4 * (node & (HNSW_L0_NODES - 1)));
	if (lo < r->words)
		__builtin_prefetch(r->ids + g->idw * (size_t)lo);
}

/* Links of node at upper level lc >= 1: count, then ids (an empty list for a node the record
 * lacks or whose entry does not fit in it). */
static inline const unsigned char *map_links(const hnsw_mapped *g, uint64_t node, uint32_t lc)
{
	uint32_t lo = 0, hi = g->n_up; /* binary search of the sorted upper node ids */
	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2;
		if (ld32(g->up_ids + 4 * (size_t)mid) < node)
			lo = mid + 1;
		else
			hi = mid;
	}
	static const unsigned char none[4];
	if (lo == g->n_up || ld32(g->up_ids + 4 * (size_t)lo) != node)
		return none;
	size_t off = ld32(g->up_off + 4 * (size_t)lo), end = ld32(g->up_off + 4 * (size_t)(lo + 1));
	size_t at = off + (size_t)(lc - 1) * (1 + g->m);
	return at + 1 + g->m <= end && end <= g->up_words ? g->up_links + 4 * at : none;
}

/* Neighbour ids of node at level lc, *n of them: a damaged record may claim more than the
 * level's cap (m0 or m), so read at most the cap; that much always lies within the record. */
static inline const unsigned char *links_at(const hnsw_mapped *g, uint64_t node, uint32_t lc,
                                            uint32_t *n)
{
	if (lc == 0)
		return l0_links(g, node, n);
	const unsigned char *l = map_links(g, node, lc);
	*n = ld32(l);
	return l + 4;
}

/* ---- the in-memory graph ---- */

/* Node's list at level lc: a count, then the slots (m0 on level 0, m above). */
static inline uint32_t *mem_links(const hnsw_build_graph *g, uint64_t node, uint32_t lc)
{
	return lc == 0 ? g->l0 + node * (1 + g->m0) : g->up[node] + (size_t)(lc - 1) * (1 + g->m);
}

/* ---- distance to a query ---- */

typedef struct qctx {
	const snapshot *s;
	float (*kern)(const float *, const float *, size_t);
	omen_metric metric;
	size_t dim;
	bool excl; /* some rows are excluded from results (tombstones, a filter) */
} qctx;

/* The distance context of searches over s (hnsw_search.c). */
qctx hnsw_qctx_make(const snapshot *s);

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
static inline void qdist_many(const qctx *q, const float *a, const uint32_t *rows, uint32_t n,
                              float *d, float bound)
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

/* ---- heaps of (distance, node) (hnsw_scratch.c) ---- */

typedef struct hitem {
	float d;
	uint32_t id;
} hitem;

typedef struct heap {
	hitem *a;
	size_t n, cap;
	int max; /* 1: max-heap (results), 0: min-heap (candidates) */
} heap;

/* Grows h to hold at least n items; false when out of memory (h unchanged). */
bool hnsw_heap_reserve(heap *h, size_t n);

static inline bool above(const heap *h, hitem x, hitem y)
{
	return h->max ? x.d > y.d : x.d < y.d;
}

static inline bool heap_push(heap *h, float d, uint32_t id)
{
	if (h->n == h->cap && !hnsw_heap_reserve(h, h->n + 1))
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
static inline void heap_sift_down(heap *h, hitem x)
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

static inline hitem heap_pop(heap *h)
{
	hitem top = h->a[0], x = h->a[--h->n];
	if (h->n)
		heap_sift_down(h, x);
	return top;
}

/* Adds (d, id) to a heap kept at most ef long: when full, (d, id) must rank below its top,
 * which it replaces (one sift instead of a push and a pop). */
static inline bool heap_push_bounded(heap *h, size_t ef, float d, uint32_t id)
{
	if (h->n < ef)
		return heap_push(h, d, id);
	heap_sift_down(h, (hitem){d, id});
	return true;
}

/* ---- a sorted array of the ef best found (the search's and the build's SEARCH-LAYER) ---- */

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

/* Clears the HNSW_EXPANDED marks of r[0..n). */
static inline void sorted_unmark(hitem *r, size_t n)
{
	for (size_t i = 0; i < n; i++)
		r[i].id &= ~HNSW_EXPANDED;
}

/* ---- per-thread scratch (hnsw_scratch.c) ---- */

/* What one search (or one inserting thread) works in: visited marks, heaps, buffers. Owned by
 * one thread at a time; searches take them from the collection's pool and give them back. */
typedef struct hnsw_scratch {
	uint64_t *visited; /* bit node: node visited in the current search */
	uint32_t *touched; /* indices of the words of visited that are not zero, ntouched */
	size_t nwords, ntouched;
	heap cand, top;
	hitem *sel; /* the build's SEARCH-LAYER results */
	size_t selcap;
	float *qbuf; /* the query's int8 form */
	size_t qbufcap;
	struct hnsw_scratch *next;
} hnsw_scratch;

/* Starts a search over n nodes with no node visited and empty heaps (cand a min-heap, top a
 * max-heap). False when out of memory. */
bool hnsw_scratch_begin(hnsw_scratch *x, uint64_t n);

/* Makes x->sel hold at least n items, and x->qbuf at least dim floats; false when out of
 * memory. Contents are not kept. */
bool hnsw_scratch_sel(hnsw_scratch *x, size_t n);
bool hnsw_scratch_qbuf(hnsw_scratch *x, size_t dim);

/* A scratch from c's pool, or a new empty one (NULL when out of memory). */
hnsw_scratch *hnsw_scratch_take(eng_coll *c);

/* Returns x (may be NULL) to c's pool. */
void hnsw_scratch_give(eng_coll *c, hnsw_scratch *x);

/* Frees x and its arrays; NULL does nothing. */
void hnsw_scratch_free(hnsw_scratch *x);

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

#endif
