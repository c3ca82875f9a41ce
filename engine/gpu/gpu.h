/*
 * The GPU path of exact search (CUDA): a collection's rows resident on the device, distances of
 * a query batch by cuBLAS SGEMM (dot products plus stored squared norms), and the best kc
 * candidates of each query selected on the device. The engine re-ranks those candidates with
 * its exact CPU kernels and certifies them with the same float error bound as its own SGEMM
 * path (engine/flat.c), so a search answers exactly what the CPU answers.
 *
 * Plain C types only: engine/gpu/gpu.cu is compiled by nvcc as C++ and includes nothing else
 * of the engine. Builds without CUDA compile engine/gpu/gpu_none.c instead, whose gpu_init
 * reports that the build has no GPU support.
 */
#ifndef OMEN_GPU_H
#define OMEN_GPU_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define GPU_MAX_K 1024 /* largest k the GPU path serves (kc = 2k + 8 candidates) */

/* Checks once for a usable device (compute capability 9.0 or newer). Returns 0 and writes the
 * device's name into name, or -1 and the reason (no CUDA in this build, no device, no
 * driver...). Thread-safe. */
int gpu_init(char *name, size_t len);

/* The device-resident copy of one collection's rows (vectors and squared norms). Rows are
 * append-only in the engine, so keeping it current means uploading the rows added since. */
typedef struct gpu_coll gpu_coll;

gpu_coll *gpu_coll_new(uint32_t dim);
void gpu_coll_free(gpu_coll *g);

/* Rows resident so far. */
uint64_t gpu_coll_rows(const gpu_coll *g);

/* Makes rows [first, first + n) resident from host arrays (n x dim vectors, n norms), growing
 * the device buffers as needed; first must be at most gpu_coll_rows(). 0, or -1 with a reason
 * in err. */
int gpu_coll_upload(gpu_coll *g, uint64_t first, const float *vecs, const float *norms, uint64_t n,
                    char *err, size_t errlen);

/* One batch search over the first `rows` resident rows. */
typedef struct gpu_search {
	const float *queries; /* nq x dim, host; unit length for cosine */
	const float *qnorm;   /* nq squared norms, host */
	size_t nq;
	int metric;               /* 0 l2 (squared), 1 ip (negative), 2 cosine (1 - dot) */
	uint64_t rows;            /* rows searched (<= resident rows) */
	uint64_t row_min;         /* rows below are skipped */
	const uint64_t *excluded; /* NULL, or a bitmap of rows (rows/64 words) never returned */
	uint32_t kc;              /* candidates per query, <= 2 * GPU_MAX_K + 8 */
	int tf32;                 /* nonzero: tensor-core TF32 SGEMM (larger error bound) */
	uint64_t *out_rows;       /* nq x kc, host: candidate rows, UINT64_MAX for none */
	float *out_dists;         /* nq x kc, host: their SGEMM distances (INFINITY for none) */
} gpu_search;

/* Runs the search; candidates come out in no particular order. 0, or -1 with a reason. One
 * search at a time per device (serialised inside). */
int gpu_coll_search(gpu_coll *g, const gpu_search *s, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif
#endif
