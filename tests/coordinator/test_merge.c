/*
 * Tests for the gather step of a search (coordinator/merge.c): the shards' top-k rows merged
 * into the global top k, checked against a plain sort of every candidate; ties by the smaller
 * id; shards with fewer than k points; shards that did not answer; k = 1; many shards.
 */
#define OMEN_TEST_INTERNAL
#include "helpers.h"

#include <math.h>

#include "coordinator/internal.h"

/* The answers of nsrc shards to nq queries, k per row, owned by the test. */
typedef struct answers {
	uint32_t nsrc, k;
	uint64_t nq;
	uint64_t *ids;  /* nsrc x nq x k */
	float *dists;   /* nsrc x nq x k */
	merge_src *src; /* nsrc, pointing into ids and dists */
} answers;

static answers answers_new(uint32_t nsrc, uint64_t nq, uint32_t k)
{
	answers a = {nsrc, k, nq, NULL, NULL, NULL};
	size_t cells = (size_t)nsrc * nq * k;
	a.ids = malloc(cells * sizeof *a.ids);
	a.dists = malloc(cells * sizeof *a.dists);
	a.src = calloc(nsrc, sizeof *a.src);
	assert_true(a.ids && a.dists && a.src);
	for (size_t i = 0; i < cells; i++)
		a.ids[i] = OMEN_NO_ID, a.dists[i] = INFINITY;
	for (uint32_t s = 0; s < nsrc; s++)
		a.src[s] = (merge_src){a.ids + (size_t)s * nq * k, a.dists + (size_t)s * nq * k};
	return a;
}

static void answers_free(answers *a)
{
	free(a->ids);
	free(a->dists);
	free(a->src);
}

/* Sets entry j of query q's row on shard s. */
static void put(answers *a, uint32_t s, uint64_t q, uint32_t j, uint64_t id, float dist)
{
	size_t at = ((size_t)s * a->nq + q) * a->k + j;
	a->ids[at] = id;
	a->dists[at] = dist;
}

/* merge_topk over all of a's shards into ids and dists (nq x k). */
static void merge_all(const answers *a, uint64_t *ids, float *dists)
{
	assert_omen_ok(merge_topk(a->src, a->nsrc, a->nq, a->k, ids, dists));
}

typedef struct cand {
	float dist;
	uint64_t id;
} cand;

static int by_dist_then_id(const void *x, const void *y)
{
	const cand *a = x, *b = y;
	if (a->dist != b->dist)
		return a->dist < b->dist ? -1 : 1;
	return a->id < b->id ? -1 : a->id > b->id;
}

/* Rows of 0 to k random candidates per shard, sorted as a shard sends them and padded after;
 * distances on a coarse grid so that ties are common, ids distinct over all shards (an odd
 * multiplier permutes 0..2^20-1) and in no order across shards. */
static void fill_random(answers *a, uint64_t seed)
{
	uint64_t rs = seed * 0x9E3779B97F4A7C15ull + 1, counter = 1;
	cand *row = malloc(a->k * sizeof *row);
	for (uint32_t s = 0; s < a->nsrc; s++)
		for (uint64_t q = 0; q < a->nq; q++) {
			uint32_t n = (uint32_t)(rnd_next(&rs) % (a->k + 1));
			for (uint32_t j = 0; j < n; j++)
				row[j] = (cand){(float)(rnd_next(&rs) % 16) / 4.0f,
				                (counter++ * 0x9E3779B1u) & 0xFFFFFu};
			qsort(row, n, sizeof *row, by_dist_then_id);
			for (uint32_t j = 0; j < a->k; j++)
				put(a, s, q, j, j < n ? row[j].id : OMEN_NO_ID,
				    j < n ? row[j].dist : INFINITY);
		}
	free(row);
}

/* Merges a and checks every row against a sort of all the answering shards' candidates. */
static void check_against_sort(const answers *a)
{
	size_t cells = a->nq * a->k;
	uint64_t *ids = malloc(cells * sizeof *ids);
	float *dists = malloc(cells * sizeof *dists);
	cand *all = malloc(((size_t)a->nsrc * a->k + 1) * sizeof *all);
	merge_all(a, ids, dists);
	for (uint64_t q = 0; q < a->nq; q++) {
		size_t n = 0;
		for (uint32_t s = 0; s < a->nsrc; s++)
			for (uint32_t j = 0; a->src[s].ids && j < a->k; j++)
				if (a->src[s].ids[q * a->k + j] != OMEN_NO_ID)
					all[n++] = (cand){a->src[s].dists[q * a->k + j],
					                  a->src[s].ids[q * a->k + j]};
		qsort(all, n, sizeof *all, by_dist_then_id);
		for (uint32_t j = 0; j < a->k; j++) {
			uint64_t want = j < n ? all[j].id : OMEN_NO_ID;
			if (ids[q * a->k + j] != want)
				fail_msg("query %llu rank %u: id %llu, want %llu",
				         (unsigned long long)q, j,
				         (unsigned long long)ids[q * a->k + j],
				         (unsigned long long)want);
			if (j < n)
				assert_true(dists[q * a->k + j] == all[j].dist);
			else
				assert_true(isinf(dists[q * a->k + j]));
		}
	}
	free(ids);
	free(dists);
	free(all);
}

static void test_matches_a_sort_of_all_candidates(void **state)
{
	for (uint64_t seed = 1; seed <= 20; seed++) {
		answers a = answers_new(1 + (uint32_t)(seed % 7), 3, 10);
		fill_random(&a, seed);
		check_against_sort(&a);
		answers_free(&a);
	}
}

static void test_ties_go_to_the_smaller_id(void **state)
{
	answers a = answers_new(3, 1, 3);
	put(&a, 0, 0, 0, 90, 1.0f);
	put(&a, 1, 0, 0, 30, 1.0f);
	put(&a, 1, 0, 1, 31, 2.0f);
	put(&a, 2, 0, 0, 60, 1.0f);
	uint64_t ids[3];
	float d[3];
	merge_all(&a, ids, d);
	assert_int_equal(ids[0], 30);
	assert_int_equal(ids[1], 60);
	assert_int_equal(ids[2], 90);
	assert_true(d[0] == 1.0f && d[1] == 1.0f && d[2] == 1.0f);
	answers_free(&a);
}

/* Shards with fewer than k points pad their rows; the merged row is padded only when all of
 * them together hold fewer than k. */
static void test_short_rows_and_padding(void **state)
{
	answers a = answers_new(3, 2, 4);
	put(&a, 0, 0, 0, 5, 0.5f); /* query 0: three candidates in all */
	put(&a, 2, 0, 0, 7, 0.25f);
	put(&a, 2, 0, 1, 8, 3.0f);
	put(&a, 1, 1, 0, 1, 1.0f); /* query 1: five candidates, k = 4 */
	put(&a, 1, 1, 1, 2, 2.0f);
	put(&a, 1, 1, 2, 3, 4.0f);
	put(&a, 2, 1, 0, 4, 1.5f);
	put(&a, 2, 1, 1, 6, 5.0f);
	uint64_t ids[8];
	float d[8];
	merge_all(&a, ids, d);
	const uint64_t want[8] = {7, 5, 8, OMEN_NO_ID, 1, 4, 2, 3};
	for (int i = 0; i < 8; i++)
		assert_int_equal(ids[i], want[i]);
	assert_true(isinf(d[3]) && d[3] > 0);
	assert_true(d[4] == 1.0f && d[7] == 4.0f);
	check_against_sort(&a);
	answers_free(&a);
}

/* A shard that did not answer (ids NULL) is left out, even when its rows would win. */
static void test_partial_coverage(void **state)
{
	answers a = answers_new(3, 1, 2);
	put(&a, 0, 0, 0, 10, 3.0f);
	put(&a, 0, 0, 1, 11, 4.0f);
	put(&a, 1, 0, 0, 20, 0.0f); /* closest, but its shard missed the deadline */
	put(&a, 2, 0, 0, 30, 3.5f);
	a.src[1].ids = NULL;
	uint64_t ids[2];
	float d[2];
	merge_all(&a, ids, d);
	assert_int_equal(ids[0], 10);
	assert_int_equal(ids[1], 30);
	a.src[0].ids = a.src[2].ids = NULL; /* none answered: every cell is padding */
	merge_all(&a, ids, d);
	assert_int_equal(ids[0], OMEN_NO_ID);
	assert_int_equal(ids[1], OMEN_NO_ID);
	assert_true(isinf(d[0]) && isinf(d[1]));
	answers_free(&a);
}

static void test_k_one(void **state)
{
	answers a = answers_new(4, 5, 1);
	fill_random(&a, 99);
	check_against_sort(&a);
	answers_free(&a);
	answers b = answers_new(2, 1, 1);
	put(&b, 0, 0, 0, 8, 2.0f);
	put(&b, 1, 0, 0, 4, 2.0f);
	uint64_t id;
	float d;
	merge_all(&b, &id, &d);
	assert_int_equal(id, 4);
	answers_free(&b);
}

/* As many logical shards as a collection may have, each with one point near the query: the
 * global top k comes from k different shards. */
static void test_many_shards(void **state)
{
	answers a = answers_new(WIRE_MAX_SHARDS, 2, 8);
	for (uint32_t s = 0; s < WIRE_MAX_SHARDS; s++) {
		put(&a, s, 0, 0, 1000 + s, (float)(WIRE_MAX_SHARDS - s)); /* the last shards win */
		put(&a, s, 1, 0, 1000 + s, 1.0f); /* all tie: smallest ids */
	}
	uint64_t ids[16];
	float d[16];
	merge_all(&a, ids, d);
	for (uint32_t j = 0; j < 8; j++) {
		assert_int_equal(ids[j], 1000 + WIRE_MAX_SHARDS - 1 - j);
		assert_int_equal(ids[8 + j], 1000 + j);
	}
	fill_random(&a, 7);
	check_against_sort(&a);
	answers_free(&a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_matches_a_sort_of_all_candidates),
	    cmocka_unit_test(test_ties_go_to_the_smaller_id),
	    cmocka_unit_test(test_short_rows_and_padding),
	    cmocka_unit_test(test_partial_coverage),
	    cmocka_unit_test(test_k_one),
	    cmocka_unit_test(test_many_shards),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
