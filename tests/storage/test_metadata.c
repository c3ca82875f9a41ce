/*
 * Point metadata (storage/metadata.c): round trips and every rejection of the encoder, and the
 * decoder and the stored-map reader on corrupt, truncated, random and mutated bytes (run under
 * ASan to catch over-reads), and jansson allocation failures.
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

/* True when the stored-map reader (meta_iter, which filters use) walks len bytes at mp to a
 * clean end: the structural check, without the decoder's UTF-8 check. */
static bool iter_ok(const unsigned char *mp, size_t len)
{
	meta_iter it;
	const char *key;
	uint32_t klen;
	meta_value v;
	int more;
	if (!meta_iter_open(&it, mp, len))
		return false;
	while ((more = meta_iter_next(&it, &key, &klen, &v)) > 0)
		;
	return more == 0;
}

/* Asserts that len bytes are refused by the decoder and by the reader. */
static void assert_corrupt(const unsigned char *mp, size_t len)
{
	char *out = (char *)"untouched";
	int rc = decode_exact(mp, len, &out);
	if (rc != OMEN_ECORRUPT)
		fail_msg("%zu corrupt bytes (first 0x%02x) decoded with status %d", len,
		         len > 0 ? mp[0] : 0, rc);
	assert_string_equal(out, "untouched");
	assert_false(iter_ok(mp, len));
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
	assert_true(iter_ok(mp, len));
	for (size_t cut = 0; cut < len; cut++) {
		assert_corrupt(mp, cut);
	}
	/* One byte too many is as corrupt as one too few. */
	unsigned char *longer = malloc(len + 1);
	assert_non_null(longer);
	memcpy(longer, mp, len);
	for (int extra = 0; extra < 256; extra += 51) {
		longer[len] = (unsigned char)extra;
		assert_corrupt(longer, len + 1);
	}
	free(longer);
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
 * to a map that decodes to the same text; and a map that decodes always passes the reader's
 * structural check. */
static void check_arbitrary_bytes(const unsigned char *buf, size_t len)
{
	char *out = NULL;
	int rc = decode_exact(buf, len, &out);
	bool m = iter_ok(buf, len);
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
		check_arbitrary_bytes(buf, len);
	}
}

static void test_decode_mutated(void **state)
{
	(void)state;
	size_t len;
	unsigned char *mp = encode(rich_meta, &len);
	unsigned char *buf = malloc(len);
	assert_non_null(buf);
	for (int iter = 0; iter < 20000; iter++) {
		memcpy(buf, mp, len);
		int flips = 1 + (int)(rand_u64() % 3);
		for (int k = 0; k < flips; k++)
			buf[rand_u64() % len] = (unsigned char)rand_u64();
		check_arbitrary_bytes(buf, len);
	}
	free(buf);
	free(mp);
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
	char err[256] = "";
	json_set_alloc_funcs(failing_malloc, free);
	int rc = meta_encode_json("{\"a\": 1}", &mp, &len, err, sizeof(err));
	json_set_alloc_funcs(malloc, free);
	assert_int_equal(rc, OMEN_ENOMEM);
	assert_string_equal(err, "metadata: out of memory parsing JSON");
	assert_null(mp);
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
	    cmocka_unit_test(test_jansson_enomem),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
