/*
 * Tests for the distance kernels: every kernel set this CPU supports against a double-precision
 * reference, on awkward dims, unaligned pointers and short batches, and the start-up choice of
 * set, including the OMEN_SIMD cap, which is checked by re-running this binary with it set.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/distance.h"

/* argv[1] that makes this binary print dist_best()'s name and the CPU's level, then exit */
#define CHILD_FLAG "--print-best"
#define MAX_N      64
#define CANARY     -12345.0f

static const size_t dims[] = {1,  2,  3,  7,   8,   9,   15,  16,  17,  31,  32,   33,
                              63, 64, 65, 100, 127, 128, 129, 384, 768, 784, 1000, 4096};
static const size_t counts[] = {0, 1, 3, 4, 5, 17, MAX_N};
static const char *const set_names[] = {"scalar", "avx2", "avx512"};
static const char *self_path; /* argv[0], to run this binary again */

/* ---- Helpers ---------------------------------------------------------------------------- */

static uint64_t rng = 0x9e3779b97f4a7c15u;

/* Uniform in [-1, 1), from a fixed-seed xorshift64* so that failures reproduce. */
static float rand_float(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	uint64_t x = rng * 0x2545f4914f6cdd1du;
	return (float)((double)(x >> 40) / (double)(1u << 23)) - 1.0f;
}

/* A buffer of count random floats starting one float past a malloc'd (so aligned) block, so that
 * kernels see unaligned pointers. Free with free(p - 1). */
static float *random_unaligned(size_t count)
{
	float *block = malloc((count + 1) * sizeof(float));
	assert_non_null(block);
	for (size_t i = 0; i <= count; i++)
		block[i] = rand_float();
	return block + 1;
}

/* The widest level this CPU supports, worked out here independently of the library. */
static int cpu_level(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
	__builtin_cpu_init();
	int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
	if (avx2 && __builtin_cpu_supports("avx512f"))
		return 2;
	return avx2 ? 1 : 0;
#else
	return 0;
#endif
}

/* Reference value and the sum of |terms| that scales its tolerance. */
typedef struct ref {
	double value;
	double mag;
} ref;

static ref ref_l2sq(const float *a, const float *b, size_t dim)
{
	ref r = {0.0, 0.0};
	for (size_t i = 0; i < dim; i++) {
		double d = (double)a[i] - (double)b[i];
		r.value += d * d;
	}
	r.mag = r.value;
	return r;
}

static ref ref_dot(const float *a, const float *b, size_t dim)
{
	ref r = {0.0, 0.0};
	for (size_t i = 0; i < dim; i++) {
		double t = (double)a[i] * (double)b[i];
		r.value += t;
		r.mag += fabs(t);
	}
	return r;
}

/* Fails unless got is within float rounding of want (NaN never is). */
static void assert_close(float got, ref want, const char *what, const char *set, size_t dim)
{
	double tol = 1e-5 * want.mag + 1e-6;
	if (!(fabs((double)got - want.value) <= tol))
		fail_msg("%s/%s dim %zu: got %.9g, want %.9g (tolerance %.3g)", set, what, dim,
		         (double)got, want.value, tol);
}

/* The set called by the test's state, or a skip when the CPU lacks it. */
static const dist_kernels *state_set(void **state)
{
	const dist_kernels *k = dist_by_name((const char *)*state);
	if (k == NULL)
		skip();
	assert_string_equal(k->name, (const char *)*state);
	return k;
}

/* ---- Kernels against the reference ------------------------------------------------------ */

static void check_pair(const dist_kernels *k, size_t dim)
{
	float *a = random_unaligned(dim), *b = random_unaligned(dim);
	assert_close(k->l2sq(a, b, dim), ref_l2sq(a, b, dim), "l2sq", k->name, dim);
	assert_close(k->dot(a, b, dim), ref_dot(a, b, dim), "dot", k->name, dim);
	assert_true(k->l2sq(a, a, dim) == 0.0f);
	assert_true(k->l2sq(a, b, dim) == k->l2sq(b, a, dim));
	free(a - 1);
	free(b - 1);
}

/* l2sq_bounded: l2sq bit for bit below the bound; at or above it, a value at or above it
 * that is never above the whole distance (a partial sum). */
static void check_bounded(const dist_kernels *k, size_t dim)
{
	float *a = random_unaligned(dim), *b = random_unaligned(dim);
	float full = k->l2sq(a, b, dim);
	static const float fractions[] = {0.0f,   0.01f, 0.2f,   0.5f, 0.9f,
	                                  0.999f, 1.0f,  1.001f, 2.0f};
	for (size_t f = 0; f < sizeof fractions / sizeof *fractions; f++) {
		float bound = full * fractions[f], got = k->l2sq_bounded(a, b, dim, bound);
		if (full < bound && got != full)
			fail_msg("%s dim %zu bound %g: got %.9g, want %.9g exactly", k->name, dim,
			         (double)bound, (double)got, (double)full);
		if (full >= bound && !(got >= bound && got <= full))
			fail_msg("%s dim %zu bound %g: got %.9g, outside [bound, %.9g]", k->name,
			         dim, (double)bound, (double)got, (double)full);
	}
	assert_true(k->l2sq_bounded(a, b, dim, INFINITY) == full);
	free(a - 1);
	free(b - 1);
}

static void test_bounded(void **state)
{
	const dist_kernels *k = state_set(state);
	for (size_t d = 0; d < sizeof(dims) / sizeof(dims[0]); d++)
		check_bounded(k, dims[d]);
	check_bounded(k, 784);
	check_bounded(k, 1536);
}

static void test_pair(void **state)
{
	const dist_kernels *k = state_set(state);
	for (size_t d = 0; d < sizeof(dims) / sizeof(dims[0]); d++)
		check_pair(k, dims[d]);
}

/* Checks out[0..n) of one *_many call against the reference and, bit for bit, against the
 * single-pair kernel of the same set; out[n] must be untouched. */
static void check_many_out(const dist_kernels *k, int l2, const float *q, const float *rows,
                           size_t n, size_t dim, const float *out)
{
	const char *what = l2 ? "l2sq_many" : "dot_many";
	for (size_t i = 0; i < n; i++) {
		const float *row = rows + i * dim;
		assert_close(out[i], l2 ? ref_l2sq(q, row, dim) : ref_dot(q, row, dim), what,
		             k->name, dim);
		float single = l2 ? k->l2sq(q, row, dim) : k->dot(q, row, dim);
		if (memcmp(&single, &out[i], sizeof(float)) != 0)
			fail_msg("%s/%s dim %zu row %zu of %zu: %.9g, single kernel %.9g", k->name,
			         what, dim, i, n, (double)out[i], (double)single);
	}
	assert_true(out[n] == CANARY);
}

static void check_many(const dist_kernels *k, size_t dim, size_t n)
{
	float *q = random_unaligned(dim), *rows = random_unaligned(n * dim), out[MAX_N + 1];
	for (int l2 = 0; l2 <= 1; l2++) {
		for (size_t i = 0; i <= MAX_N; i++)
			out[i] = CANARY;
		(l2 ? k->l2sq_many : k->dot_many)(q, rows, n, dim, out);
		check_many_out(k, l2, q, rows, n, dim, out);
	}
	free(q - 1);
	free(rows - 1);
}

static void test_many(void **state)
{
	const dist_kernels *k = state_set(state);
	for (size_t d = 0; d < sizeof(dims) / sizeof(dims[0]); d++)
		for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++)
			check_many(k, dims[d], counts[c]);
}

/* Fails unless got and want are the same float bit for bit. */
static void assert_same(float got, float want, const char *what, const char *set, size_t dim, int k)
{
	if (memcmp(&got, &want, sizeof got) != 0)
		fail_msg("%s/%s dim %zu row %d: %.9g, one-row kernel %.9g", set, what, dim, k,
		         (double)got, (double)want);
}

/* The four-row kernels (float and int8) against the one-row kernels of the same set, bit for
 * bit, on four rows in separate unaligned buffers; out[4] must be untouched. */
static void check_x4(const dist_kernels *k, size_t dim)
{
	float *q = random_unaligned(dim), *w = random_unaligned(dim), out[5];
	const float *rows[4];
	const uint8_t *codes[4];
	for (int r = 0; r < 4; r++) {
		rows[r] = random_unaligned(dim);
		uint8_t *c = malloc(dim + 1);
		assert_non_null(c);
		for (size_t i = 0; i <= dim; i++)
			c[i] = (uint8_t)(rand_float() * 127.5f + 127.5f);
		codes[r] = c + 1;
	}
	for (size_t i = 0; i < dim; i++)
		w[i] = fabsf(w[i]);
	for (int kind = 0; kind < 4; kind++) {
		static const char *const what[] = {"l2sq_x4", "dot_x4", "sq8_l2_x4", "sq8_dot_x4"};
		out[4] = CANARY;
		if (kind == 0)
			k->l2sq_x4(q, rows, dim, out);
		else if (kind == 1)
			k->dot_x4(q, rows, dim, out);
		else if (kind == 2)
			k->sq8_l2_x4(q, w, codes, dim, out);
		else
			k->sq8_dot_x4(q, codes, dim, out);
		for (int r = 0; r < 4; r++) {
			float one = kind == 0   ? k->l2sq(q, rows[r], dim)
			            : kind == 1 ? k->dot(q, rows[r], dim)
			            : kind == 2 ? k->sq8_l2(q, w, codes[r], dim)
			                        : k->sq8_dot(q, codes[r], dim);
			assert_same(out[r], one, what[kind], k->name, dim, r);
		}
		assert_true(out[4] == CANARY);
	}
	for (int r = 0; r < 4; r++) {
		free((float *)rows[r] - 1);
		free((uint8_t *)codes[r] - 1);
	}
	free(q - 1);
	free(w - 1);
}

static void test_x4(void **state)
{
	const dist_kernels *k = state_set(state);
	for (size_t d = 0; d < sizeof(dims) / sizeof(dims[0]); d++)
		check_x4(k, dims[d]);
}

/* ---- Choosing a set --------------------------------------------------------------------- */

/* The int8 kernels of every available set against a double-precision reference. */
static void test_sq8(void **state)
{
	(void)state;
	static const size_t sq_dims[] = {1, 7, 15, 16, 17, 31, 32, 33, 100, 128, 784, 1000};
	const char *names[] = {"scalar", "avx2", "avx512"};
	uint64_t seed = 5;
	for (int s = 0; s < 3; s++) {
		const dist_kernels *k = dist_by_name(names[s]);
		if (!k)
			continue;
		for (size_t di = 0; di < sizeof sq_dims / sizeof *sq_dims; di++) {
			size_t dim = sq_dims[di];
			float *qp = malloc(dim * sizeof *qp), *w = malloc(dim * sizeof *w);
			uint8_t *c = malloc(dim + 1);
			double l2 = 0, dot = 0, mag = 0;
			for (size_t i = 0; i < dim; i++) {
				seed = seed * 6364136223846793005ull + 1442695040888963407ull;
				c[i + 0] = (uint8_t)(seed >> 56);
				qp[i] = (float)((seed >> 20) % 25600) / 100.0f;
				w[i] = (float)((seed >> 8) % 1000) / 1000.0f;
				double d = (double)qp[i] - c[i];
				l2 += w[i] * d * d;
				dot += (double)qp[i] * c[i];
				mag += fabs((double)qp[i] * c[i]) + w[i] * d * d;
			}
			double tol = 1e-5 * mag + 1e-6;
			if (fabs(k->sq8_l2(qp, w, c, dim) - l2) > tol ||
			    fabs(k->sq8_dot(qp, c, dim) - dot) > tol)
				fail_msg("%s dim %zu: sq8 kernels disagree with the reference",
				         names[s], dim);
			free(qp), free(w), free(c);
		}
	}
}

static void test_by_name(void **state)
{
	int level = cpu_level();
	for (int l = 0; l < 3; l++) {
		const dist_kernels *k = dist_by_name(set_names[l]);
		if (l > level) {
			assert_null(k);
			continue;
		}
		assert_non_null(k);
		assert_string_equal(k->name, set_names[l]);
	}
	assert_ptr_equal(dist_by_name("scalar"), dist_scalar());
	assert_null(dist_by_name(NULL));
	assert_null(dist_by_name(""));
	assert_null(dist_by_name("avx"));
	assert_null(dist_by_name("AVX2"));
}

static void test_best_default(void **state)
{
	const dist_kernels *k = dist_best();
	assert_non_null(k);
	assert_ptr_equal(dist_best(), k);
	assert_ptr_equal(dist_by_name(k->name), k);
	if (getenv("OMEN_SIMD") == NULL)
		assert_string_equal(k->name, set_names[cpu_level()]);
}

/* What dist_best() chooses in a fresh run of this binary with OMEN_SIMD=value: the set's name
 * and the level of the CPU it ran on (which an emulator may make differ from ours). */
static void best_with_env(const char *value, char *name, size_t size, int *level)
{
	int fds[2];
	assert_int_equal(pipe(fds), 0);
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		dup2(fds[1], STDOUT_FILENO);
		close(fds[0]);
		setenv("OMEN_SIMD", value, 1);
		execlp(self_path, self_path, CHILD_FLAG, (char *)NULL);
		_exit(127);
	}
	close(fds[1]);
	size_t len = 0;
	ssize_t got;
	while (len < size - 1 && (got = read(fds[0], name + len, size - 1 - len)) > 0)
		len += (size_t)got;
	close(fds[0]);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	name[len] = '\0';
	char *space = strchr(name, ' ');
	assert_non_null(space);
	*space = '\0';
	*level = atoi(space + 1);
}

static void test_best_capped(void **state)
{
	static const struct {
		const char *value;
		int cap; /* level OMEN_SIMD names; 2 for values that name none */
	} cases[] = {{"scalar", 0}, {"avx2", 1}, {"avx512", 2}, {"", 2}, {"sse9", 2}};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char name[64];
		int level;
		best_with_env(cases[i].value, name, sizeof(name), &level);
		int want = cases[i].cap < level ? cases[i].cap : level;
		if (strcmp(name, set_names[want]) != 0)
			fail_msg("OMEN_SIMD=%s: got %s, want %s", cases[i].value, name,
			         set_names[want]);
	}
}

int main(int argc, char **argv)
{
	self_path = argv[0];
	if (argc == 2 && strcmp(argv[1], CHILD_FLAG) == 0) {
		printf("%s %d\n", dist_best()->name, cpu_level());
		return 0;
	}
	/* The kernel tests run once per set, with the set's name as their state. */
	const struct CMUnitTest tests[] = {
	    {"pair_scalar", test_pair, NULL, NULL, (void *)"scalar"},
	    {"many_scalar", test_many, NULL, NULL, (void *)"scalar"},
	    {"pair_avx2", test_pair, NULL, NULL, (void *)"avx2"},
	    {"many_avx2", test_many, NULL, NULL, (void *)"avx2"},
	    {"pair_avx512", test_pair, NULL, NULL, (void *)"avx512"},
	    {"many_avx512", test_many, NULL, NULL, (void *)"avx512"},
	    {"bounded_scalar", test_bounded, NULL, NULL, (void *)"scalar"},
	    {"bounded_avx2", test_bounded, NULL, NULL, (void *)"avx2"},
	    {"bounded_avx512", test_bounded, NULL, NULL, (void *)"avx512"},
	    {"x4_scalar", test_x4, NULL, NULL, (void *)"scalar"},
	    {"x4_avx2", test_x4, NULL, NULL, (void *)"avx2"},
	    {"x4_avx512", test_x4, NULL, NULL, (void *)"avx512"},
	    cmocka_unit_test(test_sq8),
	    cmocka_unit_test(test_by_name),
	    cmocka_unit_test(test_best_default),
	    cmocka_unit_test(test_best_capped),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
