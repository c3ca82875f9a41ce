/*
 * Training of the IVF index: the random rotation of RaBitQ (a Gaussian matrix orthonormalised
 * by modified Gram-Schmidt, as the paper's reference code does with a QR factorisation), and
 * the coarse quantizer's k-means: k-means++ seeding (D. Arthur and S. Vassilvitskii,
 * "k-means++: The Advantages of Careful Seeding", SODA 2007) on a subsample, then Lloyd's
 * iterations whose assignments are SGEMM distance blocks, as the flat search's batches.
 */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "engine/ivf.h"

#define ASSIGN_BLOCK 4096 /* points per SGEMM block of an assignment */

/* splitmix64: repeatable random numbers from a seed. */
static uint64_t next_u64(uint64_t *s)
{
	uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static double next_unit(uint64_t *s)
{
	return ((double)(next_u64(s) >> 11) + 0.5) * 0x1p-53;
}

void ivf_progress_add(ivf_progress *pr, uint64_t n)
{
	if (!pr)
		return;
	pr->done += n;
	if (pr->fn && pr->done >= pr->next) {
		pr->fn(pr->ctx, pr->done < pr->total ? pr->done : pr->total, pr->total);
		pr->next = pr->done + pr->total / 100 + 1;
	}
}

int ivf_rotation(uint32_t dim, uint64_t seed, float *rot)
{
	double *g = mem_alloc((size_t)dim * dim * sizeof *g);
	if (!g)
		return status_set(OMEN_ENOMEM, "out of memory for a %u x %u rotation", dim, dim);
	for (size_t i = 0; i < (size_t)dim * dim; i++) { /* Box-Muller */
		double u = next_unit(&seed), v = next_unit(&seed);
		g[i] = sqrt(-2 * log(u)) * cos(2 * M_PI * v);
	}
	for (uint32_t a = 0; a < dim; a++) {
		double *ra = g + (size_t)a * dim;
		for (uint32_t b = 0; b < a; b++) {
			const double *rb = g + (size_t)b * dim;
			double dot = 0;
			for (uint32_t d = 0; d < dim; d++)
				dot += ra[d] * rb[d];
			for (uint32_t d = 0; d < dim; d++)
				ra[d] -= dot * rb[d];
		}
		double n2 = 0;
		for (uint32_t d = 0; d < dim; d++)
			n2 += ra[d] * ra[d];
		double inv = 1 / sqrt(n2);
		for (uint32_t d = 0; d < dim; d++)
			ra[d] *= inv;
	}
	for (size_t i = 0; i < (size_t)dim * dim; i++)
		rot[i] = (float)g[i];
	mem_free(g);
	return OMEN_OK;
}

/* Squared norms of the k rows of c. */
static void row_norms(const float *c, uint32_t k, uint32_t dim, float *out)
{
	const dist_kernels *dk = dist_best();
	for (uint32_t j = 0; j < k; j++)
		out[j] = dk->dot(c + (size_t)j * dim, c + (size_t)j * dim, dim);
}

/* For the points x[0..n), the nearest of the k centroids c (norms cn) by SGEMM: lists[i],
 * and its squared distance dists[i] (may be NULL). For ip, the largest inner product. buf
 * holds ASSIGN_BLOCK x k floats. */
static void assign_block(const float *x, size_t n, uint32_t dim, const float *c, const float *cn,
                         uint32_t k, omen_metric metric, float *buf, uint32_t *lists, float *dists)
{
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)k, (int)dim, 1.0f, x,
	            (int)dim, c, (int)dim, 0.0f, buf, (int)k);
	for (size_t i = 0; i < n; i++) {
		const float *row = buf + i * k;
		uint32_t best = 0;
		float bd = INFINITY;
		for (uint32_t j = 0; j < k; j++) {
			float d = metric == OMEN_METRIC_IP ? -row[j] : cn[j] - 2 * row[j];
			if (d < bd) {
				bd = d;
				best = j;
			}
		}
		lists[i] = best;
		if (dists) /* |x|^2 added back: the true squared distance, up to rounding */
			dists[i] = bd;
	}
}

/* assign over all of x in blocks, threads taking blocks. */
static int assign_all(const float *x, size_t n, uint32_t dim, const float *c, uint32_t k,
                      omen_metric metric, int threads, uint32_t *lists, float *dists)
{
	float *cn = mem_alloc((size_t)k * sizeof *cn);
	if (!cn)
		return status_set(OMEN_ENOMEM, "out of memory");
	row_norms(c, k, dim, cn);
	int failed = 0;
#pragma omp parallel num_threads(threads) reduction(| : failed)
	{
		omp_set_num_threads(1); /* one thread's SGEMM each, even in a team of one */
		float *buf = mem_alloc((size_t)ASSIGN_BLOCK * k * sizeof *buf);
		failed = !buf;
#pragma omp for schedule(dynamic, 1)
		for (size_t b = 0; b < n; b += ASSIGN_BLOCK)
			if (buf)
				assign_block(
				    x + b * dim, n - b < ASSIGN_BLOCK ? n - b : ASSIGN_BLOCK, dim,
				    c, cn, k, metric, buf, lists + b, dists ? dists + b : NULL);
		mem_free(buf);
	}
	mem_free(cn);
	return failed ? status_set(OMEN_ENOMEM, "out of memory") : OMEN_OK;
}

int ivf_assign(const float *x, size_t n, uint32_t dim, const float *centroids, uint32_t k,
               omen_metric metric, int threads, uint32_t *lists)
{
	return assign_all(x, n, dim, centroids, k, metric, threads, lists, NULL);
}

/* k-means++ seeding over the m points x: each next centroid drawn with probability
 * proportional to its squared distance to the nearest one chosen so far. d2 holds m floats. */
static void seed_plusplus(const float *x, size_t m, uint32_t dim, uint32_t k, uint64_t *rng,
                          float *c, float *d2)
{
	const dist_kernels *dk = dist_best();
	size_t first = next_u64(rng) % m;
	memcpy(c, x + first * dim, dim * sizeof *c);
	for (size_t i = 0; i < m; i++)
		d2[i] = INFINITY;
	for (uint32_t j = 1; j <= k; j++) {
		const float *last = c + (size_t)(j - 1) * dim;
		double total = 0;
#pragma omp parallel for reduction(+ : total) schedule(static)
		for (size_t i = 0; i < m; i++) {
			float d = dk->l2sq(last, x + i * dim, dim);
			d2[i] = d < d2[i] ? d : d2[i];
			total += d2[i];
		}
		if (j == k)
			break;
		double pick = next_unit(rng) * total, acc = 0;
		size_t i = 0;
		for (; i + 1 < m && (acc += d2[i]) < pick; i++)
			;
		memcpy(c + (size_t)j * dim, x + i * dim, dim * sizeof *c);
	}
}

/* Moves each empty centroid next to a point of the largest cluster, slightly apart, so that
 * the next iteration splits it (as FAISS does). */
static void fix_empty(float *c, uint32_t k, uint32_t dim, uint64_t *count, uint64_t *rng)
{
	for (uint32_t j = 0; j < k; j++) {
		if (count[j])
			continue;
		uint32_t big = 0;
		for (uint32_t i = 1; i < k; i++)
			big = count[i] > count[big] ? i : big;
		for (uint32_t d = 0; d < dim; d++) {
			float e = (float)(next_unit(rng) - 0.5) * 1e-3f;
			c[(size_t)j * dim + d] = c[(size_t)big * dim + d] * (1 + e);
			c[(size_t)big * dim + d] *= 1 - e;
		}
		count[j] = count[big] / 2;
		count[big] -= count[j];
	}
}

int ivf_kmeans(const float *x, size_t n, uint32_t dim, uint32_t k, uint64_t seed, int threads,
               float *centroids, ivf_progress *pr)
{
	size_t m = n < (size_t)k * IVF_SEED_PER_LIST ? n : (size_t)k * IVF_SEED_PER_LIST;
	uint32_t *lists = mem_alloc(n * sizeof *lists);
	float *d2 = mem_alloc((n > m ? n : m) * sizeof *d2);
	double *sum = mem_alloc((size_t)k * dim * sizeof *sum);
	uint64_t *count = mem_alloc((size_t)k * sizeof *count);
	int st = lists && d2 && sum && count ? OMEN_OK : status_set(OMEN_ENOMEM, "out of memory");
	if (st == OMEN_OK) /* the sample is in random order: its first m points are a subsample */
		seed_plusplus(x, m, dim, k, &seed, centroids, d2);
	for (int it = 0; st == OMEN_OK && it < IVF_KMEANS_ITERS; it++) {
		st = assign_all(x, n, dim, centroids, k, OMEN_METRIC_L2, threads, lists, NULL);
		if (st != OMEN_OK)
			break;
		memset(sum, 0, (size_t)k * dim * sizeof *sum);
		memset(count, 0, (size_t)k * sizeof *count);
		for (size_t i = 0; i < n; i++) {
			double *s = sum + (size_t)lists[i] * dim;
			for (uint32_t d = 0; d < dim; d++)
				s[d] += x[i * dim + d];
			count[lists[i]]++;
		}
		for (uint32_t j = 0; j < k; j++)
			for (uint32_t d = 0; count[j] && d < dim; d++)
				centroids[(size_t)j * dim + d] =
				    (float)(sum[(size_t)j * dim + d] / (double)count[j]);
		fix_empty(centroids, k, dim, count, &seed);
		ivf_progress_add(pr, n);
	}
	mem_free(lists);
	mem_free(d2);
	mem_free(sum);
	mem_free(count);
	return st;
}
