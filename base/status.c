/*
 * Status codes: the one table of their names (as clients see them over HTTP and in metrics),
 * HTTP statuses and English texts, and the calling thread's detail message behind
 * omen_errmsg().
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/base.h"

static const struct {
	const char *name;
	unsigned http;
	const char *text;
} codes[] = {
    [OMEN_OK] = {"OK", 200, "success"},
    [OMEN_EINVAL] = {"EINVAL", 400, "invalid argument"},
    [OMEN_ENOTFOUND] = {"ENOTFOUND", 404, "not found"},
    [OMEN_EEXIST] = {"EEXIST", 409, "already exists"},
    [OMEN_ENOMEM] = {"ENOMEM", 500, "out of memory"},
    [OMEN_EIO] = {"EIO", 500, "I/O error"},
    [OMEN_ECORRUPT] = {"ECORRUPT", 500, "database is corrupt"},
    [OMEN_ENOTDB] = {"ENOTDB", 500, "not an OmenDB database"},
    [OMEN_EVERSION] = {"EVERSION", 500, "database format is newer than this OmenDB"},
    [OMEN_EFULL] = {"EFULL", 500, "database is full"},
    [OMEN_EBUSY] = {"EBUSY", 409, "resource busy"},
    [OMEN_ENOTSUP] = {"ENOTSUP", 501, "not supported"},
    [OMEN_EPROTO] = {"EPROTO", 400, "protocol error"},
    [OMEN_ELIMIT] = {"ELIMIT", 400, "limit exceeded"},
    [OMEN_EUNAVAIL] = {"EUNAVAIL", 503, "a cluster node is unavailable"},
    [OMEN_EAUTH] = {"EAUTH", 401, "not authorised: token missing or wrong"},
    /* The shard map kept changing until the deadline: a retry later will likely succeed. */
    [OMEN_ESTALE] = {"ESTALE", 503, "the cluster's shard map changed"},
};
_Static_assert(sizeof codes / sizeof codes[0] == STATUS_COUNT,
               "the status table has one row per public status code");

static bool known(int code)
{
	return code >= 0 && code < STATUS_COUNT;
}

const char *status_name(int code)
{
	return known(code) ? codes[code].name : "EUNKNOWN";
}

unsigned status_http(int code)
{
	return known(code) ? codes[code].http : 500;
}

const char *status_text(int code)
{
	return known(code) ? codes[code].text : "unknown status";
}

static _Thread_local char tls_msg[1024];

int status_set(int code, const char *fmt, ...)
{
	/* Formatted apart first: an argument may be the current message itself, as in
	 * status_set(st, "point %d: %s", i, status_msg()). */
	char msg[sizeof tls_msg];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	memcpy(tls_msg, msg, sizeof msg);
	return code;
}

const char *status_msg(void)
{
	return tls_msg;
}

int err_set(char *err, size_t errlen, int status, const char *fmt, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return status;
}
