/*
 * The HNSW index's int8 option: a per-dimension scalar quantizer trained on the live vectors
 * at a build, the codes of every node, and each query's int8 form. The traversal then reads a
 * byte per dimension (asymmetric distance: the query stays in float) and the best candidates
 * are re-ranked exactly (hnsw_search.c); docs/HNSW.md, "int8 traversal".
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/hnsw.h"

/* Allocates q's three arrays for dim dimensions. */
static int quant_alloc(hnsw_quant *q, uint32_t dim)
{
	q->min = mem_alloc(dim * sizeof *q->min);
	q->step = mem_alloc(dim * sizeof *q->step);
	q->w = mem_alloc(dim * sizeof *q->w);
	return q->min && q->step && q->w ? OMEN_OK : status_set(OMEN_ENOMEM, "out of memory");
}

/* Derives the l2 weights from the steps. */
static void quant_weights(hnsw_quant *q, uint32_t dim)
{
	for (uint32_t d = 0; d < dim; d++)
		q->w[d] = q->step[d] * q->step[d];
}

int hnsw_quant_set(hnsw_quant *q, uint32_t dim, const void *min, const void *step)
{
	int st = quant_alloc(q, dim);
	if (st != OMEN_OK)
		return st;
	memcpy(q->min, min, dim * sizeof *q->min);
	memcpy(q->step, step, dim * sizeof *q->step);
	quant_weights(q, dim);
	return OMEN_OK;
}

int hnsw_quant_train(hnsw_quant *q, const snapshot *s, uint64_t n)
{
	uint32_t dim = s->c->dim;
	int st = quant_alloc(q, dim);
	float *max = st == OMEN_OK ? mem_alloc(dim * sizeof *max) : NULL;
	if (!max)
		return st == OMEN_OK ? status_set(OMEN_ENOMEM, "out of memory") : st;
	for (uint32_t d = 0; d < dim; d++) {
		q->min[d] = INFINITY;
		max[d] = -INFINITY;
	}
	for (uint64_t r = 0; r < n; r++) {
		if (snap_tomb(s, r))
			continue;
		const float *x = snap_vec(s, r);
		for (uint32_t d = 0; d < dim; d++) {
			q->min[d] = x[d] < q->min[d] ? x[d] : q->min[d];
			max[d] = x[d] > max[d] ? x[d] : max[d];
		}
	}
	for (uint32_t d = 0; d < dim; d++) {
		if (!(q->min[d] <= max[d])) /* no live rows */
			q->min[d] = max[d] = 0;
		q->step[d] = max[d] > q->min[d] ? (max[d] - q->min[d]) / 255.0f : 1.0f;
	}
	quant_weights(q, dim);
	mem_free(max);
	return OMEN_OK;
}

int hnsw_quant_encode(const hnsw_quant *q, const snapshot *s, uint64_t n, uint8_t **codes)
{
	uint32_t dim = s->c->dim;
	uint8_t *out = mem_alloc(n * dim + 1);
	if (!out)
		return status_set(OMEN_ENOMEM, "out of memory for the index codes");
	for (uint64_t r = 0; r < n; r++) {
		const float *x = snap_vec(s, r);
		uint8_t *c = out + r * dim;
		for (uint32_t d = 0; d < dim; d++) {
			float v = rintf((x[d] - q->min[d]) / q->step[d]);
			c[d] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
		}
	}
	*codes = out;
	return OMEN_OK;
}

/* For l2, |q - x|^2 ~ sum w[d] (qp[d] - code[d])^2; for dot products,
 * <q, x> ~ <q, min> + sum qp[d] code[d]. */
float hnsw_quant_query(const hnsw_quant *q, uint32_t dim, omen_metric m, const float *qv, float *qp)
{
	float konst = 0;
	for (uint32_t d = 0; d < dim; d++) {
		if (m == OMEN_METRIC_L2) {
			qp[d] = (qv[d] - q->min[d]) / q->step[d];
		} else {
			qp[d] = qv[d] * q->step[d];
			konst += qv[d] * q->min[d];
		}
	}
	return konst;
}

void hnsw_quant_free(hnsw_quant *q)
{
	mem_free(q->min);
	mem_free(q->step);
	mem_free(q->w);
	memset(q, 0, sizeof *q);
}
