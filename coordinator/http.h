/*
 * What the HTTP endpoint's files share: http.c (the server: jobs, nng's callbacks, the worker
 * threads), http_json.c (request fields read strictly, JSON responses and errors) and
 * http_routes.c (the route table and one function per route). They see the coordinator only
 * through coordinator.h, never its internals. Internal to coordinator/http*.c.
 */
#ifndef OMEN_COORDINATOR_HTTP_H
#define OMEN_COORDINATOR_HTTP_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "coordinator/coordinator.h"
#include "coordinator/jsonf.h"

#define HTTP_OP_NONE WIRE_OP_COUNT /* metrics op "other": no call behind it */
#define HTTP_MSGLEN  512           /* bytes of an error message */

#define CT_JSON "application/json"
#define CT_PROM "text/plain; version=0.0.4; charset=utf-8"

/* A response being built: the HTTP status, the OMEN status it stands for (for the metrics),
 * and a malloc'd body. */
typedef struct http_out {
	uint16_t status;
	int code;
	char *body;
	size_t len;
	const char *ctype;
	const char *allow; /* Allow header (405), or NULL */
	bool www_auth;     /* WWW-Authenticate header (401) */
	bool close;        /* Connection: close (the request's body was not read) */
} http_out;

/* What a route's function works with: the coordinator and its metrics, the collection named in
 * the path ("" when none), the parsed JSON body (in.obj; NULL for routes without one) and the
 * response to fill. in reports bad fields into err, which http_in_fail makes the response. */
typedef struct http_call {
	coord *c;
	metrics *m;
	const char *name;
	jf in;
	http_out *out;
	char err[HTTP_MSGLEN];
} http_call;

/* A route: a path pattern, "*" standing for a collection name, and one method. */
typedef struct http_route {
	const char *pattern;
	const char *method;
	wire_op op; /* for the metrics */
	void (*fn)(http_call *call);
	bool body; /* takes a JSON object body */
} http_route;

/* ---- the routes (http_routes.c) ---- */

/* The route for pattern and method ("HEAD" is looked up as "GET"), or NULL. When there is
 * none, allow (allowlen bytes) receives the methods pattern does have, comma-separated ("" for
 * an unknown path). */
const http_route *http_route_find(const char *pattern, const char *method, char *allow,
                                  size_t allowlen);

/* ---- responses (http_json.c) ---- */

/* Takes obj (a reference; NULL means out of memory) and makes it the response's body. */
void http_out_json(http_out *out, uint16_t status, json_t *obj);

/* Makes the response the JSON error of code with a printf-style message. http is the HTTP
 * status, or 0 for code's usual one (base's table). */
void http_out_error(http_out *out, int code, uint16_t http, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void http_out_verror(http_out *out, int code, uint16_t http, const char *fmt, va_list ap)
    __attribute__((format(printf, 4, 0)));

/* The error a coordinator reply carries. */
void http_out_rep_error(http_out *out, const wire_rep *rep);

/* A reply that does not hold what its call promises (what names the call): the coordinator's
 * fault, not the client's, so 500. */
void http_out_bad_reply(http_out *out, const char *what);

/* A body printed into memory: bodies with many ids and floats are printed rather than built in
 * jansson, which also keeps ids above INT64_MAX exact. */
typedef struct http_ms {
	FILE *f;
	char *buf;
	size_t len;
} http_ms;

/* Opens the stream; false after making out an ENOMEM error. */
bool http_ms_open(http_ms *ms, http_out *out);

/* Closes the stream and makes it the body of out (status, content type ctype), or an ENOMEM
 * error. */
void http_ms_finish(http_ms *ms, http_out *out, uint16_t status, const char *ctype);

/* Prints a float32 with enough digits to read back the same float; null when not finite. */
void http_put_float(FILE *f, float v);

/* ---- request fields (http_json.c) ----
 * Each reads from call->in.obj. On a bad value it makes the response a 400 error naming the
 * field (ENOMEM: 500) and returns false. */

/* Makes the reason a jf_ reader of call->in left in call->err the response (400 EINVAL);
 * returns false. */
bool http_in_fail(http_call *call);

/* Makes the response a 400 EINVAL with a printf-style message; returns false. */
bool http_fail_invalid(http_call *call, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The field key as n vectors of one dimension; single: key holds one vector, not an array of
 * them. On success *vectors is malloc'd n x dim floats. */
bool http_get_vectors(http_call *call, const char *key, bool single, uint64_t *n, uint32_t *dim,
                      float **vectors);

/* The field key as an array of ids (non-negative integers). want: the count required ('vectors'
 * has that many), or UINT64_MAX for any. On success *ids is malloc'd (NULL for an empty
 * array). */
bool http_get_ids(http_call *call, const char *key, uint64_t want, uint64_t **ids, uint64_t *n);

/* The optional field "metadata": n entries, each an object or null, each checked by the rule
 * the shards apply. *meta is a malloc'd array of n malloc'd JSON texts (NULL entries for null),
 * or NULL when absent; it is set also on failure, and the caller frees it. */
bool http_get_meta(http_call *call, uint64_t n, char ***meta);

#endif
