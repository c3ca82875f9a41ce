/*
 * Id lists (base/ids.c): the batch rule (no reserved id, none twice) on sorted and unsorted
 * batches, sorting, and removing repeats, against a simple model.
 */
#define OMEN_TEST_INTERNAL
#include "helpers.h"

static void test_check(void **state)
{
	(void)state;
	uint64_t sorted[] = {1, 2, 3, 100};
	assert_omen_ok(ids_check(sorted, 4));
	assert_omen_ok(ids_check(NULL, 0));
	uint64_t shuffled[] = {9, 3, 7, 1};
	assert_omen_ok(ids_check(shuffled, 4));
	uint64_t twice[] = {9, 3, 7, 3};
	assert_omen_status(ids_check(twice, 4), OMEN_EINVAL);
	assert_non_null(strstr(status_msg(), "id 3 appears twice"));
	uint64_t adjacent[] = {4, 4};
	assert_omen_status(ids_check(adjacent, 2), OMEN_EINVAL);
	uint64_t reserved[] = {1, OMEN_NO_ID};
	assert_omen_status(ids_check(reserved, 2), OMEN_EINVAL);
	assert_non_null(strstr(status_msg(), "id 1 of the batch is the reserved value"));
	/* The caller's array is not reordered. */
	assert_true(twice[0] == 9 && twice[3] == 3);
}

static void test_sort_and_unique(void **state)
{
	(void)state;
	uint64_t s = 5;
	for (int round = 0; round < 100; round++) {
		size_t n = rnd_next(&s) % 300;
		uint64_t ids[300];
		bool seen[64] = {false};
		size_t distinct = 0;
		for (size_t i = 0; i < n; i++) {
			ids[i] = rnd_next(&s) % 64;
			distinct += !seen[ids[i]];
			seen[ids[i]] = true;
		}
		size_t m = ids_unique(ids, n);
		assert_int_equal(m, distinct);
		for (size_t i = 1; i < m; i++)
			assert_true(ids[i - 1] < ids[i]);
		for (size_t i = 0; i < m; i++)
			assert_true(seen[ids[i]]);
	}
	uint64_t big[] = {UINT64_MAX - 1, 0, 1ull << 63, 5};
	ids_sort(big, 4);
	assert_true(big[0] == 0 && big[1] == 5 && big[2] == 1ull << 63 && big[3] == UINT64_MAX - 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_check),
	    cmocka_unit_test(test_sort_and_unique),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
