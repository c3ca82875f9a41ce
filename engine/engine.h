/*
 * Engine internals shared by the files of engine/: the database and collection handles behind
 * the public API, top-k selection, and exact (flat) search.
 */
#ifndef OMEN_ENGINE_H
#define OMEN_ENGINE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "omendb/omendb.h"
#include "storage/storage.h"

typedef struct indexer indexer;

struct omen_db {
	store *st;
	pthread_mutex_t mu;    /* guards the list of open collection handles */
	omen_collection *open; /* open handles, for omen_drop_collection's busy check */
	pthread_mutex_t build_mu; /* one index build at a time (user or background) */
	atomic_int cancel;        /* set by omen_close: builds in progress give up */
	indexer *ix;              /* background indexer, or NULL (read-only, or disabled) */
};

/* ---- background indexer (indexer.c) ---- */

int indexer_start(omen_db *db, indexer **out);
/* Tells the indexer that collection name was written to. */
void indexer_notify(indexer *ix, const char *name);
void indexer_stop(indexer *ix);

struct omen_collection {
	omen_db *db;
	char name[OMEN_MAX_NAME + 1];
	uint32_t coll_id;
	uint32_t dim;
	uint32_t cap; /* rows per vector chunk */
	omen_metric metric;
	MDB_dbi vec_dbi;  /* chunk number (BE u64) -> vector chunk */
	MDB_dbi id_dbi;   /* point id (BE u64) -> row (LE u64) */
	MDB_dbi meta_dbi; /* row (BE u64) -> metadata record */
	MDB_dbi tomb_dbi; /* chunk number (BE u64) -> tombstone bitset */
	MDB_dbi graph_dbi; /* HNSW header, level-0 link chunks, upper levels */
	pthread_mutex_t scratch_mu; /* guards the pool of search scratch spaces */
	struct hnsw_scratch *scratch; /* free scratch spaces, a linked list */
	omen_collection *next;
};

/* Rows per segment: segments are runs of whole chunks; the last one takes writes. */
#define SEGMENT_ROWS (1u << 20)

/* ---- top-k selection (topk.c) ---- */

typedef struct topk_item {
	float dist;
	uint32_t row; /* where the point's vector lives, for exact re-ranking */
	uint64_t id;
} topk_item;

/* A bounded max-heap of the k best (smallest distance, then smallest id) items seen. */
typedef struct topk {
	topk_item *h;
	uint32_t n, k;
} topk;

static inline bool topk_better(float d1, uint64_t i1, float d2, uint64_t i2)
{
	return d1 < d2 || (d1 == d2 && i1 < i2);
}

/* Cheap pre-check: could (d, any id) enter the heap? */
static inline bool topk_may_accept(const topk *t, float d)
{
	return t->n < t->k || d <= t->h[0].dist;
}

void topk_push(topk *t, float d, uint64_t id, uint32_t row);

/* Sorts the heap's items best first, in place (the heap property is lost). */
void topk_sort(topk *t);

/* ---- a consistent view of a collection for searching (snapshot.c) ---- */

struct dist_kernels;
typedef struct roaring_bitmap_s roaring_bitmap_t;

/* Everything a search reads, from one read transaction: the catalog record, every chunk's view
 * (pointers into the map, valid while the transaction lives), tombstones, and the rows a
 * filter allows. */
typedef struct snapshot {
	omen_collection *c;
	catalog_rec rec;
	size_t nchunks;
	chunk_view *views;
	uint64_t **tombs;        /* per chunk: cap bits, or NULL when it has no tombstones */
	roaring_bitmap_t *allow; /* rows the filter allows, or NULL for no filter */
	uint32_t shift;          /* log2 of the chunk capacity */
	const struct dist_kernels *dk;
} snapshot;

/* Loads the snapshot of collection c in txn, compiling and evaluating filter_json (may be
 * NULL). */
int snap_open(omen_collection *c, MDB_txn *txn, const char *filter_json, snapshot *s);
void snap_close(snapshot *s);

/* The largest stored squared norm (a pass over all norms; for SGEMM error bounds). */
float snap_max_norm(const snapshot *s);

/* Rows the filter allows (all rows when there is no filter). */
uint64_t snap_allowed(const snapshot *s);

static inline const float *snap_vec(const snapshot *s, uint64_t row)
{
	return s->views[row >> s->shift].vecs + (row & (s->c->cap - 1)) * s->c->dim;
}

static inline uint64_t snap_id(const snapshot *s, uint64_t row)
{
	return chunk_id(&s->views[row >> s->shift], (uint32_t)(row & (s->c->cap - 1)));
}

/* True when row is tombstoned (deleted or replaced). */
static inline bool snap_tomb(const snapshot *s, uint64_t row)
{
	const uint64_t *t = s->tombs[row >> s->shift];
	uint32_t slot = (uint32_t)(row & (s->c->cap - 1));
	return t && (t[slot / 64] >> (slot % 64) & 1);
}

/* True when row must not appear in results: tombstoned or refused by the filter. */
bool snap_excluded(const snapshot *s, uint64_t row);

/* ---- searches ---- */

typedef struct search_req {
	const float *queries; /* nq x dim, already normalised for cosine */
	size_t nq;
	size_t k;
	int threads;
	size_t ef;            /* HNSW candidate list size (>= k) */
	uint64_t row_min;     /* exact search: only rows from this one on */
	uint64_t *ids_out;    /* nq x k */
	float *dists_out;     /* nq x k */
} search_req;

/* Exact search over the snapshot's allowed rows from req->row_min on. */
int flat_search(const snapshot *s, const search_req *req);

/* Exact distance of query q to the vector at row, in the collection's metric. */
float snap_dist(const snapshot *s, const float *q, uint64_t row);

/* ---- HNSW (hnsw.c) ---- */

/* The persisted graph's header, or OMEN_ENOTFOUND (no message) when there is no index. */
typedef struct hnsw_info {
	uint32_t m, efc;
	bool int8;
	uint64_t rows;  /* rows 0..rows-1 are in the graph */
	uint64_t bytes; /* persisted size */
} hnsw_info;

int hnsw_info_get(omen_collection *c, MDB_txn *txn, hnsw_info *out);

/* Approximate search of the indexed rows; writes nq x k results like flat_search. */
int hnsw_search(const snapshot *s, MDB_txn *txn, const search_req *req);

int hnsw_build(omen_collection *c, const omen_index_params *p);
int hnsw_drop(omen_collection *c);
int hnsw_check(omen_collection *c, char **report);

/* Frees the collection's pooled search scratch spaces (at handle close). */
void hnsw_scratch_release_all(omen_collection *c);

/* ---- helpers shared by the engine's files ---- */

/* Reads the collection's catalog record in txn; OMEN_ENOTFOUND when it was dropped. */
int coll_catalog(omen_collection *c, MDB_txn *txn, catalog_rec *out);

#endif
