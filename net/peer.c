/*
 * The client side of one peer: a REQ socket dialling the peer's URL, and calls made on their
 * own contexts so that many can be in flight at once on one socket. A call that times out
 * closes its context, and nng drops a late reply by itself.
 */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "net/net.h"

#include <nng/protocol/reqrep0/req.h>

/* A call to a peer with no connection waits this long for one before failing, rather than
 * its whole deadline: a node that is down is reported quickly. */
#define PEER_CONNECT_GRACE_MS 1000

struct peer {
	atomic_int pipes; /* open connections */
	nng_socket sock;
	nng_dialer dialer;
	size_t max_message;
	char url[256];
};

static void pipe_event(nng_pipe pipe, nng_pipe_ev ev, void *arg)
{
	peer *p = arg;
	(void)pipe;
	atomic_fetch_add(&p->pipes, ev == NNG_PIPE_EV_ADD_POST ? 1 : -1);
}

int peer_open(const char *url, size_t max_message, peer **out)
{
	if (!url || strlen(url) >= sizeof((peer *)0)->url)
		return status_set(OMEN_EINVAL, "peer URL missing or too long");
	peer *p = calloc(1, sizeof *p);
	if (!p)
		return status_set(OMEN_ENOMEM, "out of memory");
	strcpy(p->url, url);
	p->max_message = max_message;
	int rv = nng_req0_open(&p->sock);
	if (rv == 0)
		rv = nng_socket_set_ms(p->sock, NNG_OPT_REQ_RESENDTIME, NNG_DURATION_INFINITE);
	if (rv == 0)
		rv = nng_socket_set_size(p->sock, NNG_OPT_RECVMAXSZ, max_message + 1024);
	if (rv == 0)
		rv = nng_socket_set_ms(p->sock, NNG_OPT_RECONNMINT, 20);
	if (rv == 0)
		rv = nng_socket_set_ms(p->sock, NNG_OPT_RECONNMAXT, 500);
	if (rv == 0)
		rv = nng_pipe_notify(p->sock, NNG_PIPE_EV_ADD_POST, pipe_event, p);
	if (rv == 0)
		rv = nng_pipe_notify(p->sock, NNG_PIPE_EV_REM_POST, pipe_event, p);
	if (rv == 0)
		rv = nng_dial(p->sock, url, &p->dialer, NNG_FLAG_NONBLOCK);
	if (rv != 0) {
		nng_close(p->sock);
		free(p);
		return status_set(rv == NNG_EADDRINVAL || rv == NNG_ENOTSUP ? OMEN_EINVAL
		                                                            : OMEN_EIO,
		                  "%s: %s", url, nng_strerror(rv));
	}
	*out = p;
	return OMEN_OK;
}

void peer_close(peer *p)
{
	if (!p)
		return;
	nng_close(p->sock);
	free(p);
}

const char *peer_url(const peer *p)
{
	return p->url;
}

int peer_call_start(peer *p, const wire_req *req, uint32_t timeout_ms, peer_call *call)
{
	memset(call, 0, sizeof *call);
	call->p = p;
	void *buf;
	size_t len;
	int st = wire_req_encode(req, &buf, &len);
	if (st != OMEN_OK)
		return status_set(st, "cannot encode the request");
	nng_msg *msg = NULL;
	int rv = nng_msg_alloc(&msg, 0);
	if (rv == 0)
		rv = nng_msg_append(msg, buf, len);
	free(buf);
	if (rv == 0)
		rv = nng_ctx_open(&call->ctx, p->sock);
	if (rv == 0 && (rv = nng_aio_alloc(&call->aio, NULL, NULL)) != 0)
		nng_ctx_close(call->ctx);
	if (rv != 0) {
		nng_msg_free(msg);
		return status_set(OMEN_ENOMEM, "%s: %s", p->url, nng_strerror(rv));
	}
	call->deadline = timeout_ms ? nng_clock() + timeout_ms : 0;
	uint32_t send_ms = timeout_ms;
	if (atomic_load(&p->pipes) <= 0 && (send_ms == 0 || send_ms > PEER_CONNECT_GRACE_MS))
		send_ms = PEER_CONNECT_GRACE_MS;
	nng_aio_set_timeout(call->aio, send_ms ? (nng_duration)send_ms : NNG_DURATION_INFINITE);
	nng_aio_set_msg(call->aio, msg);
	nng_ctx_send(call->ctx, call->aio);
	call->started = 1;
	return OMEN_OK;
}

/* Ends a call: closes its context (dropping any late reply) and frees its aio. */
static void call_end(peer_call *call)
{
	nng_aio_free(call->aio);
	nng_ctx_close(call->ctx);
	call->started = 0;
}

static int call_failed(peer_call *call, int rv, const char *stage)
{
	const char *url = call->p->url;
	call_end(call);
	if (rv == NNG_ETIMEDOUT && strcmp(stage, "sending") == 0)
		return status_set(OMEN_EUNAVAIL, "%s is unavailable: no connection", url);
	if (rv == NNG_ETIMEDOUT)
		return status_set(OMEN_EUNAVAIL, "%s did not answer in time", url);
	return status_set(OMEN_EUNAVAIL, "%s: %s (%s)", url, nng_strerror(rv), stage);
}

int peer_call_finish(peer_call *call, wire_rep *rep)
{
	nng_aio_wait(call->aio);
	int rv = nng_aio_result(call->aio);
	if (rv != 0) {
		nng_msg_free(nng_aio_get_msg(call->aio));
		return call_failed(call, rv, "sending");
	}
	if (call->deadline) {
		/* Past the deadline a reply that has already arrived is still taken (a zero
		 * timeout completes at once when the context holds it): callers wait for many
		 * calls one after another, and one slow peer must not fail the others. */
		nng_time now = nng_clock();
		nng_aio_set_timeout(call->aio, now >= call->deadline
		                                   ? NNG_DURATION_ZERO
		                                   : (nng_duration)(call->deadline - now));
	}
	nng_ctx_recv(call->ctx, call->aio);
	nng_aio_wait(call->aio);
	if ((rv = nng_aio_result(call->aio)) != 0)
		return call_failed(call, rv, "waiting for the reply");
	nng_msg *msg = nng_aio_get_msg(call->aio);
	char err[WIRE_ERRLEN];
	int st = wire_rep_decode(nng_msg_body(msg), nng_msg_len(msg), call->p->max_message + 1024,
	                         rep, err);
	nng_msg_free(msg);
	const char *url = call->p->url;
	call_end(call);
	if (st != OMEN_OK)
		return status_set(OMEN_EPROTO, "%s sent a malformed reply: %s", url, err);
	return OMEN_OK;
}

int peer_request(peer *p, const wire_req *req, uint32_t timeout_ms, wire_rep *rep)
{
	peer_call call;
	int st = peer_call_start(p, req, timeout_ms, &call);
	if (st == OMEN_OK)
		st = peer_call_finish(&call, rep);
	if (st != OMEN_OK)
		return st;
	if (rep->status != OMEN_OK)
		return status_set(rep->status, "%s", rep->message ? rep->message : "");
	return OMEN_OK;
}
