/*
 * RaBitQ codes (engine/ivf_code.c, engine/ivf_train.c): the rotation is orthonormal; the
 * estimator computed from a code, the query's 4-bit tables and the factors is unbiased, and
 * its error exceeds the bound as often as the paper's analysis says (the error is close to
 * normal with a standard deviation of sqrt(1 - x0^2) / x0 / sqrt(D - 1), and the bound is
 * eps0 = 2.5 of them: about 1.2% of estimates fall outside it, almost none outside twice it), for
 * 1-bit codes and for the multi-bit codes of extended RaBitQ, whose error shrinks with each
 * bit; a point equal to its centroid is estimated exactly; the AVX2 FastScan kernel gives the
 * scalar kernel's sums bit for bit, and the same sums as the alternative the layout was chosen over
 * (popcounts of the code against the query's four bit planes), whose speed it prints.
 */
#include <math.h>
#include <time.h>

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

/* Code i's planes (plain order, ivf_code_size bytes) written into slot j of a FastScan block
 * image (all planes), for ivf_ex_dot. */
static void to_block(const ivf_index *ix, const uint8_t *planes, uint32_t j, unsigned char *img)
{
	size_t cb = ivf_code_bits(ix->dpad), pb = ivf_codes_bytes(ix->dpad);
	for (uint32_t p = 0; p < ix->bits; p++)
		for (uint32_t g = 0; g < ix->dpad / 4; g++) {
			unsigned nib = (planes[p * cb + g / 2] >> (4 * (g % 2))) & 15;
			unsigned char *byte = img + IVF_BLOCK_HEAD + p * pb + 16 * g + (j & 15);
			*byte = j < 16 ? (unsigned char)((*byte & 0xf0) | nib)
			               : (unsigned char)((*byte & 0x0f) | nib << 4);
		}
}

/* <y, qr> from the plain planes: y = u - (2^bits - 1) / 2 per dimension. */
static double plain_ex_dot(const ivf_index *ix, const uint8_t *planes, const float *qr)
{
	size_t cb = ivf_code_bits(ix->dpad);
	double dot = 0, mid = 0.5 * ((1u << ix->bits) - 1);
	for (uint32_t d = 0; d < ix->dim; d++) {
		uint32_t u = 0;
		for (uint32_t p = 0; p < ix->bits; p++)
			u = u << 1 | (planes[p * cb + d / 8] >> (d % 8) & 1);
		dot += (u - mid) * qr[d];
	}
	return dot;
}

/* Codes of each width on a cluster: the estimator's error against exact distances, how often
 * it leaves the bound, its bias, and (multi-bit) the block kernel against a plain sum. */
static void test_estimator(void **state)
{
	(void)state;
	const uint32_t dim = 128, n = 2000, nq = 50;
	float *rot = malloc(dim * dim * sizeof *rot), *cent = calloc(dim, sizeof *cent),
	      *rcent = calloc(dim, sizeof *rcent);
	assert_omen_ok(ivf_rotation(dim, 7, rot));
	float *x = rnd_vectors(n, dim, 1), *qs = rnd_vectors(nq, dim, 2);
	for (uint32_t i = 0; i < n * dim; i++) /* a cluster around a centre */
		x[i] = 0.3f * x[i] + 1.0f;
	for (uint32_t i = 0; i < nq * dim; i++)
		qs[i] = 0.3f * qs[i] + 1.0f;
	for (uint32_t i = 0; i < n * dim; i++)
		cent[i % dim] += x[i] / n;
	for (uint32_t a = 0; a < dim; a++)
		for (uint32_t d = 0; d < dim; d++)
			rcent[a] += rot[a * dim + d] * cent[d];
	double last_err = INFINITY;
	for (uint32_t bits = 1; bits <= OMEN_IVF_BITS_MAX; bits++) {
		ivf_index ix = {.dim = dim, .nlist = 1, .bits = bits, .dpad = 128};
		ix.centroids = cent;
		ix.rot = rot;
		ix.rcent = rcent;
		ivf_code *codes = calloc(n, sizeof *codes);
		size_t cs = ivf_code_size(&ix);
		uint8_t *planes = malloc(n * cs);
		float *tmp = malloc(2 * n * dim * sizeof *tmp);
		ivf_encode(&ix, x, n, codes, planes, tmp);
		uint8_t lut[128 / 4 * 16];
		float ftab[128 / 4 * 16];
		unsigned char *img = calloc(1, ivf_block_bytes(ix.dpad, bits));
		size_t outside = 0, outside2 = 0;
		double bias = 0, scale = 0, abs_err = 0;
		for (uint32_t qi = 0; qi < nq; qi++) {
			float *q = qs + qi * dim, qr[128];
			double n2 = 0;
			for (uint32_t a = 0; a < dim; a++) { /* R (q - c) */
				qr[a] = -rcent[a];
				for (uint32_t d = 0; d < dim; d++)
					qr[a] += rot[a * dim + d] * q[d];
				n2 += (double)qr[a] * qr[a];
			}
			ivf_query pq = {.lut = lut, .ftab = ftab};
			ivf_query_prepare(&ix, qr, qi, &pq);
			pq.base = (float)n2, pq.sa = 1, pq.sb = 1, pq.se = (float)sqrt(n2);
			for (uint32_t i = 0; i < n; i++) {
				double exact = 0;
				for (uint32_t d = 0; d < dim; d++)
					exact += ((double)q[d] - x[i * dim + d]) *
					         ((double)q[d] - x[i * dim + d]);
				float est, fe;
				if (bits == 1) {
					est = estimate(&ix, &pq, &codes[i], planes + i * cs);
					fe = codes[i].fe;
				} else {
					ivf_block b;
					to_block(&ix, planes + i * cs, i % IVF_BLOCK, img);
					le32_put(img + 8, IVF_BLOCK);
					ivf_block_at(img, ix.dpad, bits, &b);
					float dot = ivf_ex_dot(&ix, &pq, &b, i % IVF_BLOCK);
					double want = plain_ex_dot(&ix, planes + i * cs, qr);
					assert_true(fabs(dot - want) <= 1e-3 * (1 + fabs(want)));
					est = pq.base + pq.sa * codes[i].fa +
					      pq.sb * codes[i].fb2 * dot;
					fe = codes[i].fe2;
				}
				outside += fabs(est - exact) > pq.se * fe;
				outside2 += fabs(est - exact) > 2 * pq.se * fe;
				bias += est - exact;
				abs_err += fabs(est - exact);
				scale += exact;
			}
		}
		print_message("%u bits: %zu of %u estimates outside their bound, %zu outside twice "
		              "it, relative bias %.5f, mean relative error %.5f\n",
		              bits, outside, n * nq, outside2, bias / scale, abs_err / scale);
		assert_true(outside * 100 < (size_t)n * nq * 3); /* under 3% */
		assert_true(outside * 200 > (size_t)n * nq);     /* and not a bound far too loose */
		assert_true(outside2 * 1000 < (size_t)n * nq);   /* under 0.1% */
		assert_true(fabs(bias / scale) < 0.01);
		assert_true(abs_err / scale <
		            0.7 * last_err); /* each bit more: a closer estimate */
		last_err = abs_err / scale;
		/* a point at its centroid: factors zero, the estimate is the exact |q - c|^2 */
		ivf_code at;
		at.list = 0;
		ivf_encode(&ix, cent, 1, &at, planes, tmp);
		assert_true(at.fb == 0 && at.fe == 0 && at.fb2 == 0 && at.fe2 == 0);
		free(codes), free(planes), free(tmp), free(img);
	}
	free(rot), free(cent), free(rcent), free(x), free(qs);
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

/* The alternative to FastScan: codes in plain bit order (bit d of a code: dimension d), the
 * query's 4-bit values as 4 bit planes, and <code, query> = sum_b 2^b popcount(code & plane_b). */
__attribute__((target("popcnt"))) static uint32_t
popcount_ip(const uint64_t *code, const uint64_t *planes, uint32_t words)
{
	uint32_t sum = 0;
	for (uint32_t b = 0; b < 4; b++) {
		uint32_t c = 0;
		for (uint32_t w = 0; w < words; w++)
			c += (uint32_t)__builtin_popcountll(code[w] & planes[b * words + w]);
		sum += c << b;
	}
	return sum;
}

static double seconds(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Both layouts give the same inner products; prints ns per code of each (the measurement
 * behind docs/IVF.md's choice; meaningful in a release build only). */
static void test_popcount_alternative(void **state)
{
	(void)state;
	if (!__builtin_cpu_supports("avx2"))
		skip();
	uint64_t s = 5;
	const uint32_t dims[] = {128, 784};
	for (size_t di = 0; di < 2; di++) {
		uint32_t dpad = dims[di], groups = dpad / 4, words = (dpad + 63) / 64;
		const uint32_t nblocks = 2048; /* 65,536 codes */
		uint8_t *qu = malloc(dpad), *lut = malloc(16 * groups);
		uint64_t *planes = calloc(4 * words, 8);
		uint8_t *blocks = malloc((size_t)nblocks * 16 * groups);
		uint64_t *plain = calloc((size_t)nblocks * IVF_BLOCK * words, 8);
		for (uint32_t d = 0; d < dpad; d++) {
			qu[d] = (uint8_t)(rnd_next(&s) % 16);
			for (uint32_t b = 0; b < 4; b++)
				planes[b * words + d / 64] |= (uint64_t)(qu[d] >> b & 1)
				                              << (d % 64);
		}
		for (uint32_t g = 0; g < groups; g++)
			for (uint32_t nib = 0; nib < 16; nib++) {
				uint32_t t = 0;
				for (uint32_t i = 0; i < 4; i++)
					t += nib >> i & 1 ? qu[4 * g + i] : 0;
				lut[16 * g + nib] = (uint8_t)t;
			}
		for (size_t i = 0; i < (size_t)nblocks * 16 * groups; i++)
			blocks[i] = (uint8_t)rnd_next(&s);
		for (uint32_t k = 0; k < nblocks; k++) /* the same codes in plain order */
			for (uint32_t g = 0; g < groups; g++)
				for (uint32_t j = 0; j < IVF_BLOCK; j++) {
					uint8_t byte =
					    blocks[((size_t)k * groups + g) * 16 + j % 16];
					uint32_t nib = j < 16 ? byte & 15u : byte >> 4;
					uint64_t *code =
					    plain + ((size_t)k * IVF_BLOCK + j) * words;
					code[(4 * g) / 64] |= (uint64_t)nib << ((4 * g) % 64);
				}
		uint16_t ip[IVF_BLOCK];
		volatile uint32_t sink = 0;
		double fast = 1e9, pop = 1e9;
		for (int round = 0; round < 5; round++) {
			double t0 = seconds();
			for (uint32_t k = 0; k < nblocks; k++) {
				ivf_scan_avx2(lut, blocks + (size_t)k * 16 * groups, groups, ip);
				sink += ip[k % IVF_BLOCK];
			}
			double t1 = seconds();
			for (uint32_t k = 0; k < nblocks; k++)
				for (uint32_t j = 0; j < IVF_BLOCK; j++)
					sink +=
					    popcount_ip(plain + ((size_t)k * IVF_BLOCK + j) * words,
					                planes, words);
			double t2 = seconds();
			fast = t1 - t0 < fast ? t1 - t0 : fast;
			pop = t2 - t1 < pop ? t2 - t1 : pop;
		}
		for (uint32_t k = 0; k < nblocks; k += 97) {
			ivf_scan_avx2(lut, blocks + (size_t)k * 16 * groups, groups, ip);
			for (uint32_t j = 0; j < IVF_BLOCK; j++)
				assert_int_equal(
				    ip[j], popcount_ip(plain + ((size_t)k * IVF_BLOCK + j) * words,
				                       planes, words));
		}
		double per = 1e9 / ((double)nblocks * IVF_BLOCK);
		print_message("d %u: FastScan %.2f ns a code, popcount %.2f ns a code (%.2fx)\n",
		              dpad, fast * per, pop * per, pop / fast);
		free(qu), free(lut), free(planes), free(blocks), free(plain);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rotation),
	    cmocka_unit_test(test_estimator),
	    cmocka_unit_test(test_fastscan),
	    cmocka_unit_test(test_popcount_alternative),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
