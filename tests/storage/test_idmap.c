/*
 * The id map (storage/idmap.c) against a plain array model: runs inserted at the end and in
 * between, removals that split runs, lookups of every id, and listing page by page; and an
 * entry of the wrong size read as OMEN_ECORRUPT.
 */
#define OMEN_TEST_INTERNAL
#include "helpers.h"

#include "storage/storage.h"

#define IDS  3000
#define NONE UINT64_MAX

typedef struct fx {
	char dir[512];
	store *s;
	MDB_dbi dbi;
	uint64_t model[IDS]; /* id -> row, NONE when absent */
} fx;

static int make_dbi(MDB_txn *txn, void *arg)
{
	fx *f = arg;
	return store_dbi(txn, "ids", true, &f->dbi);
}

static void fx_open(fx *f)
{
	omen_open_options opt;
	open_options_default(&opt);
	tmp_dir(f->dir, sizeof f->dir, "idmap");
	assert_omen_ok(store_open(f->dir, &opt, &f->s));
	assert_omen_ok(store_write(f->s, make_dbi, f, 0));
	for (int i = 0; i < IDS; i++)
		f->model[i] = NONE;
}

static void fx_close(fx *f)
{
	store_close(f->s);
	rm_tree(f->dir);
}

typedef struct op {
	fx *f;
	uint64_t first, row, n;
	bool beyond;
	uint64_t got;
} op;

static int insert_fn(MDB_txn *txn, void *arg)
{
	op *o = arg;
	return idmap_insert(txn, o->f->dbi, o->first, o->row, o->n, o->beyond);
}

static int remove_fn(MDB_txn *txn, void *arg)
{
	op *o = arg;
	return idmap_remove(txn, o->f->dbi, o->first, &o->got);
}

/* Every id's lookup and a listing in pages of page ids agree with the model. */
static void check_model(fx *f, size_t page)
{
	MDB_txn *txn;
	assert_omen_ok(store_read_begin(f->s, &txn));
	for (uint64_t id = 0; id < IDS; id++) {
		uint64_t row = 12345;
		int st = idmap_get(txn, f->dbi, id, &row);
		if (f->model[id] == NONE) {
			assert_int_equal(st, OMEN_ENOTFOUND);
			assert_int_equal(row, 12345);
		} else {
			assert_omen_ok(st);
			assert_int_equal(row, f->model[id]);
		}
	}
	uint64_t want = 0, buf[IDS];
	size_t n;
	for (uint64_t start = 0;; start = buf[n - 1] + 1) {
		assert_omen_ok(idmap_list(txn, f->dbi, start, page, buf, &n));
		for (size_t i = 0; i < n; i++) {
			while (want < IDS && f->model[want] == NONE)
				want++;
			assert_int_equal(buf[i], want++);
		}
		if (n < page)
			break;
	}
	while (want < IDS && f->model[want] == NONE)
		want++;
	assert_int_equal(want, IDS);
	store_read_end(f->s, txn);
}

static void test_model(void **state)
{
	(void)state;
	fx f;
	fx_open(&f);
	uint64_t s = 3, next_row = 0, top = 0;
	for (int step = 0; step < 400; step++) {
		uint64_t r = rnd_next(&s);
		if (r % 3 != 0 || top == 0) { /* insert a run of absent ids */
			op o = {&f, 0, next_row, 1 + (r >> 8) % 20, false, 0};
			o.beyond = (r >> 20) % 2 == 0 || top == 0;
			o.first = o.beyond ? top + (r >> 24) % 3 : (r >> 28) % top;
			if (o.first + o.n > IDS)
				continue;
			bool clash = false;
			for (uint64_t i = 0; i < o.n; i++)
				clash |= f.model[o.first + i] != NONE;
			if (clash || (o.beyond && o.first < top))
				continue;
			assert_omen_ok(store_write(f.s, insert_fn, &o, 0));
			for (uint64_t i = 0; i < o.n; i++)
				f.model[o.first + i] = o.row + i;
			next_row += o.n;
			top = o.first + o.n > top ? o.first + o.n : top;
		} else { /* remove one id, present or not */
			op o = {&f, (r >> 8) % top, 0, 0, false, 0};
			int st = store_write(f.s, remove_fn, &o, 0);
			if (f.model[o.first] == NONE) {
				assert_int_equal(st, OMEN_ENOTFOUND);
			} else {
				assert_omen_ok(st);
				assert_int_equal(o.got, f.model[o.first]);
				f.model[o.first] = NONE;
			}
		}
		if (step % 50 == 49)
			check_model(&f, 1 + step % 97);
	}
	check_model(&f, 1);
	check_model(&f, IDS);
	fx_close(&f);
}

/* Consecutive ids written at the end extend one run: one entry for a whole bulk load. */
static void test_runs_extend(void **state)
{
	(void)state;
	fx f;
	fx_open(&f);
	for (uint64_t b = 0; b < 10; b++) {
		op o = {&f, b * 100, b * 100, 100, true, 0};
		assert_omen_ok(store_write(f.s, insert_fn, &o, 0));
	}
	MDB_txn *txn;
	MDB_stat ms;
	assert_omen_ok(store_read_begin(f.s, &txn));
	assert_int_equal(mdb_stat(txn, f.dbi, &ms), 0);
	store_read_end(f.s, txn);
	assert_int_equal(ms.ms_entries, 1);
	/* Mapping an id again is refused. */
	op again = {&f, 500, 2000, 1, false, 0};
	assert_omen_status(store_write(f.s, insert_fn, &again, 0), OMEN_ECORRUPT);
	fx_close(&f);
}

static int put_bad(MDB_txn *txn, void *arg)
{
	fx *f = arg;
	unsigned char k[8], v[12] = {0};
	be64_put(k, 7);
	MDB_val key = {8, k}, val = {sizeof v, v};
	return mdb_put(txn, f->dbi, &key, &val, 0) ? OMEN_EIO : OMEN_OK;
}

static void test_corrupt_entry(void **state)
{
	(void)state;
	fx f;
	fx_open(&f);
	assert_omen_ok(store_write(f.s, put_bad, &f, 0));
	MDB_txn *txn;
	uint64_t row;
	assert_omen_ok(store_read_begin(f.s, &txn));
	assert_omen_status(idmap_get(txn, f.dbi, 7, &row), OMEN_ECORRUPT);
	store_read_end(f.s, txn);
	fx_close(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_model),
	    cmocka_unit_test(test_runs_extend),
	    cmocka_unit_test(test_corrupt_entry),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
