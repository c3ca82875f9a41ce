/*
 * The database store (storage/store.c): a directory created, reopened and refused when it
 * holds something else; the format header's version; the catalog's records and their
 * validation; collection ids; write transactions that land whole or not at all; read-only
 * stores.
 */
#include <sys/stat.h>

#define OMEN_TEST_INTERNAL
#include "helpers.h"

#include "storage/storage.h"

static omen_open_options defaults(void)
{
	omen_open_options opt;
	open_options_default(&opt);
	return opt;
}

static void test_open_and_refuse(void **state)
{
	(void)state;
	char dir[512], path[600];
	omen_open_options opt = defaults();
	store *s;
	tmp_dir(dir, sizeof dir, "store");
	snprintf(path, sizeof path, "%s/new", dir);
	assert_omen_ok(store_open(path, &opt, &s)); /* created */
	store_close(s);
	assert_omen_ok(store_open(path, &opt, &s)); /* reopened */
	store_close(s);
	/* a directory of other files */
	snprintf(path, sizeof path, "%s/other", dir);
	mkdir(path, 0755);
	snprintf(path, sizeof path, "%s/other/notes.txt", dir);
	FILE *f = fopen(path, "w");
	fclose(f);
	snprintf(path, sizeof path, "%s/other", dir);
	assert_omen_status(store_open(path, &opt, &s), OMEN_ENOTDB);
	/* a file */
	snprintf(path, sizeof path, "%s/other/notes.txt", dir);
	assert_omen_status(store_open(path, &opt, &s), OMEN_ENOTDB);
	/* nothing there, read-only or no_create */
	snprintf(path, sizeof path, "%s/absent", dir);
	opt.read_only = 1;
	assert_omen_status(store_open(path, &opt, &s), OMEN_ENOTDB);
	opt.read_only = 0;
	opt.no_create = 1;
	assert_omen_status(store_open(path, &opt, &s), OMEN_ENOTDB);
	struct stat st;
	assert_int_equal(stat(path, &st), -1); /* and nothing was made */
	/* bad options */
	opt = defaults();
	opt.max_bytes = 1000;
	assert_omen_status(store_open(dir, &opt, &s), OMEN_EINVAL);
	rm_tree(dir);
}

/* Rewrites the format header's version in place with LMDB directly. */
static void set_format_version(const char *dir, uint32_t version)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	assert_int_equal(mdb_env_create(&env), 0);
	assert_int_equal(mdb_env_set_maxdbs(env, 8), 0);
	assert_int_equal(mdb_env_open(env, dir, 0, 0644), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "omendb", 0, &dbi), 0);
	MDB_val k = {6, "format"}, v;
	assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
	unsigned char rec[64];
	memcpy(rec, v.mv_data, v.mv_size);
	le32_put(rec + 8, version);
	v.mv_data = rec;
	assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

static void test_format_version(void **state)
{
	(void)state;
	char dir[512];
	omen_open_options opt = defaults();
	store *s;
	tmp_dir(dir, sizeof dir, "store");
	assert_omen_ok(store_open(dir, &opt, &s));
	store_close(s);
	set_format_version(dir, STORE_FORMAT_VERSION + 1);
	assert_omen_status(store_open(dir, &opt, &s), OMEN_EVERSION);
	set_format_version(dir, 0);
	assert_omen_status(store_open(dir, &opt, &s), OMEN_ECORRUPT);
	set_format_version(dir, STORE_FORMAT_VERSION);
	assert_omen_ok(store_open(dir, &opt, &s));
	store_close(s);
	rm_tree(dir);
}

typedef struct cat {
	store *s;
	catalog_rec rec;
	uint32_t ids[3];
	int fail_after_put;
	const void *raw; /* written as the record of "raw" when set */
	size_t raw_len;
} cat;

static int cat_put(MDB_txn *txn, void *arg)
{
	cat *c = arg;
	for (int i = 0; i < 3; i++) {
		int st = store_next_collection_id(c->s, txn, &c->ids[i]);
		if (st != OMEN_OK)
			return st;
	}
	int st = catalog_put(c->s, txn, "docs", &c->rec);
	if (st == OMEN_OK && c->raw) {
		MDB_val k = {3, "raw"}, v = {c->raw_len, (void *)c->raw};
		st = mdb_put(txn, c->s->catalog_dbi, &k, &v, 0) ? OMEN_EIO : OMEN_OK;
	}
	return st == OMEN_OK && c->fail_after_put ? status_set(OMEN_EINVAL, "refused") : st;
}

static void test_catalog(void **state)
{
	(void)state;
	char dir[512];
	omen_open_options opt = defaults();
	tmp_dir(dir, sizeof dir, "store");
	cat c = {0};
	assert_omen_ok(store_open(dir, &opt, &c.s));
	c.rec = (catalog_rec){7, 128, OMEN_METRIC_IP, chunk_cap_for_dim(128), 50, 60, 55, 5};
	assert_omen_ok(store_write(c.s, cat_put, &c, 0));
	assert_true(c.ids[0] == 1 && c.ids[1] == 2 && c.ids[2] == 3);
	MDB_txn *txn;
	catalog_rec got;
	assert_omen_ok(store_read_begin(c.s, &txn));
	assert_omen_ok(catalog_get(c.s, txn, "docs", &got));
	assert_memory_equal(&got, &c.rec, sizeof got);
	assert_omen_status(catalog_get(c.s, txn, "none", &got), OMEN_ENOTFOUND);
	store_read_end(c.s, txn);
	/* A failing transaction leaves nothing: the ids are not spent either. */
	c.fail_after_put = 1;
	c.rec.points = 1;
	assert_omen_status(store_write(c.s, cat_put, &c, 0), OMEN_EINVAL);
	c.fail_after_put = 0;
	c.rec.points = 55;
	/* A damaged record, and one whose counts disagree, are refused. */
	unsigned char bad[CATALOG_REC_SIZE] = "OMCL";
	c.raw = bad;
	c.raw_len = sizeof bad;
	assert_omen_ok(store_write(c.s, cat_put, &c, 0));
	assert_true(c.ids[0] == 4);
	assert_omen_ok(store_read_begin(c.s, &txn));
	assert_omen_status(catalog_get(c.s, txn, "raw", &got), OMEN_ECORRUPT);
	store_read_end(c.s, txn);
	store_close(c.s);
	/* Reopened read-only: readable, writes refused. */
	opt.read_only = 1;
	assert_omen_ok(store_open(dir, &opt, &c.s));
	assert_omen_ok(store_read_begin(c.s, &txn));
	assert_omen_ok(catalog_get(c.s, txn, "docs", &got));
	assert_int_equal(got.points, 55);
	store_read_end(c.s, txn);
	assert_omen_status(store_write(c.s, cat_put, &c, 0), OMEN_ENOTSUP);
	store_close(c.s);
	rm_tree(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_open_and_refuse),
	    cmocka_unit_test(test_format_version),
	    cmocka_unit_test(test_catalog),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
