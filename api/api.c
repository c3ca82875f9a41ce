/*
 * The public API's entry points (include/omendb/omendb.h): every omen_* symbol is defined here
 * or in the operations tables beside it. A call checks its handle and goes through the
 * handle's table to the implementation that made it (api.h); the helpers that do not depend
 * on an implementation (status texts, names, option defaults, freeing) answer from base/.
 */
#include <stdlib.h>
#include <string.h>

#include "api/api.h"
#include "base/base.h"
#include "engine/engine.h"
#include "storage/storage.h"

/* Refuses a NULL handle with a message naming it. */
#define NEED(h, what)                                                                              \
	do {                                                                                       \
		if (!(h))                                                                          \
			return status_set(OMEN_EINVAL, what " is NULL");                           \
	} while (0)

/* ---- databases ---- */

/* Wraps an implementation's database handle in a public one; on failure closes it. */
static int db_wrap(const api_ops *ops, void *impl, omen_db **out)
{
	omen_db *db = calloc(1, sizeof *db);
	if (!db) {
		ops->close(impl);
		return status_set(OMEN_ENOMEM, "out of memory");
	}
	db->ops = ops;
	db->impl = impl;
	pthread_mutex_init(&db->mu, NULL);
	*out = db;
	return OMEN_OK;
}

int omen_open(const char *path, const omen_open_options *opt, omen_db **out)
{
	void *impl;
	NEED(out, "output handle");
	int st = api_embedded_open(path, opt, &impl);
	return st == OMEN_OK ? db_wrap(&api_embedded, impl, out) : st;
}

int omen_connect(const char *url, const omen_connect_options *opt, omen_db **out)
{
	void *impl;
	NEED(out, "output handle");
	int st = api_remote_connect(url, opt, &impl);
	return st == OMEN_OK ? db_wrap(&api_remote, impl, out) : st;
}

int omen_is_remote_url(const char *path)
{
	return path && strncmp(path, "tcp://", 6) == 0;
}

void omen_close(omen_db *db)
{
	if (!db)
		return;
	while (db->open)
		omen_collection_close(db->open);
	db->ops->close(db->impl);
	pthread_mutex_destroy(&db->mu);
	free(db);
}

int omen_flush(omen_db *db)
{
	NEED(db, "database handle");
	return db->ops->flush(db->impl);
}

int omen_db_stats_get(omen_db *db, omen_db_stats *out)
{
	NEED(db, "database handle");
	NEED(out, "output");
	return db->ops->db_stats(db->impl, out);
}

int omen_create_collection(omen_db *db, const char *name, size_t dim, omen_metric metric)
{
	return omen_create_collection_opts(db, name, dim, metric, NULL);
}

int omen_create_collection_opts(omen_db *db, const char *name, size_t dim, omen_metric metric,
                                const omen_collection_options *opt)
{
	omen_collection_options d;
	NEED(db, "database handle");
	collection_options_default(&d);
	return db->ops->create_collection(db->impl, name, dim, metric, opt ? opt : &d);
}

int omen_drop_collection(omen_db *db, const char *name)
{
	NEED(db, "database handle");
	return db->ops->drop_collection(db->impl, name);
}

int omen_list_collections(omen_db *db, char ***names_out, size_t *n_out)
{
	NEED(db, "database handle");
	NEED(names_out && n_out, "output");
	return db->ops->list_collections(db->impl, names_out, n_out);
}

/* ---- collections ---- */

int omen_collection_open(omen_db *db, const char *name, omen_collection **out)
{
	NEED(db, "database handle");
	NEED(out, "output handle");
	omen_collection *c = calloc(1, sizeof *c);
	if (!c)
		return status_set(OMEN_ENOMEM, "out of memory");
	int st = db->ops->collection_open(db->impl, name, &c->impl);
	if (st != OMEN_OK) {
		free(c);
		return st;
	}
	c->ops = db->ops;
	c->db = db;
	pthread_mutex_lock(&db->mu);
	c->next = db->open;
	if (db->open)
		db->open->prev = c;
	db->open = c;
	pthread_mutex_unlock(&db->mu);
	*out = c;
	return OMEN_OK;
}

void omen_collection_close(omen_collection *c)
{
	if (!c)
		return;
	omen_db *db = c->db;
	pthread_mutex_lock(&db->mu);
	if (c->prev)
		c->prev->next = c->next;
	else
		db->open = c->next;
	if (c->next)
		c->next->prev = c->prev;
	pthread_mutex_unlock(&db->mu);
	c->ops->collection_close(c->impl);
	free(c);
}

int omen_collection_stats_get(omen_collection *c, omen_collection_stats *out)
{
	NEED(c, "collection handle");
	NEED(out, "output");
	return c->ops->collection_stats(c->impl, out);
}

int omen_count(omen_collection *c, uint64_t *out)
{
	NEED(c, "collection handle");
	NEED(out, "output");
	return c->ops->count(c->impl, out);
}

int omen_list_ids(omen_collection *c, uint64_t start, size_t max, uint64_t *ids, size_t *n)
{
	NEED(c, "collection handle");
	NEED(ids && n, "output");
	return c->ops->list_ids(c->impl, start, max, ids, n);
}

int omen_upsert(omen_collection *c, const omen_batch *batch, uint64_t *assigned_ids)
{
	NEED(c, "collection handle");
	return c->ops->upsert(c->impl, batch, assigned_ids);
}

int omen_get(omen_collection *c, const uint64_t *ids, size_t n, float *vectors, char **metadata,
             uint8_t *found)
{
	NEED(c, "collection handle");
	return c->ops->get(c->impl, ids, n, vectors, metadata, found);
}

int omen_delete(omen_collection *c, const uint64_t *ids, size_t n, size_t *deleted)
{
	NEED(c, "collection handle");
	return c->ops->remove(c->impl, ids, n, deleted);
}

int omen_search(omen_collection *c, const float *queries, size_t nq, size_t dim,
                const omen_search_params *params, uint64_t *ids_out, float *dists_out)
{
	NEED(c, "collection handle");
	return c->ops->search(c->impl, queries, nq, dim, params, ids_out, dists_out);
}

int omen_build_index(omen_collection *c, const omen_index_params *params)
{
	NEED(c, "collection handle");
	return c->ops->build_index(c->impl, params);
}

int omen_check(omen_collection *c, char **report)
{
	NEED(c, "collection handle");
	return c->ops->check(c->impl, report);
}

/* ---- what does not depend on the implementation ---- */

const char *omen_strerror(int status)
{
	return status_text(status);
}

const char *omen_errmsg(const omen_db *db)
{
	(void)db;
	return status_msg();
}

int omen_metric_parse(const char *name, omen_metric *out)
{
	NEED(out, "output");
	return metric_parse(name, out);
}

const char *omen_metric_name(omen_metric metric)
{
	return metric_name(metric);
}

int omen_index_type_parse(const char *name, omen_index_type *out)
{
	NEED(out, "output");
	return index_type_parse(name, out);
}

const char *omen_index_type_name(omen_index_type type)
{
	return index_type_name(type);
}

int omen_device_parse(const char *name, omen_device *out)
{
	NEED(out, "output");
	return device_parse(name, out);
}

const char *omen_device_name(omen_device device)
{
	return device_name(device);
}

int omen_metadata_check(const char *json)
{
	return meta_check_json(json);
}

int omen_gpu_info(char *name, size_t len)
{
	return eng_gpu_info(name, len);
}

void omen_open_options_init(omen_open_options *opt)
{
	if (opt)
		open_options_default(opt);
}

void omen_search_params_init(omen_search_params *p)
{
	if (p)
		search_params_default(p);
}

void omen_index_params_init(omen_index_params *p)
{
	if (p)
		index_params_default(p);
}

void omen_collection_options_init(omen_collection_options *opt)
{
	if (opt)
		collection_options_default(opt);
}

void omen_connect_options_init(omen_connect_options *opt)
{
	if (opt)
		connect_options_default(opt);
}

void omen_free(void *p)
{
	free(p);
}

void omen_free_strings(char **strings, size_t n)
{
	if (!strings)
		return;
	for (size_t i = 0; i < n; i++)
		free(strings[i]);
	free(strings);
}
