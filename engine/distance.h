/*
 * Distance kernels. One scalar reference per quantity, and SIMD variants (AVX2+FMA, AVX-512F)
 * chosen once, at first use, from the CPU's features. Every variant is tested against the
 * reference (tests/test_distance.c). Pointers need no particular alignment.
 */
#ifndef OMEN_DISTANCE_H
#define OMEN_DISTANCE_H

#include <stddef.h>
#include <stdint.h>

/* One kernel set. Each function is pure and thread-safe; dim >= 1, and rows is not read when
 * n == 0. Within a set, out[i] of *_many equals the single-pair kernel on row i bit for bit
 * (same accumulation order), so a scan and a pairwise re-check never disagree on a tie. */
typedef struct dist_kernels {
	const char *name; /* "scalar", "avx2", "avx512" */
	/* Squared Euclidean distance between a and b. */
	float (*l2sq)(const float *a, const float *b, size_t dim);
	/* Inner product of a and b. */
	float (*dot)(const float *a, const float *b, size_t dim);
	/* out[i] = l2sq(q, rows + i * dim) for i < n; rows is n x dim row-major. */
	void (*l2sq_many)(const float *q, const float *rows, size_t n, size_t dim, float *out);
	/* out[i] = dot(q, rows + i * dim) for i < n. */
	void (*dot_many)(const float *q, const float *rows, size_t n, size_t dim, float *out);
	/* int8 scalar quantization (uint8 codes c): sum over d of w[d] * (qp[d] - c[d])^2. */
	float (*sq8_l2)(const float *qp, const float *w, const uint8_t *c, size_t dim);
	/* sum over d of qs[d] * c[d]. */
	float (*sq8_dot)(const float *qs, const uint8_t *c, size_t dim);
	/* l2sq(a, b) bit for bit when that is below bound; otherwise some value >= bound, possibly
	 * before reading all of b (the partial sums of squares only grow). */
	float (*l2sq_bounded)(const float *a, const float *b, size_t dim, float bound);
	/* out[k] = l2sq(q, rows[k]) for k < 4, bit for bit, the four read side by side so that
	 * their memory latencies overlap (a graph search reads scattered rows). */
	void (*l2sq_x4)(const float *q, const float *const rows[4], size_t dim, float *out);
	/* out[k] = dot(q, rows[k]) for k < 4, likewise. */
	void (*dot_x4)(const float *q, const float *const rows[4], size_t dim, float *out);
	/* out[k] = sq8_l2(qp, w, c[k], dim) for k < 4, likewise. */
	void (*sq8_l2_x4)(const float *qp, const float *w, const uint8_t *const c[4], size_t dim,
	                  float *out);
	/* out[k] = sq8_dot(qs, c[k], dim) for k < 4, likewise. */
	void (*sq8_dot_x4)(const float *qs, const uint8_t *const c[4], size_t dim, float *out);
} dist_kernels;

/* The best kernel set for this CPU, chosen once (thread-safe). The environment variable
 * OMEN_SIMD=scalar|avx2|avx512 caps the choice (for tests and benchmarks); a level the CPU lacks
 * is never chosen, and a value naming no level is ignored. */
const dist_kernels *dist_best(void);

/* Kernel sets by name, or NULL when the CPU (or the compiler) does not support it. */
const dist_kernels *dist_by_name(const char *name);

/* The scalar reference kernels (always available). */
const dist_kernels *dist_scalar(void);

#endif
