/*
 * RaBitQ codes (engine/ivf_code.c, engine/ivf_train.c): the rotation is orthonormal; the
 * estimator computed from a code, the query's 4-bit tables and the factors is unbiased, and
 * its error exceeds the bound as often as the paper's analysis says (the error is close to
 * normal with a standard deviation of sqrt(1 - x0^2) / x0 / sqrt(D - 1), and the bound is
 * eps0 = 1.9 of them: about 6% of estimates fall outside it, almost none outside twice it); a
 * point equal to its centroid is estimated exactly; the AVX2 FastScan kernel gives the scalar
 * kernel's sums bit for bit.
 */
#include <math.h>

#define OMEN_TEST_INTERNAL
#include "helpers.h"

#include "engine/ivf.h"

static void test_rotation(void **state)
{
	(void)state;
	uint32_t dim = 100;
	float *r = malloc((size_t)dim * dim * sizeof *r);
	assert_omen_ok(ivf_rotation(dim, 42, r));
	for (uint32_t a = 0; a < dim; a++)
		for (uint32_t b = 0; b < dim; b++) {
			double dot = 0;
			for (uint32_t d = 0; d < dim; d++)
				dot += (double)r[a * dim + d] * r[b * dim + d];
			assert_true(fabs(dot - (a == b)) < 1e-5);
		}
	free(r);
}

/* Estimated distance of the code against the prepared query, as the search computes it. */
static float estimate(const ivf_index *ix, const ivf_query *q, const ivf_code *c,
                      const uint8_t *bits)
{
	uint32_t ip = 0;
	for (uint32_t g = 0; g < ix->dpad / 4; g++)
		ip += q->lut[16 * g + ((bits[g / 2] >> (4 * (g % 2))) & 15)];
	return q->base + q->sa * c->fa + q->sb * c->fb * (q->k1 * ip + q->k2 * c->pc + q->k3);
}

static void test_estimator(void **state)
{
	(void)state;
	const uint32_t dim = 128, n = 2000, nq = 50;
	ivf_index ix = {.dim = dim, .nlist = 1, .bits = 1, .dpad = 128};
	float *rot = malloc(dim * dim * sizeof *rot), *cent = calloc(dim, sizeof *cent),
	      *rcent = calloc(dim, sizeof *rcent);
	assert_omen_ok(ivf_rotation(dim, 7, rot));
	float *x = rnd_vectors(n, dim, 1), *qs = rnd_vectors(nq, dim, 2);
	for (uint32_t i = 0; i < n * dim; i++) /* a cluster around a centre */
		x[i] = 0.3f * x[i] + 1.0f;
	for (uint32_t i = 0; i < n * dim; i++)
		cent[i % dim] += x[i] / n;
	for (uint32_t a = 0; a < dim; a++)
		for (uint32_t d = 0; d < dim; d++)
			rcent[a] += rot[a * dim + d] * cent[d];
	ix.centroids = cent;
	ix.rot = rot;
	ix.rcent = rcent;
	ivf_code *codes = calloc(n, sizeof *codes);
	uint8_t *bits = malloc(n * ivf_code_bits(ix.dpad));
	float *tmp = malloc(2 * n * dim * sizeof *tmp);
	ivf_encode(&ix, x, n, codes, bits, tmp);
	uint8_t lut[128 / 4 * 16];
	size_t outside = 0, outside2 = 0;
	double bias = 0, scale = 0;
	for (uint32_t qi = 0; qi < nq; qi++) {
		float *q = qs + qi * dim, qr[128];
		for (uint32_t i = 0; i < dim; i++)
			q[i] = 0.3f * q[i] + 1.0f;
		double n2 = 0;
		for (uint32_t a = 0; a < dim; a++) { /* R (q - c) */
			qr[a] = -rcent[a];
			for (uint32_t d = 0; d < dim; d++)
				qr[a] += rot[a * dim + d] * q[d];
			n2 += (double)qr[a] * qr[a];
		}
		ivf_query pq = {.lut = lut};
		ivf_query_prepare(&ix, qr, qi, &pq);
		pq.base = (float)n2, pq.sa = 1, pq.sb = 1, pq.se = (float)sqrt(n2);
		for (uint32_t i = 0; i < n; i++) {
			double exact = 0;
			for (uint32_t d = 0; d < dim; d++)
				exact += ((double)q[d] - x[i * dim + d]) *
				         ((double)q[d] - x[i * dim + d]);
			float est = estimate(&ix, &pq, &codes[i], bits + i * ivf_code_bits(128));
			outside += fabs(est - exact) > pq.se * codes[i].fe;
			outside2 += fabs(est - exact) > 2 * pq.se * codes[i].fe;
			bias += est - exact;
			scale += exact;
		}
	}
	print_message(
	    "%zu of %u estimates outside their bound, %zu outside twice it, relative bias "
	    "%.5f\n",
	    outside, n * nq, outside2, bias / scale);
	assert_true(outside * 100 < (size_t)n * nq * 9); /* under 9% */
	assert_true(outside * 100 > (size_t)n * nq * 2); /* and not a bound far too loose */
	assert_true(outside2 * 1000 < (size_t)n * nq);   /* under 0.1% */
	assert_true(fabs(bias / scale) < 0.01);
	/* a point at its centroid: factors zero, the estimate is the exact |q - c|^2 */
	ivf_code at;
	uint8_t atbits[16];
	at.list = 0;
	ivf_encode(&ix, cent, 1, &at, atbits, tmp);
	assert_true(at.fb == 0 && at.fe == 0);
	free(rot), free(cent), free(rcent), free(x), free(qs), free(codes), free(bits), free(tmp);
}

static void test_fastscan(void **state)
{
	(void)state;
	if (!__builtin_cpu_supports("avx2"))
		skip();
	uint64_t s = 11;
	for (uint32_t groups = 2; groups <= 1024; groups *= 4) {
		uint8_t *lut = malloc(16 * groups), *codes = malloc(16 * groups);
		for (uint32_t i = 0; i < 16 * groups; i++) {
			lut[i] = (uint8_t)(rnd_next(&s) % 61);
			codes[i] = (uint8_t)rnd_next(&s);
		}
		uint16_t a[IVF_BLOCK], b[IVF_BLOCK];
		ivf_scan_scalar(lut, codes, groups, a);
		ivf_scan_avx2(lut, codes, groups, b);
		assert_memory_equal(a, b, sizeof a);
		free(lut);
		free(codes);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rotation),
	    cmocka_unit_test(test_estimator),
	    cmocka_unit_test(test_fastscan),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
