/*
 * STREAM-like read kernel (see stream.h). The loop uses GCC vector types, compiled once per
 * instruction set (AVX-512F, AVX2, baseline) and chosen at load time, so the bandwidth figure
 * does not depend on the build's -march.
 */
#include "stream.h"

#include <omp.h>
#include <string.h>

typedef float v16f __attribute__((vector_size(64)));

__attribute__((target_clones("avx512f", "avx2", "default"))) static double sum_part(const float *p,
                                                                                    size_t n)
{
	v16f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0};
	size_t i = 0;
	double s = 0.0;

	for (; i + 64 <= n; i += 64) {
		v16f x0, x1, x2, x3;
		memcpy(&x0, p + i, 64);
		memcpy(&x1, p + i + 16, 64);
		memcpy(&x2, p + i + 32, 64);
		memcpy(&x3, p + i + 48, 64);
		a0 += x0;
		a1 += x1;
		a2 += x2;
		a3 += x3;
	}
	a0 += a1 + a2 + a3;
	for (int j = 0; j < 16; j++)
		s += a0[j];
	for (; i < n; i++)
		s += p[i];
	return s;
}

double stream_sum(const float *p, size_t n, int threads)
{
	double total = 0.0;
#pragma omp parallel num_threads(threads) reduction(+ : total)
	{
		size_t nt = (size_t)omp_get_num_threads(), t = (size_t)omp_get_thread_num();
		/* Contiguous slices, each a multiple of 64 floats (one 256-byte step). */
		size_t per = (n / nt) & ~(size_t)63;
		size_t lo = t * per, hi = t + 1 == nt ? n : lo + per;
		total += sum_part(p + lo, hi - lo);
	}
	return total;
}
