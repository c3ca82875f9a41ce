/*
 * The client layer: the remote implementation of the public API. Each call becomes one wire
 * request (or a few, for batches larger than a message) to a coordinator; api/remote.c calls
 * these for handles made by omen_connect. Each client_X does what omen_X documents.
 */
#ifndef OMEN_CLIENT_H
#define OMEN_CLIENT_H

#include "net/net.h"

typedef struct rdb {
	peer *p;
	char *token;
	uint32_t timeout_ms;
} rdb;

typedef struct rcoll {
	rdb *db;
	char name[OMEN_MAX_NAME + 1];
	uint32_t dim;
	omen_metric metric;
} rcoll;

int client_connect(const char *url, const omen_connect_options *opt, rdb **out);
void client_close(rdb *db);
int client_flush(rdb *db);
int client_db_stats_get(rdb *db, omen_db_stats *out);
int client_create_collection(rdb *db, const char *name, size_t dim, omen_metric metric,
                             const omen_collection_options *opt);
int client_drop_collection(rdb *db, const char *name);
int client_list_collections(rdb *db, char ***names_out, size_t *n_out);
int client_collection_open(rdb *db, const char *name, rcoll **out);
void client_collection_close(rcoll *c);
int client_collection_stats_get(rcoll *c, omen_collection_stats *out);
int client_count(rcoll *c, uint64_t *out);
int client_list_ids(rcoll *c, uint64_t start, size_t max, uint64_t *ids, size_t *n);
int client_upsert(rcoll *c, const omen_batch *b, uint64_t *assigned_ids);
int client_get(rcoll *c, const uint64_t *ids, size_t n, float *vectors, char **metadata,
               uint8_t *found);
int client_delete(rcoll *c, const uint64_t *ids, size_t n, size_t *deleted);
int client_search(rcoll *c, const float *queries, size_t nq, size_t dim,
                  const omen_search_params *params, uint64_t *ids_out, float *dists_out);
int client_build_index(rcoll *c, const omen_index_params *params);
int client_check(rcoll *c, char **report);

#endif
