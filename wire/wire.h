/*
 * The wire protocol: msgpack messages exchanged by the remote client, the coordinator and the
 * shard nodes. One request shape and one reply shape serve every call of the public API; a
 * message is a msgpack map of short string keys (docs/WIRE.md lists them). Vectors, ids and
 * distances travel as msgpack `bin` of little-endian values.
 *
 * The decoders take bytes from the network: they validate every type, size and count against
 * the limits of the public API and against the message's own length, never read out of bounds,
 * never allocate more than a small multiple of the input's size, and answer OMEN_EPROTO (or
 * OMEN_ELIMIT for a message over the cap) with a one-line reason instead of crashing.
 */
#ifndef OMEN_WIRE_H
#define OMEN_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "omendb/omendb.h"

#define WIRE_VERSION         1
#define WIRE_MAX_MSG_DEFAULT (256u << 20) /* bytes in one message unless configured */
#define WIRE_MAX_STRING      (1u << 20)   /* filter, token, message, report: bytes */
#define WIRE_MAX_SHARDS      4096         /* logical shards of one collection */
#define WIRE_MAX_ADDR        127          /* bytes of a node's URL */
#define WIRE_ERRLEN          256          /* size of the err buffers below */
#define WIRE_MAX_REPLICAS    5            /* copies of a logical shard */

/* Calls. The msgpack form is the lower-case name after WIRE_ ("search", "dbstats"...). */
typedef enum {
	WIRE_HEALTH = 0, /* is the node up; reply: count = shard nodes answering (coordinator) */
	WIRE_CREATE,   /* name, dim, metric, nshards (coordinator: 0 = default), replicas (0 = 1) */
	WIRE_DROP,     /* name */
	WIRE_LIST,     /* reply: names */
	WIRE_STATS,    /* name; reply: stats */
	WIRE_DBSTATS,  /* reply: dbstats */
	WIRE_UPSERT,   /* name, n, dim, ids (or none: assign), vectors, meta; reply: ids. To a
	                  primary: copies = the other copies in sync; reply: failed */
	WIRE_GET,      /* name, n, ids; reply: found, vectors, meta */
	WIRE_DELETE,   /* name, n, ids; reply: count = points deleted; copies and failed as
	                  UPSERT */
	WIRE_COUNT,    /* name; reply: count */
	WIRE_SEARCH,   /* name, nq, dim, vectors, k, ef, nprobe, exact, filter, partial,
	                  deadline_ms; reply: nq, k, ids, dists, count = points searched,
	                  shards_* */
	WIRE_BUILD,    /* name, index_type, m, ef_construction, int8, nlist, bits, ram_budget */
	WIRE_CHECK,    /* name; reply: report (status OMEN_ECORRUPT when unhealthy) */
	WIRE_FLUSH,    /* make acknowledged writes durable */
	WIRE_IDS,      /* name, n = most ids, start; reply: n ids >= start, ascending. On a shard
	                  node mode WIRE_IDS_TRACKED lists the ids written since FENCE_TRACK */
	WIRE_FENCE,    /* shard nodes only, for shard transfers: name, shard, mode (FENCE_*);
	                  FENCE_INCOMING also dim and metric. FENCE_QUERY's reply: n marked
	                  units, names[i] their collection, ids[i] their logical shard,
	                  found[i] 1 for a source (tracking or frozen), 0 for an incoming copy */
	WIRE_JOIN,     /* a shard node's registration and heartbeat to a coordinator: node, addr */
	WIRE_COPYFAIL, /* coordinators only, to the leader: name, shard, node = the shard's primary
	                  as the sender routed by, n, ids = the nodes whose copies missed a write
	                  (the primary's own: it did not answer); reply: count = the map epoch
	                  after the change */
	WIRE_OP_COUNT
} wire_op;

/* WIRE_FENCE modes: the steps of moving a logical shard from node A to node B. */
typedef enum {
	FENCE_RELEASE = 0, /* A: stop tracking, accept writes again (an aborted move) */
	FENCE_TRACK,       /* A: record the ids of every write from now on */
	FENCE_FREEZE,      /* A: refuse writes (OMEN_ESTALE) once those in flight are done */
	FENCE_INCOMING,    /* B: replace any unit of that shard by an empty one, marked incoming */
	FENCE_ACCEPT,      /* B: the move is committed: clear the incoming mark */
	FENCE_QUERY,       /* any: list the marked units */
	FENCE_MODES
} wire_fence_mode;

#define WIRE_IDS_TRACKED 1 /* WIRE_IDS mode on a shard node */
/* WIRE_BUILD mode on a shard node: half the cores, as the background indexer, so that searches
 * and writes go on. */
#define WIRE_BUILD_BACKGROUND 1

/* A shard node that registers itself (JOIN) has an id in this range, chosen at random when its
 * data directory is created and kept there; ids below are coordinators (1..999) and the shard
 * nodes a coordinator's configuration lists (1000 + position). At most 2^53 - 1, so that the
 * id survives JSON. */
#define WIRE_NODE_ID_MIN (1ull << 32)
#define WIRE_NODE_ID_MAX ((1ull << 53) - 1)

/* "search", ... or NULL for an op out of range. */
const char *wire_op_name(wire_op op);

/* A request. Fields a call does not use are zero / NULL. Decoded requests own their arrays
 * (wire_req_free releases them); a request being encoded only borrows them. */
typedef struct wire_req {
	wire_op op;
	char *token;    /* shared secret, or NULL */
	uint64_t epoch; /* shard map epoch the sender routed by (0 = none) */
	int32_t shard;  /* logical shard addressed on a shard node; -1 = none (default) */
	char name[OMEN_MAX_NAME + 1]; /* collection; "" when the call has none */
	uint32_t dim;
	omen_metric metric;
	uint32_t nshards;  /* CREATE: logical shards of the collection */
	uint32_t replicas; /* CREATE: copies of each logical shard, 0..WIRE_MAX_REPLICAS (0 = 1) */
	char **copies;     /* UPSERT, DELETE to a shard's primary: the URLs of the other copies in
	                      sync, which it forwards the write to (the forwarded request has
	                      none); NULL when ncopies is 0 */
	uint32_t ncopies;  /* 0..WIRE_MAX_REPLICAS - 1 */
	uint64_t n;        /* points (UPSERT, GET, DELETE) or queries (SEARCH) */
	uint64_t *ids;     /* n ids, or NULL (UPSERT: assign ids) */
	float *vectors;    /* n x dim (UPSERT, SEARCH) */
	char **meta;       /* NULL, or n entries each NULL or a JSON object (UPSERT) */
	uint32_t k;
	uint32_t ef;
	int exact;
	int partial;          /* SEARCH: the caller accepts results from the shards that answered */
	uint32_t deadline_ms; /* 0 = the server's default */
	char *filter;         /* JSON filter or NULL */
	omen_index_type index_type; /* BUILD */
	uint32_t m, ef_construction;
	int int8;
	uint32_t nlist; /* BUILD, IVF: lists, 0..OMEN_IVF_NLIST_MAX (0 = from the points) */
	uint32_t bits;  /* BUILD, IVF: bits per dimension, 0..OMEN_IVF_BITS_MAX (0 = default) */
	uint64_t ram_budget; /* BUILD, auto: bytes the float vectors may take in RAM (0 = none) */
	uint32_t nprobe;     /* SEARCH, IVF: lists probed, 0..OMEN_IVF_NLIST_MAX (0 = default) */
	uint64_t start;      /* IDS: the smallest id wanted */
	uint32_t mode;       /* FENCE: wire_fence_mode; IDS: 0 or WIRE_IDS_TRACKED; BUILD: 0 or
	                        WIRE_BUILD_BACKGROUND */
	uint64_t node;       /* JOIN: the shard node's id */
	char *addr;          /* JOIN: the URL other nodes reach it at */
} wire_req;

/* A reply. status is an OMEN_* code; message the engine's detail message (may be NULL when
 * status is OMEN_OK). Decoded replies own their arrays and strings (wire_rep_free). */
typedef struct wire_rep {
	int status;
	char *message;
	uint64_t n;     /* rows of ids/dists (SEARCH: nq), or points (GET) */
	uint32_t k;     /* SEARCH: results per query; ids and dists are n x k */
	uint32_t dim;   /* GET: vector length */
	uint64_t *ids;  /* UPSERT: n ids written; SEARCH: n x k ids (n x k whenever k > 0) */
	float *dists;   /* SEARCH: n x k */
	uint8_t *found; /* GET: n flags */
	float *vectors; /* GET: n x dim */
	char **meta;    /* GET: n entries, each NULL or a JSON object */
	uint64_t count; /* DELETE, COUNT, HEALTH; SEARCH: live points searched */
	uint32_t shards_total, shards_answered; /* SEARCH through a coordinator: coverage */
	uint32_t failed; /* UPSERT, DELETE on a primary: bit i set when copies[i] of the request
	                    did not take the write (the primary itself did) */
	uint64_t nnames;
	char **names; /* LIST */
	char *report; /* CHECK */
	int has_stats;
	omen_collection_stats stats; /* STATS (stats.index points to a static string) */
	int has_dbstats;
	omen_db_stats dbstats; /* DBSTATS */
} wire_rep;

/* Encoding. On success *out is a malloc'd buffer of *len bytes (free with free()). Fails only
 * with OMEN_ENOMEM, or OMEN_EINVAL when the message's fields are inconsistent (e.g. n > 0 and
 * no ids where the call needs them). The version is always WIRE_VERSION. */
int wire_req_encode(const wire_req *r, void **out, size_t *len);
int wire_rep_encode(const wire_rep *r, void **out, size_t *len);

/* Decoding of len bytes at buf. max_len caps the message (OMEN_ELIMIT above it). On success
 * *r is filled and owns its arrays; on failure *r is left empty (safe to free) and err receives
 * a one-line reason (WIRE_ERRLEN bytes). A message whose version is not WIRE_VERSION gives
 * OMEN_EPROTO with "protocol version N not supported (this node speaks 1)". A known op whose
 * fields are missing, of the wrong type, or inconsistent (vectors not n x dim floats, meta not
 * n entries, k or dim or n beyond the public API's limits) gives OMEN_EPROTO. */
int wire_req_decode(const void *buf, size_t len, size_t max_len, wire_req *r, char *err);
int wire_rep_decode(const void *buf, size_t len, size_t max_len, wire_rep *r, char *err);

/* Checks that a decoded reply to req carries what req's op promises, so that a caller may
 * index its arrays by the request's sizes: UPSERT n ids; GET n found flags (vectors, when
 * present, n x dim with dim >= 1); SEARCH n = nq rows of k ids and dists; STATS stats; DBSTATS
 * dbstats. A reply whose status is not OMEN_OK passes. OMEN_OK, or OMEN_EPROTO with a
 * one-line reason in err (WIRE_ERRLEN bytes, may be NULL). */
int wire_rep_expect(const wire_req *req, const wire_rep *rep, char *err);

/* Zero-initialisers: shard = -1, everything else empty. */
void wire_req_init(wire_req *r);
void wire_rep_init(wire_rep *r);

/* Release what a decoded message owns and reset it to the initial state. NULL is fine. Also
 * used by servers that filled a reply with malloc'd arrays (every pointer field is freed). */
void wire_req_free(wire_req *r);
void wire_rep_free(wire_rep *r);

#endif
