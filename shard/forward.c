/*
 * Forwarding a primary's writes to the other copies of its logical shard (forward.h).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "base/base.h"
#include "net/net.h"
#include "shard/forward.h"

/* After a copy failed to take a write, the writes that follow with no newer shard map fail at
 * once for this long instead of waiting out the timeout again: writes queued behind the one
 * that waited (the shard's writes are ordered) answer in time, and the coordinator has taken
 * the copy out of the copies in sync before it ends. A write routed by a newer map tries the
 * copy again: the copy may be back in sync. */
#define FWD_QUIET_MS 1000

typedef struct fwd_peer {
	peer *p;
	uint64_t failed_at;    /* mono_ms() of the last failure, 0 after a success (under mu) */
	uint64_t failed_epoch; /* the map epoch of the write that failed */
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

/* The entry of url, opened on first use; NULL when it cannot be opened. */
static fwd_peer *peer_of(fwd *f, const char *url)
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
	return e;
}

/* Records the outcome of a forward of a write routed by epoch to e. */
static void outcome(fwd *f, fwd_peer *e, int ok, uint64_t epoch)
{
	pthread_mutex_lock(&f->mu);
	e->failed_at = ok ? 0 : mono_ms() | 1;
	e->failed_epoch = epoch;
	pthread_mutex_unlock(&f->mu);
}

/* Whether e failed less than FWD_QUIET_MS ago for a write routed by a map no older than
 * epoch. */
static int quiet(fwd *f, const fwd_peer *e, uint64_t epoch)
{
	pthread_mutex_lock(&f->mu);
	int q = e->failed_at && mono_ms() - e->failed_at < FWD_QUIET_MS && epoch <= e->failed_epoch;
	pthread_mutex_unlock(&f->mu);
	return q;
}

uint32_t fwd_write(fwd *f, const wire_req *q, uint32_t timeout_ms, uint32_t *newer)
{
	wire_req w = *q; /* borrowed arrays, encoded only */
	w.copies = NULL;
	w.ncopies = 0;
	w.token = f->token;
	w.deadline_ms = timeout_ms;
	peer_call calls[WIRE_MAX_REPLICAS];
	fwd_peer *to[WIRE_MAX_REPLICAS];
	int started[WIRE_MAX_REPLICAS] = {0};
	uint32_t failed = 0, n = q->ncopies < WIRE_MAX_REPLICAS ? q->ncopies : WIRE_MAX_REPLICAS;
	for (uint32_t i = 0; i < n; i++) {
		to[i] = peer_of(f, q->copies[i]);
		started[i] = to[i] && !quiet(f, to[i], q->epoch) &&
		             peer_call_start(to[i]->p, &w, timeout_ms, &calls[i]) == OMEN_OK;
		if (!started[i])
			failed |= 1u << i;
	}
	*newer = 0;
	for (uint32_t i = 0; i < n; i++) {
		if (!started[i])
			continue;
		wire_rep r;
		wire_rep_init(&r);
		int answered = peer_call_finish(&calls[i], &r) == OMEN_OK;
		int ok = answered && r.status == OMEN_OK;
		if (answered &&
		    r.status == OMEN_ESTALE) { /* the copy saw a newer map: not a fault */
			*newer |= 1u << i;
			wire_rep_free(&r);
			continue;
		}
		outcome(f, to[i], ok, q->epoch);
		if (!ok) {
			failed |= 1u << i;
			log_msg(LOG_WARN, "copy %s did not take a write of '%s' shard %d: %s",
			        q->copies[i], q->name, (int)q->shard,
			        r.message ? r.message : status_msg());
		}
		wire_rep_free(&r);
	}
	return failed;
}
