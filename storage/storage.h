/*
 * Storage subsystem: one LMDB environment per database directory, the format header, the
 * collection catalog, and the on-disk records of a collection (vector chunks, id map,
 * metadata, tombstones). The byte layouts are documented in docs/FORMAT.md; every record
 * starts with a magic and a format version and is written with explicit little-endian helpers.
 * Used by the engine, and by the consensus layer for its own LMDB environment (lenv).
 */
#ifndef OMEN_STORAGE_H
#define OMEN_STORAGE_H

#include <lmdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "base/base.h"

/* Translates an LMDB or errno code from operation `what` into an omen status with a message
 * (status.c). Every layer that calls LMDB translates its codes with this one function. */
int status_from_mdb(int rc, const char *what);

/* ---- a growable LMDB environment (env.c) ---- */

typedef struct lenv {
	MDB_env *env;              /* set by the owner once created */
	pthread_mutex_t write_mu;  /* one writer at a time, in this process: held around
	                              lenv_write by its caller */
	pthread_rwlock_t map_lock; /* held shared by every transaction, exclusively to resize */
	uint64_t map_size;         /* current map size (the owner sets the initial one) */
	uint64_t max_bytes;        /* the map never grows beyond this; 0 = no limit */
} lenv;

void lenv_init(lenv *e, uint64_t max_bytes);
void lenv_fini(lenv *e);

/* A read transaction; pointers into the map stay valid until lenv_read_end(). Many may be
 * open at once, from any threads. */
int lenv_read_begin(lenv *e, MDB_txn **txn);
void lenv_read_end(lenv *e, MDB_txn *txn);

/* Runs fn(txn, ctx) in a write transaction and commits it: the whole of fn's writes land or
 * none do. When the map fills, the transaction is aborted, the map grown and fn run again, so
 * fn must have no effect outside the transaction. OMEN_EFULL when the map cannot grow any
 * more. The caller holds e->write_mu. Returns fn's status. */
typedef int (*lenv_write_fn)(MDB_txn *txn, void *ctx);
int lenv_write(lenv *e, lenv_write_fn fn, void *ctx);

/* Creates e->env and opens it at path: maxdbs named databases, maxreaders readers (0: LMDB's
 * default), a map of initial bytes, flags for mdb_env_open; records the map size. A failure
 * leaves e->env for the caller to close (NULL if it was never created). */
int lenv_open(lenv *e, const char *path, unsigned maxdbs, unsigned maxreaders, uint64_t initial,
              unsigned flags);

/* ---- the environment (store.c) ---- */

#define STORE_FORMAT_VERSION 1

/* Named sub-databases a collection owns (vectors, ids, metadata, tombstones, index: FORMAT.md);
 * the environment is opened with room for those of OMEN_MAX_COLLECTIONS collections. */
#define STORE_COLL_DBIS 5

typedef struct store {
	lenv e;
	MDB_dbi meta_dbi;    /* "omendb": the format header */
	MDB_dbi catalog_dbi; /* "catalog": collection name -> collection record */
	omen_open_options opt;
	uint64_t unsynced; /* relaxed mode: bytes written since the last sync */
	char *path;
} store;

/* Opens (creating when absent or empty) the database directory. */
int store_open(const char *path, const omen_open_options *opt, store **out);
void store_close(store *s);

/* A read transaction over a consistent snapshot. Pointers into the map stay valid until
 * store_read_end(). Many may be open at once, from any threads. */
int store_read_begin(store *s, MDB_txn **txn);
void store_read_end(store *s, MDB_txn *txn);

/* Runs fn(txn, ctx) in a write transaction and commits it; the whole of fn's writes land or
 * none do. When the map fills, the transaction is aborted, the map grown and fn run again, so
 * fn must have no effect outside the transaction. bytes_hint is the approximate number of
 * bytes the transaction writes (used for relaxed-mode checkpoints). Returns fn's status. */
typedef lenv_write_fn store_write_fn;
int store_write(store *s, store_write_fn fn, void *ctx, uint64_t bytes_hint);

/* Opens (with create) a named sub-database inside a write transaction. */
int store_dbi(MDB_txn *txn, const char *name, bool create, MDB_dbi *out);

/* Runs fn(txn, ctx) in a read transaction that is committed, serialised with writers, so that
 * sub-database handles it opens stay open for the whole environment (LMDB requires handles to
 * be opened by one thread at a time). */
int store_open_handles(store *s, store_write_fn fn, void *ctx);

int store_sync(store *s);
uint64_t store_file_bytes(store *s);

/* Next collection id, persisted in the format header (write transaction only). */
int store_next_collection_id(store *s, MDB_txn *txn, uint32_t *out);

/* ---- catalog records (store.c) ---- */

typedef struct catalog_rec {
	uint32_t coll_id;
	uint32_t dim;
	uint32_t metric;
	uint32_t chunk_cap; /* rows per vector chunk */
	uint64_t next_id;   /* one past the largest id ever written */
	uint64_t rows;      /* rows appended, tombstoned ones included */
	uint64_t points;    /* live points */
	uint64_t deleted;   /* tombstoned rows */
} catalog_rec;

#define CATALOG_REC_SIZE 56

/* Reads the record of collection name: 0, OMEN_ENOTFOUND, or OMEN_ECORRUPT. */
int catalog_get(store *s, MDB_txn *txn, const char *name, catalog_rec *out);
int catalog_put(store *s, MDB_txn *txn, const char *name, const catalog_rec *rec);

/* ---- id map (idmap.c): point id -> row, stored as runs of consecutive ids and rows ---- */

/* Looks up id: OMEN_OK with *row, OMEN_ENOTFOUND (no message) when absent, or an error. */
int idmap_get(MDB_txn *txn, MDB_dbi dbi, uint64_t id, uint64_t *row);

/* Removes id, giving its row: OMEN_OK, OMEN_ENOTFOUND (no message), or an error. */
int idmap_remove(MDB_txn *txn, MDB_dbi dbi, uint64_t id, uint64_t *row);

/* Up to max ids of the map that are >= start, ascending, into ids; *n receives how many. */
int idmap_list(MDB_txn *txn, MDB_dbi dbi, uint64_t start, size_t max, uint64_t *ids, size_t *n);

/* Maps ids first..first+n-1, none of them present, to rows row..row+n-1, extending the
 * preceding run when both continue it. beyond_all: every id is larger than any mapped id. */
int idmap_insert(MDB_txn *txn, MDB_dbi dbi, uint64_t first, uint64_t row, uint64_t n,
                 bool beyond_all);

/* ---- vector chunks (chunk.c) ----
 * A chunk holds up to cap consecutive rows of one collection:
 *   header (16 bytes) | vectors count x dim f32 | squared norms count f32 | ids count u64
 * all little-endian. Rows never move: row r lives in chunk r / cap, slot r % cap. */

#define CHUNK_HEADER       16
#define CHUNK_TARGET_BYTES (1u << 20)

/* Rows per chunk for a dimension: the largest power of two (16..65536) whose rows (without the
 * 16-byte header) fit in CHUNK_TARGET_BYTES, so that a row's chunk and slot are a shift and a
 * mask. */
uint32_t chunk_cap_for_dim(uint32_t dim);

static inline size_t chunk_bytes(uint32_t count, uint32_t dim)
{
	return CHUNK_HEADER + (size_t)count * ((size_t)dim * 4 + 12);
}

/* A validated view of a stored chunk. vecs and norms point into the map when it is suitably
 * aligned, else into the caller's scratch copy; ids are unaligned little-endian u64. */
typedef struct chunk_view {
	uint32_t count;
	const float *vecs;
	const float *norms;
	const unsigned char *ids;
	void *scratch; /* malloc'd copy when the stored bytes were misaligned, else NULL */
} chunk_view;

/* Validates bytes (len) as a chunk of dimension dim and capacity cap. 0 or OMEN_ECORRUPT
 * (or OMEN_ENOMEM). Release with chunk_view_release(). */
int chunk_view_init(chunk_view *v, const void *bytes, size_t len, uint32_t dim, uint32_t cap);
void chunk_view_release(chunk_view *v);

static inline uint64_t chunk_id(const chunk_view *v, uint32_t slot)
{
	return le64_get(v->ids + (size_t)slot * 8);
}

/* ---- segments (chunk.c) ----
 * A segment is a run of whole chunks holding SEGMENT_ROWS rows (the last one fewer); the last
 * segment takes the writes, earlier ones are sealed (docs/FORMAT.md). */

#define SEGMENT_ROWS (1u << 20)

/* The segments of a collection whose vector chunks (capacity cap) are in vec_dbi, counted from
 * the chunk records stored there. */
int seg_count(MDB_txn *txn, MDB_dbi vec_dbi, uint32_t cap, uint64_t *out);

/* Writes a chunk image of count rows into dst (chunk_bytes(count, dim) bytes) from an old
 * chunk (may be NULL when old_count is 0) followed by new rows. */
void chunk_write(unsigned char *dst, uint32_t dim, const chunk_view *old, uint32_t old_count,
                 const float *vecs, const float *norms, const uint64_t *ids, uint32_t n_new);

/* ---- tombstones and metadata records (chunk.c) ---- */

#define TOMB_HEADER 8
static inline size_t tomb_bytes(uint32_t cap)
{
	return TOMB_HEADER + ((size_t)cap + 63) / 64 * 8;
}
/* Validates a tombstone record and copies its bitset into words (cap bits). */
int tomb_load(const void *bytes, size_t len, uint32_t cap, uint64_t *words);
void tomb_store(unsigned char *dst, uint32_t cap, const uint64_t *words);

#define META_HEADER 8
/* Validates a metadata record; on success *mp and *mp_len give its msgpack body. */
int meta_rec_body(const void *bytes, size_t len, const unsigned char **mp, size_t *mp_len);
void meta_rec_header(unsigned char *dst);

/* ---- point metadata (metadata.c) ----
 * A point's metadata is a JSON object of scalar values (integer, float, string, bool), stored
 * in a metadata record as a canonical msgpack map: string keys in strictly increasing byte
 * order, scalar values only. docs/FILTERS.md. */

#define META_MAX_KEY 255 /* bytes in a metadata key (and in a filter's field name) */

/* A scalar from a stored map or a filter operand. Strings are borrowed: they point into the
 * stored bytes or into the filter's JSON tree. */
enum { META_MISSING = 0, META_BOOL, META_INT, META_FLOAT, META_STR };
typedef struct meta_value {
	uint8_t type;
	uint32_t len; /* META_STR: bytes at u.s */
	union {
		bool b;
		int64_t i;
		double d;
		const char *s;
	} u;
} meta_value;

/* Reads a stored map's entries in order, checking its structure as it goes. */
typedef struct meta_iter {
	mpc c;
	uint64_t left;
	const char *prev; /* previous key; keys must strictly increase */
	uint32_t prevlen;
} meta_iter;

/* Starts on len bytes at mp; false if they do not begin with a map header. */
bool meta_iter_open(meta_iter *it, const unsigned char *mp, size_t len);

/* The next entry: 1 with *key, *klen and *v set (borrowed from the map's bytes), 0 at a clean
 * end (no bytes after the last entry), or -1 when the bytes are corrupt: truncated, a key that
 * is not a 1..META_MAX_KEY-byte string, starts with '$' or is not greater than the previous
 * key, a value that is not a scalar, or trailing bytes. UTF-8 is not checked here. */
int meta_iter_next(meta_iter *it, const char **key, uint32_t *klen, meta_value *v);

/* Bytewise order of two byte strings, a shorter prefix first: the order of a map's keys. */
static inline int meta_key_cmp(const char *a, uint32_t alen, const char *b, uint32_t blen)
{
	/* Most keys differ in their first byte: settle those without calling memcmp. */
	if (alen > 0 && blen > 0 && a[0] != b[0])
		return (int)(unsigned char)a[0] - (int)(unsigned char)b[0];
	int c = memcmp(a, b, alen < blen ? alen : blen);
	if (c != 0)
		return c;
	return (alen > blen) - (alen < blen);
}

/* Converts a metadata JSON object into its stored msgpack encoding. On success returns 0 and
 * sets *out (malloc'd, caller frees with free()) and *out_len. On bad input (not an object,
 * nested values, null, arrays, keys longer than META_MAX_KEY bytes, more than
 * OMEN_MAX_METADATA bytes of JSON, invalid UTF-8 or JSON) returns OMEN_EINVAL and writes a
 * one-line reason into err (errlen bytes). OMEN_ENOMEM if allocation fails. */
int meta_encode_json(const char *json, unsigned char **out, size_t *out_len, char *err,
                     size_t errlen);

/* Converts a stored msgpack map back into a compact JSON object string (malloc'd, caller
 * frees). Returns 0, OMEN_ECORRUPT if the bytes are not a valid stored map, or OMEN_ENOMEM. */
int meta_decode_json(const unsigned char *mp, size_t len, char **json_out);

/* OMEN_OK when json is metadata meta_encode_json accepts, else its status with the reason as
 * the thread's message (omen_metadata_check). */
int meta_check_json(const char *json);

/* JSON helpers shared with the filters (engine/filter.c). meta_json_parse parses text (len
 * bytes) as exactly one JSON value, refusing duplicate keys; on failure it returns NULL and
 * sets *status to OMEN_ENOMEM or OMEN_EINVAL with jansson's position in err. meta_json_kind
 * names a value's type for messages ("an array"). */
struct json_t;
struct json_t *meta_json_parse(const char *text, size_t len, const char *what, int *status,
                               char *err, size_t errlen);
const char *meta_json_kind(const struct json_t *j);

#endif
