/*
 * Strict JSON field readers: the one place that decides what a request body's or a
 * configuration file's field may hold, and how a wrong one is reported. jsonf.h gives the
 * rules; the callers add their own (vectors, ids, URLs) on top.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/base.h"
#include "coordinator/jsonf.h"

/* Writes "WHERE" + the formatted reason into f->err and returns OMEN_EINVAL. */
static int fail(const jf *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(const jf *f, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return err_set(f->err, f->errlen, OMEN_EINVAL, "%s%s", f->where ? f->where : "", msg);
}

json_t *jf_get(const jf *f, const char *key)
{
	json_t *v = json_object_get(f->obj, key);
	return json_is_null(v) ? NULL : v;
}

int jf_keys(const jf *f, const char *const *keys)
{
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)f->obj, key, v)
	{
		size_t i = 0;
		while (keys[i] && strcmp(keys[i], key) != 0)
			i++;
		if (!keys[i])
			return fail(f, "unknown field '%.100s'", key);
	}
	return OMEN_OK;
}

int jf_required(const jf *f, const char *key)
{
	return jf_get(f, key) ? OMEN_OK : fail(f, "'%s' is required", key);
}

int jf_uint(const jf *f, const char *key, uint64_t min, uint64_t max, uint64_t *out)
{
	json_t *v = jf_get(f, key);
	if (!v)
		return OMEN_OK;
	if (!json_is_integer(v))
		return fail(f, "'%s' must be an integer", key);
	json_int_t x = json_integer_value(v);
	if (x < 0 || (uint64_t)x < min || (uint64_t)x > max)
		return fail(f, "'%s' must be in %" PRIu64 "..%" PRIu64 ", got %lld", key, min, max,
		            (long long)x);
	*out = (uint64_t)x;
	return OMEN_OK;
}

int jf_bool(const jf *f, const char *key, int *out)
{
	json_t *v = jf_get(f, key);
	if (!v)
		return OMEN_OK;
	if (!json_is_boolean(v))
		return fail(f, "'%s' must be true or false", key);
	*out = json_is_true(v);
	return OMEN_OK;
}

int jf_str(const jf *f, const char *key, const char **out)
{
	json_t *v = jf_get(f, key);
	if (!v)
		return OMEN_OK;
	if (!json_is_string(v))
		return fail(f, "'%s' must be a string", key);
	*out = json_string_value(v);
	return OMEN_OK;
}
