/*
 * Forwarding a primary's writes to the other copies of its logical shard (forward.h).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "net/net.h"
#include "shard/forward.h"

typedef struct fwd_peer {
	peer *p;
	struct fwd_peer *next;
} fwd_peer;

struct fwd {
	size_t max_message;
	char *token;
	pthread_mutex_t mu; /* guards peers */
	fwd_peer *peers;
};

int fwd_open(size_t max_message, const char *token, fwd **out)
{
	fwd *f = calloc(1, sizeof *f);
	if (!f || (token && !(f->token = strdup(token)))) {
		free(f);
		return status_set(OMEN_ENOMEM, "out of memory");
	}
	f->max_message = max_message;
	pthread_mutex_init(&f->mu, NULL);
	*out = f;
	return OMEN_OK;
}

void fwd_close(fwd *f)
{
	if (!f)
		return;
	while (f->peers) {
		fwd_peer *e = f->peers;
		f->peers = e->next;
		peer_close(e->p);
		free(e);
	}
	pthread_mutex_destroy(&f->mu);
	free(f->token);
	free(f);
}

/* The peer of url, opened on first use; NULL when it cannot be opened. */
static peer *peer_of(fwd *f, const char *url)
{
	pthread_mutex_lock(&f->mu);
	fwd_peer *e = f->peers;
	while (e && strcmp(peer_url(e->p), url) != 0)
		e = e->next;
	if (!e && (e = calloc(1, sizeof *e)) != NULL) {
		if (peer_open(url, f->max_message, &e->p) == OMEN_OK) {
			e->next = f->peers;
			f->peers = e;
		} else {
			free(e);
			e = NULL;
		}
	}
	pthread_mutex_unlock(&f->mu);
	return e ? e->p : NULL;
}

uint32_t fwd_write(fwd *f, const wire_req *q, uint32_t timeout_ms)
{
	wire_req w = *q; /* borrowed arrays, encoded only */
	w.copies = NULL;
	w.ncopies = 0;
	w.token = f->token;
	w.deadline_ms = timeout_ms;
	peer_call calls[WIRE_MAX_REPLICAS];
	int started[WIRE_MAX_REPLICAS] = {0};
	uint32_t failed = 0, n = q->ncopies < WIRE_MAX_REPLICAS ? q->ncopies : WIRE_MAX_REPLICAS;
	for (uint32_t i = 0; i < n; i++) {
		peer *p = peer_of(f, q->copies[i]);
		started[i] = p && peer_call_start(p, &w, timeout_ms, &calls[i]) == OMEN_OK;
		if (!started[i])
			failed |= 1u << i;
	}
	for (uint32_t i = 0; i < n; i++) {
		if (!started[i])
			continue;
		wire_rep r;
		wire_rep_init(&r);
		if (peer_call_finish(&calls[i], &r) != OMEN_OK || r.status != OMEN_OK) {
			failed |= 1u << i;
			log_msg(LOG_WARN, "copy %s did not take a write of '%s' shard %d: %s",
			        q->copies[i], q->name, (int)q->shard,
			        r.message ? r.message : status_msg());
		}
		wire_rep_free(&r);
	}
	return failed;
}
