/*
 * Helpers of the HNSW benchmark (omendb-bench-gt, omendb-bench-hnsw): ground-truth files in
 * the TEXMEX .ivecs layout and recall@k, with the "self excluded" protocol used when a data
 * set's vectors are also its queries (MiniLM). Nothing here reaches into the library.
 */
#ifndef OMEN_BENCH_HNSW_UTIL_H
#define OMEN_BENCH_HNSW_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Writes nrows rows of k ids (uint64, each < 2^31) as .ivecs (per row an int32 k, then k
 * int32), through a temporary file and a rename; exits on error. */
void hu_ivecs_write(const char *path, const uint64_t *ids, size_t nrows, size_t k);

/* Reads an .ivecs file into a new array (caller frees) of *nrows x *k ids; returns NULL when
 * the file does not exist, exits when it is malformed. */
uint64_t *hu_ivecs_read(const char *path, size_t *nrows, size_t *k);

/* Normalises each of the n rows of x (n x dim) to unit length, in double; exits on a zero
 * row. Used for cosine: the order by 1 - cos equals the order by squared L2 of unit vectors. */
void hu_normalize(float *x, size_t n, size_t dim);

/* Recall@k of result rows (nq rows of kres ids each, closest first) against ground-truth rows
 * (nq rows of kgt >= k ids, closest first), as a fraction of nq * k. When exclude_self is set,
 * query q is base row q: its own id q is removed from the result row (or, when it is absent,
 * the last id is dropped) before the first k are compared, and kres must be at least k + 1;
 * the ground truth already excludes self (omendb-bench-gt --exclude-self). */
double hu_recall(const uint64_t *res, size_t kres, const uint64_t *gt, size_t kgt, size_t nq,
                 size_t k, int exclude_self);

#endif
