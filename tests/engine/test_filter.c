/*
 * Metadata filters (engine/filter.c): the semantics documented in docs/FILTERS.md, corrupt
 * stored maps that match nothing, every compile error and limit, and jansson allocation
 * failures. Stored maps are made with storage's encoder (tests/storage/test_metadata.c tests
 * it).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h> /* after the four above, which it needs */

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/filter.h"
#include "storage/storage.h"

/* ---- Helpers ---------------------------------------------------------------------------- */

/* Encodes json, which must be valid metadata; the caller frees *len bytes at the result. */
static unsigned char *encode(const char *json, size_t *len)
{
	unsigned char *mp = NULL;
	char err[256] = "";
	int rc = meta_encode_json(json, &mp, len, err, sizeof(err));
	if (rc != OMEN_OK)
		fail_msg("encode %s: status %d: %s", json, rc, err);
	assert_non_null(mp);
	return mp;
}

/* Asserts that status rc with message err is want_rc and err contains want_msg on one line. */
static void assert_error(const char *input, int rc, const char *err, int want_rc,
                         const char *want_msg)
{
	if (rc != want_rc)
		fail_msg("%s: status %d, want %d (err: %s)", input, rc, want_rc, err);
	if (strstr(err, want_msg) == NULL)
		fail_msg("%s: message '%s' lacks '%s'", input, err, want_msg);
	if (strchr(err, '\n') != NULL)
		fail_msg("%s: message is not one line: '%s'", input, err);
}

static filter *compile(const char *json)
{
	filter *f = NULL;
	char err[256] = "";
	int rc = filter_compile(json, &f, err, sizeof(err));
	if (rc != OMEN_OK)
		fail_msg("compile %s: status %d: %s", json, rc, err);
	assert_non_null(f);
	return f;
}

/* Matches filter json against metadata json (NULL: a point without metadata). */
static bool match(const char *filter_json, const char *meta_json)
{
	filter *f = compile(filter_json);
	size_t len = 0;
	unsigned char *mp = meta_json != NULL ? encode(meta_json, &len) : NULL;
	bool m = filter_match(f, mp, len);
	free(mp);
	filter_free(f);
	return m;
}

struct match_case {
	const char *filter;
	const char *meta;
	bool want;
};

static void run_match_cases(const struct match_case *cases, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (match(cases[i].filter, cases[i].meta) != cases[i].want)
			fail_msg("filter %s on %s: got %d, want %d", cases[i].filter,
			         cases[i].meta != NULL ? cases[i].meta : "(no metadata)",
			         !cases[i].want, cases[i].want);
}

static void assert_filter_rejected(const char *json, int want_rc, const char *want_msg)
{
	char sentinel;
	filter *f = (filter *)&sentinel;
	char err[512] = "";
	int rc = filter_compile(json, &f, err, sizeof(err));
	assert_error(json != NULL ? json : "(NULL)", rc, err, want_rc, want_msg);
	assert_ptr_equal(f, (filter *)&sentinel);
}

/* ---- Filter semantics --------------------------------------------------------------------- */

static const char doc[] =
    "{\"year\": 2021, \"lang\": \"en\", \"score\": 0.5, \"draft\": false,"
    " \"n\": 9007199254740993, \"title\": \"abc\", \"max\": 9223372036854775807,"
    " \"min\": -9223372036854775808, \"neg\": -2.5}";

static void test_match_comparisons(void **state)
{
	(void)state;
	static const struct match_case cases[] = {
	    {"{\"year\": 2021}", doc, true},
	    {"{\"year\": 2020}", doc, false},
	    {"{\"year\": {\"$eq\": 2021}}", doc, true},
	    {"{\"year\": {\"$ne\": 2021}}", doc, false},
	    {"{\"year\": {\"$ne\": 2020}}", doc, true},
	    {"{\"year\": {\"$lt\": 2021}}", doc, false},
	    {"{\"year\": {\"$lt\": 2022}}", doc, true},
	    {"{\"year\": {\"$lte\": 2021}}", doc, true},
	    {"{\"year\": {\"$lte\": 2020}}", doc, false},
	    {"{\"year\": {\"$gt\": 2021}}", doc, false},
	    {"{\"year\": {\"$gt\": 2020}}", doc, true},
	    {"{\"year\": {\"$gte\": 2021}}", doc, true},
	    {"{\"year\": {\"$gte\": 2022}}", doc, false},
	    {"{\"neg\": {\"$lt\": -2}}", doc, true},
	    {"{\"neg\": {\"$gt\": -3}}", doc, true},
	    {"{\"neg\": -2.5}", doc, true},
	    {"{\"score\": 0.5}", doc, true},
	    {"{\"score\": {\"$gt\": 0.49999999999999994}}", doc, true},
	    {"{\"score\": {\"$lt\": 0.5}}", doc, false},
	    /* Several operators on one field all hold. */
	    {"{\"year\": {\"$gte\": 2020, \"$lt\": 2022}}", doc, true},
	    {"{\"year\": {\"$gte\": 2020, \"$lt\": 2021}}", doc, false},
	    {"{\"year\": {\"$gt\": 2020, \"$ne\": 2021}}", doc, false},
	};
	run_match_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

/* Integers and reals compare exactly as numbers, never by rounding the integer to a double. */
static void test_match_mixed_numbers(void **state)
{
	(void)state;
	static const struct match_case cases[] = {
	    {"{\"year\": 2021.0}", doc, true},
	    {"{\"year\": {\"$lt\": 2021.5}}", doc, true},
	    {"{\"year\": {\"$gt\": 2020.9999}}", doc, true},
	    {"{\"year\": {\"$lte\": 2020.9999}}", doc, false},
	    {"{\"score\": {\"$lt\": 1}}", doc, true},
	    {"{\"score\": {\"$gt\": 0}}", doc, true},
	    {"{\"score\": {\"$eq\": 0}}", doc, false},
	    {"{\"neg\": {\"$gt\": -3, \"$lt\": -2}}", doc, true},
	    /* n = 2^53 + 1, which no double holds. */
	    {"{\"n\": 9007199254740992.0}", doc, false},
	    {"{\"n\": {\"$ne\": 9007199254740992.0}}", doc, true},
	    {"{\"n\": {\"$gt\": 9007199254740992.0}}", doc, true},
	    {"{\"n\": {\"$lt\": 9007199254740994.0}}", doc, true},
	    {"{\"n\": 9007199254740993}", doc, true},
	    {"{\"n\": {\"$gt\": 9007199254740992}}", doc, true},
	    /* INT64_MAX is below 2^63 = 9223372036854775808.0. */
	    {"{\"max\": 9223372036854775807.0}", doc, false},
	    {"{\"max\": {\"$lt\": 9223372036854775807.0}}", doc, true},
	    {"{\"max\": {\"$lt\": 1e300}}", doc, true},
	    {"{\"min\": -9223372036854775808.0}", doc, true},
	    {"{\"min\": {\"$gt\": -1e300}}", doc, true},
	    {"{\"min\": {\"$lt\": -9223372036854775807}}", doc, true},
	    /* A stored real against an integer operand. */
	    {"{\"x\": 9007199254740992}", "{\"x\": 9007199254740992.0}", true},
	    {"{\"x\": 9007199254740993}", "{\"x\": 9007199254740992.0}", false},
	    {"{\"x\": {\"$lt\": 9007199254740993}}", "{\"x\": 9007199254740992.0}", true},
	    {"{\"x\": {\"$gt\": -9007199254740993}}", "{\"x\": -9007199254740992.0}", true},
	    {"{\"x\": 0}", "{\"x\": -0.0}", true},
	    {"{\"x\": {\"$lt\": 0}}", "{\"x\": -0.5}", true},
	    {"{\"x\": {\"$gt\": -1}}", "{\"x\": -0.5}", true},
	    {"{\"x\": {\"$gte\": 0}}", "{\"x\": -0.5}", false},
	};
	run_match_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_match_strings(void **state)
{
	(void)state;
	static const struct match_case cases[] = {
	    {"{\"title\": \"abc\"}", doc, true},
	    {"{\"title\": \"ab\"}", doc, false},
	    {"{\"title\": \"abcd\"}", doc, false},
	    {"{\"title\": \"ABC\"}", doc, false},
	    {"{\"title\": {\"$gt\": \"ab\"}}", doc, true}, /* longer after its prefix */
	    {"{\"title\": {\"$lt\": \"abcd\"}}", doc, true},
	    {"{\"title\": {\"$lt\": \"abd\"}}", doc, true},
	    {"{\"title\": {\"$gt\": \"B\"}}", doc, true},       /* bytewise: 'B' < 'a' */
	    {"{\"title\": {\"$lt\": \"\\u00e9\"}}", doc, true}, /* bytes unsigned: 0xc3 > 'a' */
	    {"{\"title\": {\"$gte\": \"abc\", \"$lte\": \"abc\"}}", doc, true},
	    {"{\"s\": \"caf\\u00e9\"}", "{\"s\": \"caf\xc3\xa9\"}", true},
	    {"{\"s\": \"cafe\"}", "{\"s\": \"caf\xc3\xa9\"}", false},
	    {"{\"s\": \"\"}", "{\"s\": \"\"}", true},
	    {"{\"s\": {\"$gt\": \"\"}}", "{\"s\": \"a\"}", true},
	    {"{\"\xe5\x90\x8d\": \"x\"}", "{\"\xe5\x90\x8d\": \"x\"}", true},
	};
	run_match_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

/* Values of different types are never equal and never ordered. */
static void test_match_types(void **state)
{
	(void)state;
	static const struct match_case cases[] = {
	    {"{\"draft\": false}", doc, true},
	    {"{\"draft\": true}", doc, false},
	    {"{\"draft\": {\"$ne\": true}}", doc, true},
	    {"{\"draft\": {\"$ne\": false}}", doc, false},
	    {"{\"draft\": {\"$in\": [true]}}", doc, false},
	    {"{\"draft\": {\"$in\": [1, false]}}", doc, true},
	    {"{\"draft\": {\"$nin\": [true]}}", doc, true},
	    {"{\"draft\": 0}", doc, false},
	    {"{\"draft\": {\"$ne\": 0}}", doc, true},
	    {"{\"draft\": {\"$lt\": 1}}", doc, false},
	    {"{\"draft\": {\"$gte\": 0}}", doc, false},
	    {"{\"year\": \"2021\"}", doc, false},
	    {"{\"year\": {\"$ne\": \"2021\"}}", doc, true},
	    {"{\"year\": {\"$lt\": \"z\"}}", doc, false},
	    {"{\"year\": {\"$gte\": \"\"}}", doc, false},
	    {"{\"year\": true}", doc, false},
	    {"{\"lang\": {\"$gt\": 1}}", doc, false},
	    {"{\"lang\": {\"$lte\": 1}}", doc, false},
	    {"{\"lang\": {\"$ne\": 1}}", doc, true},
	    {"{\"x\": true}", "{\"x\": 1}", false},
	    {"{\"x\": 1}", "{\"x\": true}", false},
	};
	run_match_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

/* A field the point lacks matches only $ne and $nin; so does every field of a point with no
 * metadata at all. */
static void test_match_missing(void **state)
{
	(void)state;
	static const struct match_case cases[] = {
	    {"{\"gone\": 1}", doc, false},
	    {"{\"gone\": {\"$eq\": \"x\"}}", doc, false},
	    {"{\"gone\": {\"$ne\": 1}}", doc, true},
	    {"{\"gone\": {\"$nin\": [1, \"a\"]}}", doc, true},
	    {"{\"gone\": {\"$nin\": []}}", doc, true},
	    {"{\"gone\": {\"$in\": [1]}}", doc, false},
	    {"{\"gone\": {\"$lt\": 1}}", doc, false},
	    {"{\"gone\": {\"$lte\": 1}}", doc, false},
	    {"{\"gone\": {\"$gt\": 1}}", doc, false},
	    {"{\"gone\": {\"$gte\": \"\"}}", doc, false},
	    {"{\"$not\": {\"gone\": 1}}", doc, true},
	    {"{}", NULL, true},
	    {"{\"a\": 1}", NULL, false},
	    {"{\"a\": {\"$ne\": 1}}", NULL, true},
	    {"{\"a\": {\"$nin\": [1]}}", NULL, true},
	    {"{\"a\": {\"$in\": [1]}}", NULL, false},
	    {"{\"a\": {\"$gt\": 0}}", NULL, false},
	    {"{\"a\": 1}", "{}", false},
	    {"{\"a\": {\"$ne\": 1}}", "{}", true},
	};
	run_match_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

static void test_match_in(void **state)
{
	(void)state;
	static const struct match_case cases[] = {
	    {"{\"lang\": {\"$in\": [\"en\", \"de\"]}}", doc, true},
	    {"{\"lang\": {\"$in\": [\"fr\", \"de\"]}}", doc, false},
	    {"{\"lang\": {\"$in\": []}}", doc, false},
	    {"{\"lang\": {\"$nin\": []}}", doc, true},
	    {"{\"lang\": {\"$nin\": [\"en\"]}}", doc, false},
	    {"{\"lang\": {\"$nin\": [\"fr\", \"de\"]}}", doc, true},
	    {"{\"year\": {\"$in\": [2021.0]}}", doc, true},
	    {"{\"year\": {\"$in\": [\"2021\", 2020, true]}}", doc, false},
	    {"{\"year\": {\"$in\": [\"2021\", 2021, true]}}", doc, true},
	    {"{\"n\": {\"$in\": [9007199254740992.0]}}", doc, false},
	    {"{\"n\": {\"$in\": [9007199254740992.0, 9007199254740993]}}", doc, true},
	    {"{\"score\": {\"$in\": [true, \"x\", 3, 2021.0, 0.5, \"a\", false, -7]}}", doc, true},
	    {"{\"score\": {\"$nin\": [true, \"x\", 3, 2021.0, 0.5, \"a\", false, -7]}}", doc,
	     false},
	    {"{\"title\": {\"$in\": [true, \"x\", 3, \"abc\", 0.5, \"ab\", false, \"abcd\"]}}", doc,
	     true},
	    {"{\"title\": {\"$in\": [\"ab\", \"abcd\", \"abd\", \"ab\"]}}", doc, false},
	    {"{\"year\": {\"$in\": [2020, 2021], \"$nin\": [2021]}}", doc, false},
	};
	run_match_cases(cases, sizeof(cases) / sizeof(cases[0]));
	/* A long list, in both orders, hit and miss at every position. */
	char json[8192];
	for (int target = 0; target < 300; target += 7) {
		size_t n = (size_t)snprintf(json, sizeof(json), "{\"k\": {\"$in\": [");
		for (int i = 299; i >= 0; i -= 2)
			n += (size_t)snprintf(json + n, sizeof(json) - n, "%s%d",
			                      i == 299 ? "" : ",", i);
		snprintf(json + n, sizeof(json) - n, "]}}");
		char meta[64];
		snprintf(meta, sizeof(meta), "{\"k\": %d}", target);
		if (match(json, meta) != (target % 2 == 1))
			fail_msg("$in of odd numbers, value %d", target);
	}
}

static void test_match_logic(void **state)
{
	(void)state;
	static const struct match_case cases[] = {
	    {"{}", doc, true},
	    {"{\"year\": 2021, \"lang\": \"en\"}", doc, true},
	    {"{\"year\": 2021, \"lang\": \"fr\"}", doc, false},
	    {"{\"$and\": [{\"lang\": \"en\"}, {\"year\": 2021}]}", doc, true},
	    {"{\"$and\": [{\"lang\": \"en\"}, {\"year\": 2020}]}", doc, false},
	    {"{\"$and\": [{}]}", doc, true},
	    {"{\"$or\": [{\"lang\": \"fr\"}, {\"year\": 2021}]}", doc, true},
	    {"{\"$or\": [{\"lang\": \"fr\"}, {\"year\": 2020}]}", doc, false},
	    {"{\"$or\": [{}]}", doc, true},
	    {"{\"$or\": [{\"lang\": \"en\"}]}", doc, true},
	    {"{\"$not\": {\"lang\": \"en\"}}", doc, false},
	    {"{\"$not\": {\"lang\": \"fr\"}}", doc, true},
	    {"{\"$not\": {}}", doc, false},
	    {"{\"$not\": {\"$not\": {\"lang\": \"en\"}}}", doc, true},
	    {"{\"$not\": {\"lang\": \"en\", \"year\": 2020}}", doc, true},
	    {"{\"lang\": \"en\", \"$or\": [{\"year\": 1999}, {\"draft\": false}]}", doc, true},
	    {"{\"lang\": \"de\", \"$or\": [{\"year\": 1999}, {\"draft\": false}]}", doc, false},
	    {"{\"$and\": [{\"$or\": [{\"a\": 1}, {\"lang\": \"en\"}]},"
	     " {\"$not\": {\"$or\": [{\"year\": {\"$lt\": 2000}}, {\"draft\": true}]}}]}",
	     doc, true},
	    {"{\"$and\": [{\"$or\": [{\"a\": 1}, {\"lang\": \"en\"}]},"
	     " {\"$not\": {\"$or\": [{\"year\": {\"$lt\": 2100}}, {\"draft\": true}]}}]}",
	     doc, false},
	    /* The same field in several places. */
	    {"{\"$or\": [{\"year\": 1}, {\"year\": 2021}], \"year\": {\"$gt\": 2000}}", doc, true},
	    /* Filter fields in another order than the stored (sorted) keys, sharing prefixes. */
	    {"{\"b\": 3, \"ab\": 2, \"a\": 1, \"abc\": {\"$nin\": [1]}}",
	     "{\"a\": 1, \"ab\": 2, \"b\": 3, \"aa\": 0, \"ba\": 9}", true},
	    {"{\"ba\": 9, \"aa\": 0}", "{\"a\": 1, \"ab\": 2, \"b\": 3, \"aa\": 0, \"ba\": 9}",
	     true},
	    {"{\"ba\": 8, \"aa\": 0}", "{\"a\": 1, \"ab\": 2, \"b\": 3, \"aa\": 0, \"ba\": 9}",
	     false},
	};
	run_match_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

/* The example of docs/FILTERS.md and the search API. */
static void test_match_example(void **state)
{
	(void)state;
	static const char ex[] =
	    "{\"year\": {\"$gte\": 2020}, \"lang\": {\"$in\": [\"en\", \"de\"]}}";
	static const struct match_case cases[] = {
	    {ex, "{\"year\": 2021, \"lang\": \"en\"}", true},
	    {ex, "{\"year\": 2020, \"lang\": \"de\", \"x\": 1}", true},
	    {ex, "{\"year\": 2020.5, \"lang\": \"de\"}", true},
	    {ex, "{\"year\": 2019, \"lang\": \"en\"}", false},
	    {ex, "{\"year\": 2021, \"lang\": \"fr\"}", false},
	    {ex, "{\"year\": \"2021\", \"lang\": \"en\"}", false},
	    {ex, "{\"lang\": \"en\"}", false},
	    {ex, "{\"year\": 2021}", false},
	    {ex, NULL, false},
	};
	run_match_cases(cases, sizeof(cases) / sizeof(cases[0]));
}

/* Corrupt bytes match nothing, not even the empty filter or $ne on a missing field. */
static void test_match_corrupt(void **state)
{
	(void)state;
	static const unsigned char bad[][6] = {
	    {0x91, 0x01}, {0x81, 0x01, 0x01}, {0x82, 0xa1, 'b', 1, 0xa1, 'a'}, {0xc0}};
	filter *all = compile("{}"), *ne = compile("{\"q\": {\"$ne\": 1}}");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_false(filter_match(all, bad[i], sizeof(bad[i])));
		assert_false(filter_match(ne, bad[i], sizeof(bad[i])));
	}
	assert_false(filter_match(all, NULL, 3));
	/* Documented: the matcher checks structure, not string contents (decode does). */
	static const unsigned char bad_utf8[] = {0x81, 0xa1, 'a', 0xa1, 0xff};
	assert_true(filter_match(all, bad_utf8, sizeof(bad_utf8)));
	char *out = NULL;
	assert_int_equal(meta_decode_json(bad_utf8, sizeof(bad_utf8), &out), OMEN_ECORRUPT);
	filter_free(all);
	filter_free(ne);
}

/* ---- Filter compile errors ---------------------------------------------------------------- */

static void test_compile_errors(void **state)
{
	(void)state;
	static const char *const cases[][2] = {
	    {"", "invalid JSON at line 1, column 0"},
	    {"{\"a\": ", "invalid JSON"},
	    {"{\"a\": 1} x", "invalid JSON"},
	    {"{\"a\": 1, \"a\": 2}", "duplicate object key"},
	    {"{\"a\": 99999999999999999999}", "number out of range"},
	    {"[]", "filter: expected a JSON object, got an array"},
	    {"\"a\"", "expected a JSON object, got a string"},
	    {"null", "expected a JSON object, got null"},
	    {"{\"$foo\": 1}", "filter: $foo: unknown operator"},
	    {"{\"$eq\": 1}", "$eq: unknown operator (expected $and, $or, $not"},
	    {"{\"$in\": [1]}", "$in: unknown operator"},
	    {"{\"year\": {\"$foo\": 1}}", "filter: year: unknown operator '$foo'"},
	    {"{\"year\": {\"$gte\": 1, \"$exists\": true}}", "unknown operator '$exists'"},
	    {"{\"year\": {\"x\": 1}}", "year: expected operators"},
	    {"{\"year\": {\"$eq\": 1, \"x\": 1}}", "got key 'x'"},
	    {"{\"year\": {}}", "year: empty operator object"},
	    {"{\"year\": null}", "year: expected a number, string, boolean or operator object, "
	                         "got null"},
	    {"{\"year\": [1, 2]}", "got an array (use $in)"},
	    {"{\"year\": {\"$lt\": true}}", "year: $lt cannot order booleans"},
	    {"{\"year\": {\"$lte\": false}}", "$lte cannot order booleans"},
	    {"{\"year\": {\"$gt\": true}}", "$gt cannot order booleans"},
	    {"{\"year\": {\"$gte\": false}}", "$gte cannot order booleans"},
	    {"{\"year\": {\"$eq\": [1]}}", "$eq expects a number, string or boolean, got an array"},
	    {"{\"year\": {\"$ne\": {\"a\": 1}}}", "$ne expects a number, string or boolean, got an "
	                                          "object"},
	    {"{\"year\": {\"$lt\": null}}", "$lt expects a number, string or boolean, got null"},
	    {"{\"year\": {\"$in\": 5}}", "year: $in expects an array"},
	    {"{\"year\": {\"$nin\": \"x\"}}", "$nin expects an array"},
	    {"{\"year\": {\"$nin\": {}}}", "$nin expects an array"},
	    {"{\"year\": {\"$in\": [1, null]}}", "$in[1] must be a number, string or boolean, got "
	                                         "null"},
	    {"{\"year\": {\"$in\": [[1]]}}", "$in[0] must be"},
	    {"{\"year\": {\"$nin\": [1, {}]}}", "$nin[1] must be"},
	    {"{\"$and\": []}", "filter: $and: expected a non-empty array of filter objects, got an "
	                       "array with no elements"},
	    {"{\"$or\": []}", "$or: expected a non-empty array"},
	    {"{\"$and\": {}}", "$and: expected a non-empty array of filter objects, got an object"},
	    {"{\"$or\": 5}", "$or: expected a non-empty array"},
	    {"{\"$and\": [1]}", "$and[0]: expected a filter object, got an integer"},
	    {"{\"$or\": [{}, []]}", "$or[1]: expected a filter object, got an array"},
	    {"{\"$not\": []}", "$not: expected a filter object, got an array"},
	    {"{\"$not\": 5}", "$not: expected a filter object"},
	    {"{\"$not\": {\"$not\": {\"$bad\": 1}}}", "$not.$not.$bad: unknown operator"},
	    {"{\"\": 1}", "empty field name"},
	    {"{\"$and\": [{\"x\": 1}, {\"$or\": [{\"y\": {\"$bad\": 1}}]}]}",
	     "filter: $and[1].$or[0].y: unknown operator '$bad'"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_filter_rejected(cases[i][0], OMEN_EINVAL, cases[i][1]);
	assert_filter_rejected(NULL, OMEN_EINVAL, "NULL");
	/* err may be NULL or empty. */
	filter *f = NULL;
	assert_int_equal(filter_compile("[]", &f, NULL, 0), OMEN_EINVAL);
	assert_int_equal(filter_compile("{\"$and\": []}", &f, NULL, 0), OMEN_EINVAL);
	char tiny[8] = "xyzzy";
	assert_int_equal(filter_compile("{\"$and\": []}", &f, tiny, sizeof(tiny)), OMEN_EINVAL);
	assert_string_equal(tiny, "filter:");
	assert_null(f);
	filter_free(NULL);
}

static void test_compile_limits(void **state)
{
	(void)state;
	char json[16384], name[300];
	/* Field names: 255 bytes allowed, 256 not. */
	memset(name, 'f', 256);
	name[255] = '\0';
	snprintf(json, sizeof(json), "{\"%s\": 1}", name);
	filter_free(compile(json));
	name[255] = 'f';
	name[256] = '\0';
	snprintf(json, sizeof(json), "{\"%s\": 1}", name);
	assert_filter_rejected(json, OMEN_EINVAL, "field name longer than 255 bytes");
	/* Depth: 32 nested filter objects allowed, 33 not. */
	for (int levels = 32; levels <= 33; levels++) {
		size_t n = 0;
		int nots = 0;
		for (int i = 1; i < levels; i++) {
			n += (size_t)snprintf(json + n, sizeof(json) - n,
			                      i % 2 ? "{\"$not\": " : "{\"$and\": [");
			nots += i % 2;
		}
		n += (size_t)snprintf(json + n, sizeof(json) - n, "{\"a\": 1}");
		for (int i = levels - 1; i >= 1; i--)
			n += (size_t)snprintf(json + n, sizeof(json) - n, i % 2 ? "}" : "]}");
		if (levels == 32) {
			filter *f = compile(json);
			size_t len;
			unsigned char *mp = encode("{\"a\": 1}", &len);
			assert_int_equal(filter_match(f, mp, len), nots % 2 == 0);
			free(mp);
			filter_free(f);
		} else
			assert_filter_rejected(json, OMEN_EINVAL, "nested deeper than 32 levels");
	}
	/* Distinct fields: 256 allowed, 257 not; repeats do not count. */
	for (int fields = 256; fields <= 257; fields++) {
		size_t n = (size_t)snprintf(json, sizeof(json), "{\"$or\": [{\"f0\": 1}");
		for (int i = 0; i < fields; i++)
			n += (size_t)snprintf(json + n, sizeof(json) - n, ", {\"f%d\": %d}", i, i);
		snprintf(json + n, sizeof(json) - n, "]}");
		if (fields == 256) {
			filter *f = compile(json);
			size_t len;
			unsigned char *mp = encode("{\"f255\": 255}", &len);
			assert_true(filter_match(f, mp, len));
			free(mp);
			mp = encode("{\"f255\": 254, \"f99\": 98}", &len);
			assert_false(filter_match(f, mp, len));
			free(mp);
			filter_free(f);
		} else
			assert_filter_rejected(json, OMEN_EINVAL,
			                       "more than 256 distinct field names");
	}
}

/* ---- Allocation failure inside jansson ---------------------------------------------------- */

static void *failing_malloc(size_t n)
{
	(void)n;
	return NULL;
}

/* jansson's first allocation failing is reported as OMEN_ENOMEM, not as bad input. Later
 * failures are not injected: jansson 2.14 reports some as syntax errors and, in its lexer,
 * fails an assert (lex_unget_unsave) and aborts. */
static void test_jansson_enomem(void **state)
{
	(void)state;
	filter *f = NULL;
	char err[256] = "";
	json_set_alloc_funcs(failing_malloc, free);
	int rc = filter_compile("{\"a\": 1}", &f, err, sizeof(err));
	json_set_alloc_funcs(malloc, free);
	assert_int_equal(rc, OMEN_ENOMEM);
	assert_string_equal(err, "filter: out of memory parsing JSON");
	assert_null(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_match_comparisons), cmocka_unit_test(test_match_mixed_numbers),
	    cmocka_unit_test(test_match_strings),     cmocka_unit_test(test_match_types),
	    cmocka_unit_test(test_match_missing),     cmocka_unit_test(test_match_in),
	    cmocka_unit_test(test_match_logic),       cmocka_unit_test(test_match_example),
	    cmocka_unit_test(test_match_corrupt),     cmocka_unit_test(test_compile_errors),
	    cmocka_unit_test(test_compile_limits),    cmocka_unit_test(test_jansson_enomem),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
