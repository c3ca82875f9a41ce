/*
 * The HNSW integrity check (engine/hnsw_check.c): a healthy graph passes with a summary, a
 * collection without an index has nothing to check, and level-0 records damaged through LMDB
 * directly are reported (OMEN_ECORRUPT, naming the problem) while searches neither crash nor
 * return rows outside the collection.
 */
#include "index_fixture.h"

/* Fails unless omen_check answers want with a report that contains says. */
static void check_says(omen_collection *c, int want, const char *says)
{
	char *report;
	assert_omen_status(omen_check(c, &report), want);
	if (!strstr(report, says))
		fail_msg("the check report lacks \"%s\":\n%s", says, report);
	omen_free(report);
}

static void test_check_healthy(void **state)
{
	(void)state;
	fixture f;
	fx_make(&f, "ok", 2000, OMEN_METRIC_L2);
	check_says(f.c, OMEN_OK, "no index");
	build(f.c, OMEN_INDEX_HNSW);
	check_says(f.c, OMEN_OK, "hnsw: 2000 nodes, m=16");
	check_says(f.c, OMEN_OK, "reachability: 0 live nodes unreachable");
	fx_close(&f);
}

/* The first level-0 record (nodes 0..n-1, u16 ids as in every graph of at most 65,536 nodes):
 * its node 0's first link, or its offset of node 1, set to value. */
typedef struct damage {
	size_t nodes;
	int offset; /* 0: a link, 1: an offset */
	uint32_t value;
} damage;

static void damage_l0(const MDB_val *key, MDB_val *val, void *ctx)
{
	const damage *d = ctx;
	const unsigned char *k = key->mv_data;
	if (key->mv_size != 9 || k[0] != 'L' || k[8] != 0)
		return;
	unsigned char *p = val->mv_data;
	assert_memory_equal(p, "OMH0", 4);
	assert_true(get32(p + 16 + 4) > 0); /* node 0 has links */
	if (d->offset) {
		put32(p + 16 + 4, d->value);
	} else {
		uint16_t v = (uint16_t)d->value;
		memcpy(p + 16 + 4 * (d->nodes + 1), &v, 2);
	}
}

/* Damages a level-0 record: check must say so, and a search must neither crash nor return a
 * bad row. */
static void damaged(int offset, uint32_t value, const char *says)
{
	fixture f;
	fx_make(&f, "dmg", 2000, OMEN_METRIC_L2);
	build(f.c, OMEN_INDEX_HNSW);
	assert_healthy(f.c);
	omen_close(f.db);
	damage d = {2000, offset, value};
	edit_graph(f.dir, damage_l0, &d);
	fx_open(&f, "dmg", 1);
	check_says(f.c, OMEN_ECORRUPT, says);
	uint64_t got[NQ * K];
	search(f.c, 0, NULL, got);
	for (size_t i = 0; i < NQ * K; i++)
		assert_true(got[i] < 2000);
	fx_close(&f);
}

static void test_check_damaged(void **state)
{
	(void)state;
	damaged(0, 0xffff, "past the last node");
	damaged(1, 1u << 30, "link offsets");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_check_healthy),
	    cmocka_unit_test(test_check_damaged),
	};
	return cmocka_run_group_tests(tests, load_data, free_data);
}
