/*
 * Internals shared by the files of coordinator/: the metadata store and the coordinator's
 * state.
 */
#ifndef OMEN_COORDINATOR_INTERNAL_H
#define OMEN_COORDINATOR_INTERNAL_H

#include <lmdb.h>
#include <pthread.h>

#include "common/common.h"
#include "coordinator/coordinator.h"

#define COORD_DEFAULT_SHARDS 8

/* A collection as the coordinator knows it. */
typedef struct coll_info {
	char name[OMEN_MAX_NAME + 1];
	uint32_t dim;
	omen_metric metric;
	uint32_t nshards;
} coll_info;

typedef struct meta {
	MDB_env *env;
	MDB_dbi dbi;
} meta;

int meta_open(meta *m, const char *data);
void meta_close(meta *m);
/* OMEN_ENOTFOUND (with a message) when there is no such collection. */
int meta_get(meta *m, const char *name, coll_info *out);
int meta_put(meta *m, const coll_info *ci);
int meta_del(meta *m, const char *name);
/* Every collection in name order; *out is malloc'd. */
int meta_list(meta *m, coll_info **out, size_t *n_out);

/* The next id to assign in a collection (ids given by no caller), kept in memory: learnt from
 * the shards at first use, then advanced under the coordinator's lock. */
typedef struct next_id {
	char name[OMEN_MAX_NAME + 1];
	uint64_t next;
	struct next_id *link;
} next_id;

struct coord {
	coord_config cfg;
	char *token;
	meta meta;
	peer **nodes; /* one per shard node */
	size_t nnodes;
	pthread_mutex_t mu; /* guards ids and serialises collection changes */
	next_id *ids;
	srv *srv;
	metrics *metrics;
	http_srv *http;
};

#endif
