/*
 * The id map of a collection: point id -> row, stored as runs. A run maps ids first..first+n-1
 * to rows row..row+n-1 and is one LMDB entry (key: first id, u64 big-endian; value: row and n,
 * u64 little-endian each). Bulk loads of consecutive ids therefore cost one entry per batch
 * (extending the previous run) instead of one per point; scattered ids cost one entry each.
 * Removing an id splits its run. Runs never overlap.
 */
#include "storage/storage.h"

#define RUN_VALUE 16

typedef struct run {
	uint64_t first, row, n;
} run;

/* Reads the entry under the cursor into r; OMEN_ECORRUPT if malformed. */
static int run_read(const MDB_val *k, const MDB_val *v, run *r)
{
	if (k->mv_size != 8 || v->mv_size != RUN_VALUE)
		return status_set(OMEN_ECORRUPT, "id map entry has the wrong size");
	r->first = be64_get(k->mv_data);
	r->row = le64_get(v->mv_data);
	r->n = le64_get((const unsigned char *)v->mv_data + 8);
	if (r->n == 0 || r->first + r->n < r->first)
		return status_set(OMEN_ECORRUPT, "id map entry is invalid");
	return OMEN_OK;
}

/* Positions cur on the last run whose first id is <= id. OMEN_ENOTFOUND (no message) if none. */
static int run_floor(MDB_cursor *cur, uint64_t id, run *r)
{
	unsigned char kb[8];
	be64_put(kb, id);
	MDB_val k = {8, kb}, v;
	int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
	if (rc == 0 && k.mv_size == 8 && be64_get(k.mv_data) == id)
		return run_read(&k, &v, r);
	if (rc == MDB_NOTFOUND)
		rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
	else if (rc == 0)
		rc = mdb_cursor_get(cur, &k, &v, MDB_PREV);
	if (rc == MDB_NOTFOUND)
		return OMEN_ENOTFOUND;
	return rc ? status_from_mdb(rc, "id map") : run_read(&k, &v, r);
}

/* Writes run r under cursor cur: in place (MDB_CURRENT) when cur sits on r's key, else new. */
static int run_put(MDB_cursor *cur, const run *r, unsigned flags)
{
	unsigned char kb[8], vb[RUN_VALUE];
	be64_put(kb, r->first);
	le64_put(vb, r->row);
	le64_put(vb + 8, r->n);
	MDB_val k = {8, kb}, v = {RUN_VALUE, vb};
	int rc = mdb_cursor_put(cur, &k, &v, flags);
	return rc ? status_from_mdb(rc, "id map") : OMEN_OK;
}

static int with_cursor(MDB_txn *txn, MDB_dbi dbi, MDB_cursor **cur)
{
	int rc = mdb_cursor_open(txn, dbi, cur);
	return rc ? status_from_mdb(rc, "id map") : OMEN_OK;
}

/* Positions cur on the run that contains id: OMEN_ENOTFOUND (no message) when none does. */
static int run_find(MDB_cursor *cur, uint64_t id, run *r)
{
	int st = run_floor(cur, id, r);
	return st == OMEN_OK && id - r->first >= r->n ? OMEN_ENOTFOUND : st;
}

int idmap_get(MDB_txn *txn, MDB_dbi dbi, uint64_t id, uint64_t *row)
{
	MDB_cursor *cur;
	run r;
	int st = with_cursor(txn, dbi, &cur);
	if (st != OMEN_OK)
		return st;
	st = run_find(cur, id, &r);
	mdb_cursor_close(cur);
	if (st == OMEN_OK)
		*row = r.row + (id - r.first);
	return st;
}

/* Cuts id out of run r, on which cur sits. */
static int run_split(MDB_cursor *cur, run r, uint64_t id)
{
	uint64_t off = id - r.first;
	run tail = {id + 1, r.row + off + 1, r.n - off - 1};
	int st = OMEN_OK;
	if (off == 0) {
		int rc = mdb_cursor_del(cur, 0);
		st = rc ? status_from_mdb(rc, "id map") : OMEN_OK;
	} else {
		r.n = off;
		st = run_put(cur, &r, MDB_CURRENT);
	}
	if (st == OMEN_OK && tail.n > 0)
		st = run_put(cur, &tail, 0);
	return st;
}

int idmap_remove(MDB_txn *txn, MDB_dbi dbi, uint64_t id, uint64_t *row)
{
	MDB_cursor *cur;
	run r;
	int st = with_cursor(txn, dbi, &cur);
	if (st != OMEN_OK)
		return st;
	st = run_find(cur, id, &r);
	if (st == OMEN_OK) {
		*row = r.row + (id - r.first);
		st = run_split(cur, r, id);
	}
	mdb_cursor_close(cur);
	return st;
}

int idmap_insert(MDB_txn *txn, MDB_dbi dbi, uint64_t first, uint64_t row, uint64_t n,
                 bool beyond_all)
{
	MDB_cursor *cur;
	run pred, add = {first, row, n};
	int st = with_cursor(txn, dbi, &cur);
	if (st != OMEN_OK)
		return st;
	if (beyond_all) {
		MDB_val k, v;
		int rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
		st = rc == MDB_NOTFOUND ? OMEN_ENOTFOUND
		     : rc               ? status_from_mdb(rc, "id map")
		                        : run_read(&k, &v, &pred);
	} else {
		st = run_floor(cur, first, &pred);
	}
	if (st == OMEN_OK && first - pred.first < pred.n)
		st = status_set(OMEN_ECORRUPT, "id map: id %llu is already mapped",
		                (unsigned long long)first);
	else if (st == OMEN_OK && pred.first + pred.n == first && pred.row + pred.n == row) {
		pred.n += n; /* the common bulk-load case: extend the previous run */
		st = run_put(cur, &pred, MDB_CURRENT);
	} else if (st == OMEN_OK || st == OMEN_ENOTFOUND) {
		st = run_put(cur, &add, beyond_all ? MDB_APPEND : 0);
	}
	mdb_cursor_close(cur);
	return st;
}

int idmap_list(MDB_txn *txn, MDB_dbi dbi, uint64_t start, size_t max, uint64_t *ids, size_t *n)
{
	MDB_cursor *cur;
	run r;
	size_t m = 0;
	int st = with_cursor(txn, dbi, &cur);
	if (st != OMEN_OK)
		return st;
	st = run_floor(cur, start, &r); /* the run holding start, or the one before it */
	if (st == OMEN_ENOTFOUND) {     /* every run starts above start */
		MDB_val k, v;
		int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
		st = rc == MDB_NOTFOUND ? OMEN_ENOTFOUND
		     : rc               ? status_from_mdb(rc, "id map")
		                        : run_read(&k, &v, &r);
	}
	while (st == OMEN_OK && m < max) {
		for (uint64_t i = r.first < start ? start - r.first : 0; i < r.n && m < max; i++)
			ids[m++] = r.first + i;
		MDB_val k, v;
		int rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
		st = rc == MDB_NOTFOUND ? OMEN_ENOTFOUND
		     : rc               ? status_from_mdb(rc, "id map")
		                        : run_read(&k, &v, &r);
	}
	mdb_cursor_close(cur);
	*n = m;
	return st == OMEN_ENOTFOUND ? OMEN_OK : st;
}
