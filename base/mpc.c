/*
 * The bounded msgpack cursor (base.h): the one reader of msgpack from outside bytes, for the
 * wire's structural check, the Raft state machine's commands and snapshots, and the stored
 * metadata that filters read. Format bytes as in the msgpack specification.
 */
#include <stdio.h>
#include <string.h>

#include "base/base.h"

static bool next_byte(mpc *c, unsigned char *b)
{
	if (c->pos >= c->len)
		return false;
	*b = c->p[c->pos++];
	return true;
}

/* An integer whose format byte b was read: positive/negative fixint, uint 8..64, int 8..64.
 * *v receives the value when it fits in int64 and *big 0; an unsigned value above INT64_MAX
 * goes to *big instead. */
static bool int_body(mpc *c, unsigned char b, int64_t *v, uint64_t *big)
{
	uint64_t x;
	*big = 0;
	if (b <= 0x7f || b >= 0xe0) {
		*v = (int8_t)b;
		return true;
	}
	if (b >= 0xcc && b <= 0xcf) {
		if (!mpc_be(c, 1u << (b - 0xcc), &x))
			return false;
		if (x > INT64_MAX)
			*big = x;
		*v = (int64_t)(x & INT64_MAX);
		return true;
	}
	if (b >= 0xd0 && b <= 0xd3) {
		unsigned w = 1u << (b - 0xd0);
		if (!mpc_be(c, w, &x))
			return false;
		*v = w == 1 ? (int8_t)x : w == 2 ? (int16_t)x : w == 4 ? (int32_t)x : (int64_t)x;
		return true;
	}
	return false;
}

bool mpc_int(mpc *c, int64_t *v)
{
	unsigned char b;
	uint64_t big;
	return next_byte(c, &b) && int_body(c, b, v, &big) && big == 0;
}

bool mpc_uint(mpc *c, uint64_t *v)
{
	unsigned char b;
	uint64_t big;
	int64_t s;
	if (!next_byte(c, &b) || !int_body(c, b, &s, &big))
		return false;
	if (big) {
		*v = big;
		return true;
	}
	if (s < 0)
		return false;
	*v = (uint64_t)s;
	return true;
}

bool mpc_u32(mpc *c, uint32_t *v)
{
	uint64_t x;
	if (!mpc_uint(c, &x) || x > UINT32_MAX)
		return false;
	*v = (uint32_t)x;
	return true;
}

bool mpc_i32(mpc *c, int *v)
{
	int64_t x;
	if (!mpc_int(c, &x) || x < INT32_MIN || x > INT32_MAX)
		return false;
	*v = (int)x;
	return true;
}

/* The payload of a str (fix form 0xa0..0xbf, str8/16/32 from 0xd9) or a bin (bin8/16/32 from
 * 0xc4) whose format byte b was read. */
static bool payload(mpc *c, unsigned char b, bool str, const unsigned char **d, size_t *n)
{
	uint64_t len;
	unsigned f8 = str ? 0xd9 : 0xc4;
	if (str && (b & 0xe0) == 0xa0)
		len = b & 0x1f;
	else if (b >= f8 && b <= f8 + 2) {
		if (!mpc_be(c, 1u << (b - f8), &len))
			return false;
	} else {
		return false;
	}
	if (len > mpc_left(c))
		return false;
	*d = c->p + c->pos;
	*n = (size_t)len;
	c->pos += (size_t)len;
	return true;
}

bool mpc_str(mpc *c, const char **s, size_t *n)
{
	unsigned char b;
	const unsigned char *d;
	if (!next_byte(c, &b) || !payload(c, b, true, &d, n))
		return false;
	*s = (const char *)d;
	return true;
}

bool mpc_bin(mpc *c, const unsigned char **d, size_t *n)
{
	unsigned char b;
	return next_byte(c, &b) && payload(c, b, false, d, n);
}

/* A container header: fix form (fixbase with a 4-bit count), 16- or 32-bit count at f16 and
 * f16 + 1. per: objects per entry (2 for maps); a count the bytes left cannot hold is
 * refused. */
static bool container(mpc *c, unsigned fixbase, unsigned f16, unsigned per, uint64_t *n)
{
	unsigned char b;
	uint64_t k;
	if (!next_byte(c, &b))
		return false;
	if ((b & 0xf0) == fixbase)
		k = b & 0x0f;
	else if (b == f16 || b == f16 + 1) {
		if (!mpc_be(c, b == f16 ? 2 : 4, &k))
			return false;
	} else {
		return false;
	}
	if (k * per > mpc_left(c))
		return false;
	*n = k;
	return true;
}

bool mpc_map(mpc *c, uint64_t *n)
{
	return container(c, 0x80, 0xde, 2, n);
}

bool mpc_arr(mpc *c, uint64_t *n)
{
	return container(c, 0x90, 0xdc, 1, n);
}

bool mpc_key(mpc *c, const char *key)
{
	const char *s;
	size_t n;
	return mpc_str(c, &s, &n) && n == strlen(key) && memcmp(s, key, n) == 0;
}

bool mpc_scalar(mpc *c, mpc_value *out)
{
	unsigned char b;
	uint64_t x;
	if (!next_byte(c, &b))
		return false;
	if (b == 0xc0) {
		out->type = MPC_NIL;
		return true;
	}
	if (b == 0xc2 || b == 0xc3) {
		out->type = MPC_BOOL;
		out->v.b = b == 0xc3;
		return true;
	}
	if (b == 0xca || b == 0xcb) {
		if (!mpc_be(c, b == 0xca ? 4 : 8, &x))
			return false;
		if (b == 0xca) {
			uint32_t w = (uint32_t)x;
			float f;
			memcpy(&f, &w, sizeof f);
			out->v.d = f;
		} else {
			memcpy(&out->v.d, &x, sizeof x);
		}
		out->type = MPC_FLOAT;
		return true;
	}
	if ((b & 0xe0) == 0xa0 || (b >= 0xd9 && b <= 0xdb)) {
		const unsigned char *d;
		if (!payload(c, b, true, &d, &out->v.str.n))
			return false;
		out->type = MPC_STR;
		out->v.str.s = (const char *)d;
		return true;
	}
	uint64_t big;
	if (!int_body(c, b, &out->v.i, &big))
		return false;
	out->type = big ? MPC_UINT : MPC_INT;
	if (big)
		out->v.u = big;
	return true;
}

/* ---- skipping with limits ---- */

/* Reports a malformed object: OMEN_EPROTO with the reason in err. */
#define fail(err, errlen, ...) err_set(err, errlen, OMEN_EPROTO, __VA_ARGS__)

typedef struct walk {
	mpc *c;
	const mpc_limits *lim;
	char *err;
	size_t errlen;
} walk;

static int skip_obj(walk *w, int depth);

/* Skips n payload bytes, refusing a length beyond the end. */
static int skip_bytes(walk *w, uint64_t n)
{
	mpc *c = w->c;
	if (n > mpc_left(c))
		return fail(w->err, w->errlen,
		            "truncated: %llu bytes declared at byte %zu, %zu remain",
		            (unsigned long long)n, c->pos, mpc_left(c));
	c->pos += (size_t)n;
	return OMEN_OK;
}

/* Skips count entries of per objects each, the container being at nesting level depth. */
static int skip_container(walk *w, int depth, uint64_t count, unsigned per)
{
	mpc *c = w->c;
	uint64_t objects = count * per;
	if (depth > w->lim->depth)
		return fail(w->err, w->errlen, "containers nested deeper than %d", w->lim->depth);
	if (per == 2 && w->lim->map_max && count > w->lim->map_max)
		return fail(w->err, w->errlen, "map of %llu entries (at most %llu)",
		            (unsigned long long)count, (unsigned long long)w->lim->map_max);
	if (objects > mpc_left(c))
		return fail(w->err, w->errlen,
		            "truncated: container of %llu entries at byte %zu, %zu bytes remain",
		            (unsigned long long)count, c->pos, mpc_left(c));
	if (w->lim->budget) {
		if (objects > *w->lim->budget)
			return fail(w->err, w->errlen, "too many objects in one message");
		*w->lim->budget -= objects;
	}
	for (uint64_t i = 0; i < objects; i++) {
		int st = skip_obj(w, depth + 1);
		if (st != OMEN_OK)
			return st;
	}
	return OMEN_OK;
}

/* Formats 0xc1..0xdf: how each continues after its first byte. */
enum { F_BAD, F_FIX, F_LEN, F_EXT, F_ARR, F_MAP };
static const struct {
	uint8_t kind, width; /* F_FIX: bytes of payload; else bytes of the length field */
} formats[32] = {
    [0x04] = {F_LEN, 1},  [0x05] = {F_LEN, 2}, [0x06] = {F_LEN, 4}, /* bin */
    [0x07] = {F_EXT, 1},  [0x08] = {F_EXT, 2}, [0x09] = {F_EXT, 4}, /* ext */
    [0x0a] = {F_FIX, 4},  [0x0b] = {F_FIX, 8},                      /* float */
    [0x0c] = {F_FIX, 1},  [0x0d] = {F_FIX, 2}, [0x0e] = {F_FIX, 4}, [0x0f] = {F_FIX, 8},
    [0x10] = {F_FIX, 1},  [0x11] = {F_FIX, 2}, [0x12] = {F_FIX, 4}, [0x13] = {F_FIX, 8},
    [0x14] = {F_FIX, 2},  [0x15] = {F_FIX, 3}, [0x16] = {F_FIX, 5}, [0x17] = {F_FIX, 9},
    [0x18] = {F_FIX, 17},                                           /* fixext */
    [0x19] = {F_LEN, 1},  [0x1a] = {F_LEN, 2}, [0x1b] = {F_LEN, 4}, /* str */
    [0x1c] = {F_ARR, 2},  [0x1d] = {F_ARR, 4}, [0x1e] = {F_MAP, 2}, [0x1f] = {F_MAP, 4},
};

/* Skips an object whose first byte b (0xc0..0xdf) was read. */
static int skip_typed(walk *w, int depth, unsigned char b)
{
	mpc *c = w->c;
	unsigned kind = formats[b - 0xc0].kind, width = formats[b - 0xc0].width;
	uint64_t n;
	if (b == 0xc0 || b == 0xc2 || b == 0xc3)
		return OMEN_OK;
	if (kind == F_BAD)
		return fail(w->err, w->errlen, "invalid byte 0x%02x at %zu", b, c->pos - 1);
	if (kind == F_FIX)
		return skip_bytes(w, width);
	if (!mpc_be(c, width, &n))
		return fail(w->err, w->errlen, "truncated header at byte %zu", c->pos);
	if (kind == F_LEN)
		return skip_bytes(w, n);
	if (kind == F_EXT)
		return skip_bytes(w, n + 1);
	return skip_container(w, depth, n, kind == F_MAP ? 2 : 1);
}

static int skip_obj(walk *w, int depth)
{
	unsigned char b;
	if (!next_byte(w->c, &b))
		return fail(w->err, w->errlen, "truncated at byte %zu", w->c->pos);
	if (b <= 0x7f || b >= 0xe0)
		return OMEN_OK;
	if ((b & 0xf0) == 0x80)
		return skip_container(w, depth, b & 0x0f, 2);
	if ((b & 0xf0) == 0x90)
		return skip_container(w, depth, b & 0x0f, 1);
	if ((b & 0xe0) == 0xa0)
		return skip_bytes(w, b & 0x1f);
	return skip_typed(w, depth, b);
}

int mpc_skip(mpc *c, const mpc_limits *lim, char *err, size_t errlen)
{
	walk w = {c, lim, err, errlen};
	return skip_obj(&w, 1);
}
