/*
 * Exact batch search on an NVIDIA GPU (engine/gpu/gpu.h). For a tile of queries and a block
 * of rows, cuBLAS SGEMM computes the dot products, and a selection kernel turns them into
 * distances (with the stored squared norms), drops excluded rows, and keeps the kc smallest
 * per query by radix selection on the distances' order-preserving 32-bit keys: four histogram
 * passes find the kc-th smallest key, a fifth collects everything below it and enough of the
 * ties. Each row block is split over many thread blocks (stage 1), whose candidates are merged
 * with the running candidates of earlier row blocks (stage 2), so that one query also keeps
 * every SM busy.
 */
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <dlfcn.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/gpu/gpu.h"

#define SEL_THREADS 256
#define TILE_BYTES  (64ull << 20) /* SGEMM output per tile */
#define SLICE_MIN   4096          /* rows per stage-1 block, at least */

static pthread_mutex_t dev_mu = PTHREAD_MUTEX_INITIALIZER; /* one search at a time */
static int dev_state;                                      /* 0 unknown, 1 ready, -1 unusable */
static char dev_name[256];
static int dev_sms;
static cublasHandle_t blas;

/* cuBLAS is loaded when a device is first used, not linked: its libraries take tens of
 * milliseconds to load, which every program using OmenDB would otherwise pay at start-up.
 * (cudart is linked statically; it loads the driver itself, lazily.) */
#define STR_(x) #x
#define STR(x)  STR_(x)
static cublasStatus_t (*p_create)(cublasHandle_t *);
static cublasStatus_t (*p_sgemm)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int,
                                 int, const float *, const float *, int, const float *, int,
                                 const float *, float *, int);
static cublasStatus_t (*p_math)(cublasHandle_t, cublasMath_t);

static int load_cublas(char *why, size_t len)
{
	static const char *names[] = {"libcublas.so." STR(CUBLAS_VER_MAJOR),
#ifdef OMEN_CUDA_LIBDIR
	                              OMEN_CUDA_LIBDIR "/libcublas.so." STR(CUBLAS_VER_MAJOR),
#endif
	                              NULL};
	void *h = NULL;
	for (int i = 0; !h && names[i]; i++)
		h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
	if (h) {
		p_create = (cublasStatus_t(*)(cublasHandle_t *))dlsym(h, "cublasCreate_v2");
		p_sgemm = (decltype(p_sgemm))dlsym(h, "cublasSgemm_v2");
		p_math = (decltype(p_math))dlsym(h, "cublasSetMathMode");
	}
	if (!h || !p_create || !p_sgemm || !p_math) {
		snprintf(why, len, "cuBLAS %d not found (%s)", CUBLAS_VER_MAJOR,
		         h ? "missing symbols" : dlerror());
		return -1;
	}
	return 0;
}

struct gpu_coll {
	uint32_t dim;
	uint64_t rows, cap;
	float *vecs;  /* cap x dim, device */
	float *norms; /* cap, device */
};

#include "engine/gpu/select.cuh"

__global__ void keys_to_dists(const uint32_t *keys, float *dists, size_t n)
{
	size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
	if (i < n)
		dists[i] = keys[i] == NONE_KEY ? INFINITY : float_of(keys[i]);
}

/* ---- host code ---- */

static int fail(char *err, size_t len, const char *what, cudaError_t e)
{
	snprintf(err, len, "%s: %s", what, cudaGetErrorString(e));
	return -1;
}

extern "C" int gpu_init(char *name, size_t len)
{
	pthread_mutex_lock(&dev_mu);
	if (dev_state == 0) {
		int n = 0;
		cudaDeviceProp p;
		cudaError_t e = cudaGetDeviceCount(&n);
		if (e != cudaSuccess || n == 0) {
			snprintf(dev_name, sizeof dev_name, "no CUDA device (%s)",
			         e != cudaSuccess ? cudaGetErrorString(e) : "none found");
			dev_state = -1;
		} else if ((e = cudaGetDeviceProperties(&p, 0)) != cudaSuccess || p.major < 9) {
			snprintf(dev_name, sizeof dev_name, "device 0 unusable (%s)",
			         e != cudaSuccess ? cudaGetErrorString(e)
			                          : "compute capability below 9.0");
			dev_state = -1;
		} else if (load_cublas(dev_name, sizeof dev_name) != 0) {
			dev_state = -1;
		} else if (p_create(&blas) != CUBLAS_STATUS_SUCCESS) {
			snprintf(dev_name, sizeof dev_name, "cuBLAS could not start");
			dev_state = -1;
		} else {
			snprintf(dev_name, sizeof dev_name, "%s", p.name);
			dev_sms = p.multiProcessorCount;
			dev_state = 1;
		}
	}
	int st = dev_state;
	snprintf(name, len, "%s", dev_name);
	pthread_mutex_unlock(&dev_mu);
	return st == 1 ? 0 : -1;
}

extern "C" gpu_coll *gpu_coll_new(uint32_t dim)
{
	gpu_coll *g = (gpu_coll *)calloc(1, sizeof *g);
	if (g)
		g->dim = dim;
	return g;
}

extern "C" void gpu_coll_free(gpu_coll *g)
{
	if (!g)
		return;
	cudaFree(g->vecs);
	cudaFree(g->norms);
	free(g);
}

extern "C" uint64_t gpu_coll_rows(const gpu_coll *g)
{
	return g ? g->rows : 0;
}

/* Grows the device buffers to hold at least `need` rows, keeping the resident ones. */
static int grow(gpu_coll *g, uint64_t need, char *err, size_t len)
{
	if (need <= g->cap)
		return 0;
	uint64_t cap = g->cap ? g->cap : 65536;
	while (cap < need)
		cap *= 2;
	float *v = NULL, *n = NULL;
	cudaError_t e = cudaMalloc(&v, cap * g->dim * sizeof(float));
	if (e == cudaSuccess)
		e = cudaMalloc(&n, cap * sizeof(float));
	if (e == cudaSuccess && g->rows)
		e = cudaMemcpy(v, g->vecs, g->rows * g->dim * sizeof(float),
		               cudaMemcpyDeviceToDevice);
	if (e == cudaSuccess && g->rows)
		e = cudaMemcpy(n, g->norms, g->rows * sizeof(float), cudaMemcpyDeviceToDevice);
	if (e != cudaSuccess) {
		cudaFree(v);
		cudaFree(n);
		return fail(err, len, "growing the device copy", e);
	}
	cudaFree(g->vecs);
	cudaFree(g->norms);
	g->vecs = v, g->norms = n, g->cap = cap;
	return 0;
}

extern "C" int gpu_coll_upload(gpu_coll *g, uint64_t first, const float *vecs, const float *norms,
                               uint64_t n, char *err, size_t len)
{
	if (first > g->rows) {
		snprintf(err, len, "upload at row %llu leaves a gap after row %llu",
		         (unsigned long long)first, (unsigned long long)g->rows);
		return -1;
	}
	pthread_mutex_lock(&dev_mu);
	int st = grow(g, first + n, err, len);
	cudaError_t e = cudaSuccess;
	if (st == 0)
		e = cudaMemcpy(g->vecs + first * g->dim, vecs, n * g->dim * sizeof(float),
		               cudaMemcpyHostToDevice);
	if (st == 0 && e == cudaSuccess)
		e = cudaMemcpy(g->norms + first, norms, n * sizeof(float), cudaMemcpyHostToDevice);
	if (st == 0 && e != cudaSuccess)
		st = fail(err, len, "uploading rows", e);
	if (st == 0 && first + n > g->rows)
		g->rows = first + n;
	pthread_mutex_unlock(&dev_mu);
	return st;
}

/* Device buffers of one search. */
struct sbuf {
	float *q, *qn, *dots;
	uint64_t *excl;
	uint32_t *k1, *k2, *k3; /* stage-1 pool, running candidates (two, swapped) */
	uint64_t *r1, *r2, *r3;
	float *d;
};

static void sbuf_free(sbuf *b)
{
	cudaFree(b->q), cudaFree(b->qn), cudaFree(b->dots), cudaFree(b->excl);
	cudaFree(b->k1), cudaFree(b->k2), cudaFree(b->k3);
	cudaFree(b->r1), cudaFree(b->r2), cudaFree(b->r3), cudaFree(b->d);
}

/* Tile shape: qt queries by rb rows, and the stage-1 splits of each row block. */
struct tiling {
	size_t qt;
	uint64_t rb;
	uint32_t splits, slice;
};

static tiling plan(const gpu_search *s)
{
	tiling t;
	t.qt = s->nq < 1024 ? s->nq : 1024;
	uint64_t rb = TILE_BYTES / (t.qt * sizeof(float));
	t.rb = rb < s->rows ? rb : s->rows;
	if (t.rb == 0)
		t.rb = 1;
	uint64_t want = (2 * (uint64_t)dev_sms + t.qt - 1) / t.qt; /* blocks to fill the SMs */
	uint64_t most = (t.rb + SLICE_MIN - 1) / SLICE_MIN;
	t.splits = (uint32_t)(want < most ? want : most);
	if (t.splits == 0)
		t.splits = 1;
	t.slice = (uint32_t)((t.rb + t.splits - 1) / t.splits);
	return t;
}

static cudaError_t sbuf_alloc(sbuf *b, const gpu_search *s, const tiling *t, uint32_t dim)
{
	size_t kc = s->kc, pool = t->qt * t->splits * kc;
	cudaError_t e = cudaMalloc(&b->q, s->nq * dim * sizeof(float));
	if (e == cudaSuccess)
		e = cudaMalloc(&b->qn, s->nq * sizeof(float));
	if (e == cudaSuccess)
		e = cudaMalloc(&b->dots, t->qt * t->rb * sizeof(float));
	if (e == cudaSuccess && s->excluded)
		e = cudaMalloc(&b->excl, ((s->rows + 63) / 64) * sizeof(uint64_t));
	if (e == cudaSuccess)
		e = cudaMalloc(&b->k1, pool * sizeof(uint32_t));
	if (e == cudaSuccess)
		e = cudaMalloc(&b->r1, pool * sizeof(uint64_t));
	if (e == cudaSuccess)
		e = cudaMalloc(&b->k2, s->nq * kc * sizeof(uint32_t));
	if (e == cudaSuccess)
		e = cudaMalloc(&b->r2, s->nq * kc * sizeof(uint64_t));
	if (e == cudaSuccess)
		e = cudaMalloc(&b->k3, t->qt * kc * sizeof(uint32_t));
	if (e == cudaSuccess)
		e = cudaMalloc(&b->r3, t->qt * kc * sizeof(uint64_t));
	if (e == cudaSuccess)
		e = cudaMalloc(&b->d, s->nq * kc * sizeof(float));
	return e;
}

/* One query tile [q0, q0 + qn): every row block through SGEMM and stage 1 (into the pool
 * k1/r1), then stage 2 merging the pool with the running candidates (ping-pong between the
 * batch's rows of k2/r2 and the tile's k3/r3); the result ends in k2/r2. */
static cudaError_t run_tile(gpu_coll *g, const gpu_search *s, const tiling *t, sbuf *b, size_t q0,
                            size_t qn)
{
	const float one = 1.0f, zero = 0.0f;
	uint32_t kc = s->kc, nrun = 0;
	uint32_t *rk = b->k2 + q0 * kc, *wk = b->k3;
	uint64_t *rr = b->r2 + q0 * kc, *wr = b->r3;
	for (uint64_t r0 = 0; r0 < s->rows; r0 += t->rb) {
		uint64_t nr = s->rows - r0 < t->rb ? s->rows - r0 : t->rb;
		if (r0 + nr <= s->row_min)
			continue;
		if (p_sgemm(blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)nr, (int)qn, (int)g->dim, &one,
		            g->vecs + r0 * g->dim, (int)g->dim, b->q + q0 * g->dim, (int)g->dim,
		            &zero, b->dots, (int)nr) != CUBLAS_STATUS_SUCCESS)
			return cudaErrorUnknown;
		uint32_t splits = (uint32_t)((nr + t->slice - 1) / t->slice);
		sel_src a = {
		    NULL,       NULL,    0,          0,        NULL,     NULL,         0,
		    0,          b->dots, nr,         r0,       t->slice, (uint32_t)nr, g->norms,
		    b->qn + q0, b->excl, s->row_min, s->metric};
		select_kernel<<<dim3((unsigned)qn, splits), SEL_THREADS>>>(a, t->slice, kc, b->k1,
		                                                           b->r1);
		sel_src m = {b->k1, b->r1,    splits * kc, (size_t)splits * kc,
		             rk,    rr,       nrun,        kc,
		             NULL,  0,        0,           0,
		             0,     NULL,     NULL,        NULL,
		             0,     s->metric};
		select_kernel<<<dim3((unsigned)qn, 1), SEL_THREADS>>>(m, m.na + m.nb, kc, wk, wr);
		uint32_t *tk = rk;
		uint64_t *tr = rr;
		rk = wk, rr = wr, wk = tk, wr = tr;
		nrun = kc;
	}
	cudaError_t e = cudaGetLastError();
	if (e == cudaSuccess && nrun && rk != b->k2 + q0 * kc) { /* the result is in k3/r3 */
		e = cudaMemcpy(b->k2 + q0 * kc, rk, qn * kc * sizeof(uint32_t),
		               cudaMemcpyDeviceToDevice);
		if (e == cudaSuccess)
			e = cudaMemcpy(b->r2 + q0 * kc, rr, qn * kc * sizeof(uint64_t),
			               cudaMemcpyDeviceToDevice);
	}
	if (e == cudaSuccess && !nrun) { /* every row below row_min: no candidates */
		e = cudaMemset(b->k2 + q0 * kc, 0xFF, qn * kc * sizeof(uint32_t));
		if (e == cudaSuccess)
			e = cudaMemset(b->r2 + q0 * kc, 0xFF, qn * kc * sizeof(uint64_t));
	}
	return e;
}

static cudaError_t search_all(gpu_coll *g, const gpu_search *s, sbuf *b)
{
	tiling t = plan(s);
	cudaError_t e = sbuf_alloc(b, s, &t, g->dim);
	if (e == cudaSuccess)
		e = cudaMemcpy(b->q, s->queries, s->nq * g->dim * sizeof(float),
		               cudaMemcpyHostToDevice);
	if (e == cudaSuccess)
		e = cudaMemcpy(b->qn, s->qnorm, s->nq * sizeof(float), cudaMemcpyHostToDevice);
	if (e == cudaSuccess && s->excluded)
		e = cudaMemcpy(b->excl, s->excluded, ((s->rows + 63) / 64) * sizeof(uint64_t),
		               cudaMemcpyHostToDevice);
	for (size_t q0 = 0; e == cudaSuccess && q0 < s->nq; q0 += t.qt)
		e = run_tile(g, s, &t, b, q0, s->nq - q0 < t.qt ? s->nq - q0 : t.qt);
	size_t n = s->nq * s->kc;
	if (e == cudaSuccess) {
		keys_to_dists<<<(unsigned)((n + 255) / 256), 256>>>(b->k2, b->d, n);
		e = cudaGetLastError();
	}
	if (e == cudaSuccess)
		e = cudaMemcpy(s->out_dists, b->d, n * sizeof(float), cudaMemcpyDeviceToHost);
	if (e == cudaSuccess)
		e = cudaMemcpy(s->out_rows, b->r2, n * sizeof(uint64_t), cudaMemcpyDeviceToHost);
	return e;
}

extern "C" int gpu_coll_search(gpu_coll *g, const gpu_search *s, char *err, size_t len)
{
	if (s->rows > g->rows || s->kc == 0 || s->kc > 2 * GPU_MAX_K + 8 || s->nq == 0) {
		snprintf(err, len, "bad GPU search: %llu rows of %llu resident, kc %u, %zu queries",
		         (unsigned long long)s->rows, (unsigned long long)g->rows, s->kc, s->nq);
		return -1;
	}
	pthread_mutex_lock(&dev_mu);
	p_math(blas, s->tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH);
	sbuf b;
	memset(&b, 0, sizeof b);
	cudaError_t e = s->rows ? search_all(g, s, &b) : cudaSuccess;
	if (!s->rows) /* nothing resident: no candidates */
		for (size_t i = 0; i < s->nq * s->kc; i++)
			s->out_rows[i] = NONE_ROW, s->out_dists[i] = INFINITY;
	sbuf_free(&b);
	pthread_mutex_unlock(&dev_mu);
	return e == cudaSuccess ? 0 : fail(err, len, "GPU search", e);
}
