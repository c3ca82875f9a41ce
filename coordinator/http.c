/*
 * The coordinator's HTTP endpoint: the JSON API of docs/HTTP.md on nng's HTTP server. nng's
 * callback threads do only cheap, non-blocking work (the token, the route, the body's length,
 * starting the body's read); a small pool of worker threads then parses the JSON and runs the
 * route (http_routes.c), which calls coord_handle and blocks on the shard nodes, and completes
 * the request's aio.
 *
 * Every handler accepts any method and every response, errors included, is built in JSON
 * (http_json.c), so that a client never sees nng's HTML error pages for a request that reached
 * a handler.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <nng/nng.h>
#include <nng/supplemental/http/http.h>

#include "base/base.h"
#include "coordinator/http.h"

#define HTTP_WORKERS         8     /* threads that call coord_handle */
#define HTTP_QUEUE_MAX       4096  /* requests waiting for a worker before 503 */
#define HTTP_BODY_TIMEOUT_MS 60000 /* to receive a body once its headers are in */
#define HTTP_MAX_PATH        1024  /* longer paths are no route */

typedef struct http_job http_job;

/* One request in flight, from nng's handler callback to the completion of its aio. */
struct http_job {
	http_job *next;
	http_srv *hs;
	nng_aio *aio;      /* nng's handler aio, completed with the response */
	nng_http_req *req; /* nng's, valid until aio completes */
	nng_http_conn *conn;
	const http_route *route; /* NULL until routed */
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
	va_list ap;
	va_start(ap, fmt);
	http_out_verror(&out, code, http, fmt, ap);
	va_end(ap);
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
	char pattern[HTTP_MAX_PATH];
	const char *method = nng_http_req_get_method(job->req);
	bool name_ok = path_pattern(job, pattern, sizeof pattern);
	job->route = http_route_find(pattern, method, job->allow, sizeof job->allow);
	if (job->route && name_ok)
		return true;
	if (job->route) {
		job_reject(job, true, OMEN_EINVAL, 0,
		           "the collection name in the path must be 1..%d bytes of [A-Za-z0-9_.-]",
		           OMEN_MAX_NAME);
		return false;
	}
	if (!job->allow[0]) {
		job_reject(job, true, OMEN_ENOTFOUND, 404, "no route for %.20s %.200s", method,
		           nng_http_req_get_uri(job->req));
		return false;
	}
	http_out out = {0};
	http_out_error(&out, OMEN_ENOTSUP, 405, "method %.20s not allowed on %.200s (allowed: %s)",
	               method, pattern, job->allow);
	out.allow = job->allow;
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
		http_out_error(out, OMEN_EINVAL, 0, "malformed JSON at line %d column %d: %s",
		               jerr.line, jerr.column, jerr.text);
		return false;
	}
	if (!json_is_object(v)) {
		json_decref(v);
		http_out_error(out, OMEN_EINVAL, 0, "the request body must be a JSON object");
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
	http_call call = {.c = job->hs->c, .m = job->hs->m, .name = job->name, .out = &out};
	json_t *in = NULL;
	if (!job->route->body || parse_body(job, &out, &in)) {
		call.in = (jf){in, NULL, call.err, sizeof call.err};
		job->route->fn(&call);
	}
	json_decref(in);
	if (!out.body) /* every route fills out; this is a bug net */
		http_out_error(&out, OMEN_EPROTO, 500, "internal error: no response");
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
