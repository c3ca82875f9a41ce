/*
 * The embedded database: open and close, flush, statistics.
 */
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"

int eng_open(const char *path, const omen_open_options *opt, eng_db **out)
{
	if (!path || !*path || !out)
		return status_set(OMEN_EINVAL, "path or output handle is NULL");
	omen_open_options defaults;
	if (!opt) {
		open_options_default(&defaults);
		opt = &defaults;
	}
	eng_db *db = mem_calloc(1, sizeof *db);
	if (!db)
		return status_set(OMEN_ENOMEM, "out of memory");
	int st = store_open(path, opt, &db->st);
	if (st != OMEN_OK) {
		mem_free(db);
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
	mem_free(db);
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
