/*
 * Engine internals shared by the files of engine/: the database and collection handles behind
 * the public API, top-k selection, and exact (flat) search.
 */
#ifndef OMEN_ENGINE_H
#define OMEN_ENGINE_H

#include <stdbool.h>
#include <stdint.h>

#include "omendb/omendb.h"
#include "storage/storage.h"

struct omen_db {
	store *st;
	pthread_mutex_t mu;    /* guards the list of open collection handles */
	omen_collection *open; /* open handles, for omen_drop_collection's busy check */
};

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

/* ---- exact search (flat.c) ---- */

typedef struct search_req {
	const float *queries; /* nq x dim, already normalised for cosine */
	size_t nq;
	size_t k;
	int threads;
	const char *filter;
	uint64_t *ids_out;
	float *dists_out;
} search_req;

/* Exact search over every live row of the collection in one snapshot. */
int flat_search(omen_collection *c, const search_req *req);

/* ---- helpers shared by collection.c and flat.c ---- */

/* Reads the collection's catalog record in txn; OMEN_ENOTFOUND when it was dropped. */
int coll_catalog(omen_collection *c, MDB_txn *txn, catalog_rec *out);

#endif
