/*
 * IVF persistence (engine/ivf_persist.c, docs/FORMAT.md): an index reopened answers the same,
 * its statistics survive, and a header or centroid record that is damaged, or written by a
 * newer version, is refused with OMEN_ECORRUPT or OMEN_EVERSION and a message while exact
 * search goes on.
 */
#include "index_fixture.h"

static void build_ivf(omen_collection *c)
{
	omen_index_params p;
	omen_index_params_init(&p);
	p.type = OMEN_INDEX_IVF;
	p.nlist = 64;
	assert_omen_ok(omen_build_index(c, &p));
}

static void test_reopen(void **state)
{
	(void)state;
	fixture f;
	fx_make(&f, "ivf", 10000, OMEN_METRIC_L2);
	build_ivf(f.c);
	uint64_t before[NQ * K], after[NQ * K];
	omen_collection_stats s1, s2;
	search(f.c, 0, NULL, before);
	assert_omen_ok(omen_collection_stats_get(f.c, &s1));
	omen_close(f.db);
	fx_open(&f, "ivf", 1);
	search(f.c, 0, NULL, after);
	assert_omen_ok(omen_collection_stats_get(f.c, &s2));
	assert_memory_equal(before, after, sizeof before);
	assert_string_equal(s2.index, "ivf");
	assert_int_equal(s2.ivf_nlist, 64);
	assert_int_equal(s2.ivf_nprobe, s1.ivf_nprobe);
	assert_int_equal(s2.index_bytes, s1.index_bytes);
	assert_healthy(f.c);
	fx_close(&f);
}

typedef struct patch {
	size_t at;
	uint32_t value;
} patch;

static void patch32(MDB_val *v, void *ctx)
{
	patch *p = ctx;
	put32((unsigned char *)v->mv_data + p->at, p->value);
}

/* Damages one record (key, patch) and expects status from a search and stats_status from the
 * statistics (which read the header only). */
static void expect_damage(const char *key, patch p, int status, int stats_status, const char *what)
{
	fixture f;
	fx_make(&f, "ivf", 2000, OMEN_METRIC_L2);
	build_ivf(f.c);
	omen_close(f.db);
	edit_record(f.dir, key, 1, patch32, &p);
	fx_open(&f, "ivf", 1);
	uint64_t ids[K];
	float d[K];
	omen_search_params sp;
	omen_search_params_init(&sp);
	sp.k = K;
	assert_omen_status(omen_search(f.c, queries, 1, dim, &sp, ids, d), status);
	if (!strstr(omen_errmsg(NULL), what))
		fail_msg("'%s' lacks '%s'", omen_errmsg(NULL), what);
	omen_collection_stats s;
	assert_omen_status(omen_collection_stats_get(f.c, &s), stats_status);
	sp.exact = 1; /* exact search does not read the index */
	assert_omen_ok(omen_search(f.c, queries, 1, dim, &sp, ids, d));
	fx_close(&f);
}

static void expect_refused(const char *key, patch p, int status, const char *what)
{
	expect_damage(key, p, status, status, what);
}

static void test_damaged_or_newer(void **state)
{
	(void)state;
	expect_refused("I", (patch){28, 1}, OMEN_EVERSION, "newer"); /* an unknown flag */
	expect_refused("I", (patch){16, OMEN_IVF_BITS_MAX + 1}, OMEN_EVERSION, "newer"); /* bits */
	expect_damage("I", (patch){16, 2}, OMEN_ECORRUPT, OMEN_OK, "is corrupt"); /* 1-bit blocks */
	expect_refused("I", (patch){12, 0}, OMEN_ECORRUPT, "header is inconsistent"); /* 0 lists */
	expect_refused("I", (patch){0, 0x58585858}, OMEN_ECORRUPT, "header is corrupt");
	expect_refused("C", (patch){4, 9}, OMEN_ECORRUPT, "centroids are corrupt"); /* version */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_reopen),
	    cmocka_unit_test(test_damaged_or_newer),
	};
	return cmocka_run_group_tests(tests, load_data, free_data);
}
