/*
 * The coordinator's HTTP endpoint: the JSON API of docs/HTTP.md on nng's HTTP server. nng's
 * callback threads do only cheap, non-blocking work (the token, the route, the body's length,
 * starting the body's read); a small pool of worker threads then parses the JSON, calls
 * coord_handle, which blocks on the shard nodes, and completes the request's aio.
 *
 * Every handler accepts any method and every response, errors included, is built here, so that
 * a client never sees nng's HTML error pages for a request that reached a handler.
 */
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>
#include <nng/nng.h>
#include <nng/supplemental/http/http.h>

#include "coordinator/coordinator.h"
#include "storage/storage.h"

#define HTTP_WORKERS         8             /* threads that call coord_handle */
#define HTTP_QUEUE_MAX       4096          /* requests waiting for a worker before 503 */
#define HTTP_BODY_TIMEOUT_MS 60000         /* to receive a body once its headers are in */
#define HTTP_MAX_PATH        1024          /* longer paths are no route */
#define HTTP_OP_NONE         WIRE_OP_COUNT /* metrics op "other": no call behind it */
#define HTTP_MSGLEN          512

#define CT_JSON "application/json"
#define CT_PROM "text/plain; version=0.0.4; charset=utf-8"

typedef struct http_job http_job;

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

/* What a route's function works with: the server, the collection named in the path ("" when
 * none), the parsed JSON body (NULL for routes without one) and the response to fill. */
typedef struct http_call {
	http_srv *hs;
	const char *name;
	json_t *in;
	http_out *out;
} http_call;

typedef struct route {
	const char *pattern; /* path, "*" standing for a collection name */
	const char *method;
	wire_op op; /* for the metrics */
	void (*fn)(http_call *call);
	bool body; /* takes a JSON object body */
} route;

/* One request in flight, from nng's handler callback to the completion of its aio. */
struct http_job {
	http_job *next;
	http_srv *hs;
	nng_aio *aio;      /* nng's handler aio, completed with the response */
	nng_http_req *req; /* nng's, valid until aio completes */
	nng_http_conn *conn;
	const route *route; /* NULL until routed */
	char name[OMEN_MAX_NAME + 1];
	size_t body_len; /* from Content-Length, checked against the cap */
	char *body;      /* body_len bytes once rx completes */
	nng_aio *rx;     /* reads the body; NULL when there is none */
	bool unframed;   /* the body's length is unknown or over the cap: close after answering */
	bool refused;    /* the body is read only to keep the connection: answer refusal */
	http_out refusal;
	char allow[64]; /* the Allow header of a 405 */
	struct timespec start;
};

struct http_srv {
	coord *c;
	metrics *m;
	nng_http_server *server;
	pthread_mutex_t mu;
	pthread_cond_t work;     /* a job was queued, or stopping */
	pthread_cond_t idle;     /* inflight dropped to zero */
	http_job *head, *tail;   /* jobs waiting for a worker */
	size_t queued, inflight; /* waiting; created and not yet freed */
	bool draining;           /* http_stop began: queued jobs are dropped, not served */
	bool stopping;           /* no new jobs: callbacks fail their aio at once */
	int refs;                /* the owner's, plus one per handler nng holds */
	int nworkers;
	pthread_t workers[HTTP_WORKERS];
};

/* ---- Responses --------------------------------------------------------------------------- */

/* Takes obj (a reference) and makes it the response's body. */
static void out_json(http_out *out, uint16_t status, json_t *obj)
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

/* Makes the response the JSON error of code with a printf-style message. http is the HTTP
 * status, or 0 for code's usual one. */
static void out_error(http_out *out, int code, uint16_t http, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void out_error(http_out *out, int code, uint16_t http, const char *fmt, ...)
{
	char msg[HTTP_MSGLEN];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	json_t *err = json_pack("{s:{s:s,s:i,s:s}}", "error", "code", status_name(code), "status",
	                        code, "message", msg);
	out_json(out, http ? http : (uint16_t)status_http(code), err);
	out->code = code;
}

/* The error a coordinator reply carries. */
static void out_rep_error(http_out *out, const wire_rep *rep)
{
	const char *msg = rep->message && *rep->message ? rep->message : status_text(rep->status);
	out_error(out, rep->status, 0, "%s", msg);
}

/* A reply that does not hold what its call promises: the coordinator's fault, not the
 * client's. */
static void out_bad_reply(http_out *out, const char *what)
{
	out_error(out, OMEN_EPROTO, 500, "internal error: malformed %s reply", what);
}

/* A memstream body: bodies with many ids and floats are printed rather than built in jansson,
 * which also keeps ids above INT64_MAX exact. */
typedef struct mstream {
	FILE *f;
	char *buf;
	size_t len;
} mstream;

static bool ms_open(mstream *ms, http_out *out)
{
	ms->buf = NULL;
	ms->len = 0;
	ms->f = open_memstream(&ms->buf, &ms->len);
	if (!ms->f)
		out_error(out, OMEN_ENOMEM, 0, "out of memory");
	return ms->f != NULL;
}

/* Closes the stream and makes it the body of out, or an ENOMEM error. */
static void ms_finish(mstream *ms, http_out *out, uint16_t status, const char *ctype)
{
	int failed = ferror(ms->f);
	if (fclose(ms->f) != 0 || failed || !ms->buf) {
		free(ms->buf);
		out_error(out, OMEN_ENOMEM, 0, "out of memory");
		return;
	}
	free(out->body);
	out->body = ms->buf;
	out->len = ms->len;
	out->status = status;
	out->code = OMEN_OK;
	out->ctype = ctype;
}

/* A float32 with enough digits to read back the same float; null when not finite. */
static void put_float(FILE *f, float v)
{
	if (isfinite(v))
		fprintf(f, "%.9g", (double)v);
	else
		fputs("null", f);
}

/* ---- JSON input -------------------------------------------------------------------------- */

/* Each of these checks one field of the request body. On a bad value they make the response a
 * 400 error naming the field and return false. */

static bool fail_invalid(http_call *call, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static bool fail_invalid(http_call *call, const char *fmt, ...)
{
	char msg[HTTP_MSGLEN];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	out_error(call->out, OMEN_EINVAL, 0, "%s", msg);
	return false;
}

/* Refuses keys of the body that are not in the NULL-terminated list, so that a misspelt
 * option is an error instead of a silent default. */
static bool check_keys(http_call *call, const char *const *keys)
{
	const char *key;
	json_t *v;
	json_object_foreach(call->in, key, v)
	{
		size_t i = 0;
		while (keys[i] && strcmp(keys[i], key) != 0)
			i++;
		if (!keys[i])
			return fail_invalid(call, "unknown field '%.100s'", key);
	}
	return true;
}

/* An integer field in min..max; def when absent or null. */
static bool get_uint(http_call *call, const char *key, uint64_t min, uint64_t max, uint64_t def,
                     uint64_t *out)
{
	json_t *v = json_object_get(call->in, key);
	if (!v || json_is_null(v)) {
		*out = def;
		return true;
	}
	if (!json_is_integer(v))
		return fail_invalid(call, "'%s' must be an integer", key);
	json_int_t x = json_integer_value(v);
	if (x < 0 || (uint64_t)x < min || (uint64_t)x > max)
		return fail_invalid(call, "'%s' must be in %" PRIu64 "..%" PRIu64 ", got %lld", key,
		                    min, max, (long long)x);
	*out = (uint64_t)x;
	return true;
}

/* A boolean field; false when absent or null. */
static bool get_bool(http_call *call, const char *key, int *out)
{
	json_t *v = json_object_get(call->in, key);
	if (v && !json_is_null(v) && !json_is_boolean(v))
		return fail_invalid(call, "'%s' must be true or false", key);
	*out = v && json_is_true(v);
	return true;
}

/* A string field; def when absent or null (def NULL: required). */
static bool get_string(http_call *call, const char *key, const char *def, const char **out)
{
	json_t *v = json_object_get(call->in, key);
	if (!v || json_is_null(v)) {
		if (!def)
			return fail_invalid(call, "'%s' is required", key);
		*out = def;
		return true;
	}
	if (!json_is_string(v))
		return fail_invalid(call, "'%s' must be a string", key);
	*out = json_string_value(v);
	return true;
}

/* Reads row, a JSON array of exactly dim numbers, into dst. what names it in errors. */
static bool read_row(http_call *call, json_t *row, const char *what, size_t dim, float *dst)
{
	if (!json_is_array(row))
		return fail_invalid(call, "%s must be an array of numbers", what);
	if (json_array_size(row) != dim)
		return fail_invalid(call, "%s has %zu numbers, expected %zu (the first vector's)",
		                    what, json_array_size(row), dim);
	for (size_t j = 0; j < dim; j++) {
		json_t *x = json_array_get(row, j);
		if (!json_is_number(x))
			return fail_invalid(call, "%s[%zu] is not a number", what, j);
		double d = json_number_value(x);
		float v = (float)d;
		if (!isfinite(v))
			return fail_invalid(call, "%s[%zu] = %g is outside the float32 range", what,
			                    j, d);
		dst[j] = v;
	}
	return true;
}

/* The field key as n vectors of one dimension; single: key holds one vector, not an array of
 * them. On success *vectors is malloc'd n x dim floats. */
static bool get_vectors(http_call *call, const char *key, bool single, uint64_t *n, uint32_t *dim,
                        float **vectors)
{
	json_t *v = json_object_get(call->in, key);
	if (!json_is_array(v) || json_array_size(v) == 0)
		return fail_invalid(call, "'%s' must be a non-empty array%s", key,
		                    single ? " of numbers" : " of vectors");
	size_t rows = single ? 1 : json_array_size(v);
	json_t *first = single ? v : json_array_get(v, 0);
	size_t d = json_is_array(first) ? json_array_size(first) : 0;
	if (rows > OMEN_MAX_BATCH)
		return fail_invalid(call, "'%s' holds %zu vectors, at most %d allowed", key, rows,
		                    OMEN_MAX_BATCH);
	if (d < 1 || d > OMEN_MAX_DIM)
		return fail_invalid(call, "%s%s must hold 1..%d numbers", key, single ? "" : "[0]",
		                    OMEN_MAX_DIM);
	float *buf = malloc(rows * d * sizeof *buf);
	if (!buf) {
		out_error(call->out, OMEN_ENOMEM, 0, "out of memory for %zu vectors", rows);
		return false;
	}
	for (size_t i = 0; i < rows; i++) {
		char what[64];
		if (single)
			snprintf(what, sizeof what, "%s", key);
		else
			snprintf(what, sizeof what, "%s[%zu]", key, i);
		if (!read_row(call, single ? v : json_array_get(v, i), what, d, buf + i * d)) {
			free(buf);
			return false;
		}
	}
	*n = rows;
	*dim = (uint32_t)d;
	*vectors = buf;
	return true;
}

/* True when no id is reserved or appears twice (a duplicate would make one shard refuse its part
 * of a batch that other shards apply). */
static bool ids_distinct(http_call *call, const uint64_t *ids, size_t n)
{
	int st = ids_check(ids, n);
	if (st != OMEN_OK)
		out_error(call->out, st, 0, "'ids': %s", status_msg());
	return st == OMEN_OK;
}

/* The field key as an array of ids (non-negative integers). want: the count required, or
 * UINT64_MAX for any. On success *ids is malloc'd (NULL for an empty array). */
static bool get_ids(http_call *call, const char *key, uint64_t want, uint64_t **ids, uint64_t *n)
{
	json_t *v = json_object_get(call->in, key);
	if (!json_is_array(v))
		return fail_invalid(call, "'%s' must be an array of non-negative integers", key);
	size_t cnt = json_array_size(v);
	if (want != UINT64_MAX && cnt != want)
		return fail_invalid(call, "'%s' has %zu entries, 'vectors' has %" PRIu64, key, cnt,
		                    want);
	if (cnt > OMEN_MAX_BATCH)
		return fail_invalid(call, "'%s' holds %zu ids, at most %d allowed", key, cnt,
		                    OMEN_MAX_BATCH);
	uint64_t *buf = cnt ? malloc(cnt * sizeof *buf) : NULL;
	if (cnt && !buf) {
		out_error(call->out, OMEN_ENOMEM, 0, "out of memory for %zu ids", cnt);
		return false;
	}
	for (size_t i = 0; i < cnt; i++) {
		json_t *x = json_array_get(v, i);
		if (!json_is_integer(x) || json_integer_value(x) < 0) {
			free(buf);
			return fail_invalid(call, "%s[%zu] must be a non-negative integer", key, i);
		}
		buf[i] = (uint64_t)json_integer_value(x);
	}
	*ids = buf;
	*n = cnt;
	return true;
}

/* The optional field "metadata": n entries, each an object or null. On success *meta is a
 * malloc'd array of n malloc'd JSON texts (NULL entries for null), or NULL when absent. */
static bool get_meta(http_call *call, uint64_t n, char ***meta)
{
	json_t *v = json_object_get(call->in, "metadata");
	*meta = NULL;
	if (!v || json_is_null(v))
		return true;
	if (!json_is_array(v) || json_array_size(v) != n)
		return fail_invalid(call,
		                    "'metadata' must be an array of %" PRIu64
		                    " objects or nulls, one per vector",
		                    n);
	char **m = calloc(n, sizeof *m);
	if (!m) {
		out_error(call->out, OMEN_ENOMEM, 0, "out of memory");
		return false;
	}
	*meta = m; /* the caller frees it with the request, also on failure */
	for (size_t i = 0; i < n; i++) {
		json_t *e = json_array_get(v, i);
		if (json_is_null(e))
			continue;
		if (!json_is_object(e))
			return fail_invalid(call, "metadata[%zu] must be an object or null", i);
		if (!(m[i] = json_dumps(e, JSON_COMPACT))) {
			out_error(call->out, OMEN_ENOMEM, 0, "out of memory");
			return false;
		}
		/* Refused here, before any shard writes, by the rule the shards apply. */
		int st = meta_check_json(m[i]);
		if (st != OMEN_OK) {
			out_error(call->out, st, 0, "metadata[%zu]: %s", i, status_msg());
			return false;
		}
	}
	return true;
}

/* ---- Routes ------------------------------------------------------------------------------ */

static json_int_t ji(uint64_t v)
{
	return v > INT64_MAX ? INT64_MAX : (json_int_t)v;
}

/* Sends req through the coordinator. On failure the reply's error is the response and false
 * is returned; either way the caller frees rep. */
static bool call_coord(http_call *call, wire_req *req, wire_rep *rep)
{
	if (call->name[0])
		snprintf(req->name, sizeof req->name, "%s", call->name);
	coord_handle(call->hs->c, req, rep);
	if (rep->status != OMEN_OK) {
		out_rep_error(call->out, rep);
		return false;
	}
	return true;
}

/* POST /admin/leader {"to": ID}: hands the Raft leadership to coordinator ID (0: any), for
 * maintenance of the current leader. Served by the leader. */
static void do_transfer(http_call *call)
{
	static const char *const keys[] = {"to", NULL};
	uint64_t to = 0;
	if (!check_keys(call, keys) || !get_uint(call, "to", 0, 999, 0, &to))
		return;
	uint64_t leader = 0;
	int st = coord_raft_transfer(call->hs->c, to, &leader);
	if (st != OMEN_OK)
		out_error(call->out, st, 0, "%s", status_msg());
	else
		out_json(call->out, 200, json_pack("{s:I}", "leader", ji(leader)));
}

/* POST /admin/coordinators {"id": N, "raft": "host:port", "listen": "tcp://..."}: adds a
 * coordinator (started with "join": true) to the Raft group as a voter. Served by the leader. */
static void do_coord_add(http_call *call)
{
	static const char *const keys[] = {"id", "raft", "listen", NULL};
	uint64_t id = 0;
	const char *raft = NULL, *listen = NULL;
	if (!check_keys(call, keys) || !get_uint(call, "id", 1, 999, 0, &id) ||
	    !get_string(call, "raft", NULL, &raft) || !get_string(call, "listen", NULL, &listen))
		return;
	int st = coord_raft_add(call->hs->c, id, raft, listen);
	if (st != OMEN_OK)
		out_error(call->out, st, 0, "%s", status_msg());
	else
		out_json(call->out, 200, json_pack("{s:I}", "added", ji(id)));
}

/* POST /admin/coordinators/remove {"id": N}: removes a coordinator from the Raft group (not
 * the leader: hand the leadership over first). Served by the leader. */
static void do_coord_remove(http_call *call)
{
	static const char *const keys[] = {"id", NULL};
	uint64_t id = 0;
	if (!check_keys(call, keys) || !get_uint(call, "id", 1, 999, 0, &id))
		return;
	int st = coord_raft_remove(call->hs->c, id);
	if (st != OMEN_OK)
		out_error(call->out, st, 0, "%s", status_msg());
	else
		out_json(call->out, 200, json_pack("{s:I}", "removed", ji(id)));
}

/* GET /admin/nodes: the nodes in this coordinator's replica, with the logical shards each
 * holds, and the state of rebalancing. */
static void do_nodes_list(http_call *call)
{
	coord_node_info *v;
	coord_cluster_info ci;
	size_t n;
	int st = coord_nodes(call->hs->c, &v, &n, &ci);
	if (st != OMEN_OK) {
		out_error(call->out, st, 0, "%s", status_msg());
		return;
	}
	json_t *a = json_array();
	for (size_t i = 0; a && i < n; i++)
		json_array_append_new(
		    a, json_pack("{s:I,s:s,s:s,s:s,s:I}", "id", ji(v[i].id), "addr", v[i].addr,
		                 "role", v[i].coordinator ? "coordinator" : "shard", "state",
		                 v[i].up ? "up" : "down", "shards", ji(v[i].shards)));
	free(v);
	out_json(call->out, 200,
	         json_pack("{s:o,s:I,s:b,s:I,s:I,s:I}", "nodes", a, "epoch", ji(ci.epoch),
	                   "balanced", ci.balanced, "moves_done", ji(ci.moves_done), "moves_failed",
	                   ji(ci.moves_failed), "cleanups", ji(ci.cleanups)));
}

/* GET /health */
static void do_health(http_call *call)
{
	wire_req req;
	wire_rep rep;
	wire_req_init(&req);
	wire_rep_init(&rep);
	req.op = WIRE_HEALTH;
	if (call_coord(call, &req, &rep)) {
		json_t *o = json_pack("{s:s,s:I}", "status", "ok", "shards_up", ji(rep.count));
		uint64_t leader;
		int role = coord_raft_role(call->hs->c, &leader);
		if (o && role >= 0) /* Raft: this coordinator's role and the leader it knows */
			json_object_set_new(
			    o, "raft",
			    json_pack("{s:b,s:I}", "leader", role == 1, "leader_id", ji(leader)));
		out_json(call->out, 200, o);
	}
	wire_rep_free(&rep);
}

/* Escapes a Prometheus label value (backslash, double quote, newline). */
static void put_label(FILE *f, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			fputc('\\', f);
		if (*s == '\n')
			fputs("\\n", f);
		else
			fputc(*s, f);
	}
}

static void shard_points_line(void *ctx, const char *coll, uint32_t shard, const char *node,
                              uint64_t points)
{
	FILE *f = ctx;
	if (points == UINT64_MAX) /* the node did not answer: no sample rather than a wrong one */
		return;
	fputs("omendb_shard_points{collection=\"", f);
	put_label(f, coll);
	fprintf(f, "\",shard=\"%" PRIu32 "\",node=\"", shard);
	put_label(f, node);
	fprintf(f, "\"} %" PRIu64 "\n", points);
}

/* GET /metrics: the request metrics, then live points per logical shard. */
static void do_metrics(http_call *call)
{
	char *text = NULL;
	mstream ms;
	if (metrics_text(call->hs->m, &text) != OMEN_OK) {
		out_error(call->out, OMEN_ENOMEM, 0, "out of memory");
		return;
	}
	if (!ms_open(&ms, call->out)) {
		free(text);
		return;
	}
	fputs(text, ms.f);
	free(text);
	fputs("# HELP omendb_shard_points Live points of a logical shard, as its node reports.\n"
	      "# TYPE omendb_shard_points gauge\n",
	      ms.f);
	int st = coord_shard_points(call->hs->c, shard_points_line, ms.f);
	if (st != OMEN_OK)
		fprintf(ms.f, "# omendb_shard_points incomplete: %s\n", status_text(st));
	ms_finish(&ms, call->out, 200, CT_PROM);
}

/* GET /collections */
static void do_list(http_call *call)
{
	wire_req req;
	wire_rep rep;
	wire_req_init(&req);
	wire_rep_init(&rep);
	req.op = WIRE_LIST;
	if (call_coord(call, &req, &rep)) {
		json_t *names = json_array();
		for (uint64_t i = 0; names && i < rep.nnames; i++)
			if (!rep.names || !rep.names[i] ||
			    json_array_append_new(names, json_string(rep.names[i])) != 0) {
				json_decref(names);
				names = NULL;
			}
		if (names)
			out_json(call->out, 200, json_pack("{s:o}", "collections", names));
		else
			out_bad_reply(call->out, "list");
	}
	wire_rep_free(&rep);
}

/* POST /collections {"name", "dim", "metric", "shards"} */
static void do_create(http_call *call)
{
	static const char *const keys[] = {"name", "dim", "metric", "shards", NULL};
	const char *name = NULL, *metric_s = NULL;
	uint64_t dim = 0, shards = 0;
	omen_metric metric;
	if (!check_keys(call, keys) || !get_string(call, "name", NULL, &name) ||
	    !get_uint(call, "dim", 1, OMEN_MAX_DIM, 0, &dim) ||
	    !get_string(call, "metric", "l2", &metric_s) ||
	    !get_uint(call, "shards", 0, WIRE_MAX_SHARDS, 0, &shards))
		return;
	if (!json_object_get(call->in, "dim")) {
		fail_invalid(call, "'dim' is required");
		return;
	}
	if (!name_valid(name, strlen(name))) {
		fail_invalid(call, "collection name '%.140s' must be 1..%d bytes of [A-Za-z0-9_.-]",
		             name, OMEN_MAX_NAME);
		return;
	}
	if (metric_parse(metric_s, &metric) != OMEN_OK) {
		fail_invalid(call, "'metric' must be \"l2\", \"ip\" or \"cosine\", got \"%.40s\"",
		             metric_s);
		return;
	}
	wire_req req;
	wire_rep rep;
	wire_req_init(&req);
	wire_rep_init(&rep);
	req.op = WIRE_CREATE;
	snprintf(req.name, sizeof req.name, "%s", name);
	req.dim = (uint32_t)dim;
	req.metric = metric;
	req.nshards = (uint32_t)shards;
	if (call_coord(call, &req, &rep))
		out_json(call->out, 201,
		         json_pack("{s:s,s:I,s:s}", "name", name, "dim", (json_int_t)dim, "metric",
		                   metric_name(metric)));
	wire_rep_free(&rep);
}

static json_t *stats_json(const omen_collection_stats *s)
{
	return json_pack("{s:s,s:I,s:s,s:I,s:I,s:I,s:I,s:I,s:s,s:I,s:I,s:I,s:I,s:b}", "name",
	                 s->name, "dim", (json_int_t)s->dim, "metric", metric_name(s->metric),
	                 "points", ji(s->points), "deleted", ji(s->deleted), "next_id",
	                 ji(s->next_id), "segments", ji(s->segments), "vector_bytes",
	                 ji(s->vector_bytes), "index", s->index ? s->index : "flat", "indexed",
	                 ji(s->indexed), "index_bytes", ji(s->index_bytes), "hnsw_m",
	                 (json_int_t)s->hnsw_m, "hnsw_ef_construction",
	                 (json_int_t)s->hnsw_ef_construction, "hnsw_int8", s->hnsw_int8 != 0);
}

/* GET /collections/NAME */
static void do_stats(http_call *call)
{
	wire_req req;
	wire_rep rep;
	wire_req_init(&req);
	wire_rep_init(&rep);
	req.op = WIRE_STATS;
	if (call_coord(call, &req, &rep)) {
		if (rep.has_stats)
			out_json(call->out, 200, stats_json(&rep.stats));
		else
			out_bad_reply(call->out, "stats");
	}
	wire_rep_free(&rep);
}

/* DELETE /collections/NAME */
static void do_drop(http_call *call)
{
	wire_req req;
	wire_rep rep;
	wire_req_init(&req);
	wire_rep_init(&rep);
	req.op = WIRE_DROP;
	if (call_coord(call, &req, &rep))
		out_json(call->out, 200, json_pack("{s:s}", "dropped", call->name));
	wire_rep_free(&rep);
}

/* {"ids":[...]} for n ids written. */
static void put_ids(http_call *call, const wire_rep *rep, uint64_t n)
{
	mstream ms;
	if (rep->n != n || (n && !rep->ids)) {
		out_bad_reply(call->out, "upsert");
		return;
	}
	if (!ms_open(&ms, call->out))
		return;
	fputs("{\"ids\":[", ms.f);
	for (uint64_t i = 0; i < n; i++)
		fprintf(ms.f, "%s%" PRIu64, i ? "," : "", rep->ids[i]);
	fputs("]}", ms.f);
	ms_finish(&ms, call->out, 200, CT_JSON);
}

/* POST /collections/NAME/upsert {"vectors", "ids", "metadata"} */
static void do_upsert(http_call *call)
{
	static const char *const keys[] = {"vectors", "ids", "metadata", NULL};
	wire_req req;
	wire_rep rep;
	wire_req_init(&req);
	wire_rep_init(&rep);
	req.op = WIRE_UPSERT;
	if (!check_keys(call, keys) ||
	    !get_vectors(call, "vectors", false, &req.n, &req.dim, &req.vectors))
		goto done;
	json_t *ids = json_object_get(call->in, "ids");
	uint64_t nids;
	if (ids && !json_is_null(ids) &&
	    (!get_ids(call, "ids", req.n, &req.ids, &nids) || !ids_distinct(call, req.ids, nids)))
		goto done;
	if (!get_meta(call, req.n, &req.meta))
		goto done;
	if (call_coord(call, &req, &rep))
		put_ids(call, &rep, req.n);
done:
	wire_req_free(&req);
	wire_rep_free(&rep);
}

/* The search reply as {"results":[[{"id","distance"}...]...],"coverage":{...}}, without the
 * OMEN_NO_ID entries that pad rows a filter left short. */
static void put_results(http_call *call, const wire_rep *rep, uint64_t nq)
{
	mstream ms;
	uint64_t cells = rep->n * rep->k;
	if (rep->n != nq || (cells && (!rep->ids || !rep->dists))) {
		out_bad_reply(call->out, "search");
		return;
	}
	if (!ms_open(&ms, call->out))
		return;
	fputs("{\"results\":[", ms.f);
	for (uint64_t q = 0; q < nq; q++) {
		fputs(q ? ",[" : "[", ms.f);
		bool first = true;
		for (uint32_t j = 0; j < rep->k; j++) {
			uint64_t id = rep->ids[q * rep->k + j];
			if (id == OMEN_NO_ID)
				continue;
			fprintf(ms.f, "%s{\"id\":%" PRIu64 ",\"distance\":", first ? "" : ",", id);
			put_float(ms.f, rep->dists[q * rep->k + j]);
			fputc('}', ms.f);
			first = false;
		}
		fputc(']', ms.f);
	}
	fprintf(ms.f, "],\"coverage\":{\"answered\":%" PRIu32 ",\"total\":%" PRIu32 "}}",
	        rep->shards_answered, rep->shards_total);
	ms_finish(&ms, call->out, 200, CT_JSON);
}

/* The search options of the body: k, ef, exact, partial, deadline_ms, filter. */
static bool search_options(http_call *call, wire_req *req)
{
	uint64_t k = 0, ef = 0, deadline = 0;
	if (!get_uint(call, "k", 1, OMEN_MAX_K, 10, &k) ||
	    !get_uint(call, "ef", 0, OMEN_HNSW_EF_MAX, 0, &ef) ||
	    !get_uint(call, "deadline_ms", 0, 3600000, 0, &deadline) ||
	    !get_bool(call, "exact", &req->exact) || !get_bool(call, "partial", &req->partial))
		return false;
	req->k = (uint32_t)k;
	req->ef = (uint32_t)ef;
	req->deadline_ms = (uint32_t)deadline;
	json_t *filter = json_object_get(call->in, "filter");
	if (filter && !json_is_null(filter)) {
		if (!json_is_object(filter))
			return fail_invalid(call,
			                    "'filter' must be a JSON object (docs/FILTERS.md)");
		if (!(req->filter = json_dumps(filter, JSON_COMPACT))) {
			out_error(call->out, OMEN_ENOMEM, 0, "out of memory");
			return false;
		}
	}
	return true;
}

/* POST /collections/NAME/search {"vector" | "vectors", "k", "filter", "ef", "exact",
 * "partial", "deadline_ms"} */
static void do_search(http_call *call)
{
	static const char *const keys[] = {"vector", "vectors", "k",           "filter", "ef",
	                                   "exact",  "partial", "deadline_ms", NULL};
	wire_req req;
	wire_rep rep;
	wire_req_init(&req);
	wire_rep_init(&rep);
	req.op = WIRE_SEARCH;
	if (!check_keys(call, keys))
		goto done;
	bool one = json_object_get(call->in, "vector") != NULL;
	if (one == (json_object_get(call->in, "vectors") != NULL)) {
		fail_invalid(call, "give exactly one of 'vector' (one query) and 'vectors' (many)");
		goto done;
	}
	if (!get_vectors(call, one ? "vector" : "vectors", one, &req.n, &req.dim, &req.vectors) ||
	    !search_options(call, &req))
		goto done;
	if (call_coord(call, &req, &rep))
		put_results(call, &rep, req.n);
done:
	wire_req_free(&req);
	wire_rep_free(&rep);
}

/* One point of a get reply: {"id","vector","metadata"} or null. */
static void put_point(FILE *f, const wire_rep *rep, uint64_t i, uint64_t id)
{
	if (!rep->found[i]) {
		fputs("null", f);
		return;
	}
	fprintf(f, "{\"id\":%" PRIu64 ",\"vector\":[", id);
	for (uint32_t j = 0; j < rep->dim; j++) {
		if (j)
			fputc(',', f);
		put_float(f, rep->vectors[i * rep->dim + j]);
	}
	fputs("],\"metadata\":", f);
	const char *meta = rep->meta ? rep->meta[i] : NULL;
	fputs(meta && meta[0] == '{' ? meta : "null", f);
	fputc('}', f);
}

/* POST /collections/NAME/get {"ids"} */
static void do_get(http_call *call)
{
	static const char *const keys[] = {"ids", NULL};
	wire_req req;
	wire_rep rep;
	mstream ms;
	wire_req_init(&req);
	wire_rep_init(&rep);
	req.op = WIRE_GET;
	if (!check_keys(call, keys) || !get_ids(call, "ids", UINT64_MAX, &req.ids, &req.n) ||
	    (req.n && !call_coord(call, &req, &rep)))
		goto done;
	if (rep.n != req.n || (req.n && (!rep.found || (rep.dim && !rep.vectors)))) {
		out_bad_reply(call->out, "get");
		goto done;
	}
	if (!ms_open(&ms, call->out))
		goto done;
	fputs("{\"points\":[", ms.f);
	for (uint64_t i = 0; i < req.n; i++) {
		if (i)
			fputc(',', ms.f);
		put_point(ms.f, &rep, i, req.ids[i]);
	}
	fputs("]}", ms.f);
	ms_finish(&ms, call->out, 200, CT_JSON);
done:
	wire_req_free(&req);
	wire_rep_free(&rep);
}

/* POST /collections/NAME/delete {"ids"} */
static void do_delete(http_call *call)
{
	static const char *const keys[] = {"ids", NULL};
	wire_req req;
	wire_rep rep;
	wire_req_init(&req);
	wire_rep_init(&rep);
	req.op = WIRE_DELETE;
	if (check_keys(call, keys) && get_ids(call, "ids", UINT64_MAX, &req.ids, &req.n) &&
	    (req.n == 0 || call_coord(call, &req, &rep)))
		out_json(call->out, 200, json_pack("{s:I}", "deleted", ji(rep.count)));
	wire_req_free(&req);
	wire_rep_free(&rep);
}

static const route routes[] = {
    {"/health", "GET", WIRE_HEALTH, do_health, false},
    {"/admin/leader", "POST", HTTP_OP_NONE, do_transfer, true},
    {"/admin/nodes", "GET", HTTP_OP_NONE, do_nodes_list, false},
    {"/admin/coordinators", "POST", HTTP_OP_NONE, do_coord_add, true},
    {"/admin/coordinators/remove", "POST", HTTP_OP_NONE, do_coord_remove, true},
    {"/metrics", "GET", HTTP_OP_NONE, do_metrics, false},
    {"/collections", "GET", WIRE_LIST, do_list, false},
    {"/collections", "POST", WIRE_CREATE, do_create, true},
    {"/collections/*", "GET", WIRE_STATS, do_stats, false},
    {"/collections/*", "DELETE", WIRE_DROP, do_drop, false},
    {"/collections/*/upsert", "POST", WIRE_UPSERT, do_upsert, true},
    {"/collections/*/search", "POST", WIRE_SEARCH, do_search, true},
    {"/collections/*/get", "POST", WIRE_GET, do_get, true},
    {"/collections/*/delete", "POST", WIRE_DELETE, do_delete, true},
};
#define NROUTES (sizeof routes / sizeof routes[0])

/* ---- Jobs -------------------------------------------------------------------------------- */

static void hs_unref(void *arg)
{
	http_srv *hs = arg;
	pthread_mutex_lock(&hs->mu);
	int left = --hs->refs;
	pthread_mutex_unlock(&hs->mu);
	if (left)
		return;
	pthread_mutex_destroy(&hs->mu);
	pthread_cond_destroy(&hs->work);
	pthread_cond_destroy(&hs->idle);
	free(hs);
}

static double elapsed(const struct timespec *start)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

/* A job for nng's handler aio, or NULL when the server is stopping or out of memory (the aio
 * is then already completed with an error). */
static http_job *job_new(http_srv *hs, nng_aio *aio)
{
	http_job *job = calloc(1, sizeof *job);
	pthread_mutex_lock(&hs->mu);
	bool stopping = hs->stopping;
	if (job && !stopping)
		hs->inflight++;
	pthread_mutex_unlock(&hs->mu);
	if (!job || stopping) {
		free(job);
		nng_aio_finish(aio, stopping ? NNG_ECLOSED : NNG_ENOMEM);
		return NULL;
	}
	job->hs = hs;
	job->aio = aio;
	job->req = nng_aio_get_input(aio, 0);
	job->conn = nng_aio_get_input(aio, 2);
	clock_gettime(CLOCK_MONOTONIC, &job->start);
	return job;
}

/* Releases a job. Never called from its rx aio's own callback. */
static void job_free(http_job *job)
{
	http_srv *hs = job->hs;
	if (job->rx)
		nng_aio_free(job->rx);
	free(job->body);
	free(job);
	pthread_mutex_lock(&hs->mu);
	if (--hs->inflight == 0)
		pthread_cond_broadcast(&hs->idle);
	pthread_mutex_unlock(&hs->mu);
}

/* The nng response for out (nng 1.5.2 has no reason phrase for 413: it is set here). */
static nng_http_res *build_res(const http_out *out)
{
	nng_http_res *res;
	if (nng_http_res_alloc(&res) != 0)
		return NULL;
	if (nng_http_res_set_status(res, out->status) != 0 ||
	    (out->status == 413 && nng_http_res_set_reason(res, "Payload Too Large") != 0) ||
	    nng_http_res_set_header(res, "Content-Type", out->ctype ? out->ctype : CT_JSON) != 0 ||
	    (out->allow && nng_http_res_set_header(res, "Allow", out->allow) != 0) ||
	    (out->www_auth && nng_http_res_set_header(res, "WWW-Authenticate", "Bearer") != 0) ||
	    (out->close && nng_http_res_set_header(res, "Connection", "close") != 0) ||
	    nng_http_res_copy_data(res, out->body, out->len) != 0) {
		nng_http_res_free(res);
		return NULL;
	}
	return res;
}

static wire_op job_op(const http_job *job)
{
	return job->route ? job->route->op : HTTP_OP_NONE;
}

/* Sends out as the job's response, records the request and frees both. */
static void job_respond(http_job *job, http_out *out)
{
	nng_http_res *res = build_res(out);
	metrics_observe(job->hs->m, "http", job_op(job), out->code, elapsed(&job->start));
	free(out->body);
	if (res) {
		nng_aio_set_output(job->aio, 0, res);
		nng_aio_finish(job->aio, 0);
	} else {
		nng_aio_finish(job->aio, NNG_ENOMEM);
	}
	job_free(job);
}

/* ---- The front: nng's callback threads, nothing that blocks ------------------------------- */

/* Queues a job for the workers. The cap on waiting jobs is checked before a job's body is
 * read (queue_full), not here: a job whose body is in is never refused from the body's
 * callback. */
static void job_queue(http_job *job)
{
	http_srv *hs = job->hs;
	pthread_mutex_lock(&hs->mu);
	if (hs->tail)
		hs->tail->next = job;
	else
		hs->head = job;
	hs->tail = job;
	hs->queued++;
	pthread_cond_signal(&hs->work);
	pthread_mutex_unlock(&hs->mu);
}

/* The body's read completed: hand the job to the workers, which also deal with a failure. */
static void body_done(void *arg)
{
	job_queue(arg);
}

/* Starts reading the job's body_len bytes of body; body_done queues the job when they are in.
 * False when out of memory (the job is then still the caller's). */
static bool job_read(http_job *job)
{
	nng_iov iov;
	if (!(job->body = malloc(job->body_len)) || nng_aio_alloc(&job->rx, body_done, job) != 0)
		return false;
	iov.iov_buf = job->body;
	iov.iov_len = job->body_len;
	nng_aio_set_iov(job->rx, 1, &iov);
	nng_aio_set_timeout(job->rx, HTTP_BODY_TIMEOUT_MS);
	nng_http_conn_read_all(job->conn, job->rx);
	return true;
}

/* Answers a job with an error before its body was read. drain: read (and drop) the body
 * first, so that the connection can serve the next request; otherwise, or when that fails,
 * the connection is closed after the response. Refusals before the token was checked do not
 * drain: an unknown client gets no buffers. */
static void job_refuse(http_job *job, http_out *out, bool drain)
{
	if (drain && !job->unframed && job->body_len > 0) {
		job->refusal = *out;
		job->refused = true;
		if (job_read(job))
			return;
		job->refused = false;
	}
	out->close = job->unframed || job->body_len > 0;
	out->www_auth = out->code == OMEN_EAUTH;
	job_respond(job, out);
}

/* job_refuse with the JSON error of code; http is the HTTP status, or 0 for code's usual one. */
static void job_reject(http_job *job, bool drain, int code, uint16_t http, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void job_reject(http_job *job, bool drain, int code, uint16_t http, const char *fmt, ...)
{
	http_out out = {0};
	char msg[HTTP_MSGLEN];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	out_error(&out, code, http, "%s", msg);
	job_refuse(job, &out, drain);
}

/* True when the Authorization header carries the token. Compares in time that depends only on
 * the token's length. */
static bool token_ok(const char *token, const char *header)
{
	if (!header || strncasecmp(header, "Bearer ", 7) != 0)
		return false;
	const char *got = header + 7;
	while (*got == ' ')
		got++;
	size_t want = strlen(token), have = strlen(got);
	volatile unsigned char diff = want != have;
	for (size_t i = 0; i < want; i++)
		diff |= (unsigned char)token[i] ^ (unsigned char)got[i < have ? i : have];
	return diff == 0;
}

/* Turns the request's path into a route pattern ("/collections/x/search" gives
 * "/collections/ * /search" without the spaces) and the collection name, stored in the job.
 * False when the name is not a valid collection name. */
static bool path_pattern(http_job *job, char *pattern, size_t size)
{
	const char *uri = nng_http_req_get_uri(job->req);
	size_t len = strcspn(uri, "?#");
	while (len > 1 && uri[len - 1] == '/')
		len--;
	static const char prefix[] = "/collections/";
	size_t plen = sizeof prefix - 1;
	if (len >= size) {
		pattern[0] = '\0';
		return true;
	}
	if (len <= plen || strncmp(uri, prefix, plen) != 0) {
		snprintf(pattern, size, "%.*s", (int)len, uri);
		return true;
	}
	const char *name = uri + plen;
	size_t nlen = strcspn(name, "/?#");
	if (nlen > len - plen)
		nlen = len - plen;
	snprintf(pattern, size, "%s*%.*s", prefix, (int)(len - plen - nlen), name + nlen);
	if (!name_valid(name, nlen))
		return false;
	memcpy(job->name, name, nlen);
	job->name[nlen] = '\0';
	return true;
}

/* Finds the job's route. False after rejecting the job (no route: 404; a route for another
 * method: 405; an invalid collection name: 400). */
static bool job_route(http_job *job)
{
	char pattern[HTTP_MAX_PATH], *allow = job->allow;
	const char *method = nng_http_req_get_method(job->req);
	const char *m = strcmp(method, "HEAD") == 0 ? "GET" : method;
	bool name_ok = path_pattern(job, pattern, sizeof pattern);
	for (size_t i = 0; i < NROUTES; i++) {
		if (strcmp(routes[i].pattern, pattern) != 0)
			continue;
		if (strcmp(routes[i].method, m) == 0) {
			job->route = &routes[i];
			if (name_ok)
				return true;
			job_reject(job, true, OMEN_EINVAL, 0,
			           "the collection name in the path must be 1..%d bytes of "
			           "[A-Za-z0-9_.-]",
			           OMEN_MAX_NAME);
			return false;
		}
		size_t used = strlen(allow);
		snprintf(allow + used, sizeof job->allow - used, "%s%s", used ? ", " : "",
		         routes[i].method);
	}
	if (!allow[0]) {
		job_reject(job, true, OMEN_ENOTFOUND, 404, "no route for %.20s %.200s", method,
		           nng_http_req_get_uri(job->req));
		return false;
	}
	http_out out = {0};
	out_error(&out, OMEN_ENOTSUP, 405, "method %.20s not allowed on %.200s (allowed: %s)",
	          method, pattern, allow);
	out.allow = allow;
	job_refuse(job, &out, true);
	return false;
}

/* Checks how the body is framed and its length against the cap, into job->body_len. False
 * after rejecting the job (the connection is then closed: its bytes cannot be skipped). */
static bool job_length(http_job *job)
{
	const char *te = nng_http_req_get_header(job->req, "Transfer-Encoding");
	const char *cl = nng_http_req_get_header(job->req, "Content-Length");
	size_t max = coord_max_message(job->hs->c);
	char *end = NULL;
	unsigned long long len = cl ? strtoull(cl, &end, 10) : 0;
	if (te) {
		job->unframed = true;
		job_reject(job, false, OMEN_EINVAL, 411,
		           "send the body with Content-Length (%.40s bodies are not supported)",
		           te);
		return false;
	}
	if (cl && (end == cl || *end != '\0' || cl[0] == '-' || cl[0] == '+')) {
		job->unframed = true;
		job_reject(job, false, OMEN_EINVAL, 400, "bad Content-Length '%.40s'", cl);
		return false;
	}
	if (len > max) {
		job->unframed = true;
		job_reject(job, false, OMEN_ELIMIT, 413,
		           "request body of %llu bytes exceeds the limit of %zu", len, max);
		return false;
	}
	job->body_len = (size_t)len;
	return true;
}

static bool queue_full(http_srv *hs)
{
	pthread_mutex_lock(&hs->mu);
	bool full = hs->queued >= HTTP_QUEUE_MAX;
	pthread_mutex_unlock(&hs->mu);
	return full;
}

/* nng's handler callback for every path: checks what is cheap (framing, token, route, queue),
 * then reads the body, whose completion queues the job, or queues it at once. The body is read
 * also for routes that ignore it, so that the connection stays usable. */
static void http_cb(nng_aio *aio)
{
	nng_http_handler *h = nng_aio_get_input(aio, 1);
	http_job *job = job_new(nng_http_handler_get_data(h), aio);
	if (!job || !job_length(job))
		return;
	const char *token = coord_token(job->hs->c);
	if (token && !token_ok(token, nng_http_req_get_header(job->req, "Authorization"))) {
		job_reject(job, false, OMEN_EAUTH, 0,
		           "missing or wrong token: send 'Authorization: Bearer TOKEN'");
		return;
	}
	if (!job_route(job))
		return;
	if (queue_full(job->hs)) {
		job_reject(job, false, OMEN_EUNAVAIL, 0,
		           "too many HTTP requests waiting; retry later");
		return;
	}
	if (job->body_len == 0)
		job_queue(job);
	else if (!job_read(job))
		job_reject(job, false, OMEN_ENOMEM, 0, "out of memory for a body of %zu bytes",
		           job->body_len);
}

/* ---- The back: worker threads ------------------------------------------------------------ */

/* Parses the job's body as a JSON object into *in. False after filling out with the error. */
static bool parse_body(http_job *job, http_out *out, json_t **in)
{
	json_error_t jerr;
	json_t *v =
	    json_loadb(job->body ? job->body : "", job->body_len, JSON_REJECT_DUPLICATES, &jerr);
	if (!v) {
		out_error(out, OMEN_EINVAL, 0, "malformed JSON at line %d column %d: %s", jerr.line,
		          jerr.column, jerr.text);
		return false;
	}
	if (!json_is_object(v)) {
		json_decref(v);
		out_error(out, OMEN_EINVAL, 0, "the request body must be a JSON object");
		return false;
	}
	*in = v;
	return true;
}

/* Completes the job's aio with an nng error, which makes nng close the connection. */
static void job_drop(http_job *job, int rv)
{
	if (job->refused)
		free(job->refusal.body);
	metrics_observe(job->hs->m, "http", job_op(job), OMEN_EIO, elapsed(&job->start));
	nng_aio_finish(job->aio, rv);
	job_free(job);
}

static void job_serve(http_job *job, bool draining)
{
	if (draining) { /* its connection is closed already: nobody waits for the answer */
		job_drop(job, NNG_ECLOSED);
		return;
	}
	if (job->rx && nng_aio_result(job->rx) != 0) { /* the client went away or stalled */
		job_drop(job, nng_aio_result(job->rx));
		return;
	}
	if (job->refused) {
		job_respond(job, &job->refusal);
		return;
	}
	http_out out = {.status = 500, .code = OMEN_OK};
	http_call call = {.hs = job->hs, .name = job->name, .in = NULL, .out = &out};
	if (!job->route->body || parse_body(job, &out, &call.in))
		job->route->fn(&call);
	json_decref(call.in);
	if (!out.body) /* every route fills out; this is a bug net */
		out_error(&out, OMEN_EPROTO, 500, "internal error: no response");
	job_respond(job, &out);
}

static void *worker_main(void *arg)
{
	http_srv *hs = arg;
	for (;;) {
		pthread_mutex_lock(&hs->mu);
		while (!hs->head && !hs->stopping)
			pthread_cond_wait(&hs->work, &hs->mu);
		http_job *job = hs->head;
		bool draining = hs->draining;
		if (job) {
			hs->head = job->next;
			if (!hs->head)
				hs->tail = NULL;
			hs->queued--;
		}
		pthread_mutex_unlock(&hs->mu);
		if (!job)
			return NULL;
		job_serve(job, draining);
	}
}

/* ---- Start and stop ---------------------------------------------------------------------- */

/* Registers http_cb for path (and, with tree, everything under it) for every method: the
 * route table, not nng, decides between 404 and 405 so that both answer in JSON. */
static int add_handler(http_srv *hs, const char *path, bool tree)
{
	nng_http_handler *h;
	int rv = nng_http_handler_alloc(&h, path, http_cb);
	if (rv != 0)
		return rv;
	pthread_mutex_lock(&hs->mu);
	hs->refs++; /* released by the handler's destructor, when nng drops the handler */
	pthread_mutex_unlock(&hs->mu);
	if ((rv = nng_http_handler_set_data(h, hs, hs_unref)) != 0) {
		nng_http_handler_free(h);
		hs_unref(hs);
		return rv;
	}
	if ((rv = nng_http_handler_set_method(h, NULL)) != 0 ||
	    (tree && (rv = nng_http_handler_set_tree(h)) != 0) ||
	    (rv = nng_http_handler_collect_body(h, false, 0)) != 0 ||
	    (rv = nng_http_server_add_handler(hs->server, h)) != 0) {
		nng_http_handler_free(h);
		return rv;
	}
	return 0;
}

/* Waits for every job to finish, then stops the workers. */
static void stop_workers(http_srv *hs)
{
	pthread_mutex_lock(&hs->mu);
	while (hs->inflight > 0)
		pthread_cond_wait(&hs->idle, &hs->mu);
	hs->stopping = true;
	pthread_cond_broadcast(&hs->work);
	pthread_mutex_unlock(&hs->mu);
	for (int i = 0; i < hs->nworkers; i++)
		pthread_join(hs->workers[i], NULL);
	hs->nworkers = 0;
}

static int nng_status(int rv)
{
	switch (rv) {
	case 0:
		return OMEN_OK;
	case NNG_ENOMEM:
		return OMEN_ENOMEM;
	case NNG_EADDRINVAL:
	case NNG_EINVAL:
		return OMEN_EINVAL;
	case NNG_EADDRINUSE:
		return OMEN_EBUSY;
	default:
		return OMEN_EIO;
	}
}

/* Registers the handlers, starts the workers, then the server. */
static int start_serving(http_srv *hs)
{
	static const struct {
		const char *path;
		bool tree;
	} paths[] = {{"/", true}, {"/health", false}, {"/metrics", false}, {"/collections", true}};
	int rv;
	for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++)
		if ((rv = add_handler(hs, paths[i].path, paths[i].tree)) != 0)
			return nng_status(rv);
	for (; hs->nworkers < HTTP_WORKERS; hs->nworkers++)
		if (pthread_create(&hs->workers[hs->nworkers], NULL, worker_main, hs) != 0)
			return OMEN_ENOMEM;
	return nng_status(nng_http_server_start(hs->server));
}

int http_start(coord *c, metrics *m, const char *url, http_srv **out)
{
	nng_url *u = NULL;
	http_srv *hs = calloc(1, sizeof *hs);
	if (!hs)
		return OMEN_ENOMEM;
	hs->c = c;
	hs->m = m;
	hs->refs = 1;
	pthread_mutex_init(&hs->mu, NULL);
	pthread_cond_init(&hs->work, NULL);
	pthread_cond_init(&hs->idle, NULL);
	int st = nng_status(nng_url_parse(&u, url));
	if (st == OMEN_OK && strcmp(u->u_scheme, "http") != 0)
		st = OMEN_EINVAL;
	if (st == OMEN_OK)
		st = nng_status(nng_http_server_hold(&hs->server, u));
	if (st == OMEN_OK)
		st = start_serving(hs);
	nng_url_free(u);
	if (st != OMEN_OK) {
		http_stop(hs);
		return st;
	}
	*out = hs;
	return OMEN_OK;
}

/* Stops accepting connections, lets the requests in flight finish (their connections are
 * closed, so they end quickly; a worker inside coord_handle ends at the deadline), stops the
 * workers and releases the server. Call before coord_stop and metrics_free. */
void http_stop(http_srv *hs)
{
	if (!hs)
		return;
	pthread_mutex_lock(&hs->mu);
	hs->draining = true;
	pthread_mutex_unlock(&hs->mu);
	if (hs->server)
		nng_http_server_stop(hs->server);
	stop_workers(hs);
	if (hs->server)
		nng_http_server_release(hs->server);
	hs_unref(hs);
}
