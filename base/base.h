/*
 * The base layer: what every other layer shares, each rule written once here. Status codes
 * (their names, HTTP statuses and texts in one table) and the calling thread's detail message;
 * byte order; files written durably; monotonic time; logging; the header every persisted
 * record starts with; the collection-name rule; lists of point ids; the names of metrics,
 * index types and devices; a bounded msgpack cursor; and the allocation functions that tests
 * fail on purpose. It depends on libc alone (and on the public header for status codes and
 * limits). docs/ARCHITECTURE.md draws the layers.
 */
#ifndef OMEN_BASE_H
#define OMEN_BASE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "omendb/omendb.h"

/* ---- status codes and messages (status.c) ---- */

/* Codes 0..STATUS_COUNT-1 are the public enum's; the table in status.c has one row for each,
 * and tests/base/test_status.c checks it against include/omendb/omendb.h. */
#define STATUS_COUNT (OMEN_ESTALE + 1)

/* Records a formatted detail message for the calling thread and returns code, so that error
 * paths read `return status_set(OMEN_EINVAL, "k must be ...")`. The arguments may include
 * status_msg() itself (to prefix the current message). */
int status_set(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The calling thread's last message ("" when none). */
const char *status_msg(void);

/* A code's name as clients see it ("EINVAL"; "OK"; "EUNKNOWN" for a code out of range). */
const char *status_name(int code);

/* The HTTP status a code answers with (200 for OMEN_OK; 500 for a code out of range). */
unsigned status_http(int code);

/* A static English description of a code (omen_strerror). */
const char *status_text(int code);

/* Writes a formatted one-line reason into err (errlen bytes; err may be NULL) and returns
 * status: the convention of the codecs and parsers, which report into a caller's buffer rather
 * than the thread's message. */
int err_set(char *err, size_t errlen, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- little-endian and big-endian integers ---- */

static inline void le16_put(unsigned char *p, uint16_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
}
static inline uint16_t le16_get(const unsigned char *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}
static inline void le32_put(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}
static inline uint32_t le32_get(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline void le64_put(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}
static inline uint64_t le64_get(const unsigned char *p)
{
	return (uint64_t)le32_get(p) | (uint64_t)le32_get(p + 4) << 32;
}
static inline void be32_put(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (24 - 8 * i));
}
static inline uint32_t be32_get(const unsigned char *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline void be64_put(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (56 - 8 * i));
}
static inline uint64_t be64_get(const unsigned char *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/* ---- files (file.c) ---- */

/* Creates directory dir and its missing parents (mkdir -p), mode 0755. */
int dir_create(const char *dir);

/* Replaces the file at path by one holding text, durably: written to path.tmp, synced, renamed
 * over path, the directory synced. A crash leaves the old file or the new one, never a part. */
int file_write_atomic(const char *path, const char *text);

/* ---- time ---- */

/* Milliseconds of the monotonic clock. */
static inline uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Waits on cv (mu held) until signalled or ms milliseconds have passed. */
static inline void cond_wait_ms(pthread_cond_t *cv, pthread_mutex_t *mu, unsigned ms)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_nsec += (long)ms * 1000000L;
	until.tv_sec += until.tv_nsec / 1000000000L;
	until.tv_nsec %= 1000000000L;
	pthread_cond_timedwait(cv, mu, &until);
}

/* ---- logging (log.c) ---- */

enum { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

/* Sets the level (messages above it are dropped) and the name printed on each line. */
void log_init(int level, const char *name);

/* Parses "error", "warn", "info" or "debug"; -1 otherwise. */
int log_level_parse(const char *s);

/* Writes one line to stderr: UTC time, level, name, message. Thread-safe. */
void log_msg(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- the header of every persisted record (record.c) ----
 * Every record OmenDB writes, in LMDB or in files, starts with these 8 bytes:
 *   0  4  magic, four ASCII letters naming the record ("OMVC": a vector chunk)
 *   4  2  record version, u16 LE (REC_VERSION)
 *   6  2  reserved, zero
 * docs/FORMAT.md lists the magics. */

#define REC_HEADER  8
#define REC_VERSION 1

/* Writes the header of a record named magic at p. */
void rec_stamp(unsigned char *p, const char *magic);

/* True when bytes (len of them, at least min and at least REC_HEADER) start with magic and
 * REC_VERSION. */
bool rec_check(const void *bytes, size_t len, const char *magic, size_t min);

/* ---- collection names (names.c) ---- */

/* True when s[0..len) is a collection name: 1..OMEN_MAX_NAME bytes of [A-Za-z0-9_.-]. */
bool name_valid(const char *s, size_t len);

/* OMEN_OK when name (NUL-terminated, may be NULL) is a collection name; else OMEN_EINVAL with
 * a message saying which rule it breaks. */
int name_check(const char *name);

/* ---- names of metrics, index types and devices (names.c) ---- */

/* Each parses its lower-case name ("cosine", "hnsw", "gpu") into *out: OMEN_OK, or OMEN_EINVAL
 * with a message listing the names. The _name functions return a static string, "?" for a
 * value out of range. */
int metric_parse(const char *name, omen_metric *out);
const char *metric_name(omen_metric metric);
int index_type_parse(const char *name, omen_index_type *out);
const char *index_type_name(omen_index_type type);
int device_parse(const char *name, omen_device *out);
const char *device_name(omen_device device);

/* ---- defaults of the public option structs (params.c) ---- */

#define CONNECT_TIMEOUT_DEFAULT 30000 /* omen_connect_options.timeout_ms */

/* Each fills *p with the defaults include/omendb/omendb.h documents. */
void open_options_default(omen_open_options *opt);
void search_params_default(omen_search_params *p);
void index_params_default(omen_index_params *p);
void collection_options_default(omen_collection_options *opt);
void connect_options_default(omen_connect_options *opt);

/* Checks the ranges of omen_index_params that do not depend on a collection: OMEN_OK, or
 * OMEN_EINVAL with the message that names the first field out of range. The engine checks
 * the rest (dimensions, points) against the collection. */
int index_params_check(const omen_index_params *p);

/* ---- the order of search results ---- */

/* True when a result (distance d1, id i1) comes before (d2, i2): the closer first, and of two
 * at the same distance the smaller id, whatever the order they were found in (the public
 * API's contract, kept alike by the engine's top k and the coordinator's merge). */
static inline bool result_before(float d1, uint64_t i1, float d2, uint64_t i2)
{
	return d1 < d2 || (d1 == d2 && i1 < i2);
}

/* ---- lists of point ids (ids.c) ---- */

/* Sorts ids ascending. */
void ids_sort(uint64_t *ids, size_t n);

/* Sorts ids and removes repeats; returns how many distinct ids remain. */
size_t ids_unique(uint64_t *ids, size_t n);

/* The ids of one batch: OMEN_OK when none is OMEN_NO_ID and none appears twice; else
 * OMEN_EINVAL naming the id ("id 7 appears twice in the batch"), or OMEN_ENOMEM. Allocates
 * only when ids are not strictly ascending. */
int ids_check(const uint64_t *ids, size_t n);

/* ---- allocation (alloc.c) ----
 * The engine and the wire allocate through these, so that a test can make the n-th next
 * allocation fail (after canonical/raft's test/lib/fault.h and SQLite's test_malloc.c). */

void *mem_alloc(size_t size);
void *mem_calloc(size_t n, size_t size);
void *mem_realloc(void *p, size_t size);
char *mem_strdup(const char *s);
char *mem_strndup(const char *s, size_t n);
void mem_free(void *p);

/* Lets the next n allocations succeed and makes the one after them fail (one failure; later
 * ones succeed again). Process-wide and thread-safe; for tests. */
void mem_fault_after(long n);
void mem_fault_clear(void);

/* Allocations failed on purpose since the last mem_fault_after. */
long mem_fault_count(void);

/* ---- a bounded msgpack cursor (mpc.c) ----
 * Reads msgpack from outside bytes (the network, the disk) without allocating: every length
 * is checked against the bytes left, and a container's count must fit in them (each entry
 * takes a byte at least), so work is linear in the input. msgpack-c's unpacker, by contrast,
 * allocates by the counts a message declares. Each reader returns false, with the cursor at
 * an unspecified place, when the next object is not of its type or is truncated. */

typedef struct mpc {
	const unsigned char *p;
	size_t len, pos;
} mpc;

static inline mpc mpc_make(const void *p, size_t len)
{
	mpc c = {p, len, 0};
	return c;
}

static inline size_t mpc_left(const mpc *c)
{
	return c->len - c->pos;
}

/* Reads w (1..8) bytes as a big-endian unsigned integer. */
static inline bool mpc_be(mpc *c, unsigned w, uint64_t *v)
{
	if (w > c->len - c->pos)
		return false;
	uint64_t x = 0;
	for (unsigned i = 0; i < w; i++)
		x = x << 8 | c->p[c->pos++];
	*v = x;
	return true;
}

bool mpc_int(mpc *c, int64_t *v);   /* any integer within int64 */
bool mpc_uint(mpc *c, uint64_t *v); /* any non-negative integer, up to UINT64_MAX */
bool mpc_u32(mpc *c, uint32_t *v);
bool mpc_i32(mpc *c, int *v);
bool mpc_str(mpc *c, const char **s, size_t *n); /* borrowed: points into the input */
bool mpc_bin(mpc *c, const unsigned char **d, size_t *n);
bool mpc_map(mpc *c, uint64_t *n); /* a map header: n key/value pairs follow */
bool mpc_arr(mpc *c, uint64_t *n);
/* A string equal to key. */
bool mpc_key(mpc *c, const char *key);

/* A scalar: nil, a boolean, an integer, a float or a string. */
typedef enum { MPC_NIL, MPC_BOOL, MPC_INT, MPC_UINT, MPC_FLOAT, MPC_STR } mpc_type;
typedef struct mpc_value {
	mpc_type type;
	union {
		bool b;
		int64_t i;  /* MPC_INT: any integer within int64 */
		uint64_t u; /* MPC_UINT: an unsigned integer above INT64_MAX */
		double d;   /* MPC_FLOAT: float32 or float64, widened */
		struct {
			const char *s; /* borrowed */
			size_t n;
		} str;
	} v;
} mpc_value;

/* Reads a scalar; false for containers, bin, ext and the never-used byte 0xc1. */
bool mpc_scalar(mpc *c, mpc_value *out);

/* Limits on what mpc_skip walks through: containers nested at most depth deep (the object
 * skipped at depth 1), maps of at most map_max entries (0: no limit), and at most
 * *budget container entries in all (NULL: no limit; decremented as entries are met). */
typedef struct mpc_limits {
	int depth;
	uint64_t map_max;
	uint64_t *budget;
} mpc_limits;

/* Skips exactly one object of any type within lim. OMEN_OK, or OMEN_EPROTO with a one-line
 * reason in err (errlen bytes; NULL is fine) naming the byte where it went wrong. */
int mpc_skip(mpc *c, const mpc_limits *lim, char *err, size_t errlen);

#endif
