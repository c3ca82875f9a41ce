/*
 * What an HNSW search works in: heaps of (distance, node), and the per-thread scratch that
 * holds them with the visited bitmap, pooled on the collection handle so that a query
 * allocates nothing once the pool's arrays are large enough. The per-neighbour operations
 * (visit, heap_push, ...) are static inline in hnsw.h; this file holds the rest.
 */
#include <stdlib.h>
#include <string.h>

#include "engine/hnsw.h"

bool hnsw_heap_reserve(heap *h, size_t n)
{
	if (h->cap >= n)
		return true;
	size_t cap = h->cap ? 2 * h->cap : 64;
	if (cap < n)
		cap = n;
	hitem *a = mem_realloc(h->a, cap * sizeof *a);
	if (!a)
		return false;
	h->a = a;
	h->cap = cap;
	return true;
}

/* A buffer p of *cap elements of size bytes, replaced (contents dropped) when under n. */
static void *scratch_buf(void *p, size_t *cap, size_t n, size_t size)
{
	if (*cap >= n)
		return p;
	mem_free(p);
	p = mem_alloc(n * size);
	*cap = p ? n : 0;
	return p;
}

bool hnsw_scratch_qbuf(hnsw_scratch *x, size_t dim)
{
	x->qbuf = scratch_buf(x->qbuf, &x->qbufcap, dim, sizeof *x->qbuf);
	return x->qbuf != NULL;
}

bool hnsw_scratch_sel(hnsw_scratch *x, size_t n)
{
	x->sel = scratch_buf(x->sel, &x->selcap, n, sizeof *x->sel);
	return x->sel != NULL;
}

void hnsw_scratch_free(hnsw_scratch *x)
{
	if (!x)
		return;
	mem_free(x->visited);
	mem_free(x->touched);
	mem_free(x->cand.a);
	mem_free(x->top.a);
	mem_free(x->sel);
	mem_free(x->qbuf);
	mem_free(x);
}

/* The words a search set are cleared one by one, or all at once when it set many. One bit per
 * node keeps the marks of a million nodes in 125 KB, which stay in the core's L2 cache (2 bytes
 * per node spilled to memory). */
bool hnsw_scratch_begin(hnsw_scratch *x, uint64_t n)
{
	size_t words = (size_t)((n + 63) / 64);
	if (x->nwords < words) {
		mem_free(x->visited);
		mem_free(x->touched);
		x->visited = mem_calloc(words, sizeof *x->visited);
		x->touched =
		    mem_alloc((words + 1) * sizeof *x->touched); /* visit() writes one past */
		x->nwords = x->visited && x->touched ? words : 0;
		x->ntouched = 0;
		if (!x->nwords)
			return false;
	}
	if (x->ntouched > x->nwords / 8)
		memset(x->visited, 0, x->nwords * sizeof *x->visited);
	else
		for (size_t i = 0; i < x->ntouched; i++)
			x->visited[x->touched[i]] = 0;
	x->ntouched = 0;
	x->cand.n = x->top.n = 0;
	x->cand.max = 0;
	x->top.max = 1;
	return true;
}

hnsw_scratch *hnsw_scratch_take(eng_coll *c)
{
	pthread_mutex_lock(&c->scratch_mu);
	hnsw_scratch *x = c->scratch;
	if (x)
		c->scratch = x->next;
	pthread_mutex_unlock(&c->scratch_mu);
	return x ? x : mem_calloc(1, sizeof *x);
}

void hnsw_scratch_give(eng_coll *c, hnsw_scratch *x)
{
	if (!x)
		return;
	pthread_mutex_lock(&c->scratch_mu);
	x->next = c->scratch;
	c->scratch = x;
	pthread_mutex_unlock(&c->scratch_mu);
}

void hnsw_scratch_release_all(eng_coll *c)
{
	while (c->scratch) {
		hnsw_scratch *x = c->scratch;
		c->scratch = x->next;
		hnsw_scratch_free(x);
	}
}
