/*
 * The database handle of the embedded engine: open and close, options, flush, statistics,
 * status strings, and small helpers of the public API.
 */
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"
#include "engine/filter.h"

void omen_open_options_init(omen_open_options *opt)
{
	if (!opt)
		return;
	memset(opt, 0, sizeof *opt);
	opt->durability = OMEN_DURABLE_SYNC;
	opt->checkpoint_bytes = 256ull << 20;
}

int eng_open(const char *path, const omen_open_options *opt, eng_db **out)
{
	if (!path || !*path || !out)
		return status_set(OMEN_EINVAL, "path or output handle is NULL");
	omen_open_options defaults;
	if (!opt) {
		omen_open_options_init(&defaults);
		opt = &defaults;
	}
	eng_db *db = calloc(1, sizeof *db);
	if (!db)
		return status_set(OMEN_ENOMEM, "out of memory");
	int st = store_open(path, opt, &db->st);
	if (st != OMEN_OK) {
		free(db);
		return st;
	}
	pthread_mutex_init(&db->mu, NULL);
	pthread_cond_init(&db->closed, NULL);
	pthread_mutex_init(&db->build_mu, NULL);
	pthread_mutex_init(&db->gpu_mu, NULL);
	if (!opt->read_only && !opt->no_background_index &&
	    (st = indexer_start(db, &db->ix)) != OMEN_OK) {
		eng_close(db);
		return st;
	}
	*out = db;
	return OMEN_OK;
}

void eng_close(eng_db *db)
{
	if (!db)
		return;
	atomic_store(&db->cancel, 1);
	indexer_stop(db->ix);
	while (db->open)
		eng_collection_close(db->open);
	store_close(db->st);
	gpu_release(db);
	pthread_mutex_destroy(&db->gpu_mu);
	pthread_mutex_destroy(&db->build_mu);
	pthread_cond_destroy(&db->closed);
	pthread_mutex_destroy(&db->mu);
	free(db);
}

int eng_flush(eng_db *db)
{
	if (!db)
		return status_set(OMEN_EINVAL, "database handle is NULL");
	return store_sync(db->st);
}

int eng_db_stats_get(eng_db *db, omen_db_stats *out)
{
	if (!db || !out)
		return status_set(OMEN_EINVAL, "NULL argument");
	MDB_txn *txn;
	MDB_stat ms;
	int st = store_read_begin(db->st, &txn);
	if (st != OMEN_OK)
		return st;
	int rc = mdb_stat(txn, db->st->catalog_dbi, &ms);
	store_read_end(db->st, txn);
	if (rc != 0)
		return status_from_mdb(rc, "catalog");
	out->collections = ms.ms_entries;
	out->file_bytes = store_file_bytes(db->st);
	out->map_bytes = db->st->e.map_size;
	return OMEN_OK;
}

const char *omen_strerror(int status)
{
	switch (status) {
	case OMEN_OK:
		return "success";
	case OMEN_EINVAL:
		return "invalid argument";
	case OMEN_ENOTFOUND:
		return "not found";
	case OMEN_EEXIST:
		return "already exists";
	case OMEN_ENOMEM:
		return "out of memory";
	case OMEN_EIO:
		return "I/O error";
	case OMEN_ECORRUPT:
		return "database is corrupt";
	case OMEN_ENOTDB:
		return "not an OmenDB database";
	case OMEN_EVERSION:
		return "database format is newer than this OmenDB";
	case OMEN_EFULL:
		return "database is full";
	case OMEN_EBUSY:
		return "resource busy";
	case OMEN_ENOTSUP:
		return "not supported";
	case OMEN_EPROTO:
		return "protocol error";
	case OMEN_ELIMIT:
		return "limit exceeded";
	case OMEN_EUNAVAIL:
		return "a cluster node is unavailable";
	case OMEN_EAUTH:
		return "not authorised: token missing or wrong";
	case OMEN_ESTALE:
		return "the cluster's shard map changed";
	default:
		return "unknown status";
	}
}

void omen_free(void *p)
{
	free(p);
}

int omen_metric_parse(const char *name, omen_metric *out)
{
	static const char *names[] = {"l2", "ip", "cosine"};
	for (int i = 0; name && out && i < 3; i++)
		if (!strcmp(name, names[i])) {
			*out = (omen_metric)i;
			return OMEN_OK;
		}
	return status_set(OMEN_EINVAL, "unknown metric '%s' (use l2, ip or cosine)",
	                  name ? name : "(null)");
}

const char *omen_metric_name(omen_metric metric)
{
	switch (metric) {
	case OMEN_METRIC_L2:
		return "l2";
	case OMEN_METRIC_IP:
		return "ip";
	case OMEN_METRIC_COSINE:
		return "cosine";
	}
	return "?";
}

void omen_search_params_init(omen_search_params *p)
{
	if (!p)
		return;
	memset(p, 0, sizeof *p);
	p->k = 10;
}

void omen_index_params_init(omen_index_params *p)
{
	if (!p)
		return;
	memset(p, 0, sizeof *p);
	p->type = OMEN_INDEX_AUTO;
	p->m = OMEN_HNSW_M_DEFAULT;
	p->ef_construction = OMEN_HNSW_EFC_DEFAULT;
}

int omen_metadata_check(const char *json)
{
	unsigned char *mp;
	size_t len;
	char err[256];
	if (!json)
		return status_set(OMEN_EINVAL, "metadata is NULL");
	int st = meta_encode_json(json, &mp, &len, err, sizeof err);
	if (st != OMEN_OK)
		return status_set(st, "%s", err);
	free(mp);
	return OMEN_OK;
}
