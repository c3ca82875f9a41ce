/*
 * The HTTP endpoint's JSON: request fields read strictly (vectors, ids and metadata here; plain
 * fields through jsonf.c), and responses built as JSON bodies or JSON errors. Every error a
 * client sees is {"error":{"code","status","message"}} with base's name and HTTP status.
 */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "coordinator/http.h"
#include "storage/storage.h"

/* ---- Responses --------------------------------------------------------------------------- */

void http_out_json(http_out *out, uint16_t status, json_t *obj)
{
	char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
	json_decref(obj);
	free(out->body);
	out->body = NULL;
	if (!text) {
		static const char oom[] = "{\"error\":{\"code\":\"ENOMEM\",\"status\":4,"
		                          "\"message\":\"out of memory\"}}";
		out->body = strdup(oom);
		out->len = out->body ? strlen(oom) : 0;
		out->status = 500;
		out->code = OMEN_ENOMEM;
		return;
	}
	out->body = text;
	out->len = strlen(text);
	out->status = status;
	out->ctype = CT_JSON;
}

void http_out_verror(http_out *out, int code, uint16_t http, const char *fmt, va_list ap)
{
	char msg[HTTP_MSGLEN];
	vsnprintf(msg, sizeof msg, fmt, ap);
	json_t *err = json_pack("{s:{s:s,s:i,s:s}}", "error", "code", status_name(code), "status",
	                        code, "message", msg);
	http_out_json(out, http ? http : (uint16_t)status_http(code), err);
	out->code = code;
}

void http_out_error(http_out *out, int code, uint16_t http, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	http_out_verror(out, code, http, fmt, ap);
	va_end(ap);
}

void http_out_rep_error(http_out *out, const wire_rep *rep)
{
	const char *msg = rep->message && *rep->message ? rep->message : status_text(rep->status);
	http_out_error(out, rep->status, 0, "%s", msg);
}

void http_out_bad_reply(http_out *out, const char *what)
{
	http_out_error(out, OMEN_EPROTO, 500, "internal error: malformed %s reply", what);
}

bool http_ms_open(http_ms *ms, http_out *out)
{
	ms->buf = NULL;
	ms->len = 0;
	ms->f = open_memstream(&ms->buf, &ms->len);
	if (!ms->f)
		http_out_error(out, OMEN_ENOMEM, 0, "out of memory");
	return ms->f != NULL;
}

void http_ms_finish(http_ms *ms, http_out *out, uint16_t status, const char *ctype)
{
	int failed = ferror(ms->f);
	if (fclose(ms->f) != 0 || failed || !ms->buf) {
		free(ms->buf);
		http_out_error(out, OMEN_ENOMEM, 0, "out of memory");
		return;
	}
	free(out->body);
	out->body = ms->buf;
	out->len = ms->len;
	out->status = status;
	out->code = OMEN_OK;
	out->ctype = ctype;
}

void http_put_float(FILE *f, float v)
{
	if (isfinite(v))
		fprintf(f, "%.9g", (double)v);
	else
		fputs("null", f);
}

/* ---- Request fields ---------------------------------------------------------------------- */

bool http_in_fail(http_call *call)
{
	http_out_error(call->out, OMEN_EINVAL, 0, "%s", call->err);
	return false;
}

bool http_fail_invalid(http_call *call, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	http_out_verror(call->out, OMEN_EINVAL, 0, fmt, ap);
	va_end(ap);
	return false;
}

/* Reads row, a JSON array of exactly dim numbers, into dst. what names it in errors. */
static bool read_row(http_call *call, json_t *row, const char *what, size_t dim, float *dst)
{
	if (!json_is_array(row))
		return http_fail_invalid(call, "%s must be an array of numbers", what);
	if (json_array_size(row) != dim)
		return http_fail_invalid(call,
		                         "%s has %zu numbers, expected %zu (the first vector's)",
		                         what, json_array_size(row), dim);
	for (size_t j = 0; j < dim; j++) {
		json_t *x = json_array_get(row, j);
		if (!json_is_number(x))
			return http_fail_invalid(call, "%s[%zu] is not a number", what, j);
		double d = json_number_value(x);
		float v = (float)d;
		if (!isfinite(v))
			return http_fail_invalid(call, "%s[%zu] = %g is outside the float32 range",
			                         what, j, d);
		dst[j] = v;
	}
	return true;
}

/* Reads the rows of v (one row, v itself, when single) into buf, rows x d floats. */
static bool read_rows(http_call *call, json_t *v, const char *key, bool single, size_t rows,
                      size_t d, float *buf)
{
	for (size_t i = 0; i < rows; i++) {
		char what[64];
		if (single)
			snprintf(what, sizeof what, "%s", key);
		else
			snprintf(what, sizeof what, "%s[%zu]", key, i);
		if (!read_row(call, single ? v : json_array_get(v, i), what, d, buf + i * d))
			return false;
	}
	return true;
}

bool http_get_vectors(http_call *call, const char *key, bool single, uint64_t *n, uint32_t *dim,
                      float **vectors)
{
	json_t *v = jf_get(&call->in, key);
	if (!json_is_array(v) || json_array_size(v) == 0)
		return http_fail_invalid(call, "'%s' must be a non-empty array%s", key,
		                         single ? " of numbers" : " of vectors");
	size_t rows = single ? 1 : json_array_size(v);
	json_t *first = single ? v : json_array_get(v, 0);
	size_t d = json_is_array(first) ? json_array_size(first) : 0;
	if (rows > OMEN_MAX_BATCH)
		return http_fail_invalid(call, "'%s' holds %zu vectors, at most %d allowed", key,
		                         rows, OMEN_MAX_BATCH);
	if (d < 1 || d > OMEN_MAX_DIM)
		return http_fail_invalid(call, "%s%s must hold 1..%d numbers", key,
		                         single ? "" : "[0]", OMEN_MAX_DIM);
	float *buf = malloc(rows * d * sizeof *buf);
	if (!buf) {
		http_out_error(call->out, OMEN_ENOMEM, 0, "out of memory for %zu vectors", rows);
		return false;
	}
	if (!read_rows(call, v, key, single, rows, d, buf)) {
		free(buf);
		return false;
	}
	*n = rows;
	*dim = (uint32_t)d;
	*vectors = buf;
	return true;
}

bool http_get_ids(http_call *call, const char *key, uint64_t want, uint64_t **ids, uint64_t *n)
{
	json_t *v = jf_get(&call->in, key);
	if (!json_is_array(v))
		return http_fail_invalid(call, "'%s' must be an array of non-negative integers",
		                         key);
	size_t cnt = json_array_size(v);
	if (want != UINT64_MAX && cnt != want)
		return http_fail_invalid(call, "'%s' has %zu entries, 'vectors' has %" PRIu64, key,
		                         cnt, want);
	if (cnt > OMEN_MAX_BATCH)
		return http_fail_invalid(call, "'%s' holds %zu ids, at most %d allowed", key, cnt,
		                         OMEN_MAX_BATCH);
	uint64_t *buf = cnt ? malloc(cnt * sizeof *buf) : NULL;
	if (cnt && !buf) {
		http_out_error(call->out, OMEN_ENOMEM, 0, "out of memory for %zu ids", cnt);
		return false;
	}
	for (size_t i = 0; i < cnt; i++) {
		json_t *x = json_array_get(v, i);
		if (!json_is_integer(x) || json_integer_value(x) < 0) {
			free(buf);
			return http_fail_invalid(call, "%s[%zu] must be a non-negative integer",
			                         key, i);
		}
		buf[i] = (uint64_t)json_integer_value(x);
	}
	*ids = buf;
	*n = cnt;
	return true;
}

/* One entry of "metadata": an object (its JSON text into *text) or null (*text stays NULL). */
static bool read_meta(http_call *call, json_t *e, size_t i, char **text)
{
	if (json_is_null(e))
		return true;
	if (!json_is_object(e))
		return http_fail_invalid(call, "metadata[%zu] must be an object or null", i);
	if (!(*text = json_dumps(e, JSON_COMPACT))) {
		http_out_error(call->out, OMEN_ENOMEM, 0, "out of memory");
		return false;
	}
	/* Refused here, before any shard writes, by the rule the shards apply. */
	int st = meta_check_json(*text);
	if (st != OMEN_OK) {
		http_out_error(call->out, st, 0, "metadata[%zu]: %s", i, status_msg());
		return false;
	}
	return true;
}

bool http_get_meta(http_call *call, uint64_t n, char ***meta)
{
	json_t *v = jf_get(&call->in, "metadata");
	*meta = NULL;
	if (!v)
		return true;
	if (!json_is_array(v) || json_array_size(v) != n)
		return http_fail_invalid(call,
		                         "'metadata' must be an array of %" PRIu64
		                         " objects or nulls, one per vector",
		                         n);
	char **m = calloc(n, sizeof *m);
	if (!m) {
		http_out_error(call->out, OMEN_ENOMEM, 0, "out of memory");
		return false;
	}
	*meta = m; /* the caller frees it with the request, also on failure */
	for (size_t i = 0; i < n; i++)
		if (!read_meta(call, json_array_get(v, i), i, &m[i]))
			return false;
	return true;
}
