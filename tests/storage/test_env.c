/*
 * The growable LMDB environment (storage/env.c): a write that fills the map grows it and is
 * redone, with nothing lost; the map stops at its maximum with OMEN_EFULL and the earlier
 * writes intact; readers in other threads keep reading while it grows.
 */
#include <pthread.h>

#define OMEN_TEST_INTERNAL
#include "helpers.h"

#include "storage/storage.h"

#define VALUE (64u << 10)

typedef struct fx {
	char dir[512];
	lenv e;
	MDB_dbi dbi;
	uint64_t next; /* keys written: 0..next-1 */
	int stop;
} fx;

static int make_dbi(MDB_txn *txn, void *arg)
{
	fx *f = arg;
	return mdb_dbi_open(txn, "v", MDB_CREATE, &f->dbi) ? OMEN_EIO : OMEN_OK;
}

/* Writes 16 values of VALUE bytes, each filled with its key's low byte. */
static int put_16(MDB_txn *txn, void *arg)
{
	fx *f = arg;
	for (uint64_t i = f->next; i < f->next + 16; i++) {
		unsigned char k[8];
		be64_put(k, i);
		MDB_val key = {8, k}, val = {VALUE, NULL};
		int rc = mdb_put(txn, f->dbi, &key, &val, MDB_RESERVE);
		if (rc)
			return status_from_mdb(rc, "test write");
		memset(val.mv_data, (int)(i & 0xff), VALUE);
	}
	return OMEN_OK;
}

static void fx_open(fx *f, uint64_t initial, uint64_t max)
{
	memset(f, 0, sizeof *f);
	tmp_dir(f->dir, sizeof f->dir, "env");
	lenv_init(&f->e, max);
	assert_omen_ok(lenv_open(&f->e, f->dir, 4, 0, initial, MDB_NOTLS | MDB_NOSYNC));
	pthread_mutex_lock(&f->e.write_mu);
	assert_omen_ok(lenv_write(&f->e, make_dbi, f));
	pthread_mutex_unlock(&f->e.write_mu);
}

static void fx_close(fx *f)
{
	mdb_env_close(f->e.env);
	lenv_fini(&f->e);
	rm_tree(f->dir);
}

static int write_16(fx *f)
{
	pthread_mutex_lock(&f->e.write_mu);
	int st = lenv_write(&f->e, put_16, f);
	pthread_mutex_unlock(&f->e.write_mu);
	if (st == OMEN_OK)
		f->next += 16;
	return st;
}

/* Every value written so far is there with its bytes. */
static void check_all(fx *f)
{
	MDB_txn *txn;
	assert_omen_ok(lenv_read_begin(&f->e, &txn));
	for (uint64_t i = 0; i < f->next; i++) {
		unsigned char k[8];
		be64_put(k, i);
		MDB_val key = {8, k}, val;
		assert_int_equal(mdb_get(txn, f->dbi, &key, &val), 0);
		assert_int_equal(val.mv_size, VALUE);
		const unsigned char *p = val.mv_data;
		assert_true(p[0] == (i & 0xff) && p[VALUE - 1] == (i & 0xff));
	}
	lenv_read_end(&f->e, txn);
}

static void test_grows(void **state)
{
	(void)state;
	fx f;
	fx_open(&f, 1u << 20, 0);
	uint64_t first = f.e.map_size;
	for (int i = 0; i < 20; i++) /* 20 MiB into a 1 MiB map */
		assert_omen_ok(write_16(&f));
	assert_true(f.e.map_size >= 20u << 20 && f.e.map_size > first);
	check_all(&f);
	fx_close(&f);
}

static void test_maximum(void **state)
{
	(void)state;
	fx f;
	fx_open(&f, 1u << 20, 8u << 20);
	int st = OMEN_OK;
	for (int i = 0; i < 20 && st == OMEN_OK; i++)
		st = write_16(&f);
	assert_int_equal(st, OMEN_EFULL);
	assert_true(f.e.map_size == 8u << 20);
	assert_true(f.next > 0);
	check_all(&f); /* the writes before the full one are whole */
	fx_close(&f);
}

static void *reader(void *arg)
{
	fx *f = arg;
	while (!__atomic_load_n(&f->stop, __ATOMIC_RELAXED)) {
		MDB_txn *txn;
		if (lenv_read_begin(&f->e, &txn) != OMEN_OK)
			return (void *)1;
		MDB_stat ms;
		mdb_stat(txn, f->dbi, &ms);
		lenv_read_end(&f->e, txn);
	}
	return NULL;
}

static void test_readers_during_growth(void **state)
{
	(void)state;
	fx f;
	fx_open(&f, 1u << 20, 0);
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, reader, &f);
	for (int i = 0; i < 10; i++)
		assert_omen_ok(write_16(&f));
	__atomic_store_n(&f.stop, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < 2; i++) {
		void *rv;
		pthread_join(t[i], &rv);
		assert_null(rv);
	}
	check_all(&f);
	fx_close(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_grows),
	    cmocka_unit_test(test_maximum),
	    cmocka_unit_test(test_readers_during_growth),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
