/*
 * Independent exact k-nearest-neighbour search for checking the engine: plain loops, squared
 * L2 accumulated in double, nothing shared with the library's kernels. It is slow on purpose
 * only in the sense that it trusts nothing clever; queries are tiled so that base rows are
 * reused from cache, and OpenMP spreads query tiles over threads.
 */
#ifndef OMEN_BENCH_EXACT_H
#define OMEN_BENCH_EXACT_H

#include <stddef.h>
#include <stdint.h>

/* Squared L2 distance of a and b, computed in double. */
double exact_l2sq(const float *a, const float *b, size_t dim);

/* For each of the nq queries (nq x dim), the k nearest of the nb base rows (nb x dim) by
 * squared L2, closest first, ties by smaller row number: ids (nq x k) receive row numbers,
 * dists (nq x k) the distances. Requires k <= nb. */
void exact_knn(const float *base, size_t nb, const float *queries, size_t nq, size_t dim, size_t k,
               uint64_t *ids, double *dists);

/* Recall of got (nq x k engine ids) against exact ids (nq x k), as a fraction of nq * k.
 * When tie_aware is set, a returned id also counts if its exact distance to the query is no
 * more than the k-th exact distance (so equal-distance neighbours are not held against it);
 * base and queries are then needed, otherwise they may be NULL. */
double exact_recall(const uint64_t *got, const uint64_t *exact_ids, const double *exact_dists,
                    size_t nq, size_t k, int tie_aware, const float *base, size_t nb,
                    const float *queries, size_t dim);

#endif
