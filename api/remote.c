/*
 * The remote implementation's operations table: each entry hands the call to the client of a
 * coordinator (client/client.h) with the client's own handle types.
 */
#include "api/api.h"
#include "client/client.h"

int api_remote_connect(const char *url, const omen_connect_options *opt, void **db)
{
	rdb *d;
	int st = client_connect(url, opt, &d);
	if (st == OMEN_OK)
		*db = d;
	return st;
}

static void r_close(void *db)
{
	client_close(db);
}

static int r_flush(void *db)
{
	return client_flush(db);
}

static int r_db_stats(void *db, omen_db_stats *out)
{
	return client_db_stats_get(db, out);
}

static int r_create(void *db, const char *name, size_t dim, omen_metric metric,
                    const omen_collection_options *opt)
{
	return client_create_collection(db, name, dim, metric, opt);
}

static int r_drop(void *db, const char *name)
{
	return client_drop_collection(db, name);
}

static int r_list(void *db, char ***names, size_t *n)
{
	return client_list_collections(db, names, n);
}

static int r_coll_open(void *db, const char *name, void **coll)
{
	rcoll *c;
	int st = client_collection_open(db, name, &c);
	if (st == OMEN_OK)
		*coll = c;
	return st;
}

static void r_coll_close(void *coll)
{
	client_collection_close(coll);
}

static int r_stats(void *coll, omen_collection_stats *out)
{
	return client_collection_stats_get(coll, out);
}

static int r_count(void *coll, uint64_t *out)
{
	return client_count(coll, out);
}

static int r_list_ids(void *coll, uint64_t start, size_t max, uint64_t *ids, size_t *n)
{
	return client_list_ids(coll, start, max, ids, n);
}

static int r_upsert(void *coll, const omen_batch *batch, uint64_t *assigned_ids)
{
	return client_upsert(coll, batch, assigned_ids);
}

static int r_get(void *coll, const uint64_t *ids, size_t n, float *vectors, char **metadata,
                 uint8_t *found)
{
	return client_get(coll, ids, n, vectors, metadata, found);
}

static int r_remove(void *coll, const uint64_t *ids, size_t n, size_t *deleted)
{
	return client_delete(coll, ids, n, deleted);
}

static int r_search(void *coll, const float *queries, size_t nq, size_t dim,
                    const omen_search_params *params, uint64_t *ids_out, float *dists_out)
{
	return client_search(coll, queries, nq, dim, params, ids_out, dists_out);
}

static int r_build_index(void *coll, const omen_index_params *params)
{
	return client_build_index(coll, params);
}

static int r_check(void *coll, char **report)
{
	return client_check(coll, report);
}

const api_ops api_remote = {
    .name = "remote",
    .close = r_close,
    .flush = r_flush,
    .db_stats = r_db_stats,
    .create_collection = r_create,
    .drop_collection = r_drop,
    .list_collections = r_list,
    .collection_open = r_coll_open,
    .collection_close = r_coll_close,
    .collection_stats = r_stats,
    .count = r_count,
    .list_ids = r_list_ids,
    .upsert = r_upsert,
    .get = r_get,
    .remove = r_remove,
    .search = r_search,
    .build_index = r_build_index,
    .check = r_check,
};
