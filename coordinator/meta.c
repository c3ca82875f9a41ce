/*
 * The coordinator's metadata: the collections of the cluster (dimension, metric, number of
 * logical shards), kept in a small LMDB environment under DATA/meta and cached in memory.
 * Each record is 20 bytes: the record header (base.h: magic "OMCC", version 1), then dim,
 * metric and nshards as u32 LE; see docs/CLUSTER.md. A coordinator with Raft keeps the
 * collections in the replicated state machine instead (consensus/).
 */
#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "coordinator/internal.h"
#include "storage/storage.h"

#define META_MAGIC "OMCC"
#define META_REC   (REC_HEADER + 12)

static int rec_decode(const MDB_val *k, const MDB_val *v, coll_info *out)
{
	const unsigned char *p = v->mv_data;
	if (v->mv_size != META_REC || !rec_check(p, v->mv_size, META_MAGIC, META_REC) ||
	    !name_valid(k->mv_data, k->mv_size))
		return status_set(OMEN_ECORRUPT, "coordinator metadata: bad collection record");
	memset(out, 0, sizeof *out);
	memcpy(out->name, k->mv_data, k->mv_size);
	out->dim = le32_get(p + 8);
	out->metric = (omen_metric)le32_get(p + 12);
	out->nshards = le32_get(p + 16);
	if (out->dim < 1 || out->dim > OMEN_MAX_DIM || out->metric > OMEN_METRIC_COSINE ||
	    out->nshards < 1 || out->nshards > WIRE_MAX_SHARDS)
		return status_set(OMEN_ECORRUPT, "coordinator metadata: bad collection '%s'",
		                  out->name);
	return OMEN_OK;
}

int meta_open(meta *m, const char *data)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/meta", data);
	if ((mkdir(data, 0755) != 0 && errno != EEXIST) ||
	    (mkdir(path, 0755) != 0 && errno != EEXIST))
		return status_set(OMEN_EIO, "cannot create %s: %s", path, strerror(errno));
	int rc = mdb_env_create(&m->env);
	if (rc == 0)
		rc = mdb_env_set_mapsize(m->env, 64u << 20);
	if (rc == 0)
		rc = mdb_env_set_maxdbs(m->env, 4);
	if (rc == 0)
		rc = mdb_env_open(m->env, path, 0, 0644);
	MDB_txn *txn = NULL;
	if (rc == 0)
		rc = mdb_txn_begin(m->env, NULL, 0, &txn);
	if (rc == 0)
		rc = mdb_dbi_open(txn, "collections", MDB_CREATE, &m->dbi);
	if (rc == 0)
		rc = mdb_txn_commit(txn);
	else if (txn)
		mdb_txn_abort(txn);
	if (rc != 0) {
		if (m->env)
			mdb_env_close(m->env);
		m->env = NULL;
		return status_from_mdb(rc, "coordinator metadata");
	}
	return OMEN_OK;
}

void meta_close(meta *m)
{
	if (m->env)
		mdb_env_close(m->env);
	m->env = NULL;
}

int meta_get(meta *m, const char *name, coll_info *out)
{
	MDB_txn *txn;
	int rc = mdb_txn_begin(m->env, NULL, MDB_RDONLY, &txn);
	if (rc != 0)
		return status_from_mdb(rc, "coordinator metadata");
	MDB_val k = {strlen(name), (void *)name}, v;
	rc = mdb_get(txn, m->dbi, &k, &v);
	int st = rc == MDB_NOTFOUND ? status_set(OMEN_ENOTFOUND, "no collection '%s'", name)
	         : rc != 0          ? status_from_mdb(rc, "coordinator metadata")
	                            : rec_decode(&k, &v, out);
	mdb_txn_abort(txn);
	return st;
}

int meta_put(meta *m, const coll_info *ci)
{
	unsigned char rec[META_REC];
	rec_stamp(rec, META_MAGIC);
	le32_put(rec + 8, ci->dim);
	le32_put(rec + 12, (uint32_t)ci->metric);
	le32_put(rec + 16, ci->nshards);
	MDB_txn *txn;
	int rc = mdb_txn_begin(m->env, NULL, 0, &txn);
	if (rc != 0)
		return status_from_mdb(rc, "coordinator metadata");
	MDB_val k = {strlen(ci->name), (void *)ci->name}, v = {sizeof rec, rec};
	rc = mdb_put(txn, m->dbi, &k, &v, 0);
	rc = rc ? (mdb_txn_abort(txn), rc) : mdb_txn_commit(txn);
	return rc ? status_from_mdb(rc, "coordinator metadata") : OMEN_OK;
}

int meta_del(meta *m, const char *name)
{
	MDB_txn *txn;
	int rc = mdb_txn_begin(m->env, NULL, 0, &txn);
	if (rc != 0)
		return status_from_mdb(rc, "coordinator metadata");
	MDB_val k = {strlen(name), (void *)name};
	rc = mdb_del(txn, m->dbi, &k, NULL);
	if (rc == MDB_NOTFOUND)
		rc = 0;
	rc = rc ? (mdb_txn_abort(txn), rc) : mdb_txn_commit(txn);
	return rc ? status_from_mdb(rc, "coordinator metadata") : OMEN_OK;
}

int meta_list(meta *m, coll_info **out, size_t *n_out)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	int rc = mdb_txn_begin(m->env, NULL, MDB_RDONLY, &txn);
	if (rc == 0 && (rc = mdb_cursor_open(txn, m->dbi, &cur)) != 0)
		mdb_txn_abort(txn);
	if (rc != 0)
		return status_from_mdb(rc, "coordinator metadata");
	coll_info *v = NULL;
	size_t n = 0;
	int st = OMEN_OK;
	MDB_val k, d;
	for (rc = mdb_cursor_get(cur, &k, &d, MDB_FIRST); rc == 0 && st == OMEN_OK;
	     rc = mdb_cursor_get(cur, &k, &d, MDB_NEXT)) {
		coll_info *g = realloc(v, (n + 1) * sizeof *v);
		if (!g) {
			st = status_set(OMEN_ENOMEM, "out of memory");
			break;
		}
		v = g;
		st = rec_decode(&k, &d, &v[n++]);
	}
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	if (st != OMEN_OK) {
		free(v);
		return st;
	}
	*out = v;
	*n_out = n;
	return OMEN_OK;
}
