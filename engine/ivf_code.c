/*
 * RaBitQ codes (J. Gao and C. Long, SIGMOD 2024; ivf.h has the layout): encoding a point's
 * residual to its centroid into sign bits and the factors of the paper's estimator, preparing
 * a query's 4-bit look-up tables, and the FastScan kernel that turns 32 codes and the tables
 * into integer inner products (AVX2 shuffles, or a scalar loop where OMEN_SIMD=scalar or the
 * CPU lacks AVX2).
 *
 * With o the point's unit residual direction, x-bar its code (+-1/sqrt(D) per rotated
 * dimension), x0 = <x-bar, R o> and q' the query's rotated residual (or rotated query, for
 * inner products), the paper's estimator is <o, q> ~ <x-bar, q'> / (|q'| x0), unbiased, with
 * |error| <= sqrt(1 - x0^2) / x0 * eps0 / sqrt(D - 1) (times |q'|) with high probability
 * (its Theorem 3.2). The query's rotated residual is quantized to 4 bits per dimension with
 * randomized rounding (its Section 3.3.1), so that <x-bar, q'> is an integer sum read from
 * tables.
 *
 * Codes of B > 1 bits per dimension follow the extended RaBitQ (J. Gao, Y. Gou, Y. Xu, Y. Yang,
 * C. Long and R. C.-W. Wong, "Practical and Asymptotically Optimal Quantization of
 * High-Dimensional Vectors in Euclidean Space for Approximate Nearest Neighbor Search",
 * SIGMOD 2025): each rotated dimension of the unit residual gets a level k in 0 .. 2^(B-1) - 1
 * of its magnitude, scaled by the t that maximises the cosine x0' between the reconstruction y
 * (sign times k + 1/2) and the residual (a grid of IVF_EX_GRID values of t, where the paper
 * enumerates the critical values exactly), stored as u = 2^(B-1) + k for a positive sign and
 * 2^(B-1) - 1 - k otherwise, so that the top bit of u is the 1-bit code's sign bit. The
 * estimator and its bound are the 1-bit one's with x0' for x0; the search uses them as a second
 * stage, on the candidates the 1-bit bound keeps, with the query's residual in float.
 */
#include <cblas.h>
#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "engine/ivf.h"

bool ivf_block_view(const void *bytes, size_t len, uint32_t dpad, uint32_t bits, ivf_block *b)
{
	const unsigned char *p = bytes;
	if (len != ivf_block_bytes(dpad, bits) ||
	    !rec_check(p, len, IVF_MAGIC_BLOCK, IVF_BLOCK_HEAD))
		return false;
	ivf_block_at(p, dpad, bits, b);
	return b->count >= 1 && b->count <= IVF_BLOCK;
}

void ivf_block_at(const unsigned char *p, uint32_t dpad, uint32_t bits, ivf_block *b)
{
	b->count = le32_get(p + 8);
	b->codes = p + IVF_BLOCK_HEAD;
	b->ex = b->codes + ivf_codes_bytes(dpad);
	b->fa = b->codes + bits * ivf_codes_bytes(dpad);
	b->fb = b->fa + 4 * IVF_BLOCK;
	b->fe = b->fb + 4 * IVF_BLOCK;
	b->pc = b->fe + 4 * IVF_BLOCK;
	b->rows = b->pc + 2 * IVF_BLOCK;
	b->fb2 = bits > 1 ? b->rows + 4 * IVF_BLOCK : NULL;
	b->fe2 = bits > 1 ? b->fb2 + 4 * IVF_BLOCK : NULL;
}

/* ---- encoding ---- */

/* The factors of one rotated residual r (dim floats) whose unrotated norm squared is n2. */
static void factors(const float *r, uint32_t dim, float n2, ivf_code *out, uint8_t *bits)
{
	double sum_abs = 0;
	uint16_t pc = 0;
	for (uint32_t d = 0; d < dim; d++) {
		if (r[d] > 0) {
			bits[d / 8] |= (uint8_t)(1u << (d % 8));
			pc++;
		}
		sum_abs += fabsf(r[d]);
	}
	double norm = sqrt(n2);
	out->fa = n2;
	out->pc = pc;
	if (norm == 0 || sum_abs == 0) { /* the point is its centroid: the estimate is exact */
		out->fb = 0;
		out->fe = 0;
		return;
	}
	double x0 = sum_abs / (sqrt((double)dim) * norm);
	x0 = x0 > 1 ? 1 : x0;
	out->fb = (float)(-2 * norm / x0);
	out->fe =
	    dim > 1 ? (float)(2 * norm * sqrt(1 - x0 * x0) / x0 * IVF_EPS0 / sqrt((double)dim - 1))
	            : INFINITY;
}

/* The multi-bit code of rotated residual r (dim floats, |r| = norm > 0): the planes 1..bits-1
 * below the sign plane (planes, each cb bytes, zeroed) and fb2, fe2. */
static void ex_factors(const float *r, uint32_t dim, uint32_t bits, size_t cb, double norm,
                       ivf_code *out, uint8_t *planes)
{
	uint32_t levels = 1u << (bits - 1);
	float maxabs = 0;
	for (uint32_t d = 0; d < dim; d++)
		maxabs = fabsf(r[d]) > maxabs ? fabsf(r[d]) : maxabs;
	double best = -1, best_t = 0, best_n2 = 1;
	for (uint32_t a = 1; a <= IVF_EX_GRID; a++) { /* t maps maxabs to levels a / grid ... 4 */
		double t = 4.0 * levels * a / IVF_EX_GRID / maxabs, ip = 0, n2 = 0;
		for (uint32_t d = 0; d < dim; d++) {
			double k = floor(t * fabsf(r[d]));
			k = k > levels - 1 ? levels - 1 : k;
			ip += (k + 0.5) * fabsf(r[d]);
			n2 += (k + 0.5) * (k + 0.5);
		}
		double cosine = ip / (sqrt(n2) * norm);
		if (cosine > best)
			best = cosine, best_t = t, best_n2 = n2;
	}
	for (uint32_t d = 0; d < dim; d++) {
		double k = floor(best_t * fabsf(r[d]));
		uint32_t kk = k > levels - 1 ? levels - 1 : (uint32_t)k;
		uint32_t u = r[d] > 0 ? levels + kk : levels - 1 - kk;
		for (uint32_t p = 1; p < bits; p++)
			if (u >> (bits - 1 - p) & 1)
				planes[(p - 1) * cb + d / 8] |= (uint8_t)(1u << (d % 8));
	}
	double x0 = best > 1 ? 1 : best;
	out->fb2 = (float)(-2 * norm / (x0 * sqrt(best_n2)));
	out->fe2 =
	    dim > 1 ? (float)(2 * norm * sqrt(1 - x0 * x0) / x0 * IVF_EPS0 / sqrt((double)dim - 1))
	            : INFINITY;
}

void ivf_encode(const ivf_index *ix, const float *vecs, size_t n, ivf_code *codes, uint8_t *bits,
                float *tmp)
{
	uint32_t dim = ix->dim;
	size_t cb = ivf_code_bits(ix->dpad), cs = ivf_code_size(ix);
	float *res = tmp, *rot = tmp + n * dim;
	for (size_t i = 0; i < n; i++) {
		const float *c = ix->centroids + (size_t)codes[i].list * dim;
		for (uint32_t d = 0; d < dim; d++)
			res[i * dim + d] = vecs[i * dim + d] - c[d];
	}
	if (n)
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)dim, (int)dim,
		            1.0f, res, (int)dim, ix->rot, (int)dim, 0.0f, rot, (int)dim);
	memset(bits, 0, n * cs);
#pragma omp parallel for schedule(static) if (n >= 1024)
	for (size_t i = 0; i < n; i++) {
		double n2 = 0;
		for (uint32_t d = 0; d < dim; d++)
			n2 += (double)res[i * dim + d] * res[i * dim + d];
		factors(rot + i * dim, dim, (float)n2, &codes[i], bits + i * cs);
		codes[i].fb2 = codes[i].fe2 = 0;
		if (ix->bits > 1 && codes[i].fb != 0)
			ex_factors(rot + i * dim, dim, ix->bits, cb, sqrt(n2), &codes[i],
			           bits + i * cs + cb);
	}
}

/* ---- queries ---- */

void ivf_query_prepare(const ivf_index *ix, const float *qr, uint64_t seed, ivf_query *q)
{
	uint32_t dim = ix->dim, groups = ix->dpad / 4;
	float lo = qr[0], hi = qr[0];
	double sum = 0;
	for (uint32_t d = 0; d < dim; d++) {
		lo = qr[d] < lo ? qr[d] : lo;
		hi = qr[d] > hi ? qr[d] : hi;
		sum += qr[d];
	}
	float delta = (hi - lo) / 15.0f, inv = delta > 0 ? 1 / delta : 0;
	uint8_t qu[OMEN_IVF_MAX_DIM + 8] = {0};
	uint32_t r = (uint32_t)(seed ^ seed >> 32) | 1; /* xorshift32: the rounding's randomness */
	for (uint32_t d = 0; d < dim; d++) {
		r ^= r << 13;
		r ^= r >> 17;
		r ^= r << 5;
		float v = (qr[d] - lo) * inv + (float)(r >> 8) * 0x1p-24f;
		qu[d] = v >= 15 ? 15 : (uint8_t)v;
	}
	for (uint32_t g = 0; g < groups; g++) { /* each entry: one more than a smaller one */
		uint8_t *t = q->lut + 16 * g;
		const uint8_t *v = qu + 4 * g;
		t[0] = 0;
		for (uint32_t nib = 1; nib < 16; nib++)
			t[nib] = (uint8_t)(t[nib & (nib - 1)] + v[__builtin_ctz(nib)]);
	}
	if (ix->bits > 1) { /* the multi-bit stage's float tables */
		for (uint32_t g = 0; g < groups; g++) {
			float *t = q->ftab + 16 * g;
			const float *v = qr + 4 * g;
			t[0] = 0;
			for (uint32_t nib = 1; nib < 16; nib++)
				t[nib] = t[nib & (nib - 1)] + v[__builtin_ctz(nib)];
		}
		q->qsum = (float)sum;
	}
	float rs = 1.0f / sqrtf((float)dim);
	q->k1 = 2 * delta * rs;
	q->k2 = 2 * lo * rs;
	q->k3 = (float)-sum * rs;
}

float ivf_ex_dot(const ivf_index *ix, const ivf_query *q, const ivf_block *b, uint32_t j)
{
	uint32_t groups = ix->dpad / 4, shift = j < 16 ? 0 : 4;
	size_t plane = ivf_codes_bytes(ix->dpad);
	float dot = 0;
	for (uint32_t p = 0; p < ix->bits; p++) {
		const unsigned char *c = (p ? b->ex + (p - 1) * plane : b->codes) + (j & 15);
		float s = 0;
		for (uint32_t g = 0; g < groups; g++)
			s += q->ftab[16 * g + (c[16 * g] >> shift & 15)];
		dot += s * (float)(1u << (ix->bits - 1 - p));
	}
	return dot - 0.5f * (float)((1u << ix->bits) - 1) * q->qsum;
}

/* ---- FastScan ---- */

void ivf_scan_scalar(const uint8_t *lut, const unsigned char *codes, uint32_t groups,
                     uint16_t ip[IVF_BLOCK])
{
	for (uint32_t j = 0; j < IVF_BLOCK; j++) {
		uint32_t sum = 0;
		for (uint32_t g = 0; g < groups; g++) {
			unsigned char byte = codes[16 * g + (j & 15)];
			sum += lut[16 * g + (j < 16 ? byte & 15 : byte >> 4)];
		}
		ip[j] = (uint16_t)sum;
	}
}

/* Two groups per 32-byte load: the low lane holds group g's 16 bytes and table, the high lane
 * group g + 1's. Sums are kept in 16-bit lanes, even and odd codes apart, and the two halves
 * added at the end. */
__attribute__((target("avx2"))) void ivf_scan_avx2(const uint8_t *lut, const unsigned char *codes,
                                                   uint32_t groups, uint16_t ip[IVF_BLOCK])
{
	const __m256i low4 = _mm256_set1_epi8(0x0f), low8 = _mm256_set1_epi16(0x00ff);
	__m256i lo_even = _mm256_setzero_si256(), lo_odd = lo_even, hi_even = lo_even,
	        hi_odd = lo_even;
	for (uint32_t g = 0; g < groups; g += 2) {
		__m256i t = _mm256_loadu_si256((const __m256i *)(lut + 16 * g));
		__m256i v = _mm256_loadu_si256((const __m256i *)(codes + 16 * g));
		__m256i rlo = _mm256_shuffle_epi8(t, _mm256_and_si256(v, low4));
		__m256i rhi =
		    _mm256_shuffle_epi8(t, _mm256_and_si256(_mm256_srli_epi16(v, 4), low4));
		lo_even = _mm256_add_epi16(lo_even, _mm256_and_si256(rlo, low8));
		lo_odd = _mm256_add_epi16(lo_odd, _mm256_srli_epi16(rlo, 8));
		hi_even = _mm256_add_epi16(hi_even, _mm256_and_si256(rhi, low8));
		hi_odd = _mm256_add_epi16(hi_odd, _mm256_srli_epi16(rhi, 8));
	}
	__m256i acc[4] = {lo_even, lo_odd, hi_even, hi_odd};
	uint16_t w[4][8];
	for (int a = 0; a < 4; a++)
		_mm_storeu_si128((__m128i *)w[a],
		                 _mm_add_epi16(_mm256_castsi256_si128(acc[a]),
		                               _mm256_extracti128_si256(acc[a], 1)));
	for (uint32_t j = 0; j < 8; j++) {
		ip[2 * j] = w[0][j];
		ip[2 * j + 1] = w[1][j];
		ip[16 + 2 * j] = w[2][j];
		ip[16 + 2 * j + 1] = w[3][j];
	}
}

static int use_avx2 = -1;

/* AVX2 kernels unless the CPU lacks AVX2 or OMEN_SIMD=scalar chose the scalar distances. */
static bool simd_avx2(void)
{
	if (__atomic_load_n(&use_avx2, __ATOMIC_RELAXED) < 0)
		__atomic_store_n(&use_avx2,
		                 __builtin_cpu_supports("avx2") &&
		                     strcmp(dist_best()->name, "scalar") != 0,
		                 __ATOMIC_RELAXED);
	return use_avx2;
}

void ivf_scan_block(const ivf_query *q, const unsigned char *codes, uint32_t dpad,
                    uint16_t ip[IVF_BLOCK])
{
	if (simd_avx2())
		ivf_scan_avx2(q->lut, codes, dpad / 4, ip);
	else
		ivf_scan_scalar(q->lut, codes, dpad / 4, ip);
}

/* ---- a block's 1-bit estimates ---- */

static inline float ldf(const unsigned char *p)
{
	float v;
	memcpy(&v, p, 4);
	return v;
}

static void estimates_scalar(const ivf_query *q, const ivf_block *b, const uint16_t *ip, float *est,
                             float *err)
{
	for (uint32_t i = 0; i < IVF_BLOCK; i++) {
		float x1 = q->k1 * (float)ip[i] + q->k2 * (float)le16_get(b->pc + 2 * i) + q->k3;
		est[i] = q->base + q->sa * ldf(b->fa + 4 * i) + q->sb * ldf(b->fb + 4 * i) * x1;
		err[i] = q->se * ldf(b->fe + 4 * i);
	}
}

/* The same operations in the same order, 8 codes at a time (no fused multiply-adds, so that
 * both give the same floats). */
__attribute__((target("avx2"))) static void
estimates_avx2(const ivf_query *q, const ivf_block *b, const uint16_t *ip, float *est, float *err)
{
	const __m256 k1 = _mm256_set1_ps(q->k1), k2 = _mm256_set1_ps(q->k2),
	             k3 = _mm256_set1_ps(q->k3), base = _mm256_set1_ps(q->base),
	             sa = _mm256_set1_ps(q->sa), sb = _mm256_set1_ps(q->sb),
	             se = _mm256_set1_ps(q->se);
	for (uint32_t c = 0; c < IVF_BLOCK; c += 8) {
		__m256 ipf = _mm256_cvtepi32_ps(
		    _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(ip + c))));
		__m256 pcf = _mm256_cvtepi32_ps(
		    _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(b->pc + 2 * c))));
		__m256 x1 = _mm256_add_ps(
		    _mm256_add_ps(_mm256_mul_ps(k1, ipf), _mm256_mul_ps(k2, pcf)), k3);
		__m256 fa = _mm256_loadu_ps((const float *)(const void *)(b->fa + 4 * c));
		__m256 fb = _mm256_loadu_ps((const float *)(const void *)(b->fb + 4 * c));
		__m256 fe = _mm256_loadu_ps((const float *)(const void *)(b->fe + 4 * c));
		__m256 e = _mm256_add_ps(_mm256_add_ps(base, _mm256_mul_ps(sa, fa)),
		                         _mm256_mul_ps(_mm256_mul_ps(sb, fb), x1));
		_mm256_storeu_ps(est + c, e);
		_mm256_storeu_ps(err + c, _mm256_mul_ps(se, fe));
	}
}

void ivf_block_estimates(const ivf_query *q, const ivf_block *b, const uint16_t ip[IVF_BLOCK],
                         float est[IVF_BLOCK], float err[IVF_BLOCK])
{
	if (simd_avx2())
		estimates_avx2(q, b, ip, est, err);
	else
		estimates_scalar(q, b, ip, est, err);
}
