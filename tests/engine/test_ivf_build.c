/*
 * IVF builds (engine/ivf_build.c): bad parameters refused with a clear error and nothing
 * changed, the default nlist rule, the automatic choice (flat, HNSW, IVF by the RAM budget),
 * the progress callback, the calibrated nprobe, and a build killed with SIGKILL, after which
 * the previous index still serves.
 */
#include <signal.h>
#include <sys/wait.h>

#include "index_fixture.h"

static int build_with(omen_collection *c, omen_index_type type, uint32_t nlist, uint32_t bits)
{
	omen_index_params p;
	omen_index_params_init(&p);
	p.type = type;
	p.nlist = nlist;
	p.bits = bits;
	return omen_build_index(c, &p);
}

static const char *index_of(omen_collection *c)
{
	omen_collection_stats s;
	assert_omen_ok(omen_collection_stats_get(c, &s));
	return s.index;
}

/* Each bad request is refused with OMEN_EINVAL and a message, and the HNSW index built before
 * still serves. */
static void test_bad_params(void **state)
{
	(void)state;
	fixture f;
	fx_make(&f, "ivf", 3000, OMEN_METRIC_L2);
	assert_omen_ok(build_with(f.c, OMEN_INDEX_HNSW, 0, 1));
	static const struct {
		uint32_t nlist, bits;
		const char *why;
	} bad[] = {{3001, 1, "exceeds the live points"},
	           {OMEN_IVF_NLIST_MAX + 1, 1, "nlist must be"},
	           {16, 0, "bits must be"},
	           {16, OMEN_IVF_BITS_MAX + 1, "bits must be"}};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_omen_status(build_with(f.c, OMEN_INDEX_IVF, bad[i].nlist, bad[i].bits),
		                   OMEN_EINVAL);
		if (!strstr(omen_errmsg(NULL), bad[i].why))
			fail_msg("nlist %u bits %u: '%s' lacks '%s'", bad[i].nlist, bad[i].bits,
			         omen_errmsg(NULL), bad[i].why);
		assert_string_equal(index_of(f.c), "hnsw");
	}
	/* too few live points: 3,000 less 2,001 deleted */
	uint64_t *del = malloc(2001 * sizeof *del);
	for (size_t i = 0; i < 2001; i++)
		del[i] = i;
	assert_omen_ok(omen_delete(f.c, del, 2001, NULL));
	assert_omen_status(build_with(f.c, OMEN_INDEX_IVF, 0, 1), OMEN_EINVAL);
	assert_non_null(strstr(omen_errmsg(NULL), "at least 1000 live points"));
	assert_string_equal(index_of(f.c), "hnsw");
	assert_healthy(f.c);
	free(del);
	fx_close(&f);
}

/* nlist 0: the power of two nearest to 4 sqrt(n), at most n / 32. */
static void test_default_nlist(void **state)
{
	(void)state;
	static const struct {
		size_t n;
		uint32_t nlist;
	} cases[] = {{1000, 16}, {5000, 128}, {20000, 512}};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		fixture f;
		fx_make(&f, "ivf", cases[i].n, OMEN_METRIC_L2);
		assert_omen_ok(build_with(f.c, OMEN_INDEX_IVF, 0, 1));
		omen_collection_stats s;
		assert_omen_ok(omen_collection_stats_get(f.c, &s));
		assert_int_equal(s.ivf_nlist, cases[i].nlist);
		assert_true(s.ivf_nprobe >= 1 && s.ivf_nprobe <= s.ivf_nlist);
		fx_close(&f);
	}
}

/* AUTO: flat below 10,000 points, HNSW above, IVF when the vectors exceed the RAM budget. */
static void test_auto(void **state)
{
	(void)state;
	fixture f;
	fx_make(&f, "ivf", 12000, OMEN_METRIC_L2);
	omen_index_params p;
	omen_index_params_init(&p);
	assert_omen_ok(omen_build_index(f.c, &p));
	assert_string_equal(index_of(f.c), "hnsw");
	p.ram_budget = 12000ull * dim * 4; /* the vectors fit: HNSW */
	assert_omen_ok(omen_build_index(f.c, &p));
	assert_string_equal(index_of(f.c), "hnsw");
	p.ram_budget = 32ull << 20; /* 36 MB of vectors do not */
	assert_omen_ok(omen_build_index(f.c, &p));
	assert_string_equal(index_of(f.c), "ivf");
	assert_healthy(f.c);
	fx_close(&f);
	fx_make(&f, "ivf", 5000, OMEN_METRIC_L2);
	assert_omen_ok(omen_build_index(f.c, &p)); /* below 10,000: exact search */
	assert_string_equal(index_of(f.c), "flat");
	fx_close(&f);
}

typedef struct seen {
	uint64_t calls, last, total;
	int backwards;
} seen;

static void progress(void *ctx, uint64_t done, uint64_t total)
{
	seen *s = ctx;
	s->backwards |= done < s->last || done > total;
	s->calls++;
	s->last = done;
	s->total = total;
}

static void test_progress(void **state)
{
	(void)state;
	fixture f;
	fx_make(&f, "ivf", 8000, OMEN_METRIC_L2);
	seen s = {0};
	omen_index_params p;
	omen_index_params_init(&p);
	p.type = OMEN_INDEX_IVF;
	p.progress = progress;
	p.progress_ctx = &s;
	assert_omen_ok(omen_build_index(f.c, &p));
	assert_true(s.calls >= 10);
	assert_false(s.backwards);
	assert_true(s.last == s.total);
	fx_close(&f);
}

/* A build killed with SIGKILL at several moments: the database opens, the HNSW index built
 * before serves searches and passes its check, or the new IVF index does, whole. */
static void test_killed_build(void **state)
{
	(void)state;
	fixture f;
	fx_make(&f, "ivf", 20000, OMEN_METRIC_L2);
	assert_omen_ok(build_with(f.c, OMEN_INDEX_HNSW, 0, 1));
	omen_close(f.db);
	static const int delays_ms[] = {50, 400, 1500, 3000, 6000, 20000};
	for (size_t i = 0; i < sizeof delays_ms / sizeof delays_ms[0]; i++) {
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			fx_open(&f, "ivf", 1);
			_exit(build_with(f.c, OMEN_INDEX_IVF, 0, 1) == OMEN_OK ? 0 : 1);
		}
		usleep((useconds_t)delays_ms[i] * 1000);
		kill(pid, SIGKILL);
		int status;
		waitpid(pid, &status, 0);
		fx_open(&f, "ivf", 1);
		const char *idx = index_of(f.c);
		print_message("killed after %d ms: %s index (child %s)\n", delays_ms[i], idx,
		              WIFSIGNALED(status) ? "killed" : "had finished");
		assert_true(strcmp(idx, "hnsw") == 0 || strcmp(idx, "ivf") == 0);
		assert_healthy(f.c);
		assert_recall(f.c, NULL, 0.9, idx);
		omen_close(f.db);
	}
	rm_tree(f.dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bad_params),   cmocka_unit_test(test_default_nlist),
	    cmocka_unit_test(test_auto),         cmocka_unit_test(test_progress),
	    cmocka_unit_test(test_killed_build),
	};
	return cmocka_run_group_tests(tests, load_data, free_data);
}
