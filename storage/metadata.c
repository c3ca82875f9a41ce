/*
 * Point metadata: a JSON object of scalar values, stored as a canonical msgpack map (string keys
 * in strictly increasing byte order, scalar values only), read back with base's bounded cursor,
 * and turned back into JSON. Parsed with jansson and packed with msgpack-c. The reader checks
 * every byte, so a damaged record is OMEN_ECORRUPT (or does not match a filter), never a crash;
 * it allocates nothing, since a filtered search runs it once per stored point.
 * docs/FILTERS.md is the user-facing syntax.
 */
#include <float.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/storage.h"

/* ---- Errors and JSON ---------------------------------------------------------------------------
 */

/* Writes a one-line reason into err (which may be NULL) and returns status. */
#define fail(status, err, errlen, ...) err_set(err, errlen, status, __VA_ARGS__)

const char *meta_json_kind(const json_t *j)
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
json_t *meta_json_parse(const char *text, size_t len, const char *what, int *status, char *err,
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

/* ---- The stored-map reader ---------------------------------------------------------- */

/* Reads one scalar value. Anything else (nil, arrays, maps, bin, ext) is corrupt, and so are
 * non-finite floats and integers beyond int64, which the encoder never writes. */
static bool read_value(mpc *c, meta_value *v)
{
	mpc_value x;
	if (!mpc_scalar(c, &x))
		return false;
	switch (x.type) {
	case MPC_BOOL:
		v->type = META_BOOL;
		v->u.b = x.v.b;
		return true;
	case MPC_INT:
		v->type = META_INT;
		v->u.i = x.v.i;
		return true;
	case MPC_FLOAT:
		v->type = META_FLOAT;
		v->u.d = x.v.d;
		return isfinite(x.v.d);
	case MPC_STR:
		v->type = META_STR;
		v->u.s = x.v.str.s;
		v->len = (uint32_t)x.v.str.n;
		return true;
	default:
		return false;
	}
}

bool meta_iter_open(meta_iter *it, const unsigned char *mp, size_t len)
{
	it->c = mpc_make(mp, len);
	it->prev = NULL;
	it->prevlen = 0;
	return mp != NULL && mpc_map(&it->c, &it->left);
}

int meta_iter_next(meta_iter *it, const char **key, uint32_t *klen, meta_value *v)
{
	if (it->left == 0)
		return mpc_left(&it->c) == 0 ? 0 : -1;
	size_t n;
	if (!mpc_str(&it->c, key, &n) || n == 0 || n > META_MAX_KEY || (*key)[0] == '$')
		return -1;
	*klen = (uint32_t)n;
	if (it->prev != NULL && meta_key_cmp(it->prev, it->prevlen, *key, *klen) >= 0)
		return -1;
	if (!read_value(&it->c, v))
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
		            key, meta_json_kind(v));
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
	char *trimmed = mem_realloc(data, size);
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
	root = meta_json_parse(json, len, "metadata", &rc, err, errlen);
	if (root == NULL)
		return rc;
	if (!json_is_object(root)) {
		rc = fail(OMEN_EINVAL, err, errlen, "metadata: expected a JSON object, got %s",
		          meta_json_kind(root));
		goto out_root;
	}
	n = json_object_size(root);
	keys = mem_alloc((n > 0 ? n : 1) * sizeof(*keys));
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
	mem_free(keys);
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
	char *p = mem_realloc(t->p, cap);
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

static void text_put_value(struct text *t, const meta_value *v)
{
	char buf[24];
	switch (v->type) {
	case META_BOOL:
		text_put(t, v->u.b ? "true" : "false", v->u.b ? 4 : 5);
		break;
	case META_INT:
		text_put(t, buf, (size_t)snprintf(buf, sizeof(buf), "%" PRId64, v->u.i));
		break;
	case META_FLOAT:
		text_put_double(t, v->u.d);
		break;
	default:
		text_put_string(t, v->u.s, v->len);
		break;
	}
}

int meta_decode_json(const unsigned char *mp, size_t len, char **json_out)
{
	meta_iter it;
	struct text t = {NULL, 0, 0, false};
	const char *key;
	uint32_t klen;
	meta_value v = {0};
	int more;
	bool first = true;
	if (mp == NULL || !meta_iter_open(&it, mp, len))
		return OMEN_ECORRUPT;
	text_reserve(&t, 2 * len + 16);
	text_put(&t, "{", 1);
	while ((more = meta_iter_next(&it, &key, &klen, &v)) > 0) {
		if (!text_ok(key, klen) || (v.type == META_STR && !text_ok(v.u.s, v.len)))
			break;
		if (!first)
			text_put(&t, ",", 1);
		first = false;
		text_put_string(&t, key, klen);
		text_put(&t, ":", 1);
		text_put_value(&t, &v);
	}
	if (more != 0) {
		mem_free(t.p);
		return OMEN_ECORRUPT;
	}
	text_put(&t, "}", 2); /* with the terminating NUL */
	if (t.oom) {
		mem_free(t.p);
		return OMEN_ENOMEM;
	}
	*json_out = t.p;
	return 0;
}

int meta_check_json(const char *json)
{
	unsigned char *mp;
	size_t len;
	char err[256];
	if (!json)
		return status_set(OMEN_EINVAL, "metadata is NULL");
	int st = meta_encode_json(json, &mp, &len, err, sizeof err);
	if (st != OMEN_OK)
		return status_set(st, "%s", err);
	mem_free(mp);
	return OMEN_OK;
}
