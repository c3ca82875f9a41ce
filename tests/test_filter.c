/*
 * Tests for point metadata and filters: metadata round trips and every rejection, decoding of
 * corrupt, truncated and random bytes (run under ASan to catch over-reads), the filter
 * semantics documented in docs/FILTERS.md, every compile error, and jansson allocation failures.
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
#include "omendb/omendb.h"
#include "storage/storage.h"

#define assert_omen_ok(expr) assert_int_equal((expr), OMEN_OK)

/* ---- Helpers ---------------------------------------------------------------------------- */

static uint64_t rng = 0x9e3779b97f4a7c15u;

/* xorshift64* with a fixed seed, so that failures reproduce. */
static uint64_t rand_u64(void)
{
	rng ^= rng >> 12;
	rng ^= rng << 25;
	rng ^= rng >> 27;
	return rng * 0x2545f4914f6cdd1du;
}

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

/* Decodes len bytes copied into an exactly sized heap block, so that ASan sees any over-read.
 * Returns the status; *json_out gets the text (caller frees) on success. */
static int decode_exact(const unsigned char *mp, size_t len, char **json_out)
{
	unsigned char *copy = malloc(len > 0 ? len : 1);
	assert_non_null(copy);
	if (len > 0)
		memcpy(copy, mp, len);
	int rc = meta_decode_json(len > 0 ? copy : NULL, len, json_out);
	free(copy);
	return rc;
}

/* Asserts that json encodes and decodes back to exactly want. */
static void assert_roundtrip(const char *json, const char *want)
{
	size_t len;
	unsigned char *mp = encode(json, &len);
	char *out = NULL;
	int rc = decode_exact(mp, len, &out);
	if (rc != OMEN_OK)
		fail_msg("decode of %s: status %d", json, rc);
	if (strcmp(out, want) != 0)
		fail_msg("round trip of %s: got %s, want %s", json, out, want);
	/* The decoded text encodes to the same bytes: the encoding is canonical. */
	size_t len2;
	unsigned char *mp2 = encode(out, &len2);
	assert_int_equal(len2, len);
	assert_memory_equal(mp2, mp, len);
	free(mp2);
	free(out);
	free(mp);
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

/* Asserts that metadata json is refused with want_rc and a message containing want_msg, and
 * that the output parameters are left alone. */
static void assert_meta_rejected(const char *json, int want_rc, const char *want_msg)
{
	unsigned char sentinel = 0, *mp = &sentinel;
	size_t len = 12345;
	char err[512] = "";
	int rc = meta_encode_json(json, &mp, &len, err, sizeof(err));
	assert_error(json != NULL ? json : "(NULL)", rc, err, want_rc, want_msg);
	assert_ptr_equal(mp, &sentinel);
	assert_int_equal(len, 12345);
}

/* Asserts that len bytes are refused by the decoder and never match, not even {}. */
static void assert_corrupt(const unsigned char *mp, size_t len)
{
	char *out = (char *)"untouched";
	int rc = decode_exact(mp, len, &out);
	if (rc != OMEN_ECORRUPT)
		fail_msg("%zu corrupt bytes (first 0x%02x) decoded with status %d", len,
		         len > 0 ? mp[0] : 0, rc);
	assert_string_equal(out, "untouched");
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

/* ---- Metadata round trips ----------------------------------------------------------------- */

static void test_meta_roundtrip_types(void **state)
{
	(void)state;
	assert_roundtrip("{}", "{}");
	assert_roundtrip(" { \"b\" : true , \"a\" : 1, \"e\": false, \"c\": -2.5, \"d\": \"x\" } ",
	                 "{\"a\":1,\"b\":true,\"c\":-2.5,\"d\":\"x\",\"e\":false}");
	assert_roundtrip("{\"s\": \"\"}", "{\"s\":\"\"}");
	/* Keys are stored sorted bytewise (shorter prefix first, bytes unsigned). */
	assert_roundtrip("{\"b\": 1, \"ab\": 2, \"a\": 3, \"B\": 4, \"\xc3\xa9\": 5}",
	                 "{\"B\":4,\"a\":3,\"ab\":2,\"b\":1,\"\xc3\xa9\":5}");
}

static void test_meta_roundtrip_ints(void **state)
{
	(void)state;
	/* Every msgpack integer width, at both ends. */
	char ints[] = "0 1 127 128 255 256 65535 65536 4294967295 4294967296 9223372036854775807 "
	              "-1 -32 -33 -128 -129 -32768 -32769 -2147483648 -2147483649 "
	              "-9223372036854775808";
	char *save = NULL;
	for (char *n = strtok_r(ints, " ", &save); n != NULL; n = strtok_r(NULL, " ", &save)) {
		char in[64], want[64];
		snprintf(in, sizeof(in), "{\"n\": %s}", n);
		snprintf(want, sizeof(want), "{\"n\":%s}", n);
		assert_roundtrip(in, want);
	}
}

static void test_meta_roundtrip_floats(void **state)
{
	(void)state;
	static const char *const cases[][2] = {
	    {"0.1", "0.1"},
	    {"1.0", "1.0"},
	    {"-0.0", "-0.0"},
	    {"2.5e0", "2.5"},
	    {"1e300", "1e+300"},
	    {"-1.5E-7", "-1.5e-07"},
	    {"123456789.125", "123456789.125"},
	    {"0.30000000000000004", "0.30000000000000004"},
	    {"5e-324", "5e-324"},
	    {"2.2250738585072009e-308", "2.225073858507201e-308"}, /* largest subnormal */
	    {"1e-310", "1e-310"},
	    {"1.7976931348623157e308", "1.7976931348623157e+308"},
	    {"9007199254740993.0", "9007199254740992.0"}, /* nearest double */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char in[80], want[80];
		snprintf(in, sizeof(in), "{\"x\": %s}", cases[i][0]);
		snprintf(want, sizeof(want), "{\"x\":%s}", cases[i][1]);
		assert_roundtrip(in, want);
	}
	/* Reals stay reals: 1.0 is not turned into the integer 1. */
	size_t len;
	unsigned char *mp = encode("{\"x\": 1.0}", &len);
	assert_int_equal(len, 1 + 2 + 9);
	assert_int_equal(mp[3], 0xcb);
	free(mp);
}

static void test_meta_roundtrip_strings(void **state)
{
	(void)state;
	assert_roundtrip(
	    "{\"\xe5\x90\x8d\xe5\x89\x8d\": \"caf\xc3\xa9 \xe2\x98\x95 \xf0\x9d\x84\x9e\"}",
	    "{\"\xe5\x90\x8d\xe5\x89\x8d\":\"caf\xc3\xa9 \xe2\x98\x95 \xf0\x9d\x84\x9e\"}");
	/* \u escapes arrive as UTF-8 and leave unescaped, except what JSON requires. */
	assert_roundtrip(
	    "{\"k\": \"\\u00e9\\ud834\\udd1e \\\" \\\\ \\/ \\n\\t\\r\\b\\f \\u0001 \\u001f "
	    "\\u007f\"}",
	    "{\"k\":\"\xc3\xa9\xf0\x9d\x84\x9e \\\" \\\\ / \\n\\t\\r\\b\\f \\u0001 \\u001f "
	    "\x7f\"}");
	/* A long key and a long value (str8 and str16 encodings). */
	char key[256], json[2048], want[2048], val[1001];
	memset(key, 'k', 255);
	key[255] = '\0';
	memset(val, 'v', 1000);
	val[1000] = '\0';
	snprintf(json, sizeof(json), "{\"%s\": \"%s\"}", key, val);
	snprintf(want, sizeof(want), "{\"%s\":\"%s\"}", key, val);
	assert_roundtrip(json, want);
}

/* Keys are limited in bytes, not characters: 85 three-byte characters are 255 bytes. */
static void test_meta_key_length(void **state)
{
	(void)state;
	char json[1024];
	size_t n = 0;
	json[n++] = '{';
	json[n++] = '"';
	for (int i = 0; i < 85; i++) {
		memcpy(json + n, "\xe2\x98\x95", 3);
		n += 3;
	}
	strcpy(json + n, "\": 1}");
	size_t len;
	free(encode(json, &len));
	memmove(json + 3, json + 2, strlen(json + 2) + 1); /* one more byte: 256 */
	json[2] = 'x';
	assert_meta_rejected(json, OMEN_EINVAL, "longer than 255");
}

static void test_meta_size_limit(void **state)
{
	(void)state;
	/* Exactly OMEN_MAX_METADATA bytes of JSON is allowed; one more is not. */
	char *json = malloc(OMEN_MAX_METADATA + 2);
	assert_non_null(json);
	memset(json, ' ', OMEN_MAX_METADATA + 1);
	memcpy(json, "{\"a\": 1", 7);
	json[OMEN_MAX_METADATA - 1] = '}';
	json[OMEN_MAX_METADATA] = '\0';
	size_t len;
	free(encode(json, &len));
	json[OMEN_MAX_METADATA - 1] = ' ';
	json[OMEN_MAX_METADATA] = '}';
	json[OMEN_MAX_METADATA + 1] = '\0';
	assert_meta_rejected(json, OMEN_EINVAL, "longer than 65536 bytes");
	free(json);
}

static void test_meta_rejections(void **state)
{
	(void)state;
	static const char *const cases[][2] = {
	    {"", "invalid JSON at line 1, column 0"},
	    {"{\"a\": 1", "invalid JSON at line 1"},
	    {"{\"a\":\n 1,\n \"b\" 2}", "invalid JSON at line 3, column"},
	    {"{\"a\": 1} {}", "end of file expected"},
	    {"{\"a\": 1} x", "invalid JSON"},
	    {"[1, 2]", "expected a JSON object, got an array"},
	    {"5", "expected a JSON object, got an integer"},
	    {"\"s\"", "expected a JSON object, got a string"},
	    {"null", "expected a JSON object, got null"},
	    {"true", "expected a JSON object, got true"},
	    {"{\"a\": null}", "metadata key 'a': value is null"},
	    {"{\"tags\": [\"x\"]}", "metadata key 'tags': value is an array"},
	    {"{\"o\": {\"b\": 1}}", "metadata key 'o': value is an object"},
	    {"{\"\": 1}", "empty key"},
	    {"{\"a\": 1, \"a\": 2}", "duplicate object key"},
	    {"{\"$a\": 1}", "reserved for filter operators"},
	    {"{\"a\": NaN}", "invalid JSON"},
	    {"{\"a\": Infinity}", "invalid JSON"},
	    {"{\"a\": -Infinity}", "invalid JSON"},
	    {"{\"a\": 1e400}", "number out of range at line 1"},
	    {"{\"a\": 9223372036854775808}", "number out of range"},
	    {"{\"a\": 18446744073709551615}", "number out of range"},
	    {"{\"a\": -9223372036854775809}", "number out of range"},
	    {"{\"a\": \"\xff\"}", "invalid JSON"},
	    {"{\"a\": \"\xed\xa0\x80\"}", "invalid JSON"}, /* encoded surrogate */
	    {"{\"a\": \"\xc0\x80\"}", "invalid JSON"},     /* overlong NUL */
	    {"{\"a\": \"x\\u0000y\"}", "invalid JSON"},    /* NUL in a string */
	    {"{\"a\\u0000b\": 1}", "invalid JSON"},        /* NUL in a key */
	    {"{\"a\": \"\\ud800\"}", "invalid JSON"},      /* lone surrogate */
	    {"{\"a\": 01}", "invalid JSON"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		assert_meta_rejected(cases[i][0], OMEN_EINVAL, cases[i][1]);
	assert_meta_rejected(NULL, OMEN_EINVAL, "NULL");
	/* err may be NULL or empty. */
	unsigned char *mp = NULL;
	size_t len = 0;
	assert_int_equal(meta_encode_json("[]", &mp, &len, NULL, 0), OMEN_EINVAL);
	char tiny[4] = "xyz";
	assert_int_equal(meta_encode_json("[]", &mp, &len, tiny, 1), OMEN_EINVAL);
	assert_string_equal(tiny, "");
	assert_null(mp);
}

/* ---- Decoding corrupt bytes --------------------------------------------------------------- */

static const char rich_meta[] =
    "{\"a\": 1, \"big\": 9223372036854775807, \"neg\": -9223372036854775808, \"m16\": -300,"
    " \"u16\": 40000, \"u32\": 3000000000, \"f\": 0.1, \"t\": true, \"no\": false,"
    " \"s\": \"caf\xc3\xa9\", \"kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk\": \"x\","
    " \"long\": \"" /* 300 bytes: str16 */
    "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890"
    "1234567890123456789012345678901234567890123456789012345678901234567890123456789012345678901"
    "2345678901234567890123456789012345678901234567890123456789012345678901234567890123456789012"
    "345678901234567890123\"}";

static void test_decode_truncated(void **state)
{
	(void)state;
	size_t len;
	unsigned char *mp = encode(rich_meta, &len);
	filter *all = compile("{}"), *ne = compile("{\"zzz\": {\"$ne\": 1}}");
	assert_true(filter_match(all, mp, len));
	for (size_t cut = 0; cut < len; cut++) {
		assert_corrupt(mp, cut);
		unsigned char *copy = malloc(cut + 1);
		assert_non_null(copy);
		memcpy(copy, mp, cut);
		if (cut > 0 && (filter_match(all, copy, cut) || filter_match(ne, copy, cut)))
			fail_msg("truncated to %zu of %zu bytes, still matches", cut, len);
		free(copy);
	}
	/* One byte too many is as corrupt as one too few. */
	unsigned char *longer = malloc(len + 1);
	assert_non_null(longer);
	memcpy(longer, mp, len);
	for (int extra = 0; extra < 256; extra += 51) {
		longer[len] = (unsigned char)extra;
		assert_corrupt(longer, len + 1);
		assert_false(filter_match(all, longer, len + 1));
	}
	free(longer);
	filter_free(all);
	filter_free(ne);
	free(mp);
}

/* Hand-assembled maps: each is corrupt for one reason. */
static void test_decode_corrupt_structures(void **state)
{
	(void)state;
	static const struct {
		const char *why;
		unsigned char bytes[24];
		size_t len;
	} cases[] = {
	    {"empty", {0}, 0},
	    {"nil", {0xc0}, 1},
	    {"array", {0x91, 0x01}, 2},
	    {"integer", {0x05}, 1},
	    {"string", {0xa1, 'a'}, 2},
	    {"map32 claiming 4G entries", {0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 'a', 0x01}, 8},
	    {"map16 claiming 2 entries", {0xde, 0x00, 0x02, 0xa1, 'a', 0x01}, 6},
	    {"integer key", {0x81, 0x01, 0x01}, 3},
	    {"nil key", {0x81, 0xc0, 0x01}, 3},
	    {"bin key", {0x81, 0xc4, 0x01, 'a', 0x01}, 5},
	    {"empty key", {0x81, 0xa0, 0x01}, 3},
	    {"duplicate keys", {0x82, 0xa1, 'a', 0x01, 0xa1, 'a', 0x02}, 7},
	    {"unsorted keys", {0x82, 0xa1, 'b', 0x01, 0xa1, 'a', 0x02}, 7},
	    {"prefix after longer", {0x82, 0xa2, 'a', 'b', 0x01, 0xa1, 'a', 0x02}, 8},
	    {"nil value", {0x81, 0xa1, 'a', 0xc0}, 4},
	    {"array value", {0x81, 0xa1, 'a', 0x90}, 4},
	    {"map value", {0x81, 0xa1, 'a', 0x80}, 4},
	    {"bin value", {0x81, 0xa1, 'a', 0xc4, 0x00}, 5},
	    {"ext value", {0x81, 0xa1, 'a', 0xd4, 0x01, 0x00}, 6},
	    {"reserved 0xc1", {0x81, 0xa1, 'a', 0xc1}, 4},
	    {"uint64 over INT64_MAX", {0x81, 0xa1, 'a', 0xcf, 0x80, 0, 0, 0, 0, 0, 0, 0}, 12},
	    {"float64 NaN", {0x81, 0xa1, 'a', 0xcb, 0x7f, 0xf8, 0, 0, 0, 0, 0, 0}, 12},
	    {"float64 +Inf", {0x81, 0xa1, 'a', 0xcb, 0x7f, 0xf0, 0, 0, 0, 0, 0, 0}, 12},
	    {"float32 -Inf", {0x81, 0xa1, 'a', 0xca, 0xff, 0x80, 0, 0}, 8},
	    {"str32 claiming 4 GiB", {0x81, 0xa1, 'a', 0xdb, 0xff, 0xff, 0xff, 0xff, 'x'}, 9},
	    {"invalid UTF-8 value", {0x81, 0xa1, 'a', 0xa1, 0xff}, 5},
	    {"invalid UTF-8 key", {0x81, 0xa1, 0x80, 0x01}, 4},
	    {"truncated UTF-8 value", {0x81, 0xa1, 'a', 0xa2, 'x', 0xc3}, 6},
	    {"overlong UTF-8", {0x81, 0xa1, 'a', 0xa2, 0xc0, 0x80}, 6},
	    {"surrogate in UTF-8", {0x81, 0xa1, 'a', 0xa3, 0xed, 0xa0, 0x80}, 7},
	    {"code point past U+10FFFF", {0x81, 0xa1, 'a', 0xa4, 0xf4, 0x90, 0x80, 0x80}, 8},
	    {"NUL in value", {0x81, 0xa1, 'a', 0xa1, 0x00}, 5},
	    {"NUL in key", {0x81, 0xa2, 'a', 0x00, 0x01}, 5},
	    {"key starting with $", {0x81, 0xa2, '$', 'a', 0x01}, 5},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *out = NULL;
		int rc = decode_exact(cases[i].bytes, cases[i].len, &out);
		if (rc != OMEN_ECORRUPT)
			fail_msg("%s: status %d, want OMEN_ECORRUPT", cases[i].why, rc);
	}
	/* A 256-byte key (str16) is corrupt; a NULL pointer is corrupt. */
	unsigned char key256[3 + 3 + 256 + 1] = {0x81, 0xda, 0x01, 0x00};
	memset(key256 + 4, 'k', 256);
	key256[4 + 256] = 0x01;
	assert_corrupt(key256, 4 + 256 + 1);
	char *out = NULL;
	assert_int_equal(meta_decode_json(NULL, 0, &out), OMEN_ECORRUPT);
	assert_null(out);
}

/* Bytes that are not what the encoder writes but hold valid values decode fine. */
static void test_decode_lenient_encodings(void **state)
{
	(void)state;
	static const struct {
		unsigned char bytes[16];
		size_t len;
		const char *want;
	} cases[] = {
	    {{0xde, 0x00, 0x01, 0xa1, 'a', 0xcd, 0x00, 0x05}, 8, "{\"a\":5}"},
	    {{0xdf, 0, 0, 0, 0}, 5, "{}"},
	    {{0x81, 0xd9, 0x01, 'a', 0xd3, 0, 0, 0, 0, 0, 0, 0, 0x07}, 13, "{\"a\":7}"},
	    {{0x81, 0xa1, 'a', 0xd0, 0x05}, 5, "{\"a\":5}"},
	    {{0x81, 0xa1, 'a', 0xca, 0x3f, 0xc0, 0x00, 0x00}, 8, "{\"a\":1.5}"},
	    {{0x81, 0xa1, 'a', 0xdb, 0, 0, 0, 2, 'h', 'i'}, 10, "{\"a\":\"hi\"}"},
	    {{0x81, 0xa1, 'a', 0xe0}, 4, "{\"a\":-32}"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *out = NULL;
		assert_omen_ok(decode_exact(cases[i].bytes, cases[i].len, &out));
		assert_string_equal(out, cases[i].want);
		free(out);
	}
}

/* Checks the decoder's contract on arbitrary bytes: ECORRUPT or a JSON object that encodes back
 * to a map that decodes to the same text; and a map that decodes always passes the empty
 * filter's structural check. */
static void check_arbitrary_bytes(const filter *all, const unsigned char *buf, size_t len)
{
	char *out = NULL;
	int rc = decode_exact(buf, len, &out);
	bool m = filter_match(all, buf, len);
	if (rc == OMEN_ECORRUPT)
		return;
	assert_omen_ok(rc);
	assert_true(m);
	size_t len2;
	unsigned char *mp2 = encode(out, &len2);
	char *out2 = NULL;
	assert_omen_ok(decode_exact(mp2, len2, &out2));
	assert_string_equal(out, out2);
	free(out2);
	free(mp2);
	free(out);
}

static void test_decode_random_bytes(void **state)
{
	(void)state;
	static const unsigned char firsts[] = {0x80, 0x81, 0x82, 0x83, 0x8f, 0xde, 0xdf};
	static const unsigned char common[] = {0xa1, 'a', 'b', 0x01, 0xcb, 0xc3, 0xa2, 0xd9, 0x00};
	filter *all = compile("{}");
	unsigned char buf[64];
	for (int iter = 0; iter < 200000; iter++) {
		size_t len = rand_u64() % sizeof(buf);
		for (size_t i = 0; i < len; i++) {
			uint64_t r = rand_u64();
			buf[i] = r % 3 == 0 ? common[(r >> 8) % sizeof(common)]
			                    : (unsigned char)(r >> 16);
		}
		if (len > 0 && iter % 2 == 0)
			buf[0] = firsts[rand_u64() % sizeof(firsts)];
		check_arbitrary_bytes(all, buf, len);
	}
	filter_free(all);
}

static void test_decode_mutated(void **state)
{
	(void)state;
	size_t len;
	unsigned char *mp = encode(rich_meta, &len);
	unsigned char *buf = malloc(len);
	assert_non_null(buf);
	filter *all = compile("{}");
	for (int iter = 0; iter < 20000; iter++) {
		memcpy(buf, mp, len);
		int flips = 1 + (int)(rand_u64() % 3);
		for (int k = 0; k < flips; k++)
			buf[rand_u64() % len] = (unsigned char)rand_u64();
		check_arbitrary_bytes(all, buf, len);
	}
	filter_free(all);
	free(buf);
	free(mp);
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
	assert_corrupt(bad_utf8, sizeof(bad_utf8));
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
	unsigned char *mp = NULL;
	size_t len = 0;
	filter *f = NULL;
	char err[256] = "";
	json_set_alloc_funcs(failing_malloc, free);
	int rc_meta = meta_encode_json("{\"a\": 1}", &mp, &len, err, sizeof(err));
	int rc_filter = filter_compile("{\"a\": 1}", &f, err, sizeof(err));
	json_set_alloc_funcs(malloc, free);
	assert_int_equal(rc_meta, OMEN_ENOMEM);
	assert_int_equal(rc_filter, OMEN_ENOMEM);
	assert_string_equal(err, "filter: out of memory parsing JSON");
	assert_null(mp);
	assert_null(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_meta_roundtrip_types),
	    cmocka_unit_test(test_meta_roundtrip_ints),
	    cmocka_unit_test(test_meta_roundtrip_floats),
	    cmocka_unit_test(test_meta_roundtrip_strings),
	    cmocka_unit_test(test_meta_key_length),
	    cmocka_unit_test(test_meta_size_limit),
	    cmocka_unit_test(test_meta_rejections),
	    cmocka_unit_test(test_decode_truncated),
	    cmocka_unit_test(test_decode_corrupt_structures),
	    cmocka_unit_test(test_decode_lenient_encodings),
	    cmocka_unit_test(test_decode_random_bytes),
	    cmocka_unit_test(test_decode_mutated),
	    cmocka_unit_test(test_match_comparisons),
	    cmocka_unit_test(test_match_mixed_numbers),
	    cmocka_unit_test(test_match_strings),
	    cmocka_unit_test(test_match_types),
	    cmocka_unit_test(test_match_missing),
	    cmocka_unit_test(test_match_in),
	    cmocka_unit_test(test_match_logic),
	    cmocka_unit_test(test_match_example),
	    cmocka_unit_test(test_match_corrupt),
	    cmocka_unit_test(test_compile_errors),
	    cmocka_unit_test(test_compile_limits),
	    cmocka_unit_test(test_jansson_enomem),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
