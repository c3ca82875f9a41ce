/*
 * Tests for the strict JSON field readers (coordinator/jsonf.c) that the HTTP endpoint and
 * omendb-node's configuration share: unknown fields, null as absent, types, ranges, and the
 * reasons they write.
 */
#define OMEN_TEST_INTERNAL
#include "helpers.h"

#include "coordinator/jsonf.h"

/* A reader of the JSON text, its reasons into err. The caller json_decref's f->obj. */
static jf reader(const char *text, const char *where, char *err, size_t len)
{
	json_error_t je;
	json_t *o = json_loads(text, 0, &je);
	if (!o)
		fail_msg("bad test JSON %s: %s", text, je.text);
	err[0] = '\0';
	return (jf){o, where, err, len};
}

static void done(jf *f)
{
	json_decref((json_t *)f->obj);
}

static void test_unknown_fields(void **state)
{
	static const char *const keys[] = {"a", "b", NULL};
	char err[128];
	jf f = reader("{\"a\": 1, \"b\": null}", NULL, err, sizeof err);
	assert_int_equal(jf_keys(&f, keys), OMEN_OK);
	done(&f);
	f = reader("{\"a\": 1, \"topk\": 3}", "shard: ", err, sizeof err);
	assert_int_equal(jf_keys(&f, keys), OMEN_EINVAL);
	assert_string_equal(err, "shard: unknown field 'topk'");
	done(&f);
}

static void test_null_is_absent(void **state)
{
	char err[128];
	jf f = reader("{\"n\": null, \"s\": null, \"b\": null}", NULL, err, sizeof err);
	uint64_t n = 7;
	const char *s = "def";
	int b = 1;
	assert_null(jf_get(&f, "n"));
	assert_null(jf_get(&f, "missing"));
	assert_int_equal(jf_uint(&f, "n", 1, 9, &n), OMEN_OK);
	assert_int_equal(jf_str(&f, "s", &s), OMEN_OK);
	assert_int_equal(jf_bool(&f, "b", &b), OMEN_OK);
	assert_int_equal(n, 7); /* the defaults stay */
	assert_string_equal(s, "def");
	assert_int_equal(b, 1);
	assert_int_equal(jf_required(&f, "n"), OMEN_EINVAL);
	assert_string_equal(err, "'n' is required");
	assert_int_equal(jf_required(&f, "missing"), OMEN_EINVAL);
	done(&f);
}

static void test_uint_type_and_range(void **state)
{
	char err[128];
	jf f = reader("{\"k\": 0, \"m\": 16384, \"x\": 1.5, \"neg\": -1, \"str\": \"3\"}", NULL,
	              err, sizeof err);
	uint64_t v = 99;
	assert_int_equal(jf_uint(&f, "k", 1, 16384, &v), OMEN_EINVAL);
	assert_string_equal(err, "'k' must be in 1..16384, got 0");
	assert_int_equal(v, 99); /* untouched on failure */
	assert_int_equal(jf_uint(&f, "m", 1, 16384, &v), OMEN_OK);
	assert_int_equal(v, 16384);
	assert_int_equal(jf_uint(&f, "x", 0, 10, &v), OMEN_EINVAL);
	assert_string_equal(err, "'x' must be an integer");
	assert_int_equal(jf_uint(&f, "neg", 0, 10, &v), OMEN_EINVAL);
	assert_string_equal(err, "'neg' must be in 0..10, got -1");
	assert_int_equal(jf_uint(&f, "str", 0, 10, &v), OMEN_EINVAL);
	done(&f);
}

static void test_bool_and_string(void **state)
{
	char err[128];
	jf f = reader("{\"t\": true, \"f\": false, \"one\": 1, \"s\": \"x\", \"n\": 2}",
	              "coordinator: ", err, sizeof err);
	int b = 5;
	assert_int_equal(jf_bool(&f, "t", &b), OMEN_OK);
	assert_int_equal(b, 1);
	assert_int_equal(jf_bool(&f, "f", &b), OMEN_OK);
	assert_int_equal(b, 0);
	assert_int_equal(jf_bool(&f, "one", &b), OMEN_EINVAL);
	assert_string_equal(err, "coordinator: 'one' must be true or false");
	const char *s = NULL;
	assert_int_equal(jf_str(&f, "s", &s), OMEN_OK);
	assert_string_equal(s, "x");
	assert_int_equal(jf_str(&f, "n", &s), OMEN_EINVAL);
	assert_string_equal(err, "coordinator: 'n' must be a string");
	done(&f);
}

/* A NULL err buffer is allowed: the status alone comes back. */
static void test_no_err_buffer(void **state)
{
	char unused[8];
	jf f = reader("{\"a\": \"x\"}", NULL, unused, sizeof unused);
	f.err = NULL;
	f.errlen = 0;
	uint64_t v = 0;
	assert_int_equal(jf_uint(&f, "a", 0, 1, &v), OMEN_EINVAL);
	done(&f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_unknown_fields),      cmocka_unit_test(test_null_is_absent),
	    cmocka_unit_test(test_uint_type_and_range), cmocka_unit_test(test_bool_and_string),
	    cmocka_unit_test(test_no_err_buffer),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
