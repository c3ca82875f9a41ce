/*
 * Top-k selection: a bounded binary max-heap keyed by (distance, id), so that the k best
 * items are kept with O(log k) work per accepted item and ties resolve by the smaller id,
 * making results independent of the scan order and thread count.
 */
#include <stdlib.h>

#include "engine/engine.h"

static bool worse(const topk_item *a, const topk_item *b)
{
	return result_before(b->dist, b->id, a->dist, a->id);
}

static void sift_down(topk_item *h, uint32_t n, uint32_t i)
{
	topk_item x = h[i];
	for (;;) {
		uint32_t l = 2 * i + 1, r = l + 1, m = l;
		if (l >= n)
			break;
		if (r < n && worse(&h[r], &h[l]))
			m = r;
		if (!worse(&h[m], &x))
			break;
		h[i] = h[m];
		i = m;
	}
	h[i] = x;
}

void topk_push(topk *t, float d, uint64_t id, uint32_t row)
{
	if (t->n < t->k) {
		uint32_t i = t->n++;
		topk_item x = {d, row, id};
		while (i > 0) {
			uint32_t p = (i - 1) / 2;
			if (!worse(&x, &t->h[p]))
				break;
			t->h[i] = t->h[p];
			i = p;
		}
		t->h[i] = x;
		return;
	}
	if (!result_before(d, id, t->h[0].dist, t->h[0].id))
		return;
	t->h[0] = (topk_item){d, row, id};
	sift_down(t->h, t->n, 0);
}

static int item_cmp(const void *a, const void *b)
{
	const topk_item *x = a, *y = b;
	if (result_before(x->dist, x->id, y->dist, y->id))
		return -1;
	return result_before(y->dist, y->id, x->dist, x->id) ? 1 : 0;
}

void topk_sort(topk *t)
{
	qsort(t->h, t->n, sizeof *t->h, item_cmp);
}
