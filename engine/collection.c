/*
 * Collections: creation and removal, handles, and the write and read paths of points. A write
 * is one LMDB transaction, so a batch lands whole or not at all. Rows are append-only: an
 * upserted point gets a new row and its old row a tombstone; see docs/FORMAT.md.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/engine.h"

/* ---- names and sub-databases ---- */

/* Opens (or creates) the sub-databases of collection coll_id into c. */
static int coll_dbis(MDB_txn *txn, uint32_t coll_id, bool create, eng_coll *c)
{
	static const char kinds[STORE_COLL_DBIS] = {'v', 'i', 'm', 't', 'g'};
	MDB_dbi *dst[STORE_COLL_DBIS] = {&c->vec_dbi, &c->id_dbi, &c->meta_dbi, &c->tomb_dbi,
	                                 &c->graph_dbi};
	for (int i = 0; i < STORE_COLL_DBIS; i++) {
		char name[32];
		snprintf(name, sizeof name, "c%u.%c", coll_id, kinds[i]);
		int st = store_dbi(txn, name, create, dst[i]);
		if (st != OMEN_OK)
			return st;
	}
	return OMEN_OK;
}

int coll_catalog(eng_coll *c, MDB_txn *txn, catalog_rec *out)
{
	catalog_rec r;
	int st = catalog_get(c->db->st, txn, c->name, &r);
	if (st != OMEN_OK)
		return st;
	if (r.coll_id != c->coll_id)
		return status_set(OMEN_ENOTFOUND, "collection '%s' was dropped", c->name);
	*out = r;
	return OMEN_OK;
}

/* ---- create, drop, list ---- */

typedef struct create_ctx {
	eng_db *db;
	const char *name;
	uint32_t dim;
	omen_metric metric;
} create_ctx;

static int create_fn(MDB_txn *txn, void *arg)
{
	create_ctx *x = arg;
	store *s = x->db->st;
	catalog_rec r;
	int st = catalog_get(s, txn, x->name, &r);
	if (st == OMEN_OK)
		return status_set(OMEN_EEXIST, "collection '%s' already exists", x->name);
	if (st != OMEN_ENOTFOUND)
		return st;
	MDB_stat ms;
	if (mdb_stat(txn, s->catalog_dbi, &ms) == 0 && ms.ms_entries >= OMEN_MAX_COLLECTIONS)
		return status_set(OMEN_ELIMIT, "a database holds at most %d collections",
		                  OMEN_MAX_COLLECTIONS);
	memset(&r, 0, sizeof r);
	st = store_next_collection_id(s, txn, &r.coll_id);
	eng_coll tmp;
	if (st == OMEN_OK)
		st = coll_dbis(txn, r.coll_id, true, &tmp);
	if (st != OMEN_OK)
		return st;
	r.dim = x->dim;
	r.metric = (uint32_t)x->metric;
	r.chunk_cap = chunk_cap_for_dim(x->dim);
	return catalog_put(s, txn, x->name, &r);
}

int eng_create_collection(eng_db *db, const char *name, size_t dim, omen_metric metric)
{
	if (!db)
		return status_set(OMEN_EINVAL, "database handle is NULL");
	int st = name_check(name);
	if (st != OMEN_OK)
		return st;
	if (dim < 1 || dim > OMEN_MAX_DIM)
		return status_set(OMEN_EINVAL,
		                  "collection '%s': dimension must be 1 to %d, got %zu", name,
		                  OMEN_MAX_DIM, dim);
	if (metric != OMEN_METRIC_L2 && metric != OMEN_METRIC_IP && metric != OMEN_METRIC_COSINE)
		return status_set(OMEN_EINVAL, "collection '%s': unknown metric %d", name,
		                  (int)metric);
	create_ctx x = {db, name, (uint32_t)dim, metric};
	return store_write(db->st, create_fn, &x, 4096);
}

static int drop_fn(MDB_txn *txn, void *arg)
{
	create_ctx *x = arg;
	store *s = x->db->st;
	catalog_rec r;
	int st = catalog_get(s, txn, x->name, &r);
	eng_coll tmp;
	if (st == OMEN_OK)
		st = coll_dbis(txn, r.coll_id, false, &tmp);
	if (st != OMEN_OK)
		return st;
	MDB_dbi dbis[STORE_COLL_DBIS] = {tmp.vec_dbi, tmp.id_dbi, tmp.meta_dbi, tmp.tomb_dbi,
	                                 tmp.graph_dbi};
	for (int i = 0; i < STORE_COLL_DBIS; i++) {
		int rc = mdb_drop(txn, dbis[i], 1);
		if (rc != 0)
			return status_from_mdb(rc, "dropping collection");
	}
	MDB_val k = {strlen(x->name), (void *)x->name};
	int rc = mdb_del(txn, s->catalog_dbi, &k, NULL);
	return rc ? status_from_mdb(rc, "catalog") : OMEN_OK;
}

int eng_drop_collection(eng_db *db, const char *name)
{
	if (!db)
		return status_set(OMEN_EINVAL, "database handle is NULL");
	int st = name_check(name);
	if (st != OMEN_OK)
		return st;
	pthread_mutex_lock(&db->mu);
	bool waiting;
	do { /* the indexer's handle is closed soon: wait for it, fail for a user's */
		waiting = false;
		for (eng_coll *c = db->open; c && st == OMEN_OK; c = c->next)
			if (!strcmp(c->name, name) && !c->internal)
				st = status_set(OMEN_EBUSY, "collection '%s' has open handles",
				                name);
			else if (!strcmp(c->name, name))
				waiting = true;
		if (st == OMEN_OK && waiting)
			pthread_cond_wait(&db->closed, &db->mu);
	} while (st == OMEN_OK && waiting);
	if (st == OMEN_OK) {
		create_ctx x = {db, name, 0, 0};
		st = store_write(db->st, drop_fn, &x, 4096);
	}
	pthread_mutex_unlock(&db->mu);
	return st;
}

/* Copies the catalog's names (keys) into a new array. */
static int list_names(MDB_txn *txn, MDB_dbi dbi, char ***names_out, size_t *n_out)
{
	MDB_stat ms;
	MDB_cursor *cur;
	int rc = mdb_stat(txn, dbi, &ms);
	if (rc == 0)
		rc = mdb_cursor_open(txn, dbi, &cur);
	if (rc != 0)
		return status_from_mdb(rc, "catalog");
	char **names = mem_calloc(ms.ms_entries + 1, sizeof *names);
	size_t n = 0;
	int st = names ? OMEN_OK : status_set(OMEN_ENOMEM, "out of memory");
	MDB_val k, v;
	for (int op = MDB_FIRST; st == OMEN_OK && n < ms.ms_entries &&
	                         mdb_cursor_get(cur, &k, &v, (MDB_cursor_op)op) == 0;
	     op = MDB_NEXT) {
		names[n] = mem_strndup(k.mv_data, k.mv_size);
		if (!names[n++])
			st = status_set(OMEN_ENOMEM, "out of memory");
	}
	mdb_cursor_close(cur);
	if (st != OMEN_OK) {
		while (n > 0)
			mem_free(names[--n]);
		mem_free(names);
		return st;
	}
	*names_out = names;
	*n_out = n;
	return OMEN_OK;
}

int eng_list_collections(eng_db *db, char ***names_out, size_t *n_out)
{
	if (!db || !names_out || !n_out)
		return status_set(OMEN_EINVAL, "NULL argument");
	MDB_txn *txn;
	int st = store_read_begin(db->st, &txn);
	if (st != OMEN_OK)
		return st;
	st = list_names(txn, db->st->catalog_dbi, names_out, n_out);
	store_read_end(db->st, txn);
	return st;
}

/* ---- handles ---- */

static int open_fn(MDB_txn *txn, void *arg)
{
	eng_coll *c = arg;
	catalog_rec r;
	int st = catalog_get(c->db->st, txn, c->name, &r);
	if (st == OMEN_OK)
		st = coll_dbis(txn, r.coll_id, false, c);
	if (st != OMEN_OK)
		return st;
	c->coll_id = r.coll_id;
	c->dim = r.dim;
	c->cap = r.chunk_cap;
	c->metric = (omen_metric)r.metric;
	return OMEN_OK;
}

int eng_collection_open(eng_db *db, const char *name, eng_coll **out)
{
	return coll_open(db, name, false, out);
}

int coll_open(eng_db *db, const char *name, bool internal, eng_coll **out)
{
	if (!db || !out)
		return status_set(OMEN_EINVAL, "NULL argument");
	int st = name_check(name);
	if (st != OMEN_OK)
		return st;
	eng_coll *c = mem_calloc(1, sizeof *c);
	if (!c)
		return status_set(OMEN_ENOMEM, "out of memory");
	c->db = db;
	c->internal = internal;
	strcpy(c->name, name);
	st = store_open_handles(db->st, open_fn, c);
	if (st != OMEN_OK) {
		mem_free(c);
		return st;
	}
	pthread_mutex_init(&c->scratch_mu, NULL);
	pthread_mutex_lock(&db->mu);
	c->next = db->open;
	db->open = c;
	pthread_mutex_unlock(&db->mu);
	*out = c;
	return OMEN_OK;
}

void eng_collection_close(eng_coll *c)
{
	if (!c)
		return;
	eng_db *db = c->db;
	pthread_mutex_lock(&db->mu);
	for (eng_coll **pp = &db->open; *pp; pp = &(*pp)->next)
		if (*pp == c) {
			*pp = c->next;
			break;
		}
	pthread_cond_broadcast(&db->closed);
	pthread_mutex_unlock(&db->mu);
	hnsw_scratch_release_all(c);
	pthread_mutex_destroy(&c->scratch_mu);
	mem_free(c);
}

/* The collection's index, as the statistics describe it: HNSW's or IVF's parameters into s;
 * OMEN_ENOTFOUND without an index. */
static int index_stats(eng_coll *c, MDB_txn *txn, omen_collection_stats *s)
{
	hnsw_info hi;
	ivf_info vi;
	int st = hnsw_info_get(c, txn, &hi);
	if (st == OMEN_OK) {
		s->index = "hnsw";
		s->indexed = hi.rows;
		s->index_bytes = hi.bytes;
		s->hnsw_m = hi.m;
		s->hnsw_ef_construction = hi.efc;
		s->hnsw_int8 = hi.int8;
		return OMEN_OK;
	}
	if (st == OMEN_ENOTFOUND && (st = ivf_info_get(c, txn, &vi)) == OMEN_OK) {
		s->index = "ivf";
		s->indexed = s->points + s->deleted; /* every row is in a list */
		s->index_bytes = vi.bytes;
		s->ivf_nlist = vi.nlist;
		s->ivf_nprobe = vi.nprobe;
		s->ivf_bits = vi.bits;
	}
	return st;
}

int eng_collection_stats_get(eng_coll *c, omen_collection_stats *out)
{
	if (!c || !out)
		return status_set(OMEN_EINVAL, "NULL argument");
	MDB_txn *txn;
	catalog_rec r;
	int st = store_read_begin(c->db->st, &txn);
	if (st != OMEN_OK)
		return st;
	uint64_t segments = 0;
	omen_collection_stats s = {0};
	st = coll_catalog(c, txn, &r);
	if (st == OMEN_OK)
		st = seg_count(txn, c->vec_dbi, c->cap, &segments);
	if (st == OMEN_OK) {
		strcpy(s.name, c->name);
		s.dim = r.dim;
		s.metric = (omen_metric)r.metric;
		s.points = r.points;
		s.deleted = r.deleted;
		s.next_id = r.next_id;
		s.segments = segments;
		s.vector_bytes = r.rows * (uint64_t)r.dim * 4;
		s.index = "flat";
		s.replicas = 1;
		st = index_stats(c, txn, &s);
		st = st == OMEN_ENOTFOUND ? OMEN_OK : st;
	}
	store_read_end(c->db->st, txn);
	if (st == OMEN_OK)
		*out = s;
	return st;
}

int eng_count(eng_coll *c, uint64_t *out)
{
	omen_collection_stats s;
	if (!out)
		return status_set(OMEN_EINVAL, "NULL argument");
	int st = eng_collection_stats_get(c, &s);
	if (st == OMEN_OK)
		*out = s.points;
	return st;
}

/* ---- indexes ---- */

/* The automatic choice (docs/IVF.md): flat below OMEN_INDEX_AUTO_HNSW_MIN points; IVF from
 * OMEN_INDEX_AUTO_IVF_MIN points, or earlier when the float vectors exceed the RAM budget
 * (HNSW is fast only with its vectors in memory); HNSW between. */
static omen_index_type auto_type(const omen_collection_stats *s, const omen_index_params *p)
{
	if (s->points < OMEN_INDEX_AUTO_HNSW_MIN)
		return OMEN_INDEX_FLAT;
	uint64_t bytes = s->points * (uint64_t)s->dim * 4;
	if (s->points >= OMEN_INDEX_AUTO_IVF_MIN || (p->ram_budget && bytes > p->ram_budget))
		return OMEN_INDEX_IVF;
	return OMEN_INDEX_HNSW;
}

int eng_build_index(eng_coll *c, const omen_index_params *params)
{
	omen_index_params p;
	index_params_default(&p);
	if (params)
		p = *params;
	if (!c)
		return status_set(OMEN_EINVAL, "collection handle is NULL");
	int st = index_params_check(&p);
	if (st != OMEN_OK)
		return st;
	if (p.type == OMEN_INDEX_AUTO) {
		omen_collection_stats s;
		st = eng_collection_stats_get(c, &s);
		if (st != OMEN_OK)
			return st;
		p.type = auto_type(&s, &p);
	}
	pthread_mutex_lock(&c->db->build_mu);
	st = p.type == OMEN_INDEX_FLAT   ? index_drop(c)
	     : p.type == OMEN_INDEX_HNSW ? hnsw_build(c, &p)
	                                 : ivf_build(c, &p);
	pthread_mutex_unlock(&c->db->build_mu);
	return st;
}

int eng_check(eng_coll *c, char **report)
{
	if (!c)
		return status_set(OMEN_EINVAL, "collection handle is NULL");
	MDB_txn *txn;
	ivf_info vi;
	int st = store_read_begin(c->db->st, &txn);
	if (st != OMEN_OK)
		return st;
	st = ivf_info_get(c, txn, &vi);
	store_read_end(c->db->st, txn);
	return st == OMEN_OK ? ivf_check(c, report) : hnsw_check(c, report);
}

static int index_drop_fn(MDB_txn *txn, void *arg)
{
	eng_coll *c = arg;
	int rc = mdb_drop(txn, c->graph_dbi, 0);
	return rc ? status_from_mdb(rc, "index") : OMEN_OK;
}

int index_drop(eng_coll *c)
{
	return store_write(c->db->st, index_drop_fn, c, 4096);
}
