/*
 * The bounded msgpack cursor (base/mpc.c), read against msgpack-c as the reference encoder:
 * every integer width at its limits, strings and bins of each length form, container headers
 * whose counts the bytes cannot hold, scalars, and mpc_skip's limits; truncated and random
 * bytes in buffers of their exact size, so that ASan sees any read past the end.
 */
#include <msgpack.h>

#define OMEN_TEST_INTERNAL
#include "helpers.h"

/* A packer into a fresh buffer. */
typedef struct packed {
	msgpack_sbuffer sb;
	msgpack_packer pk;
} packed;

static void pk_init(packed *p)
{
	msgpack_sbuffer_init(&p->sb);
	msgpack_packer_init(&p->pk, &p->sb, msgpack_sbuffer_write);
}

/* The packed bytes copied into a block of exactly their size (freed by the caller). */
static unsigned char *exact(const packed *p)
{
	unsigned char *b = malloc(p->sb.size ? p->sb.size : 1);
	memcpy(b, p->sb.data, p->sb.size);
	return b;
}

static void test_integers(void **state)
{
	(void)state;
	static const int64_t ints[] = {0,         1,         127,        128,       255,
	                               256,       65535,     65536,      -1,        -32,
	                               -33,       -128,      -129,       -32768,    -32769,
	                               INT32_MIN, INT32_MAX, 4294967295, INT64_MAX, INT64_MIN};
	for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
		packed p;
		pk_init(&p);
		msgpack_pack_int64(&p.pk, ints[i]);
		unsigned char *b = exact(&p);
		mpc c = mpc_make(b, p.sb.size);
		int64_t v;
		assert_true(mpc_int(&c, &v));
		assert_true(v == ints[i]);
		assert_int_equal(mpc_left(&c), 0);
		c = mpc_make(b, p.sb.size);
		uint64_t u;
		assert_true(mpc_uint(&c, &u) == (ints[i] >= 0));
		c = mpc_make(b, p.sb.size);
		uint32_t u32;
		assert_true(mpc_u32(&c, &u32) == (ints[i] >= 0 && ints[i] <= UINT32_MAX));
		c = mpc_make(b, p.sb.size);
		int i32;
		assert_true(mpc_i32(&c, &i32) == (ints[i] >= INT32_MIN && ints[i] <= INT32_MAX));
		/* Every shorter prefix is refused. */
		for (size_t cut = 0; cut < p.sb.size; cut++) {
			c = mpc_make(b, cut);
			assert_false(mpc_int(&c, &v));
		}
		free(b);
		msgpack_sbuffer_destroy(&p.sb);
	}
	/* Above INT64_MAX: an unsigned only. */
	packed p;
	pk_init(&p);
	msgpack_pack_uint64(&p.pk, UINT64_MAX);
	mpc c = mpc_make(p.sb.data, p.sb.size);
	int64_t v;
	assert_false(mpc_int(&c, &v));
	c = mpc_make(p.sb.data, p.sb.size);
	uint64_t u;
	assert_true(mpc_uint(&c, &u) && u == UINT64_MAX);
	c = mpc_make(p.sb.data, p.sb.size);
	mpc_value x;
	assert_true(mpc_scalar(&c, &x) && x.type == MPC_UINT && x.v.u == UINT64_MAX);
	msgpack_sbuffer_destroy(&p.sb);
}

static void test_strings_and_bins(void **state)
{
	(void)state;
	static const size_t lens[] = {0, 1, 31, 32, 255, 256, 65535, 65536};
	char *text = malloc(70000);
	memset(text, 'q', 70000);
	for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
		packed p;
		pk_init(&p);
		msgpack_pack_str(&p.pk, lens[i]);
		msgpack_pack_str_body(&p.pk, text, lens[i]);
		msgpack_pack_bin(&p.pk, lens[i]);
		msgpack_pack_bin_body(&p.pk, text, lens[i]);
		unsigned char *b = exact(&p);
		mpc c = mpc_make(b, p.sb.size);
		const char *s, *first;
		const unsigned char *d;
		size_t n;
		assert_true(mpc_str(&c, &s, &n) && n == lens[i] && (!n || s[n - 1] == 'q'));
		first = s;
		assert_true(mpc_bin(&c, &d, &n) && n == lens[i]);
		assert_int_equal(mpc_left(&c), 0);
		/* A str is not a bin, and the other way round. */
		c = mpc_make(b, p.sb.size);
		assert_false(mpc_bin(&c, &d, &n));
		/* The string cut anywhere before its end: refused. */
		size_t str_end = (size_t)(first + lens[i] - (const char *)b);
		for (size_t cut = 0; cut < str_end; cut += 1 + cut / 8) {
			c = mpc_make(b, cut);
			assert_false(mpc_str(&c, &s, &n));
		}
		free(b);
		msgpack_sbuffer_destroy(&p.sb);
	}
	free(text);
	static const unsigned char key[] = {0xa3, 'a', 'b', 'c'};
	mpc c = mpc_make(key, sizeof key);
	assert_true(mpc_key(&c, "abc"));
	c = mpc_make(key, sizeof key);
	assert_false(mpc_key(&c, "abd"));
	c = mpc_make(key, sizeof key);
	assert_false(mpc_key(&c, "ab"));
}

static void test_containers(void **state)
{
	(void)state;
	uint64_t n;
	/* fixmap of 2 with its 4 objects present */
	static const unsigned char ok[] = {0x82, 1, 2, 3, 4};
	mpc c = mpc_make(ok, sizeof ok);
	assert_true(mpc_map(&c, &n) && n == 2);
	/* counts the bytes left cannot hold */
	static const unsigned char map32[] = {0xdf, 0xff, 0xff, 0xff, 0xff, 1, 2};
	c = mpc_make(map32, sizeof map32);
	assert_false(mpc_map(&c, &n));
	static const unsigned char arr16[] = {0xdc, 0x00, 0x03, 1, 2};
	c = mpc_make(arr16, sizeof arr16);
	assert_false(mpc_arr(&c, &n));
	static const unsigned char arr16ok[] = {0xdc, 0x00, 0x03, 1, 2, 3};
	c = mpc_make(arr16ok, sizeof arr16ok);
	assert_true(mpc_arr(&c, &n) && n == 3);
	/* a map is not an array */
	c = mpc_make(ok, sizeof ok);
	assert_false(mpc_arr(&c, &n));
}

static void test_scalars(void **state)
{
	(void)state;
	packed p;
	pk_init(&p);
	msgpack_pack_nil(&p.pk);
	msgpack_pack_true(&p.pk);
	msgpack_pack_false(&p.pk);
	msgpack_pack_float(&p.pk, 1.5f);
	msgpack_pack_double(&p.pk, -0.1);
	msgpack_pack_int(&p.pk, -7);
	msgpack_pack_str(&p.pk, 2);
	msgpack_pack_str_body(&p.pk, "hi", 2);
	msgpack_pack_array(&p.pk, 0);
	unsigned char *b = exact(&p);
	mpc c = mpc_make(b, p.sb.size);
	mpc_value x;
	assert_true(mpc_scalar(&c, &x) && x.type == MPC_NIL);
	assert_true(mpc_scalar(&c, &x) && x.type == MPC_BOOL && x.v.b);
	assert_true(mpc_scalar(&c, &x) && x.type == MPC_BOOL && !x.v.b);
	assert_true(mpc_scalar(&c, &x) && x.type == MPC_FLOAT && x.v.d == 1.5);
	assert_true(mpc_scalar(&c, &x) && x.type == MPC_FLOAT && x.v.d == -0.1);
	assert_true(mpc_scalar(&c, &x) && x.type == MPC_INT && x.v.i == -7);
	assert_true(mpc_scalar(&c, &x) && x.type == MPC_STR && x.v.str.n == 2 &&
	            memcmp(x.v.str.s, "hi", 2) == 0);
	assert_false(mpc_scalar(&c, &x)); /* an array is no scalar */
	static const unsigned char reserved[] = {0xc1};
	c = mpc_make(reserved, 1);
	assert_false(mpc_scalar(&c, &x));
	free(b);
	msgpack_sbuffer_destroy(&p.sb);
}

/* [[[...]]] nested depth deep, the innermost holding one integer. */
static size_t nested(unsigned char *buf, int depth, bool maps)
{
	size_t n = 0;
	for (int i = 0; i < depth; i++) {
		buf[n++] = maps ? 0x81 : 0x91;
		if (maps)
			buf[n++] = 0x01; /* key */
	}
	buf[n++] = 0x05;
	return n;
}

static int skip_with(const unsigned char *b, size_t len, int depth, uint64_t map_max,
                     uint64_t *budget, char *err)
{
	mpc c = mpc_make(b, len);
	mpc_limits lim = {depth, map_max, budget};
	int st = mpc_skip(&c, &lim, err, 128);
	if (st == OMEN_OK)
		assert_int_equal(mpc_left(&c), 0);
	return st;
}

static void test_skip_limits(void **state)
{
	(void)state;
	unsigned char buf[64];
	char err[128];
	for (int maps = 0; maps < 2; maps++) {
		size_t n = nested(buf, 8, maps);
		assert_int_equal(skip_with(buf, n, 8, 0, NULL, err), OMEN_OK);
		assert_int_equal(skip_with(buf, n, 7, 0, NULL, err), OMEN_EPROTO);
		assert_non_null(strstr(err, "nested deeper than 7"));
	}
	/* a map of 3 entries against a limit of 2 */
	static const unsigned char map3[] = {0x83, 1, 1, 2, 2, 3, 3};
	assert_int_equal(skip_with(map3, sizeof map3, 4, 3, NULL, err), OMEN_OK);
	assert_int_equal(skip_with(map3, sizeof map3, 4, 2, NULL, err), OMEN_EPROTO);
	assert_non_null(strstr(err, "map of 3 entries"));
	/* a budget of container entries, spent as they are met */
	uint64_t budget = 6;
	assert_int_equal(skip_with(map3, sizeof map3, 4, 0, &budget, err), OMEN_OK);
	assert_int_equal(budget, 0);
	budget = 5;
	assert_int_equal(skip_with(map3, sizeof map3, 4, 0, &budget, err), OMEN_EPROTO);
	/* 0xc1 is never used; ext and fixext are skipped whole */
	static const unsigned char c1[] = {0xc1};
	assert_int_equal(skip_with(c1, 1, 4, 0, NULL, err), OMEN_EPROTO);
	assert_non_null(strstr(err, "invalid byte 0xc1"));
	static const unsigned char ext[] = {0x92, 0xd4, 0x01, 0x02, 0xc7, 0x02, 0x05, 'a', 'b'};
	assert_int_equal(skip_with(ext, sizeof ext, 4, 0, NULL, err), OMEN_OK);
}

/* Every prefix of a message of every type is refused, in a buffer of exactly its size. */
static void test_skip_truncated(void **state)
{
	(void)state;
	packed p;
	pk_init(&p);
	msgpack_pack_map(&p.pk, 3);
	msgpack_pack_str(&p.pk, 1);
	msgpack_pack_str_body(&p.pk, "a", 1);
	msgpack_pack_array(&p.pk, 3);
	msgpack_pack_double(&p.pk, 2.5);
	msgpack_pack_uint64(&p.pk, 1ull << 40);
	msgpack_pack_bin(&p.pk, 300);
	static const char zeros[300];
	msgpack_pack_bin_body(&p.pk, zeros, 300);
	msgpack_pack_int(&p.pk, -1);
	msgpack_pack_nil(&p.pk);
	msgpack_pack_str(&p.pk, 40);
	msgpack_pack_str_body(&p.pk, zeros, 40);
	msgpack_pack_map(&p.pk, 0);
	char err[128];
	for (size_t cut = 0; cut <= p.sb.size; cut++) {
		unsigned char *b = malloc(cut ? cut : 1);
		memcpy(b, p.sb.data, cut);
		int st = skip_with(b, cut, 8, 0, NULL, err);
		assert_int_equal(st, cut == p.sb.size ? OMEN_OK : OMEN_EPROTO);
		free(b);
	}
	msgpack_sbuffer_destroy(&p.sb);
}

/* Random bytes: whatever mpc_skip answers, it reads inside the buffer and ends where
 * msgpack-c's own parser ends, when both accept. */
static void test_skip_random(void **state)
{
	(void)state;
	uint64_t s = 99;
	char err[128];
	for (int iter = 0; iter < 100000; iter++) {
		size_t len = 1 + rnd_next(&s) % 48;
		unsigned char *b = malloc(len);
		for (size_t i = 0; i < len; i++)
			b[i] = (unsigned char)(rnd_next(&s) >> 24);
		mpc c = mpc_make(b, len);
		mpc_limits lim = {8, 0, NULL};
		if (mpc_skip(&c, &lim, err, sizeof err) == OMEN_OK) {
			msgpack_unpacked up;
			msgpack_unpacked_init(&up);
			size_t off = 0;
			msgpack_unpack_return r =
			    msgpack_unpack_next(&up, (const char *)b, len, &off);
			assert_int_equal(r, MSGPACK_UNPACK_SUCCESS);
			assert_int_equal(off, c.pos);
			msgpack_unpacked_destroy(&up);
		}
		free(b);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_integers),    cmocka_unit_test(test_strings_and_bins),
	    cmocka_unit_test(test_containers),  cmocka_unit_test(test_scalars),
	    cmocka_unit_test(test_skip_limits), cmocka_unit_test(test_skip_truncated),
	    cmocka_unit_test(test_skip_random),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
