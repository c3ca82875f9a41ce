/*
 * The top-k heap (engine/topk.c) against a sort of every item: the k best by (distance, id),
 * ties resolved by the smaller id whatever the order of arrival, rows carried along, and the
 * pre-check topk_may_accept never turning away an item that would enter.
 */
#include <math.h>

#define OMEN_TEST_INTERNAL
#include "helpers.h"

#include "engine/engine.h"

typedef struct item {
	float d;
	uint64_t id;
} item;

static int item_order(const void *a, const void *b)
{
	const item *x = a, *y = b;
	if (x->d != y->d)
		return x->d < y->d ? -1 : 1;
	return (x->id > y->id) - (x->id < y->id);
}

/* Pushes items[0..n) in the given order into a heap of k and checks the sorted result against
 * the first k of a full sort. */
static void check_topk(const item *items, size_t n, uint32_t k)
{
	topk_item *h = malloc(k * sizeof *h);
	topk t = {h, 0, k};
	for (size_t i = 0; i < n; i++) {
		bool may = topk_may_accept(&t, items[i].d);
		uint32_t before = t.n;
		float worst = t.n ? t.h[0].dist : 0;
		topk_push(&t, items[i].d, items[i].id, (uint32_t)i);
		if (!may) /* refused by the pre-check: the heap was full and the item worse */
			assert_true(before == k && items[i].d > worst);
	}
	topk_sort(&t);
	item *sorted = malloc(n * sizeof *sorted);
	memcpy(sorted, items, n * sizeof *sorted);
	qsort(sorted, n, sizeof *sorted, item_order);
	uint32_t want = n < k ? (uint32_t)n : k;
	assert_int_equal(t.n, want);
	for (uint32_t i = 0; i < want; i++) {
		assert_true(t.h[i].dist == sorted[i].d);
		assert_int_equal(t.h[i].id, sorted[i].id);
		/* the row pushed with the item comes back with it */
		assert_true(items[t.h[i].row].id == t.h[i].id &&
		            items[t.h[i].row].d == t.h[i].dist);
	}
	free(sorted);
	free(h);
}

static void test_random(void **state)
{
	(void)state;
	uint64_t s = 7;
	for (int round = 0; round < 200; round++) {
		size_t n = 1 + rnd_next(&s) % 500;
		item *items = malloc(n * sizeof *items);
		for (size_t i = 0; i < n; i++) {
			items[i].d = rnd_float(&s);
			items[i].id = rnd_next(&s) % 100000;
		}
		check_topk(items, n, 1 + (uint32_t)(rnd_next(&s) % 64));
		free(items);
	}
}

/* Equal distances: the smaller ids win, in whatever order they arrive. */
static void test_ties_by_id(void **state)
{
	(void)state;
	item items[100];
	for (int i = 0; i < 100; i++)
		items[i] = (item){1.0f, (uint64_t)(99 - i)}; /* descending ids */
	check_topk(items, 100, 10);
	for (int i = 0; i < 100; i++)
		items[i] = (item){(float)(i % 3), (uint64_t)((i * 37) % 100)};
	check_topk(items, 100, 17);
}

/* k larger than the items seen; k of 1; infinities and negative distances. */
static void test_edges(void **state)
{
	(void)state;
	item few[3] = {{2.0f, 5}, {-1.0f, 9}, {2.0f, 4}};
	check_topk(few, 3, 10);
	check_topk(few, 3, 1);
	item inf[4] = {{INFINITY, 1}, {0.5f, 2}, {INFINITY, 0}, {-INFINITY, 3}};
	check_topk(inf, 4, 3);
	check_topk(inf, 4, 4);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_random),
	    cmocka_unit_test(test_ties_by_id),
	    cmocka_unit_test(test_edges),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
