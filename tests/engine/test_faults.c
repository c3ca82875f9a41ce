/*
 * Allocation failures in the engine's paths (after canonical/raft's test/lib/fault.h): a load
 * (an upsert that replaces points and adds new ones with metadata) and searches (exact with a
 * filter, and through the HNSW and IVF indexes), index builds of both kinds and writes assigned
 * to an IVF index's lists are run once for every allocation they make, with that
 * allocation failing (base's mem_fault_after). Each run gives OMEN_ENOMEM with a message and
 * leaves the database as it was (the same points, vectors and metadata; a search answers as
 * before), or, where a path can do without the memory it was refused, succeeds with the
 * right answer. The loop ends at the first run with no failure left to inject.
 */
#define OMEN_TEST_INTERNAL
#include "helpers.h"

#define DIM  16
#define BASE 3000
#define LOAD 300
#define K    10
#define NQ   8

typedef struct fx {
	char dir[512];
	omen_db *db;
	omen_collection *c;
	float *base, *load, *q;
	uint64_t load_ids[LOAD];
	char *meta[LOAD];
} fx;

static void fx_open(fx *f)
{
	omen_open_options o;
	omen_open_options_init(&o);
	o.no_background_index = 1; /* no other thread allocating meanwhile */
	tmp_dir(f->dir, sizeof f->dir, "faults");
	assert_omen_ok(omen_open(f->dir, &o, &f->db));
	assert_omen_ok(omen_create_collection(f->db, "c", DIM, OMEN_METRIC_L2));
	assert_omen_ok(omen_collection_open(f->db, "c", &f->c));
	f->base = rnd_vectors(BASE, DIM, 1);
	f->load = rnd_vectors(LOAD, DIM, 2);
	f->q = rnd_vectors(NQ, DIM, 3);
	char **meta = malloc(BASE * sizeof *meta);
	for (size_t i = 0; i < BASE; i++) {
		meta[i] = malloc(32);
		snprintf(meta[i], 32, "{\"g\": %zu}", i % 4);
	}
	omen_batch b = {BASE, DIM, NULL, f->base, (const char *const *)meta};
	assert_omen_ok(omen_upsert(f->c, &b, NULL));
	for (size_t i = 0; i < BASE; i++)
		free(meta[i]);
	free(meta);
	/* The load replaces every 20th point and adds new ones, ids out of order. */
	for (size_t i = 0; i < LOAD; i++) {
		f->load_ids[i] = i % 2 ? (uint64_t)(i * 10) : BASE + 1000 + (LOAD - i);
		f->meta[i] = malloc(48);
		snprintf(f->meta[i], 48, "{\"g\": %zu, \"new\": true}", i % 4);
	}
}

static void fx_close(fx *f)
{
	omen_collection_close(f->c);
	omen_close(f->db);
	for (size_t i = 0; i < LOAD; i++)
		free(f->meta[i]);
	free(f->base);
	free(f->load);
	free(f->q);
	rm_tree(f->dir);
}

/* What the collection answers now: its count, the load's ids as they are, and two searches. */
typedef struct view {
	uint64_t count;
	uint8_t found[LOAD];
	float vecs[LOAD * DIM];
	uint64_t exact_ids[NQ * K], filtered_ids[NQ * K];
} view;

static void search(fx *f, int exact, const char *filter, uint64_t *ids)
{
	float d[NQ * K];
	omen_search_params p;
	omen_search_params_init(&p);
	p.k = K;
	p.exact = exact;
	p.filter = filter;
	p.threads = 2;
	assert_omen_ok(omen_search(f->c, f->q, NQ, DIM, &p, ids, d));
}

static void look(fx *f, view *v)
{
	memset(v, 0, sizeof *v);
	assert_omen_ok(omen_count(f->c, &v->count));
	assert_omen_ok(omen_get(f->c, f->load_ids, LOAD, v->vecs, NULL, v->found));
	search(f, 1, NULL, v->exact_ids);
	search(f, 1, "{\"g\": 1}", v->filtered_ids);
}

static void assert_same(const view *a, const view *b)
{
	assert_int_equal(a->count, b->count);
	assert_memory_equal(a->found, b->found, sizeof a->found);
	assert_memory_equal(a->vecs, b->vecs, sizeof a->vecs);
	assert_memory_equal(a->exact_ids, b->exact_ids, sizeof a->exact_ids);
	assert_memory_equal(a->filtered_ids, b->filtered_ids, sizeof a->filtered_ids);
}

/* Runs op once per allocation it makes, that allocation failing. check(f, st, failed) judges
 * each run. Returns how many allocations the op made when nothing failed. */
static long each_allocation(fx *f, int (*op)(fx *f), void (*check)(fx *f, int st, bool failed))
{
	for (long n = 0;; n++) {
		mem_fault_after(n);
		int st = op(f);
		bool failed = mem_fault_count() > 0;
		mem_fault_clear();
		check(f, st, failed);
		if (!failed)
			return n;
		if (n > 100000)
			fail_msg("more than 100000 allocations?");
	}
}

static int do_load(fx *f)
{
	omen_batch b = {LOAD, DIM, f->load_ids, f->load, (const char *const *)f->meta};
	return omen_upsert(f->c, &b, NULL);
}

static view before_load; /* the state a failed load must leave */
static uint64_t loaded_count;

static void check_load(fx *f, int st, bool failed)
{
	view now;
	look(f, &now);
	if (st == OMEN_OK) { /* the whole batch landed (also where a failure was done without) */
		assert_int_equal(now.count, loaded_count);
		assert_memory_equal(now.vecs, f->load, sizeof now.vecs);
		for (size_t i = 0; i < LOAD; i++)
			assert_true(now.found[i]);
		before_load = now; /* the next runs start from here */
		return;
	}
	if (!failed || st != OMEN_ENOMEM)
		fail_msg("load: status %s (%s) with%s an injected failure", omen_strerror(st),
		         omen_errmsg(NULL), failed ? "" : "out");
	assert_true(strlen(omen_errmsg(NULL)) > 0);
	assert_same(&now, &before_load); /* nothing of the batch landed */
}

static void test_load(void **state)
{
	(void)state;
	fx f;
	fx_open(&f);
	look(&f, &before_load);
	loaded_count = before_load.count + LOAD / 2;
	long n = each_allocation(&f, do_load, check_load);
	print_message("load: %ld allocations, each failed in turn\n", n);
	assert_true(n > 3); /* the load allocates: the loop tried something */
	fx_close(&f);
}

typedef struct search_case {
	int exact;
	const char *filter;
} search_case;

static search_case scase;
static uint64_t want[NQ * K], got[NQ * K];

static int do_search(fx *f)
{
	float d[NQ * K];
	omen_search_params p;
	omen_search_params_init(&p);
	p.k = K;
	p.exact = scase.exact;
	p.filter = scase.filter;
	p.threads = 2;
	memset(got, 0xff, sizeof got);
	return omen_search(f->c, f->q, NQ, DIM, &p, got, d);
}

static void check_search(fx *f, int st, bool failed)
{
	(void)f;
	if (st == OMEN_OK) {
		assert_memory_equal(got, want, sizeof got);
		return;
	}
	if (!failed || st != OMEN_ENOMEM)
		fail_msg("search: status %s (%s) with%s an injected failure", omen_strerror(st),
		         omen_errmsg(NULL), failed ? "" : "out");
	assert_true(strlen(omen_errmsg(NULL)) > 0);
}

/* Every search case through an index of the given type, with rows written after it. */
static void search_through(const omen_index_params *ip, const char *name)
{
	fx f;
	fx_open(&f);
	assert_omen_ok(omen_build_index(f.c, ip));
	assert_omen_ok(do_load(&f)); /* HNSW: past the index, searched exactly; IVF: in its lists */
	static const search_case cases[] = {
	    {1, NULL}, {1, "{\"g\": 1}"}, {0, NULL}, {0, "{\"g\": {\"$in\": [1, 3]}}"}};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		scase = cases[i];
		assert_omen_ok(do_search(&f));
		memcpy(want, got, sizeof want);
		long n = each_allocation(&f, do_search, check_search);
		print_message("search %s%s: %ld allocations, each failed in turn\n",
		              scase.exact ? "exact" : name, scase.filter ? " filtered" : "", n);
		assert_true(n > 0);
	}
	fx_close(&f);
}

static void test_search(void **state)
{
	(void)state;
	omen_index_params ip;
	omen_index_params_init(&ip);
	ip.type = OMEN_INDEX_HNSW;
	ip.m = 8;
	ip.ef_construction = 32;
	search_through(&ip, "hnsw");
	omen_index_params_init(&ip);
	ip.type = OMEN_INDEX_IVF;
	ip.nlist = 16;
	search_through(&ip, "ivf");
}

static omen_index_params build_params;

static int do_build(fx *f)
{
	return omen_build_index(f->c, &build_params);
}

static void check_build(fx *f, int st, bool failed)
{
	omen_collection_stats s;
	assert_omen_ok(omen_collection_stats_get(f->c, &s));
	if (st == OMEN_OK) {
		assert_string_equal(s.index, omen_index_type_name(build_params.type));
		assert_omen_ok(omen_check(f->c, NULL));
		omen_index_params flat = build_params;
		flat.type = OMEN_INDEX_FLAT; /* the next run builds from nothing again */
		assert_omen_ok(omen_build_index(f->c, &flat));
		return;
	}
	if (!failed || st != OMEN_ENOMEM)
		fail_msg("build: status %s (%s) with%s an injected failure", omen_strerror(st),
		         omen_errmsg(NULL), failed ? "" : "out");
	assert_string_equal(s.index, "flat"); /* no index was published */
}

/* Index builds on one thread (so that the allocations come in one order), each allocation
 * failing in turn: no index, or a whole one that passes the check. */
static void test_build(void **state)
{
	(void)state;
	for (int kind = 0; kind < 2; kind++) {
		fx f;
		fx_open(&f);
		omen_index_params_init(&build_params);
		build_params.type = kind ? OMEN_INDEX_IVF : OMEN_INDEX_HNSW;
		build_params.m = 8;
		build_params.ef_construction = 32;
		build_params.nlist = 16;
		build_params.threads = 1;
		long n = each_allocation(&f, do_build, check_build);
		print_message("%s build: %ld allocations, each failed in turn\n",
		              omen_index_type_name(build_params.type), n);
		assert_true(n > 3);
		fx_close(&f);
	}
}

static void check_load_ivf(fx *f, int st, bool failed)
{
	check_load(f, st, failed);
	assert_omen_ok(omen_check(f->c, NULL)); /* every live row in exactly one list */
}

/* The load written into an IVF index's lists: each allocation failing in turn leaves the
 * collection and its index as they were. */
static void test_ivf_append(void **state)
{
	(void)state;
	fx f;
	fx_open(&f);
	omen_index_params ip;
	omen_index_params_init(&ip);
	ip.type = OMEN_INDEX_IVF;
	ip.nlist = 16;
	assert_omen_ok(omen_build_index(f.c, &ip));
	look(&f, &before_load);
	loaded_count = before_load.count + LOAD / 2;
	long n = each_allocation(&f, do_load, check_load_ivf);
	print_message("load into IVF lists: %ld allocations, each failed in turn\n", n);
	assert_true(n > 3);
	fx_close(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_load),
	    cmocka_unit_test(test_search),
	    cmocka_unit_test(test_build),
	    cmocka_unit_test(test_ivf_append),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
