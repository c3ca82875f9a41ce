/*
 * Independent exact search used to check the engine's results (see exact.h). The distance is
 * one loop in double; the compiler may vectorise it (the reduction pragma allows reordering,
 * which for Fashion-MNIST's integer pixels is exact anyway since every partial sum is an
 * integer below 2^53).
 */
#include "exact.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define QUERY_TILE 64  /* queries kept hot while a base tile streams past */
#define BASE_TILE  128 /* base rows per tile: 128 x 784 floats is 400 KB, fits in L2 */

__attribute__((target_clones("avx512f", "avx2", "default"))) double
exact_l2sq(const float *a, const float *b, size_t dim)
{
	double s = 0.0;
#pragma omp simd reduction(+ : s)
	for (size_t i = 0; i < dim; i++) {
		double d = (double)a[i] - (double)b[i];
		s += d * d;
	}
	return s;
}

/* Inserts (d, id) into the sorted list (dists, ids) of length k if it is closer than the
 * current last entry. Ids arrive in increasing order, so an equal distance stays behind the
 * entries already there: ties go to the smaller id. */
static void topk_push(double *dists, uint64_t *ids, size_t k, double d, uint64_t id)
{
	size_t i;
	if (!(d < dists[k - 1]))
		return;
	i = k - 1;
	while (i > 0 && dists[i - 1] > d) {
		dists[i] = dists[i - 1];
		ids[i] = ids[i - 1];
		i--;
	}
	dists[i] = d;
	ids[i] = id;
}

/* Runs queries [q0, q0 + qn) against every base row, tile by tile. */
static void knn_tile(const float *base, size_t nb, const float *queries, size_t q0, size_t qn,
                     size_t dim, size_t k, uint64_t *ids, double *dists)
{
	for (size_t i = 0; i < qn * k; i++) {
		dists[q0 * k + i] = INFINITY;
		ids[q0 * k + i] = UINT64_MAX;
	}
	for (size_t b0 = 0; b0 < nb; b0 += BASE_TILE) {
		size_t bn = nb - b0 < BASE_TILE ? nb - b0 : BASE_TILE;
		for (size_t qi = q0; qi < q0 + qn; qi++) {
			const float *q = queries + qi * dim;
			for (size_t j = b0; j < b0 + bn; j++) {
				double d = exact_l2sq(q, base + j * dim, dim);
				topk_push(dists + qi * k, ids + qi * k, k, d, j);
			}
		}
	}
}

void exact_knn(const float *base, size_t nb, const float *queries, size_t nq, size_t dim, size_t k,
               uint64_t *ids, double *dists)
{
	long ntiles = (long)((nq + QUERY_TILE - 1) / QUERY_TILE);
#pragma omp parallel for schedule(dynamic, 1)
	for (long t = 0; t < ntiles; t++) {
		size_t q0 = (size_t)t * QUERY_TILE;
		size_t qn = nq - q0 < QUERY_TILE ? nq - q0 : QUERY_TILE;
		knn_tile(base, nb, queries, q0, qn, dim, k, ids, dists);
	}
}

double exact_recall(const uint64_t *got, const uint64_t *exact_ids, const double *exact_dists,
                    size_t nq, size_t k, int tie_aware, const float *base, size_t nb,
                    const float *queries, size_t dim)
{
	size_t hits = 0;
	for (size_t q = 0; q < nq; q++) {
		for (size_t i = 0; i < k; i++) {
			uint64_t id = got[q * k + i];
			int hit = 0;
			for (size_t j = 0; j < k && !hit; j++)
				hit = exact_ids[q * k + j] == id;
			if (!hit && tie_aware && id < nb) {
				double d = exact_l2sq(queries + q * dim, base + id * dim, dim);
				hit = d <= exact_dists[q * k + k - 1];
			}
			hits += (size_t)hit;
		}
	}
	return (double)hits / (double)(nq * k);
}
