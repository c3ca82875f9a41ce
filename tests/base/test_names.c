/*
 * Names (base/names.c): the collection-name rule at its edges, and the metric, index-type and
 * device names parsed and printed from one table each.
 */
#define OMEN_TEST_INTERNAL
#include "helpers.h"

static void test_collection_names(void **state)
{
	(void)state;
	char longest[OMEN_MAX_NAME + 2];
	memset(longest, 'a', sizeof longest);
	longest[OMEN_MAX_NAME] = 0;
	const char *good[] = {"a", "docs", "A-Z_0.9", "..", longest};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		assert_true(name_valid(good[i], strlen(good[i])));
		assert_omen_ok(name_check(good[i]));
	}
	longest[OMEN_MAX_NAME] = 'a';
	longest[OMEN_MAX_NAME + 1] = 0;
	const char *bad[] = {"", "a b", "a/b", "é", "a\tb", "x$", longest};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_false(name_valid(bad[i], strlen(bad[i])));
		assert_omen_status(name_check(bad[i]), OMEN_EINVAL);
	}
	assert_omen_status(name_check(NULL), OMEN_EINVAL);
	/* The length is the caller's: bytes past it are not looked at. */
	assert_true(name_valid("ab$", 2));
	assert_false(name_valid("a\0b", 3));
}

static void test_metric_names(void **state)
{
	(void)state;
	omen_metric m = OMEN_METRIC_L2;
	for (int i = 0; i < 3; i++) {
		assert_omen_ok(metric_parse(metric_name((omen_metric)i), &m));
		assert_int_equal(m, i);
	}
	assert_string_equal(metric_name(OMEN_METRIC_COSINE), "cosine");
	assert_string_equal(metric_name((omen_metric)7), "?");
	m = OMEN_METRIC_IP;
	assert_omen_status(metric_parse("L2", &m), OMEN_EINVAL);
	assert_int_equal(m, OMEN_METRIC_IP); /* untouched on failure */
	assert_non_null(strstr(status_msg(), "l2, ip or cosine"));
	assert_omen_status(metric_parse(NULL, &m), OMEN_EINVAL);
}

static void test_index_and_device_names(void **state)
{
	(void)state;
	omen_index_type t;
	assert_omen_ok(index_type_parse("hnsw", &t));
	assert_int_equal(t, OMEN_INDEX_HNSW);
	assert_string_equal(index_type_name(OMEN_INDEX_FLAT), "flat");
	assert_omen_status(index_type_parse("lsh", &t), OMEN_EINVAL);
	assert_non_null(strstr(status_msg(), "auto, flat, hnsw or ivf"));
	omen_device d;
	assert_omen_ok(device_parse("gpu", &d));
	assert_int_equal(d, OMEN_DEVICE_GPU);
	assert_string_equal(device_name(OMEN_DEVICE_CPU), "cpu");
	assert_string_equal(device_name((omen_device)-1), "?");
	assert_omen_status(device_parse("tpu", &d), OMEN_EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_collection_names),
	    cmocka_unit_test(test_metric_names),
	    cmocka_unit_test(test_index_and_device_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
