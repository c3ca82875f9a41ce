/*
 * The IVF integrity check (engine/ivf_check.c): a healthy index passes; a flipped code bit, a
 * lost block, a row in two lists and a centroid that is not finite are each found and named,
 * with OMEN_ECORRUPT.
 */
#include "index_fixture.h"

static void build_ivf(fixture *f)
{
	fx_make(f, "ivf", 3000, OMEN_METRIC_L2);
	omen_index_params p;
	omen_index_params_init(&p);
	p.type = OMEN_INDEX_IVF;
	p.nlist = 16;
	assert_omen_ok(omen_build_index(f->c, &p));
	assert_healthy(f->c);
}

static void block_key(unsigned char kb[9], uint32_t list, uint32_t block)
{
	kb[0] = 'L';
	for (int i = 0; i < 4; i++) {
		kb[1 + i] = (unsigned char)(list >> (24 - 8 * i));
		kb[5 + i] = (unsigned char)(block >> (24 - 8 * i));
	}
}

/* Expects the check to fail naming what. */
static void expect_problem(fixture *f, const char *what)
{
	fx_open(f, "ivf", 1);
	char *report = NULL;
	assert_omen_status(omen_check(f->c, &report), OMEN_ECORRUPT);
	if (!report || !strstr(report, what))
		fail_msg("report lacks '%s':\n%s", what, report ? report : "(none)");
	omen_free(report);
	fx_close(f);
}

static void flip_code(MDB_val *v, void *ctx)
{
	(void)ctx;
	unsigned char *codes = (unsigned char *)v->mv_data + 16;
	for (int g = 0; g < 8; g++) /* several dimensions of code 0: one is far from zero */
		codes[16 * g] ^= 0x0f;
}

static void nan_centroid(MDB_val *v, void *ctx)
{
	(void)ctx;
	float nan = NAN;
	memcpy((unsigned char *)v->mv_data + 8 + 4 * 5, &nan, 4);
}

static void test_healthy_and_damaged(void **state)
{
	(void)state;
	fixture f;
	unsigned char kb[9];
	build_ivf(&f);
	char *report;
	assert_omen_ok(omen_check(f.c, &report));
	assert_non_null(strstr(report, "ivf: 16 lists"));
	assert_non_null(strstr(report, "3000 codes"));
	omen_free(report);
	omen_close(f.db);
	block_key(kb, 3, 0);
	edit_record(f.dir, kb, 9, flip_code, NULL);
	expect_problem(&f, "its code differs from its vector's");

	build_ivf(&f);
	omen_close(f.db);
	block_key(kb, 5, 0);
	edit_record(f.dir, kb, 9, NULL, NULL); /* the list's first block lost */
	expect_problem(&f, "is in no list");

	build_ivf(&f);
	omen_close(f.db);
	edit_record(f.dir, "C", 1, nan_centroid, NULL);
	expect_problem(&f, "not finite");
}

/* A block copied into another list: its rows are then in two lists. */
static void test_row_twice(void **state)
{
	(void)state;
	fixture f;
	build_ivf(&f);
	omen_close(f.db);
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	index_dbi_open(f.dir, &env, &txn, &dbi);
	unsigned char from[9], to[9];
	block_key(from, 2, 0);
	block_key(to, 9, 1000);
	MDB_val k = {9, from}, v;
	assert_int_equal(mdb_get(txn, dbi, &k, &v), 0);
	MDB_val k2 = {9, to}, copy = {v.mv_size, malloc(v.mv_size)};
	memcpy(copy.mv_data, v.mv_data, v.mv_size);
	assert_int_equal(mdb_put(txn, dbi, &k2, &copy, 0), 0);
	free(copy.mv_data);
	index_dbi_close(env, txn);
	expect_problem(&f, "is in more than one list");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_healthy_and_damaged),
	    cmocka_unit_test(test_row_twice),
	};
	return cmocka_run_group_tests(tests, load_data, free_data);
}
