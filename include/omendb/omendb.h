/*
 * OmenDB public C API.
 *
 * This header is the contract: what is declared here is the API, and nothing else is. Every
 * function returns an omen status code (OMEN_OK is 0) unless documented otherwise; on failure
 * omen_errmsg() gives a detailed message for the calling thread, scalar output parameters are
 * left untouched, and the contents of caller-provided output arrays are unspecified (strings
 * the call had allocated for them are freed and set to NULL). No function aborts on bad input.
 *
 * Thread safety: one omen_db handle may be shared by many threads. Searches and reads run
 * concurrently; writes (upserts, deletes, collection changes) are serialised inside the library.
 * A collection handle may be shared by threads of the process that opened it.
 *
 * Buffers: unless a function says otherwise, the caller owns every buffer it passes and the
 * library copies what it keeps before returning. Memory the library returns to the caller is
 * released with omen_free() (or omen_free_strings() for string arrays).
 */
#ifndef OMENDB_H
#define OMENDB_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define OMEN_VERSION_MAJOR  0
#define OMEN_VERSION_MINOR  1
#define OMEN_VERSION_PATCH  0
#define OMEN_VERSION_STRING "0.1.0"

/* Status codes. */
enum {
	OMEN_OK = 0,
	OMEN_EINVAL = 1,    /* bad argument: dimension, NaN, k, malformed filter or metadata... */
	OMEN_ENOTFOUND = 2, /* no such collection */
	OMEN_EEXIST = 3,    /* collection already exists */
	OMEN_ENOMEM = 4,    /* out of memory */
	OMEN_EIO = 5,       /* operating system I/O error (disk full included) */
	OMEN_ECORRUPT = 6,  /* stored bytes failed validation */
	OMEN_ENOTDB = 7,    /* the directory or file is not an OmenDB database */
	OMEN_EVERSION = 8,  /* written by a newer, incompatible OmenDB */
	OMEN_EFULL = 9,     /* the database reached its configured maximum size */
	OMEN_EBUSY = 10,    /* resource in use (e.g. dropping a collection with open handles) */
	OMEN_ENOTSUP = 11,  /* not supported by this build or mode */
	OMEN_EPROTO = 12,   /* malformed message from a peer */
	OMEN_ELIMIT = 13,   /* a documented limit was exceeded (collections, k, batch size) */
	OMEN_EUNAVAIL = 14, /* cluster: a node did not answer within the deadline */
	OMEN_EAUTH = 15,    /* cluster: the shared token is missing or wrong */
	OMEN_ESTALE = 16    /* cluster: a request routed by an older shard map (retried inside) */
};

/* Distance metrics. Distances are "smaller is closer":
 *  OMEN_METRIC_L2     squared Euclidean distance;
 *  OMEN_METRIC_IP     negative inner product, -<q, x>;
 *  OMEN_METRIC_COSINE 1 - cos(q, x). Vectors are stored normalised to unit length, so
 *                     omen_get() returns the normalised vector. Zero vectors are refused. */
typedef enum { OMEN_METRIC_L2 = 0, OMEN_METRIC_IP = 1, OMEN_METRIC_COSINE = 2 } omen_metric;

/* Parses "l2", "ip" or "cosine" into *out; OMEN_EINVAL otherwise. */
int omen_metric_parse(const char *name, omen_metric *out);

/* The name of a metric ("l2", "ip", "cosine"), a static string; "?" for an unknown value. */
const char *omen_metric_name(omen_metric metric);

/* Limits. */
#define OMEN_MAX_DIM         16384      /* dimension is 1..OMEN_MAX_DIM */
#define OMEN_MAX_NAME        128        /* collection names: 1..128 bytes of [A-Za-z0-9_.-] */
#define OMEN_MAX_COLLECTIONS 1000       /* per database */
#define OMEN_MAX_K           16384      /* search k is 1..OMEN_MAX_K */
#define OMEN_MAX_METADATA    65536      /* bytes of metadata JSON per point */
#define OMEN_NO_ID           UINT64_MAX /* reserved: never a point id; pads short results */

typedef struct omen_db omen_db;
typedef struct omen_collection omen_collection;

/* Durability of acknowledged writes. */
typedef enum {
	OMEN_DURABLE_SYNC = 0, /* default: every acknowledged batch is on disk (fsync per batch) */
	OMEN_DURABLE_RELAXED = 1 /* bulk loads: batches are synced by omen_flush(), omen_close()
	                            and every checkpoint_bytes; a power loss or OS crash may lose
	                            batches acknowledged since the last sync, never corrupts. A
	                            process crash loses nothing. */
} omen_durability;

typedef struct omen_open_options {
	omen_durability durability; /* default OMEN_DURABLE_SYNC */
	uint64_t max_bytes;         /* maximum database size; the file grows up to it. Default 0 =
	                               no limit but the disk. Minimum 1 MiB. */
	uint64_t checkpoint_bytes;  /* relaxed mode: sync after this many bytes written. Default
	                               256 MiB; 0 = only on flush/close. */
	int read_only;              /* nonzero: open an existing database read-only */
	int no_create;              /* nonzero: fail with OMEN_ENOTDB instead of creating a new
	                               database where none exists */
	int no_background_index;    /* nonzero: no background indexer (docs/HNSW.md); tails
	                               are then indexed only by omen_build_index */
} omen_open_options;

/* Fills *opt with the defaults documented above. */
void omen_open_options_init(omen_open_options *opt);

/* Opens the database in directory path, creating the directory and an empty database if the
 * path does not exist or is an empty directory. opt may be NULL for defaults. A directory that
 * holds something other than an OmenDB database gives OMEN_ENOTDB; one written by a newer
 * format gives OMEN_EVERSION. On success *out is a handle to be closed with omen_close(). */
int omen_open(const char *path, const omen_open_options *opt, omen_db **out);

/* Syncs and closes the database. Collection handles must be closed first; any left open are
 * closed here. omen_close(NULL) does nothing. */
void omen_close(omen_db *db);

/* A static English description of a status code. */
const char *omen_strerror(int status);

/* The detail message of the last failed call made by the calling thread, e.g. "collection
 * 'docs': dimension 128 expected, got 100". Valid until the thread's next call into the
 * library. db may be NULL (the message is per thread). */
const char *omen_errmsg(const omen_db *db);

/* Creates a collection. name: 1..OMEN_MAX_NAME bytes of letters, digits, '_', '-', '.'.
 * dim: 1..OMEN_MAX_DIM. The same as omen_create_collection_opts with opt NULL. */
int omen_create_collection(omen_db *db, const char *name, size_t dim, omen_metric metric);

#define OMEN_MAX_SHARDS   4096 /* logical shards of a cluster's collection */
#define OMEN_MAX_REPLICAS 5    /* copies of each logical shard */

/* How a cluster lays a collection out (docs/CLUSTER.md). An embedded database holds one copy
 * of one shard: it accepts 0 or 1 in each field and refuses anything else. */
typedef struct omen_collection_options {
	uint32_t shards;   /* logical shards, 1..OMEN_MAX_SHARDS; default 0 = the cluster's
	                      default (the coordinator's default_shards) */
	uint32_t replicas; /* copies of each logical shard, each on a different shard node,
	                      1..OMEN_MAX_REPLICAS; default 0 = 1 */
} omen_collection_options;

/* Fills *opt with the defaults documented above (all zeros). */
void omen_collection_options_init(omen_collection_options *opt);

/* Creates a collection as omen_create_collection does, laid out as opt says; opt may be NULL
 * for defaults. A field out of range, or shards or replicas above 1 on an embedded database,
 * gives OMEN_EINVAL and creates nothing. */
int omen_create_collection_opts(omen_db *db, const char *name, size_t dim, omen_metric metric,
                                const omen_collection_options *opt);

/* Drops a collection and all its points. OMEN_EBUSY while a handle to it is open. */
int omen_drop_collection(omen_db *db, const char *name);

/* Lists the collection names in byte order. On success *names_out is an array of *n_out
 * strings, released with omen_free_strings(*names_out, *n_out). */
int omen_list_collections(omen_db *db, char ***names_out, size_t *n_out);

/* Opens a handle to an existing collection (OMEN_ENOTFOUND otherwise). */
int omen_collection_open(omen_db *db, const char *name, omen_collection **out);

/* Closes a collection handle. omen_collection_close(NULL) does nothing. */
void omen_collection_close(omen_collection *coll);

/* Description and statistics of a collection. */
typedef struct omen_collection_stats {
	char name[OMEN_MAX_NAME + 1];
	uint32_t dim;
	omen_metric metric;
	uint64_t points;       /* live points */
	uint64_t deleted;      /* tombstoned rows not yet compacted */
	uint64_t next_id;      /* one past the largest id ever written (0 when none) */
	uint64_t segments;     /* storage segments */
	uint64_t vector_bytes; /* bytes of stored vector data, tombstoned rows included */
	const char *index; /* index kind that serves searches: "flat", "hnsw" or "ivf" (static) */
	uint64_t indexed;  /* rows covered by the index; later rows are searched exactly */
	uint64_t index_bytes; /* bytes of the persisted index */
	uint32_t hnsw_m;      /* the index's parameters (0 without HNSW) */
	uint32_t hnsw_ef_construction;
	int hnsw_int8;         /* int8-quantized traversal */
	uint32_t ivf_nlist;    /* IVF: inverted lists (0 without IVF) */
	uint32_t ivf_nprobe;   /* IVF: lists a search probes by default, calibrated by the build */
	uint32_t ivf_bits;     /* IVF: bits per dimension of the codes */
	uint32_t replicas;     /* copies of each logical shard (cluster; 1 embedded) */
	uint32_t copies_stale; /* cluster: copies that missed writes and are being made again */
} omen_collection_stats;

int omen_collection_stats_get(omen_collection *coll, omen_collection_stats *out);

/* Database-level statistics. */
typedef struct omen_db_stats {
	uint64_t collections;
	uint64_t file_bytes; /* size of the data file on disk */
	uint64_t map_bytes;  /* current memory-map size */
} omen_db_stats;

int omen_db_stats_get(omen_db *db, omen_db_stats *out);

/* A batch of points to upsert. Borrowed for the duration of the call only. */
typedef struct omen_batch {
	size_t n;                    /* number of points, 1..OMEN_MAX_BATCH */
	size_t dim;                  /* must equal the collection's dimension */
	const uint64_t *ids;         /* n distinct ids (not OMEN_NO_ID), or NULL to assign
	                                next_id, next_id + 1, ... */
	const float *vectors;        /* n x dim row-major float32, all finite */
	const char *const *metadata; /* NULL, or n entries each NULL or a JSON object whose values
	                                are integers, floats, strings or booleans */
} omen_batch;

#define OMEN_MAX_BATCH 10000000

/* Checks that json is metadata omen_upsert accepts: a JSON object of at most OMEN_MAX_METADATA
 * bytes whose keys are 1..255 bytes not starting with '$' and whose values are integers (within
 * int64), floats, strings or booleans. OMEN_OK, or OMEN_EINVAL with the reason in
 * omen_errmsg(). Lets a caller validate a whole load before writing its first batch. */
int omen_metadata_check(const char *json);

/* Inserts or replaces the points of a batch, atomically: the whole batch is applied or none of
 * it. An id already present is replaced (vector and metadata). When assigned_ids is not NULL it
 * receives the n ids written (useful when batch->ids is NULL). */
int omen_upsert(omen_collection *coll, const omen_batch *batch, uint64_t *assigned_ids);

/* Reads points by id. For each i < n: found[i] is set to 1 if ids[i] exists, else 0; when
 * vectors is not NULL its row i (dim floats) receives the vector (zeros if not found); when
 * metadata is not NULL, metadata[i] receives a JSON object string owned by the caller (free
 * with omen_free) or NULL if the point has none or was not found. found must not be NULL. */
int omen_get(omen_collection *coll, const uint64_t *ids, size_t n, float *vectors, char **metadata,
             uint8_t *found);

/* Deletes points by id, atomically. Ids not present are ignored. *deleted (may be NULL)
 * receives the number of points removed. */
int omen_delete(omen_collection *coll, const uint64_t *ids, size_t n, size_t *deleted);

/* Number of live points. */
int omen_count(omen_collection *coll, uint64_t *out);

/* Lists the ids of the live points in ascending order: up to max (1..OMEN_MAX_BATCH) ids that
 * are >= start go to ids, and *n receives how many; fewer than max means the end was reached.
 * A whole collection is read page by page with start = the last id received + 1. Through a
 * coordinator the pages are merged from every shard in the same order. */
int omen_list_ids(omen_collection *coll, uint64_t start, size_t max, uint64_t *ids, size_t *n);

/* Where exact searches run (omen_search_params.device). */
typedef enum {
	OMEN_DEVICE_AUTO = 0, /* the GPU for batches large enough to win, when one is usable */
	OMEN_DEVICE_CPU = 1,
	OMEN_DEVICE_GPU = 2 /* the GPU whenever one is usable; the CPU otherwise (no error) */
} omen_device;

typedef struct omen_search_params {
	size_t k;           /* results per query, 1..min(OMEN_MAX_K, points); default 10 */
	const char *filter; /* NULL or a JSON filter, see docs/FILTERS.md; default NULL */
	int threads;        /* 0 = all cores (default); otherwise the number of threads */
	size_t ef;          /* HNSW candidate list size; 0 = OMEN_HNSW_EF_DEFAULT. Raised to k
	                       when smaller; at most OMEN_HNSW_EF_MAX. Ignored without HNSW. */
	int exact;          /* nonzero: exact search even when an index exists */
	int partial;        /* cluster: nonzero accepts results from the shards that answered
	                       before the deadline (see info); default 0: such a search fails
	                       with OMEN_EUNAVAIL. Ignored by embedded databases. */
	struct omen_search_info *info; /* NULL, or receives how the search was served */
	omen_device device; /* exact searches only (an HNSW search runs on the CPU); default
	                       OMEN_DEVICE_AUTO. See docs/GPU.md. */
	size_t nprobe;      /* IVF: lists probed per query; 0 = the index's calibrated default
	                       (omen_collection_stats.ivf_nprobe); at most the index's nlist.
	                       Ignored without IVF. */
} omen_search_params;

/* How a search was served (filled on success when omen_search_params.info is set). */
typedef struct omen_search_info {
	uint32_t shards_total;    /* cluster: logical shards of the collection; embedded: 1 */
	uint32_t shards_answered; /* shards whose results are merged in (< total only with
	                             partial) */
	const char *path;         /* static: "cpu-exact", "cpu-hnsw" (index, plus an exact scan
	                             of rows written since it was built), "cpu-ivf", "gpu-exact",
	                             or "cluster" for a remote database */
	uint64_t vectors_read;    /* float vectors read to compute exact distances, over all the
	                             queries: every allowed row for an exact search, the candidates
	                             re-ranked for IVF; 0 for HNSW (not counted) and remote
	                             databases */
} omen_search_info;

/* Parses "auto", "cpu" or "gpu" into *out; OMEN_EINVAL otherwise. */
int omen_device_parse(const char *name, omen_device *out);

/* The name of a device ("auto", "cpu", "gpu"), a static string; "?" for an unknown value. */
const char *omen_device_name(omen_device device);

/* Whether this process can run searches on a GPU: OMEN_OK with the device's name in name
 * (len bytes), or OMEN_ENOTSUP with the reason (no CUDA in this build, no device...). */
int omen_gpu_info(char *name, size_t len);

void omen_search_params_init(omen_search_params *p);

/* Exact (or indexed) search of nq queries (nq x dim row-major float32; 0..OMEN_MAX_BATCH).
 * ids_out and dists_out are caller-owned arrays of nq x k; row q holds query q's results,
 * closest first, ties by smaller id. When a filter leaves fewer than k matching points, the
 * rest of the row is padded with OMEN_NO_ID and INFINITY. k larger than the collection's live
 * points is OMEN_EINVAL. With nq = 0 nothing is searched and the arrays may be NULL; the
 * arguments are checked as for a search, and info (when set) gives the path a search would
 * take now, with shards_total and shards_answered as for a search of an embedded database
 * (1, 1) and 0 for a remote one, where no shard is asked. */
int omen_search(omen_collection *coll, const float *queries, size_t nq, size_t dim,
                const omen_search_params *params, uint64_t *ids_out, float *dists_out);

/* ---- Indexes ----
 * A collection is always searchable exactly. omen_build_index adds an approximate index over
 * the points present; points written later are searched exactly until the index is extended
 * to them (by the background indexer, or by calling omen_build_index again). See docs/HNSW.md. */

typedef enum {
	OMEN_INDEX_AUTO = 0, /* flat below OMEN_INDEX_AUTO_HNSW_MIN points, HNSW below
	                        OMEN_INDEX_AUTO_IVF_MIN, IVF from there on (or earlier: see
	                        omen_index_params.ram_budget) */
	OMEN_INDEX_FLAT = 1, /* exact search only: drops an existing index */
	OMEN_INDEX_HNSW = 2, /* Hierarchical Navigable Small World graph (Malkov and Yashunin) */
	OMEN_INDEX_IVF = 3   /* inverted lists of RaBitQ codes (Gao and Long), re-ranked exactly;
	                        docs/IVF.md */
} omen_index_type;

#define OMEN_INDEX_AUTO_HNSW_MIN 10000
#define OMEN_INDEX_AUTO_IVF_MIN  1000000

/* Parses "auto", "flat", "hnsw" or "ivf" into *out; OMEN_EINVAL otherwise. */
int omen_index_type_parse(const char *name, omen_index_type *out);

/* The name of an index type ("auto", "flat", "hnsw", "ivf"), a static string; "?" for an
 * unknown value. */
const char *omen_index_type_name(omen_index_type type);

#define OMEN_HNSW_M_DEFAULT   16 /* links per node per level (2 M on level 0) */
#define OMEN_HNSW_M_MIN       4
#define OMEN_HNSW_M_MAX       64
#define OMEN_HNSW_EFC_DEFAULT 200 /* candidate list size while building */
#define OMEN_HNSW_EFC_MIN     8
#define OMEN_HNSW_EFC_MAX     4096
#define OMEN_HNSW_EF_DEFAULT  64 /* candidate list size while searching */
#define OMEN_HNSW_EF_MAX      16384

#define OMEN_IVF_NLIST_MAX    65536 /* inverted lists; and at most the collection's points */
#define OMEN_IVF_MIN_POINTS   1000  /* live points an IVF build needs */
#define OMEN_IVF_BITS_DEFAULT 1     /* bits per dimension of the codes */
#define OMEN_IVF_BITS_MAX     4
#define OMEN_IVF_MAX_DIM      4096 /* dimensions an IVF index supports */

typedef struct omen_index_params {
	omen_index_type type;     /* default OMEN_INDEX_AUTO */
	uint32_t m;               /* default OMEN_HNSW_M_DEFAULT, OMEN_HNSW_M_MIN..MAX */
	uint32_t ef_construction; /* default OMEN_HNSW_EFC_DEFAULT, OMEN_HNSW_EFC_MIN..MAX */
	int threads;              /* 0 = all cores (default) */
	int int8;                 /* nonzero: the traversal reads int8 scalar-quantized copies of
	                             the vectors (a quarter of the bytes; dim bytes more per point)
	                             and re-ranks its candidates exactly. Default 0. */
	/* Called from the building thread about every 1% of the work with the points inserted so
	 * far and the total; NULL for none (default). */
	void (*progress)(void *ctx, uint64_t done, uint64_t total);
	void *progress_ctx;
	uint32_t nlist;      /* IVF: inverted lists; 0 (default) chooses from the number of points
	                        (docs/IVF.md); else 1..OMEN_IVF_NLIST_MAX and at most the points */
	uint32_t bits;       /* IVF: bits per dimension of the codes, 1..OMEN_IVF_BITS_MAX;
	                        default OMEN_IVF_BITS_DEFAULT */
	uint64_t ram_budget; /* OMEN_INDEX_AUTO: bytes the float vectors may take in RAM; above
	                        it IVF is chosen whatever the number of points. 0 (default): no
	                        budget */
} omen_index_params;

void omen_index_params_init(omen_index_params *p);

/* Builds (or, when one with the same parameters exists, extends) the collection's index over
 * every point present, in parallel. Searches and writes go on meanwhile; the new index is
 * published atomically at the end. With OMEN_INDEX_FLAT the index is dropped. */
int omen_build_index(omen_collection *coll, const omen_index_params *params);

/* Verifies the collection's index: neighbour ids valid, levels consistent, every live point
 * reachable from the entry point. OMEN_OK when healthy (also without an index), OMEN_ECORRUPT
 * otherwise. When report is not NULL it receives a text report (free with omen_free). */
int omen_check(omen_collection *coll, char **report);

/* ---- Remote databases (a cluster's coordinator; docs/CLUSTER.md) ---- */

typedef struct omen_connect_options {
	const char *token;   /* the shared token the cluster requires, or NULL (default) */
	uint32_t timeout_ms; /* deadline of each call; default 30000, 1..3600000 */
} omen_connect_options;

void omen_connect_options_init(omen_connect_options *opt);

/* Connects to a coordinator at url ("tcp://host:port"). The handle serves the same calls as
 * an embedded database, with these differences: omen_build_index reports no progress;
 * omen_open_options do not apply; a batch is atomic on each shard, not across shards (a failed
 * upsert or delete says which shards failed; retrying it is safe). Connecting does not wait
 * for the coordinator: a call made while it is down fails with OMEN_EUNAVAIL after the
 * timeout. Close with omen_close(). */
int omen_connect(const char *url, const omen_connect_options *opt, omen_db **out);

/* True (1) when path names a remote database ("tcp://..."), for programs that accept either. */
int omen_is_remote_url(const char *path);

/* Makes every acknowledged write durable (needed only in OMEN_DURABLE_RELAXED mode). */
int omen_flush(omen_db *db);

/* Releases memory returned by the library. omen_free(NULL) does nothing. */
void omen_free(void *p);
void omen_free_strings(char **strings, size_t n);

#ifdef __cplusplus
}
#endif
#endif
