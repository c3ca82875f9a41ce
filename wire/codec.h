/*
 * The wire codec's internal header, shared by wire/wire.c (keys, checks), wire/encode.c and
 * wire/decode.c and by nothing else: the limits of the pre-scan, the message keys, and the
 * checks the encoder and the decoder both apply (the encoder refuses what the decoder would).
 */
#ifndef OMEN_WIRE_CODEC_H
#define OMEN_WIRE_CODEC_H

#include <stdbool.h>
#include <stdint.h>

#include "wire/wire.h"

/* Limits of the structural pre-scan (docs/WIRE.md, "Limits"). */
#define SCAN_MAX_DEPTH   8    /* nested containers, the top-level map included */
#define SCAN_MAX_MAP     1024 /* entries of one map */
#define SCAN_MAX_OBJECTS (2ull * OMEN_MAX_BATCH + 65536) /* container entries per message */
#define MAX_INDEX_NAME   32                              /* bytes of stats.index */

#define TRY(expr)                                                                                  \
	do {                                                                                       \
		int rc_ = (expr);                                                                  \
		if (rc_ != OMEN_OK)                                                                \
			return rc_;                                                                \
	} while (0)

typedef unsigned long long ull;

/* Writes a one-line reason into err (WIRE_ERRLEN bytes; NULL is fine) and returns status. */
#define fail(err, status, ...) err_set(err, WIRE_ERRLEN, status, __VA_ARGS__)

/* ---- keys ---- */

enum {
	RQ_V,
	RQ_OP,
	RQ_TOKEN,
	RQ_EPOCH,
	RQ_SHARD,
	RQ_NAME,
	RQ_DIM,
	RQ_METRIC,
	RQ_NSHARDS,
	RQ_N,
	RQ_IDS,
	RQ_VEC,
	RQ_META,
	RQ_K,
	RQ_EF,
	RQ_EXACT,
	RQ_PARTIAL,
	RQ_DEADLINE,
	RQ_FILTER,
	RQ_ITYPE,
	RQ_M,
	RQ_EFC,
	RQ_INT8,
	RQ_NLIST,
	RQ_BITS,
	RQ_RAM,
	RQ_NPROBE,
	RQ_START,
	RQ_MODE,
	RQ_NODE,
	RQ_ADDR,
	RQ_REPLICAS,
	RQ_COPIES,
	RQ_NKEYS
};
static const char *const req_keys[RQ_NKEYS] = {
    [RQ_V] = "v",
    [RQ_OP] = "op",
    [RQ_TOKEN] = "tok",
    [RQ_EPOCH] = "epoch",
    [RQ_SHARD] = "shard",
    [RQ_NAME] = "name",
    [RQ_DIM] = "dim",
    [RQ_METRIC] = "metric",
    [RQ_NSHARDS] = "nshards",
    [RQ_N] = "n",
    [RQ_IDS] = "ids",
    [RQ_VEC] = "vec",
    [RQ_META] = "meta",
    [RQ_K] = "k",
    [RQ_EF] = "ef",
    [RQ_EXACT] = "exact",
    [RQ_PARTIAL] = "partial",
    [RQ_DEADLINE] = "dl_ms",
    [RQ_FILTER] = "filter",
    [RQ_ITYPE] = "itype",
    [RQ_M] = "m",
    [RQ_EFC] = "efc",
    [RQ_INT8] = "int8",
    [RQ_NLIST] = "nlist",
    [RQ_BITS] = "bits",
    [RQ_RAM] = "ram",
    [RQ_NPROBE] = "nprobe",
    [RQ_START] = "start",
    [RQ_MODE] = "mode",
    [RQ_NODE] = "node",
    [RQ_ADDR] = "addr",
    [RQ_REPLICAS] = "replicas",
    [RQ_COPIES] = "copies",
};

enum {
	RP_V,
	RP_ST,
	RP_MSG,
	RP_N,
	RP_K,
	RP_DIM,
	RP_IDS,
	RP_DISTS,
	RP_FOUND,
	RP_VEC,
	RP_META,
	RP_COUNT,
	RP_SHT,
	RP_SHA,
	RP_NAMES,
	RP_REPORT,
	RP_STATS,
	RP_DBSTATS,
	RP_FAILED,
	RP_NKEYS
};
static const char *const rep_keys[RP_NKEYS] = {
    [RP_V] = "v",          [RP_ST] = "st",           [RP_MSG] = "msg",       [RP_N] = "n",
    [RP_K] = "k",          [RP_DIM] = "dim",         [RP_IDS] = "ids",       [RP_DISTS] = "dists",
    [RP_FOUND] = "found",  [RP_VEC] = "vec",         [RP_META] = "meta",     [RP_COUNT] = "count",
    [RP_SHT] = "sh_total", [RP_SHA] = "sh_ok",       [RP_NAMES] = "names",   [RP_REPORT] = "report",
    [RP_STATS] = "stats",  [RP_DBSTATS] = "dbstats", [RP_FAILED] = "failed",
};

enum {
	CS_NAME,
	CS_DIM,
	CS_METRIC,
	CS_POINTS,
	CS_DELETED,
	CS_NEXT_ID,
	CS_SEGMENTS,
	CS_VBYTES,
	CS_INDEX,
	CS_INDEXED,
	CS_IBYTES,
	CS_M,
	CS_EFC,
	CS_INT8,
	CS_NLIST,
	CS_NPROBE,
	CS_BITS,
	CS_REPLICAS,
	CS_STALE,
	CS_NKEYS
};
static const char *const stats_keys[CS_NKEYS] = {
    [CS_NAME] = "name",         [CS_DIM] = "dim",          [CS_METRIC] = "metric",
    [CS_POINTS] = "points",     [CS_DELETED] = "deleted",  [CS_NEXT_ID] = "next_id",
    [CS_SEGMENTS] = "segments", [CS_VBYTES] = "vec_bytes", [CS_INDEX] = "index",
    [CS_INDEXED] = "indexed",   [CS_IBYTES] = "idx_bytes", [CS_M] = "m",
    [CS_EFC] = "efc",           [CS_INT8] = "int8",        [CS_NLIST] = "nlist",
    [CS_NPROBE] = "nprobe",     [CS_BITS] = "bits",        [CS_REPLICAS] = "replicas",
    [CS_STALE] = "stale",
};

enum { DS_COLLS, DS_FBYTES, DS_MBYTES, DS_NKEYS };
static const char *const dbstats_keys[DS_NKEYS] = {"colls", "file_bytes", "map_bytes"};

static const char *const op_names[WIRE_OP_COUNT] = {
    "health", "create", "drop",  "list",  "stats", "dbstats", "upsert", "get",  "delete",
    "count",  "search", "build", "check", "flush", "ids",     "fence",  "join", "copyfail",
};

/* What each op requires of a request. */
enum {
	NEED_NAME = 1,
	NEED_N = 2,
	NEED_DIM = 4,
	NEED_K = 8,
	NEED_IDS = 16,
	NEED_VEC = 32,
	NEED_ADDR = 64
};
static const unsigned op_needs[WIRE_OP_COUNT] = {
    [WIRE_CREATE] = NEED_NAME | NEED_DIM,
    [WIRE_DROP] = NEED_NAME,
    [WIRE_STATS] = NEED_NAME,
    [WIRE_UPSERT] = NEED_NAME | NEED_N | NEED_DIM | NEED_VEC,
    [WIRE_GET] = NEED_NAME | NEED_N | NEED_IDS,
    [WIRE_DELETE] = NEED_NAME | NEED_N | NEED_IDS,
    [WIRE_COUNT] = NEED_NAME,
    [WIRE_SEARCH] = NEED_NAME | NEED_N | NEED_DIM | NEED_K | NEED_VEC,
    [WIRE_BUILD] = NEED_NAME,
    [WIRE_CHECK] = NEED_NAME,
    [WIRE_IDS] = NEED_NAME | NEED_N,
    [WIRE_JOIN] = NEED_ADDR,
    [WIRE_COPYFAIL] = NEED_NAME | NEED_N | NEED_IDS,
};

/* Index kinds a stats reply may name; anything else decodes as "?". */
static const char *const index_names[] = {"flat", "hnsw", "ivf"};

int wire_req_check(const wire_req *r, char *err);
int wire_rep_check(const wire_rep *r, char *err);
int wire_stats_check(const omen_collection_stats *s, char *err);
void wire_swap_le(void *p, uint64_t count, size_t width);
bool wire_name_field_ok(const char *name);
bool wire_too_long(const char *s);
bool wire_strs_too_long(char *const *v, uint64_t n);
bool wire_bin_fits(uint64_t count, uint64_t width);

/* Frees the first n strings of v and v. */
void wire_free_strs(char **v, uint64_t n);

#endif
