/*
 * Point metadata and metadata filters: the stored form of a point's metadata, and the matcher
 * that a filtered search runs once per stored point. docs/FILTERS.md is the user-facing syntax.
 *
 * Metadata JSON is parsed with jansson and packed with msgpack-c into a canonical map: string
 * keys in strictly increasing byte order, scalar values only. Stored maps are read back with the
 * small bounds-checked reader below rather than msgpack_unpack_next(), which allocates a zone
 * per call and, given a corrupt 5-byte map header, first tries to allocate 256 GiB; the
 * matcher must be allocation-free and safe on any bytes.
 */
#include "engine/filter.h"

#include <float.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "omendb/omendb.h"

#define META_MAX_KEY      255 /* bytes in a metadata key or filter field name */
#define FILTER_MAX_DEPTH  32  /* filter objects nested inside one another */
#define FILTER_MAX_FIELDS 256 /* distinct field names in one filter */
#define PATH_MAX_LEN      160 /* bytes of "$and[1].year" kept for error messages */

/* ---- Errors --------------------------------------------------------------------------- */

static int fail(int status, char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Writes a one-line reason into err (which may be NULL) and returns status. */
static int fail(int status, char *err, size_t errlen, const char *fmt, ...)
{
	if (err != NULL && errlen > 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return status;
}

static const char *json_kind(const json_t *j)
{
	switch (json_typeof(j)) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
		return "an integer";
	case JSON_REAL:
		return "a real number";
	case JSON_TRUE:
		return "true";
	case JSON_FALSE:
		return "false";
	default:
		return "null";
	}
}

/* Parses text (len bytes) as exactly one JSON value, refusing duplicate keys. On failure
 * returns NULL and sets *status to OMEN_ENOMEM or OMEN_EINVAL with jansson's position. */
static json_t *parse_json(const char *text, size_t len, const char *what, int *status, char *err,
                          size_t errlen)
{
	json_error_t je;
	json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &je);
	if (root != NULL)
		return root;
	/* jansson fails without a message only when its first allocation fails. */
	if (json_error_code(&je) == json_error_out_of_memory || je.text[0] == '\0')
		*status = fail(OMEN_ENOMEM, err, errlen, "%s: out of memory parsing JSON", what);
	else if (json_error_code(&je) == json_error_numeric_overflow)
		*status = fail(OMEN_EINVAL, err, errlen,
		               "%s: number out of range at line %d, column %d (integers must fit "
		               "in a signed 64-bit integer, reals in a double)",
		               what, je.line, je.column);
	else
		*status =
		    fail(OMEN_EINVAL, err, errlen, "%s: invalid JSON at line %d, column %d: %s",
		         what, je.line, je.column, je.text);
	return NULL;
}

/* ---- Values and the stored-map reader -------------------------------------------------- */

enum vtype { V_MISSING = 0, V_BOOL, V_INT, V_FLOAT, V_STR };

/* A scalar from a stored map or a filter operand. Strings are borrowed: they point into the
 * stored bytes or into the filter's JSON tree. */
struct value {
	uint8_t type;
	uint32_t len; /* V_STR: bytes at u.s */
	union {
		bool b;
		int64_t i;
		double d;
		const char *s;
	} u;
};

struct reader {
	const unsigned char *p;
	const unsigned char *end;
};

/* Reads an n-byte big-endian unsigned integer (n <= 8); false if fewer than n bytes remain. */
static inline bool rd_be(struct reader *r, unsigned n, uint64_t *out)
{
	uint64_t x = 0;
	if ((size_t)(r->end - r->p) < n)
		return false;
	for (unsigned k = 0; k < n; k++)
		x = x << 8 | r->p[k];
	r->p += n;
	*out = x;
	return true;
}

/* Reads the body of a string whose header byte was tag (fixstr, str8, str16 or str32). */
static inline bool rd_str_body(struct reader *r, unsigned tag, const char **s, uint32_t *len)
{
	uint64_t n;
	if ((tag & 0xe0) == 0xa0)
		n = tag & 0x1f;
	else if (tag >= 0xd9 && tag <= 0xdb) {
		if (!rd_be(r, 1u << (tag - 0xd9), &n))
			return false;
	} else
		return false;
	if ((size_t)(r->end - r->p) < n)
		return false;
	*s = (const char *)r->p;
	*len = (uint32_t)n;
	r->p += n;
	return true;
}

/* Reads a number whose header byte tag is one of the fixed-size int/uint/float formats. */
static bool rd_number(struct reader *r, unsigned tag, struct value *v)
{
	uint64_t x;
	if (tag == 0xca || tag == 0xcb) {
		if (!rd_be(r, tag == 0xca ? 4 : 8, &x))
			return false;
		if (tag == 0xca) {
			uint32_t w = (uint32_t)x;
			float f;
			memcpy(&f, &w, sizeof(f));
			v->u.d = f;
		} else
			memcpy(&v->u.d, &x, sizeof(x));
		v->type = V_FLOAT;
		return isfinite(v->u.d); /* NaN and infinities are never stored */
	}
	unsigned n = 1u << ((tag - 0xcc) & 3); /* 0xcc..0xcf uint, 0xd0..0xd3 int */
	if (!rd_be(r, n, &x))
		return false;
	v->type = V_INT;
	if (tag <= 0xcf) {
		v->u.i = (int64_t)x;
		return x <= INT64_MAX; /* larger integers cannot come from jansson: never stored */
	}
	v->u.i = n == 1 ? (int8_t)x : n == 2 ? (int16_t)x : n == 4 ? (int32_t)x : (int64_t)x;
	return true;
}

/* Reads one scalar value. Anything else (nil, arrays, maps, bin, ext) is corrupt. */
static inline bool rd_value(struct reader *r, struct value *v)
{
	if (r->p == r->end)
		return false;
	unsigned tag = *r->p++;
	if (tag <= 0x7f || tag >= 0xe0) {
		v->type = V_INT;
		v->u.i = tag <= 0x7f ? (int64_t)tag : (int8_t)tag; /* positive / negative fixint */
		return true;
	}
	if (tag == 0xc2 || tag == 0xc3) {
		v->type = V_BOOL;
		v->u.b = tag == 0xc3;
		return true;
	}
	if (tag >= 0xca && tag <= 0xd3)
		return rd_number(r, tag, v);
	v->type = V_STR;
	return rd_str_body(r, tag, &v->u.s, &v->len);
}

/* Bytewise order of two byte strings, a shorter prefix first. */
static inline int bytes_cmp(const char *a, uint32_t alen, const char *b, uint32_t blen)
{
	/* Most keys differ in their first byte: settle those without calling memcmp. */
	if (alen > 0 && blen > 0 && a[0] != b[0])
		return (int)(unsigned char)a[0] - (int)(unsigned char)b[0];
	int c = memcmp(a, b, alen < blen ? alen : blen);
	if (c != 0)
		return c;
	return (alen > blen) - (alen < blen);
}

/* Iterates over a stored map, checking its structure as it goes. */
struct map_iter {
	struct reader r;
	uint64_t left;
	const char *prev; /* previous key; keys must strictly increase */
	uint32_t prevlen;
};

/* Starts iterating over len bytes at mp; false if they do not begin with a map header. */
static bool map_open(struct map_iter *it, const unsigned char *mp, size_t len)
{
	it->r.p = mp;
	it->r.end = mp + len;
	it->prev = NULL;
	it->prevlen = 0;
	if (len == 0)
		return false;
	unsigned tag = *it->r.p++;
	if ((tag & 0xf0) == 0x80) {
		it->left = tag & 0x0f;
		return true;
	}
	if (tag == 0xde || tag == 0xdf)
		return rd_be(&it->r, tag == 0xde ? 2 : 4, &it->left);
	return false;
}

/* Reads the next entry. Returns 1 with *key, *klen and *v set (borrowed from the map bytes), 0
 * at a clean end (no bytes after the last entry), or -1 if the bytes are corrupt: truncated,
 * a key that is not a 1..255-byte string, starts with '$' or is not greater than the previous
 * key, a value that is not a scalar, or trailing bytes. String contents (UTF-8) are not checked
 * here. */
static inline int map_next(struct map_iter *it, const char **key, uint32_t *klen, struct value *v)
{
	if (it->left == 0)
		return it->r.p == it->r.end ? 0 : -1;
	if (it->r.p == it->r.end)
		return -1;
	unsigned tag = *it->r.p++;
	if (!rd_str_body(&it->r, tag, key, klen) || *klen == 0 || *klen > META_MAX_KEY ||
	    (*key)[0] == '$')
		return -1;
	if (it->prev != NULL && bytes_cmp(it->prev, it->prevlen, *key, *klen) >= 0)
		return -1;
	if (!rd_value(&it->r, v))
		return -1;
	it->prev = *key;
	it->prevlen = *klen;
	it->left--;
	return 1;
}

/* True if s[0..n) is well-formed UTF-8 (no overlongs, surrogates or code points past
 * U+10FFFF) without NUL bytes, which is what jansson accepts into a string. */
static bool text_ok(const char *str, size_t n)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;
	while (i < n) {
		unsigned c = s[i], lo = 0x80, hi = 0xbf;
		size_t need;
		if (c >= 0x01 && c <= 0x7f) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			need = 1;
		else if (c >= 0xe0 && c <= 0xef) {
			need = 2;
			lo = c == 0xe0 ? 0xa0 : 0x80;
			hi = c == 0xed ? 0x9f : 0xbf;
		} else if (c >= 0xf0 && c <= 0xf4) {
			need = 3;
			lo = c == 0xf0 ? 0x90 : 0x80;
			hi = c == 0xf4 ? 0x8f : 0xbf;
		} else
			return false;
		if (n - i - 1 < need || s[i + 1] < lo || s[i + 1] > hi)
			return false;
		for (size_t k = 2; k <= need; k++)
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
		i += need + 1;
	}
	return true;
}

/* ---- Encoding ------------------------------------------------------------------------- */

static int cstr_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Checks that one metadata entry is storable; 0 or OMEN_EINVAL with the reason. */
static int meta_check_entry(const char *key, const json_t *v, char *err, size_t errlen)
{
	size_t klen = strlen(key);
	if (klen == 0)
		return fail(OMEN_EINVAL, err, errlen, "metadata: empty key");
	if (klen > META_MAX_KEY)
		return fail(OMEN_EINVAL, err, errlen,
		            "metadata key '%.40s...': %zu bytes, longer than %d", key, klen,
		            META_MAX_KEY);
	if (key[0] == '$')
		return fail(OMEN_EINVAL, err, errlen,
		            "metadata key '%s': keys starting with '$' are reserved for filter "
		            "operators",
		            key);
	if (json_is_object(v) || json_is_array(v) || json_is_null(v))
		return fail(OMEN_EINVAL, err, errlen,
		            "metadata key '%s': value is %s; only integers, reals, strings and "
		            "booleans are allowed",
		            key, json_kind(v));
	return 0;
}

/* Packs one scalar JSON value; 0 or nonzero if the buffer could not grow. */
static int pack_value(msgpack_packer *pk, const json_t *v)
{
	size_t n;
	switch (json_typeof(v)) {
	case JSON_INTEGER:
		return msgpack_pack_int64(pk, json_integer_value(v));
	case JSON_REAL:
		return msgpack_pack_double(pk, json_real_value(v));
	case JSON_STRING:
		n = json_string_length(v);
		if (msgpack_pack_str(pk, n) != 0)
			return -1;
		return msgpack_pack_str_body(pk, json_string_value(v), n);
	case JSON_TRUE:
		return msgpack_pack_true(pk);
	default:
		return msgpack_pack_false(pk);
	}
}

/* Packs the checked object root with its n keys, sorted, into a malloc'd buffer trimmed to
 * size. 0 or OMEN_ENOMEM. */
static int pack_object(const json_t *root, const char **keys, size_t n, unsigned char **out,
                       size_t *out_len)
{
	msgpack_sbuffer sb;
	msgpack_packer pk;
	msgpack_sbuffer_init(&sb);
	msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
	int failed = msgpack_pack_map(&pk, (uint32_t)n);
	for (size_t i = 0; i < n && failed == 0; i++) {
		size_t klen = strlen(keys[i]);
		failed = msgpack_pack_str(&pk, klen) || msgpack_pack_str_body(&pk, keys[i], klen) ||
		         pack_value(&pk, json_object_get(root, keys[i]));
	}
	if (failed != 0) {
		msgpack_sbuffer_destroy(&sb);
		return OMEN_ENOMEM;
	}
	/* sbuffer starts at 8 KiB; callers may hold many encodings at once, so trim. */
	size_t size = sb.size;
	char *data = msgpack_sbuffer_release(&sb);
	char *trimmed = realloc(data, size);
	*out = (unsigned char *)(trimmed != NULL ? trimmed : data);
	*out_len = size;
	return 0;
}

int meta_encode_json(const char *json, unsigned char **out, size_t *out_len, char *err,
                     size_t errlen)
{
	int rc = 0;
	size_t len, n, i = 0;
	const char **keys, *key;
	json_t *root, *v;
	if (json == NULL)
		return fail(OMEN_EINVAL, err, errlen, "metadata: NULL JSON text");
	len = strnlen(json, (size_t)OMEN_MAX_METADATA + 1);
	if (len > OMEN_MAX_METADATA)
		return fail(OMEN_EINVAL, err, errlen, "metadata: JSON text longer than %d bytes",
		            OMEN_MAX_METADATA);
	root = parse_json(json, len, "metadata", &rc, err, errlen);
	if (root == NULL)
		return rc;
	if (!json_is_object(root)) {
		rc = fail(OMEN_EINVAL, err, errlen, "metadata: expected a JSON object, got %s",
		          json_kind(root));
		goto out_root;
	}
	n = json_object_size(root);
	keys = malloc((n > 0 ? n : 1) * sizeof(*keys));
	if (keys == NULL) {
		rc = fail(OMEN_ENOMEM, err, errlen, "metadata: out of memory");
		goto out_root;
	}
	json_object_foreach(root, key, v)
	{
		if ((rc = meta_check_entry(key, v, err, errlen)) != 0)
			goto out_keys;
		keys[i++] = key;
	}
	qsort(keys, n, sizeof(*keys), cstr_cmp);
	rc = pack_object(root, keys, n, out, out_len);
	if (rc != 0)
		fail(rc, err, errlen, "metadata: out of memory");
out_keys:
	free(keys);
out_root:
	json_decref(root);
	return rc;
}

/* ---- Decoding ------------------------------------------------------------------------- */

/* A growing text buffer; oom latches the first allocation failure. */
struct text {
	char *p;
	size_t len, cap;
	bool oom;
};

/* Makes room for n more bytes; false (and oom set) if it cannot. */
static bool text_reserve(struct text *t, size_t n)
{
	if (t->oom)
		return false;
	if (t->cap - t->len >= n)
		return true;
	size_t cap = t->cap * 2 > t->len + n ? t->cap * 2 : t->len + n + 64;
	char *p = realloc(t->p, cap);
	if (p == NULL) {
		t->oom = true;
		return false;
	}
	t->p = p;
	t->cap = cap;
	return true;
}

static void text_put(struct text *t, const char *s, size_t n)
{
	if (text_reserve(t, n)) {
		memcpy(t->p + t->len, s, n);
		t->len += n;
	}
}

/* Appends s[0..n) as a JSON string literal; UTF-8 passes through unescaped. */
static void text_put_string(struct text *t, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	if (!text_reserve(t, 6 * n + 2))
		return;
	char *o = t->p + t->len;
	*o++ = '"';
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			*o++ = '\\';
			*o++ = (char)c;
		} else if (c < 0x20) {
			const char *esc = c == '\n'   ? "\\n"
			                  : c == '\t' ? "\\t"
			                  : c == '\r' ? "\\r"
			                  : c == '\b' ? "\\b"
			                  : c == '\f' ? "\\f"
			                              : NULL;
			if (esc != NULL) {
				memcpy(o, esc, 2);
				o += 2;
			} else {
				memcpy(o, "\\u00", 4);
				o[4] = hex[c >> 4];
				o[5] = hex[c & 15];
				o += 6;
			}
		} else
			*o++ = (char)c;
	}
	*o++ = '"';
	t->len = (size_t)(o - t->p);
}

/* Appends the shortest decimal that reads back as d, always with a '.' or an exponent so that
 * it reads back as a real, not an integer. The locale's decimal separator (a comma, or several
 * bytes) is written as '.'. */
static void text_put_double(struct text *t, double d)
{
	char buf[64], out[72];
	size_t n = 0;
	bool real = false;
	/* 15 digits read back any shorter decimal for normal numbers; subnormals have fewer. */
	for (int prec = fabs(d) < DBL_MIN ? 1 : 15; prec <= 17; prec++) {
		snprintf(buf, sizeof(buf), "%.*g", prec, d);
		if (strtod(buf, NULL) == d)
			break;
	}
	for (const char *c = buf; *c != '\0'; c++) {
		bool plain = (*c >= '0' && *c <= '9') || *c == '-' || *c == '+' || *c == 'e';
		if (plain)
			out[n++] = *c;
		else if (n == 0 || out[n - 1] != '.')
			out[n++] = '.';
		real = real || !plain || *c == 'e';
	}
	if (!real) {
		out[n++] = '.';
		out[n++] = '0';
	}
	text_put(t, out, n);
}

static void text_put_value(struct text *t, const struct value *v)
{
	char buf[24];
	switch (v->type) {
	case V_BOOL:
		text_put(t, v->u.b ? "true" : "false", v->u.b ? 4 : 5);
		break;
	case V_INT:
		text_put(t, buf, (size_t)snprintf(buf, sizeof(buf), "%" PRId64, v->u.i));
		break;
	case V_FLOAT:
		text_put_double(t, v->u.d);
		break;
	default:
		text_put_string(t, v->u.s, v->len);
		break;
	}
}

int meta_decode_json(const unsigned char *mp, size_t len, char **json_out)
{
	struct map_iter it;
	struct text t = {NULL, 0, 0, false};
	const char *key;
	uint32_t klen;
	struct value v = {0};
	int more;
	bool first = true;
	if (mp == NULL || !map_open(&it, mp, len))
		return OMEN_ECORRUPT;
	text_reserve(&t, 2 * len + 16);
	text_put(&t, "{", 1);
	while ((more = map_next(&it, &key, &klen, &v)) > 0) {
		if (!text_ok(key, klen) || (v.type == V_STR && !text_ok(v.u.s, v.len)))
			break;
		if (!first)
			text_put(&t, ",", 1);
		first = false;
		text_put_string(&t, key, klen);
		text_put(&t, ":", 1);
		text_put_value(&t, &v);
	}
	if (more != 0) {
		free(t.p);
		return OMEN_ECORRUPT;
	}
	text_put(&t, "}", 2); /* with the terminating NUL */
	if (t.oom) {
		free(t.p);
		return OMEN_ENOMEM;
	}
	*json_out = t.p;
	return 0;
}

/* ---- Filter representation ------------------------------------------------------------ */

enum node_kind { NK_AND, NK_OR, NK_NOT, NK_CMP, NK_IN };
enum cmp_op { OP_EQ, OP_NE, OP_LT, OP_LTE, OP_GT, OP_GTE, OP_IN, OP_NIN };

/* The compiled filter is a tree laid out in preorder in one array: a node's children follow it,
 * and each node records where its subtree ends, so child j's next sibling is nodes[j].end. An
 * AND with no children is true (the empty filter). */
struct node {
	uint8_t kind;
	uint8_t op;            /* NK_CMP: OP_EQ..OP_GTE; NK_IN: OP_IN or OP_NIN */
	uint16_t field;        /* NK_CMP, NK_IN: index into filter.fields */
	uint32_t end;          /* one past the last node of this subtree */
	uint32_t first, count; /* NK_IN: operands[first..first+count), in value_order */
	struct value arg;      /* NK_CMP: the operand */
};

struct field {
	const char *name; /* borrowed from filter.json */
	uint32_t len;
};

struct filter {
	json_t *json; /* the parsed filter: owns every string the nodes point to */
	struct node *nodes;
	uint32_t nnodes, cap_nodes;
	struct value *operands;
	uint32_t noperands, cap_operands;
	struct field *fields; /* sorted bytewise once compiled, to merge with stored keys */
	uint32_t nfields;
};

/* ---- Comparison ----------------------------------------------------------------------- */

/* Exact order of an integer and a double (no NaN): no rounding of i to double, so 2^53 + 1
 * is greater than 2^53. */
static int cmp_int_double(int64_t i, double d)
{
	if (d >= 0x1p63)
		return -1;
	if (d < -0x1p63)
		return 1;
	int64_t t = (int64_t)d; /* truncates toward zero, exactly representable */
	if (i != t)
		return i < t ? -1 : 1;
	double frac = d - (double)t;
	return (frac < 0) - (frac > 0);
}

static int cmp_num(const struct value *a, const struct value *b)
{
	if (a->type == V_INT && b->type == V_INT)
		return (a->u.i > b->u.i) - (a->u.i < b->u.i);
	if (a->type == V_FLOAT && b->type == V_FLOAT)
		return (a->u.d > b->u.d) - (a->u.d < b->u.d);
	if (a->type == V_INT)
		return cmp_int_double(a->u.i, b->u.d);
	return -cmp_int_double(b->u.i, a->u.d);
}

/* The comparable class of a type: numbers together, strings, booleans. */
static inline int vclass(uint8_t type)
{
	return type == V_FLOAT ? V_INT : type;
}

/* Orders a and b of the same class: numbers numerically, strings bytewise, false < true. */
static inline int cmp_same_class(const struct value *a, const struct value *b)
{
	switch (vclass(a->type)) {
	case V_INT:
		return cmp_num(a, b);
	case V_STR:
		return bytes_cmp(a->u.s, a->len, b->u.s, b->len);
	default:
		return (int)a->u.b - (int)b->u.b;
	}
}

/* A total order on all values (booleans, then numbers, then strings), for sorting $in lists;
 * two values are equal in it exactly when $eq holds between them. */
static int value_order(const void *pa, const void *pb)
{
	const struct value *a = pa, *b = pb;
	int ca = vclass(a->type), cb = vclass(b->type);
	if (ca != cb)
		return ca - cb;
	return cmp_same_class(a, b);
}

/* ---- Matching ------------------------------------------------------------------------- */

static bool cmp_match(uint8_t op, const struct value *v, const struct value *arg)
{
	if (v->type == V_MISSING || vclass(v->type) != vclass(arg->type))
		return op == OP_NE;
	int c = cmp_same_class(v, arg);
	switch (op) {
	case OP_EQ:
		return c == 0;
	case OP_NE:
		return c != 0;
	case OP_LT:
		return c < 0;
	case OP_LTE:
		return c <= 0;
	case OP_GT:
		return c > 0;
	default:
		return c >= 0;
	}
}

/* $in: binary search of the sorted operands. A missing field is in no list. */
static bool in_match(const struct filter *f, const struct node *n, const struct value *v)
{
	bool found = false;
	if (v->type != V_MISSING && n->count > 0) {
		const struct value *ops = f->operands + n->first;
		uint32_t lo = 0, hi = n->count;
		while (lo < hi && !found) {
			uint32_t mid = lo + (hi - lo) / 2;
			int c = value_order(v, &ops[mid]);
			found = c == 0;
			if (c < 0)
				hi = mid;
			else
				lo = mid + 1;
		}
	}
	return found != (n->op == OP_NIN);
}

static bool eval(const struct filter *f, uint32_t i, const struct value *vals)
{
	const struct node *n = &f->nodes[i];
	switch (n->kind) {
	case NK_AND:
		for (uint32_t j = i + 1; j < n->end; j = f->nodes[j].end)
			if (!eval(f, j, vals))
				return false;
		return true;
	case NK_OR:
		for (uint32_t j = i + 1; j < n->end; j = f->nodes[j].end)
			if (eval(f, j, vals))
				return true;
		return false;
	case NK_NOT:
		return !eval(f, i + 1, vals);
	case NK_IN:
		return in_match(f, n, &vals[n->field]);
	default:
		return cmp_match(n->op, &vals[n->field], &n->arg);
	}
}

/* Walks the stored map once, merging its sorted keys with the filter's sorted field names and
 * filling vals[] for the fields present. False if the bytes are corrupt. */
static bool gather(const struct filter *f, const unsigned char *mp, size_t len, struct value *vals)
{
	struct map_iter it;
	const char *key;
	uint32_t klen, s = 0;
	struct value v = {0};
	int more;
	if (!map_open(&it, mp, len))
		return false;
	while ((more = map_next(&it, &key, &klen, &v)) > 0) {
		int c = -1;
		while (s < f->nfields &&
		       (c = bytes_cmp(f->fields[s].name, f->fields[s].len, key, klen)) < 0)
			s++;
		if (c == 0)
			vals[s] = v;
	}
	return more == 0;
}

bool filter_match(const filter *f, const unsigned char *mp, size_t len)
{
	struct value vals[FILTER_MAX_FIELDS];
	for (uint32_t s = 0; s < f->nfields; s++)
		vals[s].type = V_MISSING;
	if (len > 0 && (mp == NULL || !gather(f, mp, len, vals)))
		return false;
	return eval(f, 0, vals);
}

void filter_free(filter *f)
{
	if (f == NULL)
		return;
	free(f->nodes);
	free(f->operands);
	free(f->fields);
	json_decref(f->json);
	free(f);
}

/* ---- Compilation ---------------------------------------------------------------------- */

struct compiler {
	struct filter *f;
	uint32_t cap_fields;
	char path[PATH_MAX_LEN]; /* where in the filter we are, for messages: "$or[1].year" */
	size_t pathlen;
	char *err;
	size_t errlen;
};

static int compile_object(struct compiler *c, const json_t *obj, int depth);

/* Appends ".seg" (or "[i]" when seg is NULL) to the path; returns the length to restore. */
static size_t path_push(struct compiler *c, const char *seg, size_t i)
{
	size_t old = c->pathlen, room = sizeof(c->path) - old;
	if (seg != NULL)
		snprintf(c->path + old, room, "%s%s", old > 0 ? "." : "", seg);
	else
		snprintf(c->path + old, room, "[%zu]", i);
	c->pathlen = strlen(c->path);
	return old;
}

static void path_pop(struct compiler *c, size_t old)
{
	c->pathlen = old;
	c->path[old] = '\0';
}

static int bad(struct compiler *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Reports a malformed filter at the current path: "filter: $or[1].year: <reason>". */
static int bad(struct compiler *c, const char *fmt, ...)
{
	if (c->err != NULL && c->errlen > 0) {
		int n = snprintf(c->err, c->errlen,
		                 "filter: %s: ", c->pathlen > 0 ? c->path : "top level");
		if (n >= 0 && (size_t)n < c->errlen) {
			va_list ap;
			va_start(ap, fmt);
			vsnprintf(c->err + n, c->errlen - (size_t)n, fmt, ap);
			va_end(ap);
		}
	}
	return OMEN_EINVAL;
}

static int oom(struct compiler *c)
{
	return fail(OMEN_ENOMEM, c->err, c->errlen, "filter: out of memory");
}

/* Returns array p (of *cap elements of size sz) grown to hold at least n, or NULL (p is then
 * unchanged and still owned by the caller). */
static void *grow(void *p, uint32_t *cap, uint32_t n, size_t sz)
{
	if (n <= *cap)
		return p;
	uint32_t ncap = *cap > 0 ? *cap * 2 : 16;
	if (ncap < n)
		ncap = n;
	void *np = realloc(p, (size_t)ncap * sz);
	if (np != NULL)
		*cap = ncap;
	return np;
}

/* Appends a zeroed node of the given kind; its index goes to *idx. */
static int add_node(struct compiler *c, uint8_t kind, uint32_t *idx)
{
	struct filter *f = c->f;
	struct node *nodes = grow(f->nodes, &f->cap_nodes, f->nnodes + 1, sizeof(*nodes));
	if (nodes == NULL)
		return oom(c);
	f->nodes = nodes;
	memset(&f->nodes[f->nnodes], 0, sizeof(*f->nodes));
	f->nodes[f->nnodes].kind = kind;
	*idx = f->nnodes++;
	return 0;
}

/* Converts a JSON scalar to a value borrowing its string; false for null, arrays, objects. */
static bool to_value(const json_t *j, struct value *v)
{
	memset(v, 0, sizeof(*v));
	switch (json_typeof(j)) {
	case JSON_INTEGER:
		v->type = V_INT;
		v->u.i = json_integer_value(j);
		return true;
	case JSON_REAL:
		v->type = V_FLOAT;
		v->u.d = json_real_value(j);
		return true;
	case JSON_STRING:
		v->type = V_STR;
		v->u.s = json_string_value(j);
		v->len = (uint32_t)json_string_length(j);
		return true;
	case JSON_TRUE:
	case JSON_FALSE:
		v->type = V_BOOL;
		v->u.b = json_is_true(j);
		return true;
	default:
		return false;
	}
}

/* Finds or adds the field name; its index goes to *out. */
static int field_index(struct compiler *c, const char *name, uint16_t *out)
{
	struct filter *f = c->f;
	size_t len = strlen(name);
	if (len == 0)
		return bad(c, "empty field name");
	if (len > META_MAX_KEY)
		return bad(c, "field name longer than %d bytes", META_MAX_KEY);
	for (uint32_t i = 0; i < f->nfields; i++)
		if (f->fields[i].len == len && memcmp(f->fields[i].name, name, len) == 0) {
			*out = (uint16_t)i;
			return 0;
		}
	if (f->nfields == FILTER_MAX_FIELDS)
		return bad(c, "more than %d distinct field names in one filter", FILTER_MAX_FIELDS);
	struct field *fields = grow(f->fields, &c->cap_fields, f->nfields + 1, sizeof(*fields));
	if (fields == NULL)
		return oom(c);
	f->fields = fields;
	f->fields[f->nfields].name = name;
	f->fields[f->nfields].len = (uint32_t)len;
	*out = (uint16_t)f->nfields++;
	return 0;
}

static const char *const op_names[] = {"$eq", "$ne", "$lt", "$lte", "$gt", "$gte", "$in", "$nin"};

/* Compiles op(field, arg) for a scalar operator. */
static int compile_cmp(struct compiler *c, uint16_t field, uint8_t op, const json_t *arg)
{
	struct value v = {0};
	uint32_t idx;
	if (!to_value(arg, &v))
		return bad(c, "%s expects a number, string or boolean, got %s", op_names[op],
		           json_kind(arg));
	if (v.type == V_BOOL && op != OP_EQ && op != OP_NE)
		return bad(c, "%s cannot order booleans (use $eq, $ne, $in or $nin)", op_names[op]);
	int rc = add_node(c, NK_CMP, &idx);
	if (rc != 0)
		return rc;
	struct node *n = &c->f->nodes[idx];
	n->op = op;
	n->field = field;
	n->arg = v;
	n->end = idx + 1;
	return 0;
}

/* Compiles $in / $nin: an array of scalars, possibly empty, sorted for binary search. */
static int compile_in(struct compiler *c, uint16_t field, uint8_t op, const json_t *arg)
{
	struct filter *f = c->f;
	uint32_t idx;
	size_t i;
	const json_t *e;
	if (!json_is_array(arg))
		return bad(c, "%s expects an array of numbers, strings or booleans, got %s",
		           op_names[op], json_kind(arg));
	uint32_t first = f->noperands, count = (uint32_t)json_array_size(arg);
	if (count > 0) {
		struct value *ops =
		    grow(f->operands, &f->cap_operands, first + count, sizeof(*ops));
		if (ops == NULL)
			return oom(c);
		f->operands = ops;
		json_array_foreach(arg, i, e)
		{
			if (!to_value(e, &ops[first + i]))
				return bad(c, "%s[%zu] must be a number, string or boolean, got %s",
				           op_names[op], i, json_kind(e));
		}
		qsort(ops + first, count, sizeof(*ops), value_order);
		f->noperands += count;
	}
	int rc = add_node(c, NK_IN, &idx);
	if (rc != 0)
		return rc;
	struct node *n = &f->nodes[idx];
	n->op = op;
	n->field = field;
	n->first = first;
	n->count = count;
	n->end = idx + 1;
	return 0;
}

/* Compiles one "$op": arg entry of a field's operator object. */
static int compile_op(struct compiler *c, uint16_t field, const char *opname, const json_t *arg)
{
	uint8_t op;
	for (op = 0; op < sizeof(op_names) / sizeof(op_names[0]); op++)
		if (strcmp(opname, op_names[op]) == 0)
			break;
	if (op == sizeof(op_names) / sizeof(op_names[0])) {
		if (opname[0] != '$')
			return bad(c,
			           "expected operators ($eq, $ne, $lt, $lte, $gt, $gte, $in, "
			           "$nin), got key '%s' (metadata values cannot be objects)",
			           opname);
		return bad(c,
		           "unknown operator '%s' (expected $eq, $ne, $lt, $lte, $gt, $gte, "
		           "$in or $nin)",
		           opname);
	}
	if (op == OP_IN || op == OP_NIN)
		return compile_in(c, field, op, arg);
	return compile_cmp(c, field, op, arg);
}

/* Compiles field: scalar (equality) or field: {operators...} (all must hold). */
static int compile_field(struct compiler *c, const char *name, const json_t *v)
{
	uint16_t field = 0;
	uint32_t and_idx = 0;
	const char *opname;
	json_t *arg;
	int rc = field_index(c, name, &field);
	if (rc != 0)
		return rc;
	if (!json_is_object(v)) {
		if (json_is_array(v) || json_is_null(v))
			return bad(c,
			           "expected a number, string, boolean or operator object, got "
			           "%s%s",
			           json_kind(v), json_is_array(v) ? " (use $in)" : "");
		return compile_cmp(c, field, OP_EQ, v);
	}
	size_t nops = json_object_size(v);
	if (nops == 0)
		return bad(c, "empty operator object");
	if (nops > 1 && (rc = add_node(c, NK_AND, &and_idx)) != 0)
		return rc;
	json_object_foreach((json_t *)v, opname, arg)
	{
		if ((rc = compile_op(c, field, opname, arg)) != 0)
			return rc;
	}
	if (nops > 1)
		c->f->nodes[and_idx].end = c->f->nnodes;
	return 0;
}

/* Compiles $and / $or: a non-empty array of filter objects, one level deeper. */
static int compile_list(struct compiler *c, uint8_t kind, const json_t *v, int depth)
{
	uint32_t idx;
	size_t i;
	json_t *e;
	if (!json_is_array(v) || json_array_size(v) == 0)
		return bad(c, "expected a non-empty array of filter objects, got %s%s",
		           json_kind(v), json_is_array(v) ? " with no elements" : "");
	int rc = add_node(c, kind, &idx);
	if (rc != 0)
		return rc;
	json_array_foreach(v, i, e)
	{
		size_t old = path_push(c, NULL, i);
		if (!json_is_object(e))
			return bad(c, "expected a filter object, got %s", json_kind(e));
		if ((rc = compile_object(c, e, depth + 1)) != 0)
			return rc;
		path_pop(c, old);
	}
	c->f->nodes[idx].end = c->f->nnodes;
	return 0;
}

/* Compiles one key of a filter object: a field condition or $and / $or / $not. */
static int compile_entry(struct compiler *c, const char *key, const json_t *v, int depth)
{
	uint32_t idx;
	int rc;
	if (key[0] != '$')
		return compile_field(c, key, v);
	if (strcmp(key, "$and") == 0)
		return compile_list(c, NK_AND, v, depth);
	if (strcmp(key, "$or") == 0)
		return compile_list(c, NK_OR, v, depth);
	if (strcmp(key, "$not") != 0)
		return bad(c, "unknown operator (expected $and, $or, $not or a field name)");
	if (!json_is_object(v))
		return bad(c, "expected a filter object, got %s", json_kind(v));
	if ((rc = add_node(c, NK_NOT, &idx)) != 0)
		return rc;
	if ((rc = compile_object(c, v, depth + 1)) != 0)
		return rc;
	c->f->nodes[idx].end = c->f->nnodes;
	return 0;
}

/* Compiles a filter object (its keys are ANDed) at nesting level depth (the top is 1). */
static int compile_object(struct compiler *c, const json_t *obj, int depth)
{
	uint32_t idx = 0;
	const char *key;
	json_t *v;
	int rc;
	if (depth > FILTER_MAX_DEPTH)
		return bad(c, "filter nested deeper than %d levels", FILTER_MAX_DEPTH);
	size_t n = json_object_size(obj);
	if (n != 1 && (rc = add_node(c, NK_AND, &idx)) != 0)
		return rc;
	json_object_foreach((json_t *)obj, key, v)
	{
		size_t old = path_push(c, key, 0);
		if ((rc = compile_entry(c, key, v, depth)) != 0)
			return rc;
		path_pop(c, old);
	}
	if (n != 1)
		c->f->nodes[idx].end = c->f->nnodes;
	return 0;
}

static int field_order(const void *pa, const void *pb)
{
	const struct field *a = pa, *b = pb;
	return bytes_cmp(a->name, a->len, b->name, b->len);
}

/* Sorts the field names bytewise, as stored keys are, and renumbers the nodes' references. */
static void sort_fields(struct filter *f)
{
	struct field sorted[FILTER_MAX_FIELDS];
	uint16_t newidx[FILTER_MAX_FIELDS];
	if (f->nfields == 0)
		return;
	memcpy(sorted, f->fields, f->nfields * sizeof(*sorted));
	qsort(sorted, f->nfields, sizeof(*sorted), field_order);
	for (uint32_t i = 0; i < f->nfields; i++)
		for (uint32_t j = 0; j < f->nfields; j++)
			if (sorted[j].name == f->fields[i].name)
				newidx[i] = (uint16_t)j;
	for (uint32_t i = 0; i < f->nnodes; i++)
		if (f->nodes[i].kind == NK_CMP || f->nodes[i].kind == NK_IN)
			f->nodes[i].field = newidx[f->nodes[i].field];
	memcpy(f->fields, sorted, f->nfields * sizeof(*sorted));
}

int filter_compile(const char *json, filter **out, char *err, size_t errlen)
{
	struct compiler c = {.err = err, .errlen = errlen};
	int rc = 0;
	if (json == NULL)
		return fail(OMEN_EINVAL, err, errlen, "filter: NULL JSON text");
	struct filter *f = calloc(1, sizeof(*f));
	if (f == NULL)
		return fail(OMEN_ENOMEM, err, errlen, "filter: out of memory");
	f->json = parse_json(json, strlen(json), "filter", &rc, err, errlen);
	if (f->json == NULL)
		goto out_fail;
	if (!json_is_object(f->json)) {
		rc = fail(OMEN_EINVAL, err, errlen, "filter: expected a JSON object, got %s",
		          json_kind(f->json));
		goto out_fail;
	}
	c.f = f;
	if ((rc = compile_object(&c, f->json, 1)) != 0)
		goto out_fail;
	sort_fields(f);
	*out = f;
	return 0;
out_fail:
	filter_free(f);
	return rc;
}
