/*
 * The device side of the GPU selection (included by engine/gpu/gpu.cu): order-preserving keys
 * of float distances, the sources a selection reads, and the radix-select kernel. Kept apart
 * so that the selection's logic can also be compiled for the host and checked without a GPU.
 */
#ifndef OMEN_GPU_SELECT_CUH
#define OMEN_GPU_SELECT_CUH

#define NONE_KEY 0xFFFFFFFFu /* excluded or padding: never selected */
#define NONE_ROW UINT64_MAX


__device__ __forceinline__ uint32_t key_of(float f)
{
	uint32_t u = __float_as_uint(f);
	return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

__device__ __forceinline__ float float_of(uint32_t k)
{
	uint32_t u = (k & 0x80000000u) ? (k & 0x7FFFFFFFu) : ~k;
	return __uint_as_float(u);
}

/* Where a selection reads its elements for one query: two lists of earlier candidates (keys
 * and rows), then a slice of SGEMM dot products turned into distances. */
struct sel_src {
	const uint32_t *akeys; /* list A: akeys/arows, na per query, astride between queries */
	const uint64_t *arows;
	uint32_t na;
	size_t astride;
	const uint32_t *bkeys; /* list B, after A */
	const uint64_t *brows;
	uint32_t nb;
	size_t bstride;
	const float *dots;  /* tile of dot products, query q's row at dots + q * ld */
	size_t ld;
	uint64_t r0;        /* row of dots[.][0] */
	uint32_t nslice;    /* dot products per stage-1 block (0: no dots) */
	uint32_t ndots;     /* dot products per query in this tile */
	const float *norms; /* device squared norms of all rows */
	const float *qnorm; /* per query of the tile */
	const uint64_t *excluded;
	uint64_t row_min;
	int metric;
};

/* Element i of the block's input: its key and row (NONE_KEY when not a candidate). */
__device__ __forceinline__ uint32_t element(const sel_src &s, int q, int split, uint32_t i,
                                            uint64_t *row)
{
	if (i < s.na) {
		size_t at = (size_t)q * s.astride + i;
		*row = s.arows[at];
		return s.akeys[at];
	}
	if (i < s.na + s.nb) {
		size_t at = (size_t)q * s.bstride + (i - s.na);
		*row = s.brows[at];
		return s.bkeys[at];
	}
	uint32_t j = split * s.nslice + (i - s.na - s.nb);
	uint64_t r = s.r0 + j;
	*row = r;
	if (j >= s.ndots || r < s.row_min ||
	    (s.excluded && (s.excluded[r >> 6] >> (r & 63) & 1)))
		return NONE_KEY;
	float dot = s.dots[(size_t)q * s.ld + j], d;
	if (s.metric == 0) {
		d = s.qnorm[q] + s.norms[r] - 2.0f * dot;
		d = d > 0.0f ? d : 0.0f;
	} else {
		d = s.metric == 1 ? -dot : 1.0f - dot;
	}
	uint32_t k = key_of(d);
	return k == NONE_KEY ? NONE_KEY - 1 : k;
}

/* Selects the kc smallest keys among n elements of (query blockIdx.x, split blockIdx.y) into
 * out (kc keys and rows per (query, split), padded with NONE). */
__global__ void select_kernel(sel_src s, uint32_t n, uint32_t kc, uint32_t *okeys,
                              uint64_t *orows)
{
	__shared__ uint32_t hist[256];
	__shared__ uint32_t prefix, mask, remaining, total, nless, neq;
	int q = blockIdx.x, split = blockIdx.y;
	size_t out = ((size_t)q * gridDim.y + split) * kc;
	if (threadIdx.x == 0) {
		prefix = 0, mask = 0, remaining = kc, total = 0, nless = 0, neq = 0;
	}
	for (int shift = 24; shift >= 0; shift -= 8) {
		for (int b = threadIdx.x; b < 256; b += blockDim.x)
			hist[b] = 0;
		__syncthreads();
		for (uint32_t i = threadIdx.x; i < n; i += blockDim.x) {
			uint64_t row;
			uint32_t k = element(s, q, split, i, &row);
			if (k != NONE_KEY && (k & mask) == prefix)
				atomicAdd(&hist[(k >> shift) & 255], 1u);
		}
		__syncthreads();
		if (threadIdx.x == 0) {
			uint32_t cum = 0, b = 0;
			if (shift == 24) {
				for (int i = 0; i < 256; i++)
					total += hist[i];
				if (total <= kc) /* everything valid is a candidate */
					remaining = 0;
			}
			if (remaining > 0) {
				while (b < 255 && cum + hist[b] < remaining)
					cum += hist[b++];
				remaining -= cum;
				prefix |= b << shift;
				mask |= 255u << shift;
			}
		}
		__syncthreads();
		if (remaining == 0)
			break;
	}
	/* Collect: keys below the threshold (all of them), then `remaining` keys equal to it. When
	 * total <= kc the threshold is NONE_KEY and every valid key is below it. */
	uint32_t thr = remaining == 0 && total <= kc ? NONE_KEY : prefix;
	uint32_t below = total <= kc ? total : kc - remaining;
	for (uint32_t i = threadIdx.x; i < n; i += blockDim.x) {
		uint64_t row;
		uint32_t k = element(s, q, split, i, &row);
		if (k == NONE_KEY)
			continue;
		if (k < thr) {
			uint32_t at = atomicAdd(&nless, 1u);
			okeys[out + at] = k, orows[out + at] = row;
		} else if (k == thr && thr != NONE_KEY) {
			uint32_t at = atomicAdd(&neq, 1u);
			if (at < remaining)
				okeys[out + below + at] = k, orows[out + below + at] = row;
		}
	}
	__syncthreads();
	uint32_t filled = total <= kc ? total : kc;
	for (uint32_t i = filled + threadIdx.x; i < kc; i += blockDim.x)
		okeys[out + i] = NONE_KEY, orows[out + i] = NONE_ROW;
}

#endif
