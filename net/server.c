/*
 * The server loop of shard nodes and coordinators: a REP socket and a fixed set of worker
 * threads, each with its own context, receiving a request, handling it and sending the reply.
 * Workers are our own threads rather than nng callbacks because handlers block (a shard
 * searches, a coordinator waits for its shards). Every request is decoded and checked here, so
 * handlers see only well-formed, authorised requests.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/base.h"
#include "net/net.h"

#include <nng/protocol/reqrep0/rep.h>

#define SRV_LINGER_MS 100

typedef struct worker {
	srv *s;
	pthread_t thread;
	nng_ctx ctx;
	nng_aio *aio;
	pthread_mutex_t mu;
	int receiving; /* waiting for a request: srv_stop may cancel it */
} worker;

struct srv {
	srv_config cfg;
	char *token;
	nng_socket sock;
	nng_listener listener;
	int port;
	atomic_int stopping;
	int nworkers;
	worker *w;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Compares tokens in time independent of where they differ. */
static int token_ok(const char *want, const char *got)
{
	if (!want)
		return 1;
	if (!got)
		return 0;
	size_t a = strlen(want), b = strlen(got);
	unsigned char diff = a != b;
	for (size_t i = 0; i < a; i++)
		diff |= (unsigned char)(want[i] ^ (i < b ? got[i] : 0));
	return diff == 0;
}

/* Decodes and handles one request message into rep. Returns the op (WIRE_OP_COUNT when the
 * message could not be decoded). */
static wire_op handle(srv *s, nng_msg *msg, wire_rep *rep)
{
	wire_req req;
	char err[WIRE_ERRLEN];
	int st =
	    wire_req_decode(nng_msg_body(msg), nng_msg_len(msg), s->cfg.max_message, &req, err);
	if (st != OMEN_OK) {
		rep->status = st;
		rep->message = strdup(err);
		log_msg(LOG_DEBUG, "refused a malformed request: %s", err);
		return WIRE_OP_COUNT;
	}
	wire_op op = req.op;
	if (!token_ok(s->token, req.token)) {
		rep->status = OMEN_EAUTH;
		rep->message = strdup(req.token ? "wrong token" : "this cluster requires a token");
	} else {
		s->cfg.fn(s->cfg.ctx, &req, rep);
	}
	wire_req_free(&req);
	return op;
}

/* Encodes rep into a message; an unencodable reply becomes an error reply. */
static nng_msg *reply_msg(const wire_rep *rep)
{
	void *buf = NULL;
	size_t len = 0;
	nng_msg *msg = NULL;
	int st = wire_rep_encode(rep, &buf, &len);
	if (st != OMEN_OK) {
		wire_rep e;
		wire_rep_init(&e);
		e.status = st;
		e.message = st == OMEN_ENOMEM ? (char *)"out of memory encoding the reply"
		                              : (char *)"the node made a reply it cannot encode";
		log_msg(LOG_ERROR, "cannot encode a reply (status %d)", st);
		if (wire_rep_encode(&e, &buf, &len) != OMEN_OK)
			return NULL;
	}
	if (nng_msg_alloc(&msg, 0) == 0 && nng_msg_append(msg, buf, len) != 0) {
		nng_msg_free(msg);
		msg = NULL;
	}
	free(buf);
	return msg;
}

/* Waits for the next request; 0 when the server is stopping. */
static int receive(worker *w)
{
	pthread_mutex_lock(&w->mu);
	if (atomic_load(&w->s->stopping)) {
		pthread_mutex_unlock(&w->mu);
		return 0;
	}
	w->receiving = 1;
	nng_ctx_recv(w->ctx, w->aio);
	pthread_mutex_unlock(&w->mu);
	nng_aio_wait(w->aio);
	pthread_mutex_lock(&w->mu);
	w->receiving = 0;
	pthread_mutex_unlock(&w->mu);
	return nng_aio_result(w->aio) == 0;
}

static void *worker_main(void *arg)
{
	worker *w = arg;
	srv *s = w->s;
	while (receive(w)) {
		nng_msg *msg = nng_aio_get_msg(w->aio);
		double t0 = now_s();
		wire_rep rep;
		wire_rep_init(&rep);
		wire_op op = handle(s, msg, &rep);
		nng_msg_free(msg);
		int status = rep.status;
		nng_msg *out = reply_msg(&rep);
		wire_rep_free(&rep);
		if (s->cfg.observe)
			s->cfg.observe(s->cfg.ctx, op, status, now_s() - t0);
		if (!out)
			continue; /* out of memory: the client's deadline answers it */
		nng_aio_set_msg(w->aio, out);
		nng_ctx_send(w->ctx, w->aio);
		nng_aio_wait(w->aio);
		if (nng_aio_result(w->aio) != 0)
			nng_msg_free(out);
	}
	return NULL;
}

/* nng drops the connection of a peer whose message exceeds the socket's cap, without a reply.
 * The cap is twice the configured one, so that a message somewhat over the limit is read and
 * answered with OMEN_ELIMIT; only one more than twice as large loses its connection. */
static size_t recv_cap(size_t max_message)
{
	return max_message > SIZE_MAX / 2 ? SIZE_MAX : 2 * max_message;
}

static int listen_on(srv *s)
{
	int rv = nng_rep0_open(&s->sock);
	if (rv == 0)
		rv = nng_socket_set_size(s->sock, NNG_OPT_RECVMAXSZ, recv_cap(s->cfg.max_message));
	if (rv == 0)
		rv = nng_listen(s->sock, s->cfg.url, &s->listener, 0);
	if (rv == 0)
		rv = nng_listener_get_int(s->listener, NNG_OPT_TCP_BOUND_PORT, &s->port);
	if (rv != 0)
		return status_set(rv == NNG_EADDRINUSE ? OMEN_EBUSY : OMEN_EINVAL,
		                  "%s: listen on %s: %s", s->cfg.what, s->cfg.url,
		                  nng_strerror(rv));
	return OMEN_OK;
}

static int workers_start(srv *s)
{
	s->w = calloc((size_t)s->cfg.workers, sizeof *s->w);
	if (!s->w)
		return status_set(OMEN_ENOMEM, "out of memory");
	for (int i = 0; i < s->cfg.workers; i++) {
		worker *w = &s->w[i];
		w->s = s;
		pthread_mutex_init(&w->mu, NULL);
		if (nng_ctx_open(&w->ctx, s->sock) != 0 ||
		    nng_aio_alloc(&w->aio, NULL, NULL) != 0 ||
		    pthread_create(&w->thread, NULL, worker_main, w) != 0) {
			if (w->aio)
				nng_aio_free(w->aio);
			return status_set(OMEN_ENOMEM, "cannot start server worker %d", i);
		}
		s->nworkers++;
	}
	return OMEN_OK;
}

int srv_start(const srv_config *cfg, srv **out)
{
	if (!cfg || !cfg->url || !cfg->fn || cfg->workers < 1 || cfg->workers > 1024)
		return status_set(OMEN_EINVAL, "bad server configuration");
	srv *s = calloc(1, sizeof *s);
	if (!s)
		return status_set(OMEN_ENOMEM, "out of memory");
	s->cfg = *cfg;
	s->token = cfg->token ? strdup(cfg->token) : NULL;
	s->sock = (nng_socket)NNG_SOCKET_INITIALIZER;
	int st = listen_on(s);
	if (st == OMEN_OK)
		st = workers_start(s);
	if (st != OMEN_OK) {
		srv_stop(s);
		return st;
	}
	*out = s;
	return OMEN_OK;
}

int srv_port(const srv *s)
{
	return s->port;
}

void srv_stop(srv *s)
{
	if (!s)
		return;
	/* The listener stays open until the end: closing it closes its connections, and with
	 * them the replies still to be sent. */
	atomic_store(&s->stopping, 1);
	for (int i = 0; i < s->nworkers; i++) {
		pthread_mutex_lock(&s->w[i].mu);
		if (s->w[i].receiving)
			nng_aio_cancel(s->w[i].aio);
		pthread_mutex_unlock(&s->w[i].mu);
	}
	for (int i = 0; i < s->nworkers; i++) {
		pthread_join(s->w[i].thread, NULL);
		nng_aio_free(s->w[i].aio);
		nng_ctx_close(s->w[i].ctx);
		pthread_mutex_destroy(&s->w[i].mu);
	}
	if (nng_socket_id(s->sock) > 0) {
		/* A sent reply is queued on its connection, not yet written: give nng's transport
		 * threads a moment before the socket and its connections close. */
		if (s->nworkers > 0)
			nng_msleep(SRV_LINGER_MS);
		nng_close(s->sock);
	}
	free(s->w);
	free(s->token);
	free(s);
}
