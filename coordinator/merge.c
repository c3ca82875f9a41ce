/*
 * The gather step of a search: each logical shard answers with its own top k per query, and
 * the coordinator merges them into the global top k, ties broken by the smaller id, so that an
 * exact search through the coordinator returns the same order as one embedded database.
 */
#include <math.h>
#include <stdlib.h>

#include "coordinator/internal.h"

typedef struct cand {
	float dist;
	uint64_t id;
} cand;

static int cand_cmp(const void *a, const void *b)
{
	const cand *x = a, *y = b;
	return result_before(x->dist, x->id, y->dist, y->id)   ? -1
	       : result_before(y->dist, y->id, x->dist, x->id) ? 1
	                                                       : 0;
}

/* The candidates of query i from every answering shard into cs; returns how many. */
static size_t gather_row(const merge_src *src, uint32_t nsrc, uint64_t i, uint32_t k, cand *cs)
{
	size_t n = 0;
	for (uint32_t s = 0; s < nsrc; s++) {
		if (!src[s].ids)
			continue;
		for (uint64_t j = 0; j < k; j++) {
			uint64_t id = src[s].ids[i * k + j];
			if (id != OMEN_NO_ID)
				cs[n++] = (cand){src[s].dists[i * k + j], id};
		}
	}
	return n;
}

int merge_topk(const merge_src *src, uint32_t nsrc, uint64_t nq, uint32_t k, uint64_t *ids,
               float *dists)
{
	cand *cs = malloc(((size_t)nsrc * k + 1) * sizeof *cs);
	if (!cs)
		return status_set(OMEN_ENOMEM, "out of memory");
	for (uint64_t i = 0; i < nq; i++) {
		size_t n = gather_row(src, nsrc, i, k, cs);
		qsort(cs, n, sizeof *cs, cand_cmp);
		for (uint64_t j = 0; j < k; j++) {
			ids[i * k + j] = j < n ? cs[j].id : OMEN_NO_ID;
			dists[i * k + j] = j < n ? cs[j].dist : INFINITY;
		}
	}
	free(cs);
	return OMEN_OK;
}
