/*
 * The embedded implementation's operations table: each entry hands the call to the engine
 * (engine/engine.h) with the engine's own handle types.
 */
#include "api/api.h"
#include "base/base.h"
#include "engine/engine.h"

int api_embedded_open(const char *path, const omen_open_options *opt, void **db)
{
	eng_db *d;
	int st = eng_open(path, opt, &d);
	if (st == OMEN_OK)
		*db = d;
	return st;
}

static void e_close(void *db)
{
	eng_close(db);
}

static int e_flush(void *db)
{
	return eng_flush(db);
}

static int e_db_stats(void *db, omen_db_stats *out)
{
	return eng_db_stats_get(db, out);
}

/* An embedded database is one copy of one shard: a layout beyond that is a mistake to report,
 * not to ignore. */
static int e_create(void *db, const char *name, size_t dim, omen_metric metric,
                    const omen_collection_options *opt)
{
	if (opt->shards > 1 || opt->replicas > 1) {
		int shards = opt->shards > 1;
		return status_set(OMEN_EINVAL,
		                  "collection '%.128s': shards and replicas apply to a cluster; an "
		                  "embedded database takes 0 or 1 %s, got %u",
		                  name ? name : "", shards ? "shards" : "replicas",
		                  shards ? opt->shards : opt->replicas);
	}
	return eng_create_collection(db, name, dim, metric);
}

static int e_drop(void *db, const char *name)
{
	return eng_drop_collection(db, name);
}

static int e_list(void *db, char ***names, size_t *n)
{
	return eng_list_collections(db, names, n);
}

static int e_coll_open(void *db, const char *name, void **coll)
{
	eng_coll *c;
	int st = eng_collection_open(db, name, &c);
	if (st == OMEN_OK)
		*coll = c;
	return st;
}

static void e_coll_close(void *coll)
{
	eng_collection_close(coll);
}

static int e_stats(void *coll, omen_collection_stats *out)
{
	return eng_collection_stats_get(coll, out);
}

static int e_count(void *coll, uint64_t *out)
{
	return eng_count(coll, out);
}

static int e_list_ids(void *coll, uint64_t start, size_t max, uint64_t *ids, size_t *n)
{
	return eng_list_ids(coll, start, max, ids, n);
}

static int e_upsert(void *coll, const omen_batch *batch, uint64_t *assigned_ids)
{
	return eng_upsert(coll, batch, assigned_ids);
}

static int e_get(void *coll, const uint64_t *ids, size_t n, float *vectors, char **metadata,
                 uint8_t *found)
{
	return eng_get(coll, ids, n, vectors, metadata, found);
}

static int e_remove(void *coll, const uint64_t *ids, size_t n, size_t *deleted)
{
	return eng_delete(coll, ids, n, deleted);
}

static int e_search(void *coll, const float *queries, size_t nq, size_t dim,
                    const omen_search_params *params, uint64_t *ids_out, float *dists_out)
{
	return eng_search(coll, queries, nq, dim, params, ids_out, dists_out);
}

static int e_build_index(void *coll, const omen_index_params *params)
{
	return eng_build_index(coll, params);
}

static int e_check(void *coll, char **report)
{
	return eng_check(coll, report);
}

const api_ops api_embedded = {
    .name = "embedded",
    .close = e_close,
    .flush = e_flush,
    .db_stats = e_db_stats,
    .create_collection = e_create,
    .drop_collection = e_drop,
    .list_collections = e_list,
    .collection_open = e_coll_open,
    .collection_close = e_coll_close,
    .collection_stats = e_stats,
    .count = e_count,
    .list_ids = e_list_ids,
    .upsert = e_upsert,
    .get = e_get,
    .remove = e_remove,
    .search = e_search,
    .build_index = e_build_index,
    .check = e_check,
};
