/*
 * The net layer: nng transport shared by the servers and the remote client. The server loop
 * decodes wire requests and encodes replies; a peer is the client side of one node (a REQ
 * socket with one context per call in flight).
 */
#ifndef OMEN_NET_H
#define OMEN_NET_H

#include <nng/nng.h>
#include <nng/supplemental/util/platform.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "base/base.h"
#include "wire/wire.h"

/* ---- the server loop (server.c) ---- */

/* Handles one decoded request and fills rep (its malloc'd fields are freed by the server).
 * Runs on the server's worker threads, many at once; may block. */
typedef void (*srv_fn)(void *ctx, const wire_req *req, wire_rep *rep);

typedef struct srv_config {
	const char *url;    /* nng listen URL, e.g. "tcp://127.0.0.1:0" */
	int workers;        /* requests handled at once, 1..1024 */
	size_t max_message; /* bytes: larger messages are refused (OMEN_ELIMIT reply) */
	const char *token;  /* required in every request when not NULL (OMEN_EAUTH otherwise) */
	srv_fn fn;
	void *ctx;
	const char *what; /* "shard" or "coordinator", for logs */
	/* Called after each request with its op (WIRE_OP_COUNT when undecodable), status and
	 * seconds taken; NULL for none. */
	void (*observe)(void *ctx, wire_op op, int status, double seconds);
} srv_config;

typedef struct srv srv;

/* Listens and starts the workers. Malformed, truncated, oversized, unauthorised and
 * wrong-version messages are each answered with an error reply; the server goes on. */
int srv_start(const srv_config *cfg, srv **out);

/* The bound TCP port. */
int srv_port(const srv *s);

/* Stops receiving, lets the requests being handled finish and send their replies, then closes
 * the socket and joins the workers. NULL is fine. */
void srv_stop(srv *s);

/* ---- one peer (peer.c) ---- */

typedef struct peer peer;

/* Opens a REQ socket dialling url in the background (redialling after failures), with no
 * resend (requests are not idempotent) and max_message as the receive cap. */
int peer_open(const char *url, size_t max_message, peer **out);
void peer_close(peer *p);
const char *peer_url(const peer *p);

/* One request in flight on a peer. */
typedef struct peer_call {
	peer *p;
	nng_ctx ctx;
	nng_aio *aio;
	nng_time deadline; /* 0 = none */
	int started;
} peer_call;

/* Starts sending req to the peer; the reply is awaited by peer_call_finish, which must always
 * follow a successful start. timeout_ms bounds the whole round trip. */
int peer_call_start(peer *p, const wire_req *req, uint32_t timeout_ms, peer_call *call);

/* Waits for the reply to a started call and decodes it into rep (owned by rep). Returns
 * OMEN_OK when a reply arrived (its own status is rep->status), OMEN_EUNAVAIL when the peer
 * did not answer in time or the connection failed, OMEN_EPROTO for an undecodable reply; the
 * detail goes to the thread's status message. */
int peer_call_finish(peer_call *call, wire_rep *rep);

/* peer_call_start + peer_call_finish; returns rep->status when a reply arrived, copying its
 * message into the thread's status message. */
int peer_request(peer *p, const wire_req *req, uint32_t timeout_ms, wire_rep *rep);

#endif
