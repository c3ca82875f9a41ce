// The GPU selection's logic (engine/gpu/select.cuh) compiled for the host and run one
// simulated thread per block: stage 1 over slices of distances with excluded rows and a
// row_min, stage 2 merging the pool with running candidates, ties, and fewer valid rows than
// kc; each result compared with a sort. This checks the radix selection where no GPU exists;
// tests/test_gpu.c checks the real kernels against the CPU on a device.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__      static
struct dim3 {
	unsigned x = 0, y = 0, z = 0;
};
static dim3 blockIdx, threadIdx, blockDim, gridDim;
#define __syncthreads() ((void)0)
static inline unsigned atomicAdd(unsigned *p, unsigned v)
{
	unsigned o = *p;
	*p += v;
	return o;
}
static inline uint32_t __float_as_uint(float f)
{
	uint32_t u;
	memcpy(&u, &f, 4);
	return u;
}
static inline float __uint_as_float(uint32_t u)
{
	float f;
	memcpy(&f, &u, 4);
	return f;
}

#include "engine/gpu/select.cuh"

static int failures;
static uint64_t rng = 88172645463325252ull;
static uint64_t next()
{
	rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
	return rng;
}

// Runs the kernel over a (queries x splits) grid, one simulated thread per block.
static void launch(const sel_src &s, unsigned nq, unsigned splits, uint32_t n, uint32_t kc,
                   uint32_t *ok, uint64_t *orow)
{
	gridDim.x = nq, gridDim.y = splits, blockDim.x = 1, threadIdx.x = 0;
	for (unsigned q = 0; q < nq; q++)
		for (unsigned sp = 0; sp < splits; sp++) {
			blockIdx.x = q, blockIdx.y = sp;
			select_kernel(s, n, kc, ok, orow);
		}
}

// One case: nq queries, nr rows of random dot products (few distinct values when ties).
static void run_case(unsigned nq, uint32_t nr, uint32_t kc, uint32_t slice, bool ties,
                     double excl_rate, uint64_t row_min, int metric)
{
	std::vector<float> dots((size_t)nq * nr), norms(nr), qn(nq, 1.0f);
	for (auto &d : dots)
		d = ties ? (float)(next() % 7) : (float)((next() >> 11) * 0x1p-53 * 2 - 1);
	for (auto &x : norms)
		x = ties ? 1.0f : (float)((next() >> 11) * 0x1p-53 * 3);
	std::vector<uint64_t> excl((nr + 63) / 64, 0);
	for (uint32_t r = 0; r < nr; r++)
		if ((next() >> 11) * 0x1p-53 < excl_rate)
			excl[r / 64] |= 1ull << (r % 64);
	unsigned splits = (nr + slice - 1) / slice;
	std::vector<uint32_t> pk((size_t)nq * splits * kc), rk((size_t)nq * kc);
	std::vector<uint64_t> pr(pk.size()), rr(rk.size());
	sel_src a = {nullptr,   nullptr,     0,       0,     nullptr, nullptr, 0,
	             0,         dots.data(), nr,      0,     slice,   nr,      norms.data(),
	             qn.data(), excl.data(), row_min, metric};
	launch(a, nq, splits, slice, kc, pk.data(), pr.data());
	sel_src m = {pk.data(), pr.data(), splits * kc, (size_t)splits * kc,
	             nullptr,   nullptr,   0,           0,
	             nullptr,   0,         0,           0,
	             0,         nullptr,   nullptr,     nullptr,
	             0,         metric};
	launch(m, nq, 1, splits * kc, kc, rk.data(), rr.data());
	for (unsigned q = 0; q < nq; q++) {
		std::vector<float> want;
		for (uint32_t r = 0; r < nr; r++) {
			if (r < row_min || (excl[r / 64] >> (r % 64) & 1))
				continue;
			float dot = dots[(size_t)q * nr + r];
			float d = metric == 0   ? std::max(qn[q] + norms[r] - 2 * dot, 0.0f)
			          : metric == 1 ? -dot
			                        : 1 - dot;
			want.push_back(d);
		}
		std::sort(want.begin(), want.end());
		want.resize(std::min<size_t>(want.size(), kc));
		std::vector<float> got;
		std::vector<uint64_t> rows;
		for (uint32_t i = 0; i < kc; i++)
			if (rr[(size_t)q * kc + i] != NONE_ROW) {
				uint64_t r = rr[(size_t)q * kc + i];
				got.push_back(float_of(rk[(size_t)q * kc + i]));
				rows.push_back(r);
				if (r < row_min || (excl[r / 64] >> (r % 64) & 1) || r >= nr)
					failures++,
					    printf("query %u: row %llu should not be a candidate\n",
					           q, (unsigned long long)r);
			}
		std::sort(got.begin(), got.end());
		std::sort(rows.begin(), rows.end());
		if (std::adjacent_find(rows.begin(), rows.end()) != rows.end())
			failures++, printf("query %u: a row appears twice\n", q);
		if (got != want) {
			failures++;
			printf("FAIL nq %u nr %u kc %u slice %u ties %d excl %.2f row_min %llu "
			       "metric %d "
			       "query %u: %zu candidates, %zu expected\n",
			       nq, nr, kc, slice, ties, excl_rate, (unsigned long long)row_min,
			       metric, q, got.size(), want.size());
			return;
		}
	}
}

int main()
{
	run_case(3, 10000, 28, 4096, false, 0.0, 0, 0);
	run_case(3, 10000, 28, 4096, false, 0.3, 0, 1);
	run_case(2, 20000, 2056, 4096, false, 0.1, 0, 2); // k = 1024
	run_case(4, 5000, 28, 1024, true, 0.0, 0, 0);     // many ties
	run_case(2, 5000, 100, 1024, true, 0.5, 1000, 1); // ties, exclusions, row_min
	run_case(2, 50, 28, 4096, false, 0.0, 0, 0);      // fewer rows than kc
	run_case(2, 3000, 28, 1024, false, 0.99, 0, 0);   // almost everything excluded
	run_case(1, 3000, 28, 1024, false, 0.0, 3000, 0); // everything below row_min
	printf("%d failures\n", failures);
	return failures ? 1 : 0;
}
