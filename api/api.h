/*
 * The api layer's internal header. Every omen_* symbol is defined in api/; a database handle is
 * an implementation's handle with the operations table that serves it, after SQLite's
 * sqlite3_io_methods and canonical/raft's raft_io: the embedded engine's table is in
 * embedded.c, the remote client's in remote.c, and api.c calls through the table without
 * knowing which it holds.
 */
#ifndef OMEN_API_H
#define OMEN_API_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "omendb/omendb.h"

/* One implementation of the public API. Each entry does what the omen_* call of the same name
 * documents, on the implementation's own handles (db: what open returned; coll: what
 * collection_open returned). The api checks the public handles and output handles before it
 * calls an entry; the entries check everything else. */
typedef struct api_ops {
	const char *name; /* "embedded", "remote" */
	void (*close)(void *db);
	int (*flush)(void *db);
	int (*db_stats)(void *db, omen_db_stats *out);
	int (*create_collection)(void *db, const char *name, size_t dim, omen_metric metric,
	                         const omen_collection_options *opt); /* opt is not NULL */
	int (*drop_collection)(void *db, const char *name);
	int (*list_collections)(void *db, char ***names, size_t *n);
	int (*collection_open)(void *db, const char *name, void **coll);
	void (*collection_close)(void *coll);
	int (*collection_stats)(void *coll, omen_collection_stats *out);
	int (*count)(void *coll, uint64_t *out);
	int (*list_ids)(void *coll, uint64_t start, size_t max, uint64_t *ids, size_t *n);
	int (*upsert)(void *coll, const omen_batch *batch, uint64_t *assigned_ids);
	int (*get)(void *coll, const uint64_t *ids, size_t n, float *vectors, char **metadata,
	           uint8_t *found);
	int (*remove)(void *coll, const uint64_t *ids, size_t n, size_t *deleted);
	int (*search)(void *coll, const float *queries, size_t nq, size_t dim,
	              const omen_search_params *params, uint64_t *ids_out, float *dists_out);
	int (*build_index)(void *coll, const omen_index_params *params);
	int (*check)(void *coll, char **report);
} api_ops;

extern const api_ops api_embedded; /* embedded.c: the engine */
extern const api_ops api_remote;   /* remote.c: the client of a coordinator */

/* Opens the implementations' databases: *db receives their handle. */
int api_embedded_open(const char *path, const omen_open_options *opt, void **db);
int api_remote_connect(const char *url, const omen_connect_options *opt, void **db);

/* The public handles. A database keeps its open collection handles, so that omen_close can
 * close those the caller left open. */
struct omen_db {
	const api_ops *ops;
	void *impl;
	pthread_mutex_t mu;    /* guards open */
	omen_collection *open; /* collection handles not yet closed */
};

struct omen_collection {
	const api_ops *ops;
	void *impl;
	omen_db *db;
	omen_collection *prev, *next; /* in db->open */
};

#endif
