/*
 * Distance kernels: a plain scalar reference for each quantity and AVX2+FMA / AVX-512F variants,
 * compiled with per-function target attributes so that the library itself needs no -m flags.
 * dist_best() picks the widest set the CPU supports, once, optionally capped by OMEN_SIMD.
 *
 * Within one SIMD set, *_many and *_x4 give out[i] bit for bit equal to the single-pair kernel on
 * row i: all split a vector into the same chains and sum them in the same order, so an exact scan,
 * a graph search and a pairwise re-check never disagree about a tie. Sets differ from each other
 * in the last bits.
 *
 * Scan order: *_many works on four rows at once so that each load of q serves four rows. The four
 * are not adjacent but row i of four bands of about n / 4 rows each, so that every load
 * instruction walks one band front to back, a sequential stream that the hardware prefetchers
 * follow. Four adjacent rows read side by side defeat them and, measured on a 1M x 128 scan, ran at
 * half the speed of a plain read of the same bytes.
 */
#include "engine/distance.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#define DIST_X86 1
#include <immintrin.h>
#else
#define DIST_X86 0
#endif

enum dist_level { LEVEL_SCALAR = 0, LEVEL_AVX2 = 1, LEVEL_AVX512 = 2 };

/* ---- Scalar reference ------------------------------------------------------------------- */

static float l2sq_scalar(const float *a, const float *b, size_t dim)
{
	float sum = 0.0f;
	for (size_t i = 0; i < dim; i++) {
		float d = a[i] - b[i];
		sum += d * d;
	}
	return sum;
}

static float dot_scalar(const float *a, const float *b, size_t dim)
{
	float sum = 0.0f;
	for (size_t i = 0; i < dim; i++)
		sum += a[i] * b[i];
	return sum;
}

static void l2sq_many_scalar(const float *q, const float *rows, size_t n, size_t dim, float *out)
{
	for (size_t i = 0; i < n; i++)
		out[i] = l2sq_scalar(q, rows + i * dim, dim);
}

static void dot_many_scalar(const float *q, const float *rows, size_t n, size_t dim, float *out)
{
	for (size_t i = 0; i < n; i++)
		out[i] = dot_scalar(q, rows + i * dim, dim);
}

/* The int8 kernels in scalar code from dimension i on, added to s: l2 = 1 for sq8_l2, 0 for
 * sq8_dot (qp then holds qs and w is unused). The whole scalar kernel (i = 0), and the tail of
 * the SIMD ones, shared by their one-row and four-row forms so that both round alike. */
static inline float sq8_tail(const float *qp, const float *w, const uint8_t *c, size_t i,
                             size_t dim, float s, int l2)
{
	for (; i < dim; i++) {
		if (l2) {
			float d = qp[i] - (float)c[i];
			s += w[i] * d * d;
		} else {
			s += qp[i] * (float)c[i];
		}
	}
	return s;
}

static float sq8_l2_scalar(const float *qp, const float *w, const uint8_t *c, size_t dim)
{
	return sq8_tail(qp, w, c, 0, dim, 0, 1);
}

static float sq8_dot_scalar(const float *qs, const uint8_t *c, size_t dim)
{
	return sq8_tail(qs, NULL, c, 0, dim, 0, 0);
}

/* Reads everything: the contract allows it, and only the widest level stops early. */
static float l2sq_bounded_scalar(const float *a, const float *b, size_t dim, float bound)
{
	(void)bound;
	return l2sq_scalar(a, b, dim);
}

static void l2sq_x4_scalar(const float *q, const float *const rows[4], size_t dim, float *out)
{
	for (int k = 0; k < 4; k++)
		out[k] = l2sq_scalar(q, rows[k], dim);
}

static void dot_x4_scalar(const float *q, const float *const rows[4], size_t dim, float *out)
{
	for (int k = 0; k < 4; k++)
		out[k] = dot_scalar(q, rows[k], dim);
}

static void sq8_l2_x4_scalar(const float *qp, const float *w, const uint8_t *const c[4], size_t dim,
                             float *out)
{
	for (int k = 0; k < 4; k++)
		out[k] = sq8_l2_scalar(qp, w, c[k], dim);
}

static void sq8_dot_x4_scalar(const float *qs, const uint8_t *const c[4], size_t dim, float *out)
{
	for (int k = 0; k < 4; k++)
		out[k] = sq8_dot_scalar(qs, c[k], dim);
}

static const dist_kernels scalar_set = {
    "scalar",        l2sq_scalar,   dot_scalar,       l2sq_many_scalar,
    dot_many_scalar, sq8_l2_scalar, sq8_dot_scalar,   l2sq_bounded_scalar,
    l2sq_x4_scalar,  dot_x4_scalar, sq8_l2_x4_scalar, sq8_dot_x4_scalar,
};

#if DIST_X86

#define INLINE static inline __attribute__((always_inline))
#define AVX2   __attribute__((target("avx2,fma")))
#define AVX512 __attribute__((target("avx512f")))

/*
 * Rows per band when *_many scans n rows (see scan order at the top of the file): n / 4, made odd
 * so that the four bands never start a large power of two apart. With 2^20 rows of 512 bytes they
 * would sit exactly 128 MiB apart, share cache sets and DRAM banks, and the scan measured a
 * quarter slower. The rows after the four bands, 7 at most, go one by one.
 */
static size_t band_rows(size_t n)
{
	size_t band = n / 4;
	return band > 1 ? (band - 1) | 1 : band;
}

/* ---- AVX2 + FMA: 8 lanes, 2 chains per vector ------------------------------------------- */

/*
 * Each vector is cut into chunks of 8 floats; chunk j accumulates into chain j % 2. The main
 * loop takes whole pairs of chunks; the rest (under 16 floats) goes through masked loads, whose
 * masked-off lanes read as zero and touch no memory, so any dim >= 1 works without a scalar
 * tail. The flag l2 is a compile-time constant after inlining: 1 for l2sq, 0 for dot.
 */
#define W8 8

static const int32_t mask8_table[2 * W8] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};

/* Lane mask selecting the first min(left, 8) lanes; left >= 1. */
AVX2 INLINE __m256i mask8(size_t left)
{
	size_t k = left < W8 ? left : W8;
	return _mm256_loadu_si256((const void *)(mask8_table + W8 - k));
}

/* acc + (x - y)^2 or acc + x * y, lane-wise. */
AVX2 INLINE __m256 step8(__m256 acc, __m256 x, __m256 y, int l2)
{
	if (l2) {
		__m256 d = _mm256_sub_ps(x, y);
		return _mm256_fmadd_ps(d, d, acc);
	}
	return _mm256_fmadd_ps(x, y, acc);
}

/* Sum of the lanes of c0 + c1, in a fixed order. */
AVX2 INLINE float reduce8(__m256 c0, __m256 c1)
{
	__m256 v = _mm256_add_ps(c0, c1);
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

/* l2sq (l2 = 1) or dot (l2 = 0) of one pair of vectors. */
AVX2 INLINE float pair_avx2(const float *a, const float *b, size_t dim, int l2)
{
	__m256 c0 = _mm256_setzero_ps(), c1 = _mm256_setzero_ps();
	size_t i = 0;
	for (; i + 2 * W8 <= dim; i += 2 * W8) {
		c0 = step8(c0, _mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), l2);
		c1 = step8(c1, _mm256_loadu_ps(a + i + W8), _mm256_loadu_ps(b + i + W8), l2);
	}
	if (i < dim) {
		__m256i m = mask8(dim - i);
		c0 = step8(c0, _mm256_maskload_ps(a + i, m), _mm256_maskload_ps(b + i, m), l2);
	}
	if (i + W8 < dim) {
		__m256i m = mask8(dim - i - W8);
		const float *a1 = a + i + W8, *b1 = b + i + W8;
		c1 = step8(c1, _mm256_maskload_ps(a1, m), _mm256_maskload_ps(b1, m), l2);
	}
	return reduce8(c0, c1);
}

/*
 * One chunk of q against the same chunk (offset o) of the four rows r[k] (k < 4), into the rows'
 * chain accumulators c[0..3]. A full mask loads the whole chunk.
 */
AVX2 INLINE void quad_step8(__m256 c[4], const float *q, const float *const r[4], size_t o,
                            __m256i m, int l2)
{
	__m256 x = _mm256_maskload_ps(q + o, m);
	for (int k = 0; k < 4; k++)
		c[k] = step8(c[k], x, _mm256_maskload_ps(r[k] + o, m), l2);
}

/*
 * out[k * ostride] for the four rows r[k] (k < 4), each bit for bit equal to pair_avx2(q, row):
 * the chains and the order of their sums are the same.
 */
AVX2 INLINE void quad_avx2(const float *q, const float *const r[4], size_t dim, float *out,
                           size_t ostride, int l2)
{
	__m256 c0[4], c1[4];
	for (int k = 0; k < 4; k++)
		c0[k] = c1[k] = _mm256_setzero_ps();
	size_t i = 0;
	for (; i + 2 * W8 <= dim; i += 2 * W8) {
		__m256 x = _mm256_loadu_ps(q + i), y = _mm256_loadu_ps(q + i + W8);
		for (int k = 0; k < 4; k++) {
			c0[k] = step8(c0[k], x, _mm256_loadu_ps(r[k] + i), l2);
			c1[k] = step8(c1[k], y, _mm256_loadu_ps(r[k] + i + W8), l2);
		}
	}
	if (i < dim)
		quad_step8(c0, q, r, i, mask8(dim - i), l2);
	if (i + W8 < dim)
		quad_step8(c1, q, r, i + W8, mask8(dim - i - W8), l2);
	for (int k = 0; k < 4; k++)
		out[k * ostride] = reduce8(c0[k], c1[k]);
}

/* Rows in four bands, as described for scan order at the top of the file. */
AVX2 INLINE void many_avx2(const float *q, const float *rows, size_t n, size_t dim, float *out,
                           int l2)
{
	size_t band = band_rows(n);
	for (size_t i = 0; i < band; i++) {
		const float *r0 = rows + i * dim,
		            *r[4] = {r0, r0 + band * dim, r0 + 2 * band * dim, r0 + 3 * band * dim};
		quad_avx2(q, r, dim, out + i, band, l2);
	}
	for (size_t i = 4 * band; i < n; i++)
		out[i] = pair_avx2(q, rows + i * dim, dim, l2);
}

AVX2 static float l2sq_avx2(const float *a, const float *b, size_t dim)
{
	return pair_avx2(a, b, dim, 1);
}

AVX2 static float dot_avx2(const float *a, const float *b, size_t dim)
{
	return pair_avx2(a, b, dim, 0);
}

AVX2 static void l2sq_many_avx2(const float *q, const float *rows, size_t n, size_t dim, float *out)
{
	many_avx2(q, rows, n, dim, out, 1);
}

AVX2 static void dot_many_avx2(const float *q, const float *rows, size_t n, size_t dim, float *out)
{
	many_avx2(q, rows, n, dim, out, 0);
}

AVX2 static void l2sq_x4_avx2(const float *q, const float *const rows[4], size_t dim, float *out)
{
	quad_avx2(q, rows, dim, out, 1, 1);
}

AVX2 static void dot_x4_avx2(const float *q, const float *const rows[4], size_t dim, float *out)
{
	quad_avx2(q, rows, dim, out, 1, 0);
}

/* int8 codes: 8 bytes widened to 8 floats per step, two chains; the tail in scalar code. */
AVX2 INLINE __m256 codes8(const uint8_t *c)
{
	return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)c)));
}

AVX2 static float sq8_l2_avx2(const float *qp, const float *w, const uint8_t *c, size_t dim)
{
	__m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
	size_t i = 0;
	for (; i + 16 <= dim; i += 16) {
		__m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(qp + i), codes8(c + i));
		__m256 d1 = _mm256_sub_ps(_mm256_loadu_ps(qp + i + 8), codes8(c + i + 8));
		a0 = _mm256_fmadd_ps(_mm256_mul_ps(d0, d0), _mm256_loadu_ps(w + i), a0);
		a1 = _mm256_fmadd_ps(_mm256_mul_ps(d1, d1), _mm256_loadu_ps(w + i + 8), a1);
	}
	return sq8_tail(qp, w, c, i, dim, reduce8(a0, a1), 1);
}

AVX2 static float sq8_dot_avx2(const float *qs, const uint8_t *c, size_t dim)
{
	__m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
	size_t i = 0;
	for (; i + 16 <= dim; i += 16) {
		a0 = _mm256_fmadd_ps(_mm256_loadu_ps(qs + i), codes8(c + i), a0);
		a1 = _mm256_fmadd_ps(_mm256_loadu_ps(qs + i + 8), codes8(c + i + 8), a1);
	}
	return sq8_tail(qs, NULL, c, i, dim, reduce8(a0, a1), 0);
}

/* sq8_l2_avx2 (l2 = 1) or sq8_dot_avx2 (l2 = 0, qp = qs) of the four code rows c[k] into out[k],
 * with the same chains and sums. */
AVX2 INLINE void sq8_quad_avx2(const float *qp, const float *w, const uint8_t *const c[4],
                               size_t dim, float *out, int l2)
{
	__m256 a0[4], a1[4];
	for (int k = 0; k < 4; k++)
		a0[k] = a1[k] = _mm256_setzero_ps();
	size_t i = 0;
	for (; i + 16 <= dim; i += 16) {
		__m256 x = _mm256_loadu_ps(qp + i), y = _mm256_loadu_ps(qp + i + 8);
		for (int k = 0; k < 4; k++) {
			if (l2) {
				__m256 d0 = _mm256_sub_ps(x, codes8(c[k] + i));
				__m256 d1 = _mm256_sub_ps(y, codes8(c[k] + i + 8));
				a0[k] = _mm256_fmadd_ps(_mm256_mul_ps(d0, d0),
				                        _mm256_loadu_ps(w + i), a0[k]);
				a1[k] = _mm256_fmadd_ps(_mm256_mul_ps(d1, d1),
				                        _mm256_loadu_ps(w + i + 8), a1[k]);
			} else {
				a0[k] = _mm256_fmadd_ps(x, codes8(c[k] + i), a0[k]);
				a1[k] = _mm256_fmadd_ps(y, codes8(c[k] + i + 8), a1[k]);
			}
		}
	}
	for (int k = 0; k < 4; k++)
		out[k] = sq8_tail(qp, w, c[k], i, dim, reduce8(a0[k], a1[k]), l2);
}

AVX2 static void sq8_l2_x4_avx2(const float *qp, const float *w, const uint8_t *const c[4],
                                size_t dim, float *out)
{
	sq8_quad_avx2(qp, w, c, dim, out, 1);
}

AVX2 static void sq8_dot_x4_avx2(const float *qs, const uint8_t *const c[4], size_t dim, float *out)
{
	sq8_quad_avx2(qs, NULL, c, dim, out, 0);
}

static float l2sq_bounded_avx2(const float *a, const float *b, size_t dim, float bound)
{
	(void)bound;
	return l2sq_avx2(a, b, dim);
}

static const dist_kernels avx2_set = {
    "avx2",       l2sq_avx2,         dot_avx2,     l2sq_many_avx2, dot_many_avx2,  sq8_l2_avx2,
    sq8_dot_avx2, l2sq_bounded_avx2, l2sq_x4_avx2, dot_x4_avx2,    sq8_l2_x4_avx2, sq8_dot_x4_avx2,
};

/* ---- AVX-512F: 16 lanes, 4 chains per vector -------------------------------------------- */

/*
 * The same scheme as AVX2 with chunks of 16 floats and four chains (chunk j into chain j % 4);
 * 32 registers hold the 16 accumulators of four rows. The rest after the main loop (under 64
 * floats) goes chunk by chunk through masked loads.
 */
#define W16 16

/* Lane mask selecting the first min(left, 16) lanes; left >= 1. */
AVX512 INLINE __mmask16 mask16(size_t left)
{
	return left >= W16 ? (__mmask16)0xffff : (__mmask16)((1u << left) - 1);
}

/* acc + (x - y)^2 or acc + x * y, lane-wise. */
AVX512 INLINE __m512 step16(__m512 acc, __m512 x, __m512 y, int l2)
{
	if (l2) {
		__m512 d = _mm512_sub_ps(x, y);
		return _mm512_fmadd_ps(d, d, acc);
	}
	return _mm512_fmadd_ps(x, y, acc);
}

/* Sum of the lanes of c0 + c1 + c2 + c3, in a fixed order. */
AVX512 INLINE float reduce16(__m512 c0, __m512 c1, __m512 c2, __m512 c3)
{
	return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(c0, c1), _mm512_add_ps(c2, c3)));
}

/* Chunk o .. o + 15 (cut at dim) of a and b into acc; acc unchanged when o >= dim. */
AVX512 INLINE __m512 tail16(__m512 acc, const float *a, const float *b, size_t o, size_t dim,
                            int l2)
{
	if (o >= dim)
		return acc;
	__mmask16 m = mask16(dim - o);
	return step16(acc, _mm512_maskz_loadu_ps(m, a + o), _mm512_maskz_loadu_ps(m, b + o), l2);
}

/* l2sq (l2 = 1) or dot (l2 = 0) of one pair of vectors. */
AVX512 INLINE float pair_avx512(const float *a, const float *b, size_t dim, int l2)
{
	__m512 c0 = _mm512_setzero_ps(), c1 = c0, c2 = c0, c3 = c0;
	size_t i = 0;
	for (; i + 4 * W16 <= dim; i += 4 * W16) {
		c0 = step16(c0, _mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), l2);
		c1 = step16(c1, _mm512_loadu_ps(a + i + W16), _mm512_loadu_ps(b + i + W16), l2);
		c2 = step16(c2, _mm512_loadu_ps(a + i + 2 * W16), _mm512_loadu_ps(b + i + 2 * W16),
		            l2);
		c3 = step16(c3, _mm512_loadu_ps(a + i + 3 * W16), _mm512_loadu_ps(b + i + 3 * W16),
		            l2);
	}
	c0 = tail16(c0, a, b, i, dim, l2);
	c1 = tail16(c1, a, b, i + W16, dim, l2);
	c2 = tail16(c2, a, b, i + 2 * W16, dim, l2);
	c3 = tail16(c3, a, b, i + 3 * W16, dim, l2);
	return reduce16(c0, c1, c2, c3);
}

/* One chunk (offset o) of q against the same chunk of the four rows r[k] (k < 4), into chain j
 * of each row, c[k][j]. */
AVX512 INLINE void quad_step16(__m512 c[4][4], int j, const float *q, const float *const r[4],
                               size_t o, __mmask16 m, int l2)
{
	__m512 x = _mm512_maskz_loadu_ps(m, q + o);
	for (int k = 0; k < 4; k++)
		c[k][j] = step16(c[k][j], x, _mm512_maskz_loadu_ps(m, r[k] + o), l2);
}

/*
 * out[k * ostride] for the four rows r[k] (k < 4), each bit for bit equal to pair_avx512(q, row):
 * the chains and the order of their sums are the same.
 */
AVX512 INLINE void quad_avx512(const float *q, const float *const r[4], size_t dim, float *out,
                               size_t ostride, int l2)
{
	__m512 c[4][4];
	for (int k = 0; k < 4; k++)
		for (int j = 0; j < 4; j++)
			c[k][j] = _mm512_setzero_ps();
	size_t i = 0;
	for (; i + 4 * W16 <= dim; i += 4 * W16) {
		for (int j = 0; j < 4; j++)
			quad_step16(c, j, q, r, i + j * W16, 0xffff, l2);
	}
	for (int j = 0; j < 4; j++) {
		size_t o = i + j * W16;
		if (o < dim)
			quad_step16(c, j, q, r, o, mask16(dim - o), l2);
	}
	for (int k = 0; k < 4; k++)
		out[k * ostride] = reduce16(c[k][0], c[k][1], c[k][2], c[k][3]);
}

/* Rows in four bands, as described for scan order at the top of the file. */
AVX512 INLINE void many_avx512(const float *q, const float *rows, size_t n, size_t dim, float *out,
                               int l2)
{
	size_t band = band_rows(n);
	for (size_t i = 0; i < band; i++) {
		const float *r0 = rows + i * dim,
		            *r[4] = {r0, r0 + band * dim, r0 + 2 * band * dim, r0 + 3 * band * dim};
		quad_avx512(q, r, dim, out + i, band, l2);
	}
	for (size_t i = 4 * band; i < n; i++)
		out[i] = pair_avx512(q, rows + i * dim, dim, l2);
}

AVX512 static float l2sq_avx512(const float *a, const float *b, size_t dim)
{
	return pair_avx512(a, b, dim, 1);
}

/* pair_avx512's chains, with their sum compared to bound after every 128 floats (short
 * vectors gain nothing: measured at 128 dimensions): each chain
 * only grows, and so does their sum (rounding is monotonic), so a partial sum at or above
 * bound means the whole one is too. Not stopping, the result is pair_avx512's bit for bit. */
AVX512 static float l2sq_bounded_avx512(const float *a, const float *b, size_t dim, float bound)
{
	__m512 c0 = _mm512_setzero_ps(), c1 = c0, c2 = c0, c3 = c0;
	size_t i = 0;
	for (; i + 4 * W16 <= dim; i += 4 * W16) {
		c0 = step16(c0, _mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), 1);
		c1 = step16(c1, _mm512_loadu_ps(a + i + W16), _mm512_loadu_ps(b + i + W16), 1);
		c2 = step16(c2, _mm512_loadu_ps(a + i + 2 * W16), _mm512_loadu_ps(b + i + 2 * W16),
		            1);
		c3 = step16(c3, _mm512_loadu_ps(a + i + 3 * W16), _mm512_loadu_ps(b + i + 3 * W16),
		            1);
		if ((i & (8 * W16 - 1)) == 4 * W16 && i + 8 * W16 <= dim) { /* every 128 floats */
			float part = reduce16(c0, c1, c2, c3);
			if (part >= bound)
				return part;
		}
	}
	c0 = tail16(c0, a, b, i, dim, 1);
	c1 = tail16(c1, a, b, i + W16, dim, 1);
	c2 = tail16(c2, a, b, i + 2 * W16, dim, 1);
	c3 = tail16(c3, a, b, i + 3 * W16, dim, 1);
	return reduce16(c0, c1, c2, c3);
}

AVX512 static float dot_avx512(const float *a, const float *b, size_t dim)
{
	return pair_avx512(a, b, dim, 0);
}

AVX512 static void l2sq_many_avx512(const float *q, const float *rows, size_t n, size_t dim,
                                    float *out)
{
	many_avx512(q, rows, n, dim, out, 1);
}

AVX512 static void dot_many_avx512(const float *q, const float *rows, size_t n, size_t dim,
                                   float *out)
{
	many_avx512(q, rows, n, dim, out, 0);
}

/* int8 codes: 16 bytes widened to 16 floats per step, two chains; the tail in scalar code. */
AVX512 INLINE __m512 codes16(const uint8_t *c)
{
	return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)c)));
}

AVX512 static float sq8_l2_avx512(const float *qp, const float *w, const uint8_t *c, size_t dim)
{
	__m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
	size_t i = 0;
	for (; i + 32 <= dim; i += 32) {
		__m512 d0 = _mm512_sub_ps(_mm512_loadu_ps(qp + i), codes16(c + i));
		__m512 d1 = _mm512_sub_ps(_mm512_loadu_ps(qp + i + 16), codes16(c + i + 16));
		a0 = _mm512_fmadd_ps(_mm512_mul_ps(d0, d0), _mm512_loadu_ps(w + i), a0);
		a1 = _mm512_fmadd_ps(_mm512_mul_ps(d1, d1), _mm512_loadu_ps(w + i + 16), a1);
	}
	return sq8_tail(qp, w, c, i, dim, _mm512_reduce_add_ps(_mm512_add_ps(a0, a1)), 1);
}

AVX512 static float sq8_dot_avx512(const float *qs, const uint8_t *c, size_t dim)
{
	__m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
	size_t i = 0;
	for (; i + 32 <= dim; i += 32) {
		a0 = _mm512_fmadd_ps(_mm512_loadu_ps(qs + i), codes16(c + i), a0);
		a1 = _mm512_fmadd_ps(_mm512_loadu_ps(qs + i + 16), codes16(c + i + 16), a1);
	}
	return sq8_tail(qs, NULL, c, i, dim, _mm512_reduce_add_ps(_mm512_add_ps(a0, a1)), 0);
}

/* sq8_l2_avx512 (l2 = 1) or sq8_dot_avx512 (l2 = 0, qp = qs) of the four code rows c[k] into
 * out[k], with the same chains and sums. */
AVX512 INLINE void sq8_quad_avx512(const float *qp, const float *w, const uint8_t *const c[4],
                                   size_t dim, float *out, int l2)
{
	__m512 a0[4], a1[4];
	for (int k = 0; k < 4; k++)
		a0[k] = a1[k] = _mm512_setzero_ps();
	size_t i = 0;
	for (; i + 32 <= dim; i += 32) {
		__m512 x = _mm512_loadu_ps(qp + i), y = _mm512_loadu_ps(qp + i + 16);
		for (int k = 0; k < 4; k++) {
			if (l2) {
				__m512 d0 = _mm512_sub_ps(x, codes16(c[k] + i));
				__m512 d1 = _mm512_sub_ps(y, codes16(c[k] + i + 16));
				a0[k] = _mm512_fmadd_ps(_mm512_mul_ps(d0, d0),
				                        _mm512_loadu_ps(w + i), a0[k]);
				a1[k] = _mm512_fmadd_ps(_mm512_mul_ps(d1, d1),
				                        _mm512_loadu_ps(w + i + 16), a1[k]);
			} else {
				a0[k] = _mm512_fmadd_ps(x, codes16(c[k] + i), a0[k]);
				a1[k] = _mm512_fmadd_ps(y, codes16(c[k] + i + 16), a1[k]);
			}
		}
	}
	for (int k = 0; k < 4; k++)
		out[k] = sq8_tail(qp, w, c[k], i, dim,
		                  _mm512_reduce_add_ps(_mm512_add_ps(a0[k], a1[k])), l2);
}

AVX512 static void l2sq_x4_avx512(const float *q, const float *const rows[4], size_t dim,
                                  float *out)
{
	quad_avx512(q, rows, dim, out, 1, 1);
}

AVX512 static void dot_x4_avx512(const float *q, const float *const rows[4], size_t dim, float *out)
{
	quad_avx512(q, rows, dim, out, 1, 0);
}

AVX512 static void sq8_l2_x4_avx512(const float *qp, const float *w, const uint8_t *const c[4],
                                    size_t dim, float *out)
{
	sq8_quad_avx512(qp, w, c, dim, out, 1);
}

AVX512 static void sq8_dot_x4_avx512(const float *qs, const uint8_t *const c[4], size_t dim,
                                     float *out)
{
	sq8_quad_avx512(qs, NULL, c, dim, out, 0);
}

static const dist_kernels avx512_set = {
    "avx512",        l2sq_avx512,   dot_avx512,       l2sq_many_avx512,
    dot_many_avx512, sq8_l2_avx512, sq8_dot_avx512,   l2sq_bounded_avx512,
    l2sq_x4_avx512,  dot_x4_avx512, sq8_l2_x4_avx512, sq8_dot_x4_avx512,
};

/* The widest level this CPU (and its OS, which must save the wide registers) supports. */
static enum dist_level cpu_level(void)
{
	__builtin_cpu_init();
	if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2") &&
	    __builtin_cpu_supports("fma"))
		return LEVEL_AVX512;
	if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
		return LEVEL_AVX2;
	return LEVEL_SCALAR;
}

static const dist_kernels *const level_sets[] = {&scalar_set, &avx2_set, &avx512_set};

#else /* !DIST_X86 */

static enum dist_level cpu_level(void)
{
	return LEVEL_SCALAR;
}

static const dist_kernels *const level_sets[] = {&scalar_set, NULL, NULL};

#endif

static const char *const level_names[] = {"scalar", "avx2", "avx512"};

/* The level called name, or -1 when name is NULL or names no level. */
static int level_by_name(const char *name)
{
	for (int l = LEVEL_SCALAR; name && l <= LEVEL_AVX512; l++)
		if (strcmp(name, level_names[l]) == 0)
			return l;
	return -1;
}

static const dist_kernels *best_set;
static pthread_once_t best_once = PTHREAD_ONCE_INIT;

/* Picks the widest supported level, capped by OMEN_SIMD when it names a level (else ignored). */
static void choose_best(void)
{
	int level = (int)cpu_level();
	int cap = level_by_name(getenv("OMEN_SIMD"));
	if (cap >= 0 && cap < level)
		level = cap;
	best_set = level_sets[level];
}

const dist_kernels *dist_best(void)
{
	pthread_once(&best_once, choose_best);
	return best_set;
}

const dist_kernels *dist_by_name(const char *name)
{
	int level = level_by_name(name);
	if (level < 0 || level > (int)cpu_level())
		return NULL;
	return level_sets[level];
}

const dist_kernels *dist_scalar(void)
{
	return &scalar_set;
}
