/*
 * The LMDB environment of a database directory: opening with format checks, read and write
 * transactions, automatic growth of the memory map, durability modes, and the collection
 * catalog. All LMDB codes are translated into omen status codes here.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "storage/storage.h"

#define FORMAT_MAGIC    "OMENDB\0\0"
#define FORMAT_REC_SIZE 32
#define CATALOG_MAGIC   "OMCL"
#define MAP_INITIAL     (1ull << 30) /* address space only: the file grows with the data */

/* Checks what lives at path before LMDB touches it: creates a missing directory (unless
 * read-only), and refuses a directory that holds files but no data.mdb. *had_lock tells whether
 * lock.mdb already existed, so that a failed open can remove the one it made. */
static int prepare_dir(const char *path, bool read_only, bool no_create, bool *had_lock)
{
	struct stat st;
	*had_lock = false;
	if (stat(path, &st) != 0) {
		if (errno != ENOENT)
			return status_set(OMEN_EIO, "%s: %s", path, strerror(errno));
		if (read_only || no_create)
			return status_set(OMEN_ENOTDB, "%s: no database there", path);
		if (mkdir(path, 0755) != 0)
			return status_set(OMEN_EIO, "cannot create %s: %s", path, strerror(errno));
		return OMEN_OK;
	}
	if (!S_ISDIR(st.st_mode))
		return status_set(OMEN_ENOTDB, "%s: not a directory, so not an OmenDB database",
		                  path);
	DIR *d = opendir(path);
	if (!d)
		return status_set(OMEN_EIO, "%s: %s", path, strerror(errno));
	bool has_data = false;
	int others = 0;
	for (struct dirent *e; (e = readdir(d));) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (!strcmp(e->d_name, "data.mdb"))
			has_data = true;
		else if (!strcmp(e->d_name, "lock.mdb"))
			*had_lock = true;
		else
			others++;
	}
	closedir(d);
	if (!has_data && others > 0)
		return status_set(OMEN_ENOTDB,
		                  "%s: directory holds other files and no OmenDB database", path);
	if (!has_data && (read_only || no_create))
		return status_set(OMEN_ENOTDB, "%s: no database there", path);
	return OMEN_OK;
}

/* Writes a fresh format header and creates the catalog. */
static int format_init(store *s, MDB_txn *txn)
{
	unsigned char rec[FORMAT_REC_SIZE] = {0};
	memcpy(rec, FORMAT_MAGIC, 8);
	le32_put(rec + 8, STORE_FORMAT_VERSION);
	le32_put(rec + 16, 1); /* next collection id */
	le64_put(rec + 24, (uint64_t)time(NULL));
	int rc = mdb_dbi_open(txn, "omendb", MDB_CREATE, &s->meta_dbi);
	if (rc == 0) {
		MDB_val k = {6, "format"}, v = {sizeof rec, rec};
		rc = mdb_put(txn, s->meta_dbi, &k, &v, 0);
	}
	if (rc == 0)
		rc = mdb_dbi_open(txn, "catalog", MDB_CREATE, &s->catalog_dbi);
	return rc ? status_from_mdb(rc, "initialising database") : OMEN_OK;
}

/* Checks the format header of an existing database, or initialises an empty environment. */
static int format_check(store *s, MDB_txn *txn)
{
	int rc = mdb_dbi_open(txn, "omendb", 0, &s->meta_dbi);
	if (rc == MDB_NOTFOUND) {
		MDB_dbi main_dbi;
		MDB_stat ms;
		rc = mdb_dbi_open(txn, NULL, 0, &main_dbi);
		if (rc == 0)
			rc = mdb_stat(txn, main_dbi, &ms);
		if (rc != 0)
			return status_from_mdb(rc, s->path);
		if (ms.ms_entries != 0 || s->opt.read_only)
			return status_set(OMEN_ENOTDB, "%s: an LMDB database, but not OmenDB's",
			                  s->path);
		return format_init(s, txn);
	}
	if (rc != 0)
		return rc == MDB_INCOMPATIBLE
		           ? status_set(OMEN_ENOTDB, "%s: not an OmenDB database", s->path)
		           : status_from_mdb(rc, s->path);
	MDB_val k = {6, "format"}, v;
	rc = mdb_get(txn, s->meta_dbi, &k, &v);
	if (rc != 0 || v.mv_size != FORMAT_REC_SIZE || memcmp(v.mv_data, FORMAT_MAGIC, 8) != 0)
		return status_set(OMEN_ENOTDB, "%s: format header missing or foreign", s->path);
	uint32_t version = le32_get((const unsigned char *)v.mv_data + 8);
	if (version > STORE_FORMAT_VERSION)
		return status_set(OMEN_EVERSION,
		                  "%s: format version %u is newer than this OmenDB (%u)", s->path,
		                  version, STORE_FORMAT_VERSION);
	if (version == 0)
		return status_set(OMEN_ECORRUPT, "%s: format version 0", s->path);
	rc = mdb_dbi_open(txn, "catalog", 0, &s->catalog_dbi);
	return rc ? status_from_mdb(rc, "opening catalog") : OMEN_OK;
}

static int env_setup(store *s)
{
	uint64_t initial = MAP_INITIAL;
	if (s->opt.max_bytes && s->opt.max_bytes < initial)
		initial = s->opt.max_bytes;
	unsigned flags = MDB_NOTLS;
	if (s->opt.durability == OMEN_DURABLE_RELAXED)
		flags |= MDB_NOSYNC;
	if (s->opt.read_only)
		flags |= MDB_RDONLY;
	return lenv_open(&s->e, s->path, STORE_COLL_DBIS * OMEN_MAX_COLLECTIONS + 8, 1022, initial,
	                 flags);
}

static int options_check(const omen_open_options *opt)
{
	if (opt->durability != OMEN_DURABLE_SYNC && opt->durability != OMEN_DURABLE_RELAXED)
		return status_set(OMEN_EINVAL, "unknown durability mode %d", (int)opt->durability);
	if (opt->max_bytes && opt->max_bytes < (1u << 20))
		return status_set(OMEN_EINVAL, "max_bytes must be at least 1 MiB");
	return OMEN_OK;
}

int store_open(const char *path, const omen_open_options *opt, store **out)
{
	bool had_lock;
	int st = options_check(opt);
	if (st == OMEN_OK)
		st = prepare_dir(path, opt->read_only, opt->no_create, &had_lock);
	if (st != OMEN_OK)
		return st;
	store *s = mem_calloc(1, sizeof *s);
	if (!s || !(s->path = mem_strdup(path))) {
		mem_free(s);
		return status_set(OMEN_ENOMEM, "out of memory");
	}
	s->opt = *opt;
	lenv_init(&s->e, opt->max_bytes);
	st = env_setup(s);
	MDB_txn *txn = NULL;
	if (st == OMEN_OK) {
		int rc = mdb_txn_begin(s->e.env, NULL, opt->read_only ? MDB_RDONLY : 0, &txn);
		st = rc ? status_from_mdb(rc, path) : format_check(s, txn);
	}
	if (st == OMEN_OK) {
		int rc = mdb_txn_commit(txn);
		st = rc ? status_from_mdb(rc, path) : OMEN_OK;
	} else if (txn) {
		mdb_txn_abort(txn);
	}
	if (st != OMEN_OK) {
		store_close(s);
		if (!had_lock) { /* LMDB makes lock.mdb even when opening read-only */
			char lock[4096];
			snprintf(lock, sizeof lock, "%s/lock.mdb", path);
			unlink(lock);
		}
		return st;
	}
	*out = s;
	return OMEN_OK;
}

void store_close(store *s)
{
	if (!s)
		return;
	if (s->e.env) {
		if (!s->opt.read_only)
			mdb_env_sync(s->e.env, 1);
		mdb_env_close(s->e.env);
	}
	lenv_fini(&s->e);
	mem_free(s->path);
	mem_free(s);
}

int store_read_begin(store *s, MDB_txn **txn)
{
	return lenv_read_begin(&s->e, txn);
}

void store_read_end(store *s, MDB_txn *txn)
{
	lenv_read_end(&s->e, txn);
}

int store_write(store *s, store_write_fn fn, void *ctx, uint64_t bytes_hint)
{
	if (s->opt.read_only)
		return status_set(OMEN_ENOTSUP, "database opened read-only");
	pthread_mutex_lock(&s->e.write_mu);
	int st = lenv_write(&s->e, fn, ctx);
	if (st == OMEN_EFULL)
		status_set(OMEN_EFULL,
		           "database is full: it reached its maximum size of %llu bytes; nothing "
		           "from this write was stored",
		           (unsigned long long)s->e.map_size);
	if (st == OMEN_OK && s->opt.durability == OMEN_DURABLE_RELAXED) {
		s->unsynced += bytes_hint;
		if (s->opt.checkpoint_bytes && s->unsynced >= s->opt.checkpoint_bytes) {
			int rc = mdb_env_sync(s->e.env, 1);
			if (rc == 0)
				s->unsynced = 0;
			else
				st = status_from_mdb(rc, "checkpoint sync");
		}
	}
	pthread_mutex_unlock(&s->e.write_mu);
	return st;
}

int store_dbi(MDB_txn *txn, const char *name, bool create, MDB_dbi *out)
{
	int rc = mdb_dbi_open(txn, name, create ? MDB_CREATE : 0, out);
	if (rc == MDB_NOTFOUND)
		return status_set(OMEN_ECORRUPT, "sub-database %s is missing", name);
	return rc ? status_from_mdb(rc, name) : OMEN_OK;
}

int store_open_handles(store *s, store_write_fn fn, void *ctx)
{
	pthread_mutex_lock(&s->e.write_mu);
	MDB_txn *txn;
	int st = store_read_begin(s, &txn);
	if (st == OMEN_OK) {
		st = fn(txn, ctx);
		if (st == OMEN_OK) {
			int rc = mdb_txn_commit(txn);
			st = rc ? status_from_mdb(rc, "opening collection") : OMEN_OK;
		} else {
			mdb_txn_abort(txn);
		}
		pthread_rwlock_unlock(&s->e.map_lock);
	}
	pthread_mutex_unlock(&s->e.write_mu);
	return st;
}

int store_sync(store *s)
{
	if (s->opt.read_only)
		return OMEN_OK;
	pthread_mutex_lock(&s->e.write_mu);
	int rc = mdb_env_sync(s->e.env, 1);
	if (rc == 0)
		s->unsynced = 0;
	pthread_mutex_unlock(&s->e.write_mu);
	return rc ? status_from_mdb(rc, "sync") : OMEN_OK;
}

uint64_t store_file_bytes(store *s)
{
	char p[4096];
	struct stat st;
	snprintf(p, sizeof p, "%s/data.mdb", s->path);
	return stat(p, &st) == 0 ? (uint64_t)st.st_size : 0;
}

int store_next_collection_id(store *s, MDB_txn *txn, uint32_t *out)
{
	MDB_val k = {6, "format"}, v;
	int rc = mdb_get(txn, s->meta_dbi, &k, &v);
	if (rc != 0 || v.mv_size != FORMAT_REC_SIZE)
		return status_set(OMEN_ECORRUPT, "format header missing");
	unsigned char rec[FORMAT_REC_SIZE];
	memcpy(rec, v.mv_data, sizeof rec);
	uint32_t id = le32_get(rec + 16);
	le32_put(rec + 16, id + 1);
	v.mv_data = rec;
	rc = mdb_put(txn, s->meta_dbi, &k, &v, 0);
	if (rc != 0)
		return status_from_mdb(rc, "format header");
	*out = id;
	return OMEN_OK;
}

int catalog_get(store *s, MDB_txn *txn, const char *name, catalog_rec *out)
{
	MDB_val k = {strlen(name), (void *)name}, v;
	int rc = mdb_get(txn, s->catalog_dbi, &k, &v);
	if (rc == MDB_NOTFOUND)
		return status_set(OMEN_ENOTFOUND, "no collection named '%s'", name);
	if (rc != 0)
		return status_from_mdb(rc, "catalog");
	const unsigned char *p = v.mv_data;
	if (v.mv_size != CATALOG_REC_SIZE ||
	    !rec_check(p, v.mv_size, CATALOG_MAGIC, CATALOG_REC_SIZE))
		return status_set(OMEN_ECORRUPT, "collection '%s': catalog record is corrupt",
		                  name);
	catalog_rec r = {
	    .coll_id = le32_get(p + 8),
	    .dim = le32_get(p + 12),
	    .metric = le32_get(p + 16),
	    .chunk_cap = le32_get(p + 20),
	    .next_id = le64_get(p + 24),
	    .rows = le64_get(p + 32),
	    .points = le64_get(p + 40),
	    .deleted = le64_get(p + 48),
	};
	if (r.dim == 0 || r.dim > OMEN_MAX_DIM || r.metric > OMEN_METRIC_COSINE ||
	    r.chunk_cap != chunk_cap_for_dim(r.dim) || r.points + r.deleted != r.rows)
		return status_set(OMEN_ECORRUPT, "collection '%s': catalog record is invalid",
		                  name);
	*out = r;
	return OMEN_OK;
}

int catalog_put(store *s, MDB_txn *txn, const char *name, const catalog_rec *r)
{
	unsigned char p[CATALOG_REC_SIZE] = {0};
	rec_stamp(p, CATALOG_MAGIC);
	le32_put(p + 8, r->coll_id);
	le32_put(p + 12, r->dim);
	le32_put(p + 16, r->metric);
	le32_put(p + 20, r->chunk_cap);
	le64_put(p + 24, r->next_id);
	le64_put(p + 32, r->rows);
	le64_put(p + 40, r->points);
	le64_put(p + 48, r->deleted);
	MDB_val k = {strlen(name), (void *)name}, v = {sizeof p, p};
	int rc = mdb_put(txn, s->catalog_dbi, &k, &v, 0);
	return rc ? status_from_mdb(rc, "catalog") : OMEN_OK;
}
