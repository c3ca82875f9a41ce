/*
 * Snapshots: what a search reads, from one LMDB read transaction. Loads the views of every
 * vector chunk (pointers straight into the memory map), the tombstone bitsets, and, for a
 * filtered search, the set of rows whose metadata matches, so that searches see vectors,
 * deletions and metadata of one consistent moment without taking any lock.
 */
#include <roaring/roaring.h>
#include <stdlib.h>
#include <string.h>

#include "engine/distance.h"
#include "engine/engine.h"
#include "engine/filter.h"

/* Loads the views of all chunks, which must be numbered 0..n-1. */
static int load_chunks(snapshot *s, MDB_txn *txn)
{
	eng_coll *c = s->c;
	uint64_t rows = s->rec.rows;
	size_t n = (size_t)((rows + c->cap - 1) / c->cap);
	s->views = mem_calloc(n ? n : 1, sizeof *s->views);
	s->tombs = mem_calloc(n ? n : 1, sizeof *s->tombs);
	if (!s->views || !s->tombs)
		return status_set(OMEN_ENOMEM, "out of memory");
	MDB_cursor *cur;
	int rc = mdb_cursor_open(txn, c->vec_dbi, &cur);
	if (rc != 0)
		return status_from_mdb(rc, "vector chunks");
	MDB_val k, v;
	int st = OMEN_OK;
	for (size_t i = 0; i < n && st == OMEN_OK; i++) {
		rc = mdb_cursor_get(cur, &k, &v, i ? MDB_NEXT : MDB_FIRST);
		if (rc != 0 || k.mv_size != 8 || be64_get(k.mv_data) != i)
			st = status_set(OMEN_ECORRUPT,
			                "collection '%s': vector chunk %zu is missing", c->name, i);
		else
			st = chunk_view_init(&s->views[i], v.mv_data, v.mv_size, c->dim, c->cap);
		s->nchunks = i + 1;
	}
	mdb_cursor_close(cur);
	if (st == OMEN_OK && n && (uint64_t)(n - 1) * c->cap + s->views[n - 1].count != rows)
		st = status_set(OMEN_ECORRUPT, "collection '%s': row count disagrees with chunks",
		                c->name);
	return st;
}

static int load_tombs(snapshot *s, MDB_txn *txn)
{
	eng_coll *c = s->c;
	MDB_cursor *cur;
	int rc = mdb_cursor_open(txn, c->tomb_dbi, &cur);
	if (rc != 0)
		return status_from_mdb(rc, "tombstones");
	MDB_val k, v;
	int st = OMEN_OK;
	size_t nw = ((size_t)c->cap + 63) / 64;
	for (int op = MDB_FIRST; st == OMEN_OK && mdb_cursor_get(cur, &k, &v, op) == 0;
	     op = MDB_NEXT) {
		uint64_t chunk = k.mv_size == 8 ? be64_get(k.mv_data) : UINT64_MAX;
		if (chunk >= s->nchunks) {
			st = status_set(OMEN_ECORRUPT, "tombstone record for a missing chunk");
			break;
		}
		s->tombs[chunk] = mem_alloc(nw * 8);
		st = s->tombs[chunk] ? tomb_load(v.mv_data, v.mv_size, c->cap, s->tombs[chunk])
		                     : status_set(OMEN_ENOMEM, "out of memory");
	}
	mdb_cursor_close(cur);
	return st;
}

/* Builds the set of rows whose metadata matches the filter. Rows without metadata match when
 * the filter matches an empty map (e.g. $ne). */
static int load_filter(snapshot *s, MDB_txn *txn, const char *json)
{
	char err[256];
	filter *f;
	uint64_t rows = s->rec.rows;
	int st = filter_compile(json, &f, err, sizeof err);
	if (st != OMEN_OK)
		return status_set(st, "filter: %s", err);
	roaring_bitmap_t *with_meta = roaring_bitmap_create();
	s->allow = roaring_bitmap_create();
	MDB_cursor *cur;
	int rc = mdb_cursor_open(txn, s->c->meta_dbi, &cur);
	st = rc ? status_from_mdb(rc, "metadata") : OMEN_OK;
	MDB_val k, v;
	for (int op = MDB_FIRST; st == OMEN_OK && mdb_cursor_get(cur, &k, &v, op) == 0;
	     op = MDB_NEXT) {
		const unsigned char *mp;
		size_t len;
		uint64_t row = k.mv_size == 8 ? be64_get(k.mv_data) : UINT64_MAX;
		st = row < rows ? meta_rec_body(v.mv_data, v.mv_size, &mp, &len)
		                : status_set(OMEN_ECORRUPT, "metadata record for a missing row");
		if (st != OMEN_OK)
			break;
		roaring_bitmap_add(with_meta, (uint32_t)row);
		if (filter_match(f, mp, len))
			roaring_bitmap_add(s->allow, (uint32_t)row);
	}
	if (rc == 0)
		mdb_cursor_close(cur);
	if (st == OMEN_OK && rows && filter_match(f, NULL, 0)) {
		roaring_bitmap_t *bare = roaring_bitmap_create();
		roaring_bitmap_add_range(bare, 0, rows);
		roaring_bitmap_andnot_inplace(bare, with_meta);
		roaring_bitmap_or_inplace(s->allow, bare);
		roaring_bitmap_free(bare);
	}
	roaring_bitmap_free(with_meta);
	filter_free(f);
	return st;
}

int snap_open(eng_coll *c, MDB_txn *txn, const char *filter_json, snapshot *s)
{
	memset(s, 0, sizeof *s);
	s->c = c;
	s->dk = dist_best();
	while ((1u << s->shift) < c->cap)
		s->shift++;
	int st = coll_catalog(c, txn, &s->rec);
	if (st == OMEN_OK)
		st = load_chunks(s, txn);
	if (st == OMEN_OK && s->rec.deleted)
		st = load_tombs(s, txn);
	if (st == OMEN_OK && filter_json)
		st = load_filter(s, txn, filter_json);
	if (st != OMEN_OK)
		snap_close(s);
	return st;
}

void snap_close(snapshot *s)
{
	for (size_t i = 0; i < s->nchunks; i++) {
		chunk_view_release(&s->views[i]);
		if (s->tombs)
			mem_free(s->tombs[i]);
	}
	mem_free(s->views);
	mem_free(s->tombs);
	if (s->allow)
		roaring_bitmap_free(s->allow);
	memset(s, 0, sizeof *s);
}

uint64_t snap_allowed(const snapshot *s)
{
	return s->allow ? roaring_bitmap_get_cardinality(s->allow) : s->rec.rows;
}

bool snap_allows(const snapshot *s, uint64_t row)
{
	return roaring_bitmap_contains(s->allow, (uint32_t)row);
}

float snap_dist(const snapshot *s, const float *q, uint64_t row)
{
	const float *x = snap_vec(s, row);
	size_t dim = s->c->dim;
	if (s->c->metric == OMEN_METRIC_L2)
		return s->dk->l2sq(q, x, dim);
	float d = s->dk->dot(q, x, dim);
	return s->c->metric == OMEN_METRIC_IP ? -d : 1 - d;
}

float snap_max_norm(const snapshot *s)
{
	float max = 0;
	for (size_t i = 0; i < s->nchunks; i++)
		for (uint32_t r = 0; r < s->views[i].count; r++)
			if (!(s->views[i].norms[r] <= max)) /* also takes an infinite norm */
				max = s->views[i].norms[r];
	return max;
}
