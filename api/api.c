/*
 * The public API's entry points. Each call checks its handle and goes to the implementation
 * that made it: the embedded engine (omen_open) or the remote client (omen_connect). The CLI,
 * the Python package and applications link against these functions only.
 */
#include <string.h>

#include "api/api.h"
#include "client/client.h"
#include "engine/engine.h"
#include "storage/storage.h"

#define EDB(db)  ((eng_db *)(db))
#define RDB(db)  ((rdb *)(db))
#define ECOLL(c) ((eng_coll *)(c))
#define RCOLL(c) ((rcoll *)(c))

/* Refuses a NULL handle with a message naming it. */
#define NEED(h, what)                                                                              \
	do {                                                                                       \
		if (!(h))                                                                          \
			return status_set(OMEN_EINVAL, what " handle is NULL");                    \
	} while (0)

int omen_open(const char *path, const omen_open_options *opt, omen_db **out)
{
	eng_db *db;
	if (!out)
		return status_set(OMEN_EINVAL, "output handle is NULL");
	int st = eng_open(path, opt, &db);
	if (st == OMEN_OK)
		*out = &db->base;
	return st;
}

int omen_connect(const char *url, const omen_connect_options *opt, omen_db **out)
{
	rdb *db;
	if (!out)
		return status_set(OMEN_EINVAL, "output handle is NULL");
	int st = client_connect(url, opt, &db);
	if (st == OMEN_OK)
		*out = &db->base;
	return st;
}

int omen_is_remote_url(const char *path)
{
	return path && strncmp(path, "tcp://", 6) == 0;
}

void omen_close(omen_db *db)
{
	if (!db)
		return;
	if (db->remote)
		client_close(RDB(db));
	else
		eng_close(EDB(db));
}

const char *omen_errmsg(const omen_db *db)
{
	(void)db;
	return status_msg();
}

int omen_flush(omen_db *db)
{
	NEED(db, "database");
	return db->remote ? client_flush(RDB(db)) : eng_flush(EDB(db));
}

int omen_db_stats_get(omen_db *db, omen_db_stats *out)
{
	NEED(db, "database");
	return db->remote ? client_db_stats_get(RDB(db), out) : eng_db_stats_get(EDB(db), out);
}

int omen_create_collection(omen_db *db, const char *name, size_t dim, omen_metric metric)
{
	NEED(db, "database");
	return db->remote ? client_create_collection(RDB(db), name, dim, metric)
	                  : eng_create_collection(EDB(db), name, dim, metric);
}

int omen_drop_collection(omen_db *db, const char *name)
{
	NEED(db, "database");
	return db->remote ? client_drop_collection(RDB(db), name)
	                  : eng_drop_collection(EDB(db), name);
}

int omen_list_collections(omen_db *db, char ***names_out, size_t *n_out)
{
	NEED(db, "database");
	return db->remote ? client_list_collections(RDB(db), names_out, n_out)
	                  : eng_list_collections(EDB(db), names_out, n_out);
}

int omen_collection_open(omen_db *db, const char *name, omen_collection **out)
{
	NEED(db, "database");
	if (!out)
		return status_set(OMEN_EINVAL, "output handle is NULL");
	if (db->remote) {
		rcoll *c;
		int st = client_collection_open(RDB(db), name, &c);
		if (st == OMEN_OK)
			*out = &c->base;
		return st;
	}
	eng_coll *c;
	int st = eng_collection_open(EDB(db), name, &c);
	if (st == OMEN_OK)
		*out = &c->base;
	return st;
}

void omen_collection_close(omen_collection *c)
{
	if (!c)
		return;
	if (c->remote)
		client_collection_close(RCOLL(c));
	else
		eng_collection_close(ECOLL(c));
}

int omen_collection_stats_get(omen_collection *c, omen_collection_stats *out)
{
	NEED(c, "collection");
	return c->remote ? client_collection_stats_get(RCOLL(c), out)
	                 : eng_collection_stats_get(ECOLL(c), out);
}

int omen_count(omen_collection *c, uint64_t *out)
{
	NEED(c, "collection");
	return c->remote ? client_count(RCOLL(c), out) : eng_count(ECOLL(c), out);
}

int omen_list_ids(omen_collection *c, uint64_t start, size_t max, uint64_t *ids, size_t *n)
{
	NEED(c, "collection");
	return c->remote ? client_list_ids(RCOLL(c), start, max, ids, n)
	                 : eng_list_ids(ECOLL(c), start, max, ids, n);
}

int omen_upsert(omen_collection *c, const omen_batch *batch, uint64_t *assigned_ids)
{
	NEED(c, "collection");
	return c->remote ? client_upsert(RCOLL(c), batch, assigned_ids)
	                 : eng_upsert(ECOLL(c), batch, assigned_ids);
}

int omen_get(omen_collection *c, const uint64_t *ids, size_t n, float *vectors, char **metadata,
             uint8_t *found)
{
	NEED(c, "collection");
	return c->remote ? client_get(RCOLL(c), ids, n, vectors, metadata, found)
	                 : eng_get(ECOLL(c), ids, n, vectors, metadata, found);
}

int omen_delete(omen_collection *c, const uint64_t *ids, size_t n, size_t *deleted)
{
	NEED(c, "collection");
	return c->remote ? client_delete(RCOLL(c), ids, n, deleted)
	                 : eng_delete(ECOLL(c), ids, n, deleted);
}

int omen_search(omen_collection *c, const float *queries, size_t nq, size_t dim,
                const omen_search_params *params, uint64_t *ids_out, float *dists_out)
{
	NEED(c, "collection");
	return c->remote ? client_search(RCOLL(c), queries, nq, dim, params, ids_out, dists_out)
	                 : eng_search(ECOLL(c), queries, nq, dim, params, ids_out, dists_out);
}

int omen_build_index(omen_collection *c, const omen_index_params *params)
{
	NEED(c, "collection");
	return c->remote ? client_build_index(RCOLL(c), params) : eng_build_index(ECOLL(c), params);
}

int omen_check(omen_collection *c, char **report)
{
	NEED(c, "collection");
	return c->remote ? client_check(RCOLL(c), report) : eng_check(ECOLL(c), report);
}
