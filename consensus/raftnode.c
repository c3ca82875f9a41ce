/*
 * The Raft node: canonical/raft 0.15 over libuv, on a thread and loop of its own because raft is
 * not thread-safe. Other threads queue requests under a mutex and wake the loop with
 * uv_async_send; the loop hands them to raft, and raft's callbacks complete them. Also the
 * raft_fsm that applies committed entries to the state machine (fsm.c and fsm_*.c). See
 * docs/CONSENSUS.md for the threading and the timeouts.
 */
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <raft.h>
#include <raft/uv.h>
#include <uv.h>

#include "consensus/consensus.h"
#include "storage/storage.h"

#define DEFAULT_ELECTION_MS        1000
#define DEFAULT_HEARTBEAT_MS       100
#define DEFAULT_SNAPSHOT_THRESHOLD 1024
#define DEFAULT_SNAPSHOT_TRAILING  128
#define DEFAULT_TIMEOUT_MS         10000

#define container_of(p, type, member) ((type *)((char *)(p)-offsetof(type, member)))

/* ---- the raft_fsm ---- */

/* What raft's apply callback receives: the result of the entry just applied, with its index so
 * that the callback can check that it is its own. */
typedef struct applied {
	fsm_result res; /* first: the tests read it as an fsm_result */
	uint64_t index;
} applied;

typedef struct cfsm {
	fsm *f;
	struct raft *r;
	applied last;
} cfsm;

/* Applies one committed RAFT_COMMAND entry. raft 0.15 does not pass the entry's index, but
 * replicationApply() walks index = last_applied + 1 .. commit_index and advances
 * r->last_applied only after fsm->apply returns, so the entry being applied is
 * r->last_applied + 1 (the tests check it against raft_apply's req->index). Bytes that do not
 * decode still take their index (as a no-op with status OMEN_EPROTO): every replica sees the
 * same bytes, so every replica does the same.
 *
 * *result points into rf->data rather than to a malloc'd result: raft 0.15 drops the result of
 * an entry that has no waiting request (every entry on a follower), so a malloc'd one would
 * leak; it calls the request's callback right after this returns, before the next entry. A
 * failure to write the state returns RAFT_IOERR: raft stops applying, and retries the same
 * entry on its next attempt. */
static int cf_apply(struct raft_fsm *rf, const struct raft_buffer *buf, void **result)
{
	cfsm *w = rf->data;
	uint64_t index = w->r->last_applied + 1;
	meta_cmd c;
	fsm_result res;
	int bad = cmd_decode(buf->base, buf->len, &c) != OMEN_OK;
	if (bad) {
		memset(&c, 0, sizeof c);
		c.kind = CMD_NOOP;
	}
	if (fsm_apply(w->f, index, &c, &res) != OMEN_OK)
		return RAFT_IOERR;
	if (bad)
		res.status = OMEN_EPROTO;
	w->last.res = res;
	w->last.index = index;
	*result = &w->last;
	return 0;
}

/* Takes a snapshot: one raft_malloc'd buffer. With snapshot_finalize set (version 2), raft
 * leaves the buffers to us until cf_snapshot_finalize. */
static int cf_snapshot(struct raft_fsm *rf, struct raft_buffer *bufs[], unsigned *n_bufs)
{
	cfsm *w = rf->data;
	void *data;
	size_t len;
	if (fsm_snapshot(w->f, &data, &len) != OMEN_OK)
		return RAFT_IOERR;
	struct raft_buffer *b = raft_malloc(sizeof *b);
	void *copy = raft_malloc(len);
	if (!b || !copy) {
		raft_free(b);
		raft_free(copy);
		free(data);
		return RAFT_NOMEM;
	}
	memcpy(copy, data, len);
	free(data);
	b->base = copy;
	b->len = len;
	*bufs = b;
	*n_bufs = 1;
	return 0;
}

static int cf_snapshot_finalize(struct raft_fsm *rf, struct raft_buffer *bufs[], unsigned *n_bufs)
{
	(void)rf;
	if (!bufs || !*bufs)
		return 0;
	for (unsigned i = 0; i < *n_bufs; i++)
		raft_free((*bufs)[i].base);
	raft_free(*bufs);
	*bufs = NULL;
	*n_bufs = 0;
	return 0;
}

/* Restores a snapshot (at start-up, or installed by the leader). On success the buffer is ours
 * to free (raft 0.15 snapshotRestore: "ownership has been transferred to the fsm"); on failure
 * raft frees it. A state already at or past the snapshot's last applied command is kept as it
 * is: it is the state of a longer prefix of the same committed log (a restart, where raft
 * loads its last snapshot and replays the entries after it, which fsm_apply skips), and
 * restoring it would move readers' view back in time until the replay caught up. */
static int cf_restore(struct raft_fsm *rf, struct raft_buffer *buf)
{
	cfsm *w = rf->data;
	uint64_t snap_applied;
	if (fsm_snapshot_applied(buf->base, buf->len, &snap_applied) != OMEN_OK)
		return RAFT_CORRUPT;
	if (snap_applied > fsm_last_applied(w->f) &&
	    fsm_restore(w->f, buf->base, buf->len) != OMEN_OK)
		return RAFT_CORRUPT;
	raft_free(buf->base);
	return 0;
}

int cons_fsm_init(struct raft_fsm *rf, fsm *f, struct raft *r)
{
	cfsm *w = calloc(1, sizeof *w);
	if (!w)
		return status_set(OMEN_ENOMEM, "out of memory");
	w->f = f;
	w->r = r;
	memset(rf, 0, sizeof *rf);
	rf->version = 2;
	rf->data = w;
	rf->apply = cf_apply;
	rf->snapshot = cf_snapshot;
	rf->snapshot_finalize = cf_snapshot_finalize;
	rf->restore = cf_restore;
	return OMEN_OK;
}

void cons_fsm_close(struct raft_fsm *rf)
{
	if (!rf)
		return;
	free(rf->data);
	rf->data = NULL;
}

/* ---- requests ---- */

enum { REQ_APPLY = 1, REQ_ADD, REQ_REMOVE, REQ_TRANSFER };

/* A request from a waiting thread to the loop. Two references: the waiter's, dropped when it
 * returns (answered or timed out), and the loop's, dropped when the request is completed; the
 * last one frees it, so a request abandoned on timeout is still completed safely. */
typedef struct creq {
	struct creq *next, *prev; /* the submission queue, then the list of those raft holds */
	int kind;
	int refs; /* under cons.mu */
	int done; /* under cons.mu */
	int abandoned;
	int status;
	uint64_t leader;
	fsm_result res;
	char msg[256];
	void *buf; /* REQ_APPLY: the encoded command (raft_malloc) until raft takes it */
	size_t len;
	uint64_t id; /* REQ_ADD, REQ_REMOVE, REQ_TRANSFER */
	char addr[256];
	struct cons *c;
	struct raft_apply apply;
	struct raft_change change;
	struct raft_transfer transfer;
} creq;

struct cons {
	pthread_t thread;
	pthread_mutex_t mu;
	pthread_cond_t cv;    /* completions, start-up, users leaving */
	creq *queue, *tail;   /* submitted, not yet seen by the loop (mu) */
	int stopping;         /* mu */
	int async_closed;     /* mu: no more uv_async_send */
	int users;            /* threads inside a call that waits (mu) */
	int started;          /* mu */
	int start_status;     /* mu */
	char start_msg[1024]; /* mu */
	uint64_t leader_id;   /* atomics: the leader as last seen by the loop */
	int leader_self;

	/* the loop thread's own */
	const cons_config *cfg; /* only during start-up: cons_start waits meanwhile */
	unsigned election_ms, heartbeat_ms, snapshot_threshold, snapshot_trailing;
	uint64_t id;
	fsm *f;
	creq held; /* sentinel of the list of requests raft holds */
	int closing;
	uv_loop_t loop;
	uv_async_t async;
	uv_timer_t timer;
	struct raft_uv_transport transport;
	struct raft_io io;
	struct raft_fsm rf;
	struct raft raft;
};

static void list_add(creq *head, creq *q)
{
	q->next = head->next;
	q->prev = head;
	head->next->prev = q;
	head->next = q;
}

static void list_del(creq *q)
{
	if (!q->next)
		return;
	q->prev->next = q->next;
	q->next->prev = q->prev;
	q->next = q->prev = NULL;
}

static uint64_t leader_now(cons *c)
{
	raft_id id = 0;
	const char *addr = NULL;
	raft_leader(&c->raft, &id, &addr);
	return id;
}

/* Refreshes the leader that cons_leader() and cons_is_leader() report. */
static void cache_leader(cons *c)
{
	uint64_t id = leader_now(c);
	int self = raft_state(&c->raft) == RAFT_LEADER;
	__atomic_store_n(&c->leader_id, self ? c->id : id, __ATOMIC_RELEASE);
	__atomic_store_n(&c->leader_self, self, __ATOMIC_RELEASE);
}

/* Completes q with status (and a message), on the loop thread: wakes its waiter and drops the
 * loop's reference. */
static void finish(cons *c, creq *q, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void finish(cons *c, creq *q, int status, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(q->msg, sizeof q->msg, fmt, ap);
	va_end(ap);
	list_del(q);
	if (q->buf) {
		raft_free(q->buf);
		q->buf = NULL;
	}
	uint64_t leader = 0;
	if (!c->closing) {
		cache_leader(c);
		leader = leader_now(c);
	}
	pthread_mutex_lock(&c->mu);
	q->status = status;
	q->leader = leader;
	q->done = 1;
	int last = --q->refs == 0;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	if (last)
		free(q);
}

/* Translates a raft error code for a request. */
static int from_raft(int rv)
{
	switch (rv) {
	case RAFT_NOTLEADER:
	case RAFT_CANTCHANGE:
		return OMEN_EBUSY;
	case RAFT_LEADERSHIPLOST:
	case RAFT_SHUTDOWN:
	case RAFT_NOCONNECTION:
		return OMEN_EUNAVAIL;
	case RAFT_NOMEM:
		return OMEN_ENOMEM;
	case RAFT_DUPLICATEID:
	case RAFT_DUPLICATEADDRESS:
		return OMEN_EEXIST;
	case RAFT_BADID:
	case RAFT_NOTFOUND:
		return OMEN_ENOTFOUND;
	case RAFT_BADROLE:
	case RAFT_MALFORMED:
	case RAFT_INVALID:
		return OMEN_EINVAL;
	case RAFT_TOOBIG:
	case RAFT_TOOMANY:
		return OMEN_ELIMIT;
	default:
		return OMEN_EIO;
	}
}

static void fail_raft(cons *c, creq *q, const char *what, int rv)
{
	if (rv == RAFT_LEADERSHIPLOST)
		finish(c, q, OMEN_EUNAVAIL,
		       "%s: leadership lost before it committed; it may still be applied", what);
	else
		finish(c, q, from_raft(rv), "%s: %s", what, raft_strerror(rv));
}

static void on_applied(struct raft_apply *req, int status, void *result)
{
	creq *q = container_of(req, creq, apply);
	const applied *a = result;
	if (status != 0)
		fail_raft(q->c, q, "apply", status);
	else if (!a || a->index != req->index)
		finish(q->c, q, OMEN_EUNAVAIL, "raft reported the result of another entry");
	else {
		q->res = a->res;
		finish(q->c, q, OMEN_OK, "%s", "");
	}
}

static void on_changed(struct raft_change *req, int status)
{
	creq *q = container_of(req, creq, change);
	if (status != 0)
		fail_raft(q->c, q, "membership change", status);
	else
		finish(q->c, q, OMEN_OK, "%s", "");
}

/* raft_add done: promote the new spare to voter (raft catches it up first). */
static void on_added(struct raft_change *req, int status)
{
	creq *q = container_of(req, creq, change);
	if (status != 0) {
		fail_raft(q->c, q, "adding a server", status);
		return;
	}
	int rv = raft_assign(&q->c->raft, &q->change, q->id, RAFT_VOTER, on_changed);
	if (rv != 0)
		fail_raft(q->c, q, "promoting a server", rv);
}

static void on_transferred(struct raft_transfer *req)
{
	creq *q = container_of(req, creq, transfer);
	uint64_t now = leader_now(q->c);
	if (now != 0 && now != q->c->id && (q->id == 0 || now == q->id))
		finish(q->c, q, OMEN_OK, "%s", "");
	else
		finish(q->c, q, OMEN_EUNAVAIL,
		       "leadership transfer did not complete (leader: %llu)",
		       (unsigned long long)now);
}

static const struct raft_server *conf_server(cons *c, uint64_t id)
{
	for (unsigned i = 0; i < c->raft.configuration.n; i++)
		if (c->raft.configuration.servers[i].id == id)
			return &c->raft.configuration.servers[i];
	return NULL;
}

/* raft_add, or straight to raft_assign when the server is already there with this address (a
 * retry of an add whose promotion timed out). */
static int submit_add(cons *c, creq *q)
{
	int rv = raft_add(&c->raft, &q->change, q->id, q->addr, on_added);
	if (rv != RAFT_DUPLICATEID)
		return rv;
	const struct raft_server *s = conf_server(c, q->id);
	if (!s || strcmp(s->address, q->addr) != 0)
		return rv;
	if (s->role == RAFT_VOTER) {
		finish(c, q, OMEN_OK, "%s", "");
		return -1;
	}
	return raft_assign(&c->raft, &q->change, q->id, RAFT_VOTER, on_changed);
}

/* Hands one request to raft, on the loop thread. */
static void submit(cons *c, creq *q)
{
	pthread_mutex_lock(&c->mu);
	int abandoned = q->abandoned;
	pthread_mutex_unlock(&c->mu);
	if (abandoned) { /* its waiter timed out before raft saw it: it never takes effect */
		finish(c, q, OMEN_EUNAVAIL, "abandoned");
		return;
	}
	if (raft_state(&c->raft) != RAFT_LEADER) {
		finish(c, q, OMEN_EBUSY, "this node is not the leader");
		return;
	}
	int rv = 0;
	list_add(&c->held, q); /* before raft can call back */
	switch (q->kind) {
	case REQ_APPLY: {
		struct raft_buffer b = {q->buf, q->len};
		rv = raft_apply(&c->raft, &q->apply, &b, 1, on_applied);
		if (rv == 0)
			q->buf = NULL; /* raft's now; a failed raft_apply leaves it with us */
		break;
	}
	case REQ_ADD:
		rv = submit_add(c, q);
		break;
	case REQ_REMOVE:
		rv = raft_remove(&c->raft, &q->change, q->id, on_changed);
		break;
	case REQ_TRANSFER:
		rv = raft_transfer(&c->raft, &q->transfer, q->id, on_transferred);
		break;
	}
	if (rv > 0)
		fail_raft(c, q, "submitting to raft", rv);
}

/* ---- the loop ---- */

static void on_timer(uv_timer_t *t)
{
	cache_leader(t->data);
}

/* Closes the async and timer handles; after this no thread sends to the loop. */
static void close_handles(cons *c)
{
	pthread_mutex_lock(&c->mu);
	c->async_closed = 1;
	uv_close((uv_handle_t *)&c->async, NULL);
	pthread_mutex_unlock(&c->mu);
	uv_close((uv_handle_t *)&c->timer, NULL);
}

static void on_raft_closed(struct raft *r)
{
	cons *c = r->data;
	raft_uv_close(&c->io);
	raft_uv_tcp_close(&c->transport);
	close_handles(c);
}

static void on_async(uv_async_t *a)
{
	cons *c = a->data;
	pthread_mutex_lock(&c->mu);
	creq *q = c->queue;
	c->queue = c->tail = NULL;
	int stop = c->stopping;
	pthread_mutex_unlock(&c->mu);
	while (q) {
		creq *next = q->next;
		q->next = NULL;
		if (stop || c->closing)
			finish(c, q, OMEN_EUNAVAIL, "the consensus node is stopping");
		else
			submit(c, q);
		q = next;
	}
	if (c->closing)
		return;
	cache_leader(c);
	if (stop) {
		c->closing = 1;
		uv_timer_stop(&c->timer);
		raft_close(&c->raft, on_raft_closed);
	}
}

/* Runs the loop until its handles are closed, then closes it. */
static void loop_drain(cons *c)
{
	uv_run(&c->loop, UV_RUN_DEFAULT);
	for (int i = 0; i < 100 && uv_loop_close(&c->loop) == UV_EBUSY; i++)
		uv_run(&c->loop, UV_RUN_NOWAIT);
}

/* Explains an EAGAIN from raft_uv: it needs kernel asynchronous I/O contexts (io_setup) and
 * fails when fs.aio-nr has reached fs.aio-max-nr. Writes the hint into buf ("" when raft's
 * message does not point there and the counters are not near their limit). */
static void aio_hint(const char *detail, char *buf, size_t len)
{
	unsigned long long nr = 0, max = 0;
	FILE *a = fopen("/proc/sys/fs/aio-nr", "r"), *b = fopen("/proc/sys/fs/aio-max-nr", "r");
	int ok = a && b && fscanf(a, "%llu", &nr) == 1 && fscanf(b, "%llu", &max) == 1;
	if (a)
		fclose(a);
	if (b)
		fclose(b);
	int says = detail && (strstr(detail, "io_setup") || strstr(detail, "EAGAIN") ||
	                      strstr(detail, "temporarily unavailable"));
	buf[0] = 0;
	if (says || (ok && nr + 4096 >= max))
		snprintf(
		    buf, len,
		    " (kernel asynchronous I/O contexts: fs.aio-nr %llu of fs.aio-max-nr %llu; "
		    "raft_uv fails with EAGAIN when they are used up: raise the limit with "
		    "`sysctl fs.aio-max-nr=1048576`)",
		    nr, max);
}

/* Records why start-up failed, with the first detail that raft, raft_uv or the transport left
 * (detail, when given, is consulted first). Returns code. */
static int setup_fail(cons *c, int code, const char *what, int rv, const char *detail)
{
	char hint[256];
	if (!detail || !*detail)
		detail = c->io.errmsg[0] ? c->io.errmsg : c->transport.errmsg;
	aio_hint(detail, hint, sizeof hint);
	snprintf(c->start_msg, sizeof c->start_msg,
	         "consensus node %llu at %s (dir %s): %s: %s%s%s%s", (unsigned long long)c->id,
	         c->cfg->raft_addr, c->cfg->dir, what, raft_strerror(rv), *detail ? ": " : "",
	         detail, hint);
	return code;
}

static int bootstrap(cons *c)
{
	const cons_config *cfg = c->cfg;
	struct raft_configuration conf;
	raft_configuration_init(&conf);
	int rv = 0;
	for (size_t i = 0; rv == 0 && i < cfg->npeers; i++)
		rv = raft_configuration_add(&conf, cfg->peers[i].id, cfg->peers[i].raft_addr,
		                            RAFT_VOTER);
	if (rv == 0) {
		rv = raft_bootstrap(&c->raft, &conf);
		if (rv == RAFT_CANTBOOTSTRAP)
			rv = 0; /* a restart: the directory holds state already */
	}
	raft_configuration_close(&conf);
	if (rv != 0)
		return setup_fail(c, from_raft(rv), "bootstrap", rv, raft_errmsg(&c->raft));
	return OMEN_OK;
}

/* Everything from raft_init on; on failure raft is closed (and the loop drained). */
static int raft_setup(cons *c)
{
	const cons_config *cfg = c->cfg;
	int rv = raft_init(&c->raft, &c->io, &c->rf, cfg->id, cfg->raft_addr);
	if (rv != 0) {
		int st = setup_fail(c, from_raft(rv), "raft_init", rv, raft_errmsg(&c->raft));
		raft_uv_close(&c->io);
		raft_uv_tcp_close(&c->transport);
		close_handles(c);
		loop_drain(c);
		return st;
	}
	c->raft.data = c;
	raft_set_election_timeout(&c->raft, c->election_ms);
	raft_set_heartbeat_timeout(&c->raft, c->heartbeat_ms);
	raft_set_snapshot_threshold(&c->raft, c->snapshot_threshold);
	raft_set_snapshot_trailing(&c->raft, c->snapshot_trailing);
	/* Pre-vote: a server cut off from the others does not come back with a higher term that
	 * deposes a healthy leader (raft 0.15 supports it; off by default). */
	raft_set_pre_vote(&c->raft, true);
	int st = cfg->npeers ? bootstrap(c) : OMEN_OK;
	if (st == OMEN_OK && (rv = raft_start(&c->raft)) != 0)
		st = setup_fail(c, from_raft(rv), "raft_start", rv, raft_errmsg(&c->raft));
	if (st != OMEN_OK) {
		c->closing = 1;
		raft_close(&c->raft, on_raft_closed);
		loop_drain(c);
		return st;
	}
	unsigned tick = c->heartbeat_ms / 2 < 5    ? 5
	                : c->heartbeat_ms / 2 > 50 ? 50
	                                           : c->heartbeat_ms / 2;
	uv_timer_start(&c->timer, on_timer, tick, tick);
	cache_leader(c);
	return OMEN_OK;
}

/* Builds the loop, the transport, raft_uv and raft, on the loop thread. On failure everything
 * made is released and c->start_msg says why. */
static int node_setup(cons *c)
{
	const cons_config *cfg = c->cfg;
	int st = OMEN_OK;
	int rv = uv_loop_init(&c->loop);
	if (rv != 0) {
		snprintf(c->start_msg, sizeof c->start_msg, "uv_loop_init: %s", uv_strerror(rv));
		return OMEN_EIO;
	}
	uv_async_init(&c->loop, &c->async, on_async);
	uv_timer_init(&c->loop, &c->timer);
	c->async.data = c;
	c->timer.data = c;
	if (cons_fsm_init(&c->rf, c->f, &c->raft) != OMEN_OK) {
		snprintf(c->start_msg, sizeof c->start_msg, "out of memory");
		st = OMEN_ENOMEM;
	} else if ((rv = raft_uv_tcp_init(&c->transport, &c->loop)) != 0) {
		st = setup_fail(c, from_raft(rv), "raft_uv_tcp_init", rv, c->transport.errmsg);
	} else if ((rv = raft_uv_init(&c->io, &c->loop, cfg->dir, &c->transport)) != 0) {
		st = setup_fail(c, from_raft(rv), "raft_uv_init", rv, c->io.errmsg);
		raft_uv_tcp_close(&c->transport);
	}
	if (st != OMEN_OK) {
		close_handles(c);
		loop_drain(c);
		cons_fsm_close(&c->rf);
		return st;
	}
	unsigned retry = c->election_ms / 2 < 50 ? 50 : c->election_ms / 2;
	raft_uv_set_connect_retry_delay(&c->io, retry);
	st = raft_setup(c);
	if (st != OMEN_OK)
		cons_fsm_close(&c->rf);
	return st;
}

/* Completes what raft left unanswered (nothing, if raft kept its promises) once it is closed. */
static void fail_held(cons *c)
{
	while (c->held.next != &c->held)
		finish(c, c->held.next, OMEN_EUNAVAIL, "the consensus node stopped");
}

static void *loop_main(void *arg)
{
	cons *c = arg;
	int st = node_setup(c);
	pthread_mutex_lock(&c->mu);
	c->start_status = st;
	c->started = 1;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	if (st != OMEN_OK)
		return NULL;
	loop_drain(c);
	fail_held(c);
	cons_fsm_close(&c->rf);
	return NULL;
}

/* ---- the API ---- */

static unsigned or_default(unsigned v, unsigned def)
{
	return v ? v : def;
}

static int config_check(const cons_config *cfg)
{
	if (!cfg || cfg->id == 0 || !cfg->raft_addr || !*cfg->raft_addr || !cfg->dir || !*cfg->dir)
		return status_set(OMEN_EINVAL,
		                  "consensus: id >= 1, raft_addr and dir are required");
	if (cfg->npeers && !cfg->peers)
		return status_set(OMEN_EINVAL, "consensus: peers missing");
	int self = cfg->npeers == 0;
	for (size_t i = 0; i < cfg->npeers; i++) {
		if (cfg->peers[i].id == 0 || !cfg->peers[i].raft_addr)
			return status_set(OMEN_EINVAL,
			                  "consensus: peer %zu: id >= 1 and an address "
			                  "are required",
			                  i);
		if (cfg->peers[i].id == cfg->id)
			self = 1;
	}
	if (!self)
		return status_set(OMEN_EINVAL, "consensus: the peers must include this node (%llu)",
		                  (unsigned long long)cfg->id);
	if (or_default(cfg->heartbeat_ms, DEFAULT_HEARTBEAT_MS) >=
	    or_default(cfg->election_ms, DEFAULT_ELECTION_MS))
		return status_set(OMEN_EINVAL, "consensus: heartbeat must be below the election "
		                               "timeout");
	return OMEN_OK;
}

int cons_start(const cons_config *cfg, fsm *f, cons **out)
{
	int st = config_check(cfg);
	if (st != OMEN_OK)
		return st;
	if (!f || !out)
		return status_set(OMEN_EINVAL, "consensus: fsm and out are required");
	st = dir_create(cfg->dir);
	if (st != OMEN_OK)
		return st;
	cons *c = calloc(1, sizeof *c);
	if (!c)
		return status_set(OMEN_ENOMEM, "out of memory");
	c->cfg = cfg;
	c->f = f;
	c->id = cfg->id;
	c->election_ms = or_default(cfg->election_ms, DEFAULT_ELECTION_MS);
	c->heartbeat_ms = or_default(cfg->heartbeat_ms, DEFAULT_HEARTBEAT_MS);
	c->snapshot_threshold = or_default(cfg->snapshot_threshold, DEFAULT_SNAPSHOT_THRESHOLD);
	c->snapshot_trailing = or_default(cfg->snapshot_trailing, DEFAULT_SNAPSHOT_TRAILING);
	c->held.next = c->held.prev = &c->held;
	pthread_mutex_init(&c->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cv, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&c->thread, NULL, loop_main, c) != 0) {
		pthread_cond_destroy(&c->cv);
		pthread_mutex_destroy(&c->mu);
		free(c);
		return status_set(OMEN_ENOMEM, "consensus: cannot start a thread");
	}
	pthread_mutex_lock(&c->mu);
	while (!c->started)
		pthread_cond_wait(&c->cv, &c->mu);
	st = c->start_status;
	pthread_mutex_unlock(&c->mu);
	c->cfg = NULL;
	if (st != OMEN_OK) {
		status_set(st, "%s", c->start_msg);
		pthread_join(c->thread, NULL);
		pthread_cond_destroy(&c->cv);
		pthread_mutex_destroy(&c->mu);
		free(c);
		return st;
	}
	*out = c;
	return OMEN_OK;
}

void cons_stop(cons *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->mu);
	c->stopping = 1;
	if (!c->async_closed)
		uv_async_send(&c->async);
	pthread_mutex_unlock(&c->mu);
	pthread_join(c->thread, NULL);
	pthread_mutex_lock(&c->mu);
	while (c->users > 0)
		pthread_cond_wait(&c->cv, &c->mu);
	pthread_mutex_unlock(&c->mu);
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

uint64_t cons_leader(cons *c)
{
	return __atomic_load_n(&c->leader_id, __ATOMIC_ACQUIRE);
}

int cons_is_leader(cons *c)
{
	return __atomic_load_n(&c->leader_self, __ATOMIC_ACQUIRE);
}

static creq *req_new(cons *c, int kind)
{
	creq *q = calloc(1, sizeof *q);
	if (q) {
		q->kind = kind;
		q->c = c;
	}
	return q;
}

/* Queues q for the loop and waits at most timeout_ms (0: DEFAULT_TIMEOUT_MS) for its
 * completion. Frees q, or leaves it to the loop when the loop still holds it. Returns the
 * request's status: OMEN_EBUSY with *leader when this node is not the leader, OMEN_EUNAVAIL on
 * timeout; on OMEN_OK, *res (if res) receives the apply result. */
static int submit_wait(cons *c, creq *q, uint32_t timeout_ms, uint64_t *leader, fsm_result *res)
{
	struct timespec dl;
	clock_gettime(CLOCK_MONOTONIC, &dl);
	uint64_t ms = timeout_ms ? timeout_ms : DEFAULT_TIMEOUT_MS;
	dl.tv_sec += (time_t)(ms / 1000);
	dl.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	if (pthread_equal(pthread_self(), c->thread)) {
		raft_free(q->buf);
		free(q);
		return status_set(OMEN_EINVAL, "consensus: called from the raft loop's own thread");
	}
	pthread_mutex_lock(&c->mu);
	if (c->stopping || c->async_closed) {
		pthread_mutex_unlock(&c->mu);
		raft_free(q->buf);
		free(q);
		return status_set(OMEN_EUNAVAIL, "consensus: the node is stopping");
	}
	c->users++;
	q->refs = 2;
	if (c->tail)
		c->tail->next = q;
	else
		c->queue = q;
	c->tail = q;
	uv_async_send(&c->async);
	int rc = 0;
	while (!q->done && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&c->cv, &c->mu, &dl);
	int done = q->done, st = q->status;
	uint64_t ldr = q->leader;
	fsm_result r = q->res;
	char msg[sizeof q->msg];
	memcpy(msg, q->msg, sizeof msg);
	if (!done)
		q->abandoned = 1;
	int last = --q->refs == 0;
	if (--c->users == 0 && c->stopping)
		pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	if (last)
		free(q);
	if (!done)
		return status_set(OMEN_EUNAVAIL,
		                  "consensus: no answer within %llu ms (the request may still take "
		                  "effect later)",
		                  (unsigned long long)ms);
	if (st == OMEN_EBUSY && leader)
		*leader = ldr;
	if (st != OMEN_OK)
		return status_set(st, "consensus: %s", msg);
	if (res)
		*res = r;
	return OMEN_OK;
}

int cons_apply(cons *c, const meta_cmd *cmd, uint32_t timeout_ms, fsm_result *res, uint64_t *leader)
{
	creq *q = req_new(c, REQ_APPLY);
	if (!q)
		return status_set(OMEN_ENOMEM, "out of memory");
	int st = cmd_encode(cmd, 1, &q->buf, &q->len);
	if (st != OMEN_OK) {
		free(q);
		return st;
	}
	fsm_result r;
	st = submit_wait(c, q, timeout_ms, leader, &r);
	if (st != OMEN_OK)
		return st;
	if (r.status != OMEN_OK)
		status_set(r.status, "consensus: the command was committed with status %d",
		           r.status);
	*res = r;
	return OMEN_OK;
}

static int member_call(cons *c, int kind, uint64_t id, const char *addr, uint32_t timeout_ms,
                       uint64_t *leader)
{
	creq *q = req_new(c, kind);
	if (!q)
		return status_set(OMEN_ENOMEM, "out of memory");
	q->id = id;
	if (addr)
		snprintf(q->addr, sizeof q->addr, "%s", addr);
	return submit_wait(c, q, timeout_ms, leader, NULL);
}

int cons_add(cons *c, uint64_t id, const char *raft_addr, uint32_t timeout_ms, uint64_t *leader)
{
	if (id == 0 || !raft_addr || !*raft_addr || strlen(raft_addr) >= sizeof(((creq *)0)->addr))
		return status_set(OMEN_EINVAL, "consensus: add needs an id >= 1 and an address");
	return member_call(c, REQ_ADD, id, raft_addr, timeout_ms, leader);
}

int cons_remove(cons *c, uint64_t id, uint32_t timeout_ms, uint64_t *leader)
{
	if (id == 0)
		return status_set(OMEN_EINVAL, "consensus: remove needs an id >= 1");
	return member_call(c, REQ_REMOVE, id, NULL, timeout_ms, leader);
}

int cons_transfer(cons *c, uint64_t to, uint32_t timeout_ms, uint64_t *leader)
{
	return member_call(c, REQ_TRANSFER, to, NULL, timeout_ms, leader);
}
