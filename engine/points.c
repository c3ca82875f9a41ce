/*
 * The write and read paths of points: upsert (append rows, tombstone replaced ones), delete
 * (tombstones), and get. Inputs are validated in full before the write transaction starts, and
 * each batch is one transaction, so bad input changes nothing and a batch lands whole or not
 * at all. Record layouts: docs/FORMAT.md.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/distance.h"
#include "engine/engine.h"
#include "engine/filter.h"

/* A batch after validation: the vectors to store (normalised for cosine), their squared norms
 * and the encoded metadata records. */
typedef struct prepared {
	eng_coll *c;
	size_t n;
	const uint64_t *ids_in; /* NULL: assign */
	const float *vecs;
	float *norm_copy; /* owned normalised vectors (cosine), else NULL */
	float *norms;
	unsigned char **meta; /* n encoded msgpack maps or NULL entries; NULL array if none */
	size_t *meta_len;
	uint64_t *ids;   /* ids written (output of the transaction) */
	uint64_t min_id; /* over ids_in */
	uint64_t max_id;
	bool sorted;     /* ids_in strictly ascending */
	size_t replaced; /* set by the transaction */
} prepared;

static void prepared_free(prepared *p)
{
	if (p->meta)
		for (size_t i = 0; i < p->n; i++)
			mem_free(p->meta[i]);
	mem_free(p->meta);
	mem_free(p->meta_len);
	mem_free(p->norm_copy);
	mem_free(p->norms);
	mem_free(p->ids);
}

/* Checks the ids (base's rule: none reserved, none twice) and records min, max and order. */
static int check_ids(prepared *p)
{
	const uint64_t *ids = p->ids_in;
	p->min_id = UINT64_MAX;
	p->max_id = 0;
	p->sorted = true;
	for (size_t i = 0; i < p->n; i++) {
		p->min_id = ids[i] < p->min_id ? ids[i] : p->min_id;
		p->max_id = ids[i] > p->max_id ? ids[i] : p->max_id;
		if (i > 0 && ids[i] <= ids[i - 1])
			p->sorted = false;
	}
	return ids_check(ids, p->n);
}

/* Finds the first non-finite component of x for the error message; OMEN_OK if there is none
 * (the squared norm then merely overflowed float). */
static int find_nonfinite(const eng_coll *c, const float *x, size_t i)
{
	for (size_t j = 0; j < c->dim; j++)
		if (!isfinite(x[j]))
			return status_set(OMEN_EINVAL,
			                  "collection '%s': vector %zu component %zu is %s",
			                  c->name, i, j, isnan(x[j]) ? "NaN" : "infinite");
	return OMEN_OK;
}

/* Checks every component is finite, normalises for cosine and computes squared norms. One SIMD
 * self-dot per vector does both checks: it is finite exactly when every component is (NaN and
 * infinities propagate), unless huge finite values overflow it, which the slow scan tells apart. */
static int check_vectors(prepared *p, const float *v)
{
	eng_coll *c = p->c;
	size_t dim = c->dim;
	const dist_kernels *dk = dist_best();
	if (c->metric == OMEN_METRIC_COSINE && !(p->norm_copy = mem_alloc(p->n * dim * 4)))
		return status_set(OMEN_ENOMEM, "out of memory");
	for (size_t i = 0; i < p->n; i++) {
		const float *x = v + i * dim;
		float ss = dk->dot(x, x, dim);
		if (!isfinite(ss)) {
			int st = find_nonfinite(c, x, i);
			if (st != OMEN_OK)
				return st;
		}
		if (c->metric == OMEN_METRIC_COSINE) {
			if (ss == 0)
				return status_set(
				    OMEN_EINVAL,
				    "collection '%s': vector %zu is zero, which has no "
				    "cosine direction",
				    c->name, i);
			double norm = sqrt((double)ss);
			if (!isfinite(ss)) { /* overflowed: recompute in double */
				double dd = 0;
				for (size_t j = 0; j < dim; j++)
					dd += (double)x[j] * x[j];
				norm = sqrt(dd);
			}
			float inv = (float)(1.0 / norm);
			for (size_t j = 0; j < dim; j++)
				p->norm_copy[i * dim + j] = x[j] * inv;
			ss = dk->dot(p->norm_copy + i * dim, p->norm_copy + i * dim, dim);
		}
		p->norms[i] = ss;
	}
	p->vecs = p->norm_copy ? p->norm_copy : v;
	return OMEN_OK;
}

static int check_metadata(prepared *p, const char *const *meta)
{
	p->meta = mem_calloc(p->n, sizeof *p->meta);
	p->meta_len = mem_calloc(p->n, sizeof *p->meta_len);
	if (!p->meta || !p->meta_len)
		return status_set(OMEN_ENOMEM, "out of memory");
	for (size_t i = 0; i < p->n; i++) {
		if (!meta[i])
			continue;
		char err[256];
		int st = meta_encode_json(meta[i], &p->meta[i], &p->meta_len[i], err, sizeof err);
		if (st != OMEN_OK)
			return status_set(st, "metadata of point %zu: %s", i, err);
	}
	return OMEN_OK;
}

static int prepare(eng_coll *c, const omen_batch *b, prepared *p)
{
	memset(p, 0, sizeof *p);
	p->c = c;
	if (!b || !b->vectors)
		return status_set(OMEN_EINVAL, "batch or its vectors are NULL");
	if (b->n < 1 || b->n > OMEN_MAX_BATCH)
		return status_set(OMEN_EINVAL, "batch size must be 1 to %d, got %zu",
		                  OMEN_MAX_BATCH, b->n);
	if (b->dim != c->dim)
		return status_set(OMEN_EINVAL, "collection '%s': dimension %u expected, got %zu",
		                  c->name, c->dim, b->dim);
	p->n = b->n;
	p->ids_in = b->ids;
	p->norms = mem_alloc(p->n * sizeof *p->norms);
	p->ids = mem_alloc(p->n * sizeof *p->ids);
	if (!p->norms || !p->ids)
		return status_set(OMEN_ENOMEM, "out of memory");
	int st = b->ids ? check_ids(p) : OMEN_OK;
	if (st == OMEN_OK)
		st = check_vectors(p, b->vectors);
	if (st == OMEN_OK && b->metadata)
		st = check_metadata(p, b->metadata);
	return st;
}

/* ---- tombstones ---- */

/* Sets the tombstone bits of rows (sorted ascending in place) in txn. */
static int tomb_mark(eng_coll *c, MDB_txn *txn, uint64_t *rows, size_t n)
{
	ids_sort(rows, n);
	size_t nw = ((size_t)c->cap + 63) / 64;
	uint64_t *words = mem_alloc(nw * 8);
	if (!words)
		return status_set(OMEN_ENOMEM, "out of memory");
	int st = OMEN_OK;
	for (size_t i = 0; i < n && st == OMEN_OK;) {
		uint64_t chunk = rows[i] / c->cap;
		unsigned char kb[8];
		be64_put(kb, chunk);
		MDB_val k = {8, kb}, v;
		int rc = mdb_get(txn, c->tomb_dbi, &k, &v);
		if (rc == MDB_NOTFOUND)
			memset(words, 0, nw * 8);
		else if (rc != 0)
			st = status_from_mdb(rc, "tombstones");
		else
			st = tomb_load(v.mv_data, v.mv_size, c->cap, words);
		for (; st == OMEN_OK && i < n && rows[i] / c->cap == chunk; i++) {
			uint64_t slot = rows[i] % c->cap;
			words[slot / 64] |= 1ull << (slot % 64);
		}
		if (st != OMEN_OK)
			break;
		v.mv_size = tomb_bytes(c->cap);
		rc = mdb_put(txn, c->tomb_dbi, &k, &v, MDB_RESERVE);
		if (rc != 0)
			st = status_from_mdb(rc, "tombstones");
		else
			tomb_store(v.mv_data, c->cap, words);
	}
	mem_free(words);
	return st;
}

/* Removes the live point id (if any): id map entry and metadata. Adds its row to rows[*n]. */
static int unlink_point(eng_coll *c, MDB_txn *txn, uint64_t id, uint64_t *rows, size_t *n)
{
	uint64_t row;
	int st = idmap_remove(txn, c->id_dbi, id, &row);
	if (st != OMEN_OK)
		return st == OMEN_ENOTFOUND ? OMEN_OK : st;
	unsigned char rb[8];
	be64_put(rb, row);
	MDB_val rk = {8, rb};
	int rc = mdb_del(txn, c->meta_dbi, &rk, NULL);
	if (rc != 0 && rc != MDB_NOTFOUND)
		return status_from_mdb(rc, "deleting point");
	rows[(*n)++] = row;
	return OMEN_OK;
}

/* ---- upsert ---- */

/* Appends n rows starting at row `first` to the vector chunks. The partial last chunk is
 * rewritten whole (LMDB has no partial value writes); new chunks are appended. */
static int append_rows(eng_coll *c, MDB_txn *txn, uint64_t first, const prepared *p)
{
	size_t done = 0;
	while (done < p->n) {
		uint64_t row = first + done, chunk = row / c->cap;
		uint32_t slot = (uint32_t)(row % c->cap);
		uint32_t take = c->cap - slot;
		take = take > p->n - done ? (uint32_t)(p->n - done) : take;
		unsigned char kb[8];
		be64_put(kb, chunk);
		MDB_val k = {8, kb}, v;
		chunk_view old = {0};
		int st = OMEN_OK;
		if (slot > 0) {
			int rc = mdb_get(txn, c->vec_dbi, &k, &v);
			st = rc ? status_from_mdb(rc, "vector chunk")
			        : chunk_view_init(&old, v.mv_data, v.mv_size, c->dim, c->cap);
			if (st == OMEN_OK && old.count != slot)
				st = status_set(OMEN_ECORRUPT,
				                "vector chunk %llu has %u rows, %u "
				                "expected",
				                (unsigned long long)chunk, old.count, slot);
		}
		if (st == OMEN_OK) {
			/* The old value belongs to a committed snapshot, so LMDB does not reuse its
			 * pages inside this transaction: copying from it into the reserved space is
			 * safe. */
			v.mv_size = chunk_bytes(slot + take, c->dim);
			int rc = mdb_put(txn, c->vec_dbi, &k, &v,
			                 MDB_RESERVE | (slot == 0 ? MDB_APPEND : 0));
			if (rc != 0)
				st = status_from_mdb(rc, "vector chunk");
			else
				chunk_write(v.mv_data, c->dim, &old, slot, p->vecs + done * c->dim,
				            p->norms + done, p->ids + done, take);
		}
		chunk_view_release(&old);
		if (st != OMEN_OK)
			return st;
		done += take;
	}
	return OMEN_OK;
}

/* Writes the id map runs and metadata records of the new rows. beyond_all: every id
 * is larger than any id already mapped. */
static int index_rows(eng_coll *c, MDB_txn *txn, uint64_t first, const prepared *p, bool beyond_all)
{
	int st = OMEN_OK;
	for (size_t i = 0, j; i < p->n && st == OMEN_OK; i = j) {
		for (j = i + 1; j < p->n && p->ids[j] == p->ids[j - 1] + 1; j++)
			;
		st = idmap_insert(txn, c->id_dbi, p->ids[i], first + i, j - i,
		                  beyond_all && p->sorted);
	}
	for (size_t i = 0; st == OMEN_OK && p->meta && i < p->n; i++) {
		if (!p->meta[i])
			continue;
		unsigned char kb[8];
		be64_put(kb, first + i);
		MDB_val k = {8, kb}, v = {META_HEADER + p->meta_len[i], NULL};
		int rc = mdb_put(txn, c->meta_dbi, &k, &v, MDB_RESERVE | MDB_APPEND);
		if (rc != 0)
			return status_from_mdb(rc, "metadata");
		meta_rec_header(v.mv_data);
		memcpy((unsigned char *)v.mv_data + META_HEADER, p->meta[i], p->meta_len[i]);
	}
	return st;
}

/* Removes the points that the batch replaces (ids already present). */
static int replace_existing(eng_coll *c, MDB_txn *txn, prepared *p, uint64_t next_id)
{
	p->replaced = 0;
	if (!p->ids_in || p->min_id >= next_id)
		return OMEN_OK; /* every id is new: no look-ups needed */
	uint64_t *rows = mem_alloc(p->n * sizeof *rows);
	if (!rows)
		return status_set(OMEN_ENOMEM, "out of memory");
	int st = OMEN_OK;
	for (size_t i = 0; i < p->n && st == OMEN_OK; i++)
		st = unlink_point(c, txn, p->ids[i], rows, &p->replaced);
	if (st == OMEN_OK && p->replaced)
		st = tomb_mark(c, txn, rows, p->replaced);
	mem_free(rows);
	return st;
}

static int upsert_fn(MDB_txn *txn, void *arg)
{
	prepared *p = arg;
	eng_coll *c = p->c;
	catalog_rec r;
	int st = coll_catalog(c, txn, &r);
	if (st != OMEN_OK)
		return st;
	if (!p->ids_in) {
		if (r.next_id > OMEN_NO_ID - p->n)
			return status_set(OMEN_ELIMIT, "no ids left to assign");
		for (size_t i = 0; i < p->n; i++)
			p->ids[i] = r.next_id + i;
		p->min_id = r.next_id;
		p->max_id = r.next_id + p->n - 1;
		p->sorted = true;
	} else {
		memcpy(p->ids, p->ids_in, p->n * sizeof *p->ids);
	}
	if (r.rows + p->n > UINT32_MAX)
		return status_set(OMEN_ELIMIT, "collection '%s' would exceed 2^32 rows", c->name);
	st = replace_existing(c, txn, p, r.next_id);
	if (st == OMEN_OK)
		st = append_rows(c, txn, r.rows, p);
	if (st == OMEN_OK)
		st = index_rows(c, txn, r.rows, p, p->min_id >= r.next_id);
	if (st == OMEN_OK) /* an IVF index takes new points at once */
		st = ivf_append(c, txn, r.rows, p->vecs, p->n);
	if (st != OMEN_OK)
		return st;
	r.rows += p->n;
	r.points += p->n - p->replaced;
	r.deleted += p->replaced;
	if (p->max_id + 1 > r.next_id)
		r.next_id = p->max_id + 1;
	return catalog_put(c->db->st, txn, c->name, &r);
}

int eng_upsert(eng_coll *c, const omen_batch *b, uint64_t *assigned_ids)
{
	if (!c)
		return status_set(OMEN_EINVAL, "collection handle is NULL");
	prepared p;
	int st = prepare(c, b, &p);
	if (st == OMEN_OK)
		st = store_write(c->db->st, upsert_fn, &p, (uint64_t)p.n * chunk_bytes(1, c->dim));
	if (st == OMEN_OK && assigned_ids)
		memcpy(assigned_ids, p.ids, p.n * sizeof *p.ids);
	if (st == OMEN_OK)
		indexer_notify(c->db->ix, c->name);
	prepared_free(&p);
	return st;
}

/* ---- delete ---- */

typedef struct delete_ctx {
	eng_coll *c;
	const uint64_t *ids;
	size_t n;
	size_t deleted;
} delete_ctx;

static int delete_fn(MDB_txn *txn, void *arg)
{
	delete_ctx *x = arg;
	eng_coll *c = x->c;
	catalog_rec r;
	int st = coll_catalog(c, txn, &r);
	uint64_t *rows = mem_alloc(x->n * sizeof *rows);
	if (!rows)
		st = status_set(OMEN_ENOMEM, "out of memory");
	x->deleted = 0;
	for (size_t i = 0; i < x->n && st == OMEN_OK; i++)
		if (x->ids[i] != OMEN_NO_ID)
			st = unlink_point(c, txn, x->ids[i], rows, &x->deleted);
	if (st == OMEN_OK && x->deleted) {
		st = tomb_mark(c, txn, rows, x->deleted);
		r.points -= x->deleted;
		r.deleted += x->deleted;
		if (st == OMEN_OK)
			st = catalog_put(c->db->st, txn, c->name, &r);
	}
	mem_free(rows);
	return st;
}

int eng_delete(eng_coll *c, const uint64_t *ids, size_t n, size_t *deleted)
{
	if (!c || (n && !ids))
		return status_set(OMEN_EINVAL, "NULL argument");
	if (n > OMEN_MAX_BATCH)
		return status_set(OMEN_EINVAL, "at most %d ids per delete", OMEN_MAX_BATCH);
	delete_ctx x = {c, ids, n, 0};
	int st = n ? store_write(c->db->st, delete_fn, &x, n * 64) : OMEN_OK;
	if (st == OMEN_OK && deleted)
		*deleted = x.deleted;
	return st;
}

/* ---- get ---- */

/* Looks up one point: its row's vector into vec (may be NULL) and metadata into *meta. */
static int get_one(eng_coll *c, MDB_txn *txn, uint64_t id, float *vec, char **meta, uint8_t *found)
{
	uint64_t row;
	*found = 0;
	int st = idmap_get(txn, c->id_dbi, id, &row);
	if (st != OMEN_OK)
		return st == OMEN_ENOTFOUND ? OMEN_OK : st;
	unsigned char kb[8];
	MDB_val k = {8, kb}, v;
	int rc;
	if (vec) {
		be64_put(kb, row / c->cap);
		rc = mdb_get(txn, c->vec_dbi, &k, &v);
		if (rc != 0)
			return status_set(OMEN_ECORRUPT, "point %llu: its vector chunk is missing",
			                  (unsigned long long)id);
		chunk_view cv;
		st = chunk_view_init(&cv, v.mv_data, v.mv_size, c->dim, c->cap);
		uint32_t slot = (uint32_t)(row % c->cap);
		if (st == OMEN_OK && (slot >= cv.count || chunk_id(&cv, slot) != id))
			st = status_set(OMEN_ECORRUPT, "point %llu: id map and chunk disagree",
			                (unsigned long long)id);
		if (st == OMEN_OK)
			memcpy(vec, cv.vecs + (size_t)slot * c->dim, (size_t)c->dim * 4);
		chunk_view_release(&cv);
		if (st != OMEN_OK)
			return st;
	}
	if (meta) {
		be64_put(kb, row);
		rc = mdb_get(txn, c->meta_dbi, &k, &v);
		const unsigned char *mp;
		size_t len;
		if (rc == 0) {
			st = meta_rec_body(v.mv_data, v.mv_size, &mp, &len);
			if (st == OMEN_OK)
				st = meta_decode_json(mp, len, meta);
			if (st != OMEN_OK)
				return status_set(st, "point %llu: metadata is corrupt",
				                  (unsigned long long)id);
		} else if (rc != MDB_NOTFOUND) {
			return status_from_mdb(rc, "metadata");
		}
	}
	*found = 1;
	return OMEN_OK;
}

/* A read transaction on a collection that still exists (ended by the caller unless this
 * fails). */
static int coll_read_begin(eng_coll *c, MDB_txn **txn)
{
	int st = store_read_begin(c->db->st, txn);
	if (st != OMEN_OK)
		return st;
	catalog_rec r;
	if ((st = coll_catalog(c, *txn, &r)) != OMEN_OK)
		store_read_end(c->db->st, *txn);
	return st;
}

int eng_get(eng_coll *c, const uint64_t *ids, size_t n, float *vectors, char **metadata,
            uint8_t *found)
{
	if (!c || (n && (!ids || !found)))
		return status_set(OMEN_EINVAL, "NULL argument");
	MDB_txn *txn;
	int st = coll_read_begin(c, &txn);
	if (st != OMEN_OK)
		return st;
	if (metadata)
		memset(metadata, 0, n * sizeof *metadata);
	for (size_t i = 0; i < n && st == OMEN_OK; i++) {
		float *vec = vectors ? vectors + i * c->dim : NULL;
		st = get_one(c, txn, ids[i], vec, metadata ? &metadata[i] : NULL, &found[i]);
		if (st == OMEN_OK && !found[i] && vec)
			memset(vec, 0, (size_t)c->dim * 4);
	}
	store_read_end(c->db->st, txn);
	if (st != OMEN_OK && metadata)
		for (size_t i = 0; i < n; i++) {
			mem_free(metadata[i]);
			metadata[i] = NULL;
		}
	return st;
}

int eng_list_ids(eng_coll *c, uint64_t start, size_t max, uint64_t *ids, size_t *n)
{
	if (!c || !ids || !n)
		return status_set(OMEN_EINVAL, "NULL argument");
	if (max < 1 || max > OMEN_MAX_BATCH)
		return status_set(OMEN_EINVAL, "list ids: max must be 1..%d", OMEN_MAX_BATCH);
	MDB_txn *txn;
	int st = coll_read_begin(c, &txn);
	if (st != OMEN_OK)
		return st;
	st = idmap_list(txn, c->id_dbi, start, max, ids, n);
	store_read_end(c->db->st, txn);
	return st;
}
