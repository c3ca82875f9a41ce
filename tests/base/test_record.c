/*
 * The record header (base/record.c): the bytes rec_stamp writes, and rec_check refusing a
 * short record, another magic, another version and a record shorter than its minimum.
 */
#define OMEN_TEST_INTERNAL
#include "helpers.h"

static void test_header(void **state)
{
	(void)state;
	unsigned char r[32];
	memset(r, 0xee, sizeof r);
	rec_stamp(r, "OMVC");
	static const unsigned char want[REC_HEADER] = {'O', 'M', 'V', 'C', 1, 0, 0, 0};
	assert_memory_equal(r, want, REC_HEADER);
	assert_int_equal(r[REC_HEADER], 0xee); /* nothing past the header */
	assert_true(rec_check(r, sizeof r, "OMVC", 16));
	assert_true(rec_check(r, REC_HEADER, "OMVC", 0));
	assert_false(rec_check(r, REC_HEADER - 1, "OMVC", 0)); /* shorter than a header */
	assert_false(rec_check(r, 15, "OMVC", 16));            /* shorter than its minimum */
	assert_false(rec_check(r, sizeof r, "OMVD", 16));      /* another record */
	r[4] = 2;                                              /* a newer version */
	assert_false(rec_check(r, sizeof r, "OMVC", 16));
	r[4] = 1;
	r[5] = 1; /* version 257 */
	assert_false(rec_check(r, sizeof r, "OMVC", 16));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_header),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
