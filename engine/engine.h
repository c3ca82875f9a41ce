/*
 * The engine layer's internal header, shared by the files of engine/: the embedded database
 * and collection (api/ wraps them in the public handles), top-k selection, snapshots, exact
 * (flat) search, the GPU path and HNSW.
 */
#ifndef OMEN_ENGINE_H
#define OMEN_ENGINE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "storage/storage.h"

typedef struct indexer indexer;
typedef struct eng_db eng_db;
typedef struct eng_coll eng_coll;

struct eng_db {
	store *st;
	pthread_mutex_t mu;       /* guards the list of open collection handles */
	eng_coll *open;           /* open handles, for omen_drop_collection's busy check */
	pthread_cond_t closed;    /* signalled (under mu) when a handle is closed */
	pthread_mutex_t build_mu; /* one index build at a time (user or background) */
	atomic_int cancel;        /* set by omen_close: builds in progress give up */
	indexer *ix;              /* background indexer, or NULL (read-only, or disabled) */
	pthread_mutex_t gpu_mu;   /* guards gpu */
	struct gpu_resident *gpu; /* device copies of collections (gpu_scan.c) */
};

/* ---- the embedded implementation of the public API (api/embedded.c calls these) ----
 * Each eng_X does what omen_X documents in include/omendb/omendb.h. */

int eng_open(const char *path, const omen_open_options *opt, eng_db **out);
void eng_close(eng_db *db);
int eng_flush(eng_db *db);
int eng_db_stats_get(eng_db *db, omen_db_stats *out);
int eng_create_collection(eng_db *db, const char *name, size_t dim, omen_metric metric);
int eng_drop_collection(eng_db *db, const char *name);
int eng_list_collections(eng_db *db, char ***names_out, size_t *n_out);
int eng_collection_open(eng_db *db, const char *name, eng_coll **out);
void eng_collection_close(eng_coll *c);
/* eng_collection_open; an internal handle (the background indexer's) makes a drop wait for its
 * close rather than fail with OMEN_EBUSY. */
int coll_open(eng_db *db, const char *name, bool internal, eng_coll **out);
int eng_collection_stats_get(eng_coll *c, omen_collection_stats *out);
int eng_count(eng_coll *c, uint64_t *out);
int eng_list_ids(eng_coll *c, uint64_t start, size_t max, uint64_t *ids, size_t *n);
int eng_upsert(eng_coll *c, const omen_batch *b, uint64_t *assigned_ids);
int eng_get(eng_coll *c, const uint64_t *ids, size_t n, float *vectors, char **metadata,
            uint8_t *found);
int eng_delete(eng_coll *c, const uint64_t *ids, size_t n, size_t *deleted);
int eng_search(eng_coll *c, const float *queries, size_t nq, size_t dim,
               const omen_search_params *params, uint64_t *ids_out, float *dists_out);
int eng_build_index(eng_coll *c, const omen_index_params *params);
int eng_check(eng_coll *c, char **report);
int eng_gpu_info(char *name, size_t len);

/* ---- background indexer (indexer.c) ---- */

int indexer_start(eng_db *db, indexer **out);
/* Tells the indexer that collection name was written to. */
void indexer_notify(indexer *ix, const char *name);
void indexer_stop(indexer *ix);

struct eng_coll {
	eng_db *db;
	char name[OMEN_MAX_NAME + 1];
	uint32_t coll_id;
	uint32_t dim;
	uint32_t cap; /* rows per vector chunk */
	omen_metric metric;
	MDB_dbi vec_dbi;              /* chunk number (BE u64) -> vector chunk */
	MDB_dbi id_dbi;               /* point id (BE u64) -> row (LE u64) */
	MDB_dbi meta_dbi;             /* row (BE u64) -> metadata record */
	MDB_dbi tomb_dbi;             /* chunk number (BE u64) -> tombstone bitset */
	MDB_dbi graph_dbi;            /* the index: HNSW's or IVF's records (hnsw.h, ivf.h) */
	pthread_mutex_t scratch_mu;   /* guards the pool of search scratch spaces */
	struct hnsw_scratch *scratch; /* free scratch spaces, a linked list */
	bool internal; /* the background indexer's: a drop waits for it instead of failing */
	eng_coll *next;
};

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
	eng_coll *c;
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
int snap_open(eng_coll *c, MDB_txn *txn, const char *filter_json, snapshot *s);
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

/* True when the filter of s (which has one) allows row. */
bool snap_allows(const snapshot *s, uint64_t row);

/* True when row must not appear in results: tombstoned or refused by the filter. */
static inline bool snap_excluded(const snapshot *s, uint64_t row)
{
	return snap_tomb(s, row) || (s->allow && !snap_allows(s, row));
}

/* ---- searches ---- */

typedef struct search_req {
	const float *queries; /* nq x dim, already normalised for cosine */
	size_t nq;
	size_t k;
	int threads;
	size_t ef;         /* HNSW candidate list size (>= k) */
	uint64_t row_min;  /* exact search: only rows from this one on */
	uint64_t *ids_out; /* nq x k */
	float *dists_out;  /* nq x k */
	omen_device device;
	bool used_gpu;         /* out: flat_search served the request on the GPU */
	size_t nprobe;         /* IVF lists probed per query; 0: the index's calibrated default */
	uint64_t vectors_read; /* out: float vectors read for exact distances (not by HNSW) */
} search_req;

/* Exact search over the snapshot's allowed rows from req->row_min on. */
int flat_search(const snapshot *s, search_req *req);

/* ---- the GPU path of exact search (gpu_scan.c; the device code is engine/gpu/) ---- */

/* Smallest work (queries x rows x dim) for which OMEN_DEVICE_AUTO picks the GPU. */
#define GPU_AUTO_MIN_WORK (1ull << 30)

/* Whether a usable device exists (checked once). */
bool gpu_usable(void);

/* Fills heaps[0..qn) (capacity kc each) with each query's kc best candidates by SGEMM
 * distance, computed on the device over the snapshot's rows from row_min on, excluding
 * tombstoned and filtered-out rows; the caller re-ranks them exactly. Uploads the rows the
 * device copy lacks first. tf32 receives whether TF32 was used (OMEN_GPU_TF32=1). */
int gpu_scan(const snapshot *s, const float *q, const float *qnorm, size_t qn, size_t kc,
             uint64_t row_min, topk *heaps, bool *tf32);

/* Releases a database's device copies (at close). */
void gpu_release(eng_db *db);

/* Exact distance of query q to the vector at row, in the collection's metric. */
float snap_dist(const snapshot *s, const float *q, uint64_t row);

/* ---- HNSW (hnsw_*.c; engine/hnsw.h is their internal header) ---- */

/* The persisted graph's header, or OMEN_ENOTFOUND (no message) when there is no index. */
typedef struct hnsw_info {
	uint32_t m, efc;
	bool int8;
	uint64_t rows;  /* rows 0..rows-1 are in the graph */
	uint64_t bytes; /* persisted size */
} hnsw_info;

int hnsw_info_get(eng_coll *c, MDB_txn *txn, hnsw_info *out);

/* Approximate search of the indexed rows; writes nq x k results like flat_search. */
int hnsw_search(const snapshot *s, MDB_txn *txn, const search_req *req);

int hnsw_build(eng_coll *c, const omen_index_params *p);
int hnsw_check(eng_coll *c, char **report);

/* Frees the collection's pooled search scratch spaces (at handle close). */
void hnsw_scratch_release_all(eng_coll *c);

/* ---- IVF (ivf_*.c; engine/ivf.h is their internal header) ---- */

/* The IVF index's parameters, or OMEN_ENOTFOUND (no message) when there is none. */
typedef struct ivf_info {
	uint32_t nlist, nprobe, bits;
	uint64_t bytes; /* persisted size */
} ivf_info;

int ivf_info_get(eng_coll *c, MDB_txn *txn, ivf_info *out);

/* Approximate search of every row (writes nq x k results like flat_search; counts the
 * vectors it re-ranks in req->vectors_read). OMEN_EINVAL when req->nprobe exceeds nlist. */
int ivf_search(const snapshot *s, MDB_txn *txn, search_req *req);

int ivf_build(eng_coll *c, const omen_index_params *p);
int ivf_check(eng_coll *c, char **report);

/* Assigns the n new rows first_row.. (vectors vecs, as stored) to the lists of the
 * collection's IVF index inside the write transaction txn; nothing without one. */
int ivf_append(eng_coll *c, MDB_txn *txn, uint64_t first_row, const float *vecs, size_t n);

/* Empties the collection's index sub-database (HNSW or IVF): exact search only. */
int index_drop(eng_coll *c);

/* ---- the report of an index check (report.c) ---- */

#define REPORT_MAX 20 /* problems described; the rest are counted */

typedef struct check_report {
	char *text; /* grows with report_say; handed to the caller by report_finish */
	size_t len, cap;
	uint64_t errors;
} check_report;

/* Appends a formatted line (dropped when out of memory). */
void report_say(check_report *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Counts a problem; true when it is among the first REPORT_MAX, to be described. */
bool report_problem(check_report *r);

/* Ends a check whose status so far is st: OMEN_ECORRUPT when problems were counted; *out
 * (may be NULL) receives the report (free with free) unless st is another error. */
int report_finish(eng_coll *c, check_report *r, int st, char **out);

/* ---- helpers shared by the engine's files ---- */

/* Reads the collection's catalog record in txn; OMEN_ENOTFOUND when it was dropped. */
int coll_catalog(eng_coll *c, MDB_txn *txn, catalog_rec *out);

#endif
